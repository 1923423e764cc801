/* test_rows.c: cases whose tokens repeat a few distinct rows, and the chunked CPU kernel.
 *
 *   - a case with `rows = D` holds at most D distinct x rows (pokes aside), its logits rows
 *     follow the same tokens, the text form carries it and binary v1 refuses it
 *   - the reference's reuse is exact: for every token, the routing of a repeated logits row is
 *     the routing of its first copy, and the admissible output row (z, radius, bounds, flags)
 *     with reuse is bit-identical to the one computed without it; the reuse computes only the
 *     distinct (row, expert) pairs and is faster (a generous ratio is asserted, the measured
 *     one printed: the per-token combine is not reused)
 *   - the fuzz campaign's random cases reach the small, large-T (past 128 tokens) and full-H/I
 *     classes, every one within the campaign's limits
 *   - past the CPU kernel's 128-token launches: the kernel passes, and the mutant that drops
 *     rsf after the first launch passes below 129 tokens and fails above, on tokens >= 128 only
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backend.h"
#include "case.h"
#include "check.h"
#include "codec.h"
#include "forward.h"
#include "fuzz.h"
#include "mf_test.h"
#include "route.h"

static void rows_case(mf_case *c, int T, int D, uint64_t seed) {
    mf_case_default(c);
    c->p.T = T;
    c->p.H = 40;
    c->p.I = 24;
    c->p.E = c->p.E_local = 16;
    c->p.n_group = 4;
    c->p.topk_group = 2;
    c->p.top_k = 4;
    c->rows = D;
    for (int t = 0; t < MF_NUM_TENSORS; t++) c->gen[t].seed = seed * 7919 + (uint64_t)t;
}

static int distinct_rows(const void *a, size_t row_bytes, int n) {
    int *first = malloc(sizeof(int) * (size_t)n);
    int d = first ? mf_rows_first_equal(a, row_bytes, n, first) : -1;
    free(first);
    return d;
}

static void test_case_rows(void) {
    mf_case c;
    rows_case(&c, 300, 5, 1);
    mf_problem pb;
    mf_error err = {0};
    EXPECT(mf_problem_build(&c, &pb, &err) == MF_OK, "build: %s", err.msg);
    int H = c.p.H, E = c.p.E;
    EXPECT(distinct_rows(pb.x, 2 * (size_t)H, c.p.T) == 5, "%d distinct x rows, want 5",
           distinct_rows(pb.x, 2 * (size_t)H, c.p.T));
    int same = 1;
    for (int t = 0; t < c.p.T; t++)
        for (int u = 0; u < 5; u++) {
            int xe = !memcmp(pb.x + (size_t)t * H, pb.x + (size_t)u * H, 2 * (size_t)H);
            int le = !memcmp(pb.logits + (size_t)t * E, pb.logits + (size_t)u * E,
                             4 * (size_t)E);
            same &= xe == le;
        }
    EXPECT(same, "the logits rows do not follow the x rows");
    mf_problem_free(&pb);
    /* a poke makes one more row distinct */
    c.n_pokes = 1;
    c.pokes[0] = (mf_poke){MF_T_X, (uint32_t)(250 * H + 3), 0x4000};
    EXPECT(mf_problem_build(&c, &pb, &err) == MF_OK, "build: %s", err.msg);
    EXPECT(distinct_rows(pb.x, 2 * (size_t)H, c.p.T) == 6, "a poked row is not distinct");
    EXPECT(mf_case_work(&c) == 6.0 * c.p.top_k * 3 * H * c.p.I, "work %.0f",
           mf_case_work(&c));
    mf_problem_free(&pb);
    /* text carries it, v1 cannot */
    char buf[8192];
    FILE *f = fmemopen(buf, sizeof buf, "w");
    mf_case_print_text(&c, f);
    fclose(f);
    mf_case back;
    EXPECT(mf_case_parse_text(buf, &back, &err) == MF_OK && back.rows == 5,
           "text round trip: %s, rows %d", err.msg, back.rows);
    uint8_t bin[4096];
    /* binary: v1 cannot carry rows, v2 carries it in a tag */
    size_t nb = mf_case_encode(&c, 1, bin, sizeof bin);
    EXPECT(nb > 0 && mf_case_format(&c) == 2 && bin[0] == 2, "rows = 5 not encoded as v2");
    mf_case dec;
    int ver = 0;
    mf_case_decode(bin, nb, &dec, &ver);
    EXPECT(ver == 2 && dec.rows == 5 && dec.p.T == c.p.T, "binary round trip: v%d rows %d", ver,
           dec.rows);
}

/* CPU seconds of this process: the machine is shared, wall time is not the reference's. */
static double cpu_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Every token's reference row (its exact selection and weights), with or without the reuse. */
static int reference_rows(const mf_problem *pb, int no_reuse, double **out, mf_ref_stats *st,
                          double *seconds) {
    const mf_moe_params *p = &pb->p;
    int T = p->T, H = p->H, k = p->top_k;
    mf_error err = {0};
    double t0 = cpu_s();
    mf_routing rt;
    if (mf_ref_route(p, &pb->t, &mf_contract_cpu_scalar, &rt, &err) != MF_OK) return 0;
    mf_ref_options ro = {.no_reuse = no_reuse};
    mf_ref_ctx *ctx = mf_ref_ctx_new(p, &pb->t, &mf_contract_cpu_scalar, &ro, &err);
    /* per token: z, rad, lo, hi, flags as doubles, H each */
    double *rows = calloc((size_t)T * 5 * H, sizeof(double));
    double *z = malloc(sizeof(double) * H), *rad = malloc(sizeof(double) * H);
    uint16_t *lo = malloc(2 * (size_t)H), *hi = malloc(2 * (size_t)H);
    uint8_t *fl = malloc((size_t)H);
    int ok = ctx && rows && z && rad && lo && hi && fl;
    for (int t = 0; t < T && ok; t++) {
        const int32_t *ids = (const int32_t *)&rt.ref_ids[(size_t)t * k];
        if (rt.invariant_only[t] || rt.n_ambiguous[t] || rt.n_group_ambiguous[t]) continue;
        mf_weights w;
        mf_ref_row row = {z, rad, lo, hi, fl};
        ok = mf_ref_weights(&rt, p, &mf_contract_cpu_scalar, t, ids, &w, &err) == MF_OK &&
             mf_ref_token_output(ctx, t, ids, &w, &row, &err) == MF_OK;
        double *r = rows + (size_t)t * 5 * H;
        for (int c = 0; c < H; c++) {
            r[c] = z[c];
            r[H + c] = rad[c];
            r[2 * H + c] = lo[c];
            r[3 * H + c] = hi[c];
            r[4 * H + c] = fl[c];
        }
    }
    if (!ok) printf("reference: %s\n", err.msg);
    *seconds = cpu_s() - t0;
    if (ctx) mf_ref_ctx_stats(ctx, st);
    free(z), free(rad), free(lo), free(hi), free(fl);
    mf_ref_ctx_free(ctx);
    mf_routing_free(&rt);
    *out = rows;
    return ok;
}

static void test_reuse_exact(void) {
    for (uint64_t seed = 1; seed <= 3; seed++) {
        mf_case c;
        rows_case(&c, 512, seed == 3 ? 1 : 3 + (int)seed, seed);
        if (seed == 2) c.p.score = MF_SCORE_SOFTMAX, c.p.rsf_site = MF_RSF_OUTPUT;
        mf_problem pb;
        mf_error err = {0};
        EXPECT(mf_problem_build(&c, &pb, &err) == MF_OK, "build: %s", err.msg);
        double *with = NULL, *without = NULL, s_with, s_without;
        mf_ref_stats st_with, st_without;
        EXPECT(reference_rows(&pb, 1, &without, &st_without, &s_without), "no reuse");
        EXPECT(reference_rows(&pb, 0, &with, &st_with, &s_with), "reuse");
        size_t n = (size_t)c.p.T * 5 * c.p.H;
        EXPECT(with && without && !memcmp(with, without, n * sizeof(double)),
               "seed %llu: a row differs with reuse", (unsigned long long)seed);
        /* only the distinct (row, expert) pairs are computed */
        unsigned long long pairs = st_without.experts;
        EXPECT(pairs == (unsigned long long)c.p.T * c.p.top_k, "%llu pairs without reuse",
               pairs);
        EXPECT(st_with.experts <= (unsigned long long)c.rows * c.p.top_k &&
                   st_with.experts + st_with.experts_reused == pairs,
               "seed %llu: %llu computed + %llu reused of %llu", (unsigned long long)seed,
               st_with.experts, st_with.experts_reused, pairs);
        double ratio = s_without / s_with;
        printf("T %d, %d distinct rows: reference %.4f CPU s without reuse, %.4f with (%.1fx)\n",
               c.p.T, c.rows, s_without, s_with, ratio);
        EXPECT(ratio > 3, "seed %llu: speedup %.2fx, want > 3", (unsigned long long)seed, ratio);
        /* the routing of a repeated logits row is its first copy's */
        mf_routing rt;
        EXPECT(mf_ref_route(&pb.p, &pb.t, &mf_contract_cpu_scalar, &rt, &err) == MF_OK, "route");
        int E = c.p.E, same = 1;
        for (int t = c.rows; t < c.p.T; t++) {
            int u = 0;
            while (u < c.rows && memcmp(pb.logits + (size_t)u * E, pb.logits + (size_t)t * E,
                                        4 * (size_t)E))
                u++;
            if (u == c.rows) continue;
            same &= !memcmp(rt.key_lo + (size_t)t * E, rt.key_lo + (size_t)u * E, 8 * E) &&
                    !memcmp(rt.key_hi + (size_t)t * E, rt.key_hi + (size_t)u * E, 8 * E) &&
                    !memcmp(rt.s_rad + (size_t)t * E, rt.s_rad + (size_t)u * E, 8 * E) &&
                    !memcmp(rt.ref_ids + (size_t)t * c.p.top_k,
                            rt.ref_ids + (size_t)u * c.p.top_k, sizeof(int) * c.p.top_k);
        }
        EXPECT(same, "seed %llu: a repeated row routes differently", (unsigned long long)seed);
        mf_routing_free(&rt);
        free(with);
        free(without);
        mf_problem_free(&pb);
    }
}

/* The fuzz campaign's random cases reach every size class within their limits. */
static void test_size_classes(void) {
    mf_fuzz_config cfg;
    mf_fuzz_config_from_env(&cfg, "cpu");
    mf_rng r = {20261207};
    int n[MF_SIZE_COUNT] = {0}, past_launch = 0, fits = 0;
    enum { N = 2000 };
    for (int i = 0; i < N; i++) {
        mf_case c;
        mf_case_random(&r, &cfg.lim, &c);
        n[mf_case_size_class(&c)]++;
        past_launch += c.p.T > 128 && c.rows > 0;
        mf_error verr = {0};
        int fit = mf_case_fits(&c, &cfg.lim), valid = mf_case_validate(&c, &verr) == MF_OK;
        int in = fit && valid;
        if (!in)
            printf("outside: T %d H %d I %d E %d k %d rows %d work %.3g bytes %.3g%s %s\n",
                   c.p.T, c.p.H, c.p.I, c.p.E, c.p.top_k, c.rows, mf_case_work(&c),
                   mf_case_bytes(&c), fit ? "" : " (over the limits)", valid ? "" : verr.msg);
        fits += in;
    }
    printf("%d random fuzz cases: small %d, large-T %d (%d past 128 tokens), full-H/I %d\n", N,
           n[MF_SIZE_SMALL], n[MF_SIZE_LARGE_T], past_launch, n[MF_SIZE_FULL_HI]);
    EXPECT(fits == N, "%d of %d random cases outside the fuzz limits", N - fits, N);
    EXPECT(n[MF_SIZE_SMALL] > N / 4 && past_launch > N / 20 && n[MF_SIZE_FULL_HI] > 0,
           "a size class is (nearly) never reached");
}

static int check_case(const char *spec, const mf_case *c, mf_verdict *v) {
    mf_backend b;
    mf_error err = {0};
    if (mf_backend_open(spec, &b, &err) != MF_OK) {
        printf("open %s: %s\n", spec, err.msg);
        return 0;
    }
    mf_problem pb;
    int ok = mf_problem_build(c, &pb, &err) == MF_OK;
    mf_check_opts o;
    mf_check_opts_default(&o);
    o.attribute = 0;
    ok = ok && mf_check_problem(&pb, &b, &o, v, &err) == MF_OK;
    if (!ok) printf("%s: %s\n", spec, err.msg);
    mf_problem_free(&pb);
    mf_backend_close(&b);
    return ok;
}

static void test_chunks(void) {
    static const char *mutant = "cpu-mutant:rsf-dropped-after-first-chunk";
    mf_case c;
    rows_case(&c, 300, 6, 4);
    c.p.rsf = 2.5f;
    mf_verdict v;
    EXPECT(check_case("cpu", &c, &v) && v.pass && v.elems_checked > 0,
           "the cpu kernel fails a %d-token case", c.p.T);
    EXPECT(check_case(mutant, &c, &v) && !v.pass, "the mutant passes %d tokens", c.p.T);
    int first_tok = c.p.T;
    for (int i = 0; i < v.n_rep; i++)
        if (v.rep[i].token >= 0 && v.rep[i].token < first_tok) first_tok = v.rep[i].token;
    EXPECT(first_tok >= 128, "the mutant fails token %d, in the first launch", first_tok);
    c.p.T = 128;
    EXPECT(check_case(mutant, &c, &v) && v.pass, "the mutant fails one launch of 128 tokens");
    c.p.T = 129;
    EXPECT(check_case(mutant, &c, &v) && !v.pass, "the mutant passes 129 tokens");
}

int main(void) {
    test_case_rows();
    test_reuse_exact();
    test_size_classes();
    test_chunks();
    return mf_test_exit("test_rows");
}
