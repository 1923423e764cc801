/* problem.h: the MoE forward problem as the reference sees it: semantic parameters and tensors.
 *
 * Canonical forward, per token t (docs/design.md; docs/bugs.md for the variants real kernels run):
 *   s   = score(L[t])                   softmax | sigmoid | sqrt_softplus | none (the logit)
 *   key = s + bias                      bias selects only; never enters the weights
 *   if n_group > 1: gscore[g] = rule(key in group g); keep topk_group groups; others -> -inf
 *   ids = top_k(key)                    ties: lower index (groups too)
 *   w   = s[ids]; if renormalize: w /= sum(w) + eps
 *   rsf: w *= rsf (site weights) or out *= rsf (site output)
 *   per selected expert e with offset <= e < offset + E_local (expert parallelism):
 *       [gate; up] = W13[e - offset] x_t (+ b13)   (layout), a = silu(gate) * up, h = bf16(a)
 *       y_e = W2[e - offset] h (+ b2)
 *   out[t] = sum_k w_k y_{e_k}  (local experts only: the rank's partial sum)
 *          + sum_{j < n_shared} s_j ys_j(x_t)   (shared experts, only on the rank that owns them:
 *            intermediate size shared_I, weights sw13/sw2, the same activation, no expert bias;
 *            s_j = 1, 1/rsf or sigmoid(shared_gate[t]) by shared_weight)
 *   rsf at site output multiplies the whole sum, the shared experts' terms included
 *   weight_on_input: expert e_k runs on w_k x_t and enters the sum unweighted (shared: x_t)
 *   preroute: ids and w are given (topk_ids_in, topk_weights_in) and no router runs: a slot
 *       whose id is -1 (or outside [0, E), or another rank's) adds nothing, a repeated id adds
 *       its expert once per slot, w is used as given (an output-site rsf still scales the sum)
 *   placement map: the routing stays global; selected expert e adds iff expert_map[e] >= 0,
 *       through local expert expert_map[e]'s weights (contiguous: e - expert_offset in range)
 *   tensor parallelism (tp_size > 1): this rank holds a slice of every expert's intermediate
 *       dimension (I, shared_I are the slice's width; W13, b13, W2, sw13, sw2 hold the slice) and
 *       out[t] is its partial sum; b2 is added on rank 0 only (summed over the ranks, once)
 *
 * The enums come from reference/enums.h: never renumber, only append.
 */
#ifndef MF_PROBLEM_H
#define MF_PROBLEM_H

#include <stdint.h>

#include "enums.h"

MF_ENUM_DEFINE(mf_score_fn, MF_SCORE, MF_SCORE_LIST);
MF_ENUM_DEFINE(mf_bias_kind, MF_BIAS, MF_BIAS_LIST);
MF_ENUM_DEFINE(mf_group_rule, MF_GROUP, MF_GROUP_RULE_LIST);
MF_ENUM_DEFINE(mf_rsf_site, MF_RSF, MF_RSF_SITE_LIST);
MF_ENUM_DEFINE(mf_activation, MF_ACT, MF_ACTIVATION_LIST);
MF_ENUM_DEFINE(mf_layout, MF_LAYOUT, MF_LAYOUT_LIST);
MF_ENUM_DEFINE(mf_dtype, MF_DTYPE, MF_DTYPE_LIST);
MF_ENUM_DEFINE(mf_renorm_denom, MF_RENORM, MF_RENORM_DENOM_LIST);
MF_ENUM_DEFINE(mf_nonfinite, MF_NONFINITE, MF_NONFINITE_LIST);
MF_ENUM_DEFINE(mf_expert_bias, MF_EBIAS, MF_EXPERT_BIAS_LIST);
MF_ENUM_DEFINE(mf_weight_format, MF_WFMT, MF_WEIGHT_FORMAT_LIST);
MF_ENUM_DEFINE(mf_scale_format, MF_SCALE, MF_SCALE_FORMAT_LIST);
MF_ENUM_DEFINE(mf_shared_weight, MF_SHW, MF_SHARED_WEIGHT_LIST);
MF_ENUM_DEFINE(mf_shared_owner, MF_SHOWN, MF_SHARED_OWNER_LIST);
MF_ENUM_DEFINE(mf_preroute, MF_PREROUTE, MF_PREROUTE_LIST);
MF_ENUM_DEFINE(mf_placement, MF_PLACEMENT, MF_PLACEMENT_LIST);

/* Counterfactual semantics: the ways real bugs change the routing that no parameter expresses.
 * Used by attribution (src/attribute.c) only; never part of a case. */
typedef enum mf_variant {
    MF_VARIANT_MASK_ZERO = 1u << 0,         /* experts of dropped groups keep key 0, not -inf */
    MF_VARIANT_WEIGHTS_FROM_KEYS = 1u << 1, /* weights from the biased keys, not the scores */
    MF_VARIANT_B2_UNWEIGHTED = 1u << 2,     /* out += w y + b2: the expert bias not weighted */
    MF_VARIANT_CLAMP_DROPPED = 1u << 3,     /* the activation's clamps never applied */
    MF_VARIANT_SHARED_EVERY_RANK = 1u << 4, /* shared experts added by a rank that does not own
                                               them (SGLang #26845) */
    MF_VARIANT_SHARED_RSF_TWICE = 1u << 5,  /* each shared weight divided by rsf once more
                                               (SGLang #28237, #35163) */
    MF_VARIANT_SHARED_DROPPED = 1u << 6,    /* the last shared expert's slot dropped (SGLang
                                               #38963) */
    MF_VARIANT_EMPTY_SLOT_WRAPPED = 1u << 7, /* pre-routed: an id of -1 read as expert E - 1
                                                (an index wrapped like torch's x[-1]) */
    MF_VARIANT_WEIGHTS_IGNORED = 1u << 8,    /* pre-routed: every given weight read as 1 */
} mf_variant;
/* The variants that the experts' and output's reference reads from its context's parameters (the
 * others change the routing only): a counterfactual with one of them needs its own context. */
#define MF_VARIANT_EXPERTS                                                                  \
    (MF_VARIANT_B2_UNWEIGHTED | MF_VARIANT_CLAMP_DROPPED | MF_VARIANT_SHARED_EVERY_RANK |  \
     MF_VARIANT_SHARED_RSF_TWICE | MF_VARIANT_SHARED_DROPPED)

typedef struct mf_moe_params {
    int T;             /* tokens */
    int H;             /* hidden size */
    int I;             /* intermediate size per expert (GEMM1 has 2I rows) */
    int E;             /* experts, global */
    int E_local;       /* experts held by this rank (expert parallelism) */
    int expert_offset; /* global id of local expert 0 */
    int top_k;
    mf_score_fn score;
    mf_bias_kind bias;
    int n_group;    /* 1: no grouping; else divides E */
    int topk_group; /* groups kept, 1 <= topk_group <= n_group */
    mf_group_rule group_rule;
    int renormalize;
    float renorm_eps; /* 0 or 1e-20f, added to the sum of the selected weights */
    float rsf;        /* routed_scaling_factor */
    mf_rsf_site rsf_site;
    mf_activation activation;
    mf_layout layout;
    mf_dtype logits_dtype;
    unsigned variant; /* mf_variant bits; 0 for the problem itself */
    /* case format v2 (src/case.h MF_PARAM_V2_LIST): each value 0 means v1's semantics */
    mf_renorm_denom renorm_denom;
    mf_nonfinite nonfinite;
    mf_expert_bias expert_bias;
    float act_alpha; /* swiglu_oai's alpha (gpt-oss 1.702); 0 for the other activations */
    float act_limit; /* the clamped activations' limit L (gpt-oss 7); 0 for silu_glu */
    /* quantized weights (reference/fp8.h); 0 = bf16 weights */
    mf_weight_format weight_format;
    mf_scale_format scale_format; /* fp8_block: activation scales */
    int block_n, block_k; /* fp8_block: weight scale blocks; 0 = 128 (the models') */
    /* shared experts (ABI level 4): 0 = none */
    int n_shared;
    int shared_I; /* their intermediate size (GEMM1 has 2 shared_I rows) */
    mf_shared_weight shared_weight;
    mf_shared_owner shared_owner;
    /* routing variants (ABI level 5): 1 = the routing weight multiplies the expert's input
     * (vLLM apply_router_weight_on_input, Llama-4), not its output */
    int weight_on_input;
    /* pre-routed input (ABI level 6): the routing is given (tensors topk_ids_in,
     * topk_weights_in in f32 or bf16); 0 = the kernel routes */
    mf_preroute preroute;
    /* expert placement (ABI level 7): map = tensor expert_map says which global experts are
     * local and where (expert_offset 0); 0 = contiguous from expert_offset */
    mf_placement placement;
    /* tensor-parallel shard of I (ABI level 8): 0 = no sharding; else the ranks (2..64) and
     * this rank (0..tp_size - 1). I and shared_I are this rank's widths (vLLM's
     * intermediate_size_per_partition), the weights its slice; b2 counts on rank 0 only. */
    int tp_size;
    int tp_rank;
} mf_moe_params;

/* Tensor storage. All row-major; bf16 as bit patterns. */
typedef struct mf_moe_tensors {
    const uint16_t *x;   /* [T][H] */
    const float *logits; /* [T][E]; bf16-representable values when logits_dtype is BF16 */
    const float *bias;   /* [E] or NULL; bf16-representable when bias is MF_BIAS_BF16 */
    const uint16_t *w13; /* [E_local][2I][H]: rows [0, I) gate for GATE_UP, up for UP_GATE */
    const uint16_t *w2;  /* [E_local][H][I] */
    /* [E_local] or NULL (every expert generated): which experts' weights hold their values
     * (MF_REF_EXPERT_READY); the others may be poison, and reading one is an error, never a
     * silent pass */
    const uint8_t *expert_state;
    /* case format v2 */
    const uint16_t *b13; /* [E_local][2I] bf16 or NULL: GEMM1's bias, in W13's row order */
    const uint16_t *b2;  /* [E_local][H] bf16 or NULL: the expert output's bias */
    /* Quantized weights are carried as bf16 values in w13 and w2 and reach the kernel in its
     * format (reference/fp8.h): fp8_block: the e4m3 codes mf_e4m3_from_bf16(w13), with the fp32
     * block scales below; mxfp4: the canonical packing mf_mxfp4_pack_bf16(w13), whose
     * dequantized values the reference uses.
     * fp8_block scales: w13_s [E_local][2I / block_n][ceil(H / block_k)],
     * w2_s [E_local][ceil(H / block_n)][ceil(I / block_k)]; NULL otherwise. */
    const float *w13_s, *w2_s;
    /* shared experts (n_shared > 0): sw13 [n_shared][2 shared_I][H] (W13's layout),
     * sw2 [n_shared][H][shared_I], bf16; shared_gate [T] fp32 logits (shared_weight gate) */
    const uint16_t *sw13, *sw2;
    const float *shared_gate;
    /* pre-routed input (preroute != none): topk_ids_in [T][top_k] global ids (-1: empty slot),
     * topk_weights_in [T][top_k] (bf16-representable when preroute is bf16) */
    const int32_t *topk_ids_in;
    const float *topk_weights_in;
    /* placement map: expert_map [E], global id -> local index in [0, E_local) or -1 (not on this
     * rank), each local index exactly once (src/case.c mf_expert_map_check); NULL otherwise */
    const int32_t *expert_map;
} mf_moe_tensors;

#define MF_MAX_SHARED 8 /* shared experts (DeepSeek-V2 and ERNIE-4.5 have 2) */

#define MF_REF_EXPERT_READY 2 /* expert_state of a generated expert (src/case.h MF_EXPERT_READY) */

/* Row of W13 that holds gate (or up) unit j, by layout. */
static inline int mf_gate_row(const mf_moe_params *p, int j) {
    if (p->layout == MF_LAYOUT_INTERLEAVED) return 2 * j;
    return p->layout == MF_LAYOUT_GATE_UP ? j : p->I + j;
}
static inline int mf_up_row(const mf_moe_params *p, int j) {
    if (p->layout == MF_LAYOUT_INTERLEAVED) return 2 * j + 1;
    return p->layout == MF_LAYOUT_GATE_UP ? p->I + j : j;
}
static inline int mf_group_size(const mf_moe_params *p) { return p->E / p->n_group; }
static inline int mf_has_b13(const mf_moe_params *p) {
    return p->expert_bias == MF_EBIAS_B13_B2 || p->expert_bias == MF_EBIAS_B13;
}
static inline int mf_has_b2(const mf_moe_params *p) {
    return p->expert_bias == MF_EBIAS_B13_B2 || p->expert_bias == MF_EBIAS_B2;
}
/* Row of a shared expert's W13 (intermediate size shared_I) that holds gate (or up) unit j. */
static inline int mf_shared_gate_row(const mf_moe_params *p, int j) {
    if (p->layout == MF_LAYOUT_INTERLEAVED) return 2 * j;
    return p->layout == MF_LAYOUT_GATE_UP ? j : p->shared_I + j;
}
static inline int mf_shared_up_row(const mf_moe_params *p, int j) {
    if (p->layout == MF_LAYOUT_INTERLEAVED) return 2 * j + 1;
    return p->layout == MF_LAYOUT_GATE_UP ? p->shared_I + j : j;
}
/* 1 if this rank adds its shared experts to the output */
static inline int mf_shared_added(const mf_moe_params *p) {
    return p->n_shared > 0 && p->shared_owner == MF_SHOWN_THIS_RANK;
}
/* fp8_block's weight block (rows x K) and activation group (K): 0 means 128 */
static inline int mf_block_n(const mf_moe_params *p) { return p->block_n > 0 ? p->block_n : 128; }
static inline int mf_block_k(const mf_moe_params *p) { return p->block_k > 0 ? p->block_k : 128; }
/* The local index of global expert e on this rank, or -1 (an id outside [0, E) included): by
 * the placement map (map: the problem's expert_map, checked) or e - expert_offset. */
static inline int mf_local_of(const mf_moe_params *p, const int32_t *map, int64_t e) {
    if (e < 0 || e >= p->E) return -1;
    if (p->placement == MF_PLACEMENT_MAP) return map ? map[e] : -1;
    int64_t le = e - p->expert_offset;
    return le >= 0 && le < p->E_local ? (int)le : -1;
}
static inline int mf_is_local(const mf_moe_params *p, const int32_t *map, int64_t e) {
    return mf_local_of(p, map, e) >= 0;
}

/* Names of the values (enums.h), "?" outside the list. */
static inline const char *mf_score_name(mf_score_fn v) { return mf_enum_name(&mf_enum_score, v); }
static inline const char *mf_bias_name(mf_bias_kind v) { return mf_enum_name(&mf_enum_bias, v); }
static inline const char *mf_group_rule_name(mf_group_rule v) {
    return mf_enum_name(&mf_enum_group_rule, v);
}
static inline const char *mf_rsf_site_name(mf_rsf_site v) {
    return mf_enum_name(&mf_enum_rsf_site, v);
}
static inline const char *mf_activation_name(mf_activation v) {
    return mf_enum_name(&mf_enum_activation, v);
}
static inline const char *mf_layout_name(mf_layout v) { return mf_enum_name(&mf_enum_layout, v); }
static inline const char *mf_dtype_name(mf_dtype v) { return mf_enum_name(&mf_enum_dtype, v); }
static inline const char *mf_renorm_denom_name(mf_renorm_denom v) {
    return mf_enum_name(&mf_enum_renorm_denom, v);
}
static inline const char *mf_nonfinite_name(mf_nonfinite v) {
    return mf_enum_name(&mf_enum_nonfinite, v);
}

#endif /* MF_PROBLEM_H */
