/* fp8.c: FP8 / UE8M0 / e2m1 formats, the interval-valued activation quantizer and the exact
 * block-scaled dot product with the CPU FP8 contract's radius (see fp8.h; derivations in
 * docs/error-model.md, "FP8 block scale"). */
#include "fp8.h"

#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <mpfr.h>

#include "bf16.h"

static const double U = 0x1p-24;     /* fp32 unit roundoff */
static const double ETA = 0x1p-149;  /* fp32 smallest subnormal: a product's underflow error */

/* ---- formats ---- */

typedef struct fmt {
    int mbits, bias;
    double max;
} fmt;

static const fmt FMT[2] = {{3, 7, MF_E4M3_MAX}, {2, 15, MF_E5M2_MAX}};

double mf_fp8_max(mf_fp8_kind k) { return FMT[k].max; }

double mf_fp8_decode(mf_fp8_kind k, uint8_t b) {
    const fmt *f = &FMT[k];
    int neg = b >> 7;
    int e = (b & 0x7f) >> f->mbits, m = b & ((1 << f->mbits) - 1);
    int emax_field = (1 << (7 - f->mbits)) - 1;
    double v;
    if (k == MF_FP8_E4M3 && e == emax_field && m == (1 << f->mbits) - 1) return NAN;
    if (k == MF_FP8_E5M2 && e == emax_field) {
        if (m) return NAN;
        v = INFINITY;
    } else if (e == 0) {
        v = ldexp(m, 1 - f->bias - f->mbits);
    } else {
        v = ldexp(m + (1 << f->mbits), e - f->bias - f->mbits);
    }
    return neg ? -v : v;
}

/* v >= 0, v < 2^53: nearest integer, ties to even, independent of the rounding mode */
static double round_half_even(double v) {
    double fl = floor(v);
    double frac = v - fl;
    if (frac > 0.5) return fl + 1.0;
    if (frac < 0.5) return fl;
    return fmod(fl, 2.0) == 0.0 ? fl : fl + 1.0;
}

uint8_t mf_fp8_encode(mf_fp8_kind k, double v, int saturate) {
    const fmt *f = &FMT[k];
    uint8_t nan = k == MF_FP8_E4M3 ? 0x7f : 0x7e;
    if (isnan(v)) return nan;
    uint8_t sign = signbit(v) ? 0x80 : 0;
    double a = fabs(v);
    int emin = 1 - f->bias;
    double r;
    if (isinf(a)) {
        r = INFINITY;
    } else if (a == 0) {
        return sign;
    } else {
        int e;
        frexp(a, &e);
        e -= 1; /* floor(log2 a) */
        if (e < emin) e = emin;
        int q = e - f->mbits;
        r = ldexp(round_half_even(ldexp(a, -q)), q); /* a < 2^1024: the scaled value < 2^53 */
    }
    if (r > f->max) {
        if (saturate) r = f->max;
        else return k == MF_FP8_E4M3 ? (uint8_t)(sign | 0x7f) : (uint8_t)(sign | 0x7c);
    }
    if (r == 0) return sign;
    int e;
    frexp(r, &e);
    e -= 1;
    uint8_t code;
    if (e < emin) {
        code = (uint8_t)ldexp(r, f->mbits - emin); /* subnormal: a multiple of 2^(emin-mbits) */
    } else {
        int m = (int)ldexp(r, f->mbits - e) - (1 << f->mbits);
        code = (uint8_t)(((e + f->bias) << f->mbits) | m);
    }
    return (uint8_t)(sign | code);
}

double mf_ue8m0_decode(uint8_t e) { return e == 0xff ? NAN : ldexp(1.0, (int)e - 127); }

/* ceil(log2 s) for a positive finite s, exactly */
static int log2_ceil(double s) {
    int e;
    double f = frexp(s, &e); /* s = f 2^e, f in [0.5, 1) */
    return f == 0.5 ? e - 1 : e;
}

uint8_t mf_ue8m0_round_up(double s) {
    int c = log2_ceil(s) + 127;
    return (uint8_t)(c < 0 ? 0 : c > 254 ? 254 : c);
}

float mf_pow2_ceil_f32(float s) {
    int c = log2_ceil((double)s);
    return c > 127 ? INFINITY : (float)ldexp(1.0, c);
}

double mf_e2m1_decode(uint8_t code4) {
    static const double v[8] = {0, 0.5, 1, 1.5, 2, 3, 4, 6};
    double x = v[code4 & 7];
    return (code4 & 8) ? -x : x;
}

/* ---- the activation quantizer ---- */

static float group_scale(const mf_fp8_quant *qz, float amax) {
    float s = amax / (float)mf_fp8_max(qz->kind);
    return qz->ue8m0 ? mf_pow2_ceil_f32(fmaxf(s, qz->s_floor)) : fmaxf(s, qz->s_min);
}

/* The fp32 value the kernel casts: y / s, or y fl(1 / s) (both correctly rounded fp32) */
static float quot(const mf_fp8_quant *qz, float y, float s) {
    if (!qz->recip) return y / s;
    float r = 1.0f / s;
    return y * r;
}

float mf_fp8_quant_group(const mf_fp8_quant *qz, const float *y, int n, uint8_t *q) {
    float amax = qz->eps;
    for (int j = 0; j < n; j++) amax = fmaxf(amax, fabsf(y[j]));
    float s = group_scale(qz, amax);
    for (int j = 0; j < n; j++) q[j] = mf_fp8_encode(qz->kind, (double)quot(qz, y[j], s), 1);
    return s;
}

/* Lowest and highest codes the kernel may produce from y / s (y, s exact fp32 values) */
static void quot_codes(const mf_fp8_quant *qz, float y, float s, double *vlo, double *vhi) {
    if (qz->div_rel == 0) { /* decided: fl(y / s) or fl(y fl(1 / s)), each monotone in y and s */
        double v = mf_fp8_decode(qz->kind, mf_fp8_encode(qz->kind, (double)quot(qz, y, s), 1));
        *vlo = *vhi = v;
        return;
    }
    double d = (double)y / (double)s;
    double rel = U + qz->div_rel + 0x1p-50;
    double a = d - fabs(d) * rel, b = d + fabs(d) * rel;
    *vlo = mf_fp8_decode(qz->kind, mf_fp8_encode(qz->kind, a, 1));
    *vhi = mf_fp8_decode(qz->kind, mf_fp8_encode(qz->kind, b, 1));
}

/* Enclosure [dlo, dhi] of q * s for y in [lo, hi] and s in [sa, sb] (sa > 0) */
static void deq_range(const mf_fp8_quant *qz, float lo, float hi, float sa, float sb, double *dlo,
                      double *dhi) {
    /* q(y, s) is monotone in y, and in s for a fixed sign of y: its extremes are at corners */
    const float ys[2] = {lo, hi}, ss[2] = {sa, sb};
    double qmin = INFINITY, qmax = -INFINITY;
    for (int i = 0; i < 2; i++)
        for (int l = 0; l < 2; l++) {
            double a, b;
            quot_codes(qz, ys[i], ss[l], &a, &b);
            if (a < qmin) qmin = a;
            if (b > qmax) qmax = b;
        }
    /* q * s for q in [qmin, qmax], s in [sa, sb]: extremes at corners; exact (4 x 24 bits) */
    double c[4] = {qmin * sa, qmin * sb, qmax * sa, qmax * sb};
    *dlo = *dhi = c[0];
    for (int i = 1; i < 4; i++) {
        if (c[i] < *dlo) *dlo = c[i];
        if (c[i] > *dhi) *dhi = c[i];
    }
}

int mf_fp8_quant_group_iv(const mf_fp8_quant *qz, const float *lo, const float *hi,
                          const float *rep, int n, mf_fp8_group_iv *g, uint8_t *rep_q,
                          double *dlo, double *dhi) {
    float amin = qz->eps, amax = qz->eps;
    for (int j = 0; j < n; j++) {
        float m_lo = (lo[j] <= 0 && hi[j] >= 0) ? 0.0f : fminf(fabsf(lo[j]), fabsf(hi[j]));
        float m_hi = fmaxf(fabsf(lo[j]), fabsf(hi[j]));
        amin = fmaxf(amin, m_lo);
        amax = fmaxf(amax, m_hi);
    }
    /* the raw scale fl(amax / max) is monotone in amax */
    float max = (float)mf_fp8_max(qz->kind);
    float s_lo = amin / max, s_hi = amax / max;
    if (qz->div_rel > 0) {
        s_lo = (float)((double)s_lo * (1 - qz->div_rel - U));
        s_lo = nextafterf(s_lo, 0);
        s_hi = (float)((double)s_hi * (1 + qz->div_rel + U));
        s_hi = nextafterf(s_hi, INFINITY);
    }
    memset(g, 0, sizeof *g);
    if (qz->ue8m0) {
        s_lo = fmaxf(s_lo, qz->s_floor); /* monotone: the floor keeps the order */
        s_hi = fmaxf(s_hi, qz->s_floor);
        /* each power of two from the rounded-up low end (lowered by a log2 that may land on the
         * power below) to the rounded-up high end */
        int c_lo = log2_ceil((double)s_lo / (1 + qz->log2_rel));
        int c_hi = log2_ceil((double)s_hi);
        if (c_hi > 127) c_hi = 128; /* the scale overflows to inf: q = 0 */
        int cnt = c_hi - c_lo + 1;
        if (cnt > MF_FP8_MAX_SCALES) {
            g->scales_clipped = 1;
            cnt = MF_FP8_MAX_SCALES;
        }
        g->nscales = cnt;
        for (int i = 0; i < cnt; i++) g->s_lo[i] = g->s_hi[i] = ldexpf(1.0f, c_lo + i);
    } else {
        g->nscales = 1;
        g->s_lo[0] = fmaxf(s_lo, qz->s_min); /* monotone, as the floor above */
        g->s_hi[0] = fmaxf(s_hi, qz->s_min);
    }
    g->rep_s = mf_fp8_quant_group(qz, rep, n, rep_q);
    int ambiguous = 0;
    for (int j = 0; j < n; j++) {
        double a = INFINITY, b = -INFINITY;
        for (int i = 0; i < g->nscales; i++) {
            double x, y;
            deq_range(qz, lo[j], hi[j], g->s_lo[i], g->s_hi[i], &x, &y);
            if (x < a) a = x;
            if (y > b) b = y;
        }
        dlo[j] = a;
        dhi[j] = b;
        ambiguous += a != b;
    }
    return ambiguous;
}

/* ---- the fused silu * up of vLLM's silu_and_mul_per_block_quant ---- */

/* [*lo, *hi]: every fp32 value expf(-g) may return, within ulps ulps of exp(-g). From the
 * directed roundings of exp(-g): an ulp of the result is at least half the spacing below
 * RD(exp(-g)) and at least the spacing above RU(exp(-g)), so 2 ulps + 1 steps down and
 * ulps + 1 steps up cover the error (outward). */
static void expf_range(mpfr_t m, float g, double ulps, float *lo, float *hi) {
    int k = (int)ceil(ulps);
    mpfr_set_flt(m, -g, MPFR_RNDN); /* exact */
    mpfr_exp(m, m, MPFR_RNDD);
    *lo = mpfr_get_flt(m, MPFR_RNDD);
    mpfr_set_flt(m, -g, MPFR_RNDN);
    mpfr_exp(m, m, MPFR_RNDU);
    *hi = mpfr_get_flt(m, MPFR_RNDU);
    for (int i = 0; i < 2 * k + 1; i++) *lo = nextafterf(*lo, 0.0f);
    for (int i = 0; i < k + 1 && isfinite(*hi); i++) *hi = nextafterf(*hi, INFINITY);
}

/* the kernel's steps (fused_silu_mul_block_quant.cu:58-60), each an IEEE fp32 operation */
static float silu_f32(float g, float e) {
    float sig = 1.0f / (1.0f + e);
    return g * sig;
}

int mf_silu_mul_f32_range(uint16_t g_lo, uint16_t g_hi, float u_lo, float u_hi, double exp_ulps,
                          uint16_t g_rep, float u_rep, float *lo, float *hi, float *rep) {
    if (!mf_bf16_is_finite(g_lo) || !mf_bf16_is_finite(g_hi)) return -1;
    mpfr_t m;
    mpfr_init2(m, 24);
    float smin = INFINITY, smax = -INFINITY;
    int n = 1;
    for (uint16_t b = g_lo; b != g_hi && n <= 64; b = mf_bf16_next_up(b)) n++;
    if (n <= 64) {
        /* each gate value: 1 + E, 1 / (.) and g * (.) are monotone in E (RN is monotone) */
        for (uint16_t b = g_lo;; b = mf_bf16_next_up(b)) {
            float g = mf_bf16_to_f32(b), e_lo, e_hi;
            expf_range(m, g, exp_ulps, &e_lo, &e_hi);
            float a = silu_f32(g, e_lo), c = silu_f32(g, e_hi);
            smin = fminf(smin, fminf(a, c));
            smax = fmaxf(smax, fmaxf(a, c));
            if (b == g_hi) break;
        }
    } else {
        /* many gate values (a range across zero's binades): a box, sig = fl(1 / fl(1 + E)) over
         * every E of every gate (E decreases in g), then fl(g sig) at the box's corners */
        float ga = mf_bf16_to_f32(g_lo), gb = mf_bf16_to_f32(g_hi), e_lo, e_hi, x;
        expf_range(m, ga, exp_ulps, &x, &e_hi);
        expf_range(m, gb, exp_ulps, &e_lo, &x);
        const float sl = 1.0f / (1.0f + e_hi), sh = 1.0f / (1.0f + e_lo);
        const float c[4] = {ga * sl, ga * sh, gb * sl, gb * sh};
        for (int i = 0; i < 4; i++) {
            smin = fminf(smin, c[i]);
            smax = fmaxf(smax, c[i]);
        }
        /* the corners ignore silu's minimum: no fl(g fl(1 / fl(1 + E))) of a bf16 gate with E
         * within 2 ulps of exp(-g) is below -0x1.1d259cp-2 (about -0.278464, at g = -1.28125;
         * a brute force over every finite bf16 gate) */
        if (exp_ulps <= 2) smin = fmaxf(smin, -0.2785f);
    }
    /* fl(s u) over a box: RN is monotone, so its extremes are at the corners */
    const float cs[4] = {smin * u_lo, smin * u_hi, smax * u_lo, smax * u_hi};
    *lo = *hi = cs[0];
    for (int i = 1; i < 4; i++) {
        *lo = fminf(*lo, cs[i]);
        *hi = fmaxf(*hi, cs[i]);
    }
    float g = mf_bf16_to_f32(g_rep);
    mpfr_set_flt(m, -g, MPFR_RNDN);
    mpfr_exp(m, m, MPFR_RNDN);
    *rep = silu_f32(g, mpfr_get_flt(m, MPFR_RNDN)) * u_rep;
    mpfr_clear(m);
    return isfinite(*lo) && isfinite(*hi) ? 0 : -1;
}

/* ---- exact block-scaled dot product ---- */

struct mf_fp8_dot_ws {
    int cap;        /* mpfr values: two per K block (the exact double-double c_b) */
    mpfr_ptr *ptrs;
    mpfr_t *vals;
    mpfr_t sum, t;
};

mf_fp8_dot_ws *mf_fp8_dot_ws_new(void) {
    mf_fp8_dot_ws *ws = calloc(1, sizeof *ws);
    if (!ws) return NULL;
    mpfr_inits2(160, ws->sum, ws->t, (mpfr_ptr)0);
    return ws;
}

void mf_fp8_dot_ws_free(mf_fp8_dot_ws *ws) {
    if (!ws) return;
    for (int i = 0; i < ws->cap; i++) mpfr_clear(ws->vals[i]);
    free(ws->vals);
    free(ws->ptrs);
    mpfr_clears(ws->sum, ws->t, (mpfr_ptr)0);
    free(ws);
}

static int ws_reserve(mf_fp8_dot_ws *ws, int n) {
    if (n <= ws->cap) return 1;
    int cap = n < 2 * ws->cap ? 2 * ws->cap : n;
    mpfr_t *v = realloc(ws->vals, sizeof *v * (size_t)cap);
    if (!v) return 0;
    ws->vals = v;
    mpfr_ptr *p = realloc(ws->ptrs, sizeof *p * (size_t)cap);
    if (!p) return 0;
    ws->ptrs = p;
    for (int i = ws->cap; i < cap; i++) mpfr_init2(ws->vals[i], 53);
    ws->cap = cap;
    return 1;
}

/* ---- tensor-core FP8 accumulation (docs/error-model.md, "FP8 on the tensor cores") ---- */

/* the exponent field of a nonzero e4m3 code, subnormals at the minimum normal exponent -6 */
static int e4m3_ef(uint8_t b) {
    int e = (b >> 3) & 15;
    return e ? e - 7 : -6;
}

/* ulp slack for the double arithmetic of the bounds below (each value a sum of < 2^8 terms) */
#define TC_UP (1 + 0x1p-44)

/* exact inputs: the steps' exact partial sums Sigma_j bound the accumulator C of each step,
 * |C - Sigma_{j-1}| <= R_{j-1}; the largest exponent field E of the step is at most
 * max(e(products), floor(log2(|Sigma_{j-1}| + R_{j-1}))); the products' truncation to 2^(E - F)
 * is computed exactly at that largest possible grid (it only grows with the grid); C loses less
 * than min(|C|, 2^(E - F)), nothing when its exponent is surely E and it has at most F + 1 bits
 * (P <= F + 1); the truncation of the sum to P bits loses less than 2^(floor(log2 |S|) + 1 - P) */
static double tc_bound_exact(const mf_fp8_acc *acc, const uint8_t *qa, const uint8_t *qw, size_t n,
                             int P) {
    const int F = acc->frac;
    double R = 0, sigma = 0; /* sigma: exact (multiples of 2^-18 below 2^35) */
    for (size_t s0 = 0; s0 < n; s0 += (size_t)acc->step) {
        size_t s1 = s0 + (size_t)acc->step < n ? s0 + (size_t)acc->step : n;
        int E = INT_MIN;
        double next = sigma;
        for (size_t j = s0; j < s1; j++) {
            double p = mf_fp8_decode(MF_FP8_E4M3, qa[j]) * mf_fp8_decode(MF_FP8_E4M3, qw[j]);
            if (p == 0) continue;
            int ef = e4m3_ef(qa[j]) + e4m3_ef(qw[j]);
            if (ef > E) E = ef;
            next += p;
        }
        const double cmax = (fabs(sigma) + R) * TC_UP, cmin = (fabs(sigma) - R) / TC_UP;
        if (s0 > 0 && cmax > 0 && ilogb(cmax) > E) E = ilogb(cmax);
        if (E == INT_MIN) continue; /* no term at all */
        const double G = ldexp(1.0, E - F);
        double tp = 0;
        for (size_t j = s0; j < s1; j++) {
            double ap = fabs(mf_fp8_decode(MF_FP8_E4M3, qa[j]) * mf_fp8_decode(MF_FP8_E4M3, qw[j]));
            tp += ap - floor(ap / G) * G; /* exact: ap has 8 bits */
        }
        double tc = 0;
        if (s0 > 0 && cmax > 0 && !(cmin >= ldexp(1.0, E) && P - 1 <= F)) tc = fmin(cmax, G);
        const double smax = (fabs(next) + R + tp + tc) * TC_UP;
        const double rz = smax > 0 && P < 64 ? ldexp(1.0, ilogb(smax) + 1 - P) : 0;
        R = (R + tp + tc + rz) * TC_UP;
        sigma = next;
    }
    return R;
}

double mf_fp8_tc_block_bound(const mf_fp8_acc *acc, const uint8_t *qa, const uint8_t *qw,
                             const double *delta, double sa, size_t n) {
    const int P = acc->res_bits > 0 && acc->res_bits < 24 ? acc->res_bits : 24;
    int exact = 1;
    for (size_t j = 0; delta && j < n; j++) exact &= delta[j] == 0;
    if (exact) return tc_bound_exact(acc, qa, qw, n, P) * sa * TC_UP;
    /* perturbed inputs, in units of s'_a: every magnitude m_j = (|qa_j| sa + delta_j) |w_j|
     * bounds |q'_j w_j| s'_a; 2^e(q'_j) <= 8 |q'_j| (an e4m3 subnormal is at least 2^-9, its
     * exponent field -6), so s'_a 2^E <= max(|C| s'_a, max_j 8 (|qa_j| sa + delta_j) 2^e(w_j));
     * each term loses less than min(|term|, 2^(E - F)) */
    const int F = acc->frac;
    double R = 0, A = 0;
    for (size_t s0 = 0; s0 < n; s0 += (size_t)acc->step) {
        size_t s1 = s0 + (size_t)acc->step < n ? s0 + (size_t)acc->step : n;
        double me = 0, astep = 0;
        for (size_t j = s0; j < s1; j++) {
            double w = mf_fp8_decode(MF_FP8_E4M3, qw[j]);
            double x = fabs(mf_fp8_decode(MF_FP8_E4M3, qa[j])) * sa + delta[j];
            if (w == 0 || x == 0) continue;
            me = fmax(me, 8 * x * ldexp(1.0, e4m3_ef(qw[j])));
            astep += x * fabs(w);
        }
        if (astep == 0) continue;
        const double cmax = s0 > 0 ? (A + R) * TC_UP : 0;
        const double G = fmax(cmax, me) * ldexp(1.0, -F);
        double tr = fmin(cmax, G);
        for (size_t j = s0; j < s1; j++) {
            double w = mf_fp8_decode(MF_FP8_E4M3, qw[j]);
            double x = fabs(mf_fp8_decode(MF_FP8_E4M3, qa[j])) * sa + delta[j];
            tr += fmin(x * fabs(w), G);
        }
        A += astep;
        const double smax = (A + R + tr) * TC_UP;
        R = (R + tr + ldexp(smax, 1 - P)) * TC_UP;
    }
    return R * TC_UP;
}

void mf_fp8_dot(mf_fp8_dot_ws *ws, const uint8_t *qa, const float *sa, const double *delta,
                const uint8_t *qw, const float *sw, size_t n, int bk, mf_fp8_dot_out *out) {
    mf_fp8_dot_acc(ws, qa, sa, delta, qw, sw, n, bk, NULL, out);
}

void mf_fp8_dot_acc(mf_fp8_dot_ws *ws, const uint8_t *qa, const float *sa, const double *delta,
                    const uint8_t *qw, const float *sw, size_t n, int bk, const mf_fp8_acc *acc,
                    mf_fp8_dot_out *out) {
    const int tc = acc && acc->step > 0;
    memset(out, 0, sizeof *out);
    int nb = (int)((n + (size_t)bk - 1) / (size_t)bk);
    if (!ws_reserve(ws, 2 * nb)) {
        out->nonfinite = 1; /* no memory: report a void value rather than a wrong one */
        out->hi = NAN;
        out->radius = INFINITY;
        return;
    }
    double sum_e = 0, sum_abs_acc = 0, acc_d = 0, abs_c = 0, abs_sum = 0;
    for (int b = 0; b < nb; b++) {
        size_t j0 = (size_t)b * (size_t)bk, j1 = j0 + (size_t)bk < n ? j0 + (size_t)bk : n;
        double S = (double)sa[b] * (double)sw[b]; /* exact: 24 x 24 bits */
        double P = 0, sum_abs_part = 0, sum_p = 0, D = 0;
        int bad = !isfinite(S);
        for (size_t j = j0; j < j1; j++) {
            double a = mf_fp8_decode(MF_FP8_E4M3, qa[j]), w = mf_fp8_decode(MF_FP8_E4M3, qw[j]);
            if (isnan(a) || isnan(w)) bad = 1;
            double p = a * w; /* exact: 8 significant bits, a multiple of 2^-18 */
            P += p;           /* exact: multiples of 2^-18 below 2^35 */
            sum_abs_part += fabs(P);
            sum_p += fabs(p);
            if (delta) D += delta[j] * fabs(w);
        }
        if (bad) {
            out->nonfinite = 1;
            out->hi = NAN;
            out->radius = INFINITY;
            return;
        }
        D *= 1 + 0x1p-40; /* the double roundings */
        double D_raw = D; /* sum delta_j |w_j|: before the weight scale */
        D *= fabs((double)sw[b]); /* dequantized units */
        double nbk = (double)(j1 - j0);
        /* the block's fp32 chain on the kernel's inputs, in dequantized units */
        double Rb = tc ? mf_fp8_tc_block_bound(acc, qa + j0, qw + j0, delta ? delta + j0 : NULL,
                                               (double)sa[b], j1 - j0) *
                             fabs((double)sw[b]) * TC_UP
                       : U * (sum_abs_part * fabs(S) + nbk * D) / (1 - nbk * U);
        double c_hi = P * S, c_lo = fma(P, S, -c_hi); /* exact: no underflow (|c| >= 2^-316) */
        double cabs = fabs(c_hi) + D + Rb;
        double e = D + Rb + (2 * U + U * U) * cabs + ETA * (fabs((double)sw[b]) * (1 + U) + 1);
        /* the intermediate fl(P s_a) (|q'_j| s'_a <= |q*_j| s_a + delta_j) and the block's term
         * must stay below the fp32 range */
        double mid = (sum_p * (double)sa[b] + D_raw) * (1 + 2 * nbk * U);
        if (mid >= 0x1p127 || cabs + e >= 0x1p127) out->may_overflow = 1;
        if (acc && acc->scale_order_any) {
            /* fl(P' s_w) first: P' is a multiple of 2^-18 (products and the chain's truncations
             * keep that grid), so it cannot underflow while |s_w| >= 2^-108 (below, its error
             * would scale with the kernel's s'_a, which is not bounded here: unconstrained);
             * |q'_j| <= 448 bounds it against overflow */
            double wsum = 0;
            for (size_t j = j0; j < j1; j++) wsum += fabs(mf_fp8_decode(MF_FP8_E4M3, qw[j]));
            if (fabs((double)sw[b]) < 0x1p-108 ||
                MF_E4M3_MAX * wsum * fabs((double)sw[b]) * (1 + 2 * nbk * U) >= 0x1p127)
                out->may_overflow = 1;
        }
        sum_e += e;
        acc_d += c_hi;
        abs_c += fabs(c_hi);
        sum_abs_acc += fabs(acc_d);
        abs_sum += sum_p * fabs(S) + D;
        mpfr_set_d(ws->vals[2 * b], c_hi, MPFR_RNDN);
        mpfr_set_d(ws->vals[2 * b + 1], c_lo, MPFR_RNDN);
        ws->ptrs[2 * b] = ws->vals[2 * b];
        ws->ptrs[2 * b + 1] = ws->vals[2 * b + 1];
    }
    /* exact sum of the blocks, correctly rounded to 160 bits */
    mpfr_sum(ws->sum, ws->ptrs, (unsigned long)(2 * nb), MPFR_RNDN);
    double hi = mpfr_get_d(ws->sum, MPFR_RNDN);
    mpfr_sub_d(ws->t, ws->sum, hi, MPFR_RNDN); /* exact at 160 bits */
    double lo = mpfr_get_d(ws->t, MPFR_RNDN);
    double err = (fabs(hi) + fabs(lo)) * 0x1p-159 + fabs(lo) * 0x1p-53;
    /* the running double sums approximate |A_b| within nb 2^-53 sum|c| each */
    sum_abs_acc += (double)nb * (double)nb * 0x1p-52 * abs_c;
    double R = (sum_e + U * sum_abs_acc + (double)nb * ETA) / (1 - (double)nb * U);
    R = R * (1 + 0x1p-30) + err;
    out->hi = hi;
    out->lo = lo;
    out->err = err;
    out->radius = R;
    out->abs_sum = abs_sum;
    if (abs_sum + R >= 0x1p127) out->may_overflow = 1;
}

/* ---- MXFP4 ---- */

/* Integer rounding of v >> sh to nearest, ties to even (sh >= 1). */
static uint32_t shift_rne(uint32_t v, int sh) {
    if (sh > 31) return 0;
    uint32_t q = v >> sh, rem = v & ((1u << sh) - 1), half = 1u << (sh - 1);
    return q + (rem > half || (rem == half && (q & 1)));
}

/* mf_fp8_encode(E4M3, bf16 value, saturate) on the bit pattern (the weights' hot path;
 * test_fp8 compares it with mf_fp8_encode on all 65536 patterns) */
static uint8_t e4m3_from_bf16_bits(uint16_t b) {
    uint8_t sign = (uint8_t)((b >> 8) & 0x80);
    int e = (b >> 7) & 0xff, m = b & 0x7f;
    if (e == 0xff) return m ? 0x7f : (uint8_t)(sign | 0x7e); /* NaN; inf saturates */
    if (e == 0 && m == 0) return sign;
    /* value = sig 2^(E - 7), sig = 128 + m (normal) or m (bf16 subnormal, E = -126) */
    int E = e ? e - 127 : -126;
    uint32_t sig = e ? 128u + (uint32_t)m : (uint32_t)m;
    uint32_t code;
    if (E >= -6) {
        /* normal e4m3 range: keep 3 fraction bits; a carry moves to the next binade */
        uint32_t r = shift_rne(sig, 4); /* in [8, 16] */
        int Eq = E;
        if (r == 16) r = 8, Eq++;
        if (Eq > 8 || (Eq == 8 && r > 14)) return (uint8_t)(sign | 0x7e); /* above 448 */
        code = (uint32_t)(Eq + 7) << 3 | (r - 8);
    } else {
        /* multiples of 2^-9: sig 2^(E - 7) / 2^-9 = sig 2^(E + 2) */
        code = shift_rne(sig, -(E + 2)); /* at most 8: 8 is 2^-6, the first normal code */
    }
    return (uint8_t)(sign | code);
}

static uint8_t e4m3_of_bf16[65536];
static pthread_once_t e4m3_once = PTHREAD_ONCE_INIT;

static void e4m3_table_init(void) {
    for (uint32_t b = 0; b < 65536; b++) e4m3_of_bf16[b] = e4m3_from_bf16_bits((uint16_t)b);
}

void mf_e4m3_from_bf16(const uint16_t *in, size_t n, uint8_t *out) {
    pthread_once(&e4m3_once, e4m3_table_init);
    for (size_t i = 0; i < n; i++) out[i] = e4m3_of_bf16[in[i]];
}

/* the nearest e2m1 code to v (ties to even: the code with an even significand), saturating */
static uint8_t e2m1_encode(double v) {
    uint8_t sign = signbit(v) ? 8 : 0;
    double a = fabs(v);
    static const double grid[8] = {0, 0.5, 1, 1.5, 2, 3, 4, 6};
    uint8_t best = 7;
    for (uint8_t c = 0; c < 7; c++) {
        double mid = (grid[c] + grid[c + 1]) / 2;
        if (a < mid || (a == mid && (c & 1) == 0)) {
            best = c;
            break;
        }
    }
    return (uint8_t)(sign | best);
}

void mf_mxfp4_pack_bf16(const uint16_t *in, size_t K, uint8_t *packed, uint8_t *scales) {
    memset(packed, 0, (K + 1) / 2);
    for (size_t b = 0; b * 32 < K; b++) {
        const uint16_t *v = in + b * 32;
        int m = K - b * 32 < 32 ? (int)(K - b * 32) : 32;
        double amax = 0;
        int nan = 0;
        for (int i = 0; i < m; i++) {
            double x = (double)mf_bf16_to_f32(v[i]);
            if (isnan(x)) nan = 1;
            else if (fabs(x) > amax) amax = fabs(x);
        }
        int e = 0;
        if (nan) {
            scales[b] = 0xff;
        } else {
            if (amax > 0 && isfinite(amax)) {
                frexp(amax, &e);
                e = e - 1 - 2; /* floor(log2 amax) - 2 */
            } else {
                e = isinf(amax) ? 127 : 0;
            }
            if (e < -127) e = -127;
            if (e > 127) e = 127;
            scales[b] = (uint8_t)(e + 127);
        }
        for (int i = 0; i < m; i++) {
            double x = (double)mf_bf16_to_f32(v[i]);
            uint8_t c = nan ? 0 : e2m1_encode(ldexp(x, -e));
            size_t at = b * 32 + (size_t)i;
            packed[at / 2] |= (uint8_t)((at & 1) ? c << 4 : c);
        }
    }
}

void mf_mxfp4_dequant_bf16(const uint8_t *packed, const uint8_t *scales, size_t K, uint16_t *out) {
    for (size_t i = 0; i < K; i++) {
        uint8_t byte = packed[i / 2];
        uint8_t c = (i & 1) ? (uint8_t)(byte >> 4) : (uint8_t)(byte & 0xf);
        double v = mf_e2m1_decode(c) * mf_ue8m0_decode(scales[i / 32]);
        /* exact in double; e2m1 has 2 significant bits, so the product is a bf16 value unless it
         * exceeds bf16's range (rounds to inf) or is NaN (scale 0xff) */
        out[i] = mf_f64_to_bf16(v);
    }
}
