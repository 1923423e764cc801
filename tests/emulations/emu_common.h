/* emu_common.h: what the emulation plugins share: bf16 rounding, fp32 operations of CUDA's fast
 * math, the plugin boilerplate. Every emulation includes only this and moefuzz/kernel_abi.h.
 *
 * A mutation (a change that adds error or changes what is computed) is chosen by the environment
 * variable MOEFUZZ_EMU_MUTATION, read once in create(): the tests build each emulation once and
 * run it correct and mutated.
 */
#ifndef EMU_COMMON_H
#define EMU_COMMON_H

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "moefuzz/kernel_abi.h"

#define EMU_MAX_TOP_K 32

static inline float emu_bf16_to_f32(uint16_t h) {
    uint32_t bits = (uint32_t)h << 16;
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

/* __float2bfloat16: round to nearest, ties to even; NaN stays NaN */
static inline uint16_t emu_f32_to_bf16(float f) {
    uint32_t bits;
    memcpy(&bits, &f, 4);
    if (isnan(f)) return (uint16_t)((bits >> 16) | 0x0040u);
    uint32_t lsb = (bits >> 16) & 1u;
    return (uint16_t)((bits + 0x7fffu + lsb) >> 16);
}

/* an fp32 value rounded to bf16 and back, as a store to a bf16 tensor and its reload do */
static inline float emu_bf16(float f) { return emu_bf16_to_f32(emu_f32_to_bf16(f)); }

/* flush-to-zero of a result (fast math's .ftz) */
static inline float emu_ftz(float f) { return fabsf(f) < 0x1p-126f ? copysignf(0.0f, f) : f; }

/* __expf: ex2.approx(x * log2 e), the product rounded to fp32 (the source of its
 * 2 + 1.173 |x| ulp); ex2.approx itself is taken as exact (its documented 2 ulp are within the
 * contract's bound for fast exp) */
static inline float emu_fast_exp(float x) {
    volatile float y = x * 1.4426950408889634f;
    return exp2f(y);
}

/* __fdividef(a, b): a * rcp.approx(b), 0 for 2^126 < |b| < 2^128 (CUDA Math API) */
static inline float emu_fast_div(float a, float b, int ftz) {
    float ab = fabsf(b);
    if (ab > 0x1p126f && ab < INFINITY) return 0.0f;
    volatile float r = 1.0f / b;
    float q = a * r;
    return ftz ? emu_ftz(q) : q;
}

/* tanh.approx.f32: max relative error 2^-10.987 (PTX ISA); emulated at 0.875 * 2^-11, the
 * direction away from 0 for |y| < 1 (which increases |t|) and clamped to [-1, 1] */
static inline float emu_tanh_approx(float y, double rel) {
    double t = tanh((double)y) * (1 + rel);
    if (t > 1) t = 1;
    if (t < -1) t = -1;
    return (float)t;
}

/* the mutation named in MOEFUZZ_EMU_MUTATION, or "" */
static inline const char *emu_mutation(void) {
    const char *m = getenv("MOEFUZZ_EMU_MUTATION");
    return m ? m : "";
}

/* 1 if the call has quantized expert weights (level 3), which no emulation computes */
static inline int emu_quantized(const mf_kernel_params *p) {
    const mf_kernel_params_v2 *v2 = mf_kernel_params_v2_of(p);
    return v2 && v2->weight_format != MF_ABI_WFMT_BF16;
}

static inline int emu_msg(char *msg, size_t len, const char *text) {
    snprintf(msg, len, "%s", text);
    return 0;
}

/* the top-k of keys[0..n) among the entries with allowed[i] (NULL: all), descending, the lower
 * index first among equal keys (CUDA's packed (key, 65535 - index) maximum); writes k indices */
static inline void emu_topk(const float *keys, const uint8_t *allowed, int n, int k, int *out) {
    for (int s = 0; s < k; s++) {
        int best = -1;
        for (int i = 0; i < n; i++) {
            if (allowed && !allowed[i]) continue;
            int taken = 0;
            for (int j = 0; j < s; j++) taken |= out[j] == i;
            if (taken) continue;
            if (best < 0 || keys[i] > keys[best]) best = i;
        }
        out[s] = best;
    }
}

/* a warp's xor-butterfly sum of v[0..n) (lanes n..31 hold 0), the value lane 0 holds */
static inline float emu_warp_sum(const float *v, int n, int ftz) {
    float lane[32];
    for (int i = 0; i < 32; i++) lane[i] = i < n ? v[i] : 0.0f;
    for (int off = 16; off > 0; off /= 2) {
        float nx[32];
        for (int i = 0; i < 32; i++) nx[i] = lane[i] + lane[i ^ off];
        for (int i = 0; i < 32; i++) lane[i] = ftz ? emu_ftz(nx[i]) : nx[i];
    }
    return lane[0];
}

static inline float emu_logit(const mf_kernel_params *p, int t, int e) {
    if (p->logits_dtype == MF_ABI_DTYPE_BF16)
        return emu_bf16_to_f32(((const uint16_t *)p->logits)[(size_t)t * p->E + e]);
    return ((const float *)p->logits)[(size_t)t * p->E + e];
}

static inline float emu_bias(const mf_kernel_params *p, int e) {
    if (p->bias_dtype == MF_ABI_BIAS_NONE || !p->bias) return 0.0f;
    if (p->bias_dtype == MF_ABI_BIAS_BF16) return emu_bf16_to_f32(((const uint16_t *)p->bias)[e]);
    return ((const float *)p->bias)[e];
}

static inline int emu_gate_row(const mf_kernel_params *p, int j) {
    return p->layout == MF_ABI_LAYOUT_GATE_UP ? j : p->I + j;
}
static inline int emu_up_row(const mf_kernel_params *p, int j) {
    return p->layout == MF_ABI_LAYOUT_GATE_UP ? p->I + j : j;
}

/* Level 1: the emulated kernels' semantics are those of the first header (case format v1); the
 * gate refuses them every case of a later level */
static const mf_kernel_features emu_features = {
    {MF_KERNEL_EXT_FEATURES, sizeof(mf_kernel_features), NULL}, MF_ABI_LEVEL_1, 0};

static inline const mf_kernel_ext *emu_get_ext(uint32_t kind) {
    return kind == MF_KERNEL_EXT_FEATURES ? &emu_features.ext : NULL;
}

/* token t's routing into topk_ids and topk_weights, where the caller passed them */
static inline void emu_report_routing(const mf_kernel_params *p, int t, const int *ids,
                                      const float *w) {
    int k = p->top_k;
    if (p->topk_ids)
        for (int i = 0; i < k; i++) p->topk_ids[(size_t)t * k + i] = ids[i];
    if (p->topk_weights)
        for (int i = 0; i < k; i++) p->topk_weights[(size_t)t * k + i] = w[i];
}

/* ---- the plugin's boilerplate: its context (the mutation it runs) and its function table ---- */

typedef struct emu {
    const char *mut; /* MOEFUZZ_EMU_MUTATION, or "" */
} emu;

static inline int is_mut(const emu *m, const char *name) { return m && strcmp(m->mut, name) == 0; }

static inline int emu_create(void **ctx, char *msg, size_t len) {
    emu *m = calloc(1, sizeof *m);
    if (!m) return emu_msg(msg, len, "out of memory"), 1;
    m->mut = emu_mutation();
    *ctx = m;
    return 0;
}

static inline void emu_release(void *ctx) { free(ctx); }

static inline int emu_workspace_size(void *ctx, const mf_kernel_params *p, size_t *bytes,
                                     char *msg, size_t len) {
    (void)ctx, (void)p, (void)msg, (void)len;
    *bytes = 0;
    return 0;
}

/* mf_kernel_get_api's common part: a host-memory emulation at level 1 that reports its routing;
 * the caller adds its contract, supports and run. 1 for an ABI version it does not speak. */
static inline int emu_api_fill(uint32_t abi_version, mf_kernel_api *api, size_t api_size,
                               const char *name, const char *description) {
    if (abi_version != MF_KERNEL_ABI_VERSION || api_size < sizeof *api) return 1;
    memset(api, 0, api_size);
    api->abi_version = MF_KERNEL_ABI_VERSION;
    api->struct_size = sizeof *api;
    api->name = name;
    api->description = description;
    api->memory = MF_ABI_MEM_HOST;
    api->contract.struct_size = sizeof api->contract;
    api->contract.reports_routing = 1;
    api->create = emu_create;
    api->workspace_size = emu_workspace_size;
    api->release = emu_release;
    api->get_ext = emu_get_ext;
    return 0;
}

#endif /* EMU_COMMON_H */
