/* route.c: exact routing, key intervals, admissible selections and weights (see route.h).
 *
 * Radii (docs/error-model.md, "Routing"); u = 2^-24, one fp32 ulp <= 2^-23 |v|:
 *   sigmoid  s = 1/(1 + expf(-l)):  rho_s = s((1-s) eps_exp + u + eps_div) + s eta_exp + 2^-149
 *   softmax  p = expf(l - m) / sum:  rho_p = p(rel_e + rel_S + eps_div) + absolute underflow terms
 *            rel_e = eps_exp + u|l - m|, rel_S = sum_j rel_j p_j + gamma_{E-1}
 *   none     s = l (the logit):      rho_s = 0
 *   key      k = s + b (fp32 add):   rho_k = rho_s + u(|k| + rho_s) + 2^-149
 *   group    top-2 sum: [sum top2(lo), sum top2(hi)] widened by one fp32 add; max: [max lo, max hi]
 *   routing in the logits' dtype (router_logits_dtype, bf16 logits): each of the above, and each
 *   step of the weight, also rounded to bf16: + u_b |v| + 2^-134, u_b = 2^-8
 * All interval arithmetic in double is widened by 2^-48 of the operand magnitudes.
 */
#include "route.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mpfr.h>

#include "bf16.h"

#define ROUTE_PREC 96 /* exact scores to 2^-95 relative; the residue goes into the radii */

static const double U = 0x1p-24;
static const double ETA = 0x1p-149;

static inline double widen_amount(double mag) { return fabs(mag) * 0x1p-48 + 0x1p-1074; }

/* One rounding to bf16: at most UB |v| + ETA_B (half the bf16 subnormal spacing 2^-133). */
static const double UB = 0x1p-8;
static const double ETA_B = 0x1p-134;

/* The router computes in bf16 (router_logits_dtype with bf16 logits). */
static int route_bf16(const mf_moe_params *p, const mf_contract *c) {
    return c->router_logits_dtype && p->logits_dtype == MF_DTYPE_BF16;
}

void mf_routing_free(mf_routing *r) {
    if (!r) return;
    free(r->invariant_only);
    free(r->n_ambiguous);
    free(r->n_group_ambiguous);
    free(r->ref_ids);
    free(r->s_hi);
    free(r->s_lo);
    free(r->s_rad);
    free(r->key);
    free(r->key_lo);
    free(r->key_hi);
    free(r->cls);
    free(r->tie);
    free(r->g_key);
    free(r->g_lo);
    free(r->g_hi);
    free(r->g_cls);
    free(r->g_tie);
    memset(r, 0, sizeof *r);
}

/* ---- scores ---- */

static void mpfr_to_dd(const mpfr_t v, mpfr_t tmp, double *hi, double *lo) {
    *hi = mpfr_get_d(v, MPFR_RNDN);
    mpfr_sub_d(tmp, v, *hi, MPFR_RNDN);
    *lo = mpfr_get_d(tmp, MPFR_RNDN);
}

/* Radius of the tanh form s = fma(tanh(0.5 l), 0.5, 0.5): tanh's relative error on t = 2s - 1,
 * halved, the FMA's rounding and one underflow (0.5 l is exact above the subnormal range). */
static double tanh_form_radius(const mf_contract *c, double s) {
    double t = fabs(2 * s - 1);
    double dt = 0.5 * c->tanh_rel * t;
    return (dt + U * (s + dt)) * (1 + 0x1p-20) + 2 * mf_contract_eta(c) + s * 0x1p-90;
}

static void scores_sigmoid(const mf_contract *c, const float *L, int E, double *s_hi,
                           double *s_lo, double *s_rad, mpfr_t a, mpfr_t tmp) {
    double udiv = mf_contract_router_div_rel(c);
    double eta = mf_contract_eta(c);
    /* 1 + exp(-l) above 2^126 (fast division: 0) or above the fp32 range (exp overflows) */
    double zero_above = mf_contract_div_zero_domain(c->router.own ? c->router.div : c->div)
                            ? 87.0
                            : 88.5;
    for (int e = 0; e < E; e++) {
        double l = (double)L[e];
        mpfr_set_d(a, -l, MPFR_RNDN); /* exact */
        mpfr_exp(a, a, MPFR_RNDN);
        mpfr_add_ui(a, a, 1, MPFR_RNDN);
        mpfr_ui_div(a, 1, a, MPFR_RNDN);
        mpfr_to_dd(a, tmp, &s_hi[e], &s_lo[e]);
        double s = s_hi[e];
        if (isinf(l)) { /* (nonfinite = zero only) every form gives exactly 0 or 1 */
            s_rad[e] = eta;
            continue;
        }
        double rep = s * 0x1p-90; /* MPFR and double-double representation */
        double r_tanh = c->sigmoid_form == MF_SIGMOID_EXP_DIV ? 0 : tanh_form_radius(c, s);
        if (c->sigmoid_form == MF_SIGMOID_TANH) {
            s_rad[e] = r_tanh;
            continue;
        }
        if (-l > zero_above) {
            /* expf(-l) may overflow to inf, or the fast division's divisor exceed 2^126: the
             * kernel's score may be 0 */
            s_rad[e] = s * (1 + 0x1p-20) + eta + rep;
            if (r_tanh > s_rad[e]) s_rad[e] = r_tanh;
            continue;
        }
        double eps_e = mf_contract_router_exp_rel(c, -l);
        double abs_e = eps_e * 0x1p23 * ETA; /* same ulps at the subnormal scale */
        double one_minus = 1.0 - s;
        if (one_minus < 0) one_minus = 0;
        s_rad[e] = s * (one_minus * eps_e + U + udiv) * (1 + 0x1p-20) + s * abs_e + eta + rep;
        if (r_tanh > s_rad[e]) s_rad[e] = r_tanh;
    }
}

void mf_route_sigmoid(const mf_contract *c, const float *L, int n, double *s_hi, double *s_lo,
                      double *s_rad) {
    mpfr_t a, tmp;
    mpfr_inits2(ROUTE_PREC, a, tmp, (mpfr_ptr)0);
    scores_sigmoid(c, L, n, s_hi, s_lo, s_rad, a, tmp);
    mpfr_clears(a, tmp, (mpfr_ptr)0);
}

/* sqrt(softplus(l)) (DeepSeek-V4), the kernel's fp32 form sqrt(log1p(exp(l))) (under a fast-math
 * router sqrt(__logf(1 + __expf(l)))), or sqrt(l) for
 * l > 20 (torch's threshold: softplus(l) - l < 2.1e-9 there). With e' = exp(l)(1 + d_e) (plus
 * the subnormal scale's absolute error), log1p within 4 ulps, sqrt correctly rounded: the
 * softplus p' is within dp = sigmoid(l) d_e (1 + 2 d_e) + 4u (sp + ...) + abs of sp, and
 * |sqrt(p') - sqrt(sp)| <= min(dp / s, sqrt(dp)) (docs/error-model.md). */
static void scores_sqrt_softplus(const mf_contract *c, const float *L, int E, double *s_hi,
                                 double *s_lo, double *s_rad, mpfr_t a, mpfr_t tmp) {
    double eta = mf_contract_eta(c);
    /* a router of fast-math intrinsics computes log(1 + exp) as __logf(1.f + __expf(l)) (vLLM
     * 0.33's csrc/moe/topk_softplus_sqrt_kernels.cu l. 116, 173, 425, 502), not log1pf */
    int fast_log = (c->router.own ? c->router.exp : c->exp) == MF_EXP_FAST;
    for (int e = 0; e < E; e++) {
        double l = (double)L[e];
        /* softplus(l) = max(l, 0) + log1p(exp(-|l|)): no overflow for large logits */
        mpfr_set_d(a, -fabs(l), MPFR_RNDN); /* exact */
        mpfr_exp(a, a, MPFR_RNDN);
        mpfr_log1p(a, a, MPFR_RNDN);
        if (l > 0) mpfr_add_d(a, a, l, MPFR_RNDN);
        double sp = mpfr_get_d(a, MPFR_RNDN);
        mpfr_sqrt(a, a, MPFR_RNDN);
        mpfr_to_dd(a, tmp, &s_hi[e], &s_lo[e]);
        double s = s_hi[e];
        if (isinf(l)) { /* -inf: exactly 0; +inf: inf (zeroed under nonfinite = zero) */
            s_rad[e] = l < 0 ? eta : INFINITY;
            continue;
        }
        double dp;
        if (l > 20) { /* the kernel takes l itself: softplus(l) - l = log1p(exp(-l)) < 2.1e-9 */
            dp = 2.1e-9 + sp * 0x1p-60;
        } else {
            double de = mf_contract_router_exp_rel(c, l);
            double sig = 1.0 / (1.0 + exp(-l));
            double abs_e = de * 0x1p23 * ETA + eta; /* exp's error at the subnormal scale */
            dp = sig * de * (1 + 2 * de) + 4 * U * (sp + sig * de) + 2 * abs_e + sp * 0x1p-60;
            /* a fast-math router's log: __logf of fl(1 + e'): the add's rounding (at most u
             * absolute in the log) and __logf's own error, 2^-21.41 absolute on [0.5, 2], 3 ulps
             * elsewhere (CUDA's intrinsic table): exactly 0 where 1 + e' rounds to 1 */
            if (fast_log) dp += 0x1p-21 + U + 0x1p-21 * sp;
        }
        double ds = s > 0 ? dp / s : INFINITY, dr = sqrt(dp);
        double d = ds < dr ? ds : dr;
        s_rad[e] = (d + U * (s + d)) * (1 + 0x1p-20) + eta + s * 0x1p-90;
    }
}

/* none (FlashInfer's TopK): the score is the fp32 logit itself, exact in every kernel. */
static void scores_none(const float *L, int E, double *s_hi, double *s_lo, double *s_rad) {
    for (int e = 0; e < E; e++) {
        s_hi[e] = (double)L[e];
        s_lo[e] = s_rad[e] = 0;
    }
}

static void scores_softmax(const mf_contract *c, const float *L, int E, double *s_hi,
                           double *s_lo, double *s_rad, mpfr_t a, mpfr_t sum, mpfr_t tmp,
                           mpfr_t *ex) {
    /* e fl(1 / Z) rounds twice: one more u than e / Z */
    double udiv = mf_contract_router_div_rel(c) + (c->softmax_recip ? U : 0);
    double eta = mf_contract_eta(c);
    float m = L[0];
    for (int e = 1; e < E; e++)
        if (L[e] > m) m = L[e];
    mpfr_set_ui(sum, 0, MPFR_RNDN);
    for (int e = 0; e < E; e++) {
        mpfr_set_flt(a, L[e], MPFR_RNDN);
        mpfr_sub_d(a, a, (double)m, MPFR_RNDN);
        mpfr_exp(ex[e], a, MPFR_RNDN);
        mpfr_add(sum, sum, ex[e], MPFR_RNDN);
    }
    double eps_max = 0;
    for (int e = 0; e < E; e++) {
        mpfr_div(a, ex[e], sum, MPFR_RNDN);
        mpfr_to_dd(a, tmp, &s_hi[e], &s_lo[e]);
    }
    /* relative error of each computed exp (argument rounding u|d| included), and of the sum */
    double relS = 0, abs_e_max = 0;
    double gamma = (double)(E - 1) * U / (1 - (double)(E - 1) * U);
    for (int e = 0; e < E; e++) {
        double d = (double)L[e] - (double)m;
        if (isinf(d)) { /* a -inf logit (nonfinite = zero only): exp gives exactly 0 */
            s_rad[e] = 0;
            continue;
        }
        double eps_e = mf_contract_router_exp_rel(c, d);
        double abs_e = eps_e * 0x1p23 * ETA + eta;
        if (abs_e > abs_e_max) abs_e_max = abs_e;
        double rel = d < -104 ? 0 : eps_e + 1.01 * U * fabs(d);
        s_rad[e] = rel; /* temporarily the relative error of the computed exp */
        relS += rel * s_hi[e];
        if (eps_e > eps_max) eps_max = eps_e;
    }
    relS = relS * (1 + 0x1p-40) + gamma + (double)E * abs_e_max; /* sum >= 1 (the max term) */
    for (int e = 0; e < E; e++) {
        double p = s_hi[e];
        s_rad[e] = p * (s_rad[e] + relS + udiv) * (1 + 0x1p-20) + (1 + E) * abs_e_max + eta +
                   p * 0x1p-90;
    }
}

/* ---- tie classes: bit-identical (logit, bias) ---- */

typedef struct keyed {
    uint64_t k;
    int idx;
} keyed;

static int cmp_keyed(const void *a, const void *b) {
    const keyed *x = a, *y = b;
    if (x->k != y->k) return x->k < y->k ? -1 : 1;
    return x->idx - y->idx;
}

static uint64_t input_bits(const float *L, const float *bias, int e) {
    uint64_t hi = mf_f32_bits(L[e]);
    uint64_t lo = bias ? mf_f32_bits(bias[e]) : 0;
    return hi << 32 | lo;
}

static void tie_classes(const float *L, const float *bias, int E, int *tie, keyed *scratch,
                        mf_tie_rule rule) {
    if (rule == MF_TIE_ANY) { /* no order among twins: each expert is its own class */
        for (int e = 0; e < E; e++) tie[e] = e;
        return;
    }
    for (int e = 0; e < E; e++) {
        scratch[e].k = input_bits(L, bias, e);
        scratch[e].idx = e;
    }
    qsort(scratch, (size_t)E, sizeof *scratch, cmp_keyed);
    int first = 0;
    for (int i = 0; i < E; i++) {
        if (i > 0 && scratch[i].k != scratch[i - 1].k) first = i;
        tie[scratch[i].idx] = scratch[first].idx; /* sorted by idx within equal k */
    }
}

static void group_tie_classes(const float *L, const float *bias, int n_group, int G, int *g_tie,
                              keyed *scratch, uint64_t *sig, mf_tie_rule rule) {
    if (rule == MF_TIE_ANY) {
        for (int g = 0; g < n_group; g++) g_tie[g] = g;
        return;
    }
    /* signature of a group: its members' sorted input bits */
    for (int g = 0; g < n_group; g++) {
        for (int i = 0; i < G; i++) {
            scratch[i].k = input_bits(L, bias, g * G + i);
            scratch[i].idx = i;
        }
        qsort(scratch, (size_t)G, sizeof *scratch, cmp_keyed);
        for (int i = 0; i < G; i++) sig[(size_t)g * G + i] = scratch[i].k;
    }
    for (int g = 0; g < n_group; g++) {
        g_tie[g] = g;
        for (int h = 0; h < g; h++) {
            if (g_tie[h] != h) continue;
            if (memcmp(&sig[(size_t)g * G], &sig[(size_t)h * G], sizeof(uint64_t) * G) == 0) {
                g_tie[g] = h;
                break;
            }
        }
    }
}

/* ---- ordering helpers ---- */

typedef struct ranked {
    double key;
    int idx;
} ranked;

static int cmp_ranked_desc(const void *a, const void *b) {
    const ranked *x = a, *y = b;
    if (x->key != y->key) return x->key > y->key ? -1 : 1;
    return x->idx - y->idx;
}

void mf_ref_rank(const double *key, int n, int *order) {
    ranked *rk = malloc(sizeof *rk * (size_t)(n > 0 ? n : 1));
    if (!rk) { /* index order: still a permutation */
        for (int i = 0; i < n; i++) order[i] = i;
        return;
    }
    for (int i = 0; i < n; i++) rk[i] = (ranked){key[i], i};
    qsort(rk, (size_t)n, sizeof *rk, cmp_ranked_desc);
    for (int i = 0; i < n; i++) order[i] = rk[i].idx;
    free(rk);
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* number of entries of sorted ascending v[0..n) that are >= x */
static int count_ge(const double *v, int n, double x) {
    int lo = 0, hi = n;
    while (lo < hi) {
        int mid = (lo + hi) / 2;
        if (v[mid] >= x) hi = mid;
        else lo = mid + 1;
    }
    return n - lo;
}

/* number of entries of sorted ascending v[0..n) that are > x */
static int count_gt(const double *v, int n, double x) {
    int lo = 0, hi = n;
    while (lo < hi) {
        int mid = (lo + hi) / 2;
        if (v[mid] > x) hi = mid;
        else lo = mid + 1;
    }
    return n - lo;
}

/* ---- per-token routing ---- */

typedef struct route_scratch {
    keyed *keyed;
    uint64_t *sig;
    ranked *rk;
    double *sorted_a, *sorted_b;
    int *ties_before, *ties_after, *ties_in;
    mpfr_t *ex;
    int E;
} route_scratch;

static void group_intervals(const mf_moe_params *p, const mf_contract *c, mf_routing *r, int t) {
    const double eta = mf_contract_eta(c);
    int E = p->E, G = mf_group_size(p);
    const double *key = r->key + (size_t)t * E;
    const double *lo = r->key_lo + (size_t)t * E, *hi = r->key_hi + (size_t)t * E;
    for (int g = 0; g < p->n_group; g++) {
        double gk, gl, gh;
        if (p->group_rule == MF_GROUP_MAX || G == 1) {
            gk = key[g * G], gl = lo[g * G], gh = hi[g * G];
            for (int i = 1; i < G; i++) {
                int e = g * G + i;
                if (key[e] > gk) gk = key[e];
                if (lo[e] > gl) gl = lo[e];
                if (hi[e] > gh) gh = hi[e];
            }
        } else {
            /* sum of the two largest (exact keys; and of the lower / upper bounds separately:
             * the top-2 sum is monotone in every key) */
            double k1 = -INFINITY, k2 = -INFINITY, l1 = -INFINITY, l2 = -INFINITY,
                   h1 = -INFINITY, h2 = -INFINITY;
            for (int i = 0; i < G; i++) {
                int e = g * G + i;
                if (key[e] > k1) k2 = k1, k1 = key[e];
                else if (key[e] > k2) k2 = key[e];
                if (lo[e] > l1) l2 = l1, l1 = lo[e];
                else if (lo[e] > l2) l2 = lo[e];
                if (hi[e] > h1) h2 = h1, h1 = hi[e];
                else if (hi[e] > h2) h2 = hi[e];
            }
            gk = k1 + k2;
            gl = l1 + l2;
            gh = h1 + h2;
            double mag = fabs(l1) + fabs(l2) + fabs(h1) + fabs(h2);
            gl -= U * fabs(gl) + eta + widen_amount(mag); /* the kernel's fp32 add */
            gh += U * fabs(gh) + eta + widen_amount(mag);
            if (route_bf16(p, c)) { /* the sum in the keys' dtype, bf16 */
                gl -= UB * fabs(gl) + ETA_B;
                gh += UB * fabs(gh) + ETA_B;
            }
        }
        size_t gi = (size_t)t * p->n_group + g;
        r->g_key[gi] = gk;
        r->g_lo[gi] = gl;
        r->g_hi[gi] = gh;
    }
}

/* Classes of groups and experts, and the exact reference selection, for token t. */
static void classify(const mf_moe_params *p, mf_routing *r, int t, route_scratch *sc) {
    int E = p->E, G = mf_group_size(p), NG = p->n_group, k = p->top_k;
    const double *key = r->key + (size_t)t * E;
    const double *lo = r->key_lo + (size_t)t * E, *hi = r->key_hi + (size_t)t * E;
    const int *tie = r->tie + (size_t)t * E;
    uint8_t *cls = r->cls + (size_t)t * E;
    uint8_t *gcls = r->g_cls + (size_t)t * NG;
    const double *glo = r->g_lo + (size_t)t * NG, *ghi = r->g_hi + (size_t)t * NG;
    const int *gtie = r->g_tie + (size_t)t * NG;
    int namb_g = 0;

    /* groups */
    if (NG == 1) {
        gcls[0] = MF_ROUTE_IN;
    } else {
        for (int g = 0; g < NG; g++) {
            int could = 0, sure = 0;
            for (int h = 0; h < NG; h++) {
                if (h == g) continue;
                if (gtie[h] == gtie[g]) {
                    could += h < g;
                    sure += h < g;
                    continue;
                }
                could += ghi[h] >= glo[g];
                sure += glo[h] > ghi[g];
            }
            gcls[g] = could < p->topk_group ? MF_ROUTE_IN
                      : sure >= p->topk_group ? MF_ROUTE_OUT
                                              : MF_ROUTE_AMBIGUOUS;
            namb_g += gcls[g] == MF_ROUTE_AMBIGUOUS;
        }
    }
    r->n_group_ambiguous[t] = namb_g;

    /* experts: sorted hi over non-dropped groups, sorted lo over certainly kept groups */
    int na = 0, nb = 0;
    for (int e = 0; e < E; e++) {
        uint8_t gc = gcls[e / G];
        if (gc != MF_ROUTE_OUT) sc->sorted_a[na++] = hi[e];
        if (gc == MF_ROUTE_IN) sc->sorted_b[nb++] = lo[e];
    }
    qsort(sc->sorted_a, (size_t)na, sizeof(double), cmp_double);
    qsort(sc->sorted_b, (size_t)nb, sizeof(double), cmp_double);
    /* identical experts (same tie class) of lower / higher index, among non-dropped groups
     * (nd) and among certainly kept groups (in); class ids are the lowest member index */
    int *total_nd = sc->ties_after, *seen_nd = sc->ties_before;
    for (int e = 0; e < E; e++) total_nd[e] = seen_nd[e] = 0;
    for (int e = 0; e < E; e++)
        if (gcls[e / G] != MF_ROUTE_OUT) total_nd[tie[e]]++;
    int *seen_in = sc->ties_in;
    for (int e = 0; e < E; e++) seen_in[e] = 0;
    int namb = 0;
    for (int e = 0; e < E; e++) {
        uint8_t gc = gcls[e / G];
        int before_in = seen_in[tie[e]];
        if (gc == MF_ROUTE_IN) seen_in[tie[e]]++;
        if (gc == MF_ROUTE_OUT) {
            cls[e] = MF_ROUTE_OUT;
            continue;
        }
        int after_nd = total_nd[tie[e]] - seen_nd[tie[e]] - 1;
        seen_nd[tie[e]]++;
        /* could beat e: hi_j >= lo_e, minus e itself and identical experts of higher index */
        int could = count_ge(sc->sorted_a, na, lo[e]) - 1 - after_nd;
        /* surely beat e: lo_j > hi_e, plus identical experts of lower index in kept groups */
        int sure = count_gt(sc->sorted_b, nb, hi[e]) + before_in;
        if (gc == MF_ROUTE_IN && could < k) cls[e] = MF_ROUTE_IN;
        else if (sure >= k) cls[e] = MF_ROUTE_OUT;
        else cls[e] = MF_ROUTE_AMBIGUOUS;
        namb += cls[e] == MF_ROUTE_AMBIGUOUS;
    }
    r->n_ambiguous[t] = namb;

    /* exact selection: groups by exact score, then experts, ties to the lower index */
    uint8_t kept_buf[1024];
    uint8_t *kept = NG <= 1024 ? kept_buf : malloc((size_t)NG);
    if (NG == 1) {
        kept[0] = 1;
    } else {
        for (int g = 0; g < NG; g++) {
            sc->rk[g].key = r->g_key[(size_t)t * NG + g];
            sc->rk[g].idx = g;
            kept[g] = 0;
        }
        qsort(sc->rk, (size_t)NG, sizeof(ranked), cmp_ranked_desc);
        for (int i = 0; i < p->topk_group; i++) kept[sc->rk[i].idx] = 1;
    }
    int n = 0;
    int mask_zero = (p->variant & MF_VARIANT_MASK_ZERO) && NG > 1;
    for (int e = 0; e < E; e++) {
        if (!kept[e / G] && !mask_zero) continue;
        sc->rk[n].key = kept[e / G] ? key[e] : 0.0; /* a 0-masking kernel keeps them at 0 */
        sc->rk[n].idx = e;
        n++;
    }
    qsort(sc->rk, (size_t)n, sizeof(ranked), cmp_ranked_desc);
    for (int i = 0; i < k; i++) r->ref_ids[(size_t)t * k + i] = i < n ? sc->rk[i].idx : -1;
    if (kept != kept_buf) free(kept);
}

/* Token t routes as token src (bit-identical logits; the bias is shared). */
static void copy_token(mf_routing *r, int src, int t) {
    size_t E = (size_t)r->E, NG = (size_t)r->n_group, k = (size_t)r->top_k;
#define COPY_(a, n) memcpy(r->a + (size_t)t * (n), r->a + (size_t)src * (n), sizeof *r->a * (n))
    COPY_(invariant_only, 1);
    COPY_(n_ambiguous, 1);
    COPY_(n_group_ambiguous, 1);
    COPY_(ref_ids, k);
    COPY_(s_hi, E);
    COPY_(s_lo, E);
    COPY_(s_rad, E);
    COPY_(key, E);
    COPY_(key_lo, E);
    COPY_(key_hi, E);
    COPY_(cls, E);
    COPY_(tie, E);
    COPY_(g_key, NG);
    COPY_(g_lo, NG);
    COPY_(g_hi, NG);
    COPY_(g_cls, NG);
    COPY_(g_tie, NG);
#undef COPY_
}

/* The router's non-finite policy "zero" (vLLM topk_softmax / topk_sigmoid): a score that is
 * not finite becomes 0. As logits, into Lz: sigmoid maps a NaN logit to -inf (score 0; +-inf
 * give exactly 1 and 0); softmax of a row with a NaN or +inf logit, or with no finite one, is
 * NaN everywhere, so every score is 0: returns 1 (Lz all -inf, the tie classes of equal
 * scores); otherwise its -inf logits have score exactly 0. */
static int zero_scores_logits(mf_score_fn score, const float *L, int E, float *Lz) {
    int nan_row = 1;
    for (int e = 0; e < E; e++) {
        Lz[e] = isnan(L[e]) ? -INFINITY : L[e];
        if (isfinite(L[e])) nan_row = 0;
    }
    if (score == MF_SCORE_NONE) { /* the logit is the score: a non-finite one becomes 0 */
        for (int e = 0; e < E; e++) Lz[e] = isfinite(L[e]) ? L[e] : 0.0f;
        return 0;
    }
    if (score == MF_SCORE_SQRT_SOFTPLUS) /* +inf gives an infinite score: zeroed */
        for (int e = 0; e < E; e++)
            if (L[e] == INFINITY) Lz[e] = -INFINITY;
    if (score != MF_SCORE_SOFTMAX) return 0;
    for (int e = 0; e < E; e++)
        if (isnan(L[e]) || L[e] == INFINITY) nan_row = 1;
    if (nan_row)
        for (int e = 0; e < E; e++) Lz[e] = -INFINITY;
    return nan_row;
}

mf_status mf_ref_route(const mf_moe_params *p, const mf_moe_tensors *x, const mf_contract *c,
                       mf_routing *r, mf_error *err) {
    memset(r, 0, sizeof *r);
    int T = p->T, E = p->E, NG = p->n_group, k = p->top_k;
    if (T < 1 || E < 1 || k < 1 || k > E || k > MF_MAX_TOP_K || NG < 1 || E % NG != 0 ||
        p->topk_group < 1 || p->topk_group > NG || p->topk_group * (E / NG) < k)
        return MF_FAIL(err, MF_EINVAL,
                       "routing parameters out of domain: T=%d E=%d top_k=%d n_group=%d "
                       "topk_group=%d",
                       T, E, k, NG, p->topk_group);
    size_t TE = (size_t)T * E, TG = (size_t)T * NG;
    r->T = T, r->E = E, r->n_group = NG, r->top_k = k;
    r->invariant_only = calloc((size_t)T, 1);
    r->n_ambiguous = calloc((size_t)T, sizeof(int));
    r->n_group_ambiguous = calloc((size_t)T, sizeof(int));
    r->ref_ids = calloc((size_t)T * k, sizeof(int));
    r->s_hi = calloc(TE, sizeof(double));
    r->s_lo = calloc(TE, sizeof(double));
    r->s_rad = calloc(TE, sizeof(double));
    r->key = calloc(TE, sizeof(double));
    r->key_lo = calloc(TE, sizeof(double));
    r->key_hi = calloc(TE, sizeof(double));
    r->cls = calloc(TE, 1);
    r->tie = calloc(TE, sizeof(int));
    r->g_key = calloc(TG, sizeof(double));
    r->g_lo = calloc(TG, sizeof(double));
    r->g_hi = calloc(TG, sizeof(double));
    r->g_cls = calloc(TG, 1);
    r->g_tie = calloc(TG, sizeof(int));
    route_scratch sc = {0};
    sc.E = E;
    sc.keyed = calloc((size_t)E, sizeof(keyed));
    sc.sig = calloc((size_t)E, sizeof(uint64_t));
    sc.rk = calloc((size_t)E, sizeof(ranked));
    sc.sorted_a = calloc((size_t)E, sizeof(double));
    sc.sorted_b = calloc((size_t)E, sizeof(double));
    sc.ties_before = calloc((size_t)E, sizeof(int));
    sc.ties_after = calloc((size_t)E, sizeof(int));
    sc.ties_in = calloc((size_t)E, sizeof(int));
    sc.ex = calloc((size_t)E, sizeof(mpfr_t));
    mf_status st = MF_OK;
    if (!r->invariant_only || !r->n_ambiguous || !r->n_group_ambiguous || !r->ref_ids ||
        !r->s_hi || !r->s_lo || !r->s_rad || !r->key || !r->key_lo || !r->key_hi || !r->cls ||
        !r->tie || !r->g_key || !r->g_lo || !r->g_hi || !r->g_cls || !r->g_tie || !sc.keyed ||
        !sc.sig || !sc.rk || !sc.sorted_a || !sc.sorted_b || !sc.ties_before ||
        !sc.ties_after || !sc.ties_in || !sc.ex) {
        st = MF_FAIL(err, MF_ENOMEM, "routing: out of memory (T=%d, E=%d)", T, E);
        goto done;
    }
    if (p->preroute != MF_PREROUTE_NONE) {
        /* the given routing: no router runs, so nothing is ambiguous and there are no keys */
        if (!x->topk_ids_in || !x->topk_weights_in) {
            st = MF_FAIL(err, MF_EINVAL, "pre-routed input without topk_ids_in/topk_weights_in");
            goto done;
        }
        for (size_t i = 0; i < (size_t)T * k; i++) {
            int32_t id = x->topk_ids_in[i];
            /* the counterfactual reads an empty slot as the last expert (torch's x[-1]) */
            r->ref_ids[i] = id == -1 && (p->variant & MF_VARIANT_EMPTY_SLOT_WRAPPED) ? E - 1 : id;
        }
        r->given_w = x->topk_weights_in;
        goto done;
    }
    mpfr_t a, sum, tmp;
    mpfr_inits2(ROUTE_PREC, a, sum, tmp, (mpfr_ptr)0);
    for (int e = 0; e < E; e++) mpfr_init2(sc.ex[e], ROUTE_PREC);

    const float *bias = p->bias != MF_BIAS_NONE ? x->bias : NULL;
    r->bias = bias;
    int bias_bad = 0;
    if (bias)
        for (int e = 0; e < E; e++) bias_bad |= !isfinite(bias[e]);

    /* a logits row seen at an earlier token routes the same: copied, not recomputed */
    int *first = malloc(sizeof(int) * (size_t)T);
    if (!first || mf_rows_first_equal(x->logits, sizeof(float) * (size_t)E, T, first) < 0) {
        free(first);
        first = NULL; /* every row computed */
    }
    int zero_policy = p->nonfinite == MF_NONFINITE_ZERO;
    float *Lz = zero_policy ? malloc(sizeof(float) * (size_t)E) : NULL;
    if (zero_policy && !Lz) {
        st = MF_FAIL(err, MF_ENOMEM, "routing: out of memory (E=%d)", E);
        goto scores_done;
    }
    for (int t = 0; t < T; t++) {
        const float *L = x->logits + (size_t)t * E;
        size_t o = (size_t)t * E;
        if (first && first[t] != t) {
            copy_token(r, first[t], t);
            continue;
        }
        int bad = bias_bad, all_zero = 0;
        if (zero_policy) {
            L = Lz;
            all_zero = zero_scores_logits(p->score, x->logits + (size_t)t * E, E, Lz);
        } else {
            for (int e = 0; e < E; e++) bad |= !isfinite(L[e]);
        }
        tie_classes(L, bias, E, r->tie + o, sc.keyed, c->tie_rule);
        group_tie_classes(L, bias, NG, E / NG, r->g_tie + (size_t)t * NG, sc.keyed, sc.sig,
                          c->tie_rule);
        if (bad) {
            /* invariants only: every expert ambiguous, no exact selection */
            r->invariant_only[t] = 1;
            for (int e = 0; e < E; e++) {
                r->cls[o + e] = MF_ROUTE_AMBIGUOUS;
                r->key_lo[o + e] = -INFINITY;
                r->key_hi[o + e] = INFINITY;
                r->key[o + e] = NAN;
            }
            for (int g = 0; g < NG; g++) r->g_cls[(size_t)t * NG + g] = MF_ROUTE_AMBIGUOUS;
            for (int i = 0; i < k; i++) r->ref_ids[(size_t)t * k + i] = -1;
            r->n_ambiguous[t] = E;
            r->n_group_ambiguous[t] = NG > 1 ? NG : 0;
            continue;
        }
        if (all_zero)
            for (int e = 0; e < E; e++) r->s_hi[o + e] = r->s_lo[o + e] = r->s_rad[o + e] = 0;
        else if (p->score == MF_SCORE_NONE)
            scores_none(L, E, r->s_hi + o, r->s_lo + o, r->s_rad + o);
        else if (p->score == MF_SCORE_SQRT_SOFTPLUS)
            scores_sqrt_softplus(c, L, E, r->s_hi + o, r->s_lo + o, r->s_rad + o, a, tmp);
        else if (p->score == MF_SCORE_SIGMOID)
            scores_sigmoid(c, L, E, r->s_hi + o, r->s_lo + o, r->s_rad + o, a, tmp);
        else
            scores_softmax(c, L, E, r->s_hi + o, r->s_lo + o, r->s_rad + o, a, sum, tmp, sc.ex);
        if (route_bf16(p, c)) /* the scores rounded to bf16 */
            for (int e = 0; e < E; e++)
                r->s_rad[o + e] += UB * (fabs(r->s_hi[o + e]) + r->s_rad[o + e]) + ETA_B;
        for (int e = 0; e < E; e++) {
            double s = r->s_hi[o + e], rs = r->s_rad[o + e];
            double b = bias ? (double)bias[e] : 0.0;
            double kk = s + b;
            double rk = bias ? rs + U * (fabs(kk) + rs) + mf_contract_eta(c) : rs;
            if (bias && route_bf16(p, c) && p->bias == MF_BIAS_BF16) /* a bf16 + bf16 add */
                rk += UB * (fabs(kk) + rk) + ETA_B;
            if (bias && (c->round_points & MF_RP_BIAS)) /* the kernel adds bf16(b), not b */
                rk += fabs((double)mf_bf16_to_f32(mf_f32_to_bf16(bias[e])) - b) * (1 + U);
            double mag = fabs(s) + fabs(b) + rk;
            r->key[o + e] = kk;
            r->key_lo[o + e] = kk - rk - widen_amount(mag);
            r->key_hi[o + e] = kk + rk + widen_amount(mag);
        }
        group_intervals(p, c, r, t);
        classify(p, r, t, &sc);
    }
    free(Lz);
scores_done:
    free(first);
    for (int e = 0; e < E; e++) mpfr_clear(sc.ex[e]);
    mpfr_clears(a, sum, tmp, (mpfr_ptr)0);
done:
    free(sc.keyed);
    free(sc.sig);
    free(sc.rk);
    free(sc.sorted_a);
    free(sc.sorted_b);
    free(sc.ties_before);
    free(sc.ties_after);
    free(sc.ties_in);
    free(sc.ex);
    if (st != MF_OK) mf_routing_free(r);
    return st;
}

/* ---- admissibility of a reported selection ---- */

/* Counterfactual "dropped groups masked with 0": the masked experts' keys are exactly 0
 * (bit-identical: ties go to the lower index). Some admissible set of kept groups must make the
 * selection a top-k; the sets are enumerated (combinations of topk_group groups, capped). */
static int mask_zero_fits(const mf_routing *r, const mf_moe_params *p, int t, const int32_t *ids,
                          const uint8_t *sel, const uint8_t *kept) {
    int E = p->E, k = p->top_k, G = mf_group_size(p);
    size_t o = (size_t)t * E;
    double mS = INFINITY;
    int max_masked_sel = -1;
    for (int i = 0; i < k; i++) {
        int e = ids[i];
        double hi = kept[e / G] ? r->key_hi[o + e] : 0.0;
        if (hi < mS) mS = hi;
        if (!kept[e / G] && e > max_masked_sel) max_masked_sel = e;
    }
    for (int e = 0; e < E; e++) {
        if (sel[e]) continue;
        double lo = kept[e / G] ? r->key_lo[o + e] : 0.0;
        if (lo > mS || (!kept[e / G] && e < max_masked_sel)) return 0;
    }
    return 1;
}

static int admissible_mask_zero(const mf_routing *r, const mf_moe_params *p, int t,
                                const int32_t *ids, const uint8_t *sel, char *why,
                                size_t why_len) {
    int NG = p->n_group, TG = p->topk_group;
    const double *glo = r->g_lo + (size_t)t * NG, *ghi = r->g_hi + (size_t)t * NG;
    if (NG > 64) {
        snprintf(why, why_len, "undecided: too many groups to enumerate");
        return 0;
    }
    /* a set passes the test below (min kept hi >= max dropped lo) only if it keeps every group
     * fewer than TG others could outrank, and drops every group TG others certainly outrank:
     * the rest are enumerated */
    int idx[64], free_g[64], nfree = 0, nmust = 0;
    uint8_t must[64], kept[64];
    for (int g = 0; g < NG; g++) {
        int could = 0, sure = 0;
        for (int h = 0; h < NG; h++) {
            if (h == g) continue;
            could += ghi[h] >= glo[g];
            sure += glo[h] > ghi[g];
        }
        must[g] = could < TG;
        nmust += must[g];
        if (!must[g] && sure < TG) free_g[nfree++] = g;
    }
    int pick = TG - nmust;
    for (int i = 0; i < pick; i++) idx[i] = i;
    for (long tries = 0; tries < 50000 && pick >= 0 && pick <= nfree; tries++) {
        memcpy(kept, must, sizeof kept);
        double min_in = INFINITY, max_out = -INFINITY;
        for (int i = 0; i < pick; i++) kept[free_g[idx[i]]] = 1;
        for (int g = 0; g < NG; g++) {
            if (kept[g] && ghi[g] < min_in) min_in = ghi[g];
            if (!kept[g] && glo[g] > max_out) max_out = glo[g];
        }
        if (min_in >= max_out && mask_zero_fits(r, p, t, ids, sel, kept)) return 1;
        int i = pick - 1;
        while (i >= 0 && idx[i] == nfree - pick + i) i--;
        if (i < 0) break;
        idx[i]++;
        for (int j = i + 1; j < pick; j++) idx[j] = idx[j - 1] + 1;
    }
    snprintf(why, why_len, "no admissible set of kept groups makes this a top-k under 0-masking");
    return 0;
}

/* Marks the selected experts in sel (E entries, zeroed): 0 with a reason when an id is out of
 * range or repeated. */
static int selection_mark(const int32_t *ids, int k, int E, uint8_t *sel, char *why,
                          size_t why_len) {
    for (int i = 0; i < k; i++) {
        if (ids[i] < 0 || ids[i] >= E) {
            snprintf(why, why_len, "slot %d holds id %d, outside [0, %d)", i, ids[i], E);
            return 0;
        }
        if (sel[ids[i]]) {
            snprintf(why, why_len, "expert %d selected twice (slot %d)", ids[i], i);
            return 0;
        }
        sel[ids[i]] = 1;
    }
    return 1;
}

/* Does unselected expert e lose to the selection: no key certainly above mS, the weakest
 * selected key, and no bit-identical twin of higher index among the selected? 0 with a reason
 * in why (when why is not NULL) otherwise. */
static int expert_loses(const mf_routing *r, const mf_moe_params *p, int t, const int32_t *ids,
                        int e, int wi, double mS, char *why, size_t why_len) {
    const size_t o = (size_t)t * p->E;
    const double lo = r->key_lo[o + e];
    const int *tie = r->tie + o;
    if (lo > mS) {
        if (why)
            snprintf(why, why_len,
                     "expert %d (key >= %.9g) certainly outranks selected expert %d (key <= %.9g)",
                     e, lo, wi, mS);
        return 0;
    }
    for (int i = 0; i < p->top_k; i++) {
        int s = ids[i];
        if (tie[s] == tie[e] && e < s) {
            if (why)
                snprintf(why, why_len,
                         "experts %d and %d have bit-identical inputs: the tie goes to the "
                         "lower index, %d, which was not selected",
                         e, s, e);
            return 0;
        }
    }
    return 1;
}

/* A dropped group bit-identical to a kept one of higher index, when no other group may be kept
 * (need == 0): the tie went the wrong way. */
static int group_ties_admissible(const mf_routing *r, const mf_moe_params *p, int t,
                                 const uint8_t *gsel, int need, char *why, size_t why_len) {
    const int NG = p->n_group;
    const int *gtie = r->g_tie + (size_t)t * NG;
    for (int g = 0; g < NG; g++) {
        if (!gsel[g]) continue;
        for (int h = 0; h < g; h++)
            if (!gsel[h] && gtie[h] == gtie[g] && need == 0) {
                snprintf(why, why_len,
                         "groups %d and %d have bit-identical inputs: the tie goes to the "
                         "lower index, %d, which was not kept",
                         h, g, h);
                return 0;
            }
    }
    return 1;
}

/* Can the other kept groups be chosen: some X, |X| = topk_group - nR, of groups whose experts
 * cannot outrank the weakest selected expert (wi, key <= mS), with min over kept g_hi >= max
 * over dropped g_lo? Enumerates the threshold theta = max over dropped g_lo. */
static int kept_groups_feasible(const mf_routing *r, const mf_moe_params *p, int t,
                                const int32_t *ids, const uint8_t *gsel, int nR, int wi, double mS,
                                char *why, size_t why_len) {
    const int NG = p->n_group, G = mf_group_size(p), need = p->topk_group - nR;
    const double *glo = r->g_lo + (size_t)t * NG, *ghi = r->g_hi + (size_t)t * NG;
    double minR = INFINITY;
    for (int g = 0; g < NG; g++)
        if (gsel[g] && ghi[g] < minR) minR = ghi[g];
    uint8_t compat_buf[1024];
    uint8_t *compat = NG <= 1024 ? compat_buf : calloc((size_t)NG, 1);
    if (!compat) return 0;
    /* compat[g]: dropped-or-optional group g holds no expert that must have been selected */
    for (int g = 0; g < NG; g++) {
        compat[g] = 0;
        if (gsel[g]) continue;
        int c = 1;
        for (int i = 0; i < G && c; i++) c = expert_loses(r, p, t, ids, g * G + i, wi, mS, NULL, 0);
        compat[g] = (uint8_t)c;
    }
    int feasible = 0;
    for (int ti = -1; ti < NG && !feasible; ti++) {
        if (ti >= 0 && gsel[ti]) continue;
        double theta = ti < 0 ? -INFINITY : glo[ti];
        if (minR < theta) continue;
        int forced = 0, optional = 0, bad = 0;
        for (int g = 0; g < NG; g++) {
            if (gsel[g]) continue;
            if (glo[g] > theta) {
                forced++;
                if (!compat[g]) bad = 1;
            } else if (ghi[g] >= theta && compat[g]) {
                optional++;
            }
        }
        if (!bad && forced <= need && need <= forced + optional) feasible = 1;
    }
    if (!feasible) {
        /* name the strongest group that was not kept, or the weakest kept one */
        int best = -1;
        for (int g = 0; g < NG; g++)
            if (!gsel[g] && (best < 0 || glo[g] > glo[best])) best = g;
        if (need == 0 && best >= 0 && glo[best] > minR)
            snprintf(why, why_len,
                     "group %d (score >= %.9g) certainly outranks a kept group (score <= "
                     "%.9g); topk_group=%d",
                     best, glo[best], minR, p->topk_group);
        else
            snprintf(why, why_len,
                     "no admissible set of %d kept groups contains the selected experts' %d "
                     "groups without a dropped group outranking a kept one or an unselected "
                     "expert of a kept group outranking selected expert %d",
                     p->topk_group, nR, wi);
    }
    if (compat != compat_buf) free(compat);
    return feasible;
}

/* The selection of distinct in-range ids (sel marks them) against the key intervals: its groups
 * fit topk_group, no unselected expert of a selected group outranks the weakest selected one,
 * and the other kept groups can be chosen. */
static int admissible_keys(const mf_routing *r, const mf_moe_params *p, int t, const int32_t *ids,
                           const uint8_t *sel, char *why, size_t why_len) {
    const int E = p->E, k = p->top_k, NG = p->n_group, G = mf_group_size(p);
    const double *hi = r->key_hi + (size_t)t * E;
    /* weakest selected expert */
    int wi = ids[0];
    for (int i = 1; i < k; i++)
        if (hi[ids[i]] < hi[wi]) wi = ids[i];
    const double mS = hi[wi];

    uint8_t gsel_buf[1024];
    uint8_t *gsel = NG <= 1024 ? gsel_buf : calloc((size_t)NG, 1);
    if (!gsel) return 0;
    memset(gsel, 0, (size_t)NG);
    int nR = 0;
    for (int i = 0; i < k; i++) {
        int g = ids[i] / G;
        if (!gsel[g]) gsel[g] = 1, nR++;
    }
    int ok = 1;
    if (NG > 1 && nR > p->topk_group) {
        snprintf(why, why_len, "selection spans %d groups but only topk_group=%d are kept", nR,
                 p->topk_group);
        ok = 0;
    }
    /* strict ties: an unselected bit-identical twin of lower index must have been preferred,
     * unless it sits in a group that was not kept (checked with the groups below) */
    for (int e = 0; e < E && ok; e++)
        if (!sel[e] && gsel[e / G]) ok = expert_loses(r, p, t, ids, e, wi, mS, why, why_len);
    if (ok && NG > 1)
        ok = group_ties_admissible(r, p, t, gsel, p->topk_group - nR, why, why_len) &&
             kept_groups_feasible(r, p, t, ids, gsel, nR, wi, mS, why, why_len);
    if (gsel != gsel_buf) free(gsel);
    return ok;
}

int mf_ref_selection_admissible(const mf_routing *r, const mf_moe_params *p, int t,
                                const int32_t *ids, char *why, size_t why_len) {
    const int E = p->E;
    if (why && why_len) why[0] = '\0';
    if (r->given_w) { /* pre-routed: the given ids, exactly */
        const int *want = r->ref_ids + (size_t)t * p->top_k;
        for (int i = 0; i < p->top_k; i++)
            if (ids[i] != want[i]) {
                if (why)
                    snprintf(why, why_len, "slot %d holds id %d, but the given id is %d", i,
                             ids[i], want[i]);
                return 0;
            }
        return 1;
    }
    uint8_t sel_buf[1024];
    uint8_t *sel = E <= 1024 ? sel_buf : calloc((size_t)E, 1);
    if (!sel) return 0;
    memset(sel, 0, (size_t)E);
    int ok = selection_mark(ids, p->top_k, E, sel, why, why_len);
    if (ok && !r->invariant_only[t]) {
        if ((p->variant & MF_VARIANT_MASK_ZERO) && p->n_group > 1)
            ok = admissible_mask_zero(r, p, t, ids, sel, why, why_len);
        else
            ok = admissible_keys(r, p, t, ids, sel, why, why_len);
    }
    if (sel != sel_buf) free(sel);
    return ok;
}

/* ---- policy B: enumerate admissible selections ---- */

int mf_ref_enumerate_selections(const mf_routing *r, const mf_moe_params *p, int t, int32_t *sel,
                                int max_sel) {
    int E = p->E, k = p->top_k;
    if (r->invariant_only[t]) return -1;
    if (r->n_ambiguous[t] == 0 && r->n_group_ambiguous[t] == 0) {
        if (max_sel < 1) return -1;
        for (int i = 0; i < k; i++) sel[i] = r->ref_ids[(size_t)t * k + i];
        return 1;
    }
    const uint8_t *cls = r->cls + (size_t)t * E;
    int in[MF_MAX_TOP_K], nin = 0, amb[64], namb = 0;
    for (int e = 0; e < E; e++) {
        if (cls[e] == MF_ROUTE_IN) {
            if (nin >= k) return -1;
            in[nin++] = e;
        } else if (cls[e] == MF_ROUTE_AMBIGUOUS) {
            if (namb >= 64) return -1;
            amb[namb++] = e;
        }
    }
    int need = k - nin;
    if (need < 0 || need > namb) return -1;
    /* combinations of `need` ambiguous experts, capped */
    int idx[MF_MAX_TOP_K];
    for (int i = 0; i < need; i++) idx[i] = i;
    int found = 0;
    long tries = 0;
    int32_t cand[MF_MAX_TOP_K];
    for (;;) {
        if (++tries > 20000 + 16L * max_sel) return -1; /* combinations tried, admissible or not */
        int n = 0;
        for (int i = 0; i < nin; i++) cand[n++] = in[i];
        for (int i = 0; i < need; i++) cand[n++] = amb[idx[i]];
        /* key-descending slot order, ties lower index */
        const double *key = r->key + (size_t)t * E;
        for (int i = 1; i < k; i++)
            for (int j = i; j > 0 && (key[cand[j]] > key[cand[j - 1]] ||
                                      (key[cand[j]] == key[cand[j - 1]] && cand[j] < cand[j - 1]));
                 j--) {
                int32_t tmp = cand[j];
                cand[j] = cand[j - 1];
                cand[j - 1] = tmp;
            }
        if (mf_ref_selection_admissible(r, p, t, cand, NULL, 0)) {
            if (found >= max_sel) return -1;
            memcpy(sel + (size_t)found * k, cand, sizeof(int32_t) * (size_t)k);
            found++;
        }
        /* next combination */
        int i = need - 1;
        while (i >= 0 && idx[i] == namb - need + i) i--;
        if (i < 0) break;
        idx[i]++;
        for (int j = i + 1; j < need; j++) idx[j] = idx[j - 1] + 1;
    }
    return found > 0 ? found : -1;
}

/* ---- weights ---- */

mf_status mf_ref_weights(const mf_routing *r, const mf_moe_params *p, const mf_contract *c, int t,
                         const int32_t *ids, mf_weights *w, mf_error *err) {
    int k = p->top_k, E = p->E;
    if (k > MF_MAX_TOP_K) return MF_FAIL(err, MF_EUNSUPPORTED, "top_k=%d > %d", k, MF_MAX_TOP_K);
    memset(w, 0, sizeof *w);
    w->k = k;
    w->out_scale = p->rsf_site == MF_RSF_OUTPUT ? (double)p->rsf : 1.0;
    w->rsf = (double)p->rsf;
    if (r->given_w) {
        /* pre-routed: the given weights are exact inputs, used as given (no renormalisation, no
         * weights-site rsf, no rounding: docs/error-model.md, "Pre-routed input") */
        for (int i = 0; i < k; i++) {
            double g = (p->variant & MF_VARIANT_WEIGHTS_IGNORED)
                           ? 1.0
                           : (double)r->given_w[(size_t)t * k + i];
            /* a NaN weight makes its token's row NaN where the expert is local (forward.c,
             * MF_ELEM_NAN_REQUIRED), and a slot that adds nothing leaves the row finite: no
             * nan_ok */
            w->w_hi[i] = w->lo[i] = w->hi[i] = g;
        }
        return MF_OK;
    }
    if (r->invariant_only[t]) {
        for (int i = 0; i < k; i++) {
            w->lo[i] = -INFINITY;
            w->hi[i] = INFINITY;
            w->rad[i] = INFINITY;
            w->w_hi[i] = NAN;
        }
        w->nan_ok = 1;
        return MF_OK;
    }
    size_t o = (size_t)t * E;
    double udiv = mf_contract_router_div_rel(c);
    double eta = mf_contract_eta(c); /* 2^-149, or 2^-126 when the router flushes */
    /* in bf16: the sum, the quotient and the rsf product each rounded to bf16 as well */
    const int wb = route_bf16(p, c);
    const double ub = wb ? UB : 0;
    if (wb) udiv += UB * (1 + udiv), eta += ETA_B;
    double rsf_w = p->rsf_site == MF_RSF_WEIGHTS ? (double)p->rsf : 1.0;
    mpfr_t num, den, tmp;
    mpfr_inits2(ROUTE_PREC, num, den, tmp, (mpfr_ptr)0);
    /* exact: w_i = s_i / (sum_j s_j + eps) * rsf_w (keys instead of scores under the
     * weights-from-keys counterfactual) */
    int keys_cf = (p->variant & MF_VARIANT_WEIGHTS_FROM_KEYS) && p->bias != MF_BIAS_NONE;
    const float *bias_cf = keys_cf ? r->bias : NULL;
    mpfr_set_zero(den, 1);
    for (int i = 0; i < k; i++) {
        mpfr_add_d(den, den, r->s_hi[o + ids[i]], MPFR_RNDN);
        mpfr_add_d(den, den, r->s_lo[o + ids[i]], MPFR_RNDN);
        if (bias_cf) mpfr_add_d(den, den, (double)bias_cf[ids[i]], MPFR_RNDN);
    }
    /* the denominator D of the sum S: S + eps, S > 0 ? S : 1, or max(S, eps) (exact: the sum
     * is exact at ROUTE_PREC) */
    double eps = (double)p->renorm_eps;
    if (p->renorm_denom == MF_RENORM_SUM_OR_ONE) {
        if (mpfr_sgn(den) <= 0) mpfr_set_ui(den, 1, MPFR_RNDN);
    } else if (p->renorm_denom == MF_RENORM_MAX_EPS) {
        if (mpfr_cmp_d(den, eps) < 0) mpfr_set_d(den, eps, MPFR_RNDN);
    } else {
        mpfr_add_d(den, den, eps, MPFR_RNDN);
    }
    /* kernel enclosure, interval arithmetic */
    double nlo[MF_MAX_TOP_K], nhi[MF_MAX_TOP_K], slo = 0, shi = 0, mag = 0;
    int from_keys = (p->variant & MF_VARIANT_WEIGHTS_FROM_KEYS) && p->bias != MF_BIAS_NONE;
    /* weights of either sign: from the biased keys, or raw logits (score none) */
    int signed_w = from_keys || p->score == MF_SCORE_NONE;
    for (int i = 0; i < k; i++) {
        double s = r->s_hi[o + ids[i]], rs = r->s_rad[o + ids[i]];
        if (from_keys) { /* counterfactual: the biased key, may be negative */
            nlo[i] = r->key_lo[o + ids[i]];
            nhi[i] = r->key_hi[o + ids[i]];
        } else if (c->weight_form == MF_WEIGHT_KEY_MINUS_BIAS && r->bias) {
            /* the score recovered from the fp32 key: fl(key - b), never below 0 since
             * fl(s + b) >= b for s >= 0 */
            double b = (double)r->bias[ids[i]];
            double klo = r->key_lo[o + ids[i]] - b, khi = r->key_hi[o + ids[i]] - b;
            nlo[i] = klo - U * fabs(klo) - eta - widen_amount(fabs(klo) + fabs(b));
            nhi[i] = khi + U * fabs(khi) + eta + widen_amount(fabs(khi) + fabs(b));
            if (nlo[i] < 0) nlo[i] = 0;
        } else {
            nlo[i] = s - rs;
            if (nlo[i] < 0 && !signed_w) nlo[i] = 0; /* scores are never negative */
            nhi[i] = s + rs;
        }
        slo += nlo[i];
        shi += nhi[i];
        mag += fabs(nlo[i]) + fabs(nhi[i]);
    }
    double gk = (double)(k - 1) * U / (1 - (double)(k - 1) * U);
    double dlo = 0, dhi = 0;
    if (p->renormalize) {
        /* the kernel's D: its fp32 sum S' (eps added with one more rounding), then
         * S' > 0 ? S' : 1 (S' = 0 only where every selected score is 0 in the kernel: the
         * weights are then 0, inside [0, cap] below), or max(S', eps) (no rounding) */
        int sum_eps = p->renorm_denom == MF_RENORM_SUM_EPS;
        double add = sum_eps ? eps : 0;
        if (signed_w) { /* signed sums */
            double slack = (fabs(slo) + fabs(shi)) * (gk + U) + add * U + (double)k * eta +
                           widen_amount(mag);
            dlo = slo + add - slack;
            dhi = shi + add + slack;
            if (p->renorm_denom == MF_RENORM_MAX_EPS && eps > 0) {
                if (dlo < eps) dlo = eps;
                if (dhi < eps) dhi = eps;
            }
            if (dlo <= 0 && (dhi >= 0 || !sum_eps)) {
                /* the denominator's sign is undetermined: no bound on the weights */
                for (int i = 0; i < k; i++) {
                    w->lo[i] = -INFINITY, w->hi[i] = INFINITY, w->rad[i] = INFINITY;
                    w->w_hi[i] = NAN;
                }
                w->nan_ok = 1;
                mpfr_clears(num, den, tmp, (mpfr_ptr)0);
                return MF_OK;
            }
        } else {
            dlo = (slo * (1 - gk) + add) * (1 - U) * (1 - ub) - (double)k * eta - widen_amount(mag);
            dhi = (shi * (1 + gk) + add) * (1 + U) * (1 + ub) + (double)k * eta + widen_amount(mag);
            if (p->renorm_denom == MF_RENORM_MAX_EPS && eps > 0) {
                if (dlo < eps) dlo = eps;
                if (dhi < eps) dhi = eps;
            }
            if (dlo <= 0) {
                dlo = 0;
                /* 0 / 0 where the kernel's sum may be 0: S + 0, max(S, 0) */
                if (eps == 0 && p->renorm_denom != MF_RENORM_SUM_OR_ONE) w->nan_ok = 1;
            }
        }
    }
    for (int i = 0; i < k; i++) {
        double s_hi = r->s_hi[o + ids[i]], s_lo = r->s_lo[o + ids[i]];
        mpfr_set_d(num, s_hi, MPFR_RNDN);
        mpfr_add_d(num, num, s_lo, MPFR_RNDN);
        if (bias_cf) mpfr_add_d(num, num, (double)bias_cf[ids[i]], MPFR_RNDN);
        if (p->renormalize) mpfr_div(num, num, den, MPFR_RNDN);
        mpfr_mul_d(num, num, rsf_w, MPFR_RNDN);
        mpfr_to_dd(num, tmp, &w->w_hi[i], &w->w_lo[i]);
        double qlo, qhi;
        if (p->renormalize && signed_w) {
            /* signed interval division, denominator of known sign */
            double c[4] = {nlo[i] / dlo, nlo[i] / dhi, nhi[i] / dlo, nhi[i] / dhi};
            qlo = qhi = c[0];
            for (int j = 1; j < 4; j++) {
                if (c[j] < qlo) qlo = c[j];
                if (c[j] > qhi) qhi = c[j];
            }
            qlo -= fabs(qlo) * udiv + eta;
            qhi += fabs(qhi) * udiv + eta;
        } else if (p->renormalize) {
            /* a selected score over the sum of the selected scores is at most 1 (+ rounding) */
            double cap = (1 + gk) * (1 + U) * (1 + ub) * (1 + udiv) + 0x1p-40;
            qlo = dhi > 0 ? nlo[i] / dhi * (1 - udiv) - eta : 0;
            qhi = dlo > 0 ? nhi[i] / dlo * (1 + udiv) + eta : cap;
            if (qhi > cap) qhi = cap;
            if (qlo < 0) qlo = 0;
        } else {
            qlo = nlo[i];
            qhi = nhi[i];
        }
        double lo = qlo, hi = qhi;
        if (rsf_w != 1.0) { /* in bf16: the fp32 product rounded to bf16 again */
            lo = qlo * rsf_w - fabs(qlo * rsf_w) * (U + ub * (1 + U)) - eta;
            hi = qhi * rsf_w + fabs(qhi * rsf_w) * (U + ub * (1 + U)) + eta;
        }
        double wm = fabs(w->w_hi[i]) + fabs(hi);
        lo -= widen_amount(wm) + fabs(w->w_hi[i]) * 0x1p-88;
        hi += widen_amount(wm) + fabs(w->w_hi[i]) * 0x1p-88;
        if (c->round_points & MF_RP_WEIGHTS) {
            /* the kernel rounds its weight to bf16: the representative is RN(w) */
            lo = (double)mf_bf16_to_f32(mf_f64_to_bf16(lo));
            hi = (double)mf_bf16_to_f32(mf_f64_to_bf16(hi));
            mpfr_set_d(tmp, w->w_hi[i], MPFR_RNDN);
            mpfr_add_d(tmp, tmp, w->w_lo[i], MPFR_RNDN);
            w->w_hi[i] = (double)mf_bf16_to_f32(mf_mpfr_to_bf16(tmp));
            w->w_lo[i] = 0;
        }
        w->lo[i] = lo;
        w->hi[i] = hi;
        double rad = w->w_hi[i] - lo;
        if (hi - w->w_hi[i] > rad) rad = hi - w->w_hi[i];
        w->rad[i] = rad;
    }
    mpfr_clears(num, den, tmp, (mpfr_ptr)0);
    return MF_OK;
}
