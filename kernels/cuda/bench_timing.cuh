/* bench_timing.cuh: how `moefuzz bench kernel` times and what it compares with: graph replays
 * between events, alternating the graphs compared; the read-alone graph (the step's distinct
 * experts' weights read once: the attainable time); the floors measured in the same run (copy
 * bandwidth, cuBLAS bf16 matmul rate). Included by bench_kernel.cu only.
 */
#ifndef MF_CUDA_BENCH_TIMING_CUH
#define MF_CUDA_BENCH_TIMING_CUH

#include <stdint.h>
#include <stdlib.h>

#include <cuda_runtime.h>

#include "bench.h"
#include "bench_baseline.cuh"
#include "bench_libs.h"


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
 * run (clk: median MHz, share of samples under the power cap; see mf_bench_sampler_stop). */
static void time_graphs(cudaGraphExec_t *const *g, int ng, int n, int reps, cudaStream_t st,
                        const mf_bench_nvml *nv, float *med, double clk[2]) {
    const int m = ng * reps;
    cudaEvent_t *ev = (cudaEvent_t *)malloc(sizeof(cudaEvent_t) * 2 * m);
    float *ms = (float *)malloc(sizeof(float) * m);
    for (int i = 0; i < 2 * m; i++) CK(cudaEventCreate(&ev[i]));
    for (int i = 0; i < n; i++)
        for (int j = 0; j < ng; j++) CK(cudaGraphLaunch(g[j][i], st)); /* warm-up */
    /* sampling from here on also sees the warm-up's tail: no host wait between the two */
    mf_bench_sampler *cs = (mf_bench_sampler *)malloc(sizeof *cs);
    const int sampling = cs && mf_bench_sampler_start(cs, nv) == 0;
    for (int r = 0; r < reps; r++)
        for (int j = 0; j < ng; j++) {
            CK(cudaEventRecord(ev[2 * (j * reps + r)], st));
            CK(cudaGraphLaunch(g[j][r % n], st));
            CK(cudaEventRecord(ev[2 * (j * reps + r) + 1], st));
        }
    CK(cudaStreamSynchronize(st));
    mf_bench_sampler_stop(cs, sampling, &clk[0], &clk[1]);
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
static double measure_gemm_rate(mf_bench_cublas *cb, cudaStream_t st) {
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
        if (mf_bench_gemm_rm(cb, a, b, c, n, n, n)) return 0;
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

#endif /* MF_CUDA_BENCH_TIMING_CUH */
