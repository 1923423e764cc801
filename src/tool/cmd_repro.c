/* cmd_repro.c: `moefuzz repro`: replays a failing input (a libFuzzer artifact, a corpus entry or
 * a case file) exactly as the fuzz target ran it, prints the diagnosis, the case as text and the
 * command to rerun it, and can save it as a regression case under corpus/regress/. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "fuzz.h"
#include "tool.h"

void mf_help_repro(FILE *f) {
    fprintf(f,
            "usage: moefuzz repro [--backend NAME] [--model NAME] [--full] [--method NAME]\n"
            "                     [--save NAME] FILE\n\n"
            "Replays FILE as fuzz_moe would (raw bytes, canonical binary or text; the model's\n"
            "routing applied with --model), then prints the diagnosis, the case as text, and\n"
            "the exact commands that rerun it. --save NAME writes the case as text to\n"
            "corpus/regress/NAME.txt, named for what it caught, so ctest replays it forever.\n"
            "exit: 1 the failure reproduces, 0 it does not, 2 bad input\n");
}

int mf_cmd_repro(int argc, char **argv) {
    const char *file = NULL, *save = NULL, *backend = NULL, *model = NULL;
    int full = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--backend") && i + 1 < argc) backend = argv[++i];
        else if (!strcmp(argv[i], "--model") && i + 1 < argc) model = argv[++i];
        else if (!strcmp(argv[i], "--method") && i + 1 < argc)
            setenv("MOEFUZZ_METHOD", argv[++i], 1);
        else if (!strcmp(argv[i], "--full")) full = 1;
        else if (!strcmp(argv[i], "--save") && i + 1 < argc) save = argv[++i];
        else if (!file && argv[i][0] != '-') file = argv[i];
        else {
            fprintf(stderr, "moefuzz repro: unexpected '%s'\n", argv[i]);
            return MF_EXIT_BAD_INPUT;
        }
    }
    if (!file) {
        fprintf(stderr, "moefuzz repro: give a file\n");
        return MF_EXIT_BAD_INPUT;
    }
    if (model) setenv("MOEFUZZ_MODEL", model, 1);
    if (full) setenv("MOEFUZZ_FULL", "1", 1);
    mf_error err = {0};
    uint8_t *d;
    size_t n;
    if (mf_read_file(file, &d, &n, 1u << 20, &err) != MF_OK) {
        fprintf(stderr, "moefuzz repro: %s\n", err.msg);
        return MF_EXIT_BAD_INPUT;
    }
    /* text and canonical cases run as their canonical encoding; anything else as raw bytes */
    mf_case c;
    const char *kind = "raw";
    if (mf_case_load(file, 1, &c, &kind, &err) != MF_OK) {
        fprintf(stderr, "moefuzz repro: %s\n", err.msg);
        free(d);
        return MF_EXIT_BAD_INPUT;
    }
    uint8_t buf[MF_CASE_MAX_BYTES];
    const uint8_t *input = d;
    size_t len = n;
    if (!strcmp(kind, "text")) {
        len = mf_case_encode(&c, 0, buf, sizeof buf);
        input = buf;
    }
    mf_fuzz_config cfg;
    mf_fuzz_config_from_env(&cfg, backend ? backend : "cpu");
    if (model && !cfg.model) {
        fprintf(stderr, "moefuzz repro: unknown model '%s'\n", model);
        free(d);
        return MF_EXIT_BAD_INPUT;
    }
    cfg.stats_dir[0] = '\0';
    cfg.lim = (mf_case_limits){MF_MAX_T, MF_MAX_H, MF_MAX_I, MF_MAX_E, 1e30, 64e9}; /* no budget */
    cfg.meta_every = 1; /* the relations run on a replay whatever share the campaign used */
    mf_fuzz *f = mf_fuzz_new(&cfg);
    mf_fuzz_result *r = malloc(sizeof *r);
    if (!f || !r) {
        free(d);
        return MF_EXIT_BAD_INPUT;
    }
    mf_fuzz_outcome o = mf_fuzz_one(f, input, len, r);
    int rc;
    printf("# %s (%s input, %zu bytes)\n", file, kind, n);
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
    printf("\nrerun:\n  moefuzz repro%s%s%s%s%s %s\n", backend ? " --backend " : "",
           backend ? backend : "", model ? " --model " : "", model ? model : "",
           full ? " --full" : "", file);
    printf("  MOEFUZZ_BACKEND=%s%s%s%s fuzz_moe %s\n", cfg.backend, model ? " MOEFUZZ_MODEL=" : "",
           model ? model : "", full ? " MOEFUZZ_FULL=1" : "", file);
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
    free(d);
    return rc;
}
