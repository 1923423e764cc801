/* metamorphic.h: relations between kernel runs that need no tolerance.
 *
 *   rsf-scaling   out(2 rsf) = 2 out(rsf), bit for bit (scaling by 2 commutes with rounding),
 *                 on elements whose weights and products w * o stay in the fp32 normal range
 *   bias-shift    adding 1 to every bias changes no output of a token whose selection and
 *                 slot order (the combine's summation order) are unambiguous and unchanged
 *   relabel       permuting experts consistently (logits, bias, W13, W2, whole groups and
 *                 within groups) changes no output of a token whose selection and slot order
 *                 are unambiguous and free of bit-identical ties (sigmoid scores: a softmax
 *                 sums in index order)
 *   ep-shards     split into two expert-parallel shards: a token whose experts all live on one
 *                 shard gets the unsharded output there and exact zeros on the other
 *   full-groups   topk_group = n_group gives the same output as no grouping
 *   map-shards    partition the experts over 2 or 3 ranks, each an expert map with holes in an
 *                 order other than the global one (ABI level 7): a token whose experts all live
 *                 on one rank gets the unsharded output there and exact zeros on the others;
 *                 every rank's run passes its own check (a split token's partial outputs sum to
 *                 the unsharded one within their bounds)
 *   tp-shards     split I into tensor-parallel ranks: the ranks' partial outputs sum to the
 *                 unsharded output within the sum of the runs' radii (a bound: every token is
 *                 split, so no bit-for-bit identity; bf16 weights)
 * Elements that are non-finite or within a factor 2 of the bf16 subnormal range are skipped
 * (rounding there does not commute with scaling).
 *
 * Each relation is an identity between runs only under the contract fields it needs (every one
 * needs `deterministic`: two runs compared bit for bit; rsf-scaling also ftz = 0; bias-shift
 * also weight_form plain; full-groups also one sigmoid form, i.e. one router path; relabel also
 * an accumulation other than any_order). Where the contract does not give them, the relation
 * checks each transformed run against the reference on its own (a transformed case is a valid
 * case), and says why (mf_meta_result.why).
 */
#ifndef MF_METAMORPHIC_H
#define MF_METAMORPHIC_H

#include <stdio.h>

#include "backend.h"
#include "case.h"
#include "contract.h"

typedef enum mf_meta {
    MF_META_RSF_SCALING = 0,
    MF_META_BIAS_SHIFT,
    MF_META_RELABEL,
    MF_META_EP_SHARDS,
    MF_META_FULL_GROUPS,
    MF_META_MAP_SHARDS,
    MF_META_TP_SHARDS,
    MF_META_COUNT
} mf_meta;

const char *mf_meta_name(mf_meta m);

typedef struct mf_meta_result {
    int applicable[MF_META_COUNT];
    unsigned long long compared[MF_META_COUNT], violations[MF_META_COUNT];
    char first[MF_META_COUNT][256];
    int n_violated; /* relations with at least one violation */
    /* how each applicable relation ran: 1 = bit-for-bit identity between runs, 0 = each
     * transformed run checked against the reference on its own (runs: how many; compared: the
     * elements the checker verified; violations: the runs that failed) */
    int identity[MF_META_COUNT];
    unsigned runs[MF_META_COUNT];
    char why[MF_META_COUNT][160]; /* the contract fields that decided the mode */
    /* transformed runs the kernel refused (supports() or run() answering unsupported): left
     * out of the relation, and reported with the first reason */
    unsigned refused[MF_META_COUNT];
    char refused_why[MF_META_COUNT][120];
} mf_meta_result;

/* The normal checker of one run, for the independent checks (src/check.c gives it: the verdict
 * lies above this layer). Checks run r of problem q against contract c: pass, the elements
 * checked and, on a failure, the first mismatch in words. */
typedef struct mf_meta_check {
    int pass;
    unsigned long long checked;
    char first[200];
} mf_meta_check;
typedef mf_status (*mf_meta_checker)(const mf_problem *q, const mf_contract *c,
                                     const mf_run_result *r, mf_meta_check *out, mf_error *err);

/* Runs every applicable relation. r0 is the kernel's run on pb (with routing if reported);
 * checker checks a transformed run where a relation runs as independent checks. */
mf_status mf_metamorphic(const mf_problem *pb, mf_backend *b, const mf_run_result *r0,
                         mf_meta_checker checker, mf_meta_result *m, mf_error *err);

void mf_meta_print(const mf_meta_result *m, FILE *f);

#endif /* MF_METAMORPHIC_H */
