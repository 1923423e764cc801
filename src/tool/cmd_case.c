/* cmd_case.c: `moefuzz decode` and `moefuzz encode`. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "tool.h"

void mf_help_decode(FILE *f) {
    fprintf(f, "usage: moefuzz decode [--raw] FILE\n\n"
               "Prints a case file as an editable text case. A damaged canonical file\n"
               "(truncated, bad checksum) is refused with exit 2, and so are bytes that are not a\n"
               "canonical case unless --raw says they are a raw fuzzer input (crash-*, corpus\n"
               "entries): every byte string decodes to a valid case.\n");
}

void mf_help_encode(FILE *f) {
    fprintf(f, "usage: moefuzz encode TEXT [-o OUT]\n\n"
               "Writes a text case (key = value lines, see docs/case-format.md) as a canonical\n"
               "binary case (format v%d, with length and checksum). Without -o the output goes\n"
               "next to TEXT with the extension .bin.\n",
            MF_CASE_FORMAT_VERSION);
}

int mf_cmd_decode(int argc, char **argv) {
    int raw = argc == 3 && !strcmp(argv[1], "--raw");
    if (argc != 2 + raw) {
        fprintf(stderr, "moefuzz decode: give exactly one file (and --raw for fuzzer inputs)\n");
        return MF_EXIT_BAD_INPUT;
    }
    const char *path = argv[1 + raw];
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
    const char *in = NULL, *out = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-o") && i + 1 < argc) out = argv[++i];
        else if (!in) in = argv[i];
        else {
            fprintf(stderr, "moefuzz encode: unexpected argument '%s'\n", argv[i]);
            return MF_EXIT_BAD_INPUT;
        }
    }
    if (!in) {
        fprintf(stderr, "moefuzz encode: give a text case\n");
        return MF_EXIT_BAD_INPUT;
    }
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
        fprintf(stderr, "moefuzz encode: %s: cannot encode\n", in);
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
