/* forward.h: exact expert computations and output admissible sets.
 *
 * Per selected local expert e of token t (docs/error-model.md, "Experts"):
 *   g_j, u_j = W13[e] x_t exactly, radii from the contract's accumulation model
 *   a_j = silu(g_j) u_j; rho_a from the Lipschitz bound of silu (1.1), the evaluation error of
 *         silu and one rounding of the product
 *   h_j = RN_bf16(a_j): the kernel may hold any bf16 value in [RN(a - rho_a), RN(a + rho_a)];
 *         the reference continues with h*_j = RN(a_j) and delta_j covering the others
 *   o_c = W2[e] h* exactly, radius: sum_j delta_j |W2_cj| + accumulation bound
 * Output: z_c = sum_k w_k o_{k,c} with rho_z = sum(|w| rho_o + rho_w |o| + rho_w rho_o)
 *         + (gamma_k + u)(sum|w o| + that); admissible [RN_bf16(z - rho), RN_bf16(z + rho)].
 * Tokens whose x rows are bit-identical share their expert outputs: each (row, expert) pair is
 * computed once, on its first use, and every copy reads the same values and radii (up to
 * 256 MiB of kept outputs; past it a copy computes its own, the same bits).
 */
#ifndef MF_FORWARD_H
#define MF_FORWARD_H

#include <stdint.h>

#include "contract.h"
#include "dot.h"
#include "mf_base.h"
#include "problem.h"
#include "route.h"

typedef enum mf_elem_flags {
    MF_ELEM_UNCONSTRAINED = 1, /* depends on a NaN/Inf input or a possible fp32 overflow */
    MF_ELEM_NAN_OK = 2,        /* NaN admissible: the weight denominator may be 0 (eps = 0) */
    MF_ELEM_NOT_CHECKED = 4,   /* outside the verified subset (sampling) */
    MF_ELEM_UNDECIDED = 8,     /* routing undecided: too many admissible selections */
    MF_ELEM_NAN_REQUIRED = 16, /* a NaN given weight on a local slot: IEEE arithmetic gives NaN */
} mf_elem_flags;

typedef struct mf_ref_ctx mf_ref_ctx;

typedef struct mf_ref_options {
    int strict;        /* MPFR decides every rounding of the activation (no double fast path) */
    int profile;       /* collect loop / outside-loop timing */
    const int *cols;   /* verify only these output columns (NULL: all) */
    int ncols;
    int no_reuse;      /* compute every (token, expert) pair, even for a repeated x row */
} mf_ref_options;

/* Statistics of one reference run. */
typedef struct mf_ref_stats {
    unsigned long long experts;      /* (token, expert) pairs computed */
    unsigned long long experts_reused; /* pairs of a repeated x row served from its first copy */
    unsigned long long act_elems;    /* activations computed */
    unsigned long long act_mpfr;     /* activations whose rounding MPFR decided */
    unsigned long long act_ambiguous;/* activations with more than one admissible bf16 value */
    double total_s;                  /* profiled time in mf_ref_* calls */
    mf_dot_stats dot;
} mf_ref_stats;

mf_ref_ctx *mf_ref_ctx_new(const mf_moe_params *p, const mf_moe_tensors *x, const mf_contract *c,
                           const mf_ref_options *opt, mf_error *err);
void mf_ref_ctx_free(mf_ref_ctx *ctx);
/* Statistics; with opt.profile this first replays the accumulation loops (dot.h) to time them. */
void mf_ref_ctx_stats(mf_ref_ctx *ctx, mf_ref_stats *st);

/* Output of one expert for token t (local expert index le), H columns. Owned by the context and
 * valid until the context moves to another token. */
typedef struct mf_expert_out {
    const double *o_hi, *o_lo, *o_rad;
    const uint8_t *flags; /* mf_elem_flags per column */
} mf_expert_out;

mf_status mf_ref_expert(mf_ref_ctx *ctx, int t, int le, mf_expert_out *out, mf_error *err);

/* Admissible outputs of token t for a selection and its weights: z, rad, lo, hi, flags each of
 * H entries (the row of token t). */
typedef struct mf_ref_row {
    double *z;   /* exact output, nearest double */
    double *rad; /* radius around z (covers the double rounding of z) */
    uint16_t *lo, *hi;
    uint8_t *flags;
} mf_ref_row;

mf_status mf_ref_token_output(mf_ref_ctx *ctx, int t, const int32_t *ids, const mf_weights *w,
                              mf_ref_row *row, mf_error *err);

/* Utilisation of a kernel output y against (z, rad): the distance from z to the set of reals
 * that round to y, over rad. 0 when y = RN_bf16(z); <= 1 iff y is admissible. */
double mf_ref_utilisation(double z, double rad, uint16_t y);

#endif /* MF_FORWARD_H */
