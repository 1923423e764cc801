/* test_route.c: exact routing on hand-computed cases.
 *
 *  - grouped top-k with negative biased keys, where masking dropped groups with 0 instead of
 *    -inf changes the answer: the -inf selection is admissible, the 0-mask selection is not;
 *  - bit-identical ties go to the lower index (experts and groups), checked strictly;
 *  - near-ties one ulp apart are ambiguous and both selections are admissible;
 *  - renormalize with eps on underflowing sigmoid rows: eps 1e-20 gives weights near 0 and
 *    never 0/0; eps 0 admits 0/0;
 *  - exact weights of a softmax against values computed independently with MPFR;
 *  - group score by top-2 sum and by max select different groups;
 *  - raw logits as scores (score none): exact, signed weights, NaN zeroed.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include <mpfr.h>

#include "contract.h"
#include "route.h"

#include "mf_test.h"

static mf_moe_params params(int E, int k, mf_score_fn score, mf_bias_kind bias, int ng, int tg) {
    mf_moe_params p;
    memset(&p, 0, sizeof p);
    p.T = 1, p.H = 1, p.I = 1, p.E = E, p.E_local = E, p.top_k = k;
    p.score = score, p.bias = bias, p.n_group = ng, p.topk_group = tg;
    p.renormalize = 1, p.renorm_eps = 1e-20f, p.rsf = 1.0f;
    return p;
}

/* Returns 1 if the reference routed the token; else counts a failure and returns 0 (r is then
 * not filled and the caller stops). */
static int route(const mf_moe_params *p, const float *logits, const float *bias, mf_routing *r) {
    mf_moe_tensors t = {0};
    t.logits = logits;
    t.bias = bias;
    mf_error err;
    if (mf_ref_route(p, &t, &mf_contract_cpu_scalar, r, &err) != MF_OK) {
        printf("FAIL: route failed: %s\n", err.msg);
        failures++;
        return 0;
    }
    return 1;
}

/* Weights of a selection; 1 on success, else counts a failure and returns 0. */
static int weights(const mf_routing *r, const mf_moe_params *p, const int32_t *ids, mf_weights *w) {
    mf_error err;
    if (mf_ref_weights(r, p, &mf_contract_cpu_scalar, 0, ids, w, &err) != MF_OK) {
        printf("FAIL: weights failed: %s\n", err.msg);
        failures++;
        return 0;
    }
    return 1;
}

static int admissible(const mf_routing *r, const mf_moe_params *p, int32_t a, int32_t b,
                      char *why) {
    int32_t ids[2] = {a, b};
    return mf_ref_selection_admissible(r, p, 0, ids, why, 320);
}

static void test_group_mask(void) {
    /* 4 groups of 2, keep 1, top-2; sigmoid scores minus a bias of 5: all keys in (-5, -4).
     * Group 2 (experts 4, 5) wins. A kernel masking the dropped groups with 0 sees keys of 0
     * there, above every kept key, and selects experts 0 and 1 instead. */
    mf_moe_params p = params(8, 2, MF_SCORE_SIGMOID, MF_BIAS_F32, 4, 1);
    float L[8] = {-1.0f, -0.5f, 0.0f, 0.25f, 2.0f, 1.5f, 0.5f, -2.0f};
    float bias[8];
    for (int e = 0; e < 8; e++) bias[e] = -5.0f;
    mf_routing r;
    if (!route(&p, L, bias, &r)) return;
    EXPECT(r.ref_ids[0] == 4 && r.ref_ids[1] == 5, "reference selection %d %d, want 4 5",
           r.ref_ids[0], r.ref_ids[1]);
    char why[320];
    EXPECT(admissible(&r, &p, 4, 5, why), "the -inf selection rejected: %s", why);
    EXPECT(!admissible(&r, &p, 0, 1, why), "the 0-mask selection (0, 1) accepted");
    EXPECT(!admissible(&r, &p, 4, 6, why), "a selection spanning two groups accepted");
    EXPECT(r.g_cls[2] == MF_ROUTE_IN && r.g_cls[0] == MF_ROUTE_OUT, "group classes %d %d",
           r.g_cls[2], r.g_cls[0]);
    mf_routing_free(&r);
}

static void test_ties(void) {
    /* experts 2 and 5 have bit-identical logits above all others: top-1 is expert 2 */
    mf_moe_params p = params(8, 1, MF_SCORE_SIGMOID, MF_BIAS_NONE, 1, 1);
    float L[8] = {0.1f, 0.2f, 1.5f, 0.3f, 0.4f, 1.5f, -1.0f, 0.0f};
    mf_routing r;
    if (!route(&p, L, NULL, &r)) return;
    int32_t two = 2, five = 5;
    char why[320];
    EXPECT(r.ref_ids[0] == 2, "tie resolved to %d, want 2", r.ref_ids[0]);
    EXPECT(mf_ref_selection_admissible(&r, &p, 0, &two, why, sizeof why), "expert 2 rejected: %s",
           why);
    EXPECT(!mf_ref_selection_admissible(&r, &p, 0, &five, why, sizeof why),
           "expert 5 accepted against the lower-index tie rule");
    EXPECT(strstr(why, "bit-identical") != NULL, "reason does not name the tie: %s", why);
    EXPECT(r.tie[5] == 2 && r.tie[2] == 2, "tie classes %d %d", r.tie[2], r.tie[5]);
    mf_routing_free(&r);

    /* groups 0 and 2 hold identical inputs and tie for the top group: group 0 must win */
    mf_moe_params q = params(6, 1, MF_SCORE_SIGMOID, MF_BIAS_NONE, 3, 1);
    float M[6] = {1.0f, 0.5f, 0.0f, 0.1f, 0.5f, 1.0f};
    if (!route(&q, M, NULL, &r)) return;
    int32_t e0 = 0, e5 = 5;
    EXPECT(mf_ref_selection_admissible(&r, &q, 0, &e0, why, sizeof why),
           "group-0 selection rejected: %s", why);
    EXPECT(!mf_ref_selection_admissible(&r, &q, 0, &e5, why, sizeof why),
           "group-2 selection accepted against the lower-index group tie rule");
    mf_routing_free(&r);
}

static void test_near_ties(void) {
    /* softmax keys of logits one fp32 ulp apart are within the radius: ambiguous, both ok */
    mf_moe_params p = params(4, 1, MF_SCORE_SOFTMAX, MF_BIAS_NONE, 1, 1);
    float L[4] = {1.0f, nextafterf(1.0f, 2.0f), -1.0f, -2.0f};
    mf_routing r;
    if (!route(&p, L, NULL, &r)) return;
    int32_t a = 0, b = 1, c = 2;
    char why[320];
    EXPECT(r.cls[0] == MF_ROUTE_AMBIGUOUS && r.cls[1] == MF_ROUTE_AMBIGUOUS,
           "near-tie classes %d %d", r.cls[0], r.cls[1]);
    EXPECT(mf_ref_selection_admissible(&r, &p, 0, &a, why, sizeof why), "0 rejected: %s", why);
    EXPECT(mf_ref_selection_admissible(&r, &p, 0, &b, why, sizeof why), "1 rejected: %s", why);
    EXPECT(!mf_ref_selection_admissible(&r, &p, 0, &c, why, sizeof why), "2 accepted");
    int32_t sel[16];
    int n = mf_ref_enumerate_selections(&r, &p, 0, sel, 4);
    EXPECT(n == 2, "%d admissible selections enumerated, want 2", n);
    mf_routing_free(&r);
}

static void test_underflow_eps(void) {
    mf_moe_params p = params(4, 2, MF_SCORE_SIGMOID, MF_BIAS_NONE, 1, 1);
    float L[4] = {-100.0f, -101.0f, -102.0f, -103.0f};
    mf_routing r;
    if (!route(&p, L, NULL, &r)) return;
    int32_t ids[2] = {0, 1};
    mf_weights w;
    if (!weights(&r, &p, ids, &w)) {
        mf_routing_free(&r);
        return;
    }
    EXPECT(!w.nan_ok, "eps 1e-20 must not admit 0/0");
    EXPECT(w.lo[0] <= 0.0 && w.hi[0] < 1e-15, "eps 1e-20 weights [%g, %g] should hold 0, be tiny",
           w.lo[0], w.hi[0]);
    EXPECT(w.w_hi[0] > 0 && w.w_hi[0] < 1e-17, "exact weight %g", w.w_hi[0]);
    mf_routing_free(&r);
    p.renorm_eps = 0.0f;
    if (!route(&p, L, NULL, &r)) return;
    if (!weights(&r, &p, ids, &w)) {
        mf_routing_free(&r);
        return;
    }
    EXPECT(w.nan_ok, "eps 0 on underflowing sigmoids must admit 0/0");
    /* exact weight: sigma(-100) / (sigma(-100) + sigma(-101)) ~ 1 / (1 + e^-1) */
    EXPECT(fabs(w.w_hi[0] - 1.0 / (1.0 + exp(-1.0))) < 1e-6, "exact weight %.9g", w.w_hi[0]);
    mf_routing_free(&r);
}

static void test_softmax_weights(void) {
    mf_moe_params p = params(3, 2, MF_SCORE_SOFTMAX, MF_BIAS_NONE, 1, 1);
    p.rsf = 2.5f;
    p.renorm_eps = 0.0f;
    float L[3] = {0.0f, 1.0f, 2.0f};
    mf_routing r;
    if (!route(&p, L, NULL, &r)) return;
    EXPECT(r.ref_ids[0] == 2 && r.ref_ids[1] == 1, "selection %d %d", r.ref_ids[0], r.ref_ids[1]);
    mf_weights w;
    if (!weights(&r, &p, r.ref_ids, &w)) {
        mf_routing_free(&r);
        return;
    }
    /* independent: w = 2.5 e^2 / (e^2 + e), 2.5 e / (e^2 + e) at 200 bits */
    mpfr_t e1, e2, s, q;
    mpfr_inits2(200, e1, e2, s, q, (mpfr_ptr)0);
    mpfr_set_ui(e1, 1, MPFR_RNDN);
    mpfr_exp(e1, e1, MPFR_RNDN);
    mpfr_set_ui(e2, 2, MPFR_RNDN);
    mpfr_exp(e2, e2, MPFR_RNDN);
    mpfr_add(s, e1, e2, MPFR_RNDN);
    mpfr_div(q, e2, s, MPFR_RNDN);
    mpfr_mul_d(q, q, 2.5, MPFR_RNDN);
    mpfr_sub_d(q, q, w.w_hi[0], MPFR_RNDN);
    mpfr_sub_d(q, q, w.w_lo[0], MPFR_RNDN);
    double d0 = fabs(mpfr_get_d(q, MPFR_RNDN));
    EXPECT(d0 < 1e-25, "weight 0 differs from the independent value by %g", d0);
    /* the cpu-scalar enclosure is a few fp32 ulps wide */
    EXPECT(w.rad[0] > 0 && w.rad[0] < 64 * 0x1p-24 * w.w_hi[0], "radius %g of weight %g",
           w.rad[0], w.w_hi[0]);
    mpfr_clears(e1, e2, s, q, (mpfr_ptr)0);
    mf_routing_free(&r);
}

static void test_group_rules(void) {
    /* sigmoid scores: group 0 {0.953, 0.047} (max 0.953, top-2 sum 1.0); group 1 {0.731, 0.711}
     * (max 0.731, sum 1.44) */
    mf_moe_params p = params(4, 1, MF_SCORE_SIGMOID, MF_BIAS_NONE, 2, 1);
    float L[4] = {3.0f, -3.0f, 1.0f, 0.9f};
    mf_routing r;
    p.group_rule = MF_GROUP_MAX;
    if (!route(&p, L, NULL, &r)) return;
    EXPECT(r.ref_ids[0] == 0, "max rule picks expert %d, want 0", r.ref_ids[0]);
    mf_routing_free(&r);
    p.group_rule = MF_GROUP_TOP2_SUM;
    if (!route(&p, L, NULL, &r)) return;
    EXPECT(r.ref_ids[0] == 2, "top-2 sum rule picks expert %d, want 2", r.ref_ids[0]);
    mf_routing_free(&r);
}

/* Case format v2's routing parameters, by hand: the non-finite policy and the denominators. */
static void test_nonfinite_and_denominators(void) {
    mf_routing r;
    mf_weights w;
    /* sigmoid, policy zero: scores 0 (NaN), 1 (+inf), 0 (-inf), 1/2 (0) -> ids 1, 3; weights
     * 1 / 1.5 and 0.5 / 1.5, exactly */
    mf_moe_params p = params(4, 2, MF_SCORE_SIGMOID, MF_BIAS_NONE, 1, 1);
    p.nonfinite = MF_NONFINITE_ZERO;
    float L[4] = {NAN, INFINITY, -INFINITY, 0.0f};
    if (!route(&p, L, NULL, &r)) return;
    EXPECT(!r.invariant_only[0] && r.ref_ids[0] == 1 && r.ref_ids[1] == 3,
           "zero policy, sigmoid: invariant_only %d, ids %d %d", r.invariant_only[0],
           r.ref_ids[0], r.ref_ids[1]);
    if (weights(&r, &p, r.ref_ids, &w)) {
        double s = 1.0 + 0.5 + 1e-20; /* eps 1e-20f, 1e-20 to 5 digits */
        EXPECT(fabs(w.w_hi[0] - 1.0 / s) < 1e-15 && fabs(w.w_hi[1] - 0.5 / s) < 1e-15 &&
                   !w.nan_ok,
               "zero policy weights %.17g %.17g", w.w_hi[0], w.w_hi[1]);
    }
    mf_routing_free(&r);
    /* the same token under propagate: invariants only */
    p.nonfinite = MF_NONFINITE_PROPAGATE;
    if (route(&p, L, NULL, &r)) {
        EXPECT(r.invariant_only[0], "propagate: a NaN logit leaves the token unconstrained");
        mf_routing_free(&r);
    }
    /* softmax, policy zero, a NaN in the row: every score 0, ids 0, 1 by the lower index (2, 3
     * are not admissible); (sum > 0 ? sum : 1) gives weights exactly 0, sum + 0 admits 0/0 */
    p = params(4, 2, MF_SCORE_SOFTMAX, MF_BIAS_NONE, 1, 1);
    p.nonfinite = MF_NONFINITE_ZERO;
    p.renorm_denom = MF_RENORM_SUM_OR_ONE;
    p.renorm_eps = 0.0f;
    float Ls[4] = {1.0f, NAN, 2.0f, 3.0f};
    if (!route(&p, Ls, NULL, &r)) return;
    char why[320];
    EXPECT(r.ref_ids[0] == 0 && r.ref_ids[1] == 1 && admissible(&r, &p, 0, 1, why) &&
               !admissible(&r, &p, 2, 3, why),
           "NaN softmax row: ids %d %d", r.ref_ids[0], r.ref_ids[1]);
    if (weights(&r, &p, r.ref_ids, &w))
        EXPECT(w.w_hi[0] == 0 && w.w_hi[1] == 0 && !w.nan_ok && w.lo[0] <= 0 && w.hi[0] >= 0,
               "sum_or_one on a zero row: %g %g nan_ok %d", w.w_hi[0], w.w_hi[1], w.nan_ok);
    p.renorm_denom = MF_RENORM_SUM_EPS;
    if (weights(&r, &p, r.ref_ids, &w)) EXPECT(w.nan_ok, "sum + 0 on a zero row admits 0/0");
    mf_routing_free(&r);
    /* softmax, policy zero, a -inf logit: its score is exactly 0, the others softmax of the
     * finite ones: e^1 / (e^1 + e^0) for expert 1 */
    float Lm[3] = {0.0f, 1.0f, -INFINITY};
    p = params(3, 2, MF_SCORE_SOFTMAX, MF_BIAS_NONE, 1, 1);
    p.nonfinite = MF_NONFINITE_ZERO;
    p.renormalize = 0;
    if (route(&p, Lm, NULL, &r)) {
        EXPECT(r.s_hi[2] == 0 && r.s_rad[2] < 1e-40 &&
                   fabs(r.s_hi[1] - exp(1.0) / (exp(1.0) + 1.0)) < 1e-15 && r.s_rad[1] < 1e-6,
               "-inf softmax logit: scores %g (rad %g), %.17g (rad %g)", r.s_hi[2], r.s_rad[2],
               r.s_hi[1], r.s_rad[1]);
        mf_routing_free(&r);
    }
    /* underflowing sigmoids: S = s0 + s1 ~ 5.09e-44 */
    float Lu[4] = {-100.0f, -101.0f, -102.0f, -103.0f};
    int32_t ids[2] = {0, 1};
    double s0 = 1 / (1 + exp(100.0)), s1 = 1 / (1 + exp(101.0));
    p = params(4, 2, MF_SCORE_SIGMOID, MF_BIAS_NONE, 1, 1);
    p.renorm_denom = MF_RENORM_SUM_OR_ONE;
    p.renorm_eps = 0.0f;
    if (!route(&p, Lu, NULL, &r)) return;
    /* S > 0 ? S : 1: exactly s0 / S; the kernel's scores may all be 0 (weights 0): admitted */
    if (weights(&r, &p, ids, &w))
        EXPECT(fabs(w.w_hi[0] - s0 / (s0 + s1)) < 1e-12 && !w.nan_ok && w.lo[0] <= 0 &&
                   w.hi[0] >= s0 / (s0 + s1),
               "sum_or_one, underflow: %.17g in [%g, %g] nan_ok %d", w.w_hi[0], w.lo[0], w.hi[0],
               w.nan_ok);
    /* max(S, eps) with eps 1e-20f: D = eps, w = s0 / eps ~ 3.7e-24 */
    p.renorm_denom = MF_RENORM_MAX_EPS;
    p.renorm_eps = 1e-20f;
    if (weights(&r, &p, ids, &w))
        EXPECT(fabs(w.w_hi[0] / (s0 / (double)1e-20f) - 1) < 1e-12 && !w.nan_ok,
               "max_eps, underflow: %.17g, want %.17g", w.w_hi[0], s0 / (double)1e-20f);
    mf_routing_free(&r);
}

/* sqrt(softplus(l)): the exact score by hand where it is simple, and the fp32 evaluation the CPU
 * kernel makes (sqrtf of log1pf(expf(l)), l above 20) inside the enclosure over l in [-110, 100] */
static void test_sqrt_softplus(void) {
    enum { N = 64 };
    float L[N];
    for (int i = 0; i < N; i++) L[i] = -110.0f + 210.0f * (float)i / (N - 1) + 0.013f * (float)i;
    L[0] = 0.0f, L[1] = 25.0f;
    mf_moe_params p = params(N, 2, MF_SCORE_SQRT_SOFTPLUS, MF_BIAS_NONE, 1, 1);
    mf_routing r;
    if (!route(&p, L, NULL, &r)) return;
    EXPECT(fabs(r.s_hi[0] - sqrt(log(2.0))) < 1e-15 && fabs(r.s_hi[1] - 5.0) < 1e-11,
           "sqrt(softplus(0)) = %.17g, of 25 = %.17g", r.s_hi[0], r.s_hi[1]);
    EXPECT(r.ref_ids[0] == N - 1, "the largest logit is selected first: %d", r.ref_ids[0]);
    int inside = 0;
    double worst = 0;
    for (int i = 0; i < N; i++) {
        float l = L[i];
        double k = (double)sqrtf(l > 20.0f ? l : log1pf(expf(l)));
        double d = fabs(k - r.s_hi[i]);
        inside += d <= r.s_rad[i];
        if (r.s_rad[i] > 0 && d / r.s_rad[i] > worst) worst = d / r.s_rad[i];
    }
    EXPECT(inside == N, "%d of %d fp32 scores inside their enclosure (worst %.3g)", inside, N,
           worst);
    /* the enclosure is tight where the score is normal: a few ulps */
    EXPECT(r.s_rad[0] < 8 * 0x1p-24 * r.s_hi[0], "radius %g of %g", r.s_rad[0], r.s_hi[0]);
    mf_routing_free(&r);
    /* vLLM's fast-math form, sqrtf(__logf(1.f + __expf(l))) and sqrtf(max(l, 0) + __logf(1.f +
     * __expf(-|l|))), under its contract: __logf modelled as logf moved by its documented
     * 2^-21.41 either way (l below about -16.6: 1 + e rounds to 1, the score 0 or 2^-10.7) */
    mf_moe_tensors t = {0};
    t.logits = L;
    mf_error err;
    if (mf_ref_route(&p, &t, &mf_contract_vllm_033_triton_sm90, &r, &err) != MF_OK) {
        EXPECT(0, "route under the vLLM contract: %s", err.msg);
        return;
    }
    inside = 0, worst = 0;
    int n = 0;
    for (int i = 0; i < N; i++) {
        float l = L[i];
        if (l > 20.0f) continue;
        for (int form = 0; form < 2; form++)
            for (int side = -1; side <= 1; side++) {
                float lg = form ? logf(1.0f + expf(l)) : logf(1.0f + expf(-fabsf(l)));
                lg += (float)(side * 0x1.7p-22); /* 2^-21.41 < 1.5 * 2^-22 */
                float v = form ? lg : fmaxf(l, 0.0f) + lg;
                double k = (double)sqrtf(fmaxf(v, 0.0f));
                double d = fabs(k - r.s_hi[i]);
                inside += d <= r.s_rad[i], n++;
                if (r.s_rad[i] > 0 && d / r.s_rad[i] > worst) worst = d / r.s_rad[i];
            }
    }
    EXPECT(inside == n, "%d of %d fast-math scores inside their enclosure (worst %.3g)", inside, n,
           worst);
    mf_routing_free(&r);
}

/* score none (raw logits, FlashInfer's TopK): the logits -3, -1.5, 2 and -0.25 select experts
 * 2 and 3 by value, and the weights are those logits exactly, the negative one too, times an rsf
 * of 2 on the weights; the selection (2, 1) is refused (-1.5 < -0.25). Under nonfinite = zero a
 * NaN logit is 0 and outranks -0.25. The counterfactual renormalize over the signed sum
 * 2 - 0.25 = 1.75 gives 2 / 1.75 and -0.25 / 1.75 (times rsf), in an enclosure of either sign. */
static void test_score_none(void) {
    float L[4] = {-3.0f, -1.5f, 2.0f, -0.25f};
    mf_moe_params p = params(4, 2, MF_SCORE_NONE, MF_BIAS_NONE, 1, 1);
    p.renormalize = 0, p.rsf = 2.0f;
    mf_routing r;
    if (!route(&p, L, NULL, &r)) return;
    EXPECT(r.ref_ids[0] == 2 && r.ref_ids[1] == 3, "selection %d %d (want 2 3)", r.ref_ids[0],
           r.ref_ids[1]);
    for (int e = 0; e < 4; e++)
        EXPECT(r.s_hi[e] == (double)L[e] && r.s_lo[e] == 0 && r.s_rad[e] == 0,
               "score %d: %.17g +- %g (want the logit %g exactly)", e, r.s_hi[e], r.s_rad[e],
               (double)L[e]);
    char why[320];
    EXPECT(!admissible(&r, &p, 2, 1, why), "selection 2, 1 admitted");
    int32_t ids[2] = {2, 3};
    mf_weights w;
    if (weights(&r, &p, ids, &w)) {
        EXPECT(w.w_hi[0] == 4.0 && w.w_hi[1] == -0.5 && w.lo[1] < -0.5 && w.hi[1] > -0.5 &&
                   w.hi[1] < 0 && w.lo[0] <= 4.0 && w.hi[0] >= 4.0 && w.rad[1] < 1e-6,
               "weights %.17g [%g, %g], %.17g [%g, %g] (want 4 and -0.5, tight)", w.w_hi[0],
               w.lo[0], w.hi[0], w.w_hi[1], w.lo[1], w.hi[1]);
    }
    mf_moe_params q = p;
    q.renormalize = 1, q.renorm_eps = 0;
    if (weights(&r, &q, ids, &w)) {
        double a = 4.0 / 1.75, b = -0.5 / 1.75;
        EXPECT(fabs(w.w_hi[0] - a) < 1e-15 && fabs(w.w_hi[1] - b) < 1e-15 && w.lo[1] <= b &&
                   w.hi[1] >= b && w.hi[1] < 0 && w.lo[0] <= a && w.hi[0] >= a,
               "renormalized raw weights %.17g [%g, %g], %.17g [%g, %g] (want %.17g, %.17g)",
               w.w_hi[0], w.lo[0], w.hi[0], w.w_hi[1], w.lo[1], w.hi[1], a, b);
    }
    mf_routing_free(&r);
    L[1] = NAN;
    p.nonfinite = MF_NONFINITE_ZERO;
    if (!route(&p, L, NULL, &r)) return;
    EXPECT(r.ref_ids[0] == 2 && r.ref_ids[1] == 1 && r.s_hi[1] == 0 && !r.invariant_only[0],
           "nonfinite = zero: selection %d %d, NaN's score %g (want 2 1, 0)", r.ref_ids[0],
           r.ref_ids[1], r.s_hi[1]);
    mf_routing_free(&r);
}

int main(void) {
    test_score_none();
    test_sqrt_softplus();
    test_nonfinite_and_denominators();
    test_group_mask();
    test_ties();
    test_near_ties();
    test_underflow_eps();
    test_softmax_weights();
    test_group_rules();
    return mf_test_exit("routing");
}
