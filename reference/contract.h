/* contract.h: a kernel's numerical contract, i.e. the set of answers it is allowed to give.
 *
 * The reference computes every quantity exactly and a radius bounding what any implementation of
 * the contract may return. At each rounding point the admissible set is
 * [RN_bf16(z - R), RN_bf16(z + R)]. docs/error-model.md derives each term.
 */
#ifndef MF_CONTRACT_H
#define MF_CONTRACT_H

#include "dot.h"
#include "fp8.h"
#include "problem.h"

/* exp: accurate = expf, at most exp_ulps ulp; fast = __expf / ex2.approx, at most
 * 2 + floor(1.173 |x|) ulp. division: ieee = correctly rounded; fast = __fdividef, 2 ulp. */
MF_ENUM_DEFINE(mf_exp_kind, MF_EXP, MF_EXP_LIST);
MF_ENUM_DEFINE(mf_div_kind, MF_DIV, MF_DIV_LIST);
MF_ENUM_DEFINE(mf_sigmoid_form, MF_SIGMOID, MF_SIGMOID_FORM_LIST);
MF_ENUM_DEFINE(mf_tie_rule, MF_TIE, MF_TIE_RULE_LIST);
MF_ENUM_DEFINE(mf_weight_form, MF_WEIGHT, MF_WEIGHT_FORM_LIST);

typedef enum mf_round_point {
    MF_RP_GEMM1_OUT = 1u << 0, /* gate and up rounded to bf16 before the activation */
    MF_RP_ACT_OUT = 1u << 1,   /* activation rounded to bf16 before GEMM2 (every contract) */
    MF_RP_GEMM2_OUT = 1u << 2, /* expert output rounded to bf16 before the weight */
    MF_RP_WEIGHTED = 1u << 3,  /* w * y rounded to bf16 per expert before the sum */
    MF_RP_WEIGHTS = 1u << 4,   /* routing weights rounded to bf16 */
    MF_RP_SILU_OUT = 1u << 5,  /* silu(g) rounded to bf16 before the multiply by up */
    MF_RP_RSF_OUT = 1u << 6,   /* output-site rsf: RN_bf16(RN_bf16(z) * rsf), z the combine */
    MF_RP_BIAS = 1u << 7,      /* the bias rounded to bf16 before the key add */
} mf_round_point;

/* The router's exp and division where they differ from the activation's (router_own). */
typedef struct mf_fn_kinds {
    int own; /* 0: the router uses the contract's exp, exp_ulps and div */
    mf_exp_kind exp;
    double exp_ulps;
    mf_div_kind div;
} mf_fn_kinds;

typedef struct mf_contract {
    const char *name;
    const char *summary;
    mf_acc_model gemm;   /* GEMM1 and GEMM2 accumulation */
    mf_exp_kind exp;
    double exp_ulps;     /* MF_EXP_ACCURATE: documented max error in fp32 ulps */
    mf_div_kind div;
    unsigned round_points; /* mf_round_point bits */
    int deterministic;     /* two runs on the same input give identical bits */
    /* Every field below is 0 for the behaviour of the fields above alone (a contract declared
     * field by field through the ABI gets zeros). docs/error-model.md derives each. */
    mf_fn_kinds router;           /* the router's exp and division kinds */
    mf_sigmoid_form sigmoid_form; /* router sigmoid: 1 / (1 + exp(-x)) or 0.5 tanh(0.5 x) + 0.5 */
    double tanh_rel;              /* MF_SIGMOID_TANH: max relative error of the tanh */
    int softmax_recip;            /* softmax as e fl(1 / Z), not e / Z: one more rounding */
    mf_weight_form weight_form;
    mf_tie_rule tie_rule;
    int ftz;               /* subnormal fp32 results of the router, activation and combine
                              flushed to 0 (fast math; tensor-core GEMMs are not affected) */
    mf_dtype combine_dtype; /* the combine's accumulator: fp32, or bf16 (each add rounded) */
    const char *sources;   /* where each rounding point and approximation was read, or NULL */
    int router_logits_dtype; /* the router computes in the logits' dtype: with bf16 logits its
                                scores, bf16 keys, group sums, denominator, quotient and rsf
                                product are each rounded to bf16 (vLLM's torch grouped_topk) */
    mf_fp8_acc fp8_gemm; /* weight_format fp8_block: each K block's partial on the tensor cores
                            (fp8.h); step 0: the CPU FP8 contract's fp32 chain */
    /* weight_format fp8_block, the activation quantizer (fp8.h mf_fp8_quant; 0: kernels/cpu's
     * IEEE quotient y / s and exact power-of-two round-up) */
    int fp8_quant_recip;   /* y fl(1 / s): vLLM's CUDA per_token_group_fp8_quant */
    float fp8_ue8m0_floor; /* ue8m0: the raw scale floored here before the round-up */
    double fp8_log2_rel;   /* ue8m0: a log2f may round a scale 2^k (1 + x), x <= this, to 2^k */
    /* weight_format fp8_block, the intermediate: 1 where silu(g) u and its quantizer are one
     * fused op (vLLM's silu_and_mul_per_block_quant): fl(fl(g fl(1 / fl(1 + expf(-g)))) u) in
     * fp32 from the bf16 GEMM1 outputs (expf within exp_ulps; no silu or activation rounding),
     * quantized with amax from 0, s = max(fl(amax / 448), fp8_scale_floor), e4m3(fl(y / s));
     * fp32 scales and 128 x 128 blocks only. x's quantizer is unchanged. */
    int fp8_act_fused;
    float fp8_scale_floor; /* fp8_act_fused: the fp32 scale's floor */
} mf_contract;

/* Built-in contracts. */
extern const mf_contract mf_contract_cpu_scalar;  /* kernels/cpu: fp32 scalar chain */
extern const mf_contract mf_contract_hopper_tc;   /* kernels/cuda: wgmma/mma bf16, B=16 F=25 RZ */
extern const mf_contract mf_contract_any_order;   /* model-free fallback (T0) */
extern const mf_contract mf_contract_vllm_033_triton_sm90;    /* vLLM 0.33.0, Triton, Hopper */
extern const mf_contract mf_contract_flashinfer_07_trtllm_bf16; /* FlashInfer 0.7.4 trtllm-gen */
extern const mf_contract mf_contract_vllm_033_triton_sm90_torch_router; /* its torch router */
extern const mf_contract mf_contract_hopper_tc_fp8; /* hopper-tc, FP8 GEMMs on wgmma k32 */
extern const mf_contract mf_contract_sglang_05_triton_sm90; /* SGLang 0.5.23, Triton, Hopper */
extern const mf_contract mf_contract_vllm_033_triton_fp8_sm90; /* vLLM 0.33.0, FP8 block scale */
extern const mf_contract mf_contract_vllm_033_triton_fp8_served_sm90; /* its modular path */

/* 1 if a and b are the same contract field by field (names compared as strings). */
int mf_contract_equal(const mf_contract *a, const mf_contract *b);

/* Looks a contract up by name or alias; NULL if unknown. An alias returns the contract it names,
 * whose name (the resolved one) is what reports print. */
const mf_contract *mf_contract_find(const char *name);
/* NULL-terminated list of built-in contracts. */
const mf_contract *const *mf_contract_list(void);
/* The alias that resolves to c, or NULL (for listings). */
const char *mf_contract_alias_of(const mf_contract *c);

/* Absolute error of one fp32 result that may underflow: 2^-149, or 2^-126 under FTZ. */
double mf_contract_eta(const mf_contract *c);
/* The router's exp (relative, at argument x) and division error bounds. */
double mf_contract_router_exp_rel(const mf_contract *c, double x);
double mf_contract_router_div_rel(const mf_contract *c);
/* Does the contract's division return 0 for some divisor below 2^128 (__fdividef: 0 for
 * 2^126 < |y| < 2^128)? */
static inline int mf_contract_div_zero_domain(mf_div_kind d) { return d == MF_DIV_FAST; }

/* Relative error bound of the contract's exp at argument x (in units of the result). */
double mf_contract_exp_rel(const mf_contract *c, double x);
/* Relative error bound of one division. */
double mf_contract_div_rel(const mf_contract *c);

#endif /* MF_CONTRACT_H */
