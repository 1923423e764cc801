/* attribute.h: naming the dropped parameter.
 *
 * A knob is a way real bugs change one parameter (docs/bugs.md): routed_scaling_factor dropped,
 * squared, or applied only when renormalizing; bias dropped or leaked into the weights; grouping
 * dropped, masked with 0 instead of -inf, or scored by the other group rule; renormalize
 * flipped; eps missing; score function swapped; gate/up swapped; EP offset ignored or applied
 * twice. For a failing case, attribution recomputes the reference with each applicable knob's
 * counterfactual and names the knobs under which the kernel's output (ids, weights, every
 * element) is admissible. Observability asks the converse question of any case: which knobs'
 * counterfactuals would leave the admissible set, i.e. which dropped parameters this case could
 * catch.
 */
#ifndef MF_ATTRIBUTE_H
#define MF_ATTRIBUTE_H

#include "backend.h"
#include "case.h"
#include "verdict.h"

const char *mf_knob_name(mf_knob k);     /* "rsf_dropped", as in kernels/mutants.h */
const char *mf_knob_summary(mf_knob k);  /* "routed_scaling_factor not applied" */
int mf_knob_lookup(const char *name);    /* -1 if unknown */
/* "rsf_dropped+bias_dropped" for a set of knobs, one bit per mf_knob ("none" for none). */
void mf_knobs_format(unsigned knobs, char *buf, size_t n);

/* The counterfactual parameters of knob k for p; 0 if the knob cannot change this case. The
 * description says what changed ("rsf = 1"). */
int mf_knob_apply(mf_knob k, const mf_moe_params *p, mf_moe_params *cf, char *desc, size_t n);

/* Attribution of a kernel run r that failed against contract c. */
mf_status mf_attribute(const mf_problem *pb, const mf_contract *c, const mf_run_result *r,
                       mf_attribution *a, mf_error *err);

/* Knobs this case can observe: bit k set iff a kernel with knob k's bug would certainly leave
 * the admissible set (the counterfactual's admissible outputs and the case's are disjoint at
 * some element, or its exact selection is inadmissible for some token). */
mf_status mf_observable_knobs(const mf_problem *pb, const mf_contract *c, unsigned *mask,
                              mf_error *err);
/* The same for the knobs in `want` only (cheaper). */
mf_status mf_observable_knobs_of(const mf_problem *pb, const mf_contract *c, unsigned want,
                                 unsigned *mask, mf_error *err);

#endif /* MF_ATTRIBUTE_H */
