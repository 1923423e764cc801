/* moe_example.c: an example kernel plugin for moefuzz, written from scratch against the
 * installed ABI header (moefuzz/kernel_abi.h) only.
 *
 *   cmake -S examples/plugin -B build-plugin -DCMAKE_PREFIX_PATH=/where/moefuzz/is/installed
 *   cmake --build build-plugin
 *   moefuzz check --backend plugin:build-plugin/libmoe_example.so corpus/seeds
 *
 * What it computes: the whole MoE forward of the ABI in fp32, organised the way fused GPU
 * kernels are: route every token first, then run each local expert once over the tokens routed
 * to it (gather, GEMM1, SiLU-GLU, GEMM2, scatter-add of w * y into an fp32 accumulator), and
 * round the accumulator to bf16 at the end. Dot products keep four partial sums (lanes), so the
 * summation order is not the sequential one, and the combine adds the experts in expert order,
 * not slot order: the declared contract is therefore "any-order" (fp32 arithmetic in an order
 * the reference does not model, activation rounded to bf16 before GEMM2).
 *
 * Level 2 (kernel_abi.h): the renormalisation denominator, the non-finite policy, the
 * expert biases b13, b2 (added in fp32 after each dot product) and the clamped activations.
 * Level 5: the score none (the logit is the weight) and the weight on the input, applied as
 * vLLM's prepare step does: x * w in bf16, the weight rounded to bf16 first.
 * Level 6: pre-routed input: the given ids and weights replace step 1 (an id that is no local
 * expert, -1 included, matches none in the gather; a repeated id is gathered once per slot).
 * Level 7: expert maps: local expert le gathers the slots of the global id whose expert_map
 * entry is le (found by a scan of the map; remote ids match no local expert).
 * Level 8: a tensor-parallel rank: the weights are its slice of I (nothing changes but b2,
 * which only rank 0 adds).
 *
 * What it refuses (supports() returns 0 with the reason, which moefuzz counts as unsupported):
 *   - H or I not a multiple of 4: the four-lane dot product has no tail loop;
 *   - top_k above 32 (its per-token arrays);
 *   - device memory (it is a host kernel);
 *   - quantized weights (FP8 block scale, MXFP4: level 3).
 *
 * Test builds (examples/plugin/CMakeLists.txt) compile this file with EXAMPLE_MISBEHAVE to
 * get plugins that crash or hang on some cases (misbehave.c), with EXAMPLE_ROUTING_METHOD to
 * declare a routing method, and against the first ABI header (tests/abi_v1/) to prove that a
 * kernel built against it still loads and runs.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "moefuzz/kernel_abi.h"

#define EX_MAX_TOP_K 32

#ifdef EXAMPLE_MISBEHAVE
void example_misbehave(const mf_kernel_params *p); /* misbehave.c: crash or hang on purpose */
#else
static void example_misbehave(const mf_kernel_params *p) { (void)p; }
#endif
#ifndef EXAMPLE_ROUTING_METHOD
#define EXAMPLE_ROUTING_METHOD NULL
#endif
#ifdef EXAMPLE_NONDET_COMBINE
/* test variant (tests/emulations/): the scatter-add starts at an expert that changes from run to
 * run, as with atomics, so the combine order is not deterministic; MOEFUZZ_EMU_MUTATION=
 * rsf-dropped drops the routed scaling factor (a real bug) */
static unsigned ex_runs;
#define EX_FIRST_EXPERT(p) (int)((++ex_runs * 2654435761u >> 8) % (unsigned)(p)->E_local)
#define EX_DETERMINISTIC 0
static int ex_rsf_dropped(void) {
    const char *m = getenv("MOEFUZZ_EMU_MUTATION");
    return m && !strcmp(m, "rsf-dropped");
}
#else
#define EX_FIRST_EXPERT(p) 0
#define EX_DETERMINISTIC 1
static int ex_rsf_dropped(void) { return 0; }
#endif

/* ---- bf16 as bit patterns ---- */

static float from_bf16(uint16_t h) {
    uint32_t bits = (uint32_t)h << 16;
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

/* round to nearest, ties to even; NaN stays NaN (quiet) */
static uint16_t to_bf16(float f) {
    uint32_t bits;
    memcpy(&bits, &f, 4);
    if (isnan(f)) return (uint16_t)((bits >> 16) | 0x0040u);
    uint32_t lsb = (bits >> 16) & 1u;
    return (uint16_t)((bits + 0x7fffu + lsb) >> 16);
}

/* ---- the workspace: everything run() needs besides the caller's tensors ---- */

typedef struct layout {
    size_t ids, weights, acc, order, xg, act, bytes;
} layout;

static size_t up64(size_t x) { return (x + 63) & ~(size_t)63; }

static layout plan(const mf_kernel_params *p) {
    layout l;
    size_t T = (size_t)p->T, k = (size_t)p->top_k;
    size_t o = 0;
    l.ids = o, o = up64(o + T * k * sizeof(int32_t));         /* routing of every token */
    l.weights = o, o = up64(o + T * k * sizeof(float));
    l.acc = o, o = up64(o + T * (size_t)p->H * sizeof(float)); /* fp32 output accumulator */
    l.order = o, o = up64(o + T * k * 2 * sizeof(int32_t));   /* (token, slot) per expert */
    l.xg = o, o = up64(o + 2 * (size_t)p->I * sizeof(float));  /* gate | up of one token */
    l.act = o, o = up64(o + (size_t)p->I * sizeof(float));     /* bf16-rounded activation */
    l.bytes = o + (size_t)p->E * 3 * sizeof(double) + 64;      /* routing scratch */
    return l;
}

/* ---- routing ---- */

static double logit(const mf_kernel_params *p, int t, int e) {
    size_t i = (size_t)t * p->E + e;
    return p->logits_dtype == MF_ABI_DTYPE_BF16 ? from_bf16(((const uint16_t *)p->logits)[i])
                                                : ((const float *)p->logits)[i];
}

static double bias(const mf_kernel_params *p, int e) {
    if (!p->bias || p->bias_dtype == MF_ABI_BIAS_NONE) return 0.0;
    return p->bias_dtype == MF_ABI_BIAS_BF16 ? from_bf16(((const uint16_t *)p->bias)[e])
                                             : ((const float *)p->bias)[e];
}

/* a before b in the ranking: larger key first, lower index on ties, NaN last */
static int ranks_before(double ka, int a, double kb, int b) {
    if (isnan(ka)) ka = -INFINITY;
    if (isnan(kb)) kb = -INFINITY;
    return ka > kb || (ka == kb && a < b);
}

/* Scores in double (more accurate than any fp32 kernel, which "any-order" allows); ids and
 * weights of token t. scratch: 3E doubles. */
static void route(const mf_kernel_params *p, int t, double *scratch, int32_t *ids, float *w) {
    int E = p->E, k = p->top_k;
    double *score = scratch, *key = scratch + E, *gkey = scratch + 2 * E;
    if (p->score_fn == MF_ABI_SCORE_SOFTMAX) {
        double mx = -INFINITY, sum = 0;
        for (int e = 0; e < E; e++)
            if (logit(p, t, e) > mx) mx = logit(p, t, e);
        for (int e = 0; e < E; e++) sum += score[e] = exp(logit(p, t, e) - mx);
        for (int e = 0; e < E; e++) score[e] /= sum;
#ifdef MF_ABI_LEVEL_2
    } else if (p->score_fn == MF_ABI_SCORE_SQRT_SOFTPLUS) { /* torch's softplus, then sqrt */
        for (int e = 0; e < E; e++) {
            double l = logit(p, t, e);
            score[e] = sqrt(l > 20 ? l : log1p(exp(l)));
        }
#endif
#ifdef MF_ABI_LEVEL_5
    } else if (p->score_fn == MF_ABI_SCORE_NONE) { /* the logit itself */
        for (int e = 0; e < E; e++) score[e] = logit(p, t, e);
#endif
    } else {
        for (int e = 0; e < E; e++) score[e] = 1.0 / (1.0 + exp(-logit(p, t, e)));
    }
#ifdef MF_ABI_LEVEL_2
    /* level 2: the renormalisation denominator and the non-finite policy */
    const mf_kernel_params_v2 *v2 = mf_kernel_params_v2_of(p);
    int denom = v2 ? v2->renorm_denom : MF_ABI_RENORM_SUM_EPS;
    if (v2 && v2->nonfinite == MF_ABI_NONFINITE_ZERO)
        for (int e = 0; e < E; e++)
            if (!isfinite(score[e])) score[e] = 0; /* a softmax row with a NaN is NaN throughout */
#else
    int denom = 0; /* sum + eps */
#endif
    for (int e = 0; e < E; e++) key[e] = score[e] + bias(p, e); /* bias selects, never weighs */
    if (p->n_group > 1) {
        /* score the groups, keep the best topk_group, drop the rest to -inf */
        int G = E / p->n_group;
        for (int g = 0; g < p->n_group; g++) {
            double b1 = -INFINITY, b2 = -INFINITY;
            for (int e = g * G; e < (g + 1) * G; e++) {
                double v = isnan(key[e]) ? -INFINITY : key[e];
                if (v > b1) b2 = b1, b1 = v;
                else if (v > b2) b2 = v;
            }
            gkey[g] = p->group_rule == MF_ABI_GROUP_MAX || G == 1 ? b1 : b1 + b2;
        }
        for (int g = 0; g < p->n_group; g++) {
            int better = 0; /* groups ranked before g */
            for (int h = 0; h < p->n_group; h++)
                better += h != g && ranks_before(gkey[h], h, gkey[g], g);
            if (better >= p->topk_group)
                for (int e = g * G; e < (g + 1) * G; e++) key[e] = -INFINITY;
        }
    }
    /* top-k by insertion into a sorted list of k */
    int n = 0;
    for (int e = 0; e < E; e++) {
        int pos = n;
        while (pos > 0 && ranks_before(key[e], e, key[ids[pos - 1]], ids[pos - 1])) pos--;
        if (pos >= k) continue;
        if (n < k) n++;
        for (int j = n - 1; j > pos; j--) ids[j] = ids[j - 1];
        ids[pos] = e;
    }
    double sum = 0, eps = (double)p->renorm_eps;
    for (int j = 0; j < k; j++) sum += score[ids[j]];
    double den = denom == 1   ? (sum > 0 ? sum : 1)
                 : denom == 2 ? (sum < eps ? eps : sum)
                              : sum + eps; /* MF_ABI_RENORM_* */

    for (int j = 0; j < k; j++) {
        double wj = score[ids[j]];
        if (p->renormalize) wj /= den;
        if (p->rsf_site == MF_ABI_RSF_WEIGHTS && !ex_rsf_dropped()) wj *= p->routed_scaling_factor;
        w[j] = (float)wj;
    }
}

/* ---- experts ---- */

/* Level 2's clamped activations (kernel_abi.h), in fp32 */
static float clamped_act(const mf_kernel_params *p, float limit, float alpha, float g, float u) {
#ifdef MF_ABI_LEVEL_2
    u = fmaxf(fminf(u, limit), -limit);
    if (p->activation == MF_ABI_ACT_SILU_CLAMP_AFTER)
        return fminf(g / (1.0f + expf(-g)), limit) * u;
    g = fminf(g, limit);
    if (p->activation == MF_ABI_ACT_SILU_CLAMP) return g / (1.0f + expf(-g)) * u;
    return (u + 1.0f) * g / (1.0f + expf(-g * alpha)); /* swiglu_oai */
#else
    (void)p, (void)limit, (void)alpha, (void)g, (void)u;
    return NAN; /* supports() refuses every activation but SiLU-GLU below level 2 */
#endif
}

/* fp32 dot product of a bf16 row with an fp32 vector in four lanes */
static float dot4(const uint16_t *row, const float *v, int n) {
    float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    for (int i = 0; i < n; i += 4) {
        s0 += from_bf16(row[i]) * v[i];
        s1 += from_bf16(row[i + 1]) * v[i + 1];
        s2 += from_bf16(row[i + 2]) * v[i + 2];
        s3 += from_bf16(row[i + 3]) * v[i + 3];
    }
    return (s0 + s1) + (s2 + s3);
}

/* ---- the function table ---- */

typedef struct example_ctx {
    float *xf; /* one token of x in fp32, grown as needed */
    size_t xf_len;
} example_ctx;

static int ex_create(void **ctx, char *msg, size_t msg_len) {
    example_ctx *c = calloc(1, sizeof *c);
    if (!c) {
        snprintf(msg, msg_len, "example kernel: out of memory");
        return 1;
    }
    *ctx = c;
    return 0;
}

static void ex_release(void *ctx) {
    example_ctx *c = ctx;
    if (c) free(c->xf);
    free(c);
}

static int ex_supports(void *ctx, const mf_kernel_params *p, char *msg, size_t msg_len) {
    (void)ctx;
    if (p->H % 4 || p->I % 4) {
        snprintf(msg, msg_len, "H=%d, I=%d: the four-lane dot product needs multiples of 4",
                 p->H, p->I);
        return 0;
    }
    if (p->top_k < 1 || p->top_k > EX_MAX_TOP_K || p->top_k > p->E) {
        snprintf(msg, msg_len, "top_k=%d outside [1, %d]", p->top_k, EX_MAX_TOP_K);
        return 0;
    }
    if (p->memory != MF_ABI_MEM_HOST) {
        snprintf(msg, msg_len, "host memory only");
        return 0;
    }
#ifdef MF_ABI_LEVEL_2
    if (p->activation > MF_ABI_ACT_SILU_CLAMP_AFTER) {
#else
    if (p->activation != MF_ABI_ACT_SILU_GLU) {
#endif
        snprintf(msg, msg_len, "activation %d: SiLU-GLU and level 2's clamped ones only",
                 p->activation);
        return 0;
    }
#ifdef MF_ABI_LEVEL_2
    const mf_kernel_params_v2 *v2 = mf_kernel_params_v2_of(p);
    if (v2 && (v2->ext.struct_size < sizeof *v2 || v2->renorm_denom < 0 ||
               v2->renorm_denom > MF_ABI_RENORM_MAX_EPS || v2->nonfinite < 0 ||
               v2->nonfinite > MF_ABI_NONFINITE_ZERO || v2->expert_bias < 0 ||
               v2->expert_bias > MF_ABI_EXPERT_BIAS_B2)) {
        snprintf(msg, msg_len, "level-2 params of %u bytes: renorm_denom %d, nonfinite %d, "
                 "expert_bias %d", v2->ext.struct_size, v2->renorm_denom, v2->nonfinite,
                 v2->expert_bias);
        return 0;
    }
#endif
#ifdef MF_ABI_LEVEL_3
    if (v2 && v2->weight_format != MF_ABI_WFMT_BF16) {
        snprintf(msg, msg_len, "weight_format %s: quantized weights not implemented (bf16 only)",
                 v2->weight_format == MF_ABI_WFMT_FP8_BLOCK ? "fp8_block" : "mxfp4");
        return 0;
    }
#endif
#ifdef MF_ABI_LEVEL_4
    if (v2 && v2->n_shared != 0) {
        snprintf(msg, msg_len, "n_shared %d: shared experts not implemented", v2->n_shared);
        return 0;
    }
#endif
#ifdef MF_ABI_LEVEL_5
    if (v2 && v2->weight_on_input && v2->expert_bias != MF_ABI_EXPERT_BIAS_NONE) {
        snprintf(msg, msg_len, "weight_on_input with expert biases: not implemented");
        return 0;
    }
#endif
#ifdef EXAMPLE_REQUIRE_TOP1
    if (p->top_k != 1) { /* the method it declares routes top-1 */
        snprintf(msg, msg_len, "top_k=%d: this kernel routes top-1 only", p->top_k);
        return 0;
    }
#endif
    return 1;
}

static int ex_workspace_size(void *ctx, const mf_kernel_params *p, size_t *bytes, char *msg,
                             size_t msg_len) {
    (void)ctx, (void)msg, (void)msg_len;
    *bytes = plan(p).bytes;
    return 0;
}

static int ex_run(void *vctx, const mf_kernel_params *p, char *msg, size_t msg_len) {
    example_ctx *c = vctx;
    if (ex_supports(vctx, p, msg, msg_len) != 1) return 1;
#ifdef EXAMPLE_REFUSE
    /* test variant (tests/plugin_refuse.sh): refuses while running, as MF_KERNEL_RUN_UNSUPPORTED
     * lets a kernel do: cases with rsf != 1, or (EXAMPLE_REFUSE_MODE=second) every second call */
    static unsigned calls;
    const char *mode = getenv("EXAMPLE_REFUSE_MODE");
    int second = mode && !strcmp(mode, "second");
    if (second ? ++calls % 2 == 0 : p->routed_scaling_factor != 1.0f) {
        snprintf(msg, msg_len, "%s (refused while running)", second ? "every second call" : "rsf != 1");
        return MF_KERNEL_RUN_UNSUPPORTED;
    }
#endif
    example_misbehave(p);
    layout l = plan(p);
    if (!p->workspace || p->workspace_bytes < l.bytes) {
        snprintf(msg, msg_len, "workspace of %zu bytes needed", l.bytes);
        return 1;
    }
    if (c->xf_len < (size_t)p->H) {
        float *nx = realloc(c->xf, sizeof(float) * (size_t)p->H);
        if (!nx) {
            snprintf(msg, msg_len, "out of memory");
            return 1;
        }
        c->xf = nx, c->xf_len = (size_t)p->H;
    }
    uint8_t *ws = p->workspace;
    int32_t *ids = (int32_t *)(ws + l.ids), *order = (int32_t *)(ws + l.order);
    float *w = (float *)(ws + l.weights), *acc = (float *)(ws + l.acc);
    float *gu = (float *)(ws + l.xg), *act = (float *)(ws + l.act);
    double *scratch = (double *)(ws + l.bytes - (size_t)p->E * 3 * sizeof(double) - 64);
    int T = p->T, H = p->H, I = p->I, k = p->top_k;
    const uint16_t *x = p->x, *w13 = p->w13, *w2 = p->w2;
    const uint16_t *b13 = NULL, *b2 = NULL; /* level 2: expert biases */
    float limit = 0, alpha = 0;              /* level 2: clamped activations */
    int on_input = 0;                        /* level 5: the weight on the input */
#ifdef MF_ABI_LEVEL_2
    const mf_kernel_params_v2 *v2 = mf_kernel_params_v2_of(p);
    if (v2) b13 = v2->b13, b2 = v2->b2, limit = v2->act_limit, alpha = v2->act_alpha;
#endif
#ifdef MF_ABI_LEVEL_5
    if (v2) on_input = v2->weight_on_input;
#endif
#ifdef MF_ABI_LEVEL_8
    if (v2 && v2->tp_rank != 0) b2 = NULL; /* a tensor-parallel rank: b2 is rank 0's to add */
#endif

    /* 1. route every token, or take the given routing (level 6) */
    int given = 0;
#ifdef MF_ABI_LEVEL_6
    if (v2 && v2->preroute != MF_ABI_PREROUTE_NONE) {
        given = 1;
        for (size_t i = 0; i < (size_t)T * k; i++) {
            ids[i] = v2->topk_ids_in[i];
            w[i] = v2->preroute == MF_ABI_PREROUTE_BF16
                       ? from_bf16(((const uint16_t *)v2->topk_weights_in)[i])
                       : ((const float *)v2->topk_weights_in)[i];
        }
    }
#endif
    for (int t = 0; t < T && !given; t++)
        route(p, t, scratch, ids + (size_t)t * k, w + (size_t)t * k);
    memset(acc, 0, sizeof(float) * (size_t)T * H);

    /* 2. each local expert over its tokens */
    /* row of gate i: gate_half + gstep i (up likewise): halves, or level 2's interleaved rows */
    int gate_half = p->layout == MF_ABI_LAYOUT_UP_GATE ? I : 0, up_half = I - gate_half, gstep = 1;
#ifdef MF_ABI_LEVEL_2
    if (p->layout == MF_ABI_LAYOUT_INTERLEAVED) gate_half = 0, up_half = 1, gstep = 2;
#endif
    int first = EX_FIRST_EXPERT(p);
    for (int le_n = 0; le_n < p->E_local; le_n++) {
        int le = (le_n + first) % p->E_local;
        int e = p->expert_offset + le, n = 0;
#ifdef MF_ABI_LEVEL_7
        if (v2 && v2->placement == MF_ABI_PLACEMENT_MAP) /* the global id placed at le */
            for (int g = 0; g < p->E; g++)
                if (v2->expert_map[g] == le) e = g;
#endif
        for (int t = 0; t < T; t++)
            for (int j = 0; j < k; j++)
                if (ids[(size_t)t * k + j] == e) order[2 * n] = t, order[2 * n + 1] = j, n++;
        const uint16_t *W13 = w13 + (size_t)le * 2 * I * H, *W2 = w2 + (size_t)le * H * I;
        for (int r = 0; r < n; r++) {
            int t = order[2 * r], j = order[2 * r + 1];
            float wt = w[(size_t)t * k + j], wb = from_bf16(to_bf16(wt));
            for (int h = 0; h < H; h++) {
                c->xf[h] = from_bf16(x[(size_t)t * H + h]);
                if (on_input) c->xf[h] = from_bf16(to_bf16(c->xf[h] * wb)); /* x * w in bf16 */
            }
            for (int i = 0; i < I; i++) {
                int rg = gate_half + gstep * i, ru = up_half + gstep * i;
                gu[i] = dot4(W13 + (size_t)rg * H, c->xf, H);
                gu[I + i] = dot4(W13 + (size_t)ru * H, c->xf, H);
                if (b13) { /* GEMM1's bias, in W13's row order */
                    gu[i] += from_bf16(b13[(size_t)le * 2 * I + rg]);
                    gu[I + i] += from_bf16(b13[(size_t)le * 2 * I + ru]);
                }
            }
            for (int i = 0; i < I; i++) {
                float g = gu[i], u = gu[I + i];
                float a = p->activation == MF_ABI_ACT_SILU_GLU ? g / (1.0f + expf(-g)) * u
                                                               : clamped_act(p, limit, alpha, g, u);
                act[i] = from_bf16(to_bf16(a)); /* bf16 before GEMM2 */
            }
            for (int h = 0; h < H; h++) {
                float y = dot4(W2 + (size_t)h * I, act, I);
                if (b2) y += from_bf16(b2[(size_t)le * H + h]);
                acc[(size_t)t * H + h] += on_input ? y : wt * y;
            }
        }
    }

    /* 3. outputs */
    float scale =
        p->rsf_site == MF_ABI_RSF_OUTPUT && !ex_rsf_dropped() ? p->routed_scaling_factor : 1.0f;
    uint16_t *out = p->out;
    for (size_t i = 0; i < (size_t)T * H; i++) out[i] = to_bf16(acc[i] * scale);
    if (p->topk_ids) memcpy(p->topk_ids, ids, sizeof(int32_t) * (size_t)T * k);
    if (p->topk_weights) memcpy(p->topk_weights, w, sizeof(float) * (size_t)T * k);
    return 0;
}

#ifdef MF_KERNEL_FEATURE_LEVEL
/* The feature level of the header this was built against: moefuzz sends it the cases that level
 * can express. Static: it stays valid while the library is loaded, as get_ext requires. */
static const mf_kernel_features ex_features = {
    {MF_KERNEL_EXT_FEATURES, sizeof(mf_kernel_features), NULL}, MF_KERNEL_FEATURE_LEVEL, 0};

static const mf_kernel_ext *ex_get_ext(uint32_t kind) {
    return kind == MF_KERNEL_EXT_FEATURES ? &ex_features.ext : NULL;
}
#endif

/* The one exported symbol: fills the table for the caller's ABI version. */
__attribute__((visibility("default"))) int mf_kernel_get_api(uint32_t abi_version,
                                                             mf_kernel_api *api,
                                                             size_t api_size) {
    if (abi_version != MF_KERNEL_ABI_VERSION || api_size < sizeof *api) return 1;
    memset(api, 0, api_size);
    api->abi_version = MF_KERNEL_ABI_VERSION;
    api->struct_size = sizeof *api;
    api->name = "example";
    api->description = "example plugin: fp32 expert-major MoE, four-lane dot products";
    api->memory = MF_ABI_MEM_HOST;
    api->contract.struct_size = sizeof api->contract;
    api->contract.name = "any-order";
    api->contract.deterministic = EX_DETERMINISTIC;
#ifdef EXAMPLE_NONDET_COMBINE
    const char *mut = getenv("MOEFUZZ_EMU_MUTATION");
    if (mut && !strcmp(mut, "claims-deterministic")) { /* any-order's fields, deterministic */
        api->contract.name = NULL;
        api->contract.acc_kind = MF_ABI_ACC_ANY_ORDER;
        api->contract.exp_kind = MF_ABI_EXP_FAST;
        api->contract.div_kind = MF_ABI_DIV_FAST;
        api->contract.round_points = MF_ABI_RP_ACT_OUT;
        api->contract.deterministic = 1;
    }
#endif
    api->contract.reports_routing = 1;
    api->create = ex_create;
    api->supports = ex_supports;
    api->workspace_size = ex_workspace_size;
    api->run = ex_run;
    api->release = ex_release;
    api->contract.routing_method = EXAMPLE_ROUTING_METHOD;
#ifdef MF_KERNEL_FEATURE_LEVEL
    /* not in the first header, against which moefuzz's ABI test builds this file */
    api->get_ext = ex_get_ext;
#endif
    return 0;
}
