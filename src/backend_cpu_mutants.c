/* backend_cpu_mutants.c: the mutant zoo of the CPU kernel, linked into test builds only
 * (moefuzz-test, the test programs). Defines the weak mf_cpu_mutant_provider of backend.h, so
 * backends "cpu-mutant:NAME" open. */
#include "backend.h"
#include "../kernels/cpu/moe_cpu.h"

static const mf_mutant_provider provider = {mf_cpu_mutant_get_api, mf_cpu_mutant_set, "cpu"};

const mf_mutant_provider *mf_cpu_mutant_provider(void) { return &provider; }
