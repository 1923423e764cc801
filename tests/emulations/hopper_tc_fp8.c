/* hopper_tc_fp8.c: an emulation of the contract hopper-tc-fp8 on fp8_block cases: the CPU
 * kernel's FP8 path (kernels/cpu/moe_cpu_quant.h: the activation quantizer, the epilogue
 * fl(fl(P s_a) s_w) added in fp32 per K block, silu, the bf16 activation re-quantized, the
 * combine), with each K block's partial P computed as Hopper's FP8 tensor cores compute it: a
 * chain of wgmma k32 steps from 0 under the measured model (tests/gpu/hopper_fp8_model.h,
 * B=32 F=13 RZ fused P=14, docs/hopper-probe.md), the block zero-padded to a multiple of 32.
 * It refuses every other case (its bf16 GEMMs would be the CPU kernel's fp32 chains).
 *
 * MOEFUZZ_EMU_MUTATION: a mutant of kernels/mutants.h by name (rsf-dropped,
 * fp8-ue8m0-not-rounded, ...), or p13 (the step's result kept to 13 bits, not 14), f12 (12
 * fraction bits, not 13). EMU_OLD_CONTRACT: the same code declaring cpu-scalar, the only
 * contract that covered fp8_block before hopper-tc-fp8.
 */
#define MF_CPU_EMULATION

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../kernels/mutants.h"
#include "hopper_fp8_model.h"

#define MF_MUT(m) (ctx->mutant == MF_MUTANT_##m)
#define MF_CPU_KERNEL_NAME "emu-hopper-tc-fp8"
#ifdef EMU_OLD_CONTRACT
#define MF_CPU_CONTRACT "cpu-scalar"
#else
#define MF_CPU_CONTRACT "hopper-tc-fp8"
#endif
#define MF_CPU_DESCRIPTION "C emulation of FP8 block-scale GEMMs on Hopper wgmma k32 (measured)"

static h8_hypothesis emu_wgmma = {32, 13, 0, 0, 0, 14};

/* one K block's partial: k32 steps from C = 0; a NaN code gives NaN, as on the card */
static float emu_partial(const uint8_t *a, const uint8_t *b, int n) {
    uint8_t pa[4096 + 32] = {0}, pb[4096 + 32] = {0};
    if (n > 4096) return NAN; /* the reference's limit on block_k */
    for (int j = 0; j < n; j++)
        if (h8_nonfinite(a[j], H8_E4M3) || h8_nonfinite(b[j], H8_E4M3)) return NAN;
    memcpy(pa, a, (size_t)n);
    memcpy(pb, b, (size_t)n);
    return h8_dot(&emu_wgmma, H8_E4M3, 0.0f, pa, pb, (n + 31) / 32 * 32);
}
#define MF_CPU_FP8_PARTIAL(a, b, n) ((void)e4m3_to_f32, emu_partial(a, b, n))

static int emu_mutant_id(void) {
    const char *m = getenv("MOEFUZZ_EMU_MUTATION");
    if (!m || !*m) return MF_MUTANT_NONE;
    if (!strcmp(m, "p13")) return emu_wgmma.res_bits = 13, MF_MUTANT_NONE;
    if (!strcmp(m, "f12")) return emu_wgmma.frac = 12, MF_MUTANT_NONE;
#define EMU_MUTANT_BY_NAME(id, name, knob, doc) \
    if (!strcmp(m, name)) return MF_MUTANT_##id;
    MF_MUTANT_LIST(EMU_MUTANT_BY_NAME)
#undef EMU_MUTANT_BY_NAME
    return -1;
}
#define MF_CPU_EMU_INIT(c)                                                           \
    if (((c)->mutant = emu_mutant_id()) < 0) {                                      \
        snprintf(msg, msg_len, "MOEFUZZ_EMU_MUTATION: unknown mutation");          \
        free(c);                                                                     \
        return 1;                                                                    \
    }

#define MF_CPU_EMU_SUPPORTS(q, msg, len)    \
    ((q)->format == MF_ABI_WFMT_FP8_BLOCK || \
     (snprintf(msg, len, "the emulation computes fp8_block cases only"), 0))

#define MF_CPU_EXPORT_GET_API                                                                    \
    __attribute__((visibility("default"))) int mf_kernel_get_api(                               \
        uint32_t abi_version, mf_kernel_api *api, size_t api_size) {                            \
        if (abi_version != MF_KERNEL_ABI_VERSION || api_size < sizeof *api) return 1;           \
        *api = cpu_api_template;                                                                 \
        return 0;                                                                                \
    }

#include "../../kernels/cpu/moe_cpu.c"
