/* cmd_check.c: `moefuzz check` and `moefuzz explain`. */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "bf16.h"
#include "casegen.h"
#include "check.h"
#include "codec.h"
#include "fuzz.h"
#include "methods.h"
#include "models.h"
#include "route.h"
#include <sys/stat.h>
#include "options.h"
#include "tool.h"

typedef struct explain_args {
    const char *backend;
    int ntok, raw;
} explain_args;

static int explain_table(explain_args *a, mf_opt *t) {
    static char backend_help[200];
    snprintf(backend_help, sizeof backend_help,
             "kernel to run: %s, plugin:PATH.so, or exec:COMMAND\n(default cpu)",
             mf_backend_builtin_names());
    const mf_opt opts[] = {
        {"--backend", NULL, MF_OPT_STR, &a->backend, .arg = "NAME", .help = backend_help},
        {"--tokens", NULL, MF_OPT_INT, &a->ntok, .min = 0, .max = 1 << 30, .arg = "N",
         .help = "routing tables of the first N tokens (default 2)"},
        {"--raw", NULL, MF_OPT_FLAG, &a->raw, 1,
         .help = "accept a raw fuzzer input (not a canonical case file)"},
    };
    _Static_assert(sizeof opts / sizeof opts[0] <= MF_OPTS_MAX, "MF_OPTS_MAX");
    memcpy(t, opts, sizeof opts);
    return (int)(sizeof opts / sizeof opts[0]);
}

void mf_help_explain(FILE *f) {
    fprintf(f,
            "usage: moefuzz explain [options] CASE\n\n"
            "Shows the case as text, its cost, and for the first N tokens (default 2) the\n"
            "routing table: each candidate expert's exact key, the interval a correct kernel's\n"
            "key may take, and its class (in / out / ambiguous); groups likewise; the exact\n"
            "selection and weights. Then runs the backend (default cpu) and lists the worst\n"
            "elements of each stage with their utilisation of the allowed error, the\n"
            "metamorphic relations, the suspected knob of a failure, and the knobs whose loss\n"
            "this case would catch.\n\n");
    explain_args a;
    mf_opt t[MF_OPTS_MAX];
    mf_opts_help(f, t, explain_table(&a, t));
    fprintf(f, "\nexit: 0 pass, 1 mismatch, 2 bad input\n");
}

typedef struct check_args {
    const char *backend, *contract, *model, *method, *save_dir;
    mf_backend_opts bopts;
    int raw, quiet, cases, full;
    int fail_unsupported;
    mf_opt_list expect_unsup; /* the --expect-unsupported CASEs */
    unsigned long long seed;
    double max_mib;
    mf_check_opts opts;
    mf_opt_list paths; /* the case files and directories */
} check_args;

/* check's option table, targets in a; returns its length */
static int check_table(check_args *a, mf_opt *t) {
    static char backend_help[300], timeout_help[120], max_mib_help[120];
    snprintf(backend_help, sizeof backend_help,
             "kernel to check: %s, plugin:PATH.so, or exec:COMMAND\n(an adapter process, "
             "docs/files.md) (default cpu)",
             mf_backend_builtin_names());
    snprintf(timeout_help, sizeof timeout_help,
             "limit per kernel call of an isolated or exec backend (%g s)", MF_BACKEND_TIMEOUT_S);
    snprintf(max_mib_help, sizeof max_mib_help,
             "refuse cases whose tensors exceed N MiB (default %d)", MF_DEFAULT_MAX_MIB);
    const mf_opt opts[] = {
        {"--backend", NULL, MF_OPT_STR, &a->backend, .arg = "NAME", .help = backend_help},
        {"--contract", NULL, MF_OPT_STR, &a->contract, .arg = "NAME",
         .help = "check against this contract instead of the kernel's own\n(cpu-scalar, "
                 "hopper-tc, any-order, vllm-triton,\nflashinfer-trtllm-bf16)"},
        {"--method", NULL, MF_OPT_STR, &a->method, .arg = "NAME",
         .help = "apply a routing method to every case (moefuzz methods), e.g.\n"
                 "flashinfer:DeepSeekV3; default: the kernel's declared method"},
        {"--isolate", NULL, MF_OPT_FLAG, &a->bopts.isolate, 1,
         .help = "run the kernel in a worker process: a crash or hang is\nreported with the "
                 "case and the run goes on (default for\nplugin: backends)"},
        {"--no-isolate", NULL, MF_OPT_FLAG, &a->bopts.isolate, 0,
         .help = "run the kernel in this process"},
        {"--timeout", NULL, MF_OPT_NUM, &a->bopts.timeout_s, .min = 0, .max = 1e308, .above = 1,
         .arg = "S", .help = timeout_help},
        {"--save-failures", NULL, MF_OPT_STR, &a->save_dir, .arg = "D",
         .help = "where crashing and hanging cases are saved as text\n(default moefuzz-failures)"},
        {"--raw", NULL, MF_OPT_FLAG, &a->raw, 1,
         .help = "accept raw fuzzer inputs (not canonical case files)"},
        {"--sample-cols", NULL, MF_OPT_INT, &a->opts.max_cols, .min = 0, .max = 1 << 30,
         .arg = "N", .help = "verify a seeded sample of N output columns per token"},
        {"--strict", NULL, MF_OPT_FLAG, &a->opts.strict, 1,
         .help = "MPFR decides every activation rounding (slower)"},
        {"--no-determinism", NULL, MF_OPT_FLAG, &a->opts.determinism, 0,
         .help = "run the kernel once (skip the bit-identity check)"},
        {"--metamorphic", NULL, MF_OPT_FLAG, &a->opts.metamorphic, 1,
         .help = "also run the tolerance-free relations (rsf scaling, bias\nshift, expert "
                 "relabelling, EP shards, full groups, expert-map shards, TP shards)"},
        {"--no-attribution", NULL, MF_OPT_FLAG, &a->opts.attribute, 0,
         .help = "do not name the suspected dropped parameter of a failure"},
        {"--max-mib", NULL, MF_OPT_NUM, &a->max_mib, .min = 0, .max = 1e308, .above = 1,
         .arg = "N", .help = max_mib_help},
        {"--quiet", "-q", MF_OPT_FLAG, &a->quiet, 1, .help = "one line per case"},
        {"--model", NULL, MF_OPT_STR, &a->model, .arg = "NAME",
         .help = "without CASE files: check N random cases of this model's\nrouting (moefuzz "
                 "models), its small twin unless --full"},
        {"--cases", NULL, MF_OPT_INT, &a->cases, .min = 1, .max = 1e9, .arg = "N",
         .help = "with --model: how many cases (default 20)"},
        {"--full", NULL, MF_OPT_FLAG, &a->full, 1, .help = "with --model: the model's full H and I"},
        {"--seed", NULL, MF_OPT_U64, &a->seed, .arg = "N",
         .help = "with --model: seed of the generated cases (default 1)"},
        {"--fail-unsupported", NULL, MF_OPT_FLAG, &a->fail_unsupported, 1,
         .help = "a case the kernel refuses (supports() says no) is a failure,\nnot a pass that "
                 "checked nothing (tests of moefuzz's kernels)"},
        {"--expect-unsupported", NULL, MF_OPT_LIST, &a->expect_unsup, .arg = "CASE",
         .help = "(repeatable; implies --fail-unsupported) the kernel must\nrefuse CASE: a case "
                 "file by its path or its file name, or\nMODEL#N with --model; run instead, it "
                 "is a failure"},
    };
    _Static_assert(sizeof opts / sizeof opts[0] <= MF_OPTS_MAX, "MF_OPTS_MAX");
    memcpy(t, opts, sizeof opts);
    return (int)(sizeof opts / sizeof opts[0]);
}

void mf_help_check(FILE *f) {
    fprintf(f, "usage: moefuzz check [options] CASE|DIR...\n\n"
               "Runs a kernel on each case and checks every stage against the exact reference:\n"
               "routing ids, routing weights, every output element against its admissible bf16\n"
               "interval, NaN/Inf rules, unwritten outputs and guard bands, and determinism.\n\n");
    check_args a;
    mf_opt t[MF_OPTS_MAX];
    mf_opts_help(f, t, check_table(&a, t));
    fprintf(f, "\nexit: 0 every case passes (a refused case counts as a pass unless\n"
               "      --fail-unsupported), 1 a mismatch, crash or timeout, or under\n"
               "      --fail-unsupported a refused case not named (or a named case run),\n"
               "      2 bad input (an --expect-unsupported CASE that names no case included),\n"
               "      77 no usable GPU for --backend cuda (skipped; 1 with MOEFUZZ_REQUIRE_GPU=1)\n");
}

static int parse_check_args(int argc, char **argv, check_args *a) {
    memset(a, 0, sizeof *a);
    a->backend = "cpu";
    a->max_mib = MF_DEFAULT_MAX_MIB;
    a->cases = 20;
    a->seed = 1;
    a->save_dir = "moefuzz-failures";
    mf_backend_opts_default(&a->bopts);
    mf_check_opts_default(&a->opts);
    a->paths.v = calloc((size_t)argc, sizeof(char *));
    a->expect_unsup.v = calloc((size_t)argc, sizeof(char *));
    if (!a->paths.v || !a->expect_unsup.v) {
        fprintf(stderr, "moefuzz check: out of memory\n");
        return -1;
    }
    mf_opt t[MF_OPTS_MAX];
    if (mf_opts_parse("check", t, check_table(a, t), argc, argv, &a->paths) != 0) return -1;
    if (a->expect_unsup.n) a->fail_unsupported = 1;
    return 0;
}

/* Index of the --expect-unsupported entry that names the case at `path` (the path itself, or a
 * trailing part of it after a '/'), or -1. */
static int expected_unsupported(const check_args *a, const char *path) {
    size_t n = strlen(path);
    for (int j = 0; j < a->expect_unsup.n; j++) {
        const char *e = a->expect_unsup.v[j];
        size_t m = strlen(e);
        if (!strcmp(path, e) || (m < n && path[n - m - 1] == '/' && !strcmp(path + n - m, e)))
            return j;
    }
    return -1;
}

/* The command that checks one case file again with the settings in force, quoted for the shell
 * (a model sample has no file: its text case is printed instead). */
static void format_rerun(const check_args *a, const char *path, char *out, size_t n) {
    char q[1200];
    /* the mutant backends exist only in the test build */
    int mutant = strstr(a->backend, "-mutant:") != NULL;
    size_t o = (size_t)snprintf(out, n, "%s check", mutant ? "moefuzz-test" : "moefuzz");
    const char *opt[3][2] = {{"--backend", a->backend},
                             {"--contract", a->contract},
                             {"--method", a->method}};
    for (int i = 0; i < 3 && o < n; i++)
        if (opt[i][1]) {
            mf_shell_quote(opt[i][1], q, sizeof q);
            o += (size_t)snprintf(out + o, n - o, " %s %s", opt[i][0], q);
        }
    if (a->raw && o < n) o += (size_t)snprintf(out + o, n - o, " --raw");
    mf_shell_quote(path, q, sizeof q);
    if (o < n) snprintf(out + o, n - o, " %s", q);
}

/* Saves a case that crashed or hung the kernel as an editable text case; returns 0 and the
 * path, or -1. The name comes from the case's file (or model sample) and the kind of failure. */
static int save_failure(const char *dir, const char *label, const char *kind,
                        const check_args *a, const char *why, const mf_case *c, char *out,
                        size_t n) {
    char d[4096];
    snprintf(d, sizeof d, "%s", dir);
    for (char *p = d + 1; *p; p++)
        if (*p == '/') {
            *p = '\0';
            mkdir(d, 0775);
            *p = '/';
        }
    if (mkdir(d, 0775) != 0 && errno != EEXIST) return -1;
    const char *base = strrchr(label, '/');
    base = base ? base + 1 : label;
    char stem[200];
    snprintf(stem, sizeof stem, "%.199s", base);
    char *dot = strrchr(stem, '.');
    if (dot && dot != stem) *dot = '\0';
    for (char *p = stem; *p; p++)
        if (!isalnum((unsigned char)*p) && *p != '-' && *p != '_' && *p != '.') *p = '-';
    for (int i = 1; i < 1000; i++) {
        if (i == 1) snprintf(out, n, "%s/%s-%s.txt", d, stem, kind);
        else snprintf(out, n, "%s/%s-%s-%d.txt", d, stem, kind, i);
        struct stat sb;
        if (stat(out, &sb) != 0) break;
    }
    FILE *f = fopen(out, "w");
    if (!f) return -1;
    fprintf(f, "# %s: %s\n", kind, why);
    char rerun[2048];
    format_rerun(a, out, rerun, sizeof rerun);
    fprintf(f, "# replay: %s\n", rerun);
    mf_case_print_text(c, f);
    return fclose(f) == 0 ? 0 : -1;
}

/* The message of a crash or timeout without the call sites that MF_TRY appended. */
static void short_message(const char *msg, char *buf, size_t n) {
    snprintf(buf, n, "%s", msg);
    char *at = strstr(buf, " (at ");
    if (at) *at = '\0';
}

static void case_summary(const mf_case *c, char *buf, size_t n) {
    const mf_moe_params *p = &c->p;
    snprintf(buf, n, "T=%d H=%d I=%d E=%d/%d+%d k=%d %s%s g=%d/%d rn=%d rsf=%g@%s", p->T, p->H,
             p->I, p->E_local, p->E, p->expert_offset, p->top_k, mf_score_name(p->score),
             p->bias != MF_BIAS_NONE ? "+bias" : "", p->n_group, p->topk_group, p->renormalize,
             (double)p->rsf, mf_rsf_site_name(p->rsf_site));
}

void mf_tool_case_summary(const mf_case *c, char *buf, size_t n) { case_summary(c, buf, n); }

static int check_run(check_args a) {
    mf_error err = {0};
    mf_prep prep;
    mf_prep_default(&prep);
    prep.max_mib = a.max_mib;
    if (mf_prep_set_model(&prep, a.model, a.full, &err) != MF_OK) {
        fprintf(stderr, "moefuzz check: %s\n", err.msg);
        return MF_EXIT_BAD_INPUT;
    }
    const mf_model *model = prep.model;
    if (a.paths.n == 0 && !model) {
        fprintf(stderr, "moefuzz check: no case files (see --help)\n");
        return MF_EXIT_BAD_INPUT;
    }
    mf_backend b;
    if (mf_backend_open_opts(a.backend, &a.bopts, &b, &err) != MF_OK) {
        char why[256];
        if (mf_tool_gpu_missing(a.backend, why, sizeof why))
            return mf_tool_gpu_skip("moefuzz check", why);
        fprintf(stderr, "moefuzz check: %s\n", err.msg);
        return MF_EXIT_BAD_INPUT;
    }
    /* the routing method: asked for, or declared by the kernel */
    const char *method_name = a.method ? a.method : b.routing_method[0] ? b.routing_method : NULL;
    if (mf_prep_set_method(&prep, method_name, &err) != MF_OK) {
        fprintf(stderr, "moefuzz check: %s\n", err.msg);
        mf_backend_close(&b);
        return MF_EXIT_BAD_INPUT;
    }
    const mf_method *method = prep.method;
    if (method) {
        fprintf(stdout, "routing method %s%s: %s\n", method->name,
                a.method ? "" : " (declared by the kernel)", method->summary);
        if (a.method && b.routing_method[0] && strcmp(b.routing_method, method->name))
            fprintf(stdout, "note: the kernel declares %s; --method %s overrides it\n",
                    b.routing_method, method->name);
        snprintf(b.routing_method, sizeof b.routing_method, "%s", method->name);
    }
    if (a.contract) {
        const mf_contract *c = mf_contract_find(a.contract);
        if (!c) {
            fprintf(stderr, "moefuzz check: unknown contract '%s'\n", a.contract);
            mf_backend_close(&b);
            return MF_EXIT_BAD_INPUT;
        }
        b.contract = *c;
    }
    mf_path_list paths = {0};
    int bad_input = 0;
    for (int i = 0; i < a.paths.n; i++) {
        int before = paths.n;
        if (mf_paths_collect(a.paths.v[i], &paths, &err) != MF_OK) {
            fprintf(stderr, "moefuzz check: %s\n", err.msg);
            bad_input++;
        } else if (paths.n == before) {
            fprintf(stderr, "moefuzz check: %s holds no case files\n", a.paths.v[i]);
            bad_input++;
        }
    }
    int n_pass = 0, n_fail = 0, n_unsup = 0, n_bad = 0, n_crash = 0;
    /* under --fail-unsupported: refused cases nobody named, named cases the kernel ran */
    int n_unsup_unexpected = 0, n_not_refused = 0;
    int *expect_seen = calloc((size_t)a.expect_unsup.n + 1, sizeof(int));
    if (!expect_seen) {
        fprintf(stderr, "moefuzz check: out of memory\n");
        mf_paths_free(&paths);
        mf_backend_close(&b);
        return MF_EXIT_BAD_INPUT;
    }
    double max_util = 0;
    char max_util_case[512] = "";
    double t_start = mf_now_s();
    int total = model && paths.n == 0 ? a.cases : paths.n;
    mf_rng rng = {a.seed};
    for (int i = 0; i < total; i++) {
        char path[512];
        mf_case c;
        mf_problem pb;
        mf_status st;
        if (model && paths.n == 0) {
            /* a random case of the model: routing fixed, tokens and data vary */
            mf_case_limits lim = {a.full ? 8 : 64, MF_MAX_H, MF_MAX_I, MF_MAX_E, 1e30, 1e30,
                                  0, 0, 0, 0, 0};
            mf_case_random(&rng, &lim, &c);
            c.p.T = mf_dim_boundary(&rng, lim.max_T);
            snprintf(path, sizeof path, "%s#%d", model->name, i + 1);
            st = mf_prep_problem(&prep, &c, &pb, &err);
        } else {
            snprintf(path, sizeof path, "%s", paths.paths[i]);
            st = mf_prep_load(&prep, path, a.raw, &c, &pb, &err);
        }
        if (st != MF_OK) {
            /* the loader's messages mostly start with the path already */
            size_t pl = strlen(path);
            const char *msg = err.msg;
            if (!strncmp(msg, path, pl) && !strncmp(msg + pl, ": ", 2)) msg += pl + 2;
            fprintf(stdout, "ERROR %s: %s\n", path, msg);
            n_bad++;
            continue;
        }
        mf_verdict v;
        char desc[200];
        case_summary(&c, desc, sizeof desc);
        int expect = expected_unsupported(&a, path);
        if (expect >= 0) expect_seen[expect] = 1;
        if (mf_check_problem(&pb, &b, &a.opts, &v, &err) != MF_OK) {
            if (err.status == MF_ECRASH || err.status == MF_ETIMEOUT) {
                /* the kernel's failure, not the input's: save the case and go on */
                const char *kind = err.status == MF_ECRASH ? "crash" : "timeout";
                char why[1024], saved[4400];
                short_message(err.msg, why, sizeof why);
                fprintf(stdout, "%s %s (%s): %s\n", err.status == MF_ECRASH ? "CRASH" : "TIMEOUT",
                        path, desc, why);
                if (save_failure(a.save_dir, path, kind, &a, why, &c, saved,
                                 sizeof saved) == 0)
                    fprintf(stdout, "  case saved: %s\n", saved);
                else
                    fprintf(stdout, "  could not save the case under %s\n", a.save_dir);
                n_crash++;
            } else {
                fprintf(stdout, "ERROR %s: %s\n", path, err.msg);
                n_bad++;
            }
            mf_problem_free(&pb);
            continue;
        }
        if (v.unsupported) {
            n_unsup++;
            fprintf(stdout, "UNSUPPORTED %s (%s): %s%s\n", path, desc, v.unsupported_reason,
                    expect >= 0          ? " (expected: --expect-unsupported)"
                    : a.fail_unsupported ? " (a failure: --fail-unsupported, not expected)"
                                         : "");
            if (expect < 0 && a.fail_unsupported) n_unsup_unexpected++;
        } else if (expect >= 0) {
            /* the kernel ran a case the test says it refuses: its verdict still counts */
            n_not_refused++;
            fprintf(stdout,
                    "NOT REFUSED %s (%s): named by --expect-unsupported, but the kernel ran it\n",
                    path, desc);
            if (v.pass) {
                n_pass++;
            } else {
                n_fail++;
                fprintf(stdout, "FAIL %s (%s)\n", path, desc);
                mf_verdict_print(&v, stdout);
            }
        } else if (v.pass) {
            n_pass++;
            fprintf(stdout, "PASS %s (%s) max util %.3g\n", path, desc, v.max_util_out);
            if (!a.quiet) mf_verdict_print(&v, stdout);
        } else {
            n_fail++;
            fprintf(stdout, "FAIL %s (%s)\n", path, desc);
            mf_verdict_print(&v, stdout);
        }
        if (!v.unsupported && v.max_util_out > max_util && v.pass) {
            max_util = v.max_util_out;
            snprintf(max_util_case, sizeof max_util_case, "%s", path);
        }
        if (!v.pass && !a.quiet) {
            mf_case_print_text(&c, stdout);
            if (!(model && paths.n == 0)) {
                char rerun[2048];
                format_rerun(&a, path, rerun, sizeof rerun);
                fprintf(stdout, "rerun: %s\n", rerun);
            }
        }
        mf_problem_free(&pb);
    }
    double secs = mf_now_s() - t_start;
    char crashes[64] = "";
    if (n_crash) snprintf(crashes, sizeof crashes, "%d crashed or timed out, ", n_crash);
    char bad_paths[64] = "";
    if (bad_input) snprintf(bad_paths, sizeof bad_paths, " (and %d unreadable or empty path%s)",
                            bad_input, bad_input == 1 ? "" : "s");
    fprintf(stdout,
            "\nmoefuzz check: %d case%s against backend %s (contract %s): %d passed, %d failed, "
            "%s%d unsupported, %d bad input%s; max utilisation of a passing case %.3g%s%s; "
            "%.2f s\n",
            total, total == 1 ? "" : "s", a.backend, b.contract.name, n_pass, n_fail, crashes,
            n_unsup, n_bad, bad_paths, max_util, max_util_case[0] ? " in " : "", max_util_case,
            secs);
    if (n_crash) fprintf(stdout, "crashing and hanging cases saved under %s/\n", a.save_dir);
    if (a.fail_unsupported)
        fprintf(stdout,
                "--fail-unsupported: %d unsupported case(s) not expected, %d of %d "
                "--expect-unsupported case(s) refused, %d run\n",
                n_unsup_unexpected, n_unsup - n_unsup_unexpected, a.expect_unsup.n, n_not_refused);
    int expect_missing = 0;
    for (int j = 0; j < a.expect_unsup.n; j++)
        if (!expect_seen[j]) {
            fprintf(stderr,
                    "moefuzz check: --expect-unsupported %s names none of the cases checked\n",
                    a.expect_unsup.v[j]);
            expect_missing = 1;
        }
    free(expect_seen);
    mf_paths_free(&paths);
    mf_backend_close(&b);
    if (bad_input || n_bad || expect_missing) return MF_EXIT_BAD_INPUT;
    int failed = n_fail || n_crash || n_unsup_unexpected || n_not_refused;
    return failed ? MF_EXIT_MISMATCH : MF_EXIT_PASS;
}

int mf_cmd_check(int argc, char **argv) {
    check_args a;
    int rc = parse_check_args(argc, argv, &a) == 0 ? check_run(a) : MF_EXIT_BAD_INPUT;
    free(a.expect_unsup.v);
    free(a.paths.v);
    return rc;
}

/* ---- explain ---- */

static const char *cls_name(int c) {
    return c == MF_ROUTE_IN ? "in" : c == MF_ROUTE_OUT ? "out" : "AMBIGUOUS";
}

static void explain_routing(const mf_problem *pb, const mf_contract *con, int ntok) {
    const mf_moe_params *p = &pb->p;
    mf_routing rt;
    mf_error err;
    if (mf_ref_route(p, &pb->t, con, &rt, &err) != MF_OK) {
        printf("routing: %s\n", err.msg);
        return;
    }
    int E = p->E, k = p->top_k, NG = p->n_group;
    int *ord = malloc(sizeof *ord * (size_t)(E > NG ? E : NG));
    for (int t = 0; t < p->T && t < ntok; t++) {
        size_t o = (size_t)t * E;
        int given = p->preroute != MF_PREROUTE_NONE;
        if (given)
            printf("\ntoken %d: pre-routed (topk_ids_in, topk_weights_in %s): no router\n", t,
                   mf_enum_name(&mf_enum_preroute, p->preroute));
        else
            printf("\ntoken %d: %d ambiguous experts, %d ambiguous groups%s\n", t,
                   rt.n_ambiguous[t], rt.n_group_ambiguous[t],
                   rt.invariant_only[t] ? " (NaN/Inf logits: invariants only)" : "");
        if (rt.invariant_only[t]) continue;
        if (NG > 1 && !given) {
            mf_ref_rank(rt.g_key + (size_t)t * NG, NG, ord);
            printf("  groups (rule %s, keep %d of %d):\n", mf_group_rule_name(p->group_rule),
                   p->topk_group, NG);
            for (int i = 0; i < NG && i < p->topk_group + 3; i++) {
                size_t gi = (size_t)t * NG + ord[i];
                printf("    group %3d  score %-14.9g in [%.9g, %.9g]  %s\n", ord[i],
                       rt.g_key[gi], rt.g_lo[gi], rt.g_hi[gi], cls_name(rt.g_cls[gi]));
            }
        }
        if (!given) {
            mf_ref_rank(rt.key + o, E, ord);
            printf("  experts by exact key (showing top %d):\n", k + 4 < E ? k + 4 : E);
        }
        for (int i = 0; i < E && i < k + 4 && !given; i++) {
            int e = ord[i];
            printf("    expert %4d  logit %-12.7g score %-12.7g key %-14.9g in [%.9g, %.9g]  %s%s\n",
                   e, (double)pb->logits[(size_t)t * E + e], rt.s_hi[o + e], rt.key[o + e],
                   rt.key_lo[o + e], rt.key_hi[o + e], cls_name(rt.cls[o + e]),
                   rt.tie[o + e] != e ? " (ties bit-identically with a lower index)" : "");
        }
        mf_weights w;
        const int32_t *ids = (const int32_t *)&rt.ref_ids[(size_t)t * k];
        if (mf_ref_weights(&rt, p, con, t, ids, &w, &err) == MF_OK) {
            printf("  %s%s:\n", given ? "given selection and weights" : "exact selection and weights",
                   p->rsf_site == MF_RSF_OUTPUT ? " (rsf applied to output)"
                   : given                      ? " (as given: rsf at the weights site unused)"
                                                : " (rsf included)");
            for (int i = 0; i < k; i++)
                printf("    slot %2d  expert %4d%s  w = %-14.9g admissible [%.9g, %.9g]\n", i,
                       ids[i], mf_is_local(p, pb->t.expert_map, ids[i]) ? "" : " (not local)",
                       w.w_hi[i], w.lo[i], w.hi[i]);
        }
    }
    free(ord);
    mf_routing_free(&rt);
}

int mf_cmd_explain(int argc, char **argv) {
    explain_args a = {.backend = "cpu", .ntok = 2};
    mf_opt t[MF_OPTS_MAX];
    mf_opt_list args;
    int ok = mf_opts_parse_n("explain", t, explain_table(&a, t), argc, argv, &args, 1, 1,
                             "exactly one case file") == 0;
    const char *path = ok ? args.v[0] : NULL;
    free(args.v);
    if (!ok) return MF_EXIT_BAD_INPUT;
    const char *backend = a.backend;
    int ntok = a.ntok, raw = a.raw;
    mf_error err = {0};
    mf_case c;
    mf_problem pb;
    mf_prep prep;
    mf_prep_default(&prep);
    if (mf_prep_load(&prep, path, raw, &c, &pb, &err) != MF_OK) {
        fprintf(stderr, "moefuzz explain: %s\n", err.msg);
        return MF_EXIT_BAD_INPUT;
    }
    mf_case_print_text(&c, stdout);
    printf("\n# tensors %.2f MiB; reference work %.3g multiply-adds\n",
           mf_case_bytes(&c) / 1048576.0, mf_case_work(&c));
    mf_backend b;
    int rc = MF_EXIT_PASS;
    if (mf_backend_open(backend, &b, &err) != MF_OK) {
        fprintf(stderr, "moefuzz explain: %s\n", err.msg);
        mf_problem_free(&pb);
        return MF_EXIT_BAD_INPUT;
    }
    printf("# contract %s: %s\n", b.contract.name, b.contract.summary);
    explain_routing(&pb, &b.contract, ntok);
    mf_check_opts o;
    mf_check_opts_default(&o);
    o.metamorphic = 1;
    mf_verdict v;
    printf("\nbackend %s:\n", backend);
    if (mf_check_problem(&pb, &b, &o, &v, &err) != MF_OK) {
        printf("  error: %s\n", err.msg);
        rc = MF_EXIT_BAD_INPUT;
    } else {
        printf("  %s\n", v.unsupported ? "UNSUPPORTED" : v.pass ? "PASS" : "FAIL");
        mf_verdict_print(&v, stdout);
        unsigned obs = 0;
        if (mf_observable_knobs(&pb, &b.contract, &obs, &err) == MF_OK) {
            printf("  observable knobs (a kernel dropping one of these fails this case):");
            for (int kn = 0; kn < MF_KNOB_COUNT; kn++)
                if (obs & (1u << kn)) printf(" %s", mf_knob_name((mf_knob)kn));
            printf("%s\n", obs ? "" : " none");
        }
        rc = v.pass ? MF_EXIT_PASS : MF_EXIT_MISMATCH;
    }
    mf_backend_close(&b);
    mf_problem_free(&pb);
    return rc;
}
