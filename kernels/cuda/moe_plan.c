/* moe_plan.c: the host-side decisions of the fused CUDA MoE kernel: workspace layout, GEMM
 * variant, routing path and grids for a shape (moe_plan.h says where the paths switch). */
#include "moe_plan.h"

#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#define PLAN_GV(MODE, BM, BN, WM, WN, ST, VEC) {MODE, BM, BN, VEC, 0, 0, "mma" #BM "x" #BN},
#define PLAN_GW(MODE, BN, CW, ST) {MODE, 64 * CW, BN, 1, 1, 0, "wg" #CW "x" #BN},
#define PLAN_GWC(MODE, BN, CW, ST) {MODE, 128 * CW, BN, 1, 1, 1, "wg" #CW "x" #BN "c"},
const mf_cuda_gemm mf_cuda_gemms[] = {MF_CUDA_GEMM_VARIANTS(PLAN_GV, PLAN_GW, PLAN_GWC)};
const int mf_cuda_n_gemms = (int)(sizeof mf_cuda_gemms / sizeof mf_cuda_gemms[0]);
_Static_assert(sizeof mf_cuda_gemms / sizeof mf_cuda_gemms[0] <= MF_CUDA_MAX_GEMMS,
               "mf_cuda_target.mc_max has a slot per variant");

const mf_cuda_gemm *mf_cuda_gemm_find(int mode, int BM, int BN, int vec, int wg, int mc) {
    for (int i = 0; i < mf_cuda_n_gemms; i++) {
        const mf_cuda_gemm *g = &mf_cuda_gemms[i];
        if (g->mode == mode && g->BM == BM && g->BN == BN && g->vec == vec && g->wg == wg &&
            g->mc == mc)
            return g;
    }
    return NULL;
}

void mf_cuda_forced_name(const mf_cuda_target *t, char *buf, size_t len) {
    if (t->force_bm)
        snprintf(buf, len, "MOEFUZZ_CUDA_BM=%d", t->force_bm);
    else
        snprintf(buf, len, "MOEFUZZ_CUDA_WG=%dx%d%s", t->force_wg_cw, t->force_wg_bn,
                 t->force_wg_mc ? "c" : "");
}

/* ---- workspace ---- */

static size_t ws_take(size_t *off, size_t bytes) {
    size_t at = *off;
    *off += (bytes + 255) / 256 * 256;
    return at;
}

int mf_cuda_max_tiles(const mf_kernel_params *p, int BM) {
    size_t n = (size_t)p->T * p->top_k;
    size_t hit = n < (size_t)p->E_local ? n : (size_t)p->E_local;
    return (int)(n / BM + hit);
}

void mf_cuda_ws_plan(const mf_kernel_params *p, mf_cuda_ws_layout *L) {
    size_t n = (size_t)p->T * p->top_k, off = 0;
    L->max_tiles = mf_cuda_max_tiles(p, 16); /* the smallest BM bounds every configuration */
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

/* ---- GEMM tiles ---- */

static int aligned16(const void *p) {
    return ((uintptr_t)p & 15u) == 0;
}

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

/* The tile height and the B widths of the wgmma kernels for the default choice (m: mean rows
 * per expert). */
static void choose_wg(const mf_cuda_target *t, const mf_kernel_params *p, double m, int *BM,
                      int *bn1, int *bn2, int *mc) {
    const int sms = t->sm_count;
    const long long b1 = 2LL * p->I, b2 = p->H; /* B rows of GEMM1 (gate + up) and GEMM2 */
    if (m < MF_CUDA_DECODE_ROWS) {
        /* decode: one consumer warpgroup of 64 rows; per GEMM the B tile width (64, 96 or 128)
         * with the fewer rounds x weight rows per item (decode_bn). Measured on an H100: this
         * beats the 16-row mma.sync path at T = 1 and 8 on all three bench shapes. */
        const double tiles = (double)est_tiles(p, 64);
        *BM = 64;
        *bn1 = decode_bn(tiles, b1, sms);
        *bn2 = decode_bn(tiles, b2, sms);
        return;
    }
    /* 3 x 64 or 2 x 64 rows: the tile height whose expected row fill (each tile of an expert
     * streams all of its weights) times the tile's reuse (2 BM BN / (BM + BN): flops per byte)
     * is higher. Measured on an H100: 192 rows win at 128 and 1024 rows per expert, 128 at 256
     * rows. */
    const double t3 = expected_tiles(p, m, 192), t2 = expected_tiles(p, m, 128);
    const double s3 = m * p->E_local / (192.0 * t3) * (2.0 * 192 * 192 / 384);
    const double s2 = m * p->E_local / (128.0 * t2) * (2.0 * 128 * 256 / 384);
    const int cw = s3 >= s2 ? 3 : 2, wide = cw == 3 ? 192 : 256;
    const double tiles = cw == 3 ? t3 : t2;
    *BM = 64 * cw;
    /* per GEMM the B tile width with the fewer rounds x weight rows per item (the wide one on a
     * tie) */
    *bn1 = wg_cost(tiles, b1, wide, sms) <= wg_cost(tiles, b1, 128, sms) ? wide : 128;
    *bn2 = wg_cost(tiles, b2, wide, sms) <= wg_cost(tiles, b2, 128, sms) ? wide : 128;
    /* many rows per expert: the cluster variant, each B tile multicast to two CTAs of 192 rows.
     * Measured on an H100: 5-14% faster at 1024 rows per expert, slower at 128 and 256. Not
     * with MOEFUZZ_CUDA_TMA=0: its multicast is a TMA load. */
    if (cw == 3 && m >= MF_CUDA_CLUSTER_ROWS && t->clusters && !t->no_tma)
        *mc = 1, *BM = 384, *bn1 = *bn2 = 192;
}

/* The persistent grids of the wgmma variants: one block per item up to the SMs (or the
 * MOEFUZZ_CUDA_WG_GRID cap); the cluster variants, clusters of two CTAs, each cluster one item
 * at a time, as many as fit at once. */
static void choose_wg_grids(const mf_cuda_target *t, const mf_kernel_params *p, mf_cuda_plan *c) {
    const long long tiles = mf_cuda_max_tiles(p, c->BM);
    const long long nb1 = c->nb1, nb2 = c->nb2;
    const long long cap = t->wg_grid < t->sm_count ? t->wg_grid : t->sm_count;
    c->grid1 = (int)(tiles * nb1 < cap ? tiles * nb1 : cap);
    c->grid2 = (int)(tiles * nb2 < cap ? tiles * nb2 : cap);
    if (c->g1->mc) {
        const long long m1 = t->mc_max[c->g1 - mf_cuda_gemms];
        const long long m2 = t->mc_max[c->g2 - mf_cuda_gemms];
        long long k1 = tiles * nb1 < cap / 2 ? tiles * nb1 : cap / 2;
        long long k2 = tiles * nb2 < cap / 2 ? tiles * nb2 : cap / 2;
        c->grid1 = 2 * (int)(k1 < m1 ? k1 : m1);
        c->grid2 = 2 * (int)(k2 < m2 ? k2 : m2);
        if (c->grid1 < 2 || c->grid2 < 2) c->g1 = c->g2 = NULL;
    }
}

/* The small-T path: routing warps limited by shared memory (E=1024, n_group=1024: 13 KB each). */
static void choose_routing(const mf_cuda_target *t, const mf_kernel_params *p, mf_cuda_plan *c) {
    const long long n = (long long)p->T * p->top_k;
    c->small = p->T <= MOE_SMALL_T && n <= MOE_CHUNK;
    if (!c->small) return;
    int rb = MOE_ROUTE_SCRATCH_BYTES(p->E, p->n_group);
    int fixed = 2 * p->E_local * 4 + 68 * 4;
    int budget = t->smem_optin - fixed;
    int nrw = budget / rb;
    if (nrw > 32) nrw = 32;
    if (nrw > p->T) nrw = p->T;
    if (nrw < 1) {
        c->small = 0; /* cannot happen for E <= 1024; the large path needs less */
        return;
    }
    c->nrw = nrw;
    c->prep_smem = fixed + nrw * rb;
    /* a tiny step: the routing warps alone (the kernel makes the same test) */
    c->tiny = n <= MOE_TINY_ENTRIES;
    c->prep_threads = c->tiny ? 32 * nrw : MOE_PREP_THREADS;
}

int mf_cuda_plan_choose(const mf_cuda_target *t, const mf_kernel_params *p, mf_cuda_plan *c,
                        char *msg, size_t msg_len) {
    memset(c, 0, sizeof *c);
    const long long n = (long long)p->T * p->top_k;
    c->vec1 = p->H % 8 == 0 && aligned16(p->x) && aligned16(p->w13);
    c->vec2 = p->I % 8 == 0 && aligned16(p->w2);
    /* The 16-byte path on sm_90a: the persistent wgmma kernels, decode steps included.
     * Elsewhere (MOEFUZZ_CUDA_WG=off, or no sm_90a) mma.sync: 16 rows while most experts fit
     * one 16-row tile (decode: weight streaming, the grid is all N blocks), 64 once they would
     * need several (each extra tile of an expert re-reads its weights), 128 when the GEMMs are
     * compute-bound. */
    const double m = (double)n / p->E; /* mean rows per expert */
    const int vec = c->vec1 && c->vec2, sms = t->sm_count;
    int BM = 16, wg = 0, wg_bn1 = 0, wg_bn2 = 0, mc = 0;
    if (!vec && t->strict && (t->force_bm > 16 || t->force_wg_cw > 0)) {
        /* supports() refuses these shapes; here unaligned tensors land too */
        char forced[40];
        mf_cuda_forced_name(t, forced, sizeof forced);
        snprintf(msg, msg_len,
                 "moe_cuda: MOEFUZZ_CUDA_STRICT=1: %s needs the 16-byte path (H=%d and I=%d "
                 "multiples of 8, x, w13 and w2 16-byte aligned)",
                 forced, p->H, p->I);
        return 1;
    }
    if (vec) {
        if (t->force_bm) {
            BM = t->force_bm;
        } else if (t->wgmma && t->force_wg_cw > 0) {
            wg = 1, BM = 64 * t->force_wg_cw, wg_bn1 = wg_bn2 = t->force_wg_bn;
            if (t->force_wg_mc && t->clusters) mc = 1, BM *= 2;
        } else if (t->wgmma && t->force_wg_cw == 0 && m >= t->wg_min_rows) {
            wg = 1;
            choose_wg(t, p, m, &BM, &wg_bn1, &wg_bn2, &mc);
        }
        if (!wg && !t->force_bm)
            BM = m >= MF_CUDA_MMA128_ROWS ? 128 : m >= MF_CUDA_DECODE_ROWS ? 64 : 16;
    }
    c->BM = BM;
    /* programmatic dependent launch for the persistent kernels only: behind a kernel of many
     * small blocks, early blocks of the next one crowd onto the first SMs that free up */
    c->pdl = t->pdl == 2 || (t->pdl && wg);
    if (wg) {
        c->g1 = mf_cuda_gemm_find(MODE_UP, BM, wg_bn1, 1, 1, mc);
        c->g2 = mf_cuda_gemm_find(MODE_DOWN, BM, wg_bn2, 1, 1, mc);
    } else {
        /* BM 16: pick BN so the grid is at least two blocks per SM (weights stream from every
         * SM) */
        long long est = est_tiles(p, BM), want = 2LL * sms;
        int bn1 = 64, bn2 = 64;
        if (BM == 16 && c->vec1) bn1 = (p->I + 63) / 64 * est >= want ? 128 : 64;
        if (BM == 16 && c->vec2)
            bn2 = (p->H + 127) / 128 * est >= want ? 128 : (p->H + 63) / 64 * est >= want ? 64 : 32;
        if (BM == 64) bn1 = bn2 = 128;
        if (BM == 128) bn1 = bn2 = 256;
        c->g1 = mf_cuda_gemm_find(MODE_UP, BM, bn1, c->vec1, 0, 0);
        c->g2 = mf_cuda_gemm_find(MODE_DOWN, BM, bn2, c->vec2, 0, 0);
    }
    if (c->g1 && c->g2) {
        c->tiles = mf_cuda_max_tiles(p, BM);
        c->nb1 = (p->I + c->g1->BN / 2 - 1) / (c->g1->BN / 2); /* BN / 2 gate + BN / 2 up rows */
        c->nb2 = (p->H + c->g2->BN - 1) / c->g2->BN;
        if (wg) choose_wg_grids(t, p, c);
    }
    if (!c->g1 || !c->g2) {
        snprintf(msg, msg_len, "moe_cuda: no GEMM variant for BM=%d vec=%d/%d wg=%d", BM, c->vec1,
                 c->vec2, wg);
        return 1;
    }
    choose_routing(t, p, c);
    return 0;
}
