/* cmd_case.c: `moefuzz decode` and `moefuzz encode`. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "options.h"
#include "tool.h"

static int decode_table(int *raw, mf_opt *t) {
    const mf_opt opts[] = {
        {"--raw", NULL, MF_OPT_FLAG, raw, 1,
         .help = "FILE is a raw fuzzer input (crash-*, corpus entries)"},
    };
    _Static_assert(sizeof opts / sizeof opts[0] <= MF_OPTS_MAX, "MF_OPTS_MAX");
    memcpy(t, opts, sizeof opts);
    return (int)(sizeof opts / sizeof opts[0]);
}

static int encode_table(const char **out, mf_opt *t) {
    const mf_opt opts[] = {
        {"-o", NULL, MF_OPT_STR, out, .arg = "OUT",
         .help = "the binary case file (default TEXT with the extension\n.bin)"},
    };
    _Static_assert(sizeof opts / sizeof opts[0] <= MF_OPTS_MAX, "MF_OPTS_MAX");
    memcpy(t, opts, sizeof opts);
    return (int)(sizeof opts / sizeof opts[0]);
}

void mf_help_decode(FILE *f) {
    fprintf(f, "usage: moefuzz decode [--raw] FILE\n\n"
               "Prints a case file as an editable text case. A damaged canonical file\n"
               "(truncated, bad checksum) is refused with exit 2, and so are bytes that are not a\n"
               "canonical case unless --raw says they are a raw fuzzer input (crash-*, corpus\n"
               "entries): every byte string decodes to a valid case.\n\n");
    int raw;
    mf_opt t[MF_OPTS_MAX];
    mf_opts_help(f, t, decode_table(&raw, t));
    fprintf(f, "\nexit: 0 printed, 2 bad input\n");
}

void mf_help_encode(FILE *f) {
    fprintf(f, "usage: moefuzz encode TEXT [-o OUT]\n\n"
               "Writes a text case (key = value lines, see docs/case-format.md) as a canonical\n"
               "binary case (format v%d, with length and checksum). Without -o the output goes\n"
               "next to TEXT with the extension .bin.\n\n",
            MF_CASE_FORMAT_VERSION);
    const char *out;
    mf_opt t[MF_OPTS_MAX];
    mf_opts_help(f, t, encode_table(&out, t));
    fprintf(f, "\nexit: 0 written, 2 bad input\n");
}

int mf_cmd_decode(int argc, char **argv) {
    int raw = 0;
    mf_opt t[MF_OPTS_MAX];
    mf_opt_list args;
    int ok = mf_opts_parse_n("decode", t, decode_table(&raw, t), argc, argv, &args, 1, 1,
                             "exactly one file (and --raw for fuzzer inputs)") == 0;
    const char *path = ok ? args.v[0] : NULL;
    free(args.v);
    if (!ok) return MF_EXIT_BAD_INPUT;
    mf_error err = {0};
    mf_case c;
    const char *kind = "";
    if (mf_case_load(path, raw, &c, &kind, &err) != MF_OK) {
        fprintf(stderr, "moefuzz decode: %s\n", err.msg);
        return MF_EXIT_BAD_INPUT;
    }
    if (!strcmp(kind, "raw")) printf("# decoded from raw fuzz input %s\n", path);
    mf_case_print_text(&c, stdout);
    return MF_EXIT_PASS;
}

int mf_cmd_encode(int argc, char **argv) {
    const char *out = NULL;
    mf_opt t[MF_OPTS_MAX];
    mf_opt_list args;
    int ok = mf_opts_parse_n("encode", t, encode_table(&out, t), argc, argv, &args, 1, 1,
                             "one text case") == 0;
    const char *in = ok ? args.v[0] : NULL;
    free(args.v);
    if (!ok) return MF_EXIT_BAD_INPUT;
    mf_error err = {0};
    uint8_t *text;
    size_t n;
    if (mf_read_file(in, &text, &n, 1u << 20, &err) != MF_OK) {
        fprintf(stderr, "moefuzz encode: %s\n", err.msg);
        return MF_EXIT_BAD_INPUT;
    }
    mf_case c;
    mf_status st = mf_case_parse_text((const char *)text, &c, &err);
    free(text);
    if (st != MF_OK) {
        fprintf(stderr, "moefuzz encode: %s: %s\n", in, err.msg);
        return MF_EXIT_BAD_INPUT;
    }
    uint8_t buf[MF_CASE_MAX_BYTES];
    size_t len = mf_case_encode(&c, 1, buf, sizeof buf);
    if (len == 0) {
        fprintf(stderr,
                "moefuzz encode: %s: cannot encode: the binary formats carry T <= %d, H <= %d, "
                "I <= %d and E <= %d; keep this case as text\n",
                in, MF_V1_MAX_T, MF_V1_MAX_H, MF_V1_MAX_I, MF_V1_MAX_E);
        return MF_EXIT_BAD_INPUT;
    }
    char def[4096];
    if (!out) {
        snprintf(def, sizeof def, "%s", in);
        char *dot = strrchr(def, '.');
        char *slash = strrchr(def, '/');
        if (dot && (!slash || dot > slash)) *dot = '\0';
        strncat(def, ".bin", sizeof def - strlen(def) - 1);
        out = def;
    }
    FILE *f = fopen(out, "wb");
    if (!f || fwrite(buf, 1, len, f) != len || fclose(f) != 0) {
        fprintf(stderr, "moefuzz encode: cannot write %s\n", out);
        return MF_EXIT_BAD_INPUT;
    }
    fprintf(stderr, "wrote %s (%zu bytes)\n", out, len);
    return MF_EXIT_PASS;
}
