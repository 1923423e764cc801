/* mma.cuh: the tensor-core and async-copy primitives of the fused MoE kernel, as inline PTX.
 *
 * One file so that the kernel (moe_gemm.cuh) and the Hopper accumulation probe
 * (tests/gpu/probe_hopper.cu) drive the very same instruction and the same fragment addressing:
 * whatever the probe measures is what the kernel computes. Plain sm_80+ PTX (mma.sync, ldmatrix,
 * cp.async); no sm_90a-only instruction, so the file assembles for sm_90 and sm_90a alike.
 *
 * Fragment layouts of mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 (PTX ISA, "Matrix
 * Fragments for mma.m16n8k16"), with g = lane / 4 and q = lane % 4; each 32-bit register packs
 * two bf16, the lower column (or k) in the low half:
 *   A (16x16, row-major):  a[0] = A[g][2q..2q+1]     a[1] = A[g+8][2q..2q+1]
 *                          a[2] = A[g][2q+8..2q+9]   a[3] = A[g+8][2q+8..2q+9]
 *   B (16x8, "col" = stored as [n][k], k contiguous):
 *                          b[0] = B[k=2q..2q+1][n=g] b[1] = B[k=2q+8..2q+9][n=g]
 *   C/D (16x8, fp32):      c[0..1] = C[g][2q..2q+1]  c[2..3] = C[g+8][2q..2q+1]
 *
 * MF_CUDA_EMULATE (tests/gpu/emu only, never a production build) swaps the four instructions
 * for a CPU emulation with the same names; everything else in this file is shared.
 */
#ifndef MF_CUDA_MMA_CUH
#define MF_CUDA_MMA_CUH

#include <stdint.h>

#ifdef MF_CUDA_EMULATE
#include "mma_emu.cuh"
#else

/* d = a * b + c for one m16n8k16 tile: one HMMA.16816.F32.BF16. On Hopper the 16 products of
 * each row/column pair and c are added as one fused sum (B=16, F=25, truncation, RZ to fp32;
 * docs/hopper-probe.md, measured by tests/gpu/probe_hopper.cu). */
static __device__ __forceinline__ void mma_bf16_16816(float d[4], const uint32_t a[4],
                                                      const uint32_t b[2], const float c[4]) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 "
        "{%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%10, %11, %12, %13};\n"
        : "=f"(d[0]), "=f"(d[1]), "=f"(d[2]), "=f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]), "f"(c[0]), "f"(c[1]),
          "f"(c[2]), "f"(c[3]));
}

/* Four 8x8 b16 matrices; lane l supplies the address of row (l % 8) of matrix (l / 8), each row
 * 16 contiguous bytes, 16-byte aligned. Register r[i] receives, in lane l, row l / 4, elements
 * 2 (l % 4) and 2 (l % 4) + 1 of matrix i. The "memory" clobber keeps the compiler from moving
 * the read across the cp.async waits and barriers that order it. */
static __device__ __forceinline__ void ldmatrix_x4(uint32_t r[4], uint32_t addr) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(addr)
                 : "memory");
}

/* Two 8x8 matrices: lanes 0-15 supply the row addresses (lanes 16-31 are ignored but must still
 * hold a valid shared address). */
static __device__ __forceinline__ void ldmatrix_x2(uint32_t r[2], uint32_t addr) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x2.shared.b16 {%0, %1}, [%2];\n"
                 : "=r"(r[0]), "=r"(r[1])
                 : "r"(addr)
                 : "memory");
}

/* 16-byte global -> shared copy that bypasses L1 (.cg: weights are streamed once). When
 * src_bytes is 0 nothing is read and the 16 bytes are zero-filled: the zero padding of row and
 * K remainders. gptr must still be a valid global address. */
static __device__ __forceinline__ void cp_async_16(uint32_t saddr, const void *gptr,
                                                   int src_bytes) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(saddr), "l"(gptr),
                 "r"(src_bytes)
                 : "memory");
}

static __device__ __forceinline__ void cp_async_commit(void) {
    asm volatile("cp.async.commit_group;\n" ::: "memory");
}

/* Waits until at most N of this thread's committed groups are still in flight. */
template <int N>
static __device__ __forceinline__ void cp_async_wait(void) {
    asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
}

#endif /* MF_CUDA_EMULATE */

/* Shared-memory address in the .shared window, as ldmatrix and cp.async want it. */
static __device__ __forceinline__ uint32_t smem_u32(const void *p) {
    return (uint32_t)__cvta_generic_to_shared(p);
}

/* Lane addressing of the fragment loads, shared by the kernel (moe_gemm.cuh) and the probe's
 * layout check, for tiles stored row-major in shared memory.
 * A, 16x16 at (row 0, k 0) with ldmatrix_x4: lanes 0-15 give rows 0-15 at k 0, lanes 16-31 rows
 * 0-15 at k 8, so the four matrices are (rows 0-7, k 0-7), (rows 8-15, k 0-7), (rows 0-7, k 8-15),
 * (rows 8-15, k 8-15) = a[0], a[1], a[2], a[3]. */
static __device__ __forceinline__ int frag_a_row(int lane) {
    return lane & 15;
}
static __device__ __forceinline__ int frag_a_col(int lane) {
    return (lane >> 4) * 8;
}

/* B, stored [n][k], two n8 tiles with ldmatrix_x4: lane l addresses row frag_b_row(l) of tile
 * frag_b_tile(l) (0: the first tile, 1: the second) at k frag_b_col(l), so the four matrices are
 * (tile 0, k 0-7), (tile 0, k 8-15), (tile 1, k 0-7), (tile 1, k 8-15) = b0[0], b0[1], b1[0],
 * b1[1]. One n8 tile with ldmatrix_x2 uses the same rows and columns (lanes 16-31 ignored). */
static __device__ __forceinline__ int frag_b_tile(int lane) {
    return lane >> 4;
}
static __device__ __forceinline__ int frag_b_row(int lane) {
    return lane & 7;
}
static __device__ __forceinline__ int frag_b_col(int lane) {
    return ((lane >> 3) & 1) * 8;
}

/* Row (within the 16x8 tile) and column of accumulator element c[r] in lane `lane`. */
static __device__ __forceinline__ int frag_c_row(int lane, int r) {
    return (lane >> 2) + 8 * (r >> 1);
}
static __device__ __forceinline__ int frag_c_col(int lane, int r) {
    return 2 * (lane & 3) + (r & 1);
}

#endif /* MF_CUDA_MMA_CUH */
