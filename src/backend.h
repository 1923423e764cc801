/* backend.h: the kernels moefuzz can run, behind one interface.
 *
 * A backend wraps an mf_kernel_api (kernels/include/moefuzz/kernel_abi.h): the built-in CPU
 * kernel "cpu", the CUDA kernel "cuda" (when built with CUDA), the mutants of the test build
 * ("cpu-mutant:NAME"), and plugins ("plugin:PATH.so"). Running a backend poisons the output
 * buffer, surrounds it with guard bands, and reports what the kernel wrote. Plugins run in a
 * worker process by default (backend_isolate.c); "exec:COMMAND" runs a kernel in any language
 * through case and result files (backend_exec.c, docs/files.md).
 *
 * The modules depend one way: backend_factory.c (mf_backend_open, _run, _close: the kind of a
 * backend chosen and dispatched on) above backend_isolate.c and backend_exec.c, both above
 * backend.c (the kernel in this process, and the ABI helpers the other two use); run_result.h
 * below them all and below the case and result files (exchange.c).
 */
#ifndef MF_BACKEND_H
#define MF_BACKEND_H

#include <stddef.h>
#include <stdint.h>

#include "case.h"
#include "contract.h"
#include "mf_base.h"
#include "moefuzz/kernel_abi.h"
#include "run_result.h"

/* Memory operations for kernels that want device memory (set by the CUDA backend module). */
typedef struct mf_device_ops {
    int (*alloc)(void **ptr, size_t bytes, char *msg, size_t msg_len);
    void (*free)(void *ptr);
    int (*to_device)(void *dst, const void *src, size_t bytes, char *msg, size_t msg_len);
    int (*to_host)(void *dst, const void *src, size_t bytes, char *msg, size_t msg_len);
    int (*sync)(void *stream, char *msg, size_t msg_len);
    void *stream;
} mf_device_ops;

typedef struct mf_backend {
    char spec[256];
    mf_kernel_api api;
    void *ctx;
    mf_contract contract; /* the reference's form of the kernel's declared contract */
    char contract_name[64];
    void *dl;                  /* dlopen handle of a plugin */
    const mf_device_ops *dev;  /* non-NULL for device-memory kernels */
    int mutant;                /* mutant id for cpu-mutant backends */
    struct mf_isolate *iso;    /* worker process of an isolated backend (backend_isolate.c) */
    struct mf_exec *exec;      /* adapter process of an exec: backend (backend_exec.c) */
    char routing_method[64];   /* routing method of the cases (methods.h): the kernel's declared
                                  one, or what the tool applies (--method); exec case files
                                  record it; "" for none */
    uint32_t level;            /* ABI feature level of the cases the kernel is sent (kernel_abi.h):
                                  the lower of its declared level and this moefuzz's */
    mf_kernel_features features; /* the kernel's declaration by value (zero: none, level 1) */
    mf_kernel_contract_ext contract_ext; /* the kernel's contract field by field, by value
                                            (zero: none; then api.contract declares it) */
} mf_backend;

/* ---- the factory (backend_factory.c) ---- */

/* Opens a backend by spec: "cpu", "cuda", "plugin:PATH", "cpu-mutant:NAME" (test builds),
 * "exec:COMMAND" (an adapter process speaking the line protocol of docs/files.md). Options
 * from mf_backend_opts_default. */
mf_status mf_backend_open(const char *spec, mf_backend *b, mf_error *err);
void mf_backend_close(mf_backend *b);

#define MF_BACKEND_TIMEOUT_S 60.0 /* default limit per kernel call of a separate process */

typedef struct mf_backend_opts {
    int isolate;      /* -1: default (plugins in a worker process, built-ins in process);
                         0: in this process; 1: in a worker process (a crash or hang in the
                         kernel becomes MF_ECRASH / MF_ETIMEOUT, and the worker restarts) */
    double timeout_s; /* per call of an isolated or exec backend; <= 0: MF_BACKEND_TIMEOUT_S */
} mf_backend_opts;

/* Defaults, then MOEFUZZ_ISOLATE (0 or 1) and MOEFUZZ_TIMEOUT (seconds) from the environment:
 * how `moefuzz fuzz` hands them to the fuzz targets, which open backends by name. */
void mf_backend_opts_default(mf_backend_opts *o);
mf_status mf_backend_open_opts(const char *spec, const mf_backend_opts *o, mf_backend *b,
                               mf_error *err);

/* Runs the kernel on a problem. A case above the kernel's feature level is answered unsupported
 * ("needs ABI feature level N: WHAT") without reaching the kernel. MF_EBACKEND if the kernel
 * reports an error (message kept);
 * for kernels in another process MF_ECRASH ("crashed with signal 11 on this case") or
 * MF_ETIMEOUT, after which the process restarts on the next call. */
mf_status mf_backend_run(mf_backend *b, const mf_problem *pb, mf_run_result *r, mf_error *err);

/* ---- the kernel in this process (backend.c) ---- */

/* Opens b (all of it) on a kernel of this process: "cpu", "cuda", "cpu-mutant:NAME",
 * "cuda-mutant:NAME", "plugin:PATH" (dlopen'd here). */
mf_status mf_inproc_open(const char *spec, mf_backend *b, mf_error *err);
/* Opens b on a function table of this process that no spec names (the Python package's
 * callables): spec is only its name in reports. */
mf_status mf_inproc_open_api(const char *spec, const mf_kernel_api *api, mf_backend *b,
                             mf_error *err);
/* Runs it on a problem, in the poisoned and guarded buffers (device copies for device-memory
 * kernels), behind the level gate. */
mf_status mf_inproc_run(mf_backend *b, const mf_problem *pb, mf_run_result *r, mf_error *err);
void mf_inproc_close(mf_backend *b);

/* The level gate of every run: 1 when the case needs a higher ABI feature level than the
 * kernel's (r then says unsupported and why), 0 when the kernel may be sent the case. */
int mf_backend_gate(const mf_backend *b, const mf_moe_params *p, mf_run_result *r);

/* Comma-separated list of the built-in backend names of this build. */
const char *mf_backend_builtin_names(void);

/* Fills the kernel ABI params for a problem (pointers left NULL), and for a kernel of level 2 or
 * above the extension ext that kp->ext then points to (NULL below level 2); fails on an enum
 * value the ABI has no value for. */
mf_status mf_backend_params(const mf_moe_params *p, uint32_t level, mf_kernel_params *kp,
                            mf_kernel_params_v2 *ext, mf_error *err);

/* The inverse of mf_backend_params: the problem's parameters from a kernel call's params (and
 * their v2 extension, when chained), and the address of each tensor (NULL where absent) in
 * data; what a kernel that hands its calls on (the Python package's) knows of a call. An enum
 * value the ABI does not have is an error. */
mf_status mf_backend_params_inverse(const mf_kernel_params *kp, mf_moe_params *p,
                                    const void *data[MF_NUM_TENSORS], mf_error *err);

/* The ABI feature level a case needs (kernel_abi.h): the highest level among its tensors, enum
 * values and v2 parameters (those not 0); what names the first thing that needs that level ("score = NAME", "tensor NAME"). */
uint32_t mf_case_level(const mf_moe_params *p, char *what, size_t n);

/* The level a kernel with this declaration is sent (the lower of the declared level and
 * MF_KERNEL_FEATURE_LEVEL; 1 without a declaration). A declaration that is not one is an error. */
mf_status mf_backend_level(const mf_kernel_features *f, uint32_t *level, mf_error *err);

/* The contract a kernel declared field by field (MF_KERNEL_EXT_CONTRACT, copied by value), in
 * the reference's form; every field validated (a value outside its list or range: MF_EINVAL
 * naming the field). */
mf_status mf_contract_from_ext(const mf_kernel_contract_ext *x, mf_contract *out, char *name_buf,
                               size_t name_len, mf_error *err);
/* b->contract from b->api.contract, or from b->contract_ext when the kernel declared one (with
 * no name in api.contract: both is an error). */
mf_status mf_backend_contract(mf_backend *b, mf_error *err);

/* Resolves a declared contract to the reference's form. */
mf_status mf_contract_from_abi(const mf_kernel_contract *kc, mf_contract *out, char *name_buf,
                               size_t name_len, mf_error *err);

/* Optional parts of a build, found through weak symbols: a binary has them iff it links the
 * object library that defines them (the CUDA backend; the mutant zoo of test builds). */
typedef struct mf_mutant_provider {
    int (*get_api)(uint32_t abi_version, mf_kernel_api *api, size_t api_size);
    void (*set)(void *ctx, int mutant);
    const char *kernel; /* "cpu" or "cuda": the kernel these mutants are built from */
} mf_mutant_provider;

typedef struct mf_cuda_provider {
    int (*get_api)(uint32_t abi_version, mf_kernel_api *api, size_t api_size);
    const mf_device_ops *ops;
    /* 1: a device is usable; 0: none (no driver, no device, compute capability < 9.0: the one
     * reason a GPU test may skip); -1: a CUDA error (a driver/runtime mismatch...), a failure.
     * msg says why for 0 and -1. */
    int (*available)(char *msg, size_t msg_len);
} mf_cuda_provider;

/* NULL when the part is not linked in. */
const mf_mutant_provider *mf_cpu_mutant_provider(void) __attribute__((weak));
const mf_mutant_provider *mf_cuda_mutant_provider(void) __attribute__((weak));
const mf_cuda_provider *mf_cuda_backend_provider(void) __attribute__((weak));

/* Mutant ids by name (kernels/mutants.h): id, or -1. */
int mf_mutant_lookup(const char *name);
const char *mf_mutant_name(int id);
const char *mf_mutant_knob(int id);
const char *mf_mutant_doc(int id);
int mf_mutant_count(void); /* ids 1..count */

#endif /* MF_BACKEND_H */
