/* flashinfer_07_trtllm_bf16.c: FlashInfer 0.7.4's trtllm-gen BF16 fused MoE with DeepSeek
 * routing, step by step, in C (contract flashinfer-0.7-trtllm-bf16;
 * docs/notes/kernel-arithmetic-from-source.md, section 2). Everything is built with
 * -use_fast_math: results flushed to zero, __expf, div.approx, rcp.approx, tanh.approx.
 *
 * Routing (routingMainKernel): s = fma(tanh.approx(0.5 x), 0.5, 0.5); the bias cast to bf16
 * first, key = s + bf16(b); group score = top-2 sum (duplicates kept); groups and experts by the
 * packed maximum (lower index on ties); sum = warp sum of the selected scores;
 * w = bf16(__fdividef(fl(s rsf), fl(sum + 1e-20))).
 * Experts: GEMMs in fp32 (the SM100 cubins' order is unknown: here four interleaved partial
 * sums); activation v / (1 + __expf(-v)) as v * rcp(1 + e), times up in fp32, one bf16
 * rounding; GEMM2 output stored as bf16; finalize: acc = fma(w, y, acc) over the slots, one
 * bf16 rounding.
 * Refused (unsupported): what the DeepSeekV3 routing method does not compute: softmax, no bias,
 * renormalize off, eps other than 1e-20, the max group rule, rsf on the output, top_k above 22,
 * topk_group above 4.
 *
 * Mutations (MOEFUZZ_EMU_MUTATION): rsf-dropped, bf16-combine (finalize accumulated in bf16),
 * eps-dropped (sum without 1e-20), bf16-exp (the activation's exp rounded to bf16: a less
 * accurate exp), bias-unrounded (a rounding removed: admissible by construction).
 */
#include "emu_common.h"

#define TANH_APPROX_REL 0x1.cp-12 /* within tanh.approx's documented 2^-10.987 */

static int emu_supports(void *ctx, const mf_kernel_params *p, char *msg, size_t len) {
    (void)ctx;
    if (p->memory != MF_ABI_MEM_HOST) return emu_msg(msg, len, "host memory only");
    if (emu_quantized(p)) return emu_msg(msg, len, "quantized weights (fp8_block, mxfp4)");
    if (p->score_fn != MF_ABI_SCORE_SIGMOID || p->bias_dtype == MF_ABI_BIAS_NONE)
        return emu_msg(msg, len, "DeepSeekV3 routing: sigmoid scores with a bias only");
    if (!p->renormalize || p->renorm_eps != 1e-20f)
        return emu_msg(msg, len, "DeepSeekV3 routing always renormalizes by sum + 1e-20");
    if (p->rsf_site != MF_ABI_RSF_WEIGHTS)
        return emu_msg(msg, len, "rsf is applied in the routing weights only");
    if (p->n_group > 1 && p->group_rule != MF_ABI_GROUP_TOP2_SUM)
        return emu_msg(msg, len, "group score is the top-2 sum");
    if (p->top_k > 22 || (p->n_group > 1 && p->topk_group > 4))
        return emu_msg(msg, len, "top_k <= 22 and topk_group <= 4 (runner checks)");
    if (p->E > 1024 || p->n_group > 64) return emu_msg(msg, len, "E above 1024");
    return 1;
}

static void route(const emu *m, const mf_kernel_params *p, int t, int *ids, float *w) {
    int E = p->E, NG = p->n_group > 1 ? p->n_group : 1, G = E / NG, k = p->top_k;
    float s[1024], key[1024], gscore[64];
    for (int e = 0; e < E; e++) {
        float x = emu_logit(p, t, e);
        float th = emu_tanh_approx(emu_ftz(0.5f * x), TANH_APPROX_REL);
        s[e] = emu_ftz(fmaf(th, 0.5f, 0.5f));
        float b = emu_bias(p, e);
        if (!is_mut(m, "bias-unrounded")) b = emu_bf16(b); /* static_cast<OutputT>(bias) */
        key[e] = emu_ftz(s[e] + b);
    }
    uint8_t allowed[1024];
    if (NG > 1) {
        for (int g = 0; g < NG; g++) {
            int top[2];
            emu_topk(key + g * G, NULL, G, G >= 2 ? 2 : 1, top);
            gscore[g] = G >= 2 ? emu_ftz(key[g * G + top[0]] + key[g * G + top[1]])
                               : key[g * G + top[0]];
        }
        int kept[64];
        emu_topk(gscore, NULL, NG, p->topk_group, kept);
        memset(allowed, 0, (size_t)E);
        for (int i = 0; i < p->topk_group; i++) memset(allowed + kept[i] * G, 1, (size_t)G);
    } else {
        memset(allowed, 1, (size_t)E);
    }
    emu_topk(key, allowed, E, k, ids);
    float sel[EMU_MAX_TOP_K];
    for (int i = 0; i < k; i++) sel[i] = s[ids[i]];
    float sum = emu_warp_sum(sel, k, 1);
    float den = is_mut(m, "eps-dropped") ? sum : emu_ftz(sum + 1e-20f);
    float rsf = is_mut(m, "rsf-dropped") ? 1.0f : p->routed_scaling_factor;
    for (int i = 0; i < k; i++) w[i] = emu_bf16(emu_fast_div(emu_ftz(sel[i] * rsf), den, 1));
}

/* fp32 dot product in an order the reference does not model: four interleaved partial sums */
static float dot4(const float *a, const uint16_t *b, int n) {
    float part[4] = {0, 0, 0, 0};
    for (int i = 0; i < n; i++) part[i & 3] += a[i] * emu_bf16_to_f32(b[i]);
    return (part[0] + part[1]) + (part[2] + part[3]);
}

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
    for (int t = 0; t < T; t++) {
        int ids[EMU_MAX_TOP_K];
        float w[EMU_MAX_TOP_K];
        route(m, p, t, ids, w);
        emu_report_routing(p, t, ids, w);
        for (int h = 0; h < H; h++) xf[h] = emu_bf16_to_f32(x[(size_t)t * H + h]);
        for (int h = 0; h < H; h++) acc[h] = 0;
        for (int i = 0; i < k; i++) {
            int le = ids[i] - p->expert_offset;
            if (le < 0 || le >= p->E_local) continue;
            const uint16_t *W13 = w13 + (size_t)le * 2 * I * H, *W2 = w2 + (size_t)le * H * I;
            for (int j = 0; j < I; j++) {
                float g = emu_ftz(dot4(xf, W13 + (size_t)emu_gate_row(p, j) * H, H));
                float u = emu_ftz(dot4(xf, W13 + (size_t)emu_up_row(p, j) * H, H));
                float e = emu_ftz(emu_fast_exp(-g));
                if (is_mut(m, "bf16-exp")) e = emu_bf16(e);
                volatile float r = 1.0f / emu_ftz(1.0f + e); /* rcp.approx.ftz */
                float silu = emu_ftz(g * emu_ftz(r));
                hf[j] = emu_bf16(emu_ftz(silu * u));
            }
            for (int h = 0; h < H; h++) {
                float y = emu_bf16(emu_ftz(dot4(hf, W2 + (size_t)h * I, I)));
                acc[h] = emu_ftz(fmaf(w[i], y, acc[h]));
                if (is_mut(m, "bf16-combine")) acc[h] = emu_bf16(acc[h]);
            }
        }
        for (int h = 0; h < H; h++) out[(size_t)t * H + h] = emu_f32_to_bf16(acc[h]);
    }
    free(xf), free(hf), free(acc);
    (void)msg, (void)len;
    return 0;
}

__attribute__((visibility("default"))) int mf_kernel_get_api(uint32_t abi_version,
                                                             mf_kernel_api *api,
                                                             size_t api_size) {
    if (emu_api_fill(abi_version, api, api_size, "emu-flashinfer-0.7-trtllm-bf16",
                     "C emulation of FlashInfer 0.7.4's trtllm-gen BF16 MoE, DeepSeek routing"))
        return 1;
#ifdef EMU_OLD_CONTRACT
    /* the definition flashinfer-trtllm-bf16 had before it named FlashInfer 0.7.4 */
    api->contract.acc_kind = MF_ABI_ACC_ANY_ORDER;
    api->contract.exp_kind = MF_ABI_EXP_FAST;
    api->contract.div_kind = MF_ABI_DIV_FAST;
    api->contract.round_points = MF_ABI_RP_ACT_OUT | MF_ABI_RP_GEMM2_OUT | MF_ABI_RP_WEIGHTS;
    api->contract.deterministic = 0;
#else
    api->contract.name = "flashinfer-0.7-trtllm-bf16";
    api->contract.deterministic = 1;
#endif
    api->supports = emu_supports;
    api->run = emu_run;
    return 0;
}
