/* case.c: case defaults, validation, and bit-reproducible tensor generation (see case.h).
 *
 * Generators use a counter-based hash (element i of a splitmix64 stream) and only IEEE basic
 * operations, so every machine produces the same bits: value = RN_bf16(RN_fp32(v)) for bf16
 * tensors, RN_fp32(v) for fp32 tensors, with v computed in double.
 */
#include "case.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "bf16.h"

void mf_case_default(mf_case *c) {
    memset(c, 0, sizeof *c);
    mf_moe_params *p = &c->p;
    p->T = 4;
    p->H = 64;
    p->I = 32;
    p->E = 16;
    p->E_local = 16;
    p->expert_offset = 0;
    p->top_k = 4;
    p->score = MF_SCORE_SIGMOID;
    p->bias = MF_BIAS_F32;
    p->n_group = 4;
    p->topk_group = 2;
    p->group_rule = MF_GROUP_TOP2_SUM;
    p->renormalize = 1;
    p->renorm_eps = 1e-20f;
    p->rsf = 2.5f;
    p->rsf_site = MF_RSF_WEIGHTS;
    p->activation = MF_ACT_SILU_GLU;
    p->layout = MF_LAYOUT_GATE_UP;
    p->logits_dtype = MF_DTYPE_F32;
    for (int t = 0; t < MF_NUM_TENSORS; t++) {
        c->gen[t].cls = MF_GEN_NORMAL;
        c->gen[t].scale = 0; /* default scale */
        c->gen[t].seed = 0x1000u + (uint64_t)t;
    }
}

mf_status mf_case_validate(const mf_case *c, mf_error *err) {
    const mf_moe_params *p = &c->p;
#define CHECK(cond, ...) \
    if (!(cond)) return MF_FAIL(err, MF_EINVAL, __VA_ARGS__)
    CHECK(p->T >= 1 && p->T <= MF_MAX_T, "T=%d outside [1, %d]", p->T, MF_MAX_T);
    CHECK(p->H >= 1 && p->H <= MF_MAX_H, "H=%d outside [1, %d]", p->H, MF_MAX_H);
    CHECK(p->I >= 1 && p->I <= MF_MAX_I, "I=%d outside [1, %d]", p->I, MF_MAX_I);
    CHECK(p->E >= 1 && p->E <= MF_MAX_E, "E=%d outside [1, %d]", p->E, MF_MAX_E);
    CHECK(p->E_local >= 1 && p->E_local <= p->E, "E_local=%d outside [1, E=%d]", p->E_local,
          p->E);
    CHECK(p->expert_offset >= 0 && p->expert_offset + p->E_local <= p->E,
          "expert_offset=%d with E_local=%d exceeds E=%d", p->expert_offset, p->E_local, p->E);
    CHECK(p->top_k >= 1 && p->top_k <= p->E && p->top_k <= MF_MAX_K,
          "top_k=%d outside [1, min(E=%d, %d)]", p->top_k, p->E, MF_MAX_K);
    CHECK(p->score == MF_SCORE_SOFTMAX || p->score == MF_SCORE_SIGMOID, "bad score function");
    CHECK(p->bias >= MF_BIAS_NONE && p->bias <= MF_BIAS_BF16, "bad bias kind");
    CHECK(p->n_group >= 1 && p->E % p->n_group == 0, "n_group=%d does not divide E=%d",
          p->n_group, p->E);
    CHECK(p->topk_group >= 1 && p->topk_group <= p->n_group, "topk_group=%d outside [1, %d]",
          p->topk_group, p->n_group);
    CHECK(p->topk_group * (p->E / p->n_group) >= p->top_k,
          "topk_group=%d groups of %d experts cannot hold top_k=%d", p->topk_group,
          p->E / p->n_group, p->top_k);
    CHECK(p->group_rule == MF_GROUP_TOP2_SUM || p->group_rule == MF_GROUP_MAX, "bad group rule");
    CHECK(p->renormalize == 0 || p->renormalize == 1, "renormalize must be 0 or 1");
    CHECK(p->renorm_eps == 0.0f || p->renorm_eps == 1e-20f, "eps must be 0 or 1e-20");
    CHECK(isfinite(p->rsf) && p->rsf > 0, "rsf=%g must be finite and positive", (double)p->rsf);
    CHECK(p->rsf_site == MF_RSF_WEIGHTS || p->rsf_site == MF_RSF_OUTPUT, "bad rsf site");
    CHECK(p->activation == MF_ACT_SILU_GLU, "bad activation");
    CHECK(p->layout == MF_LAYOUT_GATE_UP || p->layout == MF_LAYOUT_UP_GATE, "bad layout");
    CHECK(p->logits_dtype == MF_DTYPE_F32 || p->logits_dtype == MF_DTYPE_BF16, "bad logits dtype");
    for (int t = 0; t < MF_NUM_TENSORS; t++) {
        const mf_gen *g = &c->gen[t];
        CHECK(g->cls < MF_GEN_COUNT, "generator class %d of %s unknown", g->cls,
              mf_tensor_name((mf_tensor_id)t));
        CHECK(isfinite(g->scale) && g->scale >= 0, "scale of %s must be finite and >= 0",
              mf_tensor_name((mf_tensor_id)t));
    }
    CHECK(c->n_pokes >= 0 && c->n_pokes <= MF_MAX_POKES, "%d pokes, at most %d", c->n_pokes,
          MF_MAX_POKES);
    for (int i = 0; i < c->n_pokes; i++)
        CHECK(c->pokes[i].tensor < MF_NUM_TENSORS, "poke %d: bad tensor", i);
#undef CHECK
    return MF_OK;
}

const char *mf_tensor_name(mf_tensor_id t) {
    static const char *n[] = {"x", "logits", "bias", "w13", "w2"};
    return (unsigned)t < MF_NUM_TENSORS ? n[t] : "?";
}

const char *mf_gen_class_name(mf_gen_class g) {
    static const char *n[] = {"normal",   "uniform",  "heavy",     "sparse",
                              "integer",  "ties",     "near_ties", "negative",
                              "underflow", "large_pos", "large_neg"};
    return (unsigned)g < MF_GEN_COUNT ? n[g] : "?";
}

int mf_tensor_is_bf16(const mf_moe_params *p, mf_tensor_id t) {
    switch (t) {
    case MF_T_X:
    case MF_T_W13:
    case MF_T_W2: return 1;
    case MF_T_LOGITS: return p->logits_dtype == MF_DTYPE_BF16;
    case MF_T_BIAS: return p->bias == MF_BIAS_BF16;
    default: return 0;
    }
}

size_t mf_tensor_elems(const mf_moe_params *p, mf_tensor_id t) {
    switch (t) {
    case MF_T_X: return (size_t)p->T * p->H;
    case MF_T_LOGITS: return (size_t)p->T * p->E;
    case MF_T_BIAS: return (size_t)p->E;
    case MF_T_W13: return (size_t)p->E_local * 2 * p->I * p->H;
    case MF_T_W2: return (size_t)p->E_local * p->H * p->I;
    default: return 0;
    }
}

static size_t tensor_cols(const mf_moe_params *p, mf_tensor_id t) {
    switch (t) {
    case MF_T_X: return (size_t)p->H;
    case MF_T_LOGITS: return (size_t)p->E;
    case MF_T_BIAS: return (size_t)p->E;
    case MF_T_W13: return (size_t)p->H;
    case MF_T_W2: return (size_t)p->I;
    default: return 1;
    }
}

double mf_gen_scale(const mf_moe_params *p, mf_tensor_id t, const mf_gen *g) {
    if (g->scale > 0) return (double)g->scale;
    switch (t) {
    /* defaults are fp32 values, like every scale a case can carry */
    case MF_T_BIAS: return (double)0.1f;
    case MF_T_W13: return (double)(float)(1.0 / sqrt((double)p->H));
    case MF_T_W2: return (double)(float)(1.0 / sqrt((double)p->I));
    default: return 1.0;
    }
}

double mf_case_bytes(const mf_case *c) {
    const mf_moe_params *p = &c->p;
    return 2.0 * ((double)p->T * p->H * 2 + (double)p->E_local * 3 * p->I * p->H) +
           4.0 * ((double)p->T * p->E + p->E);
}

double mf_case_work(const mf_case *c) {
    const mf_moe_params *p = &c->p;
    return (double)p->T * p->top_k * 3.0 * p->H * p->I;
}

/* ---- generation ---- */

static inline uint64_t mix64(uint64_t z) {
    z += 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* Element i of a stream: splitmix64 at index i of the stream whose start is mixed from the seed
 * and a salt (the tensor id, or a sub-stream). */
static inline uint64_t stream_base(uint64_t seed, uint64_t salt) {
    return mix64(seed ^ (salt * 0xD1B54A32D192ED03ull));
}

static inline uint64_t stream_at(uint64_t base, uint64_t i) {
    return mix64(base + i * 0x9E3779B97F4A7C15ull);
}

static inline double u16_01(uint64_t h, int k) { /* in (0, 1), exact */
    return ((double)((h >> (16 * k)) & 0xffffu) + 0.5) * 0x1p-16;
}

static inline double normal_of(uint64_t h) {
    /* Irwin-Hall(4) from the four 16-bit chunks: s/65536 - 2 with s = sum(u_k + 1/2) has
     * variance 1/3; times sqrt(3) gives variance 1. In fp32: the integer is exact, one rounding
     * for the product (0x1.bb67aep-16 = RN_fp32(sqrt(3) / 65536)). */
    int32_t s = (int32_t)((h & 0xffffu) + ((h >> 16) & 0xffffu) + ((h >> 32) & 0xffffu) +
                          ((h >> 48) & 0xffffu)) - 131070;
    return (double)((float)s * 0x1.bb67aep-16f);
}

static inline double unif_pm1(uint64_t h) { return (double)(h >> 11) * 0x1p-52 - 1.0; }

typedef struct gen_streams {
    uint64_t main, rows, nudge; /* element values, per-row tie values, near-tie nudges */
} gen_streams;

static gen_streams streams_of(const mf_gen *g, mf_tensor_id t) {
    gen_streams s = {stream_base(g->seed, (uint64_t)t), stream_base(g->seed, (uint64_t)t + 8),
                     stream_base(g->seed, (uint64_t)t + 16)};
    return s;
}

static inline double gen_value(const mf_gen *g, const gen_streams *st, double scale, size_t i,
                               size_t cols) {
    uint64_t h = stream_at(st->main, i);
    switch ((mf_gen_class)g->cls) {
    case MF_GEN_UNIFORM: return scale * unif_pm1(h);
    case MF_GEN_HEAVY: {
        double u = u16_01(mix64(h), 0);
        return scale * normal_of(h) / (u > 1.0 / 64 ? u : 1.0 / 64);
    }
    case MF_GEN_SPARSE: return (h & 3u) ? 0.0 : scale * normal_of(mix64(h));
    case MF_GEN_INTEGER: return scale * (double)((int)(h % 9u) - 4);
    case MF_GEN_TIES: {
        size_t row = i / cols;
        return scale * normal_of(stream_at(st->rows, (uint64_t)row * 4 + (h & 3u)));
    }
    case MF_GEN_NEAR_TIES: return scale * normal_of(stream_at(st->main, i & ~(size_t)1));
    case MF_GEN_NEGATIVE: return -(2.0 + fabs(normal_of(h))) * scale;
    case MF_GEN_UNDERFLOW: return -(88.0 + 16.0 * u16_01(h, 0));
    case MF_GEN_LARGE_POS: return 12.0 + scale * normal_of(h);
    case MF_GEN_LARGE_NEG: return -12.0 + scale * normal_of(h);
    case MF_GEN_NORMAL:
    default: return scale * normal_of(h);
    }
}

static uint16_t nudge_bf16(uint16_t b, uint64_t h) {
    int n = 1 + (int)(h % 3u);
    for (int k = 0; k < n; k++) b = (h >> 8) & 1 ? mf_bf16_next_up(b) : mf_bf16_next_down(b);
    return b;
}

static float nudge_f32(float f, uint64_t h) {
    int n = 1 + (int)(h % 3u);
    for (int k = 0; k < n; k++) f = nextafterf(f, (h >> 8) & 1 ? INFINITY : -INFINITY);
    return f;
}

static void fill_bf16(const mf_moe_params *p, mf_tensor_id t, const mf_gen *g, uint16_t *dst) {
    size_t n = mf_tensor_elems(p, t), cols = tensor_cols(p, t);
    double scale = mf_gen_scale(p, t, g);
    gen_streams st = streams_of(g, t);
    if (g->cls == MF_GEN_NORMAL) { /* the common case, kept branch-free */
        /* scale and normal are fp32 values: their fp32 product is the double product rounded
         * once, the same value as the general route below */
        float fs = (float)scale;
        for (size_t i = 0; i < n; i++)
            dst[i] = mf_f32_to_bf16(fs * (float)normal_of(stream_at(st.main, i)));
        return;
    }
    for (size_t i = 0; i < n; i++) {
        uint16_t b = mf_f32_to_bf16((float)gen_value(g, &st, scale, i, cols));
        if (g->cls == MF_GEN_NEAR_TIES && (i & 1)) b = nudge_bf16(b, stream_at(st.nudge, i));
        dst[i] = b;
    }
}

static void fill_f32(const mf_moe_params *p, mf_tensor_id t, const mf_gen *g, int as_bf16,
                     float *dst) {
    size_t n = mf_tensor_elems(p, t), cols = tensor_cols(p, t);
    double scale = mf_gen_scale(p, t, g);
    gen_streams st = streams_of(g, t);
    for (size_t i = 0; i < n; i++) {
        float f = (float)gen_value(g, &st, scale, i, cols);
        uint64_t h = stream_at(st.nudge, i);
        if (as_bf16) {
            uint16_t b = mf_f32_to_bf16(f);
            if (g->cls == MF_GEN_NEAR_TIES && (i & 1)) b = nudge_bf16(b, h);
            f = mf_bf16_to_f32(b);
        } else if (g->cls == MF_GEN_NEAR_TIES && (i & 1)) {
            f = nudge_f32(f, h);
        }
        dst[i] = f;
    }
}

void mf_problem_free(mf_problem *pb) {
    if (!pb) return;
    free(pb->x);
    free(pb->w13);
    free(pb->w2);
    free(pb->logits);
    free(pb->bias);
    memset(pb, 0, sizeof *pb);
}

static int same_gen(const mf_gen *a, const mf_gen *b) {
    return a->cls == b->cls && a->seed == b->seed && mf_f32_bits(a->scale) == mf_f32_bits(b->scale);
}

mf_status mf_problem_update(const mf_case *c, mf_problem *pb, mf_error *err) {
    MF_TRY(mf_case_validate(c, err));
    const mf_moe_params *p = &c->p;
    /* undo the pokes of the previous case on the weights */
    for (int i = pb->n_saved - 1; i >= 0; i--) *pb->saved[i].at = pb->saved[i].old;
    pb->n_saved = 0;
    int keep = pb->w13 && pb->w2 && pb->w_dims[0] == p->E_local && pb->w_dims[1] == p->I &&
               pb->w_dims[2] == p->H && same_gen(&pb->w_gen[0], &c->gen[MF_T_W13]) &&
               same_gen(&pb->w_gen[1], &c->gen[MF_T_W2]);
    free(pb->x);
    free(pb->logits);
    free(pb->bias);
    pb->x = NULL, pb->logits = NULL, pb->bias = NULL;
    if (!keep) {
        free(pb->w13);
        free(pb->w2);
        pb->w13 = malloc(mf_tensor_elems(p, MF_T_W13) * 2);
        pb->w2 = malloc(mf_tensor_elems(p, MF_T_W2) * 2);
        pb->w_dims[0] = -1; /* invalid until filled */
    }
    pb->p = *p;
    pb->x = malloc(mf_tensor_elems(p, MF_T_X) * 2);
    pb->logits = malloc(mf_tensor_elems(p, MF_T_LOGITS) * 4);
    pb->bias = malloc(mf_tensor_elems(p, MF_T_BIAS) * 4);
    if (!pb->x || !pb->w13 || !pb->w2 || !pb->logits || !pb->bias) {
        mf_problem_free(pb);
        return MF_FAIL(err, MF_ENOMEM, "out of memory for the tensors of a %.1f MiB case",
                       mf_case_bytes(c) / 1048576.0);
    }
    if (!keep) {
        fill_bf16(p, MF_T_W13, &c->gen[MF_T_W13], pb->w13);
        fill_bf16(p, MF_T_W2, &c->gen[MF_T_W2], pb->w2);
        pb->w_gen[0] = c->gen[MF_T_W13];
        pb->w_gen[1] = c->gen[MF_T_W2];
        pb->w_dims[0] = p->E_local, pb->w_dims[1] = p->I, pb->w_dims[2] = p->H;
    }
    fill_bf16(p, MF_T_X, &c->gen[MF_T_X], pb->x);
    fill_f32(p, MF_T_LOGITS, &c->gen[MF_T_LOGITS], p->logits_dtype == MF_DTYPE_BF16, pb->logits);
    fill_f32(p, MF_T_BIAS, &c->gen[MF_T_BIAS], p->bias == MF_BIAS_BF16, pb->bias);
    for (int i = 0; i < c->n_pokes; i++) {
        const mf_poke *k = &c->pokes[i];
        mf_tensor_id t = (mf_tensor_id)k->tensor;
        size_t n = mf_tensor_elems(p, t);
        size_t at = (size_t)k->index % n;
        uint16_t b16 = (uint16_t)(k->bits & 0xffffu);
        uint16_t *w = t == MF_T_W13 ? &pb->w13[at] : t == MF_T_W2 ? &pb->w2[at] : NULL;
        if (w) {
            pb->saved[pb->n_saved].at = w;
            pb->saved[pb->n_saved].old = *w;
            pb->n_saved++;
            *w = b16;
            continue;
        }
        switch (t) {
        case MF_T_X: pb->x[at] = b16; break;
        case MF_T_LOGITS:
            pb->logits[at] = mf_tensor_is_bf16(p, t) ? mf_bf16_to_f32(b16)
                                                     : mf_f32_from_bits(k->bits);
            break;
        case MF_T_BIAS:
            pb->bias[at] = mf_tensor_is_bf16(p, t) ? mf_bf16_to_f32(b16)
                                                   : mf_f32_from_bits(k->bits);
            break;
        default: break;
        }
    }
    pb->t.x = pb->x;
    pb->t.logits = pb->logits;
    pb->t.bias = p->bias != MF_BIAS_NONE ? pb->bias : NULL;
    pb->t.w13 = pb->w13;
    pb->t.w2 = pb->w2;
    return MF_OK;
}

mf_status mf_problem_build(const mf_case *c, mf_problem *pb, mf_error *err) {
    memset(pb, 0, sizeof *pb);
    return mf_problem_update(c, pb, err);
}
