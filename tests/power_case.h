/* power_case.h: the random model case of the power table (test_power.c) and of its radius
 * breakdown (power_terms.c): T tokens, every tensor drawn normal, no pokes, the model's routing
 * and sizes from prep, the routed experts only (a preset's shared experts left out). */
#ifndef MF_TESTS_POWER_CASE_H
#define MF_TESTS_POWER_CASE_H

#include "casegen.h"
#include "prepare.h"

static inline mf_status power_case(mf_rng *rng, int T, mf_prep *prep, mf_case *c,
                                   mf_error *err) {
    mf_case_limits lim = {T, MF_MAX_H, MF_MAX_I, MF_MAX_E, 1e30, 1e30, 0, 0, 0, 0, 0};
    mf_case_random(rng, &lim, c);
    c->p.T = T;
    c->n_pokes = 0;
    for (int g = 0; g < MF_NUM_TENSORS; g++) c->gen[g].cls = MF_GEN_NORMAL;
    mf_status st = mf_prep_case(prep, c, err);
    if (st != MF_OK) return st;
    c->p.n_shared = 0;
    mf_case_fix_v2(c);
    return MF_OK;
}

#endif
