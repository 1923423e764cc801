/* calibrate.h: the tightest contract a kernel satisfies, found by probing it.
 *
 * A kernel runs once (twice, for determinism) on each probe case: small cases built so that each
 * hypothesis about a contract field predicts a distinguishable verdict (calibrate.c lists them).
 * Every field (mf_calib_field_*) has candidate values ordered from the tightest to the loosest;
 * starting from the loosest contract, each field in turn takes its tightest value under which the
 * kernel still passes every probe, until no field can be tightened. The result is then checked
 * on a validation set (corpus files and random model-preset cases); a case that fails joins the
 * probes and the search runs again, so the contract returned is never one the kernel fails on
 * them. docs/calibrate.md describes the probes and what they cannot tell apart.
 */
#ifndef MF_CALIBRATE_H
#define MF_CALIBRATE_H

#include <stdint.h>
#include <stdio.h>

#include "backend.h"
#include "contract.h"
#include "mf_base.h"
#include "prepare.h"

/* Where the search starts a field. A bound [RN(z - R), RN(z + R)] does not contain every value
 * within R of z, so a rounding point is not a looser contract for a kernel that does not round
 * there: such fields start at their tightest value and are added one at a time. */
typedef enum mf_calib_start {
    MF_CALIB_LOOSEST = 0,     /* the last value admits what the others admit: start there */
    MF_CALIB_ALTERNATIVE = 1, /* values are alternatives: each tried as a start */
    MF_CALIB_ADDED = 2,       /* a rounding: start off, added while it makes more cases pass */
} mf_calib_start;

/* One contract field the search sets: its candidate values, tightest first. */
typedef struct mf_calib_field {
    const char *name; /* "gemm", "round.silu_out", ... */
    const char *what; /* one line for a person */
    int n_values;
    /* sets value v (0 = tightest) of the field in c */
    void (*set)(mf_contract *c, int v);
    /* the value of the field in c, or -1 when c holds none of the candidates */
    int (*get)(const mf_contract *c);
    const char *(*value_name)(int v);
    /* where the search starts the field (mf_calib_start) */
    int start;
} mf_calib_field;

/* The fields, in the order the search visits them; *n gets their number. */
const mf_calib_field *mf_calib_fields(int *n);

typedef struct mf_calib_opts {
    int random_per_model;      /* random validation cases per model preset (20) */
    uint64_t seed;             /* of the random validation cases */
    const char *const *corpus; /* directories or files of the validation set, NULL-terminated */
    int max_rounds;            /* searches after validation failures before giving up (4) */
    FILE *progress;            /* a line per stage, or NULL */
} mf_calib_opts;

void mf_calib_opts_default(mf_calib_opts *o);

#define MF_CALIB_MAX_FIELDS 32

typedef struct mf_calib_decision {
    int value;    /* index into the field's candidates */
    int loosened; /* a validation case made it looser than the probes alone */
    char by[256]; /* the case and verdict that ruled out the next tighter value */
} mf_calib_decision;

typedef struct mf_calib_result {
    int fits;                   /* 0: the kernel fails even the loosest contract */
    char none_fits[512];        /* why, when !fits */
    mf_contract contract;       /* name "calibrated" unless builtin */
    const mf_contract *builtin; /* the built-in contract equal to it field by field, or NULL */
    int n_fields;
    mf_calib_decision d[MF_CALIB_MAX_FIELDS];
    int probes_run, probes_unsupported;
    int valid_run, valid_unsupported, valid_failed_first; /* validation set */
    int rounds;  /* searches run (1 + those after validation failures) */
    int errored; /* cases the kernel failed to run (error, crash, timeout) */
    char first_error[300];
    unsigned probe_builtins; /* bit i: mf_contract_list()[i] passes every probe */
    /* the built-in contract that passes every case run (probes and validation) and differs from
     * the calibrated one in the fewest fields, or NULL; nearest_diff: those fields' bits (bit f:
     * field f of mf_calib_fields) */
    const mf_contract *nearest;
    unsigned nearest_diff;
    char renorm[256]; /* what the kernel's renormalisation divides by, as observed */
    double seconds;
} mf_calib_result;

/* Calibrates the kernel b; cases are prepared with pp (its routing method; no model). err only
 * for errors of the tool (bad corpus path, a crashed kernel): a kernel that fits no contract is
 * a result (fits = 0). */
mf_status mf_calibrate(mf_backend *b, const mf_prep *pp, const mf_calib_opts *o,
                       mf_calib_result *res, mf_error *err);

/* 1 if a and b agree on every field the search sets and every other numeric field (names,
 * summaries and sources aside). */
int mf_calib_contract_equal(const mf_contract *a, const mf_contract *b);

/* Prints the result: the contract (a built-in's name, or its fields), a line per field with
 * the probe that decided it, the declaration to paste, and the validation summary. */
void mf_calib_print(const mf_calib_result *res, FILE *f);

#endif /* MF_CALIBRATE_H */
