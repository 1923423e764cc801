/* bf16.c: correctly rounded conversions to bfloat16 (see bf16.h). */
#include "bf16.h"

#include <math.h>

/* Rounds v >= 0 (v < 2^53) to the nearest integer, ties to even, independent of rounding mode. */
static double round_half_even(double v) {
    double fl = floor(v);
    double frac = v - fl; /* exact: v and fl share the binade grid */
    if (frac > 0.5) return fl + 1.0;
    if (frac < 0.5) return fl;
    return fmod(fl, 2.0) == 0.0 ? fl : fl + 1.0;
}

static uint16_t bf16_from_exact_double(double r, int negative) {
    /* r is a non-negative multiple of its bf16 quantum, below 2^128: exactly representable. */
    uint16_t b;
    if (r >= 0x1p128) {
        b = MF_BF16_POS_INF;
    } else {
        float f = (float)r; /* exact */
        b = (uint16_t)(mf_f32_bits(f) >> 16);
    }
    return negative ? (uint16_t)(b | 0x8000u) : b;
}

uint16_t mf_f64_to_bf16(double d) {
    uint64_t u;
    memcpy(&u, &d, sizeof u);
    uint64_t mag = u & 0x7fffffffffffffffull;
    /* fast path: bf16 normal range [2^-126, 2^127 * (2 - 2^-8)): round the 52-bit fraction to 7
     * bits, ties to even, with integer arithmetic on the bit pattern */
    if (mag >= 0x3810000000000000ull && mag < 0x47efe00000000000ull) {
        uint64_t r = mag + ((1ull << 44) - 1) + ((mag >> 45) & 1u);
        r &= ~((1ull << 45) - 1);
        /* re-bias the exponent from double (1023) to bf16/fp32 (127): exact */
        uint32_t e = (uint32_t)(r >> 52) - 1023 + 127;
        uint32_t f = (uint32_t)((r >> 45) & 0x7fu);
        uint16_t b = (uint16_t)(e << 7 | f);
        return (u >> 63) ? (uint16_t)(b | 0x8000u) : b;
    }
    if (isnan(d)) return MF_BF16_QNAN;
    int neg = signbit(d) != 0;
    double a = fabs(d);
    if (isinf(a)) return neg ? MF_BF16_NEG_INF : MF_BF16_POS_INF;
    if (a == 0.0) return neg ? 0x8000u : 0x0000u;
    int e;
    frexp(a, &e); /* a = f * 2^e, f in [0.5, 1): floor(log2 a) = e - 1 */
    int q = (e - 1) - 7;
    if (q < -133) q = -133;
    double v = ldexp(a, -q); /* exact scaling, v < 512 */
    double r = ldexp(round_half_even(v), q);
    return bf16_from_exact_double(r, neg);
}

uint16_t mf_mpfr_to_bf16(const mpfr_t z) {
    if (mpfr_nan_p(z)) return MF_BF16_QNAN;
    int neg = mpfr_signbit(z) != 0;
    if (mpfr_inf_p(z)) return neg ? MF_BF16_NEG_INF : MF_BF16_POS_INF;
    if (mpfr_zero_p(z)) return neg ? 0x8000u : 0x0000u;
    mpfr_exp_t e = mpfr_get_exp(z); /* |z| in [2^(e-1), 2^e) */
    if (e > 130) return neg ? MF_BF16_NEG_INF : MF_BF16_POS_INF;
    if (e < -140) return neg ? 0x8000u : 0x0000u; /* below half the smallest subnormal */
    long q = (long)(e - 1) - 7;
    if (q < -133) q = -133;
    /* t = |z| * 2^-q has at most 9 integer bits; round it to an integer, ties to even. */
    mpfr_t t;
    mpfr_init2(t, mpfr_get_prec(z) > 16 ? mpfr_get_prec(z) : 16);
    mpfr_abs(t, z, MPFR_RNDN);             /* exact: same precision or more */
    mpfr_mul_2si(t, t, -q, MPFR_RNDN);     /* exact: power of two, no overflow here */
    mpfr_rint(t, t, MPFR_RNDN);            /* ties to even */
    double r = ldexp(mpfr_get_d(t, MPFR_RNDN), (int)q); /* integer < 2^10: exact */
    mpfr_clear(t);
    return bf16_from_exact_double(r, neg);
}

uint16_t mf_bf16_next_up(uint16_t b) {
    if (mf_bf16_is_nan(b) || b == MF_BF16_POS_INF) return b;
    if (b == 0x8000u) return 0x0001u; /* -0 -> min subnormal */
    if (b & 0x8000u) return (uint16_t)(b - 1u);
    return (uint16_t)(b + 1u);
}

uint16_t mf_bf16_next_down(uint16_t b) {
    if (mf_bf16_is_nan(b) || b == MF_BF16_NEG_INF) return b;
    if (b == 0x0000u) return 0x8001u;
    if (b & 0x8000u) return (uint16_t)(b + 1u);
    return (uint16_t)(b - 1u);
}

void mf_bf16_cell(uint16_t b, double *lo, double *hi, int *lo_closed, int *hi_closed) {
    double y = (double)mf_bf16_to_f32(b);
    int even = (b & 1u) == 0;
    uint16_t up = mf_bf16_next_up(b), dn = mf_bf16_next_down(b);
    /* +-0: the cell is symmetric around zero whatever the sign bit. */
    if ((b & 0x7fffu) == 0) {
        *lo = -0x1p-134;
        *hi = 0x1p-134;
        *lo_closed = *hi_closed = 1;
        return;
    }
    double yu = (double)mf_bf16_to_f32(up), yd = (double)mf_bf16_to_f32(dn);
    if (isinf(yu)) yu = y + (y - yd); /* overflow threshold: the midpoint to 2^128 */
    if (isinf(yd)) yd = y - (yu - y);
    *lo = 0.5 * (y + yd); /* exact in double */
    *hi = 0.5 * (y + yu);
    *lo_closed = *hi_closed = even;
}
