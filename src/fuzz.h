/* fuzz.h: one fuzz iteration (decode, run the backend, check, classify), shared by the libFuzzer
 * targets in fuzz/, their replay main and `moefuzz repro`. The targets stay thin: they call
 * mf_fuzz_one, set the extra counters it names, and trap on a failure.
 *
 * Environment (read once): MOEFUZZ_BACKEND (default: the target's build-time backend),
 * MOEFUZZ_MODEL (a preset of models.h: routing fixed, tokens and data vary), MOEFUZZ_FULL=1
 * (full model size instead of the twin), MOEFUZZ_MAX_WORK (reference multiply-adds per case;
 * bigger cases are skipped), MOEFUZZ_NO_BUDGET=1 (replay: run every input whatever its size),
 * MOEFUZZ_META_EVERY (metamorphic relations on one input in N, default 8; replays use 1),
 * MOEFUZZ_STATS (directory for per-process statistics read by `moefuzz fuzz`), MOEFUZZ_METHOD (a
 * routing method of methods.h applied to every case), MOEFUZZ_CONTRACT (check against this
 * contract instead of the kernel's own); MOEFUZZ_ISOLATE and MOEFUZZ_TIMEOUT reach the backend
 * (backend.h).
 */
#ifndef MF_FUZZ_H
#define MF_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "casegen.h"
#include "check.h"
#include "methods.h"
#include "models.h"

typedef enum mf_fuzz_outcome {
    MF_FUZZ_PASS = 0,
    MF_FUZZ_SKIP = 1,  /* over the work budget, or unsupported by the kernel */
    MF_FUZZ_FAIL = 2,  /* a mismatch: the kernel is wrong (or the bound is) */
    MF_FUZZ_ERROR = 3, /* the backend crashed or reported an error */
} mf_fuzz_outcome;

/* Configuration cells: the parameter-space coordinates of a case (docs/fuzzing.md): score, bias
 * kind, grouped, renormalize, rsf class and site, expert parallelism (none, contiguous, expert
 * map), up_gate, logits dtype, eps, top_k class, T class, v2 semantics class (mf_fuzz_cell). */
#define MF_FUZZ_CELLS                                                                      \
    (MF_SCORE_COUNT * MF_BIAS_COUNT * 2 * 2 * (1 + MF_RSF_COUNT) * 3 * 2 * MF_DTYPE_COUNT * \
     2 * 3 * 3 * 8)
/* Extra-counter layout: [cell x ambiguous] | [coarse config x utilisation bucket] |
 * [coarse config x number of observable knobs] | [observable knob] */
#define MF_FUZZ_UTIL_BUCKETS 9
#define MF_FUZZ_COARSE (MF_SCORE_COUNT * MF_BIAS_COUNT * 2 * 2)
#define MF_FUZZ_KNOBS MF_KNOB_COUNT
#define MF_FUZZ_COUNTERS                                         \
    (MF_FUZZ_CELLS * 2 + MF_FUZZ_COARSE * MF_FUZZ_UTIL_BUCKETS + \
     MF_FUZZ_COARSE * (MF_FUZZ_KNOBS + 1) + MF_FUZZ_KNOBS)
/* One input in this many also runs the metamorphic relations; one in this many (offset by half)
 * computes the knobs the case can observe. */
#define MF_FUZZ_META_EVERY 8
#define MF_FUZZ_OBSERVE_EVERY 8

typedef struct mf_fuzz_config {
    char backend[256];
    const mf_model *model;
    int full;
    mf_case_limits lim;
    char stats_dir[1024];
    int meta_every; /* run the metamorphic relations on one input in this many (MOEFUZZ_META_EVERY)
                     */
    int observe_every; /* compute observability on one input in this many */
    /* routing method applied to every case (MOEFUZZ_METHOD; else the one the backend
     * declares, once it is open); method_name keeps an unknown name for the error */
    const mf_method *method;
    char method_name[64];
    char contract_name[64]; /* MOEFUZZ_CONTRACT: replaces the kernel's declared contract */
} mf_fuzz_config;

/* The defaults of a campaign on backend (limits for the model, or the default mix when NULL). */
void mf_fuzz_config_init(mf_fuzz_config *cfg, const char *backend, const mf_model *model,
                         int full);
/* Defaults from the environment; default_backend is the target's build-time choice. */
void mf_fuzz_config_from_env(mf_fuzz_config *cfg, const char *default_backend);
/* No budget (replays: every input runs, whatever its size), the same rows rule (mf_case_rows):
 * a replayed input runs the case the campaign ran. */
void mf_fuzz_config_no_budget(mf_fuzz_config *cfg);

typedef struct mf_fuzz mf_fuzz;

mf_fuzz *mf_fuzz_new(const mf_fuzz_config *cfg);
void mf_fuzz_free(mf_fuzz *f);
/* Runs the inputs on b, a backend already open (the Python package's kernel callables), instead
 * of opening cfg.backend; f owns it from here (mf_backend_close at mf_fuzz_free). */
struct mf_backend;
void mf_fuzz_use_backend(mf_fuzz *f, const struct mf_backend *b);

typedef struct mf_fuzz_result {
    mf_fuzz_outcome outcome;
    mf_case c; /* the case as run (model applied) */
    mf_verdict v;
    char error[1024];
    int cell, coarse, util_bucket, ambiguous;
    int observed;         /* observability was computed for this input */
    unsigned knobs;       /* the knobs it can observe */
    int backend_unusable; /* MF_FUZZ_ERROR because the backend could not be opened at all */
    int no_device;        /* ... because no GPU answers: a skip (77), not a finding */
} mf_fuzz_result;

/* Decodes and runs one input. Backends open lazily on the first input (CUDA is initialised in
 * the process that fuzzes, never in a fork-mode parent). */
mf_fuzz_outcome mf_fuzz_one(mf_fuzz *f, const uint8_t *data, size_t size, mf_fuzz_result *r);

/* The first failing stage of a failed result ("metamorphic" when only a relation was violated),
 * "error" for a backend error, NULL for a pass or skip. */
const char *mf_fuzz_failed_stage(const mf_fuzz_result *r);

/* The name of the contract the result was checked against (the kernel's or MOEFUZZ_CONTRACT);
 * "" before the backend opened. */
const char *mf_fuzz_contract_name(const mf_fuzz *f);

/* A failed or errored result's signature, by which campaigns group failures: the first failing
 * stage and the knob attribution suspects ("backend error: ..." for an error). */
void mf_fuzz_signature(const mf_fuzz_result *r, char *sig, size_t n);

/* The case as text, the diagnosis, and how to replay it. */
void mf_fuzz_report(const mf_fuzz_result *r, const char *backend, FILE *out);

/* Indices of the extra counters this result hits (< MF_FUZZ_COUNTERS); returns their number. */
int mf_fuzz_features(const mf_fuzz_result *r, uint32_t *idx, int max);

/* Configuration cell of a case, and its coarse class. */
int mf_fuzz_cell(const mf_case *c);
int mf_fuzz_coarse(const mf_case *c);
int mf_fuzz_util_bucket(double util, int pass);

/* Per-process statistics, written to cfg.stats_dir/stats-PID.bin every few hundred inputs or every
 * second, and at exit; `moefuzz fuzz` sums them (a worker stopped by a signal loses at most its
 * last second). */
typedef struct mf_fuzz_stats {
    uint32_t magic, version;
    uint64_t execs, passes, skips, fails, errors, unsupported;
    double max_util, max_util_informative;
    uint64_t cases_by_bucket[MF_FUZZ_UTIL_BUCKETS];
    uint64_t meta_runs, meta_violations;
    uint64_t observed_cases;            /* cases whose observability was computed */
    uint64_t observable[MF_FUZZ_KNOBS]; /* of those, cases that could catch each knob */
    uint8_t cells[MF_FUZZ_CELLS];       /* 1 if reached */
    char contract[64];                  /* the contract checked against */
    uint64_t cases_by_size[MF_SIZE_COUNT]; /* checked cases by mf_case_size_class */
    uint64_t size_max[MF_SIZE_COUNT][3];   /* the largest T, H and I checked in each class */
} mf_fuzz_stats;

#define MF_FUZZ_STATS_MAGIC 0x4d465a53u /* "MFZS" */
#define MF_FUZZ_STATS_VERSION 6
void mf_fuzz_stats_flush(mf_fuzz *f);
/* The summary lines of a campaign's statistics: configuration cells, utilisation, size classes,
 * metamorphic relations and observability (`moefuzz fuzz` and moefuzz.fuzz print them). */
void mf_fuzz_stats_print(const mf_fuzz_stats *sum, FILE *out);
const mf_fuzz_stats *mf_fuzz_get_stats(const mf_fuzz *f);

/* Forces a case into the fuzz configuration (model and budget) the way mf_fuzz_one does. */
void mf_fuzz_shape(const mf_fuzz_config *cfg, mf_case *c);

/* ---- input files of the fuzz tools (replay, repro, minimize) ----
 * A file named *.txt is a text case (a parse error is an error, never a fallback); a canonical
 * binary case is that case; anything else is the raw bytes a fuzzer ran, and so is every file
 * when raw is set. `bytes` is what the target runs: the file itself, or a text case's canonical
 * encoding. */
typedef enum mf_fuzz_input_kind {
    MF_FUZZ_INPUT_TEXT,
    MF_FUZZ_INPUT_CANONICAL,
    MF_FUZZ_INPUT_RAW,
} mf_fuzz_input_kind;

typedef struct mf_fuzz_input {
    mf_fuzz_input_kind kind;
    uint8_t *bytes; /* owned; mf_fuzz_input_free */
    size_t len;
    size_t file_len;
    int printable; /* raw bytes that read like text (a text case without the .txt name?) */
} mf_fuzz_input;

mf_status mf_fuzz_input_load(const char *path, int raw, mf_fuzz_input *in, mf_error *err);
void mf_fuzz_input_free(mf_fuzz_input *in);
const char *mf_fuzz_input_kind_name(mf_fuzz_input_kind k);

/* ---- a campaign's settings, recorded in its work dir (WORKDIR/campaign.txt) ----
 * `moefuzz fuzz` writes them; `repro` and `minimize` of an input under that dir use them unless
 * told otherwise. Empty strings: none (contract: the kernel's own). */
#define MF_FUZZ_CAMPAIGN_FILE "campaign.txt"
typedef struct mf_fuzz_campaign {
    char backend[256], model[64], method[64], contract[64];
    int full;
} mf_fuzz_campaign;

/* note: an extra comment line (may be NULL) */
mf_status mf_fuzz_campaign_write(const char *workdir, const mf_fuzz_campaign *c, const char *note,
                                 mf_error *err);
/* MF_OK, MF_EIO when the dir holds no campaign file, MF_EINVAL for a malformed one. */
mf_status mf_fuzz_campaign_read(const char *workdir, mf_fuzz_campaign *c, mf_error *err);
/* The work dir an input file belongs to: its own directory or the one above (artifacts/, corpus/)
 * when that holds a campaign file. Returns 1 and fills dir, or 0. */
int mf_fuzz_campaign_find(const char *input_path, char *dir, size_t n);
/* Finds the campaign of an input, reads it, and sets MOEFUZZ_BACKEND, _MODEL, _FULL, _METHOD and
 * _CONTRACT from it where they are not set already (a command line sets its options first).
 * Returns 1 when applied (c and dir filled), 0 when the input has no campaign, -1 (err) for a
 * malformed campaign file. */
int mf_fuzz_campaign_use(const char *input_path, mf_fuzz_campaign *c, char *dir, size_t n,
                         mf_error *err);
/* 1 if a and b fuzz the same thing (backend, model, full, method, contract). */
int mf_fuzz_campaign_same(const mf_fuzz_campaign *a, const mf_fuzz_campaign *b);

/* Writes s to out quoted for a POSIX shell (unchanged when it needs no quotes); truncates to n. */
void mf_shell_quote(const char *s, char *out, size_t n);

#endif /* MF_FUZZ_H */
