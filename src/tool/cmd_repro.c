/* cmd_repro.c: `moefuzz repro`: replays a failing input (a libFuzzer artifact, a corpus entry or
 * a case file) exactly as the fuzz target ran it, prints the diagnosis, the case as text and the
 * command to rerun it, and can save it as a regression case under corpus/regress/. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "fuzz.h"
#include "options.h"
#include "tool.h"

typedef struct repro_args {
    const char *save, *backend, *model, *method, *contract;
    int full, raw;
} repro_args;

static int repro_table(repro_args *a, mf_opt *t) {
    const mf_opt opts[] = {
        {"--backend", NULL, MF_OPT_STR, &a->backend, .arg = "NAME",
         .help = "the kernel (default: the campaign's, else cpu)"},
        {"--model", NULL, MF_OPT_STR, &a->model, .arg = "NAME",
         .help = "the model preset of the campaign (moefuzz models)"},
        {"--full", NULL, MF_OPT_FLAG, &a->full, 1, .help = "with --model: the model's full sizes"},
        {"--method", NULL, MF_OPT_STR, &a->method, .arg = "NAME",
         .help = "the routing method (moefuzz methods)"},
        {"--contract", NULL, MF_OPT_STR, &a->contract, .arg = "NAME",
         .help = "check against this contract instead of the kernel's own"},
        {"--raw", NULL, MF_OPT_FLAG, &a->raw, 1,
         .help = "FILE's bytes are a fuzzer input whatever they look like"},
        {"--save", NULL, MF_OPT_STR, &a->save, .arg = "NAME",
         .help = "write the case as text to corpus/regress/NAME.txt"},
    };
    _Static_assert(sizeof opts / sizeof opts[0] <= MF_OPTS_MAX, "MF_OPTS_MAX");
    memcpy(t, opts, sizeof opts);
    return (int)(sizeof opts / sizeof opts[0]);
}

void mf_help_repro(FILE *f) {
    fprintf(f,
            "usage: moefuzz repro [options] FILE\n\n"
            "Replays FILE as fuzz_moe would, every metamorphic relation included, then prints\n"
            "the diagnosis, the case as text, and the exact commands that rerun it. FILE is a\n"
            "text case if its name ends in .txt, a canonical binary case, or else the raw bytes\n"
            "a fuzzer ran (--raw: always). The backend, model, method and contract come from\n"
            "the campaign.txt of FILE's work dir (moefuzz fuzz) unless given. --save NAME\n"
            "writes the case as text to corpus/regress/NAME.txt, named for what it caught, so\n"
            "ctest replays it forever.\n\n");
    repro_args a;
    mf_opt t[MF_OPTS_MAX];
    mf_opts_help(f, t, repro_table(&a, t));
    fprintf(f, "\nexit: 1 the failure reproduces, 0 it does not, 2 bad input\n");
}

/* " --opt VALUE" with VALUE shell-quoted, appended to out */
static void add_opt(char *out, size_t n, const char *opt, const char *value) {
    if (!value) return;
    char q[1200];
    size_t u = strlen(out);
    mf_shell_quote(value, q, sizeof q);
    snprintf(out + u, n - u, " %s %s", opt, q);
}

int mf_cmd_repro(int argc, char **argv) {
    repro_args a = {0};
    mf_opt t[MF_OPTS_MAX];
    mf_opt_list args;
    int ok =
        mf_opts_parse_n("repro", t, repro_table(&a, t), argc, argv, &args, 1, 1, "one file") == 0;
    const char *file = ok ? args.v[0] : NULL;
    free(args.v);
    if (!ok) return MF_EXIT_BAD_INPUT;
    const char *save = a.save, *backend = a.backend, *model = a.model, *method = a.method,
               *contract = a.contract;
    int full = a.full, raw = a.raw;
    if (backend) setenv("MOEFUZZ_BACKEND", backend, 1);
    if (model) setenv("MOEFUZZ_MODEL", model, 1);
    if (full) setenv("MOEFUZZ_FULL", "1", 1);
    if (method) setenv("MOEFUZZ_METHOD", method, 1);
    if (contract) setenv("MOEFUZZ_CONTRACT", contract, 1);
    mf_error err = {0};
    mf_fuzz_campaign camp;
    char dir[1024];
    int used = mf_fuzz_campaign_use(file, &camp, dir, sizeof dir, &err);
    if (used < 0) {
        fprintf(stderr, "moefuzz repro: %s\n", err.msg);
        return MF_EXIT_BAD_INPUT;
    }
    mf_fuzz_input in;
    if (mf_fuzz_input_load(file, raw, &in, &err) != MF_OK) {
        fprintf(stderr, "moefuzz repro: %s\n", err.msg);
        return MF_EXIT_BAD_INPUT;
    }
    mf_fuzz_config cfg;
    mf_fuzz_config_from_env(&cfg, "cpu");
    const char *m = getenv("MOEFUZZ_MODEL");
    if (m && *m && !cfg.model) {
        fprintf(stderr, "moefuzz repro: unknown model '%s' (moefuzz models)\n", m);
        mf_fuzz_input_free(&in);
        return MF_EXIT_BAD_INPUT;
    }
    cfg.stats_dir[0] = '\0';
    mf_fuzz_config_no_budget(&cfg);
    cfg.meta_every = 1; /* the relations run on a replay whatever share the campaign used */
    mf_fuzz *f = mf_fuzz_new(&cfg);
    mf_fuzz_result *r = malloc(sizeof *r);
    if (!f || !r) {
        free(r);
        mf_fuzz_free(f);
        mf_fuzz_input_free(&in);
        return MF_EXIT_BAD_INPUT;
    }
    mf_fuzz_outcome o = mf_fuzz_one(f, in.bytes, in.len, r);
    int rc;
    if (used)
        printf("# campaign settings from %s/%s (options override them)\n", dir,
               MF_FUZZ_CAMPAIGN_FILE);
    printf("# %s (%s input, %zu bytes)\n", file, mf_fuzz_input_kind_name(in.kind), in.file_len);
    if (in.printable)
        printf(
            "# note: its bytes read as text, but without a .txt name they are a fuzzer input, "
            "run as such (name it .txt to replay it as a text case)\n");
    if (o == MF_FUZZ_PASS) {
        printf("PASS: the failure does not reproduce on backend %s\n", cfg.backend);
        mf_case_print_text(&r->c, stdout);
        mf_verdict_print(&r->v, stdout);
        rc = MF_EXIT_PASS;
    } else if (o == MF_FUZZ_SKIP) {
        printf("SKIPPED: %s\n", r->v.unsupported ? r->v.unsupported_reason : "over budget");
        rc = MF_EXIT_PASS;
    } else {
        mf_fuzz_report(r, cfg.backend, stdout);
        rc = o == MF_FUZZ_FAIL ? MF_EXIT_MISMATCH : MF_EXIT_BAD_INPUT;
    }
    /* the rerun commands name every setting in force, quoted for the shell */
    const char *e_model = getenv("MOEFUZZ_MODEL"), *e_method = getenv("MOEFUZZ_METHOD"),
               *e_contract = getenv("MOEFUZZ_CONTRACT");
    char cmd[4096] = "moefuzz repro", q[1200];
    if (raw) strcat(cmd, " --raw");
    add_opt(cmd, sizeof cmd, "--backend", cfg.backend);
    add_opt(cmd, sizeof cmd, "--model", e_model && *e_model ? e_model : NULL);
    if (cfg.full) strcat(cmd, " --full");
    add_opt(cmd, sizeof cmd, "--method", e_method && *e_method ? e_method : NULL);
    add_opt(cmd, sizeof cmd, "--contract", e_contract && *e_contract ? e_contract : NULL);
    mf_shell_quote(file, q, sizeof q);
    printf("\nrerun:\n  %s %s\n", cmd, q);
    if (in.kind != MF_FUZZ_INPUT_TEXT) {
        /* the target itself runs the file's bytes; a text case it would not read */
        char env[3000];
        mf_shell_quote(cfg.backend, env, sizeof env);
        printf("  MOEFUZZ_BACKEND=%s", env);
        const char *names[] = {"MOEFUZZ_MODEL", "MOEFUZZ_METHOD", "MOEFUZZ_CONTRACT"};
        const char *vals[] = {e_model, e_method, e_contract};
        for (int k = 0; k < 3; k++)
            if (vals[k] && *vals[k]) {
                mf_shell_quote(vals[k], env, sizeof env);
                printf(" %s=%s", names[k], env);
            }
        printf("%s MOEFUZZ_NO_BUDGET=1 MOEFUZZ_META_EVERY=1 fuzz_moe %s\n",
               cfg.full ? " MOEFUZZ_FULL=1" : "", q);
    }
    if (save) {
        char path[1200];
        const char *root = getenv("MOEFUZZ_SOURCE_DIR");
        snprintf(path, sizeof path, "%s/corpus/regress/%s.txt", root ? root : MF_SOURCE_DIR, save);
        FILE *out = fopen(path, "w");
        if (!out) {
            fprintf(stderr, "moefuzz repro: cannot write %s\n", path);
            rc = MF_EXIT_BAD_INPUT;
        } else {
            const char *base = strrchr(file, '/');
            /* the first line marks a case above ABI level 1 (docs/case-format.md) */
            if (mf_case_format(&r->c) == 2) fprintf(out, "# format v2\n");
            fprintf(out, "# regression: %s (from %s, backend %s)\n", save, base ? base + 1 : file,
                    cfg.backend);
            if (o == MF_FUZZ_FAIL)
                for (int s = 0; s < MF_STAGE_COUNT; s++)
                    if (r->v.n_bad[s]) {
                        fprintf(out, "# caught: %llu mismatches at stage %s\n", r->v.n_bad[s],
                                mf_stage_name((mf_stage)s));
                        break;
                    }
            mf_case_print_text(&r->c, out);
            fclose(out);
            printf("saved %s\n", path);
        }
    }
    free(r);
    mf_fuzz_free(f);
    mf_fuzz_input_free(&in);
    return rc;
}
