/* codec.h: case files, binary (the fuzz input format) and text (`key = value`).
 *
 * Binary, format v1 (docs/case-format.md): byte 0 is the format version; the rest is read with
 * mf_fdp: parameters and generators from the end, pokes (9 bytes each) from the front. Every
 * byte string decodes to a valid case: values are clamped into the domain, never rejected. A
 * version byte this build does not know decodes as v1; canonical files (written by
 * mf_case_encode, `moefuzz encode`, regression files) always carry a known version, so they
 * decode the same forever.
 */
#ifndef MF_CODEC_H
#define MF_CODEC_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "case.h"
#include "mf_base.h"

#define MF_CASE_FORMAT_VERSION 2 /* the newest; encode writes the oldest that carries a case */
#define MF_CASE_MAX_BYTES 1024 /* canonical encodings are far smaller */

/* Dimension limits of the frozen v1 binary format (the problem model's, MF_MAX_*, may exceed
 * them: encode refuses such a case) */
#define MF_V1_MAX_T 16384
#define MF_V1_MAX_H 8192
#define MF_V1_MAX_I 4096
#define MF_V1_MAX_E 1024

/* Decodes any byte string. Sets *version to the format version used. Never fails. */
void mf_case_decode(const uint8_t *data, size_t size, mf_case *c, int *version);

/* Binary encoding of a valid case, as v1 when v1 can carry it, else v2; returns bytes written or
 * 0 (invalid case, dimensions beyond the binary formats' (v1's), or cap too small).
 * With `canonical`, a 9-byte header after the version byte ("MFC", total length, CRC-32 of the
 * rest) lets tools reject truncated or corrupted files; fuzz inputs go without it. */
size_t mf_case_encode(const mf_case *c, int canonical, uint8_t *out, size_t cap);

/* How a byte string looks to the tools: a canonical case, a damaged canonical case, or raw bytes
 * (a fuzz input: decodes, but may equally be garbage). */
typedef enum mf_bin_kind { MF_BIN_CANONICAL = 0, MF_BIN_DAMAGED = 1, MF_BIN_RAW = 2 } mf_bin_kind;
/* The binary format version that carries c: 1 when v1 can (every v2 parameter 0, every value
 * within v1's limits and lists), else 2. */
int mf_case_format(const mf_case *c);

mf_bin_kind mf_case_classify(const uint8_t *data, size_t size, char *why, size_t why_len);

/* Text form. Parsing starts from mf_case_default except that a file without E_local means no
 * expert parallelism (E_local = E - expert_offset) and one without n_group means no grouping;
 * a file may give only the keys it changes. Errors name the line. */
mf_status mf_case_parse_text(const char *text, mf_case *c, mf_error *err);
void mf_case_print_text(const mf_case *c, FILE *f);

/* The text of v2 parameter i (mf_params_v2) of p, as mf_case_print_text writes it: a v1 case's
 * value (0) as well, which its text leaves out. */
void mf_param_v2_text(const mf_moe_params *p, int i, char *buf, size_t n);

/* Reads a case file: text (printable, first non-blank character '#' or a letter), a canonical
 * binary case, or, only with allow_raw, raw fuzz bytes. A damaged canonical file or, without
 * allow_raw, raw bytes fail with MF_EINVAL and a message saying which. *kind (may be NULL)
 * receives "text", "binary" or "raw". */
mf_status mf_case_load(const char *path, int allow_raw, mf_case *c, const char **kind,
                       mf_error *err);

/* Reads a whole file into a malloc'd buffer (NUL-terminated). */
mf_status mf_read_file(const char *path, uint8_t **data, size_t *size, size_t max_size,
                       mf_error *err);

/* The rsf values the binary format encodes in one byte. */
#define MF_RSF_TABLE_SIZE 15
extern const float mf_rsf_table[MF_RSF_TABLE_SIZE];

#endif /* MF_CODEC_H */
