/* options.h: one option table per command (name, kind, target, help): the parser and the
 * options section of --help both read it. Options may come before or after the other
 * arguments; "--" ends them; an unknown option or a malformed number is bad input. */
#ifndef MF_TOOL_OPTIONS_H
#define MF_TOOL_OPTIONS_H

#include <stdio.h>

typedef enum mf_opt_kind {
    MF_OPT_FLAG, /* no value: *(int *)target = value */
    MF_OPT_STR,  /* *(const char **)target = the value (a pointer into argv) */
    MF_OPT_INT,  /* *(int *)target = a whole number in [min, max] */
    MF_OPT_LONG, /* *(long *)target = a whole number in [min, max] */
    MF_OPT_U64,  /* *(unsigned long long *)target = a whole number (0x... too) */
    MF_OPT_NUM,  /* *(double *)target = a finite number in [min, max] (above min if above) */
    MF_OPT_SECS, /* *(double *)target = a duration above 0 in seconds: 90, 90s, 10m, 8h, 1d */
    MF_OPT_LIST, /* repeatable: the value appended to *(mf_opt_list *)target */
} mf_opt_kind;

typedef struct mf_opt_list {
    const char **v; /* pointers into argv; room for argc entries */
    int n;
    int n_before_end; /* the other arguments: how many came before "--" (-1: no "--") */
} mf_opt_list;

/* Room for a command's table: the builders static-assert that theirs fits. */
#define MF_OPTS_MAX 32

typedef struct mf_opt {
    const char *name;  /* "--backend" */
    const char *alias; /* "-q", or NULL */
    mf_opt_kind kind;
    void *target;
    int value;         /* MF_OPT_FLAG: what it sets */
    double min, max;   /* MF_OPT_INT, MF_OPT_LONG, MF_OPT_NUM */
    int above;         /* MF_OPT_NUM: the value must exceed min */
    const char *arg;   /* the value's name in --help: "N", "NAME" */
    const char *help;  /* its lines, separated by '\n' */
} mf_opt;

/* Parses argv[1..argc): options by the table, other arguments into pos (room for argc).
 * Returns 0, or prints "moefuzz CMD: why" to stderr and returns -1. */
int mf_opts_parse(const char *cmd, const mf_opt *opts, int n_opts, int argc, char **argv,
                  mf_opt_list *pos);

/* mf_opts_parse for a command with at most max_args other arguments (and at least min_args):
 * pos gets room for argc; more or fewer arguments is bad input, `what` names them in the
 * message ("a case file"). Returns 0 or -1 (message printed); free(pos->v) either way. */
int mf_opts_parse_n(const char *cmd, const mf_opt *opts, int n_opts, int argc, char **argv,
                    mf_opt_list *pos, int min_args, int max_args, const char *what);

/* The options section of --help, from the table. */
void mf_opts_help(FILE *f, const mf_opt *opts, int n_opts);

/* One entry of a help list: `left` in a column `width` wide, the help's lines beside it. */
void mf_opt_print_text(FILE *f, int width, const char *left, const char *help);

#endif /* MF_TOOL_OPTIONS_H */
