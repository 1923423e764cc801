/* mutant_hooks.h: how moe_cpu.c is built, production or mutant test build.
 *
 * Production (the default): MF_MUT(m) is the constant 0, every mutant branch is dead code that
 * the compiler removes, and the file exports mf_cpu_kernel_get_api. The test build (CMake target
 * moefuzz_cpu_mutants, -DMF_CPU_WITH_MUTANTS) compiles the same source with MF_MUT(m) reading
 * the context's mutant id, and exports mf_cpu_mutant_get_api / mf_cpu_mutant_set instead.
 */
#ifndef MF_CPU_MUTANT_HOOKS_H
#define MF_CPU_MUTANT_HOOKS_H

#if defined(MF_CPU_EMULATION)
/* an emulation of tests/emulations/ that includes this source with its own FP8 block partial
 * (MF_CPU_FP8_PARTIAL): it defines MF_MUT, MF_CPU_KERNEL_NAME, MF_CPU_CONTRACT,
 * MF_CPU_DESCRIPTION and MF_CPU_EXPORT_GET_API itself */
#elif defined(MF_CPU_WITH_MUTANTS)
#include "../mutants.h"
#define MF_MUT(m) (ctx->mutant == MF_MUTANT_##m)
#define MF_CPU_KERNEL_NAME "cpu-mutant"
#define MF_CPU_EXPORT_GET_API                                                                  \
    int mf_cpu_mutant_get_api(uint32_t abi_version, mf_kernel_api *api, size_t api_size) {     \
        if (abi_version != MF_KERNEL_ABI_VERSION || api_size < sizeof *api) return 1;          \
        *api = cpu_api_template;                                                               \
        return 0;                                                                              \
    }                                                                                          \
    void mf_cpu_mutant_set(void *ctx, int mutant) { ((cpu_ctx *)ctx)->mutant = mutant; }
#else
#define MF_MUT(m) 0
#define MF_CPU_KERNEL_NAME "cpu"
#define MF_CPU_EXPORT_GET_API                                                                  \
    int mf_cpu_kernel_get_api(uint32_t abi_version, mf_kernel_api *api, size_t api_size) {     \
        if (abi_version != MF_KERNEL_ABI_VERSION || api_size < sizeof *api) return 1;          \
        *api = cpu_api_template;                                                               \
        return 0;                                                                              \
    }
#endif

#ifndef MF_CPU_CONTRACT
#define MF_CPU_CONTRACT "cpu-scalar"
#define MF_CPU_DESCRIPTION "plain-C fp32 fused MoE (scalar chains, bf16 activation, fp32 combine)"
#endif

#endif /* MF_CPU_MUTANT_HOOKS_H */
