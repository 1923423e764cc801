/* cuda_emu.h: a CPU emulator of the part of CUDA that the fused MoE kernel uses, so that
 * kernels/cuda/moe_cuda.cu runs under the project's checker on machines without a GPU.
 *
 * Force-included (g++ -include cuda_emu.h) when the kernel source is compiled as C++ for the
 * emulator; the only change to the source is its launch syntax (launch_syntax.cmake rewrites
 * `k<<<g, b, s, st>>>(args)` as `emu_launch(k, g, b, s, st)(args)`).
 *
 * Model: every CUDA thread is a fiber (ucontext) that runs until it reaches a barrier or a warp
 * collective; blocks run one after the other, each with freshly poisoned shared memory. Warp
 * collectives (shuffles, match, ldmatrix, mma) insist on all 32 lanes, alive, calling the same
 * collective. cp.async copies land only when wait_group requires them (lazily), so a wrong wait
 * count reads poison. The thread order inside a block changes from block to block (forward,
 * reverse, shuffled), so two runs of a racy kernel differ. mma.sync computes with the measured
 * Hopper model (B=16, F=25, RZ: tests/gpu/hopper_model.h). The Hopper primitives of the
 * warp-specialized GEMM (mbarriers, cp.async tracked by an mbarrier, wgmma) are modelled as
 * hopper_emu.cuh describes. Errors (deadlock, divergent collective, misaligned or out-of-range
 * shared access, a cp.async or wgmma left in flight, a wgmma operand changed before completion)
 * abort with a message naming the kernel, block and thread. Global memory is plain host memory: build with
 * AddressSanitizer to have out-of-bounds accesses reported.
 */
#ifndef MF_CUDA_EMU_H
#define MF_CUDA_EMU_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <functional>

#define MF_CUDA_EMULATE 1

/* ---- keywords ---- */
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __align__(n) __attribute__((aligned(n)))
#define __grid_constant__
#define __shared__

/* ---- vector types ---- */
struct dim3 {
    unsigned x, y, z;
    dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};
struct __attribute__((aligned(16))) int4 {
    int x, y, z, w;
};
struct __attribute__((aligned(8))) float2 {
    float x, y;
};
struct __attribute__((aligned(16))) float4 {
    float x, y, z, w;
};
struct __attribute__((aligned(8))) uint2 {
    unsigned x, y;
};
struct __attribute__((aligned(16))) uint4 {
    unsigned x, y, z, w;
};
static inline int4 make_int4(int x, int y, int z, int w) {
    return int4{x, y, z, w};
}
static inline float2 make_float2(float x, float y) {
    return float2{x, y};
}
static inline uint2 make_uint2(unsigned x, unsigned y) {
    return uint2{x, y};
}

/* ---- built-in variables: set by the scheduler before it resumes a thread ---- */
extern dim3 emu_threadIdx, emu_blockIdx, emu_blockDim, emu_gridDim;
#define threadIdx emu_threadIdx
#define blockIdx emu_blockIdx
#define blockDim emu_blockDim
#define gridDim emu_gridDim

/* Dynamic shared memory of the running block (blocks run one at a time). */
#define EMU_SMEM_BYTES (256 * 1024)
extern unsigned char smem_raw[] __attribute__((aligned(128)));

/* ---- intrinsics ---- */
static inline float __uint_as_float(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}
static inline uint32_t __float_as_uint(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}
/* one rounded operation each (the emulator is built with -ffp-contract=off) */
static inline float __fmul_rn(float a, float b) {
    return a * b;
}
static inline float __fadd_rn(float a, float b) {
    return a + b;
}
static inline int __popc(unsigned x) {
    return __builtin_popcount(x);
}
static inline int __clz(int x) {
    return x ? __builtin_clz((unsigned)x) : 32;
}
static inline int __ffs(int x) {
    return __builtin_ffs(x);
}
/* fibers never preempt one another: a plain add is atomic */
static inline int atomicAdd(int *p, int v) {
    int o = *p;
    *p = o + v;
    return o;
}
/* offset of a shared-memory pointer within smem_raw (aborts for any other pointer) */
size_t __cvta_generic_to_shared(const void *p);

/* ---- barriers and warp collectives (cuda_emu.cpp) ---- */
void __syncthreads(void);
void __syncwarp(unsigned mask = 0xffffffffu);
int emu_lane(void);
/* Each lane contributes `bytes` from `mine`; every lane receives all 32 contributions in `all`
 * (lane-major). `what` names the collective for the divergence check. */
void emu_warp_gather(const void *mine, size_t bytes, void *all, const char *what);
/* The same, but a lane receives only the contributions of lanes[0..n): out[i] from lanes[i]. */
void emu_warp_pick(const void *mine, size_t bytes, const int *lanes, int n, void *out,
                   const char *what);
unsigned __match_any_sync(unsigned mask, int v);
unsigned __ballot_sync(unsigned mask, int pred);
unsigned __reduce_max_sync(unsigned mask, unsigned v);
/* Like emu_warp_gather, but the lanes' contributions go to compute(all, result) once per warp
 * (by the first lane to continue) and every lane receives the result (at most 512 bytes). */
void emu_warp_compute(const void *mine, size_t bytes, void (*compute)(const void *, void *),
                      void *result, size_t result_bytes, const char *what);

template <class T>
static inline T emu_shfl(unsigned mask, T v, int src, const char *what) {
    static_assert(sizeof(T) <= 8, "shuffle of at most 8 bytes");
    if (mask != 0xffffffffu) {
        fprintf(stderr, "cuda_emu: %s with a partial mask %#x\n", what, mask);
        abort();
    }
    uint64_t mine = 0, got;
    int lane = src & 31;
    memcpy(&mine, &v, sizeof v);
    emu_warp_pick(&mine, 8, &lane, 1, &got, what);
    T r;
    memcpy(&r, &got, sizeof r);
    return r;
}
template <class T>
static inline T __shfl_xor_sync(unsigned mask, T v, int off) {
    return emu_shfl(mask, v, emu_lane() ^ off, "__shfl_xor_sync");
}
template <class T>
static inline T __shfl_up_sync(unsigned mask, T v, unsigned delta) {
    int l = emu_lane();
    return emu_shfl(mask, v, l - (int)delta < 0 ? l : l - (int)delta, "__shfl_up_sync");
}
template <class T>
static inline T __shfl_sync(unsigned mask, T v, int src) {
    return emu_shfl(mask, v, src, "__shfl_sync");
}

/* ---- cp.async (lazy completion) ---- */
void emu_cp_async_16(uint32_t saddr, const void *gptr, int src_bytes);
void emu_cp_async_commit(void);
void emu_cp_async_wait(int n);

/* ---- Hopper: mbarriers, cp.async tracked by an mbarrier, wgmma (hopper_emu.cuh) ---- */
void emu_mbar_init(uint32_t bar, int count);
void emu_mbar_arrive(uint32_t bar);
void emu_mbar_wait(uint32_t bar, uint32_t parity);
void emu_cp_async_mbar_arrive(uint32_t bar);
void emu_mbar_expect_tx(uint32_t bar, uint32_t bytes);
void emu_tmap_encode(void *tmap, const void *base, const unsigned long long dims[3],
                     const unsigned long long strides[2], const unsigned box[3]);
void emu_tma_load_3d(uint32_t dst, const void *tmap, int c0, int c1, int c2, uint32_t bar);
void emu_wgmma(float *d, int n, uint64_t da, uint64_t db);
void emu_wgmma_commit(void);
void emu_wgmma_wait(int n);

/* ---- the runtime API subset of the host code ---- */
typedef struct emu_stream *cudaStream_t;
typedef enum cudaError {
    cudaSuccess = 0,
    cudaErrorInvalidValue = 1,
    cudaErrorInvalidConfiguration = 9,
} cudaError_t;
enum cudaDeviceAttr {
    cudaDevAttrMultiProcessorCount = 16,
    cudaDevAttrComputeCapabilityMajor = 75,
    cudaDevAttrComputeCapabilityMinor = 76,
    cudaDevAttrMaxSharedMemoryPerBlockOptin = 97,
};
enum cudaFuncAttribute { cudaFuncAttributeMaxDynamicSharedMemorySize = 8 };

cudaError_t cudaGetLastError(void);
const char *cudaGetErrorName(cudaError_t e);
const char *cudaGetErrorString(cudaError_t e);
cudaError_t cudaGetDevice(int *d);
cudaError_t cudaDeviceGetAttribute(int *v, enum cudaDeviceAttr a, int d);
cudaError_t cudaFuncSetAttribute(const void *fn, enum cudaFuncAttribute a, int v);

/* Runs fn in every thread of the grid; checks the configuration as the driver would (block size,
 * grid limits, dynamic shared memory against the function's opt-in). A bad configuration sets
 * the error cudaGetLastError returns and runs nothing, like a failed launch. */
void emu_run_grid(const char *name, const void *fid, dim3 grid, dim3 block, size_t smem,
                  const std::function<void()> &fn);

template <class K>
struct emu_launcher {
    K k;
    const char *name;
    dim3 grid, block;
    size_t smem;
    template <class... A>
    void operator()(A... args) const {
        K kk = k;
        emu_run_grid(name, reinterpret_cast<const void *>(k), grid, block, smem,
                     [&]() { kk(args...); });
    }
};
#define emu_launch(k, g, b, s, st) emu_launch_make(k, #k, g, b, s, st)
template <class K>
static inline emu_launcher<K> emu_launch_make(K k, const char *name, dim3 g, dim3 b, size_t s,
                                              cudaStream_t) {
    return emu_launcher<K>{k, name, g, b, s};
}

#endif /* MF_CUDA_EMU_H */
