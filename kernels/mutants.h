/* mutants.h: the mutant zoo, one row per seeded bug, shared by every kernel's test build.
 *
 * Each mutant reproduces a real bug (ids from docs/bugs.md, the catalogue of fused-MoE bugs in
 * vLLM, SGLang, FlashInfer and TensorRT-LLM). The zoo tests (`moefuzz-test mutants`,
 * tests/gpu/test_cuda_mutants.c) assert every column:
 *
 *   R(X, ID, name, knob, kernels, stages_cpu, stages_cuda, doc)
 *
 * knob     the parameter the bug drops, repeats or misplaces, as attribution names it
 *          (src/attribute.h); "-" for a mutant that is not a knob bug. A knob mutant's failing
 *          cases must be attributed to that knob and no other.
 * kernels  the kernels whose test build compiles the mutant in (MF_KERN_*); the zoo of a kernel
 *          runs exactly these rows.
 * stages   per kernel, the stages (MF_STG_*, the order of mf_stage in src/check.h) that the
 *          verdict of a mutant's first failing case may show: the stages with a mismatch in
 *          that verdict must be a non-empty subset of this set. A mutant that also trips a stage
 *          it has no business in (a routing bug that leaves outputs unwritten, say) fails the
 *          zoo. Each set is what the zoo measured on that kernel (the commit that sets it says
 *          how), no wider.
 *
 * R picks the columns: MF_MUTANT_TABLE(X) hands X all seven, MF_MUTANT_LIST(X) the id, name,
 * knob and doc (what src/backend.c reads).
 */
#ifndef MF_MUTANTS_H
#define MF_MUTANTS_H

#define MF_KERN_CPU (1u << 0)
#define MF_KERN_CUDA (1u << 1)

#define MF_STG_IDS (1u << 0)
#define MF_STG_WEIGHTS (1u << 1)
#define MF_STG_OUTPUT (1u << 2)
#define MF_STG_NONFINITE (1u << 3)
#define MF_STG_UNWRITTEN (1u << 4)
#define MF_STG_GUARD (1u << 5)
#define MF_STG_DETERMINISM (1u << 6)

#define MF_KERN_BOTH (MF_KERN_CPU | MF_KERN_CUDA)

/* clang-format off: one row per mutant, its columns on lines of their own */
#define MF_MUTANT_ROWS(R, X)                                                                       \
    R(X, RSF_DROPPED, "rsf-dropped", "rsf_dropped", MF_KERN_BOTH,                                  \
      /* cpu */ MF_STG_WEIGHTS | MF_STG_OUTPUT,                                                    \
      /* cuda */ MF_STG_WEIGHTS | MF_STG_OUTPUT,                                                   \
      "routed_scaling_factor never applied (vLLM #43769, B1-B5)")                                  \
    R(X, RSF_TWICE, "rsf-twice", "rsf_squared", MF_KERN_BOTH,                                      \
      /* cpu */ MF_STG_WEIGHTS | MF_STG_OUTPUT,                                                    \
      /* cuda */ MF_STG_WEIGHTS | MF_STG_OUTPUT,                                                   \
      "routed_scaling_factor applied in the router and again on the output (B18-B20)")             \
    R(X, RSF_ONLY_WITH_RENORM, "rsf-only-with-renorm", "rsf_gated_by_renorm", MF_KERN_BOTH,        \
      /* cpu */ MF_STG_WEIGHTS | MF_STG_OUTPUT,                                                    \
      /* cuda */ MF_STG_WEIGHTS | MF_STG_OUTPUT,                                                   \
      "routed_scaling_factor nested under `if renormalize` (sglang-jax #1282, sglang #31449)")     \
    R(X, BIAS_IN_WEIGHTS, "bias-in-weights", "bias_in_weights", MF_KERN_BOTH,                      \
      /* cpu */ MF_STG_WEIGHTS | MF_STG_OUTPUT,                                                    \
      /* cuda */ MF_STG_WEIGHTS | MF_STG_OUTPUT,                                                   \
      "weights taken from the biased keys instead of the scores (vllm #12002, B27-B29)")           \
    R(X, BIAS_DROPPED, "bias-dropped", "bias_dropped", MF_KERN_BOTH,                               \
      /* cpu */ MF_STG_IDS,                                                                        \
      /* cuda */ MF_STG_IDS,                                                                       \
      "selection bias never reaches the routing kernel (bias mishandled at the adapter, "          \
      "B16, B17)")                                                                                 \
    R(X, GROUP_MASK_ZERO, "group-mask-zero", "group_mask_zero", MF_KERN_BOTH,                      \
      /* cpu */ MF_STG_IDS,                                                                        \
      /* cuda */ MF_STG_IDS,                                                                       \
      "experts of dropped groups masked with 0 instead of -inf (flashinfer #4639, "                \
      "DeepSeek-V3 #741)")                                                                         \
    R(X, GROUP_RULE_SWAPPED, "group-rule-swapped", "group_rule_swapped", MF_KERN_BOTH,             \
      /* cpu */ MF_STG_IDS,                                                                        \
      /* cuda */ MF_STG_IDS,                                                                       \
      "group scored by max instead of top-2 sum, or the reverse (Megatron-LM #1502, B35)")         \
    R(X, GROUPING_IGNORED, "grouping-ignored", "grouping_dropped", MF_KERN_BOTH,                   \
      /* cpu */ MF_STG_IDS,                                                                        \
      /* cuda */ MF_STG_IDS,                                                                       \
      "n_group / topk_group never applied (grouped softmax mapped to an ungrouped "                \
      "method, B34)")                                                                              \
    R(X, RENORMALIZE_IGNORED, "renormalize-ignored", "renormalize_flipped", MF_KERN_BOTH,          \
      /* cpu */ MF_STG_WEIGHTS | MF_STG_OUTPUT,                                                    \
      /* cuda */ MF_STG_WEIGHTS | MF_STG_OUTPUT,                                                   \
      "renormalize flag not honoured (norm_topk_prob ignored, B10)")                               \
    R(X, EPS_MISSING, "eps-missing", "eps_missing", MF_KERN_BOTH,                                  \
      /* cpu */ MF_STG_WEIGHTS | MF_STG_OUTPUT | MF_STG_NONFINITE,                                 \
      /* cuda */ MF_STG_WEIGHTS | MF_STG_OUTPUT | MF_STG_NONFINITE,                                \
      "renormalization epsilon dropped: underflowing sigmoid rows give 0/0 (flashinfer "           \
      "#3803, #3946)")                                                                             \
    R(X, GATE_UP_SWAPPED, "gate-up-swapped", "gate_up_swapped", MF_KERN_BOTH,                      \
      /* cpu */ MF_STG_OUTPUT,                                                                     \
      /* cuda */ MF_STG_OUTPUT,                                                                    \
      "gate and up halves of W13 swapped (sglang #32430, Megatron-LM #6045, B46-B47)")             \
    R(X, EP_OFFSET_IGNORED, "ep-offset-ignored", "ep_offset_ignored", MF_KERN_BOTH,                \
      /* cpu */ MF_STG_OUTPUT,                                                                     \
      /* cuda */ MF_STG_OUTPUT,                                                                    \
      "global expert ids used as local ids (vllm-gaudi #1796, B50)")                               \
    R(X, EP_OFFSET_TWICE, "ep-offset-twice", "ep_offset_twice", MF_KERN_BOTH,                      \
      /* cpu */ MF_STG_OUTPUT,                                                                     \
      /* cuda */ MF_STG_OUTPUT,                                                                    \
      "global-to-local offset subtracted twice (flashinfer #3547, B49)")                           \
    R(X, TIE_HIGHER_INDEX, "tie-higher-index", "-", MF_KERN_BOTH,                                  \
      /* cpu */ MF_STG_IDS,                                                                        \
      /* cuda */ MF_STG_IDS,                                                                       \
      "exact ties broken toward the higher expert index (vllm #52679, D10)")                       \
    R(X, NAN_DUPLICATE_IDS, "nan-duplicate-ids", "-", MF_KERN_BOTH,                                \
      /* cpu */ MF_STG_IDS,                                                                        \
      /* cuda */ MF_STG_IDS,                                                                       \
      "a NaN logit row yields duplicate expert ids (vllm #39391, sglang #30079, B40-B42)")         \
    R(X, PARTIAL_TILE_DROPPED, "partial-tile-dropped", "-", MF_KERN_BOTH,                          \
      /* cpu */ MF_STG_IDS | MF_STG_UNWRITTEN,                                                     \
      /* cuda */ MF_STG_OUTPUT,                                                                    \
      "the last partial tile of 16 tokens is never computed (block-remainder family, "             \
      "B54-B60)")                                                                                  \
    R(X, BF16_COMBINE, "bf16-combine", "-", MF_KERN_BOTH,                                          \
      /* cpu */ MF_STG_OUTPUT,                                                                     \
      /* cuda */ MF_STG_OUTPUT,                                                                    \
      "top-k combine accumulated in bf16 instead of fp32 (vllm #15045, B64)")                     \
    R(X, RSF_DROPPED_AFTER_FIRST_CHUNK, "rsf-dropped-after-first-chunk", "-",                    \
      MF_KERN_CPU,                                                                               \
      /* cpu */ MF_STG_WEIGHTS | MF_STG_OUTPUT,                                                    \
      /* cuda */ 0,                                                                                \
      "routed_scaling_factor missing from every launch after the first of a chunked launch "      \
      "(128 tokens a chunk; a parameter missing from a second chunk; knob -: attribution's "     \
      "counterfactuals drop rsf for every token, so no single knob explains it)")                  \
    R(X, NONFINITE_KEPT, "nonfinite-kept", "-", MF_KERN_CPU,                                       \
      /* cpu */ MF_STG_IDS | MF_STG_WEIGHTS | MF_STG_NONFINITE,                                   \
      /* cuda */ 0,                                                                                \
      "non-finite scores kept under the policy that zeroes them (vllm #39391: topk_softmax "       \
      "before its NaN/Inf clamp)")                                                                 \
    R(X, DOWN_BIAS_UNWEIGHTED, "down-bias-unweighted", "b2_unweighted", MF_KERN_CPU,               \
      /* cpu */ MF_STG_OUTPUT,                                                                     \
      /* cuda */ 0,                                                                                \
      "the down projection's bias added after the routing weight, unweighted: about k times "      \
      "the bias (NeMo-Automodel #2591)")                                                          \
    R(X, CLAMP_DROPPED, "clamp-dropped", "clamp_dropped", MF_KERN_CPU,                             \
      /* cpu */ MF_STG_OUTPUT,                                                                     \
      /* cuda */ 0,                                                                                \
      "the clamped activation's limit never applied (SGLang #39939, vLLM #45738, "                \
      "TensorRT-LLM #13767)")                                                                      \
    R(X, INTERLEAVE_IGNORED, "interleave-ignored", "interleave_ignored", MF_KERN_CPU,              \
      /* cpu */ MF_STG_OUTPUT,                                                                     \
      /* cuda */ 0,                                                                                \
      "interleaved gate/up rows read as two halves (SGLang #27201: gpt-oss GSM8K 0.04 at "         \
      "TP >= 2)")                                                                                  \
    R(X, FP8_UE8M0_NOT_ROUNDED, "fp8-ue8m0-not-rounded", "ue8m0_dropped", MF_KERN_CPU,             \
      /* cpu */ MF_STG_OUTPUT,                                                                     \
      /* cuda */ 0,                                                                                \
      "fp8 activation scales amax / 448 not rounded up to a power of two where the recipe is "     \
      "UE8M0 (vllm #38083, the fix missing on the MoE path: vllm #50332)")                         \
    R(X, FP8_WEIGHT_SCALES_TRANSPOSED, "fp8-weight-scales-transposed", "-", MF_KERN_CPU,           \
      /* cpu */ MF_STG_OUTPUT,                                                                     \
      /* cuda */ 0,                                                                                \
      "fp8 block scales read [K block][row block] instead of [row block][K block] (the "           \
      "transposed-scale family of block-scale layouts)")                                           \
    R(X, FP8_W2_SCALE_DROPPED, "fp8-w2-scale-dropped", "-", MF_KERN_CPU,                           \
      /* cpu */ MF_STG_OUTPUT,                                                                     \
      /* cuda */ 0,                                                                                \
      "fp8 block scales of W2 never applied (a dropped scale: flashinfer #3548's class)")          \
    R(X, FP8_GATE_UP_SCALES_SWAPPED, "fp8-gate-up-scales-swapped", "-", MF_KERN_CPU,               \
      /* cpu */ MF_STG_OUTPUT,                                                                     \
      /* cuda */ 0,                                                                                \
      "gate rows scaled by the up rows' block scales and the reverse (gate/up swap of the "        \
      "scale tensor alone)")                                                                       \
    R(X, MXFP4_RSF_DROPPED, "mxfp4-rsf-dropped", "rsf_dropped", MF_KERN_CPU,                       \
      /* cpu */ MF_STG_WEIGHTS | MF_STG_OUTPUT,                                                    \
      /* cuda */ 0,                                                                                \
      "routed_scaling_factor hard-coded to None on the MXFP4 path (vllm #44007)")                  \
    R(X, MXFP4_NIBBLES_SWAPPED, "mxfp4-nibbles-swapped", "-", MF_KERN_CPU,                         \
      /* cpu */ MF_STG_OUTPUT,                                                                     \
      /* cuda */ 0,                                                                                \
      "packed MXFP4 weights read with element 2i in the high nibble (triton #5197's packing "     \
      "order)")                                                                                    \
    R(X, SHARED_EVERY_RANK, "shared-every-rank", "shared_every_rank", MF_KERN_CPU,                 \
      /* cpu */ MF_STG_OUTPUT,                                                                     \
      /* cuda */ 0,                                                                                \
      "shared experts added by every expert-parallel rank, not only their owner: counted once "    \
      "per rank after the all-reduce (sglang #26845)")                                             \
    R(X, SHARED_SLOT_DROPPED, "shared-slot-dropped", "shared_dropped", MF_KERN_CPU,                \
      /* cpu */ MF_STG_OUTPUT,                                                                     \
      /* cuda */ 0,                                                                                \
      "the last fused shared-expert slot dropped from the combine (sglang #38963)")                \
    R(X, SHARED_RSF_TWICE, "shared-rsf-twice", "shared_rsf_twice", MF_KERN_CPU,                    \
      /* cpu */ MF_STG_OUTPUT,                                                                     \
      /* cuda */ 0,                                                                                \
      "the shared expert's weight divided by routed_scaling_factor once more (sglang #28237, "     \
      "#35163)")                                                                                   \
    R(X, TOPK_SIGMOID, "topk-sigmoid", "score_swapped", MF_KERN_CPU,                               \
      /* cpu */ MF_STG_IDS | MF_STG_WEIGHTS | MF_STG_OUTPUT,                                       \
      /* cuda */ 0,                                                                                \
      "TopK (raw logits as weights) run as TopKSigmoid: the method numbers differ between "       \
      "projects (FlashInfer TopK 5, TopKSigmoid 9; TRT-LLM 5 is MiniMax2)")                        \
    R(X, WEIGHT_ON_OUTPUT, "weight-on-output", "weight_on_output", MF_KERN_CPU,                    \
      /* cpu */ MF_STG_OUTPUT,                                                                     \
      /* cuda */ 0,                                                                                \
      "apply_router_weight_on_input ignored: the Llama-4 weight applied to the expert's output "   \
      "(FlashInfer's BF16 launchers hard-code use_routing_scales_on_input = false)")               \
    R(X, PREROUTE_EMPTY_WRAPPED, "preroute-empty-wrapped", "empty_slot_wrapped", MF_KERN_CPU,      \
      /* cpu */ MF_STG_IDS | MF_STG_OUTPUT,                                                        \
      /* cuda */ 0,                                                                                \
      "pre-routed: an empty slot's id -1 used as an index, wrapping to the last expert (torch's "  \
      "x[-1]; vLLM and FlashInfer skip id < 0: moe_align_sum_kernels.cu:125, "                     \
      "cutlass_fused_moe_kernels.cuh finalize)")                                                   \
    R(X, PREROUTE_WEIGHTS_IGNORED, "preroute-weights-ignored", "weights_ignored", MF_KERN_CPU,     \
      /* cpu */ MF_STG_WEIGHTS | MF_STG_OUTPUT,                                                    \
      /* cuda */ 0,                                                                                \
      "pre-routed: the given topk_weights never applied (MUL_ROUTED_WEIGHT off on both GEMMs, "    \
      "or the weights taken as already applied: the weight-on-input confusion)")                   \
    R(X, PREROUTE_WEIGHTS_TRANSPOSED, "preroute-weights-transposed", "-", MF_KERN_CPU,             \
      /* cpu */ MF_STG_WEIGHTS | MF_STG_OUTPUT,                                                    \
      /* cuda */ 0,                                                                                \
      "pre-routed: topk_weights read as [top_k][T] instead of [T][top_k] (a stride mix-up)")     \
    R(X, EXPERT_MAP_IGNORED, "expert-map-ignored", "map_ignored", MF_KERN_CPU,                    \
      /* cpu */ MF_STG_OUTPUT,                                                                     \
      /* cuda */ 0,                                                                                \
      "expert map: the placement map ignored, local experts taken as contiguous from "            \
      "expert_offset (0): the linear placement's shortcut under any other placement")              \
    R(X, EXPERT_MAP_REMOTE_WRAPPED, "expert-map-remote-wrapped", "-", MF_KERN_CPU,                \
      /* cpu */ MF_STG_OUTPUT,                                                                     \
      /* cuda */ 0,                                                                                \
      "expert map: a remote expert's -1 used as a local index, wrapping to the last local "       \
      "expert (torch's w[-1]; vLLM skips it: moe_align_sum_kernels.cu:119-132, fused_moe.py:166)") \
    R(X, EXPERT_MAP_AS_MASK, "expert-map-as-mask", "-", MF_KERN_CPU,                              \
      /* cpu */ MF_STG_OUTPUT,                                                                     \
      /* cuda */ 0,                                                                                \
      "expert map tested as a 0/1 mask (ROCm/ATOM #887: the index-style map passed where a mask "  \
      "was expected): local expert 0 never runs")                                                  \
    R(X, TP_B2_EVERY_RANK, "tp-b2-every-rank", "tp_b2_every_rank", MF_KERN_CPU,                    \
      /* cpu */ MF_STG_OUTPUT,                                                                     \
      /* cuda */ 0,                                                                                \
      "tensor parallel: the down bias b2 added on every rank, so tp_size times after the "         \
      "all-reduce (what FlashInfer's is_rank_0 gate, cutlass_fused_moe_kernels.cuh:2151, and "     \
      "vLLM's gpt-oss loader zeroing w2_bias off rank 0, gpt_oss.py:713, prevent)")                \
    R(X, TP_INTERLEAVED_HALVES, "tp-interleaved-halves", "interleave_ignored", MF_KERN_CPU,        \
      /* cpu */ MF_STG_OUTPUT,                                                                     \
      /* cuda */ 0,                                                                                \
      "tensor parallel: a rank's slice of interleaved gate/up rows read as two halves, only "      \
      "when tp_size > 1 (SGLang #27201: gpt-oss GSM8K 0.04 at TP >= 2, fine at TP 1)")
/* clang-format on */

#define MF_MUTANT_ALL_COLUMNS(X, id, name, knob, kernels, stages_cpu, stages_cuda, doc) \
    X(id, name, knob, kernels, stages_cpu, stages_cuda, doc)
#define MF_MUTANT_NAMED_COLUMNS(X, id, name, knob, kernels, stages_cpu, stages_cuda, doc) \
    X(id, name, knob, doc)
#define MF_MUTANT_TABLE(X) MF_MUTANT_ROWS(MF_MUTANT_ALL_COLUMNS, X)
#define MF_MUTANT_LIST(X) MF_MUTANT_ROWS(MF_MUTANT_NAMED_COLUMNS, X)

typedef enum mf_mutant_id {
    MF_MUTANT_NONE = 0,
#define MF_MUTANT_ENUM(id, name, knob, doc) MF_MUTANT_##id,
    MF_MUTANT_LIST(MF_MUTANT_ENUM)
#undef MF_MUTANT_ENUM
        MF_MUTANT_COUNT
} mf_mutant_id;

/* The stages a mutant's failing verdict may show on a kernel (MF_KERN_CPU or MF_KERN_CUDA); 0
 * if the mutant does not apply to that kernel. */
static inline unsigned mf_mutant_expected_stages(int id, unsigned kernel) {
    switch (id) {
#define MF_MUTANT_STAGES(id_, name, knob, kernels, stages_cpu, stages_cuda, doc) \
    case MF_MUTANT_##id_:                                                        \
        if (!((kernels)&kernel)) return 0;                                       \
        return kernel == MF_KERN_CUDA ? (stages_cuda) : (stages_cpu);
        MF_MUTANT_TABLE(MF_MUTANT_STAGES)
#undef MF_MUTANT_STAGES
    default:
        return 0;
    }
}

#endif /* MF_MUTANTS_H */
