/* check.c: a kernel checked on a problem (see check.h). */
#include "check.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A metamorphic relation's transformed run checked as any case is (mf_meta_checker). */
static mf_status check_transformed(const mf_problem *q, const mf_contract *c,
                                   const mf_run_result *r, mf_meta_check *out, mf_error *err) {
    mf_verdict *v = malloc(sizeof *v);
    if (!v) return MF_FAIL(err, MF_ENOMEM, "out of memory");
    mf_check_opts o;
    mf_check_opts_default(&o);
    o.determinism = 0, o.attribute = 0;
    mf_status st = mf_check_result_fresh(q, c, r, NULL, &o, v, err);
    memset(out, 0, sizeof *out);
    out->pass = v->pass;
    out->checked = v->elems_checked;
    const mf_mismatch *mm = &v->rep[0];
    if (v->n_rep)
        snprintf(out->first, sizeof out->first, "[tok %d, col %d] %s: got %a, want %a (radius %a)",
                 mm->token, mm->col, mf_stage_name(mm->stage), mm->got_d, mm->want, mm->rad);
    else
        snprintf(out->first, sizeof out->first, "fails its check");
    free(v);
    return st;
}

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
        if (st == MF_OK && r2.unsupported) {
            st = MF_FAIL(err, MF_EBACKEND,
                         "the kernel ran the case, then refused it on the determinism run: %s",
                         r2.reason);
            mf_run_result_free(&r2);
        }
        if (st != MF_OK) {
            mf_run_result_free(&r);
            return st;
        }
    }
    mf_status st = mf_check_result(pb, &b->contract, &r, twice ? &r2 : NULL, o, v, err);
    if (st == MF_OK && o->metamorphic) {
        st = mf_metamorphic(pb, b, &r, check_transformed, &v->meta, err);
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
