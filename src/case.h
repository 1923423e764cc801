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

/* The tensors of a case, declared once. Everything that lists tensors follows this table: the
 * tensor ids and the fields of mf_problem, generation and pokes (case.c), the text case's
 * gen.NAME and poke keys (codec.c), the kernel's host and device inputs (backend.c), the
 * isolated worker's shared memory (backend_isolate.c), case files (exchange.c) and the ABI
 * params (backend.c). Append only: the id is part of the case format (v1 knows the first five).
 *
 * ROW(ID, name, storage, rank, d0, d1, d2, bf16, present, scale, kept, slot, level), expressions
 * in the parameters `p` (const mf_moe_params *):
 *   ID, name  MF_T_ID; name is the tensor's name everywhere (case files, text cases, reports) and
 *             its field in mf_problem, mf_moe_tensors and the ABI's params or extension
 *   storage   element type in mf_problem: uint16_t holds bf16 bit patterns; float holds fp32
 *             values, bf16-representable when the tensor is bf16; int32_t holds int32 values
 *             (expert ids), which the kernel gets as int32 (bf16 0)
 *   rank, d0..d2  shape, row-major (unused dimensions 1)
 *   bf16      1: the kernel gets bf16 (storage uint16_t must say 1); 0: fp32
 *   present   0: the kernel gets NULL and case files omit it (mf_problem still holds an array)
 *   scale     a generator's default scale (scale 0 in the case), an fp32 value
 *   kept      1: a per-expert tensor (d0 = E_local): generated one expert at a time, on demand
 *             (mf_problem_materialise), and kept by mf_problem_update while its shape and
 *             generator stay (the weights)
 *   slot      where the kernel finds it: `params` = a field of mf_kernel_params
 *   level     the ABI feature level that first carries it (MF_ABI_LEVEL_*, kernel_abi.h) */
#define MF_TENSOR_LIST(ROW)                                                                  \
    ROW(X, x, uint16_t, 2, p->T, p->H, 1, 1, 1, 1.0, 0, params, 1)                            \
    ROW(LOGITS, logits, float, 2, p->T, p->E, 1, p->logits_dtype == MF_DTYPE_BF16, 1, 1.0, 0,  \
        params, 1)                                                                             \
    ROW(BIAS, bias, float, 1, p->E, 1, 1, p->bias == MF_BIAS_BF16, p->bias != MF_BIAS_NONE,    \
        (double)0.1f, 0, params, 1)                                                            \
    ROW(W13, w13, uint16_t, 3, p->E_local, 2 * (size_t)p->I, p->H, 1, 1,                       \
        (double)(float)(1.0 / sqrt((double)p->H)), 1, params, 1)                               \
    ROW(W2, w2, uint16_t, 3, p->E_local, p->H, p->I, 1, 1,                                     \
        (double)(float)(1.0 / sqrt((double)p->I)), 1, params, 1)                               \
    ROW(B13, b13, uint16_t, 2, p->E_local, 2 * (size_t)p->I, 1, 1, mf_has_b13(p), 0.5, 1, ext, 2) \
    ROW(B2, b2, uint16_t, 2, p->E_local, p->H, 1, 1, mf_has_b2(p), 0.25, 1, ext, 2)                \
    ROW(W13_S, w13_s, float, 3, p->E_local, mf_blocks(2 * p->I, mf_block_n(p)),                \
        mf_blocks(p->H, mf_block_k(p)), 0, p->weight_format == MF_WFMT_FP8_BLOCK, 1.0, 0, ext, 3) \
    ROW(W2_S, w2_s, float, 3, p->E_local, mf_blocks(p->H, mf_block_n(p)),                      \
        mf_blocks(p->I, mf_block_k(p)), 0, p->weight_format == MF_WFMT_FP8_BLOCK, 1.0, 0, ext, 3) \
    ROW(SW13, sw13, uint16_t, 3, p->n_shared, 2 * (size_t)p->shared_I, p->H, 1, p->n_shared > 0, \
        (double)(float)(1.0 / sqrt((double)p->H)), 0, ext, 4)                                   \
    ROW(SW2, sw2, uint16_t, 3, p->n_shared, p->H, p->shared_I, 1, p->n_shared > 0,              \
        (double)(float)(1.0 / sqrt((double)(p->shared_I > 0 ? p->shared_I : 1))), 0, ext, 4)    \
    ROW(SHARED_GATE, shared_gate, float, 1, p->T, 1, 1, 0,                                      \
        p->n_shared > 0 && p->shared_weight == MF_SHW_GATE, 1.0, 0, ext, 4)                      \
    ROW(TOPK_IDS_IN, topk_ids_in, int32_t, 2, p->T, p->top_k, 1, 0, p->preroute != 0, 1.0, 0,  \
        ext, 6)                                                                                \
    ROW(TOPK_WEIGHTS_IN, topk_weights_in, float, 2, p->T, p->top_k, 1,                         \
        p->preroute == MF_PREROUTE_BF16, p->preroute != 0, 0.5, 0, ext, 6)                    \
    ROW(EXPERT_MAP, expert_map, int32_t, 1, p->E, 1, 1, 0, p->placement == MF_PLACEMENT_MAP,    \
        1.0, 0, ext, 7)

/* Blocks of b along n, the last one partial (FP8 block scales). */
static inline size_t mf_blocks(int n, int b) { return ((size_t)n + (size_t)b - 1) / (size_t)b; }

#define MF_TENSOR_MAX_RANK 3

/* The parameters of case format v2, beyond v1's (docs/case-format.md). Each is a field of
 * mf_moe_params whose value 0 means v1's semantics, so a case that leaves every one at 0 is a v1
 * case (encoded as v1, sent to kernels of ABI level 1). Append only: the tag is the field's
 * number in the binary format v2 and never changes.
 *
 * ROW(tag, field, kind, enum_info, lo, hi, level):
 *   tag     binary v2 tag, 0..63 (src/codec.c: the tags above are v1 enums and generators)
 *   field   the field of mf_moe_params, and the text case's key
 *   kind    ENUM (int-sized enum, values of enum_info), INT (lo..hi), F32 (0 or in [lo, hi])
 *   level   the ABI feature level that carries it (kernel_abi.h), when it is not 0 */
#define MF_PARAM_V2_LIST(ROW)                                                        \
    ROW(0, renorm_denom, ENUM, &mf_enum_renorm_denom, 0, 0, 2)                       \
    ROW(1, nonfinite, ENUM, &mf_enum_nonfinite, 0, 0, 2)                             \
    ROW(2, expert_bias, ENUM, &mf_enum_expert_bias, 0, 0, 2)                         \
    ROW(3, act_alpha, F32, NULL, 0x1p-8, 0x1p8, 2)                                   \
    ROW(4, act_limit, F32, NULL, 0x1p-8, 0x1p16, 2)                                                \
    ROW(32, weight_format, ENUM, &mf_enum_weight_format, 0, 0, 3)                    \
    ROW(33, scale_format, ENUM, &mf_enum_scale_format, 0, 0, 3)                      \
    ROW(34, block_n, INT, NULL, 1, 4096, 3)                                          \
    ROW(35, block_k, INT, NULL, 1, 4096, 3)                                          \
    ROW(48, n_shared, INT, NULL, 1, MF_MAX_SHARED, 4)                                \
    ROW(49, shared_I, INT, NULL, 1, MF_MAX_I, 4)                                     \
    ROW(50, shared_weight, ENUM, &mf_enum_shared_weight, 0, 0, 4)                    \
    ROW(51, shared_owner, ENUM, &mf_enum_shared_owner, 0, 0, 4)                      \
    ROW(16, weight_on_input, INT, NULL, 1, 1, 5)                                     \
    ROW(20, preroute, ENUM, &mf_enum_preroute, 0, 0, 6)                              \
    ROW(24, placement, ENUM, &mf_enum_placement, 0, 0, 7)                            \
    ROW(56, tp_size, INT, NULL, 2, 64, 8)                                            \
    ROW(57, tp_rank, INT, NULL, 1, 63, 8)

typedef enum mf_param_kind { MF_PK_ENUM, MF_PK_INT, MF_PK_F32 } mf_param_kind;

typedef struct mf_param_v2 {
    int tag;
    const char *key;
    mf_param_kind kind;
    const mf_enum_info *e; /* ENUM */
    double lo, hi;         /* INT, F32 */
    int level;
    size_t offset; /* in mf_moe_params */
} mf_param_v2;

extern const mf_param_v2 mf_params_v2[];
extern const int mf_n_params_v2;
/* The parameter with this text key, or NULL. */
const mf_param_v2 *mf_param_v2_lookup(const char *key);
/* Its value in p (an enum or INT as a whole number). */
double mf_param_v2_get(const mf_moe_params *p, const mf_param_v2 *d);
void mf_param_v2_set(mf_moe_params *p, const mf_param_v2 *d, double v);
/* 1 if v is a value of d's domain (0 always is). */
int mf_param_v2_valid(const mf_param_v2 *d, double v);

typedef enum mf_tensor_id {
#define MF_TENSOR_ID_(ID, ...) MF_T_##ID,
    MF_TENSOR_LIST(MF_TENSOR_ID_)
#undef MF_TENSOR_ID_
    MF_NUM_TENSORS
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
    float scale;   /* 0: the tensor's default (MF_TENSOR_LIST's scale column) */
    uint64_t seed;
} mf_gen;

typedef struct mf_poke {
    uint8_t tensor; /* mf_tensor_id */
    uint32_t index; /* flat index, taken modulo the tensor's size */
    uint32_t bits;  /* bf16 pattern (low 16 bits) for bf16 tensors, fp32 pattern otherwise */
} mf_poke;

#define MF_MAX_POKES 16

/* Domain limits of the problem model: T to vLLM's 32768-token chunk, H to 8192 (DeepSeek-V3 has
 * 7168), I to Mixtral's 14336. The frozen v1 binary format keeps its own (MF_V1_MAX_*, codec.h). */
#define MF_MAX_T 32768
#define MF_MAX_H 8192
#define MF_MAX_I 16384
#define MF_MAX_E 1024
#define MF_MAX_K 32

typedef struct mf_case {
    mf_moe_params p;
    mf_gen gen[MF_NUM_TENSORS];
    int n_pokes;
    mf_poke pokes[MF_MAX_POKES];
    /* x and logits rows drawn from this many prototype rows (0: every row its own; >= T: the
     * same): token t < rows is prototype t, a later token a prototype picked from x's seed, and
     * the pokes land after the copies. Text cases only: binary v1 cannot carry it. */
    int rows;
} mf_case;

/* Makes the v2 parameters of c consistent with its activation: act_limit 7 (act_alpha 1.702)
 * where a clamped activation (swiglu_oai) has none, 0 where the activation has no use for it;
 * tp_rank below tp_size, and no sharding of fp8 weights whose I is not whole scale blocks. */
void mf_case_fix_v2(mf_case *c);
/* Clears the generators of the tensors that case format v1 does not know and c does not use:
 * they are not part of the case (neither format keeps them). */
void mf_case_drop_absent_gens(mf_case *c);

/* A small valid default case (sigmoid, bias, grouped, renormalized, rsf 2.5). */
void mf_case_default(mf_case *c);

/* Checks every constraint of the problem model; message names the first violation. */
mf_status mf_case_validate(const mf_case *c, mf_error *err);

const char *mf_tensor_name(mf_tensor_id t);
/* The id of a tensor name, or -1. */
int mf_tensor_lookup(const char *name);
const char *mf_gen_class_name(mf_gen_class g);
/* 1 if the kernel gets tensor t as bf16, 0 for fp32. */
int mf_tensor_is_bf16(const mf_moe_params *p, mf_tensor_id t);
/* 1 if the kernel gets tensor t (else NULL, and case files omit it). */
int mf_tensor_present(const mf_moe_params *p, mf_tensor_id t);
size_t mf_tensor_elems(const mf_moe_params *p, mf_tensor_id t);
/* Shape of tensor t; returns its rank. */
int mf_tensor_shape(const mf_moe_params *p, mf_tensor_id t, uint64_t shape[MF_TENSOR_MAX_RANK]);
/* Bytes of one element of tensor t in mf_problem (2: bf16 bits; 4: float) and to the kernel. */
size_t mf_tensor_host_size(mf_tensor_id t);
size_t mf_tensor_kernel_size(const mf_moe_params *p, mf_tensor_id t);
/* NULL if map is a placement map of p (each entry -1 or a local index, each local index in
 * [0, E_local) exactly once), or the placement is contiguous; else msg, saying why in a line */
const char *mf_expert_map_check(const mf_moe_params *p, const int32_t *map, char *msg, size_t n);
/* 1 if tensor t is among the weights a kernel or adapter may keep between calls (the exec
 * protocol's weights key covers them): the routed and shared experts' tensors, those after x,
 * logits and bias but the per-token ones (the shared gate's logits, the given routing) and the
 * placement map (a rank's, not an expert's) */
int mf_tensor_per_expert(mf_tensor_id t);
/* 1 if tensor t holds int32 values (storage int32_t: the pre-routed ids); pokes write the int32
 * bit pattern */
int mf_tensor_is_i32(mf_tensor_id t);
/* 1 if the kernel gets tensor t as e4m3 codes (w13, w2 of an fp8_block case: the saturating
 * encoding of the bf16 values the problem holds); the kernel size is then 1. */
int mf_tensor_is_e4m3(const mf_moe_params *p, mf_tensor_id t);
/* The ABI feature level that first carries tensor t. */
int mf_tensor_level(mf_tensor_id t);
/* Effective scale of a generator (resolves 0 to the tensor's default). */
double mf_gen_scale(const mf_moe_params *p, mf_tensor_id t, const mf_gen *g);

/* Expert weights up to this size are generated whole; above it, a problem generates only the
 * experts some routing can select (mf_problem_update). */
#define MF_EAGER_EXPERT_BYTES (256.0 * 1024 * 1024)

/* 1 if c's problem generates its experts on demand (their weights exceed MF_EAGER_EXPERT_BYTES). */
int mf_case_experts_lazy(const mf_case *c);

/* Bytes a problem of c holds, and reference cost in multiply-adds (T * top_k * 3 * H * I). The
 * bytes of a lazy case of at most MF_ROUTED_BYTES_PAIRS tokens times experts count its other
 * tensors and the experts some routing can select (found by routing it); of any other case,
 * every tensor whole. */
#define MF_ROUTED_BYTES_PAIRS 8192
double mf_case_bytes(const mf_case *c);
double mf_case_work(const mf_case *c);

/* The state of one expert's blocks in the kept (per-expert) tensors. */
typedef enum mf_expert_state {
    MF_EXPERT_ABSENT = 0, /* never written: zero pages, not resident */
    MF_EXPERT_POISON = 1, /* MF_EXPERT_POISON_BF16 in unit 0's rows of w13, column 0's of w2 */
    MF_EXPERT_READY = 2,  /* generated, with the case's pokes */
} mf_expert_state;

/* A quiet NaN: a kernel that reads an expert no routing selects outputs NaN for its token. */
#define MF_EXPERT_POISON_BF16 0x7fc5u
_Static_assert(MF_EXPERT_READY == MF_REF_EXPERT_READY, "the reference reads READY experts only");

/* A materialized problem: owns its tensors, one array per row of MF_TENSOR_LIST. The kept
 * tensors hold, per expert, its generated values (READY), or, for the experts no routing can
 * select in a lazy problem, poison or nothing (mf_expert_state). */
typedef struct mf_problem {
    mf_moe_params p;
#define MF_TENSOR_FIELD_(ID, name, storage, ...) storage *name;
    MF_TENSOR_LIST(MF_TENSOR_FIELD_)
#undef MF_TENSOR_FIELD_
    mf_moe_tensors t; /* views of the arrays above */
    /* what the kept tensors hold, so mf_problem_update can reuse them; kept_valid 0: regenerate */
    int kept_valid;
    mf_gen kept_gen[MF_NUM_TENSORS];
    uint64_t kept_shape[MF_NUM_TENSORS][MF_TENSOR_MAX_RANK];
    int n_saved; /* kept elements overwritten by pokes, restored before reuse */
    struct {
        uint16_t *at;
        uint16_t old;
    } saved[MF_MAX_POKES];
    uint8_t *experts; /* [p.E_local] mf_expert_state */
    int has_src;      /* 1: src generates the experts (else every expert is READY: a file's) */
    mf_case src;
} mf_problem;

/* The array of tensor t in pb (uint16_t or float elements: mf_tensor_host_size). */
void *mf_problem_tensor(const mf_problem *pb, mf_tensor_id t);

/* The tensors of a problem in the form the kernel gets them (MF_TENSOR_LIST's bf16 and present
 * columns): data[t] is pb's own array where its storage is the kernel's dtype, else a bf16 copy
 * this owns (float arrays of bf16 tensors); NULL for an absent tensor. */
typedef struct mf_kernel_inputs {
    const void *data[MF_NUM_TENSORS];
    size_t bytes[MF_NUM_TENSORS];
    void *owned[MF_NUM_TENSORS];
    /* weight_format mxfp4: the packed form of w13 ([0]) and w2 ([1]), kernel_abi.h
     * mf_kernel_mxfp4's layout: e2m1 codes (mx_q, mx_q_bytes) and UE8M0 scales (mx_sc,
     * mx_sc_bytes), owned; NULL otherwise */
    uint8_t *mx_q[2], *mx_sc[2];
    size_t mx_q_bytes[2], mx_sc_bytes[2];
} mf_kernel_inputs;

/* The shapes of the packed MXFP4 form of w13 (which 0) or w2 (1): codes [E_local][rows][ceil(K /
 * 2)] and scales [E_local][rows][ceil(K / 32)], K the reduction dimension. */
void mf_mxfp4_shapes(const mf_moe_params *p, int which, uint64_t q_shape[3], uint64_t sc_shape[3]);

mf_status mf_kernel_inputs_make(const mf_problem *pb, mf_kernel_inputs *ki, mf_error *err);
void mf_kernel_inputs_free(mf_kernel_inputs *ki);

/* Allocates pb's arrays for parameters p, zero-filled, with their views (pb->t): a problem whose
 * tensors come from elsewhere (case files). mf_problem_update regenerates every tensor of it. */
mf_status mf_problem_alloc(const mf_moe_params *p, mf_problem *pb, mf_error *err);

/* Builds the problem of c: every tensor but the expert weights, then the experts: all of them
 * for an eager case; for a lazy one (mf_case_experts_lazy) every expert some routing can select
 * (mf_problem_routable), with the others poisoned. The same case gives the same bits in every
 * expert it generates. */
mf_status mf_problem_build(const mf_case *c, mf_problem *pb, mf_error *err);
/* Rebuilds pb for c, regenerating the expert weights only when their sizes or generators
 * changed (the fuzz loop's cache; the weights dominate generation time): experts generated for
 * an earlier case stay READY. pb must come from mf_problem_build / mf_problem_update or be
 * zeroed. */
mf_status mf_problem_update(const mf_case *c, mf_problem *pb, mf_error *err);
void mf_problem_free(mf_problem *pb);

/* Generates local expert le's weights (with the case's pokes) unless they are READY: what a
 * reader of an expert the routable set left out calls first. MF_EINVAL for le out of range. */
mf_status mf_problem_materialise(mf_problem *pb, int le, mf_error *err);
/* Every expert READY (a kernel or a file that needs all of them). */
mf_status mf_problem_materialise_all(mf_problem *pb, mf_error *err);
int mf_problem_expert_ready(const mf_problem *pb, int le);
int mf_problem_experts_ready(const mf_problem *pb); /* how many */
/* Bytes pb's arrays hold resident: every non-kept tensor, and the READY experts. */
double mf_problem_bytes(const mf_problem *pb);
/* Copies tensor t of pb into dst, whose bytes are zero wherever this writes nothing: of a kept
 * tensor, the READY experts whole, a POISON expert's poison alone and an ABSENT expert not at
 * all, so the copy of a lazy problem writes only the pages the problem itself wrote. */
void mf_problem_copy_tensor(const mf_problem *pb, mf_tensor_id t, void *dst);

/* The local experts some routing of pb's parameters can select, into mask[E_local] (1: can),
 * under a routing contract wider than any built-in one (scores with a relative error of 2^-8,
 * bf16-rounded scores included, and each built-in contract's tanh sigmoid, bf16 bias and FTZ
 * terms): for the case's parameters and the metamorphic bias shift, every
 * expert not certainly out for some finite token; for each applicable counterfactual that
 * changes the selection (attribution's knobs, src/attribute.h), the same where at most 2 top_k
 * experts of a token are in doubt, else its exact selection. The other metamorphic relations
 * select the same experts or their images. Tokens with a NaN or infinite logit or bias
 * constrain nothing and add none. Reads the logits and the bias only. */
mf_status mf_problem_routable(const mf_problem *pb, uint8_t *mask, mf_error *err);

#endif /* MF_CASE_H */
