/* contract.c: built-in numerical contracts (see contract.h). */
#include "contract.h"

#include <math.h>
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

/* Contracts of external kernel families (shared notes moe-semantics-and-bugs.md 1.8). Their
 * GEMMs run on tensor cores whose order depends on the card and the tile configuration, so
 * accumulation is "any order"; exp and division are allowed the fast variants. What sets them
 * apart is where they round to bf16. */
const mf_contract mf_contract_vllm_triton = {
    .name = "vllm-triton",
    .summary = "vLLM's Triton fused_moe: GEMM1 output (gate, up) rounded to bf16, activation "
               "rounded to bf16, w * y rounded to bf16 per expert in the GEMM2 epilogue "
               "(MUL_ROUTED_WEIGHT), moe_sum over top-k in fp32, one final bf16 rounding; any "
               "accumulation order, fast exp and division",
    .gemm = {MF_ACC_ANY_ORDER, 0, 0},
    .exp = MF_EXP_FAST,
    .exp_ulps = 0,
    .div = MF_DIV_FAST,
    .round_points = MF_RP_GEMM1_OUT | MF_RP_ACT_OUT | MF_RP_WEIGHTED,
    .deterministic = 0,
};

const mf_contract mf_contract_flashinfer_trtllm_bf16 = {
    .name = "flashinfer-trtllm-bf16",
    .summary = "FlashInfer's trtllm-gen BF16 fused MoE: routing weights (rsf included) rounded "
               "to bf16 by the routing kernel, GEMM1 in fp32 with the activation fused and "
               "rounded to bf16, GEMM2 output rounded to bf16, finalize over top-k in fp32, one "
               "final bf16 rounding; any accumulation order, fast exp and division ([up; gate] "
               "is the case's layout = up_gate, not part of the contract)",
    .gemm = {MF_ACC_ANY_ORDER, 0, 0},
    .exp = MF_EXP_FAST,
    .exp_ulps = 0,
    .div = MF_DIV_FAST,
    .round_points = MF_RP_ACT_OUT | MF_RP_GEMM2_OUT | MF_RP_WEIGHTS,
    .deterministic = 0,
};

static const mf_contract *const builtin[] = {&mf_contract_cpu_scalar,
                                             &mf_contract_hopper_tc,
                                             &mf_contract_any_order,
                                             &mf_contract_vllm_triton,
                                             &mf_contract_flashinfer_trtllm_bf16,
                                             NULL};

const mf_contract *const *mf_contract_list(void) { return builtin; }

const mf_contract *mf_contract_find(const char *name) {
    for (int i = 0; builtin[i]; i++)
        if (strcmp(builtin[i]->name, name) == 0) return builtin[i];
    return NULL;
}

double mf_contract_exp_rel(const mf_contract *c, double x) {
    const double ulp = 0x1p-23; /* one fp32 ulp relative to a normal result, at most */
    if (c->exp == MF_EXP_FAST) return (2.0 + floor(1.173 * fabs(x))) * ulp;
    return c->exp_ulps * ulp;
}

double mf_contract_div_rel(const mf_contract *c) {
    return c->div == MF_DIV_FAST ? 2 * 0x1p-23 : 0x1p-24;
}

/* ---- names of the problem enums (problem.h) ---- */

const char *mf_score_name(mf_score_fn s) { return s == MF_SCORE_SIGMOID ? "sigmoid" : "softmax"; }
const char *mf_bias_name(mf_bias_kind b) {
    return b == MF_BIAS_F32 ? "f32" : b == MF_BIAS_BF16 ? "bf16" : "none";
}
const char *mf_group_rule_name(mf_group_rule r) { return r == MF_GROUP_MAX ? "max" : "top2_sum"; }
const char *mf_rsf_site_name(mf_rsf_site s) { return s == MF_RSF_OUTPUT ? "output" : "weights"; }
const char *mf_activation_name(mf_activation a) {
    (void)a;
    return "silu_glu";
}
const char *mf_layout_name(mf_layout l) { return l == MF_LAYOUT_UP_GATE ? "up_gate" : "gate_up"; }
const char *mf_dtype_name(mf_dtype d) { return d == MF_DTYPE_BF16 ? "bf16" : "f32"; }
