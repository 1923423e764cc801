/* moe_cuda.cu: the fused MoE forward on Hopper (sm_90) behind moefuzz/kernel_abi.h.
 *
 * Stages, all asynchronous on the caller's stream, nothing allocated (workspace_size() sizes
 * everything; layout in mf_cuda_ws_plan, moe_plan.c):
 *   1. routing, one warp per token (moe_route.cuh), then dispatch: every (token, slot) entry of a
 *      local expert gets a permuted row; rows of one expert are contiguous and in entry order,
 *      and a table of row tiles of BM rows is built (moe_stages.cuh). Small T (<= 64 tokens,
 *      <= 1024 entries): one block does all of it (moe_prep_small_kernel); otherwise four
 *      kernels (route, count per chunk, scan, place).
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
 * Files: the stage kernels around the GEMMs (moe_stages.cuh, routing in moe_route.cuh), the
 * GEMMs (moe_gemm.cuh: mma.sync; moe_gemm_wg.cuh: wgmma), the host-side plan of a shape:
 * workspace, variants, grids, routing path (moe_plan.c, plain C, tested on the CPU), the tuning
 * knobs (moe_knobs.c); here the launches, create() and the ABI table. Design and measurements:
 * docs/cuda-kernel.md, docs/notes/cuda-perf-notes.md.
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
#include "moe_cuda.h"
#include "moe_gemm.cuh"
#include "moe_gemm_wg.cuh"
#include "moe_knobs.h"
#include "moe_plan.h"
#include "moe_route.cuh"
#include "moe_stages.cuh"

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

/* ---- GEMM kernels ----
 * The list of variants and where each is chosen: moe_plan.h. Here each variant's kernel, its
 * threads and shared memory, in the order of the plan's table mf_cuda_gemms. */
typedef void (*gemm_fn)(const moe_dev);
typedef void (*gemm_fn_wg)(const moe_dev, const mf_tmap);

/* fn: the mma.sync kernels; fnw: the wgmma ones, which take the B operand's tensor map. */
typedef struct gemm_kernel {
    gemm_fn fn;
    gemm_fn_wg fnw;
    int threads, smem;
} gemm_kernel;

#define KERNEL_GV(MODE, BM, BN, WM, WN, ST, VEC)                         \
    {moe_gemm_kernel<MODE, BM, BN, WM, WN, ST, VEC>, NULL, WM * WN * 32, \
     gemm_smem_bytes(BM, BN, ST)},
#define KERNEL_GW(MODE, BN, CW, ST) \
    {NULL, moe_gemm_wg_kernel<MODE, BN, CW, ST>, 128 * (CW + 1), wg_smem_bytes(BN, CW, ST)},
#define KERNEL_GWC(MODE, BN, CW, ST) \
    {NULL, moe_gemm_wgc_kernel<MODE, BN, CW, ST>, 128 * (CW + 1), wg_smem_bytes(BN, CW, ST)},
static const gemm_kernel gemm_kernels[] = {MF_CUDA_GEMM_VARIANTS(KERNEL_GV, KERNEL_GW, KERNEL_GWC)};
#define N_GEMM_KERNELS ((int)(sizeof gemm_kernels / sizeof gemm_kernels[0]))
static_assert(sizeof gemm_kernels / sizeof gemm_kernels[0] <= MF_CUDA_MAX_GEMMS,
              "mf_cuda_target.mc_max has a slot per variant");

static const gemm_kernel *kernel_of(const mf_cuda_gemm *g) {
    return &gemm_kernels[g - mf_cuda_gemms];
}

/* ---- host side ---- */

/* The plan's view of the device and the knobs (t), and what only the launches need. */
typedef struct cuda_ctx {
    mf_cuda_target t;
    int device;
    int b_tma;       /* the other wgmma GEMMs load B by TMA too (MOEFUZZ_CUDA_TMA=0: cp.async) */
    void *encode_fn; /* cuTensorMapEncodeTiled, from the driver */
    int verbose;     /* MOEFUZZ_CUDA_VERBOSE=1: each run names its GEMM variants */
    int mutant;      /* 0 in production builds */
} cuda_ctx;

#define MSG(...) (snprintf(msg, msg_len, __VA_ARGS__), 0)

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
    if (c && c->t.strict && (c->t.force_bm > 16 || c->t.force_wg_cw > 0) &&
        (p->H % 8 || p->I % 8)) {
        char forced[40];
        mf_cuda_forced_name(&c->t, forced, sizeof forced);
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
    mf_cuda_ws_layout L;
    mf_cuda_ws_plan(p, &L);
    *bytes = L.total;
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
static int encode_b_map(const cuda_ctx *c, const mf_cuda_gemm *g, const mf_kernel_params *p,
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
static int launch_wg(const cuda_ctx *c, const mf_cuda_gemm *g, int grid, cudaStream_t st, int pdl,
                     const moe_dev &kp, const mf_kernel_params *p, char *msg, size_t msg_len) {
    moe_dev k2 = kp;
    k2.b_tma = g->mc || c->b_tma;
    mf_tmap tm;
    memset(&tm, 0, sizeof tm);
    if (k2.b_tma && encode_b_map(c, g, p, &tm, msg, msg_len)) return 1;
    const gemm_kernel *gk = kernel_of(g);
#ifdef MF_CUDA_EMULATE
    (void)pdl;
    if (g->mc) {
        snprintf(msg, msg_len, "moe_cuda: clusters are not emulated (%s)", g->name);
        return 1;
    }
    gk->fnw<<<grid, gk->threads, gk->smem, st>>>(k2, tm);
#else
    launch_cfg L;
    fill_launch(&L, dim3((unsigned)grid), gk->threads, gk->smem, st, g->mc, pdl);
    (void)cudaLaunchKernelEx(&L.lc, gk->fnw, k2, tm); /* its error stays for cudaGetLastError */
#endif
    return 0;
}

/* Launches GEMM variant g: a persistent grid of `persistent` blocks (wgmma; clusters of two for
 * the cluster variants), or the mma.sync grid of nblocks N blocks x tiles row tiles. */
static int launch_gemm(const cuda_ctx *c, const mf_cuda_gemm *g, int persistent, int nblocks,
                       int tiles, cudaStream_t st, int pdl, const moe_dev &kp,
                       const mf_kernel_params *p, char *msg, size_t msg_len) {
    if (g->wg) return launch_wg(c, g, persistent, st, pdl, kp, p, msg, msg_len);
    const gemm_kernel *gk = kernel_of(g);
    launch_kernel(gk->fn, dim3((unsigned)nblocks, (unsigned)tiles), gk->threads, gk->smem, st, pdl,
                  kp);
    return 0;
}

static int cuda_run(void *vctx, const mf_kernel_params *p, char *msg, size_t msg_len) {
    const cuda_ctx *c = (const cuda_ctx *)vctx;
    if (cuda_supports(vctx, p, msg, msg_len) != 1) return 1;
    mf_cuda_ws_layout L;
    mf_cuda_ws_plan(p, &L);
    if (!p->workspace || p->workspace_bytes < L.total) {
        snprintf(msg, msg_len, "moe_cuda: workspace of %zu bytes needed, %zu given", L.total,
                 p->workspace_bytes);
        return 1;
    }
    if (!p->x || !p->logits || !p->w13 || !p->w2 || !p->out) {
        snprintf(msg, msg_len, "moe_cuda: x, logits, w13, w2 and out must not be NULL");
        return 1;
    }
    mf_cuda_plan cfg;
    if (mf_cuda_plan_choose(&c->t, p, &cfg, msg, msg_len)) return 1;
    if (c->verbose)
        fprintf(stderr,
                "moe_cuda: T=%d H=%d I=%d E=%d k=%d: %s, GEMM1 %s grid %d, GEMM2 %s grid %d%s\n",
                p->T, p->H, p->I, p->E, p->top_k,
                cfg.small ? "one-block routing" : "routing kernels", cfg.g1->name, cfg.grid1,
                cfg.g2->name, cfg.grid2, cfg.pdl ? ", PDL" : "");
    if (c->verbose && cfg.g1->mc)
        fprintf(stderr, "moe_cuda: clusters of two at once: GEMM1 %d, GEMM2 %d\n",
                c->t.mc_max[cfg.g1 - mf_cuda_gemms], c->t.mc_max[cfg.g2 - mf_cuda_gemms]);

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
        moe_prep_small_kernel<<<1, cfg.prep_threads, cfg.prep_smem, st>>>(kp, cfg.nrw);
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
    if (launch_gemm(c, cfg.g1, cfg.grid1, cfg.nb1, cfg.tiles, st, cfg.pdl, kp, p, msg, msg_len))
        return 1;
    LAUNCHED("moe_gemm_kernel (GEMM1)");
    if (launch_gemm(c, cfg.g2, cfg.grid2, cfg.nb2, cfg.tiles, st, cfg.pdl, kp, p, msg, msg_len))
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

/* A forced setting this device cannot run: create() fails under MOEFUZZ_CUDA_STRICT=1 (a test
 * named for a path runs that path or fails); otherwise the kernel falls back to what runs here
 * (same results: every tiling keeps each output's in-order chain), and says so under
 * MOEFUZZ_CUDA_VERBOSE=1. */
static int knobs_honoured(const cuda_ctx *c, const mf_cuda_knobs *k, int major, int minor,
                          const char *no_clusters, char *msg, size_t msg_len) {
    char why[256] = "";
    if (k->wg_cw > 0 && !c->t.wgmma)
        snprintf(why, sizeof why,
                 "MOEFUZZ_CUDA_WG=%s: the wgmma kernels need compute capability 9.0 (sm_90a), "
                 "device %d has %d.%d",
                 k->wg, c->device, major, minor);
    else if (k->wg_mc && !c->t.clusters)
        snprintf(why, sizeof why, "MOEFUZZ_CUDA_WG=%s: no cluster variant can run: %s", k->wg,
                 no_clusters);
    else if (k->tma == 1 && !c->b_tma)
        snprintf(why, sizeof why, "MOEFUZZ_CUDA_TMA=1: %s",
                 !c->t.wgmma ? "the wgmma kernels (the only ones loading B by TMA) need compute "
                               "capability 9.0 (sm_90a)"
                             : "the driver has no cuTensorMapEncodeTiled");
    if (!why[0]) return 0;
    if (c->t.strict) {
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
        cudaDeviceGetAttribute(&c->t.sm_count, cudaDevAttrMultiProcessorCount, c->device));
    CUDA_CREATE_TRY(cudaDeviceGetAttribute(&c->t.smem_optin,
                                           cudaDevAttrMaxSharedMemoryPerBlockOptin, c->device));
    c->t.wgmma = major == 9 && minor == 0; /* the sm_90a cubin runs (wgmma) */
    mf_cuda_knobs kn;
    if (mf_cuda_knobs_read(&kn, msg, msg_len)) {
        free(c);
        return 1;
    }
    c->t.strict = kn.strict;
    c->t.force_bm = kn.bm;
    c->t.force_wg_cw = kn.wg_cw, c->t.force_wg_bn = kn.wg_bn, c->t.force_wg_mc = kn.wg_mc;
    c->t.wg_min_rows = kn.wg_min;
    c->t.wg_grid = kn.wg_grid > 0 ? kn.wg_grid : c->t.sm_count;
    c->verbose = kn.verbose;
    c->t.pdl = kn.pdl;
    c->t.no_tma = kn.tma == 0;
    const int want_tma = kn.tma != 0;
    /* dynamic shared memory above 48 KB must be opted into, once per kernel */
    for (int i = 0; i < N_GEMM_KERNELS; i++) {
        if (gemm_kernels[i].smem > c->t.smem_optin) {
            snprintf(msg, msg_len,
                     "moe_cuda: a GEMM variant needs %d bytes of shared memory, "
                     "the device offers %d",
                     gemm_kernels[i].smem, c->t.smem_optin);
            free(c);
            return 1;
        }
        const void *fn = gemm_kernels[i].fn ? (const void *)gemm_kernels[i].fn
                                            : (const void *)gemm_kernels[i].fnw;
        CUDA_CREATE_TRY(cudaFuncSetAttribute(fn, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                             gemm_kernels[i].smem));
    }
#ifndef MF_CUDA_EMULATE
    /* the cluster variants: the tensor-map encoder from the driver, and how many clusters of
     * two fit at once (the persistent grids) */
    if (c->t.wgmma) {
        cudaDriverEntryPointQueryResult q = cudaDriverEntryPointSymbolNotFound;
        void *enc = NULL;
        if (cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", &enc, 12000,
                                             cudaEnableDefault, &q) == cudaSuccess &&
            q == cudaDriverEntryPointSuccess && enc) {
            c->encode_fn = enc, c->t.clusters = 1, c->b_tma = want_tma;
            for (int i = 0; i < N_GEMM_KERNELS; i++) {
                const mf_cuda_gemm *g = &mf_cuda_gemms[i];
                const gemm_kernel *gk = &gemm_kernels[i];
                if (!g->mc) continue;
                launch_cfg L;
                fill_launch(&L, dim3(2u * (unsigned)c->t.sm_count), gk->threads, gk->smem, 0, 1, 0);
                int n = 0;
                if (cudaOccupancyMaxActiveClusters(&n, (const void *)gk->fnw, &L.lc) != cudaSuccess)
                    n = 0;
                c->t.mc_max[i] = n;
                if (n < 1) c->t.clusters = 0; /* then no cluster variant is chosen */
            }
        }
        (void)cudaGetLastError();
    }
    const char *no_clusters = !c->t.wgmma     ? "they need compute capability 9.0 (sm_90a)"
                              : !c->encode_fn ? "the driver has no cuTensorMapEncodeTiled"
                                              : "the device fits no cluster of two of them";
#else
    c->b_tma = want_tma && c->t.wgmma; /* the emulator models TMA loads, not clusters */
    const char *no_clusters = "the CPU emulator does not model clusters";
#endif
    if (knobs_honoured(c, &kn, major, minor, no_clusters, msg, msg_len)) {
        free(c);
        return 1;
    }
    CUDA_CREATE_TRY(cudaFuncSetAttribute((const void *)moe_prep_small_kernel,
                                         cudaFuncAttributeMaxDynamicSharedMemorySize,
                                         c->t.smem_optin));
    /* four routing scratches of E = 1024 (13 KB each) pass the 48 KB default */
    CUDA_CREATE_TRY(cudaFuncSetAttribute((const void *)moe_route_kernel,
                                         cudaFuncAttributeMaxDynamicSharedMemorySize,
                                         c->t.smem_optin));
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
    mf_cuda_plan cfg;
    char msg[256];
    if (mf_cuda_plan_choose(&((const cuda_ctx *)vctx)->t, p, &cfg, msg, sizeof msg) != 0) {
        snprintf(buf, len, "-");
        return 1;
    }
    const int same = !strcmp(cfg.g1->name, cfg.g2->name);
    snprintf(buf, len, "%s%s%s%s", cfg.g1->name, same ? "" : "/", same ? "" : cfg.g2->name,
             cfg.pdl ? ",pdl" : "");
    return 0;
}
#endif
