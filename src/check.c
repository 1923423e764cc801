/* check.c: a kernel checked on a problem (see check.h). */
#include "check.h"

#include <stdio.h>
#include <string.h>

mf_status mf_check_problem(const mf_problem *pb, mf_backend *b, const mf_check_opts *o,
                           mf_verdict *v, mf_error *err) {
    memset(v, 0, sizeof *v);
    mf_run_result r, r2;
    MF_TRY(mf_backend_run(b, pb, &r, err));
    if (r.unsupported) {
        v->pass = 1;
        v->unsupported = 1;
        snprintf(v->unsupported_reason, sizeof v->unsupported_reason, "%s", r.reason);
        mf_run_result_free(&r);
        return MF_OK;
    }
    v->kernel_s = r.seconds;
    int twice = o->determinism && b->contract.deterministic;
    if (twice) {
        mf_status st = mf_backend_run(b, pb, &r2, err);
        if (st != MF_OK) {
            mf_run_result_free(&r);
            return st;
        }
    }
    mf_status st = mf_check_result(pb, &b->contract, &r, twice ? &r2 : NULL, o, v, err);
    if (st == MF_OK && o->metamorphic) {
        st = mf_metamorphic(pb, b, &r, &v->meta, err);
        v->has_meta = st == MF_OK;
        if (v->meta.n_violated) v->pass = 0;
    }
    int checks_failed = 0;
    for (int s = 0; s < MF_STAGE_COUNT; s++) checks_failed |= v->n_bad[s] != 0;
    if (st == MF_OK && o->attribute && checks_failed) {
        /* counterfactuals explain outputs that leave the admissible set; a failure of the
         * metamorphic relations alone has admissible outputs and is reported as such */
        st = mf_attribute(pb, &b->contract, &r, &v->attr, err);
        v->has_attribution = st == MF_OK;
    }
    mf_run_result_free(&r);
    if (twice) mf_run_result_free(&r2);
    return st;
}
