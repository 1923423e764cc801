/* cmd_mutants.c: `moefuzz-test mutants`: the mutant zoo (kernels/mutants.h) against moefuzz.
 *
 * The assertions, what ctest runs: first the controls, a fixed set of cases (the seeds and
 * random cases) on which the correct kernel must pass with the determinism check on (moefuzz
 * raises no false alarm) and the mutant build with no mutant set must give the same bits (or
 * pass too), or a kill would prove nothing. Then, for each mutant of the kernel, an in-process
 * fuzz loop (the structured generator and mutator of the fuzz targets, one core) searches for a
 * failing case, from the seed corpus (cheapest first, as libFuzzer replays a corpus) and from
 * nothing, once per seed, each run at most a number of cases (so the result does not depend on
 * the machine's speed). Every run must end in a failing verdict (an error, from the kernel, the
 * reference or attribution, is not a kill) that shows only the mutant's expected stages on this
 * kernel, and a knob mutant must be attributed to its knob alone.
 *
 * With --tables, also the kill rates on one fixed evaluation set: the share of cases each
 * checker rejects, moefuzz, FlashInfer's BF16 allclose (atol 0.1, rtol 0.85, 92.5% of elements)
 * and vLLM's (atol 2e-2, rtol 0), and their false alarms on the correct kernel. Mutants exist
 * only in test builds: this command works in moefuzz-test.
 */
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../kernels/mutants.h"
#include "attribute.h"
#include "bf16.h"
#include "casegen.h"
#include "check.h"
#include "codec.h"
#include "fuzz.h"
#include "options.h"
#include "tool.h"

typedef struct zoo_case {
    mf_case c;
    double work;
} zoo_case;

static int cmp_work(const void *a, const void *b) {
    double x = ((const zoo_case *)a)->work, y = ((const zoo_case *)b)->work;
    return x < y ? -1 : x > y;
}

/* The seed corpus, cheapest first; -1 if it cannot be read. */
static int load_seeds(zoo_case **out, char *dir, size_t dir_len) {
    mf_path_list l = {0};
    mf_error err;
    const char *root = getenv("MOEFUZZ_SOURCE_DIR");
    snprintf(dir, dir_len, "%s/corpus/seeds", root ? root : MF_SOURCE_DIR);
    if (mf_paths_collect(dir, &l, &err) != MF_OK) return -1;
    zoo_case *z = calloc((size_t)l.n + 1, sizeof *z);
    if (!z) {
        mf_paths_free(&l);
        return -1;
    }
    int n = 0;
    for (int i = 0; i < l.n; i++) {
        if (mf_case_load(l.paths[i], 0, &z[n].c, NULL, &err) != MF_OK) {
            fprintf(stderr, "moefuzz mutants: %s\n", err.msg);
            free(z);
            mf_paths_free(&l);
            return -1;
        }
        z[n].work = mf_case_work(&z[n].c) + mf_case_bytes(&z[n].c) / 2; /* ~cost */
        n++;
    }
    mf_paths_free(&l);
    qsort(z, (size_t)n, sizeof *z, cmp_work);
    *out = z;
    return n;
}


/* ---- controls ---- */

/* The correct kernel on every case, twice for determinism; the unmutated mutant build once,
 * accepted when its result is the correct kernel's bit for bit and checked otherwise. Returns
 * the number of cases that did not pass (false alarms, refusals, errors), each printed. */
static int zoo_controls(mf_backend *good, mf_backend *unmutated, const mf_case *cases, int n,
                        mf_problem *pb, int *false_alarms) {
    mf_check_opts o;
    mf_check_opts_default(&o);
    o.attribute = 0;
    mf_verdict *v = malloc(sizeof *v);
    int bad = 0;
    *false_alarms = 0;
    for (int i = 0; i < n && v; i++) {
        mf_error err = {0};
        mf_run_result r, r2, rm;
        int have_r = 0, have_r2 = 0, have_rm = 0;
        const char *what = NULL;
        if (mf_problem_update(&cases[i], pb, &err) != MF_OK) {
            what = "the case does not build";
        } else if (mf_backend_run(good, pb, &r, &err) != MF_OK) {
            what = "correct kernel error";
        } else if ((have_r = 1), r.unsupported) {
            snprintf(err.msg, sizeof err.msg, "%s", r.reason);
            what = "refused by the correct kernel";
        } else if (good->contract.deterministic && mf_backend_run(good, pb, &r2, &err) != MF_OK) {
            what = "correct kernel error";
        } else if ((have_r2 = good->contract.deterministic),
                   mf_check_result_fresh(pb, &good->contract, &r, have_r2 ? &r2 : NULL, &o, v, &err) !=
                       MF_OK) {
            what = "check error";
        } else if (!v->pass) {
            (*false_alarms)++;
            what = "FALSE ALARM on the correct kernel";
            err.msg[0] = 0;
        } else if (mf_backend_run(unmutated, pb, &rm, &err) != MF_OK) {
            what = "unmutated build error";
        } else if ((have_rm = 1), !mf_results_equal(pb, &r, &rm) ||
                                      !mf_contract_equal(&good->contract, &unmutated->contract)) {
            mf_check_opts o1 = o;
            o1.determinism = 0;
            if (mf_check_result_fresh(pb, &unmutated->contract, &rm, NULL, &o1, v, &err) != MF_OK)
                what = "check error (unmutated build)";
            else if (!v->pass) {
                what = "the unmutated mutant build fails";
                err.msg[0] = 0;
            }
        }
        if (what) {
            bad++;
            printf("  CONTROL case %d: %s%s%s\n", i, what, err.msg[0] ? ": " : "", err.msg);
            if (v && !v->pass) mf_verdict_print(v, stdout);
            mf_case_print_text(&cases[i], stdout);
        }
        if (have_r) mf_run_result_free(&r);
        if (have_r2) mf_run_result_free(&r2);
        if (have_rm) mf_run_result_free(&rm);
    }
    free(v);
    return v ? bad : n;
}

/* ---- the search ---- */

typedef enum zoo_outcome { ZOO_KILLED, ZOO_SURVIVED, ZOO_ERROR } zoo_outcome;

typedef struct zoo_run {
    zoo_outcome outcome;
    double seconds;
    long cases, unsupported;
    mf_case c; /* the failing case */
    unsigned stages;
    int has_attr;
    mf_attribution attr;
    unsigned exonerated; /* knobs a passing case of the run would have caught */
    char error[1024];
} zoo_run;

typedef struct zoo_opts {
    int nseeds, neval, tables, verbose;
    long max_cases;
    double budget; /* seconds per run; <= 0: no limit but the number of cases */
} zoo_opts;

/* One run: until a case fails, an error, or the budget is spent. */
static void zoo_search(mf_backend *b, const zoo_case *seeds, int nseeds, uint64_t seed,
                       const zoo_opts *zo, const mf_case_limits *lim, zoo_run *ro, mf_problem *pb) {
    memset(ro, 0, sizeof *ro);
    ro->outcome = ZOO_SURVIVED;
    mf_rng rng = {seed * 0x9E3779B97F4A7C15ull + 1};
    mf_check_opts o;
    mf_check_opts_default(&o);
    o.determinism = 0; /* the controls check it; no mutant makes two runs differ */
    enum { POOL = 64, PASSED = 32 };
    mf_case *pool = malloc(sizeof(mf_case) * POOL);
    mf_case *passed = malloc(sizeof(mf_case) * PASSED); /* recent passing cases */
    mf_verdict *v = malloc(sizeof *v);
    if (!pool || !passed || !v) {
        ro->outcome = ZOO_ERROR;
        snprintf(ro->error, sizeof ro->error, "out of memory");
    }
    int npool = 0, next_seed = 0, npassed = 0;
    double t0 = mf_now_s();
    mf_error err = {0};
    while (ro->outcome == ZOO_SURVIVED && ro->cases < zo->max_cases &&
           (zo->budget <= 0 || mf_now_s() - t0 < zo->budget)) {
        mf_case c;
        if (next_seed < nseeds) {
            c = seeds[next_seed++].c;
        } else if (npool > 0 && mf_rng_below(&rng, 4) != 0) {
            c = pool[mf_rng_below(&rng, (uint32_t)npool)];
            mf_case_mutate(&c, &rng, lim);
        } else {
            mf_case_random(&rng, lim, &c);
        }
        if (npool < POOL)
            pool[npool++] = c;
        else
            pool[mf_rng_below(&rng, POOL)] = c;
        ro->cases++;
        if (mf_problem_update(&c, pb, &err) != MF_OK ||
            mf_check_problem(pb, b, &o, v, &err) != MF_OK) {
            ro->outcome = ZOO_ERROR;
            ro->c = c;
            snprintf(ro->error, sizeof ro->error, "%s", err.msg);
            break;
        }
        if (v->unsupported) {
            ro->unsupported++;
            continue;
        }
        if (v->pass) {
            passed[npassed++ % PASSED] = c;
            continue;
        }
        ro->outcome = ZOO_KILLED;
        ro->c = c;
        ro->stages = mf_verdict_stages(v);
        ro->has_attr = v->has_attribution;
        ro->attr = v->attr;
    }
    ro->seconds = mf_now_s() - t0;
    /* several knobs explain the failure equally: a knob whose loss a passing case of this run
     * would have caught is not the bug (the kernel passed that case) */
    if (ro->outcome == ZOO_KILLED && ro->has_attr && ro->attr.n_match > 1) {
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
        /* a kill before any passing case could tell the candidates apart (the first case, say):
         * the search goes on, at most EXTRA more cases, for passing cases that can */
        enum { EXTRA = 256 };
        for (int i = 0; i < EXTRA && __builtin_popcount(cand & ~ro->exonerated) > 1; i++) {
            mf_case c = ro->c;
            if (mf_rng_below(&rng, 2)) mf_case_mutate(&c, &rng, lim);
            else mf_case_random(&rng, lim, &c);
            unsigned obs = 0;
            if (mf_problem_update(&c, pb, &err) != MF_OK ||
                mf_check_problem(pb, b, &o, v, &err) != MF_OK || v->unsupported || !v->pass)
                continue;
            if (mf_observable_knobs_of(pb, &b->contract, cand & ~ro->exonerated, &obs, &err) ==
                MF_OK)
                ro->exonerated |= obs;
        }
    }
    free(pool);
    free(passed);
    free(v);
}

/* ---- allclose rules of other projects (--tables) ---- */

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
            double y = mf_bf16_to_f32(out[(size_t)t * pb->p.H + c]),
                   ref = z[(size_t)t * pb->p.H + c];
            n++;
            /* torch.isclose: |y - ref| <= atol + rtol |ref|; NaN never close */
            ok += fabs(y - ref) <= r->atol + r->rtol * fabs(ref);
        }
    }
    if (n == 0) return -1;
    return (double)ok < r->fraction * (double)n;
}

typedef struct eval_stats {
    int cases;               /* cases with something to compare */
    int moefuzz, rule[2];    /* rejections */
    int clean[3], caught[3]; /* cases the checker accepts on the correct kernel, and of those
                                the ones it rejects here (moefuzz, rule 0, rule 1) */
} eval_stats;

/* accepts[i][checker]: the checker accepted case i on the correct kernel (set when record,
 * used otherwise) */
static void evaluate(mf_backend *b, const mf_case *cases, int n, eval_stats *es, mf_problem *pb,
                     uint8_t (*accepts)[3], int record) {
    memset(es, 0, sizeof *es);
    mf_check_opts o;
    mf_check_opts_default(&o);
    o.attribute = 0;
    mf_verdict *v = malloc(sizeof *v);
    mf_error err;
    for (int i = 0; i < n && v; i++) {
        if (mf_problem_update(&cases[i], pb, &err) != MF_OK) continue;
        mf_run_result r;
        if (mf_backend_run(b, pb, &r, &err) != MF_OK) continue;
        if (r.unsupported) {
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
            if (r0 >= 0 && mf_check_result_fresh(pb, &b->contract, &r, NULL, &o, v, &err) == MF_OK) {
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

/* ---- one mutant ---- */

typedef struct zoo_tally {
    int mutants, passed, knob_mutants, knob_right, runs, errors;
    double worst_s;
    long worst_cases;
} zoo_tally;

/* Every run of mutant m on backend b; prints its row, returns 1 iff every assertion holds. */
static int zoo_mutant(int m, unsigned kernel, mf_backend *b, const zoo_case *seeds, int ns,
                      const zoo_opts *zo, const mf_case_limits *lim, mf_problem *pb, zoo_tally *t) {
    unsigned expected = mf_mutant_expected_stages(m, kernel), seen = 0;
    int kills = 0, runs = 0, bad_stage = 0, errors = 0, unsupported = 0, attributed_runs = 0;
    unsigned knobset = ~0u; /* intersection of the knob sets named over every kill */
    long max_cases = 0;
    double max_s = 0, ttd[2][32]; /* time to detect per start; INFINITY: not killed */
    int kills_from[2] = {0, 0};
    for (int start = 0; start < 2; start++)
        for (int s = 0; s < zo->nseeds; s++) {
            zoo_run ro;
            zoo_search(b, seeds, start == 0 ? ns : 0, (uint64_t)(m * 1000 + s + 1), zo, lim, &ro,
                       pb);
            runs++;
            ttd[start][s] = ro.outcome == ZOO_KILLED ? ro.seconds : INFINITY;
            unsupported += ro.unsupported != 0;
            if (ro.cases > max_cases) max_cases = ro.cases;
            if (ro.seconds > max_s) max_s = ro.seconds;
            const char *from = start ? "nothing" : "seeds";
            if (ro.outcome == ZOO_ERROR) {
                errors++;
                printf("  %s run %s/%d: ERROR after %ld cases (not a kill): %s\n",
                       mf_mutant_name(m), from, s, ro.cases, ro.error);
                mf_case_print_text(&ro.c, stdout);
                continue;
            }
            if (ro.unsupported)
                printf("  %s run %s/%d: %ld cases refused by the kernel\n", mf_mutant_name(m), from,
                       s, ro.unsupported);
            if (ro.outcome == ZOO_SURVIVED) {
                printf("  %s run %s/%d: NOT KILLED in %ld cases (%.1f s)\n", mf_mutant_name(m),
                       from, s, ro.cases, ro.seconds);
                continue;
            }
            kills++;
            kills_from[start]++;
            seen |= ro.stages;
            char st[128];
            mf_stages_format(ro.stages, st, sizeof st);
            if (!ro.stages || (ro.stages & ~expected)) {
                bad_stage++;
                char ex[128];
                mf_stages_format(expected, ex, sizeof ex);
                printf("  %s run %s/%d: failing stages %s, expected a subset of %s\n",
                       mf_mutant_name(m), from, s, st, ex);
                mf_case_print_text(&ro.c, stdout);
            }
            if (zo->verbose) {
                printf("  %s run %s/%d: %s after %ld cases, %.3f s: %s\n", mf_mutant_name(m), from,
                       s, st, ro.cases, ro.seconds, ro.has_attr ? ro.attr.text : "");
                mf_case_print_text(&ro.c, stdout);
            }
            if (ro.has_attr) {
                unsigned set = 0;
                for (int i = 0; i < ro.attr.n_match; i++) set |= 1u << ro.attr.match[i];
                if (set & ~ro.exonerated) set &= ~ro.exonerated;
                knobset &= set;
                attributed_runs++;
            }
        }
    if (!attributed_runs) knobset = 0;
    char named[160], seen_s[128];
    mf_knobs_format(knobset, named, sizeof named);
    if (!attributed_runs) snprintf(named, sizeof named, "-");
    mf_stages_format(seen, seen_s, sizeof seen_s);
    const char *knob = mf_mutant_knob(m), *right = "-";
    int attribution_ok = 1;
    if (strcmp(knob, "-")) {
        t->knob_mutants++;
        int kid = mf_knob_lookup(knob);
        attribution_ok = kid >= 0 && knobset == (1u << kid) && attributed_runs == kills;
        t->knob_right += attribution_ok;
        right = attribution_ok ? "yes" : (kid >= 0 && (knobset & (1u << kid))) ? "among" : "NO";
    }
    int ok = kills == runs && !errors && !bad_stage && !unsupported && attribution_ok;
    char killed_s[24], ttd_s[40];
    snprintf(killed_s, sizeof killed_s, "%d+%d/%d", kills_from[0], kills_from[1], runs);
    for (int start = 0; start < 2; start++)
        qsort(ttd[start], (size_t)zo->nseeds, sizeof(double), cmp_double);
    snprintf(ttd_s, sizeof ttd_s, "%.3f / %.3f s", ttd[0][zo->nseeds / 2], ttd[1][zo->nseeds / 2]);
    printf("%-22s %-20s %-9s %-19s %9ld  %-34s %-26s %5s  %s\n", mf_mutant_name(m), knob, killed_s,
           ttd_s, max_cases, seen_s, named, right, ok ? "ok" : "FAIL");
    fflush(stdout);
    t->mutants++;
    t->passed += ok;
    t->runs += runs;
    t->errors += errors;
    if (max_s > t->worst_s) t->worst_s = max_s;
    if (max_cases > t->worst_cases) t->worst_cases = max_cases;
    return ok;
}

typedef struct mutants_args {
    zoo_opts zo;
    int list;
    const char *only, *kernel;
} mutants_args;

static int mutants_table(mutants_args *a, mf_opt *t) {
    const mf_opt opts[] = {
        {"--list", NULL, MF_OPT_FLAG, &a->list, 1,
         .help = "list the mutants, their knobs and expected stages (every\nbuild)"},
        {"--only", NULL, MF_OPT_STR, &a->only, .arg = "NAME", .help = "this mutant alone"},
        {"--seeds", NULL, MF_OPT_INT, &a->zo.nseeds, .min = 1, .max = 32, .arg = "N",
         .help = "runs per mutant from the seed corpus and from nothing\n(default 5)"},
        {"--cases", NULL, MF_OPT_LONG, &a->zo.max_cases, .min = 1, .max = LONG_MAX, .arg = "N",
         .help = "at most N cases per run (default 2000)"},
        {"--budget", NULL, MF_OPT_NUM, &a->zo.budget, .min = 0, .max = 1e308, .above = 1,
         .arg = "S", .help = "and at most S seconds per run (default: no limit)"},
        {"--eval", NULL, MF_OPT_INT, &a->zo.neval, .min = 0, .max = 100000, .arg = "N",
         .help = "random cases of the controls, besides the seeds\n(default 100)"},
        {"--kernel", NULL, MF_OPT_STR, &a->kernel, .arg = "K",
         .help = "the mutated kernel: cpu (default) or cuda"},
        {"--tables", NULL, MF_OPT_FLAG, &a->zo.tables, 1,
         .help = "also the kill rates of moefuzz, FlashInfer's and vLLM's\nallclose rules on "
                 "the controls' cases"},
        {"--verbose", "-v", MF_OPT_FLAG, &a->zo.verbose, 1, .help = "every run of every mutant"},
    };
    _Static_assert(sizeof opts / sizeof opts[0] <= MF_OPTS_MAX, "MF_OPTS_MAX");
    memcpy(t, opts, sizeof opts);
    return (int)(sizeof opts / sizeof opts[0]);
}

void mf_help_mutants(FILE *f) {
    fprintf(f,
            "usage: moefuzz-test mutants [options]\n\n"
            "Controls first: the correct kernel must pass (0 false alarms) and the mutant build\n"
            "with no mutant must match it on the seeds and N random cases (--eval, default 100).\n"
            "Then every mutant of the kernel is fuzzed from the seed corpus and from nothing, N\n"
            "runs each (--seeds, default 5), each run at most N cases (--cases, default 2000)\n"
            "and, if given, S seconds (--budget). Exit 0 iff the controls pass and every run of\n"
            "every mutant ends in a failing verdict (not an error) with the mutant's expected\n"
            "stages (kernels/mutants.h), every knob mutant attributed to its knob alone; 1\n"
            "otherwise; 2 on bad arguments. --tables adds the kill rates of moefuzz, FlashInfer's\n"
            "and vLLM's allclose rules on the controls' cases. Test builds only (moefuzz-test);\n"
            "--list in every build.\n\n");
    mutants_args a;
    mf_opt t[MF_OPTS_MAX];
    mf_opts_help(f, t, mutants_table(&a, t));
}

int mf_cmd_mutants(int argc, char **argv) {
    mutants_args a = {.zo = {.nseeds = 5, .neval = 100, .max_cases = 2000, .budget = 0},
                      .kernel = "cpu"};
    mf_opt table[MF_OPTS_MAX];
    mf_opt_list args;
    int ok = mf_opts_parse_n("mutants", table, mutants_table(&a, table), argc, argv, &args, 0, 0,
                             "") == 0;
    free(args.v);
    if (!ok) return MF_EXIT_BAD_INPUT;
    zoo_opts zo = a.zo;
    int list = a.list;
    const char *only = a.only, *kernel = a.kernel;
    unsigned kbit = !strcmp(kernel, "cpu")    ? MF_KERN_CPU
                    : !strcmp(kernel, "cuda") ? MF_KERN_CUDA
                                              : 0;
    if (!kbit) {
        fprintf(stderr, "moefuzz mutants: unknown kernel '%s' (cpu or cuda)\n", kernel);
        return MF_EXIT_BAD_INPUT;
    }
    int only_id = 0;
    if (only) {
        only_id = mf_mutant_lookup(only);
        if (only_id < 0) {
            fprintf(stderr, "moefuzz mutants: unknown mutant '%s' (moefuzz-test mutants --list)\n",
                    only);
            return MF_EXIT_BAD_INPUT;
        }
        if (!mf_mutant_expected_stages(only_id, kbit)) {
            fprintf(stderr, "moefuzz mutants: mutant '%s' does not apply to the %s kernel\n", only,
                    kernel);
            return MF_EXIT_BAD_INPUT;
        }
    }
    if (list) {
        for (int m = 1; m <= mf_mutant_count(); m++) {
            if (only_id && m != only_id) continue;
            char cpu[128], cuda[128];
            mf_stages_format(mf_mutant_expected_stages(m, MF_KERN_CPU), cpu, sizeof cpu);
            mf_stages_format(mf_mutant_expected_stages(m, MF_KERN_CUDA), cuda, sizeof cuda);
            printf("%-22s knob %-20s cpu %-26s cuda %-26s %s\n", mf_mutant_name(m),
                   mf_mutant_knob(m), mf_mutant_expected_stages(m, MF_KERN_CPU) ? cpu : "n/a",
                   mf_mutant_expected_stages(m, MF_KERN_CUDA) ? cuda : "n/a", mf_mutant_doc(m));
        }
        return MF_EXIT_PASS;
    }
    /* a test build without its mutant provider is a broken build, not a skip */
    const mf_mutant_provider *mp =
        kbit == MF_KERN_CUDA ? (mf_cuda_mutant_provider ? mf_cuda_mutant_provider() : NULL)
                             : (mf_cpu_mutant_provider ? mf_cpu_mutant_provider() : NULL);
    if (!mp) {
        fprintf(stderr,
                "moefuzz mutants: this binary has no %s mutant provider: the %s mutants exist "
                "only in test builds (moefuzz-test, built next to moefuzz)\n",
                kernel, kernel);
        return MF_EXIT_MISMATCH;
    }
    char seed_dir[1200];
    zoo_case *seeds = NULL;
    int ns = load_seeds(&seeds, seed_dir, sizeof seed_dir);
    if (ns <= 0) {
        fprintf(stderr, "moefuzz mutants: no seed cases in %s (MOEFUZZ_SOURCE_DIR)\n", seed_dir);
        free(seeds);
        return MF_EXIT_BAD_INPUT;
    }
    mf_fuzz_config fc;
    mf_fuzz_config_from_env(&fc, kernel);
    mf_case_limits lim = fc.lim;
    lim.full_T = 0; /* the campaign's full-H/I class costs seconds a case; no mutant needs it */
    /* the controls' (and the tables') cases: every seed, then random cases from nothing */
    int n_eval = ns + zo.neval;
    mf_case *eval = malloc(sizeof(mf_case) * (size_t)n_eval);
    uint8_t(*accepts)[3] = calloc((size_t)n_eval + 1, sizeof *accepts);
    if (!eval || !accepts) {
        fprintf(stderr, "moefuzz mutants: out of memory\n");
        return MF_EXIT_MISMATCH;
    }
    for (int i = 0; i < ns; i++) eval[i] = seeds[i].c;
    mf_rng er = {20261127};
    for (int i = 0; i < zo.neval; i++) mf_case_random(&er, &lim, &eval[ns + i]);
    mf_problem pb;
    memset(&pb, 0, sizeof pb);
    mf_error err;
    int status = MF_EXIT_PASS;

    printf(
        "mutant zoo on the %s kernel: controls on %d cases (%d seeds + %d random); %d runs "
        "per mutant from the seed corpus and %d from nothing, at most %ld cases%s each\n\n",
        kernel, n_eval, ns, zo.neval, zo.nseeds, zo.nseeds, zo.max_cases,
        zo.budget > 0 ? " and the --budget" : "");
    char spec[96];
    mf_backend good, unmutated;
    snprintf(spec, sizeof spec, "%s-mutant:%s", kernel, mf_mutant_name(1));
    if (mf_backend_open(kernel, &good, &err) != MF_OK) {
        fprintf(stderr, "moefuzz mutants: %s\n", err.msg);
        return MF_EXIT_MISMATCH;
    }
    if (mf_backend_open(spec, &unmutated, &err) != MF_OK) {
        fprintf(stderr, "moefuzz mutants: %s\n", err.msg);
        mf_backend_close(&good);
        return MF_EXIT_MISMATCH;
    }
    mp->set(unmutated.ctx, MF_MUTANT_NONE);
    double t0 = mf_now_s();
    int false_alarms = 0;
    int bad_controls = zoo_controls(&good, &unmutated, eval, n_eval, &pb, &false_alarms);
    printf(
        "controls: %d cases, false alarms of moefuzz on the correct kernel %d (%.0f%%), other "
        "failures %d, %.1f s: %s\n\n",
        n_eval, false_alarms, 100.0 * false_alarms / n_eval, bad_controls - false_alarms,
        mf_now_s() - t0, bad_controls ? "FAIL" : "pass");
    if (bad_controls) status = MF_EXIT_MISMATCH;
    mf_backend_close(&unmutated);

    printf("%-22s %-20s %-9s %-19s %9s  %-34s %-26s %5s\n", "mutant", "knob", "killed",
           "ttd seeds / nothing", "max cases", "failing stages seen", "attributed", "right");
    zoo_tally t = {0};
    for (int m = 1; m <= mf_mutant_count(); m++) {
        if ((only_id && m != only_id) || !mf_mutant_expected_stages(m, kbit)) continue;
        snprintf(spec, sizeof spec, "%s-mutant:%s", kernel, mf_mutant_name(m));
        mf_backend b;
        if (mf_backend_open(spec, &b, &err) != MF_OK) {
            fprintf(stderr, "moefuzz mutants: %s\n", err.msg);
            status = MF_EXIT_MISMATCH;
            t.mutants++;
            continue;
        }
        if (!zoo_mutant(m, kbit, &b, seeds, ns, &zo, &lim, &pb, &t)) status = MF_EXIT_MISMATCH;
        mf_backend_close(&b);
    }
    if (t.mutants == 0) {
        printf("no mutant of the %s kernel ran\n", kernel);
        status = MF_EXIT_MISMATCH;
    }
    printf(
        "\nmutants %d/%d pass (killed in every run by a failing verdict with the expected "
        "stages); knob mutants attributed to their knob alone %d/%d; run errors %d; worst "
        "run %ld cases, %.2f s (one core; ttd: median time to detect per start, not asserted)\n",
        t.passed, t.mutants, t.knob_right, t.knob_mutants, t.errors, t.worst_cases, t.worst_s);

    if (zo.tables) {
        printf(
            "\nkill rates: share of the %d control cases, among those each checker accepts on "
            "the correct kernel, that it rejects with the mutant\n",
            n_eval);
        printf("%-22s %8s %8s %8s\n", "mutant", "moefuzz", "FI-BF16", "vLLM");
        eval_stats es;
        evaluate(&good, eval, n_eval, &es, &pb, accepts, 1);
        int d = es.cases ? es.cases : 1;
        printf("%-22s %7.0f%% %7.0f%% %7.0f%%   (false alarms on the correct kernel)\n",
               "(none: correct kernel)", 100.0 * es.moefuzz / d, 100.0 * es.rule[0] / d,
               100.0 * es.rule[1] / d);
        for (int m = 1; m <= mf_mutant_count(); m++) {
            if ((only_id && m != only_id) || !mf_mutant_expected_stages(m, kbit)) continue;
            snprintf(spec, sizeof spec, "%s-mutant:%s", kernel, mf_mutant_name(m));
            mf_backend b;
            if (mf_backend_open(spec, &b, &err) != MF_OK) continue;
            evaluate(&b, eval, n_eval, &es, &pb, accepts, 0);
            double pct[3];
            for (int k = 0; k < 3; k++)
                pct[k] = 100.0 * es.caught[k] / (es.clean[k] ? es.clean[k] : 1);
            printf("%-22s %7.0f%% %7.0f%% %7.0f%%\n", mf_mutant_name(m), pct[0], pct[1], pct[2]);
            fflush(stdout);
            mf_backend_close(&b);
        }
    }
    mf_backend_close(&good);
    mf_problem_free(&pb);
    free(accepts);
    free(seeds);
    free(eval);
    return status;
}
