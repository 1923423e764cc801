/* moe_gemm_wg.cuh: the grouped expert GEMMs on Hopper's asynchronous warpgroup MMA (wgmma,
 * sm_90a), persistent and warp-specialized.
 *
 * Same two modes and epilogues as moe_gemm.cuh (MODE_UP: A = gathered token rows, B = W13 gate
 * and up rows, a = silu(g) * u rounded to bf16 into hbuf; MODE_DOWN: A = hbuf rows, B = W2 rows,
 * y = w * o into ybuf[entry]), over the same tile table (tiles of BM = 64 CW rows).
 *
 * Block: one producer warpgroup and CW consumer warpgroups (CW = 1, 2 or 3).
 *   producer   copies the A rows (BM x 64 per stage) and the B rows (BN x 64) of every K stage
 *              into an S-deep ring of 128-byte-swizzled shared tiles with cp.async; the stage's
 *              "full" mbarrier completes when all 128 threads' copies have landed
 *              (cp.async.mbarrier.arrive.noinc). It waits on the slot's "empty" mbarrier first.
 *              Rows past the tile's rows (A) or past N (B) are not copied at all: whatever the
 *              slot holds there only reaches accumulators of rows or columns that are never
 *              stored (row i of D reads row i of A only, column n row n of B only). The K
 *              remainder of a real row is zero-filled, so it adds nothing to a real output.
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
 *
 * Numerical contract ("hopper-tc"): unchanged. Every output element is one fp32 accumulator that
 * starts at 0 (registers zeroed, scale-d = 1) and receives one wgmma k16 step per 16 K values in
 * order k = 0, 16, ...; steps wholly past K are not issued (exactly ceil(K/16) steps), the K
 * remainder is zero in both operands (cp.async zero-fill), no split-K, no partial sums. The
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

/* Work item w -> (row tile, N block), grouped by WG_GROUP row tiles. */
static __device__ __forceinline__ void wg_item(int w, int n_tiles, int NB, int &tile, int &nb) {
    const int per_group = WG_GROUP * NB;
    const int g = w / per_group, r = w - g * per_group, t0 = g * WG_GROUP;
    const int gs = n_tiles - t0 < WG_GROUP ? n_tiles - t0 : WG_GROUP;
    nb = r / gs;
    tile = t0 + (r - nb * gs);
}

template <int MODE, int BN, int CW, int S>
static __global__ void __launch_bounds__(128 * (CW + 1), 1) moe_gemm_wg_kernel(const moe_dev kp) {
#if MF_HAVE_WGMMA
    constexpr int BM = 64 * CW;
    constexpr int STAGE_A = BM * 128, STAGE = wg_stage_bytes(BN, CW);
    constexpr int NOUT = MODE == MODE_UP ? BN / 2 : BN; /* output columns per item */
    constexpr int A_IT = BM / 16, B_IT = BN / 16;       /* rows per producer thread */
    static_assert(CW >= 1 && CW <= 3, "one to three consumer warpgroups");
    static_assert(BN == 64 || BN == 128 || BN == 192 || BN == 256, "wgmma n of 64 to 256");
    static_assert(S >= 2, "a ring needs two stages");

    extern __shared__ __align__(128) unsigned char smem_raw[];
    const uint32_t sbase = (smem_u32(smem_raw) + 1023u) & ~1023u;
    const uint32_t bar_full = sbase + S * STAGE, bar_empty = bar_full + 8 * S;

    if (threadIdx.x == 0) {
        for (int s = 0; s < S; s++) {
            mbar_init(bar_full + 8 * s, 128);    /* every producer thread's cp.async arrival */
            mbar_init(bar_empty + 8 * s, 4 * CW); /* one arrival per consumer warp */
        }
        mbar_init_fence();
    }
    __syncthreads();

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
    const int wg = threadIdx.x >> 7;

    if (wg == 0) {
        /* ---------------- producer ---------------- */
        const int t = threadIdx.x, chunk = t & 7, rsub = t >> 3;
        const uint32_t dst0 = wg_swz(rsub, chunk); /* row rsub + 16 i: + 2048 i */
        const uint16_t *abase = MODE == MODE_UP ? kp.x : kp.hbuf;
        int slot = 0, phase = 0, waited = MODE == MODE_UP;
        for (int w = blockIdx.x; w < total; w += gridDim.x) {
            int tile, nb;
            wg_item(w, n_tiles, NB, tile, nb);
            const int4 ti = kp.tiles[tile];
            const int le = ti.x, row0 = ti.y, nrows = ti.z, n0 = nb * NOUT;

            /* B rows of this thread: w13 gate/up rows by layout, or w2 rows */
            const uint16_t *bsrc[B_IT];
            if (MODE == MODE_UP) {
                const uint16_t *wb = kp.w13 + (size_t)le * 2 * kp.I * kp.H;
                int gate_first = kp.layout == MF_ABI_LAYOUT_GATE_UP;
                if (MF_MUT(GATE_UP_SWAPPED)) gate_first = !gate_first;
                const int gate_row0 = gate_first ? 0 : kp.I, up_row0 = gate_first ? kp.I : 0;
#pragma unroll
                for (int i = 0; i < B_IT; i++) {
                    const int up = i >= B_IT / 2;
                    const int col = n0 + rsub + 16 * (up ? i - B_IT / 2 : i);
                    bsrc[i] = col < N ? wb + (size_t)((up ? up_row0 : gate_row0) + col) * K : NULL;
                }
            } else {
                const uint16_t *wb = kp.w2 + (size_t)le * kp.H * kp.I;
#pragma unroll
                for (int i = 0; i < B_IT; i++) {
                    const int col = n0 + rsub + 16 * i;
                    bsrc[i] = col < N ? wb + (size_t)col * K : NULL;
                }
            }
            /* GEMM2: the weight rows of the first stages go out before the wait for GEMM1 */
            int pre = 0;
            if (!waited) {
                pre = nk < S ? nk : S;
                int s2 = slot;
                for (int kt = 0; kt < pre; kt++) {
                    /* a fresh ring: every slot is free (the empty phases still read as done) */
                    const uint32_t sb = sbase + s2 * STAGE + STAGE_A;
                    const int kc = kt * WG_BK + chunk * 8;
#pragma unroll
                    for (int i = 0; i < B_IT; i++)
                        if (bsrc[i] != NULL)
                            cp_async_16(sb + dst0 + 2048 * i, kc < K ? bsrc[i] + kc : kp.w2, kc < K ? 16 : 0);
                    s2 = s2 + 1 == S ? 0 : s2 + 1;
                }
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
                const uint32_t sa = sbase + slot * STAGE, sb = sa + STAGE_A;
                const int kc = kt * WG_BK + chunk * 8;
#pragma unroll
                for (int i = 0; i < A_IT; i++)
                    if (asrc[i] != NULL)
                        cp_async_16(sa + dst0 + 2048 * i, kc < K ? asrc[i] + kc : abase, kc < K ? 16 : 0);
                if (kt >= pre) {
#pragma unroll
                    for (int i = 0; i < B_IT; i++)
                        if (bsrc[i] != NULL)
                            cp_async_16(sb + dst0 + 2048 * i, kc < K ? bsrc[i] + kc : abase, kc < K ? 16 : 0);
                }
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
        for (int w = blockIdx.x; w < total; w += gridDim.x) {
            int tile, nb;
            wg_item(w, n_tiles, NB, tile, nb);
            const int4 ti = kp.tiles[tile];
            const int row0 = ti.y, nrows = ti.z, n0 = nb * NOUT;
            const bool active = cw * 64 < nrows; /* uniform over the warpgroup */
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
                if (kt > 0 && lane == 0) mbar_arrive(bar_empty + 8 * prev);
                prev = slot;
                if (++slot == S) slot = 0, phase ^= 1;
            }
            if (active) {
                wgmma_wait<0>();
                wgmma_fence_acc(acc);
            }
            if (lane == 0) mbar_arrive(bar_empty + 8 * prev);

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
                        uint16_t a0 = f32_to_bf16(silu_glu(acc[gi], acc[ui]));
                        uint16_t a1 = f32_to_bf16(silu_glu(acc[gi + 1], acc[ui + 1]));
                        if (c + 1 < N && (N % 2) == 0) {
                            *(uint32_t *)(dst + c) = (uint32_t)a0 | ((uint32_t)a1 << 16);
                        } else {
                            if (c < N) dst[c] = a0;
                            if (c + 1 < N) dst[c + 1] = a1;
                        }
                    }
                } else {
                    const int entry = kp.row_entry[row];
                    const float wt = kp.route_w[entry];
                    float *dst = kp.ybuf + (size_t)entry * kp.H;
#pragma unroll
                    for (int j = 0; j < BN / 8; j++) {
                        const int c = n0 + 8 * j + 2 * (lane & 3);
                        /* y = w * o: one rounded fp32 multiply, never fused with the combine */
                        float y0 = __fmul_rn(wt, acc[4 * j + 2 * h]);
                        float y1 = __fmul_rn(wt, acc[4 * j + 2 * h + 1]);
                        if (c + 1 < N && (N % 2) == 0) {
                            *(float2 *)(dst + c) = make_float2(y0, y1);
                        } else {
                            if (c < N) dst[c] = y0;
                            if (c + 1 < N) dst[c + 1] = y1;
                        }
                    }
                }
            }
        }
    }
#endif /* MF_HAVE_WGMMA */
}

#endif /* MF_CUDA_MOE_GEMM_WG_CUH */
