/* attribute.c: counterfactual attribution and observability (see attribute.h). */
#include "attribute.h"
#include "verdict.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "bf16.h"
#include "forward.h"
#include "route.h"

static const struct {
    const char *name, *summary;
} knobs[MF_KNOB_COUNT] = {
    {"rsf_dropped", "routed_scaling_factor not applied"},
    {"rsf_squared", "routed_scaling_factor applied twice"},
    {"rsf_gated_by_renorm", "routed_scaling_factor applied only when renormalizing"},
    {"bias_dropped", "selection bias not applied"},
    {"bias_in_weights", "selection bias leaked into the routing weights"},
    {"grouping_dropped", "expert groups (n_group / topk_group) not applied"},
    {"group_mask_zero", "dropped groups masked with 0 instead of -inf"},
    {"group_rule_swapped", "groups scored by the other rule (max vs top-2 sum)"},
    {"renormalize_flipped", "renormalize flag not honoured"},
    {"eps_missing", "renormalization epsilon dropped"},
    {"score_swapped", "score function swapped (softmax vs sigmoid)"},
    {"gate_up_swapped", "gate and up halves of W13 swapped"},
    {"ep_offset_ignored", "expert-parallel offset ignored (global ids used as local)"},
    {"ep_offset_twice", "expert-parallel offset applied twice"},
    {"b2_unweighted", "expert output bias b2 added after the routing weight, unweighted"},
    {"clamp_dropped", "the clamped activation's limit not applied"},
    {"interleave_ignored", "interleaved gate/up rows of W13 read as two halves"},
    {"ue8m0_dropped", "fp8 activation scales not rounded up to a power of two (UE8M0)"},
    {"shared_every_rank", "shared experts added on a rank that does not own them"},
    {"shared_rsf_twice", "shared experts' weight divided by routed_scaling_factor once more"},
    {"shared_dropped", "the last shared expert's slot dropped"},
    {"weight_on_output", "routing weight applied to the expert's output, not its input"},
    {"empty_slot_wrapped", "a pre-routed empty slot (id -1) read as the last expert"},
    {"weights_ignored", "the pre-routed topk_weights not applied"},
    {"map_ignored", "the expert map ignored (local experts contiguous from expert_offset)"},
    {"tp_b2_every_rank", "the down bias b2 added on a tensor-parallel rank other than 0"},
};

const char *mf_knob_name(mf_knob k) { return (unsigned)k < MF_KNOB_COUNT ? knobs[k].name : "?"; }
const char *mf_knob_summary(mf_knob k) {
    return (unsigned)k < MF_KNOB_COUNT ? knobs[k].summary : "?";
}
void mf_knobs_format(unsigned knobs, char *buf, size_t n) {
    size_t l = 0;
    buf[0] = 0;
    for (int k = 0; k < MF_KNOB_COUNT && l < n; k++)
        if (knobs & (1u << k))
            l += (size_t)snprintf(buf + l, n - l, "%s%s", l ? "+" : "", mf_knob_name((mf_knob)k));
    if (!buf[0]) snprintf(buf, n, "none");
}

int mf_knob_lookup(const char *name) {
    for (int k = 0; k < MF_KNOB_COUNT; k++)
        if (!strcmp(name, knobs[k].name)) return k;
    return -1;
}

int mf_knob_apply(mf_knob k, const mf_moe_params *p, mf_moe_params *cf, char *desc, size_t n) {
    *cf = *p;
    int grouped = p->n_group > 1 && p->topk_group < p->n_group;
    switch (k) {
    case MF_KNOB_RSF_DROPPED:
        if (p->rsf == 1.0f) return 0;
        cf->rsf = 1.0f;
        snprintf(desc, n, "rsf = 1");
        return 1;
    case MF_KNOB_RSF_SQUARED:
        if (p->rsf == 1.0f) return 0;
        cf->rsf = p->rsf * p->rsf;
        snprintf(desc, n, "rsf = %.9g (applied twice)", (double)cf->rsf);
        return 1;
    case MF_KNOB_RSF_GATED_BY_RENORM:
        if (p->rsf == 1.0f || p->renormalize) return 0;
        cf->rsf = 1.0f;
        snprintf(desc, n, "rsf = 1 because renormalize is off");
        return 1;
    case MF_KNOB_BIAS_DROPPED:
        if (p->bias == MF_BIAS_NONE) return 0;
        cf->bias = MF_BIAS_NONE;
        snprintf(desc, n, "no bias");
        return 1;
    case MF_KNOB_BIAS_IN_WEIGHTS:
        if (p->bias == MF_BIAS_NONE) return 0;
        cf->variant |= MF_VARIANT_WEIGHTS_FROM_KEYS;
        snprintf(desc, n, "weights from score + bias");
        return 1;
    case MF_KNOB_GROUPING_DROPPED:
        if (!grouped) return 0;
        cf->n_group = 1, cf->topk_group = 1;
        snprintf(desc, n, "n_group = 1");
        return 1;
    case MF_KNOB_GROUP_MASK_ZERO:
        if (!grouped) return 0;
        cf->variant |= MF_VARIANT_MASK_ZERO;
        snprintf(desc, n, "dropped groups' keys = 0");
        return 1;
    case MF_KNOB_GROUP_RULE_SWAPPED:
        if (!grouped || p->E / p->n_group < 2) return 0;
        cf->group_rule = p->group_rule == MF_GROUP_MAX ? MF_GROUP_TOP2_SUM : MF_GROUP_MAX;
        snprintf(desc, n, "group_rule = %s", mf_group_rule_name(cf->group_rule));
        return 1;
    case MF_KNOB_RENORMALIZE_FLIPPED:
        cf->renormalize = !p->renormalize;
        snprintf(desc, n, "renormalize = %s", cf->renormalize ? "true" : "false");
        return 1;
    case MF_KNOB_EPS_MISSING:
        /* the bare sum: eps dropped, and the guards of sum_or_one and max_eps with it */
        if (!p->renormalize || (p->renorm_eps == 0.0f && p->renorm_denom == MF_RENORM_SUM_EPS))
            return 0;
        cf->renorm_eps = 0.0f;
        cf->renorm_denom = MF_RENORM_SUM_EPS;
        snprintf(desc, n, "eps = 0 (denominator: the bare sum)");
        return 1;
    case MF_KNOB_SCORE_SWAPPED:
        cf->score = p->score == MF_SCORE_SIGMOID ? MF_SCORE_SOFTMAX : MF_SCORE_SIGMOID;
        snprintf(desc, n, "score = %s", mf_score_name(cf->score));
        return 1;
    case MF_KNOB_GATE_UP_SWAPPED:
        if (p->layout == MF_LAYOUT_INTERLEAVED) return 0; /* a swap of stacked halves */
        cf->layout = p->layout == MF_LAYOUT_GATE_UP ? MF_LAYOUT_UP_GATE : MF_LAYOUT_GATE_UP;
        snprintf(desc, n, "layout = %s", mf_layout_name(cf->layout));
        return 1;
    case MF_KNOB_EP_OFFSET_IGNORED:
        if (p->expert_offset == 0) return 0;
        cf->expert_offset = 0;
        snprintf(desc, n, "expert_offset = 0");
        return 1;
    case MF_KNOB_EP_OFFSET_TWICE:
        if (p->expert_offset == 0) return 0;
        cf->expert_offset = 2 * p->expert_offset;
        snprintf(desc, n, "expert_offset = %d", cf->expert_offset);
        return 1;
    case MF_KNOB_B2_UNWEIGHTED:
        if (!mf_has_b2(p)) return 0;
        cf->variant |= MF_VARIANT_B2_UNWEIGHTED;
        snprintf(desc, n, "out += w y + b2 (b2 unweighted)");
        return 1;
    case MF_KNOB_INTERLEAVE_IGNORED:
        if (p->layout != MF_LAYOUT_INTERLEAVED) return 0;
        cf->layout = MF_LAYOUT_GATE_UP;
        snprintf(desc, n, "layout = gate_up (interleaved ignored)");
        return 1;
    case MF_KNOB_CLAMP_DROPPED:
        if (p->activation == MF_ACT_SILU_GLU) return 0;
        cf->variant |= MF_VARIANT_CLAMP_DROPPED;
        snprintf(desc, n, "activation %s without its limit %g", mf_activation_name(p->activation),
                 (double)p->act_limit);
        return 1;
    case MF_KNOB_UE8M0_DROPPED:
        if (p->weight_format != MF_WFMT_FP8_BLOCK || p->scale_format != MF_SCALE_UE8M0) return 0;
        cf->scale_format = MF_SCALE_F32;
        snprintf(desc, n, "scale_format = f32");
        return 1;
    case MF_KNOB_SHARED_EVERY_RANK:
        if (p->n_shared == 0 || p->shared_owner == MF_SHOWN_THIS_RANK) return 0;
        cf->variant |= MF_VARIANT_SHARED_EVERY_RANK;
        snprintf(desc, n, "shared experts added on this rank (shared_owner ignored)");
        return 1;
    case MF_KNOB_SHARED_RSF_TWICE:
        if (!mf_shared_added(p) || p->rsf == 1.0f) return 0;
        cf->variant |= MF_VARIANT_SHARED_RSF_TWICE;
        snprintf(desc, n, "shared weight / rsf (rsf divided twice)");
        return 1;
    case MF_KNOB_SHARED_DROPPED:
        if (!mf_shared_added(p)) return 0;
        cf->variant |= MF_VARIANT_SHARED_DROPPED;
        snprintf(desc, n, "n_shared = %d (the last shared slot dropped)", p->n_shared - 1);
        return 1;
    case MF_KNOB_WEIGHT_ON_OUTPUT:
        if (!p->weight_on_input) return 0;
        cf->weight_on_input = 0;
        snprintf(desc, n, "weight_on_input = 0 (the weight on the output)");
        return 1;
    case MF_KNOB_EMPTY_SLOT_WRAPPED:
        if (p->preroute == MF_PREROUTE_NONE) return 0;
        cf->variant |= MF_VARIANT_EMPTY_SLOT_WRAPPED;
        snprintf(desc, n, "topk id -1 read as expert %d", p->E - 1);
        return 1;
    case MF_KNOB_WEIGHTS_IGNORED:
        if (p->preroute == MF_PREROUTE_NONE) return 0;
        cf->variant |= MF_VARIANT_WEIGHTS_IGNORED;
        snprintf(desc, n, "every given weight 1");
        return 1;
    case MF_KNOB_MAP_IGNORED:
        if (p->placement != MF_PLACEMENT_MAP) return 0;
        cf->placement = MF_PLACEMENT_CONTIGUOUS; /* expert_offset is 0 under a map */
        snprintf(desc, n, "placement = contiguous (global ids [0, %d) local)", p->E_local);
        return 1;
    case MF_KNOB_TP_B2_EVERY_RANK:
        if (p->tp_rank == 0 || !mf_has_b2(p)) return 0;
        cf->tp_rank = 0;
        snprintf(desc, n, "tp_rank = 0 (b2 added on rank %d too)", p->tp_rank);
        return 1;
    default: return 0;
    }
}

static void counterfactual_problem(const mf_problem *pb, const mf_moe_params *cf,
                                   mf_problem *out) {
    *out = *pb; /* shares the tensors */
    out->p = *cf;
    out->t.bias = cf->bias != MF_BIAS_NONE ? pb->bias : NULL;
}

mf_status mf_attribute(const mf_problem *pb, const mf_contract *c, const mf_run_result *r,
                       mf_attribution *a, mf_error *err) {
    memset(a, 0, sizeof *a);
    a->best = -1;
    mf_check_opts o;
    mf_check_opts_default(&o);
    mf_verdict *v = malloc(sizeof *v);
    if (!v) return MF_FAIL(err, MF_ENOMEM, "out of memory");
    double best_frac = -1;
    for (int k = 0; k < MF_KNOB_COUNT; k++) {
        mf_knob_result *kr = &a->k[k];
        mf_moe_params cf;
        if (!mf_knob_apply((mf_knob)k, &pb->p, &cf, kr->desc, sizeof kr->desc)) continue;
        kr->applicable = 1;
        mf_problem cpb;
        counterfactual_problem(pb, &cf, &cpb);
        memset(v, 0, sizeof *v);
        mf_status st = mf_check_result(&cpb, c, r, NULL, &o, v, err);
        if (st != MF_OK) {
            free(v);
            return st;
        }
        unsigned long long bad = 0;
        for (int s = 0; s < MF_STAGE_COUNT; s++) bad += v->n_bad[s];
        kr->pass = v->pass;
        kr->bad = bad;
        kr->checked = v->elems_checked;
        if (kr->pass) a->match[a->n_match++] = (mf_knob)k;
        double frac = kr->checked ? 1.0 - (double)v->n_bad[MF_STAGE_OUTPUT] / kr->checked : 0;
        if (v->n_bad[MF_STAGE_ROUTE_IDS]) frac *= 0.5; /* wrong selections count against it */
        if (frac > best_frac) best_frac = frac, a->best = k;
    }
    free(v);
    if (a->n_match == 1) {
        mf_knob_result *kr = &a->k[a->match[0]];
        snprintf(a->text, sizeof a->text,
                 "%s: the output matches the reference with %s on %llu of %llu elements",
                 mf_knob_summary(a->match[0]), kr->desc, kr->checked, kr->checked);
    } else if (a->n_match > 1) {
        int n = snprintf(a->text, sizeof a->text, "%d knobs explain the output equally: ",
                         a->n_match);
        for (int i = 0; i < a->n_match && n < (int)sizeof a->text; i++)
            n += snprintf(a->text + n, sizeof a->text - (size_t)n, "%s%s (%s)", i ? ", " : "",
                          mf_knob_name(a->match[i]), a->k[a->match[i]].desc);
    } else if (a->best >= 0) {
        mf_knob_result *kr = &a->k[a->best];
        snprintf(a->text, sizeof a->text,
                 "no single knob explains it (closest: %s, %s, with %llu mismatches left)",
                 mf_knob_name((mf_knob)a->best), kr->desc, kr->bad);
    } else {
        snprintf(a->text, sizeof a->text, "no single knob explains it (none applies)");
    }
    return MF_OK;
}

/* ---- observability ---- */

mf_status mf_observable_knobs(const mf_problem *pb, const mf_contract *c, unsigned *mask,
                              mf_error *err) {
    return mf_observable_knobs_of(pb, c, ~0u, mask, err);
}

mf_status mf_observable_knobs_of(const mf_problem *pb, const mf_contract *c, unsigned want,
                                 unsigned *mask, mf_error *err) {
    *mask = 0;
    const mf_moe_params *p = &pb->p;
    int T = p->T, H = p->H, k = p->top_k;
    size_t Hs = (size_t)H;
    mf_ref_options ro = {0};
    /* the case's reference, and every applicable knob's counterfactual reference */
    struct cf_state {
        int on;
        mf_moe_params p;
        mf_problem pb;
        mf_routing rt;
        mf_ref_ctx *ctx; /* NULL: shares the case's experts */
    } cf[MF_KNOB_COUNT];
    memset(cf, 0, sizeof cf);
    mf_routing rt;
    MF_TRY(mf_ref_route(p, &pb->t, c, &rt, err));
    mf_ref_ctx *ctx = mf_ref_ctx_new(p, &pb->t, c, &ro, err);
    double *z = malloc(sizeof(double) * Hs), *rad = malloc(sizeof(double) * Hs);
    uint16_t *lo = malloc(2 * Hs), *hi = malloc(2 * Hs), *lo2 = malloc(2 * Hs),
             *hi2 = malloc(2 * Hs);
    uint8_t *fl = malloc(Hs), *fl2 = malloc(Hs);
    mf_status st = MF_OK;
    if (!ctx || !z || !rad || !lo || !hi || !lo2 || !hi2 || !fl || !fl2) {
        st = ctx ? MF_FAIL(err, MF_ENOMEM, "out of memory") : MF_EINVAL;
        goto done;
    }
    for (int kn = 0; kn < MF_KNOB_COUNT && st == MF_OK; kn++) {
        char desc[64];
        if (!(want & (1u << kn))) continue;
        if (!mf_knob_apply((mf_knob)kn, p, &cf[kn].p, desc, sizeof desc)) continue;
        counterfactual_problem(pb, &cf[kn].p, &cf[kn].pb);
        if ((st = mf_ref_route(&cf[kn].p, &cf[kn].pb.t, c, &cf[kn].rt, err)) != MF_OK) break;
        cf[kn].on = 1;
        if (cf[kn].p.layout != p->layout || cf[kn].p.expert_offset != p->expert_offset ||
            cf[kn].p.placement != p->placement || cf[kn].p.weight_on_input != p->weight_on_input ||
            cf[kn].p.tp_rank != p->tp_rank ||
            ((cf[kn].p.variant ^ p->variant) & MF_VARIANT_EXPERTS)) {
            cf[kn].ctx = mf_ref_ctx_new(&cf[kn].p, &cf[kn].pb.t, c, &ro, err);
            if (!cf[kn].ctx) st = MF_EINVAL;
        }
    }
    /* token-major, so each token's experts are computed once per context */
    for (int t = 0; t < T && st == MF_OK; t++) {
        if (rt.invariant_only[t] || rt.n_ambiguous[t] || rt.n_group_ambiguous[t]) continue;
        const int32_t *ids = (const int32_t *)&rt.ref_ids[(size_t)t * k];
        mf_weights wt;
        if ((st = mf_ref_weights(&rt, p, c, t, ids, &wt, err)) != MF_OK) break;
        mf_ref_row row = {z, rad, lo, hi, fl};
        if ((st = mf_ref_token_output(ctx, t, ids, &wt, &row, err)) != MF_OK) break;
        for (int kn = 0; kn < MF_KNOB_COUNT && st == MF_OK; kn++) {
            struct cf_state *s = &cf[kn];
            if (!s->on || (*mask & (1u << kn))) continue;
            if (s->rt.invariant_only[t] || s->rt.n_ambiguous[t] || s->rt.n_group_ambiguous[t])
                continue;
            const int32_t *cids = (const int32_t *)&s->rt.ref_ids[(size_t)t * k];
            /* a bug's selection that the case's routing rejects is caught at routing */
            if (!mf_ref_selection_admissible(&rt, p, t, cids, NULL, 0)) {
                *mask |= 1u << kn;
                continue;
            }
            mf_weights cw;
            if ((st = mf_ref_weights(&s->rt, &s->p, c, t, cids, &cw, err)) != MF_OK) break;
            mf_ref_row crow = {z, rad, lo2, hi2, fl2};
            if ((st = mf_ref_token_output(s->ctx ? s->ctx : ctx, t, cids, &cw, &crow, err)) !=
                MF_OK)
                break;
            for (int col = 0; col < H; col++) {
                if ((fl[col] | fl2[col]) & (MF_ELEM_UNCONSTRAINED | MF_ELEM_NOT_CHECKED |
                                             MF_ELEM_NAN_OK))
                    continue;
                float a0 = mf_bf16_to_f32(lo[col]), a1 = mf_bf16_to_f32(hi[col]);
                float b0 = mf_bf16_to_f32(lo2[col]), b1 = mf_bf16_to_f32(hi2[col]);
                if (b1 < a0 || b0 > a1) {
                    *mask |= 1u << kn;
                    break;
                }
            }
        }
    }
done:
    for (int kn = 0; kn < MF_KNOB_COUNT; kn++) {
        if (cf[kn].on) mf_routing_free(&cf[kn].rt);
        mf_ref_ctx_free(cf[kn].ctx);
    }
    free(z), free(rad), free(lo), free(hi), free(lo2), free(hi2), free(fl), free(fl2);
    mf_ref_ctx_free(ctx);
    mf_routing_free(&rt);
    return st;
}
