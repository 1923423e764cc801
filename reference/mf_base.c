/* mf_base.c: error values and small allocation helpers (see mf_base.h). */
#include "mf_base.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char *short_path(const char *file) {
    /* Keep the last two path components: "reference/dot.c". */
    const char *last = NULL, *prev = NULL;
    for (const char *p = file; *p; p++) {
        if (*p == '/') {
            prev = last;
            last = p;
        }
    }
    return prev ? prev + 1 : (last ? last + 1 : file);
}

mf_status mf_error_set(mf_error *err, mf_status st, const char *file, int line, const char *fmt,
                       ...) {
    if (!err) return st;
    err->status = st;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
    snprintf(err->where, sizeof err->where, "%s:%d", short_path(file), line);
    return st;
}

void mf_error_trace(mf_error *err, const char *file, int line) {
    if (!err) return;
    size_t n = strnlen(err->where, sizeof err->where);
    if (n + 1 < sizeof err->where)
        snprintf(err->where + n, sizeof err->where - n, " <- %s:%d", short_path(file), line);
}

void mf_error_clear(mf_error *err) {
    if (!err) return;
    err->status = MF_OK;
    err->msg[0] = '\0';
    err->where[0] = '\0';
}

const char *mf_status_name(mf_status st) {
    switch (st) {
    case MF_OK: return "ok";
    case MF_EINVAL: return "invalid input";
    case MF_ENOMEM: return "out of memory";
    case MF_EUNSUPPORTED: return "unsupported";
    case MF_EIO: return "i/o error";
    case MF_EBACKEND: return "backend failure";
    case MF_EINTERNAL: return "internal error";
    case MF_ETIMEOUT: return "timeout";
    case MF_ECRASH: return "kernel crashed";
    case MF_ENODEVICE: return "no usable device";
    }
    return "unknown status";
}

void *mf_calloc(size_t n, size_t size) {
    if (n == 0 || size == 0) return calloc(1, 1);
    if (n > SIZE_MAX / size) return NULL;
    return calloc(n, size);
}

double mf_now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}


int mf_rows_first_equal(const void *rows, size_t row_bytes, int n, int *first) {
    size_t cap = 16;
    while (cap < 2 * (size_t)n) cap *= 2;
    int *table = malloc(cap * sizeof(int)); /* row index + 1; 0: empty */
    uint64_t *hash = malloc(((size_t)n + 1) * sizeof(uint64_t));
    if (!table || !hash) {
        free(table);
        free(hash);
        return -1;
    }
    memset(table, 0, cap * sizeof(int));
    const unsigned char *base = rows;
    int distinct = 0;
    for (int i = 0; i < n; i++) {
        const unsigned char *r = base + (size_t)i * row_bytes;
        uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a */
        for (size_t b = 0; b < row_bytes; b++) h = (h ^ r[b]) * 0x100000001b3ull;
        hash[i] = h;
        size_t at = (size_t)(h ^ (h >> 29)) & (cap - 1);
        first[i] = i;
        for (; table[at]; at = (at + 1) & (cap - 1)) {
            int j = table[at] - 1;
            if (hash[j] == h && !memcmp(base + (size_t)j * row_bytes, r, row_bytes)) {
                first[i] = j;
                break;
            }
        }
        if (first[i] == i) {
            table[at] = i + 1;
            distinct++;
        }
    }
    free(table);
    free(hash);
    return distinct;
}
