/* cmd_calibrate.c: `moefuzz calibrate --backend B`: probes a kernel and prints the tightest
 * contract it satisfies, checked on the corpus and random model cases (src/calibrate.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "calibrate.h"
#include "options.h"
#include "tool.h"

typedef struct calib_args {
    const char *backend, *method;
    int random, quiet;
    unsigned long long seed;
    mf_opt_list corpus;
} calib_args;

static int calib_table(calib_args *a, mf_opt *t) {
    const mf_opt opts[] = {
        {"--backend", "-b", MF_OPT_STR, &a->backend, .arg = "NAME",
         .help = "the kernel, as `moefuzz check --backend` takes it (required)"},
        {"--method", NULL, MF_OPT_STR, &a->method, .arg = "NAME",
         .help = "the routing method (default: the kernel's declared one)"},
        {"--random", NULL, MF_OPT_INT, &a->random, 0, 0, 1000, .arg = "N",
         .help = "random validation cases per model preset (default 20)"},
        {"--seed", NULL, MF_OPT_U64, &a->seed, .arg = "S",
         .help = "seed of the random validation cases"},
        {"--corpus", NULL, MF_OPT_LIST, &a->corpus, .arg = "PATH",
         .help = "(repeatable) validation case files or directories\n(default: corpus/seeds "
                 "and corpus/regress of the source tree)"},
        {"--quiet", "-q", MF_OPT_FLAG, &a->quiet, 1, .help = "no progress lines on stderr"},
    };
    _Static_assert(sizeof opts / sizeof opts[0] <= MF_OPTS_MAX, "MF_OPTS_MAX");
    memcpy(t, opts, sizeof opts);
    return (int)(sizeof opts / sizeof opts[0]);
}

void mf_help_calibrate(FILE *f) {
    fprintf(f,
            "usage: moefuzz calibrate --backend NAME [options]\n\n"
            "Runs the kernel on probe cases built so that each hypothesis about its contract\n"
            "predicts a different verdict (roundings to bf16, accumulation order, exp and\n"
            "division, sigmoid form, softmax reciprocal, weight form, tie rule, flush to zero,\n"
            "combine dtype, determinism), and prints the tightest contract it passes: a\n"
            "built-in name when one matches field by field, else the fields, each with the\n"
            "probe that decided it. The contract is then checked on the validation cases;\n"
            "one that fails joins the probes and the search runs again, so the printed\n"
            "contract passes them all. docs/calibrate.md describes the probes and their\n"
            "limits.\n\n");
    calib_args a;
    mf_opt t[MF_OPTS_MAX];
    mf_opts_help(f, t, calib_table(&a, t));
    fprintf(f,
            "\nexit: 0 a contract found, 1 none fits (or the kernel crashed), 2 bad input, "
            "77 no usable GPU\n");
}

int mf_cmd_calibrate(int argc, char **argv) {
    calib_args a = {0};
    a.random = -1;
    mf_calib_opts o;
    mf_calib_opts_default(&o);
    a.seed = o.seed;
    mf_opt t[MF_OPTS_MAX];
    mf_opt_list args;
    a.corpus.v = calloc((size_t)argc + 1, sizeof(char *));
    if (!a.corpus.v) return MF_EXIT_BAD_INPUT;
    int ok = mf_opts_parse_n("calibrate", t, calib_table(&a, t), argc, argv, &args, 0, 0,
                             "no arguments") == 0;
    free(args.v);
    if (ok && !a.backend) {
        fprintf(stderr,
                "moefuzz calibrate: give the kernel with --backend NAME (moefuzz "
                "calibrate --help)\n");
        ok = 0;
    }
    if (!ok) {
        free(a.corpus.v);
        return MF_EXIT_BAD_INPUT;
    }
    if (a.random >= 0) o.random_per_model = a.random;
    o.seed = a.seed;
    o.progress = a.quiet ? NULL : stderr;
    char seeds[4096], regress[4096];
    const char *root = getenv("MOEFUZZ_SOURCE_DIR");
    snprintf(seeds, sizeof seeds, "%s/corpus/seeds", root ? root : MF_SOURCE_DIR);
    snprintf(regress, sizeof regress, "%s/corpus/regress", root ? root : MF_SOURCE_DIR);
    const char *def[] = {seeds, regress, NULL};
    a.corpus.v[a.corpus.n] = NULL;
    o.corpus = a.corpus.n ? a.corpus.v : def;

    mf_error err = {0};
    mf_prep prep;
    mf_prep_default(&prep);
    mf_backend b;
    mf_backend_opts bo;
    mf_backend_opts_default(&bo);
    if (mf_backend_open_opts(a.backend, &bo, &b, &err) != MF_OK) {
        free(a.corpus.v);
        char why[256];
        if (mf_tool_gpu_missing(a.backend, why, sizeof why))
            return mf_tool_gpu_skip("moefuzz calibrate", why);
        fprintf(stderr, "moefuzz calibrate: %s\n", err.msg);
        return MF_EXIT_BAD_INPUT;
    }
    const char *method = a.method ? a.method : b.routing_method[0] ? b.routing_method : NULL;
    if (mf_prep_set_method(&prep, method, &err) != MF_OK) {
        fprintf(stderr, "moefuzz calibrate: %s\n", err.msg);
        mf_backend_close(&b);
        free(a.corpus.v);
        return MF_EXIT_BAD_INPUT;
    }
    if (prep.method) snprintf(b.routing_method, sizeof b.routing_method, "%s", prep.method->name);
    printf("calibrate: backend %s (kernel %s, declares %s%s%s)\n", a.backend,
           b.api.name ? b.api.name : "?", b.contract.name, prep.method ? "; routing method " : "",
           prep.method ? prep.method->name : "");
    mf_calib_result *res = malloc(sizeof *res);
    mf_status st = res ? mf_calibrate(&b, &prep, &o, res, &err) : MF_ENOMEM;
    mf_backend_close(&b);
    free(a.corpus.v);
    if (st != MF_OK) {
        fprintf(stderr, "moefuzz calibrate: %s\n", res ? err.msg : "out of memory");
        free(res);
        /* a bad corpus path is bad input; a kernel that crashed or erred is a finding */
        return st == MF_EINVAL || st == MF_EIO || st == MF_ENOMEM ? MF_EXIT_BAD_INPUT
                                                                  : MF_EXIT_MISMATCH;
    }
    mf_calib_print(res, stdout);
    int rc = res->fits ? MF_EXIT_PASS : MF_EXIT_MISMATCH;
    free(res);
    return rc;
}
