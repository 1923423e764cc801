/* probe_hopper_fp8.cu: how does Hopper's warpgroup MMA accumulate FP8 (e4m3, e5m2) products
 * into fp32? Measured on the card at hand through wgmma m64n8k32 (kernels/cuda/hopper.cuh:
 * wgmma_m64n8k32_f8, the kernel's 128-byte-swizzled descriptors), against the grid of bit-exact
 * host models of tests/gpu/hopper_fp8_model.h.
 *
 *   build/cuda/tests/gpu/probe_hopper_fp8 [--format e4m3|e5m2] [--seed N] [--quiet]
 *                                         [--expect "B=32 F=13 RZ fused P=14"] [--dump FILE]
 *   build/cuda/tests/gpu/probe_hopper_fp8 --format F --replay FILE   # no device: a dump judged again
 *
 * Steps (docs/hopper-probe.md, "FP8"):
 *   E0  layout: small-integer data (every result exact under every hypothesis with F >= 10)
 *       at K = 128; a mismatch stops the probe.
 *   D1  C = +-2^m (m = 0..30) plus one product 1 x 1: where the 1 is lost tells the fraction
 *       bits of a fused C, or shows that C is added apart.
 *   D2  C = 0, products +2^16, -2^16 and (1 + 7/8) 2^-j (j = 0..15): the third survives
 *       truncated to the grid 2^(16 - F): F among the products.
 *   D3  C = 0, products +2^16 and -2^16 in slots i, i + 1 (i even), 2^-12 in the 30 others:
 *       what survives counts the small products in blocks after the cancelling one: the block.
 *   D4  C = 2^8 (and negated) plus 1.5 x 2^-16 (0.75 ulp of C): RZ keeps C, RN rounds up.
 *   R   random validation: normal (exponents over the format's normal range, C alike), wide C,
 *       cancellation (C = -fl(exact) +- 0..2 ulps), subnormal operands; K = 32, 64 and 128.
 * Every result is compared with every hypothesis of the grid (fused block 32, 16, 8, 4;
 * fraction bits 10..25; final rounding RZ or RN; C fused, added apart, or aligned with the
 * products but kept to 24, 25, 26 bits or exactly; the step's result first rounded to 13, 14
 * or 15 significant bits, or not): 3072 hypotheses. Exact zeros compare equal whatever their
 * sign.
 * Output: one line per designed experiment, the hypotheses with the fewest mismatches, and the
 * verdict "measured: <surviving hypotheses> (0 mismatches in N)".
 * Exit: 0 at least one hypothesis matches every result (with --expect: and that one among
 * them), layout exact; 1 otherwise or on a CUDA error; 77 no device of compute capability 9.0
 * (1 under MOEFUZZ_REQUIRE_GPU=1).
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cuda_runtime.h>

#include "../../kernels/cuda/cuda_device.h"
#include "../../kernels/cuda/hopper.cuh"
#include "hopper_fp8_model.h"

#define CK(call)                                                                             \
    do {                                                                                     \
        cudaError_t e_ = (call);                                                             \
        if (e_ != cudaSuccess) {                                                             \
            fprintf(stderr, "probe_hopper_fp8: %s failed at line %d: %s\n", #call, __LINE__, \
                    cudaGetErrorString(e_));                                                 \
            exit(1);                                                                         \
        }                                                                                    \
    } while (0)

#define KMAX 128

/* One warpgroup per tile: A [64][K] and B [8][K] (bytes, K <= 128: one 128-byte row each) staged
 * K-major with the 128-byte swizzle, D = C + A B^T as a chain of K/32 wgmma steps. Warp w holds
 * rows 16 w + g and 16 w + g + 8: d[2 h + c] is row 16 w + g + 8 h, column 2 (lane % 4) + c. */
template <int E5M2>
static __global__ void __launch_bounds__(128) probe_kernel(const uint8_t *A, const uint8_t *B,
                                                           const float *C, float *D, int K) {
#if MF_HAVE_WGMMA
    __shared__ __align__(128) unsigned char raw[64 * 128 + 8 * 128 + 1024];
    const uint32_t sa = (smem_u32(raw) + 1023u) & ~1023u, sb = sa + 64 * 128;
    unsigned char *pa = raw + (sa - smem_u32(raw)), *pb = raw + (sb - smem_u32(raw));
    const int tile = blockIdx.x, tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const uint8_t *a = A + (size_t)tile * 64 * K, *b = B + (size_t)tile * 8 * K;
    for (int i = tid; i < 64 * 128; i += 128) {
        const int r = i / 128, k = i % 128;
        pa[wg_swz(r, k / 16) + k % 16] = k < K ? a[r * K + k] : 0;
    }
    for (int i = tid; i < 8 * 128; i += 128) {
        const int r = i / 128, k = i % 128;
        pb[wg_swz(r, k / 16) + k % 16] = k < K ? b[r * K + k] : 0;
    }
    fence_proxy_async();
    __syncthreads();
    const int g = lane >> 2, q = lane & 3;
    float acc[4];
    for (int h = 0; h < 2; h++)
        for (int c = 0; c < 2; c++)
            acc[2 * h + c] = C[(size_t)tile * 512 + (16 * warp + g + 8 * h) * 8 + 2 * q + c];
    wgmma_fence();
    for (int k0 = 0; k0 < K; k0 += 32) wgmma_m64n8k32_f8<E5M2>(acc, wg_desc(sa + k0), wg_desc(sb + k0));
    wgmma_commit();
    wgmma_wait<0>();
    wgmma_fence_acc(acc);
    for (int h = 0; h < 2; h++)
        for (int c = 0; c < 2; c++)
            D[(size_t)tile * 512 + (16 * warp + g + 8 * h) * 8 + 2 * q + c] = acc[2 * h + c];
#endif
}

/* ---- host ---- */

static h8_format fmtv = H8_E4M3;
static FILE *dump; /* --dump: every dot product measured, for offline analysis */

/* one record: K (int32), C (float), the hardware's result (float), a[K], b[K] */
static void dump_dot(int K, float c, float got, const uint8_t *a, const uint8_t *b) {
    if (!dump) return;
    int32_t k = K;
    fwrite(&k, 4, 1, dump), fwrite(&c, 4, 1, dump), fwrite(&got, 4, 1, dump);
    fwrite(a, 1, (size_t)K, dump), fwrite(b, 1, (size_t)K, dump);
}

typedef struct batch {
    int K, n;         /* n tiles of 64 x 8 outputs */
    uint8_t *A, *B;   /* [n][64][K], [n][8][K] */
    float *C, *D;     /* [n][64][8] */
} batch;

static void batch_init(batch *bt, int K, int n) {
    bt->K = K, bt->n = n;
    bt->A = (uint8_t *)calloc((size_t)n * 64 * K, 1);
    bt->B = (uint8_t *)calloc((size_t)n * 8 * K, 1);
    bt->C = (float *)calloc((size_t)n * 512, 4);
    bt->D = (float *)calloc((size_t)n * 512, 4);
    if (!bt->A || !bt->B || !bt->C || !bt->D) {
        fprintf(stderr, "probe_hopper_fp8: out of memory\n");
        exit(1);
    }
}

static void batch_free(batch *bt) { free(bt->A), free(bt->B), free(bt->C), free(bt->D); }

static void batch_run(batch *bt) {
    size_t na = (size_t)bt->n * 64 * bt->K, nb = (size_t)bt->n * 8 * bt->K, nc = (size_t)bt->n * 512;
    for (size_t i = 0; i < na; i++)
        if (h8_nonfinite(bt->A[i], fmtv)) {
            fprintf(stderr, "probe_hopper_fp8: internal error: a non-finite input\n");
            exit(1);
        }
    for (size_t i = 0; i < nb; i++)
        if (h8_nonfinite(bt->B[i], fmtv)) {
            fprintf(stderr, "probe_hopper_fp8: internal error: a non-finite input\n");
            exit(1);
        }
    uint8_t *A, *B;
    float *C, *D;
    CK(cudaMalloc(&A, na));
    CK(cudaMalloc(&B, nb));
    CK(cudaMalloc(&C, nc * 4));
    CK(cudaMalloc(&D, nc * 4));
    CK(cudaMemcpy(A, bt->A, na, cudaMemcpyHostToDevice));
    CK(cudaMemcpy(B, bt->B, nb, cudaMemcpyHostToDevice));
    CK(cudaMemcpy(C, bt->C, nc * 4, cudaMemcpyHostToDevice));
    if (fmtv == H8_E5M2)
        probe_kernel<1><<<bt->n, 128>>>(A, B, C, D, bt->K);
    else
        probe_kernel<0><<<bt->n, 128>>>(A, B, C, D, bt->K);
    CK(cudaGetLastError());
    CK(cudaMemcpy(bt->D, D, nc * 4, cudaMemcpyDeviceToHost));
    CK(cudaFree(A));
    CK(cudaFree(B));
    CK(cudaFree(C));
    CK(cudaFree(D));
}

/* ---- encodings ---- */

static int mbits(void) { return fmtv == H8_E4M3 ? 3 : 2; }
static int bias(void) { return fmtv == H8_E4M3 ? 7 : 15; }
static int emax_normal(void) { return fmtv == H8_E4M3 ? 8 : 15; }

/* the encoding of sign * (1 + f / 2^mbits) * 2^e (normal) or of a subnormal, exactly; exits if
 * the value is not representable */
static uint8_t enc(double v) {
    for (int x = 0; x < 256; x++)
        if (!h8_nonfinite((uint8_t)x, fmtv) && h8_value((uint8_t)x, fmtv) == v &&
            !(v == 0 && x != 0))
            return (uint8_t)x;
    fprintf(stderr, "probe_hopper_fp8: internal error: %a is not representable\n", v);
    exit(1);
}

static uint64_t rng_s;
static uint64_t rnd(void) {
    uint64_t z = (rng_s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}
static int rnd_in(int lo, int hi) { return lo + (int)(rnd() % (uint64_t)(hi - lo + 1)); }

static uint8_t rnd_normal(int emin, int emax) {
    for (;;) {
        int e = rnd_in(emin, emax);
        uint8_t x = (uint8_t)((rnd() & 1) << 7 | (unsigned)(e + bias()) << mbits() |
                              (rnd() & ((1u << mbits()) - 1)));
        if (!h8_nonfinite(x, fmtv)) return x;
    }
}
static uint8_t rnd_subnormal(void) {
    return (uint8_t)((rnd() & 1) << 7 | rnd_in(1, (1 << mbits()) - 1));
}
static float rnd_f32(int emin, int emax) {
    int e = rnd_in(emin, emax);
    uint32_t u =
        (uint32_t)(rnd() & 1) << 31 | (uint32_t)(e + 127) << 23 | (uint32_t)(rnd() & 0x7fffff);
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* ---- hypotheses ---- */

#define N_HYP (6 * 4 * 16 * 2 * 4)
static h8_hypothesis hyps[N_HYP];
static char hyp_name[N_HYP][48];


static void hyps_init(void) {
    static const int blocks[4] = {32, 16, 8, 4}, res[4] = {0, 13, 14, 15};
    /* C's treatment: fused, apart, or wide with 24, 25, 26 fraction bits or exact */
    static const struct {
        int sep, frac_c;
        const char *name;
    } modes[6] = {{0, 0, "fused"},   {1, 0, "C-apart"}, {2, 24, "C-F24"},
                  {2, 25, "C-F25"}, {2, 26, "C-F26"},  {2, 0, "C-exact"}};
    int n = 0;
    for (int ri = 0; ri < 4; ri++)
        for (int mi = 0; mi < 6; mi++)
            for (int bi = 0; bi < 4; bi++)
                for (int F = 10; F <= 25; F++)
                    for (int rn = 0; rn < 2; rn++) {
                        hyps[n] = (h8_hypothesis){blocks[bi], F,  rn, modes[mi].sep,
                                                  modes[mi].frac_c, res[ri]};
                        char rb[16] = "";
                        if (res[ri]) snprintf(rb, sizeof rb, " P=%d", res[ri]);
                        snprintf(hyp_name[n], sizeof hyp_name[n], "B=%d F=%d %s %s%s",
                                 blocks[bi], F, rn ? "RN" : "RZ", modes[mi].name, rb);
                        n++;
                    }
    (void)n;
}

static int same_value(float x, float y) {
    if (x == 0.0f && y == 0.0f) return 1;
    uint32_t u, v;
    memcpy(&u, &x, 4);
    memcpy(&v, &y, 4);
    return u == v;
}

/* ---- designed experiments: each a dot product, row 0 of its own tile ---- */

typedef struct designed {
    char id[16], what[72];
    int K;
    float c;
    uint8_t a[KMAX], b[KMAX];
} designed;

static designed des[256];
static int n_des;

static designed *des_new(const char *id, int K, float c) {
    designed *d = &des[n_des++];
    memset(d, 0, sizeof *d);
    snprintf(d->id, sizeof d->id, "%s", id);
    d->K = K, d->c = c;
    return d;
}

static void build_designed(void) {
    n_des = 0;
    const int big_e = 8; /* 2^8 x 2^8 = 2^16: representable in both formats */
    for (int m = 0; m <= 30; m++)
        for (int s = 0; s < 2; s++) {
            char id[16];
            snprintf(id, sizeof id, "D1.%d%s", m, s ? "-" : "");
            designed *d = des_new(id, 32, s ? -ldexpf(1, m) : ldexpf(1, m));
            d->a[0] = enc(1), d->b[0] = enc(1);
            snprintf(d->what, sizeof d->what, "C=%s2^%d + 1x1", s ? "-" : "", m);
        }
    for (int j = 0; j <= 15; j++) {
        char id[16];
        snprintf(id, sizeof id, "D2.%d", j);
        designed *d = des_new(id, 32, 0);
        d->a[0] = enc(ldexp(1, big_e)), d->b[0] = enc(ldexp(1, big_e));
        d->a[1] = enc(-ldexp(1, big_e)), d->b[1] = enc(ldexp(1, big_e));
        /* (1 + 7/8) 2^-j for e4m3, (1 + 3/4) 2^-j for e5m2: a normal times a power of two */
        const double frac = fmtv == H8_E4M3 ? 1.875 : 1.75;
        const int ja = j < 6 ? j : 6, jb = j - ja; /* the fraction stays normal */
        d->a[7] = enc(ldexp(frac, -ja)), d->b[7] = enc(ldexp(1, -jb));
        snprintf(d->what, sizeof d->what, "C=0 +2^16 -2^16 + %g*2^-%d", frac, j);
    }
    for (int i = 0; i < 32; i += 2) {
        char id[16];
        snprintf(id, sizeof id, "D3.%d", i);
        designed *d = des_new(id, 32, 0);
        for (int k = 0; k < 32; k++) d->a[k] = enc(ldexp(1, -6)), d->b[k] = enc(ldexp(1, -6));
        d->a[i] = enc(ldexp(1, big_e)), d->b[i] = enc(ldexp(1, big_e));
        d->a[i + 1] = enc(-ldexp(1, big_e)), d->b[i + 1] = enc(ldexp(1, big_e));
        snprintf(d->what, sizeof d->what, "C=0, +-2^16 in slots %d,%d, 2^-12 elsewhere", i, i + 1);
    }
    for (int s = 0; s < 2; s++) {
        designed *d = des_new(s ? "D4-" : "D4", 32, s ? -256.0f : 256.0f);
        /* 1.5 x 2^-16 = (3 x 2^-9) (2 x 2^-9) in e4m3; (3 x 2^-16)... in e5m2: 1.5 x 2^-8 x 2^-8 */
        if (fmtv == H8_E4M3)
            d->a[5] = enc(s ? -3 * ldexp(1, -9) : 3 * ldexp(1, -9)), d->b[5] = enc(2 * ldexp(1, -9));
        else
            d->a[5] = enc(s ? -1.5 * ldexp(1, -8) : 1.5 * ldexp(1, -8)), d->b[5] = enc(ldexp(1, -8));
        snprintf(d->what, sizeof d->what, "C=%s2^8 %s 1.5*2^-16 (0.75 ulp)", s ? "-" : "",
                 s ? "-" : "+");
    }
    /* chaining: C = 2^8, 0.75 ulp in each of four k32 steps */
    {
        designed *d = des_new("D5", 128, 256.0f);
        for (int k0 = 0; k0 < 128; k0 += 32) {
            if (fmtv == H8_E4M3)
                d->a[k0 + 3] = enc(3 * ldexp(1, -9)), d->b[k0 + 3] = enc(2 * ldexp(1, -9));
            else
                d->a[k0 + 3] = enc(1.5 * ldexp(1, -8)), d->b[k0 + 3] = enc(ldexp(1, -8));
        }
        snprintf(d->what, sizeof d->what, "C=2^8, + 1.5*2^-16 in each of 4 k32 steps");
    }
}

/* runs every designed experiment (row 0 of its own tile; K padded per tile group) */
static void run_designed(float *hw) {
    for (int i = 0; i < n_des; i++) {
        batch bt;
        batch_init(&bt, des[i].K, 1);
        memcpy(bt.A, des[i].a, des[i].K);
        memcpy(bt.B, des[i].b, des[i].K);
        bt.C[0] = des[i].c;
        batch_run(&bt);
        hw[i] = bt.D[0];
        for (int k = 1; k < 512; k++)
            if (bt.D[k] != 0) {
                printf("FAIL: designed %s: stray output %a at element %d (a layout error)\n",
                       des[i].id, (double)bt.D[k], k);
                exit(1);
            }
        batch_free(&bt);
    }
}

static int check_layout(void) {
    batch bt;
    const int K = 128;
    batch_init(&bt, K, 4);
    for (size_t i = 0; i < (size_t)bt.n * 64 * K; i++) bt.A[i] = enc((double)rnd_in(-4, 4));
    for (size_t i = 0; i < (size_t)bt.n * 8 * K; i++) bt.B[i] = enc((double)rnd_in(-4, 4));
    for (int i = 0; i < bt.n * 512; i++) bt.C[i] = (float)rnd_in(-8, 8);
    batch_run(&bt);
    int bad = 0;
    for (int t = 0; t < bt.n; t++)
        for (int i = 0; i < 64; i++)
            for (int j = 0; j < 8; j++) {
                double s = bt.C[t * 512 + i * 8 + j];
                for (int k = 0; k < K; k++)
                    s += h8_value(bt.A[((size_t)t * 64 + i) * K + k], fmtv) *
                         h8_value(bt.B[((size_t)t * 8 + j) * K + k], fmtv);
                if ((double)bt.D[t * 512 + i * 8 + j] != s) bad++;
            }
    printf("E0 layout (small integers, K = 128, %d outputs): %s\n", bt.n * 512,
           bad ? "MISMATCH" : "exact");
    batch_free(&bt);
    return bad;
}

enum { R_NORMAL, R_WIDE, R_CANCEL, R_SUBNORMAL };
static const char *set_names[] = {"normal", "wide", "cancel", "subnorm"};

static void fill_random(batch *bt, int set) {
    const int K = bt->K, en = emax_normal(), e0 = 1 - bias();
    for (int t = 0; t < bt->n; t++) {
        uint8_t *a = bt->A + (size_t)t * 64 * K, *b = bt->B + (size_t)t * 8 * K;
        float *c = bt->C + (size_t)t * 512;
        for (int i = 0; i < 64 * K; i++)
            a[i] = set == R_SUBNORMAL && (rnd() & 1) ? rnd_subnormal()
                   : rnd_in(0, 9) == 0               ? 0
                                                     : rnd_normal(e0, en);
        for (int i = 0; i < 8 * K; i++) b[i] = rnd_in(0, 9) == 0 ? 0 : rnd_normal(e0, en);
        for (int i = 0; i < 64; i++)
            for (int j = 0; j < 8; j++) {
                float cv;
                if (set == R_WIDE)
                    cv = rnd_f32(-30, 40);
                else if (set == R_CANCEL) {
                    double s = 0; /* exact: products of FP8 values in double */
                    for (int k = 0; k < K; k++)
                        s += h8_value(a[i * K + k], fmtv) * h8_value(b[j * K + k], fmtv);
                    cv = -(float)s;
                    for (int u = rnd_in(-2, 2); u != 0; u += u > 0 ? -1 : 1)
                        cv = nextafterf(cv, u > 0 ? INFINITY : -INFINITY);
                } else
                    cv = rnd_f32(2 * e0, 2 * en + 4);
                c[i * 8 + j] = cv;
            }
    }
}

/* the ten hypotheses with the fewest mismatches and the verdict line; the exit status */
static int report(const long *mism, long total, const char *expect) {
    int order[N_HYP];
    for (int h = 0; h < N_HYP; h++) order[h] = h;
    for (int i = 1; i < N_HYP; i++)
        for (int j = i; j > 0 && mism[order[j]] < mism[order[j - 1]]; j--) {
            int t = order[j];
            order[j] = order[j - 1], order[j - 1] = t;
        }
    printf("\nfewest mismatches (of %ld results):\n", total);
    for (int i = 0; i < 10; i++) printf("  %-24s %ld\n", hyp_name[order[i]], mism[order[i]]);
    int nsurv = 0, expect_ok = 0;
    char surv[4096] = "";
    for (int h = 0; h < N_HYP; h++)
        if (mism[h] == 0) {
            if (nsurv++) strncat(surv, ", ", sizeof surv - strlen(surv) - 1);
            strncat(surv, hyp_name[h], sizeof surv - strlen(surv) - 1);
            if (expect && !strcmp(expect, hyp_name[h])) expect_ok = 1;
        }
    if (!nsurv) {
        printf("\nmeasured: no hypothesis of the grid matches (closest: %s, %ld mismatches)\n",
               hyp_name[order[0]], mism[order[0]]);
        return 1;
    }
    printf("\nmeasured: %s (0 mismatches in %ld; %d of %d hypotheses survive)\n", surv, total,
           nsurv, N_HYP);
    if (expect && !expect_ok) {
        printf("verdict: FAIL: the expected '%s' is refuted\n", expect);
        return 1;
    }
    return 0;
}

/* --replay FILE: the records of an earlier --dump judged again by this build's grid, no device
 * needed; prints the first mismatches of the closest hypothesis */
static int replay(const char *path, const char *expect) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "probe_hopper_fp8: cannot read %s\n", path);
        return 2;
    }
    static long mism[N_HYP];
    long total = 0;
    for (int pass = 0; pass < 2; pass++) {
        int best = 0, shown = 0;
        for (int h = 1; h < N_HYP && pass; h++)
            if (mism[h] < mism[best]) best = h;
        if (pass) printf("first mismatches of %s:\n", hyp_name[best]);
        rewind(f);
        for (;;) {
            int32_t K;
            float c, got;
            uint8_t a[KMAX], b[KMAX];
            if (fread(&K, 4, 1, f) != 1) break;
            if (K <= 0 || K > KMAX || K % 32 || fread(&c, 4, 1, f) != 1 ||
                fread(&got, 4, 1, f) != 1 || fread(a, 1, (size_t)K, f) != (size_t)K ||
                fread(b, 1, (size_t)K, f) != (size_t)K) {
                fprintf(stderr, "probe_hopper_fp8: %s: truncated or malformed record\n", path);
                fclose(f);
                return 2;
            }
            if (!pass) {
                for (int h = 0; h < N_HYP; h++)
                    if (!same_value(h8_dot(&hyps[h], fmtv, c, a, b, K), got)) mism[h]++;
                total++;
            } else if (shown < 12) {
                const float m = h8_dot(&hyps[best], fmtv, c, a, b, K);
                if (same_value(m, got)) continue;
                double exact = c, maxp = 0;
                for (int k = 0; k < K; k++) {
                    const double p = h8_value(a[k], fmtv) * h8_value(b[k], fmtv);
                    exact += p;
                    if (fabs(p) > maxp) maxp = fabs(p);
                }
                printf("  K=%-3d C=%-16a max|p|=%-10a exact=%-22a hw=%-16a model=%a\n", K,
                       (double)c, maxp, exact, (double)got, (double)m);
                shown++;
            }
        }
    }
    fclose(f);
    return report(mism, total, expect);
}

int main(int argc, char **argv) {
    uint64_t seed = 0x5eed0008;
    int quiet = 0;
    const char *expect = NULL, *replay_path = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--seed") && i + 1 < argc)
            seed = strtoull(argv[++i], NULL, 0);
        else if (!strcmp(argv[i], "--quiet"))
            quiet = 1;
        else if (!strcmp(argv[i], "--expect") && i + 1 < argc)
            expect = argv[++i];
        else if (!strcmp(argv[i], "--replay") && i + 1 < argc)
            replay_path = argv[++i];
        else if (!strcmp(argv[i], "--dump") && i + 1 < argc) {
            if (!(dump = fopen(argv[++i], "wb"))) {
                fprintf(stderr, "probe_hopper_fp8: cannot write %s\n", argv[i]);
                return 2;
            }
        }
        else if (!strcmp(argv[i], "--format") && i + 1 < argc) {
            const char *f = argv[++i];
            if (!strcmp(f, "e4m3"))
                fmtv = H8_E4M3;
            else if (!strcmp(f, "e5m2"))
                fmtv = H8_E5M2;
            else {
                fprintf(stderr, "probe_hopper_fp8: --format takes e4m3 or e5m2\n");
                return 2;
            }
        } else {
            fprintf(stderr,
                    "usage: probe_hopper_fp8 [--format e4m3|e5m2] [--seed N] [--quiet] "
                    "[--expect HYPOTHESIS] [--dump FILE | --replay FILE]\n");
            return 2;
        }
    }
    hyps_init();
    if (expect) {
        int found = 0;
        for (int h = 0; h < N_HYP; h++) found |= !strcmp(hyp_name[h], expect);
        if (!found) {
            fprintf(stderr, "probe_hopper_fp8: --expect '%s' is not a hypothesis of the grid\n",
                    expect);
            return 2;
        }
    }
    if (replay_path) return replay(replay_path, expect);
    int dev = -1;
    char why[256] = "";
    const int found = mf_cuda_device_find(&dev, why, sizeof why);
    if (found == MF_CUDA_DEVICE_NONE) {
        printf("probe_hopper_fp8: no usable device: %s\n", why);
        return mf_cuda_skip_exit_code();
    }
    if (found != MF_CUDA_DEVICE_OK) {
        printf("probe_hopper_fp8: %s\n", why);
        return 1;
    }
    struct cudaDeviceProp prop;
    CK(cudaGetDeviceProperties(&prop, dev));
    if (!(prop.major == 9 && prop.minor == 0)) {
        printf("probe_hopper_fp8: wgmma needs compute capability 9.0 (sm_90a code)\n");
        return mf_cuda_skip_exit_code();
    }
    rng_s = seed;
    printf("card: %s (sm_%d%d, %d SMs); seed %#llx; instruction wgmma m64n8k32 f32.%s.%s\n",
           prop.name, prop.major, prop.minor, prop.multiProcessorCount, (unsigned long long)seed,
           fmtv == H8_E4M3 ? "e4m3" : "e5m2", fmtv == H8_E4M3 ? "e4m3" : "e5m2");
    if (check_layout() != 0) {
        printf("verdict: layout mismatch: no accumulation measurement is meaningful\n");
        return 1;
    }

    static long mism[N_HYP];
    long total = 0;
    build_designed();
    static float hw[256];
    run_designed(hw);
    printf("\n%-8s %-52s %-18s %s\n", "exp", "inputs", "hardware", "hypotheses matching");
    for (int i = 0; i < n_des; i++) {
        const designed *d = &des[i];
        dump_dot(d->K, d->c, hw[i], d->a, d->b);
        int nm = 0, first = -1;
        for (int h = 0; h < N_HYP; h++) {
            if (same_value(h8_dot(&hyps[h], fmtv, d->c, d->a, d->b, d->K), hw[i])) {
                if (first < 0) first = h;
                nm++;
            } else {
                mism[h]++;
            }
        }
        total++;
        if (!quiet || nm == 0)
            printf("%-8s %-52s %-18a %d (first: %s)\n", d->id, d->what, (double)hw[i], nm,
                   first >= 0 ? hyp_name[first] : "none");
    }

    struct rset {
        int set, K, tiles;
    } rs[] = {{R_NORMAL, 32, 16}, {R_WIDE, 32, 16},  {R_CANCEL, 32, 16}, {R_SUBNORMAL, 32, 16},
              {R_NORMAL, 128, 8}, {R_CANCEL, 128, 8}, {R_WIDE, 64, 8}};
    const int nrs = (int)(sizeof rs / sizeof rs[0]);
    for (int r = 0; r < nrs; r++) {
        batch bt;
        batch_init(&bt, rs[r].K, rs[r].tiles);
        fill_random(&bt, rs[r].set);
        batch_run(&bt);
        const int K = rs[r].K;
        for (int t = 0; t < bt.n; t++)
            for (int i = 0; i < 64; i++)
                for (int j = 0; j < 8; j++) {
                    const uint8_t *a = bt.A + ((size_t)t * 64 + i) * K;
                    const uint8_t *b = bt.B + ((size_t)t * 8 + j) * K;
                    const float c = bt.C[t * 512 + i * 8 + j], got = bt.D[t * 512 + i * 8 + j];
                    dump_dot(K, c, got, a, b);
                    for (int h = 0; h < N_HYP; h++)
                        if (!same_value(h8_dot(&hyps[h], fmtv, c, a, b, K), got)) mism[h]++;
                    total++;
                }
        printf("random set %-8s K=%-3d %d dot products\n", set_names[rs[r].set], K, bt.n * 512);
        batch_free(&bt);
    }

    return report(mism, total, expect);
}
