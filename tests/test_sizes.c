/* test_sizes.c: expert weights generated on demand.
 *
 *   - a lazy case (expert weights over MF_EAGER_EXPERT_BYTES) generates, bit for bit, the same
 *     experts as the whole tensor would hold, pokes included; the experts it leaves out are
 *     poison; every expert the case's own routing can select is generated
 *   - the CPU kernel passes the check of a lazy case, and a kernel that reads other experts
 *     (the expert-parallel offset ignored) fails it
 */
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "case.h"
#include "check.h"
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

int main(void) {
    test_lazy_bits();
    test_lazy_check();
    return mf_test_exit("test_sizes");
}
