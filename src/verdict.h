/* verdict.h: the verdict of a kernel's results against the reference, by stage.
 *
 * Stages: routing ids admissible; routing weights within their radius; every output element in
 * its admissible bf16 interval; NaN/Inf only where admissible; every output element written and
 * the guard bands intact; two runs bit-identical where the contract is deterministic.
 */
#ifndef MF_VERDICT_H
#define MF_VERDICT_H

#include <stdint.h>
#include <stdio.h>

#include "backend.h"
#include "case.h"
#include "forward.h"
#include "metamorphic.h"
#include "mf_base.h"

typedef enum mf_stage {
    MF_STAGE_ROUTE_IDS = 0,
    MF_STAGE_ROUTE_WEIGHTS = 1,
    MF_STAGE_OUTPUT = 2,
    MF_STAGE_NONFINITE = 3,
    MF_STAGE_UNWRITTEN = 4,
    MF_STAGE_GUARD = 5,
    MF_STAGE_DETERMINISM = 6,
    MF_STAGE_COUNT = 7
} mf_stage;

const char *mf_stage_name(mf_stage s);

typedef struct mf_mismatch {
    mf_stage stage;
    int token, col; /* col: output column, or routing slot; -1 when not applicable */
    uint16_t got, lo, hi;
    double got_d, want, rad, util;
    char note[320];
} mf_mismatch;

#define MF_MAX_REPORTED 12

/* Knobs: the ways real bugs change one parameter (attribute.h names and applies them); a failed
 * verdict records which of them explain it. */
typedef enum mf_knob {
    MF_KNOB_RSF_DROPPED = 0,
    MF_KNOB_RSF_SQUARED,
    MF_KNOB_RSF_GATED_BY_RENORM,
    MF_KNOB_BIAS_DROPPED,
    MF_KNOB_BIAS_IN_WEIGHTS,
    MF_KNOB_GROUPING_DROPPED,
    MF_KNOB_GROUP_MASK_ZERO,
    MF_KNOB_GROUP_RULE_SWAPPED,
    MF_KNOB_RENORMALIZE_FLIPPED,
    MF_KNOB_EPS_MISSING,
    MF_KNOB_SCORE_SWAPPED,
    MF_KNOB_GATE_UP_SWAPPED,
    MF_KNOB_EP_OFFSET_IGNORED,
    MF_KNOB_EP_OFFSET_TWICE,
    MF_KNOB_B2_UNWEIGHTED, /* case format v2's expert biases */
    MF_KNOB_CLAMP_DROPPED, /* case format v2's clamped activations */
    MF_KNOB_INTERLEAVE_IGNORED, /* case format v2's interleaved layout read as gate_up */
    MF_KNOB_UE8M0_DROPPED,
    MF_KNOB_SHARED_EVERY_RANK, /* shared experts (level 4) */
    MF_KNOB_SHARED_RSF_TWICE,
    MF_KNOB_SHARED_DROPPED,
    MF_KNOB_WEIGHT_ON_OUTPUT, /* routing variants (level 5) */
    MF_KNOB_EMPTY_SLOT_WRAPPED, /* pre-routed input (level 6) */
    MF_KNOB_WEIGHTS_IGNORED,
    MF_KNOB_MAP_IGNORED, /* expert maps (level 7) */
    MF_KNOB_TP_B2_EVERY_RANK, /* tensor-parallel shard (level 8) */
    MF_KNOB_COUNT
} mf_knob;

typedef struct mf_knob_result {
    int applicable;
    int pass; /* the kernel's whole output is admissible under the counterfactual */
    unsigned long long bad, checked;
    char desc[64];
} mf_knob_result;

typedef struct mf_attribution {
    mf_knob_result k[MF_KNOB_COUNT];
    int n_match;
    mf_knob match[MF_KNOB_COUNT];
    int best; /* knob with the most admitted elements when none matches, or -1 */
    char text[640];
} mf_attribution;

typedef struct mf_verdict {
    int pass;
    int unsupported;
    char unsupported_reason[256];
    unsigned long long n_bad[MF_STAGE_COUNT];
    int n_rep;
    mf_mismatch rep[MF_MAX_REPORTED];
    double max_util_out, max_util_w; /* utilisation over all checked elements / weights */
    double max_util_informative;     /* over elements whose radius is below |z|/2 in tokens
                                        without a weight enclosure reaching 0 (underflowed
                                        scores saturate the radius there) */
    int max_util_tok, max_util_col;
    unsigned long long elems_checked, elems_unconstrained, elems_nan_ok;
    int tokens, tokens_ambiguous, tokens_undecided, tokens_invariant, tokens_no_local;
    int tokens_many_selections, tokens_many_rejected; /* withheld routing judged over more than
                                                          MF_CHECK_MANY_SELECTIONS; of them, failed */
    unsigned long long experts_ambiguous, groups_ambiguous;
    int cols_verified, cols_total;
    mf_ref_stats ref;
    double kernel_s, ref_s;
    char contract[64];
    int has_meta;         /* metamorphic relations were run */
    mf_meta_result meta;
    int has_attribution;  /* the case failed and attribution ran */
    mf_attribution attr;
} mf_verdict;

typedef struct mf_check_opts {
    int determinism; /* run twice and compare bits when the contract is deterministic */
    int strict;      /* MPFR decides every activation rounding */
    int max_cols;    /* > 0: verify a seeded sample of this many output columns */
    uint64_t sample_seed;
    int profile;
    int metamorphic; /* also run the metamorphic relations (extra kernel runs) */
    int attribute;   /* on a failure, name the knob whose counterfactual explains it */
    int max_selections; /* > 0: admissible selections enumerated per token whose routing the
                           kernel withholds (default MF_CHECK_MAX_SELECTIONS) */
} mf_check_opts;

/* Admissible selections enumerated per token whose routing is withheld; more make the token
 * undecided (counted, never failed). Tokens judged over more than MF_CHECK_MANY_SELECTIONS are
 * counted apart (tokens_many_selections, tokens_many_rejected). */
#define MF_CHECK_MAX_SELECTIONS 16384
#define MF_CHECK_MANY_SELECTIONS 16

void mf_check_opts_default(mf_check_opts *o);

/* Checks results already computed (r2 may be NULL) against contract c. It adds to the counts it
 * finds in v: mf_check_result_fresh clears v first. */
mf_status mf_check_result(const mf_problem *pb, const mf_contract *c, const mf_run_result *r,
                          const mf_run_result *r2, const mf_check_opts *o, mf_verdict *v,
                          mf_error *err);
/* Checks n results at once, rs[i] against pbs[i] (clearing vs[i]); the problems may differ in
 * rsf alone (same tensors, every other parameter equal): one reference serves all, so a power
 * measurement of many mutants costs one reference per case. No determinism check. */
mf_status mf_check_results(const mf_problem *const *pbs, const mf_run_result *const *rs, int n,
                           const mf_contract *c, const mf_check_opts *o, mf_verdict *vs,
                           mf_error *err);

mf_status mf_check_result_fresh(const mf_problem *pb, const mf_contract *c,
                                const mf_run_result *r, const mf_run_result *r2,
                                const mf_check_opts *o, mf_verdict *v, mf_error *err);

/* The stages that failed in v, one bit per mf_stage; "routing-ids+output" for a set ("-" for
 * none). */
unsigned mf_verdict_stages(const mf_verdict *v);
/* 1 if two runs of pb gave the same outputs, routing and written/guard state (so one contract's
 * verdict on them is the same). */
int mf_results_equal(const mf_problem *pb, const mf_run_result *a, const mf_run_result *b);
void mf_stages_format(unsigned stages, char *buf, size_t n);

/* The exact reference output z[T][H] with the reference's own selection (what a high-precision
 * reference implementation computes); valid[t] = 0 for tokens whose selection is ambiguous or
 * whose logits are not finite. For comparisons in the style of allclose. */
mf_status mf_reference_outputs(const mf_problem *pb, const mf_contract *c, double *z,
                               uint8_t *valid, mf_error *err);

/* Writes the verdict for a person (first mismatches, utilisation, ambiguity). */
void mf_verdict_print(const mf_verdict *v, FILE *f);

/* Formats a double as "0x1.8p-3 (0.1875)". */
void mf_fmt_value(char *buf, size_t n, double v);

#endif /* MF_VERDICT_H */
