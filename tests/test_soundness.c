/* test_soundness.c: the CPU kernel lies inside the admissible set on N random cases spread over
 * the parameter domain (default 10,000), i.e. the bounds are sound for the cpu-scalar contract.
 * Prints the maximum utilisation and where it occurred; any mismatch fails the test and prints
 * the case as text.
 *
 *   test_soundness [N] [SEED]
 */
#include <stdio.h>
#include <stdlib.h>

#include "backend.h"
#include "casegen.h"
#include "check.h"
#include "codec.h"

int main(int argc, char **argv) {
    int n = argc > 1 ? atoi(argv[1]) : 10000;
    uint64_t seed = argc > 2 ? strtoull(argv[2], NULL, 0) : 1;
    mf_error err = {0};
    mf_backend b;
    if (mf_backend_open("cpu", &b, &err) != MF_OK) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    mf_case_limits lim;
    mf_case_limits_default(&lim);
    lim.max_work = 1e6;
    mf_rng rng = {seed};
    mf_check_opts o;
    mf_check_opts_default(&o);
    o.determinism = 0;
    int fails = 0, unsup = 0;
    double max_util = 0, max_util_w = 0, max_util_inf = 0;
    mf_case worst_inf;
    unsigned long long elems = 0, amb_tokens = 0, undecided = 0, nan_rows = 0, unconstrained = 0;
    int hist[8] = {0}; /* max utilisation per case: 0, (0,1/64], ..., (1/2,1] */
    mf_case worst;
    for (int i = 0; i < n; i++) {
        mf_case c;
        mf_case_random(&rng, &lim, &c);
        mf_problem pb;
        mf_verdict v;
        if (mf_problem_build(&c, &pb, &err) != MF_OK ||
            mf_check_problem(&pb, &b, &o, &v, &err) != MF_OK) {
            fprintf(stderr, "case %d: %s\n", i, err.msg);
            mf_case_print_text(&c, stderr);
            return 1;
        }
        mf_problem_free(&pb);
        if (v.unsupported) {
            unsup++;
            continue;
        }
        elems += v.elems_checked;
        amb_tokens += (unsigned long long)v.tokens_ambiguous;
        undecided += (unsigned long long)v.tokens_undecided;
        nan_rows += (unsigned long long)v.tokens_invariant;
        unconstrained += v.elems_unconstrained;
        if (!v.pass) {
            if (fails < 5) {
                printf("FAIL random case %d (seed %llu):\n", i, (unsigned long long)seed);
                mf_case_print_text(&c, stdout);
                mf_verdict_print(&v, stdout);
            }
            fails++;
            continue;
        }
        double u = v.max_util_out;
        int bucket = u == 0 ? 0 : u <= 1.0 / 64 ? 1 : u <= 1.0 / 32 ? 2 : u <= 1.0 / 16 ? 3
                   : u <= 1.0 / 8 ? 4 : u <= 1.0 / 4 ? 5 : u <= 1.0 / 2 ? 6 : 7;
        hist[bucket]++;
        if (u > max_util) max_util = u, worst = c;
        if (v.max_util_informative > max_util_inf) max_util_inf = v.max_util_informative, worst_inf = c;
        if (v.max_util_w > max_util_w) max_util_w = v.max_util_w;
    }
    printf("soundness: %d random cases, %d failed, %d unsupported; %llu output elements checked, "
           "%llu unconstrained; %llu ambiguous tokens, %llu undecided, %llu NaN/Inf rows\n",
           n, fails, unsup, elems, unconstrained, amb_tokens, undecided, nan_rows);
    printf("max utilisation: outputs %.4g (%.4g over elements whose radius is below |z|/2), routing "
           "weights %.4g\n",
           max_util, max_util_inf, max_util_w);
    printf("cases by max output utilisation: 0: %d, <=1/64: %d, <=1/32: %d, <=1/16: %d, <=1/8: "
           "%d, <=1/4: %d, <=1/2: %d, <=1: %d\n",
           hist[0], hist[1], hist[2], hist[3], hist[4], hist[5], hist[6], hist[7]);
    if (max_util > 0) {
        printf("case with the highest utilisation:\n");
        mf_case_print_text(&worst, stdout);
    }
    if (max_util_inf > 0) {
        printf("case with the highest utilisation where the radius is below |z|/2:\n");
        mf_case_print_text(&worst_inf, stdout);
    }
    mf_backend_close(&b);
    return fails ? 1 : 0;
}
