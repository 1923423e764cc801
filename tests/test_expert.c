/* test_expert.c: the reference's experts on hand-computed cases (case format v2 semantics).
 *
 *  - expert biases: b13 moves gate and up before the activation (in W13's row order), b2 the
 *    expert's output before the weight; the exact output is the hand value, the radius a few
 *    fp32 ulps; the counterfactual "b2 unweighted" adds b2 after the weight.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "bf16.h"
#include "contract.h"
#include "forward.h"

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

int main(void) {
    test_biases();
    return mf_test_exit("expert");
}
