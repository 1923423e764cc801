/* moe_plan.h: the host-side decisions of the fused CUDA MoE kernel (kernels/cuda/moe_cuda.cu),
 * plain C without device code, so that a CPU test (tests/gpu/test_cuda_plan.c) checks them: the
 * workspace layout, the GEMM variants, the routing path, tile heights and grids for a shape.
 * Every choice depends on the shape, the device and the tuning knobs (MOEFUZZ_CUDA_*, read by
 * create()), never on the data, so a case runs the same code on every run of the same shape. No
 * choice changes a result: every tiling keeps each output's one in-order chain.
 *
 * Where the paths switch (n = T top_k entries, m = n / E mean rows per expert, the default knobs):
 *   routing   one block (moe_prep_small_kernel) when T <= MOE_SMALL_T and n <= MOE_CHUNK, and
 *             then the routing warps alone when n <= MOE_TINY_ENTRIES (one warp dispatches);
 *             otherwise four kernels (route, count, scan, place) over chunks of MOE_CHUNK entries.
 *   GEMMs     on the 16-byte path (H and I multiples of 8; x, w13 and w2 16-byte aligned) of an
 *             sm_90a device, the wgmma kernels: one consumer warpgroup (wg1x64/96/128) while
 *             m < MF_CUDA_DECODE_ROWS, else two or three (wg2x128/2x256, wg3x128/3x192, by the
 *             expected row fill of their tiles), and the cluster variant wg3x192c from
 *             m >= MF_CUDA_CLUSTER_ROWS where clusters run. Otherwise mma.sync: 16-row tiles
 *             while m < MF_CUDA_DECODE_ROWS, 64 while m < MF_CUDA_MMA128_ROWS, then 128; the
 *             2-byte path (any other H, I or alignment) 16 rows only.
 */
#ifndef MF_CUDA_MOE_PLAN_H
#define MF_CUDA_MOE_PLAN_H

#include <stddef.h>

#include "moefuzz/kernel_abi.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Entries (token, slot) per dispatch chunk: one warp ranks a chunk in order, 32 at a time.
 * 1024 keeps the per-chunk count table (n_chunks x E_local ints) at 2 MiB for the largest case
 * (T*top_k = 2^19, E_local = 1024) and a chunk at 32 warp steps. */
#define MOE_CHUNK 1024

/* The small-T path routes and dispatches in one block of 1024 threads when T <= 64 and
 * T*top_k <= MOE_CHUNK (one chunk: no cross-chunk prefix). Decode steps then cost one launch
 * before the GEMMs instead of four. */
#define MOE_SMALL_T 64
#define MOE_PREP_THREADS 1024
/* A decode step of at most this many entries (one per lane) is dispatched by one warp, and the
 * small-T block is then its routing warps only. */
#define MOE_TINY_ENTRIES 32

/* Mean rows per expert (T top_k / E) from which the default choice leaves the decode tiles (one
 * wgmma consumer warpgroup, or 16-row mma.sync tiles), takes 128-row mma.sync tiles, and takes
 * the wgmma cluster variant (measurements: docs/notes/cuda-perf-notes.md). */
#define MF_CUDA_DECODE_ROWS 12
#define MF_CUDA_MMA128_ROWS 192
#define MF_CUDA_CLUSTER_ROWS 768

/* Routing scratch of one warp in shared memory (moe_route.cuh): 12 bytes per expert, a byte per
 * group, 16-byte aligned. */
#define MOE_ROUTE_SCRATCH_BYTES(E, NG) ((12 * (E) + (NG) + 15) / 16 * 16)

#define MODE_UP 0   /* GEMM1: gate and up rows of W13 against the token rows, SwiGLU */
#define MODE_DOWN 1 /* GEMM2: W2 against the activation rows, y = w * o */

/* The GEMM variants, one list for the plan's table (moe_plan.c) and the kernels' (moe_cuda.cu),
 * so both hold the same variants in the same order.
 * mma.sync (moe_gemm.cuh), any sm_90 device: GV(MODE, BM, BN, warps along M, warps along N,
 * stages, 16-byte loads):
 *   BM 16 (decode, few rows per expert): 4 warps side by side along N, 4 stages; BN is chosen so
 *   that the grid covers the SMs at least twice. 83 KB of shared memory at BN 128: two blocks
 *   per SM, about 110 KB of weights in flight per SM.
 *   BM 64: 2x2 warps of 32 x 64 (or 32 gate + 32 up), 4 stages, 108 KB.
 *   BM 128: 2x4 warps of 64 x 64, 3 stages, 162 KB: one block of 8 warps per SM.
 *   16-byte loads off: 2-byte loads for H or I not a multiple of 8 or unaligned tensors (BM 16).
 * wgmma (moe_gemm_wg.cuh), sm_90a devices (compute capability 9.0) and the 16-byte path only:
 * GW(MODE, BN, consumer warpgroups CW, stages); GWC the cluster variant of two CTAs per item:
 *   persistent, warp-specialized; CW consumer warpgroups of 64 rows (BM = 64 CW), B tiles of BN
 *   rows, S stages of 128-byte-swizzled tiles, about 193 KB of shared memory each (1x96: 201 KB):
 *   3x192 (S 4), 3x128 (S 5), 2x256 (S 4) and 2x128 (S 6) for many rows per expert, 1x128
 *   (S 8), 1x96 (S 10) and 1x64 (S 12) for few. */
// clang-format off
#define MF_CUDA_GEMM_VARIANTS(GV, GW, GWC)                                                      \
    GV(MODE_UP, 16, 64, 1, 4, 4, true) GV(MODE_UP, 16, 128, 1, 4, 4, true)                      \
    GV(MODE_UP, 64, 128, 2, 2, 4, true) GV(MODE_UP, 128, 256, 2, 4, 3, true)                    \
    GV(MODE_UP, 16, 64, 1, 4, 4, false) GV(MODE_DOWN, 16, 32, 1, 4, 4, true)                    \
    GV(MODE_DOWN, 16, 64, 1, 4, 4, true) GV(MODE_DOWN, 16, 128, 1, 4, 4, true)                  \
    GV(MODE_DOWN, 64, 128, 2, 2, 4, true) GV(MODE_DOWN, 128, 256, 2, 4, 3, true)                \
    GV(MODE_DOWN, 16, 64, 1, 4, 4, false)                                                       \
    GW(MODE_UP, 192, 3, 4) GW(MODE_DOWN, 192, 3, 4)                                             \
    GW(MODE_UP, 128, 3, 5) GW(MODE_DOWN, 128, 3, 5)                                             \
    GW(MODE_UP, 256, 2, 4) GW(MODE_UP, 128, 2, 6)                                               \
    GW(MODE_UP, 128, 1, 8) GW(MODE_UP, 96, 1, 10)                                               \
    GW(MODE_UP, 64, 1, 12) GW(MODE_DOWN, 96, 1, 10)                                             \
    GW(MODE_DOWN, 256, 2, 4) GW(MODE_DOWN, 128, 2, 6)                                           \
    GW(MODE_DOWN, 128, 1, 8) GW(MODE_DOWN, 64, 1, 12)                                           \
    GWC(MODE_UP, 256, 2, 4) GWC(MODE_DOWN, 256, 2, 4)                                           \
    GWC(MODE_UP, 192, 3, 4) GWC(MODE_DOWN, 192, 3, 4)
// clang-format on

#define MF_CUDA_MAX_GEMMS 64 /* mf_cuda_target.mc_max has a slot per variant */

/* A GEMM variant as the plan sees it. BM: rows of the tile table's tiles (the cluster variants:
 * two CTAs of 64 CW rows each). */
typedef struct mf_cuda_gemm {
    int mode, BM, BN, vec, wg, mc;
    const char *name; /* "mma16x64", "wg3x192", "wg3x192c" */
} mf_cuda_gemm;

extern const mf_cuda_gemm mf_cuda_gemms[];
extern const int mf_cuda_n_gemms;

/* The variant of these properties, or NULL. */
const mf_cuda_gemm *mf_cuda_gemm_find(int mode, int BM, int BN, int vec, int wg, int mc);

/* The device as the plan sees it, and the tuning knobs (kernels/cuda/moe_cuda.cu reads both at
 * create(); docs/cuda-kernel.md lists the knobs). */
typedef struct mf_cuda_target {
    int sm_count, smem_optin;
    int wgmma;    /* compute capability 9.0: the sm_90a code with wgmma runs */
    int clusters; /* the cluster (TMA multicast) GEMMs can run: sm_90a, driver entry point */
    int no_tma;   /* MOEFUZZ_CUDA_TMA=0: nothing loads B by TMA (no cluster variant either) */
    int strict;   /* MOEFUZZ_CUDA_STRICT=1: a forced setting runs as forced or not at all */
    int force_bm; /* MOEFUZZ_CUDA_BM=16|64|128: the mma.sync path with this tile height */
    int force_wg_cw, force_wg_bn; /* MOEFUZZ_CUDA_WG=3x192|2x256|...|1x64: that wgmma variant
                                     for every shape; -1: MOEFUZZ_CUDA_WG=off (no wgmma) */
    int force_wg_mc;              /* MOEFUZZ_CUDA_WG=...c: the cluster variant of that shape */
    double wg_min_rows;           /* MOEFUZZ_CUDA_WG_MIN: rows per expert from which wgmma */
    int wg_grid;                  /* MOEFUZZ_CUDA_WG_GRID: cap on the persistent grids (tests) */
    int pdl; /* programmatic dependent launch (MOEFUZZ_CUDA_PDL=0: off; 2: the mma.sync path too) */
    int mc_max[MF_CUDA_MAX_GEMMS]; /* per variant: clusters of two that fit on the device at once */
} mf_cuda_target;

/* The forced setting, for messages: "MOEFUZZ_CUDA_WG=3x192c", "MOEFUZZ_CUDA_BM=64". */
void mf_cuda_forced_name(const mf_cuda_target *t, char *buf, size_t len);

/* Workspace layout; every region 256-byte aligned. */
typedef struct mf_cuda_ws_layout {
    size_t route_ids, route_w, entry_row, row_entry, expert_cnt, expert_start, n_tiles, tiles,
        chunk_cnt, hbuf, ybuf, total;
    int max_tiles, n_chunks;
} mf_cuda_ws_layout;

void mf_cuda_ws_plan(const mf_kernel_params *p, mf_cuda_ws_layout *L);

/* Tiles of BM rows over all local experts: sum ceil(c_e / BM) <= floor(n / BM) + experts hit. */
int mf_cuda_max_tiles(const mf_kernel_params *p, int BM);

/* The launch configuration of a shape. */
typedef struct mf_cuda_plan {
    int small;        /* routing and dispatch in one block (moe_prep_small_kernel) */
    int tiny;         /* and T top_k <= MOE_TINY_ENTRIES: one warp dispatches */
    int prep_threads; /* its threads: the routing warps alone for a tiny step */
    int nrw;          /* its routing warps */
    int prep_smem;    /* its dynamic shared memory */
    int BM, vec1, vec2;
    const mf_cuda_gemm *g1, *g2;
    int tiles;        /* row tiles of BM rows the GEMM grids cover */
    int grid1, grid2; /* wgmma: persistent grids (at most one block per SM) */
    int nb1, nb2;     /* N blocks of GEMM1 and GEMM2 (the mma.sync grids: nb x tiles) */
    int pdl;          /* launch GEMM1, GEMM2 and the combine with programmatic dependence */
} mf_cuda_plan;

/* Chooses the launch configuration of p on t. 0, or 1 with a message when no variant runs the
 * shape (or strict mode cannot run it as forced). Reads p's shape and the alignment of its
 * pointers only. */
int mf_cuda_plan_choose(const mf_cuda_target *t, const mf_kernel_params *p, mf_cuda_plan *plan,
                        char *msg, size_t msg_len);

#ifdef __cplusplus
}
#endif

#endif /* MF_CUDA_MOE_PLAN_H */
