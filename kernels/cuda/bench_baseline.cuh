/* bench_baseline.cuh: the baseline of `moefuzz bench kernel`: the same MoE from cuBLAS
 * (cublasGemmEx per expert, bf16 in and out, fp32 compute) plus simple kernels: routing (warp
 * per token), gather, SwiGLU, weighted fp32 combine. Its per-expert row counts come from one
 * routing run before capture (cuBLAS needs them on the host), so the baseline is not charged for
 * the permutation that the fused kernel computes on the device. Also the fills of the inputs.
 * Included by bench_kernel.cu only.
 */
#ifndef MF_CUDA_BENCH_BASELINE_CUH
#define MF_CUDA_BENCH_BASELINE_CUH

#include <math.h>
#include <stdint.h>

#include <cuda_runtime.h>

#include "bench.h"
#include "bench_libs.h"

/* ---- inputs: hashed normal values, never zero ---- */

static __device__ __forceinline__ uint64_t mix64(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* scale * N(0,1) by Box-Muller on two hashed uniforms in (0, 1] */
static __device__ __forceinline__ float hash_normal(uint64_t seed, uint64_t i) {
    uint64_t h = mix64(seed * 0x9e3779b97f4a7c15ull + mix64(i + 0x632be59bd9b4e019ull));
    float u1 = ((float)(uint32_t)(h >> 40) + 1.0f) * 0x1p-24f;
    float u2 = (float)(uint32_t)(h & 0xffffffu) * 0x1p-24f;
    return sqrtf(-2.0f * logf(u1)) * cospif(2.0f * u2);
}

static __global__ void fill_bf16_kernel(uint16_t *p, size_t n, uint64_t seed, float scale) {
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x) {
        uint32_t u = __float_as_uint(scale * hash_normal(seed, i));
        uint16_t b = (uint16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
        if ((b & 0x7fffu) == 0) b |= 0x3c00u; /* never zero: 2^-7 with the sign kept */
        p[i] = b;
    }
}

static __global__ void fill_f32_kernel(float *p, size_t n, uint64_t seed, float scale) {
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x) {
        float v = scale * hash_normal(seed, i);
        p[i] = v != 0.0f ? v : 0x1p-7f;
    }
}

/* On the legacy default stream: callers synchronise the device before using the data. */
static void fill_bf16(uint16_t *p, size_t n, uint64_t seed, float scale) {
    fill_bf16_kernel<<<4096, 256>>>(p, n, seed, scale);
    CK(cudaGetLastError());
}
static void fill_f32(float *p, size_t n, uint64_t seed, float scale) {
    fill_f32_kernel<<<4096, 256>>>(p, n, seed, scale);
    CK(cudaGetLastError());
}

/* ---- baseline kernels ---- */

static __device__ __forceinline__ float b2f(uint16_t b) {
    return __uint_as_float((uint32_t)b << 16);
}
static __device__ __forceinline__ uint16_t f2b(float f) {
    uint32_t u = __float_as_uint(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40u);
    return (uint16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

static __device__ __forceinline__ int base_argmax(float v, int i) {
    for (int off = 16; off > 0; off >>= 1) {
        float ov = __shfl_xor_sync(0xffffffffu, v, off);
        int oi = __shfl_xor_sync(0xffffffffu, i, off);
        if (oi >= 0 && (i < 0 || ov > v || (ov == v && oi < i))) v = ov, i = oi;
    }
    return i;
}

/* Warp per token, 4 warps per block; shared: per warp score[E], key[E] (and gscore[NG]). */
static __global__ void base_route_kernel(bench_shape s, int T, const float *logits,
                                         const float *bias, int32_t *ids, float *w) {
    extern __shared__ float bsm[];
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, t = blockIdx.x * 4 + warp;
    if (t >= T) return;
    const int E = s.E, NG = s.n_group, G = E / NG;
    float *score = bsm + (size_t)warp * (2 * E + NG), *key = score + E, *gsc = key + E;
    const float *l = logits + (size_t)t * E;
    float m = -INFINITY, sum = 0.0f;
    if (s.score_fn == MF_ABI_SCORE_SOFTMAX) {
        for (int e = lane; e < E; e += 32) m = fmaxf(m, l[e]);
        for (int o = 16; o > 0; o >>= 1) m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, o));
        for (int e = lane; e < E; e += 32) sum += expf(l[e] - m);
        for (int o = 16; o > 0; o >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, o);
    }
    for (int e = lane; e < E; e += 32) {
        float sc =
            s.score_fn == MF_ABI_SCORE_SIGMOID ? 1.0f / (1.0f + expf(-l[e])) : expf(l[e] - m) / sum;
        score[e] = sc;
        key[e] = bias ? sc + bias[e] : sc;
    }
    __syncwarp();
    if (NG > 1) { /* top-2-sum group scores, keep topk_group, drop the rest */
        for (int g = lane; g < NG; g += 32) {
            float k1 = -INFINITY, k2 = -INFINITY;
            for (int i = 0; i < G; i++) {
                float v = key[g * G + i];
                if (v > k1)
                    k2 = k1, k1 = v;
                else if (v > k2)
                    k2 = v;
            }
            gsc[g] = G == 1 ? k1 : k1 + k2;
        }
        __syncwarp();
        unsigned keep = 0; /* NG <= 32 in the bench shapes */
        for (int n = 0; n < s.topk_group; n++) {
            float bv = -INFINITY;
            int bi = -1;
            for (int g = lane; g < NG; g += 32)
                if (!(keep >> g & 1u) && (bi < 0 || gsc[g] > bv)) bv = gsc[g], bi = g;
            bi = base_argmax(bv, bi);
            if (bi >= 0) keep |= 1u << bi;
        }
        for (int e = lane; e < E; e += 32)
            if (!(keep >> (e / G) & 1u)) key[e] = -INFINITY;
        __syncwarp();
    }
    int my = 0;
    for (int n = 0; n < s.k; n++) {
        float bv = -INFINITY;
        int bi = -1;
        for (int e = lane; e < E; e += 32)
            if (key[e] != -INFINITY && (bi < 0 || key[e] > bv)) bv = key[e], bi = e;
        bi = base_argmax(bv, bi);
        if (bi < 0) bi = 0;
        if (lane == n) my = bi;
        __syncwarp();
        if (lane == 0) key[bi] = -INFINITY;
        __syncwarp();
    }
    float wv = lane < s.k ? score[my] : 0.0f, ws = 0.0f;
    for (int n = 0; n < s.k; n++) ws += __shfl_sync(0xffffffffu, wv, n);
    if (s.renormalize) wv = wv / (ws + s.eps);
    wv = wv * s.rsf;
    if (lane < s.k) ids[(size_t)t * s.k + lane] = my, w[(size_t)t * s.k + lane] = wv;
}

/* xg[row][:] = x[row_token[row]][:], 16 bytes per thread (H % 8 == 0 in the bench shapes) */
static __global__ void base_gather_kernel(const uint16_t *x, const int32_t *row_token, int rows,
                                          int H, uint16_t *xg) {
    const int per = H / 8;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < (size_t)rows * per;
         i += (size_t)gridDim.x * blockDim.x) {
        size_t r = i / per, c = i % per;
        ((uint4 *)(xg + r * H))[c] = ((const uint4 *)(x + (size_t)row_token[r] * H))[c];
    }
}

/* h[r][j] = bf16(silu(g) * u), c1 = [rows][2I] with gate columns first */
static __global__ void base_swiglu_kernel(const uint16_t *c1, int rows, int I, uint16_t *h) {
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < (size_t)rows * I;
         i += (size_t)gridDim.x * blockDim.x) {
        size_t r = i / I, j = i % I;
        float g = b2f(c1[r * 2 * I + j]), u = b2f(c1[r * 2 * I + I + j]);
        h[i] = f2b(g / (1.0f + expf(-g)) * u);
    }
}

/* out[t][c] = bf16(sum_s w[t,s] * y[row(t,s)][c]) */
static __global__ void base_combine_kernel(const uint16_t *y, const float *w,
                                           const int32_t *entry_row, int T, int k, int H,
                                           uint16_t *out) {
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < (size_t)T * H;
         i += (size_t)gridDim.x * blockDim.x) {
        size_t t = i / H, c = i % H;
        float acc = 0.0f;
        for (int s = 0; s < k; s++) {
            int r = entry_row[t * k + s];
            if (r >= 0) acc += w[t * k + s] * b2f(y[(size_t)r * H + c]);
        }
        out[i] = f2b(acc);
    }
}

/* Routes the T tokens of one input set (ids, w: [T][k]) on st. */
static void base_route(const bench_shape *s, int T, const float *logits, const float *bias,
                       int32_t *ids, float *w, cudaStream_t st) {
    const int rsm = 4 * (2 * s->E + s->n_group) * 4;
    base_route_kernel<<<(T + 3) / 4, 128, rsm, st>>>(*s, T, logits, bias, ids, w);
}

/* Work buffers of the baseline, shared by its input sets: gathered rows, GEMM1 output,
 * activations, GEMM2 output ([T k] rows each). */
typedef struct base_bufs {
    uint16_t *xg, *c1, *hb, *yb;
} base_bufs;

/* One input set of the baseline: its tensors, its routing (ids, w on the device), and its
 * permutation (rows grouped by expert, in entry order): cnt[e] rows of expert e from start[e];
 * row_token / entry_row on the device. */
typedef struct base_set {
    const uint16_t *x, *w13, *w2;
    const float *logits, *bias;
    int32_t *ids;
    float *w;
    const int *cnt, *start;
    const int32_t *row_token, *entry_row;
} base_set;

/* Captures the baseline's graph of one input set into *ge, the output into out: routing, gather,
 * per expert GEMM1, SwiGLU, per expert GEMM2, combine. 0, or 1 when a GEMM failed. */
static int base_capture(mf_bench_cublas *cb, const bench_shape *s, int T, const base_set *in,
                        const base_bufs *b, uint16_t *out, cudaStream_t st, cudaGraphExec_t *ge) {
    const int H = s->H, I = s->I, E = s->E, k = s->k, n = T * k;
    int fail = 0;
    cudaGraph_t g;
    CK(cudaStreamBeginCapture(st, cudaStreamCaptureModeThreadLocal));
    base_route(s, T, in->logits, in->bias, in->ids, in->w, st);
    base_gather_kernel<<<1024, 256, 0, st>>>(in->x, in->row_token, n, H, b->xg);
    for (int e = 0; e < E && !fail; e++)
        if (in->cnt[e])
            fail = mf_bench_gemm_rm(cb, b->xg + (size_t)in->start[e] * H,
                                    in->w13 + (size_t)e * 2 * I * H,
                                    b->c1 + (size_t)in->start[e] * 2 * I, in->cnt[e], 2 * I, H);
    base_swiglu_kernel<<<2048, 256, 0, st>>>(b->c1, n, I, b->hb);
    for (int e = 0; e < E && !fail; e++)
        if (in->cnt[e])
            fail = mf_bench_gemm_rm(cb, b->hb + (size_t)in->start[e] * I,
                                    in->w2 + (size_t)e * H * I, b->yb + (size_t)in->start[e] * H,
                                    in->cnt[e], H, I);
    base_combine_kernel<<<2048, 256, 0, st>>>(b->yb, in->w, in->entry_row, T, k, H, out);
    CK(cudaStreamEndCapture(st, &g));
    CK(cudaGetLastError());
    if (!fail) CK(cudaGraphInstantiate(ge, g, 0));
    CK(cudaGraphDestroy(g));
    return fail;
}

#endif /* MF_CUDA_BENCH_BASELINE_CUH */
