/* test_hopper_model.c: the host model of hopper_model.h reproduces the designed experiments
 * measured on an H200 and an H100 (docs/notes/hopper-accumulation.md, tables E1-E7; 0
 * mismatches there), and the alternatives differ where the measurements say they do.
 *
 * CPU only: it checks the model that the Hopper probe tests against hardware and that the CPU
 * emulator of the kernel uses for every mma. Exit 0 or 1.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "hopper_model.h"

static const hm_hypothesis H16F25 = {"B=16 F=25 RZ", 16, 25, 0};
static const hm_hypothesis H16F25RN = {"B=16 F=25 RN", 16, 25, 1};
static const hm_hypothesis H16F26 = {"B=16 F=26 RZ", 16, 26, 0};
static const hm_hypothesis A8F25 = {"2x8 F=25 RZ", 8, 25, 0};

static uint16_t bf(double v) { /* bf16 bits of an exactly representable value */
    float f = (float)v;
    uint32_t u;
    memcpy(&u, &f, 4);
    return (uint16_t)(u >> 16);
}

typedef struct vec {
    float c;
    uint16_t a[64], b[64];
    int K;
} vec;

static void vinit(vec *v, int K, double c) {
    memset(v, 0, sizeof *v);
    v->K = K;
    v->c = (float)c;
}
static void put(vec *v, int slot, double a, double b) {
    v->a[slot] = bf(a);
    v->b[slot] = bf(b);
}

static int fails;

static void expect(const char *id, const hm_hypothesis *h, const vec *v, double want) {
    float got = hm_dot(h, v->c, v->a, v->b, v->K);
    if ((double)got != want) {
        printf("FAIL %-8s %-14s got %a want %a\n", id, h->name, (double)got, want);
        fails++;
    }
}

int main(void) {
    const double ulp = 0x1p-23;
    vec v;
    /* E1: final rounding toward zero */
    vinit(&v, 16, 1.0);
    put(&v, 0, 1.5 * 0x1p-12, 0x1p-12);
    expect("E1a", &H16F25, &v, 1.0);
    expect("E1a", &H16F25RN, &v, 1.0 + ulp);
    vinit(&v, 16, -1.0);
    put(&v, 0, -1.5 * 0x1p-12, 0x1p-12);
    expect("E1b", &H16F25, &v, -1.0);
    vinit(&v, 16, 1.5 * 0x1p-24);
    put(&v, 0, 1.0, 1.0);
    expect("E1c", &H16F25, &v, 1.0);
    vinit(&v, 16, 0.0);
    put(&v, 0, 1.0, 1.0);
    put(&v, 5, 1.5 * 0x1p-12, 0x1p-12);
    expect("E1e", &H16F25, &v, 1.0);
    vinit(&v, 16, 1.0 + ulp);
    put(&v, 0, 0x1p-12, 0x1p-12);
    expect("E1g", &H16F25, &v, 1.0 + ulp);
    vinit(&v, 16, 3.0);
    put(&v, 0, 1.75 * 0x1p-12, 0x1p-11);
    expect("E1h", &H16F25, &v, 3.0);
    vinit(&v, 16, 2.0 - ulp);
    for (int i = 0; i < 16; i++) put(&v, i, 1.9921875, 1.9921875);
    expect("E7b", &H16F25, &v, 65.5009765625 - 0x1p-17);
    vinit(&v, 16, 1.5);
    for (int i = 0; i < 16; i++) put(&v, i, 1.9921875, 1.9921875);
    expect("E7a", &H16F25, &v, 65.0009765625);
    /* E2: fraction bits, C = 1 + n x 2^-m */
    const int ns[] = {1, 2, 4, 8, 15, 16};
    const int tc[4][6] = {{0, 1, 2, 4, 7, 8}, {0, 0, 1, 2, 3, 4}, {0}, {0}}; /* ulps, m=24..27 */
    for (int m = 24; m <= 27; m++)
        for (int j = 0; j < 6; j++) {
            vinit(&v, 16, 1.0);
            for (int i = 0; i < ns[j]; i++) put(&v, i, 0x1p-12, ldexp(1.0, -(m - 12)));
            char id[32];
            snprintf(id, sizeof id, "E2.%d.%d", m, ns[j]);
            expect(id, &H16F25, &v, 1.0 + tc[m - 24][j] * ulp);
        }
    vinit(&v, 16, 1.0);
    put(&v, 0, -0x1p-12, 0x1p-13);
    expect("E2-25", &H16F25, &v, 1.0 - 0x1p-24);
    vinit(&v, 16, 1.0);
    put(&v, 0, -0x1p-12, 0x1p-14);
    expect("E2-26", &H16F25, &v, 1.0);
    expect("E2-26", &H16F26, &v, 1.0 - 0x1p-24);
    /* E3a: one fused block of 16, whatever the slot of the large term */
    for (int i = 0; i < 16; i++) {
        vinit(&v, 16, 0.0);
        for (int s = 0; s < 16; s++) put(&v, s, s == i ? 1.0 : 0x1p-13, s == i ? 1.0 : 0x1p-13);
        expect("E3a", &H16F25, &v, 1.0);
        if (i >= 8) expect("E3a", &A8F25, &v, 1.0 + ulp);
    }
    /* E4: alignment to the exponent fields */
    vinit(&v, 16, 0x1p-30);
    put(&v, 0, 1.0, 1.0);
    put(&v, 1, -1.0, 1.0);
    expect("E4a", &H16F25, &v, 0.0);
    vinit(&v, 16, -0x1p-25);
    put(&v, 0, 1.5, 1.5);
    expect("E4f", &H16F25, &v, 2.25 - 0x1p-22);
    vinit(&v, 16, 0.0);
    put(&v, 0, 1.5, 1.5);
    put(&v, 1, -0x1p-12, 0x1p-13);
    expect("E4g", &H16F25, &v, 2.25 - 0x1p-22);
    vinit(&v, 16, 2.0);
    put(&v, 0, -0x1p-12, 0x1p-13);
    expect("E4i", &H16F25, &v, 2.0);
    /* E5: subnormals, no flush */
    vinit(&v, 16, 0.0);
    put(&v, 0, 0x1p-70, 0x1p-70);
    expect("E5c", &H16F25, &v, 0x1p-140);
    vinit(&v, 16, 0.0);
    put(&v, 0, 1.5 * 0x1p-75, 0x1p-74);
    expect("E5d", &H16F25, &v, 0x1p-149);
    vinit(&v, 16, -0x1p-25);
    put(&v, 0, 0x1p-127, 0x1p127);
    expect("E5k", &H16F25, &v, 1.0);
    vinit(&v, 16, 0.0);
    for (int i = 0; i < 16; i++) put(&v, i, 0x1p-70, 0x1p-80);
    expect("E5l", &H16F25, &v, 0x1p-146);
    vinit(&v, 16, 3 * 0x1p-149);
    put(&v, 0, -0x1p-75, 0x1p-76);
    expect("E5o", &H16F25, &v, 2 * 0x1p-149);
    vinit(&v, 16, 0x1p-126);
    put(&v, 0, -0x1p-127, 0x1p-24);
    expect("E5r", &H16F25, &v, 0x1p-126 - 0x1p-149);
    /* E6: chains of k16 steps, RZ to fp32 between steps */
    vinit(&v, 64, 1.0);
    for (int s = 0; s < 4; s++) put(&v, 16 * s, 1.5 * 0x1p-12, 0x1p-12);
    expect("E6a", &H16F25, &v, 1.0);
    vinit(&v, 64, 1.0);
    put(&v, 0, -0x1p-12, 0x1p-13);
    put(&v, 16, 0x1p-12, 0x1p-13);
    expect("E6b", &H16F25, &v, 1.0 - 0x1p-24);
    vinit(&v, 64, 1.0);
    for (int s = 0; s < 4; s++)
        for (int i = 1; i < 16; i++) put(&v, 16 * s + i, 1.5 * 0x1p-12, 0x1p-12);
    expect("E6d", &H16F25, &v, 1.0 + 44 * ulp);
    vinit(&v, 32, 0.0);
    put(&v, 0, 1.0, 1.0);
    put(&v, 1, -1.0, 1.0);
    put(&v, 16, 0x1p-15, 0x1p-15);
    expect("E6e", &H16F25, &v, 0x1p-30);
    vinit(&v, 48, -1.0);
    for (int s = 0; s < 3; s++) put(&v, 16 * s, -1.5 * 0x1p-12, 0x1p-12);
    expect("E6g", &H16F25, &v, -1.0);
    printf("hopper model vs the measured experiments: %s\n", fails ? "FAIL" : "all match");
    return fails ? 1 : 0;
}
