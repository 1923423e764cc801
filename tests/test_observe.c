/* test_observe.c: observability agrees with the mutant zoo.
 *
 *   test_observe SEED_DIR...
 *
 * mf_observable_knobs says which knob bugs a case can catch ("a kernel dropping one of these
 * fails this case"); `explain`, the fuzz summary and the fuzzer's per-knob counters rest on it.
 * For every case file and every knob mutant of the CPU kernel (kernels/mutants.h):
 *   - observable => the mutant fails the case (observability never promises a catch it cannot
 *     deliver);
 *   - on every model preset's twin (model-*.txt) with rsf != 1, rsf_dropped and rsf_squared
 *     are observable at either rsf site (at the output site the counterfactual must not reuse
 *     a context that applies the case's own rsf);
 * and at least one output-site twin with rsf != 1 is among the inputs, or the second check
 * proves nothing. Five mutants implement their knob on part of the cases only, so the first
 * check applies to them where they do: renormalize-ignored ignores renormalize = true (the knob
 * also flips false to true), rsf-only-with-renorm gates the weights-site rsf (the knob also
 * covers the output site), mxfp4-rsf-dropped drops rsf on MXFP4 cases only, and topk-sigmoid
 * swaps the score of score = none only (the knob swaps every score), and tp-interleaved-halves
 * reads interleaved rows as halves on a tensor-parallel rank only (tp_size > 1). Exit 0 on
 * agreement, 1 otherwise, 2 on bad input.
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attribute.h"
#include "backend.h"
#include "check.h"
#include "codec.h"

/* the mutant behaves as its knob's counterfactual on this case (see the header) */
static int mutant_is_counterfactual(const char *name, const mf_moe_params *p) {
    if (!strcmp(name, "renormalize-ignored")) return p->renormalize;
    if (!strcmp(name, "rsf-only-with-renorm")) return p->rsf_site == MF_RSF_WEIGHTS;
    if (!strcmp(name, "mxfp4-rsf-dropped")) return p->weight_format == MF_WFMT_MXFP4;
    if (!strcmp(name, "topk-sigmoid")) return p->score == MF_SCORE_NONE;
    if (!strcmp(name, "tp-interleaved-halves")) return p->tp_size > 1;
    return 1;
}

static int check_fails(mf_backend *b, const mf_problem *pb, int *failed, mf_error *err) {
    mf_check_opts o;
    mf_check_opts_default(&o);
    o.attribute = 0;
    mf_verdict *v = calloc(1, sizeof *v);
    if (!v) return -1;
    mf_status st = mf_check_problem(pb, b, &o, v, err);
    *failed = st == MF_OK && !v->unsupported && !v->pass;
    int unsupported = v->unsupported;
    free(v);
    if (st != MF_OK) return -1;
    return unsupported ? 1 : 0;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: test_observe SEED_DIR...\n");
        return 2;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    mf_error err = {0};
    /* the knob mutants, opened once */
    int nm = mf_mutant_count();
    mf_backend *mut = calloc((size_t)nm + 1, sizeof *mut);
    int *knob_of = calloc((size_t)nm + 1, sizeof *knob_of);
    if (!mut || !knob_of) return 1;
    int n_knob_mutants = 0;
    for (int m = 1; m <= nm; m++) {
        knob_of[m] = mf_knob_lookup(mf_mutant_knob(m));
        if (knob_of[m] < 0) continue;
        char spec[96];
        snprintf(spec, sizeof spec, "cpu-mutant:%s", mf_mutant_name(m));
        if (mf_backend_open(spec, &mut[m], &err) != MF_OK) {
            printf("FAIL: cannot open %s: %s\n", spec, err.msg);
            return 1;
        }
        n_knob_mutants++;
    }
    if (n_knob_mutants == 0) {
        printf("FAIL: no knob mutant in the zoo (built without the CPU mutant provider?)\n");
        return 1;
    }
    int bad = 0, cases = 0, output_site_rsf = 0;
    long promised = 0;
    for (int a = 1; a < argc; a++) {
        DIR *d = opendir(argv[a]);
        if (!d) {
            fprintf(stderr, "test_observe: cannot open %s\n", argv[a]);
            return 2;
        }
        struct dirent *de;
        while ((de = readdir(d)) != NULL) {
            size_t len = strlen(de->d_name);
            if (len < 5 || strcmp(de->d_name + len - 4, ".txt")) continue;
            char path[4096];
            snprintf(path, sizeof path, "%s/%s", argv[a], de->d_name);
            mf_case c;
            mf_problem pb;
            memset(&pb, 0, sizeof pb);
            if (mf_case_load(path, 0, &c, NULL, &err) != MF_OK ||
                mf_problem_build(&c, &pb, &err) != MF_OK) {
                fprintf(stderr, "test_observe: %s: %s\n", path, err.msg);
                return 2;
            }
            cases++;
            unsigned obs = 0;
            if (mf_observable_knobs(&pb, &mut[1].contract, &obs, &err) != MF_OK) {
                printf("FAIL: %s: observability: %s\n", de->d_name, err.msg);
                bad++;
                mf_problem_free(&pb);
                continue;
            }
            if (pb.p.rsf != 1.0f && !strncmp(de->d_name, "model-", 6)) {
                output_site_rsf += pb.p.rsf_site == MF_RSF_OUTPUT;
                for (int k = MF_KNOB_RSF_DROPPED; k <= MF_KNOB_RSF_SQUARED; k++)
                    if (!(obs & (1u << k))) {
                        printf("FAIL: %s (rsf %g at the %s): %s not observable\n", de->d_name,
                               (double)pb.p.rsf, mf_rsf_site_name(pb.p.rsf_site),
                               mf_knob_name((mf_knob)k));
                        bad++;
                    }
            }
            for (int m = 1; m <= nm; m++) {
                if (knob_of[m] < 0 || !(obs & (1u << knob_of[m]))) continue;
                if (!mutant_is_counterfactual(mf_mutant_name(m), &pb.p)) continue;
                int failed = 0;
                int r = check_fails(&mut[m], &pb, &failed, &err);
                if (r < 0) {
                    printf("FAIL: %s under %s: %s\n", de->d_name, mf_mutant_name(m), err.msg);
                    bad++;
                } else if (r > 0) {
                    printf("FAIL: %s: %s answers unsupported\n", de->d_name, mf_mutant_name(m));
                    bad++;
                } else if (!failed) {
                    printf("FAIL: %s: %s observable, but the %s mutant passes\n", de->d_name,
                           mf_knob_name((mf_knob)knob_of[m]), mf_mutant_name(m));
                    bad++;
                }
                promised++;
            }
            mf_problem_free(&pb);
        }
        closedir(d);
    }
    for (int m = 1; m <= nm; m++)
        if (knob_of[m] >= 0) mf_backend_close(&mut[m]);
    free(mut);
    free(knob_of);
    if (cases == 0 || output_site_rsf == 0) {
        printf("FAIL: %d cases, %d model twins with rsf != 1 at the output site: nothing to "
               "show\n", cases,
               output_site_rsf);
        return 1;
    }
    printf("test_observe: %d cases (%d model twins with rsf != 1 at the output site), %ld "
           "observable "
           "(case, knob) pairs checked against %d knob mutants: %s\n",
           cases, output_site_rsf, promised, n_knob_mutants, bad ? "FAIL" : "all caught");
    return bad ? 1 : 0;
}
