/* dot.c: exact bf16 dot products with accumulation-model error bounds (see dot.h and
 * docs/error-model.md for the derivation of every constant). */
#include "dot.h"
#include "mf_base.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <mpfr.h>

#include "bf16.h"

#define NBINS 128
#define NWAYS 4
#define FALLBACK_PREC 2304 /* > 128 bins * 16 binades + 53 + carries: mpfr_sum is exact */

struct mf_dot_ws {
    double bins[NWAYS][NBINS];
    mf_dot_stats st;
    int profile;
    struct dot_record *rec; /* profile: every dot's loop, replayed to time the loops alone */
    size_t nrec, caprec;
    mpfr_t sum;
    mpfr_t vals[NBINS];
    mpfr_ptr ptrs[NBINS];
};

mf_dot_ws *mf_dot_ws_new(void) {
    mf_dot_ws *ws = calloc(1, sizeof *ws);
    if (!ws) return NULL;
    mpfr_init2(ws->sum, FALLBACK_PREC);
    for (int k = 0; k < NBINS; k++) {
        mpfr_init2(ws->vals[k], 53);
        ws->ptrs[k] = ws->vals[k];
    }
    return ws;
}

void mf_dot_ws_free(mf_dot_ws *ws) {
    if (!ws) return;
    free(ws->rec);
    mpfr_clear(ws->sum);
    for (int k = 0; k < NBINS; k++) mpfr_clear(ws->vals[k]);
    free(ws);
}

void mf_dot_ws_profile(mf_dot_ws *ws, int on) { ws->profile = on; }
void mf_dot_ws_stats(const mf_dot_ws *ws, mf_dot_stats *st) { *st = ws->st; }

/* ---- vector information ---- */

static int bf16_floor_log2(uint16_t b) {
    int ef = (b >> 7) & 0xff, mant = b & 0x7f;
    if (ef != 0) return ef - 127;
    int l = 0; /* subnormal: mant * 2^-133, mant in [1, 127] */
    while ((mant >> (l + 1)) != 0) l++;
    return -133 + l;
}

void mf_vec_info_bf16(const uint16_t *v, size_t n, size_t stride, mf_vec_info *info) {
    /* branch-free over magnitudes as int16 (SSE2 vectorizes signed 16-bit min/max): the largest,
     * and the smallest nonzero (zero maps to 0x7fff) */
    int16_t maxs = 0, mins = 0x7fff;
    if (stride == 1) {
        for (size_t i = 0; i < n; i++) {
            int16_t a = (int16_t)(v[i] & 0x7fffu);
            int16_t m = a ? a : (int16_t)0x7fff;
            maxs = a > maxs ? a : maxs;
            mins = m < mins ? m : mins;
        }
    } else {
        for (size_t i = 0; i < n; i++) {
            int16_t a = (int16_t)(v[i * stride] & 0x7fffu);
            int16_t m = a ? a : (int16_t)0x7fff;
            maxs = a > maxs ? a : maxs;
            mins = m < mins ? m : mins;
        }
    }
    unsigned maxa = (unsigned)maxs, mina = mins == 0x7fff && maxs != 0x7fff ? 0xffffu
                                                                            : (unsigned)mins;
    info->has_nonfinite = maxa >= 0x7f80u;
    if (mina == 0xffffu || info->has_nonfinite) {
        /* all zero, or NaN/Inf present (such dots take the IEEE path; the range is unused) */
        info->emin = 1000;
        info->emax = -1000;
        info->has_subnormal = mina < 0x0080u;
        return;
    }
    info->emin = bf16_floor_log2((uint16_t)mina);
    info->emax = bf16_floor_log2((uint16_t)maxa);
    info->has_subnormal = mina < 0x0080u;
}

/* ---- hot loops ---- */

static inline double bf16_d(uint16_t b) { return (double)mf_bf16_to_f32(b); }

static inline unsigned bin_of(double p) {
    uint64_t u;
    memcpy(&u, &p, sizeof u);
    return (unsigned)((u >> 56) & 0x7fu); /* top 7 bits of the exponent field: 16 binades */
}

/* Subnormal-clamped magnitude ||x|| = max(|x|, 2^-126) for x != 0 (Hopper alignment uses the
 * exponent field, which is clamped at -126). */
static inline double clamp_mag(double x) {
    double a = fabs(x);
    return (a != 0.0 && a < 0x1p-126) ? 0x1p-126 : a;
}

/* The products a[i + j] * b[i + j], j = 0..3 (exact in double: 24 x 8 significant bits), each
 * added to bin array j (exact: see finish_bins). Shared by the sequential and blocked loops. */
static inline void prod4_binned(double (*bins)[NBINS], const double *a, const uint16_t *b,
                                size_t i, double p[4]) {
    p[0] = a[i] * bf16_d(b[i]);
    p[1] = a[i + 1] * bf16_d(b[i + 1]);
    p[2] = a[i + 2] * bf16_d(b[i + 2]);
    p[3] = a[i + 3] * bf16_d(b[i + 3]);
    bins[0][bin_of(p[0])] += p[0];
    bins[1][bin_of(p[1])] += p[1];
    bins[2][bin_of(p[2])] += p[2];
    bins[3][bin_of(p[3])] += p[3];
}

typedef struct side_sums {
    double s;     /* running double approximation of the exact partial sum */
    double sabs;  /* sum over steps of |S_j| */
    double msum;  /* sum over steps of M_j = max(|S_{j-1}|, max |p| in the step) */
    double pabs;  /* sum |p| */
    size_t steps; /* number of accumulation steps */
    size_t adds;  /* double additions into s */
} side_sums;

static void loop_seq(double (*bins)[NBINS], const double *a, const uint16_t *b, size_t n,
                     side_sums *ss) {
    double s = 0, sabs = 0, pabs = 0;
    size_t i = 0;
    for (; i + 4 <= n; i += 4) {
        double p[4];
        prod4_binned(bins, a, b, i, p);
        const double p0 = p[0], p1 = p[1], p2 = p[2], p3 = p[3];
        s += p0;
        sabs += fabs(s);
        s += p1;
        sabs += fabs(s);
        s += p2;
        sabs += fabs(s);
        s += p3;
        sabs += fabs(s);
        pabs += (fabs(p0) + fabs(p1)) + (fabs(p2) + fabs(p3));
    }
    for (; i < n; i++) {
        double p = a[i] * bf16_d(b[i]);
        bins[i & 3][bin_of(p)] += p;
        s += p;
        sabs += fabs(s);
        pabs += fabs(p);
    }
    ss->s = s;
    ss->sabs = sabs;
    ss->pabs = pabs * (1 + ((double)n + 2) * 0x1p-52); /* n roundings, each <= 2^-53 relative */
    ss->steps = n;
    ss->adds = n;
}

/* fused_block, the chain of aligned steps (B products from index 0, then the next B, ...):
 * the bound is built step by step from the exact partial sums and the step's own grid instead
 * of c_al M'_j per step (docs/error-model.md, "Fused block"). Step j adds the kernel's
 * accumulator C and its products, each truncated toward zero to a multiple of the grid
 * 2^(E - F), E the largest exponent field of the step's terms; the sum is rounded to fp32.
 * E <= E^ = max(floor(log2 Y), floor(log2 Cmax)), Y the largest clamped product magnitude and
 * Cmax >= |C|; a term that is a multiple of 2^(E^ - F) loses nothing on the finer true grid,
 * any other loses less than min(|term|, 2^(E^ - F)) (exactly |p| mod 2^(E^ - F) for a product
 * of exact operands: a coarser grid of powers of two only loses more). A bf16 x bf16 product
 * has its lowest set bit at most 15 below its leading one, so |p| >= 2^(g + 15) is on the grid
 * 2^g; an fp32 C with |C| >= 2^(E^ - 2) has 24 bits from E^ - 2 down, on the grid too (F >= 25
 * is not assumed: the test is lsb(C) >= g). With delta, the kernel's a'_i lies within delta_i
 * of a_i: products are bounded by (|a_i| + delta_i)|b_i| and on the grid when
 * (|a_i| - delta_i)|b_i| >= 2^(g + 15); the chain is measured against the perturbed sums S',
 * |S'_j - S_j| <= D_j = sum delta_i |b_i| over the first j steps' products. Returns the radius
 * around S'_n (the caller adds D_n). */
static inline double pow2i(int e) { /* 2^e for -1022 <= e <= 1023 */
    uint64_t u = (uint64_t)(e + 1023) << 52;
    double d;
    memcpy(&d, &u, sizeof d);
    return d;
}

static inline int floor_log2(double x) { /* x a positive normal double */
    uint64_t u;
    memcpy(&u, &x, sizeof u);
    return (int)((u >> 52) & 0x7ff) - 1023;
}

/* The losses of one step's products on the grid g (on_grid = 2^15 g). */
static inline double step_losses(const double *a, const uint16_t *b, const double *delta,
                                 size_t j0, size_t j1, double grid, double on_grid) {
    double loss = 0;
    if (!delta) {
        for (size_t i = j0; i < j1; i++) {
            double pv = fabs(a[i] * bf16_d(b[i]));
            if (pv < on_grid) loss += pv - floor(pv / grid) * grid; /* exact: a power of two */
        }
        return loss;
    }
    for (size_t i = j0; i < j1; i++) {
        double bv = fabs(bf16_d(b[i]));
        /* the lower bound of |a' b|, less a margin for its two roundings */
        if ((fabs(a[i]) - delta[i]) * bv * (1 - 0x1p-50) >= on_grid) continue;
        double hi = clamp_mag(fabs(a[i]) + delta[i]) * clamp_mag(bv);
        loss += hi < grid ? hi : grid;
    }
    return loss;
}

static double loop_block_chain(double (*bins)[NBINS], const double *a, const uint16_t *b,
                               const double *delta, size_t n, size_t block, int frac_bits,
                               int clamp, side_sums *ss) {
    const double uz = 0x1p-23, eta = 0x1p-149;
    double s = 0, pabs = 0, dsum = 0, R = 0;
    size_t adds = 0;
    clamp |= delta != NULL; /* a' may be subnormal where a is not */
    for (size_t j0 = 0; j0 < n; j0 += block) {
        size_t j1 = j0 + block < n ? j0 + block : n;
        double y = 0, bs = 0, bp = 0;
        if (!clamp) {
            size_t i = j0;
            /* four independent chains (prod4_binned); es bounds every double add by 2^-53
             * sum|p| whatever their order */
            double bs1 = 0, bs2 = 0, bs3 = 0, y1 = 0, y2 = 0, y3 = 0, q1 = 0, q2 = 0, q3 = 0;
            for (; i + 4 <= j1; i += 4) {
                double p[4];
                prod4_binned(bins, a, b, i, p);
                double f0 = fabs(p[0]), f1 = fabs(p[1]), f2 = fabs(p[2]), f3 = fabs(p[3]);
                bs += p[0], bs1 += p[1], bs2 += p[2], bs3 += p[3];
                y = f0 > y ? f0 : y, y1 = f1 > y1 ? f1 : y1;
                y2 = f2 > y2 ? f2 : y2, y3 = f3 > y3 ? f3 : y3;
                bp += f0, q1 += f1, q2 += f2, q3 += f3;
            }
            bs = (bs + bs1) + (bs2 + bs3);
            bp = (bp + q1) + (q2 + q3);
            y1 = y1 > y2 ? y1 : y2;
            y3 = y3 > y ? y3 : y;
            y = y1 > y3 ? y1 : y3;
            for (; i < j1; i++) {
                double pv = a[i] * bf16_d(b[i]);
                bins[i & 3][bin_of(pv)] += pv;
                double f = fabs(pv);
                y = f > y ? f : y;
                bp += f;
                bs += pv;
            }
        } else {
            for (size_t i = j0; i < j1; i++) {
                double bv = bf16_d(b[i]);
                double pv = a[i] * bv;
                bins[i & 3][bin_of(pv)] += pv;
                double mm = clamp_mag(fabs(a[i]) + (delta ? delta[i] : 0.0)) * clamp_mag(bv);
                y = mm > y ? mm : y;
                bp += fabs(pv);
                bs += pv;
                if (delta) dsum += delta[i] * fabs(bv);
            }
        }
        pabs += bp;
        /* |s - S_{j-1}| <= es (each double add errs by at most 2^-53 sum|p|); the kernel's C is
         * within R of S'_{j-1}, |S'_{j-1} - S_{j-1}| <= D_{j-1} <= dsum */
        double es = (double)(adds + 2 * (j1 - j0)) * 0x1p-53 * pabs * (1 + 0x1p-40);
        /* margins of 2^-50 cover the roundings of these few double operations */
        double cmax = (fabs(s) + es + dsum + R) * (1 + 0x1p-50);
        double cmin = (fabs(s) - es - dsum - R) * (1 - 0x1p-50);
        double top = cmax > 0 && cmax < 0x1p-126 ? 0x1p-126 : cmax; /* C's field >= -126 */
        top = y * (1 + 0x1p-50) > top ? y * (1 + 0x1p-50) : top;
        double loss = 0;
        if (top > 0) {
            int g = floor_log2(top) - frac_bits; /* E^ - F */
            double grid = pow2i(g);
            /* C: 24 significant bits from its leading one down (or the subnormal grid 2^-149) */
            if (cmax > 0 && !(cmin >= pow2i(g + 23) || g <= -149))
                loss += cmax < grid ? cmax : grid;
            loss += step_losses(a, b, delta, j0, j1, grid, pow2i(g + 15));
            loss *= 1 + 0x1p-44; /* the double sum of the losses */
        }
        s += bs; /* the step's products summed apart, then added: 2 (j1 - j0) adds in es */
        adds += 2 * (j1 - j0);
        double sj = fabs(s) + es;
        /* the exact sum of the truncated terms is within R + loss of S'_j, |S'_j| <= sj + dsum;
         * its rounding to fp32 (RZ or RN) errs by one ulp at most, or eta below 2^-126 */
        R = (R + loss + uz * (sj + dsum + R + loss) + eta) * (1 + 0x1p-50);
    }
    ss->s = s;
    ss->pabs = pabs * (1 + ((double)n + 2) * 0x1p-52);
    ss->steps = (n + block - 1) / block;
    ss->adds = adds;
    return R;
}

/* ordered_blocks: any partition of the K-ordered products into blocks of at most B. The
 * running double s gives every exact partial sum S_i (to es) and sabs = sum_i |S_i|; per tile of
 * B products aligned at 0, G_t = max ||p|| and H_t = max |S_l| over the tile's prefix indices
 * (its start included). Every block containing product i lies within tiles t-1..t+1 of i's tile
 * t, so its maximum M'_j <= Y_t = max(H_{t-1}, H_t, G_{t-1}, G_t, G_{t+1}); msum = sum_t n_t Y_t
 * bounds sum_i max over the blocks that may contain i (docs/error-model.md). */
static void loop_ordered(double (*bins)[NBINS], const double *a, const uint16_t *b, size_t n,
                         size_t block, int clamp, side_sums *ss) {
    double s = 0, sabs = 0, msum = 0, pabs = 0;
    double g_pp = 0, h_pp = 0, g_p = 0, h_p = 0; /* tiles t-2 and t-1 */
    size_t n_p = 0;
    for (size_t j0 = 0; j0 < n; j0 += block) {
        size_t j1 = j0 + block < n ? j0 + block : n;
        double g = 0, h = fabs(s);
        for (size_t i = j0; i < j1; i++) {
            double bv = bf16_d(b[i]);
            double p = a[i] * bv;
            bins[i & 3][bin_of(p)] += p;
            s += p;
            double fs = fabs(s), fp = fabs(p);
            double m = clamp ? clamp_mag(a[i]) * clamp_mag(bv) : fp;
            g = m > g ? m : g;
            h = fs > h ? fs : h;
            sabs += fs;
            pabs += fp;
        }
        if (n_p) { /* tile t-1 is complete: its Y needs G_t */
            double y = h_pp > h_p ? h_pp : h_p;
            y = g_pp > y ? g_pp : y;
            y = g_p > y ? g_p : y;
            y = g > y ? g : y;
            msum += (double)n_p * y;
        }
        g_pp = g_p, h_pp = h_p, g_p = g, h_p = h, n_p = j1 - j0;
    }
    if (n_p) {
        double y = h_pp > h_p ? h_pp : h_p;
        y = g_pp > y ? g_pp : y;
        y = g_p > y ? g_p : y;
        msum += (double)n_p * y;
    }
    ss->s = s;
    ss->sabs = sabs;
    ss->msum = msum * (1 + 0x1p-40); /* the double products and sums of msum */
    ss->pabs = pabs * (1 + ((double)n + 2) * 0x1p-52);
    ss->sabs *= 1 + ((double)n + 2) * 0x1p-52;
    ss->steps = n;
    ss->adds = n;
}

static void loop_any(double (*bins)[NBINS], const double *a, const uint16_t *b, size_t n,
                     side_sums *ss) {
    double pabs = 0;
    for (size_t i = 0; i < n; i++) {
        double p = a[i] * bf16_d(b[i]);
        bins[i & 3][bin_of(p)] += p;
        pabs += fabs(p);
    }
    ss->pabs = pabs * (1 + ((double)n + 2) * 0x1p-52);
    ss->steps = n;
    ss->adds = n;
}

struct dot_record;
static void record(mf_dot_ws *ws, const double *a, const uint16_t *b, size_t n,
                   const mf_acc_model *m, int clamp);

/* ---- finishing the bins ---- */

static inline void two_sum(double x, double y, double *s, double *e) {
    double t = x + y;
    double yv = t - x;
    double xv = t - yv;
    *s = t;
    *e = (x - xv) + (y - yv);
}

static void finish_bins(mf_dot_ws *ws, unsigned lo_bin, unsigned hi_bin, mf_dot *out) {
    double sh = 0, sl = 0, dropped = 0;
    int nonzero = 0;
    for (unsigned k = lo_bin; k <= hi_bin; k++) {
        /* each partial is an exact multiple of the bin unit; so is their sum (n <= 2^22) */
        double v = (ws->bins[0][k] + ws->bins[1][k]) + (ws->bins[2][k] + ws->bins[3][k]);
        if (v == 0) continue;
        nonzero++;
        double s, e, t, f;
        two_sum(sh, v, &s, &e);
        two_sum(e, sl, &t, &f); /* f: the only quantity not kept */
        dropped += fabs(f);
        two_sum(s, t, &sh, &sl);
    }
    dropped *= 1 + 0x1p-50;
    if (dropped == 0 || dropped <= 0x1p-96 * fabs(sh)) {
        out->hi = sh;
        out->lo = sl;
        out->err = dropped;
        return;
    }
    /* cancellation: sum the bins exactly with MPFR */
    int m = 0;
    for (unsigned k = lo_bin; k <= hi_bin; k++) {
        double v = (ws->bins[0][k] + ws->bins[1][k]) + (ws->bins[2][k] + ws->bins[3][k]);
        if (v == 0) continue;
        mpfr_set_d(ws->vals[m++], v, MPFR_RNDN); /* exact: 53 bits */
    }
    (void)nonzero;
    mpfr_sum(ws->sum, ws->ptrs, (unsigned long)m, MPFR_RNDN); /* exact at FALLBACK_PREC */
    double hi = mpfr_get_d(ws->sum, MPFR_RNDN);
    mpfr_sub_d(ws->sum, ws->sum, hi, MPFR_RNDN); /* exact */
    double lo = mpfr_get_d(ws->sum, MPFR_RNDN);
    mpfr_sub_d(ws->sum, ws->sum, lo, MPFR_RNDN); /* exact */
    out->hi = hi;
    out->lo = lo;
    out->err = fabs(mpfr_get_d(ws->sum, MPFR_RNDU));
    out->flags |= MF_DOT_MPFR_FALLBACK;
    ws->st.fallbacks++;
}

/* ---- the bound of each accumulation model ---- */

static double model_radius(const mf_acc_model *m, const side_sums *ss, size_t n, double dpert) {
    const double u = 0x1p-24;  /* fp32 round to nearest */
    const double uz = 0x1p-23; /* fp32 truncation: one ulp */
    const double eta = 0x1p-149; /* smallest fp32 subnormal: absolute error of a tiny result */
    /* the double partial sums s_j differ from the exact S_j by at most adds * 2^-53 * sum|p| */
    double es = (double)ss->adds * 0x1p-53 * ss->pabs * (1 + 0x1p-40);
    double steps = (double)ss->steps;
    double r;
    switch (m->kind) {
    case MF_ACC_SEQ_FP32: {
        /* step i: |err_i| <= u |x_i| + 2 eta (product underflow + sum), x_i = S^_{i-1} + p'_i,
         * |x_i| <= |S_i| + D + R. Solving for R gives the division by (1 - n u). */
        double base = u * (ss->sabs + steps * (es + dpert)) + steps * 2 * eta;
        r = base / (1 - steps * u);
        break;
    }
    case MF_ACC_ORDERED_BLOCKS: {
        /* every partition into blocks of at most B: step j (b_j products, at most B) errs by
         * < (b_j + 1) 2^-F M'_j + u_z |S^_j| + eta <= 2 b_j 2^-F M'_j + ...; charging each
         * product's share to Y of its tile and every index as a possible boundary gives
         * (sum over n indices, R the radius in every partial sum and maximum) */
        double c2 = ldexp(1.0, 1 - m->frac_bits);
        double nn = (double)n;
        double base = c2 * (ss->msum + nn * (es + dpert)) + uz * (ss->sabs + nn * (es + dpert)) +
                      nn * (eta + c2 * 0x1p-126);
        r = base / (1 - nn * (c2 + uz));
        break;
    }
    case MF_ACC_ANY_ORDER:
    default: {
        /* T0: gamma_n(2^-23) sum|p'| for any order, RN or RZ, fraction bits >= 24 */
        double nn = (double)n;
        double gamma = nn * uz / (1 - nn * uz);
        r = gamma * (ss->pabs + dpert) + nn * 2 * eta;
        break;
    }
    }
    return r;
}

void mf_dot_bf16(mf_dot_ws *ws, const double *a, const mf_vec_info *ai, const double *delta,
                 const uint16_t *b, const mf_vec_info *bi, size_t n, const mf_acc_model *m,
                 mf_dot *out) {
    memset(out, 0, sizeof *out);
    if (ai->has_nonfinite || bi->has_nonfinite) {
        double s = 0; /* IEEE class of the result is order-independent; double cannot overflow */
        for (size_t i = 0; i < n; i++) s += a[i] * bf16_d(b[i]);
        out->hi = s;
        out->radius = INFINITY;
        out->flags = MF_DOT_NONFINITE;
        return;
    }
    /* perturbation of a: D = sum delta_i |b_i| */
    double dpert = 0;
    if (delta) {
        for (size_t i = 0; i < n; i++)
            if (delta[i] != 0) dpert += delta[i] * fabs(bf16_d(b[i]));
        dpert *= 1 + 0x1p-50;
    }
    if (n == 0 || ai->emin > ai->emax || bi->emin > bi->emax) {
        /* exact zero; only a perturbed a can move it, and the kernel's accumulation of those
         * a' b rounds: each of the n steps by at most 2^-22 of the accumulator (<= D; fp32,
         * either rounding) or, in fused blocks, (1 + 1 / B) 2^-F of the block's largest product,
         * plus an absolute 2^-148 where results are subnormal */
        double step = m->kind == MF_ACC_FUSED_BLOCK ? ldexp(1.0, 1 - m->frac_bits) : 0x1p-22;
        out->radius = dpert > 0 ? dpert * (1 + (double)n * step) * (1 + 0x1p-50) +
                                      (double)n * 0x1p-148
                                : 0;
        /* a perturbed a (activations whose representative is 0) can still overflow fp32 */
        if (!(dpert < 0x1.fffffep127)) out->flags |= MF_DOT_MAY_OVERFLOW;
        return;
    }
    unsigned lo_bin = (unsigned)(ai->emin + bi->emin + 1023) >> 4;
    unsigned hi_bin = (unsigned)(ai->emax + bi->emax + 1 + 1023) >> 4;
    side_sums ss;
    memset(&ss, 0, sizeof ss);
    if (ws->profile) record(ws, a, b, n, m, ai->has_subnormal || bi->has_subnormal);
    double r = 0;
    switch (m->kind) {
    case MF_ACC_SEQ_FP32: loop_seq(ws->bins, a, b, n, &ss); break;
    case MF_ACC_FUSED_BLOCK:
        r = loop_block_chain(ws->bins, a, b, delta, n, (size_t)m->block, m->frac_bits,
                             ai->has_subnormal || bi->has_subnormal, &ss);
        break;
    case MF_ACC_ORDERED_BLOCKS:
        loop_ordered(ws->bins, a, b, n, (size_t)m->block, ai->has_subnormal || bi->has_subnormal,
                     &ss);
        break;
    default: loop_any(ws->bins, a, b, n, &ss); break;
    }
    finish_bins(ws, lo_bin, hi_bin, out);
    for (int w = 0; w < NWAYS; w++)
        memset(&ws->bins[w][lo_bin], 0, (hi_bin - lo_bin + 1) * sizeof(double));
    if (m->kind != MF_ACC_FUSED_BLOCK) r = model_radius(m, &ss, n, dpert);
    out->abs_sum = ss.pabs;
    out->radius = (r + dpert + out->err) * (1 + 0x1p-30);
    if (!(ss.pabs + out->radius < 0x1.fffffep127)) out->flags |= MF_DOT_MAY_OVERFLOW; /* or NaN */
    ws->st.dots++;
    ws->st.terms += n;
}

/* ---- profiling: the loops alone ---- */

typedef struct dot_record {
    const double *a;
    const uint16_t *b;
    size_t n;
    mf_acc_model m;
    int clamp;
} dot_record;

static void record(mf_dot_ws *ws, const double *a, const uint16_t *b, size_t n,
                   const mf_acc_model *m, int clamp) {
    if (ws->nrec == ws->caprec) {
        size_t cap = ws->caprec ? 2 * ws->caprec : 1024;
        dot_record *r = realloc(ws->rec, cap * sizeof *r);
        if (!r) return; /* profiling only: a missing record shortens the replay */
        ws->rec = r;
        ws->caprec = cap;
    }
    ws->rec[ws->nrec++] = (dot_record){a, b, n, *m, clamp};
}

double mf_dot_ws_replay_loops(mf_dot_ws *ws) {
    double t0 = mf_now_s();
    for (size_t i = 0; i < ws->nrec; i++) {
        const dot_record *r = &ws->rec[i];
        side_sums ss;
        memset(&ss, 0, sizeof ss);
        switch (r->m.kind) {
        case MF_ACC_SEQ_FP32: loop_seq(ws->bins, r->a, r->b, r->n, &ss); break;
        case MF_ACC_FUSED_BLOCK:
            loop_block_chain(ws->bins, r->a, r->b, NULL, r->n, (size_t)r->m.block,
                             r->m.frac_bits, r->clamp, &ss);
            break;
        case MF_ACC_ORDERED_BLOCKS:
            loop_ordered(ws->bins, r->a, r->b, r->n, (size_t)r->m.block, r->clamp, &ss);
            break;
        default: loop_any(ws->bins, r->a, r->b, r->n, &ss); break;
        }
    }
    double t = mf_now_s() - t0;
    memset(ws->bins, 0, sizeof ws->bins);
    ws->nrec = 0;
    ws->st.loop_s += t;
    return t;
}
