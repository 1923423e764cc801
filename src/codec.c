/* codec.c: binary (format v1) and text case files (see codec.h, docs/case-format.md). */
#include "codec.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "bf16.h"
#include "fdp.h"

/* ---- format v1, frozen ----
 * What existing v1 bytes mean depends on these numbers and on nothing else: raising a size limit
 * of the problem model (MF_MAX_*), adding a score function, a tensor, a generator class or an rsf
 * value changes the current limits and enums, never these. Values a later format adds are out
 * of v1's reach: encode_v1 refuses a case that uses them. tests/golden/ holds v1 files with the
 * text they must decode to. */
enum {
    V1_MAX_T = MF_V1_MAX_T, V1_MAX_H = MF_V1_MAX_H, V1_MAX_I = MF_V1_MAX_I, V1_MAX_E = MF_V1_MAX_E,
    V1_MAX_K = 32,
    V1_SMALL_T = 64, V1_SMALL_H = 256, V1_SMALL_I = 256, V1_SMALL_E = 64, /* dims below 0x8000 */
    V1_N_SCORE = 2,      /* softmax, sigmoid */
    V1_N_BIAS = 3,       /* none, f32, bf16 */
    V1_N_GROUP_RULE = 2, /* top2_sum, max */
    V1_N_RSF_SITE = 2,   /* weights, output */
    V1_N_ACTIVATION = 1, /* silu_glu */
    V1_N_LAYOUT = 2,     /* gate_up, up_gate */
    V1_N_DTYPE = 2,      /* f32, bf16 */
    V1_N_TENSORS = 5,    /* x, logits, bias, w13, w2 */
    V1_N_GEN = 11,       /* normal ... large_neg, in mf_gen_class order */
    V1_MAX_POKES = 16,
};
_Static_assert((int)MF_NUM_TENSORS >= V1_N_TENSORS && (int)MF_GEN_COUNT >= V1_N_GEN &&
                   MF_MAX_POKES >= V1_MAX_POKES,
               "v1's tensors, generators and pokes stay representable");
_Static_assert(MF_MAX_T >= V1_MAX_T && MF_MAX_H >= V1_MAX_H && MF_MAX_I >= V1_MAX_I &&
                   MF_MAX_E >= V1_MAX_E && MF_MAX_K >= V1_MAX_K,
               "v1's sizes stay within the problem model's limits");

const float mf_rsf_table[MF_RSF_TABLE_SIZE] = {1.0f,   2.5f, 2.446f, 0.5f,  2.826f,
                                               2.827f, 16.f, 1.5f,   3.0f,  0.25f,
                                               2.0f,   1.25f, 4.0f,  0.75f, 8.0f};
_Static_assert(MF_RSF_TABLE_SIZE == 15, "v1's rsf table has 15 entries");
#define RSF_RAW_INDEX MF_RSF_TABLE_SIZE /* 15: a raw fp32 follows */

static const uint8_t canon_magic[3] = {'M', 'F', 'C'};
#define CANON_HEADER 9 /* magic 3 + length 2 + crc 4, after the version byte */
#define POKE_BYTES 9

/* ---- small helpers ---- */

static uint32_t crc32_ieee(const uint8_t *p, size_t n) {
    uint32_t c = 0xffffffffu;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++) c = (c >> 1) ^ (0xedb88320u & (0u - (c & 1u)));
    }
    return ~c;
}

static int dim_decode(uint16_t raw, int max, int small) {
    if (raw < 0x8000u) return 1 + (int)(raw % (unsigned)small);
    return 1 + (int)((raw - 0x8000u) % (unsigned)max);
}

static uint16_t dim_encode(int v, int small) {
    if (v <= small) return (uint16_t)(v - 1);
    return (uint16_t)(0x8000u + (unsigned)(v - 1));
}

/* divisors of E in increasing order; returns count */
static int divisors(int E, int *d) {
    int n = 0;
    for (int i = 1; i <= E; i++)
        if (E % i == 0) d[n++] = i;
    return n;
}

static float scale_decode(uint32_t bits) {
    float f = mf_f32_from_bits(bits);
    if (!isfinite(f) || f <= 0) return 0.0f;
    if (f < 0x1p-24f) return 0x1p-24f;
    if (f > 0x1p24f) return 0x1p24f;
    return f;
}

static float rsf_decode_raw(uint32_t bits) {
    float f = mf_f32_from_bits(bits);
    if (!isfinite(f) || f <= 0) return 1.0f;
    if (f < 0x1p-8f) return 0x1p-8f;
    if (f > 0x1p8f) return 0x1p8f;
    return f;
}

static int rsf_index(float rsf) {
    for (int i = 0; i < MF_RSF_TABLE_SIZE; i++)
        if (mf_f32_bits(mf_rsf_table[i]) == mf_f32_bits(rsf)) return i;
    return RSF_RAW_INDEX;
}

static uint32_t get_le32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void put_le32(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}

/* ---- binary v1 ---- */

/* v1's fields, from the end (also the first fields of v2) */
static void decode_v1_fields(mf_fdp *f, mf_case *c) {
    memset(c, 0, sizeof *c);
    mf_moe_params *p = &c->p;
    p->T = dim_decode(mf_fdp_u16(f), V1_MAX_T, V1_SMALL_T);
    p->H = dim_decode(mf_fdp_u16(f), V1_MAX_H, V1_SMALL_H);
    p->I = dim_decode(mf_fdp_u16(f), V1_MAX_I, V1_SMALL_I);
    p->E = dim_decode(mf_fdp_u16(f), V1_MAX_E, V1_SMALL_E);
    int kmax = p->E < V1_MAX_K ? p->E : V1_MAX_K;
    p->top_k = 1 + mf_fdp_u8(f) % kmax;
    p->score = (mf_score_fn)(mf_fdp_u8(f) % V1_N_SCORE);
    p->bias = (mf_bias_kind)(mf_fdp_u8(f) % V1_N_BIAS);
    p->group_rule = (mf_group_rule)(mf_fdp_u8(f) % V1_N_GROUP_RULE);
    int d[64];
    int nd = divisors(p->E, d);
    p->n_group = d[mf_fdp_u8(f) % nd];
    p->topk_group = 1 + mf_fdp_u16(f) % p->n_group;
    int G = p->E / p->n_group;
    while (p->topk_group * G < p->top_k) p->topk_group++;
    p->E_local = p->E - mf_fdp_u16(f) % p->E;
    p->expert_offset = mf_fdp_u16(f) % (p->E - p->E_local + 1);
    p->renormalize = mf_fdp_u8(f) % 2 == 0;
    p->renorm_eps = mf_fdp_u8(f) % 2 == 0 ? 1e-20f : 0.0f;
    int ri = mf_fdp_u8(f) % (MF_RSF_TABLE_SIZE + 1);
    p->rsf = ri == RSF_RAW_INDEX ? rsf_decode_raw(mf_fdp_u32(f)) : mf_rsf_table[ri];
    p->rsf_site = (mf_rsf_site)(mf_fdp_u8(f) % V1_N_RSF_SITE);
    p->activation = (mf_activation)(mf_fdp_u8(f) % V1_N_ACTIVATION);
    p->layout = (mf_layout)(mf_fdp_u8(f) % V1_N_LAYOUT);
    p->logits_dtype = (mf_dtype)(mf_fdp_u8(f) % V1_N_DTYPE);
    for (int t = 0; t < V1_N_TENSORS; t++) {
        c->gen[t].cls = (uint8_t)(mf_fdp_u8(f) % V1_N_GEN);
        c->gen[t].scale = scale_decode(mf_fdp_u32(f));
        c->gen[t].seed = mf_fdp_u64(f);
    }
}

/* The front of a v1 or v2 file: the optional canonical header, then pokes. v1 takes a poke's
 * tensor byte modulo its 5 tensors; v2 takes the byte as the tensor id and drops a poke of an id
 * this build does not know. */
static void decode_front(mf_fdp *f, mf_case *c, int version) {
    if (f->size >= CANON_HEADER && memcmp(f->data, canon_magic, 3) == 0)
        mf_fdp_front(f, CANON_HEADER);
    const uint8_t *k;
    while (c->n_pokes < V1_MAX_POKES && (k = mf_fdp_front(f, POKE_BYTES)) != NULL) {
        if (version >= 2 && k[0] >= MF_NUM_TENSORS) continue;
        mf_poke *pk = &c->pokes[c->n_pokes++];
        pk->tensor = (uint8_t)(version >= 2 ? k[0] : k[0] % V1_N_TENSORS);
        pk->index = get_le32(k + 1);
        pk->bits = get_le32(k + 5);
    }
}

static void decode_v1(mf_fdp *f, mf_case *c) {
    decode_v1_fields(f, c);
    decode_front(f, c, 1);
}

/* 1 if the binary formats can carry the case's sizes: v2 keeps v1's dimension fields, so a case
 * beyond v1's dimensions (the full model sizes the text format takes) has no binary form */
static int binary_dims_fit(const mf_case *c) {
    const mf_moe_params *p = &c->p;
    return p->T <= V1_MAX_T && p->H <= V1_MAX_H && p->I <= V1_MAX_I && p->E <= V1_MAX_E &&
           p->top_k <= V1_MAX_K && c->n_pokes <= V1_MAX_POKES;
}

/* 1 if v1 can carry the case: every value within v1's limits and enums */
static int v1_can_encode(const mf_case *c) {
    const mf_moe_params *p = &c->p;
    if (!binary_dims_fit(c)) return 0;
    if ((unsigned)p->score >= V1_N_SCORE || (unsigned)p->bias >= V1_N_BIAS ||
        (unsigned)p->group_rule >= V1_N_GROUP_RULE || (unsigned)p->rsf_site >= V1_N_RSF_SITE ||
        (unsigned)p->activation >= V1_N_ACTIVATION || (unsigned)p->layout >= V1_N_LAYOUT ||
        (unsigned)p->logits_dtype >= V1_N_DTYPE)
        return 0;
    for (int t = 0; t < V1_N_TENSORS; t++)
        if (c->gen[t].cls >= V1_N_GEN) return 0;
    for (int i = 0; i < c->n_pokes; i++)
        if (c->pokes[i].tensor >= V1_N_TENSORS) return 0;
    if (c->rows != 0) return 0;
    /* the v2 parameters at 0; the tensors v1 does not know are then absent (their generators
     * do not matter) */
    for (int i = 0; i < mf_n_params_v2; i++)
        if (mf_param_v2_get(p, &mf_params_v2[i]) != 0) return 0;
    for (int t = V1_N_TENSORS; t < MF_NUM_TENSORS; t++)
        if (mf_tensor_present(p, (mf_tensor_id)t)) return 0;
    return 1;
}

static void encode_v1(const mf_case *c, mf_fdp_writer *w) {
    const mf_moe_params *p = &c->p;
    mf_fdpw_uint(w, dim_encode(p->T, V1_SMALL_T), 2);
    mf_fdpw_uint(w, dim_encode(p->H, V1_SMALL_H), 2);
    mf_fdpw_uint(w, dim_encode(p->I, V1_SMALL_I), 2);
    mf_fdpw_uint(w, dim_encode(p->E, V1_SMALL_E), 2);
    mf_fdpw_uint(w, (uint64_t)(p->top_k - 1), 1);
    mf_fdpw_uint(w, (uint64_t)p->score, 1);
    mf_fdpw_uint(w, (uint64_t)p->bias, 1);
    mf_fdpw_uint(w, (uint64_t)p->group_rule, 1);
    int d[64];
    int nd = divisors(p->E, d), gi = 0;
    for (int i = 0; i < nd; i++)
        if (d[i] == p->n_group) gi = i;
    mf_fdpw_uint(w, (uint64_t)gi, 1);
    mf_fdpw_uint(w, (uint64_t)(p->topk_group - 1), 2);
    mf_fdpw_uint(w, (uint64_t)(p->E - p->E_local), 2);
    mf_fdpw_uint(w, (uint64_t)p->expert_offset, 2);
    mf_fdpw_uint(w, p->renormalize ? 0 : 1, 1);
    mf_fdpw_uint(w, p->renorm_eps != 0.0f ? 0 : 1, 1);
    int ri = rsf_index(p->rsf);
    mf_fdpw_uint(w, (uint64_t)ri, 1);
    if (ri == RSF_RAW_INDEX) mf_fdpw_uint(w, mf_f32_bits(p->rsf), 4);
    mf_fdpw_uint(w, (uint64_t)p->rsf_site, 1);
    mf_fdpw_uint(w, (uint64_t)p->activation, 1);
    mf_fdpw_uint(w, (uint64_t)p->layout, 1);
    mf_fdpw_uint(w, (uint64_t)p->logits_dtype, 1);
    for (int t = 0; t < V1_N_TENSORS; t++) {
        mf_fdpw_uint(w, c->gen[t].cls, 1);
        mf_fdpw_uint(w, mf_f32_bits(c->gen[t].scale), 4);
        mf_fdpw_uint(w, c->gen[t].seed, 8);
    }
}

/* ---- binary v2: v1's fields, then tagged fields, then v1's front ----
 * After v1's fields, a u8 count n and n tagged fields, each a u8 tag and its value. Tags are
 * assigned once and never change (docs/case-format.md): a tag this build does not know carries
 * no value and is skipped. Tag ranges: */
enum {
    V2_TAG_PARAM = 0,      /* 0..63: the parameter of that tag in MF_PARAM_V2_LIST */
    V2_TAG_V1_ENUM = 64,   /* 64..71: a v1 enum field with a value past v1's (v1_enum_fields) */
    V2_TAG_ROWS = 72,      /* the case's rows (u32), when not 0 */
    V2_TAG_GEN = 128,      /* 128 + t: tensor t's generator (class u8, scale u32, seed u64) */
};

/* v1's enum fields, by tag V2_TAG_V1_ENUM + index: the v1 field holds 0 and this tag the value,
 * when a later level appends values to their lists. Append only. */
static const struct {
    size_t offset;
    const mf_enum_info *e;
    int v1_count;
} v1_enum_fields[] = {
    {offsetof(mf_moe_params, score), &mf_enum_score, V1_N_SCORE},
    {offsetof(mf_moe_params, bias), &mf_enum_bias, V1_N_BIAS},
    {offsetof(mf_moe_params, group_rule), &mf_enum_group_rule, V1_N_GROUP_RULE},
    {offsetof(mf_moe_params, rsf_site), &mf_enum_rsf_site, V1_N_RSF_SITE},
    {offsetof(mf_moe_params, activation), &mf_enum_activation, V1_N_ACTIVATION},
    {offsetof(mf_moe_params, layout), &mf_enum_layout, V1_N_LAYOUT},
    {offsetof(mf_moe_params, logits_dtype), &mf_enum_dtype, V1_N_DTYPE},
};
enum { N_V1_ENUM_FIELDS = (int)(sizeof v1_enum_fields / sizeof v1_enum_fields[0]) };
_Static_assert(N_V1_ENUM_FIELDS <= 8, "v1 enum tags fit 64..71");

static int enum_field_get(const mf_moe_params *p, int i) {
    int v;
    memcpy(&v, (const char *)p + v1_enum_fields[i].offset, sizeof v);
    return v;
}
static void enum_field_set(mf_moe_params *p, int i, int v) {
    memcpy((char *)p + v1_enum_fields[i].offset, &v, sizeof v);
}

static const mf_param_v2 *param_of_tag(int tag) {
    for (int i = 0; i < mf_n_params_v2; i++)
        if (mf_params_v2[i].tag == tag) return &mf_params_v2[i];
    return NULL;
}

static double param_decode(mf_fdp *f, const mf_param_v2 *d) {
    switch (d->kind) {
    case MF_PK_ENUM: return (double)(mf_fdp_u8(f) % (unsigned)d->e->count);
    case MF_PK_INT: {
        uint32_t raw = mf_fdp_u32(f);
        if (raw == 0) return 0;
        return d->lo + (double)(raw % (uint32_t)(d->hi - d->lo + 1));
    }
    default: {
        double v = (double)mf_f32_from_bits(mf_fdp_u32(f));
        return mf_param_v2_valid(d, v) ? v : 0;
    }
    }
}

static void param_encode(mf_fdp_writer *w, const mf_param_v2 *d, double v) {
    switch (d->kind) {
    case MF_PK_ENUM: mf_fdpw_uint(w, (uint64_t)v, 1); break;
    case MF_PK_INT: {
        /* raw 0 reads as 0: the value lo is written as the range, which reads back as lo */
        uint64_t raw = (uint64_t)(v - d->lo);
        mf_fdpw_uint(w, v == 0 ? 0 : raw ? raw : (uint64_t)(d->hi - d->lo + 1), 4);
        break;
    }
    default: mf_fdpw_uint(w, mf_f32_bits((float)v), 4); break;
    }
}

static void decode_v2(mf_fdp *f, mf_case *c) {
    decode_v1_fields(f, c);
    mf_moe_params *p = &c->p;
    int n = mf_fdp_u8(f);
    for (int i = 0; i < n; i++) {
        int tag = mf_fdp_u8(f);
        const mf_param_v2 *d;
        if (tag >= V2_TAG_GEN) {
            int t = tag - V2_TAG_GEN;
            if (t >= MF_NUM_TENSORS) continue;
            unsigned cls = mf_fdp_u8(f);
            c->gen[t].cls = (uint8_t)(cls < MF_GEN_COUNT ? cls : cls % V1_N_GEN);
            c->gen[t].scale = scale_decode(mf_fdp_u32(f));
            c->gen[t].seed = mf_fdp_u64(f);
        } else if (tag == V2_TAG_ROWS) {
            c->rows = (int)(mf_fdp_u32(f) % (MF_MAX_T + 1u));
        } else if (tag >= V2_TAG_V1_ENUM) {
            int j = tag - V2_TAG_V1_ENUM;
            if (j >= N_V1_ENUM_FIELDS) continue;
            enum_field_set(p, j, mf_fdp_u8(f) % v1_enum_fields[j].e->count);
        } else if ((d = param_of_tag(tag)) != NULL) {
            mf_param_v2_set(p, d, param_decode(f, d));
        }
    }
    mf_case_fix_v2(c);
    mf_case_drop_absent_gens(c); /* the case reads the same whichever format encodes it */
    decode_front(f, c, 2);
}

/* 1 if tensor t's generator goes in a tag: a v1 tensor's class that v1 cannot carry, or a used
 * v2 tensor's generator other than all zero (mf_case_drop_absent_gens) */
static int v2_gen_tagged(const mf_case *c, int t) {
    const mf_gen *g = &c->gen[t];
    if (t < V1_N_TENSORS) return g->cls >= V1_N_GEN;
    return mf_tensor_present(&c->p, (mf_tensor_id)t) && (g->cls || g->scale != 0 || g->seed);
}

/* v2's tagged fields of c (what v1's fields cannot carry) */
static void encode_v2_tags(const mf_case *c, mf_fdp_writer *w) {
    const mf_moe_params *p = &c->p;
    int n = 0;
    for (int i = 0; i < mf_n_params_v2; i++) n += mf_param_v2_get(p, &mf_params_v2[i]) != 0;
    for (int j = 0; j < N_V1_ENUM_FIELDS; j++)
        n += enum_field_get(p, j) >= v1_enum_fields[j].v1_count;
    for (int t = 0; t < MF_NUM_TENSORS; t++)
        n += v2_gen_tagged(c, t);
    n += c->rows != 0;
    mf_fdpw_uint(w, (uint64_t)n, 1);
    if (c->rows) {
        mf_fdpw_uint(w, V2_TAG_ROWS, 1);
        mf_fdpw_uint(w, (uint64_t)c->rows, 4);
    }
    for (int i = 0; i < mf_n_params_v2; i++) {
        double v = mf_param_v2_get(p, &mf_params_v2[i]);
        if (v == 0) continue;
        mf_fdpw_uint(w, (uint64_t)(V2_TAG_PARAM + mf_params_v2[i].tag), 1);
        param_encode(w, &mf_params_v2[i], v);
    }
    for (int j = 0; j < N_V1_ENUM_FIELDS; j++)
        if (enum_field_get(p, j) >= v1_enum_fields[j].v1_count) {
            mf_fdpw_uint(w, (uint64_t)(V2_TAG_V1_ENUM + j), 1);
            mf_fdpw_uint(w, (uint64_t)enum_field_get(p, j), 1);
        }
    for (int t = 0; t < MF_NUM_TENSORS; t++) {
        const mf_gen *g = &c->gen[t];
        if (!v2_gen_tagged(c, t)) continue;
        mf_fdpw_uint(w, (uint64_t)(V2_TAG_GEN + t), 1);
        mf_fdpw_uint(w, g->cls, 1);
        mf_fdpw_uint(w, mf_f32_bits(g->scale), 4);
        mf_fdpw_uint(w, g->seed, 8);
    }
}

/* v1's fields of c in v2: its values v1 cannot hold are 0 there and carried by tags */
static void encode_v2(const mf_case *c, mf_fdp_writer *w) {
    mf_case b = *c;
    for (int j = 0; j < N_V1_ENUM_FIELDS; j++)
        if (enum_field_get(&b.p, j) >= v1_enum_fields[j].v1_count) enum_field_set(&b.p, j, 0);
    for (int t = 0; t < V1_N_TENSORS; t++)
        if (b.gen[t].cls >= V1_N_GEN) b.gen[t].cls = 0;
    encode_v1(&b, w);
    encode_v2_tags(c, w);
}

int mf_case_format(const mf_case *c) { return v1_can_encode(c) ? 1 : 2; }

void mf_case_decode(const uint8_t *data, size_t size, mf_case *c, int *version) {
    int v = size > 0 ? data[0] : 1;
    if (v != 2) v = 1; /* unknown versions decode as v1 (see codec.h) */
    mf_fdp f = {size > 0 ? data + 1 : data, size > 0 ? size - 1 : 0};
    if (v == 2) decode_v2(&f, c);
    else decode_v1(&f, c);
    if (version) *version = v;
}

size_t mf_case_encode(const mf_case *c, int canonical, uint8_t *out, size_t cap) {
    if (mf_case_validate(c, NULL) != MF_OK || !binary_dims_fit(c)) return 0;
    int version = mf_case_format(c);
    mf_fdp_writer w;
    memset(&w, 0, sizeof w);
    if (version == 1) encode_v1(c, &w);
    else encode_v2(c, &w);
    if (w.ntail >= MF_FDP_MAX) return 0;
    uint8_t hdr[CANON_HEADER] = {0};
    if (canonical) {
        memcpy(hdr, canon_magic, 3);
        mf_fdpw_front(&w, hdr, CANON_HEADER); /* length and crc filled in below */
    }
    for (int i = 0; i < c->n_pokes; i++) {
        uint8_t b[POKE_BYTES];
        b[0] = c->pokes[i].tensor;
        put_le32(b + 1, c->pokes[i].index);
        put_le32(b + 5, c->pokes[i].bits);
        mf_fdpw_front(&w, b, POKE_BYTES);
    }
    uint8_t ver = (uint8_t)version;
    size_t n = mf_fdpw_finish(&w, &ver, 1, out, cap);
    if (n == 0) return 0;
    if (canonical) {
        out[4] = (uint8_t)(n & 0xff);
        out[5] = (uint8_t)(n >> 8);
        put_le32(out + 6, crc32_ieee(out + 1 + CANON_HEADER, n - 1 - CANON_HEADER));
    }
    return n;
}

mf_bin_kind mf_case_classify(const uint8_t *data, size_t size, char *why, size_t why_len) {
    if (size >= 1 + CANON_HEADER && memcmp(data + 1, canon_magic, 3) == 0) {
        size_t len = (size_t)data[4] | (size_t)data[5] << 8;
        if (len != size) {
            snprintf(why, why_len, "canonical case of %zu bytes, but the file has %zu: truncated "
                     "or extended", len, size);
            return MF_BIN_DAMAGED;
        }
        uint32_t crc = crc32_ieee(data + 1 + CANON_HEADER, size - 1 - CANON_HEADER);
        if (crc != get_le32(data + 6)) {
            snprintf(why, why_len, "canonical case with a bad checksum (%08x, expected %08x): "
                     "corrupted", crc, get_le32(data + 6));
            return MF_BIN_DAMAGED;
        }
        if (data[0] < 1 || data[0] > MF_CASE_FORMAT_VERSION) {
            snprintf(why, why_len, "case format version %u is not one this moefuzz knows (v1 to "
                     "v%d)", data[0], MF_CASE_FORMAT_VERSION);
            return MF_BIN_DAMAGED;
        }
        return MF_BIN_CANONICAL;
    }
    snprintf(why, why_len, "raw bytes (%zu): no canonical header", size);
    return MF_BIN_RAW;
}

/* ---- text ---- */

static const char *bool_name(int b) { return b ? "true" : "false"; }

void mf_param_v2_text(const mf_moe_params *p, int i, char *buf, size_t n) {
    const mf_param_v2 *d = &mf_params_v2[i];
    double v = mf_param_v2_get(p, d);
    if (d->kind == MF_PK_ENUM) snprintf(buf, n, "%s", mf_enum_name(d->e, (int)v));
    else snprintf(buf, n, "%.9g", v);
}

void mf_case_print_text(const mf_case *c, FILE *f) {
    const mf_moe_params *p = &c->p;
    int version = mf_case_format(c);
    fprintf(f, "# moefuzz case (format v%d)\n", version);
    fprintf(f, "T = %d\nH = %d\nI = %d\nE = %d\nE_local = %d\nexpert_offset = %d\ntop_k = %d\n",
            p->T, p->H, p->I, p->E, p->E_local, p->expert_offset, p->top_k);
    fprintf(f, "score = %s\nbias = %s\nn_group = %d\ntopk_group = %d\ngroup_rule = %s\n",
            mf_score_name(p->score), mf_bias_name(p->bias), p->n_group, p->topk_group,
            mf_group_rule_name(p->group_rule));
    fprintf(f, "renormalize = %s\neps = %s\nrsf = %.9g\nrsf_site = %s\n",
            bool_name(p->renormalize), p->renorm_eps != 0 ? "1e-20" : "0", (double)p->rsf,
            mf_rsf_site_name(p->rsf_site));
    fprintf(f, "activation = %s\nlayout = %s\nlogits_dtype = %s\n",
            mf_activation_name(p->activation), mf_layout_name(p->layout),
            mf_dtype_name(p->logits_dtype));
    if (version >= 2)
        for (int i = 0; i < mf_n_params_v2; i++) {
            char v[48];
            mf_param_v2_text(p, i, v, sizeof v);
            fprintf(f, "%s = %s\n", mf_params_v2[i].key, v);
        }
    for (int t = 0; t < MF_NUM_TENSORS; t++) {
        const mf_gen *g = &c->gen[t];
        if (version == 1 && t >= V1_N_TENSORS) continue; /* absent in a v1 case */
        fprintf(f, "gen.%s = %s", mf_tensor_name((mf_tensor_id)t),
                mf_gen_class_name((mf_gen_class)g->cls));
        if (g->scale > 0) fprintf(f, " scale=%.9g", (double)g->scale);
        fprintf(f, " seed=0x%016" PRIx64 "\n", g->seed);
    }
    if (c->rows) fprintf(f, "rows = %d\n", c->rows);
    for (int i = 0; i < c->n_pokes; i++)
        fprintf(f, "poke = %s %" PRIu32 " 0x%08" PRIx32 "\n",
                mf_tensor_name((mf_tensor_id)c->pokes[i].tensor), c->pokes[i].index,
                c->pokes[i].bits);
}

static int parse_int(const char *v, long lo, long hi, long *out) {
    char *end;
    errno = 0;
    long x = strtol(v, &end, 0);
    if (errno || end == v || *end != '\0' || x < lo || x > hi) return 0;
    *out = x;
    return 1;
}

static int parse_u64(const char *v, uint64_t *out) {
    char *end;
    errno = 0;
    if (*v == '-') return 0;
    unsigned long long x = strtoull(v, &end, 0);
    if (errno || end == v || *end != '\0') return 0;
    *out = (uint64_t)x;
    return 1;
}

static int parse_float(const char *v, float *out) {
    char *end;
    errno = 0;
    float x = strtof(v, &end);
    if (errno || end == v || *end != '\0') return 0;
    *out = x;
    return 1;
}

static int parse_bool(const char *v, int *out) {
    if (!strcmp(v, "true") || !strcmp(v, "1") || !strcmp(v, "yes")) return *out = 1, 1;
    if (!strcmp(v, "false") || !strcmp(v, "0") || !strcmp(v, "no")) return *out = 0, 1;
    return 0;
}

static int lookup(const char *v, const char *const *names, int n) {
    for (int i = 0; i < n; i++)
        if (!strcmp(v, names[i])) return i;
    return -1;
}

static int tensor_of(const char *v) { return mf_tensor_lookup(v); }

/* "x, logits, ...": the tensor names for messages */
#define MF_TENSOR_NAME_LIST_(ID, name, ...) ", " #name
static const char tensor_names[] = MF_TENSOR_LIST(MF_TENSOR_NAME_LIST_);
#undef MF_TENSOR_NAME_LIST_

static char *trim(char *s) {
    while (isspace((unsigned char)*s)) s++;
    char *e = s + strlen(s);
    while (e > s && isspace((unsigned char)e[-1])) *--e = '\0';
    return s;
}

static mf_status parse_gen(char *v, mf_gen *g, int line, mf_error *err) {
    char *save = NULL;
    char *tok = strtok_r(v, " \t", &save);
    static const char *const cls[] = {"normal",   "uniform",  "heavy",     "sparse",
                                      "integer",  "ties",     "near_ties", "negative",
                                      "underflow", "large_pos", "large_neg"};
    int ci = tok ? lookup(tok, cls, MF_GEN_COUNT) : -1;
    if (ci < 0)
        return MF_FAIL(err, MF_EINVAL, "line %d: unknown generator class '%s'", line,
                       tok ? tok : "");
    g->cls = (uint8_t)ci;
    while ((tok = strtok_r(NULL, " \t", &save)) != NULL) {
        if (!strncmp(tok, "scale=", 6)) {
            float s;
            if (!parse_float(tok + 6, &s) || !(s == 0 || (s >= 0x1p-24f && s <= 0x1p24f)))
                return MF_FAIL(err, MF_EINVAL,
                               "line %d: scale '%s' must be 0 (default) or in [2^-24, 2^24]",
                               line, tok + 6);
            g->scale = s;
        } else if (!strncmp(tok, "seed=", 5)) {
            if (!parse_u64(tok + 5, &g->seed))
                return MF_FAIL(err, MF_EINVAL, "line %d: bad seed '%s'", line, tok + 5);
        } else {
            return MF_FAIL(err, MF_EINVAL, "line %d: unexpected '%s' (scale= or seed=)", line,
                           tok);
        }
    }
    return MF_OK;
}

/* A v2 parameter's value: an enum's name, a whole number, an fp32 value; 0 is v1's semantics */
static mf_status parse_param_v2(const mf_param_v2 *d, const char *val, mf_moe_params *p, int line,
                                mf_error *err) {
    double v;
    if (d->kind == MF_PK_ENUM) {
        int e = mf_enum_lookup(d->e, val);
        if (e < 0) {
            char choices[256];
            return MF_FAIL(err, MF_EINVAL, "line %d: bad value '%s' for %s (%s)", line, val,
                           d->key, mf_enum_choices(d->e, choices, sizeof choices));
        }
        v = e;
    } else if (d->kind == MF_PK_INT) {
        long x;
        if (!parse_int(val, (long)d->lo, (long)d->hi, &x) && strcmp(val, "0"))
            return MF_FAIL(err, MF_EINVAL, "line %d: %s = '%s' is not 0 or in [%g, %g]", line,
                           d->key, val, d->lo, d->hi);
        v = strcmp(val, "0") ? (double)x : 0;
    } else {
        float x;
        if (!parse_float(val, &x) || !mf_param_v2_valid(d, (double)x))
            return MF_FAIL(err, MF_EINVAL, "line %d: %s = '%s' is not 0 or in [%g, %g]", line,
                           d->key, val, d->lo, d->hi);
        v = (double)x;
    }
    mf_param_v2_set(p, d, v);
    return MF_OK;
}

/* Every key a text case must name, or list on its `defaults = ...` line: a truncated file, or one
 * that is not a case at all, is refused instead of checked as a different case. */
static const char *const required_keys[] = {
    "T",      "H",           "I",      "E",        "E_local",    "expert_offset", "top_k",
    "score",  "bias",        "n_group", "topk_group", "group_rule", "renormalize", "eps",
    "rsf",    "rsf_site",    "activation", "layout", "logits_dtype",
#define MF_TENSOR_GEN_KEY_(ID, name, storage, rank, d0, d1, d2, bf16, present, scale, kept, slot, \
                           level)                                                                \
    (level) == 1 ? "gen." #name : NULL,
    MF_TENSOR_LIST(MF_TENSOR_GEN_KEY_)
#undef MF_TENSOR_GEN_KEY_
};
enum { N_REQUIRED_KEYS = sizeof required_keys / sizeof required_keys[0] };
_Static_assert(N_REQUIRED_KEYS <= 64, "the keys a text case names fit the uint64_t masks");
#define MF_PARAM_V2_ONE_(...) +1
_Static_assert(0 MF_PARAM_V2_LIST(MF_PARAM_V2_ONE_) <= 32 && MF_NUM_TENSORS <= 32,
               "v2 parameters and tensors fit parse's seen_v2 mask");
#undef MF_PARAM_V2_ONE_

static int required_key_index(const char *key) {
    for (int i = 0; i < N_REQUIRED_KEYS; i++)
        if (required_keys[i] && !strcmp(key, required_keys[i])) return i;
    return -1;
}

/* `defaults = KEY KEY ...` (spaces or commas): the keys this file leaves at their defaults */
static mf_status parse_defaults(char *v, uint64_t *mask, int line, mf_error *err) {
    char *save = NULL;
    for (char *tok = strtok_r(v, " \t,", &save); tok; tok = strtok_r(NULL, " \t,", &save)) {
        int i = required_key_index(tok);
        if (i < 0)
            return MF_FAIL(err, MF_EINVAL, "line %d: '%s' in defaults is not a key of the case",
                           line, tok);
        *mask |= 1ull << i;
    }
    return MF_OK;
}

static void append_keys(char *buf, size_t n, uint64_t mask) {
    size_t len = strlen(buf);
    for (int i = 0; i < N_REQUIRED_KEYS && len + 1 < n; i++)
        if (required_keys[i] && (mask & (1ull << i))) {
            snprintf(buf + len, n - len, "%s%s", len ? " " : "", required_keys[i]);
            len = strlen(buf);
        }
}

mf_status mf_case_parse_text(const char *text, mf_case *c, mf_error *err) {
    mf_case_default(c);
    size_t n = strlen(text);
    char *buf = malloc(n + 1);
    if (!buf) return MF_FAIL(err, MF_ENOMEM, "out of memory");
    memcpy(buf, text, n + 1);
    mf_status st = MF_OK;
    int line = 0;
    char *save = NULL;
    mf_moe_params *p = &c->p;
    int npokes = 0;
    int set_E_local = 0;
    uint64_t seen = 0, defaulted = 0;
    uint64_t seen_v2 = 0; /* v2 parameters (bit i), generators of v2 tensors (bit 32 + t) */
    /* a hand-written case without these keys means: no expert parallelism, no grouping */
    p->n_group = 1;
    p->topk_group = 1;
    for (char *ln = buf; ln && st == MF_OK; ln = save) {
        char *nl = strchr(ln, '\n');
        save = nl ? nl + 1 : NULL;
        if (nl) *nl = '\0';
        line++;
        char *hash = strchr(ln, '#');
        if (hash) *hash = '\0';
        char *s = trim(ln);
        if (!*s) continue;
        char *eq = strchr(s, '=');
        if (!eq) {
            st = MF_FAIL(err, MF_EINVAL, "line %d: expected 'key = value', got '%s'", line, s);
            break;
        }
        *eq = '\0';
        char *key = trim(s), *val = trim(eq + 1);
        long x;
        int ok = 1;
        int ki = required_key_index(key);
        if (ki >= 0) {
            if (seen & (1ull << ki)) {
                st = MF_FAIL(err, MF_EINVAL, "line %d: %s given twice", line, key);
                break;
            }
            seen |= 1ull << ki;
        }
#define INT_KEY(name, field, lo, hi)                 \
    else if (!strcmp(key, name)) {                   \
        ok = parse_int(val, lo, hi, &x);             \
        if (ok) field = (int)x;                      \
    }
#define ENUM_KEY(name, info, field, type)                                        \
    else if (!strcmp(key, name)) {                                               \
        int v = mf_enum_lookup(&info, val);                                      \
        if (v < 0) {                                                             \
            char choices[256];                                                   \
            st = MF_FAIL(err, MF_EINVAL, "line %d: bad value '%s' for %s (%s)", line, \
                         val, key, mf_enum_choices(&info, choices, sizeof choices)); \
            break;                                                               \
        }                                                                        \
        field = (type)v;                                                         \
    }
        if (!strcmp(key, "version")) {
            ok = parse_int(val, 1, MF_CASE_FORMAT_VERSION, &x);
        }
        else if (!strcmp(key, "defaults")) {
            st = parse_defaults(val, &defaulted, line, err);
            if (st != MF_OK) break;
        }
        INT_KEY("T", p->T, 1, MF_MAX_T)
        INT_KEY("H", p->H, 1, MF_MAX_H)
        INT_KEY("I", p->I, 1, MF_MAX_I)
        INT_KEY("E", p->E, 1, MF_MAX_E)
        else if (!strcmp(key, "E_local")) {
            ok = parse_int(val, 1, MF_MAX_E, &x);
            if (ok) p->E_local = (int)x, set_E_local = 1;
        }
        INT_KEY("expert_offset", p->expert_offset, 0, MF_MAX_E)
        INT_KEY("top_k", p->top_k, 1, MF_MAX_K)
        else if (!strcmp(key, "n_group")) {
            ok = parse_int(val, 1, MF_MAX_E, &x);
            if (ok) p->n_group = (int)x;
        }
        INT_KEY("topk_group", p->topk_group, 1, MF_MAX_E)
        INT_KEY("rows", c->rows, 0, MF_MAX_T)
        ENUM_KEY("score", mf_enum_score, p->score, mf_score_fn)
        ENUM_KEY("bias", mf_enum_bias, p->bias, mf_bias_kind)
        ENUM_KEY("group_rule", mf_enum_group_rule, p->group_rule, mf_group_rule)
        else if (!strcmp(key, "renormalize")) ok = parse_bool(val, &p->renormalize);
        else if (!strcmp(key, "eps")) {
            float e;
            ok = parse_float(val, &e) && (e == 0.0f || e == 1e-20f);
            if (ok) p->renorm_eps = e;
        }
        else if (!strcmp(key, "rsf")) {
            float r;
            ok = parse_float(val, &r) && r >= 0x1p-8f && r <= 0x1p8f;
            if (ok) p->rsf = r;
        }
        ENUM_KEY("rsf_site", mf_enum_rsf_site, p->rsf_site, mf_rsf_site)
        ENUM_KEY("activation", mf_enum_activation, p->activation, mf_activation)
        ENUM_KEY("layout", mf_enum_layout, p->layout, mf_layout)
        ENUM_KEY("logits_dtype", mf_enum_dtype, p->logits_dtype, mf_dtype)
        else if (mf_param_v2_lookup(key)) {
            const mf_param_v2 *d = mf_param_v2_lookup(key);
            uint64_t bit = 1ull << (d - mf_params_v2);
            if (seen_v2 & bit) {
                st = MF_FAIL(err, MF_EINVAL, "line %d: %s given twice", line, key);
                break;
            }
            seen_v2 |= bit;
            st = parse_param_v2(d, val, p, line, err);
            if (st != MF_OK) break;
        }
        else if (!strncmp(key, "gen.", 4)) {
            int t = tensor_of(key + 4);
            if (t < 0) {
                st = MF_FAIL(err, MF_EINVAL, "line %d: unknown tensor '%s' (%s)", line, key + 4,
                             tensor_names + 2);
                break;
            }
            if (ki < 0 && (seen_v2 & (1ull << (32 + t)))) {
                st = MF_FAIL(err, MF_EINVAL, "line %d: %s given twice", line, key);
                break;
            }
            seen_v2 |= 1ull << (32 + t);
            st = parse_gen(val, &c->gen[t], line, err);
            if (st != MF_OK) break;
        }
        else if (!strcmp(key, "poke")) {
            char tn[16];
            unsigned long long idx, bits;
            char extra;
            if (npokes >= MF_MAX_POKES) {
                st = MF_FAIL(err, MF_EINVAL, "line %d: more than %d pokes", line, MF_MAX_POKES);
                break;
            }
            if (sscanf(val, "%15s %llu %llx %c", tn, &idx, &bits, &extra) != 3 ||
                tensor_of(tn) < 0 || idx > 0xffffffffull || bits > 0xffffffffull) {
                st = MF_FAIL(err, MF_EINVAL, "line %d: poke must be '<tensor> <index> <hex bits>'",
                             line);
                break;
            }
            mf_poke *pk = &c->pokes[npokes++];
            pk->tensor = (uint8_t)tensor_of(tn);
            pk->index = (uint32_t)idx;
            pk->bits = (uint32_t)bits;
        }
        else {
            st = MF_FAIL(err, MF_EINVAL, "line %d: unknown key '%s'", line, key);
            break;
        }
#undef INT_KEY
#undef ENUM_KEY
        if (!ok) st = MF_FAIL(err, MF_EINVAL, "line %d: bad value '%s' for %s", line, val, key);
    }
    c->n_pokes = npokes;
    free(buf);
    if (!set_E_local) p->E_local = p->E - p->expert_offset;
    if (st == MF_OK && (seen & defaulted)) {
        char both[512] = "";
        append_keys(both, sizeof both, seen & defaulted);
        st = MF_FAIL(err, MF_EINVAL, "%s both set and listed in defaults", both);
    }
    uint64_t all = 0;
    for (int i = 0; i < N_REQUIRED_KEYS; i++)
        if (required_keys[i]) all |= 1ull << i;
    if (st == MF_OK && (all & ~seen & ~defaulted)) {
        char missing[512] = "";
        append_keys(missing, sizeof missing, all & ~seen & ~defaulted);
        st = MF_FAIL(err, MF_EINVAL,
                     "not a complete case: missing %s (a case file names every key, or lists "
                     "the keys it leaves at their defaults on a line `defaults = KEY ...`)",
                     missing);
    }
    if (st == MF_OK) {
        mf_error e2;
        if (mf_case_validate(c, &e2) != MF_OK)
            st = MF_FAIL(err, MF_EINVAL, "invalid case: %s", e2.msg);
    }
    return st;
}

/* ---- files ---- */

mf_status mf_read_file(const char *path, uint8_t **data, size_t *size, size_t max_size,
                       mf_error *err) {
    FILE *f = fopen(path, "rb");
    if (!f) return MF_FAIL(err, MF_EIO, "cannot open %s: %s", path, strerror(errno));
    size_t cap = 4096, n = 0;
    uint8_t *buf = malloc(cap + 1);
    if (!buf) {
        fclose(f);
        return MF_FAIL(err, MF_ENOMEM, "out of memory reading %s", path);
    }
    for (;;) {
        if (n == cap) {
            if (cap >= max_size) {
                free(buf);
                fclose(f);
                return MF_FAIL(err, MF_EINVAL, "%s is larger than %zu bytes", path, max_size);
            }
            cap *= 2;
            uint8_t *nb = realloc(buf, cap + 1);
            if (!nb) {
                free(buf);
                fclose(f);
                return MF_FAIL(err, MF_ENOMEM, "out of memory reading %s", path);
            }
            buf = nb;
        }
        size_t r = fread(buf + n, 1, cap - n, f);
        n += r;
        if (r == 0) break;
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        free(buf);
        return MF_FAIL(err, MF_EIO, "error reading %s", path);
    }
    buf[n] = '\0';
    *data = buf;
    *size = n;
    return MF_OK;
}

static int looks_like_text(const uint8_t *d, size_t n) {
    size_t i = 0;
    while (i < n && isspace(d[i])) i++;
    if (i == n || !(d[i] == '#' || isalpha(d[i]))) return 0;
    for (size_t j = 0; j < n; j++)
        if (d[j] == 0 || (d[j] < 0x20 && d[j] != '\n' && d[j] != '\r' && d[j] != '\t')) return 0;
    return 1;
}

mf_status mf_case_load(const char *path, int allow_raw, mf_case *c, const char **kind,
                       mf_error *err) {
    uint8_t *d;
    size_t n;
    MF_TRY(mf_read_file(path, &d, &n, 1u << 20, err));
    mf_status st = MF_OK;
    if (looks_like_text(d, n)) {
        if (kind) *kind = "text";
        mf_error e2;
        st = mf_case_parse_text((const char *)d, c, &e2);
        if (st != MF_OK) MF_FAIL(err, st, "%.200s: %.700s", path, e2.msg);
    } else {
        char why[256];
        mf_bin_kind bk = mf_case_classify(d, n, why, sizeof why);
        if (bk == MF_BIN_DAMAGED) {
            st = MF_FAIL(err, MF_EINVAL, "%s: %s", path, why);
        } else if (bk == MF_BIN_RAW && !allow_raw) {
            st = MF_FAIL(err, MF_EINVAL,
                         "%s is neither a text case nor a canonical binary case (%s); if it is "
                         "a fuzzer input, use `moefuzz repro` or pass --raw",
                         path, why);
        } else {
            if (kind) *kind = bk == MF_BIN_RAW ? "raw" : "binary";
            mf_case_decode(d, n, c, NULL);
        }
    }
    free(d);
    return st;
}
