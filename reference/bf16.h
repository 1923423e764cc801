/* bf16.h: bfloat16 bit patterns, exact conversions and round-to-nearest-even from float, double
 * and MPFR values.
 *
 * bf16 is 1 sign bit, 8 exponent bits, 7 fraction bits: the upper half of an fp32. Normal values
 * are m * 2^(e-7) with m in [128, 256) and e in [-126, 127]; subnormals are multiples of 2^-133.
 * Everything here is exact integer or power-of-two arithmetic and does not depend on the
 * floating-point rounding mode, so results are identical on every machine.
 */
#ifndef MF_BF16_H
#define MF_BF16_H

#include <stdint.h>
#include <string.h>

#include <mpfr.h>

#define MF_BF16_POS_INF 0x7f80u
#define MF_BF16_NEG_INF 0xff80u
#define MF_BF16_QNAN 0x7fc0u
#define MF_BF16_MAX 0x7f7fu /* (2 - 2^-7) * 2^127 */

static inline float mf_bf16_to_f32(uint16_t b) {
    uint32_t u = (uint32_t)b << 16;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static inline uint32_t mf_f32_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

static inline float mf_f32_from_bits(uint32_t u) {
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static inline int mf_bf16_is_nan(uint16_t b) { return (b & 0x7fffu) > 0x7f80u; }
static inline int mf_bf16_is_finite(uint16_t b) { return (b & 0x7f80u) != 0x7f80u; }

/* fp32 -> bf16, round to nearest even; NaN stays a (quiet) NaN. */
static inline uint16_t mf_f32_to_bf16(float f) {
    uint32_t u = mf_f32_bits(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40u);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

/* double -> bf16, correctly rounded (one rounding, not via fp32). */
uint16_t mf_f64_to_bf16(double d);

/* MPFR value -> bf16, correctly rounded to nearest even, any precision of z. */
uint16_t mf_mpfr_to_bf16(const mpfr_t z);

/* Next bf16 value toward +inf / -inf (on the value line, crossing zero as -0 -> +0 -> min sub). */
uint16_t mf_bf16_next_up(uint16_t b);
uint16_t mf_bf16_next_down(uint16_t b);

/* Bounds of the set of reals that round to bf16 value b (finite b): [*lo, *hi], each endpoint
 * included iff *lo_closed / *hi_closed (ties go to the even neighbour). For the largest finite
 * values the upper edge is the overflow threshold. */
void mf_bf16_cell(uint16_t b, double *lo, double *hi, int *lo_closed, int *hi_closed);

#endif /* MF_BF16_H */
