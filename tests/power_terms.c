/* power_terms.c: which term of a contract's output radius keeps a wrong kernel admissible.
 *
 *   power_terms full|twin MODEL CASES T [CONTRACT]
 *
 * A measurement, not a test (docs/notes/power-vllm-terms.md uses it). CASES random cases of the
 * model preset (as `test_power table`: T tokens, logits and data normal, no pokes, the routed
 * experts only), each with the case's rsf set to 1.1; the CPU kernel runs with rsf 1.1 (correct)
 * and with rsf 1 (the dropped-rsf mutant). Under CONTRACT (default vllm-0.33-triton-sm90) and
 * variants of it, each with one term removed or changed, the reference computes every output
 * row for the reference's own selection (no routing ambiguity in these cases) and prints, per
 * variant: the median and the 90th percentile of rad / |z| over the elements, the share of
 * elements where the correct kernel's output is outside the admissible interval (a variant that
 * drops a term the CPU kernel needs rejects it: the term is needed), the share where the
 * dropped-rsf output is outside (what the variant would catch), the share of activations with
 * more than one admissible bf16 value, and the time. Only the declared contract is sound for the
 * kernel it models; the variants say what each term costs. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "bf16.h"
#include "casegen.h"
#include "forward.h"
#include "prepare.h"
#include "route.h"

#include "power_case.h"

typedef struct variant {
    const char *name;
    unsigned clear_rp, set_rp; /* round points removed, added */
    int gemm;                  /* 0: as declared; 1: fused_block B 16 F 25 (hopper-tc's);
                                  2: seq_fp32; 3: ordered_blocks B 16 F 25 */
    int plain_router;          /* router with the activation's exp and division, exp/div sigmoid */
} variant;

/* Each variant's reference hulls the plain fp32 alternative wherever it keeps the GEMM1-output
 * or w * y rounding (reference/forward.c, OPTIONAL_RP): "alone" names the rounding points a
 * variant declares, not the width of its hull. */
static const variant variants[] = {
    {"declared", 0, 0, 0, 0},
    {"gemm fused_block 16/25", 0, 0, 1, 0},
    {"gemm seq_fp32", 0, 0, 2, 0},
    {"gemm ordered_blocks 16/25", 0, 0, 3, 0},
    {"router plain", 0, 0, 0, 1},
    {"- rsf_out", MF_RP_RSF_OUT, 0, 0, 0},
    {"- weighted", MF_RP_WEIGHTED, 0, 0, 0},
    {"- gemm1_out", MF_RP_GEMM1_OUT, 0, 0, 0},
    {"- silu_out (alt 1 alone)", MF_RP_SILU_OUT, 0, 0, 0},
    {"alt 1, gemm fused_block", MF_RP_SILU_OUT, 0, 1, 0},
    {"alt 1 - gemm1_out", MF_RP_SILU_OUT | MF_RP_GEMM1_OUT, 0, 0, 0},
    {"alt 1 - weighted", MF_RP_SILU_OUT | MF_RP_WEIGHTED, 0, 0, 0},
    {"alt 1 - rsf_out", MF_RP_SILU_OUT | MF_RP_RSF_OUT, 0, 0, 0},
    {"alt 2 alone (act, rsf_out)", MF_RP_SILU_OUT | MF_RP_GEMM1_OUT | MF_RP_WEIGHTED, 0, 0, 0},
    {"alt 2 - rsf_out", MF_RP_SILU_OUT | MF_RP_GEMM1_OUT | MF_RP_WEIGHTED | MF_RP_RSF_OUT, 0, 0,
     0},
    {"alt 2 - rsf_out, fused_block", MF_RP_SILU_OUT | MF_RP_GEMM1_OUT | MF_RP_WEIGHTED |
                                         MF_RP_RSF_OUT, 0, 1, 0},
};
enum { NV = sizeof variants / sizeof variants[0] };

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static int outside(const mf_ref_row *row, int c, uint16_t y) {
    if (row->flags[c] & (MF_ELEM_UNCONSTRAINED | MF_ELEM_NOT_CHECKED | MF_ELEM_UNDECIDED)) return 0;
    if (mf_bf16_is_nan(y)) return !(row->flags[c] & MF_ELEM_NAN_OK);
    double v = (double)mf_bf16_to_f32(y);
    return v < (double)mf_bf16_to_f32(row->lo[c]) || v > (double)mf_bf16_to_f32(row->hi[c]);
}

int main(int argc, char **argv) {
    if (argc < 5 || (strcmp(argv[1], "full") && strcmp(argv[1], "twin"))) {
        fprintf(stderr, "usage: power_terms full|twin MODEL CASES T [CONTRACT]\n");
        return 2;
    }
    int full = !strcmp(argv[1], "full"), ncases = atoi(argv[3]), T = atoi(argv[4]);
    const mf_contract *base = mf_contract_find(argc > 5 ? argv[5] : "vllm-0.33-triton-sm90");
    if (!base || ncases < 1 || T < 1 || T > 64) {
        fprintf(stderr, "power_terms: unknown contract, or CASES < 1, or T outside 1..64\n");
        return 2;
    }
    mf_error err = {0};
    mf_prep prep;
    mf_prep_default(&prep);
    if (mf_prep_set_model(&prep, argv[2], full, &err) != MF_OK) return printf("%s\n", err.msg), 2;
    mf_backend b;
    if (mf_backend_open("cpu", &b, &err) != MF_OK) return printf("%s\n", err.msg), 1;
    /* per variant: rel radii of every element, counts */
    double *rel[NV];
    size_t nrel[NV];
    unsigned long long ok_bad[NV], drop_bad[NV], elems[NV], act_amb[NV], act_n[NV];
    double secs[NV];
    memset(nrel, 0, sizeof nrel);
    memset(ok_bad, 0, sizeof ok_bad);
    memset(drop_bad, 0, sizeof drop_bad);
    memset(elems, 0, sizeof elems);
    memset(act_amb, 0, sizeof act_amb);
    memset(act_n, 0, sizeof act_n);
    memset(secs, 0, sizeof secs);
    mf_rng rng = {1000};
    for (int ci = 0; ci < ncases; ci++) {
        mf_case c;
        if (power_case(&rng, T, &prep, &c, &err) != MF_OK) return printf("%s\n", err.msg), 1;
        c.p.rsf = 1.1f;
        mf_problem pb;
        memset(&pb, 0, sizeof pb);
        if (mf_problem_build(&c, &pb, &err) != MF_OK) return printf("%s\n", err.msg), 1;
        mf_problem pb1 = pb;
        pb1.p.rsf = 1.0f;
        mf_run_result ok, drop;
        if (mf_backend_run(&b, &pb, &ok, &err) != MF_OK ||
            mf_backend_run(&b, &pb1, &drop, &err) != MF_OK)
            return printf("%s\n", err.msg), 1;
        int H = pb.p.H, k = pb.p.top_k;
        mf_ref_row row;
        row.z = malloc(sizeof(double) * (size_t)H);
        row.rad = malloc(sizeof(double) * (size_t)H);
        row.lo = malloc(sizeof(uint16_t) * (size_t)H);
        row.hi = malloc(sizeof(uint16_t) * (size_t)H);
        row.flags = malloc((size_t)H);
        if (!row.z || !row.rad || !row.lo || !row.hi || !row.flags)
            return printf("out of memory\n"), 1;
        for (int vi = 0; vi < NV; vi++) {
            const variant *va = &variants[vi];
            mf_contract con = *base;
            con.round_points = (con.round_points & ~va->clear_rp) | va->set_rp;
            if (va->gemm == 1) con.gemm = (mf_acc_model){MF_ACC_FUSED_BLOCK, 16, 25};
            if (va->gemm == 2) con.gemm = (mf_acc_model){MF_ACC_SEQ_FP32, 1, 0};
            if (va->gemm == 3) con.gemm = (mf_acc_model){MF_ACC_ORDERED_BLOCKS, 16, 25};
            if (va->plain_router) {
                con.router.own = 0;
                con.sigmoid_form = MF_SIGMOID_EXP_DIV;
                con.softmax_recip = 0;
            }
            double t0 = mf_now_s();
            mf_routing rt;
            if (mf_ref_route(&pb.p, &pb.t, &con, &rt, &err) != MF_OK)
                return printf("%s\n", err.msg), 1;
            mf_ref_options ro = {0};
            mf_ref_ctx *ctx = mf_ref_ctx_new(&pb.p, &pb.t, &con, &ro, &err);
            if (!ctx) return printf("%s\n", err.msg), 1;
            double *r = realloc(NULL, sizeof(double) * (size_t)T * H);
            if (!r) return printf("out of memory\n"), 1;
            size_t nr = 0;
            for (int t = 0; t < T; t++) {
                if (rt.invariant_only[t] || rt.n_ambiguous[t] || rt.n_group_ambiguous[t]) {
                    printf("case %d token %d: ambiguous routing, skipped\n", ci, t);
                    continue;
                }
                const int32_t *ids = (const int32_t *)&rt.ref_ids[(size_t)t * k];
                mf_weights w;
                if (mf_ref_weights(&rt, &pb.p, &con, t, ids, &w, &err) != MF_OK ||
                    mf_ref_token_output(ctx, t, ids, &w, &row, &err) != MF_OK)
                    return printf("%s\n", err.msg), 1;
                for (int col = 0; col < H; col++) {
                    if (row.flags[col] & (MF_ELEM_UNCONSTRAINED | MF_ELEM_NOT_CHECKED)) continue;
                    elems[vi]++;
                    ok_bad[vi] += outside(&row, col, ok.out[(size_t)t * H + col]);
                    drop_bad[vi] += outside(&row, col, drop.out[(size_t)t * H + col]);
                    if (row.z[col] != 0) r[nr++] = row.rad[col] / fabs(row.z[col]);
                }
            }
            mf_ref_stats st;
            mf_ref_ctx_stats(ctx, &st);
            act_amb[vi] += st.act_ambiguous;
            act_n[vi] += st.act_elems;
            mf_ref_ctx_free(ctx);
            mf_routing_free(&rt);
            double *all = realloc(ci ? rel[vi] : NULL, sizeof(double) * (nrel[vi] + nr + 1));
            if (!all) return printf("out of memory\n"), 1;
            memcpy(all + nrel[vi], r, sizeof(double) * nr);
            rel[vi] = all;
            nrel[vi] += nr;
            free(r);
            secs[vi] += mf_now_s() - t0;
        }
        free(row.z);
        free(row.rad);
        free(row.lo);
        free(row.hi);
        free(row.flags);
        mf_run_result_free(&ok);
        mf_run_result_free(&drop);
        mf_problem_free(&pb);
    }
    const mf_model *m = mf_model_find(argv[2]);
    printf("%s %s (H %d, I %d), %d cases of T = %d, rsf 1.1, base contract %s\n", argv[2],
           full ? "full" : "twin", full ? m->H : m->H_twin, full ? m->I : m->I_twin, ncases, T,
           base->name);
    printf("| variant | rad/|z| median | rad/|z| p90 | correct kernel outside | rsf 1.1 dropped "
           "outside | ambiguous activations (first context) | s |\n|---|---|---|---|---|---|---|\n");
    for (int vi = 0; vi < NV; vi++) {
        qsort(rel[vi], nrel[vi], sizeof(double), cmp_d);
        double med = nrel[vi] ? rel[vi][nrel[vi] / 2] : NAN;
        double p90 = nrel[vi] ? rel[vi][(nrel[vi] * 9) / 10] : NAN;
        printf("| %s | %.3g | %.3g | %.2f%% | %.1f%% | %.1f%% | %.0f |\n", variants[vi].name, med,
               p90, 100.0 * (double)ok_bad[vi] / (double)(elems[vi] ? elems[vi] : 1),
               100.0 * (double)drop_bad[vi] / (double)(elems[vi] ? elems[vi] : 1),
               100.0 * (double)act_amb[vi] / (double)(act_n[vi] ? act_n[vi] : 1), secs[vi]);
        free(rel[vi]);
    }
    mf_backend_close(&b);
    return 0;
}
