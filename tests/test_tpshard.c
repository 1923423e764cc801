/* test_tpshard.c: tensor-parallel shards of I (case format v2 tp_size, tp_rank; ABI level 8).
 *
 *  - the reference adds b2 on rank 0 only: a rank-1 case's exact output is that of the same
 *    case without b2, bit for bit, and rank 0's is not;
 *  - the relation tp-shards runs on unsharded bf16 cases (even and uneven splits, interleaved
 *    and stacked layouts, shared experts, b13 and b2) and holds for the CPU kernel, and the CPU
 *    mutants tp-b2-every-rank and tp-interleaved-halves violate it;
 *  - the case rules: tp_rank outside 0..tp_size - 1 and an fp8 slice that is not whole scale
 *    blocks are refused with a message naming the field;
 *  - the binary codec and the safetensors case file keep tp_size and tp_rank;
 *  - the generators draw TP ranks: 2..8 ranks, ranks other than 0, slices of one column, and
 *    the fuzzer's mutations of them stay valid.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "attribute.h"
#include "backend.h"
#include "case.h"
#include "casegen.h"
#include "check.h"
#include "codec.h"
#include "contract.h"
#include "exchange.h"
#include "verdict.h"

#include "mf_test.h"
#include "mf_test_xcase.h"

/* gpt-oss-like: softmax top-4 of 16, expert biases, the clamped activation */
static const char *base =
    "# format v2\n"
    "T = 6\nH = 32\nE = 16\nE_local = 16\nexpert_offset = 0\ntop_k = 4\n"
    "score = softmax\nbias = none\nrenormalize = true\neps = 0\nrsf = 1\n"
    "gen.x = normal seed=0x8301\ngen.logits = normal seed=0x8302\n"
    "gen.w13 = normal seed=0x8304\ngen.w2 = normal seed=0x8305\n"
    "defaults = n_group topk_group group_rule rsf_site logits_dtype gen.bias\n";
static const char *oai =
    "activation = swiglu_oai\nact_alpha = 1.702\nact_limit = 7\nexpert_bias = b13_b2\n"
    "gen.b13 = normal seed=0x8306\ngen.b2 = normal scale=0.5 seed=0x8307\n";

/* The case `base` plus extra lines (I, layout, tp_size...). */
static int build(const char *extra, mf_case *c, mf_problem *pb) {
    char text[4096];
    snprintf(text, sizeof text, "%s%s%s", base, oai, extra);
    mf_error err = {0};
    memset(pb, 0, sizeof *pb);
    if (mf_case_parse_text(text, c, &err) != MF_OK || mf_problem_build(c, pb, &err) != MF_OK) {
        EXPECT(0, "%s: %s", extra, err.msg);
        return 0;
    }
    return 1;
}

static void test_reference_b2_rank0(void) {
    mf_case c;
    mf_problem p0, p1;
    if (!build("I = 8\nlayout = interleaved\ntp_size = 4\ntp_rank = 0\n", &c, &p0)) return;
    if (!build("I = 8\nlayout = interleaved\ntp_size = 4\ntp_rank = 1\n", &c, &p1)) {
        mf_problem_free(&p0);
        return;
    }
    mf_problem nob2 = p1; /* the same tensors, no b2 */
    nob2.p.expert_bias = MF_EBIAS_B13;
    nob2.t.b2 = NULL;
    size_t n = (size_t)p1.p.T * p1.p.H;
    double *z0 = malloc(sizeof(double) * n), *z1 = malloc(sizeof(double) * n),
           *zn = malloc(sizeof(double) * n);
    uint8_t valid[3][16];
    mf_error err = {0};
    if (mf_reference_outputs(&p0, &mf_contract_cpu_scalar, z0, valid[0], &err) != MF_OK ||
        mf_reference_outputs(&p1, &mf_contract_cpu_scalar, z1, valid[1], &err) != MF_OK ||
        mf_reference_outputs(&nob2, &mf_contract_cpu_scalar, zn, valid[2], &err) != MF_OK) {
        EXPECT(0, "reference: %s", err.msg);
    } else {
        int same1 = 1, same0 = 1, tokens = 0;
        for (int t = 0; t < p1.p.T; t++) {
            if (!valid[0][t] || !valid[1][t] || !valid[2][t]) continue;
            tokens++;
            for (int h = 0; h < p1.p.H; h++) {
                size_t i = (size_t)t * p1.p.H + h;
                same1 &= z1[i] == zn[i];
                same0 &= z0[i] == zn[i];
            }
        }
        EXPECT(tokens == p1.p.T, "%d of %d tokens decided", tokens, p1.p.T);
        EXPECT(same1, "rank 1's exact output differs from the case without b2");
        EXPECT(!same0, "rank 0's exact output equals the case without b2 (b2 not added)");
    }
    free(z0), free(z1), free(zn);
    /* rank 1's b2 added anyway is observable (its counterfactual is rank 0's reference), rank
     * 0's is not (nothing changes) */
    unsigned m0 = 0, m1 = 0, want = 1u << MF_KNOB_TP_B2_EVERY_RANK;
    EXPECT(mf_observable_knobs_of(&p1, &mf_contract_cpu_scalar, want, &m1, &err) == MF_OK &&
               mf_observable_knobs_of(&p0, &mf_contract_cpu_scalar, want, &m0, &err) == MF_OK,
           "observable knobs: %s", err.msg);
    EXPECT((m1 & want) && !(m0 & want), "tp_b2_every_rank observable on rank 1 %d, rank 0 %d",
           (m1 & want) != 0, (m0 & want) != 0);
    mf_problem_free(&p0);
    mf_problem_free(&p1);
}

/* Runs backend spec on the unsharded case `extra` with the relations: the tp-shards counts. */
static void relation(const char *spec, const char *extra, int want_violation) {
    mf_case c;
    mf_problem pb;
    if (!build(extra, &c, &pb)) return;
    mf_backend b;
    mf_error err = {0};
    if (mf_backend_open(spec, &b, &err) != MF_OK) {
        EXPECT(0, "%s: %s", spec, err.msg);
        mf_problem_free(&pb);
        return;
    }
    mf_check_opts o;
    mf_check_opts_default(&o);
    o.metamorphic = 1;
    mf_verdict v;
    memset(&v, 0, sizeof v);
    if (mf_check_problem(&pb, &b, &o, &v, &err) != MF_OK) {
        EXPECT(0, "%s on %s: %s", spec, extra, err.msg);
    } else {
        const mf_meta_result *m = &v.meta;
        EXPECT(v.has_meta && m->applicable[MF_META_TP_SHARDS] &&
                   m->compared[MF_META_TP_SHARDS] >= (unsigned long long)pb.p.T * pb.p.H / 2,
               "%s on %s: tp-shards applicable %d, %llu elements compared", spec, extra,
               m->applicable[MF_META_TP_SHARDS], m->compared[MF_META_TP_SHARDS]);
        if (want_violation)
            EXPECT(m->violations[MF_META_TP_SHARDS] > 0, "%s on %s: tp-shards not violated",
                   spec, extra);
        else
            EXPECT(m->violations[MF_META_TP_SHARDS] == 0, "%s on %s: tp-shards violated: %s",
                   spec, extra, m->first[MF_META_TP_SHARDS]);
    }
    mf_backend_close(&b);
    mf_problem_free(&pb);
}

static void test_relation(void) {
    static const char *cases[] = {
        "I = 24\nlayout = interleaved\n",                 /* 3 ranks of 8 */
        "I = 7\nlayout = gate_up\n",                      /* 3, 2, 2 */
        "I = 2\nlayout = up_gate\n",                      /* 2 ranks of 1 column */
        "I = 10\nlayout = interleaved\nn_shared = 1\nshared_I = 5\nshared_weight = one\n"
        "gen.sw13 = normal seed=0x8308\ngen.sw2 = normal seed=0x8309\n",
    };
    for (int i = 0; i < 4; i++) relation("cpu", cases[i], 0);
    /* b2 on every rank: the ranks' sum holds b2 three times */
    relation("cpu-mutant:tp-b2-every-rank", cases[0], 1);
    relation("cpu-mutant:tp-b2-every-rank", cases[1], 1);
    /* interleaved slices read as halves: garbage on every rank, the unsharded run is right */
    relation("cpu-mutant:tp-interleaved-halves", cases[0], 1);
    relation("cpu-mutant:tp-interleaved-halves", cases[3], 1);
    /* the mutant changes nothing where the rows are stacked halves */
    relation("cpu-mutant:tp-interleaved-halves", cases[1], 0);
}

static void refused(const char *extra, const char *want) {
    char text[4096];
    snprintf(text, sizeof text, "%s%s", base, extra);
    mf_case c;
    mf_error err = {0};
    mf_status st = mf_case_parse_text(text, &c, &err);
    EXPECT(st != MF_OK && strstr(err.msg, want), "%s: status %d, message '%s', want '%s'", extra,
           st, err.msg, want);
}

static void test_rules(void) {
    refused("I = 8\nlayout = gate_up\nactivation = silu_glu\ntp_size = 4\ntp_rank = 4\n",
            "tp_rank = 4 with tp_size = 4");
    refused("I = 8\nlayout = gate_up\nactivation = silu_glu\ntp_rank = 1\n",
            "tp_rank = 1 with tp_size = 0");
    refused("I = 8\nlayout = gate_up\nactivation = silu_glu\ntp_size = 1\n", "tp_size");
    /* fp8 (SiLU-GLU on stacked halves, no biases: the FP8 path's rules): I = 48 puts the
     * slice's edge inside a 32-row block */
    static const char *fp8 =
        "I = 48\nlayout = gate_up\nactivation = silu_glu\n"
        "weight_format = fp8_block\nblock_n = 32\nblock_k = 32\ntp_size = 2\n"
        "gen.w13_s = normal seed=0x830a\ngen.w2_s = normal seed=0x830b\n";
    refused(fp8, "tp_size = 2 with fp8_block: I = 48 must be a multiple of block_n = 32");
}

static void test_files(void) {
    mf_case c, d;
    mf_problem pb, pb2;
    if (!build("I = 3\nlayout = interleaved\ntp_size = 7\ntp_rank = 5\n", &c, &pb)) return;
    uint8_t buf[4096];
    size_t n = mf_case_encode(&c, 1, buf, sizeof buf);
    int version = 0;
    EXPECT(n > 0, "the case does not encode");
    mf_case_decode(buf, n, &d, &version);
    EXPECT(version == 2 && d.p.tp_size == 7 && d.p.tp_rank == 5 && d.p.I == 3,
           "binary v%d round trip: tp_size %d, tp_rank %d, I %d", version, d.p.tp_size,
           d.p.tp_rank, d.p.I);
    char path[64];
    if (!mf_test_tmpfile(path, "tpshard")) return;
    mf_case c2;
    if (mf_test_xcase_round_trip(path, &pb, &c, "tpshard", &c2, &pb2)) {
        EXPECT(c2.p.tp_size == 7 && c2.p.tp_rank == 5 &&
                   memcmp(pb2.w13, pb.w13, sizeof(uint16_t) * 16 * 2 * 3 * 32) == 0,
               "safetensors round trip: tp_size %d, tp_rank %d, or w13 differs", c2.p.tp_size,
               c2.p.tp_rank);
        mf_problem_free(&pb2);
    }
    remove(path);
    mf_problem_free(&pb);
}

static void test_generators(void) {
    mf_rng r = {20};
    mf_case_limits lim;
    mf_case_limits_default(&lim);
    int n = 0, other_rank = 0, one_col = 0, sizes = 0, invalid = 0;
    for (int i = 0; i < 4000; i++) {
        mf_case c;
        mf_case_random(&r, &lim, &c);
        mf_error err = {0};
        if (mf_case_validate(&c, &err) != MF_OK) {
            if (invalid++ == 0) EXPECT(0, "random case %d invalid: %s", i, err.msg);
            continue;
        }
        if (c.p.tp_size < 2) continue;
        /* the fuzzer's mutations of a TP rank stay valid (a halved I drops an fp8 sharding) */
        mf_case m = c;
        for (int j = 0; j < 20; j++) {
            mf_case_mutate(&m, &r, &lim);
            if (mf_case_validate(&m, &err) != MF_OK && invalid++ == 0)
                EXPECT(0, "mutation %d of random case %d invalid: %s", j, i, err.msg);
        }
        n++;
        other_rank += c.p.tp_rank != 0;
        one_col += c.p.I == 1;
        sizes |= 1 << c.p.tp_size;
    }
    EXPECT(invalid == 0, "%d invalid random cases", invalid);
    EXPECT(n >= 20 && n < 400, "%d of 4000 random cases are TP ranks", n);
    EXPECT(other_rank > 0 && one_col > 0, "TP ranks: %d not rank 0, %d of one column", other_rank,
           one_col);
    EXPECT(sizes == 0x1fc, "tp_size 2..8 not all drawn (mask %#x)", (unsigned)sizes);
}

int main(void) {
    test_reference_b2_rank0();
    test_relation();
    test_rules();
    test_files();
    test_generators();
    return mf_test_exit("tpshard");
}
