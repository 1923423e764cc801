/* route.h: exact routing with key intervals, admissible selections and routing weights.
 *
 * For every token the reference computes each expert's exact score and selection key, and an
 * interval that contains the key any kernel of the contract may compute. From the intervals each
 * expert (and group) is certainly in, certainly out, or ambiguous. A kernel's reported selection
 * is accepted iff some set of computed keys inside the intervals makes it the top-k (with kept
 * groups); bit-identical inputs give identical computed keys, so their ties are checked strictly
 * against the lower-index rule. docs/error-model.md, section "Routing", derives the radii.
 */
#ifndef MF_ROUTE_H
#define MF_ROUTE_H

#include <stddef.h>
#include <stdint.h>

#include "contract.h"
#include "mf_base.h"
#include "problem.h"

typedef enum mf_route_class {
    MF_ROUTE_OUT = 0,
    MF_ROUTE_IN = 1,
    MF_ROUTE_AMBIGUOUS = 2,
} mf_route_class;

typedef struct mf_routing {
    int T, E, n_group, top_k;
    /* per token */
    uint8_t *invariant_only; /* [T] non-finite logit or bias: only the id invariants hold */
    int *n_ambiguous;        /* [T] experts classified ambiguous */
    int *n_group_ambiguous;  /* [T] groups classified ambiguous */
    int *ref_ids;            /* [T][top_k] exact selection, key descending, ties lower index */
    /* per (token, expert) */
    double *s_hi, *s_lo; /* exact score, double-double */
    double *s_rad;       /* |kernel fp32 score - exact| <= s_rad */
    double *key;         /* exact selection key (nearest double) */
    double *key_lo, *key_hi; /* enclosure of the kernel's computed key */
    uint8_t *cls;            /* mf_route_class */
    int *tie;                /* lowest expert index with bit-identical (logit, bias) */
    /* per (token, group) */
    double *g_key, *g_lo, *g_hi;
    uint8_t *g_cls;
    int *g_tie; /* lowest group index with an identical multiset of member inputs */
    const float *bias; /* the problem's bias (weights-from-keys counterfactual), or NULL */
    /* pre-routed input (p->preroute): ref_ids are the given ids (every token decided, the
     * per-expert arrays zero) and given_w [T][top_k] the given weights; else NULL */
    const float *given_w;
} mf_routing;

mf_status mf_ref_route(const mf_moe_params *p, const mf_moe_tensors *x, const mf_contract *c,
                       mf_routing *r, mf_error *err);
void mf_routing_free(mf_routing *r);

/* Is `ids` (top_k entries, slot order) a selection some correct kernel could make for token t?
 * Returns 1 if admissible; else 0 and a one-line reason in why. Pre-routed input: iff ids are
 * the given ids, slot by slot. */
int mf_ref_selection_admissible(const mf_routing *r, const mf_moe_params *p, int t,
                                const int32_t *ids, char *why, size_t why_len);

/* Admissible selections of an ambiguous token (policy B, for kernels that do not report ids):
 * writes up to max_sel selections of top_k ids into sel and returns their count, or -1 if there
 * are more than max_sel (the token is then undecided). */
int mf_ref_enumerate_selections(const mf_routing *r, const mf_moe_params *p, int t, int32_t *sel,
                                int max_sel);

/* The reference's ranking of n keys: order[i] is the index of the i-th largest key, equal keys
 * lower index first (the order selections and group choices are made in). */
void mf_ref_rank(const double *key, int n, int *order);

/* Routing weights of token t for a selection. */
typedef struct mf_weights {
    int k;
    double w_hi[64], w_lo[64]; /* exact weight (the kernel's representative where it rounds) */
    double lo[64], hi[64];     /* enclosure of the kernel's weight */
    double rad[64];            /* max(w - lo, hi - w) */
    int nan_ok;                /* eps = 0 and the weight denominator may be 0: 0/0 allowed */
    double out_scale;          /* applied to the combined row: rsf where rsf_site = output, else 1
                                  (from the parameters the weights were formed under, so a
                                  counterfactual's rsf reaches the output too) */
    double rsf;                /* the rsf they were formed under (a shared expert's 1/rsf) */
} mf_weights;

#define MF_MAX_TOP_K 64

/* sigmoid(L[i]) for n fp32 logits as the router's sigmoid computes it under contract c: the
 * exact value as a double-double (s_hi + s_lo) and the radius that holds the kernel's fp32
 * value (docs/error-model.md, "Scores"); NaN where L[i] is NaN. */
void mf_route_sigmoid(const mf_contract *c, const float *L, int n, double *s_hi, double *s_lo,
                      double *s_rad);

mf_status mf_ref_weights(const mf_routing *r, const mf_moe_params *p, const mf_contract *c, int t,
                         const int32_t *ids, mf_weights *w, mf_error *err);

#endif /* MF_ROUTE_H */
