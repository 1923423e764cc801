/* enums.h: every enum of the problem model and of the contract, declared once.
 *
 * Each list is X(P, ID, "name", ABI) with P the prefix (MF_SCORE): the constant is P_ID, its
 * value its position in the list; "name" is the text form (case files, reports, safetensors
 * metadata, `moefuzz values`); ABI is the kernel ABI's constant (moefuzz/kernel_abi.h), expanded
 * only in src/backend.c, which asserts that each equals the internal value and maps between them
 * with switches that fail on an unknown value. Append only: case format v1 freezes the first
 * values of each list (src/codec.c), and the kernel ABI keeps its numbers forever.
 *
 * From these lists come the enums (problem.h, dot.h, contract.h), the name and lookup functions
 * (mf_enum_name, mf_enum_lookup), the text codec's value tables, the case generators' draws and
 * the ABI mapping.
 */
#ifndef MF_ENUMS_H
#define MF_ENUMS_H

/* ---- problem model ---- */

/* sqrt_softplus (case format v2, ABI level 2; DeepSeek-V4): sqrt(log(1 + exp(l))), computed as
 * torch's softplus (l itself above 20); none (ABI level 5; FlashInfer's TopK method): the raw
 * logit is the score, so weights may be negative (no renormalisation) */
#define MF_SCORE_LIST(X, P)                                          \
    X(P, SOFTMAX, "softmax", MF_ABI_SCORE_SOFTMAX)                   \
    X(P, SIGMOID, "sigmoid", MF_ABI_SCORE_SIGMOID)                   \
    X(P, SQRT_SOFTPLUS, "sqrt_softplus", MF_ABI_SCORE_SQRT_SOFTPLUS) \
    X(P, NONE, "none", MF_ABI_SCORE_NONE)

#define MF_BIAS_LIST(X, P)                            \
    X(P, NONE, "none", MF_ABI_BIAS_NONE)              \
    X(P, F32, "f32", MF_ABI_BIAS_F32)                 \
    X(P, BF16, "bf16", MF_ABI_BIAS_BF16)

#define MF_GROUP_RULE_LIST(X, P)                      \
    X(P, TOP2_SUM, "top2_sum", MF_ABI_GROUP_TOP2_SUM) \
    X(P, MAX, "max", MF_ABI_GROUP_MAX)

#define MF_RSF_SITE_LIST(X, P)                        \
    X(P, WEIGHTS, "weights", MF_ABI_RSF_WEIGHTS)      \
    X(P, OUTPUT, "output", MF_ABI_RSF_OUTPUT)

/* silu_glu: silu(g) u. Case format v2 (ABI level 2), with act_limit L and act_alpha:
 * swiglu_oai (gpt-oss): g' = min(g, L), u' = clamp(u, -L, L), (u' + 1) g' sigmoid(alpha g');
 * silu_clamp (vLLM silu_and_mul_with_clamp, DeepSeek-V4): silu(min(g, L)) clamp(u, -L, L);
 * silu_clamp_after (vLLM swiglustep): min(silu(g), L) clamp(u, -L, L) */
#define MF_ACTIVATION_LIST(X, P)                                   \
    X(P, SILU_GLU, "silu_glu", MF_ABI_ACT_SILU_GLU)                \
    X(P, SWIGLU_OAI, "swiglu_oai", MF_ABI_ACT_SWIGLU_OAI)          \
    X(P, SILU_CLAMP, "silu_clamp", MF_ABI_ACT_SILU_CLAMP)          \
    X(P, SILU_CLAMP_AFTER, "silu_clamp_after", MF_ABI_ACT_SILU_CLAMP_AFTER)

/* gate_up: rows [0, I) of W13 gate, [I, 2I) up; up_gate the reverse; interleaved (case format
 * v2, ABI level 2; gpt-oss, vLLM swigluoai's `[..., ::2]`): row 2j gate j, row 2j + 1 up j */
#define MF_LAYOUT_LIST(X, P)                                     \
    X(P, GATE_UP, "gate_up", MF_ABI_LAYOUT_GATE_UP)              \
    X(P, UP_GATE, "up_gate", MF_ABI_LAYOUT_UP_GATE)              \
    X(P, INTERLEAVED, "interleaved", MF_ABI_LAYOUT_INTERLEAVED)

#define MF_DTYPE_LIST(X, P)                           \
    X(P, F32, "f32", MF_ABI_DTYPE_F32)                \
    X(P, BF16, "bf16", MF_ABI_DTYPE_BF16)

/* Case format v2 (ABI level 2) from here on: docs/case-format.md. */

/* the renormalisation's denominator D over the selected scores' sum S: sum_eps = S + eps (v1);
 * sum_or_one = S > 0 ? S : 1 (vLLM topk_softmax / topk_sigmoid); max_eps = max(S, eps) */
#define MF_RENORM_DENOM_LIST(X, P)                             \
    X(P, SUM_EPS, "sum_eps", MF_ABI_RENORM_SUM_EPS)            \
    X(P, SUM_OR_ONE, "sum_or_one", MF_ABI_RENORM_SUM_OR_ONE)   \
    X(P, MAX_EPS, "max_eps", MF_ABI_RENORM_MAX_EPS)

/* the router's non-finite policy: propagate = a NaN or infinite logit (or bias) makes the
 * token's routing undefined and its output may be NaN (v1); zero = a score that is not finite is
 * replaced by 0 before selection and weights (vLLM topk_softmax / topk_sigmoid) */
#define MF_NONFINITE_LIST(X, P)                                \
    X(P, PROPAGATE, "propagate", MF_ABI_NONFINITE_PROPAGATE)   \
    X(P, ZERO, "zero", MF_ABI_NONFINITE_ZERO)

/* expert biases (bf16 tensors): b13 [E_local][2I] added to GEMM1's output before the
 * activation (in W13's row order), b2 [E_local][H] added to the expert's output before the
 * routing weight (gpt-oss) */
#define MF_EXPERT_BIAS_LIST(X, P)                              \
    X(P, NONE, "none", MF_ABI_EXPERT_BIAS_NONE)                \
    X(P, B13_B2, "b13_b2", MF_ABI_EXPERT_BIAS_B13_B2)          \
    X(P, B13, "b13", MF_ABI_EXPERT_BIAS_B13)                   \
    X(P, B2, "b2", MF_ABI_EXPERT_BIAS_B2)
/* expert weights: bf16 (v1); fp8_block = e4m3 weights with an fp32 scale per block_n x block_k
 * block and activations quantized per (token, block_k columns), the intermediate re-quantized
 * (the DeepSeek recipe); mxfp4 = e2m1 weights, two per byte, a UE8M0 scale per 32 along K, bf16
 * activations (reference/fp8.h) */
#define MF_WEIGHT_FORMAT_LIST(X, P)                            \
    X(P, BF16, "bf16", MF_ABI_WFMT_BF16)                       \
    X(P, FP8_BLOCK, "fp8_block", MF_ABI_WFMT_FP8_BLOCK)        \
    X(P, MXFP4, "mxfp4", MF_ABI_WFMT_MXFP4)

/* fp8_block activation scales: f32 = amax / 448; ue8m0 = that rounded up to a power of two */
#define MF_SCALE_FORMAT_LIST(X, P)                             \
    X(P, F32, "f32", MF_ABI_SCALE_F32)                         \
    X(P, UE8M0, "ue8m0", MF_ABI_SCALE_UE8M0)
/* shared experts (n_shared > 0): the weight of each shared expert's slot in the combine, before
 * an output-site rsf: 1; 1/rsf (SGLang's fused form, which the output-site rsf brings back to
 * 1); sigmoid of the token's shared_gate logit (Qwen2-MoE, Qwen3-Next) */
#define MF_SHARED_WEIGHT_LIST(X, P)                            \
    X(P, ONE, "one", MF_ABI_SHARED_WEIGHT_ONE)                 \
    X(P, INV_RSF, "inv_rsf", MF_ABI_SHARED_WEIGHT_INV_RSF)     \
    X(P, GATE, "gate", MF_ABI_SHARED_WEIGHT_GATE)
/* expert parallelism: whether this rank adds the shared experts (one rank owns them, so that
 * the ranks' partial outputs sum to the unsharded one) */
#define MF_SHARED_OWNER_LIST(X, P)                             \
    X(P, THIS_RANK, "this_rank", MF_ABI_SHARED_OWNER_THIS_RANK) \
    X(P, OTHER_RANK, "other_rank", MF_ABI_SHARED_OWNER_OTHER_RANK)
/* pre-routed input (ABI level 6): none = the kernel routes (every lower level); f32 / bf16 = the
 * kernel is given topk_ids_in and topk_weights_in (weights in that dtype) and runs no router */
#define MF_PREROUTE_LIST(X, P)                                 \
    X(P, NONE, "none", MF_ABI_PREROUTE_NONE)                   \
    X(P, F32, "f32", MF_ABI_PREROUTE_F32)                      \
    X(P, BF16, "bf16", MF_ABI_PREROUTE_BF16)
/* expert placement (ABI level 7): contiguous = this rank's experts are global ids
 * [expert_offset, expert_offset + E_local) in order (every lower level); map = tensor expert_map
 * [E] gives each global id's local index, or -1 (vLLM's expert_map: any placement, holes) */
#define MF_PLACEMENT_LIST(X, P)                                 \
    X(P, CONTIGUOUS, "contiguous", MF_ABI_PLACEMENT_CONTIGUOUS) \
    X(P, MAP, "map", MF_ABI_PLACEMENT_MAP)

/* ---- contract ---- */

/* exp: accurate = expf, at most exp_ulps ulp; fast = __expf / ex2.approx, at most
 * 2 + floor(1.173 |x|) ulp */
#define MF_EXP_LIST(X, P)                             \
    X(P, ACCURATE, "accurate", MF_ABI_EXP_ACCURATE)   \
    X(P, FAST, "fast", MF_ABI_EXP_FAST)

/* division: ieee = correctly rounded; fast = __fdividef, 2 ulp */
#define MF_DIV_LIST(X, P)                             \
    X(P, IEEE, "ieee", MF_ABI_DIV_IEEE)               \
    X(P, FAST, "fast", MF_ABI_DIV_FAST)

/* GEMM accumulation (dot.h): seq_fp32 = one fp32 chain in K order, each step rounded to
 * nearest; fused_block = a chain of fused steps of `block` products (tensor cores), terms
 * aligned to the step's maximum and truncated to `frac_bits`; any_order = any order and blocking
 * with at least 24 fraction bits; ordered_blocks = one fp32 accumulator in K order, blocks of at
 * most `block` products with any boundaries, at least `frac_bits` kept, RN or RZ */
#define MF_ACC_LIST(X, P)                                 \
    X(P, SEQ_FP32, "seq_fp32", MF_ABI_ACC_SEQ_FP32)       \
    X(P, FUSED_BLOCK, "fused_block", MF_ABI_ACC_FUSED_BLOCK) \
    X(P, ANY_ORDER, "any_order", MF_ABI_ACC_ANY_ORDER)    \
    X(P, ORDERED_BLOCKS, "ordered_blocks", MF_ABI_ACC_ORDERED_BLOCKS)

/* sigmoid form of the router: exp_div = 1 / (1 + exp(-x)) with the router's exp and division;
 * tanh = 0.5 tanh(0.5 x) + 0.5 with tanh's relative error tanh_rel (absolute in the score);
 * exp_div_or_tanh = either (a kernel family whose routers use both) */
#define MF_SIGMOID_FORM_LIST(X, P)                        \
    X(P, EXP_DIV, "exp_div", MF_ABI_SIGMOID_EXP_DIV)      \
    X(P, TANH, "tanh", MF_ABI_SIGMOID_TANH)                   \
    X(P, EXP_DIV_OR_TANH, "exp_div_or_tanh", MF_ABI_SIGMOID_EXP_DIV_OR_TANH)

/* order among experts (and groups) with bit-identical inputs: lower_index = the lower index
 * first (CUDA routers' packed keys); any = any order (torch.topk) */
#define MF_TIE_RULE_LIST(X, P)                            \
    X(P, LOWER_INDEX, "lower_index", MF_ABI_TIE_LOWER_INDEX) \
    X(P, ANY, "any", MF_ABI_TIE_ANY)

/* how a weight's roundings are formed: plain = from the fp32 score (s / D then rsf, or
 * s fl(rsf / D), or fl(s rsf) / D: two roundings each); key_minus_bias = the score recovered
 * as fl(fl(s + b) - b) from the key first (vLLM's single-group warp kernel) */
#define MF_WEIGHT_FORM_LIST(X, P)                         \
    X(P, PLAIN, "plain", MF_ABI_WEIGHT_PLAIN)             \
    X(P, KEY_MINUS_BIAS, "key_minus_bias", MF_ABI_WEIGHT_KEY_MINUS_BIAS)

/* One enum from a list: `typedef enum T { P_ID, ..., P_COUNT } T;` */
#define MF_ENUM_ITEM(P, id, name, abi) P##_##id,
#define MF_ENUM_DEFINE(T, P, LIST) typedef enum T { LIST(MF_ENUM_ITEM, P) P##_COUNT } T

/* ---- names ---- */

/* An enum's text names, for lookups and value lists. */
typedef struct mf_enum_info {
    const char *key;           /* the case file's key, e.g. "score" */
    int count;                 /* values 0 .. count-1 */
    const char *const *names;  /* names[v] */
} mf_enum_info;

extern const mf_enum_info mf_enum_score, mf_enum_bias, mf_enum_group_rule, mf_enum_rsf_site,
    mf_enum_activation, mf_enum_layout, mf_enum_dtype, mf_enum_exp, mf_enum_div, mf_enum_acc,
    mf_enum_sigmoid_form, mf_enum_tie_rule, mf_enum_weight_form, mf_enum_renorm_denom,
    mf_enum_nonfinite, mf_enum_expert_bias, mf_enum_weight_format, mf_enum_scale_format,
    mf_enum_shared_weight, mf_enum_shared_owner, mf_enum_preroute, mf_enum_placement;

/* The name of value v, or "?" outside the list. */
const char *mf_enum_name(const mf_enum_info *e, int v);
/* The value named `name`, or -1. */
int mf_enum_lookup(const mf_enum_info *e, const char *name);
/* "a, b or c": the names for a message; returns buf. */
const char *mf_enum_choices(const mf_enum_info *e, char *buf, unsigned long n);

#endif /* MF_ENUMS_H */
