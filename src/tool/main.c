/* main.c: the moefuzz command-line tool.
 *
 *   moefuzz check CASE...        verdict of a kernel against the exact reference
 *   moefuzz explain CASE         parameters, routing table, worst elements per stage
 *   moefuzz decode FILE          binary case -> text
 *   moefuzz encode TEXT -o OUT   text case -> canonical binary
 *   moefuzz bench reference      speed of the exact reference
 * `moefuzz COMMAND --help` describes each. Exit codes: 0 pass, 1 mismatch, 2 bad input.
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "codec.h"
#include "tool.h"

static const mf_command commands[] = {
    {"check", "check a kernel against the exact reference on case files", mf_cmd_check,
     mf_help_check},
    {"explain", "show a case: parameters, routing with key intervals, worst elements",
     mf_cmd_explain, mf_help_explain},
    {"decode", "print a binary case file as an editable text case", mf_cmd_decode,
     mf_help_decode},
    {"encode", "write a text case as a canonical binary case file", mf_cmd_encode,
     mf_help_encode},
    {"bench", "benchmarks: `bench reference` (the exact reference)", mf_cmd_bench,
     mf_help_bench},
};

int mf_is_help(const char *a) { return !strcmp(a, "-h") || !strcmp(a, "--help"); }

static void usage(FILE *f) {
    fprintf(f, "moefuzz: find wrong answers in fused MoE kernels against an exact reference\n\n"
               "usage: moefuzz COMMAND [ARGS]\n\ncommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].summary);
    fprintf(f, "\n`moefuzz COMMAND --help` for details. Exit codes: 0 pass, 1 mismatch, 2 bad "
               "input.\n");
}

int main(int argc, char **argv) {
    if (argc < 2) {
        usage(stderr);
        return MF_EXIT_BAD_INPUT;
    }
    if (mf_is_help(argv[1]) || !strcmp(argv[1], "help")) {
        if (argc > 2)
            for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
                if (!strcmp(argv[2], commands[i].name)) {
                    commands[i].help(stdout);
                    return 0;
                }
        usage(stdout);
        return 0;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
        if (strcmp(argv[1], commands[i].name)) continue;
        for (int a = 2; a < argc; a++)
            if (mf_is_help(argv[a])) {
                commands[i].help(stdout);
                return 0;
            }
        return commands[i].main(argc - 1, argv + 1);
    }
    fprintf(stderr, "moefuzz: unknown command '%s'\n\n", argv[1]);
    usage(stderr);
    return MF_EXIT_BAD_INPUT;
}

/* ---- shared helpers ---- */

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static mf_status push_path(mf_path_list *l, const char *p, mf_error *err) {
    if (l->n == l->cap) {
        int cap = l->cap ? 2 * l->cap : 16;
        char **np = realloc(l->paths, sizeof(char *) * (size_t)cap);
        if (!np) return MF_FAIL(err, MF_ENOMEM, "out of memory");
        l->paths = np;
        l->cap = cap;
    }
    l->paths[l->n] = strdup(p);
    if (!l->paths[l->n]) return MF_FAIL(err, MF_ENOMEM, "out of memory");
    l->n++;
    return MF_OK;
}

mf_status mf_paths_collect(const char *path, mf_path_list *l, mf_error *err) {
    struct stat sb;
    if (stat(path, &sb) != 0) return MF_FAIL(err, MF_EIO, "cannot access %s", path);
    if (!S_ISDIR(sb.st_mode)) return push_path(l, path, err);
    DIR *d = opendir(path);
    if (!d) return MF_FAIL(err, MF_EIO, "cannot open directory %s", path);
    mf_path_list sub = {0};
    struct dirent *de;
    mf_status st = MF_OK;
    while ((de = readdir(d)) != NULL && st == MF_OK) {
        if (de->d_name[0] == '.') continue;
        if (strstr(de->d_name, ".md") || strstr(de->d_name, "README")) continue;
        char buf[4096];
        snprintf(buf, sizeof buf, "%s/%s", path, de->d_name);
        st = push_path(&sub, buf, err);
    }
    closedir(d);
    if (st == MF_OK && sub.n > 1) qsort(sub.paths, (size_t)sub.n, sizeof(char *), cmp_str);
    for (int i = 0; i < sub.n && st == MF_OK; i++) st = mf_paths_collect(sub.paths[i], l, err);
    mf_paths_free(&sub);
    return st;
}

void mf_paths_free(mf_path_list *l) {
    for (int i = 0; i < l->n; i++) free(l->paths[i]);
    free(l->paths);
    memset(l, 0, sizeof *l);
}

mf_status mf_tool_load_problem(const char *path, int allow_raw, double max_mib, mf_case *c,
                               mf_problem *pb, mf_error *err) {
    MF_TRY(mf_case_load(path, allow_raw, c, NULL, err));
    double mib = mf_case_bytes(c) / 1048576.0;
    if (mib > max_mib)
        return MF_FAIL(err, MF_EUNSUPPORTED,
                       "%s: the tensors need %.0f MiB, more than the limit of %.0f MiB "
                       "(--max-mib)",
                       path, mib, max_mib);
    MF_TRY(mf_problem_build(c, pb, err));
    return MF_OK;
}
