/* mma_emu.cuh: the four PTX instructions of kernels/cuda/mma.cuh, emulated on the CPU (included
 * by mma.cuh under MF_CUDA_EMULATE, tests/gpu/emu only).
 *
 * Written from the PTX ISA's description of the instructions, independently of the kernel's
 * own addressing helpers, so that a wrong lane mapping in the kernel shows as a wrong answer.
 * The probe (tests/gpu/probe_hopper.cu, step E0) checks the same layouts on the hardware.
 */
#ifndef MF_MMA_EMU_CUH
#define MF_MMA_EMU_CUH

#include "hopper_model.h"

static inline uint16_t emu_lo16(uint32_t r) {
    return (uint16_t)(r & 0xffffu);
}
static inline uint16_t emu_hi16(uint32_t r) {
    return (uint16_t)(r >> 16);
}

/* mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32: the warp's fragments are gathered, the
 * 16x16 A, 16x8 B and C rebuilt from the fragment layout, the 16x8 result computed once with the
 * Hopper model (non-finite inputs fall back to a plain sum: IEEE classes), and each lane takes
 * its four elements. */
struct emu_mma_frag {
    uint32_t a[4], b[2];
    float c[4];
};

static inline void emu_mma_compute(const void *vall, void *vout) {
    const emu_mma_frag *all = (const emu_mma_frag *)vall;
    float(*D)[8] = (float(*)[8])vout;
    uint16_t A[16][16], B[8][16]; /* B stored [n][k] */
    float C[16][8];
    for (int l = 0; l < 32; l++) {
        const int g = l >> 2, q = l & 3;
        const emu_mma_frag *f = &all[l];
        A[g][2 * q] = emu_lo16(f->a[0]), A[g][2 * q + 1] = emu_hi16(f->a[0]);
        A[g + 8][2 * q] = emu_lo16(f->a[1]), A[g + 8][2 * q + 1] = emu_hi16(f->a[1]);
        A[g][2 * q + 8] = emu_lo16(f->a[2]), A[g][2 * q + 9] = emu_hi16(f->a[2]);
        A[g + 8][2 * q + 8] = emu_lo16(f->a[3]), A[g + 8][2 * q + 9] = emu_hi16(f->a[3]);
        B[g][2 * q] = emu_lo16(f->b[0]), B[g][2 * q + 1] = emu_hi16(f->b[0]);
        B[g][2 * q + 8] = emu_lo16(f->b[1]), B[g][2 * q + 9] = emu_hi16(f->b[1]);
        C[g][2 * q] = f->c[0], C[g][2 * q + 1] = f->c[1];
        C[g + 8][2 * q] = f->c[2], C[g + 8][2 * q + 1] = f->c[3];
    }
    static const hm_hypothesis hopper = {"B=16 F=25 RZ", 16, 25, 0};
    hm_term TA[16][16], TB[8][16]; /* each operand decomposed once, used 8 or 16 times */
    for (int m = 0; m < 16; m++)
        for (int k = 0; k < 16; k++) TA[m][k] = hm_bf16_term(A[m][k]);
    for (int n = 0; n < 8; n++)
        for (int k = 0; k < 16; k++) TB[n][k] = hm_bf16_term(B[n][k]);
    for (int m = 0; m < 16; m++)
        for (int n = 0; n < 8; n++) {
            const uint16_t *ar = A[m], *bc = B[n];
            float cv = C[m][n];
            int finite = isfinite(cv);
            for (int k = 0; k < 16; k++)
                finite &= (ar[k] & 0x7f80) != 0x7f80 && (bc[k] & 0x7f80) != 0x7f80;
            if (finite) {
                D[m][n] = hm_step_terms(&hopper, cv, TA[m], TB[n]);
            } else {
                double s = cv;
                for (int k = 0; k < 16; k++)
                    s += (double)__uint_as_float((uint32_t)ar[k] << 16) *
                         __uint_as_float((uint32_t)bc[k] << 16);
                D[m][n] = (float)s;
            }
        }
}

static inline void mma_bf16_16816(float d[4], const uint32_t a[4], const uint32_t b[2],
                                  const float c[4]) {
    emu_mma_frag mine;
    memcpy(mine.a, a, sizeof mine.a);
    memcpy(mine.b, b, sizeof mine.b);
    memcpy(mine.c, c, sizeof mine.c);
    float D[16][8];
    emu_warp_compute(&mine, sizeof mine, emu_mma_compute, D, sizeof D, "mma.sync");
    const int lane = emu_lane(), g = lane >> 2, q = lane & 3;
    d[0] = D[g][2 * q], d[1] = D[g][2 * q + 1], d[2] = D[g + 8][2 * q], d[3] = D[g + 8][2 * q + 1];
}

void emu_check_smem(uint32_t addr, size_t bytes, size_t align, const char *what);

/* ldmatrix.sync.aligned.m8n8.x{2,4}.shared.b16: lane l provides the address of row l % 8 of
 * matrix l / 8; register i of lane l receives row l / 4, bytes 4 (l % 4) .. +3 of matrix i. */
static inline void emu_ldmatrix(uint32_t *r, int nmat, uint32_t addr) {
    const int lane = emu_lane();
    int src[4];
    uint32_t rows[4];
    for (int i = 0; i < nmat; i++) src[i] = i * 8 + (lane >> 2);
    emu_warp_pick(&addr, 4, src, nmat, rows, nmat == 4 ? "ldmatrix.x4" : "ldmatrix.x2");
    for (int i = 0; i < nmat; i++) {
        uint32_t row = rows[i];
        emu_check_smem(row, 16, 16, "ldmatrix row");
        memcpy(&r[i], smem_raw + row + 4 * (lane & 3), 4);
    }
}
static inline void ldmatrix_x4(uint32_t r[4], uint32_t addr) {
    emu_ldmatrix(r, 4, addr);
}
static inline void ldmatrix_x2(uint32_t r[2], uint32_t addr) {
    emu_ldmatrix(r, 2, addr);
}

static inline void cp_async_16(uint32_t saddr, const void *gptr, int src_bytes) {
    emu_cp_async_16(saddr, gptr, src_bytes);
}
static inline void cp_async_commit(void) {
    emu_cp_async_commit();
}
template <int N>
static inline void cp_async_wait(void) {
    emu_cp_async_wait(N);
}

#endif /* MF_MMA_EMU_CUH */
