/* verdict.c: stage-by-stage verdicts of a kernel's results against the exact reference (see
 * verdict.h). */
#include "verdict.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "bf16.h"
#include "route.h"
#include "../kernels/mutants.h"

/* the mutant zoo states expected stages with these bits (mf_verdict_stages gives them) */
_Static_assert(MF_STG_IDS == 1u << MF_STAGE_ROUTE_IDS &&
                   MF_STG_WEIGHTS == 1u << MF_STAGE_ROUTE_WEIGHTS &&
                   MF_STG_OUTPUT == 1u << MF_STAGE_OUTPUT &&
                   MF_STG_NONFINITE == 1u << MF_STAGE_NONFINITE &&
                   MF_STG_UNWRITTEN == 1u << MF_STAGE_UNWRITTEN &&
                   MF_STG_GUARD == 1u << MF_STAGE_GUARD &&
                   MF_STG_DETERMINISM == 1u << MF_STAGE_DETERMINISM,
               "the stage bits of kernels/mutants.h follow mf_stage");

const char *mf_stage_name(mf_stage s) {
    static const char *n[] = {"routing-ids", "routing-weights", "output", "nonfinite",
                              "unwritten",   "guard",           "determinism"};
    return (unsigned)s < MF_STAGE_COUNT ? n[s] : "?";
}

void mf_check_opts_default(mf_check_opts *o) {
    memset(o, 0, sizeof *o);
    o->determinism = 1;
    o->attribute = 1;
}

void mf_fmt_value(char *buf, size_t n, double v) {
    if (isnan(v)) snprintf(buf, n, "NaN");
    else if (isinf(v)) snprintf(buf, n, "%sInf", v < 0 ? "-" : "+");
    else snprintf(buf, n, "%a (%.9g)", v, v);
}

static void add_mismatch(mf_verdict *v, const mf_mismatch *m) {
    v->n_bad[m->stage]++;
    v->pass = 0;
    /* keep the first few of each stage: at most 4 per stage, MF_MAX_REPORTED in all */
    int same = 0;
    for (int i = 0; i < v->n_rep; i++) same += v->rep[i].stage == m->stage;
    if (same < 4 && v->n_rep < MF_MAX_REPORTED) v->rep[v->n_rep++] = *m;
}

static int elem_ok(uint16_t y, uint16_t lo, uint16_t hi, uint8_t fl) {
    if (fl & (MF_ELEM_NOT_CHECKED | MF_ELEM_UNDECIDED)) return 1;
    if (fl & MF_ELEM_NAN_REQUIRED) return mf_bf16_is_nan(y);
    if (fl & MF_ELEM_UNCONSTRAINED) return 1;
    if (mf_bf16_is_nan(y)) return (fl & MF_ELEM_NAN_OK) != 0;
    float yv = mf_bf16_to_f32(y);
    return mf_bf16_to_f32(lo) <= yv && yv <= mf_bf16_to_f32(hi);
}

typedef struct row_buf {
    double *z, *rad;
    uint16_t *lo, *hi;
    uint8_t *flags;
} row_buf;

static int row_alloc(row_buf *r, int H) {
    r->z = malloc(sizeof(double) * H);
    r->rad = malloc(sizeof(double) * H);
    r->lo = malloc(2 * (size_t)H);
    r->hi = malloc(2 * (size_t)H);
    r->flags = malloc((size_t)H);
    return r->z && r->rad && r->lo && r->hi && r->flags;
}

static void row_free(row_buf *r) {
    free(r->z);
    free(r->rad);
    free(r->lo);
    free(r->hi);
    free(r->flags);
}

static int count_bad(const row_buf *rb, const uint16_t *y, int H) {
    int bad = 0;
    for (int c = 0; c < H; c++) bad += !elem_ok(y[c], rb->lo[c], rb->hi[c], rb->flags[c]);
    return bad;
}

/* Seeded sample of columns: always the first and the last, the rest spread by a hash. */
static int *sample_cols(int H, int n, uint64_t seed) {
    int *cols = malloc(sizeof(int) * (size_t)n);
    unsigned char *taken = calloc((size_t)H, 1);
    if (!cols || !taken) {
        free(cols);
        free(taken);
        return NULL;
    }
    int m = 0;
    cols[m++] = 0, taken[0] = 1;
    if (H > 1) cols[m++] = H - 1, taken[H - 1] = 1;
    uint64_t s = seed ? seed : 0x5eed;
    while (m < n) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        int c = (int)((s >> 33) % (uint64_t)H);
        if (!taken[c]) taken[c] = 1, cols[m++] = c;
    }
    free(taken);
    return cols;
}

/* ---- stages that need no reference: guard, unwritten, determinism ---- */

static void check_memory(const mf_moe_params *p, const mf_run_result *r, mf_verdict *v) {
    if (r->guard_broken) {
        mf_mismatch m = {.stage = MF_STAGE_GUARD, .token = -1, .col = (int)r->guard_first};
        snprintf(m.note, sizeof m.note, "write outside the output: element offset %ld",
                 r->guard_first);
        add_mismatch(v, &m);
    }
    if (r->unwritten) {
        mf_mismatch m = {.stage = MF_STAGE_UNWRITTEN, .token = (int)(r->first_unwritten / p->H),
                         .col = (int)(r->first_unwritten % p->H), .got = MF_POISON_BF16};
        snprintf(m.note, sizeof m.note, "%zu output elements never written (first shown)",
                 r->unwritten);
        v->n_bad[MF_STAGE_UNWRITTEN] += r->unwritten - 1;
        add_mismatch(v, &m);
    }
}

static void check_determinism(const mf_moe_params *p, const mf_run_result *r,
                              const mf_run_result *r2, mf_verdict *v) {
    size_t n_out = (size_t)p->T * p->H, n_sel = (size_t)p->T * p->top_k;
    for (size_t i = 0; i < n_out; i++)
        if (r->out[i] != r2->out[i]) {
            mf_mismatch m = {.stage = MF_STAGE_DETERMINISM, .token = (int)(i / p->H),
                             .col = (int)(i % p->H), .got = r2->out[i], .lo = r->out[i],
                             .hi = r->out[i]};
            m.got_d = mf_bf16_to_f32(r2->out[i]);
            m.want = mf_bf16_to_f32(r->out[i]);
            snprintf(m.note, sizeof m.note, "second run wrote 0x%04x, first 0x%04x", r2->out[i],
                     r->out[i]);
            add_mismatch(v, &m);
        }
    if (r->ids && r2->ids)
        for (size_t i = 0; i < n_sel; i++)
            if (r->ids[i] != r2->ids[i] ||
                mf_f32_bits(r->weights[i]) != mf_f32_bits(r2->weights[i])) {
                mf_mismatch m = {.stage = MF_STAGE_DETERMINISM, .token = (int)(i / p->top_k),
                                 .col = (int)(i % p->top_k)};
                snprintf(m.note, sizeof m.note,
                         "routing slot differs between runs: id %d weight %a vs id %d weight %a",
                         r->ids[i], (double)r->weights[i], r2->ids[i], (double)r2->weights[i]);
                add_mismatch(v, &m);
            }
}

/* ---- per-token stages against the reference: routing ids, routing weights, output ---- */

/* What the reference side of one check needs, allocated once for all tokens. A kernel that
 * reports no ids is checked against every admissible selection of a token, up to max_sel (more
 * leave the token undecided); the experts' outputs are cached per token, so each further
 * selection costs one combine. */
typedef struct token_ref {
    const mf_problem *pb;
    const mf_contract *c;
    mf_routing rt;
    mf_ref_ctx *ctx;
    int owns_ctx; /* 0: ctx is another token_ref's (mf_check_results) */
    int *cols;
    int max_sel;
    row_buf rows[2]; /* the selection being tried and the closest so far */
    int32_t *sels;   /* [max_sel][top_k] */
    mf_weights w[2];
} token_ref;

static void token_ref_free(token_ref *tr) {
    for (int i = 0; i < 2; i++) row_free(&tr->rows[i]);
    free(tr->sels);
    free(tr->cols);
    if (tr->owns_ctx) mf_ref_ctx_free(tr->ctx);
    mf_routing_free(&tr->rt);
}

static mf_status token_ref_init(token_ref *tr, const mf_problem *pb, const mf_contract *c,
                                const mf_check_opts *o, mf_ref_ctx *shared, mf_verdict *v,
                                mf_error *err) {
    const mf_moe_params *p = &pb->p;
    memset(tr, 0, sizeof *tr);
    tr->pb = pb;
    tr->c = c;
    MF_TRY(mf_ref_route(p, &pb->t, c, &tr->rt, err));
    mf_ref_options ro = {.strict = o->strict, .profile = o->profile};
    v->cols_verified = p->H;
    if (o->max_cols > 0 && o->max_cols < p->H) {
        tr->cols = sample_cols(p->H, o->max_cols, o->sample_seed);
        if (!tr->cols) return MF_FAIL(err, MF_ENOMEM, "out of memory");
        ro.cols = tr->cols;
        ro.ncols = o->max_cols;
        v->cols_verified = o->max_cols;
    }
    tr->ctx = shared ? shared : mf_ref_ctx_new(p, &pb->t, c, &ro, err);
    if (!tr->ctx) return MF_EINVAL;
    tr->owns_ctx = shared == NULL;
    tr->max_sel = o->max_selections > 0 ? o->max_selections : MF_CHECK_MAX_SELECTIONS;
    tr->sels = malloc(sizeof(int32_t) * (size_t)tr->max_sel * (size_t)p->top_k);
    int ok = tr->sels != NULL;
    for (int i = 0; i < 2; i++) ok &= row_alloc(&tr->rows[i], p->H);
    return ok ? MF_OK : MF_FAIL(err, MF_ENOMEM, "out of memory");
}

/* Routing ids of token t: the kernel's selection if it reports one (an inadmissible one is a
 * mismatch), else the admissible selections. Returns how many selections tr->sels holds: 0 when
 * the token constrains no output element, -1 when it cannot be checked further. */
static int check_route_ids(token_ref *tr, const mf_run_result *r, int t, mf_verdict *v) {
    const mf_moe_params *p = &tr->pb->p;
    const mf_routing *rt = &tr->rt;
    int k = p->top_k;
    v->experts_ambiguous += (unsigned long long)rt->n_ambiguous[t];
    v->groups_ambiguous += (unsigned long long)rt->n_group_ambiguous[t];
    int amb = rt->n_ambiguous[t] > 0 || rt->n_group_ambiguous[t] > 0;
    if (rt->invariant_only[t]) v->tokens_invariant++;
    else v->tokens_ambiguous += amb;
    if (r->ids) {
        const int32_t *ids = r->ids + (size_t)t * k;
        char why[320];
        if (!mf_ref_selection_admissible(rt, p, t, ids, why, sizeof why)) {
            mf_mismatch m = {.stage = MF_STAGE_ROUTE_IDS, .token = t, .col = -1};
            snprintf(m.note, sizeof m.note, "%s", why);
            add_mismatch(v, &m);
            return -1;
        }
        if (rt->invariant_only[t]) return 0;
        memcpy(tr->sels, ids, sizeof(int32_t) * (size_t)k);
        return 1;
    }
    if (rt->invariant_only[t]) return 0;
    int nsel = mf_ref_enumerate_selections(rt, p, t, tr->sels, tr->max_sel);
    if (nsel < 0) v->tokens_undecided++;
    return nsel;
}

/* The reference rows of token t's selections, up to the first the kernel's row y fits (a kernel
 * computes a token with one selection, so the row must fit one: stronger than the union over
 * selections element by element, and as sound). *best is 1 when the closest (fewest inadmissible
 * elements) is in tr->rows[1] and tr->w[1], else 0; *best_sel its index. */
static mf_status token_rows(token_ref *tr, int t, int nsel, const uint16_t *y, int *best,
                            int *best_sel, int *best_bad_out, mf_error *err) {
    const mf_moe_params *p = &tr->pb->p;
    int k = p->top_k, best_bad = -1, cur = 0;
    *best = 0;
    *best_sel = 0;
    for (int s = 0; s < nsel; s++) {
        const int32_t *sel = tr->sels + (size_t)s * k;
        MF_TRY(mf_ref_weights(&tr->rt, p, tr->c, t, sel, &tr->w[cur], err));
        row_buf *rb = &tr->rows[cur];
        mf_ref_row row = {rb->z, rb->rad, rb->lo, rb->hi, rb->flags};
        MF_TRY(mf_ref_token_output(tr->ctx, t, sel, &tr->w[cur], &row, err));
        int bad = count_bad(rb, y, p->H);
        if (best_bad < 0 || bad < best_bad) {
            *best = cur, *best_sel = s, best_bad = bad;
            cur = 1 - cur; /* keep the closest, try the next in the other buffer */
        }
        if (bad == 0) break;
    }
    *best_bad_out = best_bad;
    return MF_OK;
}

/* Routing weights the kernel reports for token t against selection sel's enclosures w. */
static void check_route_weights(const mf_moe_params *p, int t, const float *rw, const int32_t *sel,
                                const mf_weights *w, mf_verdict *v) {
    for (int i = 0; i < p->top_k; i++) {
        double wk = rw[i], want = w->w_hi[i], rad = w->rad[i];
        /* a NaN reported where the given weight (pre-routed input) is NaN is that weight */
        int ok = isnan(wk) ? (w->nan_ok || (p->preroute != MF_PREROUTE_NONE && isnan(want)))
                           : (wk >= w->lo[i] && wk <= w->hi[i]);
        double util = isnan(wk) ? (ok ? 0 : INFINITY)
                                : (rad > 0 ? fabs(wk - want) / rad : (wk == want ? 0 : INFINITY));
        if (ok && util > v->max_util_w) v->max_util_w = util;
        if (!ok) {
            mf_mismatch m = {.stage = MF_STAGE_ROUTE_WEIGHTS, .token = t, .col = i,
                             .got_d = wk, .want = want, .rad = rad, .util = util};
            snprintf(m.note, sizeof m.note, "slot %d (expert %d)", i, sel[i]);
            add_mismatch(v, &m);
            if (util > v->max_util_w) v->max_util_w = util;
        }
    }
}

/* Output row y of token t against the reference row rb; degenerate: a weight enclosure reaches
 * 0, so the row's utilisation is not informative. nsel > 1: rb is the closest of nsel. */
static void check_output(const mf_moe_params *p, int t, const uint16_t *y, const row_buf *rb,
                         int nsel, int degenerate, mf_verdict *v) {
    for (int col = 0; col < p->H; col++) {
        uint8_t fl = rb->flags[col];
        if (fl & MF_ELEM_NOT_CHECKED) continue;
        if ((fl & MF_ELEM_UNCONSTRAINED) && !(fl & MF_ELEM_NAN_REQUIRED)) {
            v->elems_unconstrained++;
            continue;
        }
        v->elems_checked++;
        if (fl & MF_ELEM_NAN_OK) v->elems_nan_ok++;
        uint16_t yb = y[col];
        double util = mf_ref_utilisation(rb->z[col], rb->rad[col], yb);
        int ok = elem_ok(yb, rb->lo[col], rb->hi[col], fl);
        if (ok && !mf_bf16_is_nan(yb) && util > v->max_util_out) {
            v->max_util_out = util;
            v->max_util_tok = t;
            v->max_util_col = col;
        }
        if (ok && !degenerate && !mf_bf16_is_nan(yb) && 2 * rb->rad[col] < fabs(rb->z[col]) &&
            util > v->max_util_informative)
            v->max_util_informative = util;
        if (!ok) {
            int nonfin = !mf_bf16_is_finite(yb);
            mf_mismatch m = {.stage = nonfin ? MF_STAGE_NONFINITE : MF_STAGE_OUTPUT,
                             .token = t, .col = col, .got = yb, .lo = rb->lo[col],
                             .hi = rb->hi[col], .got_d = mf_bf16_to_f32(yb),
                             .want = rb->z[col], .rad = rb->rad[col], .util = util};
            if (fl & MF_ELEM_NAN_REQUIRED)
                snprintf(m.note, sizeof m.note, "a NaN given weight on a local slot: NaN expected");
            else if (nsel > 1)
                snprintf(m.note, sizeof m.note, "closest of %d admissible selections", nsel);
            add_mismatch(v, &m);
            if (util > v->max_util_out && !isinf(util)) {
                v->max_util_out = util;
                v->max_util_tok = t;
                v->max_util_col = col;
            }
        }
    }
}

/* Every reference stage of token t. */
static mf_status check_token(token_ref *tr, const mf_run_result *r, int t, mf_verdict *v,
                             mf_error *err) {
    const mf_moe_params *p = &tr->pb->p;
    int k = p->top_k, H = p->H;
    const uint16_t *y = r->out + (size_t)t * H;
    int nsel = check_route_ids(tr, r, t, v);
    if (nsel < 0) return MF_OK;
    if (nsel == 0) {
        v->elems_unconstrained += (unsigned long long)H;
        return MF_OK;
    }
    int best, best_sel, best_bad;
    MF_TRY(token_rows(tr, t, nsel, y, &best, &best_sel, &best_bad, err));
    const int32_t *sel = tr->sels + (size_t)best_sel * k;
    const mf_weights *w = &tr->w[best];
    if (nsel > MF_CHECK_MANY_SELECTIONS) {
        v->tokens_many_selections++;
        v->tokens_many_rejected += best_bad > 0;
    }
    const int32_t *map = tr->pb->t.expert_map;
    int any_local = 0;
    for (int i = 0; i < k; i++) any_local |= mf_is_local(p, map, sel[i]);
    v->tokens_no_local += !any_local;
    if (r->weights) check_route_weights(p, t, r->weights + (size_t)t * k, sel, w, v);
    /* a weight whose enclosure reaches 0 (underflowed scores) saturates its radius */
    int degenerate = 0;
    for (int i = 0; i < k; i++)
        degenerate |= mf_is_local(p, map, sel[i]) && w->lo[i] <= 0 && w->w_hi[i] > 0;
    check_output(p, t, y, &tr->rows[best], nsel, degenerate, v);
    return MF_OK;
}

mf_status mf_check_result(const mf_problem *pb, const mf_contract *c, const mf_run_result *r,
                          const mf_run_result *r2, const mf_check_opts *o, mf_verdict *v,
                          mf_error *err) {
    const mf_moe_params *p = &pb->p;
    double t_begin = mf_now_s();
    v->pass = 1;
    snprintf(v->contract, sizeof v->contract, "%s", c->name);
    v->tokens = p->T;
    v->cols_total = p->H;
    check_memory(p, r, v);
    if (r2) check_determinism(p, r, r2, v);
    token_ref tr;
    mf_status st = token_ref_init(&tr, pb, c, o, NULL, v, err);
    for (int t = 0; t < p->T && st == MF_OK; t++) st = check_token(&tr, r, t, v, err);
    v->ref_s = mf_now_s() - t_begin;
    if (tr.ctx) mf_ref_ctx_stats(tr.ctx, &v->ref); /* after the timing: a profile replays */
    token_ref_free(&tr);
    return st;
}

/* The problems may differ in rsf alone: the experts' outputs (the reference's cost) do not
 * depend on it, so one reference context serves them all, token by token. */
static int same_but_rsf(const mf_problem *a, const mf_problem *b) {
    mf_moe_params x = a->p, y = b->p;
    x.rsf = y.rsf = 1.0f;
    return !memcmp(&x, &y, sizeof x) && !memcmp(&a->t, &b->t, sizeof a->t);
}

mf_status mf_check_results(const mf_problem *const *pbs, const mf_run_result *const *rs, int n,
                           const mf_contract *c, const mf_check_opts *o, mf_verdict *vs,
                           mf_error *err) {
    if (n < 1) return MF_FAIL(err, MF_EINVAL, "mf_check_results: no result");
    for (int i = 1; i < n; i++)
        if (!same_but_rsf(pbs[0], pbs[i]))
            return MF_FAIL(err, MF_EINVAL,
                           "mf_check_results: problem %d differs from the first beyond rsf", i);
    token_ref *tr = calloc((size_t)n, sizeof *tr);
    if (!tr) return MF_FAIL(err, MF_ENOMEM, "out of memory");
    mf_status st = MF_OK;
    int ready = 0;
    for (int i = 0; i < n && st == MF_OK; i++, ready++) {
        mf_verdict *v = &vs[i];
        memset(v, 0, sizeof *v);
        v->pass = 1;
        snprintf(v->contract, sizeof v->contract, "%s", c->name);
        v->tokens = pbs[i]->p.T;
        v->cols_total = pbs[i]->p.H;
        check_memory(&pbs[i]->p, rs[i], v);
        st = token_ref_init(&tr[i], pbs[i], c, o, i ? tr[0].ctx : NULL, v, err);
    }
    for (int t = 0; t < pbs[0]->p.T && st == MF_OK; t++)
        for (int i = 0; i < n && st == MF_OK; i++) st = check_token(&tr[i], rs[i], t, &vs[i], err);
    for (int i = ready - 1; i >= 0; i--) token_ref_free(&tr[i]); /* tr[0] owns the context */
    free(tr);
    return st;
}

/* ---- printing ---- */

void mf_verdict_print(const mf_verdict *v, FILE *f) {
    if (v->unsupported) {
        fprintf(f, "unsupported by the kernel: %s\n", v->unsupported_reason);
        return;
    }
    for (int i = 0; i < v->n_rep; i++) {
        const mf_mismatch *m = &v->rep[i];
        char got[96], want[96], rad[64];
        switch (m->stage) {
        case MF_STAGE_OUTPUT:
        case MF_STAGE_NONFINITE:
            mf_fmt_value(got, sizeof got, m->got_d);
            mf_fmt_value(want, sizeof want, m->want);
            snprintf(rad, sizeof rad, "%a", m->rad);
            fprintf(f, "  %-15s [tok %d, col %d] got %s want %s +- %s", mf_stage_name(m->stage),
                    m->token, m->col, got, want, rad);
            if (isinf(m->util)) fprintf(f, ": outside the admissible set");
            else fprintf(f, ": %.3gx the allowed error", m->util);
            fprintf(f, " (admissible bf16 [%a, %a])", (double)mf_bf16_to_f32(m->lo),
                    (double)mf_bf16_to_f32(m->hi));
            if (m->note[0]) fprintf(f, "; %s", m->note);
            fprintf(f, "\n");
            break;
        case MF_STAGE_ROUTE_WEIGHTS:
            mf_fmt_value(got, sizeof got, m->got_d);
            mf_fmt_value(want, sizeof want, m->want);
            fprintf(f, "  %-15s [tok %d, %s] got %s want %s +- %a: %.3gx the allowed error\n",
                    mf_stage_name(m->stage), m->token, m->note, got, want, m->rad, m->util);
            break;
        default:
            if (m->token >= 0)
                fprintf(f, "  %-15s [tok %d] %s\n", mf_stage_name(m->stage), m->token, m->note);
            else
                fprintf(f, "  %-15s %s\n", mf_stage_name(m->stage), m->note);
        }
    }
    int any = 0;
    for (int s = 0; s < MF_STAGE_COUNT; s++) any |= v->n_bad[s] != 0;
    if (any) {
        fprintf(f, "  mismatches:");
        for (int s = 0; s < MF_STAGE_COUNT; s++)
            if (v->n_bad[s]) fprintf(f, " %s %llu", mf_stage_name(s), v->n_bad[s]);
        fprintf(f, "\n");
    }
    if (v->has_meta) mf_meta_print(&v->meta, f);
    if (v->has_attribution) fprintf(f, "  suspected: %s\n", v->attr.text);
    fprintf(f,
            "  contract %s; %llu elements checked (%d of %d columns), %llu unconstrained; max "
            "utilisation %.3g (tok %d, col %d; %.3g where the radius is below |z|/2), weights "
            "%.3g; tokens %d: %d ambiguous, %d undecided, %d NaN/Inf rows\n",
            v->contract, v->elems_checked, v->cols_verified, v->cols_total,
            v->elems_unconstrained, v->max_util_out, v->max_util_tok, v->max_util_col,
            v->max_util_informative, v->max_util_w, v->tokens, v->tokens_ambiguous,
            v->tokens_undecided, v->tokens_invariant);
}

mf_status mf_reference_outputs(const mf_problem *pb, const mf_contract *c, double *z,
                               uint8_t *valid, mf_error *err) {
    const mf_moe_params *p = &pb->p;
    int T = p->T, H = p->H, k = p->top_k;
    mf_routing rt;
    MF_TRY(mf_ref_route(p, &pb->t, c, &rt, err));
    mf_ref_options ro = {0};
    mf_ref_ctx *ctx = mf_ref_ctx_new(p, &pb->t, c, &ro, err);
    row_buf rb;
    memset(&rb, 0, sizeof rb);
    mf_status st = MF_OK;
    if (!ctx || !row_alloc(&rb, H)) st = ctx ? MF_FAIL(err, MF_ENOMEM, "out of memory") : MF_EINVAL;
    for (int t = 0; t < T && st == MF_OK; t++) {
        valid[t] = !rt.invariant_only[t] && !rt.n_ambiguous[t] && !rt.n_group_ambiguous[t];
        if (!valid[t]) continue;
        const int32_t *ids = (const int32_t *)&rt.ref_ids[(size_t)t * k];
        mf_weights w;
        if ((st = mf_ref_weights(&rt, p, c, t, ids, &w, err)) != MF_OK) break;
        mf_ref_row row = {z + (size_t)t * H, rb.rad, rb.lo, rb.hi, rb.flags};
        st = mf_ref_token_output(ctx, t, ids, &w, &row, err);
        for (int col = 0; col < H && st == MF_OK; col++)
            if (rb.flags[col] & MF_ELEM_UNCONSTRAINED) valid[t] = 0;
    }
    row_free(&rb);
    mf_ref_ctx_free(ctx);
    mf_routing_free(&rt);
    return st;
}

mf_status mf_check_result_fresh(const mf_problem *pb, const mf_contract *c,
                                const mf_run_result *r, const mf_run_result *r2,
                                const mf_check_opts *o, mf_verdict *v, mf_error *err) {
    memset(v, 0, sizeof *v);
    return mf_check_result(pb, c, r, r2, o, v, err);
}

unsigned mf_verdict_stages(const mf_verdict *v) {
    unsigned s = 0;
    for (int i = 0; i < MF_STAGE_COUNT; i++)
        if (v->n_bad[i]) s |= 1u << i;
    return s;
}

void mf_stages_format(unsigned stages, char *buf, size_t n) {
    size_t l = 0;
    buf[0] = 0;
    for (int i = 0; i < MF_STAGE_COUNT && l < n; i++)
        if (stages & (1u << i))
            l += (size_t)snprintf(buf + l, n - l, "%s%s", l ? "+" : "", mf_stage_name((mf_stage)i));
    if (!buf[0]) snprintf(buf, n, "-");
}

int mf_results_equal(const mf_problem *pb, const mf_run_result *a, const mf_run_result *b) {
    return mf_run_result_equal(a, b, (size_t)pb->p.T * pb->p.H, (size_t)pb->p.T * pb->p.top_k);
}
