/* emu_backend.c: the "cuda" backend and the CUDA mutant zoo of moefuzz, running the kernel in
 * the CPU emulator: device memory is host memory (malloc, filled with 0xff so that reading what
 * was never written shows), copies are memcpy, synchronisation is a no-op (launches run to
 * completion). Stands in for src/backend_cuda.c and src/backend_cuda_mutants.c in the emulator's
 * test binaries, so test_cuda_mutants runs unchanged. */
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "../../../kernels/cuda/moe_cuda.h"

static int emu_alloc(void **ptr, size_t bytes, char *msg, size_t msg_len) {
    (void)msg, (void)msg_len;
    *ptr = malloc(bytes ? bytes : 1);
    if (!*ptr) return 1;
    memset(*ptr, 0xff, bytes);
    return 0;
}
static void emu_free(void *ptr) {
    free(ptr);
}
static int emu_copy(void *dst, const void *src, size_t bytes, char *msg, size_t msg_len) {
    (void)msg, (void)msg_len;
    memcpy(dst, src, bytes);
    return 0;
}
static int emu_sync(void *stream, char *msg, size_t msg_len) {
    (void)stream, (void)msg, (void)msg_len;
    return 0;
}
static int emu_available(char *msg, size_t msg_len) {
    (void)msg, (void)msg_len;
    return 1;
}

static const mf_device_ops emu_ops = {emu_alloc, emu_free, emu_copy, emu_copy, emu_sync, NULL};
static const mf_cuda_provider emu_provider = {mf_cuda_kernel_get_api, &emu_ops, emu_available};
static const mf_mutant_provider emu_mutants = {mf_cuda_mutant_get_api, mf_cuda_mutant_set, "cuda"};

const mf_cuda_provider *mf_cuda_backend_provider(void) {
    return &emu_provider;
}
const mf_mutant_provider *mf_cuda_mutant_provider(void) {
    return &emu_mutants;
}
