/* sglang_05_triton_sm90.c: SGLang 0.5.23's bf16 Triton fused MoE on Hopper, step by step, in C
 * (contract sglang-0.5-triton-sm90; docs/error-model.md; docs/notes/sglang-adapter.md). Paths
 * are inside the sglang 0.5.23 wheel's `sglang/`.
 *
 * Router: moe_fused_gate's Triton _router_triton_kernel (kernels/ops/moe/moe_fused_gate.py), on
 * the two paths an SGLang model takes on sm_90 that the contract covers:
 *   softmax, no bias, no groups: select_experts -> fused_topk (srt/layers/moe/topk.py l. 1237,
 *     1296-1308) -> the kernel with SCORING_FUNC 2: e = tl.exp(l - max) (l. 221), Z = tl.sum
 *     (l. 222), p = e / Z (l. 223);
 *   sigmoid with a bias and groups: biased_grouped_topk_gpu with
 *     SGLANG_OPT_USE_JIT_KERNEL_GROUPED_TOPK=1 (topk.py l. 1984-2016) -> the kernel with
 *     SCORING_FUNC 0: s = tl.sigmoid(x) = 1 / (1 + tl.exp(-x)) (l. 193; Triton's
 *     standard.sigmoid), key = s + b in fp32 (l. 194); group score top1 + the largest key below
 *     top1 (l. 240-247); TOPK_GROUP rounds of max over the groups, lowest id on ties (l. 250-256).
 * Both: k rounds of max over the keys, the lowest expert id on ties, slots in that order
 * (l. 264-279); w = the unbiased scores, renormalised by norm = sum > 0 ? sum : 1
 * (RENORMALIZE_EPSILON 0.0, l. 281-293); no rsf in the router (APPLY_SCALE off: the bf16
 * Triton runner applies rsf in the combine, srt/layers/moe/fused_moe_triton/layer.py l. 109,
 * 616).
 * Triton's lowering, as the contract takes it (Triton's C++ lowering is not read here):
 * tl.exp is ex2.approx.f32 of fl(x log2 e) (emu_fast_exp), fp32 `/` is div.full.f32 (2 ulp;
 * here a fl(1 / b), two roundings); tl.sigmoid is 1 / (1 + exp(-x)) (triton 3.6.0
 * language/standard.py l. 49-50); tl.sum a tree whose order the contract does not fix (here
 * each lane's elements in order, then the xor butterfly); tl.max ignores NaN (max.f32).
 *
 * Experts (srt/layers/moe/moe_runner/triton_utils/fused_moe.py:_fused_moe_kernel_sequence):
 * fused_moe_kernel (kernels/ops/moe/fused_moe_triton_kernels.py) for bf16 runs
 * `accumulator += tl.dot(a, b)` (l. 611), the loop of vLLM's kernel: emu_triton_dot; GEMM1
 * stored as bf16 (l. 634); silu_and_mul (kernels/jit/csrc/elementwise/activation.cuh l. 26-28,
 * 112-116, built with --use_fast_math, kernels/jit/utils/arch.py l. 201-204): silu(g) =
 * g / (1 + expf(-g)) in fp32, NOT rounded, times up, one bf16 rounding; fast math makes expf
 * __expf, the division __fdividef, and flushes subnormal operands and results; GEMM2's
 * accumulator times the fp32 weight (l. 630-632), stored as bf16 (l. 634).
 * Combine (moe_combine_topk, triton_utils/fused_moe.py l. 996-1024): top-k 1 with rsf 1: GEMM2
 * writes the output; top-k 2 with rsf 1: torch.add of the two bf16 rows (fp32 sum, one
 * rounding); otherwise, T <= 32 on sm_90 (PDL): _moe_sum_reduce_kernel
 * (fused_moe_triton_kernels.py l. 1279-1291): acc = 0, acc += each slot in slot order in fp32,
 * acc *= rsf, one bf16 rounding.
 *
 * Refused (unsupported), with the reason: what SGLang does not compute on these paths or the
 * contract does not cover (rsf in the weights, ungrouped sigmoid, softmax with a bias or
 * groups, the max group rule, activations and layouts other than silu and gate_up, EP shards,
 * quantized weights), the sgl_kernel combine (T > 32 with top-k > 2 or an rsf: its CUDA source
 * is not in the wheel), and one expert per group (no second key: every group scores -inf and
 * group 0 is kept TOPK_GROUP times). supports() sees no tensor data, so where SGLang's router
 * computes another function than the case on some data it is emulated as it is, not refused:
 * a non-finite logit (its key ranked as -1e30, l. 231), a group whose top key is repeated (the
 * score skips every copy, l. 245), a renormalisation where the case's sum + eps and SGLang's
 * sum > 0 ? sum : 1 differ (a zero sum without eps; eps not negligible against a tiny sum):
 * such a case can fail, a difference of semantics the adapter refuses on its data
 * (python/moefuzz/adapters/sglang_fused_moe.py, check_semantics).
 *
 * Mutations (MOEFUZZ_EMU_MUTATION): rsf-dropped (the combine's acc *= rsf left out),
 * bf16-combine (the combine accumulated in bf16), eps-dropped (the router's zero-sum guard
 * dropped: w = s / sum, NaN where every selected score is 0; SGLang adds no eps, the guard is
 * its stand-in), tanh-approx (the router's sigmoid as 0.5 tanh.approx(0.5 x) + 0.5: a less
 * accurate sigmoid), router-bf16-exp (the softmax's exponentials rounded to bf16) and bf16-exp
 * (the activation's __expf rounded to bf16): less accurate exps, bf16-weights (routing weights
 * rounded to bf16); admissible by construction (error removed): div-rn (the router's divisions
 * rounded once), no-ftz (the activation's flush to zero left out). The contract has no
 * optional rounding point, so no bf16 rounding of SGLang's can be left out alone and stay
 * admissible (docs/error-model.md, "Optional rounding points"): weighted-unrounded (w * y kept
 * in fp32) is rejected, as it should be.
 */
#include "emu_common.h"
#include "emu_triton_dot.h"

#define EMU_MAX_E 1024

static int grouped(const mf_kernel_params *p) { return p->n_group > 1; }

static float rsf_out(const mf_kernel_params *p) {
    return p->rsf_site == MF_ABI_RSF_OUTPUT ? p->routed_scaling_factor : 1.0f;
}

/* ---- Triton's fp32 arithmetic (no fast math: no flush to zero) ---- */

/* div.full.f32: a / b within 2 ulp; here a * fl(1 / b) (one rounding: div-rn) */
static float div_full(const emu *m, float a, float b) {
    if (is_mut(m, "div-rn")) return a / b;
    volatile float r = 1.0f / b;
    return a * r;
}

/* tl.sum of v[0..n) in a warp: lane l holds v[l], v[l + 32], ... summed in order, then the
 * xor butterfly */
static float tree_sum(const float *v, int n) {
    float lane[32];
    for (int l = 0; l < 32; l++) {
        lane[l] = 0;
        for (int i = l; i < n; i += 32) lane[l] += v[i];
    }
    return emu_warp_sum(lane, 32, 0);
}

/* ---- routing of one token: ids and fp32 weights (_router_triton_kernel) ---- */

/* a key as the kernel ranks it: NaN becomes -1e30 (l. 231) */
static float ranked(float key) { return key == key ? key : -1e30f; }

static void route(const emu *m, const mf_kernel_params *p, int t, int *ids, float *w) {
    int E = p->E, k = p->top_k;
    float act[EMU_MAX_E], key[EMU_MAX_E];
    if (!grouped(p)) { /* softmax: the key is the logit, the weight its probability */
        float mx = -INFINITY, e_row[EMU_MAX_E];
        for (int e = 0; e < E; e++) key[e] = emu_logit(p, t, e) + 0.0f;
        for (int e = 0; e < E; e++) mx = fmaxf(mx, key[e]); /* max.f32: NaN ignored */
        for (int e = 0; e < E; e++) e_row[e] = emu_fast_exp(key[e] - mx);
        if (is_mut(m, "router-bf16-exp"))
            for (int e = 0; e < E; e++) e_row[e] = emu_bf16(e_row[e]);
        float Z = tree_sum(e_row, E);
        for (int e = 0; e < E; e++) act[e] = div_full(m, e_row[e], Z);
        for (int e = 0; e < E; e++) key[e] = ranked(key[e]);
        emu_topk(key, NULL, E, k, ids);
    } else {
        int NG = p->n_group, G = E / NG;
        for (int e = 0; e < E; e++) {
            float x = emu_logit(p, t, e);
            act[e] = is_mut(m, "tanh-approx")
                         ? fmaf(emu_tanh_approx(0.5f * x, 0x1.cp-12), 0.5f, 0.5f)
                         : div_full(m, 1.0f, 1.0f + emu_fast_exp(-x));
            key[e] = ranked(act[e] + emu_bias(p, e));
        }
        /* group score: top1 + the largest key below top1 (every copy of top1 left out) */
        float gscore[64];
        for (int g = 0; g < NG; g++) {
            const float *kg = key + g * G;
            float top1 = -INFINITY, top2 = -INFINITY;
            for (int j = 0; j < G; j++) top1 = fmaxf(top1, kg[j]);
            for (int j = 0; j < G; j++)
                if (kg[j] < top1) top2 = fmaxf(top2, kg[j]);
            gscore[g] = top1 + top2;
        }
        int kept[64];
        uint8_t allowed[EMU_MAX_E] = {0};
        emu_topk(gscore, NULL, NG, p->topk_group, kept);
        for (int i = 0; i < p->topk_group; i++)
            for (int j = 0; j < G; j++) allowed[kept[i] * G + j] = 1;
        emu_topk(key, allowed, E, k, ids);
    }
    float sel[EMU_MAX_TOP_K];
    for (int i = 0; i < k; i++) sel[i] = act[ids[i]];
    if (p->renormalize) { /* norm = sum > 0 ? sum : 1 (RENORMALIZE_EPSILON 0) */
        float sum = tree_sum(sel, k);
        float norm = sum > 0 || is_mut(m, "eps-dropped") ? sum : 1.0f;
        for (int i = 0; i < k; i++) w[i] = div_full(m, sel[i], norm);
    } else {
        for (int i = 0; i < k; i++) w[i] = sel[i];
    }
}

/* ---- what SGLang's path computes ---- */

static int emu_supports(void *ctx, const mf_kernel_params *p, char *msg, size_t len) {
    (void)ctx;
    if (p->memory != MF_ABI_MEM_HOST) return emu_msg(msg, len, "host memory only");
    if (emu_quantized(p)) return emu_msg(msg, len, "quantized weights: SGLang's bf16 path only");
    if (p->top_k > EMU_MAX_TOP_K) return emu_msg(msg, len, "top_k above 32");
    if (p->E > EMU_MAX_E || p->n_group > 64)
        return emu_msg(msg, len, "E above 1024 or n_group above 64 (the emulation's arrays)");
    if (p->activation != MF_ABI_ACT_SILU_GLU)
        return emu_msg(msg, len, "activation other than silu: not SGLang's silu_and_mul");
    if (p->layout != MF_ABI_LAYOUT_GATE_UP)
        return emu_msg(msg, len, "up_gate layout: SGLang's w13 holds gate rows then up rows");
    if (p->E_local != p->E || p->expert_offset != 0)
        return emu_msg(msg, len, "expert parallel shard: SGLang's EP mapping is not emulated");
    if (p->routed_scaling_factor != 1.0f && p->rsf_site != MF_ABI_RSF_OUTPUT)
        return emu_msg(msg, len, "rsf in the weights: SGLang's bf16 Triton MoE applies rsf to "
                                 "the output sum (moe_combine_topk)");
    int softmax_plain = p->score_fn == MF_ABI_SCORE_SOFTMAX && p->bias_dtype == MF_ABI_BIAS_NONE &&
                        p->n_group <= 1 && p->topk_group <= 1;
    int grouped_biased = p->score_fn == MF_ABI_SCORE_SIGMOID &&
                         p->bias_dtype != MF_ABI_BIAS_NONE && grouped(p) &&
                         p->group_rule == MF_ABI_GROUP_TOP2_SUM;
    if (!softmax_plain && !grouped_biased)
        return emu_msg(msg, len, "routing other than softmax top-k (fused_topk) or grouped "
                                 "biased sigmoid (biased_grouped_topk_gpu): not this contract");
    if (grouped_biased && p->E / p->n_group < 2)
        return emu_msg(msg, len, "one expert per group: SGLang's group score has no second key "
                                 "(-inf for every group)");
    if (grouped_biased && p->topk_group * (p->E / p->n_group) < p->top_k)
        return emu_msg(msg, len, "fewer than top_k experts in the kept groups");
    float rsf = rsf_out(p);
    if (p->T > 32 && (p->top_k > 2 || rsf != 1.0f))
        return emu_msg(msg, len, "T above 32 with top_k above 2 or an rsf: sgl_kernel's "
                                 "moe_sum_reduce, whose source is not in the wheel");
    return 1;
}

/* ---- experts ---- */

/* a result or operand of the fast-math activation: flushed when subnormal (no-ftz: kept) */
static float fm(const emu *m, float v) { return is_mut(m, "no-ftz") ? v : emu_ftz(v); }

/* silu_and_mul's element: bf16(silu(g) up), silu = __fdividef(g, 1 + __expf(-g)) unrounded,
 * __expf = ex2.approx.ftz.f32 of fl(x log2 e) */
static float silu_mul(const emu *m, float g, float u) {
    g = fm(m, g), u = fm(m, u);
    float e = fm(m, emu_fast_exp(-g));
    if (is_mut(m, "bf16-exp")) e = emu_bf16(e);
    float s = emu_fast_div(g, fm(m, 1.0f + e), !is_mut(m, "no-ftz"));
    return emu_bf16(fm(m, s * u));
}

static int emu_run(void *ctx, const mf_kernel_params *p, char *msg, size_t len) {
    const emu *m = ctx;
    int T = p->T, H = p->H, I = p->I, k = p->top_k;
    float *xf = malloc(sizeof(float) * (size_t)H), *hf = malloc(sizeof(float) * (size_t)I);
    float *y = malloc(sizeof(float) * (size_t)H * (size_t)k);
    if (!xf || !hf || !y) {
        free(xf), free(hf), free(y);
        return emu_msg(msg, len, "out of memory"), 1;
    }
    const uint16_t *x = p->x, *w13 = p->w13, *w2 = p->w2;
    uint16_t *out = p->out;
    float rsf = is_mut(m, "rsf-dropped") ? 1.0f : rsf_out(p);
    for (int t = 0; t < T; t++) {
        int ids[EMU_MAX_TOP_K];
        float w[EMU_MAX_TOP_K];
        route(m, p, t, ids, w);
        if (is_mut(m, "bf16-weights"))
            for (int i = 0; i < k; i++) w[i] = emu_bf16(w[i]);
        emu_report_routing(p, t, ids, w);
        for (int h = 0; h < H; h++) xf[h] = emu_bf16_to_f32(x[(size_t)t * H + h]);
        /* y: [k][H], slot i's weighted expert output (intermediate_cache3) */
        for (int i = 0; i < k; i++) {
            const uint16_t *W13 = w13 + (size_t)ids[i] * 2 * I * H;
            const uint16_t *W2 = w2 + (size_t)ids[i] * H * I;
            for (int j = 0; j < I; j++) {
                float g = emu_bf16(emu_triton_dot(xf, W13 + (size_t)j * H, H));
                float u = emu_bf16(emu_triton_dot(xf, W13 + (size_t)(I + j) * H, H));
                hf[j] = silu_mul(m, g, u);
            }
            for (int h = 0; h < H; h++) {
                float v = emu_triton_dot(hf, W2 + (size_t)h * I, I) * w[i];
                y[(size_t)i * H + h] = is_mut(m, "weighted-unrounded") ? v : emu_bf16(v);
            }
        }
        for (int h = 0; h < H; h++) {
            float o;
            if (k == 1 && rsf == 1.0f) { /* GEMM2 writes the output */
                o = y[h];
            } else { /* torch.add of two rows, or _moe_sum_reduce_kernel */
                float acc = 0;
                for (int i = 0; i < k; i++) {
                    acc += y[(size_t)i * H + h];
                    if (is_mut(m, "bf16-combine")) acc = emu_bf16(acc);
                }
                o = acc * rsf;
            }
            out[(size_t)t * H + h] = emu_f32_to_bf16(o);
        }
    }
    free(xf), free(hf), free(y);
    return 0;
}

__attribute__((visibility("default"))) int mf_kernel_get_api(uint32_t abi_version,
                                                             mf_kernel_api *api,
                                                             size_t api_size) {
    if (emu_api_fill(abi_version, api, api_size, "emu-sglang-0.5-triton-sm90",
                     "C emulation of SGLang 0.5.23's bf16 fused MoE (Triton, Hopper)"))
        return 1;
#ifdef EMU_OLD_CONTRACT
    /* the contract of vLLM's Triton kernel, whose GEMM loop SGLang's shares */
    api->contract.name = "vllm-0.33-triton-sm90";
#else
    api->contract.name = "sglang-0.5-triton-sm90";
#endif
    api->contract.deterministic = 1;
    api->supports = emu_supports;
    api->run = emu_run;
    return 0;
}
