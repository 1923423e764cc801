/* metamorphic.c: tolerance-free relations between kernel runs (see metamorphic.h). */
#include "metamorphic.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bf16.h"
#include "forward.h"
#include "route.h"

/* elements where exact comparisons are meaningful */
static int comparable(uint16_t a) {
    if (!mf_bf16_is_finite(a)) return 0;
    float v = fabsf(mf_bf16_to_f32(a));
    return v == 0.0f || v >= 0x1p-124f;
}

static void violation(mf_meta_result *m, mf_meta rel, int t, int col, uint16_t got, uint16_t want,
                      const char *what) {
    if (m->violations[rel]++ == 0) {
        m->n_violated++;
        snprintf(m->first[rel], sizeof m->first[rel], "[tok %d, col %d] %s: got %a, want %a", t,
                 col, what, (double)mf_bf16_to_f32(got), (double)mf_bf16_to_f32(want));
    }
}

/* the reference selection of each token, when unambiguous (else -1 in slot 0) */
static mf_status selections(const mf_problem *pb, const mf_contract *c, int32_t *sel,
                            mf_error *err) {
    mf_routing rt;
    MF_TRY(mf_ref_route(&pb->p, &pb->t, c, &rt, err));
    int T = pb->p.T, k = pb->p.top_k;
    for (int t = 0; t < T; t++) {
        int ok = !rt.invariant_only[t] && rt.n_ambiguous[t] == 0 && rt.n_group_ambiguous[t] == 0;
        for (int i = 0; i < k; i++)
            sel[(size_t)t * k + i] = ok ? rt.ref_ids[(size_t)t * k + i] : -1;
        if (ok) {
            const int32_t *ids = &sel[(size_t)t * k];
            size_t o = (size_t)t * pb->p.E;
            /* the combine adds the experts in slot (key) order: if two selected keys may compare
             * either way in a kernel, the order, and so the rounding, is not determined */
            for (int i = 0; i + 1 < k && sel[(size_t)t * k] >= 0; i++)
                if (rt.key_lo[o + ids[i]] <= rt.key_hi[o + ids[i + 1]]) sel[(size_t)t * k] = -3;
            /* an exact tie with a lower index decides by index, which relabelling changes */
            for (int i = 0; i < k && sel[(size_t)t * k] >= 0; i++)
                if (rt.tie[o + ids[i]] != ids[i]) sel[(size_t)t * k] = -2;
        }
    }
    mf_routing_free(&rt);
    return MF_OK;
}

/* Elements where doubling rsf must double the output bit for bit: every weight and every
 * product w * o of the element lies well inside the fp32 normal range (a product that rounds in
 * the subnormal range, or overflows, does not commute with the scaling; sums are exact there). */
static mf_status scaling_safe(const mf_problem *pb, const mf_contract *c, const mf_run_result *r0,
                              uint8_t *safe, mf_error *err) {
    const mf_moe_params *p = &pb->p;
    int T = p->T, H = p->H, k = p->top_k;
    memset(safe, 0, (size_t)T * H);
    mf_routing rt;
    MF_TRY(mf_ref_route(p, &pb->t, c, &rt, err));
    mf_ref_options ro = {0};
    mf_ref_ctx *ctx = mf_ref_ctx_new(p, &pb->t, c, &ro, err);
    mf_status st = ctx ? MF_OK : MF_EINVAL;
    const double lo = 0x1p-120, hi = 0x1p120;
    for (int t = 0; t < T && st == MF_OK; t++) {
        if (rt.invariant_only[t]) continue;
        const int32_t *ids =
            r0->ids ? r0->ids + (size_t)t * k : (const int32_t *)&rt.ref_ids[(size_t)t * k];
        if (!mf_ref_selection_admissible(&rt, p, t, ids, NULL, 0)) continue;
        mf_weights w;
        if ((st = mf_ref_weights(&rt, p, c, t, ids, &w, err)) != MF_OK) break;
        memset(safe + (size_t)t * H, 1, (size_t)H);
        for (int i = 0; i < k && st == MF_OK; i++) {
            int le = mf_local_of(p, pb->t.expert_map, ids[i]);
            if (le < 0) continue;
            double aw = fabs(w.w_hi[i]);
            if (!(aw == 0 || (aw > lo && aw < hi)) || w.nan_ok) {
                memset(safe + (size_t)t * H, 0, (size_t)H);
                break;
            }
            mf_expert_out eo;
            if ((st = mf_ref_expert(ctx, t, le, &eo, err)) != MF_OK) break;
            for (int col = 0; col < H; col++) {
                double prod = aw * fabs(eo.o_hi[col]) *
                              (p->rsf_site == MF_RSF_WEIGHTS ? 1.0 : (double)p->rsf);
                if ((eo.flags[col] & MF_ELEM_UNCONSTRAINED) ||
                    !(prod == 0 || (prod > lo && prod < hi)))
                    safe[(size_t)t * H + col] = 0;
            }
        }
    }
    mf_ref_ctx_free(ctx);
    mf_routing_free(&rt);
    return st;
}

static int same_set(const int32_t *a, const int32_t *b, int k) {
    for (int i = 0; i < k; i++)
        if (a[i] != b[i]) return 0;
    return 1;
}

/* ---- the relations ---- */

/* What every relation reads: the problem, the kernel and its first run r0, the reference
 * selection of each token (selections(), computed when the first relation needs it), and the
 * result that the relations fill. */
typedef struct meta_ctx {
    const mf_problem *pb;
    mf_backend *b;
    const mf_contract *c;
    const mf_run_result *r0;
    int32_t *s0; /* [T][top_k]; NULL until computed */
    mf_meta_result *m;
    int identity; /* the relation being run compares runs bit for bit (else: check_alone) */
    mf_meta rel;  /* the relation being run */
    mf_meta_checker checker;
} meta_ctx;

/* A transformed problem run by the kernel; a run the kernel refuses is counted against the
 * relation (the caller leaves it out) */
static mf_status run(meta_ctx *x, const mf_problem *pb, mf_run_result *r, mf_error *err) {
    MF_TRY(mf_backend_run(x->b, pb, r, err));
    if (r->unsupported && x->m->refused[x->rel]++ == 0)
        snprintf(x->m->refused_why[x->rel], sizeof x->m->refused_why[x->rel], "%.119s", r->reason);
    return MF_OK;
}

static mf_status ctx_selections(meta_ctx *x, mf_error *err) {
    if (x->s0) return MF_OK;
    x->s0 = malloc(sizeof(int32_t) * (size_t)x->pb->p.T * x->pb->p.top_k);
    if (!x->s0) return MF_FAIL(err, MF_ENOMEM, "out of memory");
    return selections(x->pb, x->c, x->s0, err);
}

/* Independent mode: run r of the transformed problem q checked against the reference on its
 * own, as the normal checker checks any case; a failure counts as one violation. */
static mf_status check_alone(meta_ctx *x, mf_meta rel, const mf_problem *q, const mf_run_result *r,
                             const char *what, mf_error *err) {
    if (r->unsupported) return MF_OK;
    mf_meta_check v;
    MF_TRY(x->checker(q, x->c, r, &v, err));
    mf_meta_result *m = x->m;
    m->applicable[rel] = 1;
    m->runs[rel]++;
    m->compared[rel] += v.checked;
    if (!v.pass && m->violations[rel]++ == 0) {
        m->n_violated++;
        snprintf(m->first[rel], sizeof m->first[rel], "%s: %s", what, v.first);
    }
    return MF_OK;
}

/* Token t of a run against the same token of another: every comparable element equal. */
static void compare_token(const meta_ctx *x, mf_meta rel, int t, const uint16_t *got,
                          const uint16_t *want, const char *what) {
    const int H = x->pb->p.H;
    for (int col = 0; col < H; col++) {
        size_t i = (size_t)t * H + col;
        if (!comparable(want[i]) || !comparable(got[i])) continue;
        x->m->compared[rel]++;
        if (mf_bf16_to_f32(got[i]) != mf_bf16_to_f32(want[i]))
            violation(x->m, rel, t, col, got[i], want[i], what);
    }
}

/* rsf-scaling: out(2 rsf) = 2 out(rsf) where the scaling commutes with every rounding. */
static int rsf_scaling_applies(const meta_ctx *x) {
    /* shared experts' terms do not scale with rsf (weight 1, gate) or scale against it (1/rsf);
     * a weight on the input passes through the activation, so its rsf does not scale the output */
    return (double)x->pb->p.rsf * 2 <= 0x1p8 && !mf_shared_added(&x->pb->p) &&
           !x->pb->p.weight_on_input;
}

static mf_status rsf_scaling_check(meta_ctx *x, mf_error *err) {
    const mf_problem *pb = x->pb;
    const int H = pb->p.H;
    const size_t n_out = (size_t)pb->p.T * H;
    mf_problem q = *pb;
    q.p.rsf = pb->p.rsf * 2.0f; /* exact */
    mf_run_result r;
    if (!x->identity) {
        MF_TRY(run(x, &q, &r, err));
        mf_status st = check_alone(x, MF_META_RSF_SCALING, &q, &r, "the case with 2 rsf", err);
        mf_run_result_free(&r);
        return st;
    }
    uint8_t *safe = malloc(n_out ? n_out : 1);
    if (!safe) return MF_FAIL(err, MF_ENOMEM, "out of memory");
    mf_status st = scaling_safe(pb, x->c, x->r0, safe, err);
    if (st == MF_OK) st = run(x, &q, &r, err);
    if (st != MF_OK) {
        free(safe);
        return st;
    }
    if (!r.unsupported) {
        x->m->applicable[MF_META_RSF_SCALING] = 1;
        for (size_t i = 0; i < n_out; i++) {
            uint16_t a = x->r0->out[i], a2 = r.out[i];
            if (!safe[i] || !comparable(a) || !comparable(a2)) continue;
            uint16_t want = mf_f32_to_bf16(2.0f * mf_bf16_to_f32(a));
            if (!comparable(want)) continue;
            x->m->compared[MF_META_RSF_SCALING]++;
            if (mf_bf16_to_f32(a2) != mf_bf16_to_f32(want))
                violation(x->m, MF_META_RSF_SCALING, (int)(i / H), (int)(i % H), a2, want,
                          "out(2 rsf) != 2 out(rsf)");
        }
    }
    mf_run_result_free(&r);
    free(safe);
    return MF_OK;
}

/* bias-shift: every bias + 1 changes no token whose selection and slot order stay unambiguous
 * and the same. */
static int bias_shift_applies(const meta_ctx *x) {
    return x->pb->p.bias != MF_BIAS_NONE;
}

static mf_status bias_shift_check(meta_ctx *x, mf_error *err) {
    const mf_problem *pb = x->pb;
    const int T = pb->p.T, k = pb->p.top_k, E = pb->p.E;
    float *bias2 = malloc(sizeof(float) * (size_t)E);
    int32_t *s1 = malloc(sizeof(int32_t) * (size_t)T * k);
    mf_status st = bias2 && s1 ? MF_OK : MF_FAIL(err, MF_ENOMEM, "out of memory");
    mf_problem q = *pb;
    if (st == MF_OK) {
        for (int e = 0; e < E; e++) {
            float v = pb->bias[e] + 1.0f;
            bias2[e] = pb->p.bias == MF_BIAS_BF16 ? mf_bf16_to_f32(mf_f32_to_bf16(v)) : v;
        }
        q.bias = bias2;
        q.t.bias = bias2;
        if (x->identity) st = selections(&q, x->c, s1, err);
    }
    mf_run_result r;
    if (st == MF_OK && (st = run(x, &q, &r, err)) == MF_OK) {
        if (!x->identity) {
            st = check_alone(x, MF_META_BIAS_SHIFT, &q, &r, "the case with bias + 1", err);
        } else if (!r.unsupported) {
            x->m->applicable[MF_META_BIAS_SHIFT] = 1;
            for (int t = 0; t < T; t++) {
                const int32_t *a = x->s0 + (size_t)t * k, *bb = s1 + (size_t)t * k;
                if (a[0] < 0 || bb[0] < 0 || !same_set(a, bb, k)) continue;
                compare_token(x, MF_META_BIAS_SHIFT, t, r.out, x->r0->out,
                              "bias + 1 changed the output");
            }
        }
        mf_run_result_free(&r);
    }
    free(bias2), free(s1);
    return st;
}

/* full-groups: topk_group = n_group is no grouping. */
static int full_groups_applies(const meta_ctx *x) {
    return x->pb->p.n_group > 1;
}

static mf_status full_groups_check(meta_ctx *x, mf_error *err) {
    const mf_problem *pb = x->pb;
    const int H = pb->p.H;
    const size_t n_out = (size_t)pb->p.T * H;
    mf_problem q1 = *pb, q2 = *pb;
    q1.p.topk_group = pb->p.n_group;
    q2.p.n_group = 1, q2.p.topk_group = 1;
    mf_run_result r, r2;
    MF_TRY(run(x, &q1, &r, err));
    mf_status st = run(x, &q2, &r2, err);
    if (st != MF_OK) {
        mf_run_result_free(&r);
        return st;
    }
    if (!x->identity) {
        st = check_alone(x, MF_META_FULL_GROUPS, &q1, &r, "the case with every group kept", err);
        if (st == MF_OK)
            st = check_alone(x, MF_META_FULL_GROUPS, &q2, &r2, "the case without groups", err);
    } else if (!r.unsupported && !r2.unsupported) {
        x->m->applicable[MF_META_FULL_GROUPS] = 1;
        for (size_t i = 0; i < n_out; i++) {
            if (!comparable(r.out[i]) || !comparable(r2.out[i])) continue;
            x->m->compared[MF_META_FULL_GROUPS]++;
            if (mf_bf16_to_f32(r.out[i]) != mf_bf16_to_f32(r2.out[i]))
                violation(x->m, MF_META_FULL_GROUPS, (int)(i / H), (int)(i % H), r.out[i],
                          r2.out[i], "all groups kept differs from no grouping");
        }
    }
    mf_run_result_free(&r);
    mf_run_result_free(&r2);
    return st;
}

/* ep-shards: two expert-parallel shards of the full expert set; a token whose experts all live
 * on one shard gets the unsharded output there and exact zeros on the other. Shard 0 owns the
 * shared experts: a token whose routed experts all live on shard 0 gets the unsharded output
 * there (the same slots in the same order) and zeros on shard 1; the others are split. */
/* Elements of one expert's slice of a per-expert tensor (those after x, logits and bias). */
static size_t per_expert(const mf_moe_params *p, mf_tensor_id t) {
    uint64_t s[MF_TENSOR_MAX_RANK];
    mf_tensor_shape(p, t, s);
    return (size_t)(s[1] * s[2]);
}

/* 1 for a tensor held per routed expert (d0 = E_local): not x, logits, bias, the shared
 * experts' tensors, which every shard holds whole, nor the pre-routed ids and weights ([T][k]),
 * nor the placement map ([E]) */
static int routed_expert_tensor(mf_tensor_id t) {
    return t > MF_T_BIAS && t != MF_T_SW13 && t != MF_T_SW2 && t != MF_T_SHARED_GATE &&
           t != MF_T_TOPK_IDS_IN && t != MF_T_TOPK_WEIGHTS_IN && t != MF_T_EXPERT_MAP;
}

/* contiguous experts only: an expert map's shards are map-shards' */
static int ep_shards_applies(const meta_ctx *x) {
    return x->pb->p.E_local == x->pb->p.E && x->pb->p.E >= 2 &&
           x->pb->p.placement == MF_PLACEMENT_CONTIGUOUS;
}

static mf_status ep_shards_check(meta_ctx *x, mf_error *err) {
    const mf_problem *pb = x->pb;
    const int T = pb->p.T, H = pb->p.H, k = pb->p.top_k, E = pb->p.E, half = E / 2;
    mf_problem qa = *pb, qb = *pb;
    qa.p.E_local = half;
    qb.p.E_local = E - half, qb.p.expert_offset = half;
    /* shard 0 owns the shared experts (if this rank did): the shards' outputs sum to it once */
    const int shared = mf_shared_added(&pb->p);
    if (shared) qb.p.shared_owner = MF_SHOWN_OTHER_RANK;
    /* shard b's view of every per-expert tensor (weights, expert biases, block scales) */
#define SHARD_(ID, name, ...)                                                               \
    if (routed_expert_tensor(MF_T_##ID) && pb->name) {                                      \
        qb.name = pb->name + (size_t)half * per_expert(&pb->p, MF_T_##ID);                  \
        if (pb->t.name) qb.t.name = qb.name;                                                \
    }
    MF_TENSOR_LIST(SHARD_)
#undef SHARD_
    if (pb->experts) qb.experts = pb->experts + half, qb.t.expert_state = qb.experts;
    mf_run_result ra, rb;
    MF_TRY(run(x, &qa, &ra, err));
    mf_status st = run(x, &qb, &rb, err);
    if (st != MF_OK) {
        mf_run_result_free(&ra);
        return st;
    }
    if (!x->identity) {
        st = check_alone(x, MF_META_EP_SHARDS, &qa, &ra, "shard 0", err);
        if (st == MF_OK) st = check_alone(x, MF_META_EP_SHARDS, &qb, &rb, "shard 1", err);
    } else if (!ra.unsupported && !rb.unsupported) {
        x->m->applicable[MF_META_EP_SHARDS] = 1;
        for (int t = 0; t < T; t++) {
            const int32_t *ids = x->r0->ids ? x->r0->ids + (size_t)t * k : x->s0 + (size_t)t * k;
            if (ids[0] < 0) continue;
            int in_a = 0, in_b = 0;
            for (int i = 0; i < k; i++) {
                if (ids[i] < half)
                    in_a++;
                else
                    in_b++;
            }
            if (in_a && in_b) continue; /* split token: partial sums round differently */
            if (shared && in_b) continue; /* its routed experts on shard 1, the shared on 0 */
            const uint16_t *own = in_a ? ra.out : rb.out, *other = in_a ? rb.out : ra.out;
            for (int col = 0; col < H; col++) {
                size_t i = (size_t)t * H + col;
                if (!comparable(x->r0->out[i]) || !comparable(own[i])) continue;
                x->m->compared[MF_META_EP_SHARDS]++;
                if (mf_bf16_to_f32(own[i]) != mf_bf16_to_f32(x->r0->out[i]))
                    violation(x->m, MF_META_EP_SHARDS, t, col, own[i], x->r0->out[i],
                              "the shard holding every expert differs from unsharded");
                if (mf_bf16_to_f32(other[i]) != 0.0f)
                    violation(x->m, MF_META_EP_SHARDS, t, col, other[i], 0,
                              "a shard without the token's experts wrote non-zero");
            }
        }
    }
    mf_run_result_free(&ra);
    mf_run_result_free(&rb);
    return st;
}

/* tp-shards: split every expert's intermediate dimension into R tensor-parallel ranks (R = 3, or
 * 2 where I or shared_I is 2; uneven where R does not divide I) and run each rank on its slice:
 * the ranks' partial outputs add up to the unsharded output. In exact arithmetic the partial
 * sums z_r add up to z exactly (the activation is per column, the combine linear, b2 on rank 0
 * only), and a kernel that meets its contract writes y_r within D_r = max(z_r - lo_r, hi_r -
 * z_r) of z_r (lo, hi: the reference's admissible bf16 outputs), so
 *   |sum_r y_r - y| <= sum_r D_r + D,
 * summed in double with a relative slack of R 2^-52. Every token is split, so the relation is a
 * bound, not an identity; it holds under any contract whose radii are sound. */
typedef struct tp_slice {
    mf_problem q;
    uint16_t *w13, *b13, *w2, *sw13, *sw2;
} tp_slice;

static int tp_ranks(const mf_moe_params *p) {
    int R = p->I >= 3 && (p->n_shared == 0 || p->shared_I >= 3) ? 3 : 2;
    return p->I >= R && (p->n_shared == 0 || p->shared_I >= R) ? R : 0;
}

static int tp_shards_applies(const meta_ctx *x) {
    const mf_problem *pb = x->pb;
    /* bf16 weights only: an fp8 slice must be whole scale blocks of its own */
    return pb->p.tp_size <= 1 && pb->p.weight_format == MF_WFMT_BF16 && tp_ranks(&pb->p) >= 2 &&
           (!pb->experts || mf_problem_experts_ready(pb) == pb->p.E_local);
}

/* Rows [o, o + w) of the gate and the up halves of n stacked [2I][cols] blocks (layout l) into
 * [2w][cols] blocks, the rank's own layout. */
static uint16_t *tp_rows(const uint16_t *src, int n, int I, int o, int w, int cols, mf_layout l) {
    uint16_t *d = malloc(sizeof(uint16_t) * ((size_t)n * 2 * w * cols + 1));
    mf_moe_params full = {.I = I, .layout = l}, part = {.I = w, .layout = l};
    for (int e = 0; d && e < n; e++)
        for (int j = 0; j < w; j++) {
            const uint16_t *s = src + (size_t)e * 2 * I * cols;
            uint16_t *t = d + (size_t)e * 2 * w * cols;
            memcpy(t + (size_t)mf_gate_row(&part, j) * cols,
                   s + (size_t)mf_gate_row(&full, o + j) * cols, sizeof(uint16_t) * cols);
            memcpy(t + (size_t)mf_up_row(&part, j) * cols,
                   s + (size_t)mf_up_row(&full, o + j) * cols, sizeof(uint16_t) * cols);
        }
    return d;
}

/* Columns [o, o + w) of n * H rows of I columns. */
static uint16_t *tp_cols(const uint16_t *src, size_t rows, int I, int o, int w) {
    uint16_t *d = malloc(sizeof(uint16_t) * (rows * w + 1));
    for (size_t r = 0; d && r < rows; r++)
        memcpy(d + r * w, src + r * I + o, sizeof(uint16_t) * w);
    return d;
}

static void tp_slice_free(tp_slice *s) {
    free(s->w13), free(s->b13), free(s->w2), free(s->sw13), free(s->sw2);
}

/* Rank r of R: its slice [o, o + w) of I (and [so, so + sw) of shared_I). */
static int tp_slice_make(const mf_problem *pb, int R, int r, tp_slice *s) {
    const mf_moe_params *p = &pb->p;
    const int I = p->I, SI = p->shared_I, H = p->H, EL = p->E_local, S = p->n_shared;
    int w = I / R + (r < I % R), o = r * (I / R) + (r < I % R ? r : I % R);
    memset(s, 0, sizeof *s);
    s->q = *pb;
    s->q.has_src = 0;
    s->q.p.I = w, s->q.p.tp_size = R, s->q.p.tp_rank = r;
    s->w13 = tp_rows(pb->w13, EL, I, o, w, H, p->layout);
    s->q.w13 = s->w13, s->q.t.w13 = s->w13;
    s->w2 = tp_cols(pb->w2, (size_t)EL * H, I, o, w);
    s->q.w2 = s->w2, s->q.t.w2 = s->w2;
    if (pb->t.b13) {
        s->b13 = tp_rows(pb->b13, EL, I, o, w, 1, p->layout);
        s->q.b13 = s->b13, s->q.t.b13 = s->b13;
    }
    if (S > 0) {
        int sw = SI / R + (r < SI % R), so = r * (SI / R) + (r < SI % R ? r : SI % R);
        s->q.p.shared_I = sw;
        s->sw13 = tp_rows(pb->sw13, S, SI, so, sw, H, p->layout);
        s->q.sw13 = s->sw13, s->q.t.sw13 = s->sw13;
        s->sw2 = tp_cols(pb->sw2, (size_t)S * H, SI, so, sw);
        s->q.sw2 = s->sw2, s->q.t.sw2 = s->sw2;
    }
    return s->w13 && s->w2 && (!pb->t.b13 || s->b13) && (S == 0 || (s->sw13 && s->sw2));
}

/* The distance from the exact z to the farthest admissible output; -1 where none is bounded. */
static double tp_reach(const mf_ref_row *row, int col) {
    if (row->flags[col]) return -1;
    float lo = mf_bf16_to_f32(row->lo[col]), hi = mf_bf16_to_f32(row->hi[col]);
    if (!isfinite(lo) || !isfinite(hi)) return -1;
    double z = row->z[col], a = z - (double)lo, b = (double)hi - z;
    return a > b ? a : b;
}

static mf_status tp_shards_check(meta_ctx *x, mf_error *err) {
    const mf_problem *pb = x->pb;
    const mf_moe_params *p = &pb->p;
    const int T = p->T, H = p->H, k = p->top_k, R = tp_ranks(p);
    tp_slice sl[3];
    mf_run_result rr[3];
    mf_ref_ctx *ctx[4] = {0};
    double *buf = malloc(sizeof(double) * 8 * (size_t)H);
    uint16_t *bits = malloc(sizeof(uint16_t) * 8 * (size_t)H);
    uint8_t *flags = malloc(8 * (size_t)H);
    mf_routing rt;
    int n_run = 0, routed = 0;
    mf_status st = MF_OK;
    memset(sl, 0, sizeof sl);
    if (!buf || !bits || !flags) st = MF_FAIL(err, MF_ENOMEM, "out of memory");
    for (int r = 0; r < R && st == MF_OK; r++)
        if (!tp_slice_make(pb, R, r, &sl[r])) st = MF_FAIL(err, MF_ENOMEM, "out of memory");
    for (; n_run < R && st == MF_OK; n_run++)
        if ((st = run(x, &sl[n_run].q, &rr[n_run], err)) != MF_OK) break;
    int supported = st == MF_OK;
    for (int r = 0; r < n_run; r++) supported &= !rr[r].unsupported;
    if (st == MF_OK && supported) { /* a bound under every contract (tp_shards_holds) */
        x->m->applicable[MF_META_TP_SHARDS] = 1;
        mf_ref_options ro = {0};
        if ((st = mf_ref_route(p, &pb->t, x->c, &rt, err)) == MF_OK) routed = 1;
        for (int r = 0; r <= R && st == MF_OK; r++) {
            const mf_problem *q = r < R ? &sl[r].q : pb;
            if (!(ctx[r] = mf_ref_ctx_new(&q->p, &q->t, x->c, &ro, err))) st = MF_EINVAL;
        }
        for (int t = 0; t < T && st == MF_OK; t++) {
            const int32_t *ids = x->s0 + (size_t)t * k;
            if (ids[0] < 0) continue;
            mf_weights w;
            if ((st = mf_ref_weights(&rt, p, x->c, t, ids, &w, err)) != MF_OK) break;
            if (w.nan_ok) continue;
            mf_ref_row row[4];
            for (int r = 0; r <= R && st == MF_OK; r++) {
                row[r] = (mf_ref_row){buf + (size_t)2 * r * H, buf + (size_t)(2 * r + 1) * H,
                                      bits + (size_t)2 * r * H, bits + (size_t)(2 * r + 1) * H,
                                      flags + (size_t)r * H};
                st = mf_ref_token_output(ctx[r], t, ids, &w, &row[r], err);
            }
            for (int col = 0; col < H && st == MF_OK; col++) {
                size_t i = (size_t)t * H + col;
                double bound = tp_reach(&row[R], col), sum = 0, mag = 0;
                int ok = bound >= 0 && comparable(x->r0->out[i]);
                for (int r = 0; r < R && ok; r++) {
                    double d = tp_reach(&row[r], col);
                    ok = d >= 0 && mf_bf16_is_finite(rr[r].out[i]);
                    double y = mf_bf16_to_f32(rr[r].out[i]);
                    bound += d, sum += y, mag += fabs(y);
                }
                if (!ok) continue;
                double y0 = mf_bf16_to_f32(x->r0->out[i]);
                bound += (double)(R + 1) * 0x1p-52 * (mag + fabs(y0));
                x->m->compared[MF_META_TP_SHARDS]++;
                if (fabs(sum - y0) > bound &&
                    x->m->violations[MF_META_TP_SHARDS]++ == 0) {
                    x->m->n_violated++;
                    snprintf(x->m->first[MF_META_TP_SHARDS],
                             sizeof x->m->first[MF_META_TP_SHARDS],
                             "[tok %d, col %d] the %d ranks' partial outputs sum to %a, the "
                             "unsharded output is %a, allowed %a",
                             t, col, R, sum, y0, bound);
                }
            }
        }
    }
    for (int r = 0; r <= R; r++) mf_ref_ctx_free(ctx[r]);
    if (routed) mf_routing_free(&rt);
    for (int r = 0; r < n_run; r++) mf_run_result_free(&rr[r]);
    for (int r = 0; r < R; r++) tp_slice_free(&sl[r]);
    free(buf), free(bits), free(flags);
    return st;
}

/* relabel (sigmoid): reverse the groups and the experts inside each group. */
static int relabel_applies(const meta_ctx *x) {
    const mf_moe_params *p = &x->pb->p;
    /* the relabelled copy holds every expert: not for a problem that generated only some (a
     * full-size model case) */
    return p->score == MF_SCORE_SIGMOID && p->E_local == p->E && p->E >= 2 &&
           p->placement == MF_PLACEMENT_CONTIGUOUS && /* it moves experts by local index */
           (!x->pb->experts || mf_problem_experts_ready(x->pb) == p->E_local);
}

/* Copies of every per-expert tensor (those after x, logits and bias) with expert e moved to
 * perm[e]; NULL where the problem has no array. */
typedef struct permuted {
#define PERM_FIELD_(ID, name, storage, ...) storage *name;
    MF_TENSOR_LIST(PERM_FIELD_)
#undef PERM_FIELD_
} permuted;

static void permuted_free(permuted *q) {
#define PERM_FREE_(ID, name, ...) free(q->name);
    MF_TENSOR_LIST(PERM_FREE_)
#undef PERM_FREE_
}

static int permute_experts(const mf_problem *pb, const int *perm, permuted *q) {
    const int E = pb->p.E;
    memset(q, 0, sizeof *q);
#define PERM_COPY_(ID, name, storage, ...)                                                  \
    if (routed_expert_tensor(MF_T_##ID) && pb->name) {                                      \
        size_t per = per_expert(&pb->p, MF_T_##ID);                                         \
        if (!(q->name = malloc(sizeof(storage) * (per * (size_t)E + 1)))) return 0;         \
        for (int e = 0; e < E; e++)                                                         \
            memcpy(q->name + (size_t)perm[e] * per, pb->name + (size_t)e * per,             \
                   sizeof(storage) * per);                                                  \
    }
    MF_TENSOR_LIST(PERM_COPY_)
#undef PERM_COPY_
    return 1;
}

static mf_status relabel_check(meta_ctx *x, mf_error *err) {
    const mf_problem *pb = x->pb;
    const mf_moe_params *p = &pb->p;
    const int T = p->T, k = p->top_k, E = p->E, NG = p->n_group, G = E / NG;
    int *perm = malloc(sizeof(int) * (size_t)E);
    float *lg = malloc(sizeof(float) * (size_t)T * E), *bias2 = malloc(sizeof(float) * (size_t)E);
    int32_t *s1 = malloc(sizeof(int32_t) * (size_t)T * k);
    uint8_t *state = pb->experts ? malloc((size_t)E) : NULL; /* which experts were generated */
    permuted pq = {0};
    mf_status st = MF_OK;
    if (!perm || !lg || !bias2 || !s1 || (pb->experts && !state)) {
        st = MF_FAIL(err, MF_ENOMEM, "out of memory");
        goto done;
    }
    for (int e = 0; e < E; e++) perm[e] = (NG - 1 - e / G) * G + (G - 1 - e % G);
    if (!permute_experts(pb, perm, &pq)) {
        st = MF_FAIL(err, MF_ENOMEM, "out of memory");
        goto done;
    }
    for (int t = 0; t < T; t++)
        for (int e = 0; e < E; e++) lg[(size_t)t * E + perm[e]] = pb->logits[(size_t)t * E + e];
    for (int e = 0; e < E; e++) {
        bias2[perm[e]] = pb->bias[e];
        if (state) state[perm[e]] = pb->experts[e];
    }
    mf_problem q = *pb;
    if (state) q.experts = state, q.t.expert_state = state;
    q.logits = lg, q.t.logits = lg;
    q.bias = bias2, q.t.bias = p->bias != MF_BIAS_NONE ? bias2 : NULL;
#define PERM_VIEW_(ID, name, ...)                                                           \
    if (pq.name) {                                                                          \
        q.name = pq.name;                                                                   \
        if (pb->t.name) q.t.name = pq.name;                                                 \
    }
    MF_TENSOR_LIST(PERM_VIEW_)
#undef PERM_VIEW_
    mf_run_result r;
    if ((!x->identity || (st = selections(&q, x->c, s1, err)) == MF_OK) &&
        (st = run(x, &q, &r, err)) == MF_OK) {
        if (!x->identity) {
            st = check_alone(x, MF_META_RELABEL, &q, &r, "the relabelled case", err);
        } else if (!r.unsupported) {
            x->m->applicable[MF_META_RELABEL] = 1;
            for (int t = 0; t < T; t++) {
                const int32_t *a = x->s0 + (size_t)t * k, *bb = s1 + (size_t)t * k;
                if (a[0] < 0 || bb[0] < 0) continue;
                int same = 1;
                for (int i = 0; i < k; i++) same &= perm[a[i]] == bb[i];
                if (!same) continue;
                compare_token(x, MF_META_RELABEL, t, r.out, x->r0->out,
                              "relabelled experts changed the output");
            }
        }
        mf_run_result_free(&r);
    }
done:
    free(perm), free(lg), free(bias2), free(s1), free(state);
    permuted_free(&pq);
    return st;
}

/* map-shards: a partition of the E experts over R ranks (2 or 3), each rank an expert map with
 * holes whose local order is the reverse of the global order (so that an offset shortcut reads
 * the wrong expert). A token whose experts all live on one rank gets the unsharded output there,
 * bit for bit (the same slots in the same order), and exact zeros on the others; a split token's
 * partial outputs sum to the unsharded output within their roundings' bounds, which the check
 * of each rank's run against its own reference gives (the exact partial outputs sum to the
 * exact output). Rank 0 owns the shared experts. */
enum { MAP_SHARDS_MAX_RANKS = 3 };

static int map_shards_applies(const meta_ctx *x) {
    const mf_moe_params *p = &x->pb->p;
    /* the unsharded problem holds every expert in global order; each rank's copy holds a subset */
    return p->placement == MF_PLACEMENT_CONTIGUOUS && p->E_local == p->E && p->E >= 2 &&
           (!x->pb->experts || mf_problem_experts_ready(x->pb) == p->E_local);
}

/* The rank of expert e: a hash of e (every rank holds at least one expert: e % R otherwise) */
static int map_shard_owner(int e, int E, int R, int hashed) {
    if (!hashed) return e % R;
    uint64_t h = (uint64_t)e * 0x9E3779B97F4A7C15ull + (uint64_t)E;
    h ^= h >> 29;
    h *= 0xBF58476D1CE4E5B9ull;
    return (int)((h >> 32) % (uint64_t)R);
}

/* Rank r's problem: its expert map (owned experts numbered in descending global order), copies
 * of the per-expert tensors in that local order, every expert generated. */
typedef struct map_shard {
    mf_problem q;
    int32_t *map;
    uint8_t *ready;
    permuted own;
} map_shard;

static int map_shard_make(const mf_problem *pb, const int *owner, int r, map_shard *s) {
    const int E = pb->p.E;
    memset(s, 0, sizeof *s);
    s->q = *pb;
    s->map = malloc(sizeof(int32_t) * (size_t)E);
    s->ready = malloc((size_t)E);
    if (!s->map || !s->ready) return 0;
    int L = 0;
    for (int e = E - 1; e >= 0; e--) s->map[e] = owner[e] == r ? L++ : -1;
    memset(s->ready, MF_EXPERT_READY, (size_t)L);
#define SHARD_COPY_(ID, name, storage, ...)                                                   \
    if (routed_expert_tensor(MF_T_##ID) && pb->name) {                                        \
        size_t per = per_expert(&pb->p, MF_T_##ID);                                           \
        if (!(s->own.name = malloc(sizeof(storage) * (per * (size_t)L + 1)))) return 0;       \
        for (int e = 0; e < E; e++)                                                           \
            if (s->map[e] >= 0)                                                               \
                memcpy(s->own.name + (size_t)s->map[e] * per, pb->name + (size_t)e * per,     \
                       sizeof(storage) * per);                                                \
        s->q.name = s->own.name;                                                              \
        if (pb->t.name) s->q.t.name = s->own.name;                                            \
    }
    MF_TENSOR_LIST(SHARD_COPY_)
#undef SHARD_COPY_
    s->q.p.E_local = L;
    s->q.p.expert_offset = 0;
    s->q.p.placement = MF_PLACEMENT_MAP;
    s->q.expert_map = s->map;
    s->q.t.expert_map = s->map;
    s->q.experts = s->ready;
    s->q.t.expert_state = s->ready;
    if (r != 0 && mf_shared_added(&pb->p)) s->q.p.shared_owner = MF_SHOWN_OTHER_RANK;
    return 1;
}

static void map_shard_free(map_shard *s) {
    free(s->map);
    free(s->ready);
    permuted_free(&s->own);
}

static mf_status map_shards_check(meta_ctx *x, mf_error *err) {
    const mf_problem *pb = x->pb;
    const int T = pb->p.T, H = pb->p.H, k = pb->p.top_k, E = pb->p.E;
    const int R = E >= 6 ? MAP_SHARDS_MAX_RANKS : 2;
    int *owner = malloc(sizeof(int) * (size_t)E);
    if (!owner) return MF_FAIL(err, MF_ENOMEM, "out of memory");
    int count[MAP_SHARDS_MAX_RANKS] = {0}, hashed = 1;
    for (int e = 0; e < E; e++) count[owner[e] = map_shard_owner(e, E, R, 1)]++;
    for (int r = 0; r < R; r++) hashed &= count[r] > 0;
    if (!hashed)
        for (int e = 0; e < E; e++) owner[e] = map_shard_owner(e, E, R, 0);
    map_shard sh[MAP_SHARDS_MAX_RANKS];
    mf_run_result rr[MAP_SHARDS_MAX_RANKS];
    memset(sh, 0, sizeof sh);
    memset(rr, 0, sizeof rr);
    mf_status st = MF_OK;
    int unsupported = 0;
    for (int r = 0; r < R && st == MF_OK; r++) {
        if (!map_shard_make(pb, owner, r, &sh[r])) st = MF_FAIL(err, MF_ENOMEM, "out of memory");
        if (st == MF_OK) st = run(x, &sh[r].q, &rr[r], err);
        if (st == MF_OK) unsupported |= rr[r].unsupported;
    }
    if (st == MF_OK && !unsupported && !x->identity) {
        for (int r = 0; r < R && st == MF_OK; r++) {
            char what[32];
            snprintf(what, sizeof what, "rank %d of %d", r, R);
            st = check_alone(x, MF_META_MAP_SHARDS, &sh[r].q, &rr[r], what, err);
        }
    } else if (st == MF_OK && !unsupported) {
        mf_meta_result *m = x->m;
        m->applicable[MF_META_MAP_SHARDS] = 1;
        /* the split tokens' bound: each rank's partial output against its own reference (a
         * failure is a violation; its elements are not counted as compared bit for bit) */
        for (int r = 0; r < R && st == MF_OK; r++) {
            mf_meta_check v;
            if ((st = x->checker(&sh[r].q, x->c, &rr[r], &v, err)) != MF_OK) break;
            if (!v.pass && m->violations[MF_META_MAP_SHARDS]++ == 0) {
                m->n_violated++;
                snprintf(m->first[MF_META_MAP_SHARDS], sizeof m->first[MF_META_MAP_SHARDS],
                         "rank %d of %d on its own: %s", r, R, v.first);
            }
        }
        const int shared = mf_shared_added(&pb->p);
        for (int t = 0; t < T && st == MF_OK; t++) {
            const int32_t *ids = x->r0->ids ? x->r0->ids + (size_t)t * k : x->s0 + (size_t)t * k;
            if (ids[0] < 0) continue;
            int home = -1, split = 0;
            for (int i = 0; i < k; i++) {
                if (ids[i] < 0 || ids[i] >= E) continue;
                if (home >= 0 && owner[ids[i]] != home) split = 1;
                home = owner[ids[i]];
            }
            if (split || home < 0) continue;   /* partial sums round differently */
            if (shared && home != 0) continue; /* its routed experts there, the shared on 0 */
            for (int r = 0; r < R; r++)
                for (int col = 0; col < H; col++) {
                    size_t i = (size_t)t * H + col;
                    const uint16_t *o = rr[r].out;
                    if (r != home) {
                        if (mf_bf16_to_f32(o[i]) != 0.0f)
                            violation(m, MF_META_MAP_SHARDS, t, col, o[i], 0,
                                      "a rank without the token's experts wrote non-zero");
                        continue;
                    }
                    if (!comparable(x->r0->out[i]) || !comparable(o[i])) continue;
                    m->compared[MF_META_MAP_SHARDS]++;
                    if (mf_bf16_to_f32(o[i]) != mf_bf16_to_f32(x->r0->out[i]))
                        violation(m, MF_META_MAP_SHARDS, t, col, o[i], x->r0->out[i],
                                  "the rank holding every expert differs from unsharded");
                }
        }
    }
    for (int r = 0; r < R; r++) {
        mf_run_result_free(&rr[r]);
        map_shard_free(&sh[r]);
    }
    free(owner);
    return st;
}

/* ---- the contract fields each relation's identity needs ----
 * Each writes why it holds or not (for the report) and returns 1 when the relation may compare
 * runs bit for bit. Every identity compares two runs, so every one needs determinism first. */

static int needs_deterministic(const mf_contract *c, char *why, size_t n) {
    if (c->deterministic) return 1;
    snprintf(why, n, "deterministic = 0: two runs on one input may differ in their bits");
    return 0;
}

static int rsf_scaling_holds(const mf_contract *c, char *why, size_t n) {
    if (!needs_deterministic(c, why, n)) return 0;
    if (c->ftz) {
        snprintf(why, n, "ftz = 1: a partial sum flushed to 0 at one scale is kept at twice it");
        return 0;
    }
    snprintf(why, n, "deterministic, ftz = 0: every rounding commutes with scaling by 2");
    return 1;
}

static int bias_shift_holds(const mf_contract *c, char *why, size_t n) {
    if (!needs_deterministic(c, why, n)) return 0;
    if (c->weight_form == MF_WEIGHT_KEY_MINUS_BIAS) {
        snprintf(why, n, "weight_form key_minus_bias: the weight fl(fl(s + b) - b) moves with b");
        return 0;
    }
    snprintf(why, n, "deterministic, weight_form %s: the bias only selects",
             mf_enum_name(&mf_enum_weight_form, c->weight_form));
    return 1;
}

static int full_groups_holds(const mf_contract *c, char *why, size_t n) {
    if (!needs_deterministic(c, why, n)) return 0;
    if (c->sigmoid_form == MF_SIGMOID_EXP_DIV_OR_TANH) {
        snprintf(why, n,
                 "sigmoid_form exp_div_or_tanh: grouped and ungrouped routing may take "
                 "different router paths");
        return 0;
    }
    snprintf(why, n, "deterministic, one sigmoid form: one router path for both");
    return 1;
}

static int ep_shards_holds(const mf_contract *c, char *why, size_t n) {
    if (!needs_deterministic(c, why, n)) return 0;
    snprintf(why, n, "deterministic: a shard holding all of a token's experts combines the same");
    return 1;
}

static int map_shards_holds(const mf_contract *c, char *why, size_t n) {
    if (!needs_deterministic(c, why, n)) return 0;
    snprintf(why, n, "deterministic: a rank holding all of a token's experts combines the same");
    return 1;
}

/* a bound from the runs' radii, which every contract gives: the relation always compares */
static int tp_shards_holds(const mf_contract *c, char *why, size_t n) {
    (void)c;
    snprintf(why, n, "a bound, not an identity: within the sum of the runs' radii");
    return 1;
}

static int relabel_holds(const mf_contract *c, char *why, size_t n) {
    if (!needs_deterministic(c, why, n)) return 0;
    if (c->gemm.kind == MF_ACC_ANY_ORDER) {
        snprintf(why, n,
                 "acc any_order: the combine may add the experts in expert order, which "
                 "relabelling changes");
        return 0;
    }
    snprintf(why, n, "deterministic, acc %s: the combine adds in slot order",
             mf_enum_name(&mf_enum_acc, c->gemm.kind));
    return 1;
}

/* The relations, in the order they run. needs_selections: the identity reads the reference
 * selections of the problem (x->s0). holds: the contract gives what the identity needs. */
typedef struct meta_relation {
    mf_meta id;
    const char *name;
    int needs_selections;
    int (*applies)(const meta_ctx *x);
    int (*holds)(const mf_contract *c, char *why, size_t n);
    mf_status (*check)(meta_ctx *x, mf_error *err);
} meta_relation;

static const meta_relation relations[] = {
    {MF_META_RSF_SCALING, "rsf-scaling", 0, rsf_scaling_applies, rsf_scaling_holds,
     rsf_scaling_check},
    {MF_META_BIAS_SHIFT, "bias-shift", 1, bias_shift_applies, bias_shift_holds, bias_shift_check},
    {MF_META_FULL_GROUPS, "full-groups", 1, full_groups_applies, full_groups_holds,
     full_groups_check},
    {MF_META_EP_SHARDS, "ep-shards", 1, ep_shards_applies, ep_shards_holds, ep_shards_check},
    {MF_META_RELABEL, "relabel", 1, relabel_applies, relabel_holds, relabel_check},
    {MF_META_MAP_SHARDS, "map-shards", 1, map_shards_applies, map_shards_holds,
     map_shards_check},
    {MF_META_TP_SHARDS, "tp-shards", 1, tp_shards_applies, tp_shards_holds, tp_shards_check},
};
#define N_RELATIONS ((int)(sizeof relations / sizeof relations[0]))
_Static_assert(sizeof relations / sizeof relations[0] == MF_META_COUNT,
               "every relation of mf_meta has a row");

const char *mf_meta_name(mf_meta m) {
    for (int i = 0; i < N_RELATIONS; i++)
        if (relations[i].id == m) return relations[i].name;
    return "?";
}

mf_status mf_metamorphic(const mf_problem *pb, mf_backend *b, const mf_run_result *r0,
                         mf_meta_checker checker, mf_meta_result *m, mf_error *err) {
    memset(m, 0, sizeof *m);
    meta_ctx x = {
        .pb = pb, .b = b, .c = &b->contract, .r0 = r0, .s0 = NULL, .m = m, .checker = checker};
    mf_status st = MF_OK;
    /* every relation transforms what the router sees or selects (rsf, bias, groups, labels, the
     * shards of its selection): a pre-routed case has no router, so none applies */
    if (pb->p.preroute != MF_PREROUTE_NONE) return MF_OK;
    for (int i = 0; i < N_RELATIONS && st == MF_OK; i++) {
        const meta_relation *rel = &relations[i];
        if (!rel->applies(&x)) continue;
        x.rel = rel->id;
        x.identity = rel->holds(x.c, m->why[rel->id], sizeof m->why[rel->id]);
        m->identity[rel->id] = x.identity;
        if (x.identity && rel->needs_selections && (st = ctx_selections(&x, err)) != MF_OK) break;
        st = rel->check(&x, err);
    }
    free(x.s0);
    return st;
}

void mf_meta_print(const mf_meta_result *m, FILE *f) {
    fprintf(f, "  metamorphic:\n");
    for (int i = 0; i < MF_META_COUNT; i++) {
        if (!m->applicable[i]) continue;
        const char *verdict = m->violations[i] ? "VIOLATED" : "ok";
        if (m->identity[i] && i == MF_META_TP_SHARDS)
            fprintf(f, "    %-12s bound        %-8s %llu elements compared (%s)\n",
                    mf_meta_name((mf_meta)i), verdict, m->compared[i], m->why[i]);
        else if (m->identity[i])
            fprintf(f, "    %-12s identity     %-8s %llu elements compared bit for bit (%s)\n",
                    mf_meta_name((mf_meta)i), verdict, m->compared[i], m->why[i]);
        else
            fprintf(f,
                    "    %-12s independent  %-8s %u transformed runs checked against the "
                    "reference, %llu elements (%s)\n",
                    mf_meta_name((mf_meta)i), verdict, m->runs[i], m->compared[i], m->why[i]);
    }
    for (int i = 0; i < MF_META_COUNT; i++)
        if (m->refused[i])
            fprintf(f, "    %-12s left out      %u transformed runs refused by the kernel (%s)\n",
                    mf_meta_name((mf_meta)i), m->refused[i], m->refused_why[i]);
    for (int i = 0; i < MF_META_COUNT; i++)
        if (m->violations[i])
            fprintf(f, "  %-15s %llu violations, first %s\n", mf_meta_name((mf_meta)i),
                    m->violations[i], m->first[i]);
}
