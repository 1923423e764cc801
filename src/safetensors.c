/* safetensors.c: reader and writer of the safetensors format (see safetensors.h).
 *
 * The JSON parser is a recursive descent over the header bytes with an explicit nesting limit;
 * every read is bounds-checked against the header length, so a truncated or hostile header ends
 * in an error value, never in a read past the buffer. Messages give the byte offset in the file.
 */
#include "safetensors.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h" /* mf_read_file */

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "safetensors.c reads tensor data in place: it needs a little-endian host"
#endif

static const struct {
    const char *name;
    size_t size;
} dtypes[MF_ST_DTYPE_COUNT] = {
    [MF_ST_BF16] = {"BF16", 2},       [MF_ST_F16] = {"F16", 2},
    [MF_ST_F32] = {"F32", 4},         [MF_ST_F64] = {"F64", 8},
    [MF_ST_I8] = {"I8", 1},           [MF_ST_I16] = {"I16", 2},
    [MF_ST_I32] = {"I32", 4},         [MF_ST_I64] = {"I64", 8},
    [MF_ST_U8] = {"U8", 1},           [MF_ST_U16] = {"U16", 2},
    [MF_ST_U32] = {"U32", 4},         [MF_ST_U64] = {"U64", 8},
    [MF_ST_BOOL] = {"BOOL", 1},       [MF_ST_F8_E4M3] = {"F8_E4M3", 1},
    [MF_ST_F8_E5M2] = {"F8_E5M2", 1},
};

const char *mf_st_dtype_name(mf_st_dtype d) {
    return (unsigned)d < MF_ST_DTYPE_COUNT ? dtypes[d].name : "?";
}

size_t mf_st_dtype_size(mf_st_dtype d) {
    return (unsigned)d < MF_ST_DTYPE_COUNT ? dtypes[d].size : 0;
}

static int dtype_lookup(const char *s) {
    for (int i = 0; i < MF_ST_DTYPE_COUNT; i++)
        if (!strcmp(s, dtypes[i].name)) return i;
    return -1;
}

/* ---- JSON subset ---- */

#define JSON_MAX_DEPTH 16 /* a safetensors header nests 3 deep; anything deeper is skipped */

typedef struct jp {
    const unsigned char *s;
    size_t n, i;
    mf_error *err;
} jp;

/* Offsets in messages count from the start of the file: the header begins at byte 8. */
#define JFAIL(j, ...) jfail((j), __FILE__, __LINE__, __VA_ARGS__)
static mf_status jfail(jp *j, const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static mf_status jfail(jp *j, const char *file, int line, const char *fmt, ...) {
    char what[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    return mf_error_set(j->err, MF_EINVAL, file, line, "safetensors header: %s at byte %zu",
                        what, j->i + 8);
}

static void jws(jp *j) {
    while (j->i < j->n && (j->s[j->i] == ' ' || j->s[j->i] == '\t' || j->s[j->i] == '\n' ||
                           j->s[j->i] == '\r'))
        j->i++;
}

static int jpeek(jp *j) { return j->i < j->n ? j->s[j->i] : -1; }

/* After an element of an array or object: skips blanks, then consumes ',' (returns 1: another
 * element follows) or the closing character (returns 0); anything else returns -1 and stays. */
static int jnext(jp *j, char close) {
    jws(j);
    int c = jpeek(j);
    if (c != ',' && c != close) return -1;
    j->i++;
    return c == ',';
}

static mf_status jexpect(jp *j, char c) {
    jws(j);
    if (jpeek(j) != c) {
        if (j->i >= j->n) return JFAIL(j, "expected '%c', the header ended", c);
        return JFAIL(j, "expected '%c', found '%c'", c, j->s[j->i]);
    }
    j->i++;
    return MF_OK;
}

static int hexval(int c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static mf_status jhex4(jp *j, unsigned *v) {
    if (j->n - j->i < 4) return JFAIL(j, "truncated \\u escape");
    unsigned x = 0;
    for (int k = 0; k < 4; k++) {
        int h = hexval(j->s[j->i + k]);
        if (h < 0) return JFAIL(j, "bad \\u escape");
        x = x * 16 + (unsigned)h;
    }
    j->i += 4;
    *v = x;
    return MF_OK;
}

/* Parses a string; *out (malloc'd, NUL-terminated) unless out is NULL. Strings may not hold
 * NUL: names and metadata become C strings. */
static mf_status jstring(jp *j, char **out) {
    jws(j);
    if (jpeek(j) != '"') {
        if (j->i >= j->n) return JFAIL(j, "expected a string, the header ended");
        return JFAIL(j, "expected a string, found '%c'", j->s[j->i]);
    }
    j->i++;
    /* the decoded string is never longer than the raw one */
    size_t start = j->i, cap = 1;
    while (j->i < j->n && j->s[j->i] != '"') {
        if (j->s[j->i] == '\\') j->i++;
        j->i++;
        cap++;
    }
    if (j->i >= j->n) {
        j->i = start;
        return JFAIL(j, "unterminated string");
    }
    j->i = start;
    char *buf = out ? malloc(cap + 4) : NULL; /* decoding never lengthens: \uXXXX is 3 bytes */
    if (out && !buf) return MF_FAIL(j->err, MF_ENOMEM, "out of memory");
    size_t o = 0;
    mf_status st = MF_OK;
    while (st == MF_OK) {
        int c = j->s[j->i];
        if (c == '"') {
            j->i++;
            break;
        }
        if (c < 0x20) {
            st = JFAIL(j, "control character 0x%02x in a string", c);
            break;
        }
        if (c != '\\') {
            if (buf) buf[o++] = (char)c;
            j->i++;
            continue;
        }
        j->i++;
        int e = j->s[j->i++];
        unsigned u = 0;
        switch (e) {
        case '"': u = '"'; break;
        case '\\': u = '\\'; break;
        case '/': u = '/'; break;
        case 'b': u = '\b'; break;
        case 'f': u = '\f'; break;
        case 'n': u = '\n'; break;
        case 'r': u = '\r'; break;
        case 't': u = '\t'; break;
        case 'u':
            if ((st = jhex4(j, &u)) != MF_OK) break;
            if (u >= 0xD800 && u < 0xDC00) { /* a surrogate pair */
                unsigned lo;
                if (j->n - j->i < 2 || j->s[j->i] != '\\' || j->s[j->i + 1] != 'u') {
                    st = JFAIL(j, "unpaired surrogate in a \\u escape");
                    break;
                }
                j->i += 2;
                if ((st = jhex4(j, &lo)) != MF_OK) break;
                if (lo < 0xDC00 || lo > 0xDFFF) {
                    st = JFAIL(j, "unpaired surrogate in a \\u escape");
                    break;
                }
                u = 0x10000 + ((u - 0xD800) << 10) + (lo - 0xDC00);
            } else if (u >= 0xDC00 && u < 0xE000) {
                st = JFAIL(j, "unpaired surrogate in a \\u escape");
            } else if (u == 0) {
                st = JFAIL(j, "\\u0000 in a string");
            }
            break;
        default: st = JFAIL(j, "bad escape '\\%c'", e >= 0x20 && e < 0x7f ? e : '?');
        }
        if (st != MF_OK || !buf) continue;
        if (u < 0x80) {
            buf[o++] = (char)u;
        } else if (u < 0x800) {
            buf[o++] = (char)(0xC0 | (u >> 6));
            buf[o++] = (char)(0x80 | (u & 0x3F));
        } else if (u < 0x10000) {
            buf[o++] = (char)(0xE0 | (u >> 12));
            buf[o++] = (char)(0x80 | ((u >> 6) & 0x3F));
            buf[o++] = (char)(0x80 | (u & 0x3F));
        } else {
            buf[o++] = (char)(0xF0 | (u >> 18));
            buf[o++] = (char)(0x80 | ((u >> 12) & 0x3F));
            buf[o++] = (char)(0x80 | ((u >> 6) & 0x3F));
            buf[o++] = (char)(0x80 | (u & 0x3F));
        }
    }
    if (st != MF_OK) {
        free(buf);
        return st;
    }
    if (buf) {
        buf[o] = '\0';
        *out = buf;
    }
    return MF_OK;
}

/* A non-negative integer without sign, fraction or exponent (shapes and offsets). */
static mf_status juint(jp *j, uint64_t *v, const char *what) {
    jws(j);
    int c = jpeek(j);
    if (c < '0' || c > '9') return JFAIL(j, "%s must hold non-negative integers", what);
    uint64_t x = 0;
    while (j->i < j->n && j->s[j->i] >= '0' && j->s[j->i] <= '9') {
        unsigned d = j->s[j->i] - '0';
        if (x > (UINT64_MAX - d) / 10) return JFAIL(j, "%s: integer too large", what);
        x = x * 10 + d;
        j->i++;
    }
    c = jpeek(j);
    if (c == '.' || c == 'e' || c == 'E') return JFAIL(j, "%s must hold integers", what);
    *v = x;
    return MF_OK;
}

static mf_status juint_array(jp *j, uint64_t *vals, int max, int *n, const char *what) {
    mf_error *err = j->err; /* for MF_TRY */
    MF_TRY(jexpect(j, '['));
    *n = 0;
    jws(j);
    if (jpeek(j) == ']') {
        j->i++;
        return MF_OK;
    }
    for (;;) {
        if (*n == max) return JFAIL(j, "%s has more than %d entries", what, max);
        MF_TRY(juint(j, &vals[(*n)++], what));
        int nx = jnext(j, ']');
        if (nx == 1) continue;
        if (nx == 0) return MF_OK;
        return JFAIL(j, "%s: expected ',' or ']'", what);
    }
}

/* Skips any JSON value (unknown fields of a tensor entry). */
static mf_status jskip(jp *j, int depth) {
    mf_error *err = j->err; /* for MF_TRY */
    if (depth > JSON_MAX_DEPTH) return JFAIL(j, "nesting deeper than %d", JSON_MAX_DEPTH);
    jws(j);
    int c = jpeek(j);
    if (c == '"') return jstring(j, NULL);
    if (c == '{' || c == '[') {
        int close = c == '{' ? '}' : ']';
        j->i++;
        jws(j);
        if (jpeek(j) == close) {
            j->i++;
            return MF_OK;
        }
        for (;;) {
            if (close == '}') {
                MF_TRY(jstring(j, NULL));
                MF_TRY(jexpect(j, ':'));
            }
            MF_TRY(jskip(j, depth + 1));
            jws(j);
            int d = jpeek(j);
            if (d == ',') {
                j->i++;
                continue;
            }
            if (d == close) {
                j->i++;
                return MF_OK;
            }
            return JFAIL(j, "expected ',' or '%c'", close);
        }
    }
    if (c == '-' || (c >= '0' && c <= '9')) {
        j->i++;
        while (j->i < j->n && strchr("0123456789.eE+-", j->s[j->i]) && j->s[j->i]) j->i++;
        return MF_OK;
    }
    static const char *const words[] = {"true", "false", "null"};
    for (int w = 0; w < 3; w++) {
        size_t len = strlen(words[w]);
        if (j->n - j->i >= len && !memcmp(j->s + j->i, words[w], len)) {
            j->i += len;
            return MF_OK;
        }
    }
    if (c < 0) return JFAIL(j, "expected a value, the header ended");
    return JFAIL(j, "unexpected '%c'", c);
}

/* ---- the header ---- */

static mf_status push_tensor(mf_safetensors *st, int *cap, mf_st_tensor **t, mf_error *err) {
    if (st->n_tensors >= MF_ST_MAX_TENSORS)
        return MF_FAIL(err, MF_EINVAL, "safetensors header: more than %d tensors",
                       MF_ST_MAX_TENSORS);
    if (st->n_tensors == *cap) {
        int nc = *cap ? 2 * *cap : 8;
        mf_st_tensor *nt = realloc(st->tensors, sizeof *nt * (size_t)nc);
        if (!nt) return MF_FAIL(err, MF_ENOMEM, "out of memory");
        st->tensors = nt;
        *cap = nc;
    }
    *t = &st->tensors[st->n_tensors++];
    memset(*t, 0, sizeof **t);
    return MF_OK;
}

static mf_status parse_tensor(jp *j, mf_st_tensor *t) {
    mf_error *err = j->err; /* for MF_TRY */
    MF_TRY(jexpect(j, '{'));
    int have_dtype = 0, have_shape = 0, have_offsets = 0;
    jws(j);
    if (jpeek(j) == '}') {
        j->i++;
    } else {
        for (;;) {
            char *key = NULL;
            MF_TRY(jstring(j, &key));
            mf_status st = jexpect(j, ':');
            if (st == MF_OK && !strcmp(key, "dtype")) {
                char *dt = NULL;
                if (have_dtype) st = JFAIL(j, "tensor '%s' repeats \"dtype\"", t->name);
                if (st == MF_OK) st = jstring(j, &dt);
                if (st == MF_OK) {
                    int d = dtype_lookup(dt);
                    if (d < 0)
                        st = JFAIL(j, "tensor '%s': unknown dtype '%.40s'", t->name, dt);
                    t->dtype = (mf_st_dtype)d;
                }
                free(dt);
                have_dtype = 1;
            } else if (st == MF_OK && !strcmp(key, "shape")) {
                uint64_t dims[MF_ST_MAX_DIMS];
                if (have_shape) st = JFAIL(j, "tensor '%s' repeats \"shape\"", t->name);
                if (st == MF_OK)
                    st = juint_array(j, dims, MF_ST_MAX_DIMS, &t->ndim, "shape");
                if (st == MF_OK) memcpy(t->shape, dims, sizeof(uint64_t) * (size_t)t->ndim);
                have_shape = 1;
            } else if (st == MF_OK && !strcmp(key, "data_offsets")) {
                uint64_t off[2];
                int n = 0;
                if (have_offsets) st = JFAIL(j, "tensor '%s' repeats \"data_offsets\"", t->name);
                if (st == MF_OK) st = juint_array(j, off, 2, &n, "data_offsets");
                if (st == MF_OK && n != 2)
                    st = JFAIL(j, "tensor '%s': data_offsets must be [begin, end]", t->name);
                if (st == MF_OK) t->begin = off[0], t->end = off[1];
                have_offsets = 1;
            } else if (st == MF_OK) {
                st = jskip(j, 2);
            }
            free(key);
            MF_TRY(st);
            int nx = jnext(j, '}');
            if (nx == 1) continue;
            if (nx == 0) break;
            return JFAIL(j, "tensor '%s': expected ',' or '}'", t->name);
        }
    }
    if (!have_dtype || !have_shape || !have_offsets)
        return JFAIL(j, "tensor '%s' lacks \"%s\"", t->name,
                     !have_dtype ? "dtype" : !have_shape ? "shape" : "data_offsets");
    return MF_OK;
}

static mf_status parse_metadata(jp *j, mf_safetensors *st) {
    mf_error *err = j->err; /* for MF_TRY */
    MF_TRY(jexpect(j, '{'));
    jws(j);
    if (jpeek(j) == '}') {
        j->i++;
        return MF_OK;
    }
    int cap = 0;
    for (;;) {
        if (st->n_meta >= MF_ST_MAX_META)
            return JFAIL(j, "more than %d metadata entries", MF_ST_MAX_META);
        if (st->n_meta == cap) {
            int nc = cap ? 2 * cap : 16;
            mf_st_meta *nm = realloc(st->meta, sizeof *nm * (size_t)nc);
            if (!nm) return MF_FAIL(j->err, MF_ENOMEM, "out of memory");
            st->meta = nm;
            cap = nc;
        }
        mf_st_meta *m = &st->meta[st->n_meta];
        m->key = m->value = NULL;
        MF_TRY(jstring(j, &m->key));
        st->n_meta++; /* owned from here on: mf_st_free releases it */
        MF_TRY(jexpect(j, ':'));
        jws(j);
        if (jpeek(j) != '"') return JFAIL(j, "metadata '%.60s' must be a string", m->key);
        MF_TRY(jstring(j, &m->value));
        for (int i = 0; i < st->n_meta - 1; i++)
            if (!strcmp(st->meta[i].key, m->key))
                return JFAIL(j, "metadata key '%.60s' appears twice", m->key);
        int nx = jnext(j, '}');
        if (nx == 1) continue;
        if (nx == 0) return MF_OK;
        return JFAIL(j, "__metadata__: expected ',' or '}'");
    }
}

static mf_status parse_header(jp *j, mf_safetensors *st) {
    mf_error *err = j->err; /* for MF_TRY */
    MF_TRY(jexpect(j, '{'));
    int cap = 0, have_meta = 0;
    jws(j);
    if (jpeek(j) == '}') {
        j->i++;
    } else {
        for (;;) {
            char *key = NULL;
            MF_TRY(jstring(j, &key));
            mf_status s = jexpect(j, ':');
            if (s == MF_OK && !strcmp(key, "__metadata__")) {
                if (have_meta) s = JFAIL(j, "\"__metadata__\" appears twice");
                else s = parse_metadata(j, st);
                have_meta = 1;
            } else if (s == MF_OK) {
                mf_st_tensor *t = NULL;
                if (strlen(key) >= MF_ST_MAX_NAME)
                    s = JFAIL(j, "tensor name longer than %d bytes", MF_ST_MAX_NAME - 1);
                for (int i = 0; i < st->n_tensors && s == MF_OK; i++)
                    if (!strcmp(st->tensors[i].name, key))
                        s = JFAIL(j, "tensor '%s' appears twice", key);
                if (s == MF_OK) s = push_tensor(st, &cap, &t, j->err);
                if (s == MF_OK) {
                    snprintf(t->name, sizeof t->name, "%s", key);
                    s = parse_tensor(j, t);
                }
            }
            free(key);
            MF_TRY(s);
            int nx = jnext(j, '}');
            if (nx == 1) continue;
            if (nx == 0) break;
            return JFAIL(j, "expected ',' or '}' after a tensor");
        }
    }
    jws(j);
    if (j->i != j->n) return JFAIL(j, "unexpected bytes after the header's JSON object");
    return MF_OK;
}

static int cmp_begin(const void *a, const void *b) {
    const mf_st_tensor *x = *(const mf_st_tensor *const *)a, *y = *(const mf_st_tensor *const *)b;
    return x->begin < y->begin ? -1 : x->begin > y->begin;
}

/* Every tensor's byte range lies inside the data section, matches its shape, overlaps none. */
static mf_status check_layout(mf_safetensors *st, const uint8_t *data, uint64_t data_size,
                              mf_error *err) {
    for (int i = 0; i < st->n_tensors; i++) {
        mf_st_tensor *t = &st->tensors[i];
        uint64_t elems = 1;
        for (int d = 0; d < t->ndim; d++) {
            if (t->shape[d] && elems > (UINT64_C(1) << 62) / t->shape[d])
                return MF_FAIL(err, MF_EINVAL, "tensor '%s': shape too large", t->name);
            elems *= t->shape[d];
        }
        uint64_t bytes = elems * dtypes[t->dtype].size;
        if (t->begin > t->end)
            return MF_FAIL(err, MF_EINVAL,
                           "tensor '%s': data_offsets [%llu, %llu] end before they begin",
                           t->name, (unsigned long long)t->begin, (unsigned long long)t->end);
        if (t->end > data_size)
            return MF_FAIL(err, MF_EINVAL,
                           "tensor '%s': data_offsets [%llu, %llu] reach past the %llu-byte data "
                           "section (truncated file?)",
                           t->name, (unsigned long long)t->begin, (unsigned long long)t->end,
                           (unsigned long long)data_size);
        if (t->end - t->begin != bytes)
            return MF_FAIL(err, MF_EINVAL,
                           "tensor '%s': data_offsets span %llu bytes, its shape and dtype %s "
                           "need %llu",
                           t->name, (unsigned long long)(t->end - t->begin),
                           dtypes[t->dtype].name, (unsigned long long)bytes);
        t->data = data + t->begin;
    }
    if (st->n_tensors < 2) return MF_OK;
    mf_st_tensor **order = malloc(sizeof *order * (size_t)st->n_tensors);
    if (!order) return MF_FAIL(err, MF_ENOMEM, "out of memory");
    for (int i = 0; i < st->n_tensors; i++) order[i] = &st->tensors[i];
    qsort(order, (size_t)st->n_tensors, sizeof *order, cmp_begin);
    mf_status s = MF_OK;
    for (int i = 1; i < st->n_tensors && s == MF_OK; i++)
        if (order[i]->begin < order[i - 1]->end && order[i]->begin != order[i]->end)
            s = MF_FAIL(err, MF_EINVAL, "tensors '%s' and '%s' overlap in the data section",
                        order[i - 1]->name, order[i]->name);
    free(order);
    return s;
}

mf_status mf_st_parse(const uint8_t *data, size_t size, mf_safetensors *st, mf_error *err) {
    memset(st, 0, sizeof *st);
    if (size < 8)
        return MF_FAIL(err, MF_EINVAL,
                       "not a safetensors file: %zu bytes, shorter than the 8-byte header length",
                       size);
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--) n = n << 8 | data[i];
    if (n > size - 8)
        return MF_FAIL(err, MF_EINVAL,
                       "safetensors header length %llu exceeds the %zu bytes that follow it "
                       "(truncated, or not a safetensors file)",
                       (unsigned long long)n, size - 8);
    if (n > MF_ST_MAX_HEADER)
        return MF_FAIL(err, MF_EINVAL, "safetensors header length %llu exceeds the limit of %u",
                       (unsigned long long)n, MF_ST_MAX_HEADER);
    jp j = {data + 8, (size_t)n, 0, err};
    mf_status s = parse_header(&j, st);
    if (s == MF_OK) s = check_layout(st, data + 8 + n, (uint64_t)(size - 8 - n), err);
    if (s != MF_OK) mf_st_free(st);
    return s;
}

mf_status mf_st_load(const char *path, mf_safetensors *st, mf_error *err) {
    memset(st, 0, sizeof *st);
    uint8_t *buf;
    size_t size;
    MF_TRY(mf_read_file(path, &buf, &size, (size_t)1 << 40, err));
    mf_status s = mf_st_parse(buf, size, st, err);
    if (s != MF_OK) {
        free(buf);
        return s;
    }
    st->buf = buf;
    return MF_OK;
}

void mf_st_free(mf_safetensors *st) {
    for (int i = 0; i < st->n_meta; i++) {
        free(st->meta[i].key);
        free(st->meta[i].value);
    }
    free(st->meta);
    free(st->tensors);
    free(st->buf);
    memset(st, 0, sizeof *st);
}

const mf_st_tensor *mf_st_find(const mf_safetensors *st, const char *name) {
    for (int i = 0; i < st->n_tensors; i++)
        if (!strcmp(st->tensors[i].name, name)) return &st->tensors[i];
    return NULL;
}

const char *mf_st_meta_get(const mf_safetensors *st, const char *key) {
    for (int i = 0; i < st->n_meta; i++)
        if (!strcmp(st->meta[i].key, key)) return st->meta[i].value;
    return NULL;
}

static void fmt_shape(char *buf, size_t n, int ndim, const uint64_t *shape) {
    size_t o = (size_t)snprintf(buf, n, "[");
    for (int d = 0; d < ndim && o < n; d++)
        o += (size_t)snprintf(buf + o, n - o, "%s%llu", d ? ", " : "",
                              (unsigned long long)shape[d]);
    if (o < n) snprintf(buf + o, n - o, "]");
}

mf_status mf_st_expect(const mf_safetensors *st, const char *name, mf_st_dtype dtype, int ndim,
                       const uint64_t *shape, const mf_st_tensor **out, mf_error *err) {
    const mf_st_tensor *t = mf_st_find(st, name);
    char want[160], got[160];
    fmt_shape(want, sizeof want, ndim, shape);
    if (!t)
        return MF_FAIL(err, MF_EINVAL, "missing tensor '%s' (%s %s)", name,
                       mf_st_dtype_name(dtype), want);
    fmt_shape(got, sizeof got, t->ndim, t->shape);
    if (t->dtype != dtype)
        return MF_FAIL(err, MF_EINVAL, "tensor '%s' has dtype %s, expected %s", name,
                       mf_st_dtype_name(t->dtype), mf_st_dtype_name(dtype));
    int same = t->ndim == ndim;
    for (int d = 0; d < ndim && same; d++) same = t->shape[d] == shape[d];
    if (!same)
        return MF_FAIL(err, MF_EINVAL, "tensor '%s' has shape %s, expected %s", name, got, want);
    if (out) *out = t;
    return MF_OK;
}

/* ---- writer ---- */

void mf_st_writer_init(mf_st_writer *w) { memset(w, 0, sizeof *w); }

void mf_st_writer_free(mf_st_writer *w) {
    for (int i = 0; i < w->n_meta; i++) {
        free(w->meta[i].key);
        free(w->meta[i].value);
    }
    free(w->meta);
    free(w->tensors);
    memset(w, 0, sizeof *w);
}

mf_status mf_st_writer_add(mf_st_writer *w, const char *name, mf_st_dtype dtype, int ndim,
                           const uint64_t *shape, const void *data, mf_error *err) {
    if (strlen(name) >= MF_ST_MAX_NAME || ndim < 0 || ndim > MF_ST_MAX_DIMS ||
        (unsigned)dtype >= MF_ST_DTYPE_COUNT)
        return MF_FAIL(err, MF_EINVAL, "safetensors writer: bad tensor '%s'", name);
    if (w->n_tensors == w->cap_tensors) {
        int nc = w->cap_tensors ? 2 * w->cap_tensors : 8;
        mf_st_wtensor *nt = realloc(w->tensors, sizeof *nt * (size_t)nc);
        if (!nt) return MF_FAIL(err, MF_ENOMEM, "out of memory");
        w->tensors = nt;
        w->cap_tensors = nc;
    }
    mf_st_wtensor *t = &w->tensors[w->n_tensors++];
    memset(t, 0, sizeof *t);
    snprintf(t->name, sizeof t->name, "%s", name);
    t->dtype = dtype;
    t->ndim = ndim;
    memcpy(t->shape, shape, sizeof(uint64_t) * (size_t)ndim);
    t->data = data;
    return MF_OK;
}

mf_status mf_st_writer_meta(mf_st_writer *w, const char *key, const char *value, mf_error *err) {
    if (w->n_meta == w->cap_meta) {
        int nc = w->cap_meta ? 2 * w->cap_meta : 16;
        mf_st_meta *nm = realloc(w->meta, sizeof *nm * (size_t)nc);
        if (!nm) return MF_FAIL(err, MF_ENOMEM, "out of memory");
        w->meta = nm;
        w->cap_meta = nc;
    }
    mf_st_meta *m = &w->meta[w->n_meta];
    m->key = strdup(key);
    m->value = strdup(value);
    if (!m->key || !m->value) {
        free(m->key);
        free(m->value);
        return MF_FAIL(err, MF_ENOMEM, "out of memory");
    }
    w->n_meta++;
    return MF_OK;
}

/* A growable text buffer for the JSON header. */
typedef struct sbuf {
    char *s;
    size_t n, cap;
    int oom;
} sbuf;

static void sb_putn(sbuf *b, const char *s, size_t n) {
    if (b->oom) return;
    if (b->n + n + 1 > b->cap) {
        size_t nc = b->cap ? b->cap : 256;
        while (nc < b->n + n + 1) nc *= 2;
        char *ns = realloc(b->s, nc);
        if (!ns) {
            b->oom = 1;
            return;
        }
        b->s = ns;
        b->cap = nc;
    }
    memcpy(b->s + b->n, s, n);
    b->n += n;
    b->s[b->n] = '\0';
}

static void sb_puts(sbuf *b, const char *s) { sb_putn(b, s, strlen(s)); }

static void sb_json_string(sbuf *b, const char *s) {
    sb_puts(b, "\"");
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        char esc[8];
        if (*p == '"') sb_puts(b, "\\\"");
        else if (*p == '\\') sb_puts(b, "\\\\");
        else if (*p == '\n') sb_puts(b, "\\n");
        else if (*p == '\t') sb_puts(b, "\\t");
        else if (*p == '\r') sb_puts(b, "\\r");
        else if (*p < 0x20) {
            snprintf(esc, sizeof esc, "\\u%04x", *p);
            sb_puts(b, esc);
        } else {
            sb_putn(b, (const char *)p, 1);
        }
    }
    sb_puts(b, "\"");
}

static int write_all(FILE *f, const void *p, size_t n) { return n == 0 || fwrite(p, 1, n, f) == n; }

mf_status mf_st_writer_save(const mf_st_writer *w, const char *path, mf_error *err) {
    sbuf h = {0};
    sb_puts(&h, "{");
    if (w->n_meta) {
        sb_puts(&h, "\"__metadata__\":{");
        for (int i = 0; i < w->n_meta; i++) {
            if (i) sb_puts(&h, ",");
            sb_json_string(&h, w->meta[i].key);
            sb_puts(&h, ":");
            sb_json_string(&h, w->meta[i].value);
        }
        sb_puts(&h, "}");
    }
    uint64_t off = 0;
    for (int i = 0; i < w->n_tensors; i++) {
        const mf_st_wtensor *t = &w->tensors[i];
        uint64_t elems = 1;
        for (int d = 0; d < t->ndim; d++) elems *= t->shape[d];
        uint64_t bytes = elems * dtypes[t->dtype].size;
        char num[64];
        if (i || w->n_meta) sb_puts(&h, ",");
        sb_json_string(&h, t->name);
        sb_puts(&h, ":{\"dtype\":\"");
        sb_puts(&h, dtypes[t->dtype].name);
        sb_puts(&h, "\",\"shape\":[");
        for (int d = 0; d < t->ndim; d++) {
            snprintf(num, sizeof num, "%s%llu", d ? "," : "", (unsigned long long)t->shape[d]);
            sb_puts(&h, num);
        }
        snprintf(num, sizeof num, "],\"data_offsets\":[%llu,%llu]}", (unsigned long long)off,
                 (unsigned long long)(off + bytes));
        sb_puts(&h, num);
        off += bytes;
    }
    sb_puts(&h, "}");
    /* pad with spaces so the data section starts 8-byte aligned, as the reference writer does */
    while ((8 + h.n) % 8) sb_puts(&h, " ");
    if (h.oom) {
        free(h.s);
        return MF_FAIL(err, MF_ENOMEM, "out of memory");
    }
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "wb");
    if (!f) {
        free(h.s);
        return MF_FAIL(err, MF_EIO, "cannot write %s: %s", tmp, strerror(errno));
    }
    uint8_t len[8];
    for (int i = 0; i < 8; i++) len[i] = (uint8_t)((uint64_t)h.n >> (8 * i));
    int ok = write_all(f, len, 8) && write_all(f, h.s, h.n);
    for (int i = 0; i < w->n_tensors && ok; i++) {
        const mf_st_wtensor *t = &w->tensors[i];
        uint64_t elems = 1;
        for (int d = 0; d < t->ndim; d++) elems *= t->shape[d];
        ok = write_all(f, t->data, (size_t)(elems * dtypes[t->dtype].size));
    }
    ok &= fclose(f) == 0;
    free(h.s);
    if (!ok || rename(tmp, path) != 0) {
        remove(tmp);
        return MF_FAIL(err, MF_EIO, "cannot write %s: %s", path, strerror(errno));
    }
    return MF_OK;
}
