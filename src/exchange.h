/* exchange.h: case and result files for kernels that live outside moefuzz (docs/files.md).
 *
 * A case file is a safetensors file holding the problem's input tensors as the kernel gets them
 * (MF_TENSOR_LIST, case.h: x, logits, bias when present, w13, w2) and, in "__metadata__", every
 * parameter of the case as strings with the
 * names and values of the text case format ("T" = "4", "score" = "sigmoid", "rsf" = "2.5", ...),
 * plus "format" = "moefuzz-case-1" and, when known, the whole text case ("case"), a name and
 * the routing method. A result file holds "out" [T, H] BF16 and optionally "topk_ids" [T, k]
 * I32 and "topk_weights" [T, k] F32, or metadata "unsupported" = REASON. `moefuzz export`
 * writes case files, `moefuzz verify` checks result files, and the exec backend exchanges both
 * with an adapter process.
 */
#ifndef MF_EXCHANGE_H
#define MF_EXCHANGE_H

#include "case.h"
#include "mf_base.h"
#include "run_result.h"
#include "safetensors.h"

#define MF_XCASE_FORMAT "moefuzz-case-1"
#define MF_XRESULT_SUFFIX ".out.safetensors" /* NAME.safetensors -> NAME.out.safetensors */

/* One tensor of a case file: its name, safetensors dtype and shape, and which it is: a tensor id
 * (mf_tensor_id), or -1 - i for MXFP4's packed array i (w13_q, w13_sc, w2_q, w2_sc). */
typedef struct mf_xcase_entry {
    const char *name;
    mf_st_dtype dtype;
    int rank;
    uint64_t shape[MF_TENSOR_MAX_RANK];
    int tensor;
} mf_xcase_entry;

#define MF_XCASE_MAX_TENSORS (MF_NUM_TENSORS + 4)

/* The tensors a case file of parameters p holds, in the order it writes them; returns how many.
 * What a caller building a case from its own arrays must give (the Python package's
 * Case.from_tensors). */
int mf_xcase_layout(const mf_moe_params *p, mf_xcase_entry out[MF_XCASE_MAX_TENSORS]);

/* Writes the inputs of pb and its parameters. c (may be NULL) adds the text case with its
 * generators; name and method (may be NULL) are recorded as "name" and "routing_method". */
mf_status mf_xcase_write(const char *path, const mf_problem *pb, const mf_case *c,
                         const char *name, const char *method, mf_error *err);

/* The expert weights an exec adapter keeps (docs/files.md, exec protocol 3, `cache=weights`):
 * the experts' tensors (w13, w2 and, where present, b13, b2, w13_s, w2_s, sw13, sw2) of the last
 * case file that carried them, by key. */
typedef struct mf_xcase_cache {
    int held;         /* the adapter holds the weights of `key` */
    uint64_t key;     /* a 64-bit hash of the per-expert tensors: names, dtypes, shapes, bytes */
    uint64_t pending; /* the key of the case file just written */
    uint64_t sent, omitted; /* case files written with the weights, and without them */
} mf_xcase_cache;

/* The key of the per-expert tensors among ki's (names, dtypes, shapes, bytes): what a case file's
 * "weights_key" records; the Python package's worker keys its weight cache by it too. */
uint64_t mf_xcase_weights_key(const mf_moe_params *p, const mf_kernel_inputs *ki);

/* mf_xcase_write for an adapter with a weight cache: records "weights_key" (16 hex digits) and,
 * when the adapter holds that key, leaves the per-expert tensors out and records "weights" =
 * "cached". The caller sets held and key from pending once the adapter has answered. */
mf_status mf_xcase_write_cached(const char *path, const mf_problem *pb, const char *method,
                                mf_xcase_cache *cache, mf_error *err);

/* Reads a case file: parameters from the metadata, tensors from the file. Checks that every
 * parameter is present and valid, that the tensors have the dtypes and shapes the parameters
 * imply, and that the text case, when present, has the same parameters (c then carries its
 * generators too). pb owns its tensors (mf_problem_free). */
mf_status mf_xcase_read(const char *path, mf_case *c, mf_problem *pb, mf_error *err);
mf_status mf_xcase_parse(const uint8_t *data, size_t size, mf_case *c, mf_problem *pb,
                         mf_error *err);

/* Reads a result file for a problem with parameters p into r (malloc'd like a backend run's).
 * Metadata "unsupported" sets r->unsupported and its reason. */
mf_status mf_xresult_read(const char *path, const mf_moe_params *p, mf_run_result *r,
                          mf_error *err);
mf_status mf_xresult_parse(const uint8_t *data, size_t size, const mf_moe_params *p,
                           mf_run_result *r, mf_error *err);

/* Writes a result file (tests, and kernels written in C that use the file path). */
mf_status mf_xresult_write(const char *path, const mf_moe_params *p, const mf_run_result *r,
                           mf_error *err);

#endif /* MF_EXCHANGE_H */
