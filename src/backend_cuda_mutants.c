/* backend_cuda_mutants.c: the mutant zoo of the CUDA kernel ("cuda-mutant:NAME" backends), found
 * by src/backend.c through the weak symbol mf_cuda_mutant_provider.
 *
 * Test builds only: links the library moefuzz_cuda_mutants (kernels/cuda/moe_cuda.cu built with
 * -DMF_CUDA_WITH_MUTANTS). The production moefuzz never links this file.
 */
#include "backend.h"
#include "../kernels/cuda/moe_cuda.h"

static const mf_mutant_provider cuda_mutants = {
    mf_cuda_mutant_get_api,
    mf_cuda_mutant_set,
    "cuda",
};

const mf_mutant_provider *mf_cuda_mutant_provider(void) {
    return &cuda_mutants;
}
