/* cmd_bench.c: `moefuzz bench reference`: speed of the exact reference, with baselines timed in
 * the same run (ratios, medians; never a pass/fail test). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mpfr.h>

#include "backend.h"
#include "bf16.h"
#include "check.h"
#include "dot.h"
#include "options.h"
#include "tool.h"

typedef struct bench_args {
    int reps, ncases;
} bench_args;

static int bench_table(bench_args *a, mf_opt *t) {
    const mf_opt opts[] = {
        {"--reps", NULL, MF_OPT_INT, &a->reps, .min = 1, .max = 32, .arg = "N",
         .help = "repetitions of each measurement; medians are reported\n(default 5)"},
        {"--cases", NULL, MF_OPT_INT, &a->ncases, .min = 1, .max = 1e6, .arg = "N",
         .help = "cases of each `check` measurement (default 20)"},
    };
    _Static_assert(sizeof opts / sizeof opts[0] <= MF_OPTS_MAX, "MF_OPTS_MAX");
    memcpy(t, opts, sizeof opts);
    return (int)(sizeof opts / sizeof opts[0]);
}

void mf_help_bench(FILE *f) {
    fprintf(f,
            "usage: moefuzz bench reference [options]\n"
            "       moefuzz bench kernel [--help]   (CUDA builds: the fused kernel vs cuBLAS)\n\n"
            "Measures on one core, in one run:\n"
            "  - exact dot products (binned accumulation + the bound side-sums) in terms/s for\n"
            "    each accumulation model, against an mpfr_fma loop at 128 bits on the same\n"
            "    vectors; prints the ratio;\n"
            "  - `check --backend cpu` on T=8 H=256 I=128 E=16 top-8, 4 groups keep 2: cases/s\n"
            "    and the share of reference time spent outside the exact accumulation loop,\n"
            "    default and --strict (MPFR decides every activation rounding).\n"
            "Reported numbers are medians over N repetitions.\n\n");
    bench_args a;
    mf_opt t[MF_OPTS_MAX];
    mf_opts_help(f, t, bench_table(&a, t));
}

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof(double), cmp_d);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

static uint64_t lcg(uint64_t *s) {
    *s = *s * 6364136223846793005ull + 1442695040888963407ull;
    return *s >> 11;
}

static uint16_t rand_bf16(uint64_t *s) {
    /* normal-ish: sum of 4 uniforms */
    double u = 0;
    for (int i = 0; i < 4; i++) u += (double)(lcg(s) & 0xffff) / 65536.0;
    return mf_f32_to_bf16((float)((u - 2.0) * 1.7320508));
}

static void bench_dots(int reps) {
    const int K = 7168, NV = 64;
    uint64_t s = 42;
    uint16_t *a16 = malloc(sizeof(uint16_t) * (size_t)K * NV);
    uint16_t *b16 = malloc(sizeof(uint16_t) * (size_t)K * NV);
    double *ad = malloc(sizeof(double) * (size_t)K * NV);
    for (int i = 0; i < K * NV; i++) {
        a16[i] = rand_bf16(&s);
        b16[i] = rand_bf16(&s);
        ad[i] = mf_bf16_to_f32(a16[i]);
    }
    mf_vec_info *ai = malloc(sizeof *ai * NV), *bi = malloc(sizeof *bi * NV);
    for (int v = 0; v < NV; v++) {
        mf_vec_info_bf16(a16 + (size_t)v * K, (size_t)K, 1, &ai[v]);
        mf_vec_info_bf16(b16 + (size_t)v * K, (size_t)K, 1, &bi[v]);
    }
    mf_dot_ws *ws = mf_dot_ws_new();
    const mf_acc_model models[3] = {
        {MF_ACC_SEQ_FP32, 1, 0}, {MF_ACC_FUSED_BLOCK, 16, 25}, {MF_ACC_ANY_ORDER, 0, 0}};
    const char *names[3] = {"scalar fp32 chain (T1, B=1)", "Hopper fused k16 (T1, B=16 F=25)",
                            "any order (T0)"};
    double rate[3], tm[32];
    double sink = 0;
    for (int m = 0; m < 3; m++) {
        for (int r = 0; r < reps; r++) {
            double t0 = mf_now_s();
            for (int v = 0; v < NV; v++) {
                mf_dot d;
                mf_dot_bf16(ws, ad + (size_t)v * K, &ai[v], NULL, b16 + (size_t)v * K, &bi[v],
                            (size_t)K, &models[m], &d);
                sink += d.hi + d.radius;
            }
            tm[r] = mf_now_s() - t0;
        }
        rate[m] = (double)K * NV / median(tm, reps);
    }
    /* baseline: mpfr_fma at 128 bits on the same vectors */
    mpfr_t acc, *ma = malloc(sizeof(mpfr_t) * (size_t)K), *mb = malloc(sizeof(mpfr_t) * (size_t)K);
    mpfr_init2(acc, 128);
    for (int i = 0; i < K; i++) {
        mpfr_init2(ma[i], 24);
        mpfr_init2(mb[i], 24);
    }
    int nv_mpfr = 8;
    for (int r = 0; r < reps; r++) {
        double t = 0;
        for (int v = 0; v < nv_mpfr; v++) {
            for (int i = 0; i < K; i++) {
                mpfr_set_d(ma[i], ad[(size_t)v * K + i], MPFR_RNDN);
                mpfr_set_flt(mb[i], mf_bf16_to_f32(b16[(size_t)v * K + i]), MPFR_RNDN);
            }
            double t0 = mf_now_s();
            mpfr_set_ui(acc, 0, MPFR_RNDN);
            for (int i = 0; i < K; i++) mpfr_fma(acc, ma[i], mb[i], acc, MPFR_RNDN);
            t += mf_now_s() - t0;
            sink += mpfr_get_d(acc, MPFR_RNDN);
        }
        tm[r] = t;
    }
    double mpfr_rate = (double)K * nv_mpfr / median(tm, reps);
    printf("exact dot products, K = %d, %d vectors, median of %d, one core:\n", K, NV, reps);
    for (int m = 0; m < 3; m++)
        printf("  %-36s %8.1f M terms/s  %6.2f ns/term  %5.1fx the mpfr_fma loop\n", names[m],
               rate[m] / 1e6, 1e9 / rate[m], rate[m] / mpfr_rate);
    printf("  %-36s %8.1f M terms/s  %6.2f ns/term\n", "mpfr_fma loop, 128-bit accumulator",
           mpfr_rate / 1e6, 1e9 / mpfr_rate);
    mf_dot_stats st;
    mf_dot_ws_stats(ws, &st);
    printf("  (finished by mpfr_sum after cancellation: %llu of %llu dot products; checksum %g)\n",
           st.fallbacks, st.dots, sink);
    for (int i = 0; i < K; i++) mpfr_clears(ma[i], mb[i], (mpfr_ptr)0);
    mpfr_clear(acc);
    free(ma);
    free(mb);
    mf_dot_ws_free(ws);
    free(a16), free(b16), free(ad), free(ai), free(bi);
}

static void bench_check(int ncases, int strict) {
    mf_error err = {0};
    mf_backend b;
    if (mf_backend_open("cpu", &b, &err) != MF_OK) {
        printf("bench: %s\n", err.msg);
        return;
    }
    mf_check_opts o;
    mf_check_opts_default(&o);
    o.profile = 1;
    o.strict = strict;
    double ref_s = 0, loop_s = 0, kern_s = 0, max_util = 0;
    unsigned long long terms = 0, act = 0, act_mpfr = 0;
    int fails = 0;
    double t0 = mf_now_s();
    for (int i = 0; i < ncases; i++) {
        mf_case c;
        mf_case_default(&c);
        mf_moe_params *p = &c.p;
        p->T = 8, p->H = 256, p->I = 128, p->E = 16, p->E_local = 16, p->top_k = 8;
        p->n_group = 4, p->topk_group = 2;
        for (int t = 0; t < MF_NUM_TENSORS; t++) c.gen[t].seed = 1000u * (unsigned)i + (unsigned)t;
        mf_problem pb;
        mf_verdict v;
        if (mf_problem_build(&c, &pb, &err) != MF_OK ||
            mf_check_problem(&pb, &b, &o, &v, &err) != MF_OK) {
            printf("bench: %s\n", err.msg);
            mf_problem_free(&pb);
            break;
        }
        fails += !v.pass;
        ref_s += v.ref_s;
        loop_s += v.ref.dot.loop_s;
        kern_s += v.kernel_s;
        terms += v.ref.dot.terms;
        act += v.ref.act_elems;
        act_mpfr += v.ref.act_mpfr;
        if (v.max_util_out > max_util) max_util = v.max_util_out;
        mf_problem_free(&pb);
    }
    double wall = mf_now_s() - t0;
    printf("  %-8s %6.1f cases/s  reference %6.2f ms/case, of which %4.1f%% outside the "
           "accumulation loop; kernel %.2f ms/case; %.1f M terms/s in the loop; MPFR decided "
           "%llu of %llu activation roundings; %d failures, max utilisation %.3g\n",
           strict ? "strict" : "default", ncases / wall, 1e3 * ref_s / ncases,
           100.0 * (ref_s - loop_s) / ref_s, 1e3 * kern_s / ncases, terms / loop_s / 1e6,
           act_mpfr, act, fails, max_util);
    mf_backend_close(&b);
}

int mf_cmd_bench(int argc, char **argv) {
    if (argc >= 2 && !strcmp(argv[1], "kernel")) {
        if (!mf_bench_kernel_main) {
            fprintf(stderr, "moefuzz bench kernel: this moefuzz was built without CUDA "
                            "(cmake --preset cuda)\n");
            return MF_EXIT_BAD_INPUT;
        }
        return mf_bench_kernel_main(argc - 1, argv + 1);
    }
    if (argc < 2 || strcmp(argv[1], "reference") != 0) {
        fprintf(stderr, "moefuzz bench: say what to bench: `moefuzz bench reference` or "
                        "`moefuzz bench kernel`\n");
        return MF_EXIT_BAD_INPUT;
    }
    bench_args a = {.reps = 5, .ncases = 20};
    mf_opt t[MF_OPTS_MAX];
    mf_opt_list args;
    int ok = mf_opts_parse_n("bench reference", t, bench_table(&a, t), argc - 1, argv + 1, &args, 0,
                             0, "") == 0;
    free(args.v);
    if (!ok) return MF_EXIT_BAD_INPUT;
    int reps = a.reps, ncases = a.ncases;
    bench_dots(reps);
    printf("\ncheck --backend cpu, T=8 H=256 I=128 E=16 top-8, 4 groups keep 2, %d cases:\n",
           ncases);
    bench_check(ncases, 0);
    bench_check(ncases, 1);
    return MF_EXIT_PASS;
}
