/* test_cuda_mutants.c: every mutant of kernels/mutants.h, built into the CUDA kernel
 * (library moefuzz_cuda_mutants), must be caught by the seed corpus.
 *
 *   test_cuda_mutants [--controls-only] SEED_DIR [CONTROL_DIR...]
 *
 * First the controls: the production kernel ("cuda") and the mutant build with no mutant set
 * must pass every seed (and every case of the extra control directories), or catching would
 * prove nothing. Then, for each mutant, the seeds are
 * checked in name order until one fails; the mutant is caught by that seed (the stage that failed
 * is printed). Seeds that need special inputs: nan-logit-row (nan-duplicate-ids),
 * ep-shard-offset32 (ep-offset-*), exact-ties (tie-higher-index), sigmoid-underflow-eps
 * (eps-missing), tile-edges-17-129-63 (partial tiles).
 * --controls-only: the production kernel on every case, nothing else (the emulator runs it once
 * more per tuning setting of the environment, e.g. MOEFUZZ_CUDA_WG=off).
 * Exit: 0 all caught and the controls pass, 1 otherwise, 77 without a usable device.
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "check.h"
#include "codec.h"
#include "../../kernels/mutants.h"

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Case files of a directory (not recursive), sorted; README and .md files skipped. */
static int list_cases(const char *dir, char ***out) {
    DIR *d = opendir(dir);
    if (!d) return -1;
    int n = 0, cap = 64;
    char **v = malloc(sizeof(char *) * (size_t)cap);
    struct dirent *de;
    while (v && (de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.' || strstr(de->d_name, ".md") || strstr(de->d_name, "README"))
            continue;
        if (n == cap) {
            cap *= 2;
            char **nv = realloc(v, sizeof(char *) * (size_t)cap);
            if (!nv) break;
            v = nv;
        }
        size_t len = strlen(dir) + strlen(de->d_name) + 2;
        v[n] = malloc(len);
        if (!v[n]) break;
        snprintf(v[n], len, "%s/%s", dir, de->d_name);
        n++;
    }
    closedir(d);
    if (!v) return -1;
    qsort(v, (size_t)n, sizeof(char *), cmp_str);
    *out = v;
    return n;
}

static const char *base_name(const char *p) {
    const char *s = strrchr(p, '/');
    return s ? s + 1 : p;
}

/* 1: passes, 0: fails (stage name in *why), -1: error (message printed). */
static int check_one(mf_backend *b, const mf_problem *pb, const char *path, char *why,
                     size_t why_len) {
    mf_check_opts o;
    mf_check_opts_default(&o);
    mf_verdict v;
    mf_error err = {0};
    if (mf_check_problem(pb, b, &o, &v, &err) != MF_OK) {
        printf("  ERROR on %s: %s\n", base_name(path), err.msg);
        return -1;
    }
    if (v.unsupported || v.pass) return 1;
    why[0] = 0;
    for (int s = 0; s < MF_STAGE_COUNT; s++)
        if (v.n_bad[s]) {
            size_t l = strlen(why);
            snprintf(why + l, why_len - l, "%s%s %llu", l ? ", " : "", mf_stage_name((mf_stage)s),
                     v.n_bad[s]);
        }
    return 0;
}

int main(int argc, char **argv) {
    int controls_only = argc > 1 && !strcmp(argv[1], "--controls-only");
    if (controls_only) argc--, argv++;
    if (argc < 2) {
        fprintf(stderr, "usage: test_cuda_mutants [--controls-only] SEED_DIR [CONTROL_DIR...]\n");
        return 2;
    }
    setvbuf(stdout, NULL, _IOLBF, 0); /* progress shows in ctest logs even if a case aborts */
    mf_error err = {0};
    mf_backend prod;
    if (mf_backend_open("cuda", &prod, &err) != MF_OK) {
        printf("test_cuda_mutants: %s\n", err.msg);
        return err.status == MF_EUNSUPPORTED ? 77 : 1;
    }
    /* seeds first (n_seeds of them: the mutants' corpus), then the extra control cases */
    char **paths = NULL;
    int n = 0, n_seeds = 0;
    for (int a = 1; a < argc; a++) {
        char **more = NULL;
        int m = list_cases(argv[a], &more);
        if (m <= 0) {
            printf("test_cuda_mutants: no case files in %s\n", argv[a]);
            return 1;
        }
        char **all = realloc(paths, sizeof(char *) * (size_t)(n + m));
        if (!all) return 1;
        paths = all;
        memcpy(paths + n, more, sizeof(char *) * (size_t)m);
        free(more);
        n += m;
        if (a == 1) n_seeds = n;
    }
    mf_problem *pbs = calloc((size_t)n, sizeof *pbs);
    if (!pbs) return 1;
    for (int i = 0; i < n; i++) {
        mf_case c;
        if (mf_case_load(paths[i], 0, &c, NULL, &err) != MF_OK ||
            mf_problem_build(&c, &pbs[i], &err) != MF_OK) {
            printf("test_cuda_mutants: %s: %s\n", paths[i], err.msg);
            return 1;
        }
    }
    int fails = 0;
    char why[256];

    /* controls: production kernel, and the mutant build with no mutant */
    int bad_controls = 0;
    for (int i = 0; i < n; i++)
        if (check_one(&prod, &pbs[i], paths[i], why, sizeof why) != 1) {
            printf("CONTROL FAILS: cuda on %s (%s)\n", base_name(paths[i]), why);
            bad_controls++;
        }
    mf_backend_close(&prod);
    if (controls_only) {
        printf("controls: production kernel on %d cases: %s\n", n,
               bad_controls ? "FAIL" : "all pass");
        for (int i = 0; i < n; i++) {
            mf_problem_free(&pbs[i]);
            free(paths[i]);
        }
        free(pbs);
        free(paths);
        return bad_controls ? 1 : 0;
    }
    const mf_mutant_provider *mp = mf_cuda_mutant_provider ? mf_cuda_mutant_provider() : NULL;
    if (!mp) {
        printf("test_cuda_mutants: built without the CUDA mutant provider\n");
        return 1;
    }
    {
        mf_backend b;
        char spec[96];
        snprintf(spec, sizeof spec, "cuda-mutant:%s", mf_mutant_name(1));
        if (mf_backend_open(spec, &b, &err) != MF_OK) {
            printf("test_cuda_mutants: %s\n", err.msg);
            return 1;
        }
        mp->set(b.ctx, MF_MUTANT_NONE);
        for (int i = 0; i < n; i++)
            if (check_one(&b, &pbs[i], paths[i], why, sizeof why) != 1) {
                printf("CONTROL FAILS: cuda-mutant with no mutant on %s (%s)\n",
                       base_name(paths[i]), why);
                bad_controls++;
            }
        mf_backend_close(&b);
    }
    printf("controls: production kernel and unmutated mutant build on %d cases: %s\n", n,
           bad_controls ? "FAIL" : "all pass");

    /* the zoo */
    printf("\n%-22s %-36s %s\n", "mutant", "caught by", "failing stages");
    int caught_all = 1;
    for (int m = 1; m <= mf_mutant_count(); m++) {
        mf_backend b;
        char spec[96];
        snprintf(spec, sizeof spec, "cuda-mutant:%s", mf_mutant_name(m));
        if (mf_backend_open(spec, &b, &err) != MF_OK) {
            printf("%-22s cannot open: %s\n", mf_mutant_name(m), err.msg);
            caught_all = 0;
            continue;
        }
        int by = -1;
        for (int i = 0; i < n_seeds && by < 0; i++) {
            int r = check_one(&b, &pbs[i], paths[i], why, sizeof why);
            if (r == 0) by = i;
            if (r < 0) fails++;
        }
        if (by >= 0) {
            printf("%-22s %-36s %s\n", mf_mutant_name(m), base_name(paths[by]), why);
        } else {
            printf("%-22s %-36s %s\n", mf_mutant_name(m), "NOT CAUGHT", mf_mutant_doc(m));
            caught_all = 0;
        }
        mf_backend_close(&b);
    }
    for (int i = 0; i < n; i++) {
        mf_problem_free(&pbs[i]);
        free(paths[i]);
    }
    free(pbs);
    free(paths);
    int ok = caught_all && !bad_controls && !fails;
    printf("\ntest_cuda_mutants: %s (%d mutants, %d seeds%s)\n",
           ok ? "every mutant caught" : "FAIL", mf_mutant_count(), n_seeds,
           fails ? ", with run errors" : "");
    return ok ? 0 : 1;
}
