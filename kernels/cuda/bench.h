/* bench.h: what the parts of `moefuzz bench kernel` share: the benchmark's shapes and input
 * sets, and the check of every CUDA call.
 *
 *   bench_kernel.cu    the command: shapes, one (shape, T) row, the table
 *   bench_libs.c       cuBLAS and NVML through dlopen, the SM clock sampler (plain C)
 *   bench_baseline.cuh the baseline MoE (cuBLAS GEMMs and simple kernels) and the input fills
 *   bench_timing.cuh   graph replays timed with events, the read-alone graph, the floors
 */
#ifndef MF_CUDA_BENCH_H
#define MF_CUDA_BENCH_H

#include <stdio.h>

#include <cuda_runtime.h>

#include "moefuzz/kernel_abi.h"

#ifdef __cplusplus
extern "C" {
#endif

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

/* The weights of one shape on the device. */
typedef struct shape_data {
    const bench_shape *s;
    int copies; /* weight replicas (rotation when all weights fit near L2) */
    uint16_t *w13[BENCH_SETS], *w2[BENCH_SETS];
    float *bias;
} shape_data;

/* A CUDA call failed: stops the clock sampler (no thread may still be inside NVML while exit()
 * unloads libraries), then exit(1). */
void mf_bench_exit_failed(void);

#define CK(call)                                                                               \
    do {                                                                                       \
        cudaError_t e_ = (call);                                                               \
        if (e_ != cudaSuccess) {                                                               \
            fprintf(stderr, "moefuzz bench kernel: %s failed at %s:%d: %s\n", #call, __FILE__, \
                    __LINE__, cudaGetErrorString(e_));                                         \
            mf_bench_exit_failed();                                                            \
        }                                                                                      \
    } while (0)

#ifdef __cplusplus
}
#endif

#endif /* MF_CUDA_BENCH_H */
