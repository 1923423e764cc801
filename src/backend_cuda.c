/* backend_cuda.c: the "cuda" backend of moefuzz: device memory operations (CUDA runtime API)
 * and the fused CUDA kernel (kernels/cuda/moe_cuda.cu), found by src/backend.c through the weak
 * symbol mf_cuda_backend_provider.
 *
 * Linked only into CUDA builds (object library moefuzz_cuda_backend). CUDA is initialised
 * lazily, by the first call of available(), never at load time: a moefuzz built with CUDA still
 * runs on machines without a GPU and says why the cuda backend is unavailable.
 */
#include <stdio.h>
#include <string.h>

#include <cuda_runtime_api.h>

#include "backend.h"
#include "../kernels/cuda/cuda_device.h"
#include "../kernels/cuda/moe_cuda.h"

/* "cudaMalloc: cudaErrorMemoryAllocation (out of memory)" */
static int cuda_fail(cudaError_t e, const char *what, char *msg, size_t msg_len) {
    snprintf(msg, msg_len, "%s: %s (%s)", what, cudaGetErrorName(e), cudaGetErrorString(e));
    return 1;
}

static int dev_alloc(void **ptr, size_t bytes, char *msg, size_t msg_len) {
    *ptr = NULL;
    cudaError_t e = cudaMalloc(ptr, bytes);
    if (e != cudaSuccess) {
        *ptr = NULL;
        char what[64];
        snprintf(what, sizeof what, "cudaMalloc(%zu bytes)", bytes);
        return cuda_fail(e, what, msg, msg_len);
    }
    return 0;
}

static void dev_free(void *ptr) {
    if (ptr) (void)cudaFree(ptr); /* after a device fault this fails too; nothing to report */
}

static int dev_to_device(void *dst, const void *src, size_t bytes, char *msg, size_t msg_len) {
    cudaError_t e = cudaMemcpy(dst, src, bytes, cudaMemcpyHostToDevice);
    return e == cudaSuccess ? 0 : cuda_fail(e, "cudaMemcpy host to device", msg, msg_len);
}

static int dev_to_host(void *dst, const void *src, size_t bytes, char *msg, size_t msg_len) {
    cudaError_t e = cudaMemcpy(dst, src, bytes, cudaMemcpyDeviceToHost);
    return e == cudaSuccess ? 0 : cuda_fail(e, "cudaMemcpy device to host", msg, msg_len);
}

/* Waits for the kernel. A fault on the device (illegal address, trap) surfaces here as an error
 * value: the message names it, and the process goes on (the context is unusable afterwards, so
 * later calls fail with the same sticky error instead of crashing). */
static int dev_sync(void *stream, char *msg, size_t msg_len) {
    cudaError_t e = cudaStreamSynchronize((cudaStream_t)stream);
    if (e == cudaSuccess) e = cudaGetLastError();
    return e == cudaSuccess ? 0 : cuda_fail(e, "cudaStreamSynchronize", msg, msg_len);
}

static const mf_device_ops cuda_ops = {
    dev_alloc, dev_free, dev_to_device, dev_to_host, dev_sync, NULL, /* the legacy default stream */
};

/* 1 if a device of compute capability >= 9.0 exists (and becomes current); 0 + reason where this
 * machine has none (no driver, no device, only older devices: the caller skips); -1 + the CUDA
 * error for anything else, a driver/runtime mismatch included (cuda_device.h): not a skip. A
 * caller that reads only "0 or not" goes on to create(), which fails with the same error. */
static int cuda_available(char *msg, size_t msg_len) {
    int dev = -1;
    return mf_cuda_device_find(&dev, msg, msg_len);
}

static const mf_cuda_provider cuda_provider = {
    mf_cuda_kernel_get_api,
    &cuda_ops,
    cuda_available,
};

const mf_cuda_provider *mf_cuda_backend_provider(void) {
    return &cuda_provider;
}
