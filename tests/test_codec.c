/* test_codec.c: case files.
 *
 *  - random cases: binary encode -> decode gives the same case; text print -> parse gives the
 *    same case; canonical files classify as canonical;
 *  - every byte string decodes to a valid case (random strings of every length 0..300, and
 *    every truncation of a canonical file);
 *  - a truncated or corrupted canonical file is classified damaged, never canonical;
 *  - malformed text cases are rejected with a message naming the line;
 *  - format v2: cases with v2 parameters or generators round-trip, carry version byte 2, and
 *    every other case byte 1.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "casegen.h"
#include "codec.h"

#include "mf_test.h"

/* The version byte and the 9-byte header of a canonical file (codec.h); the checksum covers the
 * bytes after them. */
enum { CANON_PREFIX = 1 + 9 };

static int same_case(const mf_case *a, const mf_case *b) {
    if (memcmp(&a->p, &b->p, sizeof a->p) != 0) return 0;
    for (int t = 0; t < MF_NUM_TENSORS; t++)
        if (a->gen[t].cls != b->gen[t].cls || a->gen[t].seed != b->gen[t].seed ||
            a->gen[t].scale != b->gen[t].scale)
            return 0;
    if (a->n_pokes != b->n_pokes) return 0;
    for (int i = 0; i < a->n_pokes; i++)
        if (a->pokes[i].tensor != b->pokes[i].tensor || a->pokes[i].index != b->pokes[i].index ||
            a->pokes[i].bits != b->pokes[i].bits)
            return 0;
    return 1;
}

static void normalize(mf_case *c) {
    /* padding bytes of the params struct are not part of the case */
    mf_case d;
    memset(&d, 0, sizeof d);
    d.p = c->p;
    memcpy(d.gen, c->gen, sizeof d.gen);
    /* nor the generators of the v2 tensors the case does not use */
    mf_case_drop_absent_gens(&d);
    d.n_pokes = c->n_pokes;
    memcpy(d.pokes, c->pokes, sizeof d.pokes);
    *c = d;
}

int main(void) {
    mf_rng rng = {99};
    /* binary round trips: within the frozen v1 format's limits */
    mf_case_limits lim = {MF_V1_MAX_T, MF_V1_MAX_H, MF_V1_MAX_I, MF_V1_MAX_E, 1e30, 1e30,
                          0,           0,           0,           0,           0};
    uint8_t buf[MF_CASE_MAX_BYTES];
    char text[8192];
    for (int i = 0; i < 3000; i++) {
        mf_case c, d, e;
        memset(&c, 0, sizeof c);
        mf_case_random(&rng, &lim, &c);
        if (i % 3 == 0) c.p.rsf = 0.3f + (float)i / 1000.0f; /* raw rsf path */
        if (i % 5 == 0) c.gen[MF_T_X].scale = 0.37f;
        if (i % 4 == 1) { /* format v2: its parameters and every tensor's generator */
            for (int j = 0; j < mf_n_params_v2; j++) {
                const mf_param_v2 *d = &mf_params_v2[j];
                double v = d->kind == MF_PK_ENUM ? mf_rng_below(&rng, (uint32_t)d->e->count)
                                                 : d->lo + mf_rng_below(&rng, 2) * (d->hi - d->lo);
                mf_param_v2_set(&c.p, d, v);
            }
            for (int t = 0; t < MF_NUM_TENSORS; t++) {
                c.gen[t].cls = (uint8_t)mf_rng_below(&rng, MF_GEN_COUNT);
                c.gen[t].seed = mf_rng_next(&rng);
            }
            c.p.activation = (mf_activation)mf_rng_below(&rng, MF_ACT_COUNT);
            mf_case_fix_v2(&c); /* act_limit, act_alpha as the activation needs them */
        }
        normalize(&c);
        EXPECT(mf_case_validate(&c, NULL) == MF_OK, "random case %d invalid", i);
        size_t n = mf_case_encode(&c, i & 1, buf, sizeof buf);
        EXPECT(n > 0, "case %d did not encode", i);
        EXPECT(n > 0 && buf[0] == mf_case_format(&c), "case %d: version byte %d, format v%d", i,
               n > 0 ? buf[0] : -1, mf_case_format(&c));
        memset(&d, 0, sizeof d);
        mf_case_decode(buf, n, &d, NULL);
        normalize(&d);
        EXPECT(same_case(&c, &d), "binary round trip of case %d differs", i);

        char why[256];
        EXPECT(mf_case_classify(buf, n, why, sizeof why) == ((i & 1) ? MF_BIN_CANONICAL
                                                                     : MF_BIN_RAW),
               "classification of case %d: %s", i, why);
        FILE *f = fmemopen(text, sizeof text, "w");
        mf_case_print_text(&c, f);
        fclose(f);
        mf_error err;
        memset(&e, 0, sizeof e);
        EXPECT(mf_case_parse_text(text, &e, &err) == MF_OK, "text of case %d rejected: %s", i,
               err.msg);
        normalize(&e);
        EXPECT(same_case(&c, &e), "text round trip of case %d differs:\n%s", i, text);
        if (i & 1) {
            /* truncations and single-byte corruptions of a canonical file */
            for (size_t cut = 0; cut < n; cut++) {
                mf_case t;
                mf_case_decode(buf, cut, &t, NULL);
                EXPECT(mf_case_validate(&t, NULL) == MF_OK, "truncation to %zu invalid", cut);
                if (cut > 0)
                    EXPECT(mf_case_classify(buf, cut, why, sizeof why) != MF_BIN_CANONICAL,
                           "truncation of case %d to %zu bytes classified canonical", i, cut);
            }
            /* a flipped bit in the checksummed body, after the version byte and the header */
            EXPECT(n > CANON_PREFIX, "canonical case %d has no body (%zu bytes)", i, n);
            if (n > CANON_PREFIX) {
                uint8_t bad[MF_CASE_MAX_BYTES];
                memcpy(bad, buf, n);
                size_t at = CANON_PREFIX + mf_rng_below(&rng, (uint32_t)(n - CANON_PREFIX));
                bad[at] ^= (uint8_t)(1u << mf_rng_below(&rng, 8));
                EXPECT(mf_case_classify(bad, n, why, sizeof why) == MF_BIN_DAMAGED,
                       "corrupted byte %zu of case %d not detected", at, i);
            }
        }
    }
    /* every byte string decodes to a valid case */
    for (int i = 0; i < 20000; i++) {
        size_t n = mf_rng_below(&rng, 301);
        for (size_t j = 0; j < n; j++) buf[j] = (uint8_t)mf_rng_next(&rng);
        if (n > 0 && i % 2) buf[0] = 2; /* format v2: tagged fields, v2 pokes */
        mf_case c;
        mf_case_decode(buf, n, &c, NULL);
        mf_error err;
        EXPECT(mf_case_validate(&c, &err) == MF_OK, "random bytes decode to an invalid case: %s",
               err.msg);
    }
    /* full model sizes beyond v1: valid, carried by the text format; v1 refuses them */
    {
        static const int dims[][3] = {{32768, 64, 64}, {4, 4096, 14336}, {4, 7168, 2048}};
        for (int i = 0; i < 3; i++) {
            mf_case c, e;
            memset(&c, 0, sizeof c);
            mf_case_random(&rng, &lim, &c);
            c.p.T = dims[i][0], c.p.H = dims[i][1], c.p.I = dims[i][2];
            normalize(&c);
            mf_error err = {0};
            EXPECT(mf_case_validate(&c, &err) == MF_OK, "full-size case %d invalid: %s", i,
                   err.msg);
            int beyond = c.p.T > MF_V1_MAX_T || c.p.I > MF_V1_MAX_I;
            EXPECT((mf_case_encode(&c, 1, buf, sizeof buf) == 0) == beyond,
                   "full-size case %d: v1 encoding %s", i, beyond ? "accepted" : "refused");
            FILE *f = fmemopen(text, sizeof text, "w");
            mf_case_print_text(&c, f);
            fclose(f);
            memset(&e, 0, sizeof e);
            EXPECT(mf_case_parse_text(text, &e, &err) == MF_OK, "full-size case %d text: %s", i,
                   err.msg);
            normalize(&e);
            EXPECT(same_case(&c, &e), "text round trip of full-size case %d differs", i);
        }
    }
    /* malformed text */
    static const char *bad_text[] = {
        "T = 0\n",
        "T = 32769\n",
        "I = 16385\n",
        "T = 8\nH = abc\n",
        "score = cosine\n",
        "E = 12\nn_group = 5\n",
        "E = 8\ntop_k = 9\n",
        "frobnicate = 1\n",
        "T 8\n",
        "E = 16\nE_local = 8\nexpert_offset = 12\n",
        "gen.x = normal seed=zz\n",
        "gen.q = normal\n",
        "poke = x 1\n",
        "eps = 1e-10\n",
        "rsf = -1\n",
        "rsf = nan\n",
        "E = 16\nn_group = 4\ntopk_group = 1\ntop_k = 5\n",
        "renorm_denom = sometimes\n",
        "nonfinite = 1\n",
        "renorm_denom = sum_or_one\nrenorm_denom = max_eps\n",
    };
    for (size_t i = 0; i < sizeof bad_text / sizeof bad_text[0]; i++) {
        mf_case c;
        mf_error err = {0};
        EXPECT(mf_case_parse_text(bad_text[i], &c, &err) == MF_EINVAL && err.msg[0],
               "malformed text %zu accepted: %s", i, bad_text[i]);
    }
    /* format v2: a v1 case is written as v1; a case with a v2 parameter as v2, and the text
     * names it; a canonical file of a version this build does not know is refused */
    {
        mf_case c, d;
        mf_case_default(&c);
        size_t n = mf_case_encode(&c, 1, buf, sizeof buf);
        EXPECT(n > 0 && buf[0] == 1, "the default case is written as v1 (byte %d)", buf[0]);
        c.p.renorm_denom = MF_RENORM_MAX_EPS;
        c.p.nonfinite = MF_NONFINITE_ZERO;
        n = mf_case_encode(&c, 1, buf, sizeof buf);
        EXPECT(n > 0 && buf[0] == 2, "a case with v2 parameters is written as v2 (byte %d)",
               buf[0]);
        mf_case_decode(buf, n, &d, NULL);
        EXPECT(d.p.renorm_denom == MF_RENORM_MAX_EPS && d.p.nonfinite == MF_NONFINITE_ZERO,
               "v2 parameters decode: %d %d", d.p.renorm_denom, d.p.nonfinite);
        FILE *f = fmemopen(text, sizeof text, "w");
        mf_case_print_text(&c, f);
        fclose(f);
        EXPECT(strstr(text, "(format v2)") && strstr(text, "renorm_denom = max_eps\n") &&
                   strstr(text, "nonfinite = zero\n"),
               "v2 text:\n%s", text);
        char why[256];
        buf[0] = 3;
        EXPECT(mf_case_classify(buf, n, why, sizeof why) == MF_BIN_DAMAGED &&
                   strstr(why, "not one this moefuzz knows"),
               "a canonical v3 file: %s", why);
    }
    return mf_test_exit("codec");
}
