/* moe_cuda.h: entry points of the fused CUDA MoE kernel (kernels/cuda/moe_cuda.cu), for C. */
#ifndef MF_MOE_CUDA_H
#define MF_MOE_CUDA_H

#include "moefuzz/kernel_abi.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Production library moefuzz_cuda_kernel. */
int mf_cuda_kernel_get_api(uint32_t abi_version, mf_kernel_api *api, size_t api_size);
/* The GEMM variants that run() would launch for p ("wg3x192c", "mma16x128/mma16x32,pdl": GEMM1,
 * then GEMM2 when it differs; ",pdl": programmatic dependent launches), into buf. 0 on success. */
int mf_cuda_kernel_describe(void *ctx, const mf_kernel_params *p, char *buf, size_t len);

/* Test library moefuzz_cuda_mutants (the same source built with -DMF_CUDA_WITH_MUTANTS). */
int mf_cuda_mutant_get_api(uint32_t abi_version, mf_kernel_api *api, size_t api_size);
void mf_cuda_mutant_set(void *ctx, int mutant);

#ifdef __cplusplus
}
#endif

#endif /* MF_MOE_CUDA_H */
