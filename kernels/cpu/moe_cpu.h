/* moe_cpu.h: entry points of the built-in CPU kernel (kernels/cpu/moe_cpu.c). */
#ifndef MF_MOE_CPU_H
#define MF_MOE_CPU_H

#include "moefuzz/kernel_abi.h"

int mf_cpu_kernel_get_api(uint32_t abi_version, mf_kernel_api *api, size_t api_size);

/* Test builds only (library moefuzz_cpu_mutants). */
int mf_cpu_mutant_get_api(uint32_t abi_version, mf_kernel_api *api, size_t api_size);
void mf_cpu_mutant_set(void *ctx, int mutant);

#endif /* MF_MOE_CPU_H */
