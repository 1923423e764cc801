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

/* Unbiased score of an expert of logit l. Softmax needs the row's max m and sum; the score is
 * recomputed (bit-identical: same operations on the same values) instead of kept in scratch. */
static __device__ __forceinline__ float score_of(const moe_dev &kp, float l, float m, float sum) {
    if (kp.score_fn == MF_ABI_SCORE_SIGMOID) return 1.0f / (1.0f + expf(-l));
    return expf(l - m) / sum;
}

/* Rank of a key as an unsigned integer, larger for the better key: NaN ranks as -inf, -0 as +0
 * (the two compare equal, so they tie), and every key maps above 0, which marks an expert that
 * cannot be chosen (excluded by its group, or taken). */
static __device__ __forceinline__ uint32_t rank_bits(float k) {
    const float v = rank_value(k);
    const uint32_t b = v == 0.0f ? 0u : __float_as_uint(v);
    return (b & 0x80000000u) ? ~b : (b | 0x80000000u);
}

/* The warp's best of its lanes' bests (lane's rank br, 0 for none, of index be): the largest
 * rank, then among the lanes that hold it the lowest index (the highest with tie_high), by two
 * max-reductions (the index complemented for the lowest); -1 when no lane has a candidate. */
static __device__ __forceinline__ int warp_best(uint32_t br, int be, int tie_high) {
    const uint32_t whi = __reduce_max_sync(FULL_MASK, br);
    const uint32_t own = tie_high ? (uint32_t)be : ~(uint32_t)be;
    const uint32_t wlo = __reduce_max_sync(FULL_MASK, whi != 0u && br == whi ? own : 0u);
    return whi == 0u ? -1 : (int)(tie_high ? wlo : ~wlo);
}

/* Bytes of routing scratch per warp: key[E] f32, rank[E] u32 (the biases before the keys are
 * formed, gscore[NG] f32 during the group stage), lgt[E] f32 (the row's logits), keep[NG] u8. */
static __host__ __device__ __forceinline__ int route_scratch_bytes(int E, int NG) {
    return MOE_ROUTE_SCRATCH_BYTES(E, NG);
}

/* Routes token t with the 32 lanes of the calling warp (all must call). Writes route_ids and
 * route_w (and the caller's topk_ids / topk_weights when non-NULL) for entries t*top_k + slot,
 * and the ids into rid_s[entry] too when rid_s is not NULL (shared memory).
 *
 * Selection order (groups and experts alike): a candidate that can be chosen beats one that
 * cannot, then the larger key (rank_bits), then the lower index (the higher one for the tie
 * mutant): a total order, since indices are distinct. Per round a lane takes the best of its
 * candidates e = lane + 32 j, warp_best the warp's, and the lane that holds the winner marks
 * it. Only that lane reads the mark again within the rounds, so a round needs no warp
 * barrier. */
static __device__ void route_token_warp(const moe_dev &kp, int t, unsigned char *scratch, int lane,
                                        int *rid_s) {
    const int E = kp.E, k = kp.top_k, NG = kp.n_group, G = E / NG;
    float *key = (float *)scratch;                    /* [E] */
    uint32_t *rank = (uint32_t *)(key + E);           /* [E] */
    float *gscore = (float *)rank;                    /* [NG], group stage only */
    float *lgt = (float *)(rank + E);                 /* [E] */
    unsigned char *keep = (unsigned char *)(lgt + E); /* [NG] */
    const int has_bias = kp.bias_dtype != MF_ABI_BIAS_NONE && kp.bias != NULL;
    const int groups = NG > 1 && !MF_MUT(GROUPING_IGNORED);

    /* The row's logits into lgt[] and its biases into rank[], a lane's loads issued eight at a
     * time before any is used: one memory round trip per 256 experts instead of one per expert
     * and pass (the compiler cannot move a global load above a store to the scratch, which it
     * must assume may alias). The row max on the way (softmax). */
    float mx = neg_inf();
    for (int e0 = 0; e0 < E; e0 += 256) {
        float lv[8], bv[8];
#pragma unroll
        for (int j = 0; j < 8; j++) {
            const int e = e0 + 32 * j + lane;
            lv[j] = e < E ? logit_at(kp, t, e) : 0.0f;
            bv[j] = has_bias && e < E ? bias_at(kp, e) : 0.0f;
        }
#pragma unroll
        for (int j = 0; j < 8; j++) {
            const int e = e0 + 32 * j + lane;
            if (e >= E) continue;
            lgt[e] = lv[j];
            rank[e] = __float_as_uint(bv[j]);
            mx = fmaxf(mx, lv[j]);
        }
    }
    /* scores: softmax needs the row max and sum first */
    float m = 0.0f, sum = 1.0f;
    if (kp.score_fn == MF_ABI_SCORE_SOFTMAX) {
        /* fmaxf skips NaN; the CPU's "if (l > m)" scan can start at a NaN. Either way a NaN in
         * the row makes the sum, hence every score, NaN: the same outcome. */
        m = mx;
        for (int off = 16; off > 0; off >>= 1) m = fmaxf(m, __shfl_xor_sync(FULL_MASK, m, off));
        float s = 0.0f;
        for (int e = lane; e < E; e += 32) s += expf(lgt[e] - m);
        for (int off = 16; off > 0; off >>= 1) s += __shfl_xor_sync(FULL_MASK, s, off);
        sum = s;
    }
    for (int e = lane; e < E; e += 32) { /* each lane reads back only what it wrote */
        float s = score_of(kp, lgt[e], m, sum);
        float kv = has_bias ? s + __uint_as_float(rank[e]) : s;
        if (MF_MUT(BIAS_DROPPED)) kv = s;
        key[e] = kv;
        if (!groups) rank[e] = rank_bits(kv);
    }
    __syncwarp(); /* key[], lgt[] complete: the group stage, the weights and two mutants read
                   * other lanes' entries */

    /* groups: keep topk_group by group score (ties: lower group); the rest are excluded */
    if (groups) {
        int rule_max = kp.group_rule == MF_ABI_GROUP_MAX;
        if (MF_MUT(GROUP_RULE_SWAPPED)) rule_max = !rule_max;
        for (int g = lane; g < NG; g += 32) {
            /* the group's two largest, without a branch (NaN is -inf here; a zero's sign can
             * differ from the branchy scan's, which no comparison below sees) */
            float k1 = neg_inf(), k2 = neg_inf();
            for (int i = 0; i < G; i++) {
                const float v = rank_value(key[g * G + i]);
                k2 = fmaxf(k2, fminf(k1, v));
                k1 = fmaxf(k1, v);
            }
            gscore[g] = (rule_max || G == 1) ? k1 : k1 + k2;
            keep[g] = 0;
        }
        /* topk_group rounds as the top-k rounds below (the group's owner lane marks it kept) */
        for (int n = 0; n < kp.topk_group; n++) {
            uint32_t br = 0u;
            int bg = -1;
            for (int g = lane; g < NG; g += 32) {
                const uint32_t r = keep[g] ? 0u : rank_bits(gscore[g]);
                if (r > br) br = r, bg = g;
            }
            const int best = warp_best(br, bg, 0);
            if (best >= 0 && lane == (best & 31)) keep[best] = 1;
        }
        __syncwarp(); /* keep[] complete */
        /* rank[] overwrites gscore[]: every lane is past its last read of it */
        for (int e = lane; e < E; e += 32) {
            if (keep[e / G]) {
                rank[e] = rank_bits(key[e]);
            } else if (MF_MUT(GROUP_MASK_ZERO)) {
                key[e] = 0.0f;
                rank[e] = rank_bits(0.0f);
            } else {
                rank[e] = 0u;
            }
        }
        __syncwarp(); /* key[] (GROUP_MASK_ZERO) read below by any lane */
    }

    /* top-k: lane n keeps slot n */
    const int tie_high = MF_MUT(TIE_HIGHER_INDEX);
    int my_id = 0, id0 = 0;
    for (int n = 0; n < k; n++) {
        /* this lane's best: its experts go in increasing index, so a strict '>' keeps the lower
         * index of a tie ('>=' the higher, for the tie mutant) */
        uint32_t br = 0u;
        int be = -1;
        for (int e = lane; e < E; e += 32) {
            const uint32_t r = rank[e];
            if (tie_high ? (r != 0u && r >= br) : r > br) br = r, be = e;
        }
        int best = warp_best(br, be, tie_high);
        if (MF_MUT(NAN_DUPLICATE_IDS) && best >= 0 && isnan(key[best]) && n > 0) best = id0;
        if (best < 0) best = 0; /* unreachable: supports() demands topk_group * G >= top_k */
        if (n == 0) id0 = best;
        if (lane == n) my_id = best;
        if (lane == (best & 31)) rank[best] = 0u; /* taken; only this lane reads it again */
    }

    /* weights from the unbiased scores; the sum in slot order (every lane the same chain) */
    float w = 0.0f;
    if (lane < k) w = MF_MUT(BIAS_IN_WEIGHTS) ? key[my_id] : score_of(kp, lgt[my_id], m, sum);
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
        if (rid_s) rid_s[i] = my_id;
        if (kp.topk_ids) kp.topk_ids[i] = my_id;
        if (kp.topk_weights) kp.topk_weights[i] = w;
    }
    __syncwarp(); /* the scratch is reused by this warp's next token */
}

/* ---- dispatch ---- */

/* Tiles of BM rows for an expert of c rows; the partial-tile mutant forgets the last partial
 * one (floor, not ceil), and the rows of that tile are never computed (tile_row_dropped). */
static __device__ __forceinline__ int expert_tiles(const moe_dev &kp, int c) {
    return MF_MUT(PARTIAL_TILE_DROPPED) ? c / kp.BM : (c + kp.BM - 1) / kp.BM;
}
static __device__ __forceinline__ bool tile_row_dropped(const moe_dev &kp, int r, int c) {
    return MF_MUT(PARTIAL_TILE_DROPPED) && r >= c / kp.BM * kp.BM;
}

/* The nt tile-table entries of local expert le, from tile0: rows start.. start + c - 1. */
static __device__ __forceinline__ void write_expert_tiles(const moe_dev &kp, int le, int start,
                                                          int c, int nt, int tile0) {
    for (int i = 0; i < nt; i++) {
        const int rows = c - i * kp.BM < kp.BM ? c - i * kp.BM : kp.BM;
        kp.tiles[tile0 + i] = make_int4(le, start + i * kp.BM, rows, 0);
    }
}

/* Block-wide (exactly 1024 threads, E_local <= 1024): from cnt[e] (rows per local expert, in
 * shared memory) writes expert_cnt, expert_start (global, and start_s in shared memory), the
 * tile table and n_tiles. tmp: 66 ints of shared memory. */
static __device__ void scan_experts_block(const moe_dev &kp, const int *cnt, int *start_s,
                                          int *tmp) {
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const int e = tid;
    int c = e < kp.E_local ? cnt[e] : 0;
    int nt = expert_tiles(kp, c);
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
        write_expert_tiles(kp, e, start, c, nt, tile0);
    }
    if (tid == 0) *kp.n_tiles = tmp[65];
}

/* At most MOE_TINY_ENTRIES (32) entries (a decode step): one warp counts, scans and places
 * them, from the local experts of entries 0..n-1 in ids[] (shared memory). The same rows and
 * tile table as scan_experts_block + place_entries_warp: an expert's rows start after those of
 * every lower expert and keep entry order (a lane's rank among the lanes of its expert), its
 * tiles after those of every lower expert. expert_cnt / expert_start are not written: only the
 * large-T path reads them. */
static __device__ void dispatch_tiny_warp(const moe_dev &kp, const int *ids, int n, int lane) {
    const int le = lane < n ? local_expert(kp, ids[lane]) : -1;
    const bool valid = le >= 0;
    /* radix ranks over the expert's bits, high to low: `same` ends as the lanes of my expert,
     * `less` as the lanes of lower experts */
    unsigned same = __ballot_sync(FULL_MASK, valid), less = 0u;
    const int bits = kp.E_local > 1 ? 32 - __clz(kp.E_local - 1) : 0;
    for (int b = bits - 1; b >= 0; b--) {
        const bool one = valid && ((le >> b) & 1);
        const unsigned ones = __ballot_sync(FULL_MASK, one);
        if (one) less |= same & ~ones;
        same &= one ? ones : ~ones;
    }
    const int c = valid ? __popc(same) : 0, rank = __popc(same & ((1u << lane) - 1u));
    const int start = __popc(less);
    /* the expert's first lane holds its tile count, at most 2 (c <= 32, BM >= 16) */
    const int nt = valid && rank == 0 ? expert_tiles(kp, c) : 0;
    const unsigned one_tile = __ballot_sync(FULL_MASK, nt == 1),
                   two_tiles = __ballot_sync(FULL_MASK, nt == 2);
    const int tile0 = __popc(less & one_tile) + 2 * __popc(less & two_tiles);
    if (lane < n) {
        int row = valid ? start + rank : -1;
        if (valid) {
            kp.row_entry[row] = lane;
            if (tile_row_dropped(kp, rank, c)) row = -1;
        }
        kp.entry_row[lane] = row;
    }
    write_expert_tiles(kp, le, start, c, nt, tile0);
    if (lane == 0) *kp.n_tiles = __popc(one_tile) + 2 * __popc(two_tiles);
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
                if (MF_MUT(PARTIAL_TILE_DROPPED) &&
                    tile_row_dropped(kp, row - kp.expert_start[le], kp.expert_cnt[le]))
                    row = -1;
            }
            kp.entry_row[i] = row;
        }
    }
}

#endif /* MF_CUDA_MOE_ROUTE_CUH */
