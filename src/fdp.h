/* fdp.h: a C FuzzedDataProvider: integers from the end of a buffer, blobs from the front.
 *
 * Taking integers from the end keeps each field at a fixed distance from the end of the input, so
 * a mutation of one field (or of the pokes at the front) does not shift the others. A missing
 * byte reads as 0, so every byte string, including the empty one, decodes.
 *
 * mf_fdp_writer builds the bytes a reader will consume in the same order: the encoder for
 * `moefuzz encode` and for the structured mutator is the decoder run backwards.
 */
#ifndef MF_FDP_H
#define MF_FDP_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

typedef struct mf_fdp {
    const uint8_t *data;
    size_t size; /* bytes left: front is data[0..size) */
} mf_fdp;

static inline uint64_t mf_fdp_uint(mf_fdp *f, int nbytes) {
    uint64_t v = 0;
    for (int i = 0; i < nbytes; i++) {
        uint64_t b = 0;
        if (f->size > 0) b = f->data[--f->size];
        v |= b << (8 * i);
    }
    return v;
}

static inline uint8_t mf_fdp_u8(mf_fdp *f) { return (uint8_t)mf_fdp_uint(f, 1); }
static inline uint16_t mf_fdp_u16(mf_fdp *f) { return (uint16_t)mf_fdp_uint(f, 2); }
static inline uint32_t mf_fdp_u32(mf_fdp *f) { return (uint32_t)mf_fdp_uint(f, 4); }
static inline uint64_t mf_fdp_u64(mf_fdp *f) { return mf_fdp_uint(f, 8); }

/* Takes n bytes from the front; returns NULL if fewer remain. */
static inline const uint8_t *mf_fdp_front(mf_fdp *f, size_t n) {
    if (f->size < n) return NULL;
    const uint8_t *p = f->data;
    f->data += n;
    f->size -= n;
    return p;
}

/* ---- writer ---- */

#define MF_FDP_MAX 512

typedef struct mf_fdp_writer {
    uint8_t tail[MF_FDP_MAX]; /* in consumption order: tail[0] is the last byte of the output */
    size_t ntail;
    uint8_t front[MF_FDP_MAX];
    size_t nfront;
} mf_fdp_writer;

static inline void mf_fdpw_uint(mf_fdp_writer *w, uint64_t v, int nbytes) {
    for (int i = 0; i < nbytes && w->ntail < MF_FDP_MAX; i++) w->tail[w->ntail++] = (uint8_t)(v >> (8 * i));
}

static inline void mf_fdpw_front(mf_fdp_writer *w, const void *p, size_t n) {
    if (w->nfront + n > MF_FDP_MAX) return;
    memcpy(w->front + w->nfront, p, n);
    w->nfront += n;
}

/* Writes prefix (e.g. the version byte), front, then the tail reversed. Returns bytes written,
 * or 0 if out is too small. */
static inline size_t mf_fdpw_finish(const mf_fdp_writer *w, const uint8_t *prefix, size_t nprefix,
                                    uint8_t *out, size_t cap) {
    size_t n = nprefix + w->nfront + w->ntail;
    if (n > cap) return 0;
    memcpy(out, prefix, nprefix);
    memcpy(out + nprefix, w->front, w->nfront);
    for (size_t i = 0; i < w->ntail; i++) out[n - 1 - i] = w->tail[i];
    return n;
}

#endif /* MF_FDP_H */
