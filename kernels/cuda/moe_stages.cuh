/* moe_stages.cuh: the stage kernels of the fused CUDA MoE kernel around its GEMMs (launched by
 * moe_cuda.cu): routing and dispatch, in one block for small T (moe_prep_small_kernel) or in four
 * kernels (route, count per chunk, scan, place), and the combine. moe_plan.h says which path a
 * shape takes.
 */
#ifndef MF_CUDA_MOE_STAGES_CUH
#define MF_CUDA_MOE_STAGES_CUH

#include "hopper.cuh"
#include "moe_common.cuh"
#include "moe_route.cuh"

/* Small T: route every token, count rows per expert, scan, place: one block, 1024 threads.
 * Tiny (n <= MOE_TINY_ENTRIES; launched with the routing warps only): the routing warps also
 * leave the ids in tmp[], and warp 0 dispatches them alone.
 * Shared memory: pos[E_local], cnt[E_local], tmp[68], then nrw routing scratches. */
static __global__ void __launch_bounds__(MOE_PREP_THREADS, 1)
    moe_prep_small_kernel(const moe_dev kp, int nrw) {
    extern __shared__ __align__(128) unsigned char smem_raw[];
    int *pos = (int *)smem_raw, *cnt = pos + kp.E_local, *tmp = cnt + kp.E_local;
    unsigned char *scratch = (unsigned char *)(tmp + 68);
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const int n = kp.T * kp.top_k;
    const bool tiny = n <= MOE_TINY_ENTRIES;
    /* GEMM1's blocks may launch now (programmatic dependent launch): they set up their rings
     * and wait (griddepcontrol.wait) for this grid's end before reading anything it writes */
    griddep_launch();
    if (!tiny)
        for (int e = tid; e < kp.E_local; e += blockDim.x) cnt[e] = 0;
    if (warp < nrw)
        for (int t = warp; t < kp.T; t += nrw)
            route_token_warp(kp, t, scratch + (size_t)warp * kp.route_bytes, lane,
                             tiny ? tmp : NULL);
    __syncthreads(); /* route_ids (global, and tmp[] when tiny) and cnt = 0 visible */
    if (tiny) {
        if (warp == 0) dispatch_tiny_warp(kp, tmp, n, lane);
        return;
    }
    for (int i = tid; i < n; i += blockDim.x) {
        int le = local_expert(kp, kp.route_ids[i]);
        if (le >= 0) atomicAdd(&cnt[le], 1); /* integer counts: order-free */
    }
    __syncthreads();
    scan_experts_block(kp, cnt, pos, tmp);
    __syncthreads(); /* expert_start / expert_cnt (global) and pos visible */
    if (warp == 0) place_entries_warp(kp, pos, 0, n, lane);
}

/* Large T, 1/4: one warp per token; 4 warps per block, each with its own scratch. */
static __global__ void __launch_bounds__(128) moe_route_kernel(const moe_dev kp) {
    extern __shared__ __align__(128) unsigned char smem_raw[];
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int t = blockIdx.x * 4 + warp;
    if (t >= kp.T) return; /* whole warp */
    route_token_warp(kp, t, smem_raw + (size_t)warp * kp.route_bytes, lane, NULL);
}

/* Large T, 2/4: rows per local expert in each chunk of MOE_CHUNK entries (warp per chunk). */
static __global__ void __launch_bounds__(128) moe_count_kernel(const moe_dev kp) {
    extern __shared__ __align__(128) unsigned char smem_raw[];
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int chunk = blockIdx.x * 4 + warp;
    if (chunk >= kp.n_chunks) return; /* whole warp */
    int *cnt = (int *)smem_raw + (size_t)warp * kp.E_local;
    for (int e = lane; e < kp.E_local; e += 32) cnt[e] = 0;
    __syncwarp();
    const int n = kp.T * kp.top_k, i0 = chunk * MOE_CHUNK;
    const int i1 = i0 + MOE_CHUNK < n ? i0 + MOE_CHUNK : n;
    for (int i = i0 + lane; i < i1; i += 32) {
        int le = local_expert(kp, kp.route_ids[i]);
        if (le >= 0) atomicAdd(&cnt[le], 1);
    }
    __syncwarp();
    for (int e = lane; e < kp.E_local; e += 32)
        kp.chunk_cnt[(size_t)chunk * kp.E_local + e] = cnt[e];
}

/* Large T, 3/4: per expert, exclusive prefix over chunks (in place) and the total; then the
 * expert scan and the tile table. One block of 1024 threads. */
static __global__ void __launch_bounds__(MOE_PREP_THREADS, 1) moe_scan_kernel(const moe_dev kp) {
    extern __shared__ __align__(128) unsigned char smem_raw[];
    int *start = (int *)smem_raw, *cnt = start + kp.E_local, *tmp = cnt + kp.E_local;
    for (int e = threadIdx.x; e < kp.E_local; e += blockDim.x) {
        int run = 0;
        for (int c = 0; c < kp.n_chunks; c++) {
            size_t i = (size_t)c * kp.E_local + e;
            int v = kp.chunk_cnt[i];
            kp.chunk_cnt[i] = run;
            run += v;
        }
        cnt[e] = run;
    }
    __syncthreads();
    scan_experts_block(kp, cnt, start, tmp);
}

/* Large T, 4/4: rows for the entries of each chunk, in entry order (warp per chunk). */
static __global__ void __launch_bounds__(128) moe_place_kernel(const moe_dev kp) {
    extern __shared__ __align__(128) unsigned char smem_raw[];
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int chunk = blockIdx.x * 4 + warp;
    if (chunk >= kp.n_chunks) return; /* whole warp */
    int *pos = (int *)smem_raw + (size_t)warp * kp.E_local;
    for (int e = lane; e < kp.E_local; e += 32)
        pos[e] = kp.expert_start[e] + kp.chunk_cnt[(size_t)chunk * kp.E_local + e];
    __syncwarp();
    const int n = kp.T * kp.top_k, i0 = chunk * MOE_CHUNK;
    place_entries_warp(kp, pos, i0, i0 + MOE_CHUNK < n ? i0 + MOE_CHUNK : n, lane);
}

/* out[t][c] = bf16(acc), acc = sum over local slots in slot order of y (fp32 adds), times rsf
 * at the output site. One thread per 4 columns of a token. The slots go in groups of 8: the
 * group's row flags, then its y values are all loaded before the first add, so a decode step
 * waits for two memory round trips per group, not two per slot; the adds keep slot order. */
#define COMBINE_GROUP 8
static __global__ void __launch_bounds__(256) moe_combine_kernel(const moe_dev kp) {
    griddep_wait(); /* launched early behind GEMM2 (programmatic dependent launch) */
    const int ncol4 = (kp.H + 3) / 4;
    const long long idx = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (idx >= (long long)kp.T * ncol4) return;
    const int t = (int)(idx / ncol4), c0 = (int)(idx % ncol4) * 4;
    const int k = kp.top_k, vec = (kp.H % 4) == 0;
    float acc[4] = {0.0f, 0.0f, 0.0f, 0.0f};
    for (int s0 = 0; s0 < k; s0 += COMBINE_GROUP) {
        bool local[COMBINE_GROUP];
        float v[COMBINE_GROUP][4];
#pragma unroll
        for (int j = 0; j < COMBINE_GROUP; j++) /* another rank's expert (or a dropped row): -1 */
            local[j] = s0 + j < k && kp.entry_row[(size_t)t * k + s0 + j] >= 0;
#pragma unroll
        for (int j = 0; j < COMBINE_GROUP; j++) {
            v[j][0] = v[j][1] = v[j][2] = v[j][3] = 0.0f; /* not added where !local[j] */
            if (!local[j]) continue;
            const float *y = kp.ybuf + ((size_t)t * k + s0 + j) * kp.H + c0;
            if (vec) {
                float4 q = *(const float4 *)y;
                v[j][0] = q.x, v[j][1] = q.y, v[j][2] = q.z, v[j][3] = q.w;
            } else {
#pragma unroll
                for (int c = 0; c < 4; c++) v[j][c] = c0 + c < kp.H ? y[c] : 0.0f;
            }
        }
#pragma unroll
        for (int j = 0; j < COMBINE_GROUP; j++) {
            if (!local[j]) continue;
#pragma unroll
            for (int c = 0; c < 4; c++) {
                acc[c] = __fadd_rn(acc[c], v[j][c]);
                if (MF_MUT(BF16_COMBINE)) acc[c] = bf16_to_f32(f32_to_bf16(acc[c]));
            }
        }
    }
    if (kp.rsf_site == MF_ABI_RSF_OUTPUT && !MF_MUT(RSF_DROPPED)) {
#pragma unroll
        for (int j = 0; j < 4; j++) {
            acc[j] = acc[j] * kp.rsf;
            if (MF_MUT(RSF_TWICE)) acc[j] = acc[j] * kp.rsf;
        }
    }
    uint16_t o[4];
#pragma unroll
    for (int j = 0; j < 4; j++) o[j] = f32_to_bf16(acc[j]);
    uint16_t *dst = kp.out + (size_t)t * kp.H + c0;
    if (kp.out_vec) {
        *(uint2 *)dst = make_uint2((uint32_t)o[0] | ((uint32_t)o[1] << 16),
                                   (uint32_t)o[2] | ((uint32_t)o[3] << 16));
    } else {
#pragma unroll
        for (int j = 0; j < 4; j++)
            if (c0 + j < kp.H) dst[j] = o[j];
    }
}

#endif /* MF_CUDA_MOE_STAGES_CUH */
