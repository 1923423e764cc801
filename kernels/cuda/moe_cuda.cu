/* moe_cuda.cu: the fused MoE forward on Hopper (sm_90) behind moefuzz/kernel_abi.h.
 *
 * Stages, all asynchronous on the caller's stream, nothing allocated (workspace_size() sizes
 * everything; layout in ws_plan):
 *   1. routing, one warp per token (moe_route.cuh), then dispatch: every (token, slot) entry of a
 *      local expert gets a permuted row; rows of one expert are contiguous and in entry order,
 *      and a table of row tiles of BM rows is built. Small T (<= 64 tokens, <= 1024 entries):
 *      one block does all of it (moe_prep_small_kernel); otherwise four kernels (route, count
 *      per chunk, scan, place).
 *   2. GEMM1 on tensor cores over the tiles: gate and up rows of W13 against the gathered token
 *      rows, SwiGLU fused in the epilogue, bf16 rows into hbuf (moe_gemm.cuh, MODE_UP).
 *   3. GEMM2 on tensor cores: W2 against hbuf, y = w * o into ybuf[entry] (MODE_DOWN).
 *   4. combine: out[t] = bf16(sum over slots, in slot order, of y) (* rsf at the output site).
 * Deterministic: no floating-point atomics; every sum has a fixed order; bitwise identical run
 * to run. Numerical contract "hopper-tc" (reference/contract.c): docs/cuda-kernel.md says why
 * each stage matches it.
 *
 * Run it: build with `cmake --preset cuda && cmake --build --preset cuda`, then on a machine with
 * an H100/H200:
 *   build/cuda/moefuzz check --backend cuda corpus/seeds      exact-reference verdicts
 *   build/cuda/moefuzz bench kernel                           speed vs a cuBLAS baseline
 * The same source built with -DMF_CUDA_WITH_MUTANTS is the mutant zoo of the test build
 * (library moefuzz_cuda_mutants, backend "cuda-mutant:NAME").
 *
 * Versions:
 *   1  first version: mma.sync m16n8k16 bf16 GEMMs with a cp.async ring (BM 16 / 64 / 128 by
 *      rows per expert), warp-per-token routing, match_any dispatch, fp32 combine buffer.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cuda_runtime.h>

#include "moe_common.cuh"
#include "moe_gemm.cuh"
#include "moe_route.cuh"
#include "moe_cuda.h"

#ifdef MF_CUDA_WITH_MUTANTS
#define MOE_KERNEL_NAME "cuda-mutant"
#else
#define MOE_KERNEL_NAME "cuda"
#endif

/* Domain limits (supports() refuses the rest with a reason). */
#define MOE_MAX_T 16384
#define MOE_MAX_E 1024   /* scan_experts_block: one thread per local expert in 1024 */
#define MOE_MAX_K 32     /* routing: lane n of the token's warp holds slot n */
#define MOE_MAX_HI 32768 /* H and I: covers every real model; any value from 1 works */

/* ---- stage kernels ---- */

/* Small T: route every token, count rows per expert, scan, place: one block, 1024 threads.
 * Shared memory: pos[E_local], cnt[E_local], tmp[68], then nrw routing scratches. */
static __global__ void __launch_bounds__(MOE_PREP_THREADS, 1)
    moe_prep_small_kernel(const moe_dev kp, int nrw) {
    extern __shared__ __align__(128) unsigned char smem_raw[];
    int *pos = (int *)smem_raw, *cnt = pos + kp.E_local, *tmp = cnt + kp.E_local;
    unsigned char *scratch = (unsigned char *)(tmp + 68);
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const int n = kp.T * kp.top_k;
    for (int e = tid; e < kp.E_local; e += blockDim.x) cnt[e] = 0;
    if (warp < nrw)
        for (int t = warp; t < kp.T; t += nrw)
            route_token_warp(kp, t, scratch + (size_t)warp * kp.route_bytes, lane);
    __syncthreads(); /* route_ids (global) and cnt = 0 visible to the whole block */
    for (int i = tid; i < n; i += blockDim.x) {
        int le = local_expert(kp, kp.route_ids[i]);
        if (le >= 0) atomicAdd(&cnt[le], 1); /* integer counts: order-free */
    }
    __syncthreads();
    scan_experts_block(kp, cnt, pos, tmp);
    __syncthreads(); /* expert_start / expert_cnt (global) and pos visible */
    if (warp == 0) place_entries_warp(kp, pos, 0, n, lane);
}

/* Large T, 1/4: one warp per token; 4 warps per block, each with its own scratch. */
static __global__ void __launch_bounds__(128) moe_route_kernel(const moe_dev kp) {
    extern __shared__ __align__(128) unsigned char smem_raw[];
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int t = blockIdx.x * 4 + warp;
    if (t >= kp.T) return; /* whole warp */
    route_token_warp(kp, t, smem_raw + (size_t)warp * kp.route_bytes, lane);
}

/* Large T, 2/4: rows per local expert in each chunk of MOE_CHUNK entries (warp per chunk). */
static __global__ void __launch_bounds__(128) moe_count_kernel(const moe_dev kp) {
    extern __shared__ __align__(128) unsigned char smem_raw[];
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int chunk = blockIdx.x * 4 + warp;
    if (chunk >= kp.n_chunks) return; /* whole warp */
    int *cnt = (int *)smem_raw + (size_t)warp * kp.E_local;
    for (int e = lane; e < kp.E_local; e += 32) cnt[e] = 0;
    __syncwarp();
    const int n = kp.T * kp.top_k, i0 = chunk * MOE_CHUNK;
    const int i1 = i0 + MOE_CHUNK < n ? i0 + MOE_CHUNK : n;
    for (int i = i0 + lane; i < i1; i += 32) {
        int le = local_expert(kp, kp.route_ids[i]);
        if (le >= 0) atomicAdd(&cnt[le], 1);
    }
    __syncwarp();
    for (int e = lane; e < kp.E_local; e += 32)
        kp.chunk_cnt[(size_t)chunk * kp.E_local + e] = cnt[e];
}

/* Large T, 3/4: per expert, exclusive prefix over chunks (in place) and the total; then the
 * expert scan and the tile table. One block of 1024 threads. */
static __global__ void __launch_bounds__(MOE_PREP_THREADS, 1) moe_scan_kernel(const moe_dev kp) {
    extern __shared__ __align__(128) unsigned char smem_raw[];
    int *start = (int *)smem_raw, *cnt = start + kp.E_local, *tmp = cnt + kp.E_local;
    for (int e = threadIdx.x; e < kp.E_local; e += blockDim.x) {
        int run = 0;
        for (int c = 0; c < kp.n_chunks; c++) {
            size_t i = (size_t)c * kp.E_local + e;
            int v = kp.chunk_cnt[i];
            kp.chunk_cnt[i] = run;
            run += v;
        }
        cnt[e] = run;
    }
    __syncthreads();
    scan_experts_block(kp, cnt, start, tmp);
}

/* Large T, 4/4: rows for the entries of each chunk, in entry order (warp per chunk). */
static __global__ void __launch_bounds__(128) moe_place_kernel(const moe_dev kp) {
    extern __shared__ __align__(128) unsigned char smem_raw[];
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int chunk = blockIdx.x * 4 + warp;
    if (chunk >= kp.n_chunks) return; /* whole warp */
    int *pos = (int *)smem_raw + (size_t)warp * kp.E_local;
    for (int e = lane; e < kp.E_local; e += 32)
        pos[e] = kp.expert_start[e] + kp.chunk_cnt[(size_t)chunk * kp.E_local + e];
    __syncwarp();
    const int n = kp.T * kp.top_k, i0 = chunk * MOE_CHUNK;
    place_entries_warp(kp, pos, i0, i0 + MOE_CHUNK < n ? i0 + MOE_CHUNK : n, lane);
}

/* out[t][c] = bf16(acc), acc = sum over local slots in slot order of y (fp32 adds), times rsf
 * at the output site. One thread per 4 columns of a token. */
static __global__ void __launch_bounds__(256) moe_combine_kernel(const moe_dev kp) {
    const int ncol4 = (kp.H + 3) / 4;
    const long long idx = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (idx >= (long long)kp.T * ncol4) return;
    const int t = (int)(idx / ncol4), c0 = (int)(idx % ncol4) * 4;
    const int k = kp.top_k, vec = (kp.H % 4) == 0;
    float acc[4] = {0.0f, 0.0f, 0.0f, 0.0f};
    for (int s = 0; s < k; s++) {
        const size_t e = (size_t)t * k + s;
        if (kp.entry_row[e] < 0) continue; /* another rank's expert (or a dropped row) */
        const float *y = kp.ybuf + e * kp.H + c0;
        float v[4];
        if (vec) {
            float4 q = *(const float4 *)y;
            v[0] = q.x, v[1] = q.y, v[2] = q.z, v[3] = q.w;
        } else {
#pragma unroll
            for (int j = 0; j < 4; j++) v[j] = c0 + j < kp.H ? y[j] : 0.0f;
        }
#pragma unroll
        for (int j = 0; j < 4; j++) {
            acc[j] = __fadd_rn(acc[j], v[j]);
            if (MF_MUT(BF16_COMBINE)) acc[j] = bf16_to_f32(f32_to_bf16(acc[j]));
        }
    }
    if (kp.rsf_site == MF_ABI_RSF_OUTPUT && !MF_MUT(RSF_DROPPED)) {
#pragma unroll
        for (int j = 0; j < 4; j++) {
            acc[j] = acc[j] * kp.rsf;
            if (MF_MUT(RSF_TWICE)) acc[j] = acc[j] * kp.rsf;
        }
    }
    uint16_t o[4];
#pragma unroll
    for (int j = 0; j < 4; j++) o[j] = f32_to_bf16(acc[j]);
    uint16_t *dst = kp.out + (size_t)t * kp.H + c0;
    if (kp.out_vec) {
        *(uint2 *)dst = make_uint2((uint32_t)o[0] | ((uint32_t)o[1] << 16),
                                   (uint32_t)o[2] | ((uint32_t)o[3] << 16));
    } else {
#pragma unroll
        for (int j = 0; j < 4; j++)
            if (c0 + j < kp.H) dst[j] = o[j];
    }
}

/* ---- GEMM variants ----
 * BM 16 (decode, few rows per expert): 4 warps side by side along N, 4 stages; BN is chosen so
 *   that the grid covers the SMs at least twice. 83 KB of shared memory at BN 128: two blocks per
 *   SM, about 110 KB of weights in flight per SM, enough for HBM3 latency x bandwidth.
 * BM 64: 2x2 warps of 32 x 64 (or 32 gate + 32 up), 4 stages, 108 KB.
 * BM 128: 2x4 warps of 64 x 64, 3 stages, 162 KB: one block of 8 warps per SM.
 * VEC = false: 2-byte loads for H or I not a multiple of 8 or unaligned tensors (BM 16 only). */
typedef void (*gemm_fn)(const moe_dev);

typedef struct gemm_variant {
    int mode, BM, BN, vec, threads, smem;
    gemm_fn fn;
} gemm_variant;

#define GV(MODE, BM, BN, WM, WN, ST, VEC)                            \
    {                                                                \
        MODE, BM, BN, VEC, WM *WN * 32, gemm_smem_bytes(BM, BN, ST), \
            moe_gemm_kernel<MODE, BM, BN, WM, WN, ST, VEC>           \
    }

static const gemm_variant gemm_variants[] = {
    GV(MODE_UP, 16, 64, 1, 4, 4, true),    GV(MODE_UP, 16, 128, 1, 4, 4, true),
    GV(MODE_UP, 64, 128, 2, 2, 4, true),   GV(MODE_UP, 128, 256, 2, 4, 3, true),
    GV(MODE_UP, 16, 64, 1, 4, 4, false),   GV(MODE_DOWN, 16, 32, 1, 4, 4, true),
    GV(MODE_DOWN, 16, 64, 1, 4, 4, true),  GV(MODE_DOWN, 16, 128, 1, 4, 4, true),
    GV(MODE_DOWN, 64, 128, 2, 2, 4, true), GV(MODE_DOWN, 128, 256, 2, 4, 3, true),
    GV(MODE_DOWN, 16, 64, 1, 4, 4, false),
};
#define N_GEMM_VARIANTS ((int)(sizeof gemm_variants / sizeof gemm_variants[0]))

static const gemm_variant *find_gemm(int mode, int BM, int BN, int vec) {
    for (int i = 0; i < N_GEMM_VARIANTS; i++) {
        const gemm_variant *g = &gemm_variants[i];
        if (g->mode == mode && g->BM == BM && g->BN == BN && g->vec == vec) return g;
    }
    return NULL;
}

/* ---- host side ---- */

typedef struct cuda_ctx {
    int device, sm_count, smem_optin;
    int force_bm; /* MOEFUZZ_CUDA_BM=16|64|128: tile height for tuning runs; 0: by shape */
    int mutant;   /* 0 in production builds */
} cuda_ctx;

/* Workspace layout; every region 256-byte aligned. */
typedef struct ws_layout {
    size_t route_ids, route_w, entry_row, row_entry, expert_cnt, expert_start, n_tiles, tiles,
        chunk_cnt, hbuf, ybuf, total;
    int max_tiles, n_chunks;
} ws_layout;

static size_t ws_take(size_t *off, size_t bytes) {
    size_t at = *off;
    *off += (bytes + 255) / 256 * 256;
    return at;
}

/* Tiles of BM rows over all local experts: sum ceil(c_e / BM) <= floor(n / BM) + experts hit. */
static int max_tiles_for(const mf_kernel_params *p, int BM) {
    size_t n = (size_t)p->T * p->top_k;
    size_t hit = n < (size_t)p->E_local ? n : (size_t)p->E_local;
    return (int)(n / BM + hit);
}

static void ws_plan(const mf_kernel_params *p, ws_layout *L) {
    size_t n = (size_t)p->T * p->top_k, off = 0;
    L->max_tiles = max_tiles_for(p, 16); /* the smallest BM bounds every configuration */
    L->n_chunks = (int)((n + MOE_CHUNK - 1) / MOE_CHUNK);
    L->route_ids = ws_take(&off, n * 4);
    L->route_w = ws_take(&off, n * 4);
    L->entry_row = ws_take(&off, n * 4);
    L->row_entry = ws_take(&off, n * 4);
    L->expert_cnt = ws_take(&off, (size_t)p->E_local * 4);
    L->expert_start = ws_take(&off, (size_t)p->E_local * 4);
    L->n_tiles = ws_take(&off, 16);
    L->tiles = ws_take(&off, (size_t)L->max_tiles * 16);
    L->chunk_cnt = ws_take(&off, (size_t)L->n_chunks * p->E_local * 4);
    L->hbuf = ws_take(&off, n * p->I * 2); /* [T*top_k][I] bf16 */
    L->ybuf = ws_take(&off, n * p->H * 4); /* [T*top_k][H] fp32 */
    L->total = off + 256;                  /* slack to align an unaligned workspace */
}

#define MSG(...) (snprintf(msg, msg_len, __VA_ARGS__), 0)

static int cuda_supports(void *vctx, const mf_kernel_params *p, char *msg, size_t msg_len) {
    (void)vctx;
    if (p->struct_size < offsetof(mf_kernel_params, reserved))
        return MSG("params struct of %u bytes is older than this kernel's", p->struct_size);
    if (p->memory != MF_ABI_MEM_DEVICE) return MSG("the cuda kernel needs device memory");
    if (p->T < 1 || p->T > MOE_MAX_T) return MSG("T=%d outside [1, %d]", p->T, MOE_MAX_T);
    if (p->H < 1 || p->H > MOE_MAX_HI) return MSG("H=%d outside [1, %d]", p->H, MOE_MAX_HI);
    if (p->I < 1 || p->I > MOE_MAX_HI) return MSG("I=%d outside [1, %d]", p->I, MOE_MAX_HI);
    if (p->E < 1 || p->E > MOE_MAX_E) return MSG("E=%d outside [1, %d]", p->E, MOE_MAX_E);
    if (p->E_local < 1 || p->E_local > p->E)
        return MSG("E_local=%d outside [1, E=%d]", p->E_local, p->E);
    if (p->expert_offset < 0 || p->expert_offset > p->E - p->E_local)
        return MSG("expert_offset=%d with E_local=%d exceeds E=%d", p->expert_offset, p->E_local,
                   p->E);
    if (p->top_k < 1 || p->top_k > MOE_MAX_K || p->top_k > p->E)
        return MSG("top_k=%d outside [1, min(E, %d)]", p->top_k, MOE_MAX_K);
    if (p->n_group < 1 || p->E % p->n_group != 0)
        return MSG("n_group=%d does not divide E=%d", p->n_group, p->E);
    if (p->n_group > 1 && (p->topk_group < 1 || p->topk_group > p->n_group ||
                           p->topk_group * (p->E / p->n_group) < p->top_k))
        return MSG("topk_group=%d of n_group=%d groups cannot hold top_k=%d", p->topk_group,
                   p->n_group, p->top_k);
    if (p->score_fn != MF_ABI_SCORE_SOFTMAX && p->score_fn != MF_ABI_SCORE_SIGMOID)
        return MSG("score function %d not implemented", p->score_fn);
    if (p->bias_dtype < MF_ABI_BIAS_NONE || p->bias_dtype > MF_ABI_BIAS_BF16)
        return MSG("bias dtype %d not implemented", p->bias_dtype);
    if (p->group_rule != MF_ABI_GROUP_TOP2_SUM && p->group_rule != MF_ABI_GROUP_MAX)
        return MSG("group rule %d not implemented", p->group_rule);
    if (p->rsf_site != MF_ABI_RSF_WEIGHTS && p->rsf_site != MF_ABI_RSF_OUTPUT)
        return MSG("rsf site %d not implemented", p->rsf_site);
    if (p->activation != MF_ABI_ACT_SILU_GLU)
        return MSG("activation %d not implemented", p->activation);
    if (p->layout != MF_ABI_LAYOUT_GATE_UP && p->layout != MF_ABI_LAYOUT_UP_GATE)
        return MSG("W13 layout %d not implemented", p->layout);
    if (p->logits_dtype != MF_ABI_DTYPE_F32 && p->logits_dtype != MF_ABI_DTYPE_BF16)
        return MSG("logits dtype %d not implemented", p->logits_dtype);
    return 1;
}

static int cuda_workspace_size(void *vctx, const mf_kernel_params *p, size_t *bytes, char *msg,
                               size_t msg_len) {
    (void)vctx, (void)msg, (void)msg_len;
    ws_layout L;
    ws_plan(p, &L);
    *bytes = L.total;
    return 0;
}

static int aligned16(const void *p) {
    return ((uintptr_t)p & 15u) == 0;
}

/* Launch configuration chosen from the shape (never from the data, so a case always runs the
 * same code on the same shape). */
typedef struct moe_cfg {
    int small, BM, vec1, vec2;
    const gemm_variant *g1, *g2;
    int nrw, prep_smem;
} moe_cfg;

static int choose_cfg(const cuda_ctx *c, const mf_kernel_params *p, moe_cfg *cfg, char *msg,
                      size_t msg_len) {
    memset(cfg, 0, sizeof *cfg);
    const long long n = (long long)p->T * p->top_k;
    cfg->vec1 = p->H % 8 == 0 && aligned16(p->x) && aligned16(p->w13);
    cfg->vec2 = p->I % 8 == 0 && aligned16(p->w2);
    /* Tile height by the mean rows per expert: 16 while most experts fit one 16-row tile (decode:
     * weight streaming, the grid is all N blocks), 64 once they would need several (each extra
     * tile of an expert re-reads its weights), 128 when the GEMMs are compute-bound. The tiling
     * never changes a result: every output keeps its one in-order chain. */
    const double rows_per_expert = (double)n / p->E;
    int BM = 16;
    if (cfg->vec1 && cfg->vec2) {
        BM = rows_per_expert >= 192 ? 128 : rows_per_expert >= 12 ? 64 : 16;
        if (c->force_bm) BM = c->force_bm;
    }
    cfg->BM = BM;
    /* BM 16: pick BN so the grid is at least two blocks per SM (weights stream from every SM) */
    long long hit = n < p->E_local ? n : p->E_local, est = n / BM > hit ? n / BM : hit;
    long long want = 2LL * c->sm_count;
    int bn1 = 64, bn2 = 64;
    if (BM == 16 && cfg->vec1) bn1 = (p->I + 63) / 64 * est >= want ? 128 : 64;
    if (BM == 16 && cfg->vec2)
        bn2 = (p->H + 127) / 128 * est >= want ? 128 : (p->H + 63) / 64 * est >= want ? 64 : 32;
    if (BM == 64) bn1 = bn2 = 128;
    if (BM == 128) bn1 = bn2 = 256;
    cfg->g1 = find_gemm(MODE_UP, BM, bn1, cfg->vec1);
    cfg->g2 = find_gemm(MODE_DOWN, BM, bn2, cfg->vec2);
    if (!cfg->g1 || !cfg->g2) {
        snprintf(msg, msg_len, "moe_cuda: no GEMM variant for BM=%d BN=%d/%d vec=%d/%d", BM, bn1,
                 bn2, cfg->vec1, cfg->vec2);
        return 1;
    }
    /* small-T path: routing warps limited by shared memory (E=1024, n_group=1024: 10 KB each) */
    cfg->small = p->T <= MOE_SMALL_T && n <= MOE_CHUNK;
    if (cfg->small) {
        int rb = route_scratch_bytes(p->E, p->n_group);
        int fixed = 2 * p->E_local * 4 + 68 * 4;
        int budget = c->smem_optin - fixed;
        int nrw = budget / rb;
        if (nrw > 32) nrw = 32;
        if (nrw > p->T) nrw = p->T;
        if (nrw < 1) {
            cfg->small = 0; /* cannot happen for E <= 1024; the large path needs less */
        } else {
            cfg->nrw = nrw;
            cfg->prep_smem = fixed + nrw * rb;
        }
    }
    return 0;
}

#define LAUNCHED(what)                                                             \
    do {                                                                           \
        cudaError_t e_ = cudaGetLastError();                                       \
        if (e_ != cudaSuccess) {                                                   \
            snprintf(msg, msg_len, "moe_cuda: launch of %s failed: %s (%s)", what, \
                     cudaGetErrorName(e_), cudaGetErrorString(e_));                \
            return 1;                                                              \
        }                                                                          \
    } while (0)

static int cuda_run(void *vctx, const mf_kernel_params *p, char *msg, size_t msg_len) {
    const cuda_ctx *c = (const cuda_ctx *)vctx;
    if (cuda_supports(vctx, p, msg, msg_len) != 1) return 1;
    ws_layout L;
    ws_plan(p, &L);
    if (!p->workspace || p->workspace_bytes < L.total) {
        snprintf(msg, msg_len, "moe_cuda: workspace of %zu bytes needed, %zu given", L.total,
                 p->workspace_bytes);
        return 1;
    }
    if (!p->x || !p->logits || !p->w13 || !p->w2 || !p->out) {
        snprintf(msg, msg_len, "moe_cuda: x, logits, w13, w2 and out must not be NULL");
        return 1;
    }
    moe_cfg cfg;
    if (choose_cfg(c, p, &cfg, msg, msg_len)) return 1;

    unsigned char *ws = (unsigned char *)(((uintptr_t)p->workspace + 255) & ~(uintptr_t)255);
    moe_dev kp;
    memset(&kp, 0, sizeof kp);
    kp.T = p->T, kp.H = p->H, kp.I = p->I, kp.E = p->E, kp.E_local = p->E_local;
    kp.offset = p->expert_offset, kp.top_k = p->top_k;
    kp.score_fn = p->score_fn, kp.bias_dtype = p->bias_dtype, kp.n_group = p->n_group;
    kp.topk_group = p->topk_group, kp.group_rule = p->group_rule;
    kp.renormalize = p->renormalize, kp.renorm_eps = p->renorm_eps;
    kp.rsf = p->routed_scaling_factor, kp.rsf_site = p->rsf_site, kp.layout = p->layout;
    kp.logits_dtype = p->logits_dtype;
    kp.x = (const uint16_t *)p->x, kp.logits = p->logits;
    kp.bias = p->bias_dtype == MF_ABI_BIAS_NONE ? NULL : p->bias;
    kp.w13 = (const uint16_t *)p->w13, kp.w2 = (const uint16_t *)p->w2;
    kp.out = (uint16_t *)p->out, kp.topk_ids = p->topk_ids, kp.topk_weights = p->topk_weights;
    kp.route_ids = (int32_t *)(ws + L.route_ids);
    kp.route_w = (float *)(ws + L.route_w);
    kp.entry_row = (int32_t *)(ws + L.entry_row);
    kp.row_entry = (int32_t *)(ws + L.row_entry);
    kp.expert_cnt = (int32_t *)(ws + L.expert_cnt);
    kp.expert_start = (int32_t *)(ws + L.expert_start);
    kp.chunk_cnt = (int32_t *)(ws + L.chunk_cnt);
    kp.tiles = (int4 *)(ws + L.tiles);
    kp.n_tiles = (int32_t *)(ws + L.n_tiles);
    kp.hbuf = (uint16_t *)(ws + L.hbuf);
    kp.ybuf = (float *)(ws + L.ybuf);
    kp.BM = cfg.BM;
    kp.n_chunks = L.n_chunks;
    kp.route_bytes = route_scratch_bytes(p->E, p->n_group);
    kp.out_vec = p->H % 4 == 0 && ((uintptr_t)p->out & 7u) == 0;
#ifdef MF_CUDA_WITH_MUTANTS
    kp.mutant = c->mutant;
#endif
    cudaStream_t st = (cudaStream_t)p->stream;
    (void)cudaGetLastError(); /* clear a stale, non-sticky error: the checks below are ours */

    /* 1. routing and dispatch */
    if (cfg.small) {
        moe_prep_small_kernel<<<1, MOE_PREP_THREADS, cfg.prep_smem, st>>>(kp, cfg.nrw);
        LAUNCHED("moe_prep_small_kernel");
    } else {
        int chunk_blocks = (L.n_chunks + 3) / 4;
        moe_route_kernel<<<(p->T + 3) / 4, 128, 4 * kp.route_bytes, st>>>(kp);
        LAUNCHED("moe_route_kernel");
        moe_count_kernel<<<chunk_blocks, 128, 4 * p->E_local * 4, st>>>(kp);
        LAUNCHED("moe_count_kernel");
        moe_scan_kernel<<<1, MOE_PREP_THREADS, 2 * p->E_local * 4 + 68 * 4, st>>>(kp);
        LAUNCHED("moe_scan_kernel");
        moe_place_kernel<<<chunk_blocks, 128, 4 * p->E_local * 4, st>>>(kp);
        LAUNCHED("moe_place_kernel");
    }
    /* 2., 3. the expert GEMMs over the tile table */
    const int tiles = max_tiles_for(p, cfg.BM);
    {
        const gemm_variant *g = cfg.g1;
        dim3 grid((unsigned)((p->I + g->BN / 2 - 1) / (g->BN / 2)), (unsigned)tiles);
        g->fn<<<grid, g->threads, g->smem, st>>>(kp);
        LAUNCHED("moe_gemm_kernel (GEMM1)");
    }
    {
        const gemm_variant *g = cfg.g2;
        dim3 grid((unsigned)((p->H + g->BN - 1) / g->BN), (unsigned)tiles);
        g->fn<<<grid, g->threads, g->smem, st>>>(kp);
        LAUNCHED("moe_gemm_kernel (GEMM2)");
    }
    /* 4. combine */
    {
        long long threads = (long long)p->T * ((p->H + 3) / 4);
        moe_combine_kernel<<<(unsigned)((threads + 255) / 256), 256, 0, st>>>(kp);
        LAUNCHED("moe_combine_kernel");
    }
    return 0;
}

#define CUDA_CREATE_TRY(call)                                                            \
    do {                                                                                 \
        cudaError_t e_ = (call);                                                         \
        if (e_ != cudaSuccess) {                                                         \
            snprintf(msg, msg_len, "moe_cuda: %s: %s (%s)", #call, cudaGetErrorName(e_), \
                     cudaGetErrorString(e_));                                            \
            free(c);                                                                     \
            return 1;                                                                    \
        }                                                                                \
    } while (0)

static int cuda_create(void **out, char *msg, size_t msg_len) {
    cuda_ctx *c = (cuda_ctx *)calloc(1, sizeof *c);
    if (!c) {
        snprintf(msg, msg_len, "moe_cuda: out of memory");
        return 1;
    }
    int major = 0, minor = 0;
    CUDA_CREATE_TRY(cudaGetDevice(&c->device));
    CUDA_CREATE_TRY(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, c->device));
    CUDA_CREATE_TRY(cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, c->device));
    if (major < 9) {
        snprintf(msg, msg_len, "moe_cuda: device %d has compute capability %d.%d, needs 9.0",
                 c->device, major, minor);
        free(c);
        return 1;
    }
    CUDA_CREATE_TRY(
        cudaDeviceGetAttribute(&c->sm_count, cudaDevAttrMultiProcessorCount, c->device));
    CUDA_CREATE_TRY(
        cudaDeviceGetAttribute(&c->smem_optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, c->device));
    const char *bm = getenv("MOEFUZZ_CUDA_BM");
    if (bm && (!strcmp(bm, "16") || !strcmp(bm, "64") || !strcmp(bm, "128")))
        c->force_bm = atoi(bm);
    /* dynamic shared memory above 48 KB must be opted into, once per kernel */
    for (int i = 0; i < N_GEMM_VARIANTS; i++) {
        if (gemm_variants[i].smem > c->smem_optin) {
            snprintf(msg, msg_len,
                     "moe_cuda: a GEMM variant needs %d bytes of shared memory, "
                     "the device offers %d",
                     gemm_variants[i].smem, c->smem_optin);
            free(c);
            return 1;
        }
        CUDA_CREATE_TRY(cudaFuncSetAttribute((const void *)gemm_variants[i].fn,
                                             cudaFuncAttributeMaxDynamicSharedMemorySize,
                                             gemm_variants[i].smem));
    }
    CUDA_CREATE_TRY(cudaFuncSetAttribute((const void *)moe_prep_small_kernel,
                                         cudaFuncAttributeMaxDynamicSharedMemorySize,
                                         c->smem_optin));
    *out = c;
    return 0;
}

static void cuda_release(void *ctx) {
    free(ctx);
}

/* The function table, field by field (fields appended to the ABI later stay zero). */
static void fill_api(mf_kernel_api *api) {
    memset(api, 0, sizeof *api);
    api->abi_version = MF_KERNEL_ABI_VERSION;
    api->struct_size = sizeof(mf_kernel_api);
    api->name = MOE_KERNEL_NAME;
    api->description =
        "fused MoE on Hopper tensor cores (mma.sync bf16, fused SwiGLU, fp32 combine; sm_90)";
    api->memory = MF_ABI_MEM_DEVICE;
    mf_kernel_contract *k = &api->contract;
    k->struct_size = sizeof(mf_kernel_contract);
    k->name = "hopper-tc"; /* the name decides; the fields below are for readers of the table */
    k->acc_kind = MF_ABI_ACC_FUSED_BLOCK;
    k->acc_block = 16;
    k->acc_frac_bits = 25;
    k->exp_kind = MF_ABI_EXP_ACCURATE;
    k->exp_ulps = 2.0f;
    k->div_kind = MF_ABI_DIV_IEEE;
    k->round_points = MF_ABI_RP_ACT_OUT;
    k->deterministic = 1;
    k->reports_routing = 1;
    api->create = cuda_create;
    api->supports = cuda_supports;
    api->workspace_size = cuda_workspace_size;
    api->run = cuda_run;
    api->release = cuda_release;
}

#ifdef MF_CUDA_WITH_MUTANTS
extern "C" int mf_cuda_mutant_get_api(uint32_t abi_version, mf_kernel_api *api, size_t api_size) {
    if (abi_version != MF_KERNEL_ABI_VERSION || api_size < sizeof *api) return 1;
    fill_api(api);
    return 0;
}

extern "C" void mf_cuda_mutant_set(void *ctx, int mutant) {
    ((cuda_ctx *)ctx)->mutant = mutant;
}
#else
extern "C" int mf_cuda_kernel_get_api(uint32_t abi_version, mf_kernel_api *api, size_t api_size) {
    if (abi_version != MF_KERNEL_ABI_VERSION || api_size < sizeof *api) return 1;
    fill_api(api);
    return 0;
}
#endif
