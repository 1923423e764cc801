/* bench_libs.h: the libraries `moefuzz bench kernel` loads at run time, never links: cuBLAS (the
 * baseline's GEMMs and the compute floor) and NVML (the SM clock sampled during the replays).
 * Without either, its columns read n/a. Plain C (bench_libs.c). */
#ifndef MF_CUDA_BENCH_LIBS_H
#define MF_CUDA_BENCH_LIBS_H

#include <pthread.h>
#include <stdint.h>

#include <cublas_api.h> /* types and enum values only: every call goes through dlsym */
#include <cuda_runtime.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- cuBLAS ---- */

typedef cublasStatus_t (*pfn_create)(cublasHandle_t *);
typedef cublasStatus_t (*pfn_destroy)(cublasHandle_t);
typedef cublasStatus_t (*pfn_set_stream)(cublasHandle_t, cudaStream_t);
typedef cublasStatus_t (*pfn_set_workspace)(cublasHandle_t, void *, size_t);
typedef cublasStatus_t (*pfn_gemm_ex)(cublasHandle_t, cublasOperation_t, cublasOperation_t, int,
                                      int, int, const void *, const void *, cudaDataType, int,
                                      const void *, cudaDataType, int, const void *, void *,
                                      cudaDataType, int, cublasComputeType_t, cublasGemmAlgo_t);

typedef struct mf_bench_cublas {
    void *dl;
    pfn_create create;
    pfn_destroy destroy;
    pfn_set_stream set_stream;
    pfn_set_workspace set_workspace; /* may be NULL */
    pfn_gemm_ex gemm_ex;
    cublasHandle_t h;
    void *ws;
    char from[256];
} mf_bench_cublas;

/* Loads cuBLAS on stream (a fixed workspace: nothing to allocate during graph capture) and says
 * which library on stdout: 1, or 0 when none loads (cb->dl stays NULL). */
int mf_bench_cublas_load(mf_bench_cublas *cb, cudaStream_t stream);

/* Row-major C[m][n] (bf16) = A[m][k] . B[n][k]^T, i.e. column-major C^T = B . A^T. 0, or 1 with
 * a message on stderr. */
int mf_bench_gemm_rm(mf_bench_cublas *cb, const uint16_t *A, const uint16_t *B, uint16_t *C, int m,
                     int n, int k);

/* ---- NVML and the SM clock ---- */

typedef struct mf_bench_nvml {
    void *dl, *dev;                               /* the library, the card's nvmlDevice_t */
    int (*clock)(void *, int, unsigned *);        /* nvmlDeviceGetClockInfo */
    int (*reasons)(void *, unsigned long long *); /* ...ClocksEventReasons, or the older name */
    int (*shutdown)(void);                        /* nvmlShutdown */
} mf_bench_nvml;
#define NVML_CLOCK_SM_ID 1              /* nvmlClockType_t NVML_CLOCK_SM */
#define NVML_REASON_SW_POWER_CAP 0x4ULL /* nvmlClocksEventReasonSwPowerCap */

/* The CUDA device's NVML handle, matched by PCI bus id; nv->dl stays NULL when anything fails. */
void mf_bench_nvml_load(mf_bench_nvml *nv, int cuda_dev);
void mf_bench_nvml_unload(mf_bench_nvml *nv);

/* Samples: the clock in MHz, bit 31 set where the power cap was active. A full buffer keeps
 * every other sample and doubles the interval, so a long run is sampled evenly to its end. */
#define SAMPLER_MAX 4096
#define SAMPLER_MIN 5 /* fewer samples (a run under about 10 ms): no clock reported */
#define SAMPLE_CAPPED 0x80000000u
typedef struct mf_bench_sampler {
    const mf_bench_nvml *nv;
    int stop, n;
    unsigned s[SAMPLER_MAX];
    pthread_t th;
} mf_bench_sampler;

/* Starts sampling (nothing without NVML); returns 0 when it runs. */
int mf_bench_sampler_start(mf_bench_sampler *cs, const mf_bench_nvml *nv);
/* Stops sampling: the median clock (MHz) and the share of samples under the software power
 * cap, or mhz = 0 when fewer than SAMPLER_MIN samples were taken. */
void mf_bench_sampler_stop(mf_bench_sampler *cs, int running, double *mhz, double *cap);

#ifdef __cplusplus
}
#endif

#endif /* MF_CUDA_BENCH_LIBS_H */
