/* test_bf16.c: bf16 round-to-nearest-even against MPFR, over every pair of neighbouring bf16
 * values.
 *
 * The authority is MPFR with precision 8 and the bf16 exponent range (emin -132, emax 128,
 * mpfr_subnormalize). For each finite bf16 value v and its upper neighbour w the test rounds v,
 * w, their midpoint, the midpoint +- one double ulp, and the quarter points, with
 * mf_f64_to_bf16, mf_mpfr_to_bf16 (at 64 bits) and, where the point is an fp32, mf_f32_to_bf16.
 * It also checks the overflow threshold, signed zeros, and mf_bf16_cell against the rounding.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>

#include <mpfr.h>

#include "bf16.h"

static uint16_t mpfr_authority(double d) {
    /* MPFR in the bf16 format: 8 bits, exponent range of bf16 with subnormals */
    mpfr_exp_t emin = mpfr_get_emin(), emax = mpfr_get_emax();
    mpfr_set_emin(-132);
    mpfr_set_emax(128);
    mpfr_t x;
    mpfr_init2(x, 8);
    int inex = mpfr_set_d(x, d, MPFR_RNDN);
    inex = mpfr_check_range(x, inex, MPFR_RNDN);
    mpfr_subnormalize(x, inex, MPFR_RNDN);
    float f = mpfr_get_flt(x, MPFR_RNDN); /* exact */
    mpfr_clear(x);
    mpfr_set_emin(emin);
    mpfr_set_emax(emax);
    uint32_t u = mf_f32_bits(f);
    return (uint16_t)(u >> 16);
}

static long checks = 0, bad = 0;

static void check_point(double d) {
    uint16_t want = mpfr_authority(d);
    uint16_t a = mf_f64_to_bf16(d);
    mpfr_t m;
    mpfr_init2(m, 64);
    mpfr_set_d(m, d, MPFR_RNDN);
    uint16_t b = mf_mpfr_to_bf16(m);
    mpfr_clear(m);
    checks += 2;
    int fbad = 0;
    if ((double)(float)d == d) {
        checks++;
        fbad = mf_f32_to_bf16((float)d) != want;
    }
    if (a != want || b != want || fbad) {
        if (bad < 10)
            printf("MISMATCH at %a: mpfr 0x%04x, f64 0x%04x, mpfr-path 0x%04x%s\n", d, want, a, b,
                   fbad ? ", f32 path differs" : "");
        bad++;
    }
    /* the cell of the result contains d */
    if (mf_bf16_is_finite(want)) {
        double lo, hi;
        int lc, hc;
        mf_bf16_cell(want, &lo, &hi, &lc, &hc);
        int in = (d > lo || (d == lo && lc)) && (d < hi || (d == hi && hc));
        checks++;
        if (!in) {
            if (bad < 10) printf("CELL of 0x%04x [%a, %a] misses %a\n", want, lo, hi, d);
            bad++;
        }
    }
}

int main(void) {
    long pairs = 0;
    for (uint32_t bits = 0; bits < 0x10000u; bits++) {
        uint16_t v = (uint16_t)bits;
        if (!mf_bf16_is_finite(v)) continue;
        uint16_t w = mf_bf16_next_up(v);
        double dv = mf_bf16_to_f32(v);
        check_point(dv);
        if (!mf_bf16_is_finite(w)) continue;
        double dw = mf_bf16_to_f32(w);
        double mid = 0.5 * (dv + dw); /* exact in double */
        pairs++;
        check_point(mid);
        check_point(nextafter(mid, INFINITY));
        check_point(nextafter(mid, -INFINITY));
        check_point(dv + 0.25 * (dw - dv));
        check_point(dv + 0.75 * (dw - dv));
    }
    /* overflow threshold: the midpoint between the largest bf16 and 2^128 rounds to inf */
    double max = mf_bf16_to_f32(MF_BF16_MAX);
    double thr = 0.5 * (max + 0x1p128);
    check_point(thr);
    check_point(nextafter(thr, 0));
    check_point(-thr);
    check_point(0x1p200);
    check_point(-0x1p-140); /* below half the smallest subnormal: -0 */
    check_point(0x1p-134);  /* exactly half the smallest subnormal: ties to even, +0 */
    check_point(nextafter(0x1p-134, 1));
    check_point(-0.0);
    printf("bf16 rounding: %ld neighbouring pairs, %ld checks, %ld mismatches with MPFR\n", pairs,
           checks, bad);
    return bad ? 1 : 0;
}
