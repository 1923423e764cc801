/* casegen.h: random cases spread over the parameter domain, with boundary classes.
 *
 * Used by the soundness test (thousands of random cases), by the structured mutator of the fuzz
 * targets, and by campaigns that start from nothing. Dimensions come from boundary classes
 * (1, tile-1, tile, tile+1, primes, random); every enum and generator class is reachable; a
 * budget caps the reference work and memory of a case.
 */
#ifndef MF_CASEGEN_H
#define MF_CASEGEN_H

#include <stdint.h>

#include "case.h"

typedef struct mf_rng {
    uint64_t s;
} mf_rng;

uint64_t mf_rng_next(mf_rng *r);
/* uniform in [0, n) */
uint32_t mf_rng_below(mf_rng *r, uint32_t n);

typedef struct mf_case_limits {
    int max_T, max_H, max_I, max_E;
    double max_work;  /* reference multiply-adds (mf_case_work: distinct rows * top_k * 3 H I) */
    double max_bytes; /* bytes of all tensors */
    /* large T: a case of more than rows_T tokens draws its x and logits rows from 1 to max_rows
     * prototypes (mf_case_rows), its kernel work (T * top_k * 3 H I) at most 16 max_work;
     * rows_T 0: rows as the case says */
    int rows_T, max_rows;
    /* full model sizes: a case of at most full_T tokens may take H and I up to the case
     * format's limits, within max_work_full and max_bytes_full (0: never); a case within
     * max_H and max_I keeps max_work and max_bytes */
    int full_T;
    double max_work_full, max_bytes_full;
} mf_case_limits;

/* Limits of the default fuzz mix: milliseconds per case on one core. */
void mf_case_limits_default(mf_case_limits *l);

/* A dimension from a boundary class, in [1, max]. */
int mf_dim_boundary(mf_rng *r, int max);

/* A random valid case within limits. */
void mf_case_random(mf_rng *r, const mf_case_limits *lim, mf_case *c);

/* Sets c->rows by lim's large-T rule: 0 up to rows_T tokens, above it 1 to max_rows, picked
 * from x's seed (so a decoded case gets the same rows every time). No-op when rows_T is 0. */
void mf_case_rows(mf_case *c, const mf_case_limits *lim);

/* Size classes of a case, for campaign summaries: small (T <= 64, H and I <= 512), large T
 * (above 64 tokens), full H or I (above 512). */
typedef enum mf_size_class {
    MF_SIZE_SMALL = 0,
    MF_SIZE_LARGE_T = 1,
    MF_SIZE_FULL_HI = 2,
    MF_SIZE_COUNT = 3
} mf_size_class;
mf_size_class mf_case_size_class(const mf_case *c);
const char *mf_size_class_name(mf_size_class s);

/* Shrinks top_k (full-size cases), T, then H and I, then E_local until the case fits the limits
 * (and applies mf_case_rows); keeps it valid. */
void mf_case_fit(mf_case *c, const mf_case_limits *lim);

/* 1 if c is within lim: what mf_case_fit makes true, when it can. */
int mf_case_fits(const mf_case *c, const mf_case_limits *lim);

/* Makes a clamped case valid again after a field changed (n_group divides E, etc.). */
void mf_case_repair(mf_case *c);


/* ---- structured mutation (the fuzz targets' custom mutator and crossover) ---- */

/* One field-level change: a dimension to a boundary class, a routing mode flipped, one tensor
 * reseeded or given another generator class, a poke added, moved or removed. The result is
 * valid and fits lim. */
void mf_case_mutate(mf_case *c, mf_rng *r, const mf_case_limits *lim);

/* A child of two cases: shape and routing from one parent, data from the other (or a field-wise
 * mix). */
void mf_case_crossover(const mf_case *a, const mf_case *b, mf_rng *r, const mf_case_limits *lim,
                       mf_case *out);

#endif /* MF_CASEGEN_H */
