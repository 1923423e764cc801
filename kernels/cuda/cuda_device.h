/* cuda_device.h: the device that moefuzz's CUDA code runs on, found the same way by the cuda
 * backend (src/backend_cuda.c), `moefuzz bench kernel` and tests/gpu/probe_hopper.
 *
 * Only a machine without a usable device may skip a GPU test: no CUDA driver installed, no
 * device, or no device of compute capability >= 9.0. Every other outcome is an error: a driver
 * older than the runtime (cudaErrorInsufficientDriver with a driver present), a driver that
 * fails to initialise, any other CUDA error. A GPU machine whose driver broke must fail its
 * tests, not skip them. Header only (static inline), for C and CUDA sources.
 */
#ifndef MF_CUDA_DEVICE_H
#define MF_CUDA_DEVICE_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cuda_runtime_api.h>

enum { MF_CUDA_DEVICE_ERROR = -1, MF_CUDA_DEVICE_NONE = 0, MF_CUDA_DEVICE_OK = 1 };

static inline int mf_cuda_device_error(cudaError_t e, const char *what, char *msg, size_t msg_len) {
    snprintf(msg, msg_len, "%s: %s (%s)", what, cudaGetErrorName(e), cudaGetErrorString(e));
    return MF_CUDA_DEVICE_ERROR;
}

/* Makes the first device of compute capability >= 9.0 current and returns MF_CUDA_DEVICE_OK
 * with its index in *dev; MF_CUDA_DEVICE_NONE with the reason in msg where this machine has no
 * such device; MF_CUDA_DEVICE_ERROR with the CUDA error in msg otherwise. */
static inline int mf_cuda_device_find(int *dev, char *msg, size_t msg_len) {
    int driver = 0, runtime = 0, n = 0;
    *dev = -1;
    cudaError_t e = cudaDriverGetVersion(&driver);
    if (e != cudaSuccess) return mf_cuda_device_error(e, "cudaDriverGetVersion", msg, msg_len);
    if (driver == 0) { /* no libcuda, or a stub: this machine has no NVIDIA driver */
        e = cudaGetDeviceCount(&n);
        snprintf(msg, msg_len, "no CUDA driver installed (%s)",
                 e == cudaErrorStubLibrary ? "libcuda is the toolkit's stub" : "no libcuda");
        return MF_CUDA_DEVICE_NONE;
    }
    e = cudaGetDeviceCount(&n);
    if (e == cudaErrorNoDevice || (e == cudaSuccess && n == 0)) {
        snprintf(msg, msg_len, "no CUDA device (driver %d.%d)", driver / 1000, driver % 1000 / 10);
        return MF_CUDA_DEVICE_NONE;
    }
    if (e != cudaSuccess) {
        char what[160];
        (void)cudaRuntimeGetVersion(&runtime);
        snprintf(what, sizeof what,
                 "cudaGetDeviceCount with driver %d.%d (CUDA runtime %d.%d linked in)",
                 driver / 1000, driver % 1000 / 10, runtime / 1000, runtime % 1000 / 10);
        return mf_cuda_device_error(e, what, msg, msg_len);
    }
    char first[160] = "";
    for (int d = 0; d < n; d++) {
        struct cudaDeviceProp prop;
        e = cudaGetDeviceProperties(&prop, d);
        if (e != cudaSuccess)
            return mf_cuda_device_error(e, "cudaGetDeviceProperties", msg, msg_len);
        if (prop.major >= 9) {
            e = cudaSetDevice(d);
            if (e != cudaSuccess) return mf_cuda_device_error(e, "cudaSetDevice", msg, msg_len);
            *dev = d;
            return MF_CUDA_DEVICE_OK;
        }
        if (!first[0])
            snprintf(first, sizeof first, "device %d (%.64s) has compute capability %d.%d", d,
                     prop.name, prop.major, prop.minor);
    }
    snprintf(msg, msg_len, "%s; the cuda kernel needs 9.0 (Hopper) or newer", first);
    return MF_CUDA_DEVICE_NONE;
}

/* The exit code of a GPU program that found no device: 77 (skipped), or 1 under
 * MOEFUZZ_REQUIRE_GPU=1, where a run on the GPU machine must not skip. */
static inline int mf_cuda_skip_exit_code(void) {
    const char *r = getenv("MOEFUZZ_REQUIRE_GPU");
    return r && !strcmp(r, "1") ? 1 : 77;
}

#endif /* MF_CUDA_DEVICE_H */
