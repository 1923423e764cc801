/* moe_gemm_wg.cuh: the grouped expert GEMMs on Hopper's asynchronous warpgroup MMA (wgmma,
 * sm_90a), persistent and warp-specialized.
 *
 * Same two modes and epilogues as moe_gemm.cuh (MODE_UP: A = gathered token rows, B = W13 gate
 * and up rows, a = silu(g) * u rounded to bf16 into hbuf; MODE_DOWN: A = hbuf rows, B = W2 rows,
 * y = w * o into ybuf[entry]), over the same tile table (tiles of BM = 64 CW rows).
 *
 * Block: one producer warpgroup and CW consumer warpgroups (CW = 1, 2 or 3).
 *   producer   copies the A rows (BM x 64 per stage) of every K stage with cp.async and loads
 *              its B rows (BN x 64) by TMA (kp.b_tma; else with cp.async too) into an S-deep ring of 128-byte-swizzled shared tiles; the
 *              stage's "full" mbarrier completes when all 128 threads' copies have landed
 *              (cp.async.mbarrier.arrive.noinc) and, with TMA, the expect-tx arrival's bytes
 *              too. It waits on the slot's "empty" mbarrier first. A rows past the tile's rows
 *              are not copied, B rows past N are not copied (cp.async) or read as zeros or
 *              other rows of the tensor (TMA): whatever the slot holds there only reaches
 *              accumulators of rows or columns that are never stored (row i of D reads row i of
 *              A only, column n row n of B only). The K remainder of a real row is zero in both
 *              operands, so it adds nothing to a real output.
 *   consumers  warpgroup c owns rows 64 c .. 64 c + 63 of the tile and all BN columns: per stage
 *              it waits on "full", issues one wgmma m64nBNk16 per k16 step (4 per stage), and
 *              keeps one stage of wgmmas in flight: after committing stage kt it waits for stage
 *              kt-1's wgmmas and releases that slot (one arrival per warp on "empty"). A
 *              warpgroup whose 64 rows are all past the tile's rows issues nothing (it still
 *              waits and releases, to keep the barriers' phases).
 * Persistent: the grid is at most one block per SM; block b takes work items b, b + grid, ...;
 * item w is (row tile, N block) in grouped order: WG_GROUP consecutive row tiles share each N
 * block before the next, so the blocks running together read the same weight rows (L2) and the
 * same few A rows. The producer runs ahead into the next item while the consumers finish the
 * epilogue of the last.
 * Cluster variants (moe_gemm_wgc_kernel, "wg3x192c" / "wg2x256c"): two CTAs share each item and
 * its B tile, which arrives by TMA multicast (details at moe_gemm_wg_body). The K remainder is
 * zero there too (TMA's zero fill outside the tensor). GEMM2 waits for GEMM1 before any copy.
 *
 * Numerical contract ("hopper-tc"): unchanged. Every output element is one fp32 accumulator that
 * starts at 0 (registers zeroed, scale-d = 1) and receives one wgmma k16 step per 16 K values in
 * order k = 0, 16, ...; steps wholly past K are not issued (exactly ceil(K/16) steps), the K
 * remainder is zero in both operands (cp.async or TMA zero fill), no split-K, no partial sums. The
 * wgmmas of one accumulator execute in issue order (the same registers).
 *
 * Programmatic dependent launch: GEMM1 waits (griddepcontrol.wait) before anything that the
 * routing wrote; GEMM2's producer first issues the B rows of its first stages (weights: inputs),
 * then waits for GEMM1 before the A rows (hbuf). Both let their dependents launch once waited.
 */
#ifndef MF_CUDA_MOE_GEMM_WG_CUH
#define MF_CUDA_MOE_GEMM_WG_CUH

#include "hopper.cuh"
#include "moe_common.cuh"
#include "moe_gemm.cuh"

#define WG_BK 64    /* K per stage: one 128-byte swizzled row */
#define WG_GROUP 8  /* raster: row tiles that share an N block before the next */

static __host__ __device__ constexpr int wg_stage_bytes(int BN, int CW) {
    return (64 * CW + BN) * WG_BK * 2;
}
/* ring + 2 S mbarriers + slack to align the ring to 1024 bytes */
static __host__ __device__ constexpr int wg_smem_bytes(int BN, int CW, int S) {
    return S * wg_stage_bytes(BN, CW) + 16 * S + 1024;
}

/* Work item w -> (row tile, N block), grouped by `group` row tiles (WG_GROUP; WG_GROUP / 2 for
 * the cluster variants, whose tiles are twice as high: the same rows share an N block). */
static __device__ __forceinline__ void wg_item(int w, int n_tiles, int NB, int &tile, int &nb,
                                               int group) {
    const int per_group = group * NB;
    const int g = w / per_group, r = w - g * per_group, t0 = g * group;
    const int gs = n_tiles - t0 < group ? n_tiles - t0 : group;
    nb = r / gs;
    tile = t0 + (r - nb * gs);
}

/* The rows of tile ti this CTA computes: all of them, or (MC) a share of the tile's up to 2 BM
 * rows: the rows are split in 64-row units (one per consumer warpgroup), rank 0 taking the
 * first half of the units rounded up, rank 1 the rest. The pair advances stage by stage at the
 * pace of its busier CTA, so a partial tile (an expert's last) is split evenly rather than
 * filling rank 0 first. nrows <= 0 when this CTA has no rows. */
template <bool MC, int BM>
static __device__ __forceinline__ void wg_rows(int4 ti, uint32_t crank, int &row0, int &nrows) {
    if (!MC) {
        row0 = ti.y, nrows = ti.z;
        return;
    }
    const int units = (ti.z + 63) / 64, r0 = (units + 1) / 2 * 64;
    const int first = ti.z < r0 ? ti.z : r0; /* <= BM: units <= 2 BM / 64 */
    row0 = ti.y + (crank ? first : 0);
    nrows = crank ? ti.z - first : first;
}

/* MC = false: one CTA per work item (moe_gemm_wg_kernel). MC = true: a cluster of two CTAs per
 * item (moe_gemm_wgc_kernel): the tile table's tiles hold 2 BM rows, each CTA computes its share
 * of them (wg_rows), and the two share the B tile: rank r's producer loads half r of
 * it (GEMM1: r = 0 the gate rows, r = 1 the up rows; GEMM2: the first or second BN / 2 rows) with
 * one TMA multicast into the same slot of both CTAs. A slot is free once the consumer warps of
 * BOTH CTAs have released it (each arrives on its own and on its peer's "empty" barrier); "full"
 * completes with the 128 A-copy arrivals of the CTA's own producer, one expect-tx arrival, and
 * the B tile's bytes from both halves. Both CTAs walk the same items and stages, so the slots'
 * phases agree. TMA zero-fills outside the tensor (the K remainder, B rows past the expert);
 * gate rows past I read up rows, which reach only columns that are never stored. */
template <int MODE, int BN, int CW, int S, bool MC>
static __device__ __forceinline__ void moe_gemm_wg_body(const moe_dev &kp, const mf_tmap *tmb) {
#if MF_HAVE_WGMMA
    constexpr int BM = 64 * CW;
    constexpr int STAGE_A = BM * 128, STAGE = wg_stage_bytes(BN, CW);
    constexpr int NOUT = MODE == MODE_UP ? BN / 2 : BN; /* output columns per item */
    constexpr int A_IT = BM / 16, B_IT = BN / 16;       /* rows per producer thread */
    static_assert(CW >= 1 && CW <= 3, "one to three consumer warpgroups");
    static_assert(BN == 64 || BN == 96 || BN == 128 || BN == 192 || BN == 256,
                  "wgmma n of 64 to 256, whole 8-row swizzle atoms per half");
    static_assert(S >= 2, "a ring needs two stages");

    extern __shared__ __align__(128) unsigned char smem_raw[];
    const uint32_t sbase = (smem_u32(smem_raw) + 1023u) & ~1023u;
    const uint32_t bar_full = sbase + S * STAGE, bar_empty = bar_full + 8 * S;

    const uint32_t crank = MC ? cluster_rank() : 0;
    const bool btma = MC || kp.b_tma; /* B by TMA (uniform over the grid) */
    if (threadIdx.x == 0) {
        for (int s = 0; s < S; s++) {
            /* every producer thread's cp.async arrival (and the expect-tx one) */
            mbar_init(bar_full + 8 * s, btma ? 129 : 128);
            mbar_init(bar_empty + 8 * s, (MC ? 8 : 4) * CW); /* one per consumer warp, both CTAs */
        }
        mbar_init_fence();
    }
    __syncthreads();
    if (MC) cluster_sync(); /* the peer's barriers exist before anything reaches them */

    /* The tile table was complete before GEMM1 began (GEMM1 waits for the routing before it lets
     * GEMM2 launch), so GEMM2 reads it before its own wait. */
    if (MODE == MODE_UP) {
        griddep_wait();
        griddep_launch();
    }
    const int n_tiles = *kp.n_tiles;
    const int K = MODE == MODE_UP ? kp.H : kp.I; /* reduction length */
    const int N = MODE == MODE_UP ? kp.I : kp.H; /* output columns */
    const int NB = (N + NOUT - 1) / NOUT;
    const int total = n_tiles * NB;
    const int nk = (K + WG_BK - 1) / WG_BK;
    const int wg = __shfl_sync(0xffffffffu, (int)(threadIdx.x >> 7), 0); /* warp-uniform for ptxas */
    /* persistent over items: CTA b (MC: cluster b / 2) takes items b, b + grid, ... */
    const int w_first = MC ? (int)(blockIdx.x >> 1) : (int)blockIdx.x;
    const int w_step = MC ? (int)(gridDim.x >> 1) : (int)gridDim.x;

    if (wg == 0) {
        /* ---------------- producer ---------------- */
        const int t = threadIdx.x, chunk = t & 7, rsub = t >> 3;
        const uint32_t dst0 = wg_swz(rsub, chunk); /* row rsub + 16 i: + 2048 i */
        const uint16_t *abase = MODE == MODE_UP ? kp.x : kp.hbuf;
        int slot = 0, phase = 0, waited = MODE == MODE_UP;
        if (MC && !waited) { /* no early weight stages on this path */
            griddep_wait();
            griddep_launch();
            waited = 1;
        }
        for (int w = w_first; w < total; w += w_step) {
            int tile, nb;
            wg_item(w, n_tiles, NB, tile, nb, MC ? WG_GROUP / 2 : WG_GROUP);
            const int4 ti = kp.tiles[tile];
            const int le = ti.x, n0 = nb * NOUT;
            int row0, nrows;
            wg_rows<MC, BM>(ti, crank, row0, nrows);
            /* B by TMA: the first weight row of each half of the B tile (MC: this CTA
             * multicasts half crank) */
            int brow[2];

            /* B rows of this thread: w13 gate/up rows by layout, or w2 rows */
            const uint16_t *bsrc[B_IT];
            if (MODE == MODE_UP) {
                const uint16_t *wb = kp.w13 + (size_t)le * 2 * kp.I * kp.H;
                int gate_first = kp.layout == MF_ABI_LAYOUT_GATE_UP;
                if (MF_MUT(GATE_UP_SWAPPED)) gate_first = !gate_first;
                const int gate_row0 = gate_first ? 0 : kp.I, up_row0 = gate_first ? kp.I : 0;
                brow[0] = gate_row0 + n0, brow[1] = up_row0 + n0;
#pragma unroll
                for (int i = 0; i < B_IT; i++) {
                    const int up = i >= B_IT / 2;
                    const int col = n0 + rsub + 16 * (up ? i - B_IT / 2 : i);
                    bsrc[i] = col < N ? wb + (size_t)((up ? up_row0 : gate_row0) + col) * K : NULL;
                }
            } else {
                const uint16_t *wb = kp.w2 + (size_t)le * kp.H * kp.I;
                brow[0] = n0, brow[1] = n0 + BN / 2;
#pragma unroll
                for (int i = 0; i < B_IT; i++) {
                    const int col = n0 + rsub + 16 * i;
                    bsrc[i] = col < N ? wb + (size_t)col * K : NULL;
                }
            }
            /* thread 0: the B tile of stage kt into slot s by TMA, both halves (MC: this CTA's
             * half into both CTAs) */
            auto tma_b = [&](int s, int kt) {
                const uint32_t sb = sbase + s * STAGE + STAGE_A, bar = bar_full + 8 * s;
                mbar_expect_tx(bar, BN * 128); /* both halves */
                if (MC)
                    tma_load_3d_mc(sb + crank * (BN / 2) * 128, tmb, kt * WG_BK, brow[crank], le,
                                   bar, 0x3);
                else
                    for (int h = 0; h < 2; h++)
                        tma_load_3d(sb + h * (BN / 2) * 128, tmb, kt * WG_BK, brow[h], le, bar);
            };
            /* the B tile of stage kt into slot s: by TMA (thread 0), or this thread's rows by
             * cp.async (tracked by its next cp_async_mbar_arrive) */
            auto load_b = [&](int s, int kt) {
                if (btma) {
                    if (t == 0) tma_b(s, kt);
                    return;
                }
                const uint32_t sb = sbase + s * STAGE + STAGE_A;
                const int kc = kt * WG_BK + chunk * 8;
#pragma unroll
                for (int i = 0; i < B_IT; i++)
                    if (bsrc[i] != NULL)
                        cp_async_16(sb + dst0 + 2048 * i, kc < K ? bsrc[i] + kc : abase, kc < K ? 16 : 0);
            };
            /* GEMM2: the weight rows of the first stages go out before the wait for GEMM1 (a
             * fresh ring: every slot is free, the empty phases still read as done) */
            int pre = 0;
            if (!waited) {
                pre = nk < S ? nk : S;
                for (int kt = 0, s2 = slot; kt < pre; kt++, s2 = s2 + 1 == S ? 0 : s2 + 1)
                    load_b(s2, kt);
                griddep_wait();
                griddep_launch();
                waited = 1;
            }

            /* A rows of this thread */
            const uint16_t *asrc[A_IT];
#pragma unroll
            for (int i = 0; i < A_IT; i++) {
                const int r = rsub + 16 * i;
                asrc[i] = NULL;
                if (r < nrows) {
                    if (MODE == MODE_UP) {
                        const int entry = kp.row_entry[row0 + r];
                        asrc[i] = kp.x + (size_t)(entry / kp.top_k) * kp.H; /* x [T][H] */
                    } else {
                        asrc[i] = kp.hbuf + (size_t)(row0 + r) * kp.I; /* hbuf [rows][I] */
                    }
                }
            }

            for (int kt = 0; kt < nk; kt++) {
                mbar_wait(bar_empty + 8 * slot, phase ^ 1);
                const uint32_t sa = sbase + slot * STAGE;
                const int kc = kt * WG_BK + chunk * 8;
#pragma unroll
                for (int i = 0; i < A_IT; i++)
                    if (asrc[i] != NULL)
                        cp_async_16(sa + dst0 + 2048 * i, kc < K ? asrc[i] + kc : abase, kc < K ? 16 : 0);
                if (kt >= pre) load_b(slot, kt);
                cp_async_mbar_arrive(bar_full + 8 * slot);
                if (++slot == S) slot = 0, phase ^= 1;
            }
            pre = 0;
        }
        if (!waited) { /* no work item: still wait, so the dependents never outrun GEMM1 */
            griddep_wait();
            griddep_launch();
        }
        cp_async_wait_all();
    } else {
        /* ---------------- consumers ---------------- */
        const int cw = wg - 1, wq = (threadIdx.x >> 5) & 3, lane = threadIdx.x & 31;
        if (MODE == MODE_DOWN) griddep_launch(); /* the producer waits for GEMM1 */
        float acc[BN / 2];
        int slot = 0, phase = 0;
        for (int w = w_first; w < total; w += w_step) {
            int tile, nb;
            wg_item(w, n_tiles, NB, tile, nb, MC ? WG_GROUP / 2 : WG_GROUP);
            const int4 ti = kp.tiles[tile];
            const int n0 = nb * NOUT;
            int row0, nrows;
            wg_rows<MC, BM>(ti, crank, row0, nrows);
            const bool active = __shfl_sync(0xffffffffu, cw * 64 < nrows, 0) != 0;
#pragma unroll
            for (int i = 0; i < BN / 2; i++) acc[i] = 0.0f;
            int prev = 0;
            for (int kt = 0; kt < nk; kt++) {
                mbar_wait(bar_full + 8 * slot, phase);
                if (active) {
                    fence_proxy_async();
                    wgmma_fence();
                    const uint32_t sa = sbase + slot * STAGE + cw * 64 * 128,
                                   sb = sbase + slot * STAGE + STAGE_A;
                    const int ksteps = (K - kt * WG_BK + 15) / 16; /* k16 steps inside K */
#pragma unroll
                    for (int kk = 0; kk < WG_BK / 16; kk++)
                        if (kk < ksteps) wgmma_bf16<BN>(acc, wg_desc(sa + 32 * kk), wg_desc(sb + 32 * kk));
                    wgmma_commit();
                    wgmma_wait<1>(); /* stage kt-1's wgmmas are done: its slot can be refilled */
                }
                if (kt > 0 && lane == 0) {
                    mbar_arrive(bar_empty + 8 * prev);
                    if (MC) mbar_arrive_peer(bar_empty + 8 * prev, crank ^ 1u);
                }
                prev = slot;
                if (++slot == S) slot = 0, phase ^= 1;
            }
            if (active) {
                wgmma_wait<0>();
                wgmma_fence_acc(acc);
            }
            if (lane == 0) {
                mbar_arrive(bar_empty + 8 * prev);
                if (MC) mbar_arrive_peer(bar_empty + 8 * prev, crank ^ 1u);
            }

            /* ---- epilogue: acc[4 j + 2 h + c] is row 64 cw + 16 wq + g + 8 h, column
             * 8 j + 2 q + c of the item (g = lane / 4, q = lane % 4) ---- */
            if (!active) continue;
#pragma unroll
            for (int h = 0; h < 2; h++) {
                const int r = cw * 64 + wq * 16 + (lane >> 2) + 8 * h;
                if (r >= nrows) continue;
                const int row = row0 + r;
                if (MODE == MODE_UP) {
                    uint16_t *dst = kp.hbuf + (size_t)row * kp.I;
#pragma unroll
                    for (int j = 0; j < BN / 16; j++) {
                        const int c = n0 + 8 * j + 2 * (lane & 3);
                        const int gi = 4 * j + 2 * h, ui = 4 * (j + BN / 16) + 2 * h;
                        store_act2(dst, c, N, acc[gi], acc[ui], acc[gi + 1], acc[ui + 1]);
                    }
                } else {
                    const int entry = kp.row_entry[row];
                    const float wt = kp.route_w[entry];
                    float *dst = kp.ybuf + (size_t)entry * kp.H;
#pragma unroll
                    for (int j = 0; j < BN / 8; j++) {
                        const int c = n0 + 8 * j + 2 * (lane & 3);
                        store_y2(dst, c, N, wt, acc[4 * j + 2 * h], acc[4 * j + 2 * h + 1]);
                    }
                }
            }
        }
    }
    /* no CTA leaves while its peer may still multicast into it or arrive on its barriers */
    if (MC) cluster_sync();
#endif /* MF_HAVE_WGMMA */
}

/* tmb: the B operand's tensor map (GEMM1: W13 as [E_local][2 I][H], GEMM2: W2 as [E_local][H][I];
 * boxes of 64 K x BN / 2 rows, 128-byte swizzle), read when kp.b_tma is set (else B by
 * cp.async). */
template <int MODE, int BN, int CW, int S>
static __global__ void __launch_bounds__(128 * (CW + 1), 1)
    moe_gemm_wg_kernel(const moe_dev kp, const __grid_constant__ mf_tmap tmb) {
    moe_gemm_wg_body<MODE, BN, CW, S, false>(kp, &tmb);
}

/* Launched in clusters of two CTAs (moe_cuda.cu), B always by TMA multicast. */
template <int MODE, int BN, int CW, int S>
static __global__ void __launch_bounds__(128 * (CW + 1), 1)
    moe_gemm_wgc_kernel(const moe_dev kp, const __grid_constant__ mf_tmap tmb) {
    moe_gemm_wg_body<MODE, BN, CW, S, true>(kp, &tmb);
}

#endif /* MF_CUDA_MOE_GEMM_WG_CUH */
