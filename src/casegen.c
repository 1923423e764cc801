/* casegen.c: random cases over the parameter domain (see casegen.h). */
#include "casegen.h"

#include <math.h>
#include <string.h>

#include "bf16.h"

#include "codec.h"
#include "models.h"

uint64_t mf_rng_next(mf_rng *r) {
    uint64_t z = (r->s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

uint32_t mf_rng_below(mf_rng *r, uint32_t n) {
    return n ? (uint32_t)((mf_rng_next(r) >> 32) % n) : 0;
}

void mf_case_limits_default(mf_case_limits *l) {
    l->max_T = 64;
    l->max_H = 512;
    l->max_I = 512;
    l->max_E = 256;
    l->max_work = 3e6;
    l->max_bytes = 64.0 * 1024 * 1024;
    l->rows_T = l->max_rows = l->full_T = 0;
    l->max_work_full = l->max_bytes_full = 0;
}

void mf_case_rows(mf_case *c, const mf_case_limits *lim) {
    if (lim->rows_T <= 0) return;
    c->rows = 0;
    if (c->p.T > lim->rows_T && lim->max_rows > 0) {
        mf_rng r = {c->gen[MF_T_X].seed ^ 0x524f5753u};
        c->rows = 1 + (int)mf_rng_below(&r, (uint32_t)lim->max_rows);
    }
}

mf_size_class mf_case_size_class(const mf_case *c) {
    const mf_moe_params *p = &c->p;
    if (p->H > 512 || p->I > 512) return MF_SIZE_FULL_HI;
    return p->T > 64 ? MF_SIZE_LARGE_T : MF_SIZE_SMALL;
}

const char *mf_size_class_name(mf_size_class s) {
    static const char *n[] = {"small", "large-T", "full-H/I"};
    return (unsigned)s < MF_SIZE_COUNT ? n[s] : "?";
}

/* A model preset's full H and I (within the case format's limits). */
static void full_dims(mf_rng *r, mf_moe_params *p) {
    int n;
    const mf_model *m = mf_model_list(&n);
    const mf_model *pick = &m[mf_rng_below(r, (uint32_t)n)];
    p->H = pick->H < MF_MAX_H ? pick->H : MF_MAX_H;
    p->I = pick->I < MF_MAX_I ? pick->I : MF_MAX_I;
}

int mf_dim_boundary(mf_rng *r, int max) {
    static const int tiles[] = {8, 16, 32, 64, 128, 256, 512, 1024};
    static const int primes[] = {2, 3, 5, 7, 11, 13, 17, 31, 61, 97, 127, 251, 509, 1021};
    int v;
    switch (mf_rng_below(r, 6)) {
    case 0: v = 1 + (int)mf_rng_below(r, 4); break;
    case 1: v = 1 + (int)mf_rng_below(r, 16); break;
    case 2: {
        int t = tiles[mf_rng_below(r, 8)];
        v = t - 1 + (int)mf_rng_below(r, 3); /* tile-1, tile, tile+1 */
        break;
    }
    case 3: v = primes[mf_rng_below(r, 14)]; break;
    case 4: v = 16 * (1 + (int)mf_rng_below(r, 32)); break;
    default: v = 1 + (int)mf_rng_below(r, (uint32_t)max); break;
    }
    if (v > max) v = 1 + (int)mf_rng_below(r, (uint32_t)max);
    return v < 1 ? 1 : v;
}

/* An activation with its parameters: a clamp matters only where pre-activations pass the limit,
 * and with unit-variance inputs most gates are within a few units, so limits are drawn down to
 * 1/4 (and gpt-oss's 7, DeepSeek-V4's 10) */
static void random_activation(mf_rng *r, mf_moe_params *p) {
    static const float limits[] = {0.25f, 0.5f, 1.0f, 1.5f, 2.0f, 7.0f, 10.0f};
    p->activation = (mf_activation)mf_rng_below(r, MF_ACT_COUNT);
    p->act_limit = p->activation == MF_ACT_SILU_GLU ? 0.0f : limits[mf_rng_below(r, 7)];
    p->act_alpha = p->activation != MF_ACT_SWIGLU_OAI ? 0.0f
                   : mf_rng_below(r, 2)                ? 1.702f
                                                        : 0.5f + 0.25f * (float)mf_rng_below(r, 8);
}

static int pick_divisor(mf_rng *r, int E) {
    int d[64], n = 0;
    for (int i = 1; i <= E && n < 64; i++)
        if (E % i == 0) d[n++] = i;
    return d[mf_rng_below(r, (uint32_t)n)];
}

/* ---- quantized weights (weight_format, reference/fp8.h) ---- */

/* The fp8 parameters and the scales' generators only where they mean something, so a bf16
 * case stays a v1 case (v1 does not carry generators of tensors it does not know). */
static void quant_repair(mf_case *c) {
    mf_moe_params *p = &c->p;
    if (p->weight_format == MF_WFMT_FP8_BLOCK) {
        /* the FP8 expert path is SiLU-GLU on stacked halves without expert biases (forward.c
         * fp8_init refuses the rest) */
        p->expert_bias = MF_EBIAS_NONE;
        p->activation = MF_ACT_SILU_GLU;
        p->act_alpha = p->act_limit = 0;
        if (p->layout == MF_LAYOUT_INTERLEAVED) p->layout = MF_LAYOUT_GATE_UP;
    }
    mf_case_fix_v2(c); /* a tensor-parallel slice of fp8 weights: whole scale blocks */
    if (p->weight_format != MF_WFMT_FP8_BLOCK) {
        p->block_n = p->block_k = 0;
        p->scale_format = MF_SCALE_F32;
        memset(&c->gen[MF_T_W13_S], 0, sizeof c->gen[MF_T_W13_S]);
        memset(&c->gen[MF_T_W2_S], 0, sizeof c->gen[MF_T_W2_S]);
    }
    /* no pokes into an absent tensor that v1 does not know */
    int n = 0;
    for (int i = 0; i < c->n_pokes; i++)
        if (c->pokes[i].tensor <= MF_T_W2 ||
            mf_tensor_present(p, (mf_tensor_id)c->pokes[i].tensor))
            c->pokes[n++] = c->pokes[i];
    c->n_pokes = n;
}

/* Shared experts (level 4): 1 to 3 of a small intermediate size, any weight form; under expert
 * parallelism owned by this rank or by another one. */
static void random_shared(mf_rng *r, mf_moe_params *p) {
    p->n_shared = 1 + (int)mf_rng_below(r, 3);
    p->shared_I = 1 + (int)mf_rng_below(r, 64);
    p->shared_weight = (mf_shared_weight)mf_rng_below(r, MF_SHW_COUNT);
    p->shared_owner = p->E_local < p->E ? (mf_shared_owner)mf_rng_below(r, MF_SHOWN_COUNT)
                                        : MF_SHOWN_THIS_RANK;
}

/* A weight format, sometimes: 1 in 6 cases fp8_block (blocks of 16 to 128 rows and columns,
 * either scale format), 1 in 12 mxfp4. */
static void draw_quant(mf_rng *r, mf_moe_params *p) {
    static const int blocks[] = {16, 32, 64, 128};
    uint32_t roll = mf_rng_below(r, 12);
    p->weight_format = roll < 2 ? MF_WFMT_FP8_BLOCK : roll < 3 ? MF_WFMT_MXFP4 : MF_WFMT_BF16;
    if (p->weight_format != MF_WFMT_FP8_BLOCK) return;
    p->block_n = blocks[mf_rng_below(r, 4)];
    p->block_k = blocks[mf_rng_below(r, 4)];
    p->scale_format = (mf_scale_format)mf_rng_below(r, MF_SCALE_COUNT);
}

/* Pokes that aim the activation quantizer at its boundaries: a group's amax at 448 2^k (1 + d
 * 2^-7), d in {-1, 0, 1} (where the UE8M0 scale rounds up or not; at d = 0 the fp32 scale is
 * 2^k, exact), and an element at an e4m3 midpoint times 2^k (a tie of the cast). */
static void aim_quant(mf_rng *r, mf_case *c) {
    const mf_moe_params *p = &c->p;
    if (p->weight_format != MF_WFMT_FP8_BLOCK) return;
    int bk = mf_block_k(p), groups = (p->H + bk - 1) / bk;
    int n = 1 + (int)mf_rng_below(r, 3);
    for (int i = 0; i < n && c->n_pokes + 2 <= MF_MAX_POKES; i++) {
        int t = (int)mf_rng_below(r, (uint32_t)p->T), g = (int)mf_rng_below(r, (uint32_t)groups);
        int width = p->H - g * bk < bk ? p->H - g * bk : bk;
        int k = -12 + (int)mf_rng_below(r, 8); /* amax 448 2^k from 0.11 to 14 */
        int d = (int)mf_rng_below(r, 3) - 1;
        float amax = ldexpf(448.0f * (1.0f + (float)d * 0x1p-7f), k);
        if (mf_rng_below(r, 2)) amax = -amax;
        size_t row = (size_t)t * p->H + (size_t)g * bk;
        mf_poke *k1 = &c->pokes[c->n_pokes++];
        k1->tensor = MF_T_X;
        k1->index = (uint32_t)(row + mf_rng_below(r, (uint32_t)width));
        k1->bits = mf_f32_bits(amax) >> 16; /* bf16: 8 significant bits hold 1 + 2^-7 */
        /* e4m3 midpoints (m + 1/2) 2^(e-3), e.g. 1.0625 between 1 and 1.125 */
        float mid = ldexpf((float)(17 + 2 * (int)mf_rng_below(r, 7)) / 16.0f,
                           k - (int)mf_rng_below(r, 8));
        mf_poke *k2 = &c->pokes[c->n_pokes++];
        k2->tensor = MF_T_X;
        k2->index = (uint32_t)(row + mf_rng_below(r, (uint32_t)width));
        k2->bits = mf_f32_bits(mf_rng_below(r, 2) ? mid : -mid) >> 16;
    }
}

void mf_case_repair(mf_case *c) {
    mf_moe_params *p = &c->p;
    mf_case_fix_v2(c);
    if (p->E < 1) p->E = 1;
    if (p->E > MF_MAX_E) p->E = MF_MAX_E;
    if (p->top_k < 1) p->top_k = 1;
    if (p->top_k > p->E) p->top_k = p->E;
    if (p->top_k > MF_MAX_K) p->top_k = MF_MAX_K;
    if (p->n_group < 1 || p->E % p->n_group != 0) p->n_group = 1;
    if (p->topk_group < 1) p->topk_group = 1;
    if (p->topk_group > p->n_group) p->topk_group = p->n_group;
    while (p->topk_group * (p->E / p->n_group) < p->top_k) p->topk_group++;
    if (p->E_local < 1 || p->E_local > p->E) p->E_local = p->E;
    if (p->expert_offset < 0 || p->expert_offset + p->E_local > p->E)
        p->expert_offset = p->E - p->E_local;
    quant_repair(c);
}

/* A full-size case: H or I above the mix's limits, with at most full_T tokens. */
static int full_class(const mf_case *c, const mf_case_limits *lim) {
    const mf_moe_params *p = &c->p;
    return lim->full_T > 0 && p->T <= lim->full_T && (p->H > lim->max_H || p->I > lim->max_I);
}

/* Bytes of the per-token tensors: x, logits and the output. */
static double token_bytes(const mf_moe_params *p) {
    return (double)p->T * (4.0 * p->H + 4.0 * p->E);
}

void mf_case_fit(mf_case *c, const mf_case_limits *lim) {
    mf_moe_params *p = &c->p;
    if (p->T > lim->max_T) p->T = lim->max_T;
    int full = full_class(c, lim);
    if (p->H > (full ? MF_MAX_H : lim->max_H)) p->H = full ? MF_MAX_H : lim->max_H;
    if (p->I > (full ? MF_MAX_I : lim->max_I)) p->I = full ? MF_MAX_I : lim->max_I;
    if (p->E > lim->max_E) {
        p->E = lim->max_E;
        mf_case_repair(c);
    }
    double max_work = full ? lim->max_work_full : lim->max_work;
    double max_bytes = full ? lim->max_bytes_full : lim->max_bytes;
    for (int guard = 0; guard < 64; guard++) {
        mf_case_rows(c, lim);
        double kernel = (double)p->T * p->top_k * 3.0 * p->H * p->I;
        int over_work = mf_case_work(c) > max_work || (c->rows && kernel > 16 * lim->max_work);
        int over_bytes = mf_case_bytes(c) > max_bytes;
        if (!over_work && !over_bytes) break;
        if (over_work && full && p->top_k > 1) {
            p->top_k = (p->top_k + 1) / 2;
            mf_case_repair(c);
        } else if ((over_work || (over_bytes && token_bytes(p) > mf_case_bytes(c) / 2)) &&
                   p->T > 1)
            p->T = (p->T + 1) / 2;
        else if (p->H >= p->I && p->H > 1) p->H = (p->H + 1) / 2;
        else if (p->I > 1) p->I = (p->I + 1) / 2;
        else if (p->E_local > 1) {
            p->E_local = (p->E_local + 1) / 2;
            mf_case_repair(c);
        } else break;
    }
    mf_case_rows(c, lim);
    mf_case_fix_v2(c); /* a halved I may cut a tensor-parallel fp8 slice off its scale blocks */
}

int mf_case_fits(const mf_case *c, const mf_case_limits *lim) {
    const mf_moe_params *p = &c->p;
    int full = full_class(c, lim);
    double kernel = (double)p->T * p->top_k * 3.0 * p->H * p->I;
    return p->T <= lim->max_T && p->E <= lim->max_E &&
           p->H <= (full ? MF_MAX_H : lim->max_H) && p->I <= (full ? MF_MAX_I : lim->max_I) &&
           mf_case_work(c) <= (full ? lim->max_work_full : lim->max_work) &&
           mf_case_bytes(c) <= (full ? lim->max_bytes_full : lim->max_bytes) &&
           (!c->rows || kernel <= 16 * lim->max_work);
}

/* A tensor to poke: any of v1's, a later one only where the case has it (a poke of an absent
 * tensor changes nothing but would need format v2) */
static int poke_tensor(mf_rng *r, const mf_moe_params *p) {
    int t = (int)mf_rng_below(r, MF_NUM_TENSORS);
    if (mf_tensor_level((mf_tensor_id)t) > 1 && !mf_tensor_present(p, (mf_tensor_id)t))
        t = MF_T_X;
    /* a special value in the expert map is no placement map (a bad case): its hard cases are
     * its generator classes */
    if (t == MF_T_EXPERT_MAP) t = MF_T_X;
    return t;
}

static const uint32_t special_bf16[] = {0x0000, 0x8000, 0x0001, 0x0080, 0x7f7f, 0xff7f,
                                        0x7f80, 0xff80, 0x7fc0, 0x3f80, 0xbf80, 0x3f81};

static void random_preroute(uint64_t h, mf_case *c);
static void random_placement(uint64_t h, mf_case *c);
static void random_tp(uint64_t h, mf_case *c, const mf_case_limits *lim);

void mf_case_random(mf_rng *r, const mf_case_limits *lim, mf_case *c) {
    mf_case_default(c);
    mf_moe_params *p = &c->p;
    static const int Es[] = {1, 2, 3, 4, 6, 8, 12, 16, 32, 48, 64, 72, 128, 160, 256};
    p->E = mf_rng_below(r, 3) ? Es[mf_rng_below(r, 15)] : mf_dim_boundary(r, lim->max_E);
    if (p->E > lim->max_E) p->E = lim->max_E;
    int kmax = p->E < MF_MAX_K ? p->E : MF_MAX_K;
    static const int ks[] = {1, 2, 4, 6, 8};
    p->top_k = mf_rng_below(r, 2) ? ks[mf_rng_below(r, 5)] : 1 + (int)mf_rng_below(r, (uint32_t)kmax);
    if (p->top_k > kmax) p->top_k = kmax;
    p->score = (mf_score_fn)mf_rng_below(r, 2); /* v1's; sqrt_softplus with the v2 draws */
    p->bias = (mf_bias_kind)mf_rng_below(r, MF_BIAS_COUNT);
    p->group_rule = (mf_group_rule)mf_rng_below(r, MF_GROUP_COUNT);
    p->n_group = mf_rng_below(r, 3) ? pick_divisor(r, p->E) : 1;
    p->topk_group = 1 + (int)mf_rng_below(r, (uint32_t)p->n_group);
    if (mf_rng_below(r, 8) == 0) p->topk_group = p->n_group;
    p->E_local = p->E;
    p->expert_offset = 0;
    if (mf_rng_below(r, 10) < 3) {
        p->E_local = 1 + (int)mf_rng_below(r, (uint32_t)p->E);
        p->expert_offset = (int)mf_rng_below(r, (uint32_t)(p->E - p->E_local + 1));
    }
    p->renormalize = (int)mf_rng_below(r, 2);
    p->renorm_eps = mf_rng_below(r, 2) ? 1e-20f : 0.0f;
    if (mf_rng_below(r, 4)) p->rsf = mf_rsf_table[mf_rng_below(r, MF_RSF_TABLE_SIZE)];
    else p->rsf = 0.25f + (float)mf_rng_below(r, 1 << 12) * (15.75f / 4096.0f);
    p->rsf_site = (mf_rsf_site)mf_rng_below(r, MF_RSF_COUNT);
    p->layout = (mf_layout)mf_rng_below(r, 2); /* v1's; interleaved with the v2 draws */
    p->logits_dtype = (mf_dtype)mf_rng_below(r, MF_DTYPE_COUNT);
    int v2_draws = mf_rng_below(r, 4) == 0;
    if (v2_draws) { /* case format v2's routing parameters */
        p->renorm_denom = (mf_renorm_denom)mf_rng_below(r, MF_RENORM_COUNT);
        p->nonfinite = (mf_nonfinite)mf_rng_below(r, MF_NONFINITE_COUNT);
        p->expert_bias = (mf_expert_bias)mf_rng_below(r, MF_EBIAS_COUNT);
        random_activation(r, p);
        if (mf_rng_below(r, 3) == 0) p->layout = MF_LAYOUT_INTERLEAVED;
        if (mf_rng_below(r, 3) == 0) p->score = MF_SCORE_SQRT_SOFTPLUS;
        if (mf_rng_below(r, 3) == 0) random_shared(r, p);
    }
    p->T = mf_dim_boundary(r, lim->max_T);
    p->H = mf_dim_boundary(r, lim->max_H);
    p->I = mf_dim_boundary(r, lim->max_I);
    if (lim->full_T > 0 && mf_rng_below(r, 256) == 0) {
        p->T = 1 + (int)mf_rng_below(r, (uint32_t)lim->full_T);
        full_dims(r, p);
    }
    draw_quant(r, p);
    mf_case_repair(c);
    /* generators: mostly the realistic default, every class reachable (the pre-routed
     * tensors' below, from a seed's bits, so that every other draw stays as it was) */
    for (int t = 0; t < MF_T_TOPK_IDS_IN; t++) {
        mf_gen *g = &c->gen[t];
        g->seed = mf_rng_next(r);
        g->scale = 0;
        uint32_t roll = mf_rng_below(r, 16);
        if (t == MF_T_LOGITS) {
            static const uint8_t lc[] = {MF_GEN_NORMAL, MF_GEN_TIES, MF_GEN_NEAR_TIES,
                                         MF_GEN_NEGATIVE, MF_GEN_UNDERFLOW, MF_GEN_UNIFORM,
                                         MF_GEN_INTEGER, MF_GEN_HEAVY};
            g->cls = roll < 8 ? MF_GEN_NORMAL : lc[mf_rng_below(r, 8)];
            if (mf_rng_below(r, 4) == 0) g->scale = (float)(1u << mf_rng_below(r, 4));
        } else if (t == MF_T_BIAS) {
            static const uint8_t bc[] = {MF_GEN_NORMAL, MF_GEN_LARGE_POS, MF_GEN_LARGE_NEG,
                                         MF_GEN_UNIFORM, MF_GEN_TIES, MF_GEN_INTEGER};
            g->cls = roll < 8 ? MF_GEN_NORMAL : bc[mf_rng_below(r, 6)];
        } else {
            g->cls = roll < 10 ? MF_GEN_NORMAL : (uint8_t)mf_rng_below(r, 5);
            if (g->cls == MF_GEN_INTEGER) g->scale = 0.125f;
        }
    }
    /* pokes of special values, sometimes */
    c->n_pokes = 0;
    if (mf_rng_below(r, 10) == 0) {
        int n = 1 + (int)mf_rng_below(r, 3);
        for (int i = 0; i < n; i++) {
            mf_poke *k = &c->pokes[c->n_pokes++];
            k->tensor = (uint8_t)poke_tensor(r, p);
            k->index = (uint32_t)mf_rng_next(r);
            uint32_t b16 = special_bf16[mf_rng_below(r, 12)];
            k->bits = mf_tensor_is_bf16(p, (mf_tensor_id)k->tensor) ? b16 : b16 << 16;
        }
    }
    /* the policy that zeroes non-finite scores matters only where a logit is NaN or infinite */
    if (p->nonfinite == MF_NONFINITE_ZERO && c->n_pokes < MF_MAX_POKES && mf_rng_below(r, 2)) {
        static const uint32_t nonfinite_f32[] = {0x7fc00000u, 0x7f800000u, 0xff800000u};
        mf_poke *k = &c->pokes[c->n_pokes++];
        k->tensor = MF_T_LOGITS;
        k->index = (uint32_t)mf_rng_next(r);
        k->bits = nonfinite_f32[mf_rng_below(r, 3)];
        if (p->logits_dtype == MF_DTYPE_BF16) k->bits >>= 16;
    }
    mf_case_fit(c, lim);
    quant_repair(c);
    aim_quant(r, c);
    mf_case_fit(c, lim); /* aim_quant's pokes are distinct rows: the work may have grown */
    /* routing variants (ABI level 5), in a quarter of the v2 draws: decided by bits of a seed
     * drawn above, so that every other draw, and every case without them, stays as it was */
    uint64_t h = c->gen[MF_T_W2].seed;
    if (v2_draws && (h >> 62) == 0) {
        if ((h >> 61) & 1) p->score = MF_SCORE_NONE; /* FlashInfer's TopK */
        else p->weight_on_input = 1, p->top_k = (h >> 60) & 1 ? 1 : p->top_k;
        mf_case_repair(c);
    }
    /* pre-routed input (ABI level 6), in an eighth of the v2 draws, the same way */
    if (v2_draws && ((h >> 56) & 7) == 0) random_preroute(h, c);
    /* an expert map (ABI level 7), in a quarter of the v2 draws, the same way */
    if (v2_draws && ((h >> 44) & 3) == 0) random_placement(h, c);
    /* a tensor-parallel shard (ABI level 8), in an eighth of the v2 draws, from bits of their
     * own (independent of the expert map's) */
    uint64_t h2 = (h ^ (h >> 31)) * 0xBF58476D1CE4E5B9ull;
    if (v2_draws && ((h >> 46) & 7) == 0) random_tp(h2, c, lim);
}

/* An expert map from the bits of h: this rank's E_local (the drawn one under expert
 * parallelism; without it, E (a permutation) or a uniform count from 1 to E), and the map's
 * generator (src/case.c: uniform placement and order, holes in global order, a reversed block,
 * the routed experts all remote or all local). */
static void random_placement(uint64_t h, mf_case *c) {
    static const uint8_t mc[] = {MF_GEN_NORMAL,   MF_GEN_NORMAL,   MF_GEN_SPARSE,
                                 MF_GEN_TIES,     MF_GEN_NEGATIVE, MF_GEN_LARGE_POS,
                                 MF_GEN_NEGATIVE, MF_GEN_LARGE_POS};
    mf_moe_params *p = &c->p;
    p->placement = MF_PLACEMENT_MAP;
    p->expert_offset = 0;
    if (p->E_local == p->E && ((h >> 43) & 1)) p->E_local = 1 + (int)((h >> 24) % (uint64_t)p->E);
    mf_gen *g = &c->gen[MF_T_EXPERT_MAP];
    g->cls = mc[(h >> 40) & 7];
    g->scale = 0;
    g->seed = h * 0x94D049BB133111EBull + 3;
}

/* A tensor-parallel rank from the bits of h: 2 to 8 ranks, any rank, and in a quarter of the
 * draws a shard of one or two intermediate columns (the case's I is the rank's width; fp8
 * weights get whole scale blocks). */
static void random_tp(uint64_t h, mf_case *c, const mf_case_limits *lim) {
    mf_moe_params *p = &c->p;
    p->tp_size = 2 + (int)((h >> 40) % 7);
    p->tp_rank = (int)((h >> 36) % (uint64_t)p->tp_size);
    if (((h >> 34) & 3) == 0) {
        p->I = 1 + (int)((h >> 33) & 1);
        if (p->n_shared) p->shared_I = p->I;
    }
    if (p->weight_format == MF_WFMT_FP8_BLOCK) {
        int b = mf_block_n(p) > mf_block_k(p) ? mf_block_n(p) : mf_block_k(p);
        p->I = b * (1 + (p->I - 1) / b);
    }
    mf_case_repair(c);
    mf_case_fit(c, lim);
}

/* Pre-routed input from the bits of h: the weights' dtype, the ids' generator (the case's own
 * routing, or its hard cases: empty slots, rows of -1 only, repeated ids, uniform ids of any
 * rank; src/case.c) and the weights' (the routing's, or signed, zero, negative, any sum). */
static void random_preroute(uint64_t h, mf_case *c) {
    static const uint8_t ic[] = {MF_GEN_NORMAL, MF_GEN_NORMAL, MF_GEN_SPARSE, MF_GEN_NEGATIVE,
                                 MF_GEN_TIES,   MF_GEN_UNIFORM, MF_GEN_SPARSE, MF_GEN_TIES};
    static const uint8_t wc[] = {MF_GEN_NORMAL,  MF_GEN_NORMAL,   MF_GEN_NORMAL,
                                 MF_GEN_UNIFORM, MF_GEN_SPARSE,   MF_GEN_NEGATIVE,
                                 MF_GEN_INTEGER, MF_GEN_HEAVY};
    c->p.preroute = (h >> 55) & 1 ? MF_PREROUTE_BF16 : MF_PREROUTE_F32;
    mf_gen *gi = &c->gen[MF_T_TOPK_IDS_IN], *gw = &c->gen[MF_T_TOPK_WEIGHTS_IN];
    gi->cls = ic[(h >> 52) & 7];
    gw->cls = wc[(h >> 49) & 7];
    gi->scale = gw->scale = 0;
    gi->seed = h * 0x9E3779B97F4A7C15ull + 1;
    gw->seed = h * 0xD1B54A32D192ED03ull + 2;
}

/* ---- structured mutation ---- */

static void mutate_routing(mf_case *c, mf_rng *r) {
    mf_moe_params *p = &c->p;
    switch (mf_rng_below(r, 14)) {
    case 13:
        switch (mf_rng_below(r, 4)) {
        case 0: p->expert_bias = (mf_expert_bias)((p->expert_bias + 1) % MF_EBIAS_COUNT); break;
        case 1: random_activation(r, p); break;
        case 2:
            /* a pre-routed case loses its given routing (its generators drop out), another
             * toggles the weight on the input: the draws of every case without pre-routed
             * input stay as they were */
            if (p->preroute) p->preroute = MF_PREROUTE_NONE;
            else p->weight_on_input = !p->weight_on_input;
            break;
        default:
            if (p->n_shared) p->n_shared = 0; /* mf_case_repair clears the rest */
            else random_shared(r, p);
        }
        break;
    case 11: p->renorm_denom = (mf_renorm_denom)((p->renorm_denom + 1) % MF_RENORM_COUNT); break;
    case 12: p->nonfinite = (mf_nonfinite)((p->nonfinite + 1) % MF_NONFINITE_COUNT); break;
    case 0: p->score = (mf_score_fn)((p->score + 1) % MF_SCORE_COUNT); break;
    case 1:
        p->bias = (mf_bias_kind)((p->bias + 1 + mf_rng_below(r, MF_BIAS_COUNT - 1)) % MF_BIAS_COUNT);
        break;
    case 2: p->group_rule = (mf_group_rule)((p->group_rule + 1) % MF_GROUP_COUNT); break;
    case 3: p->renormalize = !p->renormalize; break;
    case 4: p->renorm_eps = p->renorm_eps != 0 ? 0.0f : 1e-20f; break;
    case 5:
        p->rsf = mf_rng_below(r, 2) ? mf_rsf_table[mf_rng_below(r, MF_RSF_TABLE_SIZE)]
                                    : 0.25f + (float)mf_rng_below(r, 1 << 12) * (15.75f / 4096);
        break;
    case 6: p->rsf_site = (mf_rsf_site)((p->rsf_site + 1) % MF_RSF_COUNT); break;
    case 7: p->layout = (mf_layout)((p->layout + 1) % MF_LAYOUT_COUNT); break;
    case 8:
        if (mf_rng_below(r, 2)) p->logits_dtype = (mf_dtype)((p->logits_dtype + 1) % MF_DTYPE_COUNT);
        else draw_quant(r, p);
        break;
    case 9: /* groups */
        p->n_group = pick_divisor(r, p->E);
        p->topk_group = 1 + (int)mf_rng_below(r, (uint32_t)p->n_group);
        break;
    default: /* expert parallelism */
        if (mf_rng_below(r, 3) == 0) {
            p->E_local = p->E;
            p->expert_offset = 0;
        } else {
            p->E_local = 1 + (int)mf_rng_below(r, (uint32_t)p->E);
            p->expert_offset = (int)mf_rng_below(r, (uint32_t)(p->E - p->E_local + 1));
        }
        break;
    }
}

static void mutate_dims(mf_case *c, mf_rng *r, const mf_case_limits *lim) {
    mf_moe_params *p = &c->p;
    if (lim->full_T > 0 && mf_rng_below(r, 128) == 0) { /* a model's H and I, a few tokens */
        p->T = 1 + (int)mf_rng_below(r, (uint32_t)lim->full_T);
        full_dims(r, p);
        return;
    }
    switch (mf_rng_below(r, 6)) {
    case 0: p->T = mf_dim_boundary(r, lim->max_T); break;
    case 1: p->H = mf_dim_boundary(r, lim->max_H); break;
    case 2: p->I = mf_dim_boundary(r, lim->max_I); break;
    case 3: {
        static const int Es[] = {1, 2, 4, 8, 16, 32, 64, 128, 160, 256};
        p->E = mf_rng_below(r, 2) ? Es[mf_rng_below(r, 10)] : mf_dim_boundary(r, lim->max_E);
        if (p->E > lim->max_E) p->E = lim->max_E;
        p->E_local = p->E;
        p->expert_offset = 0;
        break;
    }
    case 4: {
        int kmax = p->E < MF_MAX_K ? p->E : MF_MAX_K;
        p->top_k = 1 + (int)mf_rng_below(r, (uint32_t)kmax);
        break;
    }
    default: p->topk_group = 1 + (int)mf_rng_below(r, (uint32_t)p->n_group); break;
    }
}

static void mutate_data(mf_case *c, mf_rng *r) {
    /* weights are reseeded rarely: they are the expensive tensors to regenerate */
    static const uint8_t pick[] = {MF_T_X, MF_T_X, MF_T_LOGITS, MF_T_LOGITS, MF_T_LOGITS,
                                   MF_T_BIAS, MF_T_BIAS, MF_T_W13, MF_T_W2};
    mf_gen *g = &c->gen[pick[mf_rng_below(r, sizeof pick)]];
    switch (mf_rng_below(r, 4)) {
    case 0:
    case 1: g->seed = mf_rng_next(r); break;
    case 2: g->cls = (uint8_t)mf_rng_below(r, MF_GEN_COUNT); break;
    default: {
        static const float scales[] = {0.0f, 0.25f, 0.5f, 1.0f, 2.0f, 4.0f, 8.0f, 0.125f};
        g->scale = scales[mf_rng_below(r, 8)];
        break;
    }
    }
}

static void mutate_pokes(mf_case *c, mf_rng *r) {
    if (c->n_pokes > 0 && mf_rng_below(r, 3) == 0) {
        int i = (int)mf_rng_below(r, (uint32_t)c->n_pokes);
        if (mf_rng_below(r, 2)) {
            c->pokes[i] = c->pokes[--c->n_pokes]; /* remove */
        } else {
            c->pokes[i].index = (uint32_t)mf_rng_next(r); /* move */
        }
        return;
    }
    if (c->n_pokes >= MF_MAX_POKES) return;
    mf_poke *k = &c->pokes[c->n_pokes++];
    k->tensor = (uint8_t)poke_tensor(r, &c->p);
    k->index = (uint32_t)mf_rng_next(r);
    uint32_t b16 = special_bf16[mf_rng_below(r, 12)];
    k->bits = mf_tensor_is_bf16(&c->p, (mf_tensor_id)k->tensor) ? b16 : b16 << 16;
}

void mf_case_mutate(mf_case *c, mf_rng *r, const mf_case_limits *lim) {
    /* one to three field changes, stacked */
    int n = 1 + (int)mf_rng_below(r, 3);
    for (int i = 0; i < n; i++) {
        uint32_t roll = mf_rng_below(r, 16);
        if (roll < 6) mutate_routing(c, r);
        else if (roll < 9) mutate_dims(c, r, lim);
        else if (roll < 14) mutate_data(c, r);
        else mutate_pokes(c, r);
    }
    mf_case_repair(c);
    mf_case_fit(c, lim);
}

void mf_case_crossover(const mf_case *a, const mf_case *b, mf_rng *r, const mf_case_limits *lim,
                       mf_case *out) {
    if (mf_rng_below(r, 2)) {
        /* shape and routing from a, data from b */
        *out = *a;
        for (int t = 0; t < MF_NUM_TENSORS; t++) out->gen[t] = b->gen[t];
        out->n_pokes = b->n_pokes;
        for (int i = 0; i < b->n_pokes; i++) out->pokes[i] = b->pokes[i];
    } else {
        /* field-wise mix of the routing, dimensions from a */
        *out = *a;
        mf_moe_params *p = &out->p;
        const mf_moe_params *q = &b->p;
        if (mf_rng_below(r, 2)) p->score = q->score;
        if (mf_rng_below(r, 2)) p->bias = q->bias;
        if (mf_rng_below(r, 2))
            p->renormalize = q->renormalize, p->renorm_eps = q->renorm_eps,
            p->renorm_denom = q->renorm_denom;
        if (mf_rng_below(r, 2)) p->nonfinite = q->nonfinite;
        if (mf_rng_below(r, 2)) p->expert_bias = q->expert_bias;
        if (mf_rng_below(r, 2)) {
            p->n_shared = q->n_shared, p->shared_I = q->shared_I;
            p->shared_weight = q->shared_weight, p->shared_owner = q->shared_owner;
            out->gen[MF_T_SW13] = b->gen[MF_T_SW13], out->gen[MF_T_SW2] = b->gen[MF_T_SW2];
            out->gen[MF_T_SHARED_GATE] = b->gen[MF_T_SHARED_GATE];
        }
        if (mf_rng_below(r, 2))
            p->activation = q->activation, p->act_limit = q->act_limit, p->act_alpha = q->act_alpha;
        if (mf_rng_below(r, 2)) p->rsf = q->rsf, p->rsf_site = q->rsf_site;
        if (mf_rng_below(r, 2)) p->layout = q->layout;
        if (mf_rng_below(r, 2)) p->logits_dtype = q->logits_dtype;
        if (mf_rng_below(r, 2)) out->gen[MF_T_LOGITS] = b->gen[MF_T_LOGITS];
        if (mf_rng_below(r, 2)) out->gen[MF_T_BIAS] = b->gen[MF_T_BIAS];
        if ((p->preroute || q->preroute) && mf_rng_below(r, 2)) {
            p->preroute = q->preroute;
            out->gen[MF_T_TOPK_IDS_IN] = b->gen[MF_T_TOPK_IDS_IN];
            out->gen[MF_T_TOPK_WEIGHTS_IN] = b->gen[MF_T_TOPK_WEIGHTS_IN];
        }
        if (p->placement != q->placement && p->E == q->E && mf_rng_below(r, 2)) {
            p->placement = q->placement, p->E_local = q->E_local;
            p->expert_offset = q->expert_offset;
            out->gen[MF_T_EXPERT_MAP] = b->gen[MF_T_EXPERT_MAP];
        }
    }
    mf_case_repair(out);
    mf_case_fit(out, lim);
}
