/* prepare.c: the one path from a case to a problem (see prepare.h). */
#include "prepare.h"

#include <string.h>

#include "codec.h"

void mf_prep_default(mf_prep *pp) {
    memset(pp, 0, sizeof *pp);
    pp->max_mib = MF_DEFAULT_MAX_MIB;
}

mf_status mf_prep_set_model(mf_prep *pp, const char *name, int full, mf_error *err) {
    pp->model = NULL;
    pp->full = full;
    if (!name) return MF_OK;
    const mf_model *m = mf_model_find(name);
    if (!m) return MF_FAIL(err, MF_EINVAL, "unknown model '%s' (moefuzz models)", name);
    if (m->unsupported)
        return MF_FAIL(err, MF_EUNSUPPORTED, "model %s needs %s, not in case format v1", m->name,
                       m->unsupported);
    pp->model = m;
    return MF_OK;
}

mf_status mf_prep_set_method(mf_prep *pp, const char *name, mf_error *err) {
    pp->method = NULL;
    if (!name) return MF_OK;
    const mf_method *m = mf_method_find(name);
    if (!m) return MF_FAIL(err, MF_EINVAL, "unknown routing method '%s' (moefuzz methods)", name);
    mf_case probe; /* a method v1 cannot express fails on any case */
    mf_case_default(&probe);
    MF_TRY(mf_method_apply(m, &probe, err));
    pp->method = m;
    return MF_OK;
}

mf_status mf_prep_case(const mf_prep *pp, mf_case *c, mf_error *err) {
    if (pp->model) {
        mf_model_apply(pp->model, pp->full, c);
        if (pp->fold_T > 0 && !pp->full && c->p.T > pp->fold_T) c->p.T = 1 + c->p.T % pp->fold_T;
    }
    if (pp->method) MF_TRY(mf_method_apply(pp->method, c, err));
    double mib = mf_case_bytes(c) / 1048576.0;
    if (pp->max_mib > 0 && mib > pp->max_mib)
        return MF_FAIL(err, MF_EUNSUPPORTED,
                       "the tensors need %.0f MiB, more than the limit of %.0f MiB (--max-mib)",
                       mib, pp->max_mib);
    return MF_OK;
}

mf_status mf_prep_problem(const mf_prep *pp, mf_case *c, mf_problem *pb, mf_error *err) {
    memset(pb, 0, sizeof *pb);
    MF_TRY(mf_prep_case(pp, c, err));
    return mf_problem_build(c, pb, err);
}

mf_status mf_prep_load(const mf_prep *pp, const char *path, int allow_raw, mf_case *c,
                       mf_problem *pb, mf_error *err) {
    memset(pb, 0, sizeof *pb);
    MF_TRY(mf_case_load(path, allow_raw, c, NULL, err)); /* its messages name the path */
    mf_error e2 = {0};
    mf_status st = mf_prep_problem(pp, c, pb, &e2);
    if (st != MF_OK) return MF_FAIL(err, st, "%.400s: %.600s", path, e2.msg);
    return MF_OK;
}
