/* contract.h: a kernel's numerical contract, i.e. the set of answers it is allowed to give.
 *
 * The reference computes every quantity exactly and a radius bounding what any implementation of
 * the contract may return. At each rounding point the admissible set is
 * [RN_bf16(z - R), RN_bf16(z + R)]. docs/error-model.md derives each term.
 */
#ifndef MF_CONTRACT_H
#define MF_CONTRACT_H

#include "dot.h"

/* exp: accurate = expf, at most exp_ulps ulp; fast = __expf / ex2.approx, at most
 * 2 + floor(1.173 |x|) ulp. division: ieee = correctly rounded; fast = __fdividef, 2 ulp. */
MF_ENUM_DEFINE(mf_exp_kind, MF_EXP, MF_EXP_LIST);
MF_ENUM_DEFINE(mf_div_kind, MF_DIV, MF_DIV_LIST);

typedef enum mf_round_point {
    MF_RP_GEMM1_OUT = 1u << 0, /* gate and up rounded to bf16 before the activation */
    MF_RP_ACT_OUT = 1u << 1,   /* activation rounded to bf16 before GEMM2 (every contract) */
    MF_RP_GEMM2_OUT = 1u << 2, /* expert output rounded to bf16 before the weight */
    MF_RP_WEIGHTED = 1u << 3,  /* w * y rounded to bf16 per expert before the sum */
    MF_RP_WEIGHTS = 1u << 4,   /* routing weights rounded to bf16 */
} mf_round_point;

typedef struct mf_contract {
    const char *name;
    const char *summary;
    mf_acc_model gemm;   /* GEMM1 and GEMM2 accumulation */
    mf_exp_kind exp;
    double exp_ulps;     /* MF_EXP_ACCURATE: documented max error in fp32 ulps */
    mf_div_kind div;
    unsigned round_points; /* mf_round_point bits */
    int deterministic;     /* two runs on the same input give identical bits */
} mf_contract;

/* Built-in contracts. */
extern const mf_contract mf_contract_cpu_scalar;  /* kernels/cpu: fp32 scalar chain */
extern const mf_contract mf_contract_hopper_tc;   /* kernels/cuda: wgmma/mma bf16, B=16 F=25 RZ */
extern const mf_contract mf_contract_any_order;   /* model-free fallback (T0) */
extern const mf_contract mf_contract_vllm_triton; /* vLLM Triton fused_moe rounding points */
extern const mf_contract mf_contract_flashinfer_trtllm_bf16; /* FlashInfer trtllm-gen BF16 */

/* Looks a contract up by name; NULL if unknown. */
const mf_contract *mf_contract_find(const char *name);
/* NULL-terminated list of built-in contracts. */
const mf_contract *const *mf_contract_list(void);

/* Relative error bound of the contract's exp at argument x (in units of the result). */
double mf_contract_exp_rel(const mf_contract *c, double x);
/* Relative error bound of one division. */
double mf_contract_div_rel(const mf_contract *c);

#endif /* MF_CONTRACT_H */
