/* moe_route.cuh: routing (one warp per token) and the deterministic dispatch of (token, slot)
 * entries to permuted rows grouped by local expert.
 *
 * Routing recipe (contract "hopper-tc", identical to kernels/cpu/moe_cpu.c route_token):
 *   sigmoid s = 1 / (1 + expf(-l)); softmax s = expf(l - max) / sum (sum: each lane in index
 *   order, then a butterfly, whose result every lane shares bit for bit since fp32 addition is
 *   commutative); key = s + bias; groups scored by k1 + k2 (one fp32 add) or max, topk_group
 *   kept (ties: lower group), experts of dropped groups excluded; top_k by key (ties: lower
 *   index); NaN ranks as -inf; weights from the unbiased scores, summed in slot order, divided
 *   by (sum + eps), times rsf at the weights site. expf is CUDA's accurate expf (the build has no
 *   fast math) and '/' is IEEE division.
 *
 * Dispatch: entry i = t * top_k + slot. Rows of local expert e are [start[e], start[e] + cnt[e])
 * in increasing entry order, so the permutation is a pure function of the routing: the same on
 * every run and on both dispatch paths (small-T fused block, or count / scan / place kernels).
 */
#ifndef MF_CUDA_MOE_ROUTE_CUH
#define MF_CUDA_MOE_ROUTE_CUH

#include "moe_common.cuh"

/* ---- routing ---- */

static __device__ __forceinline__ float logit_at(const moe_dev &kp, int t, int e) {
    size_t i = (size_t)t * kp.E + e;
    if (kp.logits_dtype == MF_ABI_DTYPE_BF16) return bf16_to_f32(((const uint16_t *)kp.logits)[i]);
    return ((const float *)kp.logits)[i];
}

static __device__ __forceinline__ float bias_at(const moe_dev &kp, int e) {
    if (kp.bias_dtype == MF_ABI_BIAS_BF16) return bf16_to_f32(((const uint16_t *)kp.bias)[e]);
    return ((const float *)kp.bias)[e];
}

/* Unbiased score of expert e of token t. Softmax needs the row's max m and sum; the score is
 * recomputed (bit-identical: same operations on the same values) instead of kept in scratch. */
static __device__ __forceinline__ float score_of(const moe_dev &kp, int t, int e, float m,
                                                 float sum) {
    float l = logit_at(kp, t, e);
    if (kp.score_fn == MF_ABI_SCORE_SIGMOID) return 1.0f / (1.0f + expf(-l));
    return expf(l - m) / sum;
}

/* Candidate order of the arg-max reductions: valid beats invalid (index -1), then the larger
 * rank value, then the lower index (the higher one for the tie mutant). Indices are distinct, so
 * this is a total order and every lane of a butterfly ends with the same winner. */
static __device__ __forceinline__ int cand_better(float va, int ia, float vb, int ib,
                                                  int tie_high) {
    if (ia < 0) return 0;
    if (ib < 0) return 1;
    if (va != vb) return va > vb;
    return tie_high ? ia > ib : ia < ib;
}

static __device__ __forceinline__ int warp_argmax(float v, int i, int tie_high) {
    for (int off = 16; off > 0; off >>= 1) {
        float ov = __shfl_xor_sync(FULL_MASK, v, off);
        int oi = __shfl_xor_sync(FULL_MASK, i, off);
        if (cand_better(ov, oi, v, i, tie_high)) v = ov, i = oi;
    }
    return i;
}

/* Bytes of routing scratch per warp: key[E] f32, gscore[NG] f32, flag[E] u8, keep[NG] u8. */
static __host__ __device__ __forceinline__ int route_scratch_bytes(int E, int NG) {
    return (5 * E + 5 * NG + 15) / 16 * 16;
}

/* Routes token t with the 32 lanes of the calling warp (all must call). Writes route_ids and
 * route_w (and the caller's topk_ids / topk_weights when non-NULL) for entries t*top_k + slot. */
static __device__ void route_token_warp(const moe_dev &kp, int t, unsigned char *scratch,
                                        int lane) {
    const int E = kp.E, k = kp.top_k, NG = kp.n_group, G = E / NG;
    float *key = (float *)scratch;                        /* [E] */
    float *gscore = key + E;                              /* [NG] */
    unsigned char *flag = (unsigned char *)(gscore + NG); /* [E] */
    unsigned char *keep = flag + E;                       /* [NG] */
    const int has_bias = kp.bias_dtype != MF_ABI_BIAS_NONE && kp.bias != NULL;

    /* scores: softmax needs the row max and sum first */
    float m = 0.0f, sum = 1.0f;
    if (kp.score_fn == MF_ABI_SCORE_SOFTMAX) {
        /* fmaxf skips NaN; the CPU's "if (l > m)" scan can start at a NaN. Either way a NaN in
         * the row makes the sum, hence every score, NaN: the same outcome. */
        m = neg_inf();
        for (int e = lane; e < E; e += 32) m = fmaxf(m, logit_at(kp, t, e));
        for (int off = 16; off > 0; off >>= 1) m = fmaxf(m, __shfl_xor_sync(FULL_MASK, m, off));
        float s = 0.0f;
        for (int e = lane; e < E; e += 32) s += expf(logit_at(kp, t, e) - m);
        for (int off = 16; off > 0; off >>= 1) s += __shfl_xor_sync(FULL_MASK, s, off);
        sum = s;
    }
    for (int e = lane; e < E; e += 32) {
        float s = score_of(kp, t, e, m, sum);
        float kv = has_bias ? s + bias_at(kp, e) : s;
        if (MF_MUT(BIAS_DROPPED)) kv = s;
        key[e] = kv;
        flag[e] = 0;
    }
    __syncwarp();

    /* groups: keep topk_group by group score (ties: lower group); the rest are excluded */
    if (NG > 1 && !MF_MUT(GROUPING_IGNORED)) {
        int rule_max = kp.group_rule == MF_ABI_GROUP_MAX;
        if (MF_MUT(GROUP_RULE_SWAPPED)) rule_max = !rule_max;
        for (int g = lane; g < NG; g += 32) {
            float k1 = neg_inf(), k2 = neg_inf();
            for (int i = 0; i < G; i++) {
                float v = rank_value(key[g * G + i]);
                if (v > k1)
                    k2 = k1, k1 = v;
                else if (v > k2)
                    k2 = v;
            }
            gscore[g] = (rule_max || G == 1) ? k1 : k1 + k2;
            keep[g] = 0;
        }
        __syncwarp();
        for (int n = 0; n < kp.topk_group; n++) {
            float bv = 0.0f;
            int bi = -1;
            for (int g = lane; g < NG; g += 32) {
                if (keep[g]) continue;
                float v = rank_value(gscore[g]);
                if (cand_better(v, g, bv, bi, 0)) bv = v, bi = g;
            }
            bi = warp_argmax(bv, bi, 0);
            if (lane == 0 && bi >= 0) keep[bi] = 1;
            __syncwarp();
        }
        for (int e = lane; e < E; e += 32)
            if (!keep[e / G]) {
                if (MF_MUT(GROUP_MASK_ZERO))
                    key[e] = 0.0f;
                else
                    flag[e] = RT_MASKED;
            }
        __syncwarp();
    }

    /* top-k: repeated arg-max over experts neither excluded nor taken; lane n keeps slot n */
    const int tie_high = MF_MUT(TIE_HIGHER_INDEX);
    int my_id = 0, id0 = 0;
    for (int n = 0; n < k; n++) {
        float bv = 0.0f;
        int bi = -1;
        for (int e = lane; e < E; e += 32) {
            if (flag[e]) continue;
            float v = rank_value(key[e]);
            if (cand_better(v, e, bv, bi, tie_high)) bv = v, bi = e;
        }
        int best = warp_argmax(bv, bi, tie_high);
        if (MF_MUT(NAN_DUPLICATE_IDS) && best >= 0 && isnan(key[best]) && n > 0) best = id0;
        if (best < 0) best = 0; /* unreachable: supports() demands topk_group * G >= top_k */
        if (n == 0) id0 = best;
        if (lane == n) my_id = best;
        __syncwarp();
        if (lane == 0) flag[best] |= RT_TAKEN;
        __syncwarp();
    }

    /* weights from the unbiased scores; the sum in slot order (every lane the same chain) */
    float w = 0.0f;
    if (lane < k) w = MF_MUT(BIAS_IN_WEIGHTS) ? key[my_id] : score_of(kp, t, my_id, m, sum);
    float wsum = 0.0f;
    for (int n = 0; n < k; n++) wsum += __shfl_sync(FULL_MASK, w, n);
    if (kp.renormalize && !MF_MUT(RENORMALIZE_IGNORED)) {
        float den = MF_MUT(EPS_MISSING) ? wsum : wsum + kp.renorm_eps;
        w = w / den;
    }
    if (kp.rsf_site == MF_ABI_RSF_WEIGHTS) {
        int apply = !MF_MUT(RSF_DROPPED) && !(MF_MUT(RSF_ONLY_WITH_RENORM) && !kp.renormalize);
        if (apply) w = w * kp.rsf;
        if (MF_MUT(RSF_TWICE)) w = w * kp.rsf;
    }
    if (lane < k) {
        size_t i = (size_t)t * k + lane;
        kp.route_ids[i] = my_id;
        kp.route_w[i] = w;
        if (kp.topk_ids) kp.topk_ids[i] = my_id;
        if (kp.topk_weights) kp.topk_weights[i] = w;
    }
    __syncwarp(); /* the scratch is reused by this warp's next token */
}

/* ---- dispatch ---- */

/* Block-wide (exactly 1024 threads, E_local <= 1024): from cnt[e] (rows per local expert, in
 * shared memory) writes expert_cnt, expert_start (global, and start_s in shared memory), the
 * tile table and n_tiles. tmp: 66 ints of shared memory. */
static __device__ void scan_experts_block(const moe_dev &kp, const int *cnt, int *start_s,
                                          int *tmp) {
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const int e = tid, BM = kp.BM;
    int c = e < kp.E_local ? cnt[e] : 0;
    /* tiles of BM rows; the partial-tile mutant forgets the last partial one (floor, not ceil) */
    int nt = MF_MUT(PARTIAL_TILE_DROPPED) ? c / BM : (c + BM - 1) / BM;
    int ic = c, it = nt; /* inclusive warp scans */
    for (int off = 1; off < 32; off <<= 1) {
        int yc = __shfl_up_sync(FULL_MASK, ic, off), yt = __shfl_up_sync(FULL_MASK, it, off);
        if (lane >= off) ic += yc, it += yt;
    }
    if (lane == 31) tmp[warp] = ic, tmp[32 + warp] = it;
    __syncthreads();
    if (warp == 0) {
        int vc = tmp[lane], vt = tmp[32 + lane]; /* 32 warps: every slot written above */
        int sc = vc, st = vt;
        for (int off = 1; off < 32; off <<= 1) {
            int yc = __shfl_up_sync(FULL_MASK, sc, off), yt = __shfl_up_sync(FULL_MASK, st, off);
            if (lane >= off) sc += yc, st += yt;
        }
        __syncwarp();
        tmp[lane] = sc - vc; /* exclusive prefix of the warp totals */
        tmp[32 + lane] = st - vt;
        if (lane == 31) tmp[64] = sc, tmp[65] = st;
    }
    __syncthreads();
    int start = ic - c + tmp[warp], tile0 = it - nt + tmp[32 + warp];
    if (e < kp.E_local) {
        start_s[e] = start;
        kp.expert_start[e] = start;
        kp.expert_cnt[e] = c;
        for (int i = 0; i < nt; i++) {
            int rows = c - i * BM < BM ? c - i * BM : BM;
            kp.tiles[tile0 + i] = make_int4(e, start + i * BM, rows, 0);
        }
    }
    if (tid == 0) *kp.n_tiles = tmp[65];
}

/* One warp assigns rows to entries [i0, i1) in order: pos[e] (shared) holds the next free row
 * of local expert e for this chunk. __match_any_sync groups the lanes of one step by expert; a
 * lane's rank among its peers is its offset, so equal experts keep entry order. */
static __device__ void place_entries_warp(const moe_dev &kp, int *pos, int i0, int i1, int lane) {
    for (int base = i0; base < i1; base += 32) {
        int i = base + lane;
        int le = i < i1 ? local_expert(kp, kp.route_ids[i]) : -1;
        unsigned peers = __match_any_sync(FULL_MASK, le);
        int rank = __popc(peers & ((1u << lane) - 1u));
        int row = le >= 0 ? pos[le] + rank : -1;
        __syncwarp();
        if (le >= 0 && rank == 0) pos[le] += __popc(peers);
        __syncwarp();
        if (i < i1) {
            if (le >= 0) {
                kp.row_entry[row] = i;
                if (MF_MUT(PARTIAL_TILE_DROPPED)) {
                    /* rows of the forgotten last partial tile are never computed */
                    int c = kp.expert_cnt[le], r = row - kp.expert_start[le];
                    if (r >= c / kp.BM * kp.BM) row = -1;
                }
            }
            kp.entry_row[i] = row;
        }
    }
}

#endif /* MF_CUDA_MOE_ROUTE_CUH */
