/* calibrate.c: the tightest contract a kernel satisfies, found by probing it (calibrate.h).
 *
 * Three parts: the fields the search sets (a table: adding a contract field is a row), the probe
 * cases (text cases, two with hand-set tensors for the accumulation order), and the search with
 * its validation. docs/calibrate.md says what each probe decides and what it cannot.
 */
#include "calibrate.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "casegen.h"
#include "codec.h"
#include "models.h"
#include "paths.h"
#include "verdict.h"

/* ---- fields: candidate values, tightest first ---- */

static const char *const off_on[] = {"off", "on"};
static const char *name_off_on(int v) {
    return off_on[v];
}

/* round points: one field per bit */
#define RP_FIELD(id, bit)                                                                   \
    static void set_rp_##id(mf_contract *c, int v) {                                        \
        c->round_points = v ? c->round_points | (bit) : c->round_points & ~(unsigned)(bit); \
    }                                                                                       \
    static int get_rp_##id(const mf_contract *c) {                                          \
        return (c->round_points & (bit)) != 0;                                              \
    }
RP_FIELD(gemm1, MF_RP_GEMM1_OUT)
RP_FIELD(silu, MF_RP_SILU_OUT)
/* the activation's rounding is no hypothesis: GEMM2 reads bf16 (the reference refuses a
 * contract without it, and so does the ABI) */
static void set_rp_act(mf_contract *c, int v) {
    (void)v, c->round_points |= MF_RP_ACT_OUT;
}
static int get_rp_act(const mf_contract *c) {
    return (c->round_points & MF_RP_ACT_OUT) ? 0 : -1;
}
static const char *name_required_on(int v) {
    return v ? "?" : "on (required)";
}
RP_FIELD(gemm2, MF_RP_GEMM2_OUT)
RP_FIELD(weighted, MF_RP_WEIGHTED)
RP_FIELD(weights, MF_RP_WEIGHTS)
RP_FIELD(rsf, MF_RP_RSF_OUT)
RP_FIELD(bias, MF_RP_BIAS)

/* GEMM accumulation, tightest first: the K-order fp32 chain, Hopper's measured fused steps, the
 * class of K-order blocks of at most 16 products keeping 25 bits, any order */
static const mf_acc_model acc_values[] = {{MF_ACC_SEQ_FP32, 1, 0},
                                          {MF_ACC_FUSED_BLOCK, 16, 25},
                                          {MF_ACC_ORDERED_BLOCKS, 16, 25},
                                          {MF_ACC_ANY_ORDER, 0, 0}};
#define N_ACC_VALUES ((int)(sizeof acc_values / sizeof acc_values[0]))
static const char *const acc_names[N_ACC_VALUES] = {"seq_fp32", "fused_block B=16 F=25",
                                                    "ordered_blocks B=16 F=25", "any_order"};
static void set_acc(mf_contract *c, int v) {
    c->gemm = acc_values[v];
}
static int get_acc(const mf_contract *c) {
    for (int v = 0; v < N_ACC_VALUES; v++)
        if (!memcmp(&c->gemm, &acc_values[v], sizeof c->gemm)) return v;
    return -1;
}
static const char *name_acc(int v) {
    return acc_names[v];
}

/* exp: expf-class at 2 ulp (the built-in contracts' figure), or the fast exp */
static void set_exp(mf_contract *c, int v) {
    c->exp = v ? MF_EXP_FAST : MF_EXP_ACCURATE;
    c->exp_ulps = v ? 0 : 2.0;
}
static int get_exp(const mf_contract *c) {
    if (c->exp == MF_EXP_FAST && c->exp_ulps == 0) return 1;
    return c->exp == MF_EXP_ACCURATE && c->exp_ulps == 2.0 ? 0 : -1;
}
static const char *name_exp(int v) {
    return v ? "fast" : "accurate (2 ulp)";
}

static void set_div(mf_contract *c, int v) {
    c->div = v ? MF_DIV_FAST : MF_DIV_IEEE;
}
static int get_div(const mf_contract *c) {
    return c->div == MF_DIV_FAST;
}
static const char *name_div(int v) {
    return v ? "fast" : "ieee";
}

/* the router's exp and division: the contract's own, or declared apart */
static const mf_fn_kinds router_values[] = {{0, 0, 0, 0},
                                            {1, MF_EXP_ACCURATE, 2.0, MF_DIV_IEEE},
                                            {1, MF_EXP_FAST, 0, MF_DIV_IEEE},
                                            {1, MF_EXP_ACCURATE, 2.0, MF_DIV_FAST},
                                            {1, MF_EXP_FAST, 0, MF_DIV_FAST}};
static const char *const router_names[] = {"as the contract's exp and div",
                                           "exp accurate, div ieee", "exp fast, div ieee",
                                           "exp accurate, div fast", "exp fast, div fast"};
static void set_router(mf_contract *c, int v) {
    c->router = router_values[v];
}
static int get_router(const mf_contract *c) {
    for (int v = 0; v < 5; v++)
        if (c->router.own == router_values[v].own &&
            (!c->router.own ||
             (c->router.exp == router_values[v].exp && c->router.div == router_values[v].div &&
              c->router.exp_ulps == router_values[v].exp_ulps)))
            return v;
    return -1;
}
static const char *name_router(int v) {
    return router_names[v];
}

/* sigmoid form with the tanh's error: tanhf (2 ulp) or tanh.approx (PTX ISA: 2^-10.987) */
static const struct {
    mf_sigmoid_form form;
    double tanh_rel;
    const char *name;
} sigmoid_values[] = {
    {MF_SIGMOID_EXP_DIV, 0, "exp_div"},
    {MF_SIGMOID_TANH, 2 * 0x1p-23, "tanh (tanhf, 2 ulp)"},
    {MF_SIGMOID_EXP_DIV_OR_TANH, 2 * 0x1p-23, "exp_div_or_tanh (tanhf, 2 ulp)"},
    {MF_SIGMOID_TANH, 0x1.03p-11, "tanh (tanh.approx, 2^-10.987)"},
    {MF_SIGMOID_EXP_DIV_OR_TANH, 0x1.03p-11, "exp_div_or_tanh (tanh.approx)"},
};
#define N_SIGMOID (int)(sizeof sigmoid_values / sizeof sigmoid_values[0])
static void set_sigmoid(mf_contract *c, int v) {
    c->sigmoid_form = sigmoid_values[v].form;
    c->tanh_rel = sigmoid_values[v].tanh_rel;
}
static int get_sigmoid(const mf_contract *c) {
    for (int v = 0; v < N_SIGMOID; v++)
        if (c->sigmoid_form == sigmoid_values[v].form && c->tanh_rel == sigmoid_values[v].tanh_rel)
            return v;
    return -1;
}
static const char *name_sigmoid(int v) {
    return sigmoid_values[v].name;
}

static void set_recip(mf_contract *c, int v) {
    c->softmax_recip = v;
}
static int get_recip(const mf_contract *c) {
    return c->softmax_recip != 0;
}
static const char *name_recip(int v) {
    return v ? "e fl(1 / Z)" : "e / Z";
}

static void set_wform(mf_contract *c, int v) {
    c->weight_form = (mf_weight_form)v;
}
static int get_wform(const mf_contract *c) {
    return (int)c->weight_form;
}
static const char *name_wform(int v) {
    return mf_enum_name(&mf_enum_weight_form, v);
}

static void set_tie(mf_contract *c, int v) {
    c->tie_rule = (mf_tie_rule)v;
}
static int get_tie(const mf_contract *c) {
    return (int)c->tie_rule;
}
static const char *name_tie(int v) {
    return mf_enum_name(&mf_enum_tie_rule, v);
}

static void set_ftz(mf_contract *c, int v) {
    c->ftz = v;
}
static int get_ftz(const mf_contract *c) {
    return c->ftz != 0;
}

static void set_combine(mf_contract *c, int v) {
    c->combine_dtype = v ? MF_DTYPE_BF16 : MF_DTYPE_F32;
}
static int get_combine(const mf_contract *c) {
    return c->combine_dtype == MF_DTYPE_BF16;
}
static const char *name_combine(int v) {
    return v ? "bf16" : "fp32";
}

static void set_det(mf_contract *c, int v) {
    c->deterministic = !v;
}
static int get_det(const mf_contract *c) {
    return !c->deterministic;
}
static const char *name_det(int v) {
    return v ? "no" : "yes";
}

/* The fields in the order tightening visits them: the routing's alternatives and the run-level
 * fields first, then the roundings from the activation to the output, then the functions. Where
 * two roundings' bounds cover each other's effect, which one the result keeps comes from the
 * forward selection and the swaps (search()), not from this order: docs/calibrate.md, "What the
 * probes cannot tell apart". */
static const mf_calib_field fields[] = {
    {"gemm", "GEMM accumulation", N_ACC_VALUES, set_acc, get_acc, name_acc, MF_CALIB_LOOSEST},
    {"tie_rule", "order among bit-identical keys", MF_TIE_COUNT, set_tie, get_tie, name_tie,
     MF_CALIB_ALTERNATIVE},
    {"deterministic", "identical bits on identical input", 2, set_det, get_det, name_det,
     MF_CALIB_LOOSEST},
    {"ftz", "subnormal router/activation/combine results flushed", 2, set_ftz, get_ftz, name_off_on,
     MF_CALIB_LOOSEST},
    {"round.gemm1_out", "gate and up rounded to bf16", 2, set_rp_gemm1, get_rp_gemm1, name_off_on,
     MF_CALIB_ADDED},
    {"round.silu_out", "silu(g) rounded to bf16 before the multiply", 2, set_rp_silu, get_rp_silu,
     name_off_on, MF_CALIB_ADDED},
    {"round.act_out", "activation rounded to bf16 before GEMM2", 1, set_rp_act, get_rp_act,
     name_required_on, MF_CALIB_LOOSEST},
    {"combine", "the combine's accumulator", 2, set_combine, get_combine, name_combine,
     MF_CALIB_ADDED},
    {"round.rsf_out", "output-site rsf on the bf16 sum, rounded again", 2, set_rp_rsf, get_rp_rsf,
     name_off_on, MF_CALIB_ADDED},
    {"round.weighted", "w * y rounded to bf16 per expert", 2, set_rp_weighted, get_rp_weighted,
     name_off_on, MF_CALIB_ADDED},
    {"round.gemm2_out", "expert output rounded to bf16", 2, set_rp_gemm2, get_rp_gemm2, name_off_on,
     MF_CALIB_ADDED},
    {"round.weights", "routing weights rounded to bf16", 2, set_rp_weights, get_rp_weights,
     name_off_on, MF_CALIB_ADDED},
    {"round.bias", "bias rounded to bf16 before the key add", 2, set_rp_bias, get_rp_bias,
     name_off_on, MF_CALIB_ADDED},
    {"exp", "the activation's exp", 2, set_exp, get_exp, name_exp, MF_CALIB_LOOSEST},
    {"div", "the activation's division", 2, set_div, get_div, name_div, MF_CALIB_LOOSEST},
    {"router", "the router's exp and division", 5, set_router, get_router, name_router,
     MF_CALIB_LOOSEST},
    {"sigmoid", "the router's sigmoid form", N_SIGMOID, set_sigmoid, get_sigmoid, name_sigmoid,
     MF_CALIB_LOOSEST},
    {"softmax_recip", "softmax as e / Z or e fl(1 / Z)", 2, set_recip, get_recip, name_recip,
     MF_CALIB_LOOSEST},
    {"weight_form", "how a weight is formed from its score", MF_WEIGHT_COUNT, set_wform, get_wform,
     name_wform, MF_CALIB_ALTERNATIVE},
};
#define N_FIELDS (int)(sizeof fields / sizeof fields[0])
_Static_assert(N_FIELDS <= MF_CALIB_MAX_FIELDS, "MF_CALIB_MAX_FIELDS");

const mf_calib_field *mf_calib_fields(int *n) {
    *n = N_FIELDS;
    return fields;
}

int mf_calib_contract_equal(const mf_contract *a, const mf_contract *b) {
    mf_contract x = *a, y = *b;
    x.name = y.name = "";
    x.summary = y.summary = NULL;
    x.sources = y.sources = NULL;
    return mf_contract_equal(&x, &y);
}

/* ---- probes ---- */

/* Each probe is a text case (codec.h) and, for two of them, tensors set by hand after the build.
 * Routing flavours repeat so that a kernel that refuses one (a DeepSeek-only router, a
 * softmax-only one) still meets each hypothesis. */
typedef struct probe {
    const char *name;
    const char *decides; /* the fields it is built to show */
    const char *text;
    void (*edit)(mf_problem *pb); /* NULL: the generated tensors */
} probe;

#define SHAPE "T = 4\nH = 128\nI = 64\n"
#define DATA "gen.x = normal seed=0xca1\ngen.w13 = normal seed=0xca2\ngen.w2 = normal seed=0xca3\n"
#define SIGMOID_BIAS "score = sigmoid\nbias = f32\nrenormalize = true\neps = 1e-20\n"
#define GROUPED "E = 64\ntop_k = 8\nn_group = 8\ntopk_group = 4\n"

static void edit_acc_block(mf_problem *pb);
static void edit_acc_lanes(mf_problem *pb);
static void edit_gate_24(mf_problem *pb);
static void edit_tiny_scores(mf_problem *pb);

static const probe probes[] = {
    {"data-softmax", "roundings, exp, div, softmax_recip, combine",
     SHAPE "E = 16\ntop_k = 4\nscore = softmax\nbias = none\nrenormalize = true\neps = 0\n"
           "rsf = 1\ngen.logits = normal scale=2 seed=0xca4\n" DATA,
     NULL},
    {"data-sigmoid-bias", "roundings (weights, weighted), router exp/div, combine",
     SHAPE "E = 32\ntop_k = 8\n" SIGMOID_BIAS "rsf = 2.5\ngen.logits = normal seed=0xca5\n"
           "gen.bias = normal scale=0.01 seed=0xca6\n" DATA,
     NULL},
    {"data-grouped", "roundings, router of grouped (DeepSeek) routing",
     SHAPE GROUPED SIGMOID_BIAS "rsf = 2.5\ngen.logits = normal seed=0xca7\n"
                                "gen.bias = normal scale=0.01 seed=0xca8\n" DATA,
     NULL},
    {"rsf-output-softmax", "round.rsf_out",
     SHAPE "E = 16\ntop_k = 4\nscore = softmax\nbias = none\nrenormalize = true\nrsf = 2.5\n"
           "rsf_site = output\ngen.logits = normal seed=0xca9\n" DATA,
     NULL},
    {"rsf-output-sigmoid", "round.rsf_out",
     SHAPE "E = 32\ntop_k = 8\n" SIGMOID_BIAS "rsf = 2.5\nrsf_site = output\n"
           "gen.logits = normal seed=0xcaa\ngen.bias = normal scale=0.01 seed=0xcab\n" DATA,
     NULL},
    {"sigmoid-deep-negative", "sigmoid form (tanh loses the score's relative accuracy)",
     SHAPE "E = 32\ntop_k = 4\n" SIGMOID_BIAS "rsf = 1\ngen.logits = large_neg scale=3 "
           "seed=0xcac\ngen.bias = normal scale=0.00001 seed=0xcad\n" DATA,
     NULL},
    {"sigmoid-deep-negative-grouped", "sigmoid form, grouped routing",
     SHAPE GROUPED SIGMOID_BIAS "rsf = 2.5\ngen.logits = large_neg scale=3 seed=0xcae\n"
                                "gen.bias = normal scale=0.00001 seed=0xcaf\n" DATA,
     NULL},
    {"ties-softmax", "tie_rule",
     "T = 8\nH = 64\nI = 32\nE = 32\ntop_k = 5\nscore = softmax\n"
     "bias = none\nrenormalize = true\nrsf = 1\n"
     "gen.logits = ties seed=0xcb0\n" DATA,
     NULL},
    {"ties-grouped", "tie_rule, grouped routing",
     "T = 8\nH = 64\nI = 32\n" GROUPED SIGMOID_BIAS "rsf = 2.5\ngen.logits = ties seed=0xcb1\n"
     "gen.bias = ties scale=0.5 seed=0xcb2\n" DATA,
     NULL},
    {"large-bias", "weight_form, round.bias",
     SHAPE "E = 64\ntop_k = 8\n" SIGMOID_BIAS "rsf = 2.5\ngen.logits = normal seed=0xcb3\n"
           "gen.bias = large_pos seed=0xcb4\n" DATA,
     NULL},
    {"large-bias-grouped", "weight_form, round.bias, grouped routing",
     SHAPE GROUPED SIGMOID_BIAS "rsf = 2.5\ngen.logits = normal seed=0xcb5\n"
                                "gen.bias = large_pos seed=0xcb6\n" DATA,
     NULL},
    {"underflow-eps", "ftz, the renormalisation's denominator",
     "T = 8\nH = 64\nI = 32\nE = 16\ntop_k = 4\n" SIGMOID_BIAS "rsf = 2.5\n"
     "gen.logits = underflow seed=0xcb7\ngen.bias = normal scale=0.01 seed=0xcb8\n" DATA,
     NULL},
    {"underflow-no-eps", "ftz, the renormalisation's denominator",
     "T = 8\nH = 64\nI = 32\nE = 16\ntop_k = 4\nscore = sigmoid\nbias = none\nrenormalize = true\n"
     "eps = 0\nrsf = 1\ngen.logits = underflow seed=0xcb9\n" DATA,
     NULL},
    {"bf16-logits", "routing in bf16 logits",
     SHAPE "E = 32\ntop_k = 8\n" SIGMOID_BIAS "rsf = 2.5\nlogits_dtype = bf16\n"
           "gen.logits = normal seed=0xcba\ngen.bias = normal scale=0.01 seed=0xcbb\n" DATA,
     NULL},
    {"gemm1-up-rounding", "round.gemm1_out apart from round.silu_out",
     SHAPE "E = 16\ntop_k = 4\n" SIGMOID_BIAS "rsf = 1\ngen.logits = normal seed=0xcc0\n"
           "gen.bias = normal scale=0.01 seed=0xcc1\n" DATA,
     edit_gate_24},
    {"gemm2-top1", "round.gemm2_out apart from the combine (one expert: nothing to combine)",
     "T = 8\nH = 128\nI = 64\nE = 16\ntop_k = 1\n" SIGMOID_BIAS "rsf = 2.5\n"
     "gen.logits = normal seed=0xcc2\ngen.bias = normal scale=0.01 seed=0xcc3\n" DATA,
     NULL},
    {"tiny-scores-eps", "the renormalisation's denominator (sum against 1e-20)",
     "T = 4\nH = 64\nI = 32\nE = 16\ntop_k = 4\n" SIGMOID_BIAS "rsf = 1\n"
     "gen.logits = normal seed=0xcc4\ngen.bias = normal scale=0.01 seed=0xcc5\n" DATA,
     edit_tiny_scores},
    {"tiny-scores-no-eps", "the renormalisation's denominator (sum against 1e-20)",
     "T = 4\nH = 64\nI = 32\nE = 16\ntop_k = 4\nscore = sigmoid\nbias = f32\n"
     "renormalize = true\neps = 0\nrsf = 1\ngen.logits = normal seed=0xcc6\n"
     "gen.bias = normal scale=0.01 seed=0xcc7\n" DATA,
     edit_tiny_scores},
    {"acc-block-boundary", "gemm: a K-order chain, not per-block partial sums",
     "T = 2\nH = 256\nI = 8\nE = 8\ntop_k = 2\n" SIGMOID_BIAS "rsf = 1\n"
     "gen.logits = normal seed=0xcbc\ngen.bias = normal scale=0.01 seed=0xcbd\n",
     edit_acc_block},
    {"acc-lanes", "gemm: a K-order chain or fused steps, not interleaved partial sums",
     "T = 2\nH = 256\nI = 8\nE = 8\ntop_k = 2\n" SIGMOID_BIAS "rsf = 1\n"
     "gen.logits = normal seed=0xcbe\ngen.bias = normal scale=0.01 seed=0xcbf\n",
     edit_acc_lanes},
};
#define N_PROBES (int)(sizeof probes / sizeof probes[0])

#define BF16_ONE 0x3f80u
#define BF16_MINUS_ONE 0xbf80u
#define BF16_2M25 0x3300u /* 2^-25: half an ulp below 1, lost next to +-1 (ties to even) */

/* Every expert: gate unit 0 = sum_k w[k] x[k] with w from `gate` (H entries), up unit 0 = x[0]
 * = 1, the other units 0; every output column reads unit 0 with weight 1. x is all ones, so the
 * gate's exact value is the sum of its row and silu(g) * u ~ g / 2 carries g to the output. */
static void set_acc_problem(mf_problem *pb, const uint16_t *gate) {
    const mf_moe_params *p = &pb->p;
    size_t H = (size_t)p->H, I = (size_t)p->I;
    for (size_t i = 0; i < (size_t)p->T * H; i++) pb->x[i] = BF16_ONE;
    for (int e = 0; e < p->E_local; e++) {
        uint16_t *w13 = pb->w13 + (size_t)e * 2 * I * H, *w2 = pb->w2 + (size_t)e * H * I;
        memset(w13, 0, sizeof *w13 * 2 * I * H);
        memset(w2, 0, sizeof *w2 * H * I);
        memcpy(w13 + (size_t)mf_gate_row(p, 0) * H, gate, sizeof *gate * H);
        w13[(size_t)mf_up_row(p, 0) * H] = BF16_ONE;
        for (size_t h = 0; h < H; h++) w2[h * I] = BF16_ONE;
    }
}

/* +1 at k = 127, -1 at k = 128, then 2^-25 at every k > 128: the K-order chain is exact
 * (127 * 2^-25 ~ 2^-18); a kernel that sums blocks of 128 from 0 and then adds them loses every
 * 2^-25 next to the -1 (result 0), outside the chain's bound (about 2^-24) and the fused steps'
 * (two steps with a maximum of 1: about 2^-20). */
static void edit_acc_block(mf_problem *pb) {
    uint16_t gate[MF_MAX_H];
    int H = pb->p.H;
    memset(gate, 0, sizeof gate);
    gate[127] = BF16_ONE;
    gate[128] = BF16_MINUS_ONE;
    for (int k = 129; k < H; k++) gate[k] = BF16_2M25;
    set_acc_problem(pb, gate);
}

/* +1 at k = 0, -1 at k = 1, 2^-25 at every k >= 2: the chain cancels at once and adds the rest
 * exactly; interleaved partial sums (SIMD lanes, four or eight accumulators) keep the +1 and the
 * -1 in two lanes that lose every 2^-25 they meet (2^-19 or more in all), above the fused-step
 * bound (2^-21 for the first step, which holds both; the others hold only 2^-25s). */
static void edit_acc_lanes(mf_problem *pb) {
    uint16_t gate[MF_MAX_H];
    int H = pb->p.H;
    memset(gate, 0, sizeof gate);
    gate[0] = BF16_ONE;
    gate[1] = BF16_MINUS_ONE;
    for (int k = 2; k < H; k++) gate[k] = BF16_2M25;
    set_acc_problem(pb, gate);
}

/* A probe's text with a `defaults = ...` line for the keys it leaves out (codec.h: a text case
 * names every key or lists it there). */
static mf_status probe_case(const probe *pr, mf_case *c, mf_error *err) {
    static const char *const keys[] = {"T",
                                       "H",
                                       "I",
                                       "E",
                                       "E_local",
                                       "expert_offset",
                                       "top_k",
                                       "score",
                                       "bias",
                                       "n_group",
                                       "topk_group",
                                       "group_rule",
                                       "renormalize",
                                       "eps",
                                       "rsf",
                                       "rsf_site",
                                       "activation",
                                       "layout",
                                       "logits_dtype",
#define GEN_KEY_(ID, name, ...) "gen." #name,
                                       MF_TENSOR_LIST(GEN_KEY_)
#undef GEN_KEY_
    };
    char text[4096];
    size_t o = (size_t)snprintf(text, sizeof text, "%s\ndefaults =", pr->text);
    const size_t n_param_keys = sizeof keys / sizeof keys[0] - MF_NUM_TENSORS;
    for (size_t i = 0; i < sizeof keys / sizeof keys[0] && o < sizeof text; i++) {
        /* the probes are level-1 problems: no generator key of a later level's tensor */
        if (i >= n_param_keys && mf_tensor_level((mf_tensor_id)(i - n_param_keys)) > 1) continue;
        char pat[64];
        snprintf(pat, sizeof pat, "\n%s = ", keys[i]);
        size_t kl = strlen(keys[i]);
        int given = strstr(text, pat) || (!strncmp(text, keys[i], kl) && text[kl] == ' ');
        if (!given) o += (size_t)snprintf(text + o, sizeof text - o, " %s", keys[i]);
    }
    if (o >= sizeof text) return MF_FAIL(err, MF_EINTERNAL, "probe %s: text too long", pr->name);
    mf_status st = mf_case_parse_text(text, c, err);
    if (st != MF_OK) mf_error_trace(err, __FILE__, __LINE__);
    return st;
}

/* Every gate row holds 24 at k = 0 and 0 elsewhere, and x[t][0] = 1: g = 24 exactly and
 * silu(24) rounds to 24 in fp32 and bf16, so a rounding of silu changes nothing, while a
 * rounding of up (GEMM1's output) before the product does: RN(24 RN(u)) != RN(24 u) for about
 * a quarter of the units. Separates round.gemm1_out from round.silu_out. */
static void edit_gate_24(mf_problem *pb) {
    const mf_moe_params *p = &pb->p;
    size_t H = (size_t)p->H, I = (size_t)p->I;
    for (int t = 0; t < p->T; t++) pb->x[(size_t)t * H] = BF16_ONE;
    for (int e = 0; e < p->E_local; e++) {
        uint16_t *w13 = pb->w13 + (size_t)e * 2 * I * H;
        for (size_t j = 0; j < I; j++) {
            uint16_t *row = w13 + (size_t)mf_gate_row(p, (int)j) * H;
            memset(row, 0, sizeof *row * H);
            row[0] = 0x41c0u; /* 24 */
        }
    }
}

/* Logits about -80: scores near 2^-116, normal in fp32, their sum far below 1e-20, so the
 * weights are about s / 1e-20 with the eps and s / sum without it. */
static void edit_tiny_scores(mf_problem *pb) {
    size_t n = (size_t)pb->p.T * (size_t)pb->p.E;
    for (size_t i = 0; i < n; i++) pb->logits[i] = -80.0f - 0.25f * (float)(i % 13);
}

/* ---- the cases the search decides on ---- */

typedef struct calib_case {
    char name[160];
    mf_problem pb;
    mf_run_result r, r2;
    int has_r2;
} calib_case;

typedef struct calib_set {
    calib_case *v;
    int n, cap;
} calib_set;

static void set_free(calib_set *s) {
    for (int i = 0; i < s->n; i++) {
        mf_problem_free(&s->v[i].pb);
        mf_run_result_free(&s->v[i].r);
        if (s->v[i].has_r2) mf_run_result_free(&s->v[i].r2);
    }
    free(s->v);
    memset(s, 0, sizeof *s);
}

/* Runs the kernel on pb twice into cc (which views pb). *refused: 0 ran, 1 the kernel refused
 * the case, 2 it failed on it (an error, a crash or a timeout: counted in res, the first
 * message kept; no contract is about such a case, and the others still decide). */
static mf_status run_twice(mf_backend *b, const mf_problem *pb, calib_case *cc, int *refused,
                           mf_calib_result *res, mf_error *err) {
    memset(&cc->r, 0, sizeof cc->r);
    memset(&cc->r2, 0, sizeof cc->r2);
    cc->has_r2 = 0;
    mf_status st = mf_backend_run(b, pb, &cc->r, err);
    *refused = st == MF_OK && cc->r.unsupported;
    if (st == MF_OK && !*refused) {
        st = mf_backend_run(b, pb, &cc->r2, err);
        if (st == MF_OK && cc->r2.unsupported) {
            st = MF_FAIL(err, MF_EBACKEND,
                         "the kernel ran the case, then refused it on the second run: %s",
                         cc->r2.reason);
            mf_run_result_free(&cc->r2);
        }
        cc->has_r2 = st == MF_OK;
    }
    if (st == MF_EBACKEND || st == MF_ECRASH || st == MF_ETIMEOUT) {
        if (!res->errored++)
            snprintf(res->first_error, sizeof res->first_error, "%.100s: %.150s", cc->name,
                     err->msg);
        mf_error_clear(err);
        *refused = 2;
        st = MF_OK;
    }
    if (st != MF_OK || *refused) {
        mf_run_result_free(&cc->r);
        mf_run_result_free(&cc->r2);
        cc->has_r2 = 0;
    }
    return st;
}

static mf_status set_push(calib_set *s, const calib_case *cc, mf_error *err) {
    if (s->n == s->cap) {
        int cap = s->cap ? 2 * s->cap : 32;
        calib_case *v = realloc(s->v, sizeof *v * (size_t)cap);
        if (!v) return MF_FAIL(err, MF_ENOMEM, "out of memory");
        s->v = v, s->cap = cap;
    }
    s->v[s->n++] = *cc;
    return MF_OK;
}

/* Runs the kernel twice on pb (taken over by the set) and appends the case; 1 if the kernel
 * refused it (pb freed), 0 if appended. */
static mf_status set_add(calib_set *s, mf_backend *b, const char *name, mf_problem *pb,
                         int *refused, mf_calib_result *res, mf_error *err) {
    calib_case cc;
    memset(&cc, 0, sizeof cc);
    snprintf(cc.name, sizeof cc.name, "%s", name);
    int refused2 = 0;
    mf_status st = run_twice(b, pb, &cc, &refused2, res, err);
    if (st != MF_OK || refused2) {
        *refused = refused2;
        mf_problem_free(pb);
        if (st != MF_OK) mf_error_trace(err, __FILE__, __LINE__);
        return st;
    }
    *refused = 0;
    cc.pb = *pb;
    st = set_push(s, &cc, err);
    if (st != MF_OK) {
        mf_run_result_free(&cc.r);
        mf_run_result_free(&cc.r2);
        mf_problem_free(pb);
        return st;
    }
    memset(pb, 0, sizeof *pb);
    return MF_OK;
}

typedef struct checker {
    mf_verdict *v;
    mf_check_opts o;
} checker;

/* 1 if the kernel's results on cc pass contract c; the verdict stays in ck->v. */
static mf_status passes(checker *ck, const mf_contract *c, const calib_case *cc, int *pass,
                        mf_error *err) {
    MF_TRY(
        mf_check_result_fresh(&cc->pb, c, &cc->r, cc->has_r2 ? &cc->r2 : NULL, &ck->o, ck->v, err));
    *pass = ck->v->pass;
    return MF_OK;
}

/* Index of the first case of s that c fails (-1: none), starting with `first` (a case that
 * failed before is the likeliest to fail again); a description of the failure into why. */
static mf_status first_failure(checker *ck, const mf_contract *c, const calib_set *s, int first,
                               int *fail, char *why, size_t why_len, mf_error *err) {
    *fail = -1;
    for (int j = 0; j < s->n; j++) {
        int i = first >= 0 && first < s->n ? (j == 0 ? first : j == first ? 0 : j) : j;
        int pass;
        MF_TRY(passes(ck, c, &s->v[i], &pass, err));
        if (pass) continue;
        *fail = i;
        if (why) {
            char stages[96];
            mf_stages_format(mf_verdict_stages(ck->v), stages, sizeof stages);
            unsigned long long bad = 0;
            for (int st = 0; st < MF_STAGE_COUNT; st++) bad += ck->v->n_bad[st];
            snprintf(why, why_len, "%.150s fails %.60s (%llu element%s)", s->v[i].name, stages, bad,
                     bad == 1 ? "" : "s");
        }
        return MF_OK;
    }
    return MF_OK;
}

/* How badly c fails the cases of s: cases failed, then elements out. */
static mf_status badness(checker *ck, const mf_contract *c, const calib_set *s, int *n_fail,
                         unsigned long long *n_bad, double *util, mf_error *err) {
    *n_fail = 0, *n_bad = 0, *util = 0;
    for (int i = 0; i < s->n; i++) {
        int pass;
        MF_TRY(passes(ck, c, &s->v[i], &pass, err));
        *util += ck->v->max_util_out + ck->v->max_util_w;
        if (pass) continue;
        (*n_fail)++;
        for (int st = 0; st < MF_STAGE_COUNT; st++) *n_bad += ck->v->n_bad[st];
    }
    return MF_OK;
}

/* How tight c is on the cases of s, all of which it passes: the kernel's utilisation of the
 * radii (outputs and weights), summed; 1 in *pass_all when every case passes. */
static mf_status tightness(checker *ck, const mf_contract *c, const calib_set *s, int *pass_all,
                           double *t, mf_error *err) {
    *pass_all = 1, *t = 0;
    for (int i = 0; i < s->n && *pass_all; i++) {
        MF_TRY(passes(ck, c, &s->v[i], pass_all, err));
        *t += ck->v->max_util_out + ck->v->max_util_w;
    }
    return MF_OK;
}

/* Swaps of one ADDED field that is set for one that is not, kept while the contract still
 * passes and gets tighter (the kernel uses more of its radii): between roundings whose bounds
 * cover each other the one that explains the cases with the narrowest bound stays. */
static mf_status swap_roundings(checker *ck, const calib_set *s, mf_contract *c, int *value,
                                int *any, mf_error *err) {
    int pass;
    *any = 0;
    double cur;
    MF_TRY(tightness(ck, c, s, &pass, &cur, err));
    for (int swapped = 1, rounds = 0; swapped && rounds < N_FIELDS; rounds++) {
        swapped = 0;
        for (int f = 0; f < N_FIELDS && !swapped; f++) {
            if (fields[f].start != MF_CALIB_ADDED || value[f] == 0) continue;
            for (int g = 0; g < N_FIELDS && !swapped; g++) {
                if (fields[g].start != MF_CALIB_ADDED || value[g] != 0) continue;
                mf_contract t = *c;
                fields[f].set(&t, 0);
                fields[g].set(&t, fields[g].n_values - 1);
                double tt;
                MF_TRY(tightness(ck, &t, s, &pass, &tt, err));
                if (!pass || tt <= cur) continue;
                *c = t, cur = tt, swapped = 1, *any = 1;
                value[f] = 0, value[g] = fields[g].n_values - 1;
            }
        }
    }
    return MF_OK;
}

/* A loose field's bound can cover a rounding the kernel performs, which the forward selection
 * then never added; once the field is tightened, that rounding is needed. t: the contract with
 * the tighter value, under which case `fail` fails; *added := the rounding, off in value[], with
 * which added to t every case passes and the kernel uses most of its radii (as swap_roundings
 * chooses); -1: none. */
static mf_status tighten_with_rounding(checker *ck, const calib_set *s, const mf_contract *t,
                                       const int *value, int fail, int *added, mf_error *err) {
    *added = -1;
    double best = -1;
    for (int g = 0; g < N_FIELDS; g++) {
        if (fields[g].start != MF_CALIB_ADDED || value[g] != 0) continue;
        mf_contract u = *t;
        fields[g].set(&u, fields[g].n_values - 1);
        int f2, pass;
        char why[256];
        MF_TRY(first_failure(ck, &u, s, fail, &f2, why, sizeof why, err));
        if (f2 >= 0) continue;
        double tt;
        MF_TRY(tightness(ck, &u, s, &pass, &tt, err));
        if (pass && tt > best) best = tt, *added = g;
    }
    return MF_OK;
}

/* Forward selection of the ADDED fields: while some case fails, the rounding (or bf16 combine)
 * under which the fewest cases fail (then the fewest elements) is added, if it helps. */
static mf_status add_roundings(checker *ck, const calib_set *s, mf_contract *c, int *value,
                               mf_error *err) {
    int cur_fail;
    unsigned long long cur_bad;
    double util;
    MF_TRY(badness(ck, c, s, &cur_fail, &cur_bad, &util, err));
    while (cur_fail > 0) {
        int best = -1, best_fail = cur_fail;
        unsigned long long best_bad = cur_bad;
        double best_util = -1;
        for (int f = 0; f < N_FIELDS; f++) {
            if (fields[f].start != MF_CALIB_ADDED || value[f] == fields[f].n_values - 1) continue;
            mf_contract t = *c;
            fields[f].set(&t, fields[f].n_values - 1);
            int nf;
            unsigned long long nb;
            double nu;
            MF_TRY(badness(ck, &t, s, &nf, &nb, &nu, err));
            /* fewest cases failed, then fewest elements out, then the narrowest bound (the
             * kernel uses most of its radii) */
            if (nf < best_fail || (nf == best_fail && nb < best_bad) ||
                (best >= 0 && nf == best_fail && nb == best_bad && nu > best_util))
                best = f, best_fail = nf, best_bad = nb, best_util = nu;
        }
        if (best < 0) break;
        value[best] = fields[best].n_values - 1;
        fields[best].set(c, value[best]);
        cur_fail = best_fail, cur_bad = best_bad;
    }
    return MF_OK;
}

/* The loosest contract of the field table. */
static void loosest(mf_contract *c) {
    *c = mf_contract_any_order;
    for (int f = 0; f < N_FIELDS; f++) fields[f].set(c, fields[f].n_values - 1);
    c->name = "calibrated";
    c->summary = "found by moefuzz calibrate";
    c->sources = NULL;
}

/* Greedy tightening over s from the loosest contract: each field takes its tightest value under
 * which every case passes, until a whole pass changes nothing. */
static mf_status search(checker *ck, const calib_set *s, mf_calib_result *res, mf_error *err) {
    mf_contract c;
    int value[N_FIELDS], last_fail[N_FIELDS];
    int fail = -1;
    char why[256], first_why[256] = "";
    /* the start: the LOOSEST fields at their loosest, the ALTERNATIVE ones at each combination
     * in turn (their product is small), the ADDED ones (roundings) off, then added one at a time,
     * each time the one under which the fewest cases fail, until every case passes */
    int n_alt = 1;
    for (int f = 0; f < N_FIELDS; f++)
        if (fields[f].start == MF_CALIB_ALTERNATIVE) n_alt *= fields[f].n_values;
    for (int a = 0; a < n_alt; a++) {
        loosest(&c);
        int rest = a;
        for (int f = 0; f < N_FIELDS; f++) {
            value[f] = fields[f].n_values - 1, last_fail[f] = -1;
            if (fields[f].start == MF_CALIB_LOOSEST) continue;
            if (fields[f].start == MF_CALIB_ADDED) {
                value[f] = 0;
            } else {
                value[f] = rest % fields[f].n_values;
                rest /= fields[f].n_values;
            }
            fields[f].set(&c, value[f]);
        }
        MF_TRY(add_roundings(ck, s, &c, value, err));
        MF_TRY(first_failure(ck, &c, s, fail, &fail, why, sizeof why, err));
        int swapped;
        if (fail < 0) MF_TRY(swap_roundings(ck, s, &c, value, &swapped, err));
        if (a == 0) memcpy(first_why, why, sizeof why);
        if (fail < 0) break;
    }
    if (fail >= 0) {
        memcpy(why, first_why, sizeof why);
        res->fits = 0;
        snprintf(res->none_fits, sizeof res->none_fits, "no contract the search knows passes: %s",
                 why);
        return MF_OK;
    }
    res->fits = 1;
    for (int f = 0; f < N_FIELDS; f++) snprintf(res->d[f].by, sizeof res->d[f].by, "-");
    /* tightening; then swaps again, now that the other fields are tight (a rounding that was
     * needed only against a loose field's bound may give way), and tightening again */
    for (int round = 0, changed = 1; round < 2; round++, changed = 1) {
        if (round == 1) {
            int swapped;
            MF_TRY(swap_roundings(ck, s, &c, value, &swapped, err));
            if (!swapped) break;
        }
        while (changed) {
            changed = 0;
            for (int f = 0; f < N_FIELDS; f++) {
                char prev[sizeof res->d[f].by] = "";
                for (int v = 0; v < value[f]; v++) {
                    mf_contract t = c;
                    fields[f].set(&t, v);
                    MF_TRY(first_failure(ck, &t, s, last_fail[f], &fail, why, sizeof why, err));
                    int g = -1; /* a rounding added with the tighter value, or none */
                    if (fail >= 0 && fields[f].start == MF_CALIB_LOOSEST)
                        MF_TRY(tighten_with_rounding(ck, s, &t, value, fail, &g, err));
                    if (fail < 0 || g >= 0) {
                        fields[f].set(&c, v);
                        value[f] = v;
                        if (g >= 0) {
                            value[g] = fields[g].n_values - 1;
                            fields[g].set(&c, value[g]);
                        }
                        changed = 1;
                        if (v > 0) memcpy(res->d[f].by, prev, sizeof prev);
                        break;
                    }
                    last_fail[f] = fail;
                    /* the value just tighter than the one kept is what the report cites */
                    snprintf(prev, sizeof prev, "%.40s: %.200s", fields[f].value_name(v), why);
                    if (v == value[f] - 1) memcpy(res->d[f].by, prev, sizeof prev);
                }
            }
        }
    }
    for (int f = 0; f < N_FIELDS; f++) {
        res->d[f].value = value[f];
        if (value[f] == 0)
            snprintf(res->d[f].by, sizeof res->d[f].by, "tightest value; every case passes");
    }
    res->contract = c;
    return MF_OK;
}

/* ---- validation set ----
 *
 * Streamed: each case is built, run and checked, and only a case that fails the contract is kept
 * (it joins the decision set). The random cases of one model share their expert weights
 * (mf_problem_update keeps them while their generators stay), which is what keeps the twins of
 * 256-expert models cheap. */

typedef struct validation {
    checker *ck;
    mf_backend *b;
    const mf_contract *c; /* the contract under validation */
    unsigned cand;        /* built-ins still in the running (bits of mf_contract_list()) */
    calib_set *dec;       /* failing cases go here */
    mf_calib_result *res; /* counts the cases the kernel failed to run */
    int run, refused, failed;
} validation;


/* Checks one validation case (results in cc, problem cc->pb). *keep: the contract fails it and
 * the set now owns cc (its results; its problem when own_pb). */
static mf_status validate_one(validation *va, calib_case *cc, int *keep, mf_error *err) {
    *keep = 0;
    va->run++;
    int pass;
    MF_TRY(passes(va->ck, va->c, cc, &pass, err));
    int i = 0;
    for (const mf_contract *const *c = mf_contract_list(); *c; c++, i++) {
        if (!(va->cand & (1u << i))) continue;
        int bp;
        MF_TRY(passes(va->ck, *c, cc, &bp, err));
        if (!bp) va->cand &= ~(1u << i);
    }
    if (pass) return MF_OK;
    va->failed++;
    MF_TRY(set_push(va->dec, cc, err));
    *keep = 1;
    return MF_OK;
}

static mf_status validate_corpus(validation *va, const mf_prep *pp, const char *path,
                                 mf_error *err) {
    mf_path_list l = {0};
    MF_TRY(mf_paths_collect(path, &l, err));
    mf_status st = MF_OK;
    for (int i = 0; i < l.n && st == MF_OK; i++) {
        mf_case c;
        calib_case cc;
        memset(&cc, 0, sizeof cc);
        snprintf(cc.name, sizeof cc.name, "%s", l.paths[i]);
        st = mf_prep_load(pp, l.paths[i], 0, &c, &cc.pb, err);
        if (st == MF_EUNSUPPORTED) { /* larger than --max-mib: not a case this run checks */
            mf_error_clear(err);
            va->refused++;
            st = MF_OK;
            continue;
        }
        if (st != MF_OK) break;
        if (cc.pb.p.weight_format != MF_WFMT_BF16) { /* quantized experts: not calibrated here */
            va->refused++;
            mf_problem_free(&cc.pb);
            continue;
        }
        int refused, keep = 0;
        st = run_twice(va->b, &cc.pb, &cc, &refused, va->res, err);
        if (st == MF_OK && refused == 1) va->refused++;
        if (st == MF_OK && !refused) st = validate_one(va, &cc, &keep, err);
        if (!keep) {
            mf_problem_free(&cc.pb);
            mf_run_result_free(&cc.r), mf_run_result_free(&cc.r2);
        }
    }
    mf_paths_free(&l);
    return st;
}

static mf_status validate_random(validation *va, const mf_prep *pp, int per_model, uint64_t seed,
                                 mf_error *err) {
    int n_models;
    const mf_model *m = mf_model_list(&n_models);
    mf_case_limits lim;
    mf_case_limits_default(&lim);
    lim.max_T = 2; /* the twins' H and I come from the preset; few tokens keep it seconds */
    mf_rng rng = {seed};
    mf_status st = MF_OK;
    for (int i = 0; i < n_models && st == MF_OK; i++) {
        /* quantized experts (FP8, MXFP4) have their own CPU contract, not the fields calibrated
         * here (docs/calibrate.md) */
        if (m[i].unsupported || m[i].weight_format != MF_WFMT_BF16) continue;
        mf_prep mp = *pp;
        mp.model = &m[i];
        mp.full = 0;
        mp.fold_T = 2;
        mf_problem shared; /* the model's weights, generated once */
        memset(&shared, 0, sizeof shared);
        mf_gen wgen[2] = {{0}};
        for (int j = 0; j < per_model && st == MF_OK; j++) {
            mf_case c;
            mf_case_random(&rng, &lim, &c);
            st = mf_prep_case(&mp, &c, err);
            if (st == MF_EUNSUPPORTED) {
                mf_error_clear(err);
                va->refused++;
                st = MF_OK;
                continue;
            }
            if (st != MF_OK) break;
            if (j == 0) wgen[0] = c.gen[MF_T_W13], wgen[1] = c.gen[MF_T_W2];
            c.gen[MF_T_W13] = wgen[0], c.gen[MF_T_W2] = wgen[1];
            /* pokes of the weights would be restored and reapplied; keep the cases simple */
            int np = 0;
            for (int k = 0; k < c.n_pokes; k++)
                if (c.pokes[k].tensor != MF_T_W13 && c.pokes[k].tensor != MF_T_W2)
                    c.pokes[np++] = c.pokes[k];
            c.n_pokes = np;
            st = mf_problem_update(&c, &shared, err);
            if (st != MF_OK) break;
            calib_case cc;
            memset(&cc, 0, sizeof cc);
            snprintf(cc.name, sizeof cc.name, "random case %d of model %s (seed 0x%llx)", j,
                     m[i].name, (unsigned long long)seed);
            cc.pb = shared; /* a view; a kept case gets a problem of its own below */
            int refused, keep = 0;
            st = run_twice(va->b, &shared, &cc, &refused, va->res, err);
            if (st == MF_OK && refused == 1) va->refused++;
            if (st == MF_OK && !refused) st = validate_one(va, &cc, &keep, err);
            if (keep) {
                calib_case *kept = &va->dec->v[va->dec->n - 1];
                memset(&kept->pb, 0, sizeof kept->pb);
                st = mf_problem_build(&c, &kept->pb, err); /* the same bits (case.h) */
                if (st != MF_OK) {
                    mf_run_result_free(&kept->r), mf_run_result_free(&kept->r2);
                    va->dec->n--;
                }
            } else {
                mf_run_result_free(&cc.r), mf_run_result_free(&cc.r2);
            }
        }
        mf_problem_free(&shared);
    }
    return st;
}

static mf_status validate(validation *va, const mf_prep *pp, const mf_calib_opts *o,
                          mf_error *err) {
    va->run = va->refused = va->failed = 0;
    for (int i = 0; o->corpus && o->corpus[i]; i++)
        MF_TRY(validate_corpus(va, pp, o->corpus[i], err));
    if (o->random_per_model > 0) MF_TRY(validate_random(va, pp, o->random_per_model, o->seed, err));
    return MF_OK;
}

/* ---- what the renormalisation divides by ---- */

static mf_status observe_renorm(checker *ck, const mf_contract *c, const calib_set *s,
                                mf_calib_result *res, mf_error *err) {
    /* hypotheses: the eps the case gives, always 0, always 1e-20 */
    static const char *const names[] = {"sum + the case's eps", "sum (eps 0 whatever the case)",
                                        "sum + 1e-20 whatever the case"};
    int ok[3] = {1, 1, 1}, seen = 0;
    for (int i = 0; i < s->n; i++) {
        const calib_case *cc = &s->v[i];
        if (!cc->pb.p.renormalize) continue;
        seen++;
        for (int h = 0; h < 3; h++) {
            if (!ok[h]) continue;
            mf_problem alt = cc->pb; /* shares the tensors: only the parameters differ */
            if (h == 1) alt.p.renorm_eps = 0;
            if (h == 2) alt.p.renorm_eps = 1e-20f;
            calib_case a = *cc;
            a.pb = alt;
            int pass;
            MF_TRY(passes(ck, c, &a, &pass, err));
            ok[h] = pass;
        }
    }
    if (!seen) {
        snprintf(res->renorm, sizeof res->renorm, "not observed (no renormalized case ran)");
        return MF_OK;
    }
    size_t o = 0;
    res->renorm[0] = '\0';
    for (int h = 0; h < 3; h++)
        if (ok[h])
            o += (size_t)snprintf(res->renorm + o, sizeof res->renorm - o, "%s%s", o ? "; or " : "",
                                  names[h]);
    if (!o)
        snprintf(res->renorm, sizeof res->renorm,
                 "none of sum + eps, sum, sum + 1e-20 explains every renormalized case");
    return MF_OK;
}

/* The built-in that passes every probe and differs from the calibrated contract in the fewest
 * fields (as a bit of mf_contract_list()), 0 when one equals it or none passes: the validation
 * checks it alongside, and the report names it when it passes there too. */
static unsigned nearest_candidate(const mf_calib_result *res) {
    unsigned best = 0;
    int best_n = N_FIELDS + 1, i = 0;
    for (const mf_contract *const *c = mf_contract_list(); *c; c++, i++) {
        if (!(res->probe_builtins & (1u << i))) continue;
        int n = 0;
        for (int f = 0; f < N_FIELDS; f++) n += fields[f].get(*c) != fields[f].get(&res->contract);
        if (n == 0) return 0;
        if (n < best_n) best_n = n, best = 1u << i;
    }
    return best;
}

/* ---- the whole ---- */

void mf_calib_opts_default(mf_calib_opts *o) {
    memset(o, 0, sizeof *o);
    o->random_per_model = 20;
    o->seed = 0xca11b4a7e;
    o->max_rounds = 4;
}

static void progress(const mf_calib_opts *o, const char *fmt, const char *a, int n) {
    if (!o->progress) return;
    fprintf(o->progress, fmt, a, n);
    fflush(o->progress);
}

mf_status mf_calibrate(mf_backend *b, const mf_prep *pp, const mf_calib_opts *o,
                       mf_calib_result *res, mf_error *err) {
    double t0 = mf_now_s();
    memset(res, 0, sizeof *res);
    res->n_fields = N_FIELDS;
    checker ck;
    mf_check_opts_default(&ck.o);
    ck.o.determinism = 1;
    ck.o.attribute = 0;
    ck.v = malloc(sizeof *ck.v);
    if (!ck.v) return MF_FAIL(err, MF_ENOMEM, "out of memory");
    calib_set dec = {0};
    mf_status st = MF_OK;
    /* probes */
    for (int i = 0; i < N_PROBES && st == MF_OK; i++) {
        mf_case c;
        st = probe_case(&probes[i], &c, err);
        if (st != MF_OK) break;
        mf_problem pb;
        st = mf_prep_problem(pp, &c, &pb, err);
        if (st != MF_OK) break;
        if (probes[i].edit) probes[i].edit(&pb);
        char name[160];
        snprintf(name, sizeof name, "probe %s", probes[i].name);
        int refused;
        st = set_add(&dec, b, name, &pb, &refused, res, err);
        res->probes_unsupported += st == MF_OK && refused == 1;
        res->probes_run += st == MF_OK && !refused;
    }
    progress(o, "calibrate: %s%d probes run\n", "", res->probes_run);
    if (st == MF_OK && dec.n == 0) {
        res->fits = 0;
        snprintf(res->none_fits, sizeof res->none_fits,
                 "the kernel refused every probe (%d): nothing to decide on",
                 res->probes_unsupported);
        goto done;
    }
    if (st == MF_OK) st = search(&ck, &dec, res, err);
    res->rounds = 1;
    /* the built-in contracts the kernel passes on the probes: candidates for the nearest one */
    int nb = 0;
    for (const mf_contract *const *c = mf_contract_list(); *c && st == MF_OK; c++, nb++) {
        int fail = -1;
        st = first_failure(&ck, *c, &dec, 0, &fail, NULL, 0, err);
        if (st == MF_OK && fail < 0) res->probe_builtins |= 1u << nb;
    }
    /* validation: every failing case joins the decision set, and the search runs again */
    validation va = {&ck, b, &res->contract, nearest_candidate(res), &dec, res, 0, 0, 0};
    while (st == MF_OK && res->fits) {
        st = validate(&va, pp, o, err);
        if (st != MF_OK) break;
        if (res->rounds == 1) {
            res->valid_run = va.run, res->valid_unsupported = va.refused;
            res->valid_failed_first = va.failed;
        }
        progress(o, "calibrate: %svalidation: %d case(s) run\n", "", va.run);
        if (!va.failed) break;
        if (res->rounds > o->max_rounds) {
            res->fits = 0;
            snprintf(res->none_fits, sizeof res->none_fits,
                     "after %d searches a validation case still fails", res->rounds);
            break;
        }
        mf_calib_decision before[N_FIELDS];
        memcpy(before, res->d, sizeof before);
        st = search(&ck, &dec, res, err);
        res->rounds++;
        for (int f = 0; f < N_FIELDS && st == MF_OK; f++)
            res->d[f].loosened = before[f].loosened || res->d[f].value > before[f].value;
        progress(o, "calibrate: %s%d validation case(s) failed: searched again\n", "", va.failed);
    }
    if (st == MF_OK && res->fits) {
        res->builtin = NULL;
        for (const mf_contract *const *c = mf_contract_list(); *c; c++)
            if (mf_calib_contract_equal(&res->contract, *c)) res->builtin = *c;
        if (res->builtin) res->contract = *res->builtin;
        /* the nearest built-in (fewest fields apart) that passed every case run */
        int best_n = N_FIELDS + 1, i = 0;
        for (const mf_contract *const *c = mf_contract_list(); *c; c++, i++) {
            if (!(va.cand & (1u << i))) continue;
            unsigned diff = 0;
            int n = 0;
            for (int f = 0; f < N_FIELDS; f++)
                if (fields[f].get(*c) != fields[f].get(&res->contract)) diff |= 1u << f, n++;
            if (n < best_n) best_n = n, res->nearest = *c, res->nearest_diff = diff;
        }
        if (st == MF_OK) st = observe_renorm(&ck, &res->contract, &dec, res, err);
    }
done:
    set_free(&dec);
    free(ck.v);
    res->seconds = mf_now_s() - t0;
    return st;
}

/* ---- report ---- */

/* The contract as the C plugin declares it, when the ABI's fields can say it. */
static int abi_expressible(const mf_contract *c) {
    mf_contract t = *c, base = mf_contract_any_order;
    /* the fields beyond mf_kernel_contract must be at the values a field-by-field declaration
     * gets (zeros) */
    t.gemm = base.gemm, t.exp = base.exp, t.exp_ulps = base.exp_ulps, t.div = base.div;
    t.round_points = base.round_points, t.deterministic = base.deterministic;
    return (c->round_points & ~0x1fu) == 0 && mf_calib_contract_equal(&t, &base);
}

void mf_calib_print(const mf_calib_result *res, FILE *f) {
    fprintf(f, "probes: %d run, %d refused by the kernel; validation: %d cases run, %d refused",
            res->probes_run, res->probes_unsupported, res->valid_run, res->valid_unsupported);
    if (res->valid_failed_first)
        fprintf(f, ", %d failed the probes' contract and joined the search (%d searches)",
                res->valid_failed_first, res->rounds);
    fprintf(f, " (%.1f s)\n", res->seconds);
    if (res->errored)
        fprintf(f, "the kernel failed to run %d case(s), left out (first: %s)\n", res->errored,
                res->first_error);
    if (!res->fits) {
        fprintf(f, "no contract fits: %s\n", res->none_fits);
        return;
    }
    const mf_contract *c = &res->contract;
    if (res->builtin)
        fprintf(f, "contract: %s (built-in, equal field by field)\n", res->builtin->name);
    else
        fprintf(f, "contract: no built-in matches; the fields to declare are below\n");
    fprintf(f, "\n%-16s %-30s %s\n", "field", "value", "decided by");
    for (int i = 0; i < res->n_fields; i++) {
        const mf_calib_field *fd = &fields[i];
        int v = fd->get(c);
        fprintf(f, "%-16s %-30s %s%s\n", fd->name, v >= 0 ? fd->value_name(v) : "?",
                res->d[i].loosened ? "(loosened by validation) " : "", res->d[i].by);
    }
    fprintf(f, "renormalisation  %s\n", res->renorm);
    fprintf(f, "\nfields (contract.FIELD = VALUE):\n");
    for (int i = 0; i < res->n_fields; i++) {
        int v = fields[i].get(c);
        fprintf(f, "    contract.%s = %s\n", fields[i].name,
                v >= 0 ? fields[i].value_name(v) : "?");
    }
    fprintf(f, "\nbuilt-in contracts the kernel passes on every probe:");
    int i = 0, any = 0;
    for (const mf_contract *const *b = mf_contract_list(); *b; b++, i++)
        if (res->probe_builtins & (1u << i)) fprintf(f, " %s", (*b)->name), any = 1;
    fprintf(f, "%s\n", any ? "" : " none");
    if (res->nearest && !res->builtin) {
        fprintf(f, "nearest built-in that passes every case run: %s; it differs in",
                res->nearest->name);
        for (int j = 0; j < res->n_fields; j++)
            if (res->nearest_diff & (1u << j)) {
                int v = fields[j].get(res->nearest);
                fprintf(f, " %s (%s)", fields[j].name, v >= 0 ? fields[j].value_name(v) : "?");
            }
        fprintf(f, "\n");
    }
    fprintf(f, "\ndeclaration (kernel_abi.h, in mf_kernel_get_api):\n");
    if (res->builtin) {
        fprintf(f, "    api->contract.name = \"%s\";\n    api->contract.deterministic = %d;\n",
                res->builtin->name, c->deterministic);
    } else if (abi_expressible(c)) {
        static const char *const acc[] = {"MF_ABI_ACC_SEQ_FP32", "MF_ABI_ACC_FUSED_BLOCK",
                                          "MF_ABI_ACC_ANY_ORDER", "MF_ABI_ACC_ORDERED_BLOCKS"};
        static const char *const rp[] = {"MF_ABI_RP_GEMM1_OUT", "MF_ABI_RP_ACT_OUT",
                                         "MF_ABI_RP_GEMM2_OUT", "MF_ABI_RP_WEIGHTED",
                                         "MF_ABI_RP_WEIGHTS"};
        fprintf(f, "    api->contract.name = NULL;\n    api->contract.acc_kind = %s;\n",
                acc[c->gemm.kind]);
        if (c->gemm.kind == MF_ACC_FUSED_BLOCK || c->gemm.kind == MF_ACC_ORDERED_BLOCKS)
            fprintf(f, "    api->contract.acc_block = %d;\n    api->contract.acc_frac_bits = %d;\n",
                    c->gemm.block, c->gemm.frac_bits);
        fprintf(f, "    api->contract.exp_kind = %s;\n",
                c->exp == MF_EXP_FAST ? "MF_ABI_EXP_FAST" : "MF_ABI_EXP_ACCURATE");
        if (c->exp == MF_EXP_ACCURATE)
            fprintf(f, "    api->contract.exp_ulps = %g;\n", c->exp_ulps);
        fprintf(f, "    api->contract.div_kind = %s;\n",
                c->div == MF_DIV_FAST ? "MF_ABI_DIV_FAST" : "MF_ABI_DIV_IEEE");
        fprintf(f, "    api->contract.round_points = ");
        int first = 1;
        for (int b = 0; b < 5; b++)
            if (c->round_points & (1u << b))
                fprintf(f, "%s%s", first ? "" : " | ", rp[b]), first = 0;
        fprintf(f, "%s;\n    api->contract.deterministic = %d;\n", first ? "0" : "",
                c->deterministic);
    } else {
        fprintf(f,
                "    (none yet: the ABI's mf_kernel_contract carries the accumulation, exp, "
                "division,\n     round points gemm1_out..weights and determinism; the fields "
                "above need the\n     reference's mf_contract, as reference/contract.c "
                "declares the built-ins)\n");
    }
}
