/* test_sizes.c: expert weights generated on demand.
 *
 *   - a lazy case (expert weights over MF_EAGER_EXPERT_BYTES) generates, bit for bit, the same
 *     experts as the whole tensor would hold, pokes included; the experts it leaves out are
 *     poison; every expert the case's own routing can select is generated
 *   - the CPU kernel passes the check of a lazy case, and a kernel that reads other experts
 *     (the expert-parallel offset ignored) fails it
 *   - the routable experts include every expert a built-in contract admits (the tanh sigmoid's
 *     absolute error, the bias rounded to bf16)
 */
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "case.h"
#include "check.h"
#include "codec.h"
#include "forward.h"
#include "mf_test.h"
#include "route.h"

/* A case just over the eager limit: 64 experts of 3 * 1024 * 704 bf16 (276 MiB in all). */
static void lazy_case(mf_case *c, uint64_t seed) {
    mf_case_default(c);
    c->p.T = 3;
    c->p.H = 1024;
    c->p.I = 704;
    c->p.E = c->p.E_local = 64;
    c->p.n_group = 8;
    c->p.topk_group = 4;
    c->p.top_k = 6;
    for (int t = 0; t < MF_NUM_TENSORS; t++) c->gen[t].seed = seed * 977 + (uint64_t)t;
    c->gen[MF_T_W2].cls = MF_GEN_NEAR_TIES; /* a generator that reads a neighbour's index */
}

static void test_lazy_bits(void) {
    for (uint64_t seed = 1; seed <= 2; seed++) {
        mf_case c;
        lazy_case(&c, seed);
        EXPECT(mf_case_experts_lazy(&c), "seed %llu: the case is not lazy",
               (unsigned long long)seed);
        mf_problem lazy, whole;
        mf_error err = {0};
        EXPECT(mf_problem_build(&c, &lazy, &err) == MF_OK, "build: %s", err.msg);
        EXPECT(mf_problem_build(&c, &whole, &err) == MF_OK, "build: %s", err.msg);
        EXPECT(mf_problem_materialise_all(&whole, &err) == MF_OK, "all: %s", err.msg);
        int EL = c.p.E_local, ready = mf_problem_experts_ready(&lazy);
        EXPECT(ready > 0 && ready < EL, "seed %llu: %d of %d experts generated",
               (unsigned long long)seed, ready, EL);
        EXPECT(mf_case_bytes(&c) == mf_problem_bytes(&lazy) + 2.0 * c.p.T * c.p.H,
               "case bytes %.0f, problem %.0f", mf_case_bytes(&c), mf_problem_bytes(&lazy));
        size_t n13 = (size_t)2 * c.p.I * c.p.H, n2 = (size_t)c.p.H * c.p.I;
        /* every expert the exact routing selects under the kernel's contract is generated */
        mf_routing rt;
        EXPECT(mf_ref_route(&lazy.p, &lazy.t, &mf_contract_cpu_scalar, &rt, &err) == MF_OK,
               "route: %s", err.msg);
        for (int t = 0; t < c.p.T; t++)
            for (int e = 0; e < c.p.E; e++)
                if (rt.cls[(size_t)t * c.p.E + e] != MF_ROUTE_OUT)
                    EXPECT(mf_problem_expert_ready(&lazy, e), "tok %d: expert %d not generated",
                           t, e);
        mf_routing_free(&rt);
        int absent = -1;
        for (int le = 0; le < EL; le++) {
            const uint16_t *a13 = lazy.w13 + le * n13, *b13 = whole.w13 + le * n13;
            const uint16_t *a2 = lazy.w2 + le * n2, *b2 = whole.w2 + le * n2;
            if (mf_problem_expert_ready(&lazy, le)) {
                EXPECT(!memcmp(a13, b13, 2 * n13) && !memcmp(a2, b2, 2 * n2),
                       "expert %d differs from the whole tensor's", le);
                continue;
            }
            absent = le;
            EXPECT(a13[0] == MF_EXPERT_POISON_BF16 &&
                       a13[(size_t)c.p.I * c.p.H] == MF_EXPERT_POISON_BF16 &&
                       a2[0] == MF_EXPERT_POISON_BF16,
                   "expert %d not poisoned", le);
        }
        /* the reference refuses to read an expert that was not generated: poison must never
         * turn into an unconstrained element that passes */
        if (absent >= 0) {
            mf_ref_options ro = {0};
            mf_ref_ctx *ctx = mf_ref_ctx_new(&lazy.p, &lazy.t, &mf_contract_cpu_scalar, &ro, &err);
            EXPECT(ctx != NULL, "reference context: %s", err.msg);
            if (ctx) {
                mf_expert_out eo;
                EXPECT(mf_ref_expert(ctx, 0, absent, &eo, &err) == MF_EINTERNAL,
                       "the reference read expert %d, which was not generated", absent);
                mf_ref_ctx_free(ctx);
            }
        }
        /* a poke in an expert left out lands when the expert is generated, and is undone by
         * the next case */
        if (absent >= 0) {
            mf_case d = c;
            d.n_pokes = 1;
            d.pokes[0] = (mf_poke){MF_T_W2, (uint32_t)(absent * n2 + 5), 0x3f80};
            EXPECT(mf_problem_update(&d, &lazy, &err) == MF_OK, "update: %s", err.msg);
            EXPECT(mf_problem_materialise(&lazy, absent, &err) == MF_OK, "%s", err.msg);
            EXPECT(lazy.w2[absent * n2 + 5] == 0x3f80, "the poke did not land");
            EXPECT(!memcmp(lazy.w2 + absent * n2, whole.w2 + absent * n2, 10) &&
                       lazy.w2[absent * n2 + 6] == whole.w2[absent * n2 + 6],
                   "the poked expert differs elsewhere");
            EXPECT(mf_problem_update(&c, &lazy, &err) == MF_OK, "update: %s", err.msg);
            EXPECT(lazy.w2[absent * n2 + 5] == whole.w2[absent * n2 + 5], "the poke stayed");
        }
        mf_problem_free(&lazy);
        mf_problem_free(&whole);
    }
}

static int check_case_opts(const char *spec, const mf_case *c, int metamorphic, mf_verdict *v) {
    mf_backend b;
    mf_error err = {0};
    if (mf_backend_open(spec, &b, &err) != MF_OK) {
        printf("open %s: %s\n", spec, err.msg);
        return 0;
    }
    mf_problem pb;
    mf_case cc = *c;
    int ok = mf_problem_build(&cc, &pb, &err) == MF_OK;
    mf_check_opts o;
    mf_check_opts_default(&o);
    o.attribute = 0;
    o.metamorphic = metamorphic;
    ok = ok && mf_check_problem(&pb, &b, &o, v, &err) == MF_OK;
    if (!ok) printf("%s: %s\n", spec, err.msg);
    mf_problem_free(&pb);
    mf_backend_close(&b);
    return ok;
}

static int check_case(const char *spec, const mf_case *c, mf_verdict *v) {
    return check_case_opts(spec, c, 0, v);
}

static void test_lazy_check(void) {
    mf_case c;
    lazy_case(&c, 3);
    mf_verdict v;
    EXPECT(check_case("cpu", &c, &v) && v.pass && v.elems_checked > 0,
           "the CPU kernel on a lazy case: pass %d, %llu elements checked", v.pass,
           v.elems_checked);
    /* the metamorphic relations on a lazy case: the ep-shards halves read the experts' states
     * at their own offsets (a misread state would read poison or fail as not generated) */
    EXPECT(check_case_opts("cpu", &c, 1, &v) && v.pass && v.has_meta &&
               v.meta.applicable[MF_META_EP_SHARDS] && !v.meta.n_violated,
           "the CPU kernel on a lazy case with the relations: pass %d, ep-shards %d, %d violated",
           v.pass, v.has_meta ? v.meta.applicable[MF_META_EP_SHARDS] : -1,
           v.has_meta ? v.meta.n_violated : -1);
    /* expert parallelism: the rank holds 32 of 64 experts from 16; a kernel that ignores the
     * offset reads local experts the routing never selects */
    c.p.E_local = 32;
    c.p.expert_offset = 16;
    c.p.H = 2048; /* still lazy with half the experts */
    EXPECT(mf_case_experts_lazy(&c), "the EP case is not lazy");
    EXPECT(check_case("cpu", &c, &v) && v.pass, "the CPU kernel on a lazy EP case fails");
    EXPECT(check_case("cpu-mutant:ep-offset-ignored", &c, &v) && !v.pass &&
               v.n_bad[MF_STAGE_OUTPUT] + v.n_bad[MF_STAGE_NONFINITE] > 0,
           "a kernel reading other experts: pass %d, %llu output %llu nonfinite", v.pass,
           v.n_bad[MF_STAGE_OUTPUT], v.n_bad[MF_STAGE_NONFINITE]);
}

/* Random decoded cases (H = I = 1) whose admissible experts under flashinfer-0.7-trtllm-bf16
 * lay outside the routable set: the tanh sigmoid's absolute error on a scaled-down score, and
 * a tiny bias rounded to bf16. */
static const char *const routable_cases[] = {
    "T = 1\nH = 1\nI = 1\nE = 646\nE_local = 189\nexpert_offset = 380\ntop_k = 4\n"
    "score = sigmoid\nbias = none\nn_group = 38\ntopk_group = 29\ngroup_rule = top2_sum\n"
    "renormalize = true\neps = 0\nrsf = 8\nrsf_site = output\nactivation = silu_glu\n"
    "layout = up_gate\nlogits_dtype = bf16\n"
    "gen.x = normal scale=5.96046448e-08 seed=0xdff01f97daf78623\n"
    "gen.logits = heavy seed=0x43d99a8f2c56f2af\n"
    "gen.bias = uniform scale=4472.11279 seed=0xb4bbf887ecbd2cb2\n"
    "gen.w13 = heavy scale=16777216 seed=0xb86b1b31cd40a6c3\n"
    "gen.w2 = uniform scale=5.96046448e-08 seed=0xa50cfed316905d63\n",
    "T = 5\nH = 1\nI = 1\nE = 178\nE_local = 158\nexpert_offset = 6\ntop_k = 5\n"
    "score = softmax\nbias = f32\nn_group = 178\ntopk_group = 126\ngroup_rule = top2_sum\n"
    "renormalize = true\neps = 1e-20\nrsf = 4\nrsf_site = output\nactivation = silu_glu\n"
    "layout = up_gate\nlogits_dtype = f32\n"
    "gen.x = normal seed=0xe0610b65855a10c2\n"
    "gen.logits = large_pos scale=5.5657739e-07 seed=0x795d83448c8b1c86\n"
    "gen.bias = underflow scale=27.4232559 seed=0xfe0541afbc4f8bac\n"
    "gen.w13 = sparse seed=0xe693c42f6d37071f\n"
    "gen.w2 = heavy seed=0x9e13e15c2ed86339\n",
};

static void test_routable_every_contract(void) {
    for (size_t i = 0; i < sizeof routable_cases / sizeof routable_cases[0]; i++) {
        mf_case c;
        mf_problem pb;
        mf_error err = {0};
        EXPECT(mf_case_parse_text(routable_cases[i], &c, &err) == MF_OK, "parse: %s", err.msg);
        EXPECT(mf_problem_build(&c, &pb, &err) == MF_OK, "build: %s", err.msg);
        uint8_t *mask = calloc((size_t)c.p.E_local, 1);
        EXPECT(mask && mf_problem_routable(&pb, mask, &err) == MF_OK, "routable: %s", err.msg);
        for (const mf_contract *const *cl = mf_contract_list(); *cl && mask; cl++) {
            mf_routing rt;
            EXPECT(mf_ref_route(&pb.p, &pb.t, *cl, &rt, &err) == MF_OK, "route: %s", err.msg);
            int missed = 0, first = -1;
            for (int t = 0; t < c.p.T; t++) {
                if (rt.invariant_only[t]) continue;
                for (int e = 0; e < c.p.E; e++) {
                    int le = e - c.p.expert_offset;
                    if (rt.cls[(size_t)t * c.p.E + e] == MF_ROUTE_OUT || le < 0 ||
                        le >= c.p.E_local || mask[le])
                        continue;
                    missed++;
                    if (first < 0) first = e;
                }
            }
            EXPECT(missed == 0, "case %zu, %s: %d admissible experts not routable (first %d)", i,
                   (*cl)->name, missed, first);
            mf_routing_free(&rt);
        }
        free(mask);
        mf_problem_free(&pb);
    }
}

int main(void) {
    test_routable_every_contract();
    test_lazy_bits();
    test_lazy_check();
    return mf_test_exit("test_sizes");
}
