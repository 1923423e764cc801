/* moe_gemm.cuh: the grouped expert GEMMs on tensor cores (mma.sync m16n8k16 bf16 -> fp32).
 *
 * One template, two modes, over the tile table built by the dispatch:
 *   MODE_UP   (GEMM1): A = gathered token rows x[token] [rows][H], B = W13[e] gate and up rows,
 *             epilogue a = silu(g) * u in fp32, rounded to bf16 into hbuf[row][j].
 *   MODE_DOWN (GEMM2): A = hbuf rows [rows][I], B = W2[e] [H][I], epilogue y = w * o (one fp32
 *             multiply) into ybuf[entry][c].
 * Block tile: BM rows x BN rows of B (MODE_UP: BN/2 gate rows then the BN/2 matching up rows, so
 * gate and up of one output land in the same thread), K in stages of BK = 64 through a
 * STAGES-deep cp.async ring. Warps: WM x WN, each owning whole output elements.
 *
 * Numerical contract ("hopper-tc"): every output element is ONE fp32 accumulator that starts at
 * 0 and receives the k16 steps k = 0, 16, 32, ... in order, one mma each, and nothing else: no
 * split-K, no partial sums. The K remainder is zero-filled in both operands, and k16 steps that
 * lie wholly past K are skipped, so a chain has exactly ceil(K / 16) steps.
 *
 * Grid: x = N blocks (fastest, so the blocks of one row tile run together and share A in L2),
 * y = tiles (an upper bound; blocks past *n_tiles return at once).
 *
 * Programmatic dependent launch: GEMM1 waits (griddepcontrol.wait) before it reads anything the
 * routing wrote, then lets GEMM2 launch; GEMM2 reads the tile table (complete before GEMM1 let it
 * launch) and issues the weight rows of its first stages, then waits for GEMM1 before hbuf.
 */
#ifndef MF_CUDA_MOE_GEMM_CUH
#define MF_CUDA_MOE_GEMM_CUH

#include "hopper.cuh"
#include "mma.cuh"
#include "moe_common.cuh"

#define GEMM_BK 64 /* K per stage: 4 k16 steps, 128-byte rows (one cache line) */
#define GEMM_LDS                                                                     \
    (GEMM_BK + 8) /* smem row pitch in bf16: 144 bytes, so the 8 row addresses of an \
                     ldmatrix (and 4 rows of cp.async stores) hit distinct banks */

static __host__ __device__ constexpr int gemm_smem_bytes(int BM, int BN, int STAGES) {
    return STAGES * (BM + BN) * GEMM_LDS * 2;
}

static __device__ __forceinline__ float silu_glu(float g, float u) {
    float s = g / (1.0f + expf(-g)); /* accurate expf, IEEE division: contract "hopper-tc" */
    return s * u;
}

/* The epilogue stores of both GEMM kernels, for two adjacent output columns c, c + 1 of one row
 * (either may be past N: not stored). GEMM1: a = silu(g) * u rounded to bf16 into the hbuf row.
 * GEMM2: y = w * o (one rounded fp32 multiply, never fused with the combine's add) into the ybuf
 * row. One 4- or 8-byte store where both columns exist and N is even (aligned). */
static __device__ __forceinline__ void store_act2(uint16_t *dst, int c, int N, float g0, float u0,
                                                  float g1, float u1) {
    const uint16_t a0 = f32_to_bf16(silu_glu(g0, u0)), a1 = f32_to_bf16(silu_glu(g1, u1));
    if (c + 1 < N && (N % 2) == 0) {
        *(uint32_t *)(dst + c) = (uint32_t)a0 | ((uint32_t)a1 << 16);
    } else {
        if (c < N) dst[c] = a0;
        if (c + 1 < N) dst[c + 1] = a1;
    }
}
static __device__ __forceinline__ void store_y2(float *dst, int c, int N, float w, float o0,
                                                float o1) {
    const float y0 = __fmul_rn(w, o0), y1 = __fmul_rn(w, o1);
    if (c + 1 < N && (N % 2) == 0) {
        *(float2 *)(dst + c) = make_float2(y0, y1);
    } else {
        if (c < N) dst[c] = y0;
        if (c + 1 < N) dst[c + 1] = y1;
    }
}

/* First smem row (within the B tile) of the warp's n8 tile j. MODE_UP: tiles [0, NJH) are gate
 * columns, [NJH, 2 NJH) the matching up columns; MODE_DOWN: consecutive. */
template <int MODE, int BN, int WTN, int NJH>
static __device__ __forceinline__ int b_tile_row(int wn, int j) {
    if (MODE == MODE_UP) return j < NJH ? wn * WTN + j * 8 : BN / 2 + wn * WTN + (j - NJH) * 8;
    return wn * WTN + j * 8;
}

template <int MODE, int BM, int BN, int WM, int WN, int STAGES, bool VEC>
static __global__ void __launch_bounds__(WM *WN * 32) moe_gemm_kernel(const moe_dev kp) {
    constexpr int NT = WM * WN * 32;
    constexpr int BK = GEMM_BK, LDS = GEMM_LDS;
    constexpr int WTM = BM / WM, MI = WTM / 16;               /* warp rows, m16 tiles */
    constexpr int WTN = (MODE == MODE_UP ? BN / 2 : BN) / WN; /* warp output columns */
    constexpr int NJH = WTN / 8;                              /* n8 tiles per half */
    constexpr int NJT = MODE == MODE_UP ? 2 * NJH : NJH;      /* n8 tiles per warp */
    constexpr int CPR = BK / 8;                               /* 16-byte chunks per row */
    constexpr int A_IT = BM * CPR / NT, B_IT = BN * CPR / NT; /* chunks per thread */
    static_assert(BM % (16 * WM) == 0, "warp rows must be whole m16 tiles");
    static_assert(WTN % 8 == 0 && WTN >= 8, "warp columns must be whole n8 tiles");
    static_assert((BM * CPR) % NT == 0 && (BN * CPR) % NT == 0, "chunks must split evenly");
    static_assert(STAGES >= 2, "a ring needs two stages");

    extern __shared__ __align__(128) unsigned char smem_raw[];
    uint16_t *sA = (uint16_t *)smem_raw;   /* [STAGES][BM][LDS] */
    uint16_t *sB = sA + STAGES * BM * LDS; /* [STAGES][BN][LDS] */

    if (MODE == MODE_UP) {
        griddep_wait();
        griddep_launch();
    }
    const int tile = blockIdx.y;
    if (tile >= *kp.n_tiles) { /* whole block: no barrier skipped */
        if (MODE == MODE_DOWN) griddep_launch();
        return;
    }
    const int4 ti = kp.tiles[tile];
    const int le = ti.x, row0 = ti.y, nrows = ti.z;
    const int K = MODE == MODE_UP ? kp.H : kp.I; /* reduction length */
    const int N = MODE == MODE_UP ? kp.I : kp.H; /* output columns */
    const int n0 = blockIdx.x * (MODE == MODE_UP ? BN / 2 : BN);
    if (n0 >= N) {
        if (MODE == MODE_DOWN) griddep_launch();
        return;
    }

    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const int wm = warp / WN, wn = warp % WN;

    /* B rows of this block: w13 [E_local][2I][H] gate/up rows by layout, or w2 [E_local][H][I] */
    const uint16_t *wbase;
    int gate_row0 = 0, up_row0 = 0;
    if (MODE == MODE_UP) {
        wbase = kp.w13 + (size_t)le * 2 * kp.I * kp.H;
        int gate_first = kp.layout == MF_ABI_LAYOUT_GATE_UP;
        if (MF_MUT(GATE_UP_SWAPPED)) gate_first = !gate_first;
        gate_row0 = gate_first ? 0 : kp.I;
        up_row0 = gate_first ? kp.I : 0;
    } else {
        wbase = kp.w2 + (size_t)le * kp.H * kp.I;
    }

    /* A rows handled by this thread (fixed over stages): element offset of the row, or -1 */
    long long a_off[A_IT];
#pragma unroll
    for (int it = 0; it < A_IT; it++) {
        int r = (tid + it * NT) / CPR;
        a_off[it] = -1;
        if (r < nrows) {
            if (MODE == MODE_UP) {
                int entry = kp.row_entry[row0 + r];
                a_off[it] = (long long)(entry / kp.top_k) * kp.H; /* x [T][H] */
            } else {
                a_off[it] = (long long)(row0 + r) * kp.I; /* hbuf [rows][I] */
            }
        }
    }
    const uint16_t *abase = MODE == MODE_UP ? kp.x : kp.hbuf;

    const int nk = (K + BK - 1) / BK;

    /* ---- stage loaders: A and B chunks of k range [kt*BK, kt*BK + BK) into ring slot ---- */
    auto load_a = [&](int slot, int kt) {
        const int k0 = kt * BK;
        uint16_t *sa = sA + slot * BM * LDS;
#pragma unroll
        for (int it = 0; it < A_IT; it++) {
            int q = tid + it * NT, r = q / CPR, kc = k0 + (q % CPR) * 8;
            uint16_t *dst = sa + r * LDS + (q % CPR) * 8;
            if (VEC) {
                int ok = a_off[it] >= 0 && kc < K;
                const uint16_t *src = ok ? abase + a_off[it] + kc : abase;
                cp_async_16(smem_u32(dst), src, ok ? 16 : 0);
            } else {
#pragma unroll
                for (int e = 0; e < 8; e++)
                    dst[e] = (a_off[it] >= 0 && kc + e < K) ? abase[a_off[it] + kc + e] : 0;
            }
        }
    };
    auto load_b = [&](int slot, int kt) {
        const int k0 = kt * BK;
        uint16_t *sb = sB + slot * BN * LDS;
#pragma unroll
        for (int it = 0; it < B_IT; it++) {
            int q = tid + it * NT, r = q / CPR, kc = k0 + (q % CPR) * 8;
            uint16_t *dst = sb + r * LDS + (q % CPR) * 8;
            int col, wrow;
            if (MODE == MODE_UP) {
                int up = r >= BN / 2;
                col = n0 + r - (up ? BN / 2 : 0);
                wrow = (up ? up_row0 : gate_row0) + col;
            } else {
                col = n0 + r;
                wrow = col;
            }
            const uint16_t *rowp = wbase + (size_t)wrow * K;
            if (VEC) {
                int ok = col < N && kc < K;
                cp_async_16(smem_u32(dst), ok ? rowp + kc : wbase, ok ? 16 : 0);
            } else {
#pragma unroll
                for (int e = 0; e < 8; e++) dst[e] = (col < N && kc + e < K) ? rowp[kc + e] : 0;
            }
        }
    };

    float acc[MI][NJT][4];
#pragma unroll
    for (int i = 0; i < MI; i++)
#pragma unroll
        for (int j = 0; j < NJT; j++)
#pragma unroll
            for (int r = 0; r < 4; r++) acc[i][j][r] = 0.0f;

    /* ---- prologue: stages 0 .. STAGES-2 in flight, one commit group each (maybe empty).
     * GEMM2 issues the weight rows first, then waits for GEMM1 (hbuf); the first group then holds
     * every prologue B chunk, which only makes it complete later. ---- */
    if (MODE == MODE_DOWN) {
#pragma unroll
        for (int s = 0; s < STAGES - 1; s++)
            if (s < nk) load_b(s, s);
        griddep_wait();
        griddep_launch();
    }
#pragma unroll
    for (int s = 0; s < STAGES - 1; s++) {
        if (s < nk) {
            load_a(s, s);
            if (MODE == MODE_UP) load_b(s, s);
        }
        cp_async_commit();
    }

    /* ---- main loop ----
     * Before the wait of iteration kt, STAGES-1+kt groups are committed and group g holds stage
     * g; wait_group(STAGES-2) completes groups 0..kt, i.e. stage kt, for this thread. The
     * barrier then makes every thread's copies visible AND proves every thread is done with
     * stage kt-1, whose slot the prefetch below overwrites. */
    for (int kt = 0; kt < nk; kt++) {
        cp_async_wait<STAGES - 2>();
        __syncthreads();
        if (kt + STAGES - 1 < nk) {
            load_a((kt + STAGES - 1) % STAGES, kt + STAGES - 1);
            load_b((kt + STAGES - 1) % STAGES, kt + STAGES - 1);
        }
        cp_async_commit();

        const int slot = kt % STAGES;
        const uint16_t *sa = sA + slot * BM * LDS, *sb = sB + slot * BN * LDS;
        const int ksteps = (K - kt * BK + 15) / 16; /* k16 steps of this stage inside K */
#pragma unroll
        for (int kk = 0; kk < BK / 16; kk++) {
            if (kk >= ksteps) continue; /* past K: the chain has exactly ceil(K/16) steps */
            uint32_t af[MI][4], bfr[NJT][2];
#pragma unroll
            for (int i = 0; i < MI; i++) {
                const uint16_t *p =
                    sa + (wm * WTM + i * 16 + frag_a_row(lane)) * LDS + kk * 16 + frag_a_col(lane);
                ldmatrix_x4(af[i], smem_u32(p));
            }
#pragma unroll
            for (int j = 0; j + 1 < NJT; j += 2) {
                /* the pair (j, j+1) -> b[j][0], b[j][1], b[j+1][0], b[j+1][1] */
                const int jt = j + frag_b_tile(lane);
                const uint16_t *p =
                    sb + (b_tile_row<MODE, BN, WTN, NJH>(wn, jt) + frag_b_row(lane)) * LDS +
                    kk * 16 + frag_b_col(lane);
                uint32_t r4[4];
                ldmatrix_x4(r4, smem_u32(p));
                bfr[j][0] = r4[0];
                bfr[j][1] = r4[1];
                bfr[j + 1][0] = r4[2];
                bfr[j + 1][1] = r4[3];
            }
            if (NJT % 2) {
                const int j = NJT - 1;
                const uint16_t *p =
                    sb + (b_tile_row<MODE, BN, WTN, NJH>(wn, j) + frag_b_row(lane)) * LDS +
                    kk * 16 + frag_b_col(lane);
                ldmatrix_x2(bfr[j], smem_u32(p));
            }
#pragma unroll
            for (int i = 0; i < MI; i++)
#pragma unroll
                for (int j = 0; j < NJT; j++) mma_bf16_16816(acc[i][j], af[i], bfr[j], acc[i][j]);
        }
    }
    cp_async_wait<0>(); /* only empty groups remain; leave nothing in flight */

    /* ---- epilogue: fragment element (i, j, r) is row wm*WTM + i*16 + frag_c_row(lane, r),
     * column wn*WTN + j*8 + frag_c_col(lane, r) of the block's output tile; r = 2*half and
     * 2*half + 1 are the two adjacent columns of one row ---- */
#pragma unroll
    for (int i = 0; i < MI; i++) {
#pragma unroll
        for (int half = 0; half < 2; half++) {
            const int r = wm * WTM + i * 16 + frag_c_row(lane, 2 * half);
            if (r >= nrows) continue;
            const int row = row0 + r;
            if (MODE == MODE_UP) {
                uint16_t *dst = kp.hbuf + (size_t)row * kp.I;
#pragma unroll
                for (int j = 0; j < NJH; j++) {
                    const int c = n0 + wn * WTN + j * 8 + frag_c_col(lane, 0);
                    store_act2(dst, c, N, acc[i][j][2 * half], acc[i][j + NJH][2 * half],
                               acc[i][j][2 * half + 1], acc[i][j + NJH][2 * half + 1]);
                }
            } else {
                const int entry = kp.row_entry[row];
                const float w = kp.route_w[entry];
                float *dst = kp.ybuf + (size_t)entry * kp.H;
#pragma unroll
                for (int j = 0; j < NJT; j++) {
                    const int c = n0 + wn * WTN + j * 8 + frag_c_col(lane, 0);
                    store_y2(dst, c, N, w, acc[i][j][2 * half], acc[i][j][2 * half + 1]);
                }
            }
        }
    }
}

#endif /* MF_CUDA_MOE_GEMM_CUH */
