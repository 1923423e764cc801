/* test_cuda_mutants.c: the controls and the mutant zoo (kernels/mutants.h) of the CUDA kernel
 * (library moefuzz_cuda_mutants), on the device or in the CPU emulator (tests/gpu/emu).
 *
 *   test_cuda_mutants [-v] [--controls-only] [--expect-unsupported CASE]... SEED_DIR
 *                     [CONTROL_DIR...]
 *
 * Controls: the production kernel ("cuda") must pass every seed and every case of the control
 * directories, run twice for bit identity. On the seeds, the corpus the mutants are hunted with,
 * the mutant build with no mutant set must give the production kernel's bits (or pass the check),
 * or a kill would prove nothing. A case above the kernel's ABI feature level is refused by the
 * gate, as expected. Any other case the kernel refuses is a failure unless named by
 * --expect-unsupported (file name or path), and then it must be refused.
 *
 * The zoo: for each mutant that applies to the CUDA kernel, the seeds, cheapest first, until one
 * fails. The kill must be a failing verdict, not an error, whose failing stages are a subset of
 * the mutant's expected CUDA stages; a knob mutant's failure must be attributed to its knob alone:
 * the knobs that explain the failing case, less those a passing seed would have caught (the
 * kernel passed it), intersected over the further failing seeds while more than one remains.
 * While hunting, each seed runs once (no determinism run, which the controls did), and a mutant
 * whose result is the production kernel's bit for bit on a seed passes it without a second check
 * (same contract, same result: the same verdict as the control's).
 * --controls-only: the production kernel on every case, nothing else (the emulator runs it once
 * more per tuning setting of the environment, e.g. MOEFUZZ_CUDA_WG=off).
 * Exit: 0 the controls pass and every mutant is killed as expected, 1 otherwise, 2 bad arguments,
 * 77 without a usable device.
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attribute.h"
#include "backend.h"
#include "check.h"
#include "codec.h"
#include "../../kernels/mutants.h"

static int verbose; /* -v: the time of each control and of each mutant's seeds */

typedef struct tcase {
    char *path;
    mf_case c;
    double work;
    int seed;           /* from SEED_DIR: the mutants' corpus */
    int expect_refuse;  /* named by --expect-unsupported */
    int control_ok;     /* the production kernel passed it */
    mf_run_result prod; /* the production kernel's first run, when control_ok */
} tcase;

/* Seeds first, cheapest first, then by name. */
static int cmp_cost(const void *a, const void *b) {
    const tcase *x = a, *y = b;
    if (x->seed != y->seed) return y->seed - x->seed;
    if (x->work != y->work) return x->work < y->work ? -1 : 1;
    return strcmp(x->path, y->path);
}

static const char *base_name(const char *p) {
    const char *s = strrchr(p, '/');
    return s ? s + 1 : p;
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Appends the case files of a directory (not recursive; README and .md files skipped). */
static int add_cases(const char *dir, int seed, tcase **v, int *n) {
    DIR *d = opendir(dir);
    if (!d) {
        printf("test_cuda_mutants: cannot read %s\n", dir);
        return -1;
    }
    char **names = NULL;
    int k = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.' || strstr(de->d_name, ".md") || strstr(de->d_name, "README"))
            continue;
        char **nn = realloc(names, sizeof *names * (size_t)(k + 1));
        if (!nn) break;
        names = nn;
        size_t len = strlen(dir) + strlen(de->d_name) + 2;
        if (!(names[k] = malloc(len))) break;
        snprintf(names[k++], len, "%s/%s", dir, de->d_name);
    }
    closedir(d);
    if (k == 0) {
        printf("test_cuda_mutants: no case files in %s\n", dir);
        free(names);
        return -1;
    }
    qsort(names, (size_t)k, sizeof *names, cmp_str);
    tcase *nv = realloc(*v, sizeof **v * (size_t)(*n + k));
    if (!nv) return -1;
    *v = nv;
    int rc = 0;
    for (int i = 0; i < k; i++) {
        tcase *t = &nv[(*n)++];
        mf_error err = {0};
        memset(t, 0, sizeof *t);
        t->path = names[i];
        t->seed = seed;
        if (rc == 0 && mf_case_load(t->path, 0, &t->c, NULL, &err) != MF_OK) {
            printf("test_cuda_mutants: %s: %s\n", t->path, err.msg);
            rc = -1;
        }
        t->work = mf_case_work(&t->c) + mf_case_bytes(&t->c) / 2; /* ~cost, as the CPU zoo */
    }
    free(names);
    return rc;
}


static void print_failure(const char *who, const tcase *t, const mf_verdict *v) {
    char st[128];
    mf_stages_format(mf_verdict_stages(v), st, sizeof st);
    printf("CONTROL FAILS: %s on %s (%s)\n", who, base_name(t->path), st);
    mf_verdict_print(v, stdout);
}

/* The production kernel on case t: twice for bit identity, checked. 1 pass (or refused as
 * expected), 0 otherwise (printed). Keeps the first run in t->prod when it passes. */
static int control_prod(mf_backend *b, tcase *t, mf_problem *pb, mf_verdict *v) {
    mf_error err = {0};
    mf_check_opts o;
    mf_check_opts_default(&o);
    o.attribute = 0;
    mf_run_result r, r2;
    if (mf_backend_run(b, pb, &r, &err) != MF_OK) {
        printf("CONTROL ERROR: cuda on %s: %s\n", base_name(t->path), err.msg);
        return 0;
    }
    if (r.unsupported || t->expect_refuse) {
        int ok = r.unsupported && t->expect_refuse;
        if (!ok && r.unsupported)
            printf("CONTROL FAILS: cuda refuses %s (%s), and the test does not expect it\n",
                   base_name(t->path), r.reason);
        else if (!ok)
            printf("CONTROL FAILS: cuda runs %s, which the test expects it to refuse\n",
                   base_name(t->path));
        mf_run_result_free(&r);
        return ok;
    }
    int twice = b->contract.deterministic;
    if (twice && mf_backend_run(b, pb, &r2, &err) != MF_OK) {
        printf("CONTROL ERROR: cuda on %s (second run): %s\n", base_name(t->path), err.msg);
        mf_run_result_free(&r);
        return 0;
    }
    mf_status st = mf_check_result_fresh(pb, &b->contract, &r, twice ? &r2 : NULL, &o, v, &err);
    if (twice) mf_run_result_free(&r2);
    if (verbose)
        printf("  control %-34s kernel %.3f s x%d, check %.3f s\n", base_name(t->path), r.seconds,
               1 + twice, v->ref_s);
    if (st != MF_OK)
        printf("CONTROL ERROR: checking %s: %s\n", base_name(t->path), err.msg);
    else if (!v->pass)
        print_failure("cuda", t, v);
    if (st != MF_OK || !v->pass) {
        mf_run_result_free(&r);
        return 0;
    }
    t->prod = r;
    t->control_ok = 1;
    return 1;
}

/* Outcome of a mutant backend on one seed: 1 passes, 0 fails (verdict in v), -1 error (printed;
 * r freed). A result equal to the production kernel's passing one passes without a check. */
static int mutant_on(mf_backend *b, const mf_backend *prod, tcase *t, mf_problem *pb, mf_verdict *v,
                     mf_run_result *r) {
    mf_error err = {0};
    mf_check_opts o;
    mf_check_opts_default(&o);
    o.determinism = 0;
    if (mf_backend_run(b, pb, r, &err) != MF_OK) {
        printf("  ERROR on %s: %s\n", base_name(t->path), err.msg);
        return -1;
    }
    if (r->unsupported) {
        printf("  %s refuses %s (%s), which the production kernel runs\n", b->spec,
               base_name(t->path), r->reason);
        mf_run_result_free(r);
        return -1;
    }
    if (verbose) printf("  %s on %s: kernel %.3f s\n", b->spec, base_name(t->path), r->seconds);
    if (t->control_ok && mf_contract_equal(&b->contract, &prod->contract) &&
        mf_results_equal(pb, r, &t->prod))
        return 1;
    if (mf_check_result_fresh(pb, &b->contract, r, NULL, &o, v, &err) != MF_OK) {
        printf("  ERROR checking %s: %s\n", base_name(t->path), err.msg);
        mf_run_result_free(r);
        return -1;
    }
    return v->pass;
}

/* Knobs that explain the failing result r of case pb, or -1 on error. */
static int attributed_knobs(const mf_problem *pb, const mf_backend *b, const mf_run_result *r,
                            unsigned *set, char *text, size_t text_len) {
    mf_attribution *a = malloc(sizeof *a);
    mf_error err = {0};
    if (!a || mf_attribute(pb, &b->contract, r, a, &err) != MF_OK) {
        printf("  ERROR in attribution: %s\n", a ? err.msg : "out of memory");
        free(a);
        return -1;
    }
    *set = 0;
    for (int i = 0; i < a->n_match; i++) *set |= 1u << a->match[i];
    snprintf(text, text_len, "%s", a->text);
    free(a);
    return 0;
}

/* One mutant against the seeds (tc[0..n_seeds)); prints its row, returns 1 iff it is killed as
 * expected. */
static int hunt(int m, const mf_backend *prod, tcase *tc, int n_seeds, mf_problem *pbs,
                mf_verdict *v) {
    const char *name = mf_mutant_name(m), *knob = mf_mutant_knob(m);
    unsigned expected = mf_mutant_expected_stages(m, MF_KERN_CUDA);
    int kid = strcmp(knob, "-") ? mf_knob_lookup(knob) : -1;
    mf_backend b;
    mf_error err = {0};
    char spec[96];
    snprintf(spec, sizeof spec, "cuda-mutant:%s", name);
    if (mf_backend_open(spec, &b, &err) != MF_OK) {
        printf("%-22s cannot open: %s\n", name, err.msg);
        return 0;
    }
    int by = -1, ok = 1, checked = 0, npassed = 0, asked = 0;
    int *passed = malloc(sizeof(int) * (size_t)(n_seeds + 1)); /* passing seeds */
    unsigned stages = 0, cand = ~0u, exonerated = 0;
    char text[640] = "";
    for (int i = 0; i < n_seeds && ok && passed; i++) {
        if (tc[i].expect_refuse) continue;
        mf_run_result r;
        int res = mutant_on(&b, prod, &tc[i], &pbs[i], v, &r);
        checked++;
        if (res < 0) {
            ok = 0;
            break;
        }
        if (res == 0 && by < 0) {
            by = i;
            stages = mf_verdict_stages(v);
            if (!stages || (stages & ~expected)) ok = 0;
        }
        if (res == 0 && kid >= 0) { /* every failing seed narrows the knobs that explain it */
            unsigned set = 0;
            if (attributed_knobs(&pbs[i], &b, &r, &set, text, sizeof text) != 0) ok = 0;
            cand &= set;
        }
        if (res == 1) passed[npassed++] = i;
        mf_run_result_free(&r);
        if (by < 0) continue;
        if (kid < 0) break; /* not a knob bug: the first failing seed is all it takes */
        /* a knob a passing seed would have caught is not the bug (the kernel passed it) */
        for (; asked < npassed && ok && (cand & ~exonerated) != (1u << kid); asked++) {
            unsigned obs = 0;
            if (mf_observable_knobs_of(&pbs[passed[asked]], &b.contract, cand & ~exonerated, &obs,
                                       &err) != MF_OK) {
                printf("  ERROR in observability on %s: %s\n", base_name(tc[passed[asked]].path),
                       err.msg);
                ok = 0;
            }
            exonerated |= obs;
        }
        if ((cand & ~exonerated) == (1u << kid) || !(cand & ~exonerated)) break;
    }
    free(passed);
    unsigned named = cand & ~exonerated;
    if (by < 0) ok = 0;
    if (kid >= 0 && named != (1u << kid)) ok = 0;
    char stage_s[128], knobs_s[160];
    mf_stages_format(stages, stage_s, sizeof stage_s);
    mf_knobs_format(named, knobs_s, sizeof knobs_s);
    printf("%-22s %-34s %-34s %-22s %s\n", name, by >= 0 ? base_name(tc[by].path) : "NOT CAUGHT",
           stage_s, kid >= 0 && by >= 0 ? knobs_s : "-", ok ? "ok" : "FAIL");
    if (!ok) {
        char ex[128];
        mf_stages_format(expected, ex, sizeof ex);
        printf("  expected: killed, stages within %s%s%s; %d seeds run; last attribution: %s\n", ex,
               kid >= 0 ? ", attributed to " : "", kid >= 0 ? knob : "", checked, text);
    }
    mf_backend_close(&b);
    return ok;
}

static void free_all(mf_backend *prod, tcase *tc, mf_problem *pbs, int n, mf_verdict *v) {
    mf_backend_close(prod);
    for (int i = 0; i < n; i++) {
        mf_problem_free(&pbs[i]);
        if (tc[i].control_ok) mf_run_result_free(&tc[i].prod);
        free(tc[i].path);
    }
    free(pbs);
    free(tc);
    free(v);
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0); /* progress shows in ctest logs even if a case aborts */
    int controls_only = 0, n_expect = 0;
    const char *expect[64];
    int a = 1;
    for (; a < argc && argv[a][0] == '-'; a++) {
        if (!strcmp(argv[a], "--controls-only")) {
            controls_only = 1;
        } else if (!strcmp(argv[a], "-v")) {
            verbose = 1;
        } else if (!strcmp(argv[a], "--expect-unsupported") && a + 1 < argc && n_expect < 64) {
            expect[n_expect++] = argv[++a];
        } else {
            fprintf(stderr, "test_cuda_mutants: unexpected '%s'\n", argv[a]);
            return 2;
        }
    }
    if (a >= argc) {
        fprintf(stderr,
                "usage: test_cuda_mutants [-v] [--controls-only] [--expect-unsupported CASE]... "
                "SEED_DIR [CONTROL_DIR...]\n");
        return 2;
    }
    mf_error err = {0};
    tcase *tc = NULL;
    int n = 0;
    for (int d = a; d < argc; d++)
        if (add_cases(argv[d], d == a && !controls_only, &tc, &n) != 0) return 2;
    qsort(tc, (size_t)n, sizeof *tc, cmp_cost);
    for (int e = 0; e < n_expect; e++) {
        int found = 0;
        for (int i = 0; i < n; i++)
            if (!strcmp(tc[i].path, expect[e]) || !strcmp(base_name(tc[i].path), expect[e]))
                tc[i].expect_refuse = found = 1;
        if (!found) {
            fprintf(stderr, "test_cuda_mutants: --expect-unsupported %s: no such case\n",
                    expect[e]);
            return 2;
        }
    }
    int n_seeds = 0;
    while (n_seeds < n && tc[n_seeds].seed) n_seeds++;

    mf_backend prod;
    if (mf_backend_open("cuda", &prod, &err) != MF_OK) {
        printf("test_cuda_mutants: %s\n", err.msg);
        return err.status == MF_ENODEVICE ? 77 : 1;
    }
    /* a case above the kernel's ABI feature level is never sent to it: refused by the gate */
    for (int i = 0; i < n; i++) {
        char what[128];
        if (mf_case_level(&tc[i].c.p, what, sizeof what) > prod.level) tc[i].expect_refuse = 1;
    }
    mf_problem *pbs = calloc((size_t)n, sizeof *pbs);
    mf_verdict *v = malloc(sizeof *v);
    if (!pbs || !v) return 1;
    for (int i = 0; i < n; i++)
        if (mf_problem_build(&tc[i].c, &pbs[i], &err) != MF_OK) {
            printf("test_cuda_mutants: %s: %s\n", tc[i].path, err.msg);
            return 1;
        }

    /* controls: the production kernel, then the mutant build with no mutant */
    int bad_controls = 0;
    for (int i = 0; i < n; i++) bad_controls += !control_prod(&prod, &tc[i], &pbs[i], v);
    if (controls_only) {
        printf("controls: production kernel on %d cases (%d named by --expect-unsupported): %s\n",
               n, n_expect, bad_controls ? "FAIL" : "all pass");
        free_all(&prod, tc, pbs, n, v);
        return bad_controls ? 1 : 0;
    }
    const mf_mutant_provider *mp = mf_cuda_mutant_provider ? mf_cuda_mutant_provider() : NULL;
    if (!mp) {
        printf("test_cuda_mutants: built without the CUDA mutant provider\n");
        return 1;
    }
    int unmutated_checked = 0;
    {
        mf_backend b;
        char spec[96];
        snprintf(spec, sizeof spec, "cuda-mutant:%s", mf_mutant_name(1));
        if (mf_backend_open(spec, &b, &err) != MF_OK) {
            printf("test_cuda_mutants: %s\n", err.msg);
            return 1;
        }
        mp->set(b.ctx, MF_MUTANT_NONE);
        mf_check_opts o;
        mf_check_opts_default(&o);
        o.attribute = 0;
        o.determinism = 0;
        for (int i = 0; i < n_seeds; i++) {
            if (!tc[i].control_ok) continue; /* failed above, or refused as expected */
            mf_run_result r;
            if (mf_backend_run(&b, &pbs[i], &r, &err) != MF_OK) {
                printf("CONTROL ERROR: unmutated cuda-mutant on %s: %s\n", base_name(tc[i].path),
                       err.msg);
                bad_controls++;
                continue;
            }
            if (!mf_contract_equal(&b.contract, &prod.contract) ||
                !mf_results_equal(&pbs[i], &r, &tc[i].prod)) {
                unmutated_checked++;
                if (mf_check_result_fresh(&pbs[i], &b.contract, &r, NULL, &o, v, &err) != MF_OK) {
                    printf("CONTROL ERROR: checking unmutated cuda-mutant on %s: %s\n",
                           base_name(tc[i].path), err.msg);
                    bad_controls++;
                } else if (!v->pass) {
                    print_failure("cuda-mutant with no mutant", &tc[i], v);
                    bad_controls++;
                }
            }
            mf_run_result_free(&r);
        }
        mf_backend_close(&b);
    }
    printf(
        "controls: production kernel on %d cases, twice for bit identity (%d named by "
        "--expect-unsupported); unmutated mutant build on the %d seeds (%d results not the "
        "production's bits, checked): %s\n",
        n, n_expect, n_seeds, unmutated_checked, bad_controls ? "FAIL" : "all pass");

    /* the zoo */
    printf("\n%-22s %-34s %-34s %-22s\n", "mutant", "caught by (seeds cheapest first)",
           "failing stages", "attributed");
    int mutants = 0, passed = 0;
    for (int m = 1; m <= mf_mutant_count(); m++) {
        if (!mf_mutant_expected_stages(m, MF_KERN_CUDA)) continue;
        mutants++;
        passed += hunt(m, &prod, tc, n_seeds, pbs, v);
    }
    free_all(&prod, tc, pbs, n, v);
    int ok = mutants > 0 && passed == mutants && !bad_controls;
    printf(
        "\ntest_cuda_mutants: %s (%d of %d mutants killed as expected, %d seeds, controls "
        "%s)\n",
        ok ? "pass" : "FAIL", passed, mutants, n_seeds, bad_controls ? "FAIL" : "pass");
    return ok ? 0 : 1;
}
