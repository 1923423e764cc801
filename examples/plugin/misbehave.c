/* misbehave.c: how the test builds of the example plugin fail on purpose, so ctest can prove
 * that moefuzz survives a kernel that crashes or hangs (tests/plugin_isolation.sh).
 *
 *   EXAMPLE_CRASH  segfault on single-token cases, abort on cases with a bf16 bias
 *   EXAMPLE_HANG   spin forever on single-token cases
 * Every other case runs normally, so a check over a directory shows the run going on.
 */
#include <signal.h>
#include <stdlib.h>

#include "moefuzz/kernel_abi.h"

void example_misbehave(const mf_kernel_params *p);

void example_misbehave(const mf_kernel_params *p) {
#if defined(EXAMPLE_CRASH)
    if (p->T == 1) {
        volatile int *nowhere = (volatile int *)(uintptr_t)p->reserved[0]; /* reserved: zero */
        *nowhere = 1;
    }
    if (p->bias_dtype == MF_ABI_BIAS_BF16) abort();
#elif defined(EXAMPLE_HANG)
    if (p->T == 1)
        for (volatile unsigned long spin = 0;; spin++) {
        }
#else
    (void)p;
#endif
}
