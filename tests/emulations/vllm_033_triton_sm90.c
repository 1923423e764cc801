/* vllm_033_triton_sm90.c: vLLM 0.33.0's bf16 fused MoE on Hopper, step by step, in C (contract
 * vllm-0.33-triton-sm90; docs/notes/kernel-arithmetic-from-source.md, section 1).
 *
 * Routers, by the path vLLM's router factory takes for the case:
 *   n_group > 1 with a bias: CUDA grouped_topk, small-expert-count kernel: s = 0.5 tanhf(0.5 x)
 *     + 0.5, key = s + b, group score = top-2 sum, w = fl(fl(s rsf) / (sum + 1e-20)) with the
 *     denominator and the division in double;
 *   n_group == 1, sigmoid: topk_sigmoid: s = 1 / (1 + __expf(-x)), key = s + b,
 *     w = s fl(rsf / D), D = sum > 0 ? sum : 1;
 *   n_group == 1, softmax: topk_softmax: p = expf(l - m) fl(1 / Z), w = fl(p fl(1 / D)), rsf
 *     applied afterwards in fp32 (fused_topk_bias).
 * Refused (unsupported): grouped routing without a bias or with softmax or the max rule (the torch
 * grouped_topk path: EMU_TORCH_ROUTER below), shapes beyond the small-expert-count kernel, an
 * rsf without a bias or groups (vLLM sends it to the torch path), keys below the topk kernels'
 * floors.
 * Experts: GEMMs accumulate as the contract assumes Triton lowers `accumulator += tl.dot(a, b)` on
 * sm_90 (its dot rewrite into dot(a, b, acc), one wgmma chain): fused k16 steps in K order under
 * the measured Hopper model (B 16, F 25, RZ; tests/gpu/hopper_model.h), masked tail 0; GEMM1 output
 * stored as bf16; silu_and_mul: bf16(g / (1 + expf(-g))), product in fp32, one bf16 rounding;
 * GEMM2's accumulator times the fp32 weight, stored as bf16; moe_sum in fp32 in slot order; an
 * output-site rsf multiplies the bf16 sum in fp32 and rounds again.
 *
 * Built with EMU_TORCH_ROUTER (contract vllm-0.33-triton-sm90-torch-router), it takes the other
 * path instead, the torch grouped_topk (fm/router/grouped_topk_router.py l. 113-162), for the
 * cases vLLM sends there (no bias; grouped by the max, or an rsf in the weights without groups)
 * and refuses the others: scores softmax (expf, sequential sum, e / Z) or 1 / (1 + expf(-x)) in
 * fp32 rounded to the logits' dtype L; group score the max; torch.topk with sorted=False, here
 * ties to the higher index and the slots in ascending order (torch promises neither way);
 * w = the L scores, renormalised w / fl_L(sum w) rounded to L (no eps), times rsf rounded to L.
 * Its mutations: rsf-dropped, renorm-dropped, softmax-for-sigmoid (the scores of vLLM's
 * fused_topk fallback, which takes no scoring function), weights-truncated (each L rounding a
 * truncation), weights-unrounded (the L roundings removed, as an Inductor fusion may:
 * admissible).
 *
 * Mutations (MOEFUZZ_EMU_MUTATION): rsf-dropped, bf16-combine (moe_sum accumulated in bf16, vLLM
 * issue 15045), eps-dropped (grouped: sum without 1e-20), tanh-approx (grouped: tanh.approx, a
 * less accurate sigmoid), bf16-weights (routing weights rounded to bf16), silu-unrounded (a
 * rounding removed: admissible by construction).
 *
 * Built with EMU_FP8 (contract vllm-0.33-triton-fp8-sm90, level 3) it also computes fp8_block
 * cases as vLLM's fused_experts does with use_fp8_w8a8 and block_shape [block_n, block_k]
 * (fm/fused_moe.py l. 1778-1845): x and the bf16 silu_and_mul output quantized per block_k
 * columns by per_token_group_fp8_quant (per_token_group_quant.cu: amax from 1e-10, s = amax /
 * 448, UE8M0 by the exponent bump for groups of 128 (l. 260-268) and exp2f(ceilf(log2f(fmaxf(s,
 * 1e-10f)))) otherwise (l. 70), q = e4m3(clamp(y * fl(1 / s)))); per K tile of block_k a tl.dot
 * on the FP8 tensor cores (a chain of wgmma k32 steps from 0 under the measured model,
 * tests/gpu/hopper_fp8_model.h, the masked tail 0), times a_scale then b_scale, or b_scale then
 * a_scale in the swap-AB kernel (T <= 64 and a BLOCK_SIZE_N of 64 or more: get_default_config
 * l. 1319-1352, enable_swap_ab), added to the fp32 accumulator; the rest as the bf16 path. It
 * refuses block_n < block_k (vLLM's K tile would split a scale group), blocks that are not
 * powers of two of 32 or more, rows not a multiple of block_k (vLLM asserts), and every level-2
 * or later semantics but the FP8 weights. Its mutations: fp8-w-scale-dropped,
 * fp8-a-scale-dropped, fp8-w-scale-transposed (the [row block][K block] scales read as [K
 * block][row block]), fp8-quant-div (y / s where vLLM multiplies by fl(1 / s)),
 * fp8-ue8m0-rounded-down (2^floor(log2 s), the scale rounded the wrong way), fp8-ue8m0-not-rounded
 * (the fp32 scale where UE8M0 is asked); removals (admissible): fp8-fma (the last scale multiply
 * contracted into the add), fp8-no-swap (always a_scale first). EMU_OLD_CONTRACT with EMU_FP8
 * declares hopper-tc-fp8, the FP8 contract that existed before.
 *
 * Built with EMU_FP8 and EMU_FP8_SERVED (contract vllm-0.33-triton-fp8-served-sm90) it runs the
 * modular TritonExperts.apply instead (experts/triton_moe.py l. 520-545): for fp32 scales and
 * 128 x 128 blocks the activation and its quantizer are silu_and_mul_per_block_quant
 * (fused_silu_mul_block_quant.cu l. 54-102): r = (g * (1 / (1 + expf(-g)))) * u in fp32 from
 * the bf16 GEMM1 outputs, amax from 0, s = max(amax / 448, 1 / (448 * 512)), q = e4m3(clamp(r /
 * s)); UE8M0 scales and other blocks, where vLLM takes the unfused path, are refused. Its
 * mutations: served-bf16-product (r rounded to bf16 before the quantizer), served-quant-recip
 * (r * fl(1 / s)), served-no-floor (s = amax / 448). With EMU_OLD_CONTRACT it declares
 * vllm-0.33-triton-fp8-sm90, the unfused path's contract.
 */
#include "emu_common.h"
#include "emu_triton_dot.h"

/* topk_softmax / topk_sigmoid's warp kernel handles these E; others go to the general kernel */
static int warp_kernel_e(int E, int sigmoid) {
    if (E >= 1 && E <= 512 && (E & (E - 1)) == 0) return 1;
    return E == 192 || E == 320 || E == 384 || E == 448 || E == 576 || (sigmoid && E == 352);
}

static int grouped(const mf_kernel_params *p) { return p->n_group > 1; }

static int route_topk(const emu *m, const mf_kernel_params *p, int t, int *ids, float *w,
                      char *msg, size_t len);

#ifdef EMU_TORCH_ROUTER
#define EMU_TORCH 1
#else
#define EMU_TORCH 0
#endif

/* the cases vLLM's router factory sends to the torch grouped_topk (router_factory.py l. 166-210,
 * grouped_topk_router.py l. 92-109, 298-330) */
static int torch_supports(const mf_kernel_params *p, char *msg, size_t len) {
    float rsf_router = p->rsf_site == MF_ABI_RSF_WEIGHTS ? p->routed_scaling_factor : 1.0f;
    if (p->bias_dtype != MF_ABI_BIAS_NONE)
        return emu_msg(msg, len, "a bias: vLLM's CUDA grouped_topk or topk kernels");
    if (p->n_group <= 1 && p->topk_group <= 1 && rsf_router == 1.0f)
        return emu_msg(msg, len, "no groups and no rsf in the weights: vLLM's topk kernels");
    if (p->n_group > 1 && p->E <= p->n_group)
        return emu_msg(msg, len, "E <= n_group: vLLM's fused_topk fallback");
    if (p->n_group > 1 && p->group_rule != MF_ABI_GROUP_MAX)
        return emu_msg(msg, len, "top-2 group sum without a bias: vLLM's torch path takes the max");
    if (p->renormalize && p->renorm_eps != 0.0f)
        return emu_msg(msg, len, "sum + eps: vLLM's torch grouped_topk adds no eps");
    if (p->E > 1024 || p->n_group > 64)
        return emu_msg(msg, len, "E above 1024 or n_group above 64");
    return 1;
}

#ifdef EMU_FP8
static int fp8_supports(const mf_kernel_params *p, char *msg, size_t len);
#endif

static int emu_supports(void *ctx, const mf_kernel_params *p, char *msg, size_t len) {
    if (p->memory != MF_ABI_MEM_HOST) return emu_msg(msg, len, "host memory only");
#ifdef EMU_FP8
    if (!fp8_supports(p, msg, len)) return 0;
#else
    if (emu_quantized(p)) return emu_msg(msg, len, "quantized weights (fp8_block, mxfp4)");
#endif
    if (p->top_k > EMU_MAX_TOP_K) return emu_msg(msg, len, "top_k above 32");
    if (EMU_TORCH) return torch_supports(p, msg, len);
    int has_bias = p->bias_dtype != MF_ABI_BIAS_NONE;
    if (grouped(p)) {
        int G = p->E / p->n_group;
        if (!has_bias || p->score_fn != MF_ABI_SCORE_SIGMOID || p->group_rule != MF_ABI_GROUP_TOP2_SUM)
            return emu_msg(msg, len, "grouped routing without a bias, with softmax or the max "
                                     "rule: vLLM's torch grouped_topk path (its own contract)");
        if (p->E > 256 || G > 32 || G * p->topk_group > 128 || p->top_k > 8 || p->topk_group > 4)
            return emu_msg(msg, len, "grouped shape beyond the small-expert-count kernel");
        if (p->renormalize && p->renorm_eps != 1e-20f)
            return emu_msg(msg, len, "the grouped kernel's denominator is sum + 1e-20");
    } else if (!has_bias && p->routed_scaling_factor != 1.0f && p->rsf_site == MF_ABI_RSF_WEIGHTS) {
        return emu_msg(msg, len, "rsf in the weights without a bias or groups: vLLM's torch "
                                 "grouped_topk path (its own contract)");
    }
    if (!grouped(p) && p->E <= 1024 && p->logits)
        for (int t = 0; t < p->T; t++) { /* keys below the kernel's floor: outside its domain */
            int ids[EMU_MAX_TOP_K];
            float w[EMU_MAX_TOP_K];
            if (route_topk(ctx, p, t, ids, w, msg, len)) return 0;
        }
    if (p->E > 1024) return emu_msg(msg, len, "E above 1024 (the emulation's arrays)");
    return 1;
}

/* ---- routing of one token: ids and fp32 weights ---- */

static int route_grouped(const emu *m, const mf_kernel_params *p, int t, int *ids, float *w) {
    int E = p->E, NG = p->n_group, G = E / NG, k = p->top_k;
    float s[1024], key[1024], gscore[64];
    for (int e = 0; e < E; e++) {
        float x = emu_logit(p, t, e);
        float th = is_mut(m, "tanh-approx") ? emu_tanh_approx(0.5f * x, 0x1.cp-12) : tanhf(0.5f * x);
        s[e] = fmaf(th, 0.5f, 0.5f);
        key[e] = s[e] + emu_bias(p, e);
    }
    for (int g = 0; g < NG; g++) {
        int top[2];
        emu_topk(key + g * G, NULL, G, G >= 2 ? 2 : 1, top);
        gscore[g] = G >= 2 ? key[g * G + top[0]] + key[g * G + top[1]] : key[g * G + top[0]];
    }
    int kept[32];
    emu_topk(gscore, NULL, NG, p->topk_group, kept);
    uint8_t allowed[1024] = {0};
    for (int i = 0; i < p->topk_group; i++)
        for (int j = 0; j < G; j++) allowed[kept[i] * G + j] = 1;
    emu_topk(key, allowed, E, k, ids);
    float sel[EMU_MAX_TOP_K];
    for (int i = 0; i < k; i++) sel[i] = s[ids[i]];
    float sum = emu_warp_sum(sel, k, 0);
    double rsf = p->rsf_site == MF_ABI_RSF_WEIGHTS && !is_mut(m, "rsf-dropped")
                     ? (double)p->routed_scaling_factor
                     : 1.0;
    double eps = is_mut(m, "eps-dropped") ? 0.0 : 1e-20;
    for (int i = 0; i < k; i++) {
        float fs = (float)((double)sel[i] * rsf);
        w[i] = p->renormalize ? (float)((double)fs / ((double)sum + eps)) : fs;
    }
    return 0;
}

static int route_topk(const emu *m, const mf_kernel_params *p, int t, int *ids, float *w,
                      char *msg, size_t len) {
    int E = p->E, k = p->top_k, sig = p->score_fn == MF_ABI_SCORE_SIGMOID;
    float s[1024], key[1024];
    if (sig) {
        for (int e = 0; e < E; e++) s[e] = 1.0f / (1.0f + emu_fast_exp(-emu_logit(p, t, e)));
    } else {
        float mx = -INFINITY;
        for (int e = 0; e < E; e++) mx = fmaxf(mx, emu_logit(p, t, e));
        float Z = 0;
        for (int e = 0; e < E; e++) Z += expf(emu_logit(p, t, e) - mx);
        float r = 1.0f / Z;
        for (int e = 0; e < E; e++) s[e] = expf(emu_logit(p, t, e) - mx) * r;
    }
    int n_above = 0;
    float floor_key = warp_kernel_e(E, sig) ? -10000.0f : -1.0f;
    for (int e = 0; e < E; e++) {
        if (!isfinite(s[e])) s[e] = 0; /* the topk kernels zero non-finite scores */
        key[e] = s[e] + emu_bias(p, e);
        n_above += key[e] > floor_key;
    }
    if (n_above < k) {
        snprintf(msg, len, "token %d: fewer than top_k keys above the topk kernel's floor %g", t,
                 floor_key);
        return 1;
    }
    emu_topk(key, NULL, E, k, ids);
    float sum = 0;
    for (int i = 0; i < k; i++) sum += s[ids[i]];
    float D = sum > 0 ? sum : 1.0f;
    float rsf = p->rsf_site == MF_ABI_RSF_WEIGHTS && !is_mut(m, "rsf-dropped")
                    ? p->routed_scaling_factor
                    : 1.0f;
    for (int i = 0; i < k; i++) {
        if (sig) { /* topk_sigmoid: scale = rsf; scale /= D; w = s * scale */
            float scale = p->renormalize ? rsf / D : rsf;
            w[i] = s[ids[i]] * scale;
        } else { /* topk_softmax (scale 1 / D), then fused_topk_bias's rsf in fp32 */
            float scale = p->renormalize ? 1.0f / D : 1.0f;
            w[i] = s[ids[i]] * scale;
            if (rsf != 1.0f) w[i] = w[i] * rsf;
        }
    }
    return 0;
}

/* a result in the logits' dtype: eager torch rounds each op's fp32 result to bf16 */
static float in_l(const emu *m, const mf_kernel_params *p, float v) {
    if (p->logits_dtype != MF_ABI_DTYPE_BF16 || is_mut(m, "weights-unrounded")) return v;
    if (is_mut(m, "weights-truncated")) {
        uint32_t bits;
        memcpy(&bits, &v, 4);
        return emu_bf16_to_f32((uint16_t)(bits >> 16));
    }
    return emu_bf16(v);
}

/* torch.topk(sorted=False): the k largest of keys[0..n) (allowed: NULL or a mask), here ties to
 * the higher index and the slots in ascending order */
static void topk_any(const float *keys, const uint8_t *allowed, int n, int k, int *out) {
    float rk[1024];
    uint8_t ra[1024];
    int desc[EMU_MAX_TOP_K > 64 ? EMU_MAX_TOP_K : 64];
    for (int i = 0; i < n; i++) rk[i] = keys[n - 1 - i], ra[i] = allowed ? allowed[n - 1 - i] : 1;
    emu_topk(rk, ra, n, k, desc);
    for (int i = 0; i < k; i++) out[i] = n - 1 - desc[k - 1 - i];
}

static int route_torch(const emu *m, const mf_kernel_params *p, int t, int *ids, float *w) {
    int E = p->E, NG = p->n_group > 1 ? p->n_group : 1, G = E / NG, k = p->top_k;
    float s[1024], gscore[64];
    if (p->score_fn == MF_ABI_SCORE_SOFTMAX || is_mut(m, "softmax-for-sigmoid")) {
        float mx = -INFINITY, Z = 0;
        for (int e = 0; e < E; e++) mx = fmaxf(mx, emu_logit(p, t, e));
        for (int e = 0; e < E; e++) Z += expf(emu_logit(p, t, e) - mx);
        for (int e = 0; e < E; e++) s[e] = in_l(m, p, expf(emu_logit(p, t, e) - mx) / Z);
    } else {
        for (int e = 0; e < E; e++) s[e] = in_l(m, p, 1.0f / (1.0f + expf(-emu_logit(p, t, e))));
    }
    for (int g = 0; g < NG; g++) {
        gscore[g] = s[g * G];
        for (int j = 1; j < G; j++) gscore[g] = fmaxf(gscore[g], s[g * G + j]);
    }
    int kept[64];
    uint8_t allowed[1024] = {0};
    int tg = NG > 1 ? p->topk_group : 1;
    topk_any(gscore, NULL, NG, tg, kept);
    for (int i = 0; i < tg; i++)
        for (int j = 0; j < G; j++) allowed[kept[i] * G + j] = 1;
    topk_any(s, allowed, E, k, ids);
    for (int i = 0; i < k; i++) w[i] = s[ids[i]];
    if (p->renormalize && !is_mut(m, "renorm-dropped")) {
        float sum = 0;
        for (int i = 0; i < k; i++) sum += w[i]; /* fp32 accumulation, one L rounding */
        sum = in_l(m, p, sum);
        for (int i = 0; i < k; i++) w[i] = in_l(m, p, w[i] / sum);
    }
    float rsf = p->rsf_site == MF_ABI_RSF_WEIGHTS ? p->routed_scaling_factor : 1.0f;
    if (rsf != 1.0f && !is_mut(m, "rsf-dropped"))
        for (int i = 0; i < k; i++) w[i] = in_l(m, p, w[i] * rsf);
    return 0;
}

/* ---- experts ---- */

#ifdef EMU_FP8
#include <stddef.h>

#include "../gpu/hopper_fp8_model.h"

/* ---- the FP8 block-scale path (EMU_FP8: vllm-0.33-triton-fp8-sm90) ---- */

/* 1: vLLM's modular path with the fused silu_and_mul_per_block_quant (EMU_FP8_SERVED) */
#ifdef EMU_FP8_SERVED
#define EMU_SERVED 1
#else
#define EMU_SERVED 0
#endif

static int pow2_at_least_32(int v) { return v >= 32 && (v & (v - 1)) == 0; }

static int fp8_supports(const mf_kernel_params *p, char *msg, size_t len) {
    const mf_kernel_params_v2 *v2 = mf_kernel_params_v2_of(p);
    if (!v2) return 1;
    size_t n = v2->ext.struct_size;
    if (v2->renorm_denom || v2->nonfinite || v2->expert_bias ||
        (n > offsetof(mf_kernel_params_v2, n_shared) && v2->n_shared) ||
        (n > offsetof(mf_kernel_params_v2, weight_on_input) && v2->weight_on_input) ||
        (n > offsetof(mf_kernel_params_v2, preroute) && v2->preroute))
        return emu_msg(msg, len, "semantics of case format v2 other than FP8 weights");
    if (v2->weight_format == MF_ABI_WFMT_BF16) return 1;
    if (v2->weight_format != MF_ABI_WFMT_FP8_BLOCK) return emu_msg(msg, len, "mxfp4 weights");
    if (p->activation != MF_ABI_ACT_SILU_GLU || p->layout != MF_ABI_LAYOUT_GATE_UP)
        return emu_msg(msg, len, "fp8_block: silu_and_mul on gate rows then up rows only");
    if (!pow2_at_least_32(v2->block_n) || !pow2_at_least_32(v2->block_k))
        return emu_msg(msg, len, "fp8_block: blocks that are not powers of two >= 32");
    if (v2->block_n < v2->block_k)
        return emu_msg(msg, len, "fp8_block: block_n < block_k (BLOCK_SIZE_K = min(block_n, "
                                 "block_k) splits a scale group)");
    if (p->H % v2->block_k || p->I % v2->block_k)
        return emu_msg(msg, len, "fp8_block: H or I not a multiple of block_k");
    if (EMU_SERVED &&
        (v2->scale_format == MF_ABI_SCALE_UE8M0 || v2->block_n != 128 || v2->block_k != 128))
        return emu_msg(msg, len, "fp8_block: UE8M0 scales or blocks other than 128 x 128 (vLLM "
                                 "takes the unfused path: vllm-0.33-triton-fp8-sm90)");
    return 1;
}

/* the e4m3 code nearest to v (|v| <= 448), ties to the even code: __nv_fp8_e4m3's conversion */
static uint8_t e4m3_rn(float v) {
    float a = fabsf(v);
    uint8_t sign = signbit(v) ? 0x80 : 0;
    if (a == 0) return sign;
    int e = ilogbf(a) < -6 ? -6 : ilogbf(a);     /* the binade's quantum is 2^(e - 3) */
    float r = ldexpf(rintf(ldexpf(a, 3 - e)), e - 3); /* exact scalings; rintf: ties to even */
    if (r < 0x1p-6f) return (uint8_t)(sign | (uint8_t)ldexpf(r, 9)); /* subnormal: r / 2^-9 */
    int er = ilogbf(r);                               /* the rounding may carry into 2^(e + 1) */
    return (uint8_t)(sign | (uint8_t)((er + 7) << 3) | (uint8_t)(ldexpf(r, 3 - er) - 8));
}

/* per_token_group_fp8_quant on one row of n values (n a multiple of bk): codes q, scales s */
static void fp8_quant_row(const emu *m, int ue8m0, int bk, const float *y, int n, uint8_t *q,
                          float *s) {
    for (int b = 0; b * bk < n; b++) {
        const float *g = y + b * bk;
        float amax = 1e-10f;
        for (int j = 0; j < bk; j++) amax = fmaxf(amax, fabsf(g[j]));
        float ys = amax / 448.0f;
        if (ue8m0 && is_mut(m, "fp8-ue8m0-rounded-down")) {
            ys = exp2f(floorf(log2f(fmaxf(ys, 1e-10f))));
        } else if (ue8m0 && !is_mut(m, "fp8-ue8m0-not-rounded")) {
            ys = fmaxf(ys, 1e-10f);
            if (bk == 128) { /* the register kernel: the exponent bumped, the mantissa cleared */
                uint32_t bits;
                memcpy(&bits, &ys, 4);
                bits = (((bits >> 23) & 0xffu) + ((bits & 0x7fffffu) != 0)) << 23;
                memcpy(&ys, &bits, 4);
            } else {
                ys = exp2f(ceilf(log2f(ys)));
            }
        }
        float inv = 1.0f / ys;
        for (int j = 0; j < bk; j++) {
            float v = is_mut(m, "fp8-quant-div") ? g[j] / ys : g[j] * inv;
            q[b * bk + j] = e4m3_rn(fminf(fmaxf(v, -448.0f), 448.0f));
        }
        s[b] = ys;
    }
}

/* silu_and_mul_per_block_quant on one row of bf16 gate / up (n a multiple of 128): codes q,
 * scales s (fused_silu_mul_block_quant.cu l. 54-102) */
static void fp8_silu_mul_quant_row(const emu *m, const float *g, const float *u, int n,
                                   uint8_t *q, float *s) {
    float r[128];
    for (int b = 0; b * 128 < n; b++) {
        float amax = 0.0f;
        for (int j = 0; j < 128; j++) {
            float gj = g[b * 128 + j];
            float sig = 1.0f / (1.0f + expf(-gj));
            float silu = gj * sig;
            r[j] = silu * u[b * 128 + j];
            if (is_mut(m, "served-bf16-product")) r[j] = emu_bf16(r[j]);
            amax = fmaxf(amax, fabsf(r[j]));
        }
        float sc = amax / 448.0f;
        if (!is_mut(m, "served-no-floor")) sc = fmaxf(sc, 1.0f / (448.0f * 512.0f));
        float inv = 1.0f / sc;
        for (int j = 0; j < 128; j++) {
            float v = is_mut(m, "served-quant-recip") ? r[j] * inv : r[j] / sc;
            q[b * 128 + j] = e4m3_rn(fmaxf(-448.0f, fminf(v, 448.0f)));
        }
        s[b] = sc;
    }
}

/* one output of fused_moe_kernel's block-scale loop: a (n codes, scales sa per K tile) . row
 * (codes, scales sw[tile * sw_step]) */
static float fp8_dot(const emu *m, int swap, const uint8_t *a, const float *sa,
                     const uint8_t *row, const float *sw, int sw_step, int n, int bk) {
    static const h8_hypothesis wgmma = {32, 13, 0, 0, 0, 14}; /* measured: docs/hopper-probe.md */
    float acc = 0.0f;
    for (int b = 0; b * bk < n; b++) {
        float part = h8_dot(&wgmma, H8_E4M3, 0.0f, a + b * bk, row + b * bk, bk);
        float as = is_mut(m, "fp8-a-scale-dropped") ? 1.0f : sa[b];
        float ws = is_mut(m, "fp8-w-scale-dropped") ? 1.0f : sw[(size_t)b * sw_step];
        if (is_mut(m, "fp8-fma")) {
            acc = swap ? fmaf(part * ws, as, acc) : fmaf(part * as, ws, acc);
        } else {
            float t = swap && !is_mut(m, "fp8-no-swap") ? (part * ws) * as : (part * as) * ws;
            acc = acc + t;
        }
    }
    return acc;
}

/* the scale of weight row r's K tile b in a [nrb][nkb] grid (or its transposed reading) */
static const float *fp8_scale_row(const emu *m, const float *s, int r, int bn, int nrb, int nkb,
                                  int *step) {
    if (is_mut(m, "fp8-w-scale-transposed")) {
        *step = nrb;
        return s + r / bn;
    }
    *step = 1;
    return s + (size_t)(r / bn) * nkb;
}

/* expert le (local) of token t with weight wt, added to acc[H] as moe_sum does */
static int fp8_expert(const emu *m, const mf_kernel_params *p, const float *xf, int le, float wt,
                      float *acc) {
    const mf_kernel_params_v2 *v2 = mf_kernel_params_v2_of(p);
    int H = p->H, I = p->I, bn = v2->block_n, bk = v2->block_k, T = p->T;
    int ue8m0 = v2->scale_format == MF_ABI_SCALE_UE8M0;
    int nkh = H / bk, nki = I / bk, nr13 = (2 * I + bn - 1) / bn, nr2 = (H + bn - 1) / bn;
    /* get_default_config: BLOCK_SIZE_M 16 up to 64 tokens, BLOCK_SIZE_N 64 up to 8 tokens when
     * block_n is a multiple of 64, else block_n; swap-AB with BLOCK_M < 64 and BLOCK_N >= 64 */
    int block_n_tile = (T <= 8 && bn % 64 == 0) ? 64 : bn;
    int swap = T <= 64 && block_n_tile >= 64;
    uint8_t *xq = malloc((size_t)H), *hq = malloc((size_t)I);
    float *xs = malloc(sizeof(float) * (size_t)nkh), *hs = malloc(sizeof(float) * (size_t)nki);
    float *hf = malloc(sizeof(float) * (size_t)I), *uf = malloc(sizeof(float) * (size_t)I);
    if (!xq || !hq || !xs || !hs || !hf || !uf) {
        free(xq), free(hq), free(xs), free(hs), free(hf), free(uf);
        return 1;
    }
    fp8_quant_row(m, ue8m0, bk, xf, H, xq, xs);
    const uint8_t *W13 = (const uint8_t *)p->w13 + (size_t)le * 2 * I * H;
    const uint8_t *W2 = (const uint8_t *)p->w2 + (size_t)le * H * I;
    const float *S13 = (const float *)v2->w13_s + (size_t)le * nr13 * nkh;
    const float *S2 = (const float *)v2->w2_s + (size_t)le * nr2 * nki;
    for (int j = 0; j < I; j++) {
        int rg = j, ru = I + j, st;
        const float *sg = fp8_scale_row(m, S13, rg, bn, nr13, nkh, &st);
        float g = emu_bf16(fp8_dot(m, swap, xq, xs, W13 + (size_t)rg * H, sg, st, H, bk));
        const float *su = fp8_scale_row(m, S13, ru, bn, nr13, nkh, &st);
        float u = emu_bf16(fp8_dot(m, swap, xq, xs, W13 + (size_t)ru * H, su, st, H, bk));
        if (EMU_SERVED) { /* intermediate_cache1: the bf16 gate and up */
            hf[j] = g;
            uf[j] = u;
        } else { /* silu_and_mul, as the bf16 path */
            float sl = emu_bf16(g / (1.0f + expf(-g)));
            hf[j] = emu_bf16(sl * u);
        }
    }
    if (EMU_SERVED)
        fp8_silu_mul_quant_row(m, hf, uf, I, hq, hs);
    else
        fp8_quant_row(m, ue8m0, bk, hf, I, hq, hs);
    for (int h = 0; h < H; h++) {
        int st;
        const float *s = fp8_scale_row(m, S2, h, bn, nr2, nki, &st);
        float y = fp8_dot(m, swap, hq, hs, W2 + (size_t)h * I, s, st, I, bk) * wt;
        acc[h] = acc[h] + emu_bf16(y);
        if (is_mut(m, "bf16-combine")) acc[h] = emu_bf16(acc[h]);
    }
    free(xq), free(hq), free(xs), free(hs), free(hf), free(uf);
    return 0;
}

/* Level 3 (FP8 block-scale weights) */
static const mf_kernel_features emu_fp8_features = {
    {MF_KERNEL_EXT_FEATURES, sizeof(mf_kernel_features), NULL}, MF_ABI_LEVEL_3, 0};

static const mf_kernel_ext *emu_fp8_get_ext(uint32_t kind) {
    return kind == MF_KERNEL_EXT_FEATURES ? &emu_fp8_features.ext : NULL;
}
#endif

static int emu_run(void *ctx, const mf_kernel_params *p, char *msg, size_t len) {
    const emu *m = ctx;
    int T = p->T, H = p->H, I = p->I, k = p->top_k;
    float *xf = malloc(sizeof(float) * (size_t)H), *hf = malloc(sizeof(float) * (size_t)I);
    float *acc = malloc(sizeof(float) * (size_t)H);
    if (!xf || !hf || !acc) {
        free(xf), free(hf), free(acc);
        return emu_msg(msg, len, "out of memory"), 1;
    }
    const uint16_t *x = p->x, *w13 = p->w13, *w2 = p->w2;
    uint16_t *out = p->out;
    int rc = 0;
    for (int t = 0; t < T && !rc; t++) {
        int ids[EMU_MAX_TOP_K];
        float w[EMU_MAX_TOP_K];
        rc = EMU_TORCH  ? route_torch(m, p, t, ids, w)
             : grouped(p) ? route_grouped(m, p, t, ids, w)
                          : route_topk(m, p, t, ids, w, msg, len);
        if (rc) break;
        if (is_mut(m, "bf16-weights"))
            for (int i = 0; i < k; i++) w[i] = emu_bf16(w[i]);
        emu_report_routing(p, t, ids, w);
        for (int h = 0; h < H; h++) xf[h] = emu_bf16_to_f32(x[(size_t)t * H + h]);
        for (int h = 0; h < H; h++) acc[h] = 0;
        for (int i = 0; i < k; i++) {
            int le = ids[i] - p->expert_offset;
            if (le < 0 || le >= p->E_local) continue; /* moe_sum skips experts off this rank */
#ifdef EMU_FP8
            if (emu_quantized(p)) {
                if (fp8_expert(m, p, xf, le, w[i], acc)) rc = 1, emu_msg(msg, len, "out of memory");
                continue;
            }
#endif
            const uint16_t *W13 = w13 + (size_t)le * 2 * I * H, *W2 = w2 + (size_t)le * H * I;
            for (int j = 0; j < I; j++) {
                float g = emu_bf16(emu_triton_dot(xf, W13 + (size_t)emu_gate_row(p, j) * H, H));
                float u = emu_bf16(emu_triton_dot(xf, W13 + (size_t)emu_up_row(p, j) * H, H));
                float sg = g / (1.0f + expf(-g));
                if (!is_mut(m, "silu-unrounded")) sg = emu_bf16(sg);
                hf[j] = emu_bf16(sg * u);
            }
            for (int h = 0; h < H; h++) {
                float y = emu_triton_dot(hf, W2 + (size_t)h * I, I) * w[i];
                float yb = emu_bf16(y); /* MUL_ROUTED_WEIGHT, then the bf16 store */
                acc[h] = acc[h] + yb;
                if (is_mut(m, "bf16-combine")) acc[h] = emu_bf16(acc[h]);
            }
        }
        for (int h = 0; h < H; h++) {
            float o = emu_bf16(acc[h]);
            if (p->rsf_site == MF_ABI_RSF_OUTPUT && !is_mut(m, "rsf-dropped"))
                o = emu_bf16(o * p->routed_scaling_factor);
            out[(size_t)t * H + h] = emu_f32_to_bf16(o);
        }
    }
    free(xf), free(hf), free(acc);
    return rc;
}

#ifdef EMU_FIELDS
/* The contract vllm-0.33-triton-sm90 (reference/contract.c) declared field by field through the
 * contract extension, deterministic (as this emulation is). MOEFUZZ_EMU_FIELD=NAME changes one
 * field: tighter than the arithmetic (no-silu-out, no-rsf-out, no-gemm1-out), a field that turns
 * a metamorphic identity into independent checks (ftz, key-minus-bias), or outside its list or
 * range (bad-*), which moefuzz must refuse when it loads the kernel. */
static mf_kernel_contract_ext emu_contract = {
    .ext = {MF_KERNEL_EXT_CONTRACT, sizeof(mf_kernel_contract_ext), NULL},
    .acc_kind = MF_ABI_ACC_ANY_ORDER,
    .exp_kind = MF_ABI_EXP_ACCURATE,
    .exp_ulps = 2.0f,
    .div_kind = MF_ABI_DIV_IEEE,
    .round_points = MF_ABI_RP_GEMM1_OUT | MF_ABI_RP_SILU_OUT | MF_ABI_RP_ACT_OUT |
                    MF_ABI_RP_WEIGHTED | MF_ABI_RP_RSF_OUT,
    .deterministic = 1,
    .router_own = 1,
    .router_exp_kind = MF_ABI_EXP_FAST,
    .router_div_kind = MF_ABI_DIV_IEEE,
    .sigmoid_form = MF_ABI_SIGMOID_EXP_DIV_OR_TANH,
    .tanh_rel = 2 * 0x1p-23f,
    .softmax_recip = 1,
    .weight_form = MF_ABI_WEIGHT_PLAIN,
    .tie_rule = MF_ABI_TIE_LOWER_INDEX,
    .ftz = 0,
    .combine_dtype = MF_ABI_DTYPE_F32,
};

static void emu_fields_change(const char *f) {
    mf_kernel_contract_ext *c = &emu_contract;
    if (!strcmp(f, "no-silu-out")) c->round_points &= ~(uint32_t)MF_ABI_RP_SILU_OUT;
    if (!strcmp(f, "no-rsf-out")) c->round_points &= ~(uint32_t)MF_ABI_RP_RSF_OUT;
    if (!strcmp(f, "no-gemm1-out")) c->round_points &= ~(uint32_t)MF_ABI_RP_GEMM1_OUT;
    if (!strcmp(f, "ftz")) c->ftz = 1; /* looser: admits more */
    if (!strcmp(f, "key-minus-bias")) c->weight_form = MF_ABI_WEIGHT_KEY_MINUS_BIAS;
    if (!strcmp(f, "bad-sigmoid-form")) c->sigmoid_form = 3;
    if (!strcmp(f, "bad-tie-rule")) c->tie_rule = -1;
    if (!strcmp(f, "bad-tanh-rel")) c->tanh_rel = 0.5f;
    if (!strcmp(f, "bad-round-point")) c->round_points |= 1u << 12;
    if (!strcmp(f, "bad-fused-block")) c->acc_kind = MF_ABI_ACC_FUSED_BLOCK, c->acc_block = 0;
    if (!strcmp(f, "bad-ftz")) c->ftz = 2;
    if (!strcmp(f, "bad-combine-dtype")) c->combine_dtype = 2;
}

static const mf_kernel_ext *emu_fields_get_ext(uint32_t kind) {
    return kind == MF_KERNEL_EXT_CONTRACT ? &emu_contract.ext : emu_get_ext(kind);
}
#endif

__attribute__((visibility("default"))) int mf_kernel_get_api(uint32_t abi_version,
                                                             mf_kernel_api *api,
                                                             size_t api_size) {
    if (emu_api_fill(abi_version, api, api_size, "emu-vllm-0.33-triton-sm90",
                     "C emulation of vLLM 0.33.0's bf16 fused MoE (Triton, Hopper)"))
        return 1;
#if defined(EMU_FP8_SERVED) && defined(EMU_OLD_CONTRACT)
    /* the unfused path's contract, which does not cover the fused activation quantizer */
    api->contract.name = "vllm-0.33-triton-fp8-sm90";
    api->contract.deterministic = 1;
    api->get_ext = emu_fp8_get_ext;
#elif defined(EMU_FP8_SERVED)
    api->contract.name = "vllm-0.33-triton-fp8-served-sm90";
    api->contract.deterministic = 1;
    api->get_ext = emu_fp8_get_ext;
#elif defined(EMU_FP8) && defined(EMU_OLD_CONTRACT)
    /* the FP8 contract that existed before: hopper-tc-fp8 (moefuzz's own recipe) */
    api->contract.name = "hopper-tc-fp8";
    api->contract.deterministic = 1;
    api->get_ext = emu_fp8_get_ext;
#elif defined(EMU_FP8)
    api->contract.name = "vllm-0.33-triton-fp8-sm90";
    api->contract.deterministic = 1;
    api->get_ext = emu_fp8_get_ext;
#elif defined(EMU_TORCH_ROUTER) && defined(EMU_OLD_CONTRACT)
    /* the contract of vLLM's other router paths, which does not cover this one */
    api->contract.name = "vllm-0.33-triton-sm90";
    api->contract.deterministic = 1;
#elif defined(EMU_TORCH_ROUTER)
    api->contract.name = "vllm-0.33-triton-sm90-torch-router";
    api->contract.deterministic = 1;
#elif defined(EMU_OLD_CONTRACT)
    /* the definition vllm-triton had before it named vLLM 0.33.0 (issue 19's false alarms) */
    api->contract.acc_kind = MF_ABI_ACC_ANY_ORDER;
    api->contract.exp_kind = MF_ABI_EXP_FAST;
    api->contract.div_kind = MF_ABI_DIV_FAST;
    api->contract.round_points = MF_ABI_RP_GEMM1_OUT | MF_ABI_RP_ACT_OUT | MF_ABI_RP_WEIGHTED;
    api->contract.deterministic = 0;
#elif !defined(EMU_FIELDS)
    api->contract.name = "vllm-0.33-triton-sm90";
    api->contract.deterministic = 1;
#endif
    api->supports = emu_supports;
    api->run = emu_run;
#ifdef EMU_FIELDS
    const char *f = getenv("MOEFUZZ_EMU_FIELD");
    if (f) emu_fields_change(f);
    api->get_ext = emu_fields_get_ext;
#endif
    return 0;
}
