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

/* Contracts of external kernel families (docs/error-model.md lists their rounding points). Their
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
