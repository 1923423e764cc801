/* moe_cpu.c: the CPU fused MoE kernel, plain C behind moefuzz/kernel_abi.h.
 *
 * A second, independent implementation of the whole problem model in fp32, used in CI (no GPU)
 * and as the "known good" kernel of the mutant zoo. Its numerical contract is "cpu-scalar":
 *   - routing in fp32: sigmoid as 1 / (1 + expf(-l)); softmax as expf(l - max) / sum in index
 *     order; key = score + bias; top-2-sum or max group scores; ties to the lower index;
 *     weights from the unbiased scores, sum in slot order, the denominator (sum + eps,
 *     sum > 0 ? sum : 1 or max(sum, eps)), one division, * rsf; non-finite scores 0 under the
 *     policy "zero"
 *   - GEMMs as one fp32 chain per output in K order (s = s + a * b, products of bf16 exact,
 *     no contraction into FMA: build with -ffp-contract=off); expert biases (b13, b2) added in
 *     fp32 after the chain
 *   - silu(g) = g / (1 + expf(-g)), a = silu(g) * u, rounded to bf16 (round to nearest even);
 *     the clamped activations of level 2 in vLLM's fp32 order (act())
 *   - score none (level 5): the logit is the score and the weight
 *   - weight on the input (level 5, vLLM's Triton fused_moe): GEMM1's fp32 gate and up times
 *     the fp32 weight, before the activation; the expert's output then enters the combine
 *     unweighted
 *   - pre-routed input (level 6): the given ids and weights (fp32, or bf16 widened exactly) in
 *     place of the router; a slot whose id is not on this rank (-1 included) adds nothing, a
 *     repeated id adds its expert once per slot; the weights as given (no weights-site rsf)
 *   - expert maps (level 7): a slot's expert is local iff expert_map[id] >= 0 (an id outside
 *     [0, E) never is), and runs local expert expert_map[id]'s weights
 *   - tensor-parallel shard (level 8): the weights are the rank's slice; b2 on rank 0 only
 *   - combine: acc += w * y in fp32 in slot order, then the shared experts (level 4) on the
 *     rank that owns them, acc += s * ys with s = 1, fl(1 / rsf) or 1 / (1 + expf(-gate)),
 *     (acc *= rsf at the output site), one bf16 rounding at the end
 * NaN or infinite logits never yield duplicate or out-of-range ids: NaN ranks as -inf.
 * Tokens run in launches of CPU_CHUNK_TOKENS, each from its own copy of the parameters, as
 * vLLM's fused_moe launches chunks of VLLM_FUSED_MOE_CHUNK_SIZE tokens.
 * Quantized weights (fp8_block, mxfp4: ABI level 3) are computed by moe_cpu_quant.h.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "moefuzz/kernel_abi.h"
#include "mutant_hooks.h"

#define CPU_MAX_TOP_K 64
#define CPU_MAX_SHARED 8
#define CPU_CHUNK_TOKENS 128

/* ---- bf16 ---- */

static float bf16_to_f32(uint16_t b) {
    uint32_t u = (uint32_t)b << 16;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static uint16_t f32_to_bf16(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40u);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

/* ---- routing ---- */

typedef struct cpu_ctx {
    int mutant; /* 0 in production builds; the mutant id in test builds */
} cpu_ctx;

static float logit_at(const mf_kernel_params *p, int t, int e) {
    size_t i = (size_t)t * p->E + e;
    if (p->logits_dtype == MF_ABI_DTYPE_BF16) return bf16_to_f32(((const uint16_t *)p->logits)[i]);
    return ((const float *)p->logits)[i];
}

static float bias_at(const mf_kernel_params *p, int e) {
    if (p->bias_dtype == MF_ABI_BIAS_NONE || !p->bias) return 0.0f;
    if (p->bias_dtype == MF_ABI_BIAS_BF16) return bf16_to_f32(((const uint16_t *)p->bias)[e]);
    return ((const float *)p->bias)[e];
}

static float rank_value(float k) { return isnan(k) ? -INFINITY : k; }

/* Routes token t: ids[top_k] and weights[top_k] (weights include rsf at the weights site). */
static void route_token(const cpu_ctx *ctx, const mf_kernel_params *p, int t, float *score,
                        float *key, float *gscore, unsigned char *masked, int32_t *ids,
                        float *w) {
    (void)ctx;
    int E = p->E, k = p->top_k, NG = p->n_group, G = E / NG;
    /* scores */
    if (p->score_fn == MF_ABI_SCORE_NONE) { /* the logit itself (FlashInfer's TopK) */
        for (int e = 0; e < E; e++) {
            float l = logit_at(p, t, e);
            /* the bug reads the method as TopKSigmoid: a sigmoid of the logit */
            score[e] = MF_MUT(TOPK_SIGMOID) ? 1.0f / (1.0f + expf(-l)) : l;
        }
    } else if (p->score_fn == MF_ABI_SCORE_SQRT_SOFTPLUS) { /* torch's softplus, then sqrt */
        for (int e = 0; e < E; e++) {
            float l = logit_at(p, t, e);
            score[e] = sqrtf(l > 20.0f ? l : log1pf(expf(l)));
        }
    } else if (p->score_fn == MF_ABI_SCORE_SIGMOID) {
        for (int e = 0; e < E; e++) {
            float l = logit_at(p, t, e);
            score[e] = 1.0f / (1.0f + expf(-l));
        }
    } else {
        float m = logit_at(p, t, 0);
        for (int e = 1; e < E; e++) {
            float l = logit_at(p, t, e);
            if (l > m) m = l;
        }
        float sum = 0.0f;
        for (int e = 0; e < E; e++) {
            score[e] = expf(logit_at(p, t, e) - m);
            sum += score[e];
        }
        for (int e = 0; e < E; e++) score[e] = score[e] / sum;
    }
    /* the non-finite policy "zero": a score that is not finite becomes 0 */
    const mf_kernel_params_v2 *v2 = mf_kernel_params_v2_of(p);
    if (v2 && v2->nonfinite == MF_ABI_NONFINITE_ZERO && !MF_MUT(NONFINITE_KEPT))
        for (int e = 0; e < E; e++)
            if (!isfinite(score[e])) score[e] = 0.0f;
    /* selection keys: the bias selects, it never enters the weights */
    for (int e = 0; e < E; e++) {
        key[e] = p->bias_dtype != MF_ABI_BIAS_NONE ? score[e] + bias_at(p, e) : score[e];
        if (MF_MUT(BIAS_DROPPED)) key[e] = score[e];
        masked[e] = 0;
    }
    /* groups: keep topk_group by group score (ties: lower group), mask the rest to -inf */
    int grouped = NG > 1 && !MF_MUT(GROUPING_IGNORED);
    if (grouped) {
        for (int g = 0; g < NG; g++) {
            float k1 = -INFINITY, k2 = -INFINITY;
            for (int i = 0; i < G; i++) {
                float v = rank_value(key[g * G + i]);
                if (v > k1) k2 = k1, k1 = v;
                else if (v > k2) k2 = v;
            }
            int rule_max = p->group_rule == MF_ABI_GROUP_MAX;
            if (MF_MUT(GROUP_RULE_SWAPPED)) rule_max = !rule_max;
            gscore[g] = (rule_max || G == 1) ? k1 : k1 + k2;
        }
        unsigned char keep[1024];
        memset(keep, 0, (size_t)NG);
        for (int n = 0; n < p->topk_group; n++) {
            int best = -1;
            for (int g = 0; g < NG; g++) {
                if (keep[g]) continue;
                if (best < 0 || rank_value(gscore[g]) > rank_value(gscore[best])) best = g;
            }
            keep[best] = 1;
        }
        for (int e = 0; e < E; e++)
            if (!keep[e / G]) {
                if (MF_MUT(GROUP_MASK_ZERO)) key[e] = 0.0f;
                else masked[e] = 1;
            }
    }
    /* top-k: repeated arg-max over unmasked, unselected experts; ties to the lower index */
    unsigned char taken[2048];
    memset(taken, 0, (size_t)E);
    for (int n = 0; n < k; n++) {
        int best = -1;
        for (int e = 0; e < E; e++) {
            if (taken[e] || masked[e]) continue;
            if (MF_MUT(NAN_DUPLICATE_IDS)) {
                /* raw comparisons, default index 0 when nothing compares greater: a NaN row
                 * (softmax spreads one NaN logit to every score) repeats expert 0 */
                if (best < 0 ? key[e] > -INFINITY : key[e] > key[best]) best = e;
                continue;
            }
            if (best < 0) {
                best = e;
                continue;
            }
            float a = rank_value(key[e]), b = rank_value(key[best]);
            if (a > b || (MF_MUT(TIE_HIGHER_INDEX) && a == b)) best = e;
        }
        if (best < 0) best = 0; /* unreachable unless mutated: topk_group * G >= top_k */
        taken[best] = 1;
        ids[n] = best;
    }
    /* weights from the unbiased scores */
    float sum = 0.0f;
    for (int n = 0; n < k; n++) {
        w[n] = score[ids[n]];
        if (MF_MUT(BIAS_IN_WEIGHTS)) w[n] = key[ids[n]];
        sum += w[n];
    }
    int renorm = p->renormalize && !MF_MUT(RENORMALIZE_IGNORED);
    if (renorm) {
        int denom = v2 ? v2->renorm_denom : MF_ABI_RENORM_SUM_EPS;
        float den = sum + p->renorm_eps;
        if (MF_MUT(EPS_MISSING)) den = sum;
        else if (denom == MF_ABI_RENORM_SUM_OR_ONE) den = sum > 0 ? sum : 1.0f;
        else if (denom == MF_ABI_RENORM_MAX_EPS) den = sum < p->renorm_eps ? p->renorm_eps : sum;
        for (int n = 0; n < k; n++) w[n] = w[n] / den;
    }
    if (p->rsf_site == MF_ABI_RSF_WEIGHTS) {
        float rsf = p->routed_scaling_factor;
        int apply = !MF_MUT(RSF_DROPPED) && !(MF_MUT(RSF_ONLY_WITH_RENORM) && !p->renormalize);
        /* the MXFP4 path's rsf hard-coded to None (vLLM #44007) */
        if (MF_MUT(MXFP4_RSF_DROPPED) && v2 && v2->weight_format == MF_ABI_WFMT_MXFP4) apply = 0;
        for (int n = 0; n < k; n++) {
            if (apply) w[n] = w[n] * rsf;
            if (MF_MUT(RSF_TWICE)) w[n] = w[n] * rsf;
        }
    }
}

/* ---- experts ---- */

static float dot_bf16(const uint16_t *a, const uint16_t *b, int n) {
    float s = 0.0f;
    for (int i = 0; i < n; i++) s = s + bf16_to_f32(a[i]) * bf16_to_f32(b[i]);
    return s;
}

/* The larger of I and the shared experts' intermediate size: h's length. */
static int inter_max(const mf_kernel_params *p) {
    const mf_kernel_params_v2 *v2 = mf_kernel_params_v2_of(p);
    if (v2 && v2->ext.struct_size >= sizeof *v2 && v2->n_shared > 0 && v2->shared_I > p->I)
        return v2->shared_I;
    return p->I;
}

static float silu(float g) { return g / (1.0f + expf(-g)); }

/* The gated activation of GEMM1's gate g and up u, in fp32 in vLLM's order
 * (csrc/activation_kernels.cu swigluoai_and_mul, masked_swiglustep_and_mul_kernel;
 * fused_moe/activation.py silu_and_mul_with_clamp). */
static float act(const cpu_ctx *ctx, const mf_kernel_params *p, const mf_kernel_params_v2 *v2,
                 float g, float u) {
    (void)ctx;
    if (p->activation == MF_ABI_ACT_SILU_GLU || !v2) return silu(g) * u;
    float L = v2->act_limit;
    int clamps = !MF_MUT(CLAMP_DROPPED);
    if (clamps) u = fmaxf(fminf(u, L), -L);
    if (p->activation == MF_ABI_ACT_SILU_CLAMP_AFTER) {
        float s = silu(g);
        return (clamps ? fminf(s, L) : s) * u;
    }
    if (clamps) g = fminf(g, L);
    if (p->activation == MF_ABI_ACT_SILU_CLAMP) return silu(g) * u;
    return (u + 1.0f) * g / (1.0f + expf(-g * v2->act_alpha)); /* swiglu_oai */
}

#include "moe_cpu_quant.h"

/* The level of kernel_abi.h this kernel implements. */
static const mf_kernel_features cpu_features = {
    {MF_KERNEL_EXT_FEATURES, sizeof(mf_kernel_features), NULL}, MF_KERNEL_FEATURE_LEVEL, 0};

static const mf_kernel_ext *cpu_get_ext(uint32_t kind) {
    return kind == MF_KERNEL_EXT_FEATURES ? &cpu_features.ext : NULL;
}

static int cpu_create(void **ctx, char *msg, size_t msg_len) {
    cpu_ctx *c = calloc(1, sizeof *c);
    if (!c) {
        snprintf(msg, msg_len, "cpu kernel: out of memory");
        return 1;
    }
#ifdef MF_CPU_EMU_INIT
    MF_CPU_EMU_INIT(c);
#endif
    *ctx = c;
    return 0;
}

static void cpu_release(void *ctx) { free(ctx); }

static int cpu_supports(void *ctx, const mf_kernel_params *p, char *msg, size_t msg_len) {
    (void)ctx;
    const mf_kernel_params_v2 *v2 = mf_kernel_params_v2_of(p);
    if (v2 && (v2->ext.struct_size < sizeof *v2 || v2->renorm_denom < 0 ||
               v2->renorm_denom > MF_ABI_RENORM_MAX_EPS || v2->nonfinite < 0 ||
               v2->nonfinite > MF_ABI_NONFINITE_ZERO || v2->expert_bias < 0 ||
               v2->expert_bias > MF_ABI_EXPERT_BIAS_B2)) {
        snprintf(msg, msg_len, "level-2 params of %u bytes, renorm_denom %d, nonfinite %d, "
                 "expert_bias %d", v2->ext.struct_size, v2->renorm_denom, v2->nonfinite,
                 v2->expert_bias);
        return 0;
    }
    if (p->top_k < 1 || p->top_k > CPU_MAX_TOP_K || p->top_k > p->E) {
        snprintf(msg, msg_len, "top_k=%d outside [1, min(E, %d)]", p->top_k, CPU_MAX_TOP_K);
        return 0;
    }
    if (p->E > 2048 || p->n_group > 1024) {
        snprintf(msg, msg_len, "E=%d > 2048 or n_group=%d > 1024", p->E, p->n_group);
        return 0;
    }
    if (p->activation < MF_ABI_ACT_SILU_GLU || p->activation > MF_ABI_ACT_SILU_CLAMP_AFTER ||
        (p->activation != MF_ABI_ACT_SILU_GLU && (!v2 || !(v2->act_limit > 0)))) {
        snprintf(msg, msg_len, "activation %d (limit %g) not implemented", p->activation,
                 v2 ? (double)v2->act_limit : 0.0);
        return 0;
    }
    if (p->layout < MF_ABI_LAYOUT_GATE_UP || p->layout > MF_ABI_LAYOUT_INTERLEAVED) {
        snprintf(msg, msg_len, "layout %d not implemented", p->layout);
        return 0;
    }
    if (p->memory != MF_ABI_MEM_HOST) {
        snprintf(msg, msg_len, "the cpu kernel needs host memory");
        return 0;
    }
    if (v2 && v2->ext.struct_size >= sizeof *v2 && v2->n_shared != 0 &&
        (v2->n_shared < 0 || v2->n_shared > CPU_MAX_SHARED || v2->shared_I < 1 ||
         v2->shared_weight < MF_ABI_SHARED_WEIGHT_ONE ||
         v2->shared_weight > MF_ABI_SHARED_WEIGHT_GATE ||
         v2->shared_owner < MF_ABI_SHARED_OWNER_THIS_RANK ||
         v2->shared_owner > MF_ABI_SHARED_OWNER_OTHER_RANK || v2->weight_format != MF_ABI_WFMT_BF16)) {
        snprintf(msg, msg_len,
                 "shared experts: n_shared %d (at most %d), shared_I %d, shared_weight %d, "
                 "shared_owner %d, weight_format %d (bf16 weights only)",
                 v2->n_shared, CPU_MAX_SHARED, v2->shared_I, v2->shared_weight,
                 v2->shared_owner, v2->weight_format);
        return 0;
    }
    if (v2 && (v2->tp_size < 0 || v2->tp_size == 1 || v2->tp_rank < 0 ||
               v2->tp_rank >= (v2->tp_size > 1 ? v2->tp_size : 1))) {
        snprintf(msg, msg_len, "tp_size %d, tp_rank %d: 0, or ranks 0 .. tp_size - 1 of 2 or more",
                 v2->tp_size, v2->tp_rank);
        return 0;
    }
    cpu_quant q;
    if (!quant_of(p, &q, msg, msg_len)) return 0;
    if (v2 && v2->ext.struct_size >= sizeof *v2 && v2->preroute != MF_ABI_PREROUTE_NONE &&
        v2->preroute != MF_ABI_PREROUTE_F32 && v2->preroute != MF_ABI_PREROUTE_BF16) {
        snprintf(msg, msg_len, "preroute %d: f32 or bf16 weights only", v2->preroute);
        return 0;
    }
    if (v2 && v2->ext.struct_size >= sizeof *v2 && v2->placement != MF_ABI_PLACEMENT_CONTIGUOUS &&
        v2->placement != MF_ABI_PLACEMENT_MAP) {
        snprintf(msg, msg_len, "placement %d: contiguous or map only", v2->placement);
        return 0;
    }
    if (v2 && v2->ext.struct_size >= sizeof *v2 && v2->weight_on_input != 0 &&
        (v2->weight_on_input != 1 || q.format != MF_ABI_WFMT_BF16 ||
         v2->expert_bias != MF_ABI_EXPERT_BIAS_NONE)) {
        snprintf(msg, msg_len,
                 "weight_on_input %d with weight_format %d, expert_bias %d: the weight on the "
                 "input is implemented for bf16 weights without expert biases",
                 v2->weight_on_input, q.format, v2->expert_bias);
        return 0;
    }
    if (q.format == MF_ABI_WFMT_FP8_BLOCK &&
        (v2->expert_bias != MF_ABI_EXPERT_BIAS_NONE || p->activation != MF_ABI_ACT_SILU_GLU ||
         p->layout == MF_ABI_LAYOUT_INTERLEAVED)) {
        snprintf(msg, msg_len,
                 "fp8_block with expert biases, a clamped activation or the interleaved layout: "
                 "the FP8 expert path computes SiLU-GLU on stacked halves only");
        return 0;
    }
#ifdef MF_CPU_EMU_SUPPORTS
    if (!MF_CPU_EMU_SUPPORTS(&q, msg, msg_len)) return 0;
#endif
    return 1;
}

static int cpu_workspace_size(void *ctx, const mf_kernel_params *p, size_t *bytes, char *msg,
                              size_t msg_len) {
    (void)ctx, (void)msg, (void)msg_len;
    /* score, key, gscore (E each), masked (E), acc (H), h (max(I, shared_I) as bf16) */
    *bytes = (size_t)p->E * (3 * sizeof(float) + 1) + (size_t)p->H * sizeof(float) +
             (size_t)inter_max(p) * sizeof(uint16_t) + 64;
    /* fp8_block: the expert output y (H) and the quantized token and intermediate */
    cpu_quant q;
    if (quant_of(p, &q, msg, msg_len) && q.format == MF_ABI_WFMT_FP8_BLOCK)
        *bytes += (size_t)p->H * sizeof(float) + fp8_workspace(p, q.bk) + 64;
    if (q.format == MF_ABI_WFMT_MXFP4) *bytes += mx_workspace(p);
    return 0;
}

static void run_chunk(const cpu_ctx *ctx, const mf_kernel_params *p, int t0, int t1);

/* The local index of global expert id by the placement map (level 7), or -1: not on this rank
 * (vLLM's get_local_expert_id, csrc/moe/moe_align_sum_kernels.cu:119-132) */
static int64_t map_local(const cpu_ctx *ctx, const mf_kernel_params *p, const int32_t *map,
                         int32_t id) {
    (void)ctx;
    if (id < 0 || id >= p->E) return -1;
    int32_t le = map[id];
    /* the bug: a remote expert's -1 used as an index, wrapping to the last local expert */
    if (MF_MUT(EXPERT_MAP_REMOTE_WRAPPED) && le == -1) le = p->E_local - 1;
    /* the bug: the map tested as a 0/1 mask (ROCm/ATOM #887 passed the map where a mask was
     * expected): an entry is local iff it is not 0, so local expert 0 never runs (a -1 passes
     * the test and is then out of range) */
    if (MF_MUT(EXPERT_MAP_AS_MASK) && map[id] == 0) le = -1;
    return le;
}

/* The given routing of token t (level 6): ids and weights as the caller passed them. */
static void given_routing(const cpu_ctx *ctx, const mf_kernel_params *p,
                          const mf_kernel_params_v2 *v2, int t, int32_t *ids, float *w) {
    (void)ctx;
    int k = p->top_k;
    for (int i = 0; i < k; i++) {
        size_t at = (size_t)t * k + i;
        /* the bug reads the weights as [top_k][T] (a stride mix-up of the caller's layout) */
        if (MF_MUT(PREROUTE_WEIGHTS_TRANSPOSED)) at = (size_t)i * p->T + t;
        int32_t id = v2->topk_ids_in[(size_t)t * k + i];
        /* the bug wraps an empty slot's -1 to the last expert, as torch's x[-1] does */
        if (MF_MUT(PREROUTE_EMPTY_WRAPPED) && id == -1) id = p->E - 1;
        ids[i] = id;
        w[i] = v2->preroute == MF_ABI_PREROUTE_BF16
                   ? bf16_to_f32(((const uint16_t *)v2->topk_weights_in)[at])
                   : ((const float *)v2->topk_weights_in)[at];
        if (MF_MUT(PREROUTE_WEIGHTS_IGNORED)) w[i] = 1.0f; /* the bug: as if already applied */
    }
}

/* GEMM1 and the activation of one expert (W13 rows w13e, intermediate size I, GEMM1 bias b13e or
 * NULL) for token xt: h = bf16(act(gate, up)); win (or NULL): the routing weight on the input,
 * multiplying gate and up in fp32 (vLLM fused_moe.py, MUL_ROUTED_WEIGHT on GEMM1) */
static void expert_gemm1(const cpu_ctx *ctx, const mf_kernel_params *p,
                         const mf_kernel_params_v2 *v2, const uint16_t *xt, const uint16_t *w13e,
                         int I, const uint16_t *b13e, const float *win, uint16_t *h) {
    int H = p->H;
    for (int j = 0; j < I; j++) {
        int gate_first = p->layout != MF_ABI_LAYOUT_UP_GATE;
        /* the bug swaps stacked halves ([gate; up] for [up; gate]) */
        if (MF_MUT(GATE_UP_SWAPPED) && p->layout != MF_ABI_LAYOUT_INTERLEAVED)
            gate_first = !gate_first;
        int rg = gate_first ? j : I + j, ru = gate_first ? I + j : j;
        /* the second bug reads a tensor-parallel rank's interleaved slice as stacked halves */
        int tp_halves = MF_MUT(TP_INTERLEAVED_HALVES) && v2 && v2->tp_size > 1;
        if (p->layout == MF_ABI_LAYOUT_INTERLEAVED && !MF_MUT(INTERLEAVE_IGNORED) && !tp_halves)
            rg = gate_first ? 2 * j : 2 * j + 1, ru = gate_first ? 2 * j + 1 : 2 * j;
        float g = dot_bf16(xt, w13e + (size_t)rg * H, H);
        float u = dot_bf16(xt, w13e + (size_t)ru * H, H);
        if (b13e) { /* GEMM1's bias, in W13's row order */
            g = g + bf16_to_f32(b13e[rg]);
            u = u + bf16_to_f32(b13e[ru]);
        }
        if (win) g = g * *win, u = u * *win;
        h[j] = f32_to_bf16(act(ctx, p, v2, g, u));
    }
}

/* The shared experts of token t (level 4), added to acc after the routed slots: weight 1,
 * fl(1 / rsf) or 1 / (1 + expf(-gate)), on the rank that owns them only. */
static void shared_experts(const cpu_ctx *ctx, const mf_kernel_params *p,
                           const mf_kernel_params_v2 *v2, int t, const uint16_t *xt,
                           uint16_t *h, float *acc) {
    (void)ctx;
    if (!v2 || v2->ext.struct_size < sizeof *v2 || v2->n_shared <= 0) return;
    if (v2->shared_owner != MF_ABI_SHARED_OWNER_THIS_RANK && !MF_MUT(SHARED_EVERY_RANK)) return;
    int H = p->H, Is = v2->shared_I, S = v2->n_shared;
    if (MF_MUT(SHARED_SLOT_DROPPED)) S--; /* the last shared slot lost */
    float sw = 1.0f;
    if (v2->shared_weight == MF_ABI_SHARED_WEIGHT_INV_RSF) sw = 1.0f / p->routed_scaling_factor;
    if (v2->shared_weight == MF_ABI_SHARED_WEIGHT_GATE)
        sw = 1.0f / (1.0f + expf(-((const float *)v2->shared_gate)[t]));
    if (MF_MUT(SHARED_RSF_TWICE)) sw = sw / p->routed_scaling_factor;
    const uint16_t *sw13 = v2->sw13, *sw2 = v2->sw2;
    for (int j = 0; j < S; j++) {
        expert_gemm1(ctx, p, v2, xt, sw13 + (size_t)j * 2 * Is * H, Is, NULL, NULL, h);
        const uint16_t *w2e = sw2 + (size_t)j * H * Is;
        for (int c = 0; c < H; c++) {
            float y = dot_bf16(h, w2e + (size_t)c * Is, Is);
            acc[c] = acc[c] + sw * y;
            if (MF_MUT(BF16_COMBINE)) acc[c] = bf16_to_f32(f32_to_bf16(acc[c]));
        }
    }
}

static int cpu_run(void *vctx, const mf_kernel_params *p, char *msg, size_t msg_len) {
    const cpu_ctx *ctx = vctx;
    if (cpu_supports(vctx, p, msg, msg_len) != 1) return 1;
    size_t need;
    cpu_workspace_size(vctx, p, &need, msg, msg_len);
    if (!p->workspace || p->workspace_bytes < need) {
        snprintf(msg, msg_len, "workspace of %zu bytes needed, %zu given", need,
                 p->workspace_bytes);
        return 1;
    }
    cpu_quant q;
    quant_of(p, &q, msg, msg_len);
    if (q.format == MF_ABI_WFMT_FP8_BLOCK && (!q.w13_s || !q.w2_s)) {
        snprintf(msg, msg_len, "fp8_block: the block scales w13_s, w2_s are missing");
        return 1;
    }
    int T = p->T;
    int T_run = MF_MUT(PARTIAL_TILE_DROPPED) ? T - T % 16 : T;
    if (T_run == 0 && MF_MUT(PARTIAL_TILE_DROPPED)) T_run = T; /* a tile always runs */
    for (int t0 = 0; t0 < T_run; t0 += CPU_CHUNK_TOKENS) {
        mf_kernel_params launch = *p;
        if (MF_MUT(RSF_DROPPED_AFTER_FIRST_CHUNK) && t0 > 0) launch.routed_scaling_factor = 1.0f;
        int t1 = T_run - t0 > CPU_CHUNK_TOKENS ? t0 + CPU_CHUNK_TOKENS : T_run;
        run_chunk(ctx, &launch, t0, t1);
    }
    return 0;
}

/* Tokens [t0, t1): one launch. */
static void run_chunk(const cpu_ctx *ctx, const mf_kernel_params *p, int t0, int t1) {
    int H = p->H, I = p->I, E = p->E, k = p->top_k;
    float *score = p->workspace, *key = score + E, *gscore = key + E, *acc = gscore + E;
    uint16_t *h = (uint16_t *)(acc + H);
    unsigned char *masked = (unsigned char *)(h + inter_max(p));
    const uint16_t *x = p->x, *w13 = p->w13, *w2 = p->w2;
    const mf_kernel_params_v2 *v2 = mf_kernel_params_v2_of(p);
    const uint16_t *b13 = v2 ? v2->b13 : NULL, *b2 = v2 ? v2->b2 : NULL;
    /* a tensor-parallel rank other than 0 leaves b2 to rank 0 (the bug adds it on every rank) */
    if (v2 && v2->tp_rank != 0 && !MF_MUT(TP_B2_EVERY_RANK)) b2 = NULL;
    uint16_t *out = p->out;
    cpu_quant q;
    quant_of(p, &q, NULL, 0); /* cpu_run checked it */
    int fp8 = q.format == MF_ABI_WFMT_FP8_BLOCK;
    /* fp8 scratch after the bf16 path's: y (H floats), then the expert's (16-byte aligned) */
    float *y8 = (float *)(((uintptr_t)(masked + E) + 15) & ~(uintptr_t)15);
    int in_site = v2 && v2->ext.struct_size >= sizeof *v2 && v2->weight_on_input;
    int given = v2 && v2->ext.struct_size >= sizeof *v2 && v2->preroute != MF_ABI_PREROUTE_NONE;
    const int32_t *map =
        v2 && v2->ext.struct_size >= sizeof *v2 && v2->placement == MF_ABI_PLACEMENT_MAP
            ? v2->expert_map
            : NULL;
    void *ws8 = (void *)(((uintptr_t)(y8 + H) + 15) & ~(uintptr_t)15);
    /* mxfp4: the selected expert decoded from the packed weights, in place of the bf16 ones */
    const mf_kernel_mxfp4 *mx = q.format == MF_ABI_WFMT_MXFP4 ? mf_kernel_mxfp4_of(p) : NULL;
    uint16_t *mx13 = (uint16_t *)(((uintptr_t)(masked + E) + 15) & ~(uintptr_t)15);
    uint16_t *mx2 = mx13 + 2 * (size_t)I * H;
    for (int t = t0; t < t1; t++) {
        int32_t ids[CPU_MAX_TOP_K];
        float w[CPU_MAX_TOP_K];
        if (given) given_routing(ctx, p, v2, t, ids, w);
        else route_token(ctx, p, t, score, key, gscore, masked, ids, w);
        if (p->topk_ids) memcpy(p->topk_ids + (size_t)t * k, ids, sizeof(int32_t) * k);
        if (p->topk_weights) memcpy(p->topk_weights + (size_t)t * k, w, sizeof(float) * k);
        const uint16_t *xt = x + (size_t)t * H;
        for (int c = 0; c < H; c++) acc[c] = 0.0f;
        for (int n = 0; n < k; n++) {
            /* in 64 bits: a given id may be any int32 */
            int64_t le = (int64_t)ids[n] - p->expert_offset;
            if (MF_MUT(EP_OFFSET_IGNORED)) le = ids[n];
            if (MF_MUT(EP_OFFSET_TWICE)) le = (int64_t)ids[n] - 2 * (int64_t)p->expert_offset;
            if (map && !MF_MUT(EXPERT_MAP_IGNORED)) le = map_local(ctx, p, map, ids[n]);
            if (le < 0 || le >= p->E_local) continue; /* not on this rank */
            if (fp8) {
                expert_fp8(ctx, p, &q, xt, le, ws8, y8);
                for (int c = 0; c < H; c++) {
                    acc[c] = acc[c] + w[n] * y8[c];
                    if (MF_MUT(BF16_COMBINE)) acc[c] = bf16_to_f32(f32_to_bf16(acc[c]));
                }
                continue;
            }
            /* the weight on the input: GEMM1 scaled, the output unweighted (the bug keeps it on
             * the output, as FlashInfer's BF16 launchers do for Llama4) */
            int on_input = in_site && !MF_MUT(WEIGHT_ON_OUTPUT);
            const uint16_t *w13e = w13 + (size_t)le * 2 * I * H, *w2e = w2 + (size_t)le * H * I;
            if (mx) {
                mx_expert(ctx, p, mx, (int)le, mx13, mx2);
                w13e = mx13, w2e = mx2;
            }
            expert_gemm1(ctx, p, v2, xt, w13e, I, b13 ? b13 + (size_t)le * 2 * I : NULL,
                         on_input ? &w[n] : NULL, h);
            for (int c = 0; c < H; c++) {
                float y = dot_bf16(h, w2e + (size_t)c * I, I);
                if (on_input) {
                    acc[c] = acc[c] + y;
                    if (MF_MUT(BF16_COMBINE)) acc[c] = bf16_to_f32(f32_to_bf16(acc[c]));
                    continue;
                }
                float b = b2 ? bf16_to_f32(b2[(size_t)le * H + c]) : 0.0f;
                if (MF_MUT(DOWN_BIAS_UNWEIGHTED)) {
                    acc[c] = acc[c] + w[n] * y; /* the bias added after the weight, unweighted */
                    acc[c] = acc[c] + b;
                } else {
                    if (b2) y = y + b;
                    acc[c] = acc[c] + w[n] * y;
                }
                if (MF_MUT(BF16_COMBINE)) acc[c] = bf16_to_f32(f32_to_bf16(acc[c]));
            }
        }
        shared_experts(ctx, p, v2, t, xt, h, acc);
        int rsf_none = MF_MUT(MXFP4_RSF_DROPPED) && q.format == MF_ABI_WFMT_MXFP4;
        if (p->rsf_site == MF_ABI_RSF_OUTPUT && !MF_MUT(RSF_DROPPED) && !rsf_none)
            for (int c = 0; c < H; c++) {
                acc[c] = acc[c] * p->routed_scaling_factor;
                if (MF_MUT(RSF_TWICE)) acc[c] = acc[c] * p->routed_scaling_factor;
            }
        for (int c = 0; c < H; c++) out[(size_t)t * H + c] = f32_to_bf16(acc[c]);
    }
}

static const mf_kernel_api cpu_api_template = {
    .abi_version = MF_KERNEL_ABI_VERSION,
    .struct_size = sizeof(mf_kernel_api),
    .name = MF_CPU_KERNEL_NAME,
    .description = MF_CPU_DESCRIPTION,
    .memory = MF_ABI_MEM_HOST,
    .contract = {.struct_size = sizeof(mf_kernel_contract),
                 .name = MF_CPU_CONTRACT,
                 .deterministic = 1,
                 .reports_routing = 1},
    .create = cpu_create,
    .supports = cpu_supports,
    .workspace_size = cpu_workspace_size,
    .run = cpu_run,
    .release = cpu_release,
    .get_ext = cpu_get_ext,
};

MF_CPU_EXPORT_GET_API
