/* test_hopper_fp8_bound.c: the reference's bound for the FP8 tensor-core contract (hopper-tc-fp8,
 * reference/fp8.c mf_fp8_dot_acc) holds for the measured H100 model of wgmma k32
 * (hopper_fp8_model.h, B=32 F=13 RZ fused P=14), and how tight it is.
 *
 * CPU only. Block dots of e4m3 codes (K blocks of 32 to 128, a partial last step), drawn from
 * random codes, a wide exponent range with subnormals, cancelling halves, one large product
 * among small ones, subnormal operands only, and partial sums near powers of two; single blocks
 * (the partial alone) and rows of several blocks with fp32 scales (the kernel's
 * fl(fl(P s_a) s_w) added in fp32), exact and with perturbed activations (other codes and
 * scale within the per-element radius). Every kernel result must lie within the radius; the
 * largest |kernel - exact| / radius is printed and must exceed 1/16 on the single blocks (a
 * bound looser than that on every case would be vacuous for this model).
 *   test_hopper_fp8_bound [N]   (N dot products per family, default 4000)
 * Exit 0 or 1.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fp8.h"
#include "hopper_fp8_model.h"

static uint64_t rs = 20261207;
static uint64_t rnd(void) {
    uint64_t z = (rs += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}
static int rint_(int n) { return (int)(rnd() % (uint64_t)n); }

/* a finite e4m3 code with exponent field in [e0, e1] (0: subnormal) and a random sign */
static uint8_t code(int e0, int e1) {
    int e = e0 + rint_(e1 - e0 + 1), m = rint_(8);
    if (e == 15 && m == 7) m = 6;
    if (e == 0 && m == 0) m = 1;
    return (uint8_t)((rnd() & 1) << 7 | e << 3 | m);
}

static const h8_hypothesis MEASURED = {32, 13, 0, 0, 0, 14};
static const mf_fp8_acc ACC = {32, 13, 14, 0};

/* the kernel's partial of one block: a chain of k32 steps from 0, zero-padded */
static float tc_partial(const uint8_t *a, const uint8_t *b, int n) {
    uint8_t pa[4096 + 32] = {0}, pb[4096 + 32] = {0};
    memcpy(pa, a, (size_t)n);
    memcpy(pb, b, (size_t)n);
    return h8_dot(&MEASURED, H8_E4M3, 0.0f, pa, pb, (n + 31) / 32 * 32);
}

enum { RANDOM, WIDE, CANCEL, SPIKE, SUBNORMAL, POW2, NFAM };
static const char *const fam_name[NFAM] = {"random", "wide", "cancel", "spike", "subnormal",
                                           "pow2-partials"};

static void draw(int fam, uint8_t *a, uint8_t *b, int n) {
    for (int j = 0; j < n; j++) {
        switch (fam) {
        case RANDOM: a[j] = code(1, 15), b[j] = code(1, 15); break;
        case WIDE: a[j] = code(0, 15), b[j] = code(0, 15); break;
        case CANCEL:
            a[j] = code(4, 12), b[j] = code(4, 12);
            if (j >= n / 2) {
                a[j] = a[j - n / 2] ^ 0x80, b[j] = b[j - n / 2];
                if (rint_(8) == 0) a[j] = code(0, 6); /* a small residue */
            }
            break;
        case SPIKE:
            a[j] = code(0, 5), b[j] = code(0, 8);
            if (rint_(32) == 0) a[j] = code(13, 15), b[j] = code(12, 15);
            break;
        case SUBNORMAL: a[j] = code(0, 0), b[j] = code(0, 2); break;
        default: /* products of one binade, equal signs: partial sums cross powers of two */
            a[j] = (uint8_t)(8 << 3 | rint_(8)), b[j] = (uint8_t)(7 << 3 | rint_(8));
            if (rint_(4) == 0) a[j] |= 0x80;
        }
        if (rint_(16) == 0) a[j] = 0; /* zero terms take no part */
    }
}

static double exact_partial(const uint8_t *a, const uint8_t *b, int n) {
    double s = 0;
    for (int j = 0; j < n; j++) s += mf_fp8_decode(MF_FP8_E4M3, a[j]) * mf_fp8_decode(MF_FP8_E4M3, b[j]);
    return s; /* exact: multiples of 2^-18 below 2^35 */
}

static int fails;
static double worst_block[NFAM], worst_row[NFAM], worst_pert[NFAM];

int main(int argc, char **argv) {
    int N = argc > 1 ? atoi(argv[1]) : 4000;
    if (N < 1) {
        fprintf(stderr, "usage: test_hopper_fp8_bound [N >= 1]\n");
        return 2;
    }
    mf_fp8_dot_ws *ws = mf_fp8_dot_ws_new();
    static const int sizes[] = {32, 64, 96, 128, 100, 17};
    long checked = 0;
    for (int fam = 0; fam < NFAM; fam++) {
        for (int it = 0; it < N; it++) {
            int bk = sizes[it % 6], nb = 1 + rint_(4), n = bk * nb - rint_(bk);
            uint8_t a[512], b[512], a2[512];
            float sa[8], sw[8], sa2[8];
            double delta[512];
            draw(fam, a, b, n);
            /* 1. one block, unit scales: the partial against mf_fp8_tc_block_bound */
            {
                int m = n < bk ? n : bk;
                double ex = exact_partial(a, b, m);
                double got = tc_partial(a, b, m);
                double bound = mf_fp8_tc_block_bound(&ACC, a, b, NULL, 1.0, (size_t)m);
                double r = fabs(got - ex);
                if (r > bound) {
                    printf("FAIL %s block n=%d: |%a - %a| = %a > bound %a\n", fam_name[fam], m, got,
                           ex, r, bound);
                    fails++;
                }
                if (bound > 0 && r / bound > worst_block[fam]) worst_block[fam] = r / bound;
                checked++;
            }
            /* 2. a row of blocks with fp32 scales: the kernel's epilogue per block */
            for (int k = 0; k < nb; k++) {
                sa[k] = ldexpf(1.0f + (float)rint_(1 << 20) * 0x1p-20f, rint_(16) - 8);
                sw[k] = ldexpf(1.0f + (float)rint_(1 << 20) * 0x1p-20f, rint_(16) - 12);
            }
            float acc = 0.0f;
            for (int k = 0, j0 = 0; j0 < n; k++, j0 += bk) {
                int m = n - j0 < bk ? n - j0 : bk;
                volatile float t = tc_partial(a + j0, b + j0, m) * sa[k];
                t = t * sw[k];
                acc = acc + t;
            }
            mf_fp8_dot_out o;
            mf_fp8_dot_acc(ws, a, sa, NULL, b, sw, (size_t)n, bk, &ACC, &o);
            double r = fabs((double)acc - o.hi - o.lo);
            if (!(r <= o.radius)) {
                printf("FAIL %s row n=%d bk=%d: |%a - %a| = %a > radius %a\n", fam_name[fam], n, bk,
                       (double)acc, o.hi, r, o.radius);
                fails++;
            }
            if (o.radius > 0 && r / o.radius > worst_row[fam]) worst_row[fam] = r / o.radius;
            /* 3. perturbed activations: other codes (one step up or down) and, per block, the
             * scale doubled with the codes halved where exact; delta covers the difference */
            for (int k = 0, j0 = 0; j0 < n; k++, j0 += bk) {
                int m = n - j0 < bk ? n - j0 : bk, dbl = rint_(2);
                sa2[k] = dbl ? 2 * sa[k] : sa[k];
                for (int j = j0; j < j0 + m; j++) {
                    double v = mf_fp8_decode(MF_FP8_E4M3, a[j]) * sa[k];
                    uint8_t q = a[j];
                    if (rint_(4) == 0 && (q & 0x7f) < 0x7e) q++;
                    double v2 = mf_fp8_decode(MF_FP8_E4M3, q);
                    uint8_t q2 = mf_fp8_encode(MF_FP8_E4M3, dbl ? v2 / 2 : v2, 1);
                    a2[j] = q2;
                    delta[j] = fabs(mf_fp8_decode(MF_FP8_E4M3, q2) * sa2[k] - v);
                }
            }
            acc = 0.0f;
            for (int k = 0, j0 = 0; j0 < n; k++, j0 += bk) {
                int m = n - j0 < bk ? n - j0 : bk;
                volatile float t = tc_partial(a2 + j0, b + j0, m) * sa2[k];
                t = t * sw[k];
                acc = acc + t;
            }
            mf_fp8_dot_acc(ws, a, sa, delta, b, sw, (size_t)n, bk, &ACC, &o);
            r = fabs((double)acc - o.hi - o.lo);
            if (!(r <= o.radius)) {
                printf("FAIL %s perturbed n=%d bk=%d: |%a - %a| = %a > radius %a\n",
                       fam_name[fam], n, bk, (double)acc, o.hi, r, o.radius);
                fails++;
            }
            if (o.radius > 0 && r / o.radius > worst_pert[fam]) worst_pert[fam] = r / o.radius;
            checked += 2;
            if (fails > 20) break;
        }
    }
    printf("measured model B=32 F=13 RZ fused P=14 against the hopper-tc-fp8 bound, %ld dots\n",
           checked);
    printf("largest |kernel - exact| / radius:   block     row       perturbed\n");
    double best = 0;
    for (int fam = 0; fam < NFAM; fam++) {
        printf("  %-14s                   %.4f    %.4f    %.4f\n", fam_name[fam], worst_block[fam],
               worst_row[fam], worst_pert[fam]);
        if (worst_block[fam] > best) best = worst_block[fam];
    }
    if (best <= 1.0 / 16) {
        printf("FAIL: the bound is looser than 16x on every single block\n");
        fails++;
    }
    mf_fp8_dot_ws_free(ws);
    printf(fails ? "FAILED (%d)\n" : "ok\n", fails);
    return fails ? 1 : 0;
}
