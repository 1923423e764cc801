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
 *      rows, SwiGLU fused in the epilogue, bf16 rows into hbuf (moe_gemm_wg.cuh on sm_90a, else
 *      moe_gemm.cuh; MODE_UP).
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
 *   2  wgmma GEMMs on sm_90a (moe_gemm_wg.cuh): persistent, one producer warpgroup feeding 1-3
 *      consumer warpgroups through mbarriers, 128-byte-swizzled stages; the tile shape chosen
 *      per shape; programmatic dependent launches behind them; mma.sync kept for small decode
 *      steps and for devices without sm_90a. Measurements: docs/cuda-perf-notes.md.
 *   3  cluster variants of the wgmma GEMMs: two CTAs per item, the B tile multicast to both by
 *      TMA; chosen for many rows per expert.
 *   4  the wgmmas no longer serialized by ptxas (warp-uniform warpgroup index and flags); B by
 *      TMA in every wgmma kernel; decode steps on the wgmma kernels too; cluster tiles split
 *      evenly; the combine loads a group of slots before adding them.
 *   5  routing without branches in its rounds (top-k and kept groups by two warp
 *      max-reductions each); decode steps of <= 32 entries dispatched by one warp; the prep
 *      kernel lets GEMM1 launch at once; a 96-wide decode tile (wg1x96).
 *   6  a routing row's logits and biases loaded in one memory round trip per 256 experts; one
 *      helper fills every launch configuration. (A one-kernel decode step was built, measured
 *      slower and not kept: docs/cuda-perf-notes.md, version 6.)
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cuda_runtime.h>
#ifndef MF_CUDA_EMULATE
#include <cuda.h> /* CUtensorMap and its enums only: the encoder comes through cudart */
#endif

#include "moe_common.cuh"
#include "moe_gemm.cuh"
#include "moe_gemm_wg.cuh"
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
 * Tiny (n <= MOE_TINY_ENTRIES; launched with the routing warps only): the routing warps also
 * leave the ids in tmp[], and warp 0 dispatches them alone.
 * Shared memory: pos[E_local], cnt[E_local], tmp[68], then nrw routing scratches. */
static __global__ void __launch_bounds__(MOE_PREP_THREADS, 1)
    moe_prep_small_kernel(const moe_dev kp, int nrw) {
    extern __shared__ __align__(128) unsigned char smem_raw[];
    int *pos = (int *)smem_raw, *cnt = pos + kp.E_local, *tmp = cnt + kp.E_local;
    unsigned char *scratch = (unsigned char *)(tmp + 68);
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const int n = kp.T * kp.top_k;
    const bool tiny = n <= MOE_TINY_ENTRIES;
    /* GEMM1's blocks may launch now (programmatic dependent launch): they set up their rings
     * and wait (griddepcontrol.wait) for this grid's end before reading anything it writes */
    griddep_launch();
    if (!tiny)
        for (int e = tid; e < kp.E_local; e += blockDim.x) cnt[e] = 0;
    if (warp < nrw)
        for (int t = warp; t < kp.T; t += nrw)
            route_token_warp(kp, t, scratch + (size_t)warp * kp.route_bytes, lane,
                             tiny ? tmp : NULL);
    __syncthreads(); /* route_ids (global, and tmp[] when tiny) and cnt = 0 visible */
    if (tiny) {
        if (warp == 0) dispatch_tiny_warp(kp, tmp, n, lane);
        return;
    }
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
    route_token_warp(kp, t, smem_raw + (size_t)warp * kp.route_bytes, lane, NULL);
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
 * at the output site. One thread per 4 columns of a token. The slots go in groups of 8: the
 * group's row flags, then its y values are all loaded before the first add, so a decode step
 * waits for two memory round trips per group, not two per slot; the adds keep slot order. */
#define COMBINE_GROUP 8
static __global__ void __launch_bounds__(256) moe_combine_kernel(const moe_dev kp) {
    griddep_wait(); /* launched early behind GEMM2 (programmatic dependent launch) */
    const int ncol4 = (kp.H + 3) / 4;
    const long long idx = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (idx >= (long long)kp.T * ncol4) return;
    const int t = (int)(idx / ncol4), c0 = (int)(idx % ncol4) * 4;
    const int k = kp.top_k, vec = (kp.H % 4) == 0;
    float acc[4] = {0.0f, 0.0f, 0.0f, 0.0f};
    for (int s0 = 0; s0 < k; s0 += COMBINE_GROUP) {
        bool local[COMBINE_GROUP];
        float v[COMBINE_GROUP][4];
#pragma unroll
        for (int j = 0; j < COMBINE_GROUP; j++) /* another rank's expert (or a dropped row): -1 */
            local[j] = s0 + j < k && kp.entry_row[(size_t)t * k + s0 + j] >= 0;
#pragma unroll
        for (int j = 0; j < COMBINE_GROUP; j++) {
            v[j][0] = v[j][1] = v[j][2] = v[j][3] = 0.0f; /* not added where !local[j] */
            if (!local[j]) continue;
            const float *y = kp.ybuf + ((size_t)t * k + s0 + j) * kp.H + c0;
            if (vec) {
                float4 q = *(const float4 *)y;
                v[j][0] = q.x, v[j][1] = q.y, v[j][2] = q.z, v[j][3] = q.w;
            } else {
#pragma unroll
                for (int c = 0; c < 4; c++) v[j][c] = c0 + c < kp.H ? y[c] : 0.0f;
            }
        }
#pragma unroll
        for (int j = 0; j < COMBINE_GROUP; j++) {
            if (!local[j]) continue;
#pragma unroll
            for (int c = 0; c < 4; c++) {
                acc[c] = __fadd_rn(acc[c], v[j][c]);
                if (MF_MUT(BF16_COMBINE)) acc[c] = bf16_to_f32(f32_to_bf16(acc[c]));
            }
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
 * mma.sync (moe_gemm.cuh), any sm_90 device:
 *   BM 16 (decode, few rows per expert): 4 warps side by side along N, 4 stages; BN is chosen so
 *   that the grid covers the SMs at least twice. 83 KB of shared memory at BN 128: two blocks
 *   per SM, about 110 KB of weights in flight per SM.
 *   BM 64: 2x2 warps of 32 x 64 (or 32 gate + 32 up), 4 stages, 108 KB.
 *   BM 128: 2x4 warps of 64 x 64, 3 stages, 162 KB: one block of 8 warps per SM.
 *   VEC = false: 2-byte loads for H or I not a multiple of 8 or unaligned tensors (BM 16 only).
 * wgmma (moe_gemm_wg.cuh), sm_90a devices (compute capability 9.0) and the 16-byte path only:
 *   persistent, warp-specialized; CW consumer warpgroups of 64 rows (BM = 64 CW), B tiles of BN
 *   rows, S stages of 128-byte-swizzled tiles, about 193 KB of shared memory each (1x96: 201 KB):
 *   3x192 (S 4), 3x128 (S 5), 2x256 (S 4) and 2x128 (S 6) for many rows per expert, 1x128
 *   (S 8), 1x96 (S 10) and 1x64 (S 12) for few. */
typedef void (*gemm_fn)(const moe_dev);
typedef void (*gemm_fn_wg)(const moe_dev, const mf_tmap);

/* BM: rows of the tile table's tiles (the cluster variants: two CTAs of 64 CW rows each).
 * fn: the mma.sync kernels; fnw: the wgmma ones, which take the B operand's tensor map. */
typedef struct gemm_variant {
    int mode, BM, BN, vec, threads, smem, wg, mc;
    gemm_fn fn;
    const char *name;
    gemm_fn_wg fnw;
} gemm_variant;

#define GV(MODE, BM, BN, WM, WN, ST, VEC)                                               \
    {                                                                                   \
        MODE, BM, BN, VEC, WM *WN * 32, gemm_smem_bytes(BM, BN, ST), 0, 0,              \
            moe_gemm_kernel<MODE, BM, BN, WM, WN, ST, VEC>, "mma" #BM "x" #BN, NULL     \
    }
#define GW(MODE, BN, CW, ST)                                                            \
    {                                                                                   \
        MODE, 64 * CW, BN, 1, 128 * (CW + 1), wg_smem_bytes(BN, CW, ST), 1, 0,          \
            NULL, "wg" #CW "x" #BN, moe_gemm_wg_kernel<MODE, BN, CW, ST>                \
    }
#define GWC(MODE, BN, CW, ST)                                                           \
    {                                                                                   \
        MODE, 128 * CW, BN, 1, 128 * (CW + 1), wg_smem_bytes(BN, CW, ST), 1, 1,         \
            NULL, "wg" #CW "x" #BN "c", moe_gemm_wgc_kernel<MODE, BN, CW, ST>           \
    }

static const gemm_variant gemm_variants[] = {
    GV(MODE_UP, 16, 64, 1, 4, 4, true),    GV(MODE_UP, 16, 128, 1, 4, 4, true),
    GV(MODE_UP, 64, 128, 2, 2, 4, true),   GV(MODE_UP, 128, 256, 2, 4, 3, true),
    GV(MODE_UP, 16, 64, 1, 4, 4, false),   GV(MODE_DOWN, 16, 32, 1, 4, 4, true),
    GV(MODE_DOWN, 16, 64, 1, 4, 4, true),  GV(MODE_DOWN, 16, 128, 1, 4, 4, true),
    GV(MODE_DOWN, 64, 128, 2, 2, 4, true), GV(MODE_DOWN, 128, 256, 2, 4, 3, true),
    GV(MODE_DOWN, 16, 64, 1, 4, 4, false),
    GW(MODE_UP, 192, 3, 4),                GW(MODE_DOWN, 192, 3, 4),
    GW(MODE_UP, 128, 3, 5),                GW(MODE_DOWN, 128, 3, 5),
    GW(MODE_UP, 256, 2, 4),                GW(MODE_UP, 128, 2, 6),
    GW(MODE_UP, 128, 1, 8),                GW(MODE_UP, 96, 1, 10),
    GW(MODE_UP, 64, 1, 12),                GW(MODE_DOWN, 96, 1, 10),
    GW(MODE_DOWN, 256, 2, 4),              GW(MODE_DOWN, 128, 2, 6),
    GW(MODE_DOWN, 128, 1, 8),              GW(MODE_DOWN, 64, 1, 12),
    GWC(MODE_UP, 256, 2, 4),               GWC(MODE_DOWN, 256, 2, 4),
    GWC(MODE_UP, 192, 3, 4),               GWC(MODE_DOWN, 192, 3, 4),
};
#define N_GEMM_VARIANTS ((int)(sizeof gemm_variants / sizeof gemm_variants[0]))
static_assert(sizeof gemm_variants / sizeof gemm_variants[0] <= 64, "cuda_ctx.mc_max has 64 slots");

static const gemm_variant *find_gemm(int mode, int BM, int BN, int vec, int wg, int mc) {
    for (int i = 0; i < N_GEMM_VARIANTS; i++) {
        const gemm_variant *g = &gemm_variants[i];
        if (g->mode == mode && g->BM == BM && g->BN == BN && g->vec == vec && g->wg == wg &&
            g->mc == mc)
            return g;
    }
    return NULL;
}

/* ---- host side ---- */

typedef struct cuda_ctx {
    int device, sm_count, smem_optin;
    int wgmma;    /* compute capability 9.0: the sm_90a code with wgmma runs */
    int force_bm; /* MOEFUZZ_CUDA_BM=16|64|128: the mma.sync path with this tile height */
    int clusters;    /* the cluster (TMA multicast) GEMMs can run: sm_90a, driver entry point */
    int b_tma;       /* the other wgmma GEMMs load B by TMA too (MOEFUZZ_CUDA_TMA=0: cp.async) */
    int no_tma;      /* MOEFUZZ_CUDA_TMA=0: nothing loads B by TMA (no cluster variant either) */
    int strict;      /* MOEFUZZ_CUDA_STRICT=1: a forced setting runs as forced or not at all */
    void *encode_fn; /* cuTensorMapEncodeTiled, from the driver */
    int force_wg_mc; /* MOEFUZZ_CUDA_WG=...c: the cluster variant of that shape */
    int mc_max[64];  /* per variant (at most 64): clusters of two that fit on the device at once */
    int force_wg_cw, force_wg_bn; /* MOEFUZZ_CUDA_WG=3x192|2x256|...|1x64: that wgmma variant
                                     for every shape; -1: MOEFUZZ_CUDA_WG=off (no wgmma) */
    double wg_min_rows;           /* MOEFUZZ_CUDA_WG_MIN: rows per expert from which wgmma */
    int wg_grid;                  /* MOEFUZZ_CUDA_WG_GRID: cap on the persistent grids (tests) */
    int pdl; /* programmatic dependent launch (MOEFUZZ_CUDA_PDL=0: off; 2: the mma.sync path too) */
    int verbose;                  /* MOEFUZZ_CUDA_VERBOSE=1: each run names its GEMM variants */
    int mutant;                   /* 0 in production builds */
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

/* The forced setting, for messages: "MOEFUZZ_CUDA_WG=3x192c", "MOEFUZZ_CUDA_BM=64". */
static void forced_name(const cuda_ctx *c, char *buf, size_t len) {
    if (c->force_bm)
        snprintf(buf, len, "MOEFUZZ_CUDA_BM=%d", c->force_bm);
    else
        snprintf(buf, len, "MOEFUZZ_CUDA_WG=%dx%d%s", c->force_wg_cw, c->force_wg_bn,
                 c->force_wg_mc ? "c" : "");
}

static int cuda_supports(void *vctx, const mf_kernel_params *p, char *msg, size_t msg_len) {
    const cuda_ctx *c = (const cuda_ctx *)vctx;
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
    /* a forced wgmma variant or mma.sync tile of 64 or 128 rows runs on the 16-byte path only;
     * other shapes take the 16-row 2-byte path, which strict mode does not pass off as the
     * forced one */
    if (c && c->strict && (c->force_bm > 16 || c->force_wg_cw > 0) && (p->H % 8 || p->I % 8)) {
        char forced[40];
        forced_name(c, forced, sizeof forced);
        return MSG(
            "MOEFUZZ_CUDA_STRICT=1: %s needs H and I multiples of 8 (H=%d, I=%d take the "
            "16-row path with 2-byte loads)",
            forced, p->H, p->I);
    }
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
    int grid1, grid2; /* wgmma: persistent grids (at most one block per SM) */
    int pdl;          /* launch GEMM1, GEMM2 and the combine with programmatic dependence */
    int nrw, prep_smem;
} moe_cfg;

/* Upper bound of the row tiles, as a count to size grids and choose tile widths. */
static long long est_tiles(const mf_kernel_params *p, int BM) {
    long long n = (long long)p->T * p->top_k, hit = n < p->E_local ? n : p->E_local;
    return n / BM > hit ? n / BM : hit;
}

/* Expected row tiles of BM rows over the local experts when each holds m rows on average
 * (normal approximation, sd sqrt(m)): sum over j >= 0 of P(rows > j BM). Shape only. */
static double expected_tiles(const mf_kernel_params *p, double m, int BM) {
    const double sd = sqrt(m > 1.0 ? m : 1.0);
    double t = 0.0;
    for (int j = 0; j < 1 << 20; j++) {
        const double pr = 0.5 * erfc((j * (double)BM - m) / (sd * sqrt(2.0)));
        t += pr;
        if (pr < 1e-4 && j * (double)BM > m) break;
    }
    return t * p->E_local;
}

/* Work rounds of a persistent GEMM times the weight rows each item streams per K stage: the
 * model that picks the B tile width of the wgmma kernels. The B tile comes from DRAM (by TMA);
 * the item's A rows are shared by every N block of its row tile and mostly come from L2, so
 * they are not counted (counting them chose wider tiles that measured up to 2% slower). */
static double wg_cost(double tiles, long long brows, int BN, int sms) {
    const double items = tiles * (double)((brows + BN - 1) / BN);
    const double grid = items < sms ? (items > 1.0 ? items : 1.0) : sms;
    return ceil(items / grid) * BN;
}

/* Decode: the B width of 128, 96 or 64 rows with the least wg_cost, the wider on a tie. 96
 * fills the SMs where 128 leaves a quarter of them idle: qwen T=1's GEMM1 is 8 experts x 1536
 * weight rows, 96 items of 128 or 128 items of 96 on 132 SMs. */
static int decode_bn(double tiles, long long brows, int sms) {
    static const int bns[3] = {128, 96, 64};
    int best = bns[0];
    for (int i = 1; i < 3; i++)
        if (wg_cost(tiles, brows, bns[i], sms) < wg_cost(tiles, brows, best, sms)) best = bns[i];
    return best;
}

static int choose_cfg(const cuda_ctx *c, const mf_kernel_params *p, moe_cfg *cfg, char *msg,
                      size_t msg_len) {
    memset(cfg, 0, sizeof *cfg);
    const long long n = (long long)p->T * p->top_k;
    cfg->vec1 = p->H % 8 == 0 && aligned16(p->x) && aligned16(p->w13);
    cfg->vec2 = p->I % 8 == 0 && aligned16(p->w2);
    /* The 16-byte path on sm_90a: the persistent wgmma kernels (tile shapes below), decode
     * steps included. Elsewhere (MOEFUZZ_CUDA_WG=off, or no sm_90a) mma.sync: 16 rows while
     * most experts fit one 16-row tile (decode: weight streaming, the grid is all N blocks), 64
     * once they would need several (each extra tile of an expert re-reads its weights), 128
     * when the GEMMs are compute-bound. The tiling never changes a result: every output keeps
     * its one in-order chain. The choice depends on the shape only. */
    const double m = (double)n / p->E; /* mean rows per expert */
    const int vec = cfg->vec1 && cfg->vec2, sms = c->sm_count;
    const long long b1 = 2LL * p->I, b2 = p->H; /* B rows of GEMM1 (gate + up) and GEMM2 */
    int BM = 16, wg = 0, wg_bn1 = 0, wg_bn2 = 0, mc = 0;
    if (!vec && c->strict && (c->force_bm > 16 || c->force_wg_cw > 0)) {
        /* supports() refuses these shapes; here unaligned tensors land too */
        char forced[40];
        forced_name(c, forced, sizeof forced);
        snprintf(msg, msg_len,
                 "moe_cuda: MOEFUZZ_CUDA_STRICT=1: %s needs the 16-byte path (H=%d and I=%d "
                 "multiples of 8, x, w13 and w2 16-byte aligned)",
                 forced, p->H, p->I);
        return 1;
    }
    if (vec) {
        if (c->force_bm) {
            BM = c->force_bm;
        } else if (c->wgmma && c->force_wg_cw > 0) {
            wg = 1, BM = 64 * c->force_wg_cw, wg_bn1 = wg_bn2 = c->force_wg_bn;
            if (c->force_wg_mc && c->clusters) mc = 1, BM *= 2;
        } else if (c->wgmma && c->force_wg_cw == 0 && m >= c->wg_min_rows) {
            if (m < 12) {
                /* decode: one consumer warpgroup of 64 rows; per GEMM the B tile width (64, 96
                 * or 128) with the fewer rounds x weight rows per item (decode_bn). Measured on
                 * an H100 (docs/cuda-perf-notes.md, version 4): this beats the 16-row mma.sync
                 * path at T = 1 and 8 on all three bench shapes. */
                const double t = (double)est_tiles(p, 64);
                wg = 1, BM = 64;
                wg_bn1 = decode_bn(t, b1, sms);
                wg_bn2 = decode_bn(t, b2, sms);
            } else {
                /* 3 x 64 or 2 x 64 rows: the tile height whose expected row fill (each tile of
                 * an expert streams all of its weights) times the tile's reuse (2 BM BN /
                 * (BM + BN): flops per byte) is higher. Measured on an H100 (docs/cuda-perf-
                 * notes.md): 192 rows win at 128 and 1024 rows per expert, 128 at 256 rows. */
                const double t3 = expected_tiles(p, m, 192), t2 = expected_tiles(p, m, 128);
                const double s3 = m * p->E_local / (192.0 * t3) * (2.0 * 192 * 192 / 384);
                const double s2 = m * p->E_local / (128.0 * t2) * (2.0 * 128 * 256 / 384);
                const int cw = s3 >= s2 ? 3 : 2, wide = cw == 3 ? 192 : 256;
                const double t = cw == 3 ? t3 : t2;
                wg = 1, BM = 64 * cw;
                /* per GEMM the B tile width with the fewer rounds x weight rows per item (the
                 * wide one on a tie) */
                wg_bn1 = wg_cost(t, b1, wide, sms) <= wg_cost(t, b1, 128, sms) ? wide : 128;
                wg_bn2 = wg_cost(t, b2, wide, sms) <= wg_cost(t, b2, 128, sms) ? wide : 128;
                /* many rows per expert: the cluster variant, each B tile multicast to two CTAs
                 * of 192 rows. Measured on an H100 (docs/cuda-perf-notes.md): 5-14% faster at
                 * 1024 rows per expert, slower at 128 and 256. Not with MOEFUZZ_CUDA_TMA=0: its
                 * multicast is a TMA load. */
                if (cw == 3 && m >= 768 && c->clusters && !c->no_tma)
                    mc = 1, BM = 384, wg_bn1 = wg_bn2 = 192;
            }
        }
        if (!wg && !c->force_bm) BM = m >= 192 ? 128 : m >= 12 ? 64 : 16;
    }
    cfg->BM = BM;
    /* programmatic dependent launch for the persistent kernels only: behind a kernel of many
     * small blocks, early blocks of the next one crowd onto the first SMs that free up */
    cfg->pdl = c->pdl == 2 || (c->pdl && wg);
    if (wg) {
        cfg->g1 = find_gemm(MODE_UP, BM, wg_bn1, 1, 1, mc);
        cfg->g2 = find_gemm(MODE_DOWN, BM, wg_bn2, 1, 1, mc);
        if (cfg->g1 && cfg->g2) {
            const long long t = max_tiles_for(p, BM);
            const long long nb1 = (p->I + wg_bn1 / 2 - 1) / (wg_bn1 / 2);
            const long long nb2 = (p->H + wg_bn2 - 1) / wg_bn2;
            const long long cap = c->wg_grid < sms ? c->wg_grid : sms;
            cfg->grid1 = (int)(t * nb1 < cap ? t * nb1 : cap);
            cfg->grid2 = (int)(t * nb2 < cap ? t * nb2 : cap);
            if (mc) { /* clusters of two CTAs, each cluster one item at a time */
                const long long m1 = c->mc_max[cfg->g1 - gemm_variants];
                const long long m2 = c->mc_max[cfg->g2 - gemm_variants];
                long long k1 = t * nb1 < cap / 2 ? t * nb1 : cap / 2;
                long long k2 = t * nb2 < cap / 2 ? t * nb2 : cap / 2;
                cfg->grid1 = 2 * (int)(k1 < m1 ? k1 : m1);
                cfg->grid2 = 2 * (int)(k2 < m2 ? k2 : m2);
                if (cfg->grid1 < 2 || cfg->grid2 < 2) cfg->g1 = cfg->g2 = NULL;
            }
        }
    } else {
        /* BM 16: pick BN so the grid is at least two blocks per SM (weights stream from every
         * SM) */
        long long est = est_tiles(p, BM), want = 2LL * sms;
        int bn1 = 64, bn2 = 64;
        if (BM == 16 && cfg->vec1) bn1 = (p->I + 63) / 64 * est >= want ? 128 : 64;
        if (BM == 16 && cfg->vec2)
            bn2 = (p->H + 127) / 128 * est >= want ? 128 : (p->H + 63) / 64 * est >= want ? 64 : 32;
        if (BM == 64) bn1 = bn2 = 128;
        if (BM == 128) bn1 = bn2 = 256;
        cfg->g1 = find_gemm(MODE_UP, BM, bn1, cfg->vec1, 0, 0);
        cfg->g2 = find_gemm(MODE_DOWN, BM, bn2, cfg->vec2, 0, 0);
    }
    if (!cfg->g1 || !cfg->g2) {
        snprintf(msg, msg_len, "moe_cuda: no GEMM variant for BM=%d vec=%d/%d wg=%d", BM,
                 cfg->vec1, cfg->vec2, wg);
        return 1;
    }
    /* small-T path: routing warps limited by shared memory (E=1024, n_group=1024: 13 KB each) */
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

#ifndef MF_CUDA_EMULATE
/* A launch configuration and its attributes (lc.attrs points into the struct: fill it in place
 * and do not copy it): clusters of two CTAs, and programmatic dependent launch behind the
 * previous kernel of the stream (captured into graphs as a programmatic edge). Used by both
 * launchers and by the cluster occupancy query. */
typedef struct launch_cfg {
    cudaLaunchConfig_t lc;
    cudaLaunchAttribute at[2];
} launch_cfg;

static void fill_launch(launch_cfg *L, dim3 grid, int threads, int smem, cudaStream_t st,
                        int cluster2, int pdl) {
    L->lc = cudaLaunchConfig_t{};
    L->at[0] = L->at[1] = cudaLaunchAttribute{};
    unsigned na = 0;
    if (cluster2) {
        L->at[na].id = cudaLaunchAttributeClusterDimension;
        L->at[na].val.clusterDim.x = 2, L->at[na].val.clusterDim.y = 1;
        L->at[na].val.clusterDim.z = 1;
        na++;
    }
    if (pdl) {
        L->at[na].id = cudaLaunchAttributeProgrammaticStreamSerialization;
        L->at[na].val.programmaticStreamSerializationAllowed = 1;
        na++;
    }
    L->lc.gridDim = grid;
    L->lc.blockDim = dim3((unsigned)threads);
    L->lc.dynamicSmemBytes = (size_t)smem;
    L->lc.stream = st;
    L->lc.attrs = L->at;
    L->lc.numAttrs = na;
}
#endif

/* Launches fn; with pdl, as a programmatic dependent launch. A failure shows in
 * cudaGetLastError. */
static void launch_kernel(gemm_fn fn, dim3 grid, int threads, int smem, cudaStream_t st, int pdl,
                          const moe_dev &kp) {
#ifdef MF_CUDA_EMULATE
    (void)pdl; /* the emulator runs kernels one after the other */
    fn<<<grid, threads, smem, st>>>(kp);
#else
    launch_cfg L;
    fill_launch(&L, grid, threads, smem, st, 0, pdl);
    (void)cudaLaunchKernelEx(&L.lc, fn, kp); /* its error stays for cudaGetLastError */
#endif
}

/* The tensor map of a wgmma variant's B operand: W13 as [E_local][2 I][H] or W2 as
 * [E_local][H][I], boxes of 64 K x BN / 2 rows, 128-byte swizzle (the layout the kernel's wgmma
 * descriptors read), zero fill outside. Under the emulator, its own map of the same tensor. */
static int encode_b_map(const cuda_ctx *c, const gemm_variant *g, const mf_kernel_params *p,
                        mf_tmap *out, char *msg, size_t msg_len) {
    const int up = g->mode == MODE_UP;
    const unsigned long long K = (unsigned long long)(up ? p->H : p->I);
    const unsigned long long rows = (unsigned long long)(up ? 2 * p->I : p->H);
    void *base = (void *)(up ? p->w13 : p->w2);
#ifdef MF_CUDA_EMULATE
    (void)c, (void)msg, (void)msg_len;
    const unsigned long long dims[3] = {K, rows, (unsigned long long)p->E_local};
    const unsigned long long strides[2] = {K * 2, K * rows * 2};
    const unsigned box[3] = {64, (unsigned)(g->BN / 2), 1};
    emu_tmap_encode(out, base, dims, strides, box);
    return 0;
#else
    typedef CUresult (*encode_t)(CUtensorMap *, CUtensorMapDataType, cuuint32_t, void *,
                                 const cuuint64_t *, const cuuint64_t *, const cuuint32_t *,
                                 const cuuint32_t *, CUtensorMapInterleave, CUtensorMapSwizzle,
                                 CUtensorMapL2promotion, CUtensorMapFloatOOBfill);
    static_assert(sizeof(CUtensorMap) == sizeof(mf_tmap), "mf_tmap mirrors CUtensorMap");
    const cuuint64_t dims[3] = {K, rows, (cuuint64_t)p->E_local};
    const cuuint64_t strides[2] = {K * 2, K * rows * 2};
    const cuuint32_t box[3] = {64, (cuuint32_t)(g->BN / 2), 1}, es[3] = {1, 1, 1};
    CUtensorMap m;
    CUresult r = ((encode_t)c->encode_fn)(
        &m, CU_TENSOR_MAP_DATA_TYPE_BFLOAT16, 3, base, dims, strides, box, es,
        CU_TENSOR_MAP_INTERLEAVE_NONE, CU_TENSOR_MAP_SWIZZLE_128B,
        CU_TENSOR_MAP_L2_PROMOTION_L2_256B, CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
    if (r != CUDA_SUCCESS) {
        snprintf(msg, msg_len, "moe_cuda: cuTensorMapEncodeTiled failed (%d) for %s", (int)r,
                 g->name);
        return 1;
    }
    memcpy(out, &m, sizeof *out);
    return 0;
#endif
}

/* Launches a wgmma variant on a persistent grid (the cluster variants: clusters of two CTAs),
 * with PDL when asked, B by TMA for the cluster variants and where c->b_tma. */
static int launch_wg(const cuda_ctx *c, const gemm_variant *g, int grid, cudaStream_t st, int pdl,
                     const moe_dev &kp, const mf_kernel_params *p, char *msg, size_t msg_len) {
    moe_dev k2 = kp;
    k2.b_tma = g->mc || c->b_tma;
    mf_tmap tm;
    memset(&tm, 0, sizeof tm);
    if (k2.b_tma && encode_b_map(c, g, p, &tm, msg, msg_len)) return 1;
#ifdef MF_CUDA_EMULATE
    (void)pdl;
    if (g->mc) {
        snprintf(msg, msg_len, "moe_cuda: clusters are not emulated (%s)", g->name);
        return 1;
    }
    g->fnw<<<grid, g->threads, g->smem, st>>>(k2, tm);
#else
    launch_cfg L;
    fill_launch(&L, dim3((unsigned)grid), g->threads, g->smem, st, g->mc, pdl);
    (void)cudaLaunchKernelEx(&L.lc, g->fnw, k2, tm); /* its error stays for cudaGetLastError */
#endif
    return 0;
}

/* Launches GEMM variant g: a persistent grid of `persistent` blocks (wgmma; clusters of two for
 * the cluster variants), or the mma.sync grid of nblocks N blocks x tiles row tiles. */
static int launch_gemm(const cuda_ctx *c, const gemm_variant *g, int persistent, int nblocks,
                       int tiles, cudaStream_t st, int pdl, const moe_dev &kp,
                       const mf_kernel_params *p, char *msg, size_t msg_len) {
    if (g->wg) return launch_wg(c, g, persistent, st, pdl, kp, p, msg, msg_len);
    launch_kernel(g->fn, dim3((unsigned)nblocks, (unsigned)tiles), g->threads, g->smem, st, pdl,
                  kp);
    return 0;
}

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
    if (c->verbose)
        fprintf(stderr, "moe_cuda: T=%d H=%d I=%d E=%d k=%d: %s, GEMM1 %s grid %d, GEMM2 %s grid %d%s\n",
                p->T, p->H, p->I, p->E, p->top_k, cfg.small ? "one-block routing" : "routing kernels",
                cfg.g1->name, cfg.grid1, cfg.g2->name, cfg.grid2, cfg.pdl ? ", PDL" : "");
    if (c->verbose && cfg.g1->mc)
        fprintf(stderr, "moe_cuda: clusters of two at once: GEMM1 %d, GEMM2 %d\n",
                c->mc_max[cfg.g1 - gemm_variants], c->mc_max[cfg.g2 - gemm_variants]);

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
        /* a tiny step: the routing warps alone (the kernel makes the same test) */
        const int threads = p->T * p->top_k <= MOE_TINY_ENTRIES ? 32 * cfg.nrw : MOE_PREP_THREADS;
        moe_prep_small_kernel<<<1, threads, cfg.prep_smem, st>>>(kp, cfg.nrw);
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
    /* 2., 3. the expert GEMMs over the tile table; 4. combine. Each launched behind the one
     * before with programmatic dependent launch: its blocks start while the previous kernel's
     * last blocks run, and wait (griddepcontrol.wait) before reading what it wrote. */
    const int tiles = max_tiles_for(p, cfg.BM);
    if (launch_gemm(c, cfg.g1, cfg.grid1, (p->I + cfg.g1->BN / 2 - 1) / (cfg.g1->BN / 2), tiles,
                    st, cfg.pdl, kp, p, msg, msg_len))
        return 1;
    LAUNCHED("moe_gemm_kernel (GEMM1)");
    if (launch_gemm(c, cfg.g2, cfg.grid2, (p->H + cfg.g2->BN - 1) / cfg.g2->BN, tiles, st, cfg.pdl,
                    kp, p, msg, msg_len))
        return 1;
    LAUNCHED("moe_gemm_kernel (GEMM2)");
    {
        long long threads = (long long)p->T * ((p->H + 3) / 4);
        launch_kernel(moe_combine_kernel, dim3((unsigned)((threads + 255) / 256)), 256, 0, st,
                      cfg.pdl, kp);
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

/* ---- tuning knobs (environment; docs/cuda-kernel.md lists them) ----
 * A value that names no setting, or settings that contradict each other, make create() fail,
 * strict or not: a typo in a knob meant to force a path would otherwise run the default while
 * the caller believes the path was tested, and no device makes such a value meaningful. Unset
 * and empty variables take the default. */
typedef struct knobs {
    int strict;              /* MOEFUZZ_CUDA_STRICT=0|1 */
    int bm;                  /* MOEFUZZ_CUDA_BM=16|64|128; 0 unset */
    int wg_cw, wg_bn, wg_mc; /* MOEFUZZ_CUDA_WG: the variant; wg_cw -1 "off", 0 unset */
    const char *wg;          /* its value, for messages */
    double wg_min;           /* MOEFUZZ_CUDA_WG_MIN >= 0 */
    int wg_min_set;
    int wg_grid; /* MOEFUZZ_CUDA_WG_GRID >= 1; 0 unset */
    int verbose; /* MOEFUZZ_CUDA_VERBOSE=0|1 */
    int pdl;     /* MOEFUZZ_CUDA_PDL=0|1|2, default 1 */
    int tma;     /* MOEFUZZ_CUDA_TMA=0|1; -1 unset (B by TMA where the device can) */
} knobs;

static const char *knob_get(const char *name) {
    const char *v = getenv(name);
    return v && *v ? v : NULL;
}

/* Index of v in the NULL-terminated list, or -1. */
static int knob_pick(const char *v, const char *const *list) {
    for (int i = 0; list[i]; i++)
        if (!strcmp(v, list[i])) return i;
    return -1;
}

static int knob_bad(const char *name, const char *v, const char *allowed, char *msg,
                    size_t msg_len) {
    snprintf(msg, msg_len, "moe_cuda: %s=%.40s names no setting (%s)", name, v, allowed);
    return 1;
}

static int knobs_read(knobs *k, char *msg, size_t msg_len) {
    static const char *const off_on[] = {"0", "1", NULL}, *const pdls[] = {"0", "1", "2", NULL};
    static const char *const bms[] = {"16", "64", "128", NULL};
    static const char *const wgs[] = {"3x192", "3x128",  "2x256",  "2x128", "1x128", "1x96",
                                      "1x64",  "3x192c", "2x256c", "off",   NULL};
    memset(k, 0, sizeof *k);
    k->pdl = 1, k->tma = -1;
    const char *v;
    if ((v = knob_get("MOEFUZZ_CUDA_STRICT"))) {
        if ((k->strict = knob_pick(v, off_on)) < 0)
            return knob_bad("MOEFUZZ_CUDA_STRICT", v, "0 or 1", msg, msg_len);
    }
    if ((v = knob_get("MOEFUZZ_CUDA_BM"))) {
        if (knob_pick(v, bms) < 0)
            return knob_bad("MOEFUZZ_CUDA_BM", v, "16, 64, 128", msg, msg_len);
        k->bm = atoi(v);
    }
    if ((v = knob_get("MOEFUZZ_CUDA_WG"))) {
        if (knob_pick(v, wgs) < 0)
            return knob_bad("MOEFUZZ_CUDA_WG", v,
                            "3x192, 3x128, 2x256, 2x128, 1x128, 1x96, 1x64, 3x192c, 2x256c, off",
                            msg, msg_len);
        k->wg = v;
        if (!strcmp(v, "off"))
            k->wg_cw = -1;
        else
            k->wg_cw = v[0] - '0', k->wg_bn = atoi(v + 2), k->wg_mc = v[strlen(v) - 1] == 'c';
    }
    if ((v = knob_get("MOEFUZZ_CUDA_WG_MIN"))) {
        char *end;
        k->wg_min = strtod(v, &end);
        if (*end || !(k->wg_min >= 0.0 && k->wg_min <= 1e9))
            return knob_bad("MOEFUZZ_CUDA_WG_MIN", v, "rows per expert, 0 to 1e9", msg, msg_len);
        k->wg_min_set = 1;
    }
    if ((v = knob_get("MOEFUZZ_CUDA_WG_GRID"))) {
        char *end;
        long n = strtol(v, &end, 10);
        if (*end || n < 1 || n > 1 << 20)
            return knob_bad("MOEFUZZ_CUDA_WG_GRID", v, "blocks, 1 to 1048576", msg, msg_len);
        k->wg_grid = (int)n;
    }
    if ((v = knob_get("MOEFUZZ_CUDA_VERBOSE"))) {
        if ((k->verbose = knob_pick(v, off_on)) < 0)
            return knob_bad("MOEFUZZ_CUDA_VERBOSE", v, "0 or 1", msg, msg_len);
    }
    if ((v = knob_get("MOEFUZZ_CUDA_PDL"))) {
        if ((k->pdl = knob_pick(v, pdls)) < 0)
            return knob_bad("MOEFUZZ_CUDA_PDL", v, "0, 1 or 2", msg, msg_len);
    }
    if ((v = knob_get("MOEFUZZ_CUDA_TMA"))) {
        if ((k->tma = knob_pick(v, off_on)) < 0)
            return knob_bad("MOEFUZZ_CUDA_TMA", v, "0 or 1", msg, msg_len);
    }
#define CONTRADICT(...) (snprintf(msg, msg_len, "moe_cuda: " __VA_ARGS__), 1)
    if (k->bm && k->wg_cw > 0)
        return CONTRADICT(
            "MOEFUZZ_CUDA_BM=%d (mma.sync) and MOEFUZZ_CUDA_WG=%s (wgmma) "
            "contradict",
            k->bm, k->wg);
    if (k->wg_mc && k->tma == 0)
        return CONTRADICT(
            "MOEFUZZ_CUDA_WG=%s multicasts B by TMA: MOEFUZZ_CUDA_TMA=0 "
            "contradicts it (no cluster variant loads B by cp.async)",
            k->wg);
    if (k->tma == 1 && (k->bm || k->wg_cw < 0))
        return CONTRADICT("MOEFUZZ_CUDA_TMA=1: the forced %s runs no kernel that loads B by TMA",
                          k->bm ? "MOEFUZZ_CUDA_BM" : "MOEFUZZ_CUDA_WG=off");
    if (k->wg_min_set && (k->bm || k->wg_cw))
        return CONTRADICT(
            "MOEFUZZ_CUDA_WG_MIN steers the default choice, which the forced %s "
            "replaces",
            k->bm ? "MOEFUZZ_CUDA_BM" : "MOEFUZZ_CUDA_WG");
#undef CONTRADICT
    return 0;
}

/* A forced setting this device cannot run: create() fails under MOEFUZZ_CUDA_STRICT=1 (a test
 * named for a path runs that path or fails); otherwise the kernel falls back to what runs here
 * (same results: every tiling keeps each output's in-order chain), and says so under
 * MOEFUZZ_CUDA_VERBOSE=1. */
static int knobs_honoured(const cuda_ctx *c, const knobs *k, int major, int minor,
                          const char *no_clusters, char *msg, size_t msg_len) {
    char why[256] = "";
    if (k->wg_cw > 0 && !c->wgmma)
        snprintf(why, sizeof why,
                 "MOEFUZZ_CUDA_WG=%s: the wgmma kernels need compute capability 9.0 (sm_90a), "
                 "device %d has %d.%d",
                 k->wg, c->device, major, minor);
    else if (k->wg_mc && !c->clusters)
        snprintf(why, sizeof why, "MOEFUZZ_CUDA_WG=%s: no cluster variant can run: %s", k->wg,
                 no_clusters);
    else if (k->tma == 1 && !c->b_tma)
        snprintf(why, sizeof why, "MOEFUZZ_CUDA_TMA=1: %s",
                 !c->wgmma ? "the wgmma kernels (the only ones loading B by TMA) need compute "
                             "capability 9.0 (sm_90a)"
                           : "the driver has no cuTensorMapEncodeTiled");
    if (!why[0]) return 0;
    if (c->strict) {
        snprintf(msg, msg_len, "moe_cuda: MOEFUZZ_CUDA_STRICT=1: %s", why);
        return 1;
    }
    if (c->verbose) fprintf(stderr, "moe_cuda: not honoured, falling back: %s\n", why);
    return 0;
}

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
    c->wgmma = major == 9 && minor == 0; /* the sm_90a cubin runs (wgmma) */
    knobs kn;
    if (knobs_read(&kn, msg, msg_len)) {
        free(c);
        return 1;
    }
    c->strict = kn.strict;
    c->force_bm = kn.bm;
    c->force_wg_cw = kn.wg_cw, c->force_wg_bn = kn.wg_bn, c->force_wg_mc = kn.wg_mc;
    c->wg_min_rows = kn.wg_min;
    c->wg_grid = kn.wg_grid > 0 ? kn.wg_grid : c->sm_count;
    c->verbose = kn.verbose;
    c->pdl = kn.pdl;
    c->no_tma = kn.tma == 0;
    const int want_tma = kn.tma != 0;
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
        const void *fn = gemm_variants[i].fn ? (const void *)gemm_variants[i].fn
                                             : (const void *)gemm_variants[i].fnw;
        CUDA_CREATE_TRY(cudaFuncSetAttribute(fn, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                             gemm_variants[i].smem));
    }
#ifndef MF_CUDA_EMULATE
    /* the cluster variants: the tensor-map encoder from the driver, and how many clusters of
     * two fit at once (the persistent grids) */
    if (c->wgmma) {
        cudaDriverEntryPointQueryResult q = cudaDriverEntryPointSymbolNotFound;
        void *enc = NULL;
        if (cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", &enc, 12000,
                                             cudaEnableDefault, &q) == cudaSuccess &&
            q == cudaDriverEntryPointSuccess && enc) {
            c->encode_fn = enc, c->clusters = 1, c->b_tma = want_tma;
            for (int i = 0; i < N_GEMM_VARIANTS && i < 64; i++) {
                const gemm_variant *g = &gemm_variants[i];
                if (!g->mc) continue;
                launch_cfg L;
                fill_launch(&L, dim3(2u * (unsigned)c->sm_count), g->threads, g->smem, 0, 1, 0);
                int n = 0;
                if (cudaOccupancyMaxActiveClusters(&n, (const void *)g->fnw, &L.lc) != cudaSuccess)
                    n = 0;
                c->mc_max[i] = n;
                if (n < 1) c->clusters = 0; /* then no cluster variant is chosen */
            }
        }
        (void)cudaGetLastError();
    }
    const char *no_clusters = !c->wgmma       ? "they need compute capability 9.0 (sm_90a)"
                              : !c->encode_fn ? "the driver has no cuTensorMapEncodeTiled"
                                              : "the device fits no cluster of two of them";
#else
    c->b_tma = want_tma && c->wgmma; /* the emulator models TMA loads, not clusters */
    const char *no_clusters = "the CPU emulator does not model clusters";
#endif
    if (knobs_honoured(c, &kn, major, minor, no_clusters, msg, msg_len)) {
        free(c);
        return 1;
    }
    CUDA_CREATE_TRY(cudaFuncSetAttribute((const void *)moe_prep_small_kernel,
                                         cudaFuncAttributeMaxDynamicSharedMemorySize,
                                         c->smem_optin));
    /* four routing scratches of E = 1024 (13 KB each) pass the 48 KB default */
    CUDA_CREATE_TRY(cudaFuncSetAttribute((const void *)moe_route_kernel,
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

extern "C" int mf_cuda_kernel_describe(void *vctx, const mf_kernel_params *p, char *buf,
                                       size_t len) {
    moe_cfg cfg;
    char msg[256];
    if (choose_cfg((const cuda_ctx *)vctx, p, &cfg, msg, sizeof msg) != 0) {
        snprintf(buf, len, "-");
        return 1;
    }
    const int same = !strcmp(cfg.g1->name, cfg.g2->name);
    snprintf(buf, len, "%s%s%s%s", cfg.g1->name, same ? "" : "/", same ? "" : cfg.g2->name,
             cfg.pdl ? ",pdl" : "");
    return 0;
}
#endif
