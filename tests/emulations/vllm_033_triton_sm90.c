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
 * grouped_topk path), shapes beyond the small-expert-count kernel, an rsf without a bias or
 * groups (vLLM sends it to the torch path), keys below the topk kernels' floors.
 * Experts: GEMMs accumulate in fp32 per BLOCK_K block (128 for T <= 64, else 64), each block from
 * 0 and added to the accumulator (the chain if Triton's dot rewrite does not fire); GEMM1 output
 * stored as bf16; silu_and_mul: bf16(g / (1 + expf(-g))), product in fp32, one bf16 rounding;
 * GEMM2's accumulator times the fp32 weight, stored as bf16; moe_sum in fp32 in slot order; an
 * output-site rsf multiplies the bf16 sum in fp32 and rounds again.
 *
 * Mutations (MOEFUZZ_EMU_MUTATION): rsf-dropped, bf16-combine (moe_sum accumulated in bf16, vLLM
 * issue 15045), eps-dropped (grouped: sum without 1e-20), tanh-approx (grouped: tanh.approx, a
 * less accurate sigmoid), bf16-weights (routing weights rounded to bf16), silu-unrounded (a
 * rounding removed: admissible by construction).
 */
#include "emu_common.h"

typedef struct emu {
    const char *mut;
} emu;

static int is_mut(const emu *m, const char *name) { return m && strcmp(m->mut, name) == 0; }

static int emu_create(void **ctx, char *msg, size_t len) {
    emu *m = calloc(1, sizeof *m);
    if (!m) return emu_msg(msg, len, "out of memory"), 1;
    m->mut = emu_mutation();
    *ctx = m;
    return 0;
}

static void emu_release(void *ctx) { free(ctx); }

/* topk_softmax / topk_sigmoid's warp kernel handles these E; others go to the general kernel */
static int warp_kernel_e(int E, int sigmoid) {
    if (E >= 1 && E <= 512 && (E & (E - 1)) == 0) return 1;
    return E == 192 || E == 320 || E == 384 || E == 448 || E == 576 || (sigmoid && E == 352);
}

static int grouped(const mf_kernel_params *p) { return p->n_group > 1; }

static int route_topk(const emu *m, const mf_kernel_params *p, int t, int *ids, float *w,
                      char *msg, size_t len);

static int emu_supports(void *ctx, const mf_kernel_params *p, char *msg, size_t len) {
    if (p->memory != MF_ABI_MEM_HOST) return emu_msg(msg, len, "host memory only");
    if (emu_quantized(p)) return emu_msg(msg, len, "quantized weights (fp8_block, mxfp4)");
    if (p->top_k > EMU_MAX_TOP_K) return emu_msg(msg, len, "top_k above 32");
    int has_bias = p->bias_dtype != MF_ABI_BIAS_NONE;
    if (grouped(p)) {
        int G = p->E / p->n_group;
        if (!has_bias || p->score_fn != MF_ABI_SCORE_SIGMOID || p->group_rule != MF_ABI_GROUP_TOP2_SUM)
            return emu_msg(msg, len, "grouped routing without a bias, with softmax or the max "
                                     "rule: vLLM's torch grouped_topk path (not emulated)");
        if (p->E > 256 || G > 32 || G * p->topk_group > 128 || p->top_k > 8 || p->topk_group > 4)
            return emu_msg(msg, len, "grouped shape beyond the small-expert-count kernel");
        if (p->renormalize && p->renorm_eps != 1e-20f)
            return emu_msg(msg, len, "the grouped kernel's denominator is sum + 1e-20");
    } else if (!has_bias && p->routed_scaling_factor != 1.0f && p->rsf_site == MF_ABI_RSF_WEIGHTS) {
        return emu_msg(msg, len, "rsf in the weights without a bias or groups: vLLM's torch "
                                 "grouped_topk path (not emulated)");
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

static int emu_workspace_size(void *ctx, const mf_kernel_params *p, size_t *bytes, char *msg,
                              size_t len) {
    (void)ctx, (void)p, (void)msg, (void)len;
    *bytes = 0;
    return 0;
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

/* ---- experts ---- */

/* Triton's loop: for each BLOCK_K block, a fresh fp32 partial from 0, added to the accumulator */
static float block_dot(const float *a, const uint16_t *b, int n, int block_k) {
    float acc = 0;
    for (int k0 = 0; k0 < n; k0 += block_k) {
        float part = 0;
        for (int k = k0; k < n && k < k0 + block_k; k++) part += a[k] * emu_bf16_to_f32(b[k]);
        acc += part;
    }
    return acc;
}

static int emu_run(void *ctx, const mf_kernel_params *p, char *msg, size_t len) {
    const emu *m = ctx;
    int T = p->T, H = p->H, I = p->I, k = p->top_k;
    int block_k = T <= 64 ? 128 : 64;
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
        rc = grouped(p) ? route_grouped(m, p, t, ids, w) : route_topk(m, p, t, ids, w, msg, len);
        if (rc) break;
        if (is_mut(m, "bf16-weights"))
            for (int i = 0; i < k; i++) w[i] = emu_bf16(w[i]);
        if (p->topk_ids)
            for (int i = 0; i < k; i++) p->topk_ids[(size_t)t * k + i] = ids[i];
        if (p->topk_weights)
            for (int i = 0; i < k; i++) p->topk_weights[(size_t)t * k + i] = w[i];
        for (int h = 0; h < H; h++) xf[h] = emu_bf16_to_f32(x[(size_t)t * H + h]);
        for (int h = 0; h < H; h++) acc[h] = 0;
        for (int i = 0; i < k; i++) {
            int le = ids[i] - p->expert_offset;
            if (le < 0 || le >= p->E_local) continue; /* moe_sum skips experts off this rank */
            const uint16_t *W13 = w13 + (size_t)le * 2 * I * H, *W2 = w2 + (size_t)le * H * I;
            for (int j = 0; j < I; j++) {
                float g = emu_bf16(block_dot(xf, W13 + (size_t)emu_gate_row(p, j) * H, H, block_k));
                float u = emu_bf16(block_dot(xf, W13 + (size_t)emu_up_row(p, j) * H, H, block_k));
                float sg = g / (1.0f + expf(-g));
                if (!is_mut(m, "silu-unrounded")) sg = emu_bf16(sg);
                hf[j] = emu_bf16(sg * u);
            }
            for (int h = 0; h < H; h++) {
                float y = block_dot(hf, W2 + (size_t)h * I, I, block_k) * w[i];
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

__attribute__((visibility("default"))) int mf_kernel_get_api(uint32_t abi_version,
                                                             mf_kernel_api *api,
                                                             size_t api_size) {
    if (abi_version != MF_KERNEL_ABI_VERSION || api_size < sizeof *api) return 1;
    memset(api, 0, api_size);
    api->abi_version = MF_KERNEL_ABI_VERSION;
    api->struct_size = sizeof *api;
    api->name = "emu-vllm-0.33-triton-sm90";
    api->description = "C emulation of vLLM 0.33.0's bf16 fused MoE (Triton, Hopper)";
    api->memory = MF_ABI_MEM_HOST;
    api->contract.struct_size = sizeof api->contract;
#ifdef EMU_OLD_CONTRACT
    /* the definition vllm-triton had before it named vLLM 0.33.0 (issue 19's false alarms) */
    api->contract.acc_kind = MF_ABI_ACC_ANY_ORDER;
    api->contract.exp_kind = MF_ABI_EXP_FAST;
    api->contract.div_kind = MF_ABI_DIV_FAST;
    api->contract.round_points = MF_ABI_RP_GEMM1_OUT | MF_ABI_RP_ACT_OUT | MF_ABI_RP_WEIGHTED;
    api->contract.deterministic = 0;
#else
    api->contract.name = "vllm-0.33-triton-sm90";
    api->contract.deterministic = 1;
#endif
    api->contract.reports_routing = 1;
    api->create = emu_create;
    api->supports = emu_supports;
    api->workspace_size = emu_workspace_size;
    api->run = emu_run;
    api->release = emu_release;
    api->get_ext = emu_get_ext;
    return 0;
}
