/* options.c: option tables, their parser and their --help (see options.h). */
#include "options.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static const mf_opt *find(const mf_opt *opts, int n, const char *a) {
    for (int i = 0; i < n; i++)
        if (!strcmp(a, opts[i].name) || (opts[i].alias && !strcmp(a, opts[i].alias)))
            return &opts[i];
    return NULL;
}

/* 1 if all of s is a whole number (into *u, or *v when u is NULL), else 0. */
static int parse_whole(const char *s, int base, unsigned long long *u, long long *v) {
    char *end;
    errno = 0;
    if (isspace((unsigned char)s[0])) return 0;
    if (u) {
        if (s[0] == '-' || s[0] == '+') return 0;
        *u = strtoull(s, &end, base);
    } else {
        *v = strtoll(s, &end, base);
    }
    return s[0] && !*end && end != s && errno == 0;
}

/* "90", "90s", "10m", "8h", "1d" -> seconds above 0; anything else -> -1. */
static double parse_secs(const char *s) {
    if (!isdigit((unsigned char)s[0]) && s[0] != '.') return -1;
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || errno || !isfinite(v) || !(v > 0)) return -1;
    double unit = 1;
    if (*end == 's')
        end++;
    else if (*end == 'm')
        unit = 60, end++;
    else if (*end == 'h')
        unit = 3600, end++;
    else if (*end == 'd')
        unit = 86400, end++;
    return *end || !isfinite(v * unit) ? -1 : v * unit;
}

/* The message of a whole number out of [min, max] or malformed; a max beyond what a double
 * holds exactly (LONG_MAX) is no limit worth naming. */
static void whole_error(const char *cmd, const mf_opt *o, const char *v) {
    if (o->max >= 0x1p53)
        fprintf(stderr, "moefuzz %s: %s '%s': give a whole number from %.0f\n", cmd, o->name, v,
                o->min);
    else
        fprintf(stderr, "moefuzz %s: %s '%s': give a whole number from %.0f to %.0f\n", cmd,
                o->name, v, o->min, o->max);
}

static int set_value(const char *cmd, const mf_opt *o, const char *v) {
    switch (o->kind) {
    case MF_OPT_STR:
        *(const char **)o->target = v;
        return 0;
    case MF_OPT_LIST: {
        mf_opt_list *l = o->target;
        l->v[l->n++] = v;
        return 0;
    }
    case MF_OPT_INT:
    case MF_OPT_LONG: {
        long long n;
        if (!parse_whole(v, 10, NULL, &n) || n < o->min || n > o->max) {
            whole_error(cmd, o, v);
            return -1;
        }
        if (o->kind == MF_OPT_INT)
            *(int *)o->target = (int)n;
        else
            *(long *)o->target = (long)n;
        return 0;
    }
    case MF_OPT_SECS: {
        double d = parse_secs(v);
        if (d <= 0) {
            fprintf(stderr,
                    "moefuzz %s: %s '%s': give a duration above 0 such as 90, 90s, 10m, 8h or "
                    "1d\n",
                    cmd, o->name, v);
            return -1;
        }
        *(double *)o->target = d;
        return 0;
    }
    case MF_OPT_U64: {
        unsigned long long n;
        if (!parse_whole(v, 0, &n, NULL)) {
            fprintf(stderr, "moefuzz %s: %s '%s': give a whole number (0x... too)\n", cmd, o->name,
                    v);
            return -1;
        }
        *(unsigned long long *)o->target = n;
        return 0;
    }
    case MF_OPT_NUM: {
        char *end;
        errno = 0;
        double d = strtod(v, &end);
        if (!v[0] || isspace((unsigned char)v[0]) || *end || errno || !isfinite(d) || d < o->min ||
            d > o->max || (o->above && d <= o->min)) {
            if (o->max < 1e300)
                fprintf(stderr, "moefuzz %s: %s '%s': give a number from %g to %g\n", cmd, o->name,
                        v, o->min, o->max);
            else
                fprintf(stderr, "moefuzz %s: %s '%s': give a number %s %g\n", cmd, o->name, v,
                        o->above ? "above" : "from", o->min);
            return -1;
        }
        *(double *)o->target = d;
        return 0;
    }
    case MF_OPT_FLAG:
        break;
    }
    return -1;
}

int mf_opts_parse(const char *cmd, const mf_opt *opts, int n_opts, int argc, char **argv,
                  mf_opt_list *pos) {
    int only_args = 0;
    pos->n_before_end = -1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (only_args || a[0] != '-' || !a[1]) {
            pos->v[pos->n++] = a;
            continue;
        }
        if (!strcmp(a, "--")) {
            only_args = 1;
            pos->n_before_end = pos->n;
            continue;
        }
        const mf_opt *o = find(opts, n_opts, a);
        if (!o) {
            fprintf(stderr, "moefuzz %s: unknown or incomplete option '%s' (moefuzz %s --help)\n",
                    cmd, a, cmd);
            return -1;
        }
        if (o->kind == MF_OPT_FLAG) {
            *(int *)o->target = o->value;
            continue;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "moefuzz %s: unknown or incomplete option '%s': it needs a value %s\n",
                    cmd, a, o->arg ? o->arg : "");
            return -1;
        }
        if (set_value(cmd, o, argv[++i]) != 0) return -1;
    }
    return 0;
}

int mf_opts_parse_n(const char *cmd, const mf_opt *opts, int n_opts, int argc, char **argv,
                    mf_opt_list *pos, int min_args, int max_args, const char *what) {
    pos->n = 0;
    pos->v = calloc((size_t)argc + 1, sizeof(char *));
    if (!pos->v) {
        fprintf(stderr, "moefuzz %s: out of memory\n", cmd);
        return -1;
    }
    if (mf_opts_parse(cmd, opts, n_opts, argc, argv, pos) != 0) return -1;
    if (pos->n >= min_args && pos->n <= max_args) return 0;
    if (max_args == 0)
        fprintf(stderr, "moefuzz %s: takes no arguments, not '%s' (moefuzz %s --help)\n", cmd,
                pos->v[0], cmd);
    else if (pos->n > max_args)
        fprintf(stderr, "moefuzz %s: unexpected argument '%s': give %s (moefuzz %s --help)\n", cmd,
                pos->v[max_args], what, cmd);
    else
        fprintf(stderr, "moefuzz %s: give %s (moefuzz %s --help)\n", cmd, what, cmd);
    return -1;
}

void mf_opt_print_text(FILE *f, int width, const char *left, const char *help) {
    int wide = (int)strlen(left) > width;
    fprintf(f, "  %-*s", width, left);
    if (wide) fprintf(f, "\n  %-*s", width, "");
    for (const char *p = help; *p;) {
        const char *nl = strchr(p, '\n');
        int len = nl ? (int)(nl - p) : (int)strlen(p);
        fprintf(f, " %.*s\n", len, p);
        if (!nl) break;
        p = nl + 1;
        fprintf(f, "  %-*s", width, "");
    }
}

void mf_opts_help(FILE *f, const mf_opt *opts, int n_opts) {
    fprintf(f, "options:\n");
    for (int i = 0; i < n_opts; i++) {
        const mf_opt *o = &opts[i];
        char left[80];
        snprintf(left, sizeof left, "%s%s%s%s%s", o->alias ? o->alias : "", o->alias ? ", " : "",
                 o->name, o->arg ? " " : "", o->arg ? o->arg : "");
        mf_opt_print_text(f, 18, left, o->help);
    }
}
