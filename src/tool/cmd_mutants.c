/* cmd_mutants.c: `moefuzz mutants`: the mutant zoo (kernels/mutants.h) against moefuzz.
 *
 * For each mutant, an in-process fuzz loop (the structured generator and mutator of the fuzz
 * targets, one core) searches for a failing case, starting from the seed corpus (cheapest
 * first, as libFuzzer replays a corpus) and from nothing, once per seed. Reported: killed or
 * not, time-to-detect (median and worst over the seeds), the knob attribution names and whether
 * it is the mutant's knob, and, on one fixed evaluation set (the seeds and random cases), the
 * share of cases each checker rejects: moefuzz, FlashInfer's BF16 allclose (atol 0.1, rtol
 * 0.85, 92.5% of elements) and vLLM's (atol 2e-2, rtol 0). Mutants exist only in test builds:
 * this command works in moefuzz-test.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attribute.h"
#include "bf16.h"
#include "casegen.h"
#include "check.h"
#include "codec.h"
#include "fuzz.h"
#include "tool.h"

void mf_help_mutants(FILE *f) {
    fprintf(f,
            "usage: moefuzz-test mutants [--list] [--only NAME] [--seeds N] [--budget S]\n"
            "                            [--eval N] [--kernel cpu|cuda] [-v]\n\n"
            "Fuzzes every mutant of the zoo from the seed corpus and from nothing, N seeds each\n"
            "(default 5), at most S seconds per run (default 30); prints killed, time-to-detect\n"
            "(median, worst), the attributed knob, and the kill rates of moefuzz, FlashInfer's\n"
            "and vLLM's allclose rules on an evaluation set of the seeds and N random cases\n"
            "(default 100). Exit 1 unless every mutant is killed in every run and every knob\n"
            "mutant is attributed to its knob. Test builds only (moefuzz-test).\n");
}

typedef struct zoo_case {
    mf_case c;
    double work;
} zoo_case;

static int cmp_work(const void *a, const void *b) {
    double x = ((const zoo_case *)a)->work, y = ((const zoo_case *)b)->work;
    return x < y ? -1 : x > y;
}

static int load_seeds(zoo_case **out) {
    mf_path_list l = {0};
    mf_error err;
    char dir[1200];
    const char *root = getenv("MOEFUZZ_SOURCE_DIR");
    snprintf(dir, sizeof dir, "%s/corpus/seeds", root ? root : MF_SOURCE_DIR);
    if (mf_paths_collect(dir, &l, &err) != MF_OK) return 0;
    zoo_case *z = calloc((size_t)l.n + 1, sizeof *z);
    int n = 0;
    for (int i = 0; i < l.n; i++)
        if (mf_case_load(l.paths[i], 0, &z[n].c, NULL, &err) == MF_OK) {
            z[n].work = mf_case_work(&z[n].c) + mf_case_bytes(&z[n].c) / 2; /* ~cost */
            n++;
        }
    mf_paths_free(&l);
    qsort(z, (size_t)n, sizeof *z, cmp_work);
    *out = z;
    return n;
}

typedef struct run_out {
    int detected;
    double seconds;
    long cases;
    mf_case c;          /* the failing case */
    mf_attribution attr;
    int has_attr;
    unsigned exonerated; /* knobs a passing case of the run would have caught */
    char stage[32];
} run_out;

/* One search: until a case fails or the budget runs out. */
static void search(mf_backend *b, const zoo_case *seeds, int nseeds, uint64_t seed,
                   double budget, const mf_case_limits *lim, run_out *ro, mf_problem *pb) {
    memset(ro, 0, sizeof *ro);
    mf_rng rng = {seed * 0x9E3779B97F4A7C15ull + 1};
    mf_check_opts o;
    mf_check_opts_default(&o);
    enum { POOL = 64, PASSED = 32 };
    mf_case *pool = malloc(sizeof(mf_case) * POOL);
    mf_case *passed = malloc(sizeof(mf_case) * PASSED); /* recent passing cases */
    int npool = 0, next_seed = 0, npassed = 0;
    mf_verdict *v = malloc(sizeof *v);
    double t0 = mf_now_s();
    mf_error err;
    while (mf_now_s() - t0 < budget) {
        mf_case c;
        if (next_seed < nseeds) {
            c = seeds[next_seed++].c;
        } else if (npool > 0 && mf_rng_below(&rng, 4) != 0) {
            c = pool[mf_rng_below(&rng, (uint32_t)npool)];
            mf_case_mutate(&c, &rng, lim);
        } else {
            mf_case_random(&rng, lim, &c);
        }
        if (npool < POOL) pool[npool++] = c;
        else pool[mf_rng_below(&rng, POOL)] = c;
        ro->cases++;
        if (mf_problem_update(&c, pb, &err) != MF_OK) continue;
        if (mf_check_problem(pb, b, &o, v, &err) != MF_OK) {
            /* a kernel error is a detection too (it would crash a fuzz target) */
            ro->detected = 1;
            snprintf(ro->stage, sizeof ro->stage, "backend error");
            ro->c = c;
            break;
        }
        if (v->unsupported) continue;
        if (v->pass) {
            passed[npassed++ % PASSED] = c;
            continue;
        }
        ro->detected = 1;
        ro->c = c;
        for (int s = 0; s < MF_STAGE_COUNT; s++)
            if (v->n_bad[s]) {
                snprintf(ro->stage, sizeof ro->stage, "%s", mf_stage_name((mf_stage)s));
                break;
            }
        ro->has_attr = v->has_attribution;
        ro->attr = v->attr;
        break;
    }
    ro->seconds = mf_now_s() - t0;
    /* several knobs explain the failure equally: a knob whose loss a passing case of this run
     * would have caught is not the bug (the kernel passed that case) */
    if (ro->detected && ro->has_attr && ro->attr.n_match > 1) {
        unsigned cand = 0;
        for (int i = 0; i < ro->attr.n_match; i++) cand |= 1u << ro->attr.match[i];
        int n = npassed < PASSED ? npassed : PASSED;
        for (int i = 0; i < n && (cand & ~ro->exonerated); i++) {
            unsigned obs = 0;
            if (mf_problem_update(&passed[i], pb, &err) != MF_OK) continue;
            if (mf_observable_knobs_of(pb, &b->contract, cand & ~ro->exonerated, &obs, &err) ==
                MF_OK)
                ro->exonerated |= obs;
        }
    }
    free(pool);
    free(passed);
    free(v);
}

/* ---- allclose rules of other projects ---- */

typedef struct allclose_rule {
    const char *name;
    double atol, rtol, fraction; /* pass iff >= fraction of elements satisfy the tolerance */
} allclose_rule;

static const allclose_rule rules[2] = {
    {"FlashInfer BF16", 0.1, 0.85, 0.925},
    {"vLLM", 2e-2, 0.0, 1.0},
};

/* 1 if the rule rejects the output (fails), 0 if it accepts; -1 if nothing to compare */
static int allclose_rejects(const allclose_rule *r, const mf_problem *pb, const uint16_t *out,
                            const double *z, const uint8_t *valid) {
    long n = 0, ok = 0;
    for (int t = 0; t < pb->p.T; t++) {
        if (!valid[t]) continue;
        for (int c = 0; c < pb->p.H; c++) {
            double y = mf_bf16_to_f32(out[(size_t)t * pb->p.H + c]), ref = z[(size_t)t * pb->p.H + c];
            n++;
            /* torch.isclose: |y - ref| <= atol + rtol |ref|; NaN never close */
            ok += fabs(y - ref) <= r->atol + r->rtol * fabs(ref);
        }
    }
    if (n == 0) return -1;
    return (double)ok < r->fraction * (double)n;
}

typedef struct eval_stats {
    int cases;                 /* cases with something to compare */
    int moefuzz, rule[2];      /* rejections */
    int clean[3], caught[3];   /* cases the checker accepts on the correct kernel, and of those
                                  the ones it rejects here (moefuzz, rule 0, rule 1) */
} eval_stats;

/* accepts[i][checker]: the checker accepted case i on the correct kernel (set when good is
 * NULL, used otherwise) */
static void evaluate(mf_backend *b, const mf_case *cases, int n, eval_stats *es, mf_problem *pb,
                     uint8_t (*accepts)[3], int record) {
    memset(es, 0, sizeof *es);
    mf_check_opts o;
    mf_check_opts_default(&o);
    o.attribute = 0;
    mf_verdict *v = malloc(sizeof *v);
    mf_error err;
    for (int i = 0; i < n; i++) {
        if (mf_problem_update(&cases[i], pb, &err) != MF_OK) continue;
        mf_run_result r;
        if (mf_backend_run(b, pb, &r, &err) != MF_OK || r.unsupported) {
            mf_run_result_free(&r);
            continue;
        }
        size_t TH = (size_t)pb->p.T * pb->p.H;
        double *z = malloc(sizeof(double) * TH);
        uint8_t *valid = malloc((size_t)pb->p.T);
        if (z && valid && mf_reference_outputs(pb, &b->contract, z, valid, &err) == MF_OK) {
            int r0 = allclose_rejects(&rules[0], pb, r.out, z, valid);
            int r1 = allclose_rejects(&rules[1], pb, r.out, z, valid);
            memset(v, 0, sizeof *v);
            if (r0 >= 0 && mf_check_result(pb, &b->contract, &r, NULL, &o, v, &err) == MF_OK) {
                int rej[3] = {!v->pass, r0, r1};
                es->cases++;
                es->moefuzz += rej[0];
                es->rule[0] += rej[1];
                es->rule[1] += rej[2];
                for (int k = 0; k < 3; k++) {
                    if (record) accepts[i][k] = !rej[k];
                    if (accepts[i][k]) es->clean[k]++, es->caught[k] += rej[k];
                }
            }
        }
        free(z);
        free(valid);
        mf_run_result_free(&r);
    }
    free(v);
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int mf_cmd_mutants(int argc, char **argv) {
    int nseeds = 5, neval = 100, list = 0, verbose = 0;
    double budget = 30;
    const char *only = NULL, *kernel = "cpu";
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--list")) list = 1;
        else if (!strcmp(argv[i], "--only") && i + 1 < argc) only = argv[++i];
        else if (!strcmp(argv[i], "--seeds") && i + 1 < argc) nseeds = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--budget") && i + 1 < argc) budget = atof(argv[++i]);
        else if (!strcmp(argv[i], "--eval") && i + 1 < argc) neval = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--kernel") && i + 1 < argc) kernel = argv[++i];
        else if (!strcmp(argv[i], "-v") || !strcmp(argv[i], "--verbose")) verbose = 1;
        else {
            fprintf(stderr, "moefuzz mutants: unexpected '%s'\n", argv[i]);
            return MF_EXIT_BAD_INPUT;
        }
    }
    if (list) {
        for (int m = 1; m <= mf_mutant_count(); m++)
            printf("%-22s knob %-20s %s\n", mf_mutant_name(m), mf_mutant_knob(m), mf_mutant_doc(m));
        return MF_EXIT_PASS;
    }
    const mf_mutant_provider *mp = !strcmp(kernel, "cuda")
                                       ? (mf_cuda_mutant_provider ? mf_cuda_mutant_provider() : NULL)
                                       : (mf_cpu_mutant_provider ? mf_cpu_mutant_provider() : NULL);
    if (!mp) {
        fprintf(stderr, "moefuzz mutants: the %s mutants exist only in test builds: run "
                        "moefuzz-test mutants (built next to moefuzz)\n", kernel);
        return MF_EXIT_SKIP;
    }
    if (nseeds < 1) nseeds = 1;
    zoo_case *seeds = NULL;
    int ns = load_seeds(&seeds);
    mf_case_limits lim;
    mf_fuzz_config fc;
    mf_fuzz_config_from_env(&fc, "cpu");
    lim = fc.lim;
    /* the evaluation set: every seed, then random cases from nothing */
    mf_case *eval = malloc(sizeof(mf_case) * (size_t)(ns + neval));
    for (int i = 0; i < ns; i++) eval[i] = seeds[i].c;
    mf_rng er = {20261127};
    for (int i = 0; i < neval; i++) mf_case_random(&er, &lim, &eval[ns + i]);
    int n_eval = ns + neval;
    mf_problem pb;
    memset(&pb, 0, sizeof pb);
    uint8_t(*accepts)[3] = calloc((size_t)n_eval + 1, sizeof *accepts);

    printf("mutant zoo on the %s kernel: %d seeds x {seed corpus, nothing}, budget %.0f s per "
           "run, evaluation set %d cases (%d seeds + %d random)\n\n",
           kernel, nseeds, budget, n_eval, ns, neval);
    printf("%-22s %-20s %-9s %-17s %-17s %-26s %5s %8s %8s %8s\n", "mutant", "knob", "killed",
           "ttd seeds (med/max)", "ttd nothing", "attributed", "right", "moefuzz", "FI-BF16",
           "vLLM");
    int total = 0, killed_all = 0, knob_mutants = 0, knob_right = 0;
    double worst_ttd = 0;
    double all_ttd[512];
    int n_all_ttd = 0;
    mf_error err;
    /* the correct kernel first: false-positive rates of each checker on the same set */
    {
        mf_backend good;
        char spec[64];
        snprintf(spec, sizeof spec, "%s", kernel);
        if (mf_backend_open(spec, &good, &err) == MF_OK) {
            eval_stats es;
            evaluate(&good, eval, n_eval, &es, &pb, accepts, 1);
            printf("%-22s %-20s %-9s %-17s %-17s %-26s %5s %7.0f%% %7.0f%% %7.0f%%   "
                   "(false alarms on the correct kernel)\n",
                   "(none: correct kernel)", "-", "-", "-", "-", "-", "-",
                   100.0 * es.moefuzz / (es.cases ? es.cases : 1),
                   100.0 * es.rule[0] / (es.cases ? es.cases : 1),
                   100.0 * es.rule[1] / (es.cases ? es.cases : 1));
            mf_backend_close(&good);
        }
    }
    for (int m = 1; m <= mf_mutant_count(); m++) {
        if (only && strcmp(only, mf_mutant_name(m))) continue;
        char spec[96];
        snprintf(spec, sizeof spec, "%s-mutant:%s", kernel, mf_mutant_name(m));
        mf_backend b;
        if (mf_backend_open(spec, &b, &err) != MF_OK) {
            fprintf(stderr, "moefuzz mutants: %s\n", err.msg);
            return MF_EXIT_BAD_INPUT;
        }
        total++;
        double ttd[2][32];
        int kills[2] = {0, 0};
        /* attribution: intersect the knob sets named over every detection */
        unsigned knobset = ~0u;
        int attributed_runs = 0;
        for (int start = 0; start < 2; start++)
            for (int s = 0; s < nseeds && s < 32; s++) {
                run_out ro;
                search(&b, seeds, start == 0 ? ns : 0, (uint64_t)(m * 1000 + s + 1), budget,
                       &lim, &ro, &pb);
                ttd[start][s] = ro.detected ? ro.seconds : INFINITY;
                kills[start] += ro.detected;
                if (ro.detected) {
                    if (n_all_ttd < 512) all_ttd[n_all_ttd++] = ro.seconds;
                    if (ro.seconds > worst_ttd) worst_ttd = ro.seconds;
                }
                if (verbose && ro.detected) {
                    printf("  %s run %s/%d: %s after %.3f s (%ld cases): %s\n",
                           mf_mutant_name(m), start ? "nothing" : "seeds", s, ro.stage,
                           ro.seconds, ro.cases, ro.has_attr ? ro.attr.text : "");
                    mf_case_print_text(&ro.c, stdout);
                }
                if (ro.detected && ro.has_attr) {
                    unsigned set = 0;
                    for (int i = 0; i < ro.attr.n_match; i++) set |= 1u << ro.attr.match[i];
                    if (set & ~ro.exonerated) set &= ~ro.exonerated;
                    knobset &= set;
                    attributed_runs++;
                }
            }
        if (!attributed_runs) knobset = 0;
        int killed = kills[0] == nseeds && kills[1] == nseeds;
        killed_all += killed;
        char named[160] = "";
        int n = 0;
        for (int k = 0; k < MF_KNOB_COUNT; k++)
            if (knobset & (1u << k))
                n += snprintf(named + n, sizeof named - (size_t)n, "%s%s", n ? "+" : "",
                              mf_knob_name((mf_knob)k));
        if (!named[0]) snprintf(named, sizeof named, "%s", attributed_runs ? "none" : "-");
        const char *knob = mf_mutant_knob(m);
        const char *right = "-";
        if (strcmp(knob, "-")) {
            knob_mutants++;
            int kid = mf_knob_lookup(knob);
            int ok = kid >= 0 && knobset == (1u << kid);
            knob_right += ok;
            right = ok ? "yes" : (kid >= 0 && (knobset & (1u << kid))) ? "among" : "NO";
        }
        qsort(ttd[0], (size_t)nseeds, sizeof(double), cmp_double);
        qsort(ttd[1], (size_t)nseeds, sizeof(double), cmp_double);
        char a[32], bb[32], killed_s[16];
        snprintf(a, sizeof a, "%.3f/%.3f s", ttd[0][nseeds / 2], ttd[0][nseeds - 1]);
        snprintf(bb, sizeof bb, "%.3f/%.3f s", ttd[1][nseeds / 2], ttd[1][nseeds - 1]);
        snprintf(killed_s, sizeof killed_s, "%d+%d/%d", kills[0], kills[1], 2 * nseeds);
        eval_stats es;
        evaluate(&b, eval, n_eval, &es, &pb, accepts, 0);
        double pct[3];
        for (int k = 0; k < 3; k++) pct[k] = 100.0 * es.caught[k] / (es.clean[k] ? es.clean[k] : 1);
        printf("%-22s %-20s %-9s %-17s %-17s %-26s %5s %7.0f%% %7.0f%% %7.0f%%\n",
               mf_mutant_name(m), knob, killed_s, a, bb, named, right, pct[0], pct[1], pct[2]);
        fflush(stdout);
        mf_backend_close(&b);
    }
    qsort(all_ttd, (size_t)n_all_ttd, sizeof(double), cmp_double);
    double med = n_all_ttd ? all_ttd[n_all_ttd / 2] : INFINITY;
    printf("\nmutation score %d/%d (killed in every run); knob mutants attributed to their knob "
           "%d/%d; time-to-detect over all runs: median %.3f s, worst %.3f s (one core)\n",
           killed_all, total, knob_right, knob_mutants, med, worst_ttd);
    printf("kill rates: share of the evaluation cases, among those each checker accepts on the "
           "correct kernel, that it rejects with the mutant\n");
    mf_problem_free(&pb);
    free(accepts);
    free(seeds);
    free(eval);
    return killed_all == total && knob_right == knob_mutants ? MF_EXIT_PASS : MF_EXIT_MISMATCH;
}
