/* test_fp8.c: the FP8 / UE8M0 / e2m1 formats, the interval quantizer and the block-scaled dot
 * product (reference/fp8.c) against independent authorities.
 *
 * - e4m3 and e5m2 rounding against MPFR in the format (precision 4 / 3, the formats' subnormal
 *   range) at every code, every midpoint between neighbours and the points one double ulp
 *   around it; decode(encode(v)) round trips; saturation and the unclamped cast's NaN / inf.
 * - UE8M0 round-up against its definition at random and power-of-two scales.
 * - The interval quantizer: for random groups with random intervals, and groups aimed at the
 *   UE8M0 and e4m3 rounding boundaries, the kernel's quantizer run on sampled inputs inside the
 *   intervals always lands inside the reported enclosure and scale candidates; point intervals
 *   are decided (one value); a boundary-straddling amax yields two scale candidates.
 * - The block dot: exact value against an MPFR dot at 4000 bits; the CPU FP8 contract (fp32
 *   chain per block, fl(fl(P s_a) s_w), fp32 accumulation) simulated on perturbed inputs stays
 *   inside the radius.
 * - vLLM's fused silu_and_mul_per_block_quant (contract vllm-0.33-triton-fp8-served-sm90), written
 *   from its source: on bf16 gate / up intervals, with expf within 2 ulps, its fp32 product lies
 *   in mf_silu_mul_f32_range's enclosure and its codes in the quantizer's (division, scale floor
 *   1 / (448 * 512)); on points it is decided, code for code; a product rounded to bf16, the
 *   reciprocal instead of the division and the floor dropped each give other codes on some
 *   groups (counted, required).
 * - MXFP4 dequantization: values, the nibble order, overflow to inf, the NaN scale.
 * Run: test_fp8 [cases] (default 2000).
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mpfr.h>

#include "bf16.h"
#include "contract.h"
#include "fp8.h"
#include "mf_test.h"

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint64_t rnd(void) {
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}
static double unif(void) { return (double)(rnd() >> 11) * 0x1p-53; }

/* ---- formats ---- */

static double mpfr_round_fmt(double v, int prec, int emin) {
    mpfr_exp_t old_min = mpfr_get_emin();
    mpfr_set_emin(emin);
    mpfr_t x;
    mpfr_init2(x, prec);
    int inex = mpfr_set_d(x, v, MPFR_RNDN);
    inex = mpfr_check_range(x, inex, MPFR_RNDN);
    mpfr_subnormalize(x, inex, MPFR_RNDN);
    double r = mpfr_get_d(x, MPFR_RNDN);
    mpfr_clear(x);
    mpfr_set_emin(old_min);
    return r;
}

static void check_round(mf_fp8_kind k, double v) {
    int prec = k == MF_FP8_E4M3 ? 4 : 3, emin = k == MF_FP8_E4M3 ? -8 : -15;
    double want = mpfr_round_fmt(v, prec, emin);
    double max = mf_fp8_max(k);
    double sat = fabs(want) > max ? copysign(max, v) : want;
    double got = mf_fp8_decode(k, mf_fp8_encode(k, v, 1));
    EXPECT(got == sat && signbit(got) == signbit(sat), "kind %d: round %a: got %a want %a", k, v,
           got, sat);
    double raw = mf_fp8_decode(k, mf_fp8_encode(k, v, 0));
    if (fabs(want) > max) {
        if (k == MF_FP8_E4M3) EXPECT(isnan(raw), "e4m3 unclamped %a: got %a, want NaN", v, raw);
        else EXPECT(isinf(raw), "e5m2 unclamped %a: got %a, want inf", v, raw);
    } else {
        EXPECT(raw == want, "kind %d: unclamped %a: got %a want %a", k, v, raw, want);
    }
}

static void test_formats(void) {
    for (int k = 0; k < 2; k++) {
        double vals[256];
        int nv = 0;
        for (int b = 0; b < 256; b++) {
            double v = mf_fp8_decode((mf_fp8_kind)k, (uint8_t)b);
            if (isnan(v)) continue;
            if (isfinite(v)) {
                EXPECT(mf_fp8_encode((mf_fp8_kind)k, v, 0) == b, "kind %d code 0x%02x round trip",
                       k, b);
                if (b < 0x80 && v >= 0) vals[nv++] = v;
            }
        }
        /* positive finite values in code order are increasing */
        for (int i = 1; i < nv; i++) EXPECT(vals[i] > vals[i - 1], "kind %d order at %d", k, i);
        EXPECT(vals[nv - 1] == mf_fp8_max((mf_fp8_kind)k), "kind %d max %a", k, vals[nv - 1]);
        for (int i = 0; i + 1 < nv; i++) {
            double a = vals[i], b = vals[i + 1], m = (a + b) / 2;
            const double pts[] = {a, m, nextafter(m, 0), nextafter(m, INFINITY), (3 * a + b) / 4,
                                  (a + 3 * b) / 4};
            for (int p = 0; p < 6; p++) {
                check_round((mf_fp8_kind)k, pts[p]);
                check_round((mf_fp8_kind)k, -pts[p]);
            }
        }
        /* beyond the largest value: up to the next binade and far away */
        double max = mf_fp8_max((mf_fp8_kind)k);
        const double big[] = {max * 1.03, max * (k ? 15.0 / 14 : 29.0 / 28),
                              nextafter(max * (k ? 15.0 / 14 : 29.0 / 28), INFINITY), max * 1.2,
                              1e30};
        for (int p = 0; p < 5; p++) {
            check_round((mf_fp8_kind)k, big[p]);
            check_round((mf_fp8_kind)k, -big[p]);
        }
    }
    /* the bit-pattern path of the weights equals the general encoder on every bf16 */
    for (uint32_t b = 0; b < 65536; b++) {
        uint8_t got;
        uint16_t b16 = (uint16_t)b;
        mf_e4m3_from_bf16(&b16, 1, &got);
        uint8_t want = mf_fp8_encode(MF_FP8_E4M3, (double)mf_bf16_to_f32(b16), 1);
        double gv = mf_fp8_decode(MF_FP8_E4M3, got), wv = mf_fp8_decode(MF_FP8_E4M3, want);
        EXPECT(got == want || (isnan(gv) && isnan(wv)), "bf16 0x%04x: e4m3 0x%02x, want 0x%02x",
               b, got, want);
    }
    EXPECT(mf_fp8_decode(MF_FP8_E4M3, 0x7e) == 448, "e4m3 0x7e = 448");
    EXPECT(isnan(mf_fp8_decode(MF_FP8_E4M3, 0x7f)) && isnan(mf_fp8_decode(MF_FP8_E4M3, 0xff)),
           "e4m3 NaN codes");
    EXPECT(mf_fp8_decode(MF_FP8_E4M3, 0x01) == 0x1p-9, "e4m3 min subnormal");
    EXPECT(mf_fp8_encode(MF_FP8_E4M3, 464, 0) == 0x7e, "e4m3: 464 ties to 448");
    EXPECT(isinf(mf_fp8_decode(MF_FP8_E5M2, 0x7c)), "e5m2 inf");
    EXPECT(mf_fp8_decode(MF_FP8_E5M2, 0x7b) == 57344, "e5m2 max");
    /* UE8M0 */
    EXPECT(isnan(mf_ue8m0_decode(0xff)) && mf_ue8m0_decode(127) == 1.0, "ue8m0 decode");
    for (int i = 0; i < 20000; i++) {
        double s = ldexp(0.5 + unif(), (int)(rnd() % 200) - 100);
        if (i % 4 == 0) s = ldexp(1.0, (int)(rnd() % 200) - 100);
        uint8_t c = mf_ue8m0_round_up(s);
        double p = mf_ue8m0_decode(c);
        EXPECT(p >= s && p / 2 < s, "ue8m0 round up %a -> %a", s, p);
        float f = (float)s;
        float pf = mf_pow2_ceil_f32(f);
        EXPECT(pf >= f && pf / 2 < f && frexpf(pf, &(int){0}) == 0.5f, "pow2 ceil %a -> %a",
               (double)f, (double)pf);
    }
}

/* ---- interval quantizer ---- */

static float rand_act(void) {
    /* activations over several binades, some exactly on e4m3-scaled grid points */
    double v = ldexp(unif() * 2 - 1, (int)(rnd() % 12) - 6);
    return mf_bf16_to_f32(mf_f64_to_bf16(v));
}

static void check_group_iv(const mf_fp8_quant *qz, const float *lo, const float *hi, int n,
                           int samples, int *ambig_scales, int *clipped) {
    float rep[256];
    uint8_t rq[256], q[256];
    double dlo[256], dhi[256];
    for (int j = 0; j < n; j++) rep[j] = lo[j] + (hi[j] - lo[j]) * 0.5f;
    for (int j = 0; j < n; j++) rep[j] = fminf(fmaxf(rep[j], lo[j]), hi[j]);
    mf_fp8_group_iv g;
    mf_fp8_quant_group_iv(qz, lo, hi, rep, n, &g, rq, dlo, dhi);
    /* more UE8M0 candidates than MF_FP8_MAX_SCALES only where the amax interval spans more
     * binades than they cover (the reference then calls the group undecided, forward.c) */
    float amin = qz->eps, amax = qz->eps;
    for (int j = 0; j < n; j++) {
        amin = fmaxf(amin, (lo[j] <= 0 && hi[j] >= 0) ? 0.0f : fminf(fabsf(lo[j]), fabsf(hi[j])));
        amax = fmaxf(amax, fmaxf(fabsf(lo[j]), fabsf(hi[j])));
    }
    double span = (double)fmaxf(amax, qz->s_floor * 448.0f) / fmaxf(amin, qz->s_floor * 448.0f);
    EXPECT(!g.scales_clipped || span > 0x1p6, "scale candidates clipped on an amax interval "
           "[%a, %a] (ratio %g)", (double)amin, (double)amax, span);
    *clipped += g.scales_clipped;
    if (g.scales_clipped) return; /* undecided: the reference uses no enclosure of it */
    if (g.nscales > 1) (*ambig_scales)++;
    for (int j = 0; j < n; j++) {
        double d = mf_fp8_decode(qz->kind, rq[j]) * g.rep_s;
        EXPECT(d >= dlo[j] && d <= dhi[j], "representative %a outside [%a, %a]", d, dlo[j],
               dhi[j]);
    }
    float y[256];
    for (int s = 0; s < samples; s++) {
        for (int j = 0; j < n; j++) {
            int pick = (int)(rnd() % 4);
            y[j] = pick == 0 ? lo[j] : pick == 1 ? hi[j] : lo[j] + (hi[j] - lo[j]) * (float)unif();
            if (y[j] > hi[j]) y[j] = hi[j];
        }
        float sc = mf_fp8_quant_group(qz, y, n, q);
        int in_cand = 0;
        for (int i = 0; i < g.nscales; i++) in_cand |= sc >= g.s_lo[i] && sc <= g.s_hi[i];
        EXPECT(in_cand, "scale %a outside the candidates", (double)sc);
        for (int j = 0; j < n; j++) {
            double d = mf_fp8_decode(qz->kind, q[j]) * sc;
            EXPECT(d >= dlo[j] && d <= dhi[j], "elem %d: y %a gives %a outside [%a, %a]", j,
                   (double)y[j], d, dlo[j], dhi[j]);
        }
    }
}

static void test_quant_iv(int cases) {
    float lo[256], hi[256];
    int ambig_scales = 0, boundary_two = 0, clipped = 0;
    for (int c = 0; c < cases; c++) {
        mf_fp8_quant qz = {MF_FP8_E4M3, (int)(c & 1), 1e-10f, c % 3 == 2 ? 0x1p-22 : 0, 0, 0, 0,
                           0};
        int n = 1 + (int)(rnd() % 128);
        for (int j = 0; j < n; j++) {
            float a = rand_act();
            float r = (rnd() % 3) ? 0 : fabsf(a) * (float)ldexp(unif(), -(int)(rnd() % 12));
            lo[j] = a - r;
            hi[j] = a + r;
        }
        check_group_iv(&qz, lo, hi, n, 20, &ambig_scales, &clipped);
        /* aimed: the amax interval straddles 448 2^k, the UE8M0 boundary */
        qz.ue8m0 = 1;
        qz.div_rel = 0;
        float amax = (float)ldexp(448.0, (int)(rnd() % 20) - 15);
        lo[0] = nextafterf(amax, 0);
        hi[0] = nextafterf(amax, INFINITY);
        mf_fp8_group_iv g;
        uint8_t rq[256];
        double dlo[256], dhi[256];
        float rep[256];
        for (int j = 0; j < n; j++) rep[j] = lo[j];
        for (int j = 1; j < n; j++) lo[j] = hi[j] = fminf(fabsf(lo[j]), amax / 2);
        for (int j = 1; j < n; j++) rep[j] = lo[j];
        mf_fp8_quant_group_iv(&qz, lo, hi, rep, n, &g, rq, dlo, dhi);
        boundary_two += g.nscales == 2;
        check_group_iv(&qz, lo, hi, n, 20, &ambig_scales, &clipped);
        /* point intervals with an exact division: decided, equal to the kernel's */
        qz.ue8m0 = (int)(rnd() & 1);
        for (int j = 0; j < n; j++) lo[j] = hi[j] = rand_act();
        int amb = mf_fp8_quant_group_iv(&qz, lo, hi, lo, n, &g, rq, dlo, dhi);
        EXPECT(amb == 0 && g.nscales == 1 && g.s_lo[0] == g.s_hi[0], "points undecided: %d", amb);
    }
    EXPECT(boundary_two == cases, "amax at 448 2^k +- 1 ulp gave two UE8M0 scales in %d of %d",
           boundary_two, cases);
    printf("quantizer: %d of %d groups had more than one scale candidate, %d more than %d "
           "(undecided)\n", ambig_scales, 3 * cases, clipped, MF_FP8_MAX_SCALES);
}

/* vLLM 0.33.0's CUDA per_token_group_fp8_quant (per_token_group_quant.cu l. 46-90) on one
 * group, written from its source: amax from eps, y_s = amax / 448, UE8M0 exp2f(ceilf(log2f(
 * fmaxf(|y_s|, 1e-10f)))), inv = 1.0f / y_s, q = e4m3(clamp(y * inv)). log2: 0 this
 * libm's log2f, 1 one ulp below it (what the contract's 1 ulp allows), 2 the group-128 register
 * kernel's exponent bump (l. 260-268). Returns y_s. */
static float vllm_quant_group(int ue8m0, int log2, const float *y, int n, uint8_t *q) {
    float amax = 1e-10f;
    for (int j = 0; j < n; j++) amax = fmaxf(amax, fabsf(y[j]));
    float s = amax / 448.0f;
    if (ue8m0 && log2 == 2) {
        uint32_t b;
        s = fmaxf(fabsf(s), 1e-10f);
        memcpy(&b, &s, 4);
        b = (((b >> 23) & 0xffu) + ((b & 0x7fffffu) != 0)) << 23;
        memcpy(&s, &b, 4);
    } else if (ue8m0) {
        float l = log2f(fmaxf(fabsf(s), 1e-10f));
        if (log2 == 1) l = nextafterf(l, -INFINITY);
        s = exp2f(ceilf(l));
    }
    float inv = 1.0f / s;
    for (int j = 0; j < n; j++)
        q[j] = mf_fp8_encode(MF_FP8_E4M3, (double)fminf(fmaxf(y[j] * inv, -448.0f), 448.0f), 1);
    return s;
}

/* The contract vllm-0.33-triton-fp8-sm90's quantizer fields (recip, the UE8M0 floor, log2_rel)
 * enclose what vLLM's quantizer gives on every input of an interval group, including a log2f
 * one ulp low; on point groups without log2_rel they decide it, code for code. */
static void test_quant_vllm(int cases) {
    const mf_contract *vc = mf_contract_find("vllm-0.33-triton-fp8-sm90");
    EXPECT(vc != NULL, "contract vllm-0.33-triton-fp8-sm90 missing");
    if (!vc) return;
    float lo[128], hi[128], rep[128], y[128];
    uint8_t rq[128], q[128];
    double dlo[128], dhi[128];
    int lowered = 0, differs_from_div = 0;
    for (int c = 0; c < cases; c++) {
        mf_fp8_quant qz = {MF_FP8_E4M3, (int)(c & 1), 1e-10f, 0, vc->fp8_log2_rel,
                           vc->fp8_quant_recip, vc->fp8_ue8m0_floor, 0};
        int n = 1 + (int)(rnd() % 128);
        int tiny = c % 5 == 4; /* amax below 448e-10: the UE8M0 floor decides the scale */
        for (int j = 0; j < n; j++) {
            float a = tiny ? (float)ldexp(unif() * 2 - 1, -40 - (int)(rnd() % 20)) : rand_act();
            float r = (rnd() % 3) ? 0 : fabsf(a) * (float)ldexp(unif(), -(int)(rnd() % 12));
            lo[j] = a - r;
            hi[j] = a + r;
        }
        if (c % 7 == 3) { /* amax just above 448 2^k: where a low log2f keeps 2^k */
            float amax = (float)ldexp(448.0, (int)(rnd() % 20) - 15);
            lo[0] = hi[0] = nextafterf(amax, INFINITY);
            for (int j = 1; j < n; j++) lo[j] = hi[j] = fminf(fabsf(lo[j]), amax / 2);
        }
        for (int j = 0; j < n; j++) rep[j] = fminf(fmaxf(lo[j] + (hi[j] - lo[j]) * 0.5f, lo[j]), hi[j]);
        mf_fp8_group_iv g;
        mf_fp8_quant_group_iv(&qz, lo, hi, rep, n, &g, rq, dlo, dhi);
        for (int smp = 0; smp < 10; smp++) {
            for (int j = 0; j < n; j++) {
                int pick = (int)(rnd() % 4);
                y[j] = pick == 0 ? lo[j] : pick == 1 ? hi[j] : lo[j] + (hi[j] - lo[j]) * (float)unif();
                if (y[j] > hi[j]) y[j] = hi[j];
            }
            int low = (int)(rnd() % 3);
            float sc = vllm_quant_group(qz.ue8m0, low, y, n, q);
            float sc_exact = vllm_quant_group(qz.ue8m0, 0, y, n, rq);
            lowered += sc != sc_exact;
            int in_cand = 0;
            for (int i = 0; i < g.nscales; i++) in_cand |= sc >= g.s_lo[i] && sc <= g.s_hi[i];
            EXPECT(in_cand, "vLLM scale %a outside the candidates", (double)sc);
            for (int j = 0; j < n; j++) {
                double d = mf_fp8_decode(MF_FP8_E4M3, q[j]) * sc;
                EXPECT(d >= dlo[j] && d <= dhi[j], "vLLM elem %d: y %a gives %a outside [%a, %a]",
                       j, (double)y[j], d, dlo[j], dhi[j]);
            }
        }
        /* points, log2 exact: the reference's representative is vLLM's quantizer (the fp32
         * scale, or the register kernel's UE8M0 bump), code for code */
        qz.log2_rel = 0;
        for (int j = 0; j < n; j++) lo[j] = hi[j] = tiny ? lo[j] : rand_act();
        int amb = mf_fp8_quant_group_iv(&qz, lo, hi, lo, n, &g, rq, dlo, dhi);
        float sv = vllm_quant_group(qz.ue8m0, 2, lo, n, q);
        EXPECT(amb == 0 && g.rep_s == sv && !memcmp(rq, q, (size_t)n),
               "vLLM's quantizer on points: %d undecided, scale %a vs %a", amb, (double)g.rep_s,
               (double)sv);
        mf_fp8_quant qd = qz;
        qd.recip = 0;
        qd.s_floor = 0;
        uint8_t qdiv[128];
        float sd = mf_fp8_quant_group(&qd, lo, n, qdiv);
        differs_from_div += sd != sv || memcmp(qdiv, q, (size_t)n) != 0;
    }
    /* the fields matter: without them the quantizer differs from vLLM's on some groups */
    EXPECT(differs_from_div > 0, "the division quantizer never differs from vLLM's");
    EXPECT(lowered > 0, "no group had its UE8M0 scale lowered by a low log2f");
    printf("vLLM quantizer: %d of %d groups differ from the division quantizer; %d samples with "
           "a lowered UE8M0 scale\n", differs_from_div, cases, lowered);
}

/* ---- block dot ---- */

static uint8_t rand_e4m3(void) {
    for (;;) {
        uint8_t b = (uint8_t)rnd();
        if ((b & 0x7f) != 0x7f) return b;
    }
}

/* what kernels/cpu does for one output, with the kernel's own inputs (qa2, sa2); order 1: the
 * epilogue of vLLM's swap-AB kernel, fl(fl(P s_w) s_a); order 2: that with the last multiply
 * contracted into the add (an fma), as Triton may compile it */
static float cpu_contract_dot(const uint8_t *qa, const float *sa, const uint8_t *qw,
                              const float *sw, int n, int bk, int order) {
    float acc = 0;
    for (int b = 0; b * bk < n; b++) {
        float part = 0;
        for (int j = b * bk; j < n && j < (b + 1) * bk; j++)
            part += (float)(mf_fp8_decode(MF_FP8_E4M3, qa[j]) * mf_fp8_decode(MF_FP8_E4M3, qw[j]));
        if (order == 0) {
            float t = part * sa[b];
            t = t * sw[b];
            acc += t;
        } else if (order == 1) {
            float t = part * sw[b];
            t = t * sa[b];
            acc += t;
        } else {
            acc = fmaf(part * sw[b], sa[b], acc);
        }
    }
    return acc;
}

static void test_dot(int cases) {
    enum { NMAX = 1024 };
    uint8_t qa[NMAX], qa2[NMAX], qw[NMAX];
    float sa[NMAX], sa2[NMAX], sw[NMAX];
    double delta[NMAX];
    mf_fp8_dot_ws *ws = mf_fp8_dot_ws_new();
    mpfr_t m, t;
    mpfr_inits2(4000, m, t, (mpfr_ptr)0);
    double worst = 0;
    for (int c = 0; c < cases; c++) {
        int bk = (int)(1u << (rnd() % 8)); /* 1 .. 128 */
        int n = 1 + (int)(rnd() % NMAX);
        int nb = (n + bk - 1) / bk;
        int perturb = c % 2;
        for (int j = 0; j < n; j++) {
            qa[j] = rand_e4m3();
            qw[j] = rand_e4m3();
            if (c % 5 == 0 && j % 2) qw[j] = qw[j - 1] ^ 0x80; /* cancellation */
        }
        for (int b = 0; b < nb; b++) {
            sa[b] = (float)ldexp(0.5 + unif(), (int)(rnd() % 40) - 30);
            sw[b] = (float)ldexp(0.5 + unif(), (int)(rnd() % 40) - 30);
            if (c % 3 == 0) sa[b] = ldexpf(1.0f, (int)(rnd() % 40) - 30); /* UE8M0 */
        }
        /* the kernel's inputs: each element may be another code, each scale another value */
        for (int j = 0; j < n; j++) {
            qa2[j] = qa[j];
            delta[j] = 0;
        }
        for (int b = 0; b < nb; b++) sa2[b] = sa[b];
        if (perturb) {
            for (int b = 0; b < nb; b++)
                if (rnd() % 4 == 0) sa2[b] = nextafterf(sa[b], INFINITY);
            for (int j = 0; j < n; j++) {
                if (rnd() % 3 == 0) qa2[j] = (uint8_t)(qa[j] + ((qa[j] & 0x7f) < 0x7e ? 1 : -1));
                double h = mf_fp8_decode(MF_FP8_E4M3, qa[j]) * sa[j / bk];
                double h2 = mf_fp8_decode(MF_FP8_E4M3, qa2[j]) * sa2[j / bk];
                delta[j] = fabs(h2 - h);
            }
        }
        mf_fp8_dot_out d;
        mf_fp8_dot(ws, qa, sa, perturb ? delta : NULL, qw, sw, (size_t)n, bk, &d);
        /* MPFR authority for the exact value */
        mpfr_set_ui(m, 0, MPFR_RNDN);
        for (int j = 0; j < n; j++) {
            mpfr_set_d(t, mf_fp8_decode(MF_FP8_E4M3, qa[j]), MPFR_RNDN);
            mpfr_mul_d(t, t, mf_fp8_decode(MF_FP8_E4M3, qw[j]), MPFR_RNDN);
            mpfr_mul_d(t, t, sa[j / bk], MPFR_RNDN);
            mpfr_mul_d(t, t, sw[j / bk], MPFR_RNDN);
            mpfr_add(m, m, t, MPFR_RNDN);
        }
        mpfr_sub_d(t, m, d.hi, MPFR_RNDN);
        mpfr_sub_d(t, t, d.lo, MPFR_RNDN);
        double ex = fabs(mpfr_get_d(t, MPFR_RNDU));
        EXPECT(!d.nonfinite && ex <= d.err, "case %d: exact value off by %a > err %a", c, ex, d.err);
        for (int order = 0; order < 3; order++) {
            float k = cpu_contract_dot(qa2, sa2, qw, sw, n, bk, order);
            mpfr_sub_d(t, m, (double)k, MPFR_RNDN);
            double e = fabs(mpfr_get_d(t, MPFR_RNDU));
            if (!d.may_overflow) {
                EXPECT(e <= d.radius, "case %d (n %d bk %d order %d): kernel off by %a > radius %a",
                       c, n, bk, order, e, d.radius);
                if (d.radius > 0 && e / d.radius > worst) worst = e / d.radius;
            }
        }
    }
    printf("block dot: worst use of the radius %.3f over %d cases\n", worst, cases);
    mpfr_clears(m, t, (mpfr_ptr)0);
    mf_fp8_dot_ws_free(ws);
}

/* ---- MXFP4 ---- */

static void test_mxfp4(void) {
    uint8_t packed[32], scales[2];
    uint16_t out[64];
    for (int i = 0; i < 32; i++) packed[i] = (uint8_t)(i * 37 + 11);
    scales[0] = 127 - 3;
    scales[1] = 127 + 5;
    mf_mxfp4_dequant_bf16(packed, scales, 64, out);
    for (int i = 0; i < 64; i++) {
        uint8_t c = (i & 1) ? packed[i / 2] >> 4 : packed[i / 2] & 0xf;
        double want = mf_e2m1_decode(c) * ldexp(1.0, i < 32 ? -3 : 5);
        EXPECT((double)mf_bf16_to_f32(out[i]) == want, "mxfp4 %d: %a want %a", i,
               (double)mf_bf16_to_f32(out[i]), want);
    }
    /* low nibble first: byte 0x21 holds 0.5 (code 1) then 1.0 (code 2) */
    packed[0] = 0x21;
    scales[0] = 127;
    mf_mxfp4_dequant_bf16(packed, scales, 32, out);
    EXPECT(mf_bf16_to_f32(out[0]) == 0.5f && mf_bf16_to_f32(out[1]) == 1.0f, "nibble order");
    /* range: 6 * 2^127 overflows bf16, 0.5 * 2^-127 is a bf16 subnormal, 0xff is NaN */
    packed[0] = 0x17; /* 6.0, then 0.5 */
    scales[0] = 254;
    mf_mxfp4_dequant_bf16(packed, scales, 32, out);
    EXPECT(out[0] == MF_BF16_POS_INF, "6 * 2^127 -> inf, got 0x%04x", out[0]);
    EXPECT(mf_bf16_to_f32(out[1]) == 0x1p126f, "0.5 * 2^127");
    scales[0] = 0;
    mf_mxfp4_dequant_bf16(packed, scales, 32, out);
    EXPECT((double)mf_bf16_to_f32(out[1]) == 0x1p-128, "0.5 * 2^-127 subnormal");
    scales[0] = 0xff;
    mf_mxfp4_dequant_bf16(packed, scales, 32, out);
    EXPECT(mf_bf16_is_nan(out[0]) && mf_bf16_is_nan(out[5]), "scale 0xff is NaN");
    /* the canonical packing recovers e2m1 values times one power of two per block exactly */
    uint16_t in[64], back[64];
    uint8_t pk[32], sc[2];
    for (int rep = 0; rep < 2000; rep++) {
        for (int b = 0; b < 2; b++) {
            int k = (int)(rnd() % 250) - 126;
            for (int i = 0; i < 32; i++)
                in[b * 32 + i] = mf_f64_to_bf16(ldexp(mf_e2m1_decode((uint8_t)(rnd() & 15)), k));
        }
        mf_mxfp4_pack_bf16(in, 64, pk, sc);
        mf_mxfp4_dequant_bf16(pk, sc, 64, back);
        for (int i = 0; i < 64; i++)
            EXPECT((mf_bf16_to_f32(back[i]) == mf_bf16_to_f32(in[i])), "pack round trip %d: %a -> %a",
                   i, (double)mf_bf16_to_f32(in[i]), (double)mf_bf16_to_f32(back[i]));
    }
    in[3] = MF_BF16_QNAN;
    mf_mxfp4_pack_bf16(in, 64, pk, sc);
    EXPECT(sc[0] == 0xff && sc[1] != 0xff, "a NaN makes its block's scale NaN only");
}

/* ---- vLLM's fused silu_and_mul_per_block_quant (fused_silu_mul_block_quant.cu l. 54-102) ---- */

/* expf(x) correctly rounded (MPFR), then moved by ulps fp32 steps: what a 2-ulp expf may give */
static float expf_moved(float x, int ulps) {
    mpfr_t m;
    mpfr_init2(m, 24);
    mpfr_set_flt(m, x, MPFR_RNDN);
    mpfr_exp(m, m, MPFR_RNDN);
    float e = mpfr_get_flt(m, MPFR_RNDN);
    mpfr_clear(m);
    for (; ulps > 0; ulps--) e = nextafterf(e, INFINITY);
    for (; ulps < 0; ulps++) e = nextafterf(e, 0.0f);
    return e;
}

/* mutations of the op, to show each rule is needed */
enum { SERVED_OK, SERVED_BF16_PRODUCT, SERVED_RECIP, SERVED_NO_FLOOR };

/* One group of n (token, 128 columns) of the op: gate g[j], up u[j] (bf16 values), expf moved
 * by ulps[j]; fp32 products into r, codes into q; returns the scale. */
static float vllm_silu_mul_quant(const float *g, const float *u, const int *ulps, int n, int mut,
                                 float *r, uint8_t *q) {
    float amax = 0.0f;
    for (int j = 0; j < n; j++) {
        float sig = 1.0f / (1.0f + expf_moved(-g[j], ulps[j]));
        float silu = g[j] * sig;
        r[j] = silu * u[j];
        if (mut == SERVED_BF16_PRODUCT) r[j] = mf_bf16_to_f32(mf_f32_to_bf16(r[j]));
        amax = fmaxf(amax, fabsf(r[j]));
    }
    float s = amax / 448.0f;
    if (mut != SERVED_NO_FLOOR) s = fmaxf(s, 1.0f / (448.0f * 512.0f));
    float inv = 1.0f / s;
    for (int j = 0; j < n; j++) {
        float v = mut == SERVED_RECIP ? r[j] * inv : r[j] / s;
        q[j] = mf_fp8_encode(MF_FP8_E4M3, (double)fmaxf(-448.0f, fminf(v, 448.0f)), 1);
    }
    return s;
}

static float rand_bf16_around(float a, int steps) {
    uint16_t b = mf_f32_to_bf16(a);
    for (int i = 0; i < steps; i++) b = mf_bf16_next_up(b);
    return mf_bf16_to_f32(b);
}

static void test_quant_served(int cases) {
    const mf_contract *sc = mf_contract_find("vllm-0.33-triton-fp8-served-sm90");
    EXPECT(sc != NULL, "contract vllm-0.33-triton-fp8-served-sm90 missing");
    if (!sc) return;
    EXPECT(sc->fp8_act_fused == 1 && sc->fp8_scale_floor == 1.0f / (448.0f * 512.0f),
           "served contract: fused %d, floor %a", sc->fp8_act_fused, (double)sc->fp8_scale_floor);
    const mf_fp8_quant qh = {MF_FP8_E4M3, 0, 0.0f, 0, 0, 0, 0, sc->fp8_scale_floor};
    enum { N = 128 };
    float glo[N], ghi[N], ulo[N], uhi[N], lo[N], hi[N], rep[N], g[N], u[N], r[N];
    uint8_t rq[N], q[N], qm[N];
    double dlo[N], dhi[N];
    int ul[N];
    int floored = 0, differs[4] = {0, 0, 0, 0};
    for (int c = 0; c < cases; c++) {
        /* tiny: every |silu(g) u| below 2^-9, where the floor sets the scale */
        int tiny = c % 4 == 3;
        for (int j = 0; j < N; j++) {
            float a = (float)(unif() * 16 - 10), b = rand_act();
            if (tiny) b = (float)ldexp(unif() * 2 - 1, -12 - (int)(rnd() % 10));
            int wide = rnd() % 3 == 0;
            glo[j] = mf_bf16_to_f32(mf_f32_to_bf16(a));
            ghi[j] = wide ? rand_bf16_around(glo[j], 1 + (int)(rnd() % 3)) : glo[j];
            if (j % 16 == 5) { /* a gate range across zero's binades: the box enclosure */
                glo[j] = -(float)ldexp(1.0, -(int)(rnd() % 12) - 8);
                ghi[j] = (float)ldexp(1.0, -(int)(rnd() % 12) - 6);
            }
            ulo[j] = mf_bf16_to_f32(mf_f32_to_bf16(b));
            uhi[j] = wide ? rand_bf16_around(ulo[j], 1 + (int)(rnd() % 2)) : ulo[j];
            if (ghi[j] < glo[j] || uhi[j] < ulo[j]) ghi[j] = glo[j], uhi[j] = ulo[j];
            int rc = mf_silu_mul_f32_range(mf_f32_to_bf16(glo[j]), mf_f32_to_bf16(ghi[j]), ulo[j],
                                           uhi[j], sc->exp_ulps, mf_f32_to_bf16(glo[j]), ulo[j],
                                           &lo[j], &hi[j], &rep[j]);
            EXPECT(rc == 0 && lo[j] <= rep[j] && rep[j] <= hi[j],
                   "silu * up enclosure: rc %d, %a not in [%a, %a]", rc, (double)rep[j],
                   (double)lo[j], (double)hi[j]);
        }
        mf_fp8_group_iv gv;
        mf_fp8_quant_group_iv(&qh, lo, hi, rep, N, &gv, rq, dlo, dhi);
        /* the op on inputs drawn from the intervals, expf anywhere within 2 ulps */
        for (int smp = 0; smp < 8; smp++) {
            for (int j = 0; j < N; j++) {
                g[j] = rnd() & 1 ? glo[j] : ghi[j];
                if (rnd() & 1) { /* a bf16 value inside the range */
                    g[j] = mf_bf16_to_f32(mf_f32_to_bf16(glo[j] + (ghi[j] - glo[j]) * (float)unif()));
                    g[j] = fminf(fmaxf(g[j], glo[j]), ghi[j]);
                }
                u[j] = rnd() & 1 ? ulo[j] : uhi[j];
                ul[j] = (int)(rnd() % 5) - 2;
            }
            float s = vllm_silu_mul_quant(g, u, ul, N, SERVED_OK, r, q);
            EXPECT(s >= gv.s_lo[0] && s <= gv.s_hi[0], "served scale %a outside [%a, %a]",
                   (double)s, (double)gv.s_lo[0], (double)gv.s_hi[0]);
            for (int j = 0; j < N; j++) {
                double d = mf_fp8_decode(MF_FP8_E4M3, q[j]) * s;
                EXPECT(r[j] >= lo[j] && r[j] <= hi[j], "served product %a outside [%a, %a]",
                       (double)r[j], (double)lo[j], (double)hi[j]);
                EXPECT(d >= dlo[j] && d <= dhi[j], "served elem %d gives %a outside [%a, %a]", j,
                       d, dlo[j], dhi[j]);
            }
        }
        /* points, expf correctly rounded: decided, the representative is the op code for code */
        for (int j = 0; j < N; j++) ul[j] = 0;
        int amb = mf_fp8_quant_group_iv(&qh, rep, rep, rep, N, &gv, rq, dlo, dhi);
        float s = vllm_silu_mul_quant(glo, ulo, ul, N, SERVED_OK, r, q);
        EXPECT(amb == 0 && gv.rep_s == s && !memcmp(rq, q, N) && !memcmp(r, rep, sizeof r),
               "served op on points: %d undecided, scale %a vs %a", amb, (double)gv.rep_s,
               (double)s);
        floored += s == sc->fp8_scale_floor;
        for (int m = SERVED_BF16_PRODUCT; m <= SERVED_NO_FLOOR; m++) {
            float sm = vllm_silu_mul_quant(glo, ulo, ul, N, m, r, qm);
            int diff = 0;
            for (int j = 0; j < N; j++)
                diff |= mf_fp8_decode(MF_FP8_E4M3, qm[j]) * sm !=
                        mf_fp8_decode(MF_FP8_E4M3, q[j]) * s;
            differs[m] += diff;
        }
    }
    /* groups aimed at e4m3 midpoints: y within 2 fp32 ulps of (k + 1/2) 2^-3 s, where
     * fl(y / s) and fl(y fl(1 / s)) may round to different codes */
    mf_fp8_quant qr = qh;
    qr.recip = 1;
    int aimed = 0;
    for (int c = 0; c < cases; c++) {
        float y[N];
        y[0] = rand_act();
        float s = fmaxf(fabsf(y[0]) / 448.0f, sc->fp8_scale_floor);
        for (int j = 1; j < N; j++) {
            float mid = (float)((8 + (int)(rnd() % 8)) * 2 + 1) * 0x1p-4f; /* in [1, 2) */
            y[j] = ldexpf(mid, -(int)(rnd() % 6)) * s;
            for (int k = (int)(rnd() % 5) - 2; k != 0; k += k > 0 ? -1 : 1)
                y[j] = nextafterf(y[j], k > 0 ? INFINITY : 0.0f);
            if (fabsf(y[j]) > fabsf(y[0])) y[j] = y[0];
        }
        float s1 = mf_fp8_quant_group(&qh, y, N, q), s2 = mf_fp8_quant_group(&qr, y, N, qm);
        aimed += s1 != s2 || memcmp(q, qm, N) != 0;
    }
    EXPECT(floored > 0, "no group's scale was the floor");
    EXPECT(differs[SERVED_BF16_PRODUCT] > 0 && aimed > 0 && differs[SERVED_NO_FLOOR] > 0,
           "a rule of the fused op is never observable: bf16 product %d, reciprocal %d (aimed), "
           "no floor %d groups", differs[1], aimed, differs[3]);
    printf("fused silu_and_mul quantizer: of %d groups, %d floored; dequantized values differ "
           "with the product rounded to bf16 on %d, with the reciprocal on %d (%d of %d groups "
           "aimed at e4m3 midpoints), without the floor on %d\n", cases, floored, differs[1],
           differs[2], aimed, cases, differs[3]);
}

int main(int argc, char **argv) {
    int cases = argc > 1 ? atoi(argv[1]) : 2000;
    if (cases < 1) {
        fprintf(stderr, "usage: test_fp8 [cases >= 1]\n");
        return 2;
    }
    test_formats();
    test_quant_iv(cases);
    test_quant_vllm(cases);
    test_quant_served(cases);
    test_dot(cases);
    test_mxfp4();
    return mf_test_exit("test_fp8");
}
