/* case.h: a test case: the problem parameters plus how to generate every tensor.
 *
 * Tensors never travel in case files: each comes from (generator class, scale, seed), with a
 * few "pokes" (index, bit pattern) for surgical edits. Binary and text forms: codec.h.
 */
#ifndef MF_CASE_H
#define MF_CASE_H

#include <stddef.h>
#include <stdint.h>

#include "mf_base.h"
#include "problem.h"

typedef enum mf_tensor_id {
    MF_T_X = 0,
    MF_T_LOGITS = 1,
    MF_T_BIAS = 2,
    MF_T_W13 = 3,
    MF_T_W2 = 4,
    MF_NUM_TENSORS = 5
} mf_tensor_id;

/* Generator classes. Values are part of the case format: append only. */
typedef enum mf_gen_class {
    MF_GEN_NORMAL = 0,    /* scale * N(0, 1) (Irwin-Hall of 4, bit-reproducible) */
    MF_GEN_UNIFORM = 1,   /* scale * U(-1, 1) */
    MF_GEN_HEAVY = 2,     /* scale * N / max(U, 1/64): heavy tails */
    MF_GEN_SPARSE = 3,    /* 3 in 4 exactly zero, else scale * N */
    MF_GEN_INTEGER = 4,   /* scale * integer in [-4, 4]: exact arithmetic with power-of-2 scale */
    MF_GEN_TIES = 5,      /* each row draws from 4 values: exact ties */
    MF_GEN_NEAR_TIES = 6, /* odd entries are their even neighbour nudged by 1-3 ulps */
    MF_GEN_NEGATIVE = 7,  /* -(2 + |N|) * scale: all-negative rows */
    MF_GEN_UNDERFLOW = 8, /* in [-104, -88]: sigmoid underflows in fp32 */
    MF_GEN_LARGE_POS = 9, /* 12 + scale * N (GLM-style large positive bias) */
    MF_GEN_LARGE_NEG = 10,/* -12 + scale * N */
    MF_GEN_COUNT = 11
} mf_gen_class;

typedef struct mf_gen {
    uint8_t cls;   /* mf_gen_class */
    float scale;   /* 0: the tensor's default (x 1, logits 1, bias 0.1, w13 1/sqrt(H), w2 1/sqrt(I)) */
    uint64_t seed;
} mf_gen;

typedef struct mf_poke {
    uint8_t tensor; /* mf_tensor_id */
    uint32_t index; /* flat index, taken modulo the tensor's size */
    uint32_t bits;  /* bf16 pattern (low 16 bits) for bf16 tensors, fp32 pattern otherwise */
} mf_poke;

#define MF_MAX_POKES 16

/* Domain limits of the case format (v1). */
#define MF_MAX_T 16384
#define MF_MAX_H 8192
#define MF_MAX_I 4096
#define MF_MAX_E 1024
#define MF_MAX_K 32

typedef struct mf_case {
    mf_moe_params p;
    mf_gen gen[MF_NUM_TENSORS];
    int n_pokes;
    mf_poke pokes[MF_MAX_POKES];
} mf_case;

/* A small valid default case (sigmoid, bias, grouped, renormalized, rsf 2.5). */
void mf_case_default(mf_case *c);

/* Checks every constraint of the problem model; message names the first violation. */
mf_status mf_case_validate(const mf_case *c, mf_error *err);

const char *mf_tensor_name(mf_tensor_id t);
const char *mf_gen_class_name(mf_gen_class g);
int mf_tensor_is_bf16(const mf_moe_params *p, mf_tensor_id t);
size_t mf_tensor_elems(const mf_moe_params *p, mf_tensor_id t);
/* Effective scale of a generator (resolves 0 to the tensor's default). */
double mf_gen_scale(const mf_moe_params *p, mf_tensor_id t, const mf_gen *g);

/* Bytes of all tensors, and reference cost in multiply-adds (T * top_k * 3 * H * I). */
double mf_case_bytes(const mf_case *c);
double mf_case_work(const mf_case *c);

/* A materialized problem: owns its tensors. */
typedef struct mf_problem {
    mf_moe_params p;
    uint16_t *x, *w13, *w2;
    float *logits, *bias;
    mf_moe_tensors t; /* views of the arrays above */
    /* what the weight buffers hold, so mf_problem_update can reuse them */
    mf_gen w_gen[2];
    int w_dims[3]; /* E_local, I, H */
    int n_saved;   /* weight elements overwritten by pokes, restored before reuse */
    struct {
        uint16_t *at;
        uint16_t old;
    } saved[MF_MAX_POKES];
} mf_problem;

mf_status mf_problem_build(const mf_case *c, mf_problem *pb, mf_error *err);
/* Rebuilds pb for c, regenerating the expert weights only when their sizes or generators
 * changed (the fuzz loop's cache; the weights dominate generation time). pb must come from
 * mf_problem_build / mf_problem_update or be zeroed. */
mf_status mf_problem_update(const mf_case *c, mf_problem *pb, mf_error *err);
void mf_problem_free(mf_problem *pb);

#endif /* MF_CASE_H */
