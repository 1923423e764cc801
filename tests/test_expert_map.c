/* test_expert_map.c: expert maps with holes (case format v2, ABI level 7).
 *
 *  - every generator class gives a placement map (each local index once, the rest -1), and
 *    each class its shape: sparse keeps the global order, ties is a reversed contiguous block,
 *    normal scrambles the order (an offset shortcut is wrong), negative puts the routed experts
 *    off this rank and large_pos on it, as far as E_local allows;
 *  - a malformed map (an index twice, out of range, too few local entries) is bad input, from
 *    pokes and from a safetensors case file alike; so is an expert_offset with a map; a fuzz
 *    input whose pokes leave no map is skipped, not a kernel error;
 *  - the reference under a map equals the reference of the contiguous problem that holds the
 *    local experts at their global ids and zero weights elsewhere (exact outputs equal), and the
 *    CPU kernel's outputs of the two are the same values;
 *  - the binary codec and safetensors case files carry the map (I32);
 *  - the map-shards relation holds for the CPU kernel on random contiguous cases and fails for
 *    the kernel that ignores the map (cpu-mutant:expert-map-ignored).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backend.h"
#include "bf16.h"
#include "case.h"
#include "casegen.h"
#include "check.h"
#include "codec.h"
#include "contract.h"
#include "exchange.h"
#include "forward.h"
#include "fuzz.h"
#include "route.h"
#include "verdict.h"

#include "mf_test.h"
#include "mf_test_xcase.h"

enum { T = 6, H = 8, I = 4, E = 16, K = 2 };

/* A map case: E experts, E_local L, the map's class and seed, plus extra lines. */
static int build(int L, const char *cls, unsigned seed, const char *extra, mf_case *c,
                 mf_problem *pb, char *msg, size_t n) {
    char text[4096];
    snprintf(text, sizeof text,
             "# format v2\nT = %d\nH = %d\nI = %d\nE = %d\nE_local = %d\nexpert_offset = 0\n"
             "top_k = %d\nscore = softmax\nbias = none\nn_group = 1\ntopk_group = 1\n"
             "renormalize = false\neps = 0\nrsf = 1\nrsf_site = weights\nplacement = map\n"
             "gen.x = normal seed=0x8001\ngen.logits = normal seed=0x8002\n"
             "gen.bias = normal seed=0x8003\n"
             "gen.w13 = normal seed=0x8004\ngen.w2 = normal seed=0x8005\n"
             "gen.expert_map = %s seed=0x%x\n%s"
             "defaults = group_rule activation layout logits_dtype\n",
             T, H, I, E, L, K, cls, seed, extra);
    mf_error err = {0};
    memset(pb, 0, sizeof *pb);
    if (mf_case_parse_text(text, c, &err) != MF_OK || mf_problem_build(c, pb, &err) != MF_OK) {
        snprintf(msg, n, "%s", err.msg);
        return 0;
    }
    return 1;
}

/* 1 where the case's exact routing selects expert e */
static void selected(const mf_problem *pb, uint8_t *sel) {
    mf_error err = {0};
    mf_routing rt;
    memset(sel, 0, E);
    if (mf_ref_route(&pb->p, &pb->t, &mf_contract_cpu_scalar, &rt, &err) != MF_OK) {
        EXPECT(0, "routing: %s", err.msg);
        return;
    }
    for (int i = 0; i < T * K; i++) sel[rt.ref_ids[i]] = 1;
    mf_routing_free(&rt);
}

static void test_generators(void) {
    static const char *cls[] = {"normal", "sparse", "ties", "negative", "large_pos", "uniform"};
    static const int Ls[] = {1, 5, 8, 15, 16};
    int scrambled = 0, holes = 0;
    for (size_t ci = 0; ci < sizeof cls / sizeof cls[0]; ci++)
        for (size_t li = 0; li < sizeof Ls / sizeof Ls[0]; li++)
            for (unsigned seed = 1; seed <= 8; seed++) {
                int L = Ls[li];
                mf_case c;
                mf_problem pb;
                char msg[1024];
                if (!build(L, cls[ci], seed, "", &c, &pb, msg, sizeof msg)) {
                    EXPECT(0, "%s L=%d seed %u: %s", cls[ci], L, seed, msg);
                    continue;
                }
                const int32_t *m = pb.expert_map;
                EXPECT(mf_expert_map_check(&pb.p, m, msg, sizeof msg) == NULL,
                       "%s L=%d seed %u: %s", cls[ci], L, seed, msg);
                int first = -1, last = -1, ascending = 1, prev = -1;
                for (int e = 0; e < E; e++) {
                    if (m[e] < 0) continue;
                    if (first < 0) first = e;
                    last = e;
                    ascending &= m[e] > prev;
                    prev = m[e];
                }
                scrambled += !ascending;
                holes += last - first + 1 > L;
                if (!strcmp(cls[ci], "sparse"))
                    EXPECT(ascending, "sparse L=%d seed %u: local order not the global order", L,
                           seed);
                if (!strcmp(cls[ci], "ties")) {
                    int ok = last - first + 1 == L;
                    for (int e = first; e <= last; e++) ok &= m[e] == L - 1 - (e - first);
                    EXPECT(ok, "ties L=%d seed %u: not a reversed contiguous block", L, seed);
                }
                uint8_t sel[E];
                int nsel = 0, nloc = 0;
                selected(&pb, sel);
                for (int e = 0; e < E; e++) nsel += sel[e], nloc += sel[e] && m[e] >= 0;
                if (!strcmp(cls[ci], "negative"))
                    EXPECT(nloc == (nsel + L > E ? nsel + L - E : 0),
                           "negative L=%d seed %u: %d of %d routed experts local", L, seed, nloc,
                           nsel);
                if (!strcmp(cls[ci], "large_pos"))
                    EXPECT(nloc == (nsel < L ? nsel : L),
                           "large_pos L=%d seed %u: %d of %d routed experts local", L, seed, nloc,
                           nsel);
                mf_problem_free(&pb);
            }
    EXPECT(scrambled > 50, "%d maps whose local order is not the global order", scrambled);
    EXPECT(holes > 50, "%d maps with holes", holes);
}

/* A poke of the map to value v at entry e, as a text line */
static void poke_line(char *buf, size_t n, int e, int32_t v) {
    snprintf(buf, n, "poke = expert_map %d 0x%08x\n", e, (unsigned)v);
}

static void test_malformed(void) {
    mf_case c;
    mf_problem pb;
    char msg[1024], extra[128];
    if (!build(5, "ties", 3, "", &c, &pb, msg, sizeof msg)) {
        EXPECT(0, "ties: %s", msg);
        return;
    }
    int loc = -1, rem = -1;
    for (int e = 0; e < E; e++) {
        if (pb.expert_map[e] == 2) loc = e;
        if (pb.expert_map[e] < 0) rem = e;
    }
    mf_problem_free(&pb);
    static const struct {
        int remote; /* poke the remote entry (else the local one) */
        int32_t v;
        const char *want;
    } bad[] = {{1, 2, "placed twice"},
               {0, 5, "a local index in [0, 5)"},
               {0, -2, "a local index in [0, 5)"},
               {0, -1, "places 4 experts, E_local = 5"}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        poke_line(extra, sizeof extra, bad[i].remote ? rem : loc, bad[i].v);
        int built = build(5, "ties", 3, extra, &c, &pb, msg, sizeof msg);
        EXPECT(!built && strstr(msg, bad[i].want), "poke %s: %s (want '%s')", extra,
               built ? "built" : msg, bad[i].want);
        if (built) mf_problem_free(&pb);
    }
    /* a poke that moves a local index to another entry is a map */
    char two[256];
    poke_line(two, sizeof two, loc, -1);
    poke_line(two + strlen(two), sizeof two - strlen(two), rem, 2);
    EXPECT(build(5, "ties", 3, two, &c, &pb, msg, sizeof msg), "a moved index: %s", msg);
    mf_problem_free(&pb);
    mf_error err = {0};
    EXPECT(mf_case_parse_text("# format v2\nT = 1\nH = 8\nI = 4\nE = 16\nE_local = 4\n"
                              "expert_offset = 3\ntop_k = 2\nplacement = map\n"
                              "defaults = score bias n_group topk_group group_rule renormalize "
                              "eps rsf rsf_site activation layout logits_dtype gen.x gen.logits "
                              "gen.bias gen.w13 gen.w2\n",
                              &c, &err) != MF_OK &&
               strstr(err.msg, "expert_offset = 3 with placement map"),
           "expert_offset with a map: %s", err.msg[0] ? err.msg : "accepted");
}

/* A fuzz input whose pokes leave the map no placement map is skipped (bad input), not a kernel
 * error; one whose poked map is still a map runs */
static void test_fuzz_input(void) {
    mf_case c;
    mf_problem pb;
    char msg[1024];
    if (!build(5, "ties", 3, "", &c, &pb, msg, sizeof msg)) {
        EXPECT(0, "ties: %s", msg);
        return;
    }
    uint32_t loc = 0, rem = 0;
    for (int e = 0; e < E; e++) {
        if (pb.expert_map[e] == 2) loc = (uint32_t)e;
        if (pb.expert_map[e] < 0) rem = (uint32_t)e;
    }
    mf_problem_free(&pb);
    mf_fuzz_config cfg;
    mf_fuzz_config_init(&cfg, "cpu", NULL, 0);
    mf_fuzz_config_no_budget(&cfg);
    mf_fuzz *f = mf_fuzz_new(&cfg);
    mf_fuzz_result *r = calloc(1, sizeof *r);
    EXPECT(f && r, "mf_fuzz_new or out of memory");
    for (int moved = 0; moved < 2 && f && r; moved++) {
        mf_case pc = c;
        /* index 2 placed twice; moved: its first place then emptied */
        pc.pokes[pc.n_pokes++] = (mf_poke){.tensor = MF_T_EXPERT_MAP, .index = rem, .bits = 2};
        if (moved)
            pc.pokes[pc.n_pokes++] =
                (mf_poke){.tensor = MF_T_EXPERT_MAP, .index = loc, .bits = 0xffffffffu};
        uint8_t buf[4096];
        size_t n = mf_case_encode(&pc, 1, buf, sizeof buf);
        EXPECT(n > 0, "the case does not encode");
        memset(r, 0, sizeof *r);
        mf_fuzz_outcome o = mf_fuzz_one(f, buf, n, r);
        EXPECT(moved ? o == MF_FUZZ_PASS : o == MF_FUZZ_SKIP,
               "a fuzz input with %s: outcome %d (%s)", moved ? "a moved index" : "an index twice",
               (int)o, r->error);
    }
    free(r);
    if (f) mf_fuzz_free(f);
}

/* The exact rows of every token of pb (z [T][H]) and the CPU kernel's output (out [T][H]) */
static int rows_and_run(const mf_problem *pb, double *z, uint16_t *out) {
    mf_error err = {0};
    mf_routing rt;
    mf_ref_options ro = {0};
    if (mf_ref_route(&pb->p, &pb->t, &mf_contract_cpu_scalar, &rt, &err) != MF_OK) {
        EXPECT(0, "routing: %s", err.msg);
        return 0;
    }
    mf_ref_ctx *ctx = mf_ref_ctx_new(&pb->p, &pb->t, &mf_contract_cpu_scalar, &ro, &err);
    double rad[H];
    uint16_t lo[H], hi[H];
    uint8_t fl[H];
    int ok = ctx != NULL;
    for (int t = 0; t < T && ok; t++) {
        mf_weights w;
        const int32_t *ids = (const int32_t *)&rt.ref_ids[(size_t)t * K];
        mf_ref_row row = {z + (size_t)t * H, rad, lo, hi, fl};
        ok = mf_ref_weights(&rt, &pb->p, &mf_contract_cpu_scalar, t, ids, &w, &err) == MF_OK &&
             mf_ref_token_output(ctx, t, ids, &w, &row, &err) == MF_OK;
    }
    mf_ref_ctx_free(ctx);
    mf_routing_free(&rt);
    mf_backend b;
    mf_run_result r;
    if (ok && (ok = mf_backend_open("cpu", &b, &err) == MF_OK)) {
        if ((ok = mf_backend_run(&b, pb, &r, &err) == MF_OK && !r.unsupported)) {
            memcpy(out, r.out, sizeof(uint16_t) * T * H);
            mf_run_result_free(&r);
        }
        mf_backend_close(&b);
    }
    EXPECT(ok, "reference or CPU kernel: %s", err.msg[0] ? err.msg : "unsupported");
    return ok;
}

/* Under map m the reference and the CPU kernel compute what the contiguous problem computes that
 * holds local expert m[g]'s weights at global id g and zero weights at the remote ids. */
static void test_against_contiguous(void) {
    static const char *cls[] = {"normal", "sparse", "negative", "large_pos"};
    for (size_t ci = 0; ci < sizeof cls / sizeof cls[0]; ci++) {
        mf_case c;
        mf_problem pb;
        char msg[1024];
        if (!build(5, cls[ci], 11, "", &c, &pb, msg, sizeof msg)) {
            EXPECT(0, "%s: %s", cls[ci], msg);
            continue;
        }
        const size_t n13 = 2 * (size_t)I * H, n2 = (size_t)H * I;
        uint16_t *w13 = calloc(n13 * E, 2), *w2 = calloc(n2 * E, 2);
        uint8_t ready[E];
        memset(ready, MF_EXPERT_READY, E);
        for (int g = 0; g < E && w13 && w2; g++) {
            int le = pb.expert_map[g];
            if (le < 0) continue;
            memcpy(w13 + g * n13, pb.w13 + le * n13, 2 * n13);
            memcpy(w2 + g * n2, pb.w2 + le * n2, 2 * n2);
        }
        mf_problem pc = pb;
        pc.p.placement = MF_PLACEMENT_CONTIGUOUS;
        pc.p.E_local = E;
        pc.w13 = w13, pc.t.w13 = w13;
        pc.w2 = w2, pc.t.w2 = w2;
        pc.expert_map = NULL, pc.t.expert_map = NULL;
        pc.experts = ready, pc.t.expert_state = ready;
        uint8_t sel[E];
        int nloc = 0;
        selected(&pb, sel);
        for (int e = 0; e < E; e++) nloc += sel[e] && pb.expert_map[e] >= 0;
        double zm[T * H], zc[T * H];
        uint16_t om[T * H], oc[T * H];
        if (w13 && w2 && rows_and_run(&pb, zm, om) && rows_and_run(&pc, zc, oc)) {
            int bad_z = 0, bad_o = 0, nonzero = 0;
            for (int i = 0; i < T * H; i++) {
                bad_z += zm[i] != zc[i];
                bad_o += mf_bf16_to_f32(om[i]) != mf_bf16_to_f32(oc[i]);
                nonzero += zm[i] != 0;
            }
            EXPECT(bad_z == 0 && bad_o == 0,
                   "%s: %d exact outputs and %d kernel outputs differ from the contiguous "
                   "problem's",
                   cls[ci], bad_z, bad_o);
            /* the routed experts all remote: every output 0 (negative, when they fit) */
            EXPECT((nonzero == 0) == (nloc == 0), "%s: %d routed experts local, %d outputs not 0",
                   cls[ci], nloc, nonzero);
        }
        free(w13);
        free(w2);
        mf_problem_free(&pb);
    }
}

static void test_files(void) {
    mf_case c, d;
    mf_problem pb, pb2;
    char msg[1024];
    if (!build(7, "normal", 5, "", &c, &pb, msg, sizeof msg)) {
        EXPECT(0, "normal: %s", msg);
        return;
    }
    uint8_t buf[4096];
    size_t n = mf_case_encode(&c, 1, buf, sizeof buf);
    int version = 0;
    EXPECT(n > 0, "the case does not encode");
    mf_case_decode(buf, n, &d, &version);
    EXPECT(version == 2 && d.p.placement == MF_PLACEMENT_MAP && d.p.E_local == 7 &&
               d.gen[MF_T_EXPERT_MAP].cls == MF_GEN_NORMAL && d.gen[MF_T_EXPERT_MAP].seed == 5,
           "binary v%d round trip: placement %d, map class %d", version, d.p.placement,
           d.gen[MF_T_EXPERT_MAP].cls);
    char path[64];
    if (!mf_test_tmpfile(path, "expert_map")) return;
    mf_case c2;
    if (mf_test_xcase_round_trip(path, &pb, &c, "expert_map", &c2, &pb2)) {
        EXPECT(c2.p.placement == MF_PLACEMENT_MAP &&
                   memcmp(pb2.expert_map, pb.expert_map, sizeof(int32_t) * E) == 0,
               "safetensors round trip: placement %d, the maps differ", c2.p.placement);
        mf_problem_free(&pb2);
    }
    /* the same file with a map entry placed twice is bad input */
    for (int e = 0; e < E; e++)
        if (pb.expert_map[e] < 0) {
            pb.expert_map[e] = 0;
            break;
        }
    mf_error err = {0};
    EXPECT(mf_xcase_write(path, &pb, &c, "expert_map", NULL, &err) == MF_OK &&
               mf_xcase_read(path, &c2, &pb2, &err) != MF_OK && strstr(err.msg, "placed twice"),
           "a safetensors map with an index twice: %s", err.msg[0] ? err.msg : "accepted");
    remove(path);
    mf_problem_free(&pb);
}

/* map-shards on random contiguous cases: applicable and holding for the CPU kernel, violated for
 * the kernel that ignores the map */
static void test_relation(void) {
    mf_backend good, bad;
    mf_error err = {0};
    if (mf_backend_open("cpu", &good, &err) != MF_OK ||
        mf_backend_open("cpu-mutant:expert-map-ignored", &bad, &err) != MF_OK) {
        EXPECT(0, "backends: %s", err.msg);
        return;
    }
    mf_check_opts o;
    mf_check_opts_default(&o);
    o.metamorphic = 1;
    o.attribute = 0;
    mf_rng r = {20};
    mf_case_limits lim;
    mf_case_limits_default(&lim);
    lim.max_T = 8, lim.max_H = 32, lim.max_I = 32;
    int applicable = 0, compared = 0, caught = 0, cases = 0;
    mf_verdict *v = malloc(sizeof *v);
    for (int i = 0; i < 400 && cases < 40 && v; i++) {
        mf_case c;
        mf_case_random(&r, &lim, &c);
        if (c.p.placement != MF_PLACEMENT_CONTIGUOUS || c.p.E_local != c.p.E || c.p.E < 2 ||
            c.p.preroute != MF_PREROUTE_NONE)
            continue;
        mf_problem pb;
        if (mf_problem_build(&c, &pb, &err) != MF_OK) continue;
        cases++;
        memset(v, 0, sizeof *v);
        if (mf_check_problem(&pb, &good, &o, v, &err) != MF_OK) {
            EXPECT(0, "check: %s", err.msg);
        } else {
            applicable += v->has_meta && v->meta.applicable[MF_META_MAP_SHARDS];
            compared += v->has_meta && v->meta.compared[MF_META_MAP_SHARDS] > 0;
            EXPECT(v->pass && !(v->has_meta && v->meta.violations[MF_META_MAP_SHARDS]),
                   "random case %d: the CPU kernel fails (%s)", i,
                   v->has_meta ? v->meta.first[MF_META_MAP_SHARDS] : "no relations");
        }
        memset(v, 0, sizeof *v);
        if (mf_check_problem(&pb, &bad, &o, v, &err) == MF_OK)
            caught += v->has_meta && v->meta.violations[MF_META_MAP_SHARDS] > 0;
        mf_problem_free(&pb);
    }
    free(v);
    EXPECT(cases == 40 && applicable == cases && compared > 0,
           "%d cases, map-shards applicable in %d, bit-for-bit comparisons in %d", cases,
           applicable, compared);
    EXPECT(caught >= cases / 2, "the map-ignoring kernel violates map-shards in %d of %d cases",
           caught, cases);
    printf("map-shards: %d random contiguous cases, applicable %d, compared bit for bit in %d; "
           "the map-ignoring kernel caught in %d\n",
           cases, applicable, compared, caught);
    mf_backend_close(&good);
    mf_backend_close(&bad);
}

/* A map that places every expert (E_local = E, a permutation): the relations that reshard or
 * relabel contiguous experts (ep-shards, relabel) do not apply, the others hold, under the CPU
 * kernel's contract and under any-order. */
static void test_permutation_relations(void) {
    static const char *text =
        "# format v2\nT = 6\nH = 8\nI = 4\nE = 16\nE_local = 16\nexpert_offset = 0\ntop_k = 4\n"
        "score = sigmoid\nbias = f32\nn_group = 4\ntopk_group = 2\nrenormalize = true\n"
        "eps = 1e-20\nrsf = 2.5\nrsf_site = weights\nplacement = map\n"
        "gen.x = normal seed=0x8101\ngen.logits = normal seed=0x8102\n"
        "gen.bias = normal seed=0x8103\ngen.w13 = normal seed=0x8104\n"
        "gen.w2 = normal seed=0x8105\ngen.expert_map = normal seed=0x8106\n"
        "defaults = group_rule activation layout logits_dtype\n";
    mf_error err = {0};
    mf_case c;
    mf_problem pb;
    mf_backend b;
    if (mf_case_parse_text(text, &c, &err) != MF_OK || mf_problem_build(&c, &pb, &err) != MF_OK ||
        mf_backend_open("cpu", &b, &err) != MF_OK) {
        EXPECT(0, "permutation map: %s", err.msg);
        return;
    }
    int scrambled = 0;
    for (int e = 0; e < 16; e++) scrambled += pb.expert_map[e] != e;
    EXPECT(scrambled > 0, "the map is not the identity");
    mf_check_opts o;
    mf_check_opts_default(&o);
    o.metamorphic = 1;
    o.attribute = 0;
    mf_verdict *v = malloc(sizeof *v);
    const char *contracts[2] = {NULL, "any-order"};
    for (int i = 0; i < 2 && v; i++) {
        if (contracts[i]) b.contract = *mf_contract_find(contracts[i]);
        memset(v, 0, sizeof *v);
        mf_status st = mf_check_problem(&pb, &b, &o, v, &err);
        EXPECT(st == MF_OK && v->pass, "%s: %s", contracts[i] ? contracts[i] : "cpu-scalar",
               st != MF_OK ? err.msg : "rejected");
        EXPECT(st == MF_OK && v->has_meta && !v->meta.applicable[MF_META_EP_SHARDS] &&
                   !v->meta.applicable[MF_META_RELABEL],
               "ep-shards or relabel applied to an expert map");
    }
    free(v);
    mf_backend_close(&b);
    mf_problem_free(&pb);
}

int main(void) {
    test_generators();
    test_malformed();
    test_fuzz_input();
    test_against_contiguous();
    test_files();
    test_relation();
    test_permutation_relations();
    return mf_test_exit("expert_map");
}
