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
    double max_work;  /* T * top_k * 3 * H * I multiply-adds */
    double max_bytes; /* bytes of all tensors */
} mf_case_limits;

/* Limits of the default fuzz mix: milliseconds per case on one core. */
void mf_case_limits_default(mf_case_limits *l);

/* A dimension from a boundary class, in [1, max]. */
int mf_dim_boundary(mf_rng *r, int max);

/* A random valid case within limits. */
void mf_case_random(mf_rng *r, const mf_case_limits *lim, mf_case *c);

/* Shrinks T, then H and I, then E_local until the case fits the limits; keeps it valid. */
void mf_case_fit(mf_case *c, const mf_case_limits *lim);

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
