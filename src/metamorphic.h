/* metamorphic.h: relations between kernel runs that need no tolerance.
 *
 *   rsf-scaling   out(2 rsf) = 2 out(rsf), bit for bit (scaling by 2 commutes with rounding),
 *                 on elements whose weights and products w * o stay in the fp32 normal range
 *   bias-shift    adding 1 to every bias changes no output of a token whose selection and
 *                 slot order (the combine's summation order) are unambiguous and unchanged
 *   relabel       permuting experts consistently (logits, bias, W13, W2, whole groups and
 *                 within groups) changes no output of a token whose selection and slot order
 *                 are unambiguous and free of bit-identical ties (sigmoid scores: a softmax
 *                 sums in index order); not for any-order contracts, whose combine may run
 *                 in expert order
 *   ep-shards     split into two expert-parallel shards: a token whose experts all live on one
 *                 shard gets the unsharded output there and exact zeros on the other
 *   full-groups   topk_group = n_group gives the same output as no grouping
 * Elements that are non-finite or within a factor 2 of the bf16 subnormal range are skipped
 * (rounding there does not commute with scaling).
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
    MF_META_COUNT
} mf_meta;

const char *mf_meta_name(mf_meta m);

typedef struct mf_meta_result {
    int applicable[MF_META_COUNT];
    unsigned long long compared[MF_META_COUNT], violations[MF_META_COUNT];
    char first[MF_META_COUNT][256];
    int n_violated; /* relations with at least one violation */
} mf_meta_result;

/* Runs every applicable relation. r0 is the kernel's run on pb (with routing if reported). */
mf_status mf_metamorphic(const mf_problem *pb, mf_backend *b, const mf_run_result *r0,
                         mf_meta_result *m, mf_error *err);

void mf_meta_print(const mf_meta_result *m, FILE *f);

#endif /* MF_METAMORPHIC_H */
