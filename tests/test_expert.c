/* test_expert.c: the reference's experts on hand-computed cases (case format v2 semantics).
 *
 *  - expert biases: b13 moves gate and up before the activation (in W13's row order), b2 the
 *    expert's output before the weight; the exact output is the hand value, the radius a few
 *    fp32 ulps; the counterfactual "b2 unweighted" adds b2 after the weight;
 *  - clamped activations (swiglu_oai, silu_clamp, silu_clamp_after): the activation is RN_bf16
 *    of the hand value, clamps applied; the counterfactual "clamp dropped" differs where the
 *    clamp mattered;
 *  - shared experts: one routed slot (weight 0.5) plus one shared expert with weight 1, 1/rsf or
 *    sigmoid(gate); the output is the hand value, only on the rank that owns it; the
 *    counterfactuals add it on another rank, divide its weight by rsf again, or drop it;
 *  - the routing weight on the input: the weight passes through SiLU-GLU; the CPU kernel's value
 *    is admissible, the weight on the output is not;
 *  - pre-routed input: the given ids and weights are the routing (a -1 slot, another rank's id
 *    and a row of -1 add nothing, a repeated id adds once per slot, signed weights as given);
 *    only the given ids are admissible; the counterfactuals read -1 as expert E - 1, or every
 *    weight as 1.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "bf16.h"
#include "contract.h"
#include "forward.h"
#include "route.h"

#include "mf_test.h"

static uint16_t bf(double v) { return mf_f64_to_bf16(v); }

static void test_biases(void) {
    mf_moe_params p;
    memset(&p, 0, sizeof p);
    p.T = 1, p.H = 2, p.I = 1, p.E = 1, p.E_local = 1, p.top_k = 1, p.n_group = 1;
    p.topk_group = 1, p.rsf = 1.0f, p.expert_bias = MF_EBIAS_B13_B2;
    /* x = [1, 2]; gate row [0.5, 0.25] (g = 1), up row [1, 0] (u = 1); b13 = [0.5, -0.25]:
     * g = 1.5, u = 0.75; W2 = [1; 2], b2 = [0.125, -1] */
    uint16_t x[2] = {bf(1), bf(2)}, w13[4] = {bf(0.5), bf(0.25), bf(1), bf(0)};
    uint16_t w2[2] = {bf(1), bf(2)}, b13[2] = {bf(0.5), bf(-0.25)}, b2[2] = {bf(0.125), bf(-1)};
    float logits[1] = {0};
    mf_moe_tensors t = {0};
    t.x = x, t.logits = logits, t.w13 = w13, t.w2 = w2, t.b13 = b13, t.b2 = b2;
    double a = 1.5 / (1 + exp(-1.5)) * 0.75; /* 0.6136..., far from a bf16 midpoint */
    double h = (double)mf_bf16_to_f32(bf(a));
    double want[2] = {h + 0.125, 2 * h - 1};
    mf_error err = {0};
    for (int cf = 0; cf < 2; cf++) {
        p.variant = cf ? MF_VARIANT_B2_UNWEIGHTED : 0;
        mf_ref_ctx *ctx = mf_ref_ctx_new(&p, &t, &mf_contract_cpu_scalar, NULL, &err);
        EXPECT(ctx != NULL, "%s", err.msg);
        if (!ctx) return;
        mf_expert_out eo;
        EXPECT(mf_ref_expert(ctx, 0, 0, &eo, &err) == MF_OK, "%s", err.msg);
        for (int c = 0; c < 2 && !cf; c++)
            EXPECT(eo.o_hi[c] + eo.o_lo[c] == want[c] && eo.o_rad[c] > 0 &&
                       eo.o_rad[c] < 16 * 0x1p-24 * (fabs(want[c]) + 1),
                   "expert output %d: %.17g (rad %g), want %.17g", c, eo.o_hi[c], eo.o_rad[c],
                   want[c]);
        /* weight 0.5: 0.5 (h W2 + b2), or under the counterfactual 0.5 h W2 + b2 */
        mf_weights w;
        memset(&w, 0, sizeof w);
        w.k = 1, w.w_hi[0] = 0.5, w.out_scale = 1.0;
        int32_t ids[1] = {0};
        double z[2], rad[2];
        uint16_t lo[2], hi[2];
        uint8_t fl[2];
        mf_ref_row row = {z, rad, lo, hi, fl};
        EXPECT(mf_ref_token_output(ctx, 0, ids, &w, &row, &err) == MF_OK, "%s", err.msg);
        double want_z[2] = {cf ? 0.5 * h + 0.125 : 0.5 * want[0],
                            cf ? 0.5 * 2 * h - 1 : 0.5 * want[1]};
        for (int c = 0; c < 2; c++)
            EXPECT(fabs(z[c] - want_z[c]) <= 1e-15 && fl[c] == 0,
                   "variant %d output %d: %.17g, want %.17g (flags %d)", cf, c, z[c], want_z[c],
                   fl[c]);
        mf_ref_ctx_free(ctx);
    }
    /* a NaN bias leaves the expert unconstrained */
    p.variant = 0;
    b13[0] = 0x7fc0;
    mf_ref_ctx *ctx = mf_ref_ctx_new(&p, &t, &mf_contract_cpu_scalar, NULL, &err);
    mf_expert_out eo;
    if (ctx && mf_ref_expert(ctx, 0, 0, &eo, &err) == MF_OK)
        EXPECT(eo.flags[0] & MF_ELEM_UNCONSTRAINED, "a NaN b13 leaves the output unconstrained");
    else EXPECT(0, "%s", err.msg);
    mf_ref_ctx_free(ctx);
}

/* One unit of gate g and up u through each activation, by hand in double (the values are far from
 * bf16 midpoints): the reference's activation is RN_bf16 of it, so its output through W2 = 1 is
 * that value exactly. */
static void test_activations(void) {
    static const struct {
        mf_activation act;
        float alpha, limit;
        double g, u, want;
    } cases[] = {
        /* swiglu_oai: g = min(9, 7) = 7, u = clamp(-8) = -7: (-7 + 1) 7 sigmoid(1.702 * 7) */
        {MF_ACT_SWIGLU_OAI, 1.702f, 7.0f, 9.0, -8.0, 0},
        /* swiglu_oai inside the limits: (0.5 + 1) 1.5 sigmoid(1.702 * 1.5) */
        {MF_ACT_SWIGLU_OAI, 1.702f, 7.0f, 1.5, 0.5, 0},
        /* silu_clamp: silu(min(3, 2)) clamp(-3, -2, 2) = silu(2) * -2 */
        {MF_ACT_SILU_CLAMP, 0, 2.0f, 3.0, -3.0, 0},
        /* silu_clamp_after: min(silu(3), 2) clamp(1.5) = 2 * 1.5 */
        {MF_ACT_SILU_CLAMP_AFTER, 0, 2.0f, 3.0, 1.5, 0},
        /* silu_clamp_after below the limit: silu(1) * 0.75 */
        {MF_ACT_SILU_CLAMP_AFTER, 0, 2.0f, 1.0, 0.75, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        double g = cases[i].g, u = cases[i].u, L = cases[i].limit, al = cases[i].alpha, want;
        switch (cases[i].act) {
        case MF_ACT_SWIGLU_OAI:
            g = fmin(g, L), u = fmax(fmin(u, L), -L);
            want = (u + 1) * g / (1 + exp(-al * g));
            break;
        case MF_ACT_SILU_CLAMP:
            g = fmin(g, L), u = fmax(fmin(u, L), -L);
            want = g / (1 + exp(-g)) * u;
            break;
        default:
            u = fmax(fmin(u, L), -L);
            want = fmin(g / (1 + exp(-g)), L) * u;
            break;
        }
        mf_moe_params p;
        memset(&p, 0, sizeof p);
        p.T = 1, p.H = 1, p.I = 1, p.E = 1, p.E_local = 1, p.top_k = 1, p.n_group = 1;
        p.topk_group = 1, p.rsf = 1.0f;
        p.activation = cases[i].act, p.act_alpha = cases[i].alpha, p.act_limit = cases[i].limit;
        /* x = 1, gate row = g, up row = u, W2 = 1 */
        uint16_t x[1] = {bf(1)}, w13[2] = {bf(cases[i].g), bf(cases[i].u)}, w2[1] = {bf(1)};
        float logits[1] = {0};
        mf_moe_tensors t = {0};
        t.x = x, t.logits = logits, t.w13 = w13, t.w2 = w2;
        mf_error err = {0};
        for (int cf = 0; cf < 2; cf++) {
            p.variant = cf ? MF_VARIANT_CLAMP_DROPPED : 0;
            mf_ref_ctx *ctx = mf_ref_ctx_new(&p, &t, &mf_contract_cpu_scalar, NULL, &err);
            mf_expert_out eo;
            if (!ctx || mf_ref_expert(ctx, 0, 0, &eo, &err) != MF_OK) {
                EXPECT(0, "case %zu: %s", i, err.msg);
                mf_ref_ctx_free(ctx);
                continue;
            }
            double h = (double)mf_bf16_to_f32(bf(want));
            if (!cf)
                EXPECT(eo.o_hi[0] == h, "case %zu (%s): %.9g, want RN_bf16(%.9g) = %.9g", i,
                       mf_activation_name(cases[i].act), eo.o_hi[0], want, h);
            else if (cases[i].g > L || fabs(cases[i].u) > L) /* the clamp mattered */
                EXPECT(eo.o_hi[0] != h, "case %zu: dropping the clamp changes nothing (%.9g)", i,
                       eo.o_hi[0]);
            mf_ref_ctx_free(ctx);
        }
    }
}

/* Runs the one-token shared-expert case of test_shared: routed expert 0 with weight 0.5, rsf
 * 2.5. Returns 0 with the output row in z, rad, fl, or -1 with err set. */
static int shared_token(const mf_moe_params *p, const mf_moe_tensors *t, double z[2],
                        double rad[2], uint8_t fl[2], mf_error *err) {
    mf_ref_ctx *ctx = mf_ref_ctx_new(p, t, &mf_contract_cpu_scalar, NULL, err);
    if (!ctx) return -1;
    mf_weights w;
    memset(&w, 0, sizeof w);
    w.k = 1, w.w_hi[0] = 0.5, w.out_scale = 1.0, w.rsf = 2.5;
    int32_t ids[1] = {0};
    uint16_t lo[2], hi[2];
    mf_ref_row row = {z, rad, lo, hi, fl};
    int rc = mf_ref_token_output(ctx, 0, ids, &w, &row, err) == MF_OK ? 0 : -1;
    mf_ref_ctx_free(ctx);
    return rc;
}

/* One token, x = [1, 2]; routed expert 0 of the bias test's shape without biases (gate 1, up 1:
 * output h [1, 2]), weight 0.5; one shared expert, gate row [0.25, 0.375] (g = 1), up row [0, 1]
 * (u = 2), W2 [1; -1]: output hs [1, -1]. */
static void test_shared(void) {
    mf_moe_params p;
    memset(&p, 0, sizeof p);
    p.T = 1, p.H = 2, p.I = 1, p.E = 1, p.E_local = 1, p.top_k = 1, p.n_group = 1;
    p.topk_group = 1, p.rsf = 2.5f, p.n_shared = 1, p.shared_I = 1;
    uint16_t x[2] = {bf(1), bf(2)}, w13[4] = {bf(0.5), bf(0.25), bf(1), bf(0)};
    uint16_t w2[2] = {bf(1), bf(2)};
    uint16_t sw13[4] = {bf(0.25), bf(0.375), bf(0), bf(1)}, sw2[2] = {bf(1), bf(-1)};
    float logits[1] = {0}, gate[1] = {0.5f};
    mf_moe_tensors t = {0};
    t.x = x, t.logits = logits, t.w13 = w13, t.w2 = w2, t.sw13 = sw13, t.sw2 = sw2;
    t.shared_gate = gate;
    double h = (double)mf_bf16_to_f32(bf(1 / (1 + exp(-1.0))));     /* 0.7311 */
    double hs = (double)mf_bf16_to_f32(bf(2 / (1 + exp(-1.0))));    /* 1.4621 */
    double sig = 1 / (1 + exp(-0.5));
    const struct {
        mf_shared_weight sw;
        mf_shared_owner owner;
        unsigned variant;
        double s; /* the shared expert's weight; 0: not added */
    } cases[] = {
        {MF_SHW_ONE, MF_SHOWN_THIS_RANK, 0, 1.0},
        {MF_SHW_INV_RSF, MF_SHOWN_THIS_RANK, 0, 1 / 2.5},
        {MF_SHW_GATE, MF_SHOWN_THIS_RANK, 0, sig},
        {MF_SHW_ONE, MF_SHOWN_OTHER_RANK, 0, 0},
        {MF_SHW_ONE, MF_SHOWN_OTHER_RANK, MF_VARIANT_SHARED_EVERY_RANK, 1.0},
        {MF_SHW_INV_RSF, MF_SHOWN_THIS_RANK, MF_VARIANT_SHARED_RSF_TWICE, 1 / 6.25},
        {MF_SHW_GATE, MF_SHOWN_THIS_RANK, MF_VARIANT_SHARED_DROPPED, 0},
    };
    mf_error err = {0};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        p.shared_weight = cases[i].sw, p.shared_owner = cases[i].owner;
        p.variant = cases[i].variant;
        double z[2], rad[2];
        uint8_t fl[2];
        int rc = shared_token(&p, &t, z, rad, fl, &err);
        EXPECT(rc == 0, "%s", err.msg);
        if (rc) return;
        for (int c = 0; c < 2; c++) {
            double want = 0.5 * h * (c ? 2 : 1) + cases[i].s * hs * (c ? -1 : 1);
            /* the radius: a few fp32 ulps of the terms (weights exact but 1/rsf and the gate) */
            EXPECT(fabs(z[c] - want) <= 1e-15 * (fabs(want) + 1) && fl[c] == 0 && rad[c] > 0 &&
                       rad[c] < 64 * 0x1p-24 * (0.5 * 2 * h + hs),
                   "case %zu output %d: %.17g (rad %g), want %.17g (flags %d)", i, c, z[c],
                   rad[c], want, fl[c]);
        }
    }
    /* a NaN gate logit leaves the token's outputs unconstrained */
    p.shared_weight = MF_SHW_GATE, p.shared_owner = MF_SHOWN_THIS_RANK, p.variant = 0;
    gate[0] = NAN;
    double z[2], rad[2];
    uint8_t fl[2];
    if (shared_token(&p, &t, z, rad, fl, &err) == 0)
        EXPECT((fl[0] & MF_ELEM_UNCONSTRAINED) && (fl[1] & MF_ELEM_UNCONSTRAINED),
               "a NaN gate logit leaves the outputs unconstrained (flags %d %d)", fl[0], fl[1]);
    else EXPECT(0, "%s", err.msg);
}

/* The weight on the input: x = [1, 2], gate row [0.5, 0.25] (g = 1), up row [1, 0] (u = 1),
 * W2 = [1; 2], one slot of weight 0.5. On the input: g' = u' = 0.5, h = RN(silu(0.5) 0.5) and the
 * output [h, 2h] unweighted; on the output (weight_on_input = 0, the counterfactual): 0.5 [h1,
 * 2 h1] with h1 = RN(silu(1)), about 1.9 times the other. The CPU kernel's fp32 evaluation of the
 * first lies inside its admissible interval, the second does not. */
static void test_weight_on_input(void) {
    mf_moe_params p;
    memset(&p, 0, sizeof p);
    p.T = 1, p.H = 2, p.I = 1, p.E = 1, p.E_local = 1, p.top_k = 1, p.n_group = 1;
    p.topk_group = 1, p.rsf = 1.0f, p.weight_on_input = 1;
    uint16_t x[2] = {bf(1), bf(2)}, w13[4] = {bf(0.5), bf(0.25), bf(1), bf(0)};
    uint16_t w2[2] = {bf(1), bf(2)};
    float logits[1] = {0};
    mf_moe_tensors t = {0};
    t.x = x, t.logits = logits, t.w13 = w13, t.w2 = w2;
    double h_in = (double)mf_bf16_to_f32(bf(0.5 / (1 + exp(-0.5)) * 0.5));
    double h_out = (double)mf_bf16_to_f32(bf(1.0 / (1 + exp(-1.0))));
    /* the CPU kernel: fp32 GEMM1, times the fp32 weight, silu, bf16 */
    float g = 0.5f * 1.0f + 0.25f * 2.0f, u = 1.0f * 1.0f;
    g = g * 0.5f, u = u * 0.5f;
    uint16_t hk = bf((double)(g / (1.0f + expf(-g)) * u));
    double kernel[2] = {(double)mf_bf16_to_f32(bf((double)mf_bf16_to_f32(hk))),
                        (double)mf_bf16_to_f32(bf(2 * (double)mf_bf16_to_f32(hk)))};
    mf_error err = {0};
    for (int on = 1; on >= 0; on--) {
        p.weight_on_input = on;
        mf_ref_ctx *ctx = mf_ref_ctx_new(&p, &t, &mf_contract_cpu_scalar, NULL, &err);
        EXPECT(ctx != NULL, "%s", err.msg);
        if (!ctx) return;
        mf_weights w;
        memset(&w, 0, sizeof w);
        w.k = 1, w.w_hi[0] = 0.5, w.lo[0] = 0.5, w.hi[0] = 0.5, w.out_scale = 1.0;
        int32_t ids[1] = {0};
        double z[2], rad[2];
        uint16_t lo[2], hi[2];
        uint8_t fl[2];
        mf_ref_row row = {z, rad, lo, hi, fl};
        EXPECT(mf_ref_token_output(ctx, 0, ids, &w, &row, &err) == MF_OK, "%s", err.msg);
        for (int c = 0; c < 2; c++) {
            double want = (c + 1) * (on ? h_in : 0.5 * h_out);
            EXPECT(fabs(z[c] - want) <= 1e-15 * want && fl[c] == 0,
                   "weight_on_input %d output %d: %.17g, want %.17g (flags %d)", on, c, z[c],
                   want, fl[c]);
            int inside = kernel[c] >= (double)mf_bf16_to_f32(lo[c]) &&
                         kernel[c] <= (double)mf_bf16_to_f32(hi[c]);
            EXPECT(inside == on, "weight_on_input %d output %d: the kernel's %.9g %s [%.9g, %.9g]",
                   on, c, kernel[c], inside ? "inside" : "outside",
                   (double)mf_bf16_to_f32(lo[c]), (double)mf_bf16_to_f32(hi[c]));
        }
        mf_ref_ctx_free(ctx);
    }
}

/* Pre-routed input: E = 4, this rank holds experts 1 and 2 (E_local 2, offset 1), x = [1, 2].
 * Expert 1: gate row [0.5, 0.25] (g = 1), up row [1, 0] (u = 1), h1 = RN(silu(1)), W2 = [1; 2]:
 * y1 = [h1, 2 h1]. Expert 2: gate row [0.25, 0] (g = 0.25), up row [0, 1] (u = 2),
 * h2 = RN(2 silu(0.25)), W2 = [2; -1]: y2 = [2 h2, -h2].
 * Token 0: ids [1, -1, 2, 1], weights [0.5, 7, -1.5, -0.25]: out = 0.25 y1 - 1.5 y2 (the empty
 * slot's 7 adds nothing, expert 1 twice). Token 1: ids [-1, 0, 3, -1]: no local expert, out 0. */
static void test_preroute(void) {
    mf_moe_params p;
    memset(&p, 0, sizeof p);
    p.T = 2, p.H = 2, p.I = 1, p.E = 4, p.E_local = 2, p.expert_offset = 1, p.top_k = 4;
    p.n_group = 1, p.topk_group = 1, p.rsf = 2.5f, p.renormalize = 1;
    p.preroute = MF_PREROUTE_F32; /* rsf at the weights site and renormalize: unused */
    uint16_t x[4] = {bf(1), bf(2), bf(1), bf(2)};
    uint16_t w13[8] = {bf(0.5), bf(0.25), bf(1), bf(0), bf(0.25), bf(0), bf(0), bf(1)};
    uint16_t w2[4] = {bf(1), bf(2), bf(2), bf(-1)};
    float logits[8] = {0}; /* a router would pick others: it does not run */
    int32_t ids[8] = {1, -1, 2, 1, -1, 0, 3, -1};
    float wts[8] = {0.5f, 7, -1.5f, -0.25f, 1, 2, 3, 4};
    mf_moe_tensors t = {0};
    t.x = x, t.logits = logits, t.w13 = w13, t.w2 = w2, t.topk_ids_in = ids;
    t.topk_weights_in = wts;
    double h1 = (double)mf_bf16_to_f32(bf(1.0 / (1 + exp(-1.0))));
    double h2 = (double)mf_bf16_to_f32(bf(2 * 0.25 / (1 + exp(-0.25))));
    double want[2][2] = {{0.25 * h1 - 1.5 * 2 * h2, 0.25 * 2 * h1 + 1.5 * h2}, {0, 0}};
    mf_error err = {0};
    mf_routing rt;
    if (mf_ref_route(&p, &t, &mf_contract_cpu_scalar, &rt, &err) != MF_OK) {
        EXPECT(0, "%s", err.msg);
        return;
    }
    mf_ref_ctx *ctx = mf_ref_ctx_new(&p, &t, &mf_contract_cpu_scalar, NULL, &err);
    EXPECT(ctx != NULL, "%s", err.msg);
    for (int tok = 0; tok < 2 && ctx; tok++) {
        const int32_t *g = ids + 4 * tok;
        EXPECT(memcmp(rt.ref_ids + 4 * tok, g, sizeof(int32_t) * 4) == 0 &&
                   rt.n_ambiguous[tok] == 0 && !rt.invariant_only[tok],
               "token %d: the reference selection is not the given one", tok);
        char why[160];
        EXPECT(mf_ref_selection_admissible(&rt, &p, tok, g, why, sizeof why),
               "token %d: the given ids are not admissible: %s", tok, why);
        int32_t other[4];
        memcpy(other, g, sizeof other);
        other[1] = 3; /* an empty slot reported as an expert */
        EXPECT(!mf_ref_selection_admissible(&rt, &p, tok, other, why, sizeof why) &&
                   strstr(why, "given id") != NULL,
               "token %d: ids other than the given ones admitted (%s)", tok, why);
        mf_weights w;
        EXPECT(mf_ref_weights(&rt, &p, &mf_contract_cpu_scalar, tok, g, &w, &err) == MF_OK,
               "%s", err.msg);
        for (int i = 0; i < 4; i++)
            EXPECT(w.w_hi[i] == wts[4 * tok + i] && w.lo[i] == w.w_hi[i] &&
                       w.hi[i] == w.w_hi[i] && w.rad[i] == 0,
                   "token %d slot %d: weight %g [%g, %g], want %g exactly", tok, i, w.w_hi[i],
                   w.lo[i], w.hi[i], (double)wts[4 * tok + i]);
        EXPECT(w.out_scale == 1.0, "the weights-site rsf reached the output (%g)", w.out_scale);
        double z[2], rad[2];
        uint16_t lo[2], hi[2];
        uint8_t fl[2];
        mf_ref_row row = {z, rad, lo, hi, fl};
        EXPECT(mf_ref_token_output(ctx, tok, g, &w, &row, &err) == MF_OK, "%s", err.msg);
        for (int c = 0; c < 2; c++)
            EXPECT(fabs(z[c] - want[tok][c]) <= 1e-15 * fabs(want[tok][c]) && fl[c] == 0 &&
                       rad[c] <= 1e-6 * (fabs(want[tok][c]) + 1e-30),
                   "token %d output %d: %.17g +- %g, want %.17g (flags %d)", tok, c, z[c],
                   rad[c], want[tok][c], fl[c]);
    }
    mf_ref_ctx_free(ctx);
    mf_routing_free(&rt);
    /* the counterfactuals: -1 read as expert 3, every weight 1 */
    p.variant = MF_VARIANT_EMPTY_SLOT_WRAPPED | MF_VARIANT_WEIGHTS_IGNORED;
    if (mf_ref_route(&p, &t, &mf_contract_cpu_scalar, &rt, &err) != MF_OK) {
        EXPECT(0, "%s", err.msg);
        return;
    }
    int32_t wrapped[8] = {1, 3, 2, 1, 3, 0, 3, 3};
    EXPECT(memcmp(rt.ref_ids, wrapped, sizeof wrapped) == 0, "-1 not read as expert 3");
    mf_weights w;
    EXPECT(mf_ref_weights(&rt, &p, &mf_contract_cpu_scalar, 0, wrapped, &w, &err) == MF_OK &&
               w.w_hi[0] == 1 && w.w_hi[2] == 1 && w.rad[0] == 0,
           "weights not read as 1 (%g, %g)", w.w_hi[0], w.w_hi[2]);
    mf_routing_free(&rt);
}

int main(void) {
    test_preroute();
    test_weight_on_input();
    test_activations();
    test_biases();
    test_shared();
    return mf_test_exit("expert");
}
