/* forward.c: exact experts, activation rounding points and output admissible sets
 * (see forward.h; derivations in docs/error-model.md). */
#include "forward.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <mpfr.h>

#include "bf16.h"
#include "fp8.h"

#define ACT_PREC 128  /* MPFR precision where MPFR decides an activation's rounding */
#define SILU_LIPSCHITZ 1.1 /* sup |silu'| = 1.0998 at x = 2.399 (numerics notes, section 2.4) */

static const double U = 0x1p-24;
static const double ETA = 0x1p-149;

/* Expert outputs kept for tokens whose x row repeats, at most this many bytes; past it a copy's
 * experts are computed again (the same bits: the computation reads the row's values only). */
#define KEEP_BYTES (256.0 * 1024 * 1024)

/* The alternatives of a contract with an optional rounding point (docs/error-model.md, "Optional
 * rounding points"): the points each leaves out. The kernel's declared arithmetic, the same with
 * silu unrounded, and no intermediate rounding but the activation's (a plain fp32 kernel). */
#define OPTIONAL_RP (MF_RP_GEMM1_OUT | MF_RP_SILU_OUT | MF_RP_WEIGHTED)
#define N_ALT 2
static const unsigned ALT_DROP[N_ALT] = {MF_RP_SILU_OUT,
                                         MF_RP_GEMM1_OUT | MF_RP_SILU_OUT | MF_RP_WEIGHTED};

typedef struct expert_slot {
    double *o_hi, *o_lo, *o_rad;
    uint8_t *flags;
} expert_slot;

struct mf_ref_ctx {
    mf_moe_params p;
    mf_moe_tensors x;
    const mf_contract *c;
    mf_ref_options opt;
    mf_dot_ws *ws;
    mf_vec_info *w13_info; /* [E_local][2I] */
    mf_vec_info *w2_info;  /* [E_local][H] */
    mf_vec_info *sw13_info; /* [n_shared][2 shared_I]: the shared experts' rows */
    mf_vec_info *sw2_info;  /* [n_shared][H] */
    /* [E_local + n_shared]: infos of that expert's rows computed (on first use); the shared
     * experts are local experts E_local .. E_local + n_shared - 1 of the caches below */
    uint8_t *info_ready;
    uint8_t *col_mask;     /* [H] verified columns */
    /* current token */
    int cur_t;
    double *xd;
    mf_vec_info x_info;
    int *slot_of; /* [E_local + n_shared] -> slot or -1 */
    expert_slot *slots;
    int nslots, cap_slots;
    /* activation scratch */
    double *hd, *delta;
    uint16_t *hb;
    /* weight_on_input: the token's row scaled by the slot's weight as a kernel forms it in bf16
     * (xw, its bits, and delta radii covering every weight the kernel may hold) */
    double *xw, *xw_delta;
    uint16_t *xw_bits;
    mpfr_t m_a, m_b, m_t;
    /* repeated x rows: row_first[t] is the first token with t's row; a row with copies keeps its
     * experts' outputs in kept[], found by key (first token) * E_local + expert */
    int *row_first;      /* [T] */
    uint8_t *row_copies; /* [T] 1: the row first seen at this token occurs again */
    int64_t *keep_key;   /* [keep_cap] open addressing; -1: empty */
    int *keep_slot;
    size_t keep_cap, keep_n;
    expert_slot *kept;
    int nkept, cap_kept;
    mf_ref_stats st;
    struct fp8_state *fp8; /* weight_format fp8_block: quantized token and intermediate */
    uint16_t *mx_w13, *mx_w2; /* weight_format mxfp4: the dequantized (bf16) weights */
    /* a contract with optional rounding points (OPTIONAL_RP): this context decides every
     * rounding point, alt[i] computes the same problem under alt_c[i] (points removed:
     * ALT_DROP; no alternatives of its own), rows are the hull of all */
    mf_contract alt_c[N_ALT];
    mf_ref_ctx *alt[N_ALT];
    mf_ref_row alt_row;
};

static void slot_free(expert_slot *s) {
    free(s->o_hi);
    free(s->o_lo);
    free(s->o_rad);
    free(s->flags);
}

static int slot_alloc(expert_slot *s, size_t H) {
    s->o_hi = malloc(H * sizeof(double));
    s->o_lo = malloc(H * sizeof(double));
    s->o_rad = malloc(H * sizeof(double));
    s->flags = malloc(H);
    return s->o_hi && s->o_lo && s->o_rad && s->flags;
}

struct fp8_state;
static void fp8_state_free(struct fp8_state *f);
static mf_status quant_formats_init(mf_ref_ctx *ctx, mf_error *err);

void mf_ref_ctx_free(mf_ref_ctx *ctx) {
    if (!ctx) return;
    mf_dot_ws_free(ctx->ws);
    free(ctx->w13_info);
    free(ctx->w2_info);
    free(ctx->sw13_info);
    free(ctx->sw2_info);
    free(ctx->info_ready);
    free(ctx->col_mask);
    free(ctx->xd);
    free(ctx->slot_of);
    for (int i = 0; i < ctx->cap_slots; i++) slot_free(&ctx->slots[i]);
    free(ctx->slots);
    for (int i = 0; i < ctx->nkept; i++) slot_free(&ctx->kept[i]);
    free(ctx->kept);
    free(ctx->keep_key);
    free(ctx->keep_slot);
    free(ctx->row_first);
    free(ctx->row_copies);
    free(ctx->hd);
    free(ctx->delta);
    free(ctx->hb);
    free(ctx->xw);
    free(ctx->xw_delta);
    free(ctx->xw_bits);
    for (int i = 0; i < N_ALT; i++) mf_ref_ctx_free(ctx->alt[i]);
    free(ctx->alt_row.z);
    free(ctx->alt_row.rad);
    free(ctx->alt_row.lo);
    free(ctx->alt_row.hi);
    free(ctx->alt_row.flags);
    mpfr_clears(ctx->m_a, ctx->m_b, ctx->m_t, (mpfr_ptr)0);
    fp8_state_free(ctx->fp8);
    free(ctx->mx_w13);
    free(ctx->mx_w2);
    free(ctx);
}

/* with_alts: the context hulls the contract's alternatives (the caller's context); 0 for an
 * alternative itself, which computes its own contract only */
static mf_ref_ctx *ctx_new(const mf_moe_params *p, const mf_moe_tensors *x, const mf_contract *c,
                           const mf_ref_options *opt, int with_alts, mf_error *err);

mf_ref_ctx *mf_ref_ctx_new(const mf_moe_params *p, const mf_moe_tensors *x, const mf_contract *c,
                           const mf_ref_options *opt, mf_error *err) {
    return ctx_new(p, x, c, opt, 1, err);
}

static mf_ref_ctx *ctx_new(const mf_moe_params *p, const mf_moe_tensors *x, const mf_contract *c,
                           const mf_ref_options *opt, int with_alts, mf_error *err) {
    if (p->H < 1 || p->I < 1 || p->E_local < 0 || (unsigned)p->H > MF_DOT_MAX_TERMS ||
        (unsigned)p->I > MF_DOT_MAX_TERMS) {
        MF_FAIL(err, MF_EINVAL, "reference: H=%d I=%d E_local=%d out of domain", p->H, p->I,
                p->E_local);
        return NULL;
    }
    if (!(c->round_points & MF_RP_ACT_OUT)) {
        MF_FAIL(err, MF_EUNSUPPORTED,
                "contract %s does not round the activation to bf16; the reference needs bf16 "
                "GEMM2 inputs",
                c->name);
        return NULL;
    }
    mf_ref_ctx *ctx = calloc(1, sizeof *ctx);
    if (!ctx) {
        MF_FAIL(err, MF_ENOMEM, "reference: out of memory");
        return NULL;
    }
    mpfr_inits2(ACT_PREC, ctx->m_a, ctx->m_b, ctx->m_t, (mpfr_ptr)0);
    ctx->p = *p;
    ctx->x = *x;
    ctx->c = c;
    if (opt) ctx->opt = *opt;
    ctx->cur_t = -1;
    int H = p->H, I = p->I, EL = p->E_local, S = p->n_shared > 0 ? p->n_shared : 0;
    int IS = S ? p->shared_I : 0, IM = IS > I ? IS : I;
    ctx->ws = mf_dot_ws_new();
    ctx->w13_info = calloc((size_t)EL * 2 * I + 1, sizeof(mf_vec_info));
    ctx->w2_info = calloc((size_t)EL * H + 1, sizeof(mf_vec_info));
    ctx->sw13_info = calloc((size_t)S * 2 * IS + 1, sizeof(mf_vec_info));
    ctx->sw2_info = calloc((size_t)S * H + 1, sizeof(mf_vec_info));
    ctx->info_ready = calloc((size_t)(EL + S) + 1, 1);
    ctx->col_mask = calloc((size_t)H, 1);
    ctx->xd = calloc((size_t)H, sizeof(double));
    ctx->slot_of = calloc((size_t)(EL + S) + 1, sizeof(int));
    ctx->hd = calloc((size_t)IM, sizeof(double));
    ctx->delta = calloc((size_t)IM, sizeof(double));
    ctx->hb = calloc((size_t)IM, sizeof(uint16_t));
    if (!ctx->ws || !ctx->w13_info || !ctx->w2_info || !ctx->sw13_info || !ctx->sw2_info ||
        !ctx->info_ready || !ctx->col_mask || !ctx->xd || !ctx->slot_of || !ctx->hd ||
        !ctx->delta || !ctx->hb) {
        MF_FAIL(err, MF_ENOMEM, "reference: out of memory (H=%d I=%d E_local=%d)", H, I, EL);
        mf_ref_ctx_free(ctx);
        return NULL;
    }
    mf_dot_ws_profile(ctx->ws, ctx->opt.profile);
    if (ctx->opt.cols) {
        for (int i = 0; i < ctx->opt.ncols; i++)
            if (ctx->opt.cols[i] >= 0 && ctx->opt.cols[i] < H) ctx->col_mask[ctx->opt.cols[i]] = 1;
    } else {
        memset(ctx->col_mask, 1, (size_t)H);
    }
    if (S < 0 || S > MF_MAX_SHARED ||
        (S && (IS > (int)MF_DOT_MAX_TERMS || !x->sw13 || !x->sw2 ||
              (p->shared_weight == MF_SHW_GATE && !x->shared_gate)))) {
        MF_FAIL(err, MF_EINVAL, "reference: %d shared experts of shared_I=%d: more than %d, "
                "without their tensors, or shared_I out of domain", S, IS, MF_MAX_SHARED);
        mf_ref_ctx_free(ctx);
        return NULL;
    }
    if (S && p->weight_format != MF_WFMT_BF16) {
        MF_FAIL(err, MF_EUNSUPPORTED, "reference: shared experts with quantized weights");
        mf_ref_ctx_free(ctx);
        return NULL;
    }
    for (int e = 0; e < EL + S; e++) ctx->slot_of[e] = -1;
    if (p->weight_on_input) {
        if (p->weight_format != MF_WFMT_BF16 || p->expert_bias != MF_EBIAS_NONE) {
            MF_FAIL(err, MF_EUNSUPPORTED,
                    "reference: weight_on_input with quantized weights or expert biases");
            mf_ref_ctx_free(ctx);
            return NULL;
        }
        ctx->xw = malloc((size_t)H * sizeof(double));
        ctx->xw_delta = malloc((size_t)H * sizeof(double));
        ctx->xw_bits = malloc((size_t)H * sizeof(uint16_t));
        if (!ctx->xw || !ctx->xw_delta || !ctx->xw_bits) {
            MF_FAIL(err, MF_ENOMEM, "reference: out of memory (H=%d)", H);
            mf_ref_ctx_free(ctx);
            return NULL;
        }
    }
    if (!ctx->opt.no_reuse && p->T > 1 && x->x) {
        ctx->row_first = malloc(sizeof(int) * (size_t)p->T);
        ctx->row_copies = calloc((size_t)p->T, 1);
        if (!ctx->row_first || !ctx->row_copies ||
            mf_rows_first_equal(x->x, sizeof(uint16_t) * (size_t)H, p->T, ctx->row_first) < 0) {
            MF_FAIL(err, MF_ENOMEM, "reference: out of memory (T=%d)", p->T);
            mf_ref_ctx_free(ctx);
            return NULL;
        }
        for (int t = 0; t < p->T; t++)
            if (ctx->row_first[t] != t) ctx->row_copies[ctx->row_first[t]] = 1;
    }
    if (quant_formats_init(ctx, err) != MF_OK) {
        mf_ref_ctx_free(ctx);
        return NULL;
    }
    /* the fused activation quantizer's path has no optional point: it reads GEMM1's outputs
     * from a bf16 tensor, and its activation has no rounding point to leave out */
    const int fused = c->fp8_act_fused && p->weight_format == MF_WFMT_FP8_BLOCK;
    if (with_alts && (c->round_points & OPTIONAL_RP) && !fused) {
        /* each alternative that leaves out a point the contract has, once */
        for (int i = 0, n = 0; i < N_ALT; i++) {
            unsigned rp = c->round_points & ~ALT_DROP[i];
            if (rp == c->round_points || (n > 0 && rp == ctx->alt_c[n - 1].round_points))
                continue;
            ctx->alt_c[n] = *c;
            ctx->alt_c[n].round_points = rp;
            ctx->alt[n] = ctx_new(p, x, &ctx->alt_c[n], opt, 0, err);
            if (!ctx->alt[n++]) {
                mf_ref_ctx_free(ctx);
                return NULL;
            }
        }
        mf_ref_row *r = &ctx->alt_row;
        r->z = malloc((size_t)H * sizeof(double));
        r->rad = malloc((size_t)H * sizeof(double));
        r->lo = malloc((size_t)H * sizeof(uint16_t));
        r->hi = malloc((size_t)H * sizeof(uint16_t));
        r->flags = malloc((size_t)H);
        if (!r->z || !r->rad || !r->lo || !r->hi || !r->flags) {
            MF_FAIL(err, MF_ENOMEM, "reference: out of memory (H=%d)", H);
            mf_ref_ctx_free(ctx);
            return NULL;
        }
    }
    return ctx;
}

void mf_ref_ctx_stats(mf_ref_ctx *ctx, mf_ref_stats *st) {
    if (ctx->opt.profile) mf_dot_ws_replay_loops(ctx->ws);
    *st = ctx->st;
    mf_dot_ws_stats(ctx->ws, &st->dot);
    /* the alternatives' contexts do their own share of the work */
    for (int i = 0; i < N_ALT && ctx->alt[i]; i++) {
        mf_ref_stats a;
        mf_ref_ctx_stats(ctx->alt[i], &a);
        st->experts += a.experts, st->experts_reused += a.experts_reused;
        st->act_elems += a.act_elems, st->act_mpfr += a.act_mpfr;
        st->act_ambiguous += a.act_ambiguous, st->total_s += a.total_s;
        st->dot.dots += a.dot.dots, st->dot.terms += a.dot.terms;
        st->dot.fallbacks += a.dot.fallbacks, st->dot.loop_s += a.dot.loop_s;
    }
}

static inline void two_sum_(double x, double y, double *s, double *e) {
    double t = x + y, yv = t - x, xv = t - yv;
    *s = t;
    *e = (x - xv) + (y - yv);
}

/* ---- rounding points ---- */

/* bf16 enclosure of [v - r, v + r] for a double v with |error| <= slack: outward, sound. */
static void bf16_range(double v, double r, double slack, uint16_t *lo, uint16_t *hi) {
    double extra = slack + (fabs(v) + r) * 0x1p-50 + 0x1p-1074;
    *lo = mf_f64_to_bf16(v - r - extra);
    *hi = mf_f64_to_bf16(v + r + extra);
}

static double bf16_d(uint16_t b) { return (double)mf_bf16_to_f32(b); }

/* The kernel rounds a value (exact hi + lo, |error| <= err) with radius rad to bf16: returns the
 * representative RN(value) (decided by MPFR if the double-double is too close to a midpoint)
 * and the radius that covers every other admissible bf16 value. */
static uint16_t round_point(mf_ref_ctx *ctx, double hi, double lo, double err, double rad,
                            double *delta) {
    double slack = fabs(lo) + err + fabs(hi) * 0x1p-60;
    uint16_t r1 = mf_f64_to_bf16(hi - slack), r2 = mf_f64_to_bf16(hi + slack);
    uint16_t rep = r1;
    if (r1 != r2) {
        mpfr_set_d(ctx->m_t, hi, MPFR_RNDN);
        mpfr_add_d(ctx->m_t, ctx->m_t, lo, MPFR_RNDN); /* exact at 128 bits */
        rep = mf_mpfr_to_bf16(ctx->m_t); /* exact when err = 0; delta covers it otherwise */
    }
    uint16_t blo, bhi;
    bf16_range(hi, rad, fabs(lo) + err, &blo, &bhi);
    double d = bf16_d(rep) - bf16_d(blo);
    double d2 = bf16_d(bhi) - bf16_d(rep);
    *delta = d > d2 ? d : d2;
    return rep;
}

/* ---- activation ---- */

typedef struct act_out {
    uint16_t h;
    double delta;
    uint16_t lo, hi; /* the admissible bf16 values: [lo, hi] */
    int unconstrained;
} act_out;

/* v = hi + lo clamped to [lo_lim, hi_lim] (exact: the limits are fp32 values) */
static void clamp_dd(double *hi, double *lo, double lo_lim, double hi_lim) {
    if (*hi > hi_lim || (*hi == hi_lim && *lo > 0)) *hi = hi_lim, *lo = 0;
    if (*hi < lo_lim || (*hi == lo_lim && *lo < 0)) *hi = lo_lim, *lo = 0;
}

static void activation(mf_ref_ctx *ctx, const mf_dot *dg, const mf_dot *du, act_out *out) {
    const mf_contract *c = ctx->c;
    out->unconstrained = 0;
    if ((dg->flags | du->flags) & (MF_DOT_NONFINITE | MF_DOT_MAY_OVERFLOW)) {
        out->unconstrained = 1;
        out->h = MF_BF16_QNAN;
        out->delta = INFINITY;
        return;
    }
    double g = dg->hi, g_lo = dg->lo, rg = dg->radius;
    double u = du->hi, u_lo = du->lo, ru = du->radius;
    if (c->round_points & MF_RP_GEMM1_OUT) {
        double dlt;
        g = bf16_d(round_point(ctx, dg->hi, dg->lo, dg->err, rg, &dlt));
        g_lo = 0;
        rg = dlt;
        u = bf16_d(round_point(ctx, du->hi, du->lo, du->err, ru, &dlt));
        u_lo = 0;
        ru = dlt;
    }
    /* the clamped activations (docs/error-model.md): clamps are exact and 1-Lipschitz, so the
     * radii carry over; swiglu_oai's u + 1 adds one fp32 rounding */
    const mf_moe_params *p = &ctx->p;
    const int oai = p->activation == MF_ACT_SWIGLU_OAI;
    const int clamp_after = p->activation == MF_ACT_SILU_CLAMP_AFTER;
    const int clamps = p->activation != MF_ACT_SILU_GLU && !(p->variant & MF_VARIANT_CLAMP_DROPPED);
    const double L = (double)p->act_limit, alpha = oai ? (double)p->act_alpha : 1.0;
    if (clamps) {
        if (!clamp_after) clamp_dd(&g, &g_lo, -INFINITY, L);
        clamp_dd(&u, &u_lo, -L, L);
    }
    if (oai) {
        double s, e;
        two_sum_(u, 1.0, &s, &e);
        e += u_lo;
        two_sum_(s, e, &u, &u_lo);
        ru += U * (fabs(u) + ru);
    }
    /* bound on the kernel's deviation from a = silu(g) u */
    double udiv = mf_contract_div_rel(c);
    /* sg = g sigmoid(alpha g) (silu for alpha 1), Lipschitz SILU_LIPSCHITZ for every alpha */
    double sg = g / (1.0 + exp(-alpha * g));
    if (!isfinite(sg)) sg = g < 0 ? 0.0 : g; /* exp overflow: silu(g) -> 0 for g << 0 */
    double gmag = fabs(g) + rg;
    /* exp(-g) may overflow, or (fast division) 1 + exp(-g) exceed 2^126: silu may be 0 */
    double zero_below = mf_contract_div_zero_domain(c->div) ? -87.0 : -88.5;
    /* swiglu_oai: the argument -g alpha is rounded (a relative error of the exp of u alpha |g|)
     * and (u + 1) g is rounded before the division */
    double eps_oai = oai ? 1.01 * U * alpha * gmag + U : 0.0;
    double eps_s = (alpha * (g - rg) < zero_below)
                       ? 1.0
                       : (mf_contract_exp_rel(c, alpha * gmag) + U + udiv + eps_oai) *
                             (1 + 0x1p-20);
    /* silu_clamp_after: min(silu(g), L), exact and 1-Lipschitz in silu's value */
    double sgc = clamp_after && clamps && sg > L ? L : sg;
    double su = fabs(sg) + SILU_LIPSCHITZ * rg;
    double uu = fabs(u) + ru;
    if (oai && gmag * uu >= 0x1p127) {
        /* swiglu_oai forms (u + 1) g before the division: it may overflow to inf (and inf / inf
         * is NaN) although the activation is small */
        out->unconstrained = 1;
        out->h = MF_BF16_QNAN;
        out->delta = INFINITY;
        return;
    }
    double eta = mf_contract_eta(c);
    double rho = fabs(sgc) * ru + (SILU_LIPSCHITZ * rg + eps_s * su) * uu +
                 U * (1 + eps_s) * su * uu + eta * (uu + 2);
    /* flush to zero also flushes subnormal operands: u below 2^-126 read as 0 moves the product
     * by |silu(g)| 2^-126 at most, g below 2^-126 read as 0 moves silu(g) by its Lipschitz
     * constant times 2^-126 */
    double ftz_in = c->ftz ? (su + SILU_LIPSCHITZ * uu) * 0x1p-126 : 0.0;
    rho += ftz_in;
    /* a rounding of silu before the multiply, only where the activation is silu(g) u: the
     * centre's silu factor is then that rounding decided, RN_bf16 of the double silu, ds
     * covering every bf16 value the kernel's fp32 silu (within rs of silu(g)) may round to */
    const int silu_rp = (c->round_points & MF_RP_SILU_OUT) &&
                        (p->activation == MF_ACT_SILU_GLU || p->activation == MF_ACT_SILU_CLAMP);
    double s_c = sgc;
    if (silu_rp) {
        /* flush to zero: g read as 0 and a subnormal silu flushed each move it by 2^-126 */
        double rs = SILU_LIPSCHITZ * rg + eps_s * su + (c->ftz ? 2.1 * 0x1p-126 : 0.0);
        /* |sg - silu(g)|: g's low part, and the double evaluation as for a_d below */
        double es = SILU_LIPSCHITZ * fabs(g_lo) + (fabs(sg) + 0x1p-1000) * (fabs(g) + 8) * 0x1p-44 +
                    eta;
        uint16_t slo, shi;
        bf16_range(sg, rs, es, &slo, &shi);
        s_c = bf16_d(mf_f64_to_bf16(sg));
        double d1 = s_c - bf16_d(slo), d2 = bf16_d(shi) - s_c;
        double ds = d1 > d2 ? d1 : d2;
        double sm = fabs(s_c) + ds;
        /* then the product of a bf16 silu within ds of s_c and u, rounded once (u) */
        rho = (fabs(s_c) * ru + ds * uu + U * sm * uu + eta * (uu + 2) +
               (c->ftz ? sm * 0x1p-126 : 0.0)) *
              (1 + 0x1p-40);
    }
    double a_d = s_c * u;
    /* |a_d - a| for the double evaluation: relative (|g| + 8) 2^-52 from exp, the division and
     * the products (libm exp within 1 ulp), taken with a 2^8 margin; with silu decided, the one
     * product and u's low part */
    int fast = !ctx->opt.strict && (silu_rp || alpha * fabs(g) < 1024);
    double ea = silu_rp ? fabs(a_d) * 0x1p-52 + fabs(s_c * u_lo) * (1 + 0x1p-50) + 0x1p-1074
                        : (fabs(a_d) + 0x1p-1000) * (alpha * fabs(g) + 8) * 0x1p-44;
    uint16_t h;
    ctx->st.act_elems++;
    if (fast && mf_f64_to_bf16(a_d - ea) == mf_f64_to_bf16(a_d + ea)) {
        h = mf_f64_to_bf16(a_d);
    } else {
        /* MPFR decides: a = g / (1 + exp(-g)) * u (or s_c u) at 128 bits from the exact
         * double-doubles */
        mpfr_t *A = &ctx->m_a, *B = &ctx->m_b;
        if (silu_rp) {
            mpfr_set_d(*A, s_c, MPFR_RNDN);
        } else {
            mpfr_set_d(*A, g, MPFR_RNDN);
            mpfr_add_d(*A, *A, g_lo, MPFR_RNDN);
            mpfr_mul_d(*B, *A, -alpha, MPFR_RNDN);
            mpfr_exp(*B, *B, MPFR_RNDN);
            mpfr_add_ui(*B, *B, 1, MPFR_RNDN);
            mpfr_div(*A, *A, *B, MPFR_RNDN);
            if (clamp_after && clamps && mpfr_cmp_d(*A, L) > 0) mpfr_set_d(*A, L, MPFR_RNDN);
        }
        mpfr_set_d(*B, u, MPFR_RNDN);
        mpfr_add_d(*B, *B, u_lo, MPFR_RNDN);
        mpfr_mul(*A, *A, *B, MPFR_RNDN);
        h = mf_mpfr_to_bf16(*A);
        a_d = mpfr_get_d(*A, MPFR_RNDN);
        ea = fabs(a_d) * 0x1p-52 + 0x1p-1074;
        ctx->st.act_mpfr++;
    }
    uint16_t lo, hi;
    bf16_range(a_d, rho, ea, &lo, &hi);
    double hv = bf16_d(h);
    double d1 = hv - bf16_d(lo), d2 = bf16_d(hi) - hv;
    out->h = h;
    out->delta = d1 > d2 ? d1 : d2;
    out->lo = lo;
    out->hi = hi;
    if (!mf_bf16_is_finite(lo) || !mf_bf16_is_finite(hi) || !isfinite(out->delta)) {
        /* the admissible activations reach the bf16 overflow: nothing downstream is bounded */
        out->unconstrained = 1;
        return;
    }
    if (lo != hi) ctx->st.act_ambiguous++;
}

/* ---- experts ---- */

/* An expert bias b (bf16 bits) added in fp32 to a GEMM's result d, one rounding after the dot
 * (docs/error-model.md "Expert biases"): the exact value moves by b, the kernel's by
 * fl(d_k + b), within u (|d + b| + radius) + eta of d_k + b. A non-finite bias, or a sum that
 * may leave the fp32 range, leaves d unbounded. */
static void add_bias(const mf_ref_ctx *ctx, mf_dot *d, uint16_t bits) {
    double b = bf16_d(bits), s, e;
    if (!isfinite(b)) {
        d->flags |= MF_DOT_NONFINITE;
        return;
    }
    two_sum_(d->hi, b, &s, &e);
    e += d->lo;
    two_sum_(s, e, &d->hi, &d->lo);
    d->err += (fabs(d->hi) + fabs(b)) * 0x1p-104;
    d->radius += U * (fabs(d->hi) + d->radius) + mf_contract_eta(ctx->c) +
                 (ctx->c->ftz ? 0x1p-126 : 0.0) + fabs(d->hi) * 0x1p-100;
    d->abs_sum += fabs(b);
    if (fabs(d->hi) + d->radius >= 0x1p127) d->flags |= MF_DOT_MAY_OVERFLOW;
}

static void load_token(mf_ref_ctx *ctx, int t) {
    if (ctx->cur_t == t) return;
    int H = ctx->p.H;
    const uint16_t *xr = ctx->x.x + (size_t)t * H;
    for (int h = 0; h < H; h++) ctx->xd[h] = bf16_d(xr[h]);
    mf_vec_info_bf16(xr, (size_t)H, 1, &ctx->x_info);
    for (int e = 0; e < ctx->p.E_local + ctx->p.n_shared; e++) ctx->slot_of[e] = -1;
    ctx->nslots = 0;
    ctx->cur_t = t;
}

static mf_status new_slot(mf_ref_ctx *ctx, int *slot, mf_error *err) {
    if (ctx->nslots == ctx->cap_slots) {
        int cap = ctx->cap_slots ? 2 * ctx->cap_slots : 8;
        expert_slot *s = realloc(ctx->slots, sizeof *s * (size_t)cap);
        if (!s) return MF_FAIL(err, MF_ENOMEM, "reference: out of memory");
        ctx->slots = s;
        size_t H = (size_t)ctx->p.H;
        for (int i = ctx->cap_slots; i < cap; i++) {
            if (!slot_alloc(&s[i], H)) {
                ctx->cap_slots = i + 1;
                return MF_FAIL(err, MF_ENOMEM, "reference: out of memory");
            }
        }
        ctx->cap_slots = cap;
    }
    *slot = ctx->nslots++;
    return MF_OK;
}

/* One expert's weights: routed local expert le < E_local, or shared expert le - E_local (its
 * own intermediate size, no expert bias) */
typedef struct expert_view {
    int I, shared;
    const uint16_t *w13, *w2, *b13, *b2;
    mf_vec_info *i13, *i2;
} expert_view;

static void expert_view_of(mf_ref_ctx *ctx, int le, expert_view *v) {
    const mf_moe_params *p = &ctx->p;
    size_t H = (size_t)p->H;
    v->shared = le >= p->E_local;
    if (v->shared) {
        size_t j = (size_t)(le - p->E_local), I = (size_t)p->shared_I;
        v->I = p->shared_I;
        v->w13 = ctx->x.sw13 + j * 2 * I * H;
        v->w2 = ctx->x.sw2 + j * H * I;
        v->b13 = v->b2 = NULL;
        v->i13 = ctx->sw13_info + j * 2 * I;
        v->i2 = ctx->sw2_info + j * H;
    } else {
        size_t I = (size_t)p->I;
        v->I = p->I;
        v->w13 = ctx->x.w13 + (size_t)le * 2 * I * H;
        v->w2 = ctx->x.w2 + (size_t)le * H * I;
        v->b13 = ctx->x.b13 ? ctx->x.b13 + (size_t)le * 2 * I : NULL;
        /* under tensor parallelism only rank 0 adds b2 */
        v->b2 = ctx->x.b2 && p->tp_rank == 0 ? ctx->x.b2 + (size_t)le * H : NULL;
        v->i13 = ctx->w13_info + (size_t)le * 2 * I;
        v->i2 = ctx->w2_info + (size_t)le * H;
    }
    if (ctx->info_ready[le]) return;
    size_t I = (size_t)v->I;
    for (size_t r = 0; r < 2 * I; r++) mf_vec_info_bf16(v->w13 + r * H, H, 1, &v->i13[r]);
    for (size_t r = 0; r < H; r++) mf_vec_info_bf16(v->w2 + r * I, I, 1, &v->i2[r]);
    ctx->info_ready[le] = 1;
}

static void compute_expert_fp8(mf_ref_ctx *ctx, int le, expert_slot *s);

/* weight_on_input: the routing weight of the slot, exact (hi + lo) and the enclosure [wlo, whi]
 * of the kernel's fp32 weight */
typedef struct in_weight {
    double hi, lo, wlo, whi;
} in_weight;

static inline void dd_mul(double xh, double xl, double yh, double yl, double *ph, double *pl);

/* The token's row as a kernel that scales its input forms it (vLLM's prepare step: x * w in
 * bf16, the weight rounded to bf16 first): xw = RN_bf16(x RN_bf16(w)) at the exact weight, and
 * delta covering RN_bf16(x w_b) for every bf16 weight w_b the kernel's fp32 weight rounds to. */
static void scale_input(mf_ref_ctx *ctx, const in_weight *iw, mf_vec_info *info) {
    int H = ctx->p.H;
    double wc = bf16_d(mf_f64_to_bf16(iw->hi + iw->lo));
    double wb0 = bf16_d(mf_f64_to_bf16(iw->wlo)), wb1 = bf16_d(mf_f64_to_bf16(iw->whi));
    for (int h = 0; h < H; h++) {
        double x = ctx->xd[h];
        /* bf16 times bf16 is exact in double */
        uint16_t c = mf_f64_to_bf16(x * wc);
        double cd = bf16_d(c), e0 = bf16_d(mf_f64_to_bf16(x * wb0)),
               e1 = bf16_d(mf_f64_to_bf16(x * wb1));
        double d0 = fabs(e0 - cd), d1 = fabs(e1 - cd);
        ctx->xw_bits[h] = c;
        ctx->xw[h] = cd;
        ctx->xw_delta[h] = d0 > d1 ? d0 : d1;
    }
    mf_vec_info_bf16(ctx->xw_bits, (size_t)H, 1, info);
}

/* GEMM1's row d (over the unscaled token) as the kernel sees it with the weight on the input
 * (docs/error-model.md, "Routing weight on the input"): exact value w (W13 x); radius the larger
 * of (a) the input scaled in bf16 (vLLM's prepare step: dot over xw, within da's radius of the
 * kernel's) and (b) GEMM1's fp32 result times the fp32 weight, rounded once (vLLM's Triton
 * epilogue, fused_moe.py MUL_ROUTED_WEIGHT). */
static void scale_row(mf_ref_ctx *ctx, mf_dot *d, const in_weight *iw, const uint16_t *row,
                      const mf_vec_info *ri, const mf_vec_info *xwi) {
    if (!isfinite(iw->wlo) || !isfinite(iw->whi) || isnan(iw->hi)) {
        d->flags |= MF_DOT_NONFINITE;
        return;
    }
    mf_dot da;
    mf_dot_bf16(ctx->ws, ctx->xw, xwi, ctx->xw_delta, row, ri, (size_t)ctx->p.H, &ctx->c->gemm,
                &da);
    double ch, cl;
    dd_mul(iw->hi, iw->lo, d->hi, d->lo, &ch, &cl);
    double aw = fabs(iw->hi), rw = iw->hi - iw->wlo;
    if (iw->whi - iw->hi > rw) rw = iw->whi - iw->hi;
    double g = fabs(d->hi), rg = d->radius, eta = mf_contract_eta(ctx->c);
    double err = fabs(ch) * 0x1p-100 + aw * d->err;
    double rb = (aw + rw) * rg + rw * g + U * (aw + rw) * (g + rg) + eta +
                (ctx->c->ftz ? 0x1p-126 : 0.0);
    double ra = fabs((da.hi - ch) + (da.lo - cl)) + da.radius + fabs(da.hi) * 0x1p-100;
    d->hi = ch;
    d->lo = cl;
    d->err = err;
    d->radius = ((ra > rb ? ra : rb) + err) * (1 + 0x1p-40);
    d->abs_sum = da.abs_sum;
    d->flags |= da.flags;
    if (g + rg + d->radius >= 0x1p127) d->flags |= MF_DOT_MAY_OVERFLOW;
}

static void compute_expert(mf_ref_ctx *ctx, int le, expert_slot *s, const in_weight *iw) {
    if (ctx->fp8) {
        compute_expert_fp8(ctx, le, s);
        return;
    }
    const mf_moe_params *p = &ctx->p;
    expert_view v;
    expert_view_of(ctx, le, &v);
    int H = p->H, I = v.I;
    const uint16_t *w13 = v.w13;
    const mf_vec_info *i13 = v.i13;
    const mf_acc_model *m = &ctx->c->gemm;
    int unconstrained = 0, any_delta = 0;
    mf_vec_info xw_info;
    if (iw) scale_input(ctx, iw, &xw_info);
    for (int j = 0; j < I; j++) {
        int rg = v.shared ? mf_shared_gate_row(p, j) : mf_gate_row(p, j);
        int ru = v.shared ? mf_shared_up_row(p, j) : mf_up_row(p, j);
        mf_dot dg, du;
        mf_dot_bf16(ctx->ws, ctx->xd, &ctx->x_info, NULL, w13 + (size_t)rg * H, &i13[rg],
                    (size_t)H, m, &dg);
        mf_dot_bf16(ctx->ws, ctx->xd, &ctx->x_info, NULL, w13 + (size_t)ru * H, &i13[ru],
                    (size_t)H, m, &du);
        if (v.b13) {
            add_bias(ctx, &dg, v.b13[rg]);
            add_bias(ctx, &du, v.b13[ru]);
        }
        if (iw) {
            scale_row(ctx, &dg, iw, w13 + (size_t)rg * H, &i13[rg], &xw_info);
            scale_row(ctx, &du, iw, w13 + (size_t)ru * H, &i13[ru], &xw_info);
        }
        act_out a;
        activation(ctx, &dg, &du, &a);
        unconstrained |= a.unconstrained;
        ctx->hb[j] = a.unconstrained ? 0 : a.h;
        ctx->hd[j] = bf16_d(ctx->hb[j]);
        ctx->delta[j] = a.unconstrained ? 0 : a.delta;
        any_delta |= ctx->delta[j] != 0;
    }
    ctx->st.experts++;
    if (unconstrained) {
        for (int c = 0; c < H; c++) {
            s->o_hi[c] = NAN;
            s->o_lo[c] = 0;
            s->o_rad[c] = INFINITY;
            s->flags[c] = MF_ELEM_UNCONSTRAINED;
        }
        return;
    }
    mf_vec_info hi_info;
    mf_vec_info_bf16(ctx->hb, (size_t)I, 1, &hi_info);
    const uint16_t *w2 = v.w2;
    const mf_vec_info *i2 = v.i2;
    for (int c = 0; c < H; c++) {
        if (!ctx->col_mask[c]) {
            s->o_hi[c] = s->o_lo[c] = s->o_rad[c] = 0;
            s->flags[c] = MF_ELEM_NOT_CHECKED;
            continue;
        }
        mf_dot d;
        mf_dot_bf16(ctx->ws, ctx->hd, &hi_info, any_delta ? ctx->delta : NULL,
                    w2 + (size_t)c * I, &i2[c], (size_t)I, m, &d);
        if (v.b2 && !(p->variant & MF_VARIANT_B2_UNWEIGHTED)) add_bias(ctx, &d, v.b2[c]);
        s->flags[c] = (d.flags & (MF_DOT_NONFINITE | MF_DOT_MAY_OVERFLOW)) ? MF_ELEM_UNCONSTRAINED
                                                                            : 0;
        if (ctx->c->round_points & MF_RP_GEMM2_OUT) {
            double dlt;
            s->o_hi[c] = bf16_d(round_point(ctx, d.hi, d.lo, d.err, d.radius, &dlt));
            s->o_lo[c] = 0;
            s->o_rad[c] = dlt;
        } else {
            s->o_hi[c] = d.hi;
            s->o_lo[c] = d.lo;
            s->o_rad[c] = d.radius;
        }
    }
}

/* The kept output of expert le for the row first seen at token `first` (t is a token with that
 * row), computed on its first use; *out NULL when the kept outputs reached KEEP_BYTES. */
static mf_status kept_expert(mf_ref_ctx *ctx, int t, int first, int le, expert_slot **out,
                             mf_error *err) {
    *out = NULL;
    if (2 * (ctx->keep_n + 1) > ctx->keep_cap) {
        size_t cap = ctx->keep_cap ? 2 * ctx->keep_cap : 64;
        int64_t *key = malloc(cap * sizeof(int64_t));
        int *slot = malloc(cap * sizeof(int));
        if (!key || !slot) {
            free(key);
            free(slot);
            return MF_FAIL(err, MF_ENOMEM, "reference: out of memory");
        }
        for (size_t i = 0; i < cap; i++) key[i] = -1;
        for (size_t i = 0; i < ctx->keep_cap; i++) {
            if (ctx->keep_key[i] < 0) continue;
            size_t at = (size_t)((uint64_t)ctx->keep_key[i] * 0x9E3779B97F4A7C15ull >> 17) &
                        (cap - 1);
            while (key[at] >= 0) at = (at + 1) & (cap - 1);
            key[at] = ctx->keep_key[i];
            slot[at] = ctx->keep_slot[i];
        }
        free(ctx->keep_key);
        free(ctx->keep_slot);
        ctx->keep_key = key;
        ctx->keep_slot = slot;
        ctx->keep_cap = cap;
    }
    int64_t k = (int64_t)first * (ctx->p.E_local + ctx->p.n_shared) + le;
    size_t at = (size_t)((uint64_t)k * 0x9E3779B97F4A7C15ull >> 17) & (ctx->keep_cap - 1);
    for (; ctx->keep_key[at] >= 0; at = (at + 1) & (ctx->keep_cap - 1))
        if (ctx->keep_key[at] == k) {
            *out = &ctx->kept[ctx->keep_slot[at]];
            ctx->st.experts_reused++;
            return MF_OK;
        }
    double slot_bytes = (double)ctx->p.H * (3 * sizeof(double) + 1);
    if ((ctx->nkept + 1) * slot_bytes > KEEP_BYTES) return MF_OK;
    if (ctx->nkept == ctx->cap_kept) {
        int cap = ctx->cap_kept ? 2 * ctx->cap_kept : 16;
        expert_slot *s = realloc(ctx->kept, sizeof *s * (size_t)cap);
        if (!s) return MF_FAIL(err, MF_ENOMEM, "reference: out of memory");
        ctx->kept = s;
        ctx->cap_kept = cap;
    }
    expert_slot *s = &ctx->kept[ctx->nkept];
    if (!slot_alloc(s, (size_t)ctx->p.H)) {
        slot_free(s);
        return MF_FAIL(err, MF_ENOMEM, "reference: out of memory");
    }
    ctx->nkept++;
    load_token(ctx, t);
    compute_expert(ctx, le, s, NULL);
    ctx->keep_key[at] = k;
    ctx->keep_slot[at] = ctx->nkept - 1;
    ctx->keep_n++;
    *out = s;
    return MF_OK;
}

mf_status mf_ref_expert(mf_ref_ctx *ctx, int t, int le, mf_expert_out *out, mf_error *err) {
    if (t < 0 || t >= ctx->p.T || le < 0 || le >= ctx->p.E_local + ctx->p.n_shared)
        return MF_FAIL(err, MF_EINVAL, "reference: token %d / local expert %d out of range", t,
                       le);
    if (le < ctx->p.E_local && ctx->x.expert_state &&
        ctx->x.expert_state[le] != MF_REF_EXPERT_READY)
        return MF_FAIL(err, MF_EINTERNAL,
                       "reference: local expert %d was not generated (token %d selects it): the "
                       "routable set missed it",
                       le, t);
    double t0 = ctx->opt.profile ? mf_now_s() : 0;
    int first = ctx->row_first ? ctx->row_first[t] : t;
    if (ctx->row_copies && ctx->row_copies[first]) {
        expert_slot *ks;
        MF_TRY(kept_expert(ctx, t, first, le, &ks, err));
        if (ks) {
            out->o_hi = ks->o_hi;
            out->o_lo = ks->o_lo;
            out->o_rad = ks->o_rad;
            out->flags = ks->flags;
            if (ctx->opt.profile) ctx->st.total_s += mf_now_s() - t0;
            return MF_OK;
        }
    }
    load_token(ctx, t);
    int slot = ctx->slot_of[le];
    if (slot < 0) {
        MF_TRY(new_slot(ctx, &slot, err));
        compute_expert(ctx, le, &ctx->slots[slot], NULL);
        ctx->slot_of[le] = slot;
    }
    expert_slot *s = &ctx->slots[slot];
    out->o_hi = s->o_hi;
    out->o_lo = s->o_lo;
    out->o_rad = s->o_rad;
    out->flags = s->flags;
    if (ctx->opt.profile) ctx->st.total_s += mf_now_s() - t0;
    return MF_OK;
}

/* ---- output ---- */

static inline void two_sum(double x, double y, double *s, double *e) {
    double t = x + y, yv = t - x, xv = t - yv;
    *s = t;
    *e = (x - xv) + (y - yv);
}

/* (xh + xl)(yh + yl) as a double-double; |error| <= 2^-100 |x y| */
static inline void dd_mul(double xh, double xl, double yh, double yl, double *ph, double *pl) {
    double p = xh * yh;
    double e = fma(xh, yh, -p);
    e += xh * yl + xl * yh;
    two_sum(p, e, ph, pl);
}

static inline void dd_add(double *sh, double *sl, double ph, double pl) {
    double s, e;
    two_sum(*sh, ph, &s, &e);
    e += *sl + pl;
    two_sum(s, e, sh, sl);
}

/* row := the hull of row and the alternative b: the kernel rounds at an optional point or it
 * does not, the same way for every element, so each element lies in one alternative's
 * interval; the hull contains their union (docs/error-model.md, "Optional rounding points"). */
static void row_hull(mf_ref_row *row, const mf_ref_row *b, const uint8_t *col_mask, int H) {
    for (int c = 0; c < H; c++) {
        if (!col_mask[c]) continue;
        row->flags[c] |= b->flags[c];
        if (row->flags[c] & MF_ELEM_UNCONSTRAINED) continue;
        if (bf16_d(b->lo[c]) < bf16_d(row->lo[c])) row->lo[c] = b->lo[c];
        if (bf16_d(b->hi[c]) > bf16_d(row->hi[c])) row->hi[c] = b->hi[c];
        double l1 = row->z[c] - row->rad[c], l2 = b->z[c] - b->rad[c];
        double u1 = row->z[c] + row->rad[c], u2 = b->z[c] + b->rad[c];
        double l = l1 < l2 ? l1 : l2, u = u1 > u2 ? u1 : u2;
        /* each bound within 2^-53 relative of its exact value; the midpoint as well */
        double z = 0.5 * l + 0.5 * u;
        double r = 0.5 * u - 0.5 * l;
        row->z[c] = z;
        row->rad[c] = (r + (fabs(l) + fabs(u)) * 0x1p-51 + 0x1p-1073) * (1 + 0x1p-50);
    }
}

/* The weight of shared expert j's slot for token t (docs/error-model.md, "Shared experts"):
 * exact as hi + lo, the kernel's fp32 value within rad. rsf: the routing weights' (a context
 * may serve problems that differ in rsf alone). */
static void shared_weight(const mf_ref_ctx *ctx, int t, double rsf, double *hi, double *lo,
                          double *rad) {
    const mf_moe_params *p = &ctx->p;
    switch (p->shared_weight) {
    case MF_SHW_INV_RSF: /* fl(1 / rsf), or SGLang's fl(fl(sum / rsf) / sum): 2 roundings, each
                            within 2 ulps under a fast division */
        *hi = 1.0 / rsf;
        *lo = fma(-*hi, rsf, 1.0) / rsf;
        *rad = *hi * (0x1p-21 + 0x1p-43) + mf_contract_eta(ctx->c);
        break;
    case MF_SHW_GATE:
        mf_route_sigmoid(ctx->c, ctx->x.shared_gate + t, 1, hi, lo, rad);
        break;
    default:
        *hi = 1.0, *lo = 0, *rad = 0;
        break;
    }
    if (p->variant & MF_VARIANT_SHARED_RSF_TWICE) { /* one more fp32 division by rsf */
        double q = *hi / rsf;
        double ql = (fma(-q, rsf, *hi) + *lo) / rsf;
        *rad = *rad / rsf + fabs(q) * 0x1p-22 + mf_contract_eta(ctx->c);
        *hi = q, *lo = ql;
    }
}

/* weight_on_input: routed expert le of token t on its input scaled by slot i's weight, computed
 * afresh into a slot of the token (the weight differs between a problem and its
 * counterfactuals, so these outputs are never kept). */
static mf_status expert_on_input(mf_ref_ctx *ctx, int t, int le, const mf_weights *w, int i,
                                 mf_expert_out *out, mf_error *err) {
    if (ctx->x.expert_state && ctx->x.expert_state[le] != MF_REF_EXPERT_READY)
        return MF_FAIL(err, MF_EINTERNAL,
                       "reference: local expert %d was not generated (token %d selects it): the "
                       "routable set missed it",
                       le, t);
    load_token(ctx, t);
    int slot;
    MF_TRY(new_slot(ctx, &slot, err));
    in_weight iw = {w->w_hi[i], w->w_lo[i], w->lo[i], w->hi[i]};
    expert_slot *s = &ctx->slots[slot];
    compute_expert(ctx, le, s, &iw);
    out->o_hi = s->o_hi;
    out->o_lo = s->o_lo;
    out->o_rad = s->o_rad;
    out->flags = s->flags;
    return MF_OK;
}

mf_status mf_ref_token_output(mf_ref_ctx *ctx, int t, const int32_t *ids, const mf_weights *w,
                              mf_ref_row *row, mf_error *err) {
    const mf_moe_params *p = &ctx->p;
    int H = p->H, k = p->top_k;
    mf_expert_out eo[MF_MAX_TOP_K + MF_MAX_SHARED];
    int local[MF_MAX_TOP_K + MF_MAX_SHARED];
    int nloc = 0;
    int le_of[MF_MAX_TOP_K]; /* slot i's local expert, or -1 */
    for (int i = 0; i < k; i++) {
        le_of[i] = mf_local_of(p, ctx->x.expert_map, ids[i]);
        if (le_of[i] < 0) continue;
        if (p->weight_on_input)
            MF_TRY(expert_on_input(ctx, t, le_of[i], w, i, &eo[nloc], err));
        else
            MF_TRY(mf_ref_expert(ctx, t, le_of[i], &eo[nloc], err));
        local[nloc++] = i;
    }
    /* the shared experts' slots follow the routed ones, weight sw (one for all of a token's) */
    int n_sh = 0;
    if (mf_shared_added(p) || (p->n_shared > 0 && (p->variant & MF_VARIANT_SHARED_EVERY_RANK)))
        n_sh = p->n_shared - ((p->variant & MF_VARIANT_SHARED_DROPPED) ? 1 : 0);
    double sw_hi = 0, sw_lo = 0, sw_rad = 0;
    if (n_sh > 0) shared_weight(ctx, t, w->rsf, &sw_hi, &sw_lo, &sw_rad);
    for (int j = 0; j < n_sh; j++) {
        MF_TRY(mf_ref_expert(ctx, t, p->E_local + j, &eo[nloc], err));
        local[nloc++] = -1;
    }
    double t0 = ctx->opt.profile ? mf_now_s() : 0;
    /* the combine's accumulator rounds each add to fp32 (u), or to bf16 (2^-8) */
    const double uc = ctx->c->combine_dtype == MF_DTYPE_BF16 ? 0x1p-8 : U;
    const double eta = mf_contract_eta(ctx->c);
    /* flush to zero of operands: a subnormal weight or expert output read as 0 moves its product
     * by the other factor times 2^-126 (results below 2^-126 are eta's) */
    const double ftz_in = ctx->c->ftz ? 0x1p-126 : 0.0;
    /* the counterfactual "b2 unweighted" adds each local expert's b2 as one more term */
    const uint16_t *b2_cf =
        (p->variant & MF_VARIANT_B2_UNWEIGHTED) && p->tp_rank == 0 ? ctx->x.b2 : NULL;
    int n_adds = (b2_cf ? 2 * k : k) + n_sh;
    double gk = (double)n_adds * uc / (1 - (double)n_adds * uc);
    int weighted_rp = (ctx->c->round_points & MF_RP_WEIGHTED) != 0;
    int rsf_rp = (ctx->c->round_points & MF_RP_RSF_OUT) != 0;
    double rsf_o = w->out_scale;
    for (int c = 0; c < H; c++) {
        uint8_t fl = 0;
        if (!ctx->col_mask[c]) {
            row->z[c] = 0;
            row->rad[c] = 0;
            row->lo[c] = row->hi[c] = 0;
            row->flags[c] = MF_ELEM_NOT_CHECKED;
            continue;
        }
        double zh = 0, zl = 0, A = 0, B = 0;
        for (int n = 0; n < nloc; n++) {
            int i = local[n];
            fl |= eo[n].flags[c] & (MF_ELEM_UNCONSTRAINED | MF_ELEM_UNDECIDED);
            double oh = eo[n].o_hi[c], ol = eo[n].o_lo[c], ro = eo[n].o_rad[c];
            double wh = i < 0 ? sw_hi : w->w_hi[i], wl = i < 0 ? sw_lo : w->w_lo[i];
            double rw = i < 0 ? sw_rad : w->rad[i];
            if (i >= 0 && p->weight_on_input) wh = 1, wl = 0, rw = 0; /* on the input */
            if (isnan(wh)) {
                fl |= MF_ELEM_UNCONSTRAINED; /* a NaN gate logit */
                /* a NaN given weight multiplies the expert's row: NaN whatever that row holds */
                if (i >= 0 && p->preroute != MF_PREROUTE_NONE) fl |= MF_ELEM_NAN_REQUIRED;
            }
            double ph, pl;
            dd_mul(wh, wl, oh, ol, &ph, &pl);
            double a_term = fabs(wh) * ro + rw * fabs(oh) + rw * ro +
                            ftz_in * (fabs(wh) + rw + fabs(oh) + ro);
            if (weighted_rp) {
                /* the kernel rounds w * y to bf16 per expert (vLLM fused_moe epilogue) */
                double dlt;
                double r = a_term + U * (fabs(ph) + a_term);
                uint16_t q = round_point(ctx, ph, pl, fabs(ph) * 0x1p-100, r, &dlt);
                if (i < 0) {
                    /* a shared slot's product may also be added unrounded (a shared output
                     * added apart from the routed epilogue): the radius around q covers both */
                    double r1 = fabs(bf16_d(q) - ph) + fabs(pl) + r + fabs(ph) * 0x1p-52;
                    a_term = dlt > r1 ? dlt : r1;
                } else {
                    a_term = dlt;
                }
                ph = bf16_d(q);
                pl = 0;
            }
            dd_add(&zh, &zl, ph, pl);
            A += a_term;
            B += fabs(ph);
            if (b2_cf && i >= 0) {
                double b = bf16_d(b2_cf[(size_t)le_of[i] * H + c]);
                dd_add(&zh, &zl, b, 0);
                B += fabs(b);
                if (!isfinite(b)) fl |= MF_ELEM_UNCONSTRAINED;
            }
        }
        if (w->nan_ok) fl |= MF_ELEM_NAN_OK;
        double rad = A + (gk + U) * (B + A) + 2.0 * (k + n_sh) * eta;
        /* the fp32 combine may overflow before an output-site rsf scales it back */
        if (B + rad >= 0x1p127) fl |= MF_ELEM_UNCONSTRAINED;
        if (rsf_o != 1.0 && rsf_rp) {
            /* the kernel stores the combine as bf16, then multiplies by rsf in fp32 and rounds
             * again: q = RN_bf16 of the combine, within dlt of every admissible one; the radius
             * also covers the unrounded combine (q's distance to z plus rad) */
            double dlt;
            double r0 = rad + B * 0x1p-98 + fabs(zl) + fabs(zh) * 0x1p-52;
            uint16_t q = round_point(ctx, zh, zl, B * 0x1p-98, r0, &dlt);
            double qd = bf16_d(q);
            double r1 = fabs(qd - zh) + fabs(zl) + r0;
            if (dlt > r1) r1 = dlt;
            if (!mf_bf16_is_finite(q)) fl |= MF_ELEM_UNCONSTRAINED;
            zh = qd * rsf_o; /* a bf16 times an fp32: exact in double */
            zl = 0;
            rad = r1 * rsf_o + U * (fabs(zh) + r1 * rsf_o) + eta + ftz_in * rsf_o;
            B *= rsf_o;
        } else if (rsf_o != 1.0) {
            double zh2, zl2;
            dd_mul(zh, zl, rsf_o, 0, &zh2, &zl2);
            zh = zh2, zl = zl2;
            rad = rad * rsf_o + U * (fabs(zh) + rad * rsf_o) + ETA;
            B *= rsf_o;
        }
        rad += B * 0x1p-98 + fabs(zl) + fabs(zh) * 0x1p-52; /* dd arithmetic; z as one double */
        rad *= 1 + 0x1p-40;
        if (B + rad >= 0x1p127) fl |= MF_ELEM_UNCONSTRAINED; /* the scaled result may overflow */
        if (!isfinite(rad) || isnan(zh)) fl |= MF_ELEM_UNCONSTRAINED; /* no usable bound */
        row->z[c] = zh;
        row->rad[c] = rad;
        bf16_range(zh, rad, 0, &row->lo[c], &row->hi[c]);
        row->flags[c] = fl;
    }
    if (ctx->opt.profile) ctx->st.total_s += mf_now_s() - t0;
    for (int i = 0; i < N_ALT && ctx->alt[i]; i++) {
        MF_TRY(mf_ref_token_output(ctx->alt[i], t, ids, w, &ctx->alt_row, err));
        row_hull(row, &ctx->alt_row, ctx->col_mask, H);
    }
    return MF_OK;
}

double mf_ref_utilisation(double z, double rad, uint16_t y) {
    if (mf_bf16_is_nan(y) || isnan(z)) return INFINITY;
    double lo, hi;
    int lc, hc;
    if (!mf_bf16_is_finite(y)) {
        /* +-inf: reals at or beyond the overflow threshold round to it */
        double thr = 0x1.ffp127; /* midpoint of the largest finite bf16 and 2^128 */
        if (y & 0x8000u) lo = -INFINITY, hi = -thr;
        else lo = thr, hi = INFINITY;
    } else {
        mf_bf16_cell(y, &lo, &hi, &lc, &hc);
    }
    double dist = z < lo ? lo - z : z > hi ? z - hi : 0.0;
    if (dist == 0) return 0.0;
    return rad > 0 ? dist / rad : INFINITY;
}

/* ---- quantized weights: FP8 block scale and MXFP4 (docs/error-model.md, "FP8 block scale") ----
 *
 * fp8_block: x_t is quantized per block_k columns (the kernel's quantizer on exact inputs: the
 * contract's division decides it), GEMM1 is the exact block-scaled dot product with the CPU FP8
 * contract's radius, the activation is rounded to bf16 as everywhere, then re-quantized per
 * block_k columns of I by the interval quantizer: its inputs are the admissible bf16 values, so
 * an element next to an e4m3 rounding boundary, or a group whose amax is next to a UE8M0
 * boundary, has more than one quantized value; the reference continues with the value on the
 * representative and covers the others by per-element radii (GEMM2's input perturbation), and a
 * group with more UE8M0 candidates than it enumerates makes the expert's outputs undecided.
 * mxfp4: the weights dequantized to bf16 once (exact), then the bf16 path unchanged. */

#define FP8_EPS 0x1.b7cdfep-34f /* fp32(1e-10): vLLM per_token_group_quant_fp8's amax floor */

typedef struct fp8_state {
    mf_fp8_quant qz;         /* x's quantizer */
    mf_fp8_quant qh;         /* the intermediate's: qz, or the fused op's (fp8_act_fused) */
    mf_fp8_dot_ws *ws;
    int t;                   /* token whose quantized x is held, -1 none */
    int nbh, nbi;            /* K blocks of GEMM1 (over H) and GEMM2 (over I) */
    uint8_t *xq, *hq;        /* [H], [I] representative codes */
    float *xs, *hs;          /* [nbh], [nbi] representative scales */
    double *xdelta, *hdelta; /* [H], [I] radii of the dequantized inputs */
    float *lo, *hi, *rep;    /* [I] the admissible activations */
    double *dlo, *dhi;       /* [max(H, I)] dequantized enclosures */
    uint8_t *w13q, *w2q;     /* [2I][H], [H][I]: the e4m3 codes of the expert being computed */
    int x_undecided;
} fp8_state;

static void fp8_state_free(fp8_state *f) {
    if (!f) return;
    mf_fp8_dot_ws_free(f->ws);
    free(f->xq);
    free(f->hq);
    free(f->xs);
    free(f->hs);
    free(f->xdelta);
    free(f->hdelta);
    free(f->lo);
    free(f->hi);
    free(f->rep);
    free(f->dlo);
    free(f->dhi);
    free(f->w13q);
    free(f->w2q);
    free(f);
}

static mf_status fp8_init(mf_ref_ctx *ctx, mf_error *err) {
    const mf_moe_params *p = &ctx->p;
    const mf_contract *c = ctx->c;
    if (mf_block_n(p) > 4096 || mf_block_k(p) > 4096)
        return MF_FAIL(err, MF_EINVAL, "fp8_block: blocks %d x %d above 4096", mf_block_n(p),
                       mf_block_k(p));
    if (!ctx->x.w13_s || !ctx->x.w2_s)
        return MF_FAIL(err, MF_EINVAL, "fp8_block: the weights' block scales are missing");
    if (p->expert_bias != MF_EBIAS_NONE || p->activation != MF_ACT_SILU_GLU ||
        p->layout == MF_LAYOUT_INTERLEAVED)
        return MF_FAIL(err, MF_EUNSUPPORTED,
                       "fp8_block with expert biases, a clamped activation or the interleaved "
                       "layout: the reference's FP8 expert path models SiLU-GLU on stacked "
                       "halves only");
    /* the rounding points of the bf16 path that the FP8 path shares: GEMM1's outputs and silu
     * (activation()), w * y and the output rsf's product (the combine); GEMM2's output and
     * the routing weights round nowhere in a modelled FP8 kernel */
    const unsigned fp8_rp = MF_RP_ACT_OUT | MF_RP_GEMM1_OUT | MF_RP_SILU_OUT | MF_RP_WEIGHTED |
                            MF_RP_RSF_OUT;
    if ((c->gemm.kind != MF_ACC_SEQ_FP32 && c->fp8_gemm.step <= 0) ||
        (c->round_points & ~fp8_rp) || c->ftz)
        return MF_FAIL(err, MF_EUNSUPPORTED,
                       "contract %s: the FP8 block-scale path models the CPU FP8 contract (fp32 "
                       "chain per K block) and the measured FP8 tensor cores (hopper-tc-fp8) "
                       "with vLLM's path on them (vllm-0.33-triton-fp8-sm90), rounding to bf16 "
                       "at GEMM1's outputs, silu, the activation, w * y and the output rsf only",
                       c->name);
    fp8_state *f = calloc(1, sizeof *f);
    if (!f) return MF_FAIL(err, MF_ENOMEM, "reference: out of memory");
    ctx->fp8 = f;
    size_t H = (size_t)p->H, I = (size_t)p->I, M = H > I ? H : I;
    f->qz = (mf_fp8_quant){MF_FP8_E4M3, p->scale_format == MF_SCALE_UE8M0, FP8_EPS, 0,
                           c->fp8_log2_rel, c->fp8_quant_recip, c->fp8_ue8m0_floor, 0};
    f->qh = f->qz;
    if (c->fp8_act_fused) {
        /* vLLM's silu_and_mul_per_block_quant: amax from 0, fp32 scale floored, y / s */
        if (p->scale_format == MF_SCALE_UE8M0 || mf_block_n(p) != 128 || mf_block_k(p) != 128 ||
            !(c->round_points & MF_RP_GEMM1_OUT))
            return MF_FAIL(err, MF_EUNSUPPORTED,
                           "contract %s: the fused activation quantizer runs for fp32 scales "
                           "and 128 x 128 blocks only (with UE8M0 scales or other blocks vLLM "
                           "takes the unfused path: contract vllm-0.33-triton-fp8-sm90)",
                           c->name);
        /* the op checks it (fused_silu_mul_block_quant.cu l. 138: hidden_size % group_size == 0) */
        if (p->I % 128)
            return MF_FAIL(err, MF_EUNSUPPORTED,
                           "contract %s: the fused activation quantizer needs I a multiple of "
                           "128 (I = %d)",
                           c->name, p->I);
        f->qh = (mf_fp8_quant){MF_FP8_E4M3, 0, 0.0f, 0, 0, 0, 0, c->fp8_scale_floor};
    }
    f->t = -1;
    f->nbh = (p->H + mf_block_k(p) - 1) / mf_block_k(p);
    f->nbi = (p->I + mf_block_k(p) - 1) / mf_block_k(p);
    f->ws = mf_fp8_dot_ws_new();
    f->xq = malloc(H);
    f->hq = malloc(I);
    f->xs = malloc(sizeof(float) * (size_t)f->nbh);
    f->hs = malloc(sizeof(float) * (size_t)f->nbi);
    f->xdelta = calloc(H, sizeof(double));
    f->hdelta = calloc(I, sizeof(double));
    f->lo = malloc(sizeof(float) * M);
    f->hi = malloc(sizeof(float) * M);
    f->rep = malloc(sizeof(float) * M);
    f->dlo = malloc(sizeof(double) * M);
    f->dhi = malloc(sizeof(double) * M);
    f->w13q = malloc(2 * I * H);
    f->w2q = malloc(H * I);
    if (!f->ws || !f->xq || !f->hq || !f->xs || !f->hs || !f->xdelta || !f->hdelta || !f->lo ||
        !f->hi || !f->rep || !f->dlo || !f->dhi || !f->w13q || !f->w2q)
        return MF_FAIL(err, MF_ENOMEM, "reference: out of memory (fp8 buffers)");
    return MF_OK;
}

static mf_status mxfp4_init(mf_ref_ctx *ctx, mf_error *err) {
    const mf_moe_params *p = &ctx->p;
    size_t H = (size_t)p->H, I = (size_t)p->I, EL = (size_t)p->E_local, M = H > I ? H : I;
    ctx->mx_w13 = calloc(EL * 2 * I * H + 1, sizeof(uint16_t));
    ctx->mx_w2 = calloc(EL * H * I + 1, sizeof(uint16_t));
    uint8_t *packed = malloc(M / 2 + 1), *scales = malloc(M / 32 + 2);
    if (!ctx->mx_w13 || !ctx->mx_w2 || !packed || !scales) {
        free(packed);
        free(scales);
        return MF_FAIL(err, MF_ENOMEM, "reference: out of memory");
    }
    /* the values the kernel gets: the canonical packing of the case's weights, dequantized */
    for (size_t e = 0; e < EL; e++) {
        if (ctx->x.expert_state && ctx->x.expert_state[e] != MF_REF_EXPERT_READY) continue;
        for (size_t r = e * 2 * I; r < (e + 1) * 2 * I; r++) {
            mf_mxfp4_pack_bf16(ctx->x.w13 + r * H, H, packed, scales);
            mf_mxfp4_dequant_bf16(packed, scales, H, ctx->mx_w13 + r * H);
        }
        for (size_t r = e * H; r < (e + 1) * H; r++) {
            mf_mxfp4_pack_bf16(ctx->x.w2 + r * I, I, packed, scales);
            mf_mxfp4_dequant_bf16(packed, scales, I, ctx->mx_w2 + r * I);
        }
    }
    free(packed);
    free(scales);
    ctx->x.w13 = ctx->mx_w13;
    ctx->x.w2 = ctx->mx_w2;
    return MF_OK;
}

static mf_status quant_formats_init(mf_ref_ctx *ctx, mf_error *err) {
    switch (ctx->p.weight_format) {
    case MF_WFMT_BF16:
        return MF_OK;
    case MF_WFMT_FP8_BLOCK:
        return fp8_init(ctx, err);
    case MF_WFMT_MXFP4:
        return mxfp4_init(ctx, err);
    default:
        return MF_FAIL(err, MF_EINVAL, "weight_format %d unknown", (int)ctx->p.weight_format);
    }
}

/* Quantizes one row of n values known as [lo, hi] with representative rep, per block_k columns:
 * codes q, scales s, radii delta of the dequantized values. Returns 1 if a group's scale
 * candidates were more than the quantizer enumerates (undecided). */
static int fp8_quantize_row(fp8_state *f, const mf_fp8_quant *qz, int bk, int n, const float *lo,
                            const float *hi, const float *rep, uint8_t *q, float *s,
                            double *delta) {
    int undecided = 0;
    for (int b = 0, j0 = 0; j0 < n; b++, j0 += bk) {
        int m = n - j0 < bk ? n - j0 : bk;
        mf_fp8_group_iv g;
        mf_fp8_quant_group_iv(qz, lo + j0, hi + j0, rep + j0, m, &g, q + j0, f->dlo, f->dhi);
        undecided |= g.scales_clipped;
        s[b] = g.rep_s;
        for (int j = 0; j < m; j++) {
            double v = mf_fp8_decode(MF_FP8_E4M3, q[j0 + j]) * (double)g.rep_s;
            double d1 = v - f->dlo[j], d2 = f->dhi[j] - v;
            delta[j0 + j] = d1 > d2 ? d1 : d2;
        }
    }
    return undecided;
}

static void to_mf_dot(const mf_fp8_dot_out *d8, mf_dot *d) {
    d->hi = d8->hi;
    d->lo = d8->lo;
    d->err = d8->err;
    d->radius = d8->radius;
    d->abs_sum = d8->abs_sum;
    d->flags = (d8->nonfinite ? MF_DOT_NONFINITE : 0) | (d8->may_overflow ? MF_DOT_MAY_OVERFLOW : 0);
}

static void fill_slot(expert_slot *s, int H, uint8_t flag) {
    for (int c = 0; c < H; c++) {
        s->o_hi[c] = flag == MF_ELEM_UNDECIDED ? 0 : NAN;
        s->o_lo[c] = 0;
        s->o_rad[c] = INFINITY;
        s->flags[c] = flag;
    }
}

/* fp8_act_fused: the fp32 enclosure [lo, hi] and representative of silu(g) u as vLLM's
 * silu_and_mul_per_block_quant computes it from the bf16 GEMM1 outputs (no bf16 rounding of
 * silu or of the product). Returns 1 where the activation is unconstrained. */
static int fused_silu_mul(mf_ref_ctx *ctx, const mf_dot *dg, const mf_dot *du, float *lo,
                          float *hi, float *rep) {
    if ((dg->flags | du->flags) & (MF_DOT_NONFINITE | MF_DOT_MAY_OVERFLOW)) return 1;
    double dlt;
    uint16_t g = round_point(ctx, dg->hi, dg->lo, dg->err, dg->radius, &dlt), g_lo, g_hi;
    uint16_t u = round_point(ctx, du->hi, du->lo, du->err, du->radius, &dlt), u_lo, u_hi;
    bf16_range(dg->hi, dg->radius, fabs(dg->lo) + dg->err, &g_lo, &g_hi);
    bf16_range(du->hi, du->radius, fabs(du->lo) + du->err, &u_lo, &u_hi);
    if (!mf_bf16_is_finite(u_lo) || !mf_bf16_is_finite(u_hi)) return 1;
    ctx->st.act_elems++;
    return mf_silu_mul_f32_range(g_lo, g_hi, mf_bf16_to_f32(u_lo), mf_bf16_to_f32(u_hi),
                                 ctx->c->exp_ulps, g, mf_bf16_to_f32(u), lo, hi, rep) != 0;
}

static void compute_expert_fp8(mf_ref_ctx *ctx, int le, expert_slot *s) {
    const mf_moe_params *p = &ctx->p;
    fp8_state *f = ctx->fp8;
    int H = p->H, I = p->I, bn = mf_block_n(p), bk = mf_block_k(p);
    if (f->t != ctx->cur_t) {
        for (int h = 0; h < H; h++) f->lo[h] = f->hi[h] = f->rep[h] = (float)ctx->xd[h];
        f->x_undecided =
            fp8_quantize_row(f, &f->qz, bk, H, f->lo, f->hi, f->rep, f->xq, f->xs, f->xdelta);
        f->t = ctx->cur_t;
    }
    ctx->st.experts++;
    if (f->x_undecided) {
        fill_slot(s, H, MF_ELEM_UNDECIDED);
        return;
    }
    int x_delta = 0;
    for (int h = 0; h < H; h++) x_delta |= f->xdelta[h] != 0;
    mf_e4m3_from_bf16(ctx->x.w13 + (size_t)le * 2 * I * H, (size_t)2 * I * H, f->w13q);
    mf_e4m3_from_bf16(ctx->x.w2 + (size_t)le * H * I, (size_t)H * I, f->w2q);
    const uint8_t *w13 = f->w13q;
    const float *s13 = ctx->x.w13_s + (size_t)le * ((2 * I + bn - 1) / bn) * f->nbh;
    int unconstrained = 0;
    for (int j = 0; j < I; j++) {
        int rg = mf_gate_row(p, j), ru = mf_up_row(p, j);
        mf_fp8_dot_out g8, u8;
        mf_fp8_dot_acc(f->ws, f->xq, f->xs, x_delta ? f->xdelta : NULL, w13 + (size_t)rg * H,
                       s13 + (size_t)(rg / bn) * f->nbh, (size_t)H, bk, &ctx->c->fp8_gemm, &g8);
        mf_fp8_dot_acc(f->ws, f->xq, f->xs, x_delta ? f->xdelta : NULL, w13 + (size_t)ru * H,
                       s13 + (size_t)(ru / bn) * f->nbh, (size_t)H, bk, &ctx->c->fp8_gemm, &u8);
        mf_dot dg, du;
        to_mf_dot(&g8, &dg);
        to_mf_dot(&u8, &du);
        if (ctx->c->fp8_act_fused) {
            unconstrained |= fused_silu_mul(ctx, &dg, &du, &f->lo[j], &f->hi[j], &f->rep[j]);
            if (unconstrained) break;
            continue;
        }
        act_out a;
        activation(ctx, &dg, &du, &a);
        unconstrained |= a.unconstrained;
        if (a.unconstrained) break;
        f->lo[j] = mf_bf16_to_f32(a.lo);
        f->hi[j] = mf_bf16_to_f32(a.hi);
        f->rep[j] = mf_bf16_to_f32(a.h);
    }
    if (unconstrained) {
        fill_slot(s, H, MF_ELEM_UNCONSTRAINED);
        return;
    }
    if (fp8_quantize_row(f, &f->qh, bk, I, f->lo, f->hi, f->rep, f->hq, f->hs, f->hdelta)) {
        fill_slot(s, H, MF_ELEM_UNDECIDED);
        return;
    }
    int h_delta = 0;
    for (int j = 0; j < I; j++) h_delta |= f->hdelta[j] != 0;
    const uint8_t *w2 = f->w2q;
    const float *s2 = ctx->x.w2_s + (size_t)le * ((H + bn - 1) / bn) * f->nbi;
    for (int c = 0; c < H; c++) {
        if (!ctx->col_mask[c]) {
            s->o_hi[c] = s->o_lo[c] = s->o_rad[c] = 0;
            s->flags[c] = MF_ELEM_NOT_CHECKED;
            continue;
        }
        mf_fp8_dot_out d;
        mf_fp8_dot_acc(f->ws, f->hq, f->hs, h_delta ? f->hdelta : NULL, w2 + (size_t)c * I,
                       s2 + (size_t)(c / bn) * f->nbi, (size_t)I, bk, &ctx->c->fp8_gemm, &d);
        s->flags[c] = (d.nonfinite || d.may_overflow) ? MF_ELEM_UNCONSTRAINED : 0;
        s->o_hi[c] = d.hi;
        s->o_lo[c] = d.lo;
        s->o_rad[c] = d.radius;
    }
}
