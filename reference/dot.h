/* dot.h: exact dot products of bf16 vectors with a rigorous bound on what a kernel's fp32
 * accumulation may return.
 *
 * Exactness: a bf16 x bf16 product has at most 16 significant bits and an exponent in
 * [-266, 256], so it is exact in double. Products are added into double bins of 16 binades each
 * (bin = top 7 bits of the double's exponent field). Every product in bin k is a multiple of
 * 2^(16k-1038) and below 2^(16k-1007), so a bin's sum stays an integer multiple of that unit
 * below n * 2^31 units: exact for n <= 2^22 terms. The bins are finished by a double-double sum
 * whose error is tracked exactly term by term; when that error is not negligible (catastrophic
 * cancellation) the bins are summed exactly by mpfr_sum instead.
 *
 * Bounds (docs/error-model.md): alongside the exact loop the same pass accumulates the side sums
 * of the contract's accumulation model: sum|p| (any order, T0), the partial sums at fused-step
 * boundaries and the per-step maxima (partial-sum bound T1).
 */
#ifndef MF_DOT_H
#define MF_DOT_H

#include <stddef.h>
#include <stdint.h>

#include "enums.h"

#define MF_DOT_MAX_TERMS (1u << 22) /* exactness limit of a 16-binade double bin */

/* seq_fp32: one fp32 chain in K order, each step rounded to nearest; fused_block: a chain of
 * fused steps of `block` products (tensor cores), terms aligned to the largest exponent field
 * and truncated to `frac_bits` fraction bits, step result truncated (RZ) to fp32; any_order: any
 * order and blocking with at least 24 fraction bits (enums.h) */
MF_ENUM_DEFINE(mf_acc_kind, MF_ACC, MF_ACC_LIST);

typedef struct mf_acc_model {
    mf_acc_kind kind;
    int block;     /* MF_ACC_FUSED_BLOCK: products per fused step (Hopper bf16: 16) */
    int frac_bits; /* MF_ACC_FUSED_BLOCK: fraction bits kept below the step maximum (Hopper: 25) */
} mf_acc_model;

/* Exponent range of a bf16 vector's nonzero finite entries, computed once per vector. */
typedef struct mf_vec_info {
    int emin, emax;    /* floor(log2|v|) over nonzero finite entries; emin > emax if none */
    int has_subnormal; /* any nonzero |v| < 2^-126 */
    int has_nonfinite; /* any NaN or Inf */
} mf_vec_info;

void mf_vec_info_bf16(const uint16_t *v, size_t n, size_t stride, mf_vec_info *info);

typedef enum mf_dot_flags {
    MF_DOT_NONFINITE = 1,    /* an input is NaN/Inf: the value is IEEE's, the radius is void */
    MF_DOT_MAY_OVERFLOW = 2, /* a partial sum may exceed the fp32 range within the radius */
    MF_DOT_MPFR_FALLBACK = 4 /* finished by mpfr_sum (cancellation) */
} mf_dot_flags;

typedef struct mf_dot {
    double hi, lo;  /* exact value ~= hi + lo, |lo| <= ulp(hi)/2 */
    double err;     /* |exact - (hi + lo)| <= err (0 when exact) */
    double radius;  /* |kernel fp32 result - exact| <= radius under the model; includes err and
                       the input perturbation term */
    double abs_sum; /* sum |a_i b_i| */
    unsigned flags; /* mf_dot_flags */
} mf_dot;

/* Working memory for one thread: exponent bins. Create once, reuse for every dot. */
typedef struct mf_dot_ws mf_dot_ws;
mf_dot_ws *mf_dot_ws_new(void);
void mf_dot_ws_free(mf_dot_ws *ws);

/* sum_i a[i] * b[i], i < n. a holds exact bf16 values as doubles, b bf16 bits. The infos describe
 * the same vectors. delta (may be NULL) gives per-element radii of a: the kernel may use any
 * a'[i] in [a[i] - delta[i], a[i] + delta[i]]; the radius then covers every such a'. */
void mf_dot_bf16(mf_dot_ws *ws, const double *a, const mf_vec_info *ai, const double *delta,
                 const uint16_t *b, const mf_vec_info *bi, size_t n, const mf_acc_model *m,
                 mf_dot *out);

/* Statistics (for `moefuzz bench reference` and reports). With mf_dot_ws_profile(ws, 1) every
 * dot product's inputs are recorded; mf_dot_ws_replay_loops then runs the accumulation loops
 * alone over the recorded inputs, timing the loop share of the reference without instrumenting
 * the hot path (the inputs must still be alive). */
typedef struct mf_dot_stats {
    unsigned long long dots, terms, fallbacks;
    double loop_s; /* time of the replayed accumulation loops */
} mf_dot_stats;

void mf_dot_ws_profile(mf_dot_ws *ws, int on);
void mf_dot_ws_stats(const mf_dot_ws *ws, mf_dot_stats *st);
double mf_dot_ws_replay_loops(mf_dot_ws *ws);

#endif /* MF_DOT_H */
