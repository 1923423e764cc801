/* case.c: case defaults, validation, and bit-reproducible tensor generation (see case.h).
 *
 * Generators use a counter-based hash (element i of a splitmix64 stream) and only IEEE basic
 * operations, so every machine produces the same bits: value = RN_bf16(RN_fp32(v)) for bf16
 * tensors, RN_fp32(v) for fp32 tensors, with v computed in double.
 */
#include "case.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bf16.h"
#include "contract.h"
#include "fp8.h"
#include "route.h"

/* ---- the parameters of case format v2 ---- */

#define MF_PARAM_V2_ROW_(tag, field, kind, e, lo, hi, level) \
    {tag, #field, MF_PK_##kind, e, lo, hi, level, offsetof(mf_moe_params, field)},
const mf_param_v2 mf_params_v2[] = {MF_PARAM_V2_LIST(MF_PARAM_V2_ROW_)};
#undef MF_PARAM_V2_ROW_
const int mf_n_params_v2 = (int)(sizeof mf_params_v2 / sizeof mf_params_v2[0]);
/* ENUM and INT fields are read as int, F32 fields as float */
#define MF_PARAM_V2_SIZE_(tag, field, kind, ...)                                           \
    _Static_assert(sizeof(((mf_moe_params *)0)->field) == 4, #field " is int- or float-sized");
MF_PARAM_V2_LIST(MF_PARAM_V2_SIZE_)
#undef MF_PARAM_V2_SIZE_

const mf_param_v2 *mf_param_v2_lookup(const char *key) {
    for (int i = 0; i < mf_n_params_v2; i++)
        if (!strcmp(key, mf_params_v2[i].key)) return &mf_params_v2[i];
    return NULL;
}

double mf_param_v2_get(const mf_moe_params *p, const mf_param_v2 *d) {
    const char *at = (const char *)p + d->offset;
    if (d->kind == MF_PK_F32) {
        float f;
        memcpy(&f, at, sizeof f);
        return (double)f;
    }
    int v;
    memcpy(&v, at, sizeof v);
    return (double)v;
}

void mf_param_v2_set(mf_moe_params *p, const mf_param_v2 *d, double v) {
    char *at = (char *)p + d->offset;
    if (d->kind == MF_PK_F32) {
        float f = (float)v;
        memcpy(at, &f, sizeof f);
    } else {
        int i = (int)v;
        memcpy(at, &i, sizeof i);
    }
}

int mf_param_v2_valid(const mf_param_v2 *d, double v) {
    if (v == 0) return 1;
    switch (d->kind) {
    case MF_PK_ENUM: return v == floor(v) && v >= 0 && v < d->e->count;
    case MF_PK_INT: return v == floor(v) && v >= d->lo && v <= d->hi;
    default: return v == (double)(float)v && v >= d->lo && v <= d->hi;
    }
}

void mf_case_fix_v2(mf_case *c) {
    mf_moe_params *p = &c->p;
    if (p->activation == MF_ACT_SILU_GLU) p->act_limit = 0;
    else if (p->act_limit == 0) p->act_limit = 7.0f;
    if (p->activation != MF_ACT_SWIGLU_OAI) p->act_alpha = 0;
    else if (p->act_alpha == 0) p->act_alpha = 1.702f;
    if (p->weight_format != MF_WFMT_BF16) p->n_shared = 0;
    if (p->score == MF_SCORE_NONE) p->renormalize = 0;
    if (p->weight_format != MF_WFMT_BF16 || p->expert_bias != MF_EBIAS_NONE)
        p->weight_on_input = 0;
    if (p->placement == MF_PLACEMENT_MAP) p->expert_offset = 0; /* the map places every expert */
    if (p->tp_size <= 1) p->tp_size = p->tp_rank = 0;
    else p->tp_rank %= p->tp_size;
    /* an fp8 slice is whole scale blocks (mf_case_validate says why): else no sharding */
    if (p->tp_size > 1 && p->weight_format == MF_WFMT_FP8_BLOCK &&
        (p->I % mf_block_n(p) || p->I % mf_block_k(p)))
        p->tp_size = p->tp_rank = 0;
    if (p->n_shared == 0) {
        p->shared_I = 0;
        p->shared_weight = MF_SHW_ONE;
        p->shared_owner = MF_SHOWN_THIS_RANK;
    } else if (p->shared_I == 0) {
        p->shared_I = p->I;
    }
}

void mf_case_drop_absent_gens(mf_case *c) {
    for (int t = 0; t < MF_NUM_TENSORS; t++)
        if (mf_tensor_level((mf_tensor_id)t) > 1 && !mf_tensor_present(&c->p, (mf_tensor_id)t))
            memset(&c->gen[t], 0, sizeof c->gen[t]);
}

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
        /* tensors after v1's get seed 0, as a v1 file decodes them (it carries none) */
        c->gen[t].seed = t <= MF_T_W2 ? 0x1000u + (uint64_t)t : 0;
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
    CHECK(p->placement != MF_PLACEMENT_MAP || p->expert_offset == 0,
          "expert_offset = %d with placement map (the map places every expert: offset 0)",
          p->expert_offset);
    CHECK(p->top_k >= 1 && p->top_k <= p->E && p->top_k <= MF_MAX_K,
          "top_k=%d outside [1, min(E=%d, %d)]", p->top_k, p->E, MF_MAX_K);
    CHECK((unsigned)p->score < MF_SCORE_COUNT, "bad score function");
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
    for (int i = 0; i < mf_n_params_v2; i++)
        CHECK(mf_param_v2_valid(&mf_params_v2[i], mf_param_v2_get(p, &mf_params_v2[i])),
              "bad value %g for %s", mf_param_v2_get(p, &mf_params_v2[i]), mf_params_v2[i].key);
    CHECK((unsigned)p->activation < MF_ACT_COUNT, "bad activation");
    CHECK((p->act_limit != 0) == (p->activation != MF_ACT_SILU_GLU),
          "act_limit = %g with activation %s (a clamped activation needs one, silu_glu none)",
          (double)p->act_limit, mf_activation_name(p->activation));
    CHECK((p->act_alpha != 0) == (p->activation == MF_ACT_SWIGLU_OAI),
          "act_alpha = %g with activation %s (swiglu_oai needs one, the others none)",
          (double)p->act_alpha, mf_activation_name(p->activation));
    CHECK(isfinite(p->rsf) && p->rsf > 0, "rsf=%g must be finite and positive", (double)p->rsf);
    CHECK((p->n_shared > 0) == (p->shared_I > 0),
          "n_shared = %d with shared_I = %d (shared experts need their intermediate size, and "
          "shared_I needs shared experts)",
          p->n_shared, p->shared_I);
    CHECK(p->n_shared > 0 || (p->shared_weight == MF_SHW_ONE &&
                              p->shared_owner == MF_SHOWN_THIS_RANK),
          "shared_weight = %s, shared_owner = %s without shared experts (n_shared = 0)",
          mf_enum_name(&mf_enum_shared_weight, p->shared_weight),
          mf_enum_name(&mf_enum_shared_owner, p->shared_owner));
    CHECK(p->n_shared == 0 || p->weight_format == MF_WFMT_BF16,
          "shared experts with weight_format %s: shared experts are modelled with bf16 weights "
          "only",
          mf_enum_name(&mf_enum_weight_format, p->weight_format));
    CHECK(p->score != MF_SCORE_NONE || !p->renormalize,
          "score none with renormalize: raw logits are never renormalized (their sum may be 0 "
          "or negative)");
    CHECK(!p->weight_on_input ||
              (p->weight_format == MF_WFMT_BF16 && p->expert_bias == MF_EBIAS_NONE),
          "weight_on_input with weight_format %s, expert_bias %s: the weight on the input is "
          "modelled with bf16 weights and no expert biases only",
          mf_enum_name(&mf_enum_weight_format, p->weight_format),
          mf_enum_name(&mf_enum_expert_bias, p->expert_bias));
    CHECK(p->tp_rank < (p->tp_size > 1 ? p->tp_size : 1),
          "tp_rank = %d with tp_size = %d: the ranks are 0 .. tp_size - 1", p->tp_rank,
          p->tp_size);
    /* vLLM (fp8_utils.py, validate_fp8_block_shape) refuses a shard whose width is not a
     * multiple of block_n, and under TP of block_k: a shard edge inside a scale block would
     * shift the rank's block grid, which its own scales cannot say */
    CHECK(p->tp_size <= 1 || p->weight_format != MF_WFMT_FP8_BLOCK ||
              (p->I % mf_block_n(p) == 0 && p->I % mf_block_k(p) == 0),
          "tp_size = %d with fp8_block: I = %d must be a multiple of block_n = %d and block_k = "
          "%d (a shard edge inside a scale block)",
          p->tp_size, p->I, mf_block_n(p), mf_block_k(p));
    CHECK(p->rsf_site == MF_RSF_WEIGHTS || p->rsf_site == MF_RSF_OUTPUT, "bad rsf site");
    CHECK((unsigned)p->layout < MF_LAYOUT_COUNT, "bad layout");
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
    CHECK(c->rows >= 0 && c->rows <= MF_MAX_T, "rows=%d outside [0, %d]", c->rows, MF_MAX_T);
#undef CHECK
    return MF_OK;
}

/* ---- the tensor table ---- */

#define MF_TENSOR_CHECK_(ID, name, storage, rank, d0, d1, d2, bf16, present, scale, kept, slot, \
                         level)                                                                 \
    _Static_assert(rank >= 1 && rank <= MF_TENSOR_MAX_RANK, #name ": rank 1 to 3");             \
    _Static_assert(sizeof(storage) == 2 || sizeof(storage) == 4, #name ": bf16 bits or float"); \
    _Static_assert(!(kept) || sizeof(storage) == 2, #name ": pokes of kept tensors are saved "  \
                                                    "as bf16 bits");
MF_TENSOR_LIST(MF_TENSOR_CHECK_)
#undef MF_TENSOR_CHECK_

const char *mf_tensor_name(mf_tensor_id t) {
    static const char *const n[] = {
#define MF_TENSOR_NAME_(ID, name, ...) #name,
        MF_TENSOR_LIST(MF_TENSOR_NAME_)
#undef MF_TENSOR_NAME_
    };
    return (unsigned)t < MF_NUM_TENSORS ? n[t] : "?";
}

int mf_tensor_lookup(const char *name) {
    for (int t = 0; t < MF_NUM_TENSORS; t++)
        if (!strcmp(name, mf_tensor_name((mf_tensor_id)t))) return t;
    return -1;
}

int mf_tensor_is_bf16(const mf_moe_params *p, mf_tensor_id t) {
    switch (t) {
#define MF_TENSOR_BF16_(ID, name, storage, rank, d0, d1, d2, bf16, ...) \
    case MF_T_##ID: return sizeof(storage) == 2 || (bf16);
        MF_TENSOR_LIST(MF_TENSOR_BF16_)
#undef MF_TENSOR_BF16_
    default: return 0;
    }
}

int mf_tensor_present(const mf_moe_params *p, mf_tensor_id t) {
    switch (t) {
#define MF_TENSOR_PRESENT_(ID, name, storage, rank, d0, d1, d2, bf16, present, ...) \
    case MF_T_##ID: return (present) != 0;
        MF_TENSOR_LIST(MF_TENSOR_PRESENT_)
#undef MF_TENSOR_PRESENT_
    default: return 0;
    }
}

int mf_tensor_shape(const mf_moe_params *p, mf_tensor_id t, uint64_t shape[MF_TENSOR_MAX_RANK]) {
    switch (t) {
#define MF_TENSOR_SHAPE_(ID, name, storage, rank, d0, d1, d2, ...)              \
    case MF_T_##ID:                                                            \
        shape[0] = (uint64_t)(d0), shape[1] = (uint64_t)(d1), shape[2] = (uint64_t)(d2); \
        return rank;
        MF_TENSOR_LIST(MF_TENSOR_SHAPE_)
#undef MF_TENSOR_SHAPE_
    default: shape[0] = shape[1] = shape[2] = 0; return 1;
    }
}

size_t mf_tensor_elems(const mf_moe_params *p, mf_tensor_id t) {
    uint64_t s[MF_TENSOR_MAX_RANK];
    mf_tensor_shape(p, t, s);
    return (size_t)(s[0] * s[1] * s[2]);
}

/* elements per row: the last dimension (the ties generator draws per row) */
static size_t tensor_cols(const mf_moe_params *p, mf_tensor_id t) {
    uint64_t s[MF_TENSOR_MAX_RANK];
    int rank = mf_tensor_shape(p, t, s);
    return (size_t)s[rank - 1];
}

size_t mf_tensor_host_size(mf_tensor_id t) {
    switch (t) {
#define MF_TENSOR_HOST_SIZE_(ID, name, storage, ...) \
    case MF_T_##ID: return sizeof(storage);
        MF_TENSOR_LIST(MF_TENSOR_HOST_SIZE_)
#undef MF_TENSOR_HOST_SIZE_
    default: return 0;
    }
}

size_t mf_tensor_kernel_size(const mf_moe_params *p, mf_tensor_id t) {
    if (mf_tensor_is_e4m3(p, t)) return 1;
    return mf_tensor_is_bf16(p, t) ? 2 : 4;
}

int mf_tensor_is_i32(mf_tensor_id t) {
    switch (t) {
#define MF_TENSOR_I32_(ID, name, storage, ...) \
    case MF_T_##ID: return _Generic((storage)0, int32_t: 1, default: 0);
        MF_TENSOR_LIST(MF_TENSOR_I32_)
#undef MF_TENSOR_I32_
    default: return 0;
    }
}

int mf_tensor_per_expert(mf_tensor_id t) {
    return t > MF_T_BIAS && t != MF_T_SHARED_GATE && t != MF_T_TOPK_IDS_IN &&
           t != MF_T_TOPK_WEIGHTS_IN && t != MF_T_EXPERT_MAP;
}

int mf_tensor_is_e4m3(const mf_moe_params *p, mf_tensor_id t) {
    return p->weight_format == MF_WFMT_FP8_BLOCK && (t == MF_T_W13 || t == MF_T_W2);
}

void mf_mxfp4_shapes(const mf_moe_params *p, int which, uint64_t q_shape[3], uint64_t sc_shape[3]) {
    uint64_t rows = which == 0 ? 2 * (uint64_t)p->I : (uint64_t)p->H;
    uint64_t K = which == 0 ? (uint64_t)p->H : (uint64_t)p->I;
    q_shape[0] = sc_shape[0] = (uint64_t)p->E_local;
    q_shape[1] = sc_shape[1] = rows;
    q_shape[2] = (K + 1) / 2;
    sc_shape[2] = (K + 31) / 32;
}

/* The kernel's form of a weight tensor of a quantized case (weight_format): the e4m3 codes, or
 * the bf16 values of the canonical MXFP4 packing, row by row (rows of `cols`), with the packing
 * itself in ki's mx arrays (which: 0 for w13, 1 for w2). */
static mf_status quant_weights(const mf_moe_params *p, mf_tensor_id t, const uint16_t *w, size_t n,
                               size_t cols, void **out, mf_kernel_inputs *ki, mf_error *err) {
    if (p->weight_format == MF_WFMT_FP8_BLOCK) {
        uint8_t *q = malloc(n + 1);
        if (!q) return MF_FAIL(err, MF_ENOMEM, "out of memory for the e4m3 form of %s",
                               mf_tensor_name(t));
        mf_e4m3_from_bf16(w, n, q);
        *out = q;
        return MF_OK;
    }
    int which = t == MF_T_W13 ? 0 : 1;
    size_t rows = cols ? n / cols : 0, qrow = (cols + 1) / 2, srow = (cols + 31) / 32;
    uint16_t *b = malloc(2 * n + 2);
    uint8_t *packed = malloc(rows * qrow + 1), *scales = malloc(rows * srow + 1);
    if (!b || !packed || !scales) {
        free(b);
        free(packed);
        free(scales);
        return MF_FAIL(err, MF_ENOMEM, "out of memory for the mxfp4 form of %s",
                       mf_tensor_name(t));
    }
    for (size_t r = 0; r < rows; r++) {
        mf_mxfp4_pack_bf16(w + r * cols, cols, packed + r * qrow, scales + r * srow);
        mf_mxfp4_dequant_bf16(packed + r * qrow, scales + r * srow, cols, b + r * cols);
        /* the packing of the dequantized row: the same values, and what a reader of b gets
         * (a block below 2^-129 decodes to zeros, whose packing has another scale) */
        mf_mxfp4_pack_bf16(b + r * cols, cols, packed + r * qrow, scales + r * srow);
    }
    ki->mx_q[which] = packed;
    ki->mx_sc[which] = scales;
    ki->mx_q_bytes[which] = rows * qrow;
    ki->mx_sc_bytes[which] = rows * srow;
    *out = b;
    return MF_OK;
}

int mf_tensor_level(mf_tensor_id t) {
    switch (t) {
#define MF_TENSOR_LEVEL_(ID, name, storage, rank, d0, d1, d2, bf16, present, scale, kept, slot, \
                         level)                                                                 \
    case MF_T_##ID: return level;
        MF_TENSOR_LIST(MF_TENSOR_LEVEL_)
#undef MF_TENSOR_LEVEL_
    default: return 0;
    }
}

static int tensor_kept(mf_tensor_id t) {
    switch (t) {
#define MF_TENSOR_KEPT_(ID, name, storage, rank, d0, d1, d2, bf16, present, scale, kept, ...) \
    case MF_T_##ID: return kept;
        MF_TENSOR_LIST(MF_TENSOR_KEPT_)
#undef MF_TENSOR_KEPT_
    default: return 0;
    }
}

void *mf_problem_tensor(const mf_problem *pb, mf_tensor_id t) {
    switch (t) {
#define MF_TENSOR_ARRAY_(ID, name, ...) \
    case MF_T_##ID: return pb->name;
        MF_TENSOR_LIST(MF_TENSOR_ARRAY_)
#undef MF_TENSOR_ARRAY_
    default: return NULL;
    }
}

static void problem_tensor_set(mf_problem *pb, mf_tensor_id t, void *a) {
    switch (t) {
#define MF_TENSOR_SET_(ID, name, ...) \
    case MF_T_##ID: pb->name = a; break;
        MF_TENSOR_LIST(MF_TENSOR_SET_)
#undef MF_TENSOR_SET_
    default: break;
    }
}

/* pb->t: views of the arrays, NULL for an absent tensor */
static void problem_views(mf_problem *pb) {
    const mf_moe_params *p = &pb->p;
    (void)p;
#define MF_TENSOR_VIEW_(ID, name, storage, rank, d0, d1, d2, bf16, present, ...) \
    pb->t.name = (present) ? pb->name : NULL;
    MF_TENSOR_LIST(MF_TENSOR_VIEW_)
#undef MF_TENSOR_VIEW_
    pb->t.expert_state = pb->experts;
}

const char *mf_gen_class_name(mf_gen_class g) {
    static const char *n[] = {"normal",   "uniform",  "heavy",     "sparse",
                              "integer",  "ties",     "near_ties", "negative",
                              "underflow", "large_pos", "large_neg"};
    return (unsigned)g < MF_GEN_COUNT ? n[g] : "?";
}

double mf_gen_scale(const mf_moe_params *p, mf_tensor_id t, const mf_gen *g) {
    if (g->scale > 0) return (double)g->scale;
    switch (t) {
#define MF_TENSOR_SCALE_(ID, name, storage, rank, d0, d1, d2, bf16, present, scale, ...) \
    case MF_T_##ID: return scale;
        MF_TENSOR_LIST(MF_TENSOR_SCALE_)
#undef MF_TENSOR_SCALE_
    default: return 1.0;
    }
}

/* Bytes of all experts' blocks of the kept tensors, and of the other tensors. */
static double expert_bytes(const mf_moe_params *p) {
    double bytes = 0;
    for (int t = 0; t < MF_NUM_TENSORS; t++)
        if (tensor_kept((mf_tensor_id)t))
            bytes += (double)mf_tensor_elems(p, (mf_tensor_id)t) *
                     mf_tensor_host_size((mf_tensor_id)t);
    return bytes;
}

static double other_bytes(const mf_moe_params *p) {
    double bytes = 0;
    for (int t = 0; t < MF_NUM_TENSORS; t++)
        if (!tensor_kept((mf_tensor_id)t))
            bytes += (double)mf_tensor_elems(p, (mf_tensor_id)t) *
                     mf_tensor_host_size((mf_tensor_id)t);
    return bytes;
}

int mf_case_experts_lazy(const mf_case *c) { return expert_bytes(&c->p) > MF_EAGER_EXPERT_BYTES; }

static int routable_count(const mf_case *c);

/* The tensors' arrays in mf_problem (a lazy case's routable experts), and the output [T][H]. */
double mf_case_bytes(const mf_case *c) {
    const mf_moe_params *p = &c->p;
    /* routing a lazy case costs little up to a few thousand token-expert pairs */
    int route = mf_case_experts_lazy(c) && (double)p->T * p->E <= MF_ROUTED_BYTES_PAIRS;
    double experts = route ? routable_count(c) : p->E_local;
    return 2.0 * p->T * p->H + other_bytes(p) + expert_bytes(p) / p->E_local * experts;
}

double mf_case_work(const mf_case *c) {
    const mf_moe_params *p = &c->p;
    /* the reference computes each distinct x row once (reference/forward.h); a poke may make
     * one more row distinct */
    int rows = p->T;
    if (c->rows > 0 && c->rows + c->n_pokes < p->T) rows = c->rows + c->n_pokes;
    return (double)rows * 3.0 * p->H * ((double)p->top_k * p->I + (double)p->n_shared * p->shared_I);
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

/* Elements [i0, i1) of a bf16 tensor: each a function of (generator, index) alone, so a range
 * holds the same bits as the whole tensor there. */
static void fill_bf16(const mf_moe_params *p, mf_tensor_id t, const mf_gen *g, size_t i0,
                      size_t i1, uint16_t *dst) {
    size_t cols = tensor_cols(p, t);
    double scale = mf_gen_scale(p, t, g);
    gen_streams st = streams_of(g, t);
    if (g->cls == MF_GEN_NORMAL) { /* the common case, kept branch-free */
        /* scale and normal are fp32 values: their fp32 product is the double product rounded
         * once, the same value as the general route below */
        float fs = (float)scale;
        for (size_t i = i0; i < i1; i++)
            dst[i] = mf_f32_to_bf16(fs * (float)normal_of(stream_at(st.main, i)));
        return;
    }
    for (size_t i = i0; i < i1; i++) {
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
    for (int t = 0; t < MF_NUM_TENSORS; t++) free(mf_problem_tensor(pb, (mf_tensor_id)t));
    free(pb->experts);
    memset(pb, 0, sizeof *pb);
}

static int same_gen(const mf_gen *a, const mf_gen *b) {
    return a->cls == b->cls && a->seed == b->seed && mf_f32_bits(a->scale) == mf_f32_bits(b->scale);
}

/* 1 if pb's kept tensors already hold what c generates for them */
static int kept_reusable(const mf_case *c, const mf_problem *pb) {
    if (!pb->kept_valid) return 0;
    for (int t = 0; t < MF_NUM_TENSORS; t++) {
        uint64_t s[MF_TENSOR_MAX_RANK];
        if (!tensor_kept((mf_tensor_id)t)) continue;
        mf_tensor_shape(&c->p, (mf_tensor_id)t, s);
        if (!mf_problem_tensor(pb, (mf_tensor_id)t) || memcmp(s, pb->kept_shape[t], sizeof s) ||
            !same_gen(&pb->kept_gen[t], &c->gen[t]))
            return 0;
    }
    return 1;
}

/* A tensor that is not kept, whole. */
static void fill_f32_or_bf16(const mf_case *c, mf_problem *pb, mf_tensor_id t) {
    void *a = mf_problem_tensor(pb, t);
    if (mf_tensor_is_i32(t)) return; /* the ids: fill_preroute, once the routing is known */
    if (mf_tensor_host_size(t) == 2)
        fill_bf16(&c->p, t, &c->gen[t], 0, mf_tensor_elems(&c->p, t), a);
    else fill_f32(&c->p, t, &c->gen[t], mf_tensor_is_bf16(&c->p, t), a);
}

/* Elements of one expert's block of kept tensor t (its d0 is E_local). */
static size_t expert_elems(const mf_moe_params *p, mf_tensor_id t) {
    return mf_tensor_elems(p, t) / (size_t)p->E_local;
}

/* Applies the case's pokes that land in kept tensors' elements [expert le's blocks], saving what
 * they overwrite; le < 0: the pokes of the other tensors. */
static void apply_pokes(mf_problem *pb, int le) {
    const mf_moe_params *p = &pb->p;
    const mf_case *c = &pb->src;
    for (int i = 0; i < c->n_pokes; i++) {
        const mf_poke *k = &c->pokes[i];
        mf_tensor_id t = (mf_tensor_id)k->tensor;
        size_t n = mf_tensor_elems(p, t);
        if (n == 0) continue; /* a tensor of no elements (sw13 without shared experts) */
        size_t at = (size_t)k->index % n;
        uint16_t b16 = (uint16_t)(k->bits & 0xffffu);
        if (tensor_kept(t) ? (le < 0 || at / expert_elems(p, t) != (size_t)le) : le >= 0)
            continue;
        if (mf_tensor_is_i32(t)) {
            int32_t v;
            memcpy(&v, &k->bits, sizeof v); /* the int32 bit pattern */
            ((int32_t *)mf_problem_tensor(pb, t))[at] = v;
        } else if (mf_tensor_host_size(t) == 2) {
            uint16_t *w = (uint16_t *)mf_problem_tensor(pb, t) + at;
            if (tensor_kept(t)) {
                pb->saved[pb->n_saved].at = w;
                pb->saved[pb->n_saved].old = *w;
                pb->n_saved++;
            }
            *w = b16;
        } else {
            float *f = (float *)mf_problem_tensor(pb, t) + at;
            *f = mf_tensor_is_bf16(p, t) ? mf_bf16_to_f32(b16) : mf_f32_from_bits(k->bits);
        }
    }
}

int mf_problem_expert_ready(const mf_problem *pb, int le) {
    return le >= 0 && le < pb->p.E_local && pb->experts && pb->experts[le] == MF_EXPERT_READY;
}

int mf_problem_experts_ready(const mf_problem *pb) {
    int n = 0;
    for (int le = 0; le < pb->p.E_local; le++) n += mf_problem_expert_ready(pb, le);
    return n;
}

double mf_problem_bytes(const mf_problem *pb) {
    const mf_moe_params *p = &pb->p;
    return other_bytes(p) + expert_bytes(p) / p->E_local * mf_problem_experts_ready(pb);
}

mf_status mf_problem_materialise(mf_problem *pb, int le, mf_error *err) {
    const mf_moe_params *p = &pb->p;
    if (le < 0 || le >= p->E_local || !pb->experts)
        return MF_FAIL(err, MF_EINVAL, "local expert %d outside [0, E_local=%d)", le, p->E_local);
    if (pb->experts[le] == MF_EXPERT_READY) return MF_OK;
    if (!pb->has_src)
        return MF_FAIL(err, MF_EINTERNAL, "expert %d of a problem without generators", le);
    for (int t = 0; t < MF_NUM_TENSORS; t++) {
        mf_tensor_id id = (mf_tensor_id)t;
        if (!tensor_kept(id)) continue;
        size_t n = expert_elems(p, id);
        fill_bf16(p, id, &pb->src.gen[t], (size_t)le * n, (size_t)(le + 1) * n,
                  mf_problem_tensor(pb, id));
    }
    pb->experts[le] = MF_EXPERT_READY;
    apply_pokes(pb, le);
    return MF_OK;
}

mf_status mf_problem_materialise_all(mf_problem *pb, mf_error *err) {
    for (int le = 0; le < pb->p.E_local; le++) MF_TRY(mf_problem_materialise(pb, le, err));
    return MF_OK;
}

/* NaN in the rows of expert le that every output of a token routed to it reads: unit 0's gate
 * and up rows of W13 (the activation of unit 0 reaches every column) and output column 0's row
 * of W2, written into base, tensor t's array (other tensors get none). A few pages per expert:
 * the rest stays unwritten. */
static void poison_rows(const mf_moe_params *p, mf_tensor_id t, int le, uint16_t *base) {
    size_t H = (size_t)p->H, I = (size_t)p->I;
    if (t == MF_T_W13) {
        uint16_t *g = base + (size_t)le * 2 * I * H, *u = g + I * H;
        for (size_t i = 0; i < H; i++) g[i] = u[i] = MF_EXPERT_POISON_BF16;
    } else if (t == MF_T_W2) {
        uint16_t *w2 = base + (size_t)le * H * I;
        for (size_t i = 0; i < I; i++) w2[i] = MF_EXPERT_POISON_BF16;
    }
}

static void poison_expert(mf_problem *pb, int le) {
    poison_rows(&pb->p, MF_T_W13, le, pb->w13);
    poison_rows(&pb->p, MF_T_W2, le, pb->w2);
    pb->experts[le] = MF_EXPERT_POISON;
}

void mf_problem_copy_tensor(const mf_problem *pb, mf_tensor_id t, void *dst) {
    const mf_moe_params *p = &pb->p;
    size_t es = mf_tensor_host_size(t);
    const char *src = mf_problem_tensor(pb, t);
    if (!tensor_kept(t) || !pb->experts) {
        memcpy(dst, src, mf_tensor_elems(p, t) * es);
        return;
    }
    size_t blk = expert_elems(p, t) * es;
    for (int le = 0; le < p->E_local; le++) {
        if (pb->experts[le] == MF_EXPERT_READY)
            memcpy((char *)dst + (size_t)le * blk, src + (size_t)le * blk, blk);
        else if (pb->experts[le] == MF_EXPERT_POISON)
            poison_rows(p, t, le, dst);
    }
}

/* The experts the case needs: all of them, or for a lazy case the routable ones (poison for the
 * rest). */
static mf_status case_experts(mf_problem *pb, mf_error *err) {
    int EL = pb->p.E_local;
    if (!mf_case_experts_lazy(&pb->src)) return mf_problem_materialise_all(pb, err);
    uint8_t *mask = malloc((size_t)EL);
    if (!mask) return MF_FAIL(err, MF_ENOMEM, "out of memory");
    mf_status st = mf_problem_routable(pb, mask, err);
    for (int le = 0; le < EL && st == MF_OK; le++) {
        if (mask[le]) st = mf_problem_materialise(pb, le, err);
        else if (pb->experts[le] == MF_EXPERT_ABSENT) poison_expert(pb, le);
    }
    free(mask);
    return st;
}

/* ---- pre-routed input (docs/case-format.md, "Pre-routed input") ----
 * The ids' generator class picks how the given ids derive from the case's own routing (the
 * reference's exact selection of the case routed by its parameters, key descending, ties lower
 * index; a token with a non-finite logit or bias gets every slot -1):
 *   normal     that routing
 *   sparse     that routing, each slot emptied (-1) with probability 1/2
 *   negative   that routing, every slot of a token in 4 emptied (rows of -1 only)
 *   ties       that routing, each slot after the first a copy of an earlier one with
 *              probability 1/2 (the same expert twice in a row)
 *   any other  each slot uniform in [-1, E): empty slots, duplicates, other ranks' experts
 * The weights' class normal gives that routing's weights (its exact weights, rsf at the weights
 * site included, rounded to the weights' dtype; a weight that is not finite: 0), slot by slot;
 * any other class is an ordinary generator (signed, any sum). */

static int ids_from_routing(uint8_t cls) {
    return cls == MF_GEN_NORMAL || cls == MF_GEN_SPARSE || cls == MF_GEN_NEGATIVE ||
           cls == MF_GEN_TIES;
}

static mf_status fill_preroute(const mf_case *c, mf_problem *pb, mf_error *err) {
    const mf_moe_params *p = &c->p;
    int T = p->T, k = p->top_k, E = p->E;
    const mf_gen *gi = &c->gen[MF_T_TOPK_IDS_IN], *gw = &c->gen[MF_T_TOPK_WEIGHTS_IN];
    int32_t *ids = pb->topk_ids_in;
    float *w = pb->topk_weights_in;
    int bf16 = p->preroute == MF_PREROUTE_BF16;
    if (ids_from_routing(gi->cls) || gw->cls == MF_GEN_NORMAL) {
        mf_moe_params rp = *p;
        rp.preroute = MF_PREROUTE_NONE;
        mf_contract rc = mf_contract_cpu_scalar; /* any contract: only exact values are read */
        rc.round_points &= ~(unsigned)MF_RP_WEIGHTS;
        mf_routing rt;
        MF_TRY(mf_ref_route(&rp, &pb->t, &rc, &rt, err));
        mf_status st = MF_OK;
        for (int t = 0; t < T && st == MF_OK; t++) {
            int32_t *row = ids + (size_t)t * k;
            float *wr = w + (size_t)t * k;
            if (rt.invariant_only[t]) {
                for (int i = 0; i < k; i++) row[i] = -1, wr[i] = 0;
                continue;
            }
            for (int i = 0; i < k; i++) row[i] = rt.ref_ids[(size_t)t * k + i];
            if (gw->cls != MF_GEN_NORMAL) continue;
            mf_weights mw;
            if ((st = mf_ref_weights(&rt, &rp, &rc, t, row, &mw, err)) != MF_OK) break;
            for (int i = 0; i < k; i++) {
                double v = mw.w_hi[i] + mw.w_lo[i];
                float f = isfinite(v) ? (float)v : 0.0f;
                wr[i] = bf16 ? mf_bf16_to_f32(mf_f64_to_bf16(isfinite(v) ? v : 0)) : f;
            }
        }
        mf_routing_free(&rt);
        MF_TRY(st);
    }
    if (gw->cls != MF_GEN_NORMAL) fill_f32(p, MF_T_TOPK_WEIGHTS_IN, gw, bf16, w);
    gen_streams st = streams_of(gi, MF_T_TOPK_IDS_IN);
    for (int t = 0; t < T; t++) {
        int32_t *row = ids + (size_t)t * k;
        uint64_t hr = stream_at(st.rows, (uint64_t)t);
        for (int i = 0; i < k; i++) {
            uint64_t h = stream_at(st.main, (uint64_t)t * k + i);
            switch ((mf_gen_class)gi->cls) {
            case MF_GEN_NORMAL: break;
            case MF_GEN_SPARSE: if (h & 1) row[i] = -1; break;
            case MF_GEN_NEGATIVE: if (hr % 4 == 0) row[i] = -1; break;
            case MF_GEN_TIES:
                if (i > 0 && (h & 1)) row[i] = row[(h >> 1) % (uint64_t)i];
                break;
            default: row[i] = (int32_t)((h >> 1) % (uint64_t)(E + 1)) - 1; break;
            }
        }
    }
    return MF_OK;
}

/* ---- expert placement map (docs/case-format.md, "Expert maps") ----
 * expert_map [E]: E_local global experts get the local indices 0 .. E_local - 1, the others -1.
 * The generator class picks which experts are local and in what local order:
 *   sparse     a uniform subset (holes), local order the global order (vLLM's round_robin and
 *              linear placements are of this kind)
 *   ties       a contiguous block at a uniform offset, local order reversed (an offset
 *              shortcut reads the wrong expert everywhere)
 *   negative   the experts the case's routing selects (its exact selection, or the given ids)
 *              remote as far as E - E_local allows: the selected experts all remote when they
 *              number at most E - E_local
 *   large_pos  those experts local first (as many as E_local holds), then a uniform rest
 *   any other  a uniform subset in a uniform local order */

/* 1 where some token's routing (its exact selection; pre-routed: the given ids) picks e */
static mf_status selected_experts(const mf_problem *pb, uint8_t *sel, mf_error *err) {
    const mf_moe_params *p = &pb->p;
    int T = p->T, k = p->top_k;
    memset(sel, 0, (size_t)p->E);
    if (p->preroute != MF_PREROUTE_NONE) {
        for (size_t i = 0; i < (size_t)T * k; i++) {
            int32_t e = pb->topk_ids_in[i];
            if (e >= 0 && e < p->E) sel[e] = 1;
        }
        return MF_OK;
    }
    mf_contract rc = mf_contract_cpu_scalar; /* any contract: only the exact selection is read */
    mf_routing rt;
    MF_TRY(mf_ref_route(p, &pb->t, &rc, &rt, err));
    for (int t = 0; t < T; t++) {
        if (rt.invariant_only[t]) continue;
        for (int i = 0; i < k; i++) {
            int64_t e = rt.ref_ids[(size_t)t * k + i];
            if (e >= 0 && e < p->E) sel[e] = 1;
        }
    }
    mf_routing_free(&rt);
    return MF_OK;
}

static mf_status fill_expert_map(const mf_case *c, mf_problem *pb, mf_error *err) {
    const mf_moe_params *p = &c->p;
    int E = p->E, L = p->E_local;
    const mf_gen *g = &c->gen[MF_T_EXPERT_MAP];
    gen_streams st = streams_of(g, MF_T_EXPERT_MAP);
    int32_t *map = pb->expert_map;
    int *order = malloc(sizeof(int) * (size_t)E);
    uint8_t *sel = malloc((size_t)E);
    if (!order || !sel) {
        free(order);
        free(sel);
        return MF_FAIL(err, MF_ENOMEM, "out of memory (expert map, E=%d)", E);
    }
    /* order: the global ids, a uniform permutation (Fisher-Yates on the main stream) */
    for (int e = 0; e < E; e++) order[e] = e;
    for (int e = E - 1; e > 0; e--) {
        int j = (int)(stream_at(st.main, (uint64_t)e) % (uint64_t)(e + 1));
        int tmp = order[e];
        order[e] = order[j], order[j] = tmp;
    }
    mf_status s = MF_OK;
    if (g->cls == MF_GEN_NEGATIVE || g->cls == MF_GEN_LARGE_POS) {
        /* a stable partition of the permutation: unselected first (negative) or last */
        if ((s = selected_experts(pb, sel, err)) == MF_OK) {
            int n = 0, want = g->cls == MF_GEN_LARGE_POS;
            int *tmp = malloc(sizeof(int) * (size_t)E);
            if (!tmp) s = MF_FAIL(err, MF_ENOMEM, "out of memory (expert map, E=%d)", E);
            for (int pass = 0; tmp && pass < 2; pass++)
                for (int i = 0; i < E; i++)
                    if ((sel[order[i]] == want) == (pass == 0)) tmp[n++] = order[i];
            if (tmp) memcpy(order, tmp, sizeof(int) * (size_t)E);
            free(tmp);
        }
    }
    for (int e = 0; e < E; e++) map[e] = -1;
    switch ((mf_gen_class)g->cls) {
    case MF_GEN_SPARSE: /* the first L of the permutation, numbered in global order */
        for (int i = 0; i < L; i++) map[order[i]] = 0;
        for (int e = 0, le = 0; e < E; e++)
            if (map[e] == 0) map[e] = le++;
        break;
    case MF_GEN_TIES: {
        int o = (int)(stream_at(st.rows, 0) % (uint64_t)(E - L + 1));
        for (int i = 0; i < L; i++) map[o + i] = L - 1 - i;
        break;
    }
    default:
        for (int i = 0; i < L; i++) map[order[i]] = i;
        break;
    }
    free(order);
    free(sel);
    return s;
}

const char *mf_expert_map_check(const mf_moe_params *p, const int32_t *map, char *msg, size_t n) {
    if (p->placement != MF_PLACEMENT_MAP) return NULL;
    uint8_t *seen = calloc((size_t)p->E_local, 1);
    if (!seen) {
        snprintf(msg, n, "expert_map: out of memory (E_local=%d)", p->E_local);
        return msg;
    }
    const char *bad = NULL;
    int local = 0;
    for (int e = 0; e < p->E && !bad; e++) {
        int32_t v = map[e];
        if (v == -1) continue;
        if (v < 0 || v >= p->E_local) {
            snprintf(msg, n, "expert_map[%d] = %d: an entry is -1 or a local index in [0, %d)", e,
                     (int)v, p->E_local);
            bad = msg;
        } else if (seen[v]) {
            snprintf(msg, n, "expert_map[%d] = %d: local expert %d is placed twice", e, (int)v,
                     (int)v);
            bad = msg;
        } else {
            seen[v] = 1, local++;
        }
    }
    if (!bad && local != p->E_local) {
        snprintf(msg, n, "expert_map places %d experts, E_local = %d (each local index once)",
                 local, p->E_local);
        bad = msg;
    }
    free(seen);
    return bad;
}

/* c->rows: every token from rows on takes the x and logits rows of a prototype < rows. */
static void repeat_rows(const mf_case *c, mf_problem *pb) {
    const mf_moe_params *p = &c->p;
    int D = c->rows;
    if (D < 1 || D >= p->T) return;
    uint64_t base = stream_base(c->gen[MF_T_X].seed, 24);
    for (int t = D; t < p->T; t++) {
        size_t src = (size_t)(stream_at(base, (uint64_t)t) % (uint64_t)D);
        memcpy(pb->x + (size_t)t * p->H, pb->x + src * p->H, sizeof *pb->x * (size_t)p->H);
        memcpy(pb->logits + (size_t)t * p->E, pb->logits + src * p->E,
               sizeof *pb->logits * (size_t)p->E);
    }
}

mf_status mf_problem_update(const mf_case *c, mf_problem *pb, mf_error *err) {
    MF_TRY(mf_case_validate(c, err));
    const mf_moe_params *p = &c->p;
    /* undo the pokes of the previous case on the kept tensors */
    for (int i = pb->n_saved - 1; i >= 0; i--) *pb->saved[i].at = pb->saved[i].old;
    pb->n_saved = 0;
    int keep = kept_reusable(c, pb);
    pb->kept_valid = 0; /* invalid until filled */
    int failed = 0;
    for (int t = 0; t < MF_NUM_TENSORS; t++) {
        mf_tensor_id id = (mf_tensor_id)t;
        if (keep && tensor_kept(id)) continue;
        free(mf_problem_tensor(pb, id));
        /* a kept tensor's experts are written on demand: pages never written cost nothing
         * (calloc: zero, as a kernel reading an expert nothing generated sees in the isolated
         * worker too, whatever the allocator reuses) */
        void *a = calloc(mf_tensor_elems(p, id), mf_tensor_host_size(id));
        problem_tensor_set(pb, id, a);
        failed |= !a;
    }
    if (!keep) {
        free(pb->experts);
        pb->experts = calloc((size_t)p->E_local, 1); /* MF_EXPERT_ABSENT */
        failed |= !pb->experts;
    }
    pb->p = *p;
    pb->src = *c;
    pb->has_src = 1;
    if (failed) {
        mf_problem_free(pb);
        return MF_FAIL(err, MF_ENOMEM, "out of memory for the tensors of a %.1f MiB case",
                       mf_case_bytes(c) / 1048576.0);
    }
    for (int t = 0; t < MF_NUM_TENSORS; t++) {
        mf_tensor_id id = (mf_tensor_id)t;
        if (tensor_kept(id)) {
            pb->kept_gen[t] = c->gen[t];
            mf_tensor_shape(p, id, pb->kept_shape[t]);
            continue;
        }
        fill_f32_or_bf16(c, pb, id);
    }
    repeat_rows(c, pb);
    pb->kept_valid = 1;
    apply_pokes(pb, -1);
    if (p->preroute != MF_PREROUTE_NONE) {
        /* the given routing follows the poked logits; its own pokes land after it (a poke
         * only sets a value, so applying them again changes nothing else) */
        problem_views(pb);
        mf_status st = fill_preroute(c, pb, err);
        if (st != MF_OK) {
            mf_problem_free(pb);
            return st;
        }
        apply_pokes(pb, -1);
    }
    if (p->placement == MF_PLACEMENT_MAP) {
        /* the map follows the routing (classes negative, large_pos); its pokes land after it,
         * and a poked map must still be one */
        problem_views(pb);
        char why[160];
        mf_status st = fill_expert_map(c, pb, err);
        if (st == MF_OK) apply_pokes(pb, -1);
        if (st == MF_OK && mf_expert_map_check(p, pb->expert_map, why, sizeof why))
            st = MF_FAIL(err, MF_EINVAL, "%s", why);
        if (st != MF_OK) {
            mf_problem_free(pb);
            return st;
        }
    }
    for (int le = 0; le < p->E_local; le++)
        if (pb->experts[le] == MF_EXPERT_READY) apply_pokes(pb, le);
    problem_views(pb);
    mf_status st = case_experts(pb, err);
    if (st != MF_OK) mf_problem_free(pb);
    return st;
}

mf_status mf_kernel_inputs_make(const mf_problem *pb, mf_kernel_inputs *ki, mf_error *err) {
    const mf_moe_params *p = &pb->p;
    memset(ki, 0, sizeof *ki);
    for (int t = 0; t < MF_NUM_TENSORS; t++) {
        mf_tensor_id id = (mf_tensor_id)t;
        if (!mf_tensor_present(p, id)) continue;
        size_t n = mf_tensor_elems(p, id);
        ki->bytes[t] = n * mf_tensor_kernel_size(p, id);
        ki->data[t] = mf_problem_tensor(pb, id);
        if ((id == MF_T_W13 || id == MF_T_W2) && p->weight_format != MF_WFMT_BF16) {
            mf_status st = quant_weights(p, id, ki->data[t], n, tensor_cols(p, id), &ki->owned[t],
                                         ki, err);
            if (st != MF_OK) {
                mf_kernel_inputs_free(ki);
                return st;
            }
            ki->data[t] = ki->owned[t];
            continue;
        }
        if (mf_tensor_kernel_size(p, id) == mf_tensor_host_size(id)) continue;
        /* float holding bf16 values: the top half of the bits is the bf16 pattern */
        const float *src = ki->data[t];
        uint16_t *b = malloc(n * 2 + 2);
        if (!b) {
            mf_kernel_inputs_free(ki);
            return MF_FAIL(err, MF_ENOMEM, "out of memory for the bf16 form of %s",
                           mf_tensor_name(id));
        }
        for (size_t i = 0; i < n; i++) b[i] = (uint16_t)(mf_f32_bits(src[i]) >> 16);
        ki->owned[t] = b;
        ki->data[t] = b;
    }
    return MF_OK;
}

void mf_kernel_inputs_free(mf_kernel_inputs *ki) {
    for (int t = 0; t < MF_NUM_TENSORS; t++) free(ki->owned[t]);
    for (int i = 0; i < 2; i++) free(ki->mx_q[i]), free(ki->mx_sc[i]);
    memset(ki, 0, sizeof *ki);
}

mf_status mf_problem_alloc(const mf_moe_params *p, mf_problem *pb, mf_error *err) {
    memset(pb, 0, sizeof *pb);
    pb->p = *p;
    for (int t = 0; t < MF_NUM_TENSORS; t++) {
        mf_tensor_id id = (mf_tensor_id)t;
        void *a = calloc(mf_tensor_elems(p, id), mf_tensor_host_size(id));
        if (!a) {
            mf_problem_free(pb);
            return MF_FAIL(err, MF_ENOMEM, "out of memory for the tensors of a case");
        }
        problem_tensor_set(pb, id, a);
    }
    pb->experts = malloc((size_t)p->E_local);
    if (!pb->experts) {
        mf_problem_free(pb);
        return MF_FAIL(err, MF_ENOMEM, "out of memory for the tensors of a case");
    }
    memset(pb->experts, MF_EXPERT_READY, (size_t)p->E_local);
    problem_views(pb);
    return MF_OK;
}

mf_status mf_problem_build(const mf_case *c, mf_problem *pb, mf_error *err) {
    memset(pb, 0, sizeof *pb);
    return mf_problem_update(c, pb, err);
}

/* ---- the experts some routing can select ---- */

/* Marks in mask the local experts of routing rt (parameters v) that are not certainly out for
 * some finite token, and its exact selections (a counterfactual's variant may select outside its
 * classes: 0-masked groups). cap > 0: a token with more than cap experts not certainly out adds
 * its exact selection only. */
static void mark_routable(const mf_routing *rt, const mf_moe_params *v, const int32_t *map, int cap,
                          int E_local, uint8_t *mask) {
    int T = v->T, E = v->E, k = v->top_k;
    for (int t = 0; t < T; t++) {
        if (rt->invariant_only[t]) continue;
        const uint8_t *cls = rt->cls + (size_t)t * E;
        int n = 0;
        for (int e = 0; e < E; e++) n += cls[e] != MF_ROUTE_OUT;
        for (int e = 0; e < E && (cap <= 0 || n <= cap); e++) {
            int le = mf_local_of(v, map, e);
            if (cls[e] != MF_ROUTE_OUT && le >= 0 && le < E_local) mask[le] = 1;
        }
        for (int i = 0; i < k; i++) {
            int le = mf_local_of(v, map, rt->ref_ids[(size_t)t * k + i]);
            if (le >= 0 && le < E_local) mask[le] = 1;
        }
    }
}

/* The counterfactuals of attribution's knobs (src/attribute.c, mf_knob_apply) that change which
 * experts are selected, restated here since the case sits below attribution: bias dropped,
 * grouping dropped, dropped groups masked with 0, the other group rule, the other score function,
 * the expert-parallel offset ignored or applied twice, a pre-routed empty slot read as expert
 * E - 1, the placement map ignored (contiguous from expert_offset 0). 0 where the knob cannot
 * apply. */
enum { MF_SELECTION_KNOBS = 9 };
static int selection_knob(int k, const mf_moe_params *p, mf_moe_params *cf) {
    *cf = *p;
    int grouped = p->n_group > 1 && p->topk_group < p->n_group;
    switch (k) {
    case 0: cf->bias = MF_BIAS_NONE; return p->bias != MF_BIAS_NONE;
    case 1: cf->n_group = cf->topk_group = 1; return grouped;
    case 2: cf->variant |= MF_VARIANT_MASK_ZERO; return grouped;
    case 3:
        cf->group_rule = p->group_rule == MF_GROUP_MAX ? MF_GROUP_TOP2_SUM : MF_GROUP_MAX;
        return grouped && p->E / p->n_group >= 2;
    case 4:
        cf->score = p->score == MF_SCORE_SIGMOID ? MF_SCORE_SOFTMAX : MF_SCORE_SIGMOID;
        return 1;
    case 5: cf->expert_offset = 0; return p->expert_offset != 0;
    case 6: cf->expert_offset = 2 * p->expert_offset; return p->expert_offset != 0;
    case 7:
        cf->variant |= MF_VARIANT_EMPTY_SLOT_WRAPPED;
        return p->preroute != 0;
    default:
        cf->placement = MF_PLACEMENT_CONTIGUOUS;
        return p->placement == MF_PLACEMENT_MAP;
    }
}

mf_status mf_problem_routable(const mf_problem *pb, uint8_t *mask, mf_error *err) {
    const mf_moe_params *p = &pb->p;
    memset(mask, 0, (size_t)p->E_local);
    /* wider than every built-in contract: 2^15 fp32 ulps (2^-8) of relative error in each exp
     * dominates the fast exp's 2 + 1.173 |x| ulps wherever exp is finite */
    mf_contract wide = mf_contract_any_order;
    wide.name = "routable";
    wide.exp = MF_EXP_ACCURATE;
    wide.exp_ulps = 0x1p15;
    /* and every built-in contract's other routing terms: the tanh sigmoid's error is absolute
     * (2^-12 on a score near 0 under tanh.approx), the bf16 bias and FTZ add to the keys */
    for (const mf_contract *const *b = mf_contract_list(); *b; b++) {
        if ((*b)->sigmoid_form != MF_SIGMOID_EXP_DIV)
            wide.sigmoid_form = MF_SIGMOID_EXP_DIV_OR_TANH;
        if ((*b)->tanh_rel > wide.tanh_rel) wide.tanh_rel = (*b)->tanh_rel;
        wide.softmax_recip |= (*b)->softmax_recip;
        wide.ftz |= (*b)->ftz;
        wide.round_points |= (*b)->round_points & MF_RP_BIAS;
        if ((*b)->tie_rule == MF_TIE_ANY) wide.tie_rule = MF_TIE_ANY;
        wide.router_logits_dtype |= (*b)->router_logits_dtype;
    }
    /* the case and its bias shift: every admissible selection, since a correct kernel may make
     * any; a counterfactual: its exact selection where more than 2 top_k experts are in doubt
     * (saturated scores), so that a kernel with that bug reads real weights where it can */
    mf_moe_params v[2 + MF_SELECTION_KNOBS];
    const float *vbias[2 + MF_SELECTION_KNOBS];
    int vcap[2 + MF_SELECTION_KNOBS], nv = 0;
    v[nv] = *p, vbias[nv] = pb->bias, vcap[nv++] = 0;
    for (int k = 0; k < MF_SELECTION_KNOBS; k++)
        if (selection_knob(k, p, &v[nv])) vbias[nv] = pb->bias, vcap[nv++] = 2 * p->top_k;
    float *shifted = NULL; /* the metamorphic bias shift: every bias + 1, in the bias's dtype */
    if (p->bias != MF_BIAS_NONE) {
        shifted = malloc(sizeof(float) * (size_t)p->E);
        if (!shifted) return MF_FAIL(err, MF_ENOMEM, "out of memory");
        for (int e = 0; e < p->E; e++) {
            float b = pb->bias[e] + 1.0f;
            shifted[e] = p->bias == MF_BIAS_BF16 ? mf_bf16_to_f32(mf_f32_to_bf16(b)) : b;
        }
        v[nv] = *p, vbias[nv] = shifted, vcap[nv++] = 0;
    }
    mf_status st = MF_OK;
    for (int i = 0; i < nv && st == MF_OK; i++) {
        mf_moe_tensors tv = pb->t;
        tv.bias = v[i].bias != MF_BIAS_NONE ? vbias[i] : NULL;
        mf_routing rt;
        st = mf_ref_route(&v[i], &tv, &wide, &rt, err);
        if (st != MF_OK) break;
        mark_routable(&rt, &v[i], pb->t.expert_map, vcap[i], p->E_local, mask);
        mf_routing_free(&rt);
    }
    free(shifted);
    return st;
}

/* How many experts c's problem generates when lazy: its routing does not depend on H, I, x or
 * the weights, so a problem of H = I = 1 gives it. E_local where that cannot be built. */
static int routable_count(const mf_case *c) {
    mf_case s = *c;
    s.p.H = s.p.I = 1;
    mf_problem pb;
    mf_error err = {0};
    memset(&pb, 0, sizeof pb);
    uint8_t *mask = malloc((size_t)c->p.E_local);
    int n = c->p.E_local;
    if (mask && mf_problem_build(&s, &pb, &err) == MF_OK &&
        mf_problem_routable(&pb, mask, &err) == MF_OK) {
        n = 0;
        for (int le = 0; le < c->p.E_local; le++) n += mask[le];
    }
    mf_problem_free(&pb);
    free(mask);
    return n;
}
