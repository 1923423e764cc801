/* mutants.h: the mutant zoo, one line per seeded bug, shared by every kernel's test build.
 *
 * Each mutant reproduces a real bug (ids from docs/bugs.md, the catalogue of fused-MoE bugs in
 * vLLM, SGLang, FlashInfer and TensorRT-LLM). KNOB names the parameter the bug drops, repeats or
 * misplaces, as attribution names it ("-" for mutants that are not a knob bug).
 *
 * X(ID, name, knob, doc)
 */
#ifndef MF_MUTANTS_H
#define MF_MUTANTS_H

#define MF_MUTANT_LIST(X)                                                                        \
    X(RSF_DROPPED, "rsf-dropped", "rsf_dropped",                                                 \
      "routed_scaling_factor never applied (vLLM #43769, B1-B5)")  \
    X(RSF_TWICE, "rsf-twice", "rsf_squared",                                                     \
      "routed_scaling_factor applied in the router and again on the output (B18-B20)")           \
    X(RSF_ONLY_WITH_RENORM, "rsf-only-with-renorm", "rsf_gated_by_renorm",                       \
      "routed_scaling_factor nested under `if renormalize` (sglang-jax #1282, sglang #31449)")   \
    X(BIAS_IN_WEIGHTS, "bias-in-weights", "bias_in_weights",                                     \
      "weights taken from the biased keys instead of the scores (vllm #12002, B27-B29)")         \
    X(BIAS_DROPPED, "bias-dropped", "bias_dropped",                                              \
      "selection bias never reaches the routing kernel (bias mishandled at the adapter, B16, B17)")                              \
    X(GROUP_MASK_ZERO, "group-mask-zero", "group_mask_zero",                                     \
      "experts of dropped groups masked with 0 instead of -inf (flashinfer #4639, DeepSeek-V3 "  \
      "#741)")                                                                                   \
    X(GROUP_RULE_SWAPPED, "group-rule-swapped", "group_rule_swapped",                            \
      "group scored by max instead of top-2 sum, or the reverse (Megatron-LM #1502, B35)")       \
    X(GROUPING_IGNORED, "grouping-ignored", "grouping_dropped",                                  \
      "n_group / topk_group never applied (grouped softmax mapped to an ungrouped method, B34)")            \
    X(RENORMALIZE_IGNORED, "renormalize-ignored", "renormalize_flipped",                         \
      "renormalize flag not honoured (norm_topk_prob ignored, B10)")                             \
    X(EPS_MISSING, "eps-missing", "eps_missing",                                                 \
      "renormalization epsilon dropped: underflowing sigmoid rows give 0/0 (flashinfer #3803, "  \
      "#3946)")                                                                                  \
    X(GATE_UP_SWAPPED, "gate-up-swapped", "gate_up_swapped",                                     \
      "gate and up halves of W13 swapped (sglang #32430, Megatron-LM #6045, B46-B47)")        \
    X(EP_OFFSET_IGNORED, "ep-offset-ignored", "ep_offset_ignored",                               \
      "global expert ids used as local ids (vllm-gaudi #1796, B50)")                             \
    X(EP_OFFSET_TWICE, "ep-offset-twice", "ep_offset_twice",                                     \
      "global-to-local offset subtracted twice (flashinfer #3547, B49)")                         \
    X(TIE_HIGHER_INDEX, "tie-higher-index", "-",                                                 \
      "exact ties broken toward the higher expert index (vllm #52679, D10)")                     \
    X(NAN_DUPLICATE_IDS, "nan-duplicate-ids", "-",                                               \
      "a NaN logit row yields duplicate expert ids (vllm #39391, sglang #30079, B40-B42)")       \
    X(PARTIAL_TILE_DROPPED, "partial-tile-dropped", "-",                                         \
      "the last partial tile of 16 tokens is never computed (block-remainder family, B54-B60)")                                                                                \
    X(BF16_COMBINE, "bf16-combine", "-",                                                         \
      "top-k combine accumulated in bf16 instead of fp32 (vllm #15045, B64)")

typedef enum mf_mutant_id {
    MF_MUTANT_NONE = 0,
#define MF_MUTANT_ENUM(id, name, knob, doc) MF_MUTANT_##id,
    MF_MUTANT_LIST(MF_MUTANT_ENUM)
#undef MF_MUTANT_ENUM
        MF_MUTANT_COUNT
} mf_mutant_id;

#endif /* MF_MUTANTS_H */
