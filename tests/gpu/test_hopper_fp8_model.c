/* test_hopper_fp8_model.c: the host models of hopper_fp8_model.h compute what they say, so that
 * the FP8 probe's verdict (tests/gpu/probe_hopper_fp8.cu) means what docs/hopper-probe.md says.
 *
 * CPU only. Checks: FP8 decoding against the formats' definitions; every hypothesis exact where
 * nothing is lost (small integers); the designed experiments' predictions (D1 fraction bits of a
 * fused C, D3 the block, D4 the final rounding) per hypothesis; the one-rounding add of the
 * C-apart hypotheses against double arithmetic where that is exact; and, given the measured
 * samples (tests/gpu/data/h100-fp8-{e4m3,e5m2}.bin: the 97 designed experiments and every 25th
 * random dot product of the H100 run in docs/hopper-probe.md), that the measured model
 * (B=32 F=13 RZ fused P=14) reproduces every one of them and its neighbours do not.
 *   test_hopper_fp8_model [DATA_DIR]
 * Exit 0 or 1.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "hopper_fp8_model.h"

static int fails;
#define CHECK(cond, ...)                          \
    do {                                          \
        if (!(cond)) {                            \
            printf("FAIL line %d: ", __LINE__);   \
            printf(__VA_ARGS__);                  \
            printf("\n");                         \
            fails++;                              \
        }                                         \
    } while (0)

static uint8_t enc(double v, h8_format f) {
    for (int x = 0; x < 256; x++)
        if (!h8_nonfinite((uint8_t)x, f) && h8_value((uint8_t)x, f) == v && !(v == 0 && x))
            return (uint8_t)x;
    printf("FAIL: %a not representable\n", v);
    fails++;
    return 0;
}

static uint64_t rs = 12345;
static uint64_t rnd(void) {
    uint64_t z = (rs += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* The records of a --dump file (K, C, the card's result, a[K], b[K]): how many the hypothesis
 * reproduces, of how many; -1 if the file cannot be read or is malformed. */
static long replay(const char *path, h8_format f, const h8_hypothesis *h, long *total) {
    FILE *fp = fopen(path, "rb");
    if (!fp) return -1;
    long ok = 0;
    *total = 0;
    for (;;) {
        int32_t K;
        float c, got;
        uint8_t a[128], b[128];
        if (fread(&K, 4, 1, fp) != 1) break;
        if (K <= 0 || K > 128 || K % 32 || fread(&c, 4, 1, fp) != 1 ||
            fread(&got, 4, 1, fp) != 1 || fread(a, 1, (size_t)K, fp) != (size_t)K ||
            fread(b, 1, (size_t)K, fp) != (size_t)K) {
            fclose(fp);
            return -1;
        }
        const float m = h8_dot(h, f, c, a, b, K);
        ok += m == got || (m == 0 && got == 0) || !memcmp(&m, &got, 4);
        (*total)++;
    }
    fclose(fp);
    return ok;
}

int main(int argc, char **argv) {
    /* decoding: e4m3 max 448, min subnormal 2^-9, NaN 0x7f; e5m2 max 57344, Inf 0x7c */
    CHECK(h8_value(0x7e, H8_E4M3) == 448, "e4m3 0x7e");
    CHECK(h8_value(0x01, H8_E4M3) == ldexp(1, -9), "e4m3 0x01");
    CHECK(h8_value(0x08, H8_E4M3) == ldexp(1, -6), "e4m3 0x08");
    CHECK(h8_value(0xb8, H8_E4M3) == -1, "e4m3 0xb8");
    CHECK(h8_nonfinite(0x7f, H8_E4M3) && h8_nonfinite(0xff, H8_E4M3) &&
              !h8_nonfinite(0x7e, H8_E4M3),
          "e4m3 NaN");
    CHECK(h8_value(0x7b, H8_E5M2) == 57344, "e5m2 0x7b");
    CHECK(h8_value(0x01, H8_E5M2) == ldexp(1, -16), "e5m2 0x01");
    CHECK(h8_nonfinite(0x7c, H8_E5M2) && !h8_nonfinite(0x7b, H8_E5M2), "e5m2 Inf");

    static const int blocks[4] = {32, 16, 8, 4};
    for (int fi = 0; fi < 2; fi++) {
        const h8_format f = fi ? H8_E5M2 : H8_E4M3;
        for (int sep = 0; sep < 2; sep++)
            for (int bi = 0; bi < 4; bi++)
                for (int F = 10; F <= 25; F++)
                    for (int rn = 0; rn < 2; rn++) {
                        const h8_hypothesis h = {blocks[bi], F, rn, sep, 0, 0};
                        /* small integers: exact */
                        for (int trial = 0; trial < 4; trial++) {
                            uint8_t a[128], b[128];
                            for (int k = 0; k < 128; k++) {
                                a[k] = enc((double)((int)(rnd() % 9) - 4), f);
                                b[k] = enc((double)((int)(rnd() % 9) - 4), f);
                            }
                            float c = (float)((int)(rnd() % 17) - 8);
                            double want = 0;
                            for (int k = 0; k < 128; k++) want += h8_value(a[k], f) * h8_value(b[k], f);
                            want += c;
                            CHECK(h8_dot(&h, f, c, a, b, 128) == (float)want,
                                  "exact small integers B=%d F=%d rn=%d sep=%d", h.block, F, rn, sep);
                        }
                        /* D1: C = 2^m + 1 x 1 */
                        for (int m = 0; m <= 30; m++) {
                            uint8_t a[32] = {0}, b[32] = {0};
                            a[0] = b[0] = enc(1, f);
                            const float got = h8_dot(&h, f, ldexpf(1, m), a, b, 32);
                            float want;
                            if (sep)
                                want = m <= 23 ? ldexpf(1, m) + 1
                                       : rn    ? (m == 24 ? ldexpf(1, m) : ldexpf(1, m))
                                               : ldexpf(1, m);
                            else
                                want = m <= F && m <= 23 ? ldexpf(1, m) + 1 : ldexpf(1, m);
                            CHECK(got == want, "D1 m=%d B=%d F=%d rn=%d sep=%d: %a", m, h.block, F,
                                  rn, sep, (double)got);
                        }
                        /* D3: +-2^16 in slots i, i+1, 2^-12 elsewhere: each other block's small
                         * products sum exactly; in the cancelling block (aligned to 2^16) they
                         * are lost for F < 28, and so is a fused accumulator: fused, only the
                         * blocks after it count; C apart, every other block counts */
                        for (int i = 0; i < 32; i += 2) {
                            uint8_t a[32], b[32];
                            for (int k = 0; k < 32; k++) a[k] = b[k] = enc(ldexp(1, -6), f);
                            a[i] = b[i] = b[i + 1] = enc(256, f);
                            a[i + 1] = enc(-256, f);
                            const int before = i / h.block * h.block,
                                      after = 32 - before - h.block;
                            /* fused: the accumulator of the blocks before, truncated to the grid
                             * 2^(16 - F) of the cancelling block */
                            const double kept_before =
                                sep ? ldexp(before, -12)
                                    : floor(ldexp(before, -12 - (16 - F))) * ldexp(1, 16 - F);
                            const float got = h8_dot(&h, f, 0, a, b, 32);
                            CHECK(got == (float)(kept_before + ldexp(after, -12)), "D3 i=%d B=%d F=%d sep=%d: %a",
                                  i, h.block, F, sep, (double)got);
                        }
                        /* D4: C = 2^8 + 1.5 x 2^-16 (0.75 ulp): fused, F = 24 truncates it to half
                         * an ulp (a tie, to even: C) and F >= 25 keeps it */
                        {
                            uint8_t a[32] = {0}, b[32] = {0};
                            a[5] = enc(f == H8_E4M3 ? 3 * ldexp(1, -9) : 1.5 * ldexp(1, -8), f);
                            b[5] = enc(f == H8_E4M3 ? 2 * ldexp(1, -9) : ldexp(1, -8), f);
                            const float got = h8_dot(&h, f, 256, a, b, 32);
                            const int kept = sep || F >= 25;
                            const float want = kept && rn ? 256 + ldexpf(1, -15) : 256;
                            CHECK(got == want, "D4 B=%d F=%d rn=%d sep=%d: %a", h.block, F, rn, sep,
                                  (double)got);
                        }
                    }
    }
    /* C-apart add against double arithmetic where it is exact (span < 53 bits) */
    for (int trial = 0; trial < 50000; trial++) {
        const int e = (int)(rnd() % 40) - 20;
        float c = ldexpf((float)(rnd() & 0xffffff) / 16777216.0f + 1, e);
        if (rnd() & 1) c = -c;
        int64_t S = (int64_t)(rnd() % (1u << 20)) - (1 << 19);
        const int g = e - 23 - (int)(rnd() % 25);
        hm_term ct;
        if (!hm_f32_term(c, &ct) || S == 0) continue;
        const double exact = (double)c + ldexp((double)S, g); /* exact: spans < 53 bits */
        for (int rn = 0; rn < 2; rn++) {
            const float got = h8_add_round(ct, S, g, rn, 0);
            float want = (float)exact; /* RN */
            if (!rn && fabs((double)want) > fabs(exact))
                want = nextafterf(want, 0); /* RZ: the RN result's neighbour toward zero */
            CHECK(got == want, "add c=%a S=%lld g=%d rn=%d: %a want %a", (double)c, (long long)S,
                  g, rn, (double)got, (double)want);
            if (fails > 20) return 1;
        }
    }
    /* the H100 measurement: the model matches every sampled result, its neighbours do not */
    if (argc > 1) {
        static const char *const fmts[2] = {"e4m3", "e5m2"};
        for (int fi = 0; fi < 2; fi++) {
            char path[4096];
            snprintf(path, sizeof path, "%s/h100-fp8-%s.bin", argv[1], fmts[fi]);
            const h8_format f = fi ? H8_E5M2 : H8_E4M3;
            const h8_hypothesis measured = {32, 13, 0, 0, 0, 14};
            static const h8_hypothesis neighbours[] = {
                {32, 13, 1, 0, 0, 14}, {32, 13, 0, 0, 0, 15}, {32, 13, 0, 0, 0, 0},
                {32, 12, 0, 0, 0, 14}, {32, 14, 0, 0, 0, 14}, {16, 13, 0, 0, 0, 14}};
            long total = 0, ok = replay(path, f, &measured, &total);
            CHECK(ok >= 0 && total >= 1900 && ok == total, "%s: the measured model reproduces %ld of %ld",
                  path, ok, total);
            for (size_t i = 0; i < sizeof neighbours / sizeof neighbours[0]; i++) {
                long t2 = 0, ok2 = replay(path, f, &neighbours[i], &t2);
                CHECK(ok2 >= 0 && ok2 < t2, "%s: neighbour %zu reproduces every result (%ld)", path,
                      i, ok2);
            }
            printf("%s: B=32 F=13 RZ fused P=14 reproduces %ld of %ld measured results\n",
                   fmts[fi], ok, total);
        }
    }
    if (fails) {
        printf("%d failures\n", fails);
        return 1;
    }
    printf("hopper_fp8_model: decoding, exact cases, D1 D3 D4 predictions of 256 hypotheses x 2 "
           "formats, and 100000 one-rounding adds: ok\n");
    return 0;
}
