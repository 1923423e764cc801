/* test_safetensors.c: the safetensors reader and writer, and case / result files built on it.
 *
 *  - round trips: tensors of every dtype moefuzz uses and metadata with escapes survive
 *    writer -> reader bit for bit; a case file gives back the same parameters and tensors; a
 *    result file the same outputs;
 *  - each way a file can be malformed (header length, JSON, dtype, shape, offsets, overlap,
 *    duplicates, nesting, escapes) is refused with a message that names it;
 *  - every truncation of a valid file is refused, and 20000 files with random byte changes
 *    parse without a crash (run under ASan: no read outside the buffer);
 *  - case and result files that disagree with themselves (metadata against tensors, the text
 *    case against the metadata, a missing tensor or parameter) are refused with a message.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bf16.h"
#include "codec.h"
#include "exchange.h"
#include "fp8.h"
#include "mf_test.h"
#include "safetensors.h"

/* A file from a header and a data section, as bytes. */
static size_t make_file(uint8_t *out, size_t cap, const char *json, const uint8_t *data,
                        size_t n_data) {
    size_t n = strlen(json);
    if (8 + n + n_data > cap) return 0;
    for (int i = 0; i < 8; i++) out[i] = (uint8_t)((uint64_t)n >> (8 * i));
    memcpy(out + 8, json, n);
    if (n_data) memcpy(out + 8 + n, data, n_data);
    return 8 + n + n_data;
}

static void expect_error(const char *json, size_t n_data, const char *want, int line) {
    static uint8_t buf[1 << 16], data[4096];
    memset(data, 0x3c, sizeof data);
    size_t n = make_file(buf, sizeof buf, json, data, n_data);
    mf_safetensors st;
    mf_error err = {0};
    mf_status s = mf_st_parse(buf, n, &st, &err);
    if (s == MF_OK) {
        printf("FAIL line %d: accepted %s\n", line, json);
        failures++;
        mf_st_free(&st);
    } else if (!strstr(err.msg, want)) {
        printf("FAIL line %d: message '%s' lacks '%s'\n", line, err.msg, want);
        failures++;
    }
}
#define EXPECT_ERROR(json, n_data, want) expect_error(json, n_data, want, __LINE__)

static void test_malformed(void) {
    uint8_t buf[64] = {0};
    mf_safetensors st;
    mf_error err = {0};
    EXPECT(mf_st_parse(buf, 5, &st, &err) != MF_OK && strstr(err.msg, "shorter than"), "%s",
           err.msg);
    /* a header length beyond the file */
    memset(buf, 0, sizeof buf);
    buf[0] = 0xff, buf[1] = 0xff;
    EXPECT(mf_st_parse(buf, 40, &st, &err) != MF_OK && strstr(err.msg, "exceeds"), "%s",
           err.msg);
    memset(buf, 0xff, 8);
    EXPECT(mf_st_parse(buf, 40, &st, &err) != MF_OK && strstr(err.msg, "exceeds"), "%s",
           err.msg);
    /* an empty header: not JSON */
    memset(buf, 0, 8);
    EXPECT(mf_st_parse(buf, 8, &st, &err) != MF_OK && strstr(err.msg, "expected '{'"), "%s",
           err.msg);

    EXPECT_ERROR("", 0, "expected '{'");
    EXPECT_ERROR("[1,2]", 0, "expected '{'");
    EXPECT_ERROR("{\"x\":", 0, "the header ended");
    EXPECT_ERROR("{\"x\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}", 4,
                 "expected ',' or '}'");
    EXPECT_ERROR("{\"x\":{\"dtype\":\"Q7\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4,
                 "unknown dtype 'Q7'");
    EXPECT_ERROR("{\"x\":{\"dtype\":\"F32\",\"shape\":[2.5],\"data_offsets\":[0,4]}}", 4,
                 "integers");
    EXPECT_ERROR("{\"x\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", 4,
                 "non-negative");
    EXPECT_ERROR("{\"x\":{\"dtype\":\"F32\",\"shape\":[99999999999999999999],"
                 "\"data_offsets\":[0,4]}}",
                 4, "too large");
    EXPECT_ERROR("{\"x\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,1],"
                 "\"data_offsets\":[0,4]}}",
                 4, "more than 8");
    EXPECT_ERROR("{\"x\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4,8]}}", 8,
                 "more than 2");
    EXPECT_ERROR("{\"x\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4]}}", 8,
                 "[begin, end]");
    EXPECT_ERROR("{\"x\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}", 8,
                 "reach past");
    EXPECT_ERROR("{\"x\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[8,4]}}", 16,
                 "end before");
    EXPECT_ERROR("{\"x\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,16]}}", 16,
                 "need 12");
    EXPECT_ERROR("{\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                 "\"y\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}",
                 12, "overlap");
    EXPECT_ERROR("{\"x\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                 "\"x\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}",
                 8, "appears twice");
    EXPECT_ERROR("{\"x\":{\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "lacks \"dtype\"");
    EXPECT_ERROR("{\"x\":{\"dtype\":\"F32\",\"data_offsets\":[0,4]}}", 4, "lacks \"shape\"");
    EXPECT_ERROR("{\"x\":{\"dtype\":\"F32\",\"shape\":[1]}}", 4, "lacks \"data_offsets\"");
    EXPECT_ERROR("{\"x\":{\"dtype\":\"F32\",\"dtype\":\"F32\",\"shape\":[1],"
                 "\"data_offsets\":[0,4]}}",
                 4, "repeats");
    EXPECT_ERROR("{\"__metadata__\":{\"a\":1}}", 0, "must be a string");
    EXPECT_ERROR("{\"__metadata__\":{\"a\":\"1\",\"a\":\"2\"}}", 0, "appears twice");
    EXPECT_ERROR("{\"__metadata__\":{},\"__metadata__\":{}}", 0, "appears twice");
    EXPECT_ERROR("{} x", 0, "unexpected bytes");
    EXPECT_ERROR("{\"a\\q\":1}", 0, "bad escape");
    EXPECT_ERROR("{\"__metadata__\":{\"a\":\"\\ud800\"}}", 0, "surrogate");
    EXPECT_ERROR("{\"__metadata__\":{\"a\":\"\\udc00x\"}}", 0, "surrogate");
    EXPECT_ERROR("{\"__metadata__\":{\"a\":\"\\u0000\"}}", 0, "\\u0000");
    EXPECT_ERROR("{\"__metadata__\":{\"a\":\"\\u12\"}}", 0, "\\u escape");
    EXPECT_ERROR("{\"__metadata__\":{\"a\":\"\x01\"}}", 0, "control character");
    EXPECT_ERROR("{\"__metadata__\":{\"a\":\"unterminated}}", 0, "unterminated");
    /* unknown fields are skipped, but not without limit */
    char deep[600];
    strcpy(deep, "{\"x\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4],\"more\":");
    for (int i = 0; i < 200; i++) strcat(deep, "[");
    EXPECT_ERROR(deep, 4, "nesting deeper");

    /* accepted: padding, unknown fields, escapes, an empty header */
    static uint8_t file[4096];
    const char *ok = "{\"__metadata__\":{\"k\\\"ey\":\"v\\u00e9\\ud83d\\ude00\\n\"},"
                     "\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8],"
                     "\"extra\":{\"a\":[1,-2.5e3,true,null,\"s\"]}},"
                     "\"s\":{\"dtype\":\"I32\",\"shape\":[],\"data_offsets\":[8,12]},"
                     "\"z\":{\"dtype\":\"BF16\",\"shape\":[0,3],\"data_offsets\":[12,12]}}   ";
    uint8_t data[12] = {0};
    size_t n = make_file(file, sizeof file, ok, data, sizeof data);
    mf_status s = mf_st_parse(file, n, &st, &err);
    EXPECT(s == MF_OK, "valid file refused: %s", err.msg);
    if (s == MF_OK) {
        EXPECT(st.n_tensors == 3 && st.n_meta == 1, "%d tensors, %d meta", st.n_tensors,
               st.n_meta);
        const char *v = mf_st_meta_get(&st, "k\"ey");
        EXPECT(v && !strcmp(v, "v\xc3\xa9\xf0\x9f\x98\x80\n"), "escapes decoded as '%s'",
               v ? v : "(none)");
        const mf_st_tensor *t = mf_st_find(&st, "s");
        EXPECT(t && t->ndim == 0 && t->dtype == MF_ST_I32, "scalar tensor");
        mf_st_free(&st);
    }
    EXPECT(make_file(file, sizeof file, "{}", NULL, 0) == 10 &&
               mf_st_parse(file, 10, &st, &err) == MF_OK && st.n_tensors == 0,
           "empty header: %s", err.msg);
    mf_st_free(&st);
}

static void test_round_trip_and_damage(const char *dir) {
    char path[512];
    snprintf(path, sizeof path, "%s/rt.safetensors", dir);
    uint16_t a[6] = {0x3f80, 0xbf80, 0x7fc0, 0x0001, 0x7f80, 0x1234};
    float b[5] = {1.5f, -0.0f, 3e-39f, 1e30f, -7.25f};
    int32_t c[4] = {-1, 0, 7, 2147483647};
    uint64_t sa[2] = {2, 3}, sb[1] = {5}, sc[3] = {1, 2, 2};
    mf_st_writer w;
    mf_error err = {0};
    mf_st_writer_init(&w);
    EXPECT(mf_st_writer_add(&w, "a", MF_ST_BF16, 2, sa, a, &err) == MF_OK, "%s", err.msg);
    EXPECT(mf_st_writer_add(&w, "b.f32", MF_ST_F32, 1, sb, b, &err) == MF_OK, "%s", err.msg);
    EXPECT(mf_st_writer_add(&w, "c", MF_ST_I32, 3, sc, c, &err) == MF_OK, "%s", err.msg);
    EXPECT(mf_st_writer_meta(&w, "text", "line 1\n\"quoted\" \\ tab\t\x01 end", &err) == MF_OK,
           "%s", err.msg);
    EXPECT(mf_st_writer_save(&w, path, &err) == MF_OK, "%s", err.msg);
    mf_st_writer_free(&w);
    mf_safetensors st;
    mf_status s = mf_st_load(path, &st, &err);
    EXPECT(s == MF_OK, "%s", err.msg);
    if (s != MF_OK) return;
    const mf_st_tensor *ta, *tb, *tc;
    EXPECT(mf_st_expect(&st, "a", MF_ST_BF16, 2, sa, &ta, &err) == MF_OK &&
               !memcmp(ta->data, a, sizeof a),
           "a: %s", err.msg);
    EXPECT(mf_st_expect(&st, "b.f32", MF_ST_F32, 1, sb, &tb, &err) == MF_OK &&
               !memcmp(tb->data, b, sizeof b),
           "b: %s", err.msg);
    EXPECT(mf_st_expect(&st, "c", MF_ST_I32, 3, sc, &tc, &err) == MF_OK &&
               !memcmp(tc->data, c, sizeof c),
           "c: %s", err.msg);
    EXPECT(mf_st_expect(&st, "a", MF_ST_F32, 2, sa, NULL, &err) != MF_OK &&
               strstr(err.msg, "has dtype BF16, expected F32"),
           "%s", err.msg);
    EXPECT(mf_st_expect(&st, "a", MF_ST_BF16, 2, sc, NULL, &err) != MF_OK &&
               strstr(err.msg, "has shape [2, 3], expected [1, 2]"),
           "%s", err.msg);
    EXPECT(mf_st_expect(&st, "nope", MF_ST_BF16, 2, sa, NULL, &err) != MF_OK &&
               strstr(err.msg, "missing tensor 'nope'"),
           "%s", err.msg);
    const char *m = mf_st_meta_get(&st, "text");
    EXPECT(m && !strcmp(m, "line 1\n\"quoted\" \\ tab\t\x01 end"), "metadata '%s'", m ? m : "");
    /* the data section starts 8-byte aligned */
    uint64_t hl = 0;
    for (int i = 7; i >= 0; i--) hl = hl << 8 | st.buf[i];
    EXPECT((8 + hl) % 8 == 0, "header of %llu bytes", (unsigned long long)hl);

    /* every truncation is refused; random damage never crashes */
    uint8_t *orig = st.buf;
    size_t size = (size_t)(tc->data - orig) + sizeof c;
    uint8_t *copy = malloc(size);
    int accepted = 0;
    for (size_t n = 0; n < size; n++) {
        memcpy(copy, orig, n);
        mf_safetensors t2;
        if (mf_st_parse(copy, n, &t2, &err) == MF_OK) accepted++, mf_st_free(&t2);
    }
    EXPECT(accepted == 0, "%d truncations accepted", accepted);
    uint64_t rng = 0x9E3779B97F4A7C15ull;
    int parsed = 0;
    for (int i = 0; i < 20000; i++) {
        memcpy(copy, orig, size);
        int flips = 1 + i % 4;
        for (int f = 0; f < flips; f++) {
            rng = rng * 6364136223846793005ull + 1442695040888963407ull;
            size_t at = (size_t)(rng >> 33) % (i % 2 ? size : 8 + hl); /* the header, mostly */
            copy[at] = (uint8_t)(rng >> 13);
        }
        size_t n = size - (size_t)((rng >> 7) % 3 == 0 ? (rng >> 40) % size : 0);
        mf_safetensors t2;
        if (mf_st_parse(copy, n, &t2, &err) == MF_OK) parsed++, mf_st_free(&t2);
    }
    printf("random damage: %d of 20000 damaged files still parse (no crash)\n", parsed);
    free(copy);
    mf_st_free(&st);
    unlink(path);
}

/* ---- case and result files ---- */

/* Rewrites a case file with one change: a tensor dropped or retyped, a metadata entry changed
 * or dropped. */
static void rewrite(const char *src, const char *dst, const char *drop_tensor,
                    const char *f32_tensor, const char *meta_key, const char *meta_value) {
    mf_safetensors st;
    mf_error err = {0};
    if (mf_st_load(src, &st, &err) != MF_OK) {
        printf("FAIL: %s\n", err.msg);
        failures++;
        return;
    }
    mf_st_writer w;
    mf_st_writer_init(&w);
    float *conv = NULL;
    for (int i = 0; i < st.n_meta; i++) {
        if (meta_key && !strcmp(st.meta[i].key, meta_key)) {
            if (meta_value)
                EXPECT(mf_st_writer_meta(&w, meta_key, meta_value, &err) == MF_OK, "%s", err.msg);
            continue;
        }
        EXPECT(mf_st_writer_meta(&w, st.meta[i].key, st.meta[i].value, &err) == MF_OK, "%s",
               err.msg);
    }
    for (int i = 0; i < st.n_tensors; i++) {
        const mf_st_tensor *t = &st.tensors[i];
        if (drop_tensor && !strcmp(t->name, drop_tensor)) continue;
        if (f32_tensor && !strcmp(t->name, f32_tensor) && t->dtype == MF_ST_BF16) {
            size_t n = (t->end - t->begin) / 2;
            conv = malloc(n * 4);
            for (size_t j = 0; j < n; j++) {
                uint16_t h;
                memcpy(&h, t->data + 2 * j, 2);
                conv[j] = mf_bf16_to_f32(h);
            }
            EXPECT(mf_st_writer_add(&w, t->name, MF_ST_F32, t->ndim, t->shape, conv, &err) == MF_OK,
                   "%s", err.msg);
            continue;
        }
        EXPECT(mf_st_writer_add(&w, t->name, t->dtype, t->ndim, t->shape, t->data, &err) == MF_OK,
               "%s", err.msg);
    }
    if (mf_st_writer_save(&w, dst, &err) != MF_OK) {
        printf("FAIL: %s\n", err.msg);
        failures++;
    }
    mf_st_writer_free(&w);
    free(conv);
    mf_st_free(&st);
}

static void expect_case_error(const char *path, const char *want, int line) {
    mf_case c;
    mf_problem pb;
    mf_error err = {0};
    if (mf_xcase_read(path, &c, &pb, &err) == MF_OK) {
        printf("FAIL line %d: case file accepted, expected '%s'\n", line, want);
        failures++;
        mf_problem_free(&pb);
    } else if (!strstr(err.msg, want)) {
        printf("FAIL line %d: message '%s' lacks '%s'\n", line, err.msg, want);
        failures++;
    }
}
#define EXPECT_CASE_ERROR(path, want) expect_case_error(path, want, __LINE__)

static void test_case_files(const char *dir) {
    char path[512], bad[512], res[512];
    snprintf(path, sizeof path, "%s/case.safetensors", dir);
    snprintf(bad, sizeof bad, "%s/bad.safetensors", dir);
    snprintf(res, sizeof res, "%s/case.out.safetensors", dir);
    mf_error err = {0};
    for (int variant = 0; variant < 4; variant++) {
        mf_case c;
        mf_case_default(&c); /* sigmoid, fp32 bias, groups, renormalize, rsf 2.5 */
        c.p.T = 5, c.p.H = 24, c.p.I = 12;
        if (variant == 1) c.p.bias = MF_BIAS_BF16, c.p.logits_dtype = MF_DTYPE_BF16;
        if (variant == 2) c.p.bias = MF_BIAS_NONE, c.p.E_local = 8, c.p.expert_offset = 4;
        if (variant == 3) /* format v2: its parameters travel in the metadata */
            c.p.renorm_denom = MF_RENORM_SUM_OR_ONE, c.p.nonfinite = MF_NONFINITE_ZERO;
        c.pokes[0] = (mf_poke){MF_T_LOGITS, 7, 0x7fc00000u};
        c.n_pokes = 1;
        mf_problem pb, back;
        mf_case got;
        EXPECT(mf_problem_build(&c, &pb, &err) == MF_OK, "%s", err.msg);
        EXPECT(mf_xcase_write(path, &pb, &c, "t", "flashinfer:DeepSeekV3", &err) == MF_OK, "%s",
               err.msg);
        mf_status s = mf_xcase_read(path, &got, &back, &err);
        EXPECT(s == MF_OK, "variant %d: %s", variant, err.msg);
        if (s == MF_OK) {
            const mf_moe_params *p = &pb.p;
            EXPECT(!memcmp(&got.p, &c.p, sizeof c.p), "variant %d: parameters differ", variant);
            EXPECT(got.n_pokes == 1 && got.gen[MF_T_W2].seed == c.gen[MF_T_W2].seed,
                   "the text case's generators and pokes come back");
            EXPECT(!memcmp(back.x, pb.x, mf_tensor_elems(p, MF_T_X) * 2) &&
                       !memcmp(back.w13, pb.w13, mf_tensor_elems(p, MF_T_W13) * 2) &&
                       !memcmp(back.w2, pb.w2, mf_tensor_elems(p, MF_T_W2) * 2) &&
                       !memcmp(back.logits, pb.logits, mf_tensor_elems(p, MF_T_LOGITS) * 4),
                   "variant %d: tensors differ", variant);
            EXPECT(p->bias == MF_BIAS_NONE ||
                       !memcmp(back.bias, pb.bias, (size_t)p->E * sizeof(float)),
                   "variant %d: bias differs", variant);
            mf_problem_free(&back);
        }
        /* a result file round trip */
        size_t n_out = (size_t)pb.p.T * pb.p.H, n_sel = (size_t)pb.p.T * pb.p.top_k;
        mf_run_result r = {0}, r2;
        r.out = calloc(n_out, 2);
        r.ids = calloc(n_sel, 4);
        r.weights = calloc(n_sel, 4);
        for (size_t i = 0; i < n_out; i++) r.out[i] = (uint16_t)(i * 37);
        for (size_t i = 0; i < n_sel; i++) r.ids[i] = (int32_t)i, r.weights[i] = 0.25f * i;
        EXPECT(mf_xresult_write(res, &pb.p, &r, &err) == MF_OK, "%s", err.msg);
        s = mf_xresult_read(res, &pb.p, &r2, &err);
        EXPECT(s == MF_OK, "%s", err.msg);
        if (s == MF_OK) {
            EXPECT(!memcmp(r.out, r2.out, n_out * 2) && !memcmp(r.ids, r2.ids, n_sel * 4) &&
                       !memcmp(r.weights, r2.weights, n_sel * 4),
                   "result round trip");
            mf_run_result_free(&r2);
        }
        /* a result for another shape */
        mf_moe_params other = pb.p;
        other.T += 1;
        EXPECT(mf_xresult_read(res, &other, &r2, &err) != MF_OK &&
                   strstr(err.msg, "tensor 'out' has shape"),
               "%s", err.msg);
        other = pb.p;
        other.top_k += 1;
        EXPECT(mf_xresult_read(res, &other, &r2, &err) != MF_OK &&
                   strstr(err.msg, "tensor 'topk_ids' has shape"),
               "%s", err.msg);
        mf_run_result_free(&r);
        mf_problem_free(&pb);
        if (variant != 0) continue;

        /* damaged case files */
        rewrite(path, bad, "w2", NULL, NULL, NULL);
        EXPECT_CASE_ERROR(bad, "missing tensor 'w2'");
        rewrite(path, bad, NULL, "x", NULL, NULL);
        EXPECT_CASE_ERROR(bad, "tensor 'x' has dtype F32, expected BF16");
        rewrite(path, bad, NULL, NULL, "rsf", NULL);
        EXPECT_CASE_ERROR(bad, "lacks \"rsf\"");
        rewrite(path, bad, NULL, NULL, "T", "6");
        EXPECT_CASE_ERROR(bad, "does not match its text case: T = 6 in the metadata, 5");
        rewrite(path, bad, NULL, NULL, "case", NULL);
        rewrite(bad, bad, NULL, NULL, "T", "6");
        EXPECT_CASE_ERROR(bad, "tensor 'x' has shape [5, 24], expected [6, 24]");
        rewrite(path, bad, NULL, NULL, "H", "lots");
        EXPECT_CASE_ERROR(bad, "bad value 'lots' for H");
        rewrite(path, bad, NULL, NULL, "n_group", "3");
        EXPECT_CASE_ERROR(bad, "does not divide");
        rewrite(path, bad, NULL, NULL, "format", "something-else");
        EXPECT_CASE_ERROR(bad, "case file format 'something-else'");
        rewrite(path, bad, NULL, NULL, "format", NULL);
        EXPECT_CASE_ERROR(bad, "not a moefuzz case file");
        rewrite(path, bad, NULL, NULL, "case", NULL);
        rewrite(bad, bad, NULL, NULL, "bias", "none");
        EXPECT_CASE_ERROR(bad, "tensor 'bias' present");
        rewrite(path, bad, NULL, NULL, "case", NULL);
        rewrite(bad, bad, NULL, NULL, "rsf", "2.5 # comment");
        EXPECT_CASE_ERROR(bad, "bad value");
        EXPECT_CASE_ERROR(res, "case file format 'moefuzz-result-1'");
        /* a result whose weights have no ids */
        mf_st_writer w;
        mf_st_writer_init(&w);
        uint16_t out[5 * 24] = {0};
        float wts[5 * 4] = {0};
        uint64_t so[2] = {5, 24}, sk[2] = {5, 4};
        EXPECT(mf_st_writer_add(&w, "out", MF_ST_BF16, 2, so, out, &err) == MF_OK, "%s", err.msg);
        EXPECT(mf_st_writer_add(&w, "topk_weights", MF_ST_F32, 2, sk, wts, &err) == MF_OK, "%s",
               err.msg);
        EXPECT(mf_st_writer_save(&w, res, &err) == MF_OK, "%s", err.msg);
        mf_st_writer_free(&w);
        mf_moe_params p = c.p;
        EXPECT(mf_xresult_read(res, &p, &r2, &err) != MF_OK &&
                   strstr(err.msg, "topk_weights without topk_ids"),
               "%s", err.msg);
        /* an unsupported answer */
        mf_st_writer_init(&w);
        EXPECT(mf_st_writer_meta(&w, "unsupported", "no groups here", &err) == MF_OK, "%s",
               err.msg);
        EXPECT(mf_st_writer_save(&w, res, &err) == MF_OK, "%s", err.msg);
        mf_st_writer_free(&w);
        EXPECT(mf_xresult_read(res, &p, &r2, &err) == MF_OK && r2.unsupported &&
                   !strcmp(r2.reason, "no groups here"),
               "unsupported result: %s", err.msg);
    }
    unlink(path);
    unlink(bad);
    unlink(res);
}

/* An mxfp4 case file carries the packed weights (kernel_abi.h mf_kernel_mxfp4): each code times
 * its scale is the file's bf16 weight, bit for bit (odd and partial-block K included); a file
 * whose packed and bf16 weights differ, or packed weights in a bf16 case, is refused; a file
 * without them still reads. */
static void test_mxfp4_packed(const char *dir) {
    char path[512], bad[512];
    snprintf(path, sizeof path, "%s/mx.safetensors", dir);
    snprintf(bad, sizeof bad, "%s/mxbad.safetensors", dir);
    mf_error err = {0};
    mf_case c;
    mf_case_default(&c);
    c.p.T = 3, c.p.H = 41, c.p.I = 35, c.p.E_local = 4, c.p.expert_offset = 2;
    c.p.weight_format = MF_WFMT_MXFP4;
    /* an infinite weight: its block's scale 2^127, the code 6 past bf16's range (inf), the
     * others 0; a NaN: its block's scale 0xff, NaN */
    c.pokes[0] = (mf_poke){MF_T_W13, 7, 0x7f80};
    c.pokes[1] = (mf_poke){MF_T_W13, 41 * 3 + 2, 0x7fc0};
    c.n_pokes = 2;
    mf_problem pb;
    if (mf_problem_build(&c, &pb, &err) != MF_OK || mf_xcase_write(path, &pb, &c, "mx", NULL,
                                                                    &err) != MF_OK) {
        EXPECT(0, "mxfp4 case file: %s", err.msg);
        mf_problem_free(&pb);
        return;
    }
    mf_problem_free(&pb);
    mf_safetensors st;
    if (mf_st_load(path, &st, &err) != MF_OK) {
        EXPECT(0, "%s", err.msg);
        return;
    }
    const char *names[2][3] = {{"w13", "w13_q", "w13_sc"}, {"w2", "w2_q", "w2_sc"}};
    for (int m = 0; m < 2; m++) {
        const mf_st_tensor *w = mf_st_find(&st, names[m][0]), *q = mf_st_find(&st, names[m][1]),
                           *sc = mf_st_find(&st, names[m][2]);
        EXPECT(w && q && sc && q->dtype == MF_ST_U8 && sc->dtype == MF_ST_U8 && q->ndim == 3,
               "%s: the packed tensors are in the file", names[m][0]);
        if (!w || !q || !sc || q->ndim != 3) continue;
        uint64_t rows = w->shape[0] * w->shape[1], K = w->shape[2];
        EXPECT(q->shape[2] == (K + 1) / 2 && sc->shape[2] == (K + 31) / 32 &&
                   q->shape[0] * q->shape[1] == rows,
               "%s: packed shapes [%llu][%llu][%llu]", names[m][1],
               (unsigned long long)q->shape[0], (unsigned long long)q->shape[1],
               (unsigned long long)q->shape[2]);
        size_t bad_elems = 0, inf = 0;
        for (uint64_t r = 0; r < rows; r++)
            for (uint64_t i = 0; i < K; i++) {
                uint8_t byte = q->data[r * q->shape[2] + i / 2];
                uint8_t code = i & 1 ? byte >> 4 : byte & 15;
                double v = mf_e2m1_decode(code) * mf_ue8m0_decode(sc->data[r * sc->shape[2] + i / 32]);
                uint16_t want;
                memcpy(&want, w->data + 2 * (r * K + i), 2);
                bad_elems += mf_f64_to_bf16(v) != want;
                inf += !mf_bf16_is_finite(want);
            }
        EXPECT(bad_elems == 0, "%s: %zu elements differ from their packed form", names[m][0],
               bad_elems);
        if (m == 0) EXPECT(inf >= 1, "w13: the poked infinity and NaN block (%zu)", inf);
    }
    mf_st_free(&st);
    /* one code changed: refused, naming the tensor */
    if (mf_st_load(path, &st, &err) == MF_OK) {
        mf_st_tensor *q = (mf_st_tensor *)mf_st_find(&st, "w2_q");
        if (q) ((uint8_t *)q->data)[5] ^= 0x22;
        mf_st_writer w;
        mf_st_writer_init(&w);
        for (int i = 0; i < st.n_meta; i++)
            mf_st_writer_meta(&w, st.meta[i].key, st.meta[i].value, &err);
        for (int i = 0; i < st.n_tensors; i++)
            mf_st_writer_add(&w, st.tensors[i].name, st.tensors[i].dtype, st.tensors[i].ndim,
                             st.tensors[i].shape, st.tensors[i].data, &err);
        EXPECT(mf_st_writer_save(&w, bad, &err) == MF_OK, "%s", err.msg);
        mf_st_writer_free(&w);
        mf_st_free(&st);
        EXPECT_CASE_ERROR(bad, "tensor 'w2_q' byte 5");
    }
    /* without the packed tensors (a file of an earlier writer): still read */
    rewrite(path, bad, "w13_q", NULL, NULL, NULL);
    mf_case got;
    mf_problem back;
    EXPECT(mf_xcase_read(bad, &got, &back, &err) == MF_OK, "without w13_q: %s", err.msg);
    mf_problem_free(&back);
    /* packed weights in a bf16 case */
    rewrite(path, bad, NULL, NULL, "weight_format", "bf16");
    EXPECT_CASE_ERROR(bad, "weight_format");
    unlink(path);
    unlink(bad);
}

int main(void) {
    char dir[] = "/tmp/test_safetensors_XXXXXX";
    if (!mkdtemp(dir)) {
        printf("cannot create a directory\n");
        return 1;
    }
    test_malformed();
    test_round_trip_and_damage(dir);
    test_case_files(dir);
    test_mxfp4_packed(dir);
    rmdir(dir);
    return mf_test_exit("test_safetensors");
}
