/* moe_cpu_quant.h: the CPU kernel's quantized-weight experts, FP8 block scale and MXFP4.
 *
 * Included by moe_cpu.c after its context type, in both of its builds (production and mutants),
 * so everything here is static and MF_MUT reads that build's context. Contract "cpu-scalar" on
 * these paths (docs/error-model.md, "FP8 block scale"):
 *   fp8_block: per token and block_k columns, amax = max(1e-10f, max |x|) in fp32, s = amax /
 *     448 (IEEE fp32), with ue8m0 rounded up to a power of two (frexp, exact), q = e4m3(x / s):
 *     the fp32 quotient clamped to [-448, 448] and rounded to nearest even; each output: per K
 *     block an fp32 chain in K order of the exact e4m3 products, t = (P * s_a) * s_w in fp32,
 *     acc += t in block order; silu and the bf16 activation as the bf16 path; the bf16
 *     activation re-quantized per block_k columns of I the same way before GEMM2.
 *   mxfp4: each selected expert's weights decoded from the packed form (kernel_abi.h
 *     mf_kernel_mxfp4: e2m1 codes times a UE8M0 scale per 32, exact in fp32 and bf16) into
 *     the workspace, then the bf16 path; without the packed form, the dequantized bf16 values
 *     the caller also passes.
 */
#ifndef MF_MOE_CPU_QUANT_H
#define MF_MOE_CPU_QUANT_H

#define CPU_FP8_EPS 1e-10f
#define CPU_E4M3_MAX 448.0f

/* e4m3 code -> value (exact in fp32); NaN for 0x7f / 0xff */
static float e4m3_to_f32(uint8_t b) {
    int e = (b >> 3) & 15, m = b & 7;
    float v;
    if (e == 15 && m == 7) return NAN;
    v = e == 0 ? ldexpf((float)m, -9) : ldexpf((float)(8 + m), e - 10);
    return (b & 0x80) ? -v : v;
}

/* fp32 -> e4m3, saturating at +-448, round to nearest even (integer arithmetic on the bits) */
static uint8_t f32_to_e4m3_sat(float f) {
    if (isnan(f)) return 0x7f;
    uint8_t sign = signbit(f) ? 0x80 : 0;
    float a = fabsf(f);
    if (a >= CPU_E4M3_MAX) return (uint8_t)(sign | 0x7e);
    /* quantum: 2^(e - 3) for a in [2^e, 2^(e+1)), e >= -6; 2^-9 below 2^-6 */
    int e;
    frexpf(a, &e);
    e -= 1;
    if (e < -6) e = -6;
    float scaled = ldexpf(a, 3 - e); /* exact, < 16 */
    float r = rintf(scaled);         /* round to nearest even in the default rounding mode */
    float v = ldexpf(r, e - 3);
    if (v == 0) return sign;
    frexpf(v, &e);
    e -= 1;
    if (e < -6) return (uint8_t)(sign | (uint8_t)ldexpf(v, 9)); /* subnormal code = v / 2^-9 */
    int m = (int)ldexpf(v, 3 - e) - 8;
    return (uint8_t)(sign | (uint8_t)((e + 7) << 3) | (uint8_t)m);
}

static float pow2_ceil_f32(float s) {
    int e;
    float f = frexpf(s, &e); /* s = f 2^e, f in [0.5, 1) */
    return f == 0.5f ? s : ldexpf(1.0f, e);
}

/* One group of n values: codes q and the returned scale. */
static float quant_group(const cpu_ctx *ctx, int ue8m0, const float *y, int n, uint8_t *q) {
    float amax = CPU_FP8_EPS;
    for (int j = 0; j < n; j++) amax = fmaxf(amax, fabsf(y[j]));
    float s = amax / CPU_E4M3_MAX;
    if (ue8m0 && !MF_MUT(FP8_UE8M0_NOT_ROUNDED)) s = pow2_ceil_f32(s);
    for (int j = 0; j < n; j++) q[j] = f32_to_e4m3_sat(y[j] / s);
    return s;
}

static void quant_row(const cpu_ctx *ctx, int ue8m0, int bk, const float *y, int n, uint8_t *q,
                      float *s) {
    for (int b = 0, j0 = 0; j0 < n; b++, j0 += bk)
        s[b] = quant_group(ctx, ue8m0, y + j0, n - j0 < bk ? n - j0 : bk, q + j0);
}

/* sum over K blocks of ((chain of qa qw) * sa[b]) * sw_at(b), sw_at(b) = sw[b * sw_stride] */
static float dot_fp8(const uint8_t *qa, const float *sa, const uint8_t *qw, const float *sw,
                     int sw_stride, int n, int bk) {
    float acc = 0.0f;
    for (int b = 0, j0 = 0; j0 < n; b++, j0 += bk) {
        int j1 = n - j0 < bk ? n : j0 + bk;
#ifdef MF_CPU_FP8_PARTIAL
        float part = MF_CPU_FP8_PARTIAL(qa + j0, qw + j0, j1 - j0);
#else
        float part = 0.0f;
        for (int j = j0; j < j1; j++) part = part + e4m3_to_f32(qa[j]) * e4m3_to_f32(qw[j]);
#endif
        float t = part * sa[b];
        t = t * sw[(size_t)b * sw_stride];
        acc = acc + t;
    }
    return acc;
}

/* The quantized experts' shapes and tensors (from the level-2 params). */
typedef struct cpu_quant {
    int format, ue8m0, bn, bk;
    const uint8_t *w13_q, *w2_q; /* e4m3 codes */
    const float *w13_s, *w2_s;   /* block scales */
} cpu_quant;

/* The quantized-weight parameters of a call (level 3); 0 with a reason if they are bad. */
static int quant_of(const mf_kernel_params *p, cpu_quant *q, char *msg, size_t msg_len) {
    const mf_kernel_params_v2 *v2 = mf_kernel_params_v2_of(p);
    memset(q, 0, sizeof *q);
    q->format = v2 ? v2->weight_format : MF_ABI_WFMT_BF16;
    if (q->format == MF_ABI_WFMT_BF16 || q->format == MF_ABI_WFMT_MXFP4) return 1;
    if (q->format != MF_ABI_WFMT_FP8_BLOCK) {
        snprintf(msg, msg_len, "weight_format %d unknown", q->format);
        return 0;
    }
    q->ue8m0 = v2->scale_format == MF_ABI_SCALE_UE8M0;
    q->bn = v2->block_n;
    q->bk = v2->block_k;
    if (q->bn < 1 || q->bk < 1 || (v2->scale_format != MF_ABI_SCALE_F32 && !q->ue8m0)) {
        snprintf(msg, msg_len, "fp8_block: blocks %d x %d, scale_format %d", q->bn, q->bk,
                 v2->scale_format);
        return 0;
    }
    q->w13_q = p->w13;
    q->w2_q = p->w2;
    q->w13_s = v2->w13_s;
    q->w2_s = v2->w2_s;
    return 1;
}

/* Workspace of the fp8 expert: xf[H], hf[I] floats, xq[H], hq[I] codes, xs, hs scales. */
static size_t fp8_workspace(const mf_kernel_params *p, int bk) {
    size_t nb = (size_t)(p->H + bk - 1) / bk + (size_t)(p->I + bk - 1) / bk;
    return sizeof(float) * ((size_t)p->H + p->I + nb) + (size_t)p->H + p->I + 64;
}

/* The fp8 expert le for token x (bf16 [H]) writes y[H]; ws from fp8_workspace. */
static void expert_fp8(const cpu_ctx *ctx, const mf_kernel_params *p, const cpu_quant *qw,
                       const uint16_t *x, int le, void *ws, float *y) {
    int H = p->H, I = p->I, bn = qw->bn, bk = qw->bk;
    int nbh = (H + bk - 1) / bk, nbi = (I + bk - 1) / bk;
    float *xf = ws, *hf = xf + H, *xs = hf + I, *hs = xs + nbh;
    uint8_t *xq = (uint8_t *)(hs + nbi), *hq = xq + H;
    for (int c = 0; c < H; c++) xf[c] = bf16_to_f32(x[c]);
    quant_row(ctx, qw->ue8m0, bk, xf, H, xq, xs);
    const uint8_t *w13 = qw->w13_q + (size_t)le * 2 * I * H;
    int nrb13 = (2 * I + bn - 1) / bn;
    const float *s13 = qw->w13_s + (size_t)le * nrb13 * nbh;
    int gate_first = p->layout == MF_ABI_LAYOUT_GATE_UP;
    if (MF_MUT(GATE_UP_SWAPPED)) gate_first = !gate_first;
    for (int j = 0; j < I; j++) {
        int rg = gate_first ? j : I + j, ru = gate_first ? I + j : j;
        int sg = rg / bn, su = ru / bn;
        if (MF_MUT(FP8_GATE_UP_SCALES_SWAPPED)) sg = ru / bn, su = rg / bn;
        const float *sgp = s13 + (size_t)sg * nbh, *sup = s13 + (size_t)su * nbh;
        int stride = 1;
        if (MF_MUT(FP8_WEIGHT_SCALES_TRANSPOSED)) {
            /* [K block][row block] read as [row block][K block] */
            sgp = s13 + sg, sup = s13 + su, stride = nrb13;
        }
        float g = dot_fp8(xq, xs, w13 + (size_t)rg * H, sgp, stride, H, bk);
        float u = dot_fp8(xq, xs, w13 + (size_t)ru * H, sup, stride, H, bk);
        hf[j] = bf16_to_f32(f32_to_bf16(silu(g) * u));
    }
    quant_row(ctx, qw->ue8m0, bk, hf, I, hq, hs);
    const uint8_t *w2 = qw->w2_q + (size_t)le * H * I;
    int nrb2 = (H + bn - 1) / bn;
    const float *s2 = qw->w2_s + (size_t)le * nrb2 * nbi;
    static const float one = 1.0f;
    for (int c = 0; c < H; c++) {
        const float *sp = s2 + (size_t)(c / bn) * nbi;
        int stride = 1;
        if (MF_MUT(FP8_WEIGHT_SCALES_TRANSPOSED)) sp = s2 + c / bn, stride = nrb2;
        if (MF_MUT(FP8_W2_SCALE_DROPPED)) sp = &one, stride = 0;
        y[c] = dot_fp8(hq, hs, w2 + (size_t)c * I, sp, stride, I, bk);
    }
}

/* Workspace of the MXFP4 decode: one expert's W13 and W2 as bf16 */
static size_t mx_workspace(const mf_kernel_params *p) {
    return (size_t)3 * (size_t)p->I * (size_t)p->H * sizeof(uint16_t) + 64;
}

/* A row of K values from its packed form: element i is nibble i % 2 of byte i / 2 (the bug reads
 * the other one) times 2^(scale - 127), the scale 0xff NaN; exact unless beyond fp32's range */
static void mx_row(const cpu_ctx *ctx, const uint8_t *q, const uint8_t *sc, int K, uint16_t *out) {
    static const float e2m1[8] = {0.0f, 0.5f, 1.0f, 1.5f, 2.0f, 3.0f, 4.0f, 6.0f};
    (void)ctx;
    for (int i = 0; i < K; i++) {
        int hi = (i & 1) != MF_MUT(MXFP4_NIBBLES_SWAPPED);
        uint8_t c = hi ? (uint8_t)(q[i / 2] >> 4) : (uint8_t)(q[i / 2] & 15);
        float v = (c & 8) ? -e2m1[c & 7] : e2m1[c & 7];
        uint8_t s = sc[i / 32];
        out[i] = f32_to_bf16(s == 0xff ? NAN : ldexpf(v, (int)s - 127));
    }
}

/* Local expert le's W13 [2I][H] and W2 [H][I] decoded into w13e and w2e */
static void mx_expert(const cpu_ctx *ctx, const mf_kernel_params *p, const mf_kernel_mxfp4 *mx,
                      int le, uint16_t *w13e, uint16_t *w2e) {
    int H = p->H, I = p->I, qh = (H + 1) / 2, sh = (H + 31) / 32, qi = (I + 1) / 2,
        si = (I + 31) / 32;
    for (size_t r = 0; r < 2 * (size_t)I; r++) {
        size_t row = (size_t)le * 2 * I + r;
        mx_row(ctx, mx->w13_q + row * qh, mx->w13_sc + row * sh, H, w13e + r * H);
    }
    for (size_t r = 0; r < (size_t)H; r++) {
        size_t row = (size_t)le * H + r;
        mx_row(ctx, mx->w2_q + row * qi, mx->w2_sc + row * si, I, w2e + r * I);
    }
}

#endif /* MF_MOE_CPU_QUANT_H */
