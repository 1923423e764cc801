/* moefuzz/kernel_abi.h: the plain-C ABI between moefuzz and a fused MoE kernel under test.
 *
 * A kernel (built in, or a plugin .so) exports one symbol, mf_kernel_get_api, that fills a
 * function table. moefuzz fills an mf_kernel_params per call. No CUDA types appear here: device
 * pointers and streams travel as void *.
 *
 * Versioning rules (DLPack style): abi_version and struct_size come first in every struct and
 * never move; new fields are only appended before the reserved tail; a kernel built against an
 * older header reads a newer caller's params up to its own struct_size. Enum values are fixed
 * forever; new values are appended. abi_version stays 1 while these layouts hold.
 *
 * How the ABI grows (feature levels and extensions):
 *   - A feature level names what a case can carry: its tensors, params and enum values. Level 1
 *     (MF_ABI_LEVEL_1) is everything the first header expressed. A header that lets cases carry
 *     more raises MF_KERNEL_FEATURE_LEVEL and says below what the new level adds.
 *   - A kernel declares the level of the header it was built against with an extension of kind
 *     MF_KERNEL_EXT_FEATURES (mf_kernel_api.get_ext); one that declares none, such as every
 *     kernel built against the first header, has level 1. moefuzz never sends a kernel a case
 *     above its level: it counts that case as unsupported ("needs ABI feature level N: WHAT").
 *   - New contract fields and new tensors or params travel in extension structs (mf_kernel_ext
 *     first: kind, struct_size, next), never in the structs below, whose reserved tails are
 *     kept for these slots: kernel to moefuzz through get_ext(kind), moefuzz to kernel through
 *     the chain mf_kernel_params.ext. A reader reads min(its own sizeof, struct_size) bytes of
 *     an extension and ignores kinds it does not know.
 *   - Ownership: what get_ext returns is the kernel's, valid while the library stays loaded
 *     (static data), and moefuzz copies it by value (the isolated worker sends it to moefuzz
 *     that way); the params chain is moefuzz's, valid for the duration of the call.
 *
 * Semantics of every parameter: docs/design.md ("The problem model"). Ownership: every pointer in the params is
 * owned by the caller and valid for the duration of run() only.
 *
 * How moefuzz runs a plugin (`moefuzz check --backend plugin:PATH.so`): by default in a worker
 * process that loads the .so and calls create() once, then supports / workspace_size / run per
 * case on shared-memory copies of the tensors. A crash or a hang (--timeout) in any of them is
 * reported with the case and the worker restarts for the next case (create() runs again).
 * Build against this header: find_package(moefuzz) (target moefuzz::kernel_abi) or
 * `pkg-config --cflags moefuzz`; examples/plugin/ is a complete plugin.
 */
#ifndef MOEFUZZ_KERNEL_ABI_H
#define MOEFUZZ_KERNEL_ABI_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define MF_KERNEL_ABI_VERSION 1u
#define MF_KERNEL_GET_API_SYMBOL "mf_kernel_get_api"

/* run()'s answer for a call it does not handle (an answer, not a failure). A moefuzz built
 * against an earlier header takes it as a failure of run(). */
#define MF_KERNEL_RUN_UNSUPPORTED 77

/* ---- feature levels ---- */
/* Level 1: tensors x, logits, bias, w13, w2 and the params of mf_kernel_params; the enum values
 * below. (A later level appends its line here, e.g. "Level 2: ...".) */
#define MF_ABI_LEVEL_1 1u
/* Level 2 (case format v2): the extension mf_kernel_params_v2 in params.ext, whose fields hold
 * the parameters of case format v2 (each 0 means level 1's semantics) and the enum values below
 * marked "level 2". A kernel of level 1 is never sent a case that sets any of them. */
#define MF_ABI_LEVEL_2 2u
/* Level 3: quantized expert weights, the fields of mf_kernel_params_v2 from weight_format on
 * (FP8 block scale and MXFP4) and the enum values below marked "level 3". */
#define MF_ABI_LEVEL_3 3u
/* Level 4: shared experts, the fields of mf_kernel_params_v2 from n_shared on and the enum values
 * below marked "level 4". */
#define MF_ABI_LEVEL_4 4u
/* Level 5: routing variants, the fields of mf_kernel_params_v2 from weight_on_input on and the
 * enum values below marked "level 5". */
#define MF_ABI_LEVEL_5 5u
/* Level 6: pre-routed input, the fields of mf_kernel_params_v2 from preroute on. */
#define MF_ABI_LEVEL_6 6u
/* Level 7: expert maps, the fields of mf_kernel_params_v2 from placement on. */
#define MF_ABI_LEVEL_7 7u
/* Level 8: tensor-parallel shards of I, the fields of mf_kernel_params_v2 from tp_size on. */
#define MF_ABI_LEVEL_8 8u
#define MF_KERNEL_FEATURE_LEVEL MF_ABI_LEVEL_8 /* the level of this header */

/* ---- extensions ---- */
typedef struct mf_kernel_ext {
    uint32_t kind;                    /* MF_KERNEL_EXT_* */
    uint32_t struct_size;             /* sizeof the whole extension struct, as its writer has it */
    const struct mf_kernel_ext *next; /* the next extension of a chain, or NULL */
} mf_kernel_ext;

enum {
    /* kernel -> moefuzz (get_ext): mf_kernel_features */
    MF_KERNEL_EXT_FEATURES = 1,
    /* kernel -> moefuzz (get_ext): mf_kernel_contract_ext, the contract field by field */
    MF_KERNEL_EXT_CONTRACT = 2,
    /* moefuzz -> kernel (params.ext): params and tensors of the levels above 1:
     * mf_kernel_params_v2 (a later level appends its fields to that struct and raises the
     * level; a reader reads min(its sizeof, struct_size) bytes) */
    MF_KERNEL_EXT_PARAMS = 3,
    /* moefuzz -> kernel (params.ext, after mf_kernel_params_v2), with weight_format mxfp4 only:
     * mf_kernel_mxfp4, the packed form of w13 and w2 */
    MF_KERNEL_EXT_MXFP4 = 4,
};

typedef struct mf_kernel_features {
    mf_kernel_ext ext; /* kind MF_KERNEL_EXT_FEATURES, struct_size sizeof(mf_kernel_features) */
    uint32_t level;    /* MF_KERNEL_FEATURE_LEVEL of the kernel's header */
    uint32_t reserved; /* zero */
} mf_kernel_features;

/* ---- parameter enums (values fixed forever) ---- */
enum {
    MF_ABI_SCORE_SOFTMAX = 0,
    MF_ABI_SCORE_SIGMOID = 1,
    /* level 2: sqrt(softplus(l)), softplus(l) = log1p(exp(l)), or l itself above 20 (torch) */
    MF_ABI_SCORE_SQRT_SOFTPLUS = 2,
    /* level 5: the logit itself (FlashInfer's TopK method): selection and weight by the raw
     * logit, never renormalized */
    MF_ABI_SCORE_NONE = 3,
};
enum { MF_ABI_BIAS_NONE = 0, MF_ABI_BIAS_F32 = 1, MF_ABI_BIAS_BF16 = 2 };
enum { MF_ABI_GROUP_TOP2_SUM = 0, MF_ABI_GROUP_MAX = 1 };
enum { MF_ABI_RSF_WEIGHTS = 0, MF_ABI_RSF_OUTPUT = 1 };
enum {
    MF_ABI_ACT_SILU_GLU = 0,
    MF_ABI_ACT_SWIGLU_OAI = 1,       /* level 2 */
    MF_ABI_ACT_SILU_CLAMP = 2,       /* level 2 */
    MF_ABI_ACT_SILU_CLAMP_AFTER = 3, /* level 2 */
};
enum {
    MF_ABI_LAYOUT_GATE_UP = 0,
    MF_ABI_LAYOUT_UP_GATE = 1,
    MF_ABI_LAYOUT_INTERLEAVED = 2, /* level 2: row 2j of W13 is gate j, row 2j + 1 up j */
};
enum { MF_ABI_DTYPE_F32 = 0, MF_ABI_DTYPE_BF16 = 1 };
enum { MF_ABI_MEM_HOST = 0, MF_ABI_MEM_DEVICE = 1 };
/* level 2 */
enum { MF_ABI_RENORM_SUM_EPS = 0, MF_ABI_RENORM_SUM_OR_ONE = 1, MF_ABI_RENORM_MAX_EPS = 2 };
enum { MF_ABI_NONFINITE_PROPAGATE = 0, MF_ABI_NONFINITE_ZERO = 1 };
enum {
    MF_ABI_EXPERT_BIAS_NONE = 0,
    MF_ABI_EXPERT_BIAS_B13_B2 = 1,
    MF_ABI_EXPERT_BIAS_B13 = 2,
    MF_ABI_EXPERT_BIAS_B2 = 3,
};
/* level 3 */
enum { MF_ABI_WFMT_BF16 = 0, MF_ABI_WFMT_FP8_BLOCK = 1, MF_ABI_WFMT_MXFP4 = 2 };
enum { MF_ABI_SCALE_F32 = 0, MF_ABI_SCALE_UE8M0 = 1 };
/* level 4 */
enum {
    MF_ABI_SHARED_WEIGHT_ONE = 0,
    MF_ABI_SHARED_WEIGHT_INV_RSF = 1,
    MF_ABI_SHARED_WEIGHT_GATE = 2,
};
enum { MF_ABI_SHARED_OWNER_THIS_RANK = 0, MF_ABI_SHARED_OWNER_OTHER_RANK = 1 };
/* level 6 */
enum { MF_ABI_PREROUTE_NONE = 0, MF_ABI_PREROUTE_F32 = 1, MF_ABI_PREROUTE_BF16 = 2 };
/* level 7 */
enum { MF_ABI_PLACEMENT_CONTIGUOUS = 0, MF_ABI_PLACEMENT_MAP = 1 };

/* ---- numerical contract a kernel declares (see docs/error-model.md) ---- */
enum {
    MF_ABI_ACC_SEQ_FP32 = 0,
    MF_ABI_ACC_FUSED_BLOCK = 1,
    MF_ABI_ACC_ANY_ORDER = 2,
    MF_ABI_ACC_ORDERED_BLOCKS = 3 /* K order, blocks of <= acc_block, >= acc_frac_bits, RN/RZ */
};
enum { MF_ABI_EXP_ACCURATE = 0, MF_ABI_EXP_FAST = 1 };
enum { MF_ABI_DIV_IEEE = 0, MF_ABI_DIV_FAST = 1 };
enum {
    MF_ABI_RP_GEMM1_OUT = 1u << 0, /* gate/up rounded to bf16 before the activation */
    MF_ABI_RP_ACT_OUT = 1u << 1,   /* activation rounded to bf16 before GEMM2 (required) */
    MF_ABI_RP_GEMM2_OUT = 1u << 2, /* expert output rounded to bf16 before the weight */
    MF_ABI_RP_WEIGHTED = 1u << 3,  /* w * y rounded to bf16 per expert before the sum */
    MF_ABI_RP_WEIGHTS = 1u << 4,   /* routing weights rounded to bf16 */
};

typedef struct mf_kernel_contract {
    uint32_t struct_size;
    /* A contract moefuzz knows by name ("cpu-scalar", "hopper-tc", "any-order", ...); when set,
     * the fields below are ignored. NULL: use the fields. */
    const char *name;
    int32_t acc_kind;      /* MF_ABI_ACC_* for GEMM1 and GEMM2 */
    int32_t acc_block;     /* FUSED_BLOCK: products per fused step; ORDERED_BLOCKS: at most */
    int32_t acc_frac_bits; /* FUSED_BLOCK: fraction bits kept below the step maximum */
    int32_t exp_kind;      /* MF_ABI_EXP_* */
    float exp_ulps;        /* EXP_ACCURATE: max error of exp in fp32 ulps */
    int32_t div_kind;      /* MF_ABI_DIV_* */
    uint32_t round_points; /* MF_ABI_RP_* bits */
    int32_t deterministic; /* identical bits on identical input */
    int32_t reports_routing; /* writes topk_ids / topk_weights when the caller passes them */
    /* The routing method the kernel implements, by the name `moefuzz methods` lists (e.g.
     * "flashinfer:DeepSeekV3"), or NULL. When set, moefuzz applies that method's parameters to
     * every case (as `--method` does). This slot was reserved[0] in the first header, which
     * kernels left zero: a contract of any struct_size that reaches it reads NULL there when
     * nothing is declared, so the size of this struct and of mf_kernel_api did not change. */
    const char *routing_method;
    uint64_t reserved[3]; /* zero */
} mf_kernel_contract;

/* ---- one call ---- */
typedef struct mf_kernel_params {
    uint32_t abi_version; /* MF_KERNEL_ABI_VERSION of the caller */
    uint32_t struct_size; /* sizeof(mf_kernel_params) of the caller */

    /* shape */
    int32_t T, H, I;
    int32_t E;             /* experts, global */
    int32_t E_local;       /* experts in w13/w2 (expert parallelism) */
    int32_t expert_offset; /* global id of local expert 0 */
    int32_t top_k;

    /* routing */
    int32_t score_fn;   /* MF_ABI_SCORE_* */
    int32_t bias_dtype; /* MF_ABI_BIAS_*; bias selects experts only, never enters weights */
    int32_t n_group;    /* 1: no grouping; else divides E */
    int32_t topk_group; /* groups kept */
    int32_t group_rule; /* MF_ABI_GROUP_* */
    int32_t renormalize;
    float renorm_eps; /* added to the sum of the selected weights: 0 or 1e-20f */
    float routed_scaling_factor;
    int32_t rsf_site; /* MF_ABI_RSF_* */

    /* experts */
    int32_t activation;   /* MF_ABI_ACT_* */
    int32_t layout;       /* MF_ABI_LAYOUT_*: which half of W13's 2I rows is gate */
    int32_t logits_dtype; /* MF_ABI_DTYPE_* */
    int32_t memory;       /* MF_ABI_MEM_*: where every pointer below lives */

    /* tensors, row-major, caller-owned */
    const void *x;        /* [T][H] bf16 */
    const void *logits;   /* [T][E] logits_dtype */
    const void *bias;     /* [E] fp32 or bf16 (bias_dtype), NULL when MF_ABI_BIAS_NONE */
    const void *w13;      /* [E_local][2I][H] bf16 */
    const void *w2;       /* [E_local][H][I] bf16 */
    void *out;            /* [T][H] bf16: every element written */
    int32_t *topk_ids;    /* [T][top_k] global ids, or NULL */
    float *topk_weights;  /* [T][top_k] weights applied to the expert outputs, or NULL */
    void *workspace;      /* workspace_size() bytes, caller-owned, contents undefined */
    size_t workspace_bytes;
    void *stream; /* cudaStream_t for device kernels (run may be asynchronous on it), else NULL */

    /* Extensions of this call (a chain of MF_KERNEL_EXT_PARAMS...), or NULL; only for a kernel
     * whose level knows them. The slot was reserved[0] in the first header (zero). */
    union {
        const mf_kernel_ext *ext;
        uint64_t ext_slot_;
    };
    uint64_t reserved[7]; /* zero */
} mf_kernel_params;

/* Level 2: the parameters of case format v2 (docs/case-format.md), in params.ext (kind
 * MF_KERNEL_EXT_PARAMS). moefuzz passes it to every kernel of level 2 or above, with each field 0
 * where the case uses level 1's semantics. */
typedef struct mf_kernel_params_v2 {
    mf_kernel_ext ext;    /* kind MF_KERNEL_EXT_PARAMS, struct_size sizeof(mf_kernel_params_v2) */
    int32_t renorm_denom; /* MF_ABI_RENORM_*: the renormalisation's denominator */
    int32_t nonfinite;    /* MF_ABI_NONFINITE_*: the router's policy for non-finite scores */
    int32_t expert_bias;  /* MF_ABI_EXPERT_BIAS_*: which of b13, b2 the experts add */
    int32_t reserved0_;   /* zero */
    /* [E_local][2I] bf16, added in fp32 to GEMM1's output row by row (W13's row order) before
     * the activation; NULL without it */
    const void *b13;
    /* [E_local][H] bf16, added in fp32 to the expert's GEMM2 output before the routing weight
     * (each local expert's own); NULL without it */
    const void *b2;
    /* MF_ABI_ACT_SWIGLU_OAI: g' = min(g, limit), u' = clamp(u, -limit, limit),
     * a = (u' + 1) g' / (1 + exp(-alpha g')); MF_ABI_ACT_SILU_CLAMP: silu(min(g, limit))
     * clamp(u, -limit, limit); MF_ABI_ACT_SILU_CLAMP_AFTER: min(silu(g), limit)
     * clamp(u, -limit, limit). 0 where the activation has none. */
    float act_alpha;
    float act_limit;
    /* level 3: quantized expert weights (docs/error-model.md, "FP8 block scale and MXFP4").
     * fp8_block: w13 and w2 hold e4m3 codes (1 byte each, same shapes), w13_s and w2_s their
     * fp32 block scales [E_local][ceil(2I / block_n)][ceil(H / block_k)] and
     * [E_local][ceil(H / block_n)][ceil(I / block_k)] (dequantized weight = code * scale; I is
     * a multiple of block_n), activations quantized per (token, block_k columns) with
     * scale_format. mxfp4: w13 and w2 hold bf16 values on the MXFP4 grid (e2m1 times one UE8M0
     * scale per 32 along K, the last block of a row partial), i.e. the packed weights
     * dequantized; the packing itself comes in the extension mf_kernel_mxfp4. */
    int32_t weight_format; /* MF_ABI_WFMT_* */
    int32_t scale_format;  /* MF_ABI_SCALE_*: fp8 activation scales amax / 448, or rounded up
                              to a power of two (UE8M0) */
    int32_t block_n, block_k;
    const void *w13_s, *w2_s; /* fp32 block scales (fp8_block), else NULL */
    /* level 4: n_shared always-on shared experts (0: none), each of intermediate size shared_I
     * with the routed experts' activation and layout and no expert bias. Per token,
     * out += s_j * ys_j in the combine's fp32 accumulator after the routed slots (before an
     * output-site rsf, which scales them too), s_j = 1, fl(1 / rsf) or
     * 1 / (1 + exp(-shared_gate[t])) by shared_weight (MF_ABI_SHARED_WEIGHT_*); only when
     * shared_owner is MF_ABI_SHARED_OWNER_THIS_RANK (under expert parallelism one rank owns
     * them; the others get the same weights and must not add them). */
    int32_t n_shared;
    int32_t shared_I;
    int32_t shared_weight; /* MF_ABI_SHARED_WEIGHT_* */
    int32_t shared_owner;  /* MF_ABI_SHARED_OWNER_* */
    const void *sw13;        /* [n_shared][2 shared_I][H] bf16 (W13's layout) */
    const void *sw2;         /* [n_shared][H][shared_I] bf16 */
    const void *shared_gate; /* [T] fp32 gate logits (shared_weight gate), else NULL */
    /* level 5: weight_on_input = 1 (vLLM's apply_router_weight_on_input, Llama-4): slot i's
     * routing weight w_i multiplies the token's input of its expert, x_t w_i (in exact
     * arithmetic GEMM1's output w_i (W13 x_t), before the activation), and the expert's output
     * enters the combine unweighted; the shared experts see x_t itself. No expert biases, bf16
     * weights. 0: the weight multiplies the expert's output (every lower level). */
    int32_t weight_on_input;
    int32_t reserved5_; /* zero */
    /* level 6: preroute != MF_ABI_PREROUTE_NONE: the routing is given and the kernel runs no
     * router (logits and bias are still passed; it must not use them). topk_ids_in
     * [T][top_k] global expert ids: -1 is an empty slot, and an id outside [0, E) or outside
     * this rank's experts (level 7: expert_map) adds nothing (vLLM's fused_experts,
     * FlashInfer's cutlass_fused_moe); an id repeated in a row adds its expert once per slot.
     * topk_weights_in [T][top_k], fp32 (MF_ABI_PREROUTE_F32) or bf16 (MF_ABI_PREROUTE_BF16):
     * slot i's output is multiplied by its weight as given (any sign, any sum; no
     * renormalisation and no rsf at the weights site; an output-site rsf still scales the
     * combined row). A kernel that reports its routing writes these ids and weights back
     * unchanged (the weights as fp32). */
    int32_t preroute;   /* MF_ABI_PREROUTE_* */
    int32_t reserved6_; /* zero */
    const int32_t *topk_ids_in;
    const void *topk_weights_in;
    /* level 7: placement == MF_ABI_PLACEMENT_MAP: expert_map [E] int32 says where each global
     * expert lives (vLLM's expert_map): expert_map[e] in [0, E_local) is the local index of
     * global expert e (its rows of w13, w2 and their biases and scales), -1 means e is not on
     * this rank; each local index appears exactly once, in any order (holes, non-contiguous
     * placement; the local order need not be the global order). expert_offset is 0 and unused.
     * The routing stays global: a selected expert adds to the output iff its entry is >= 0, and
     * a kernel that reports its routing reports global ids, remote ones included. Every lower
     * level: contiguous, [expert_offset, expert_offset + E_local) in order. */
    int32_t placement;  /* MF_ABI_PLACEMENT_* */
    int32_t reserved7_; /* zero */
    const int32_t *expert_map;
    /* level 8: tensor parallelism over I. tp_size > 1: this rank holds the slice of width I
     * (and shared_I) of every expert's intermediate dimension: W13's gate and up rows of the
     * slice in W13's layout, b13 likewise, W2's columns of the slice, and writes its partial sum
     * (the all-reduce is the caller's). b2 is the whole expert bias on every rank; the kernel
     * adds it only when tp_rank is 0 (FlashInfer's finalize, cutlass_fused_moe_kernels.cuh).
     * tp_size 0: no sharding (tp_rank 0). */
    int32_t tp_size;
    int32_t tp_rank;
} mf_kernel_params_v2;

/* The level-2 extension of params, or NULL (a caller of level 1): a kernel of level 2 reads the
 * fields it knows, up to the struct_size the caller wrote. */
static inline const mf_kernel_params_v2 *mf_kernel_params_v2_of(const mf_kernel_params *p) {
    for (const mf_kernel_ext *e = p->ext; e; e = e->next)
        if (e->kind == MF_KERNEL_EXT_PARAMS) return (const mf_kernel_params_v2 *)e;
    return NULL;
}

/* weight_format mxfp4 (level 3): the packed form of the weights whose dequantized values
 * mf_kernel_params.w13 and .w2 hold, for a kernel that reads MXFP4 as real MXFP4 kernels do
 * (docs/case-format.md, "MXFP4 packing"). Two arrays per matrix, row by row, a row being K
 * values along the reduction dimension (H for W13, I for W2; any K): the codes, ceil(K / 2)
 * bytes of e2m1 per row, element 2i in the low nibble of byte i and 2i + 1 in the high nibble
 * (code = sign << 3 | exponent << 1 | mantissa; an odd K leaves the last high nibble 0), and
 * the scales, ceil(K / 32) UE8M0 bytes per row, one per 32 elements, the last block partial
 * (value 2^(s - 127); 0xff is NaN). Value = e2m1(code) * scale, exactly the bf16 value in
 * w13 / w2 (+-inf where it exceeds bf16's range). The extension is in the chain of every mxfp4
 * call, supports() and workspace_size() included, where its pointers are NULL; in run() they
 * point to the arrays, where the kernel wants its tensors (mf_kernel_api.memory). A kernel that
 * does not know the kind ignores it and reads the dequantized values. */
typedef struct mf_kernel_mxfp4 {
    mf_kernel_ext ext;     /* kind MF_KERNEL_EXT_MXFP4, struct_size sizeof(mf_kernel_mxfp4) */
    const uint8_t *w13_q;  /* [E_local][2I][ceil(H / 2)] */
    const uint8_t *w13_sc; /* [E_local][2I][ceil(H / 32)] */
    const uint8_t *w2_q;   /* [E_local][H][ceil(I / 2)] */
    const uint8_t *w2_sc;  /* [E_local][H][ceil(I / 32)] */
} mf_kernel_mxfp4;

/* The packed MXFP4 weights of an mxfp4 case, or NULL. */
static inline const mf_kernel_mxfp4 *mf_kernel_mxfp4_of(const mf_kernel_params *p) {
    for (const mf_kernel_ext *e = p->ext; e; e = e->next)
        if (e->kind == MF_KERNEL_EXT_MXFP4 && e->struct_size >= sizeof(mf_kernel_mxfp4))
            return (const mf_kernel_mxfp4 *)e;
    return NULL;
}

/* ---- the function table ---- */
typedef struct mf_kernel_api {
    uint32_t abi_version;
    uint32_t struct_size;
    const char *name;        /* short, e.g. "cpu" */
    const char *description; /* one line */
    int32_t memory;          /* MF_ABI_MEM_*: where the kernel wants the tensors */
    mf_kernel_contract contract;

    /* All functions return 0 on success. On failure they write a NUL-terminated message of at
     * most msg_len bytes and return nonzero. */
    int (*create)(void **ctx, char *msg, size_t msg_len);
    /* 1: supported; 0: not supported (reason written: an answer, not a failure); <0: error. */
    int (*supports)(void *ctx, const mf_kernel_params *p, char *msg, size_t msg_len);
    int (*workspace_size)(void *ctx, const mf_kernel_params *p, size_t *bytes, char *msg,
                          size_t msg_len);
    /* Computes out (and topk_ids / topk_weights when non-NULL). Device kernels may return
     * before the work completes; the caller synchronises the stream. Returning
     * MF_KERNEL_RUN_UNSUPPORTED with the reason in msg refuses the call as supports() returning
     * 0 would (an exec adapter's "unsupported" answer): for a kernel that finds out only while
     * running; a metamorphic variant refused so is left out. */
    int (*run)(void *ctx, const mf_kernel_params *p, char *msg, size_t msg_len);
    void (*release)(void *ctx);
    /* The kernel's extension of a kind (MF_KERNEL_EXT_*), or NULL when it has none; may be NULL
     * itself (no extensions: level 1). moefuzz calls it before create(). The slot was
     * reserved[0] in the first header, which kernels left NULL. */
    const mf_kernel_ext *(*get_ext)(uint32_t kind);
    void *reserved[7];
} mf_kernel_api;

/* ---- the contract field by field (MF_KERNEL_EXT_CONTRACT) ----
 * A kernel whose get_ext(MF_KERNEL_EXT_CONTRACT) returns this declares every field of its
 * contract here (docs/error-model.md derives each); mf_kernel_contract's name must then be NULL
 * and its fields acc_kind .. deterministic are not read (reports_routing and routing_method
 * are). moefuzz validates every field when it loads the kernel: a value outside its list or
 * range is an error, never a default. A field past the writer's struct_size reads as 0, which is
 * each appended field's first behaviour. */
enum { MF_ABI_SIGMOID_EXP_DIV = 0, MF_ABI_SIGMOID_TANH = 1, MF_ABI_SIGMOID_EXP_DIV_OR_TANH = 2 };
enum { MF_ABI_TIE_LOWER_INDEX = 0, MF_ABI_TIE_ANY = 1 };
enum { MF_ABI_WEIGHT_PLAIN = 0, MF_ABI_WEIGHT_KEY_MINUS_BIAS = 1 };
enum {
    MF_ABI_RP_SILU_OUT = 1u << 5, /* silu(g) rounded to bf16 before the multiply by up */
    MF_ABI_RP_RSF_OUT = 1u << 6,  /* output-site rsf on the bf16 combine, rounded again */
    MF_ABI_RP_BIAS = 1u << 7,     /* the bias rounded to bf16 before the key add */
};

typedef struct mf_kernel_contract_ext {
    mf_kernel_ext ext;     /* kind MF_KERNEL_EXT_CONTRACT, struct_size sizeof(this struct) */
    int32_t acc_kind;      /* MF_ABI_ACC_* for GEMM1 and GEMM2 */
    int32_t acc_block;     /* FUSED_BLOCK: products per fused step, 1 .. 4096 */
    int32_t acc_frac_bits; /* FUSED_BLOCK: fraction bits kept below the step maximum, 22 .. 60 */
    int32_t exp_kind;      /* MF_ABI_EXP_* of the activation (and the router, unless router_own) */
    float exp_ulps;        /* EXP_ACCURATE: max error in fp32 ulps, (0, 1024]; else 0 */
    int32_t div_kind;      /* MF_ABI_DIV_* */
    uint32_t round_points; /* MF_ABI_RP_* bits; MF_ABI_RP_ACT_OUT required */
    int32_t deterministic; /* 1: identical bits on identical input; 0 */
    int32_t router_own;    /* 1: the router's exp and division are the three below; 0: the above */
    int32_t router_exp_kind;
    float router_exp_ulps;
    int32_t router_div_kind;
    int32_t sigmoid_form;  /* MF_ABI_SIGMOID_* */
    float tanh_rel;        /* a tanh form: max relative error of tanh, (0, 2^-8]; else 0 */
    int32_t softmax_recip; /* 1: softmax as e fl(1 / Z); 0: e / Z */
    int32_t weight_form;   /* MF_ABI_WEIGHT_* */
    int32_t tie_rule;      /* MF_ABI_TIE_* */
    int32_t ftz;           /* 1: router, activation and combine flush subnormal results to 0 */
    int32_t combine_dtype; /* MF_ABI_DTYPE_* of the combine's accumulator */
    int32_t router_logits_dtype; /* 1: the router computes in the logits' dtype (bf16 logits:
                                    scores, bf16 keys, group sums and each weight step rounded
                                    to bf16); 0: in fp32 */
    uint32_t reserved[8]; /* zero */
} mf_kernel_contract_ext;

/* The symbol a plugin exports. Fills *api (api_size bytes of it) for the caller's abi_version;
 * returns 0, or nonzero when it cannot serve that version. */
typedef int (*mf_kernel_get_api_fn)(uint32_t abi_version, mf_kernel_api *api, size_t api_size);

#ifdef __cplusplus
}
#endif

#endif /* MOEFUZZ_KERNEL_ABI_H */
