/* moe_common.cuh: what every stage of the fused CUDA MoE kernel shares: the parameter block
 * passed by value to every kernel, the mutant hook, bf16 conversions, warp helpers.
 *
 * Production build (the default): MF_MUT(m) is the constant 0 and the parameter block has no
 * mutant field, so no mutant code reaches the production objects. The test build
 * (-DMF_CUDA_WITH_MUTANTS, library moefuzz_cuda_mutants) compiles the same sources with
 * MF_MUT(m) reading kp.mutant. Every function that can hold a mutant branch takes the parameter
 * block as `kp`.
 */
#ifndef MF_CUDA_MOE_COMMON_CUH
#define MF_CUDA_MOE_COMMON_CUH

#include <math.h>
#include <stdint.h>

#include "moe_plan.h" /* MOE_CHUNK, MOE_SMALL_T, MOE_PREP_THREADS, MOE_TINY_ENTRIES */
#include "moefuzz/kernel_abi.h"

#ifdef MF_CUDA_WITH_MUTANTS
#include "../mutants.h"
#define MF_MUT(m) (kp.mutant == MF_MUTANT_##m)
#else
#define MF_MUT(m) 0
#endif

#define FULL_MASK 0xffffffffu

/* Everything a kernel needs, by value (about 260 bytes of kernel parameters). Pointers are
 * device pointers: tensors are the caller's (valid during run() and until the stream reaches
 * this call's end), the rest lie in the caller's workspace (layout: mf_cuda_ws_plan). */
typedef struct moe_dev {
    /* shape */
    int T, H, I, E, E_local, offset, top_k;
    /* routing */
    int score_fn, bias_dtype, n_group, topk_group, group_rule, renormalize;
    float renorm_eps, rsf;
    int rsf_site, layout, logits_dtype;
    /* caller tensors */
    const uint16_t *x;   /* [T][H] bf16 */
    const void *logits;  /* [T][E] fp32 or bf16 */
    const void *bias;    /* [E] fp32 or bf16, or NULL */
    const uint16_t *w13; /* [E_local][2I][H] bf16 */
    const uint16_t *w2;  /* [E_local][H][I] bf16 */
    uint16_t *out;       /* [T][H] bf16 */
    int32_t *topk_ids;   /* [T][top_k] or NULL */
    float *topk_weights; /* [T][top_k] or NULL */
    /* workspace */
    int32_t *route_ids;    /* [T*top_k] global expert id of each (token, slot) entry */
    float *route_w;        /* [T*top_k] weight applied to each entry */
    int32_t *entry_row;    /* [T*top_k] permuted row of each entry, -1 if not computed here */
    int32_t *row_entry;    /* [T*top_k] entry (t*top_k + slot) of each permuted row */
    int32_t *expert_cnt;   /* [E_local] rows of each local expert */
    int32_t *expert_start; /* [E_local] first permuted row of each local expert */
    int32_t *chunk_cnt;    /* [n_chunks][E_local] counts, then exclusive prefixes over chunks */
    int4 *tiles;           /* [max_tiles] {local expert, first row, rows (<= BM), 0} */
    int32_t *n_tiles;      /* [1] tiles in use */
    uint16_t *hbuf;        /* [T*top_k][I] bf16 activation rows, permuted order */
    float *ybuf;           /* [T*top_k][H] fp32 w * (W2 h), indexed by entry */
    /* launch configuration */
    int BM;          /* rows per GEMM tile */
    int n_chunks;    /* ceil(T*top_k / MOE_CHUNK) */
    int route_bytes; /* routing scratch bytes per warp */
    int out_vec;     /* out is 8-byte aligned and H % 4 == 0: combine stores 4 bf16 at once */
    int b_tma;       /* wgmma GEMMs: B tiles by TMA through the kernel's tensor map */
#ifdef MF_CUDA_WITH_MUTANTS
    int mutant;
#endif
} moe_dev;

/* ---- bf16: the same bit recipes as kernels/cpu/moe_cpu.c ---- */

static __device__ __forceinline__ float bf16_to_f32(uint16_t b) {
    return __uint_as_float((uint32_t)b << 16);
}

/* Round to nearest even; NaN stays NaN (quiet bit set), exactly as the CPU kernel. */
static __device__ __forceinline__ uint16_t f32_to_bf16(float f) {
    uint32_t u = __float_as_uint(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40u);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

static __device__ __forceinline__ float neg_inf(void) {
    return __uint_as_float(0xff800000u);
}

/* NaN keys rank as -inf: a NaN row still yields distinct ids in range. */
static __device__ __forceinline__ float rank_value(float k) {
    return isnan(k) ? neg_inf() : k;
}

/* Local expert of a global id, or -1 when another rank holds it. */
static __device__ __forceinline__ int local_expert(const moe_dev &kp, int id) {
    int le = id - kp.offset;
    if (MF_MUT(EP_OFFSET_IGNORED)) le = id;
    if (MF_MUT(EP_OFFSET_TWICE)) le = id - 2 * kp.offset;
    return (le >= 0 && le < kp.E_local) ? le : -1;
}

#endif /* MF_CUDA_MOE_COMMON_CUH */
