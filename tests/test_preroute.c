/* test_preroute.c: the generators and files of pre-routed input (case format v2, ABI level 6).
 *
 *  - ids and weights of class normal are the case's own exact routing: the ids the reference
 *    routes the case to (preroute none) and its weights rounded to the weights' dtype, whose
 *    rows sum to rsf (renormalized, rsf at the weights site);
 *  - the hard cases: sparse empties slots (-1) of that routing, negative empties whole rows,
 *    ties repeats an earlier slot's id, uniform draws ids in [-1, E) (other ranks' included);
 *  - a token with a NaN logit gets every slot -1 and weight 0; a poke lands after the routing;
 *  - the binary codec keeps the parameter and the generators; a safetensors case file carries
 *    the ids as I32 and the weights in their dtype, and reads back the same bits.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "bf16.h"
#include "case.h"
#include "codec.h"
#include "contract.h"
#include "exchange.h"
#include "route.h"
#include "verdict.h"

#include "mf_test.h"
#include "mf_test_xcase.h"

static const char *base =
    "# format v2\n"
    "T = 64\nH = 8\nI = 4\nE = 16\nE_local = 8\nexpert_offset = 4\ntop_k = 4\n"
    "score = sigmoid\nbias = f32\nn_group = 4\ntopk_group = 2\nrenormalize = true\n"
    "eps = 1e-20\nrsf = 2.5\nrsf_site = weights\n"
    "gen.x = normal seed=0x7001\ngen.logits = normal seed=0x7002\ngen.bias = normal seed=0x7003\n"
    "gen.w13 = normal seed=0x7004\ngen.w2 = normal seed=0x7005\n"
    "defaults = group_rule activation layout logits_dtype\n";

/* The case `base` with preroute and the ids' and weights' generators, plus extra lines. */
static int build(const char *preroute, const char *ids, const char *w, const char *extra,
                 mf_case *c, mf_problem *pb) {
    char text[4096];
    snprintf(text, sizeof text, "%spreroute = %s\ngen.topk_ids_in = %s seed=0x7006\n"
             "gen.topk_weights_in = %s seed=0x7007\n%s", base, preroute, ids, w, extra);
    mf_error err = {0};
    memset(pb, 0, sizeof *pb);
    if (mf_case_parse_text(text, c, &err) != MF_OK || mf_problem_build(c, pb, &err) != MF_OK) {
        EXPECT(0, "%s/%s/%s: %s", preroute, ids, w, err.msg);
        return 0;
    }
    return 1;
}

/* The exact routing of the case without preroute: ids [T][k], weights [T][k] (exact, doubles). */
static int routing(const mf_problem *pb, int32_t *ids, double *w) {
    mf_moe_params p = pb->p;
    p.preroute = MF_PREROUTE_NONE;
    mf_error err = {0};
    mf_routing rt;
    if (mf_ref_route(&p, &pb->t, &mf_contract_cpu_scalar, &rt, &err) != MF_OK) {
        EXPECT(0, "%s", err.msg);
        return 0;
    }
    int k = p.top_k;
    for (int t = 0; t < p.T; t++) {
        for (int i = 0; i < k; i++) ids[t * k + i] = rt.ref_ids[t * k + i];
        mf_weights mw;
        if (rt.invariant_only[t] ||
            mf_ref_weights(&rt, &p, &mf_contract_cpu_scalar, t, ids + t * k, &mw, &err) != MF_OK)
            for (int i = 0; i < k; i++) w[t * k + i] = NAN;
        else
            for (int i = 0; i < k; i++) w[t * k + i] = mw.w_hi[i] + mw.w_lo[i];
    }
    mf_routing_free(&rt);
    return 1;
}

enum { T = 64, K = 4, E = 16 };

static void test_routed(void) {
    mf_case c, cb;
    mf_problem pb, pbb;
    if (!build("f32", "normal", "normal", "", &c, &pb)) return;
    if (!build("bf16", "normal", "normal", "", &cb, &pbb)) return;
    int32_t ids[T * K];
    double w[T * K];
    if (!routing(&pb, ids, w)) return;
    EXPECT(memcmp(ids, pb.topk_ids_in, sizeof ids) == 0, "normal ids are not the routing's");
    EXPECT(memcmp(ids, pbb.topk_ids_in, sizeof ids) == 0, "bf16 case: ids not the routing's");
    int bad = 0, bad16 = 0;
    for (int t = 0; t < T; t++) {
        double sum = 0;
        for (int i = 0; i < K; i++) {
            float f = pb.topk_weights_in[t * K + i], b = pbb.topk_weights_in[t * K + i];
            bad += f != (float)w[t * K + i];
            bad16 += b != mf_bf16_to_f32(mf_f64_to_bf16(w[t * K + i]));
            sum += f;
        }
        EXPECT(fabs(sum - 2.5) < 1e-5, "token %d: the routing's weights sum to %g, not rsf", t,
               sum);
    }
    EXPECT(bad == 0 && bad16 == 0, "%d fp32 and %d bf16 weights are not the routing's rounded",
           bad, bad16);
    mf_problem_free(&pb);
    mf_problem_free(&pbb);
}

static void test_hard_cases(void) {
    mf_case c;
    mf_problem pb;
    int32_t ids[T * K];
    double w[T * K];
    /* sparse: the routing with slots emptied */
    if (!build("f32", "sparse", "uniform", "", &c, &pb) || !routing(&pb, ids, w)) return;
    int empty = 0, other = 0;
    for (int i = 0; i < T * K; i++) {
        empty += pb.topk_ids_in[i] == -1;
        other += pb.topk_ids_in[i] != -1 && pb.topk_ids_in[i] != ids[i];
    }
    EXPECT(other == 0 && empty > T * K / 5 && empty < T * K * 4 / 5,
           "sparse: %d of %d slots empty, %d neither routed nor empty", empty, T * K, other);
    int negative_w = 0;
    for (int i = 0; i < T * K; i++) negative_w += pb.topk_weights_in[i] < 0;
    EXPECT(negative_w > 0, "uniform weights: none negative");
    mf_problem_free(&pb);
    /* negative: whole rows emptied */
    if (!build("f32", "negative", "normal", "", &c, &pb)) return;
    int rows_empty = 0, rows_bad = 0;
    for (int t = 0; t < T; t++) {
        int n_empty = 0, same = 1;
        for (int i = 0; i < K; i++) {
            n_empty += pb.topk_ids_in[t * K + i] == -1;
            same &= pb.topk_ids_in[t * K + i] == ids[t * K + i];
        }
        rows_empty += n_empty == K;
        rows_bad += n_empty != K && !same;
    }
    EXPECT(rows_bad == 0 && rows_empty > 0 && rows_empty < T,
           "negative: %d of %d rows all -1, %d rows neither", rows_empty, T, rows_bad);
    mf_problem_free(&pb);
    /* ties: an earlier slot's id repeated */
    if (!build("bf16", "ties", "normal", "", &c, &pb)) return;
    int dup_rows = 0, tie_bad = 0;
    for (int t = 0; t < T; t++) {
        const int32_t *r = pb.topk_ids_in + t * K;
        int dup = 0;
        tie_bad += r[0] != ids[t * K];
        for (int i = 1; i < K; i++) {
            int earlier = 0;
            for (int j = 0; j < i; j++) earlier |= r[i] == r[j];
            dup |= earlier;
            tie_bad += !earlier && r[i] != ids[t * K + i];
        }
        dup_rows += dup;
    }
    EXPECT(tie_bad == 0 && dup_rows > 0, "ties: %d rows with a repeated id, %d slots wrong",
           dup_rows, tie_bad);
    mf_problem_free(&pb);
    /* uniform: any id in [-1, E), this rank's or not */
    if (!build("f32", "uniform", "sparse", "", &c, &pb)) return;
    int out_of_range = 0, minus = 0, foreign = 0, zero_w = 0;
    for (int i = 0; i < T * K; i++) {
        int32_t id = pb.topk_ids_in[i];
        out_of_range += id < -1 || id >= E;
        minus += id == -1;
        foreign += id >= 0 && !mf_is_local(&pb.p, pb.t.expert_map, id);
        zero_w += pb.topk_weights_in[i] == 0;
    }
    EXPECT(out_of_range == 0 && minus > 0 && foreign > 0 && zero_w > 0,
           "uniform: %d ids outside [-1, E), %d empty, %d of other ranks; %d zero weights",
           out_of_range, minus, foreign, zero_w);
    mf_problem_free(&pb);
}

/* A NaN logit empties its token; a poke of the ids lands after the routing. */
static void test_nonfinite_and_pokes(void) {
    mf_case c;
    mf_problem pb;
    /* logits [T][E]: element 3 * 16 + 5 is token 3's; ids [T][K]: element 9 is token 2's */
    if (!build("f32", "normal", "normal",
               "poke = logits 53 0x7fc00000\npoke = topk_ids_in 9 0x00000007\n"
               "poke = topk_weights_in 9 0xbf800000\n",
               &c, &pb))
        return;
    for (int i = 0; i < K; i++)
        EXPECT(pb.topk_ids_in[3 * K + i] == -1 && pb.topk_weights_in[3 * K + i] == 0,
               "token 3 (a NaN logit): slot %d holds %d, %g", i, pb.topk_ids_in[3 * K + i],
               (double)pb.topk_weights_in[3 * K + i]);
    EXPECT(pb.topk_ids_in[9] == 7 && pb.topk_weights_in[9] == -1.0f,
           "the pokes of the ids and weights: %d, %g", pb.topk_ids_in[9],
           (double)pb.topk_weights_in[9]);
    mf_problem_free(&pb);
}

/* A NaN given weight in a slot that adds nothing (every id of the token -1) leaves the exact row
 * finite: the CPU kernel's row passes, a NaN row fails; a NaN reported weight passes where the
 * given one is NaN and fails where it is not. */
static void test_nan_weight_in_empty_slot(void) {
    mf_case c;
    mf_problem pb;
    if (!build("f32", "normal", "normal",
               "poke = topk_ids_in 0 0xffffffff\npoke = topk_ids_in 1 0xffffffff\n"
               "poke = topk_ids_in 2 0xffffffff\npoke = topk_ids_in 3 0xffffffff\n"
               "poke = topk_weights_in 1 0x7fc00000\n",
               &c, &pb))
        return;
    mf_error err = {0};
    mf_backend b;
    mf_run_result r;
    if (mf_backend_open("cpu", &b, &err) != MF_OK || mf_backend_run(&b, &pb, &r, &err) != MF_OK) {
        EXPECT(0, "cpu backend: %s", err.msg);
        mf_problem_free(&pb);
        return;
    }
    mf_check_opts o;
    mf_check_opts_default(&o);
    o.determinism = 0;
    mf_verdict v;
    EXPECT(mf_check_result_fresh(&pb, &mf_contract_cpu_scalar, &r, NULL, &o, &v, &err) == MF_OK &&
               v.pass,
           "the CPU kernel's run (token 0's row 0, a NaN weight on an empty slot): %s",
           err.msg[0] ? err.msg : "rejected");
    EXPECT(r.weights && isnan(r.weights[1]), "the CPU kernel reports the given NaN weight");
    /* the reported weights: slot 2's NaN where the given weight is 0.5-ish is wrong */
    if (r.weights) r.weights[2] = NAN;
    EXPECT(mf_check_result_fresh(&pb, &mf_contract_cpu_scalar, &r, NULL, &o, &v, &err) == MF_OK &&
               !v.pass && v.n_bad[MF_STAGE_ROUTE_WEIGHTS] == 1,
           "a NaN reported for a finite given weight: %llu bad weights",
           v.n_bad[MF_STAGE_ROUTE_WEIGHTS]);
    if (r.weights) r.weights[2] = pb.topk_weights_in[2];
    for (int col = 0; col < 8; col++) r.out[col] = 0x7fc0; /* token 0's row NaN */
    EXPECT(mf_check_result_fresh(&pb, &mf_contract_cpu_scalar, &r, NULL, &o, &v, &err) == MF_OK &&
               !v.pass,
           "a NaN row for a token whose slots add nothing passed");
    mf_run_result_free(&r);
    mf_backend_close(&b);
    mf_problem_free(&pb);
}

/* A NaN given weight on a local slot makes its token's row NaN: the CPU kernel's NaN row passes,
 * a row that drops the slot (finite) fails. Token 0's slot 0 is pointed at local expert 4. */
static void test_nan_weight_on_local_slot(void) {
    mf_case c;
    mf_problem pb;
    if (!build("f32", "normal", "normal",
               "poke = topk_ids_in 0 0x4\npoke = topk_weights_in 0 0x7fc00000\n", &c, &pb))
        return;
    mf_error err = {0};
    mf_backend b;
    mf_run_result r;
    if (mf_backend_open("cpu", &b, &err) != MF_OK || mf_backend_run(&b, &pb, &r, &err) != MF_OK) {
        EXPECT(0, "cpu backend: %s", err.msg);
        mf_problem_free(&pb);
        return;
    }
    mf_check_opts o;
    mf_check_opts_default(&o);
    o.determinism = 0;
    mf_verdict v;
    int nan_row = 1;
    for (int col = 0; col < 8; col++) nan_row &= mf_bf16_is_nan(r.out[col]);
    EXPECT(nan_row, "the CPU kernel's row 0 (a NaN weight on local expert 4) is NaN");
    EXPECT(mf_check_result_fresh(&pb, &mf_contract_cpu_scalar, &r, NULL, &o, &v, &err) == MF_OK &&
               v.pass,
           "the CPU kernel's run (a NaN weight on a local slot): %s",
           err.msg[0] ? err.msg : "rejected");
    r.out[3] = 0x3f80; /* 1.0: the NaN slot dropped or flushed in one element */
    EXPECT(mf_check_result_fresh(&pb, &mf_contract_cpu_scalar, &r, NULL, &o, &v, &err) == MF_OK &&
               !v.pass && v.n_bad[MF_STAGE_OUTPUT] == 1,
           "a finite element where the NaN weight must make it NaN: %llu bad",
           v.n_bad[MF_STAGE_OUTPUT]);
    mf_run_result_free(&r);
    mf_backend_close(&b);
    mf_problem_free(&pb);
}

/* Binary round trip of the case; safetensors round trip of its tensors. */
static void test_files(void) {
    mf_case c, d;
    mf_problem pb, pb2;
    if (!build("bf16", "sparse", "heavy", "", &c, &pb)) return;
    uint8_t buf[4096];
    size_t n = mf_case_encode(&c, 1, buf, sizeof buf);
    int version = 0;
    EXPECT(n > 0, "the case does not encode");
    mf_case_decode(buf, n, &d, &version);
    EXPECT(version == 2 && d.p.preroute == MF_PREROUTE_BF16 &&
               d.gen[MF_T_TOPK_IDS_IN].cls == MF_GEN_SPARSE &&
               d.gen[MF_T_TOPK_IDS_IN].seed == 0x7006 &&
               d.gen[MF_T_TOPK_WEIGHTS_IN].cls == MF_GEN_HEAVY,
           "binary v%d round trip: preroute %d, ids class %d", version, d.p.preroute,
           d.gen[MF_T_TOPK_IDS_IN].cls);
    char path[64];
    if (!mf_test_tmpfile(path, "preroute")) return;
    mf_case c2;
    if (mf_test_xcase_round_trip(path, &pb, &c, "preroute", &c2, &pb2)) {
        EXPECT(c2.p.preroute == MF_PREROUTE_BF16 &&
                   memcmp(pb2.topk_ids_in, pb.topk_ids_in, sizeof(int32_t) * T * K) == 0 &&
                   memcmp(pb2.topk_weights_in, pb.topk_weights_in, sizeof(float) * T * K) == 0,
               "safetensors round trip: preroute %d, ids or weights differ", c2.p.preroute);
        mf_problem_free(&pb2);
    }
    remove(path);
    mf_problem_free(&pb);
}

int main(void) {
    test_routed();
    test_hard_cases();
    test_nonfinite_and_pokes();
    test_nan_weight_in_empty_slot();
    test_nan_weight_on_local_slot();
    test_files();
    return mf_test_exit("preroute");
}
