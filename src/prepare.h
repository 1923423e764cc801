/* prepare.h: the one path from a case to the problem a command checks. check, explain, export
 * and the fuzz target all take it, in this order: the model's routing and sizes (--model,
 * --full), the routing method (--method), the size limit (--max-mib) on the case as it will
 * run, then the problem's tensors. */
#ifndef MF_PREPARE_H
#define MF_PREPARE_H

#include "case.h"
#include "methods.h"
#include "mf_base.h"
#include "models.h"

/* Largest case (MiB of tensors) the CPU-side tools build unless --max-mib says otherwise: a
 * third of the 24 GiB machines CI and the developers use, which a full-size DeepSeek-V3 case of a
 * few tokens fits now that only its routable experts are generated (about 5.3 GiB at T = 4). */
#define MF_DEFAULT_MAX_MIB 8192

typedef struct mf_prep {
    const mf_model *model;   /* NULL: the case's own routing and sizes */
    int full;                /* with a model: its full H and I, else its small twin */
    int fold_T;              /* > 0, with a model and not full: T above it becomes 1 + T % fold_T */
    const mf_method *method; /* NULL: the case's own routing */
    double max_mib;          /* > 0: refuse cases whose tensors exceed it */
} mf_prep;

/* No model, no method, MF_DEFAULT_MAX_MIB. */
void mf_prep_default(mf_prep *pp);

/* Sets the model by name (NULL: none); an unknown model or one case format v1 cannot express is
 * MF_EINVAL / MF_EUNSUPPORTED with the message in err. */
mf_status mf_prep_set_model(mf_prep *pp, const char *name, int full, mf_error *err);

/* Sets the routing method by name (NULL: none), refusing an unknown one or one v1 cannot
 * express. */
mf_status mf_prep_set_method(mf_prep *pp, const char *name, mf_error *err);

/* Applies the model and the method to c, then the size limit. */
mf_status mf_prep_case(const mf_prep *pp, mf_case *c, mf_error *err);

/* mf_prep_case, then builds the problem (pb is left empty on failure). */
mf_status mf_prep_problem(const mf_prep *pp, mf_case *c, mf_problem *pb, mf_error *err);

/* Loads a case file (allow_raw: raw fuzzer inputs too) and prepares its problem; every message
 * starts with the path. */
mf_status mf_prep_load(const mf_prep *pp, const char *path, int allow_raw, mf_case *c,
                       mf_problem *pb, mf_error *err);

#endif /* MF_PREPARE_H */
