/* hopper_model.h: bit-exact host models of one bf16 x bf16 -> fp32 tensor-core step
 * (C + 16 products), parametrised by fused block size, fraction bits and final rounding.
 *
 * Used by the Hopper probe (tests/gpu/probe_hopper.cu), which tests the hypotheses against the
 * hardware, and by the CPU emulator of the kernel (tests/gpu/emu), which computes each emulated
 * mma.sync with the measured model (B=16, F=25, RZ). Header-only, C or C++, host code.
 *
 * The model (docs/hopper-probe.md): the terms are the accumulator C (fp32) and the products
 * a_i b_i (exact); a term's exponent is its exponent field (subnormals clamped to -126; for a
 * product e(a) + e(b)); every term is truncated toward zero to a multiple of 2^(E - F), E the
 * largest exponent over the nonzero terms of the block; the truncated terms are added exactly;
 * the sum is rounded to fp32 (subnormals kept). Blocks of fewer than 16 products (2x8, 4x4)
 * fuse with the running accumulator one after the other.
 */
#ifndef MF_HOPPER_MODEL_H
#define MF_HOPPER_MODEL_H

#include <math.h>
#include <stdint.h>
#include <string.h>

typedef struct hm_hypothesis {
    const char *name;
    int block; /* products per fused block: 16, 8 (2x8) or 4 (4x4) */
    int frac;  /* fraction bits kept below the block's largest exponent field */
    int rn;    /* final rounding to fp32: 0 toward zero, 1 to nearest even */
} hm_hypothesis;

/* value = (neg ? -1 : 1) * sig * 2^lsb; ef = exponent field (subnormals clamped to -126) */
typedef struct hm_term {
    int neg;
    uint64_t sig;
    int lsb, ef;
} hm_term;

static inline int hm_bf16_parts(uint16_t x, int *neg, uint64_t *sig, int *lsb, int *ef) {
    int e = (x >> 7) & 0xff, m = x & 0x7f;
    *neg = x >> 15;
    if (e == 0) {
        if (m == 0) return 0;
        *sig = (uint64_t)m, *ef = -126, *lsb = -133;
    } else {
        *sig = (uint64_t)(m | 0x80), *ef = e - 127, *lsb = e - 127 - 7;
    }
    return 1;
}

static inline int hm_product_term(uint16_t a, uint16_t b, hm_term *t) {
    int na, nb, la, lb, ea, eb;
    uint64_t sa, sb;
    if (!hm_bf16_parts(a, &na, &sa, &la, &ea) || !hm_bf16_parts(b, &nb, &sb, &lb, &eb)) return 0;
    t->neg = na ^ nb, t->sig = sa * sb, t->lsb = la + lb, t->ef = ea + eb;
    return 1;
}

static inline int hm_f32_term(float c, hm_term *t) {
    uint32_t u;
    memcpy(&u, &c, 4);
    int e = (u >> 23) & 0xff;
    uint32_t m = u & 0x7fffff;
    t->neg = u >> 31;
    if (e == 0) {
        if (m == 0) return 0;
        t->sig = m, t->ef = -126, t->lsb = -149;
    } else {
        t->sig = m | 0x800000u, t->ef = e - 127, t->lsb = e - 127 - 23;
    }
    return 1;
}

/* (-1)^neg * m * 2^g rounded to fp32 (subnormals kept), toward zero or to nearest even. */
static inline float hm_round_f32(uint64_t m, int neg, int g, int rn) {
    if (m == 0) return 0.0f;
    int nb = 64 - __builtin_clzll(m), lead = nb - 1 + g;
    int keep = lead >= -126 ? lead - 23 : -149; /* exponent of the last kept bit */
    int sh = keep - g;
    uint64_t q = m;
    int e = g;
    if (sh > 0) {
        q = sh >= 63 ? 0 : m >> sh;
        if (rn && sh < 63) {
            uint64_t rem = m & ((1ull << sh) - 1), half = 1ull << (sh - 1);
            if (rem > half || (rem == half && (q & 1))) q++;
        }
        e = g + sh;
    }
    float v = ldexpf((float)q, e); /* q <= 2^24: exact */
    return neg ? -v : v;
}

/* One fused block of n terms. */
static inline float hm_fused_block(const hm_term *t, int n, int F, int rn) {
    if (n == 0) return 0.0f;
    int E = t[0].ef;
    for (int i = 1; i < n; i++)
        if (t[i].ef > E) E = t[i].ef;
    const int g = E - F;
    int64_t S = 0; /* |S| < 17 * 2^29 for F <= 27 */
    for (int i = 0; i < n; i++) {
        int sh = t[i].lsb - g;
        uint64_t v = sh >= 0 ? t[i].sig << sh : (-sh >= 64 ? 0 : t[i].sig >> -sh);
        S += t[i].neg ? -(int64_t)v : (int64_t)v;
    }
    return hm_round_f32(S < 0 ? (uint64_t)-S : (uint64_t)S, S < 0, g, rn);
}

/* A bf16 operand decomposed once (sig = 0 for zero), for callers that reuse it. */
static inline hm_term hm_bf16_term(uint16_t x) {
    hm_term t = {0, 0, 0, 0};
    if (!hm_bf16_parts(x, &t.neg, &t.sig, &t.lsb, &t.ef)) t.sig = 0;
    return t;
}

/* One k16 step from decomposed operands: c + sum of a[i] b[i], i < 16, under hypothesis h. */
static inline float hm_step_terms(const hm_hypothesis *h, float c, const hm_term *a,
                                  const hm_term *b) {
    float acc = c;
    for (int b0 = 0; b0 < 16; b0 += h->block) {
        hm_term t[17];
        int n = 0;
        if (hm_f32_term(acc, &t[n])) n++;
        for (int i = b0; i < b0 + h->block; i++)
            if (a[i].sig && b[i].sig) {
                t[n].neg = a[i].neg ^ b[i].neg, t[n].sig = a[i].sig * b[i].sig;
                t[n].lsb = a[i].lsb + b[i].lsb, t[n].ef = a[i].ef + b[i].ef;
                n++;
            }
        acc = hm_fused_block(t, n, h->frac, h->rn);
    }
    return acc;
}

/* One k16 step: c + sum of a[i] b[i], i < 16, under hypothesis h. */
static inline float hm_step(const hm_hypothesis *h, float c, const uint16_t *a, const uint16_t *b) {
    hm_term ta[16], tb[16];
    for (int i = 0; i < 16; i++) ta[i] = hm_bf16_term(a[i]), tb[i] = hm_bf16_term(b[i]);
    return hm_step_terms(h, c, ta, tb);
}

/* c + a . b over K (a multiple of 16) as a chain of steps, the accumulator passed on. */
static inline float hm_dot(const hm_hypothesis *h, float c, const uint16_t *a, const uint16_t *b,
                           int K) {
    float acc = c;
    for (int k0 = 0; k0 < K; k0 += 16) acc = hm_step(h, acc, a + k0, b + k0);
    return acc;
}

#endif /* MF_HOPPER_MODEL_H */
