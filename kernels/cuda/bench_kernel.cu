/* bench_kernel.cu: `moefuzz bench kernel`: the fused CUDA MoE kernel against a cuBLAS baseline,
 * on three real-model shapes, with floors measured in the same run.
 *
 *   moefuzz bench kernel [--shape NAME[,NAME]] [--T LIST] [--reps N] [--no-baseline]
 *                        [--require-baseline]
 *
 * For each (shape, T): the median over --reps replays of a CUDA graph of the whole MoE (routing
 * through combine), for the fused kernel (through its ABI, kernels/cuda/moe_cuda.cu) and for
 * the baseline, timed with events in the same process, their replays alternating. Inputs are
 * generated on the device (hash-based, never zero): x ~ N(0,1), logits ~ N(0,1), W13 ~ N(0,
 * 1/sqrt(H)), W2 ~ N(0, 1/sqrt(I)), bias ~ 0.1 N(0,1). Four input sets rotate between replays so
 * that consecutive replays route to different experts; the weights are replicated too when all of
 * them would fit in a few L2 sizes.
 *
 * Baseline: the same MoE from cuBLAS (cublasGemmEx per expert, bf16 in and out, fp32 compute)
 * plus simple kernels: routing (warp per token), gather, SwiGLU, weighted fp32 combine. Its
 * per-expert row counts are taken from one routing run before capture (cuBLAS needs them on the
 * host), so the baseline is NOT charged for the permutation that the fused kernel computes on
 * the device: a conservative baseline. cuBLAS is loaded with dlopen, so moefuzz has no link
 * dependency on it; without it the baseline and the compute floor are reported unavailable,
 * and nothing checks the fused kernel's output: --require-baseline (the smoke test) makes that
 * an error.
 *
 * Figures: TFLOP/s = 2 T k 3 H I / t; GB/s = (bytes of the distinct experts selected + x +
 * logits + out) / t; %mem = those bytes over the copy bandwidth measured here (a large
 * device-to-device copy, read + write counted) divided by t; %compute = flops over the bf16
 * GEMM rate measured here (cuBLAS 8192^3) divided by t; speedup = baseline / fused.
 * read_us: a graph that only reads the weights of the step's distinct experts once
 * (read_weights_kernel), timed alternating with the other two: what streaming those bytes costs
 * on this card with the launch, ramp and tail that the copy bandwidth of %mem leaves out;
 * %read = read_us / fused_us, how close the fused step comes to that attainable time (100%: as
 * fast as the bare read). Measured with the baseline only.
 * MHz: the SM clock (median of samples every 2 ms or more while the replays of both run; n/a
 * below 5 samples), P where the software power cap was holding the clock down in at least half
 * of the samples (thermal and hardware slowdowns are not flagged): a compute-bound shape on a
 * card at its power limit runs below its top clock, and speed then follows the energy each
 * kernel spends per step. (NVML's board power is a one-second average on Hopper, too slow for
 * these runs, so it is not shown.) NVML is loaded with dlopen too; without it the column reads
 * n/a.
 * Exit: 0, 1 on a CUDA error, when fused and baseline disagree or (--require-baseline) when
 * there is no baseline to compare with, 2 bad arguments, 77 no device (cuda_device.h: only the
 * absence of a device skips; 1 under MOEFUZZ_REQUIRE_GPU=1).
 */
#include <dlfcn.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cublas_api.h> /* types and enum values only: every call goes through dlsym */
#include <cuda_runtime.h>

#include "cuda_device.h"
#include "moe_cuda.h"

#define BENCH_SETS 4  /* input sets rotated between replays */
#define BENCH_MAX_T 8 /* entries of --T */
#define BENCH_MAX_REPS 1000

typedef struct bench_shape {
    const char *name;
    int E, k, H, I;
    int score_fn, bias_dtype, n_group, topk_group;
    int renormalize;
    float eps, rsf;
} bench_shape;

static const bench_shape shapes[] = {
    {"deepseek-v3", 256, 8, 7168, 2048, MF_ABI_SCORE_SIGMOID, MF_ABI_BIAS_F32, 8, 4, 1, 1e-20f,
     2.5f},
    {"qwen3-30b-a3b", 128, 8, 2048, 768, MF_ABI_SCORE_SOFTMAX, MF_ABI_BIAS_NONE, 1, 1, 1, 0.0f,
     1.0f},
    {"mixtral", 8, 2, 4096, 14336, MF_ABI_SCORE_SOFTMAX, MF_ABI_BIAS_NONE, 1, 1, 1, 0.0f, 1.0f},
};
#define N_SHAPES ((int)(sizeof shapes / sizeof shapes[0]))

static void bench_exit_failed(void); /* stops the clock sampler, then exit(1) */

#define CK(call)                                                                               \
    do {                                                                                       \
        cudaError_t e_ = (call);                                                               \
        if (e_ != cudaSuccess) {                                                               \
            fprintf(stderr, "moefuzz bench kernel: %s failed at %s:%d: %s\n", #call, __FILE__, \
                    __LINE__, cudaGetErrorString(e_));                                         \
            bench_exit_failed();                                                               \
        }                                                                                      \
    } while (0)

/* ---- cuBLAS through dlopen ---- */

typedef cublasStatus_t (*pfn_create)(cublasHandle_t *);
typedef cublasStatus_t (*pfn_destroy)(cublasHandle_t);
typedef cublasStatus_t (*pfn_set_stream)(cublasHandle_t, cudaStream_t);
typedef cublasStatus_t (*pfn_set_workspace)(cublasHandle_t, void *, size_t);
typedef cublasStatus_t (*pfn_gemm_ex)(cublasHandle_t, cublasOperation_t, cublasOperation_t, int,
                                      int, int, const void *, const void *, cudaDataType, int,
                                      const void *, cudaDataType, int, const void *, void *,
                                      cudaDataType, int, cublasComputeType_t, cublasGemmAlgo_t);

typedef struct cublas_lib {
    void *dl;
    pfn_create create;
    pfn_destroy destroy;
    pfn_set_stream set_stream;
    pfn_set_workspace set_workspace; /* may be NULL */
    pfn_gemm_ex gemm_ex;
    cublasHandle_t h;
    void *ws;
    char from[256];
} cublas_lib;

static void *sym(void *dl, const char *name) {
    return dlsym(dl, name);
}

static int cublas_load(cublas_lib *cb, cudaStream_t stream) {
    memset(cb, 0, sizeof *cb);
    const char *names[] = {"libcublas.so.13", "libcublas.so",
                           "/usr/local/cuda/lib64/libcublas.so.13",
                           "/usr/local/cuda/lib64/libcublas.so"};
    for (size_t i = 0; i < sizeof names / sizeof names[0] && !cb->dl; i++) {
        cb->dl = dlopen(names[i], RTLD_NOW | RTLD_LOCAL);
        if (cb->dl) snprintf(cb->from, sizeof cb->from, "%s", names[i]);
    }
    if (!cb->dl) {
        printf("cuBLAS: not found (%s): baseline and compute floor unavailable\n", dlerror());
        return 0;
    }
    cb->create = (pfn_create)sym(cb->dl, "cublasCreate_v2");
    cb->destroy = (pfn_destroy)sym(cb->dl, "cublasDestroy_v2");
    cb->set_stream = (pfn_set_stream)sym(cb->dl, "cublasSetStream_v2");
    cb->set_workspace = (pfn_set_workspace)sym(cb->dl, "cublasSetWorkspace_v2");
    cb->gemm_ex = (pfn_gemm_ex)sym(cb->dl, "cublasGemmEx");
    if (!cb->create || !cb->destroy || !cb->set_stream || !cb->gemm_ex ||
        cb->create(&cb->h) != CUBLAS_STATUS_SUCCESS) {
        printf("cuBLAS: %s lacks a symbol or cublasCreate failed: baseline unavailable\n",
               cb->from);
        dlclose(cb->dl);
        cb->dl = NULL;
        return 0;
    }
    cb->set_stream(cb->h, stream);
    /* a fixed workspace: nothing for cuBLAS to allocate while a graph is being captured */
    if (cb->set_workspace) {
        size_t bytes = 64u << 20;
        CK(cudaMalloc(&cb->ws, bytes));
        cb->set_workspace(cb->h, cb->ws, bytes);
    }
    printf("cuBLAS: %s\n", cb->from);
    return 1;
}

/* Row-major C[m][n] (bf16) = A[m][k] . B[n][k]^T, i.e. column-major C^T = B . A^T. */
static int gemm_rm(cublas_lib *cb, const uint16_t *A, const uint16_t *B, uint16_t *C, int m, int n,
                   int k) {
    const float one = 1.0f, zero = 0.0f;
    cublasStatus_t s = cb->gemm_ex(cb->h, CUBLAS_OP_T, CUBLAS_OP_N, n, m, k, &one, B, CUDA_R_16BF,
                                   k, A, CUDA_R_16BF, k, &zero, C, CUDA_R_16BF, n,
                                   CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
    if (s != CUBLAS_STATUS_SUCCESS) {
        fprintf(stderr, "moefuzz bench kernel: cublasGemmEx(%d x %d x %d) failed: status %d\n", m,
                n, k, (int)s);
        return 1;
    }
    return 0;
}

/* ---- device data ---- */

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

/* ---- the SM clock during the replays: NVML through dlopen (no header, no link) ---- */
typedef struct nvml_lib {
    void *dl, *dev;                               /* the library, the card's nvmlDevice_t */
    int (*clock)(void *, int, unsigned *);        /* nvmlDeviceGetClockInfo */
    int (*reasons)(void *, unsigned long long *); /* ...ClocksEventReasons, or the older name */
    int (*shutdown)(void);                        /* nvmlShutdown */
} nvml_lib;
#define NVML_CLOCK_SM_ID 1              /* nvmlClockType_t NVML_CLOCK_SM */
#define NVML_REASON_SW_POWER_CAP 0x4ULL /* nvmlClocksEventReasonSwPowerCap */

/* The CUDA device's NVML handle, matched by PCI bus id; nv->dl stays NULL when anything fails. */
static void nvml_load(nvml_lib *nv, int cuda_dev) {
    memset(nv, 0, sizeof *nv);
    void *dl = dlopen("libnvidia-ml.so.1", RTLD_NOW | RTLD_LOCAL);
    if (!dl) return;
    int (*init)(void) = (int (*)(void))dlsym(dl, "nvmlInit_v2");
    int (*by_bus)(const char *, void **) =
        (int (*)(const char *, void **))dlsym(dl, "nvmlDeviceGetHandleByPciBusId_v2");
    nv->clock = (int (*)(void *, int, unsigned *))dlsym(dl, "nvmlDeviceGetClockInfo");
    nv->reasons =
        (int (*)(void *, unsigned long long *))dlsym(dl, "nvmlDeviceGetCurrentClocksEventReasons");
    if (!nv->reasons)
        nv->reasons = (int (*)(void *, unsigned long long *))dlsym(
            dl, "nvmlDeviceGetCurrentClocksThrottleReasons");
    nv->shutdown = (int (*)(void))dlsym(dl, "nvmlShutdown");
    char bus[64];
    const int up = init && by_bus && nv->clock && nv->shutdown && init() == 0;
    if (up && cudaDeviceGetPCIBusId(bus, (int)sizeof bus, cuda_dev) == cudaSuccess &&
        by_bus(bus, &nv->dev) == 0) {
        nv->dl = dl;
        return;
    }
    if (up) nv->shutdown();
    dlclose(dl);
    memset(nv, 0, sizeof *nv);
}

static void nvml_unload(nvml_lib *nv) {
    if (!nv->dl) return;
    nv->shutdown();
    dlclose(nv->dl);
    memset(nv, 0, sizeof *nv);
}

/* Samples: the clock in MHz, bit 31 set where the power cap was active. A full buffer keeps
 * every other sample and doubles the interval, so a long run is sampled evenly to its end. */
#define SAMPLER_MAX 4096
#define SAMPLER_MIN 5 /* fewer samples (a run under about 10 ms): no clock reported */
#define SAMPLE_CAPPED 0x80000000u
typedef struct clock_sampler {
    const nvml_lib *nv;
    int stop, n;
    unsigned s[SAMPLER_MAX];
    pthread_t th;
} clock_sampler;

static void *sampler_main(void *arg) {
    clock_sampler *cs = (clock_sampler *)arg;
    unsigned interval_us = 2000;
    while (!__atomic_load_n(&cs->stop, __ATOMIC_ACQUIRE)) {
        unsigned mhz = 0;
        unsigned long long why = 0;
        if (cs->nv->clock(cs->nv->dev, NVML_CLOCK_SM_ID, &mhz) == 0) {
            const int capped = cs->nv->reasons && cs->nv->reasons(cs->nv->dev, &why) == 0 &&
                               (why & NVML_REASON_SW_POWER_CAP);
            if (cs->n == SAMPLER_MAX) {
                for (int i = 0; i < SAMPLER_MAX / 2; i++) cs->s[i] = cs->s[2 * i];
                cs->n = SAMPLER_MAX / 2, interval_us *= 2;
            }
            cs->s[cs->n++] = (mhz & ~SAMPLE_CAPPED) | (capped ? SAMPLE_CAPPED : 0u);
        }
        usleep(interval_us);
    }
    return NULL;
}

/* The sampler running now (for bench_exit_failed), or NULL. */
static clock_sampler *running_sampler;

/* Starts sampling (nothing without NVML); returns 0 when it runs. */
static int sampler_start(clock_sampler *cs, const nvml_lib *nv) {
    memset(cs, 0, sizeof *cs);
    cs->nv = nv;
    if (!nv->dl || pthread_create(&cs->th, NULL, sampler_main, cs) != 0) return 1;
    running_sampler = cs;
    return 0;
}

static void sampler_join(clock_sampler *cs) {
    __atomic_store_n(&cs->stop, 1, __ATOMIC_RELEASE);
    pthread_join(cs->th, NULL);
    running_sampler = NULL;
}

/* A CUDA call failed (CK): no thread may still be inside NVML while exit() unloads libraries. */
static void bench_exit_failed(void) {
    if (running_sampler) sampler_join(running_sampler);
    exit(1);
}

static int cmp_unsigned(const void *a, const void *b) {
    unsigned x = *(const unsigned *)a, y = *(const unsigned *)b;
    return x < y ? -1 : x > y;
}

/* Stops sampling: the median clock (MHz) and the share of samples under the software power
 * cap, or mhz = 0 when fewer than SAMPLER_MIN samples were taken. */
static void sampler_stop(clock_sampler *cs, int running, double *mhz, double *cap) {
    *mhz = *cap = 0.0;
    if (!running) return;
    sampler_join(cs);
    if (cs->n < SAMPLER_MIN) return;
    int capped = 0;
    for (int i = 0; i < cs->n; i++) {
        capped += (cs->s[i] & SAMPLE_CAPPED) != 0;
        cs->s[i] &= ~SAMPLE_CAPPED;
    }
    qsort(cs->s, (size_t)cs->n, sizeof cs->s[0], cmp_unsigned);
    *mhz = cs->n % 2 ? cs->s[cs->n / 2] : 0.5 * (cs->s[cs->n / 2 - 1] + cs->s[cs->n / 2]);
    *cap = (double)capped / cs->n;
}

/* ---- timing ---- */

static int cmp_float(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return x < y ? -1 : x > y;
}

/* Reads the weights of a step's distinct experts once and discards them: how long a step that
 * did nothing but stream its experts' bytes would take on this card (launch, ramp and tail
 * included). Segments: seg_ptr[s], 16-byte units seg_start[s] .. seg_start[s + 1] - 1 of the
 * concatenation. A thread's loads run through the concatenation in increasing order, so it
 * keeps its segment index; eight loads in flight per thread. */
static __global__ void read_weights_kernel(const uint4 *const *seg_ptr, const long long *seg_start,
                                           int nseg, unsigned *sink) {
    const long long total = seg_start[nseg], nth = (long long)gridDim.x * blockDim.x;
    int seg = 0;
    unsigned acc = 0;
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += 8 * nth) {
        uint4 v[8];
#pragma unroll
        for (int u = 0; u < 8; u++) {
            const long long j = i + u * nth;
            v[u] = make_uint4(0u, 0u, 0u, 0u);
            if (j < total) {
                while (j >= seg_start[seg + 1]) seg++;
                v[u] = __ldg(seg_ptr[seg] + (j - seg_start[seg]));
            }
        }
#pragma unroll
        for (int u = 0; u < 8; u++) acc ^= v[u].x ^ v[u].y ^ v[u].z ^ v[u].w;
    }
    if (acc == 0x9e3779b9u) sink[0] = acc; /* a sink the compiler cannot drop */
}

/* Median milliseconds of `reps` replays of each of ng graph sets: replay r runs g[0][r % n],
 * g[1][r % n], ... in turn, each between two events, all enqueued before any wait so the GPU
 * never idles on the host. Alternating the fused kernel with its baseline gives both the same
 * clocks and temperature: a compute-bound shape's run-to-run drift (several percent on an H100)
 * then moves both medians, not their ratio. The card's SM clock is sampled while the replays
 * run (clk: median MHz, share of samples under the power cap; see sampler_stop). */
static void time_graphs(cudaGraphExec_t *const *g, int ng, int n, int reps, cudaStream_t st,
                        const nvml_lib *nv, float *med, double clk[2]) {
    const int m = ng * reps;
    cudaEvent_t *ev = (cudaEvent_t *)malloc(sizeof(cudaEvent_t) * 2 * m);
    float *ms = (float *)malloc(sizeof(float) * m);
    for (int i = 0; i < 2 * m; i++) CK(cudaEventCreate(&ev[i]));
    for (int i = 0; i < n; i++)
        for (int j = 0; j < ng; j++) CK(cudaGraphLaunch(g[j][i], st)); /* warm-up */
    /* sampling from here on also sees the warm-up's tail: no host wait between the two */
    clock_sampler *cs = (clock_sampler *)malloc(sizeof *cs);
    const int sampling = cs && sampler_start(cs, nv) == 0;
    for (int r = 0; r < reps; r++)
        for (int j = 0; j < ng; j++) {
            CK(cudaEventRecord(ev[2 * (j * reps + r)], st));
            CK(cudaGraphLaunch(g[j][r % n], st));
            CK(cudaEventRecord(ev[2 * (j * reps + r) + 1], st));
        }
    CK(cudaStreamSynchronize(st));
    sampler_stop(cs, sampling, &clk[0], &clk[1]);
    free(cs);
    for (int i = 0; i < m; i++) CK(cudaEventElapsedTime(&ms[i], ev[2 * i], ev[2 * i + 1]));
    for (int j = 0; j < ng; j++) {
        float *x = ms + (size_t)j * reps;
        qsort(x, (size_t)reps, sizeof(float), cmp_float);
        med[j] = reps % 2 ? x[reps / 2] : 0.5f * (x[reps / 2 - 1] + x[reps / 2]);
    }
    for (int i = 0; i < 2 * m; i++) cudaEventDestroy(ev[i]);
    free(ev);
    free(ms);
}

/* Copy bandwidth (bytes read + written per second) of a device-to-device copy of 1 GiB. */
static double measure_copy_bw(cudaStream_t st) {
    size_t bytes = (size_t)1 << 30;
    void *a, *b;
    CK(cudaMalloc(&a, bytes));
    CK(cudaMalloc(&b, bytes));
    CK(cudaMemsetAsync(a, 1, bytes, st));
    cudaEvent_t e0, e1;
    CK(cudaEventCreate(&e0));
    CK(cudaEventCreate(&e1));
    float ms[10];
    for (int r = -2; r < 10; r++) {
        CK(cudaEventRecord(e0, st));
        CK(cudaMemcpyAsync(b, a, bytes, cudaMemcpyDeviceToDevice, st));
        CK(cudaEventRecord(e1, st));
        CK(cudaEventSynchronize(e1));
        if (r >= 0) CK(cudaEventElapsedTime(&ms[r], e0, e1));
    }
    qsort(ms, 10, sizeof(float), cmp_float);
    cudaEventDestroy(e0);
    cudaEventDestroy(e1);
    CK(cudaFree(a));
    CK(cudaFree(b));
    return 2.0 * (double)bytes / (0.5 * (ms[4] + ms[5]) * 1e-3);
}

/* bf16 matmul rate of cuBLAS on 8192^3 random data, flop/s; 0 without cuBLAS. */
static double measure_gemm_rate(cublas_lib *cb, cudaStream_t st) {
    if (!cb->dl) return 0;
    const int n = 8192;
    uint16_t *a, *b, *c;
    CK(cudaMalloc(&a, (size_t)n * n * 2));
    CK(cudaMalloc(&b, (size_t)n * n * 2));
    CK(cudaMalloc(&c, (size_t)n * n * 2));
    fill_bf16(a, (size_t)n * n, 11, 1.0f);
    fill_bf16(b, (size_t)n * n, 12, 1.0f);
    CK(cudaDeviceSynchronize());
    cudaEvent_t e0, e1;
    CK(cudaEventCreate(&e0));
    CK(cudaEventCreate(&e1));
    float ms[10];
    for (int r = -3; r < 10; r++) {
        CK(cudaEventRecord(e0, st));
        if (gemm_rm(cb, a, b, c, n, n, n)) return 0;
        CK(cudaEventRecord(e1, st));
        CK(cudaEventSynchronize(e1));
        if (r >= 0) CK(cudaEventElapsedTime(&ms[r], e0, e1));
    }
    qsort(ms, 10, sizeof(float), cmp_float);
    cudaEventDestroy(e0);
    cudaEventDestroy(e1);
    CK(cudaFree(a));
    CK(cudaFree(b));
    CK(cudaFree(c));
    return 2.0 * n * (double)n * n / (0.5 * (ms[4] + ms[5]) * 1e-3);
}

/* ---- one (shape, T) ---- */

typedef struct bench_row {
    const char *shape;
    int T;
    double fused_us, base_us, tflops, gbs, pct_mem, pct_compute, rel_diff;
    double read_us; /* the distinct experts' weights read alone (read_weights_kernel) */
    double clk[2];  /* during the replays: SM clock (MHz, 0: not sampled), share power-capped */
    int have_base, have_read, agree;
    char gemms[64]; /* the GEMM variants the fused kernel chose (mf_cuda_kernel_describe) */
} bench_row;

typedef struct shape_data {
    const bench_shape *s;
    int copies; /* weight replicas (rotation when all weights fit near L2) */
    uint16_t *w13[BENCH_SETS], *w2[BENCH_SETS];
    float *bias;
} shape_data;

/* The read-alone graph of one input set: read_weights_kernel over the weights (copy c) of every
 * expert its routing selected (cnt[e] > 0). *segs receives the kernel's segment table in device
 * memory (nseg pointers, then nseg + 1 prefix sums in 16-byte units), for the caller to free
 * once the graph is destroyed. */
static cudaGraphExec_t read_graph(const shape_data *sd, const int *cnt, int c, unsigned *sink,
                                  cudaStream_t st, void **segs) {
    const int E = sd->s->E;
    const size_t w13 = (size_t)2 * sd->s->I * sd->s->H, w2 = (size_t)sd->s->H * sd->s->I;
    const uint4 **ptr = (const uint4 **)malloc(sizeof(uint4 *) * 2 * E);
    long long *start = (long long *)malloc(sizeof(long long) * (2 * E + 1));
    int n = 0;
    start[0] = 0;
    for (int e = 0; e < E; e++) {
        if (!cnt[e]) continue;
        ptr[n] = (const uint4 *)(sd->w13[c] + e * w13);
        start[n + 1] = start[n] + (long long)(w13 * 2 / 16), n++;
        ptr[n] = (const uint4 *)(sd->w2[c] + e * w2);
        start[n + 1] = start[n] + (long long)(w2 * 2 / 16), n++;
    }
    const size_t pb = sizeof(uint4 *) * (n > 0 ? n : 1), sb = sizeof(long long) * (n + 1);
    char *d;
    CK(cudaMalloc(&d, pb + sb));
    CK(cudaMemcpy(d, ptr, sizeof(uint4 *) * n, cudaMemcpyHostToDevice));
    CK(cudaMemcpy(d + pb, start, sb, cudaMemcpyHostToDevice));
    free(ptr);
    free(start);
    int sms = 0;
    CK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0));
    cudaGraph_t g;
    cudaGraphExec_t ge;
    CK(cudaStreamBeginCapture(st, cudaStreamCaptureModeThreadLocal));
    read_weights_kernel<<<2 * sms, 512, 0, st>>>((const uint4 *const *)d,
                                                 (const long long *)(d + pb), n, sink);
    CK(cudaStreamEndCapture(st, &g));
    CK(cudaGetLastError());
    CK(cudaGraphInstantiate(&ge, g, 0));
    CK(cudaGraphDestroy(g));
    *segs = d;
    return ge;
}

static void params_for(const bench_shape *s, int T, mf_kernel_params *p) {
    memset(p, 0, sizeof *p);
    p->abi_version = MF_KERNEL_ABI_VERSION;
    p->struct_size = sizeof *p;
    p->T = T, p->H = s->H, p->I = s->I, p->E = s->E, p->E_local = s->E, p->expert_offset = 0;
    p->top_k = s->k, p->score_fn = s->score_fn, p->bias_dtype = s->bias_dtype;
    p->n_group = s->n_group, p->topk_group = s->topk_group, p->group_rule = MF_ABI_GROUP_TOP2_SUM;
    p->renormalize = s->renormalize, p->renorm_eps = s->eps, p->routed_scaling_factor = s->rsf;
    p->rsf_site = MF_ABI_RSF_WEIGHTS, p->activation = MF_ABI_ACT_SILU_GLU;
    p->layout = MF_ABI_LAYOUT_GATE_UP, p->logits_dtype = MF_ABI_DTYPE_F32;
    p->memory = MF_ABI_MEM_DEVICE;
}

static int bench_one(const shape_data *sd, int T, int reps, int use_base, cublas_lib *cb,
                     const nvml_lib *nv, const mf_kernel_api *api, void *kctx, double copy_bw,
                     double gemm_rate, cudaStream_t st, bench_row *row) {
    const bench_shape *s = sd->s;
    const int H = s->H, I = s->I, E = s->E, k = s->k, n = T * k;
    char msg[512] = "";
    memset(row, 0, sizeof *row);
    row->shape = s->name;
    row->T = T;

    /* inputs: BENCH_SETS sets of x and logits */
    uint16_t *x[BENCH_SETS], *out_f, *out_b;
    float *logits[BENCH_SETS];
    for (int i = 0; i < BENCH_SETS; i++) {
        CK(cudaMalloc(&x[i], (size_t)T * H * 2));
        CK(cudaMalloc(&logits[i], (size_t)T * E * 4));
        fill_bf16(x[i], (size_t)T * H, 1000 + 17 * i + T, 1.0f);
        fill_f32(logits[i], (size_t)T * E, 2000 + 17 * i + T, 1.0f);
    }
    CK(cudaMalloc(&out_f, (size_t)T * H * 2));
    CK(cudaMalloc(&out_b, (size_t)T * H * 2));
    CK(cudaDeviceSynchronize()); /* the fills ran on the legacy stream; st does not wait for it */

    /* fused kernel: one graph per input set */
    mf_kernel_params p[BENCH_SETS];
    size_t ws_bytes = 0;
    params_for(s, T, &p[0]);
    if (api->supports(kctx, &p[0], msg, sizeof msg) != 1 ||
        api->workspace_size(kctx, &p[0], &ws_bytes, msg, sizeof msg) != 0) {
        fprintf(stderr, "moefuzz bench kernel: %s T=%d: fused kernel refuses: %s\n", s->name, T,
                msg);
        return 1;
    }
    mf_cuda_kernel_describe(kctx, &p[0], row->gemms, sizeof row->gemms);
    void *ws;
    CK(cudaMalloc(&ws, ws_bytes));
    cudaGraphExec_t gf[BENCH_SETS];
    for (int i = 0; i < BENCH_SETS; i++) {
        params_for(s, T, &p[i]);
        int c = i % sd->copies;
        p[i].x = x[i], p[i].logits = logits[i], p[i].bias = sd->bias;
        p[i].w13 = sd->w13[c], p[i].w2 = sd->w2[c], p[i].out = out_f;
        p[i].workspace = ws, p[i].workspace_bytes = ws_bytes, p[i].stream = st;
        cudaGraph_t g;
        CK(cudaStreamBeginCapture(st, cudaStreamCaptureModeThreadLocal));
        int rc = api->run(kctx, &p[i], msg, sizeof msg);
        CK(cudaStreamEndCapture(st, &g));
        if (rc != 0) {
            fprintf(stderr, "moefuzz bench kernel: %s T=%d: run failed: %s\n", s->name, T, msg);
            return 1;
        }
        CK(cudaGraphInstantiate(&gf[i], g, 0));
        CK(cudaGraphDestroy(g));
    }
    /* routing of every set (baseline routing kernel), for the baseline's host-side expert lists
     * and the bytes of the distinct experts selected */
    int32_t *ids_d;
    float *w_d;
    CK(cudaMalloc(&ids_d, (size_t)BENCH_SETS * n * 4));
    CK(cudaMalloc(&w_d, (size_t)BENCH_SETS * n * 4));
    int32_t *ids_h = (int32_t *)malloc((size_t)BENCH_SETS * n * 4);
    int rsm = 4 * (2 * E + s->n_group) * 4;
    for (int i = 0; i < BENCH_SETS; i++) {
        base_route_kernel<<<(T + 3) / 4, 128, rsm, st>>>(
            *s, T, logits[i], sd->bias, ids_d + (size_t)i * n, w_d + (size_t)i * n);
        CK(cudaGetLastError());
    }
    CK(cudaMemcpyAsync(ids_h, ids_d, (size_t)BENCH_SETS * n * 4, cudaMemcpyDeviceToHost, st));
    CK(cudaStreamSynchronize(st));
    double distinct = 0;
    int *cnt = (int *)calloc((size_t)BENCH_SETS * E, sizeof(int));
    for (int i = 0; i < BENCH_SETS; i++) {
        for (int j = 0; j < n; j++) cnt[i * E + ids_h[(size_t)i * n + j]]++;
        for (int e = 0; e < E; e++) distinct += cnt[i * E + e] > 0;
    }
    distinct /= BENCH_SETS;
    double bytes = distinct * 3.0 * H * I * 2 + (double)T * H * 2 * 2 + (double)T * E * 4;
    double flops = 2.0 * T * k * 3.0 * H * I;

    if (!(use_base && cb->dl)) {
        float med;
        cudaGraphExec_t *sets[1] = {gf};
        time_graphs(sets, 1, BENCH_SETS, reps, st, nv, &med, row->clk);
        row->fused_us = 1e3 * med;
    } else {
        /* permutation per set: rows grouped by expert, in entry order */
        uint16_t *xg, *c1, *hb, *yb;
        CK(cudaMalloc(&xg, (size_t)n * H * 2));
        CK(cudaMalloc(&c1, (size_t)n * 2 * I * 2));
        CK(cudaMalloc(&hb, (size_t)n * I * 2));
        CK(cudaMalloc(&yb, (size_t)n * H * 2));
        int32_t *row_token_d, *entry_row_d;
        CK(cudaMalloc(&row_token_d, (size_t)BENCH_SETS * n * 4));
        CK(cudaMalloc(&entry_row_d, (size_t)BENCH_SETS * n * 4));
        int32_t *row_token = (int32_t *)malloc((size_t)n * 4),
                *entry_row = (int32_t *)malloc((size_t)n * 4);
        int *start = (int *)malloc(sizeof(int) * (E + 1));
        cudaGraphExec_t gb[BENCH_SETS];
        int fail = 0;
        for (int i = 0; i < BENCH_SETS && !fail; i++) {
            const int *ci = cnt + (size_t)i * E;
            const int32_t *idi = ids_h + (size_t)i * n;
            start[0] = 0;
            for (int e = 0; e < E; e++) start[e + 1] = start[e] + ci[e];
            int *fill = (int *)calloc((size_t)E, sizeof(int));
            for (int j = 0; j < n; j++) {
                int e = idi[j], r = start[e] + fill[e]++;
                row_token[r] = j / k;
                entry_row[j] = r;
            }
            free(fill);
            int32_t *rt_d = row_token_d + (size_t)i * n, *er_d = entry_row_d + (size_t)i * n;
            CK(cudaMemcpy(rt_d, row_token, (size_t)n * 4, cudaMemcpyHostToDevice));
            CK(cudaMemcpy(er_d, entry_row, (size_t)n * 4, cudaMemcpyHostToDevice));
            int c = i % sd->copies;
            cudaGraph_t g;
            CK(cudaStreamBeginCapture(st, cudaStreamCaptureModeThreadLocal));
            base_route_kernel<<<(T + 3) / 4, 128, rsm, st>>>(
                *s, T, logits[i], sd->bias, ids_d + (size_t)i * n, w_d + (size_t)i * n);
            base_gather_kernel<<<1024, 256, 0, st>>>(x[i], rt_d, n, H, xg);
            for (int e = 0; e < E && !fail; e++)
                if (ci[e])
                    fail =
                        gemm_rm(cb, xg + (size_t)start[e] * H, sd->w13[c] + (size_t)e * 2 * I * H,
                                c1 + (size_t)start[e] * 2 * I, ci[e], 2 * I, H);
            base_swiglu_kernel<<<2048, 256, 0, st>>>(c1, n, I, hb);
            for (int e = 0; e < E && !fail; e++)
                if (ci[e])
                    fail = gemm_rm(cb, hb + (size_t)start[e] * I, sd->w2[c] + (size_t)e * H * I,
                                   yb + (size_t)start[e] * H, ci[e], H, I);
            base_combine_kernel<<<2048, 256, 0, st>>>(yb, w_d + (size_t)i * n, er_d, T, k, H,
                                                      out_b);
            CK(cudaStreamEndCapture(st, &g));
            CK(cudaGetLastError());
            if (!fail) CK(cudaGraphInstantiate(&gb[i], g, 0));
            CK(cudaGraphDestroy(g));
        }
        if (fail) return 1;
        /* the read-alone graph of each set, from the weight copy that set uses */
        cudaGraphExec_t gr[BENCH_SETS];
        void *segs[BENCH_SETS];
        unsigned *sink;
        CK(cudaMalloc(&sink, 4));
        for (int i = 0; i < BENCH_SETS; i++)
            gr[i] = read_graph(sd, cnt + (size_t)i * E, i % sd->copies, sink, st, &segs[i]);
        /* replay r runs the fused and baseline graphs of set r, then the read of set r + 2:
         * the fused graph of set r follows the baseline of set r - 1 and the read of set r + 1,
         * the read of set r + 2 follows the two graphs of set r, so neither finds its own
         * experts in L2 from the graphs just before it */
        cudaGraphExec_t grr[BENCH_SETS];
        for (int i = 0; i < BENCH_SETS; i++) grr[i] = gr[(i + 2) % BENCH_SETS];
        float med[3];
        cudaGraphExec_t *sets[3] = {gf, gb, grr};
        time_graphs(sets, 3, BENCH_SETS, reps, st, nv, med, row->clk);
        row->fused_us = 1e3 * med[0], row->base_us = 1e3 * med[1], row->read_us = 1e3 * med[2];
        row->have_base = row->have_read = 1;
        for (int i = 0; i < BENCH_SETS; i++) {
            cudaGraphExecDestroy(gr[i]);
            CK(cudaFree(segs[i]));
        }
        CK(cudaFree(sink));
        /* set 0 of each last, for the comparison below */
        CK(cudaGraphLaunch(gf[0], st));
        CK(cudaGraphLaunch(gb[0], st));
        CK(cudaStreamSynchronize(st));
        /* loose agreement: a broken baseline (or kernel) shows here */
        size_t no = (size_t)T * H;
        uint16_t *of = (uint16_t *)malloc(no * 2), *ob = (uint16_t *)malloc(no * 2);
        CK(cudaMemcpy(of, out_f, no * 2, cudaMemcpyDeviceToHost));
        CK(cudaMemcpy(ob, out_b, no * 2, cudaMemcpyDeviceToHost));
        double maxd = 0, maxr = 0;
        for (size_t j = 0; j < no; j++) {
            uint32_t uf = (uint32_t)of[j] << 16, ub = (uint32_t)ob[j] << 16;
            float f, b;
            memcpy(&f, &uf, 4);
            memcpy(&b, &ub, 4);
            double d = fabs((double)f - (double)b);
            if (!(d <= maxd)) maxd = d; /* NaN propagates */
            if (fabs((double)b) > maxr) maxr = fabs((double)b);
        }
        row->rel_diff = maxr > 0 ? maxd / maxr : maxd;
        row->agree = row->rel_diff < 2e-2;
        free(of);
        free(ob);
        for (int i = 0; i < BENCH_SETS; i++) cudaGraphExecDestroy(gb[i]);
        free(row_token);
        free(entry_row);
        free(start);
        CK(cudaFree(xg));
        CK(cudaFree(c1));
        CK(cudaFree(hb));
        CK(cudaFree(yb));
        CK(cudaFree(row_token_d));
        CK(cudaFree(entry_row_d));
    }
    double t = row->fused_us * 1e-6;
    row->tflops = flops / t * 1e-12;
    row->gbs = bytes / t * 1e-9;
    row->pct_mem = 100.0 * bytes / copy_bw / t;
    row->pct_compute = gemm_rate > 0 ? 100.0 * flops / gemm_rate / t : -1;
    for (int i = 0; i < BENCH_SETS; i++) {
        cudaGraphExecDestroy(gf[i]);
        CK(cudaFree(x[i]));
        CK(cudaFree(logits[i]));
    }
    free(cnt);
    free(ids_h);
    CK(cudaFree(ids_d));
    CK(cudaFree(w_d));
    CK(cudaFree(ws));
    CK(cudaFree(out_f));
    CK(cudaFree(out_b));
    return 0;
}

/* The table's header, after a line break: the columns of print_row. */
static void print_header(void) {
    printf("\n%-14s %5s %10s %10s %8s %8s %8s %7s %9s %6s %7s %6s %-18s %s\n", "shape", "T",
           "fused_us", "cublas_us", "speedup", "TFLOP/s", "GB/s", "%mem", "read_us", "%read",
           "%comp", "MHz", "check", "gemms");
}

static void print_row(const bench_row *r) {
    printf("%-14s %5d %10.1f ", r->shape, r->T, r->fused_us);
    if (r->have_base)
        printf("%10.1f %7.2fx ", r->base_us, r->base_us / r->fused_us);
    else
        printf("%10s %8s ", "n/a", "n/a");
    printf("%8.1f %8.0f %6.1f%% ", r->tflops, r->gbs, r->pct_mem);
    if (r->have_read)
        printf("%9.1f %5.1f%% ", r->read_us, 100.0 * r->read_us / r->fused_us);
    else
        printf("%9s %6s ", "n/a", "n/a");
    if (r->pct_compute >= 0)
        printf("%6.1f%% ", r->pct_compute);
    else
        printf("%7s ", "n/a");
    if (r->clk[0] > 0)
        printf("%5.0f%s ", r->clk[0], r->clk[1] >= 0.5 ? "P" : " ");
    else
        printf("%6s ", "n/a");
    char chk[40] = "-";
    if (r->have_base)
        snprintf(chk, sizeof chk, "%s (%.1e)", r->agree ? "agree" : "DISAGREE", r->rel_diff);
    printf("%-18s %s\n", chk, r->gemms);
}

static void usage(FILE *f) {
    fprintf(f,
            "usage: moefuzz bench kernel [--shape NAME[,NAME...]] [--T N[,N...]] [--reps N]\n"
            "                            [--no-baseline] [--require-baseline]\n\n"
            "Times the fused CUDA MoE kernel (CUDA-graph replays of routing through combine,\n"
            "median of --reps, default 20) against a cuBLAS baseline built in the same run, and\n"
            "reports TFLOP/s, GB/s and the share of the memory and compute floors measured on\n"
            "this card (device-to-device copy; cuBLAS bf16 GEMM 8192^3), the time of a graph\n"
            "that only reads the step's expert weights once (read_us, with the baseline only;\n"
            "%%read = read_us / fused_us), the SM clock while the replays ran (NVML; P: held\n"
            "down by the power cap), and the GEMM variants the fused kernel chose for the shape\n"
            "(GEMM1/GEMM2; pdl: programmatic launches).\n"
            "--require-baseline: an error (exit 1) unless cuBLAS loads and every row is compared\n"
            "with the baseline (without it nothing checks the fused kernel's output).\n\n"
            "shapes (default all):\n");
    for (int i = 0; i < N_SHAPES; i++)
        fprintf(f, "  %-14s E=%d k=%d H=%d I=%d %s%s groups %d/%d rsf %g\n", shapes[i].name,
                shapes[i].E, shapes[i].k, shapes[i].H, shapes[i].I,
                shapes[i].score_fn == MF_ABI_SCORE_SIGMOID ? "sigmoid" : "softmax",
                shapes[i].bias_dtype != MF_ABI_BIAS_NONE ? "+bias" : "", shapes[i].n_group,
                shapes[i].topk_group, (double)shapes[i].rsf);
    fprintf(f,
            "T (default): 1,8,64,512,4096\n"
            "exit: 0, 1 error, fused/baseline disagreement or (--require-baseline) no baseline,\n"
            "2 bad arguments, 77 no device (1 with MOEFUZZ_REQUIRE_GPU=1)\n");
}

extern "C" int mf_bench_kernel_main(int argc, char **argv) {
    int use[N_SHAPES] = {0}, any_shape = 0;
    int Ts[BENCH_MAX_T] = {1, 8, 64, 512, 4096}, nT = 5, reps = 20, use_base = 1, need_base = 0;
    for (int a = 1; a < argc; a++) {
        const char *o = argv[a];
        int more = a + 1 < argc;
        if (!strcmp(o, "-h") || !strcmp(o, "--help")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(o, "--shape") && more) {
            char buf[256];
            snprintf(buf, sizeof buf, "%s", argv[++a]);
            for (char *tok = strtok(buf, ","); tok; tok = strtok(NULL, ",")) {
                int found = 0;
                for (int i = 0; i < N_SHAPES; i++)
                    if (!strcmp(tok, shapes[i].name) || !strcmp(tok, "all")) use[i] = 1, found = 1;
                if (!found) {
                    fprintf(stderr, "moefuzz bench kernel: unknown shape '%s'\n", tok);
                    usage(stderr);
                    return 2;
                }
            }
            any_shape = 1;
        } else if (!strcmp(o, "--T") && more) {
            char buf[256];
            snprintf(buf, sizeof buf, "%s", argv[++a]);
            nT = 0;
            for (char *tok = strtok(buf, ","); tok; tok = strtok(NULL, ",")) {
                int v = atoi(tok);
                if (v < 1 || v > 16384 || nT == BENCH_MAX_T) {
                    fprintf(stderr, "moefuzz bench kernel: bad --T list (1..16384, at most %d)\n",
                            BENCH_MAX_T);
                    return 2;
                }
                Ts[nT++] = v;
            }
            if (nT == 0) return 2;
        } else if (!strcmp(o, "--reps") && more) {
            reps = atoi(argv[++a]);
            if (reps < 1 || reps > BENCH_MAX_REPS) {
                fprintf(stderr, "moefuzz bench kernel: --reps in [1, %d]\n", BENCH_MAX_REPS);
                return 2;
            }
        } else if (!strcmp(o, "--no-baseline")) {
            use_base = 0;
        } else if (!strcmp(o, "--require-baseline")) {
            need_base = 1;
        } else {
            fprintf(stderr, "moefuzz bench kernel: unknown or incomplete option '%s'\n", o);
            usage(stderr);
            return 2;
        }
    }
    if (!any_shape)
        for (int i = 0; i < N_SHAPES; i++) use[i] = 1;
    if (need_base && !use_base) {
        fprintf(stderr, "moefuzz bench kernel: --require-baseline and --no-baseline contradict\n");
        return 2;
    }

    /* the device: first of compute capability >= 9.0 */
    int dev = -1;
    char why[256] = "";
    const int found = mf_cuda_device_find(&dev, why, sizeof why);
    if (found == MF_CUDA_DEVICE_NONE) {
        printf("moefuzz bench kernel: no usable device: %s\n", why);
        return mf_cuda_skip_exit_code();
    }
    if (found != MF_CUDA_DEVICE_OK) {
        fprintf(stderr, "moefuzz bench kernel: %s\n", why);
        return 1;
    }
    struct cudaDeviceProp prop;
    CK(cudaGetDeviceProperties(&prop, dev));
    printf("card: %s (sm_%d%d, %d SMs, %.0f MB L2, %.1f GB)\n", prop.name, prop.major, prop.minor,
           prop.multiProcessorCount, prop.l2CacheSize / 1e6, prop.totalGlobalMem / 1e9);
    cudaStream_t st;
    CK(cudaStreamCreateWithFlags(&st, cudaStreamNonBlocking));
    cublas_lib cb;
    cublas_load(&cb, st);
    if (need_base && !cb.dl) {
        fprintf(stderr,
                "moefuzz bench kernel: --require-baseline: no cuBLAS baseline (above), "
                "so nothing would check the fused kernel's output\n");
        return 1;
    }

    double copy_bw = measure_copy_bw(st);
    double gemm_rate = measure_gemm_rate(&cb, st);
    printf("copy bandwidth (read + write): %.0f GB/s\n", copy_bw * 1e-9);
    if (gemm_rate > 0) printf("cuBLAS bf16 GEMM 8192^3: %.0f TFLOP/s\n", gemm_rate * 1e-12);

    mf_kernel_api api;
    void *kctx = NULL;
    char msg[512] = "";
    if (mf_cuda_kernel_get_api(MF_KERNEL_ABI_VERSION, &api, sizeof api) != 0 ||
        api.create(&kctx, msg, sizeof msg) != 0) {
        fprintf(stderr, "moefuzz bench kernel: cannot create the fused kernel: %s\n", msg);
        return 1;
    }

    bench_row rows[N_SHAPES * BENCH_MAX_T];
    int nrows = 0, status = 0;
    nvml_lib nv;
    nvml_load(&nv, dev);
    if (!nv.dl) printf("NVML: not available: the MHz column reads n/a\n");
    print_header();
    for (int si = 0; si < N_SHAPES; si++) {
        if (!use[si]) continue;
        const bench_shape *s = &shapes[si];
        shape_data sd;
        memset(&sd, 0, sizeof sd);
        sd.s = s;
        size_t w13n = (size_t)s->E * 2 * s->I * s->H, w2n = (size_t)s->E * s->H * s->I;
        double wbytes = 2.0 * (double)(w13n + w2n);
        /* replicate the weights when all of them fit in four L2s: otherwise replays hit L2 */
        sd.copies = 1;
        if (wbytes < 4.0 * prop.l2CacheSize) {
            sd.copies = (int)ceil(4.0 * prop.l2CacheSize / wbytes);
            if (sd.copies > BENCH_SETS) sd.copies = BENCH_SETS;
        }
        for (int c = 0; c < sd.copies; c++) {
            CK(cudaMalloc(&sd.w13[c], w13n * 2));
            CK(cudaMalloc(&sd.w2[c], w2n * 2));
            fill_bf16(sd.w13[c], w13n, 31 + c, 1.0f / sqrtf((float)s->H));
            fill_bf16(sd.w2[c], w2n, 37 + c, 1.0f / sqrtf((float)s->I));
        }
        if (s->bias_dtype == MF_ABI_BIAS_F32) {
            CK(cudaMalloc(&sd.bias, (size_t)s->E * 4));
            fill_f32(sd.bias, (size_t)s->E, 41, 0.1f);
        }
        CK(cudaDeviceSynchronize());
        for (int ti = 0; ti < nT; ti++) {
            bench_row *r = &rows[nrows];
            if (bench_one(&sd, Ts[ti], reps, use_base, &cb, &nv, &api, kctx, copy_bw, gemm_rate, st,
                          r) != 0) {
                status = 1;
                continue;
            }
            if (r->have_base && !r->agree) status = 1;
            if (need_base && !r->have_base) status = 1;
            print_row(r);
            fflush(stdout);
            nrows++;
        }
        for (int c = 0; c < sd.copies; c++) {
            CK(cudaFree(sd.w13[c]));
            CK(cudaFree(sd.w2[c]));
        }
        if (sd.bias) CK(cudaFree(sd.bias));
    }
    printf(
        "\ncard: %s; median of %d CUDA-graph replays (fused and baseline alternating); "
        "copy %.0f GB/s",
        prop.name, reps, copy_bw * 1e-9);
    if (gemm_rate > 0) printf("; cuBLAS bf16 %.0f TFLOP/s", gemm_rate * 1e-12);
    printf("; MHz: SM clock during the replays (P: held down by the power cap)");
    print_header();
    for (int i = 0; i < nrows; i++) print_row(&rows[i]);
    api.release(kctx);
    nvml_unload(&nv);
    if (cb.dl) {
        cb.destroy(cb.h);
        if (cb.ws) cudaFree(cb.ws);
    }
    cudaStreamDestroy(st);
    return status;
}
