/* check.h: a kernel checked on a problem: it runs (twice where the contract is deterministic),
 * its results get the verdict of every stage (verdict.h), the metamorphic relations when asked
 * (metamorphic.h), and a failure the knob that explains it (attribute.h). Above the three. */
#ifndef MF_CHECK_H
#define MF_CHECK_H

#include "attribute.h"
#include "backend.h"
#include "case.h"
#include "metamorphic.h"
#include "mf_base.h"
#include "verdict.h"

/* Runs the backend on the problem and checks the result. */
mf_status mf_check_problem(const mf_problem *pb, mf_backend *b, const mf_check_opts *o,
                           mf_verdict *v, mf_error *err);

#endif /* MF_CHECK_H */
