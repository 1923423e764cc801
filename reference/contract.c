/* contract.c: built-in numerical contracts (see contract.h). */
#include "contract.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "problem.h"

const mf_contract mf_contract_cpu_scalar = {
    .name = "cpu-scalar",
    .summary = "fp32 scalar chains in K order (round to nearest), libm expf, IEEE division, "
               "activation rounded to bf16, fp32 combine over k, one final bf16 rounding",
    .gemm = {MF_ACC_SEQ_FP32, 1, 0},
    .exp = MF_EXP_ACCURATE,
    .exp_ulps = 2.0, /* glibc documents <= 1 ulp for expf; 2 covers other libms */
    .div = MF_DIV_IEEE,
    .round_points = MF_RP_ACT_OUT,
    .deterministic = 1,
};

const mf_contract mf_contract_hopper_tc = {
    .name = "hopper-tc",
    .summary = "bf16 tensor-core GEMMs (fused k16 steps, 25 fraction bits, truncation, RZ to "
               "fp32: measured, docs/hopper-probe.md), CUDA expf (2 ulp), IEEE division, "
               "activation rounded to bf16, fp32 combine over k, one final bf16 rounding",
    .gemm = {MF_ACC_FUSED_BLOCK, 16, 25},
    .exp = MF_EXP_ACCURATE,
    .exp_ulps = 2.0, /* CUDA C Programming Guide, expf: 2 ulp full range */
    .div = MF_DIV_IEEE,
    .round_points = MF_RP_ACT_OUT,
    .deterministic = 1,
};

const mf_contract mf_contract_any_order = {
    .name = "any-order",
    .summary = "model-free fallback: any summation order and blocking with >= 24 fraction bits "
               "(T0 bound), fast exp and division, activation rounded to bf16",
    .gemm = {MF_ACC_ANY_ORDER, 0, 0},
    .exp = MF_EXP_FAST,
    .exp_ulps = 0,
    .div = MF_DIV_FAST,
    .round_points = MF_RP_ACT_OUT,
    .deterministic = 0,
};

/* Contracts named for the code they model: version, path, architecture. Each field is read from
 * the kernel's source (docs/notes/kernel-arithmetic-from-source.md); where the source does not
 * settle a point, the field admits every possibility (docs/error-model.md, "Named contracts"). */
const mf_contract mf_contract_vllm_033_triton_sm90 = {
    .name = "vllm-0.33-triton-sm90",
    .summary = "vLLM 0.33.0 bf16 fused MoE on Hopper: Triton fused_moe_kernel GEMMs (one fp32 "
               "accumulator along K, no split-K; Triton lowers each tl.dot to wgmma k16 steps "
               "in K order, assumed chained through the accumulator: the measured Hopper chain, "
               "B 16, F 25, RZ), GEMM1 output rounded to "
               "bf16, silu_and_mul (expf, IEEE division, silu "
               "rounded to bf16, product rounded to bf16), w * y rounded to bf16 in the GEMM2 "
               "epilogue, moe_sum in fp32, output-site rsf on the bf16 sum rounded again; "
               "routers topk_softmax (reciprocal), topk_sigmoid (__expf) and CUDA grouped_topk "
               "(accurate tanhf), ties to the lower index",
    /* the measured wgmma chain (docs/hopper-probe.md): Triton's MMAv3 lowering issues one wgmma
     * of K 16 per 16 products of a tile, in K order, tiles at multiples of BLOCK_K; assumes
     * Triton's dot rewrite fires (docs/error-model.md, vllm-0.33-triton-sm90) */
    .gemm = {MF_ACC_FUSED_BLOCK, 16, 25},
    .exp = MF_EXP_ACCURATE,
    .exp_ulps = 2.0, /* CUDA expf: 2 ulp (silu_and_mul is built without fast math) */
    .div = MF_DIV_IEEE,
    .round_points = MF_RP_GEMM1_OUT | MF_RP_SILU_OUT | MF_RP_ACT_OUT | MF_RP_WEIGHTED |
                    MF_RP_RSF_OUT,
    .deterministic = 0,
    /* topk_sigmoid's __expf (ex2.approx without FTZ) bounds topk_softmax's expf as well */
    .router = {1, MF_EXP_FAST, 0, MF_DIV_IEEE},
    /* topk_sigmoid (1 / (1 + __expf(-x))) and grouped_topk (0.5 tanhf(0.5 x) + 0.5, 2 ulp):
     * both forms are admitted, the router path is not declared */
    .sigmoid_form = MF_SIGMOID_EXP_DIV_OR_TANH,
    .tanh_rel = 2 * 0x1p-23,
    .softmax_recip = 1,
    .weight_form = MF_WEIGHT_PLAIN,
    .tie_rule = MF_TIE_LOWER_INDEX,
    .ftz = 0,
    .combine_dtype = MF_DTYPE_F32,
    .sources = "vllm 0.33.0: fm/fused_moe.py:fused_moe_kernel l. 517-518 (one fp32 "
               "accumulator, K loop in order), l. 527-535 (masked tail loads 0), l. 561 "
               "(bf16: accumulator += tl.dot(a, b)), SPLIT_K unused in the body, l. 841 "
               "(SPLIT_K = 1); ASSUMED, not measurable here: Triton's combine pass rewrites it "
               "into dot(a, b, acc), one wgmma chain on sm_90 (B 16, F 25, RZ measured: "
               "docs/hopper-probe.md); triton lib/Dialect/TritonGPU/Transforms/Utility.cpp:"
               "mmaVersionToInstrShape (v3: K = 256 / 16 bits = 16), third_party/nvidia/lib/"
               "TritonNVIDIAGPUToLLVM/DotOpToLLVM/WGMMA.cpp:convertDot (for k < numRepK: one "
               "wgmma per K 16 step, the accumulator chained, in K order); fm/fused_moe.py "
               "l. 597-601 (MUL_ROUTED_WEIGHT, GEMM1 bf16 store); "
               "csrc/activation_kernels.cu:silu_kernel l. 167, "
               "compute l. 44-81 (silu rounded to bf16, fp32 product); "
               "csrc/moe/moe_align_sum_kernels.cu:moe_sum l. 420-539 (fp32 slot order); "
               "fm/runner/moe_runner.py:_maybe_apply_routed_scale_to_output l. 403-420 (rsf on "
               "the bf16 sum); csrc/moe/topk_softmax_kernels.cu l. 79-139, 157, 414-598 "
               "(reciprocal softmax, __expf sigmoid, s * fl(rsf / D), lower-index ties); "
               "csrc/moe/grouped_topk_kernels.cu l. 410, 833-838 (tanhf sigmoid, weight in "
               "double), moeTopKFuncs.cuh l. 47-66 (packed keys: lower index)",
};

const mf_contract mf_contract_flashinfer_07_trtllm_bf16 = {
    .name = "flashinfer-0.7-trtllm-bf16",
    .summary = "FlashInfer 0.7.4 trtllm-gen BF16 fused MoE with DeepSeek routing, all built "
               "with -use_fast_math: tanh.approx sigmoid, bias rounded to bf16 before the key "
               "add, weights fl(s rsf) / (sum + 1e-20) by div.approx rounded to bf16, FTZ; "
               "GEMMs in SM100 cubins (any order, assumed), activation with __expf and "
               "rcp.approx rounded to bf16, GEMM2 output rounded to bf16, finalize over top-k in "
               "fp32, one final bf16 rounding",
    .gemm = {MF_ACC_ANY_ORDER, 0, 0},
    .exp = MF_EXP_FAST,
    .exp_ulps = 0,
    .div = MF_DIV_FAST,
    .round_points = MF_RP_ACT_OUT | MF_RP_GEMM2_OUT | MF_RP_WEIGHTS | MF_RP_BIAS,
    .deterministic = 0,
    .router = {1, MF_EXP_FAST, 0, MF_DIV_FAST},
    .sigmoid_form = MF_SIGMOID_TANH,
    .tanh_rel = 0x1.03p-11, /* PTX ISA, tanh.approx.f32: 2^-10.987 relative (not measured) */
    .softmax_recip = 1,
    .weight_form = MF_WEIGHT_PLAIN,
    .tie_rule = MF_TIE_LOWER_INDEX,
    .ftz = 1,
    .combine_dtype = MF_DTYPE_F32,
    .sources = "flashinfer 0.7.4: flashinfer/jit/core.py l. 749, 787 (use_fast_math default); "
               "include/flashinfer/trtllm/fused_moe/RoutingKernel.cuh l. 128 (sigmoid_accurate "
               "= tanh form); csrc/fused_moe/trtllm_backend/"
               "trtllm_fused_moe_routing_deepseek.cu l. 158-199 (bias cast to bf16, keys), l. "
               "206-260 (top-2 group sum, lower-index ties), l. 336-357 (weight, eps 1e-20, "
               "bf16); trtllm_fused_moe_routing_runner.cu l. 163, 202; GEMMs: prebuilt cubins "
               "(trtllm_batched_gemm_runner.cu), accumulation not readable",
};

/* vLLM 0.33.0 when its router factory takes the torch grouped_topk (grouped routing without a
 * bias, or an rsf without a bias or groups): the experts as vllm-0.33-triton-sm90, the router in
 * the logits' dtype. Inductor may fuse the bf16 steps (rounded or not: the radii admit both);
 * the exp and division of its lowering are not settled (fast admits accurate). */
const mf_contract mf_contract_vllm_033_triton_sm90_torch_router = {
    .name = "vllm-0.33-triton-sm90-torch-router",
    .summary = "vLLM 0.33.0 bf16 fused MoE on Hopper with the torch grouped_topk router: "
               "softmax or sigmoid computed in fp32 and rounded to the logits' dtype, group max, "
               "torch.topk (ties and slot order in any order), weights w / sum(w) with no eps "
               "and w * rsf each rounded to the logits' dtype; experts as "
               "vllm-0.33-triton-sm90 (Triton GEMMs as the Hopper chain B 16 F 25, GEMM1 "
               "output, silu and product rounded to bf16, w * y rounded to bf16, moe_sum in "
               "fp32)",
    .gemm = {MF_ACC_FUSED_BLOCK, 16, 25}, /* the experts of vllm-0.33-triton-sm90 */
    .exp = MF_EXP_ACCURATE,
    .exp_ulps = 2.0,
    .div = MF_DIV_IEEE,
    .round_points = MF_RP_GEMM1_OUT | MF_RP_SILU_OUT | MF_RP_ACT_OUT | MF_RP_WEIGHTED |
                    MF_RP_RSF_OUT,
    .deterministic = 0,
    .router = {1, MF_EXP_FAST, 0, MF_DIV_FAST},
    .sigmoid_form = MF_SIGMOID_EXP_DIV,
    .tanh_rel = 0,
    .softmax_recip = 1,
    .weight_form = MF_WEIGHT_PLAIN,
    .tie_rule = MF_TIE_ANY,
    .ftz = 0,
    .combine_dtype = MF_DTYPE_F32,
    .sources = "vllm 0.33.0: fm/router/router_factory.py l. 166-210 (grouped unless degenerate "
               "with rsf 1 or a bias); fm/router/grouped_topk_router.py:grouped_topk l. 76-162 "
               "(CUDA op only with a bias l. 92-109; scores in the logits' dtype l. 113-116; "
               "group max without a bias l. 129-131; torch.topk sorted=VLLM_BATCH_INVARIANT "
               "l. 135-155; w / w.sum() without eps l. 157-158; w * rsf l. 160-161); experts as "
               "vllm-0.33-triton-sm90",
    .router_logits_dtype = 1,
};

/* hopper-tc with the FP8 block-scale GEMMs on Hopper's FP8 tensor cores: per K block a fresh
 * chain of wgmma k32 steps from 0, as measured (docs/hopper-probe.md, "FP8"); the bf16 GEMMs, the
 * activation and the combine as hopper-tc. */
const mf_contract mf_contract_hopper_tc_fp8 = {
    .name = "hopper-tc-fp8",
    .summary = "hopper-tc, and fp8_block GEMMs on the FP8 tensor cores: per K block a chain of "
               "wgmma k32 steps from 0 (C and 32 products fused, 13 fraction bits, truncation, "
               "the step's sum truncated to 14 bits: measured, docs/hopper-probe.md), then "
               "fl(fl(P s_a) s_w) added to an fp32 accumulator in block order",
    .gemm = {MF_ACC_FUSED_BLOCK, 16, 25},
    .exp = MF_EXP_ACCURATE,
    .exp_ulps = 2.0,
    .div = MF_DIV_IEEE,
    .round_points = MF_RP_ACT_OUT,
    .deterministic = 1,
    .fp8_gemm = {32, 13, 14, 0},
};

/* SGLang 0.5.23's bf16 Triton fused MoE on Hopper as a model calls it (select_experts -> the
 * Triton router moe_fused_gate; fused_experts_impl; moe_combine_topk), read from the wheel's
 * sources (docs/error-model.md, sglang-0.5-triton-sm90). */
const mf_contract mf_contract_sglang_05_triton_sm90 = {
    .name = "sglang-0.5-triton-sm90",
    .summary = "SGLang 0.5.23 bf16 Triton fused MoE on Hopper: fused_moe_kernel GEMMs as "
               "vLLM's (its K-order fp32 accumulator, one wgmma chain: fused k16 steps, B 16 "
               "F 25; GEMM1 output rounded to bf16, w * y rounded to bf16), silu_and_mul "
               "with fast math (__expf, fast division, FTZ, silu not rounded, product "
               "rounded to bf16), combine in fp32 "
               "with the output rsf in fp32 and one bf16 rounding; Triton router (tl.exp, "
               "approximate division, softmax as e / Z, sigmoid 1 / (1 + exp(-x)), lower "
               "index on ties)",
    /* the Triton kernel of vllm-0.33-triton-sm90, lowered the same way: one wgmma chain */
    .gemm = {MF_ACC_FUSED_BLOCK, 16, 25},
    .exp = MF_EXP_FAST,                      /* __expf under --use_fast_math */
    .exp_ulps = 0,
    .div = MF_DIV_FAST,
    .round_points = MF_RP_GEMM1_OUT | MF_RP_ACT_OUT | MF_RP_WEIGHTED,
    .deterministic = 0, /* not measured on the card */
    /* Triton: tl.exp is ex2.approx of x log2(e), fp32 `/` is div.full.f32 (2 ulp) */
    .router = {1, MF_EXP_FAST, 0, MF_DIV_FAST},
    .sigmoid_form = MF_SIGMOID_EXP_DIV,
    .tanh_rel = 0,
    .softmax_recip = 0,
    .weight_form = MF_WEIGHT_PLAIN,
    .tie_rule = MF_TIE_LOWER_INDEX,
    .ftz = 1,
    .combine_dtype = MF_DTYPE_F32,
    .sources = "sglang 0.5.23: kernels/ops/moe/fused_moe_triton_kernels.py:fused_moe_kernel "
               "l. 555-617 (one fp32 accumulator, bf16 accumulator += tl.dot(a, b) in K "
               "order, l. 611), l. 630-634 (w * y in fp32, .to(compute_type)); as for vLLM, "
               "Triton's wgmma lowering: one chain on sm_90 (run on an H200: "
               "docs/notes/sglang-adapter.md); "
               "kernels/jit/csrc/elementwise/activation.cuh l. 26-28, 112-116 (silu in fp32, "
               "one rounding of silu * up), kernels/jit/utils/arch.py l. 201-204 "
               "(--use_fast_math); fused_moe_triton_kernels.py:_moe_sum_reduce_kernel "
               "l. 1272-1291 (fp32 sum in slot order, * rsf, one rounding); "
               "srt/layers/moe/moe_runner/triton_utils/fused_moe.py:moe_combine_topk "
               "l. 996-1024; kernels/ops/moe/moe_fused_gate.py:_router_triton_kernel "
               "(tl.sigmoid, e / Z softmax, lowest lane on ties, sum > 0 ? sum : 1)",
};

/* the fields the two FP8 contracts of vLLM 0.33.0 share */
#define VLLM_033_FP8_SHARED \
    .gemm = {MF_ACC_FUSED_BLOCK, 16, 25}, \
    .exp = MF_EXP_ACCURATE, \
    .exp_ulps = 2.0, \
    .div = MF_DIV_IEEE, \
    .round_points = MF_RP_GEMM1_OUT | MF_RP_SILU_OUT | MF_RP_ACT_OUT | MF_RP_WEIGHTED | \
                    MF_RP_RSF_OUT, \
    .deterministic = 0, \
    .router = {1, MF_EXP_FAST, 0, MF_DIV_IEEE}, \
    .sigmoid_form = MF_SIGMOID_EXP_DIV_OR_TANH, \
    .tanh_rel = 2 * 0x1p-23, \
    .softmax_recip = 1, \
    .weight_form = MF_WEIGHT_PLAIN, \
    .tie_rule = MF_TIE_LOWER_INDEX, \
    .ftz = 0, \
    .combine_dtype = MF_DTYPE_F32, \
    .fp8_gemm = {32, 13, 14, 1}, \
    .fp8_quant_recip = 1, \
    .fp8_ue8m0_floor = 0x1.b7cdfep-34f, /* fp32(1e-10) */ \
    /* log2f is within 1 ulp (CUDA C Programming Guide); |log2 s| <= 128 here, so a result \
     * rounded onto k needs log2(s / 2^k) <= 2^-16, s <= 2^k (1 + 2^-16 ln 2) */ \
    .fp8_log2_rel = 0x1p-16,

/* vLLM 0.33.0's FP8 block-scale path on Hopper (use_fp8_w8a8 with block_shape; the unfused
 * activation: silu_and_mul, then per_token_group_fp8_quant): the bf16 path of
 * vllm-0.33-triton-sm90, and on fp8_block cases the activations quantized by the CUDA op
 * (y fl(1 / s); UE8M0 through log2f, floored at 1e-10f), each K block's tl.dot on the FP8
 * tensor cores (hopper-tc-fp8's measured k32 chain) scaled by the two scales in either order
 * (swap-AB) and added to the fp32 accumulator (docs/error-model.md,
 * vllm-0.33-triton-fp8-sm90). */
const mf_contract mf_contract_vllm_033_triton_fp8_sm90 = {
    .name = "vllm-0.33-triton-fp8-sm90",
    .summary = "vLLM 0.33.0 fused MoE on Hopper, bf16 and FP8 block scale (W8A8, unfused "
               "activation): bf16 cases as vllm-0.33-triton-sm90; fp8_block: x and the bf16 "
               "silu_and_mul output quantized per block_k columns by per_token_group_fp8_quant "
               "(amax floored at 1e-10, s = amax / 448 or 2^ceil(log2f(max(s, 1e-10))), "
               "e4m3(y * fl(1 / s)) saturating), per K block a chain of wgmma k32 steps from 0 "
               "(13 fraction bits, 14-bit step sums: measured), times s_a and s_w in either "
               "order, added to an fp32 accumulator; GEMM1 output, silu, activation and w * y "
               "rounded to bf16, moe_sum in fp32",
    VLLM_033_FP8_SHARED
    .sources = "vllm 0.33.0: experts as vllm-0.33-triton-sm90 (its sources), and "
               "fm/fused_moe.py:fused_moe_kernel l. 518-560 (per BLOCK_SIZE_K: accumulator += "
               "tl.dot(a, b) * a_scale * b_scale, or with SWAP_AB tl.dot(b, a) * b_scale * "
               "a_scale), l. 597-601 (w * y, one bf16 store); invoke_fused_moe_triton_kernel "
               "l. 787-789 (SWAP_AB = enable_swap_ab: fm/utils.py l. 705-711, sm_90, "
               "BLOCK_SIZE_M < 64, BLOCK_SIZE_N >= 64), l. 842-844 (BLOCK_SIZE_K = min(config, "
               "block_n, block_k)); get_default_config l. 1319-1352 (BLOCK_SIZE_K = block_k); "
               "fm/utils.py:_fp8_quantize l. 326-351 -> quantization/utils/fp8_utils.py:"
               "per_token_group_quant_fp8 l. 632-720 (the CUDA op on CUDA, eps 1e-10, use_ue8m0 "
               "= is_deep_gemm_e8m0_used()); csrc/quantization/w8a8/fp8/"
               "per_token_group_quant.cu l. 46-71 (amax from eps, y_s = amax / 448, UE8M0 "
               "exp2f(ceilf(log2f(fmaxf(|y_s|, 1e-10f))))), l. 85-90 (inv_y = 1.0f / y_s, "
               "fminf(fmaxf(x * inv_y, -448), 448), e4m3 RN), l. 260-289 (group 128: the same "
               "with an exact exponent bump); built without fast math (CMakeLists.txt l. 446-457); "
               "ASSUMED: exp2f exact at integers; Triton lowers the fp8 tl.dot to one chain of "
               "wgmma k32 per K tile (max_num_imprecise_acc 2^30 on sm_90) and may contract the "
               "last multiply with the add (fma: admitted)",
};

/* vLLM 0.33.0's modular TritonExperts.apply (what a served DeepSeek-V3 FP8 model runs): as
 * vllm-0.33-triton-fp8-sm90, but for SiLU with fp32 scales and 128 x 128 blocks the activation
 * and its quantizer are one fused op, silu_and_mul_per_block_quant (docs/error-model.md,
 * "vLLM's fused activation quantizer"). */
const mf_contract mf_contract_vllm_033_triton_fp8_served_sm90 = {
    .name = "vllm-0.33-triton-fp8-served-sm90",
    .summary = "vLLM 0.33.0 fused MoE on Hopper as a served FP8 block-scale model runs it "
               "(TritonExperts.apply): as vllm-0.33-triton-fp8-sm90, but the intermediate is "
               "silu_and_mul_per_block_quant's: silu(g) * u in fp32 from the bf16 GEMM1 "
               "outputs (expf, IEEE division, no bf16 rounding), amax per 128 columns from 0, "
               "s = max(amax / 448, 1 / (448 * 512)), e4m3(y / s) saturating; fp32 scales "
               "and 128 x 128 blocks only",
    VLLM_033_FP8_SHARED
    .fp8_act_fused = 1,
    .fp8_scale_floor = 0x1.24924ap-18f, /* fl(1.0f / (448.0f * 512.0f)): utils.cuh:52 */
    .sources = "vllm 0.33.0: as vllm-0.33-triton-fp8-sm90 (its sources), and "
               "fm/experts/triton_moe.py:TritonExperts.apply l. 520-545 (SILU, no clamp, "
               "use_fp8_w8a8, block_shape == [128, 128], no LoRA, not is_deep_gemm_e8m0_used(): "
               "ops.silu_and_mul_per_block_quant(intermediate_cache1, group_size=128)); "
               "_custom_ops.py l. 515-560 (row-major [T, I / 128] fp32 scales, no scale_ub); "
               "csrc/quantization/fused_kernels/fused_silu_mul_block_quant.cu l. 54-60 (gate, "
               "up from bf16; 1.0f / (1.0f + expf(-gate)); gate * sigmoid; * up), l. 63-73 "
               "(fmaxf tree of fabsf), l. 77-91 (group_max / 448, fmaxf with "
               "min_scaling_factor), l. 101-102 (ScaledQuant<fp8, false>: x / scale); "
               "quant_conversions.cuh l. 40-45, 64-76 (fmin/fmax clamp to 448, e4m3 cast RN); "
               "csrc/quantization/utils.cuh l. 50-54 (1.0f / (448 * 512.0f)); built in "
               "VLLM_STABLE_EXT_SRC without fast math (CMakeLists.txt l. 446-467; expf 2 ulp, "
               "CUDA C Programming Guide)",
};


/* Names kept for the newest contract of a kernel family. */
static const struct {
    const char *alias;
    const mf_contract *c;
} aliases[] = {
    {"vllm-triton", &mf_contract_vllm_033_triton_sm90},
    {"flashinfer-trtllm-bf16", &mf_contract_flashinfer_07_trtllm_bf16},
    {"vllm-triton-torch-router", &mf_contract_vllm_033_triton_sm90_torch_router},
};

static const mf_contract *const builtin[] = {&mf_contract_cpu_scalar,
                                             &mf_contract_hopper_tc,
                                             &mf_contract_any_order,
                                             &mf_contract_vllm_033_triton_sm90,
                                             &mf_contract_flashinfer_07_trtllm_bf16,
                                             &mf_contract_vllm_033_triton_sm90_torch_router,
                                             &mf_contract_hopper_tc_fp8,
                                             &mf_contract_sglang_05_triton_sm90,
                                             &mf_contract_vllm_033_triton_fp8_sm90,
                                             &mf_contract_vllm_033_triton_fp8_served_sm90,
                                             NULL};

const mf_contract *const *mf_contract_list(void) { return builtin; }

const mf_contract *mf_contract_find(const char *name) {
    for (int i = 0; builtin[i]; i++)
        if (strcmp(builtin[i]->name, name) == 0) return builtin[i];
    for (size_t i = 0; i < sizeof aliases / sizeof aliases[0]; i++)
        if (strcmp(aliases[i].alias, name) == 0) return aliases[i].c;
    return NULL;
}

const char *mf_contract_alias_of(const mf_contract *c) {
    for (size_t i = 0; i < sizeof aliases / sizeof aliases[0]; i++)
        if (aliases[i].c == c || !strcmp(aliases[i].c->name, c->name)) return aliases[i].alias;
    return NULL;
}

double mf_contract_eta(const mf_contract *c) { return c->ftz ? 0x1p-126 : 0x1p-149; }

double mf_contract_router_exp_rel(const mf_contract *c, double x) {
    if (!c->router.own) return mf_contract_exp_rel(c, x);
    mf_contract r = *c;
    r.exp = c->router.exp;
    r.exp_ulps = c->router.exp_ulps;
    return mf_contract_exp_rel(&r, x);
}

double mf_contract_router_div_rel(const mf_contract *c) {
    if (!c->router.own) return mf_contract_div_rel(c);
    return c->router.div == MF_DIV_FAST ? 2 * 0x1p-23 : 0x1p-24;
}

double mf_contract_exp_rel(const mf_contract *c, double x) {
    const double ulp = 0x1p-23; /* one fp32 ulp relative to a normal result, at most */
    if (c->exp == MF_EXP_FAST) return (2.0 + floor(1.173 * fabs(x))) * ulp;
    return c->exp_ulps * ulp;
}

double mf_contract_div_rel(const mf_contract *c) {
    return c->div == MF_DIV_FAST ? 2 * 0x1p-23 : 0x1p-24;
}

/* ---- names of the enums (enums.h) ---- */

#define MF_ENUM_NAME_(P, id, name, abi) name,
#define MF_ENUM_INFO_(var, key, P, LIST)                                            \
    static const char *const var##_names[] = {LIST(MF_ENUM_NAME_, P)};             \
    const mf_enum_info var = {key, (int)(sizeof var##_names / sizeof var##_names[0]), \
                              var##_names};                                         \
    _Static_assert(sizeof var##_names / sizeof var##_names[0] == P##_COUNT, key)
MF_ENUM_INFO_(mf_enum_score, "score", MF_SCORE, MF_SCORE_LIST);
MF_ENUM_INFO_(mf_enum_bias, "bias", MF_BIAS, MF_BIAS_LIST);
MF_ENUM_INFO_(mf_enum_group_rule, "group_rule", MF_GROUP, MF_GROUP_RULE_LIST);
MF_ENUM_INFO_(mf_enum_rsf_site, "rsf_site", MF_RSF, MF_RSF_SITE_LIST);
MF_ENUM_INFO_(mf_enum_activation, "activation", MF_ACT, MF_ACTIVATION_LIST);
MF_ENUM_INFO_(mf_enum_layout, "layout", MF_LAYOUT, MF_LAYOUT_LIST);
MF_ENUM_INFO_(mf_enum_dtype, "logits_dtype", MF_DTYPE, MF_DTYPE_LIST);
MF_ENUM_INFO_(mf_enum_exp, "exp", MF_EXP, MF_EXP_LIST);
MF_ENUM_INFO_(mf_enum_div, "div", MF_DIV, MF_DIV_LIST);
MF_ENUM_INFO_(mf_enum_acc, "acc", MF_ACC, MF_ACC_LIST);
MF_ENUM_INFO_(mf_enum_sigmoid_form, "sigmoid_form", MF_SIGMOID, MF_SIGMOID_FORM_LIST);
MF_ENUM_INFO_(mf_enum_tie_rule, "tie_rule", MF_TIE, MF_TIE_RULE_LIST);
MF_ENUM_INFO_(mf_enum_weight_form, "weight_form", MF_WEIGHT, MF_WEIGHT_FORM_LIST);
MF_ENUM_INFO_(mf_enum_renorm_denom, "renorm_denom", MF_RENORM, MF_RENORM_DENOM_LIST);
MF_ENUM_INFO_(mf_enum_nonfinite, "nonfinite", MF_NONFINITE, MF_NONFINITE_LIST);
MF_ENUM_INFO_(mf_enum_expert_bias, "expert_bias", MF_EBIAS, MF_EXPERT_BIAS_LIST);
MF_ENUM_INFO_(mf_enum_weight_format, "weight_format", MF_WFMT, MF_WEIGHT_FORMAT_LIST);
MF_ENUM_INFO_(mf_enum_scale_format, "scale_format", MF_SCALE, MF_SCALE_FORMAT_LIST);
MF_ENUM_INFO_(mf_enum_shared_weight, "shared_weight", MF_SHW, MF_SHARED_WEIGHT_LIST);
MF_ENUM_INFO_(mf_enum_shared_owner, "shared_owner", MF_SHOWN, MF_SHARED_OWNER_LIST);
MF_ENUM_INFO_(mf_enum_preroute, "preroute", MF_PREROUTE, MF_PREROUTE_LIST);
MF_ENUM_INFO_(mf_enum_placement, "placement", MF_PLACEMENT, MF_PLACEMENT_LIST);

const char *mf_enum_name(const mf_enum_info *e, int v) {
    return v >= 0 && v < e->count ? e->names[v] : "?";
}

int mf_enum_lookup(const mf_enum_info *e, const char *name) {
    for (int v = 0; v < e->count; v++)
        if (!strcmp(name, e->names[v])) return v;
    return -1;
}

const char *mf_enum_choices(const mf_enum_info *e, char *buf, unsigned long n) {
    size_t o = 0;
    buf[0] = '\0';
    for (int v = 0; v < e->count && o < n; v++)
        o += (size_t)snprintf(buf + o, n - o, "%s%s", v == 0 ? "" : v + 1 == e->count ? " or " : ", ",
                              e->names[v]);
    return buf;
}

int mf_contract_equal(const mf_contract *a, const mf_contract *b) {
    mf_contract x = *a, y = *b;
    if (strcmp(x.name, y.name) || strcmp(x.summary ? x.summary : "", y.summary ? y.summary : ""))
        return 0;
    x.name = y.name = x.summary = y.summary = NULL;
    return !memcmp(&x, &y, sizeof x);
}
