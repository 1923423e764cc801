/* probe_hopper.cu: how does the fused kernel's tensor-core instruction accumulate bf16 products
 * into fp32? Measured on the card it runs on, through the very wrapper the kernel uses
 * (kernels/cuda/mma.cuh: mma_bf16_16816, ldmatrix addressing), against bit-exact host models.
 *
 *   build/cuda/tests/gpu/probe_hopper [--seed N] [--quiet] [--wgmma]
 *
 * --wgmma: every tile goes through the kernel's other instruction instead, the warpgroup MMA
 * (kernels/cuda/hopper.cuh: wgmma m64n8k16 from 128-byte-swizzled shared memory through the
 * kernel's descriptors; the 16 rows of a tile are rows 0-15 of the 64, the rest zero), so the
 * same experiments measure wgmma's k16 step and check its layout (E0 direct).
 *
 * Steps (docs/hopper-probe.md describes the method):
 *   E0  fragment layout: small-integer data (every result exact) through direct fragment loads
 *       and through the kernel's ldmatrix addressing; a mismatch stops the probe (exit 1).
 *   (a) fused block size: C=0, slot i = 1*1, the other 15 slots 2^-26, i = 0..15
 *   (b) fraction bits: C=1 plus n products 2^-m (m 24..27, n 1..16); C=1 plus one -2^-m
 *   (c) final rounding: C=+-1 with a product +-1.5*2^-24 (RZ keeps 1, RN gives 1+2^-23)
 *   (d) alignment reference: C=-2^-25 with a product 1.5*1.5 (exponent field 0, binade 1)
 *   (e) chaining between k16 steps (K=32, 64)
 *   (f) random validation: 53,248 dot products (K=16: normal, wide, cancellation, mixed scales,
 *       subnormals; K=64: normal, cancellation, mixed), every one compared bit for bit
 * Each result is compared with every hypothesis: B=16 F=25 RZ (the model of contract
 * "hopper-tc"), B=16 with F=24 or 26, B=16 F=25 with RN at the end, 2x8 blocks (F=24, 25), 4x4
 * blocks. Exact zeros compare equal whatever their sign.
 * Output: one line per designed experiment, a table of mismatches per hypothesis, and the
 * verdict "measured: B=16 F=25 final rounding RZ (0 mismatches in N)".
 * Exit: 0 the contract's model matches, every alternative is refuted and no designed tile has
 * a nonzero output outside its (0, 0) element (a stray output is a layout error, which would
 * make every measurement meaningless); 1 otherwise, or on any CUDA error (a driver that does
 * not match the runtime included); 77 no device of compute capability >= 9.0 (--wgmma: 9.0),
 * 1 instead under MOEFUZZ_REQUIRE_GPU=1 (kernels/cuda/cuda_device.h).
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cuda_runtime.h>

#include "../../kernels/cuda/cuda_device.h"
#include "../../kernels/cuda/hopper.cuh"
#include "../../kernels/cuda/mma.cuh"
#include "../../kernels/cuda/moe_gemm.cuh" /* GEMM_LDS: the kernel's shared-memory row pitch */
#include "hopper_model.h"

#define CK(call)                                                                         \
    do {                                                                                 \
        cudaError_t e_ = (call);                                                         \
        if (e_ != cudaSuccess) {                                                         \
            fprintf(stderr, "probe_hopper: %s failed at line %d: %s\n", #call, __LINE__, \
                    cudaGetErrorString(e_));                                             \
            exit(1);                                                                     \
        }                                                                                \
    } while (0)

/* ---- device: one 16x8 tile per warp, fragments straight from global memory ---- */

/* A: [tiles][16][K] bf16, B: [tiles][8][K] bf16 (n-major, k contiguous), C, D: [tiles][16][8].
 * D = C + A B^T as a chain of K/16 mma steps, the accumulator passed on: the kernel's chain. */
static __global__ void probe_mma_kernel(const uint16_t *A, const uint16_t *B, const float *C,
                                        float *D, int K, int ntiles) {
    const int lane = threadIdx.x & 31, tile = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32;
    if (tile >= ntiles) return;
    const uint16_t *a = A + (size_t)tile * 16 * K, *b = B + (size_t)tile * 8 * K;
    const int g = lane >> 2, q = lane & 3;
    float acc[4];
    for (int r = 0; r < 4; r++)
        acc[r] = C[(size_t)tile * 128 + frag_c_row(lane, r) * 8 + frag_c_col(lane, r)];
    for (int k0 = 0; k0 < K; k0 += 16) {
        /* the documented fragment layout (mma.cuh header), low half = lower k */
#define PK(p, i) ((uint32_t)(p)[i] | ((uint32_t)(p)[(i) + 1] << 16))
        uint32_t af[4] = {PK(a + g * K, k0 + 2 * q), PK(a + (g + 8) * K, k0 + 2 * q),
                          PK(a + g * K, k0 + 2 * q + 8), PK(a + (g + 8) * K, k0 + 2 * q + 8)};
        uint32_t bf[2] = {PK(b + g * K, k0 + 2 * q), PK(b + g * K, k0 + 2 * q + 8)};
#undef PK
        mma_bf16_16816(acc, af, bf, acc);
    }
    for (int r = 0; r < 4; r++)
        D[(size_t)tile * 128 + frag_c_row(lane, r) * 8 + frag_c_col(lane, r)] = acc[r];
}

/* The same chain through wgmma m64n8k16 (sm_90a): one warpgroup per tile; A staged as rows 0-15
 * of a 64-row K-major tile with the kernel's 128-byte swizzle (rows 16-63 zero), B as an 8-row
 * tile, K <= 64 (one stage); warp 0 holds rows 0-15 in the mma.sync C layout. */
static __global__ void __launch_bounds__(128) probe_wgmma_kernel(const uint16_t *A, const uint16_t *B,
                                                                 const float *C, float *D, int K) {
#if MF_HAVE_WGMMA
    __shared__ __align__(128) unsigned char raw[64 * 128 + 8 * 128 + 1024];
    const uint32_t sa = (smem_u32(raw) + 1023u) & ~1023u, sb = sa + 64 * 128;
    unsigned char *pa = raw + (sa - smem_u32(raw)), *pb = raw + (sb - smem_u32(raw));
    const int tile = blockIdx.x, tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const uint16_t *a = A + (size_t)tile * 16 * K, *b = B + (size_t)tile * 8 * K;
    for (int i = tid; i < 64 * 64; i += 128) {
        const int r = i / 64, k = i % 64;
        const uint16_t v = r < 16 && k < K ? a[r * K + k] : 0;
        *(uint16_t *)(pa + wg_swz(r, k / 8) + (k % 8) * 2) = v;
    }
    for (int i = tid; i < 8 * 64; i += 128) {
        const int r = i / 64, k = i % 64;
        *(uint16_t *)(pb + wg_swz(r, k / 8) + (k % 8) * 2) = k < K ? b[r * K + k] : 0;
    }
    fence_proxy_async(); /* generic-proxy stores, then async-proxy reads by wgmma */
    __syncthreads();
    float acc[4] = {0, 0, 0, 0};
    if (warp == 0)
        for (int r = 0; r < 4; r++)
            acc[r] = C[(size_t)tile * 128 + frag_c_row(lane, r) * 8 + frag_c_col(lane, r)];
    wgmma_fence();
    for (int k0 = 0; k0 < K; k0 += 16) wgmma_bf16<8>(acc, wg_desc(sa + 2 * k0), wg_desc(sb + 2 * k0));
    wgmma_commit();
    wgmma_wait<0>();
    wgmma_fence_acc(acc);
    if (warp == 0)
        for (int r = 0; r < 4; r++)
            D[(size_t)tile * 128 + frag_c_row(lane, r) * 8 + frag_c_col(lane, r)] = acc[r];
#endif
}

/* The kernel's path: A [16][K] and B [16][K] (two n8 tiles) staged in shared memory with the
 * kernel's pitch, fragments by ldmatrix with the kernel's lane addressing. D0: [16][16] from
 * the x4 pair load; D1: [16][8] of the second tile again through ldmatrix_x2. K <= 64. */
static __global__ void probe_ldmatrix_kernel(const uint16_t *A, const uint16_t *B, int K, float *D0,
                                             float *D1) {
    __shared__ __align__(128) uint16_t sA[16 * GEMM_LDS], sB[16 * GEMM_LDS];
    const int lane = threadIdx.x;
    for (int i = lane; i < 16 * 64; i += 32) {
        int r = i / 64, c = i % 64;
        sA[r * GEMM_LDS + c] = c < K ? A[r * K + c] : 0;
        sB[r * GEMM_LDS + c] = c < K ? B[r * K + c] : 0;
    }
    __syncwarp();
    float acc0[4] = {0, 0, 0, 0}, acc1[4] = {0, 0, 0, 0}, acc2[4] = {0, 0, 0, 0};
    for (int kk = 0; kk < K / 16; kk++) {
        uint32_t af[4], r4[4], r2[2];
        ldmatrix_x4(af, smem_u32(sA + frag_a_row(lane) * GEMM_LDS + kk * 16 + frag_a_col(lane)));
        ldmatrix_x4(r4, smem_u32(sB + (frag_b_tile(lane) * 8 + frag_b_row(lane)) * GEMM_LDS +
                                 kk * 16 + frag_b_col(lane)));
        ldmatrix_x2(r2,
                    smem_u32(sB + (8 + frag_b_row(lane)) * GEMM_LDS + kk * 16 + frag_b_col(lane)));
        uint32_t b0[2] = {r4[0], r4[1]}, b1[2] = {r4[2], r4[3]};
        mma_bf16_16816(acc0, af, b0, acc0);
        mma_bf16_16816(acc1, af, b1, acc1);
        mma_bf16_16816(acc2, af, r2, acc2);
    }
    for (int r = 0; r < 4; r++) {
        int row = frag_c_row(lane, r), col = frag_c_col(lane, r);
        D0[row * 16 + col] = acc0[r];
        D0[row * 16 + 8 + col] = acc1[r];
        D1[row * 8 + col] = acc2[r];
    }
}

/* ---- host: the hypotheses (bit-exact models: hopper_model.h) ---- */

static const hm_hypothesis hyps[] = {
    {"B=16 F=25 RZ", 16, 25, 0}, /* the contract's model (must be first) */
    {"B=16 F=24 RZ", 16, 24, 0}, {"B=16 F=26 RZ", 16, 26, 0}, {"B=16 F=25 RN", 16, 25, 1},
    {"2x8 F=25 RZ", 8, 25, 0},   {"2x8 F=24 RZ", 8, 24, 0},   {"4x4 F=25 RZ", 4, 25, 0},
};
#define N_HYP ((int)(sizeof hyps / sizeof hyps[0]))

static int same_value(float x, float y) {
    if (x == 0.0f && y == 0.0f) return 1; /* +0 and -0: the sign of an exact zero is not probed */
    uint32_t u, v;
    memcpy(&u, &x, 4);
    memcpy(&v, &y, 4);
    return u == v;
}

static float bf(uint16_t b) {
    uint32_t u = (uint32_t)b << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* bf16 bits of a value that must be exactly representable */
static uint16_t bfx(double v) {
    float f = (float)v;
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0xffff) != 0) {
        fprintf(stderr, "probe_hopper: internal error: %a is not a bf16\n", v);
        exit(1);
    }
    return (uint16_t)(u >> 16);
}

/* ---- tile batches ---- */

typedef struct batch {
    int K, n;
    uint16_t *A, *B; /* [n][16][K], [n][8][K] */
    float *C, *D;    /* [n][16][8] */
} batch;

static void batch_init(batch *bt, int K, int n) {
    bt->K = K, bt->n = n;
    bt->A = (uint16_t *)calloc((size_t)n * 16 * K, 2);
    bt->B = (uint16_t *)calloc((size_t)n * 8 * K, 2);
    bt->C = (float *)calloc((size_t)n * 128, 4);
    bt->D = (float *)calloc((size_t)n * 128, 4);
    if (!bt->A || !bt->B || !bt->C || !bt->D) {
        fprintf(stderr, "probe_hopper: out of memory\n");
        exit(1);
    }
}

static void batch_free(batch *bt) {
    free(bt->A), free(bt->B), free(bt->C), free(bt->D);
}

static int use_wgmma; /* --wgmma */

static void batch_run(batch *bt) {
    uint16_t *A, *B;
    float *C, *D;
    size_t na = (size_t)bt->n * 16 * bt->K, nb = (size_t)bt->n * 8 * bt->K,
           nc = (size_t)bt->n * 128;
    CK(cudaMalloc(&A, na * 2));
    CK(cudaMalloc(&B, nb * 2));
    CK(cudaMalloc(&C, nc * 4));
    CK(cudaMalloc(&D, nc * 4));
    CK(cudaMemcpy(A, bt->A, na * 2, cudaMemcpyHostToDevice));
    CK(cudaMemcpy(B, bt->B, nb * 2, cudaMemcpyHostToDevice));
    CK(cudaMemcpy(C, bt->C, nc * 4, cudaMemcpyHostToDevice));
    if (use_wgmma) {
        if (bt->K > 64) {
            fprintf(stderr, "probe_hopper: --wgmma takes K <= 64\n");
            exit(1);
        }
        probe_wgmma_kernel<<<bt->n, 128>>>(A, B, C, D, bt->K);
    } else {
        probe_mma_kernel<<<(bt->n + 3) / 4, 128>>>(A, B, C, D, bt->K, bt->n);
    }
    CK(cudaGetLastError());
    CK(cudaMemcpy(bt->D, D, nc * 4, cudaMemcpyDeviceToHost));
    CK(cudaFree(A));
    CK(cudaFree(B));
    CK(cudaFree(C));
    CK(cudaFree(D));
}

/* ---- random inputs ---- */

static uint64_t rng_s;
static uint64_t rnd(void) {
    uint64_t z = (rng_s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}
static int rnd_in(int lo, int hi) {
    return lo + (int)(rnd() % (uint64_t)(hi - lo + 1));
}

/* random sign, exponent in [emin, emax] (normal), random 7-bit fraction */
static uint16_t rnd_bf16(int emin, int emax) {
    int e = rnd_in(emin, emax);
    return (uint16_t)((rnd() & 1) << 15 | (unsigned)(e + 127) << 7 | (rnd() & 0x7f));
}
static float rnd_f32(int emin, int emax) {
    int e = rnd_in(emin, emax);
    uint32_t u =
        (uint32_t)(rnd() & 1) << 31 | (uint32_t)(e + 127) << 23 | (uint32_t)(rnd() & 0x7fffff);
    float f;
    memcpy(&f, &u, 4);
    return f;
}

enum { R1_NORMAL, R2_WIDE, R3_CANCEL, R4_MIXED, R5_SUBNORMAL };
static const char *set_names[] = {"R1-normal", "R2-wide", "R3-cancel", "R4-mixed", "R5-subnorm"};

static uint16_t rnd_elem(int set) {
    switch (set) {
    case R2_WIDE:
        return rnd_in(0, 9) == 0 ? 0 : rnd_bf16(-20, 20);
    case R4_MIXED: {
        uint16_t x = rnd_bf16(-4, 4);
        if (rnd_in(0, 9) < 3) { /* scale down by 2^-12 .. 2^-32: exponent field lowered */
            int e = ((x >> 7) & 0xff) - rnd_in(12, 32);
            x = (uint16_t)((x & 0x807f) | (unsigned)e << 7);
        }
        return x;
    }
    default:
        return rnd_bf16(-4, 4);
    }
}

static void fill_random(batch *bt, int set) {
    const int K = bt->K;
    for (int t = 0; t < bt->n; t++) {
        uint16_t *a = bt->A + (size_t)t * 16 * K, *b = bt->B + (size_t)t * 8 * K;
        float *c = bt->C + (size_t)t * 128;
        for (int i = 0; i < 16 * K; i++) {
            if (set == R5_SUBNORMAL) /* half bf16 subnormals, half tiny normals */
                a[i] = rnd() & 1 ? (uint16_t)((rnd() & 1) << 15 | rnd_in(1, 127))
                                 : rnd_bf16(-126, -120);
            else
                a[i] = rnd_elem(set);
        }
        for (int i = 0; i < 8 * K; i++)
            b[i] = set == R5_SUBNORMAL ? rnd_bf16(-20, 10) : rnd_elem(set);
        for (int i = 0; i < 16; i++)
            for (int j = 0; j < 8; j++) {
                float cv;
                if (set == R2_WIDE)
                    cv = rnd_f32(-30, 30);
                else if (set == R5_SUBNORMAL) {
                    uint32_t u = (uint32_t)(rnd() & 1) << 31 | (uint32_t)rnd_in(1, 0x7fffff);
                    memcpy(&cv, &u, 4);
                    if (rnd() & 1) cv = rnd_f32(-126, -115);
                } else if (set == R3_CANCEL) {
                    /* C = -fl(exact dot) +- 0..2 ulps: the result is a tiny remainder */
                    double s = 0; /* exact: products of R1 elements need < 40 bits */
                    for (int k = 0; k < K; k++) s += (double)bf(a[i * K + k]) * bf(b[j * K + k]);
                    cv = -(float)s;
                    for (int u = rnd_in(-2, 2); u != 0; u += u > 0 ? -1 : 1)
                        cv = nextafterf(cv, u > 0 ? INFINITY : -INFINITY);
                } else
                    cv = rnd_f32(-7, 7);
                c[i * 8 + j] = cv;
            }
    }
}

/* ---- designed single-element experiments ---- */

typedef struct designed {
    const char *id, *what;
    int K;
    float c;
    int n; /* products: slot, a, b (up to one per slot of K = 64) */
    int slot[64];
    double a[64], b[64];
} designed;

static int n_designed;
static designed des[96];

static designed *new_case(const char *id, const char *what, int K, double c) {
    designed *d = &des[n_designed++];
    memset(d, 0, sizeof *d);
    d->id = id, d->what = what, d->K = K, d->c = (float)c;
    return d;
}
static void add_p(designed *d, int slot, double a, double b) {
    d->slot[d->n] = slot, d->a[d->n] = a, d->b[d->n] = b, d->n++;
}

static void build_designed(void) {
    static char ids[96][32], whats[96][96];
    int w = 0;
    /* (a) block size */
    for (int i = 0; i < 16; i++) {
        snprintf(ids[w], 32, "a.slot%d", i);
        snprintf(whats[w], 96, "C=0, slot %d = 1*1, other slots 2^-13*2^-13", i);
        designed *d = new_case(ids[w], whats[w], 16, 0.0);
        w++;
        for (int s = 0; s < 16; s++) add_p(d, s, s == i ? 1.0 : 0x1p-13, s == i ? 1.0 : 0x1p-13);
    }
    /* (b) fraction bits */
    const int ns[] = {1, 2, 4, 8, 15, 16};
    for (int m = 24; m <= 27; m++)
        for (int ni = 0; ni < 6; ni++) {
            snprintf(ids[w], 32, "b.m%d.n%d", m, ns[ni]);
            snprintf(whats[w], 96, "C=1 + %d x 2^-%d", ns[ni], m);
            designed *d = new_case(ids[w], whats[w], 16, 1.0);
            w++;
            for (int s = 0; s < ns[ni]; s++) add_p(d, s, 0x1p-12, ldexp(1.0, -(m - 12)));
        }
    const int ms[] = {24, 25, 26, 27, 30};
    for (int mi = 0; mi < 5; mi++) {
        snprintf(ids[w], 32, "b.neg%d", ms[mi]);
        snprintf(whats[w], 96, "C=1 - 2^-%d", ms[mi]);
        designed *d = new_case(ids[w], whats[w], 16, 1.0);
        w++;
        add_p(d, 0, -0x1p-12, ldexp(1.0, -(ms[mi] - 12)));
    }
    /* (c) final rounding */
    designed *d = new_case("c.pos", "C=1, p0=1.5*2^-24 (RZ: 1, RN: 1+2^-23)", 16, 1.0);
    add_p(d, 0, 1.5 * 0x1p-12, 0x1p-12);
    d = new_case("c.neg", "C=-1, p0=-1.5*2^-24 (RZ: -1, RN: -(1+2^-23))", 16, -1.0);
    add_p(d, 0, -1.5 * 0x1p-12, 0x1p-12);
    d = new_case("c.prod", "C=0, p0=1*1, p5=1.5*2^-24", 16, 0.0);
    add_p(d, 0, 1.0, 1.0);
    add_p(d, 5, 1.5 * 0x1p-12, 0x1p-12);
    /* (d) alignment reference */
    d = new_case("d.field", "C=-2^-25, p0=1.5*1.5 (field 0: 2.25-2^-22; binade: 2.25)", 16,
                 -0x1p-25);
    add_p(d, 0, 1.5, 1.5);
    d = new_case("d.one", "C=-2^-25, p0=1*1 (1-2^-24)", 16, -0x1p-25);
    add_p(d, 0, 1.0, 1.0);
    d = new_case("d.cmax", "C=2, p0=-2^-25 (dropped below C's field)", 16, 2.0);
    add_p(d, 0, -0x1p-12, 0x1p-13);
    /* (e) chaining between k16 steps */
    d = new_case("e.K64.rz", "K=64, C=1, slot 0 of each step +1.5*2^-24 (1: RZ per step)", 64, 1.0);
    for (int s = 0; s < 4; s++) add_p(d, 16 * s, 1.5 * 0x1p-12, 0x1p-12);
    d = new_case("e.K32.rz", "K=32, C=1, slot 0 of both steps +1.5*2^-24", 32, 1.0);
    for (int s = 0; s < 2; s++) add_p(d, 16 * s, 1.5 * 0x1p-12, 0x1p-12);
    d = new_case("e.K64.pm", "K=64, C=1, step 0: -2^-25, step 1: +2^-25 (1-2^-24)", 64, 1.0);
    add_p(d, 0, -0x1p-12, 0x1p-13);
    add_p(d, 16, 0x1p-12, 0x1p-13);
    d = new_case("e.K32.late", "K=32, step 0: +1, -1; step 1: 2^-30 (2^-30)", 32, 0.0);
    add_p(d, 0, 1.0, 1.0);
    add_p(d, 1, -1.0, 1.0);
    add_p(d, 16, 0x1p-15, 0x1p-15);
    d = new_case("e.K32.early", "K=32, step 0: 2^-30; step 1: +1, -1 (0)", 32, 0.0);
    add_p(d, 0, 0x1p-15, 0x1p-15);
    add_p(d, 16, 1.0, 1.0);
    add_p(d, 17, -1.0, 1.0);
    d = new_case("e.K64.many", "K=64, C=1, slots 1-15 of each step +1.5*2^-24", 64, 1.0);
    for (int s = 0; s < 4; s++)
        for (int i = 1; i < 16; i++) add_p(d, 16 * s + i, 1.5 * 0x1p-12, 0x1p-12);
}

/* Runs the designed cases with K == Kb as one batch (case j in tile j: A row 0, B row 0, C[0][0]
 * set, everything else 0); fills hw[case]. Returns the number of tiles with a nonzero element
 * outside (0, 0): a layout error. */
static int run_designed(int Kb, float *hw) {
    int idx[96], n = 0;
    for (int i = 0; i < n_designed; i++)
        if (des[i].K == Kb) idx[n++] = i;
    if (n == 0) return 0;
    batch bt;
    batch_init(&bt, Kb, n);
    for (int j = 0; j < n; j++) {
        const designed *d = &des[idx[j]];
        for (int p = 0; p < d->n; p++) {
            bt.A[(size_t)j * 16 * Kb + d->slot[p]] = bfx(d->a[p]);
            bt.B[(size_t)j * 8 * Kb + d->slot[p]] = bfx(d->b[p]);
        }
        bt.C[(size_t)j * 128] = d->c;
    }
    batch_run(&bt);
    int bad = 0;
    for (int j = 0; j < n; j++) {
        hw[idx[j]] = bt.D[(size_t)j * 128];
        for (int e = 1; e < 128; e++) bad += bt.D[(size_t)j * 128 + e] != 0.0f;
    }
    batch_free(&bt);
    return bad;
}

/* ---- E0: layouts ---- */

static int check_layouts(void) {
    const int K = 64;
    int bad = 0;
    /* direct fragments: 8 tiles of integers in [-4, 4], C integers in [-8, 8]: all exact */
    batch bt;
    batch_init(&bt, K, 8);
    for (size_t i = 0; i < (size_t)8 * 16 * K; i++) bt.A[i] = bfx(rnd_in(-4, 4));
    for (size_t i = 0; i < (size_t)8 * 8 * K; i++) bt.B[i] = bfx(rnd_in(-4, 4));
    for (size_t i = 0; i < (size_t)8 * 128; i++) bt.C[i] = (float)rnd_in(-8, 8);
    batch_run(&bt);
    for (int t = 0; t < 8; t++)
        for (int i = 0; i < 16; i++)
            for (int j = 0; j < 8; j++) {
                double s = bt.C[t * 128 + i * 8 + j];
                for (int k = 0; k < K; k++)
                    s += (double)bf(bt.A[((size_t)t * 16 + i) * K + k]) *
                         bf(bt.B[((size_t)t * 8 + j) * K + k]);
                if ((double)bt.D[t * 128 + i * 8 + j] != s) bad++;
            }
    batch_free(&bt);
    printf("E0 direct fragments (K=64, 1024 outputs): %s\n", bad ? "MISMATCH" : "exact");
    /* the kernel's ldmatrix addressing, x4 pairs and x2 */
    uint16_t hA[16 * 64], hB[16 * 64];
    for (int i = 0; i < 16 * K; i++) hA[i] = bfx(rnd_in(-4, 4)), hB[i] = bfx(rnd_in(-4, 4));
    uint16_t *dA, *dB;
    float *dD0, *dD1, hD0[256], hD1[128];
    CK(cudaMalloc(&dA, sizeof hA));
    CK(cudaMalloc(&dB, sizeof hB));
    CK(cudaMalloc(&dD0, sizeof hD0));
    CK(cudaMalloc(&dD1, sizeof hD1));
    CK(cudaMemcpy(dA, hA, sizeof hA, cudaMemcpyHostToDevice));
    CK(cudaMemcpy(dB, hB, sizeof hB, cudaMemcpyHostToDevice));
    probe_ldmatrix_kernel<<<1, 32>>>(dA, dB, K, dD0, dD1);
    CK(cudaGetLastError());
    CK(cudaMemcpy(hD0, dD0, sizeof hD0, cudaMemcpyDeviceToHost));
    CK(cudaMemcpy(hD1, dD1, sizeof hD1, cudaMemcpyDeviceToHost));
    int bad2 = 0;
    for (int i = 0; i < 16; i++)
        for (int j = 0; j < 16; j++) {
            double s = 0;
            for (int k = 0; k < K; k++) s += (double)bf(hA[i * K + k]) * bf(hB[j * K + k]);
            if ((double)hD0[i * 16 + j] != s) bad2++;
            if (j >= 8 && (double)hD1[i * 8 + j - 8] != s) bad2++;
        }
    printf("E0 kernel ldmatrix addressing (x4 pairs and x2, 384 outputs): %s\n",
           bad2 ? "MISMATCH" : "exact");
    CK(cudaFree(dA));
    CK(cudaFree(dB));
    CK(cudaFree(dD0));
    CK(cudaFree(dD1));
    return bad + bad2;
}

/* ---- main ---- */

static void fmt(char *buf, size_t n, float v) {
    snprintf(buf, n, "%a", (double)v);
}

int main(int argc, char **argv) {
    uint64_t seed = 0x5eed0001;
    int quiet = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--seed") && i + 1 < argc)
            seed = strtoull(argv[++i], NULL, 0);
        else if (!strcmp(argv[i], "--quiet"))
            quiet = 1;
        else if (!strcmp(argv[i], "--wgmma"))
            use_wgmma = 1;
        else {
            fprintf(stderr, "usage: probe_hopper [--seed N] [--quiet] [--wgmma]\n");
            return 2;
        }
    }
    int dev = -1;
    char why[256] = "";
    const int found = mf_cuda_device_find(&dev, why, sizeof why);
    if (found == MF_CUDA_DEVICE_NONE) {
        printf("probe_hopper: no usable device: %s\n", why);
        return mf_cuda_skip_exit_code();
    }
    if (found != MF_CUDA_DEVICE_OK) {
        printf("probe_hopper: %s\n", why);
        return 1;
    }
    struct cudaDeviceProp prop;
    CK(cudaGetDeviceProperties(&prop, dev));
    rng_s = seed;
    printf("card: %s (sm_%d%d, %d SMs); seed %#llx; instruction %s\n", prop.name, prop.major,
           prop.minor, prop.multiProcessorCount, (unsigned long long)seed,
           use_wgmma ? "wgmma m64n8k16 (swizzled shared memory)" : "mma.sync m16n8k16");
    if (use_wgmma && !(prop.major == 9 && prop.minor == 0)) {
        printf("probe_hopper: --wgmma needs compute capability 9.0 (sm_90a code)\n");
        return mf_cuda_skip_exit_code();
    }

    if (check_layouts() != 0) {
        printf(
            "verdict: fragment layout mismatch: the mma wrapper or the kernel's ldmatrix "
            "addressing is wrong; no accumulation measurement is meaningful\n");
        return 1;
    }

    /* designed experiments */
    build_designed();
    float hw[96];
    int layout_bad = run_designed(16, hw) + run_designed(32, hw) + run_designed(64, hw);
    if (layout_bad)
        printf(
            "FAIL: %d stray nonzero outputs in designed tiles (each tile sets only its (0, 0) "
            "element): a layout error\n",
            layout_bad);
    long mism_des[N_HYP] = {0};
    printf("\n%-12s %-58s %-22s %s\n", "experiment", "inputs", "hardware", "hypotheses matching");
    for (int i = 0; i < n_designed; i++) {
        const designed *d = &des[i];
        uint16_t a[64] = {0}, b[64] = {0};
        for (int p = 0; p < d->n; p++) a[d->slot[p]] = bfx(d->a[p]), b[d->slot[p]] = bfx(d->b[p]);
        char hs[40], line[200] = "";
        fmt(hs, sizeof hs, hw[i]);
        for (int h = 0; h < N_HYP; h++) {
            float m = hm_dot(&hyps[h], d->c, a, b, d->K);
            if (same_value(m, hw[i])) {
                strncat(line, h ? ", " : "", sizeof line - strlen(line) - 1);
                strncat(line, hyps[h].name, sizeof line - strlen(line) - 1);
            } else {
                mism_des[h]++;
            }
        }
        if (line[0] == ',') memmove(line, line + 2, strlen(line + 2) + 1);
        if (!quiet || !line[0])
            printf("%-12s %-58s %-22s %s\n", d->id, d->what, hs, line[0] ? line : "(none)");
    }

    /* random validation */
    struct rset {
        int set, K, tiles;
    } rs[] = {{R1_NORMAL, 16, 64},    {R2_WIDE, 16, 64},   {R3_CANCEL, 16, 64}, {R4_MIXED, 16, 64},
              {R5_SUBNORMAL, 16, 64}, {R1_NORMAL, 64, 32}, {R3_CANCEL, 64, 32}, {R4_MIXED, 64, 32}};
    const int nrs = (int)(sizeof rs / sizeof rs[0]);
    long mism_rnd[N_HYP][8];
    memset(mism_rnd, 0, sizeof mism_rnd);
    long total = 0;
    for (int r = 0; r < nrs; r++) {
        batch bt;
        batch_init(&bt, rs[r].K, rs[r].tiles);
        fill_random(&bt, rs[r].set);
        batch_run(&bt);
        const int K = rs[r].K;
        for (int t = 0; t < bt.n; t++)
            for (int i = 0; i < 16; i++)
                for (int j = 0; j < 8; j++) {
                    const uint16_t *a = bt.A + ((size_t)t * 16 + i) * K;
                    const uint16_t *b = bt.B + ((size_t)t * 8 + j) * K;
                    float c = bt.C[t * 128 + i * 8 + j], got = bt.D[t * 128 + i * 8 + j];
                    for (int h = 0; h < N_HYP; h++)
                        if (!same_value(hm_dot(&hyps[h], c, a, b, K), got)) mism_rnd[h][r]++;
                    total++;
                }
        batch_free(&bt);
    }

    printf("\nmismatches per hypothesis (designed: %d experiments; random: %ld dot products)\n",
           n_designed, total);
    printf("%-14s %8s", "hypothesis", "designed");
    for (int r = 0; r < nrs; r++) printf(" %7s/K%-2d", set_names[rs[r].set] + 3, rs[r].K);
    printf(" %9s\n", "total");
    long tot[N_HYP];
    for (int h = 0; h < N_HYP; h++) {
        tot[h] = mism_des[h];
        printf("%-14s %8ld", hyps[h].name, mism_des[h]);
        for (int r = 0; r < nrs; r++) printf(" %10ld", mism_rnd[h][r]), tot[h] += mism_rnd[h][r];
        printf(" %9ld\n", tot[h]);
    }
    int refuted_all = 1;
    for (int h = 1; h < N_HYP; h++) refuted_all &= tot[h] > 0;
    long n_all = total + n_designed;
    if (tot[0] == 0 && refuted_all) {
        printf(
            "\nmeasured: B=16 F=25 final rounding RZ (0 mismatches in %ld); every alternative "
            "refuted\n",
            n_all);
        if (!layout_bad) return 0;
        printf("verdict: FAIL: %d stray nonzero outputs in the designed tiles (above)\n",
               layout_bad);
        return 1;
    }
    int best = 0;
    for (int h = 1; h < N_HYP; h++)
        if (tot[h] < tot[best]) best = h;
    if (tot[0] == 0)
        printf(
            "\nmeasured: B=16 F=25 final rounding RZ (0 mismatches in %ld), but some "
            "alternative was not refuted\n",
            n_all);
    else
        printf(
            "\nmeasured: the contract's model B=16 F=25 RZ FAILS (%ld mismatches in %ld); "
            "closest: %s (%ld)\n",
            tot[0], n_all, hyps[best].name, tot[best]);
    return 1;
}
