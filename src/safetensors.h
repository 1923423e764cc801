/* safetensors.h: a small reader and writer of the safetensors format, written for moefuzz.
 *
 * A file is an unsigned 64-bit little-endian header length N, N bytes of JSON (possibly padded
 * with spaces), then the data section. The JSON object maps each tensor name to
 * {"dtype": "BF16", "shape": [T, H], "data_offsets": [begin, end]} (byte offsets into the data
 * section) and may hold "__metadata__", a map of strings to strings. docs/files.md describes how
 * moefuzz uses it for case and result files.
 *
 * The reader never trusts the file: the header length, the JSON, every dtype, shape and offset
 * are checked, and an error names what is wrong ("tensor 'x': data_offsets [0, 512] reach past
 * the 256-byte data section"). It parses only the subset of JSON that safetensors headers use
 * (objects, arrays, strings, non-negative integers; other values are skipped where allowed),
 * with a nesting limit, so no input can exhaust the stack. Tensor data is read in place: the
 * host is little-endian like the format.
 */
#ifndef MF_SAFETENSORS_H
#define MF_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "mf_base.h"

typedef enum mf_st_dtype {
    MF_ST_BF16 = 0,
    MF_ST_F16,
    MF_ST_F32,
    MF_ST_F64,
    MF_ST_I8,
    MF_ST_I16,
    MF_ST_I32,
    MF_ST_I64,
    MF_ST_U8,
    MF_ST_U16,
    MF_ST_U32,
    MF_ST_U64,
    MF_ST_BOOL,
    MF_ST_F8_E4M3,
    MF_ST_F8_E5M2,
    MF_ST_DTYPE_COUNT
} mf_st_dtype;

const char *mf_st_dtype_name(mf_st_dtype d); /* "BF16", as in the file */
size_t mf_st_dtype_size(mf_st_dtype d);      /* bytes per element */

#define MF_ST_MAX_DIMS 8
#define MF_ST_MAX_NAME 128
#define MF_ST_MAX_TENSORS 4096
#define MF_ST_MAX_META 1024
#define MF_ST_MAX_HEADER (100u << 20) /* the format's own limit on the JSON header */

typedef struct mf_st_tensor {
    char name[MF_ST_MAX_NAME];
    mf_st_dtype dtype;
    int ndim;
    uint64_t shape[MF_ST_MAX_DIMS];
    uint64_t begin, end; /* byte offsets in the data section */
    const uint8_t *data; /* begin's address in the parsed buffer */
} mf_st_tensor;

typedef struct mf_st_meta {
    char *key, *value; /* owned, NUL-terminated */
} mf_st_meta;

typedef struct mf_safetensors {
    uint8_t *buf; /* the whole file, owned, when read by mf_st_load; else NULL */
    int n_tensors;
    mf_st_tensor *tensors; /* owned */
    int n_meta;
    mf_st_meta *meta; /* owned */
} mf_safetensors;

/* Parses a file held in memory; tensors point into data, which must outlive st. On failure st
 * is left empty (nothing to free, though mf_st_free is harmless). */
mf_status mf_st_parse(const uint8_t *data, size_t size, mf_safetensors *st, mf_error *err);
/* Reads and parses a file; st owns the bytes. */
mf_status mf_st_load(const char *path, mf_safetensors *st, mf_error *err);
void mf_st_free(mf_safetensors *st);

const mf_st_tensor *mf_st_find(const mf_safetensors *st, const char *name);
const char *mf_st_meta_get(const mf_safetensors *st, const char *key); /* NULL if absent */

/* Finds tensor `name` and checks its dtype and shape; the error says what was expected and
 * what the file holds. ndim and shape describe the expected shape. */
mf_status mf_st_expect(const mf_safetensors *st, const char *name, mf_st_dtype dtype, int ndim,
                       const uint64_t *shape, const mf_st_tensor **out, mf_error *err);

/* ---- writer ---- */

typedef struct mf_st_wtensor {
    char name[MF_ST_MAX_NAME];
    mf_st_dtype dtype;
    int ndim;
    uint64_t shape[MF_ST_MAX_DIMS];
    const void *data; /* borrowed: must stay valid until mf_st_writer_save */
} mf_st_wtensor;

typedef struct mf_st_writer {
    int n_tensors, cap_tensors;
    mf_st_wtensor *tensors;
    int n_meta, cap_meta;
    mf_st_meta *meta;
} mf_st_writer;

void mf_st_writer_init(mf_st_writer *w);
/* Adds a tensor (data borrowed, laid out in the order added). */
mf_status mf_st_writer_add(mf_st_writer *w, const char *name, mf_st_dtype dtype, int ndim,
                           const uint64_t *shape, const void *data, mf_error *err);
/* Adds a metadata entry (copied). */
mf_status mf_st_writer_meta(mf_st_writer *w, const char *key, const char *value, mf_error *err);
/* Writes the file through PATH.tmp and a rename, so a reader never sees half a file. */
mf_status mf_st_writer_save(const mf_st_writer *w, const char *path, mf_error *err);
void mf_st_writer_free(mf_st_writer *w);

#endif /* MF_SAFETENSORS_H */
