/* misbehave.c: how the test builds of the example plugin fail on purpose, so ctest can prove
 * that moefuzz survives a kernel that crashes or hangs, and catches one that writes to its
 * inputs (tests/plugin_isolation.sh, tests/isolate_readonly.sh).
 *
 *   EXAMPLE_CRASH  segfault on single-token cases, abort on cases with a bf16 bias
 *   EXAMPLE_HANG   spin forever on single-token cases
 *   EXAMPLE_WRITE  write to its weights (w13, the value unchanged) on single-token cases: the
 *                  output stays right, so only the isolated worker's read-only inputs see it
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
#elif defined(EXAMPLE_WRITE)
    if (p->T == 1) {
        volatile uint16_t *w13 = (volatile uint16_t *)(uintptr_t)p->w13; /* const cast away */
        w13[0] = w13[0];
    }
#else
    (void)p;
#endif
}
