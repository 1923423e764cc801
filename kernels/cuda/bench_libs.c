/* bench_libs.c: cuBLAS and NVML through dlopen, and the SM clock sampler, for `moefuzz bench
 * kernel` (bench_libs.h). */
#include "bench_libs.h"

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench.h"

/* ---- cuBLAS through dlopen ---- */

static void *sym(void *dl, const char *name) {
    return dlsym(dl, name);
}

int mf_bench_cublas_load(mf_bench_cublas *cb, cudaStream_t stream) {
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

int mf_bench_gemm_rm(mf_bench_cublas *cb, const uint16_t *A, const uint16_t *B, uint16_t *C, int m,
                     int n, int k) {
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

/* ---- the SM clock during the replays: NVML through dlopen (no header, no link) ---- */

void mf_bench_nvml_load(mf_bench_nvml *nv, int cuda_dev) {
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

void mf_bench_nvml_unload(mf_bench_nvml *nv) {
    if (!nv->dl) return;
    nv->shutdown();
    dlclose(nv->dl);
    memset(nv, 0, sizeof *nv);
}

static void *sampler_main(void *arg) {
    mf_bench_sampler *cs = (mf_bench_sampler *)arg;
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
static mf_bench_sampler *running_sampler;

int mf_bench_sampler_start(mf_bench_sampler *cs, const mf_bench_nvml *nv) {
    memset(cs, 0, sizeof *cs);
    cs->nv = nv;
    if (!nv->dl || pthread_create(&cs->th, NULL, sampler_main, cs) != 0) return 1;
    running_sampler = cs;
    return 0;
}

static void sampler_join(mf_bench_sampler *cs) {
    __atomic_store_n(&cs->stop, 1, __ATOMIC_RELEASE);
    pthread_join(cs->th, NULL);
    running_sampler = NULL;
}

void mf_bench_exit_failed(void) {
    if (running_sampler) sampler_join(running_sampler);
    exit(1);
}

static int cmp_unsigned(const void *a, const void *b) {
    unsigned x = *(const unsigned *)a, y = *(const unsigned *)b;
    return x < y ? -1 : x > y;
}

void mf_bench_sampler_stop(mf_bench_sampler *cs, int running, double *mhz, double *cap) {
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
