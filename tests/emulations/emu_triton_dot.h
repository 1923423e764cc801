/* emu_triton_dot.h: a bf16 Triton `accumulator += tl.dot(a, b)` loop on sm_90, one output
 * element, as the emulations of Triton fused MoE kernels (vLLM's, SGLang's) compute it.
 *
 * Triton rewrites the loop into dot(a, b, acc): one accumulator through the k16 wgmma steps in
 * K order, each step under the measured Hopper model (B 16, F 25, RZ; tests/gpu/hopper_model.h),
 * the masked tail of the last K tile loaded as 0.
 */
#ifndef EMU_TRITON_DOT_H
#define EMU_TRITON_DOT_H

#include "emu_common.h"
#include "../gpu/hopper_model.h"

/* a[0..n) (fp32 holding bf16 values) . b[0..n) (bf16) */
static inline float emu_triton_dot(const float *a, const uint16_t *b, int n) {
    static const hm_hypothesis wgmma = {"B=16 F=25 RZ", 16, 25, 0};
    float acc = 0;
    for (int k0 = 0; k0 < n; k0 += 16) {
        uint16_t ta[16], tb[16];
        for (int i = 0; i < 16; i++) {
            int in = k0 + i < n;
            ta[i] = in ? emu_f32_to_bf16(a[k0 + i]) : 0; /* exact: a holds bf16 values */
            tb[i] = in ? b[k0 + i] : 0;
        }
        acc = hm_step(&wgmma, acc, ta, tb);
    }
    return acc;
}

#endif /* EMU_TRITON_DOT_H */
