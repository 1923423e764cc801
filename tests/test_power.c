/* test_power.c: the checker rejects small, systematic errors.
 *
 *  - every output element of a correct CPU-kernel run scaled by (1 + 2^-7): each case must
 *    fail. For a bf16 value of significand m in [128, 256) the shift is m/128 ulps, so each
 *    element moves by one or two bf16 ulps after rounding;
 *  - routed_scaling_factor dropped (the kernel runs with rsf = 1 on a case with rsf != 1, the
 *    vLLM #43769 bug): each case must fail.
 * Over 200 random cases each (rsf drawn away from 1); prints the share of rejected elements.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "bf16.h"
#include "casegen.h"
#include "check.h"
#include "codec.h"

int main(int argc, char **argv) {
    int n = argc > 1 ? atoi(argv[1]) : 200;
    mf_error err = {0};
    mf_backend b;
    if (mf_backend_open("cpu", &b, &err) != MF_OK) return printf("%s\n", err.msg), 1;
    mf_case_limits lim;
    mf_case_limits_default(&lim);
    lim.max_work = 4e5;
    mf_rng rng = {7};
    mf_check_opts o;
    mf_check_opts_default(&o);
    int scaled_cases = 0, scaled_caught = 0, rsf_cases = 0, rsf_caught = 0;
    unsigned long long scaled_bad = 0, scaled_elems = 0, rsf_bad = 0, rsf_elems = 0;
    for (int i = 0; i < n; i++) {
        mf_case c;
        mf_case_random(&rng, &lim, &c);
        c.n_pokes = 0;
        c.gen[MF_T_LOGITS].cls = MF_GEN_NORMAL; /* ordinary routing, no NaN rows */
        c.p.rsf = (float)(0.5 + 0.25 * mf_rng_below(&rng, 9)); /* 0.5 .. 2.5, never 1 below */
        if (c.p.rsf == 1.0f) c.p.rsf = 2.5f;
        mf_problem pb;
        if (mf_problem_build(&c, &pb, &err) != MF_OK) return printf("%s\n", err.msg), 1;
        mf_run_result r;
        if (mf_backend_run(&b, &pb, &r, &err) != MF_OK) return printf("%s\n", err.msg), 1;
        size_t nout = (size_t)c.p.T * c.p.H, nonzero = 0;
        for (size_t j = 0; j < nout; j++) nonzero += mf_bf16_to_f32(r.out[j]) != 0.0f;
        if (nonzero == 0) {
            mf_run_result_free(&r);
            mf_problem_free(&pb);
            continue;
        }
        /* scaled output */
        mf_verdict v;
        memset(&v, 0, sizeof v);
        for (size_t j = 0; j < nout; j++)
            r.out[j] = mf_f64_to_bf16((double)mf_bf16_to_f32(r.out[j]) * (1.0 + 0x1p-7));
        if (mf_check_result(&pb, &b.contract, &r, NULL, &o, &v, &err) != MF_OK)
            return printf("%s\n", err.msg), 1;
        scaled_cases++;
        scaled_caught += !v.pass;
        scaled_bad += v.n_bad[MF_STAGE_OUTPUT];
        scaled_elems += v.elems_checked;
        if (v.pass) {
            printf("NOT CAUGHT: output scaled by 1 + 2^-7 passes:\n");
            mf_case_print_text(&c, stdout);
        }
        mf_run_result_free(&r);
        /* rsf dropped: the kernel sees rsf = 1 */
        mf_problem pb1 = pb;
        pb1.p.rsf = 1.0f;
        if (mf_backend_run(&b, &pb1, &r, &err) != MF_OK) return printf("%s\n", err.msg), 1;
        memset(&v, 0, sizeof v);
        free(r.ids); /* output stage only: do not let the weight check catch it first */
        r.ids = NULL;
        free(r.weights);
        r.weights = NULL;
        if (mf_check_result(&pb, &b.contract, &r, NULL, &o, &v, &err) != MF_OK)
            return printf("%s\n", err.msg), 1;
        rsf_cases++;
        rsf_caught += !v.pass;
        rsf_bad += v.n_bad[MF_STAGE_OUTPUT];
        rsf_elems += v.elems_checked;
        if (v.pass) {
            printf("NOT CAUGHT: rsf dropped passes:\n");
            mf_case_print_text(&c, stdout);
        }
        mf_run_result_free(&r);
        mf_problem_free(&pb);
    }
    printf("output x (1 + 2^-7): %d of %d cases rejected, %.1f%% of elements\n", scaled_caught,
           scaled_cases, 100.0 * scaled_bad / (scaled_elems ? scaled_elems : 1));
    printf("rsf dropped:         %d of %d cases rejected, %.1f%% of elements\n", rsf_caught,
           rsf_cases, 100.0 * rsf_bad / (rsf_elems ? rsf_elems : 1));
    mf_backend_close(&b);
    return scaled_caught == scaled_cases && rsf_caught == rsf_cases && scaled_cases > n / 2 ? 0 : 1;
}
