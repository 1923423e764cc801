/* abi_v1_layout.c: the layouts of the FIRST kernel ABI header (tests/abi_v1/moefuzz/), compiled
 * against it alone, for test_abi to compare with the current header's. */
#include <stddef.h>

#include "moefuzz/kernel_abi.h"

#ifdef MF_KERNEL_FEATURE_LEVEL
#error "abi_v1_layout.c must see the first header, not the current one"
#endif

/* name, offset, size: every field a kernel built against the first header may touch */
#define ABI_V1_FIELDS(X)                                     \
    X(api_size, 0, sizeof(mf_kernel_api))                    \
    X(api.contract, offsetof(mf_kernel_api, contract), sizeof(mf_kernel_contract)) \
    X(api.create, offsetof(mf_kernel_api, create), 8)        \
    X(api.supports, offsetof(mf_kernel_api, supports), 8)    \
    X(api.workspace_size, offsetof(mf_kernel_api, workspace_size), 8) \
    X(api.run, offsetof(mf_kernel_api, run), 8)              \
    X(api.release, offsetof(mf_kernel_api, release), 8)      \
    X(api.reserved, offsetof(mf_kernel_api, reserved), sizeof(((mf_kernel_api *)0)->reserved)) \
    X(contract.reserved, offsetof(mf_kernel_contract, reserved),                   \
      sizeof(((mf_kernel_contract *)0)->reserved))           \
    X(params_size, 0, sizeof(mf_kernel_params))              \
    X(params.T, offsetof(mf_kernel_params, T), 4)            \
    X(params.routed_scaling_factor, offsetof(mf_kernel_params, routed_scaling_factor), 4) \
    X(params.memory, offsetof(mf_kernel_params, memory), 4)  \
    X(params.x, offsetof(mf_kernel_params, x), 8)            \
    X(params.logits, offsetof(mf_kernel_params, logits), 8)  \
    X(params.bias, offsetof(mf_kernel_params, bias), 8)      \
    X(params.w13, offsetof(mf_kernel_params, w13), 8)        \
    X(params.w2, offsetof(mf_kernel_params, w2), 8)          \
    X(params.out, offsetof(mf_kernel_params, out), 8)        \
    X(params.stream, offsetof(mf_kernel_params, stream), 8)  \
    X(params.reserved, offsetof(mf_kernel_params, reserved), \
      sizeof(((mf_kernel_params *)0)->reserved))

typedef struct abi_v1_field {
    const char *name;
    size_t offset, size;
} abi_v1_field;

const abi_v1_field abi_v1_fields[] = {
#define ABI_V1_ROW_(name, off, size) {#name, off, size},
    ABI_V1_FIELDS(ABI_V1_ROW_)
#undef ABI_V1_ROW_
    {NULL, 0, 0}};
