/* cmd_exchange.c: `moefuzz export`, `moefuzz verify` (case and result files for kernels that
 * live outside moefuzz, docs/files.md) and `moefuzz methods`. */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "check.h"
#include "codec.h"
#include "exchange.h"
#include "methods.h"
#include "models.h"
#include "options.h"
#include "tool.h"

static int ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && !strcmp(s + n - m, suffix);
}

static const char *plural_s(int n) {
    return n == 1 ? "" : "s";
}

static int mkdir_p(const char *dir) {
    char d[4096];
    snprintf(d, sizeof d, "%s", dir);
    for (char *p = d + 1; *p; p++)
        if (*p == '/') {
            *p = '\0';
            mkdir(d, 0775);
            *p = '/';
        }
    return mkdir(d, 0775) == 0 || errno == EEXIST ? 0 : -1;
}

/* ---- export ---- */

/* Above this total, export warns before writing: more than a few model twins (the largest is
 * 144 MiB), as all of corpus/seeds is (about 1330 MiB). */
#define MF_EXPORT_WARN_MIB 512

static int name_taken(const mf_path_list *l, const char *name) {
    for (int i = 0; i < l->n; i++)
        if (!strcmp(l->paths[i], name)) return 1;
    return 0;
}

static void names_add(mf_path_list *l, const char *s) {
    if (l->n == l->cap) {
        int cap = l->cap ? 2 * l->cap : 16;
        char **np = realloc(l->paths, sizeof(char *) * (size_t)cap);
        if (!np) return;
        l->paths = np;
        l->cap = cap;
    }
    if ((l->paths[l->n] = strdup(s))) l->n++;
}

typedef struct export_args {
    const char *out, *method, *model;
    int raw, full;
    double max_mib, max_total_mib;
} export_args;

static int export_table(export_args *a, mf_opt *t) {
    static char max_mib_help[120];
    snprintf(max_mib_help, sizeof max_mib_help,
             "refuse cases whose tensors exceed N MiB (default %d)", MF_DEFAULT_MAX_MIB);
    const mf_opt opts[] = {
        {"--out", NULL, MF_OPT_STR, &a->out, .arg = "DIR", .help = "output directory (created)"},
        {"--method", NULL, MF_OPT_STR, &a->method, .arg = "NAME",
         .help = "apply a routing method to every case (moefuzz methods)"},
        {"--model", NULL, MF_OPT_STR, &a->model, .arg = "NAME",
         .help = "apply a model's routing and sizes to every case\n(moefuzz models)"},
        {"--full", NULL, MF_OPT_FLAG, &a->full, 1,
         .help = "with --model: the model's full H and I"},
        {"--raw", NULL, MF_OPT_FLAG, &a->raw, 1, .help = "accept raw fuzzer inputs"},
        {"--max-mib", NULL, MF_OPT_NUM, &a->max_mib, .min = 0, .max = 1e308, .above = 1, .arg = "N",
         .help = max_mib_help},
        {"--max-total-mib", NULL, MF_OPT_NUM, &a->max_total_mib, .min = 0, .max = 1e308, .above = 1,
         .arg = "N", .help = "refuse to write more than N MiB in all (default: no\nlimit)"},
    };
    _Static_assert(sizeof opts / sizeof opts[0] <= MF_OPTS_MAX, "MF_OPTS_MAX");
    memcpy(t, opts, sizeof opts);
    return (int)(sizeof opts / sizeof opts[0]);
}

void mf_help_export(FILE *f) {
    fprintf(f,
            "usage: moefuzz export [options] CASE|DIR... --out DIR\n\n"
            "Writes each case as DIR/NAME.safetensors for a kernel outside moefuzz: tensors x\n"
            "[T,H] BF16, logits [T,E] F32 or BF16, bias [E] F32 or BF16 (when the case has one),\n"
            "w13 [E_local,2I,H] BF16, w2 [E_local,H,I] BF16, those of the case's later semantics\n"
            "where it has them (b13, b2, w13_s, w2_s, sw13, sw2, shared_gate, an mxfp4 case's\n"
            "packed w13_q, w13_sc, w2_q, w2_sc U8, and a pre-routed case's topk_ids_in [T,k]\n"
            "I32 and topk_weights_in [T,k] F32 or BF16), and every parameter of the case in\n"
            "the metadata (docs/files.md, docs/case-format.md). The kernel writes\n"
            "DIR/NAME.out.safetensors with 'out' [T,H] BF16 (optionally 'topk_ids' [T,k] I32 and\n"
            "'topk_weights' [T,k] F32); `moefuzz verify DIR` checks them.\n\n");
    export_args a;
    mf_opt t[MF_OPTS_MAX];
    mf_opts_help(f, t, export_table(&a, t));
    fprintf(f,
            "\nThe number of files and their total size are printed before anything is written,\n"
            "with a warning above %d MiB: tensors are materialized, and all of corpus/seeds\n"
            "takes about 1330 MiB.\n\n"
            "exit: 0 written, 2 bad input\n",
            MF_EXPORT_WARN_MIB);
}

int mf_cmd_export(int argc, char **argv) {
    export_args a = {.max_mib = MF_DEFAULT_MAX_MIB};
    mf_opt t[MF_OPTS_MAX];
    mf_opt_list args;
    if (mf_opts_parse_n("export", t, export_table(&a, t), argc, argv, &args, 0, INT_MAX, "") != 0) {
        free(args.v);
        return MF_EXIT_BAD_INPUT;
    }
    const char *out = a.out, *method_name = a.method, *model_name = a.model;
    int raw = a.raw, full = a.full;
    double max_mib = a.max_mib, max_total_mib = a.max_total_mib;
    mf_path_list paths = {0};
    mf_error err = {0};
    int bad = 0;
    for (int i = 0; i < args.n; i++)
        if (mf_paths_collect(args.v[i], &paths, &err) != MF_OK) {
            fprintf(stderr, "moefuzz export: %s\n", err.msg);
            bad = 1;
        }
    free(args.v);
    mf_prep prep;
    mf_prep_default(&prep);
    prep.max_mib = max_mib;
    if (!out || paths.n == 0 || mf_prep_set_model(&prep, model_name, full, &err) != MF_OK ||
        mf_prep_set_method(&prep, method_name, &err) != MF_OK) {
        fprintf(stderr, "moefuzz export: %s\n",
                !out           ? "give --out DIR"
                : paths.n == 0 ? "no case files (see --help)"
                               : err.msg);
        mf_paths_free(&paths);
        return MF_EXIT_BAD_INPUT;
    }
    const mf_model *model = prep.model;
    const mf_method *method = prep.method;
    /* DIR/NAME, not DIR//NAME, when DIR is given with a trailing slash */
    char outdir[4096];
    snprintf(outdir, sizeof outdir, "%s", out);
    for (size_t len = strlen(outdir); len > 1 && outdir[len - 1] == '/'; len--)
        outdir[len - 1] = '\0';
    out = outdir;
    /* the size of everything this run would write, told (and bounded) before writing any */
    double total_mib = 0;
    int sized = 0;
    for (int i = 0; i < paths.n; i++) {
        mf_case c;
        if (mf_case_load(paths.paths[i], raw, &c, NULL, &err) != MF_OK ||
            mf_prep_case(&prep, &c, &err) != MF_OK)
            continue;
        total_mib += mf_case_bytes(&c) / 1048576.0;
        sized++;
    }
    if (max_total_mib > 0 && total_mib > max_total_mib) {
        fprintf(stderr,
                "moefuzz export: %d case file%s would take %.0f MiB in %s, more than "
                "--max-total-mib %.0f\n",
                sized, plural_s(sized), total_mib, out, max_total_mib);
        mf_paths_free(&paths);
        return MF_EXIT_BAD_INPUT;
    }
    printf("moefuzz export: %d case file%s, %.1f MiB, to %s%s%s\n", sized, plural_s(sized),
           total_mib, out, model ? ", model " : "", model ? model->name : "");
    fflush(stdout);
    if (total_mib > MF_EXPORT_WARN_MIB)
        fprintf(stderr,
                "moefuzz export: warning: writing %.0f MiB to %s (Ctrl-C stops it; "
                "--max-total-mib N refuses more than N MiB)\n",
                total_mib, out);
    if (mkdir_p(out) != 0) {
        fprintf(stderr, "moefuzz export: cannot create %s: %s\n", out, strerror(errno));
        mf_paths_free(&paths);
        return MF_EXIT_BAD_INPUT;
    }
    int written = 0;
    mf_path_list names = {0}; /* NAMEs written by this run */
    for (int i = 0; i < paths.n; i++) {
        const char *path = paths.paths[i];
        mf_case c;
        mf_problem pb;
        if (mf_prep_load(&prep, path, raw, &c, &pb, &err) != MF_OK) {
            fprintf(stderr, "ERROR %s\n", err.msg);
            bad = 1;
            continue;
        }
        /* NAME: the case file's name without its extension; two cases of one name in this
         * run get -2, -3 (a file from an earlier run is replaced) */
        const char *base = strrchr(path, '/');
        base = base ? base + 1 : path;
        char stem[256], name[300], dst[4400];
        snprintf(stem, sizeof stem, "%s", base);
        char *dot = strrchr(stem, '.');
        if (dot && dot != stem) *dot = '\0';
        for (char *p = stem; *p; p++)
            if (isspace((unsigned char)*p)) *p = '_';
        snprintf(name, sizeof name, "%s", stem);
        for (int k = 2; name_taken(&names, name); k++)
            snprintf(name, sizeof name, "%s-%d", stem, k);
        snprintf(dst, sizeof dst, "%s/%s" MF_XRESULT_SUFFIX, out, name);
        remove(dst); /* a stale result must never be verified against a new case */
        snprintf(dst, sizeof dst, "%s/%s.safetensors", out, name);
        if (mf_xcase_write(dst, &pb, &c, name, method ? method->name : NULL, &err) != MF_OK) {
            fprintf(stderr, "ERROR %s: %s\n", path, err.msg);
            bad = 1;
        } else {
            names_add(&names, name);
            char desc[200];
            mf_tool_case_summary(&c, desc, sizeof desc);
            printf("wrote %s (%s)\n", dst, desc);
            written++;
        }
        mf_problem_free(&pb);
    }
    printf("\nmoefuzz export: %d case file%s in %s; the kernel writes NAME%s next to each, then "
           "`moefuzz verify %s`\n",
           written, plural_s(written), out, MF_XRESULT_SUFFIX, out);
    mf_paths_free(&names);
    mf_paths_free(&paths);
    return bad ? MF_EXIT_BAD_INPUT : MF_EXIT_PASS;
}

/* ---- verify ---- */

typedef struct verify_args {
    const char *contract;
    int quiet;
    mf_check_opts opts;
} verify_args;

static int verify_table(verify_args *a, mf_opt *t) {
    const mf_opt opts[] = {
        {"--contract", NULL, MF_OPT_STR, &a->contract, .arg = "NAME",
         .help = "the kernel's numerical contract (default any-order;\nalso cpu-scalar, "
                 "hopper-tc, vllm-triton,\nflashinfer-trtllm-bf16)"},
        {"--no-attribution", NULL, MF_OPT_FLAG, &a->opts.attribute, 0,
         .help = "do not name the suspected dropped parameter of a failure"},
        {"--sample-cols", NULL, MF_OPT_INT, &a->opts.max_cols, .min = 0, .max = 1 << 30, .arg = "N",
         .help = "verify a seeded sample of N output columns per token"},
        {"--strict", NULL, MF_OPT_FLAG, &a->opts.strict, 1,
         .help = "MPFR decides every activation rounding (slower)"},
        {"--quiet", "-q", MF_OPT_FLAG, &a->quiet, 1, .help = "one line per case"},
    };
    _Static_assert(sizeof opts / sizeof opts[0] <= MF_OPTS_MAX, "MF_OPTS_MAX");
    memcpy(t, opts, sizeof opts);
    return (int)(sizeof opts / sizeof opts[0]);
}

void mf_help_verify(FILE *f) {
    fprintf(f,
            "usage: moefuzz verify [options] DIR|CASE.safetensors...\n\n"
            "For every case file NAME.safetensors (written by `moefuzz export`), reads the\n"
            "kernel's result NAME.out.safetensors ('out' [T,H] BF16; optionally 'topk_ids'\n"
            "[T,k] I32 and 'topk_weights' [T,k] F32; or metadata 'unsupported' = REASON) and\n"
            "checks it against the exact reference: routing ids and weights when given, every\n"
            "output element against its admissible bf16 interval; a failure names the suspected\n"
            "dropped parameter. Malformed, truncated or mismatched files are bad input.\n\n");
    verify_args a;
    mf_opt t[MF_OPTS_MAX];
    mf_opts_help(f, t, verify_table(&a, t));
    fprintf(f, "\nexit: 0 all pass (or unsupported), 1 any mismatch, 2 bad input\n");
}

int mf_cmd_verify(int argc, char **argv) {
    verify_args a = {.contract = "any-order"};
    mf_check_opts_default(&a.opts);
    a.opts.determinism = 0;
    mf_opt t[MF_OPTS_MAX];
    mf_opt_list args;
    if (mf_opts_parse_n("verify", t, verify_table(&a, t), argc, argv, &args, 0, INT_MAX, "") != 0) {
        free(args.v);
        return MF_EXIT_BAD_INPUT;
    }
    const char *contract_name = a.contract;
    int quiet = a.quiet;
    mf_check_opts opts = a.opts;
    mf_path_list paths = {0};
    mf_error err = {0};
    int bad = 0;
    for (int i = 0; i < args.n; i++)
        if (mf_paths_collect(args.v[i], &paths, &err) != MF_OK) {
            fprintf(stderr, "moefuzz verify: %s\n", err.msg);
            bad = 1;
        }
    free(args.v);
    const mf_contract *con = mf_contract_find(contract_name);
    if (!con) {
        fprintf(stderr, "moefuzz verify: unknown contract '%s'\n", contract_name);
        mf_paths_free(&paths);
        return MF_EXIT_BAD_INPUT;
    }
    int n_cases = 0, n_pass = 0, n_fail = 0, n_unsup = 0, n_bad = 0;
    double t0 = mf_now_s();
    for (int i = 0; i < paths.n; i++) {
        const char *path = paths.paths[i];
        if (!ends_with(path, ".safetensors") || ends_with(path, MF_XRESULT_SUFFIX)) continue;
        n_cases++;
        char rpath[4400];
        snprintf(rpath, sizeof rpath, "%.*s%s", (int)(strlen(path) - strlen(".safetensors")),
                 path, MF_XRESULT_SUFFIX);
        mf_case c;
        mf_problem pb;
        mf_run_result r;
        if (mf_xcase_read(path, &c, &pb, &err) != MF_OK) {
            printf("ERROR %s\n", err.msg);
            n_bad++;
            continue;
        }
        struct stat sb;
        if (stat(rpath, &sb) != 0) {
            printf("ERROR %s: no result file %s (the kernel wrote none?)\n", path, rpath);
            n_bad++;
            mf_problem_free(&pb);
            continue;
        }
        if (mf_xresult_read(rpath, &pb.p, &r, &err) != MF_OK) {
            printf("ERROR %s\n", err.msg);
            n_bad++;
            mf_problem_free(&pb);
            continue;
        }
        char desc[200];
        mf_tool_case_summary(&c, desc, sizeof desc);
        if (r.unsupported) {
            printf("UNSUPPORTED %s (%s): %s\n", path, desc, r.reason);
            n_unsup++;
            mf_run_result_free(&r);
            mf_problem_free(&pb);
            continue;
        }
        mf_verdict *v = calloc(1, sizeof *v);
        mf_status st = v ? mf_check_result(&pb, con, &r, NULL, &opts, v, &err)
                         : MF_FAIL(&err, MF_ENOMEM, "out of memory");
        if (st == MF_OK && !v->pass && opts.attribute) {
            st = mf_attribute(&pb, con, &r, &v->attr, &err);
            v->has_attribution = st == MF_OK;
        }
        if (st != MF_OK) {
            printf("ERROR %s: %s\n", path, err.msg);
            n_bad++;
        } else if (v->pass) {
            n_pass++;
            printf("PASS %s (%s) max util %.3g\n", path, desc, v->max_util_out);
            if (!quiet) mf_verdict_print(v, stdout);
        } else {
            n_fail++;
            printf("FAIL %s (%s)\n", path, desc);
            mf_verdict_print(v, stdout);
            if (!quiet) mf_case_print_text(&c, stdout);
        }
        free(v);
        mf_run_result_free(&r);
        mf_problem_free(&pb);
    }
    if (n_cases == 0 && !bad) {
        fprintf(stderr, "moefuzz verify: no case files (NAME.safetensors) given\n");
        bad = 1;
    }
    printf("\nmoefuzz verify: %d case%s (contract %s): %d passed, %d failed, %d unsupported, %d "
           "bad input; %.2f s\n",
           n_cases, plural_s(n_cases), con->name, n_pass, n_fail, n_unsup, n_bad, mf_now_s() - t0);
    mf_paths_free(&paths);
    if (bad || n_bad) return MF_EXIT_BAD_INPUT;
    return n_fail ? MF_EXIT_MISMATCH : MF_EXIT_PASS;
}

/* ---- methods ---- */

void mf_help_methods(FILE *f) {
    fprintf(f, "usage: moefuzz methods\n\n"
               "Lists the routing methods by the names and numbers FlashInfer, vLLM and\n"
               "TensorRT-LLM give them (RoutingMethodType), with the case parameters each implies\n"
               "and whether the kernel applies routed_scaling_factor. Use a name with --method\n"
               "(check, fuzz, export), or declare it in a plugin's contract (routing_method).\n");
}

int mf_cmd_methods(int argc, char **argv) {
    mf_opt_list args;
    int ok = mf_opts_parse_n("methods", NULL, 0, argc, argv, &args, 0, 0, "") == 0;
    free(args.v);
    if (!ok) return MF_EXIT_BAD_INPUT;
    mf_methods_print(stdout);
    return MF_EXIT_PASS;
}
