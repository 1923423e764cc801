/* exchange.c: case and result files as safetensors (see exchange.h, docs/files.md). */
#include "exchange.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bf16.h"
#include "codec.h"
#include "safetensors.h"

/* The parameter keys of the text case format, in its order: each is required in a case file's
 * metadata, so a file never silently takes a default (a missing rsf would read as 2.5). */
static const char *const param_keys[] = {
    "T",          "H",           "I",         "E",        "E_local",  "expert_offset",
    "top_k",      "score",       "bias",      "n_group",  "topk_group", "group_rule",
    "renormalize", "eps",        "rsf",       "rsf_site", "activation", "layout",
    "logits_dtype"};
#define N_PARAM_KEYS ((int)(sizeof param_keys / sizeof param_keys[0]))

/* Values of the parameter keys, as the text format prints them. */
typedef struct param_text {
    char val[N_PARAM_KEYS][48];
} param_text;

static int key_index(const char *k) {
    for (int i = 0; i < N_PARAM_KEYS; i++)
        if (!strcmp(k, param_keys[i])) return i;
    return -1;
}

/* One printer for both forms: the text case's own, so the metadata can never drift from it. */
static mf_status params_to_text(const mf_moe_params *p, param_text *pt, mf_error *err) {
    mf_case c;
    mf_case_default(&c);
    c.p = *p;
    c.n_pokes = 0;
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f) return MF_FAIL(err, MF_ENOMEM, "out of memory");
    mf_case_print_text(&c, f);
    fclose(f);
    memset(pt, 0, sizeof *pt);
    int seen = 0;
    char *save = NULL;
    for (char *line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        char *eq = strstr(line, " = ");
        if (line[0] == '#' || !eq) continue;
        *eq = '\0';
        int i = key_index(line);
        if (i < 0) continue;
        snprintf(pt->val[i], sizeof pt->val[i], "%s", eq + 3);
        seen++;
    }
    free(buf);
    if (seen != N_PARAM_KEYS)
        return MF_FAIL(err, MF_EINTERNAL, "the text case printed %d of %d parameters", seen,
                       N_PARAM_KEYS);
    return MF_OK;
}

/* ---- case files ---- */

mf_status mf_xcase_write(const char *path, const mf_problem *pb, const mf_case *c,
                         const char *name, const char *method, mf_error *err) {
    const mf_moe_params *p = &pb->p;
    param_text pt;
    MF_TRY(params_to_text(p, &pt, err));
    size_t nl = (size_t)p->T * p->E;
    uint16_t *logits16 = NULL, *bias16 = NULL;
    char *case_text = NULL;
    size_t case_len = 0;
    mf_st_writer w;
    mf_st_writer_init(&w);
    mf_status st = MF_OK;
    if (p->logits_dtype == MF_DTYPE_BF16 && !(logits16 = malloc(nl * 2 + 2)))
        st = MF_FAIL(err, MF_ENOMEM, "out of memory");
    if (st == MF_OK && p->bias == MF_BIAS_BF16 && !(bias16 = malloc((size_t)p->E * 2)))
        st = MF_FAIL(err, MF_ENOMEM, "out of memory");
    if (st == MF_OK && logits16)
        for (size_t i = 0; i < nl; i++) logits16[i] = (uint16_t)(mf_f32_bits(pb->logits[i]) >> 16);
    if (st == MF_OK && bias16)
        for (int e = 0; e < p->E; e++) bias16[e] = (uint16_t)(mf_f32_bits(pb->bias[e]) >> 16);
    if (st == MF_OK) st = mf_st_writer_meta(&w, "format", MF_XCASE_FORMAT, err);
    for (int i = 0; i < N_PARAM_KEYS && st == MF_OK; i++)
        st = mf_st_writer_meta(&w, param_keys[i], pt.val[i], err);
    if (st == MF_OK && name) st = mf_st_writer_meta(&w, "name", name, err);
    if (st == MF_OK && method) st = mf_st_writer_meta(&w, "routing_method", method, err);
    if (st == MF_OK && c) {
        FILE *f = open_memstream(&case_text, &case_len);
        if (!f) st = MF_FAIL(err, MF_ENOMEM, "out of memory");
        else {
            mf_case_print_text(c, f);
            fclose(f);
            st = mf_st_writer_meta(&w, "case", case_text, err);
        }
    }
    uint64_t sx[2] = {(uint64_t)p->T, (uint64_t)p->H}, sl[2] = {(uint64_t)p->T, (uint64_t)p->E},
             sb[1] = {(uint64_t)p->E},
             s13[3] = {(uint64_t)p->E_local, 2 * (uint64_t)p->I, (uint64_t)p->H},
             s2[3] = {(uint64_t)p->E_local, (uint64_t)p->H, (uint64_t)p->I};
    if (st == MF_OK) st = mf_st_writer_add(&w, "x", MF_ST_BF16, 2, sx, pb->x, err);
    if (st == MF_OK)
        st = logits16 ? mf_st_writer_add(&w, "logits", MF_ST_BF16, 2, sl, logits16, err)
                      : mf_st_writer_add(&w, "logits", MF_ST_F32, 2, sl, pb->logits, err);
    if (st == MF_OK && p->bias == MF_BIAS_BF16)
        st = mf_st_writer_add(&w, "bias", MF_ST_BF16, 1, sb, bias16, err);
    if (st == MF_OK && p->bias == MF_BIAS_F32)
        st = mf_st_writer_add(&w, "bias", MF_ST_F32, 1, sb, pb->bias, err);
    if (st == MF_OK) st = mf_st_writer_add(&w, "w13", MF_ST_BF16, 3, s13, pb->w13, err);
    if (st == MF_OK) st = mf_st_writer_add(&w, "w2", MF_ST_BF16, 3, s2, pb->w2, err);
    if (st == MF_OK) st = mf_st_writer_save(&w, path, err);
    mf_st_writer_free(&w);
    free(logits16);
    free(bias16);
    free(case_text);
    return st;
}

/* Parameters from the metadata, through the text parser (one set of rules and messages). */
static mf_status params_from_meta(const mf_safetensors *st, mf_case *c, mf_error *err) {
    const char *fmt = mf_st_meta_get(st, "format");
    if (!fmt)
        return MF_FAIL(err, MF_EINVAL,
                       "not a moefuzz case file: no metadata \"format\" (expected \"%s\")",
                       MF_XCASE_FORMAT);
    if (strcmp(fmt, MF_XCASE_FORMAT))
        return MF_FAIL(err, MF_EINVAL, "case file format '%.60s', this moefuzz reads '%s'", fmt,
                       MF_XCASE_FORMAT);
    /* the tensors are in the file: the metadata names no generators */
    static const char no_gens[] = "defaults = gen.x gen.logits gen.bias gen.w13 gen.w2\n";
    size_t cap = 64 + sizeof no_gens;
    for (int i = 0; i < N_PARAM_KEYS; i++) {
        const char *v = mf_st_meta_get(st, param_keys[i]);
        if (!v) return MF_FAIL(err, MF_EINVAL, "case metadata lacks \"%s\"", param_keys[i]);
        if (strlen(v) > 40 || strpbrk(v, "#\n\r="))
            return MF_FAIL(err, MF_EINVAL, "case metadata \"%s\" has a bad value '%.40s'",
                           param_keys[i], v);
        cap += strlen(param_keys[i]) + strlen(v) + 8;
    }
    char *text = malloc(cap);
    if (!text) return MF_FAIL(err, MF_ENOMEM, "out of memory");
    size_t o = 0;
    for (int i = 0; i < N_PARAM_KEYS; i++)
        o += (size_t)snprintf(text + o, cap - o, "%s = %s\n", param_keys[i],
                              mf_st_meta_get(st, param_keys[i]));
    snprintf(text + o, cap - o, "%s", no_gens);
    mf_error e2;
    mf_status s = mf_case_parse_text(text, c, &e2);
    free(text);
    if (s != MF_OK) return MF_FAIL(err, MF_EINVAL, "case metadata: %s", e2.msg);
    c->n_pokes = 0;
    /* the full text case, when present, must describe the same problem */
    const char *ct = mf_st_meta_get(st, "case");
    if (!ct) return MF_OK;
    mf_case full;
    if (mf_case_parse_text(ct, &full, &e2) != MF_OK)
        return MF_FAIL(err, MF_EINVAL, "case metadata \"case\": %s", e2.msg);
    param_text a, b;
    MF_TRY(params_to_text(&c->p, &a, err));
    MF_TRY(params_to_text(&full.p, &b, err));
    for (int i = 0; i < N_PARAM_KEYS; i++)
        if (strcmp(a.val[i], b.val[i]))
            return MF_FAIL(err, MF_EINVAL,
                           "the metadata does not match its text case: %s = %s in the metadata, "
                           "%s in \"case\"",
                           param_keys[i], a.val[i], b.val[i]);
    *c = full;
    return MF_OK;
}

static mf_status problem_from_tensors(const mf_safetensors *st, const mf_case *c, mf_problem *pb,
                                      mf_error *err) {
    const mf_moe_params *p = &c->p;
    const mf_st_tensor *tx, *tl, *tb = NULL, *t13, *t2;
    uint64_t sx[2] = {(uint64_t)p->T, (uint64_t)p->H}, sl[2] = {(uint64_t)p->T, (uint64_t)p->E},
             sb[1] = {(uint64_t)p->E},
             s13[3] = {(uint64_t)p->E_local, 2 * (uint64_t)p->I, (uint64_t)p->H},
             s2[3] = {(uint64_t)p->E_local, (uint64_t)p->H, (uint64_t)p->I};
    int l16 = p->logits_dtype == MF_DTYPE_BF16;
    MF_TRY(mf_st_expect(st, "x", MF_ST_BF16, 2, sx, &tx, err));
    MF_TRY(mf_st_expect(st, "logits", l16 ? MF_ST_BF16 : MF_ST_F32, 2, sl, &tl, err));
    if (p->bias != MF_BIAS_NONE)
        MF_TRY(mf_st_expect(st, "bias", p->bias == MF_BIAS_BF16 ? MF_ST_BF16 : MF_ST_F32, 1, sb,
                            &tb, err));
    else if (mf_st_find(st, "bias"))
        return MF_FAIL(err, MF_EINVAL, "tensor 'bias' present, but the metadata says bias = none");
    MF_TRY(mf_st_expect(st, "w13", MF_ST_BF16, 3, s13, &t13, err));
    MF_TRY(mf_st_expect(st, "w2", MF_ST_BF16, 3, s2, &t2, err));
    memset(pb, 0, sizeof *pb);
    pb->p = *p;
    size_t nx = mf_tensor_elems(p, MF_T_X), nl = mf_tensor_elems(p, MF_T_LOGITS);
    size_t n13 = mf_tensor_elems(p, MF_T_W13), n2 = mf_tensor_elems(p, MF_T_W2);
    pb->x = malloc(nx * 2);
    pb->logits = malloc(nl * 4);
    pb->bias = calloc((size_t)p->E, 4); /* always allocated, zero without a bias (as case.c) */
    pb->w13 = malloc(n13 * 2);
    pb->w2 = malloc(n2 * 2);
    if (!pb->x || !pb->logits || !pb->bias || !pb->w13 || !pb->w2) {
        mf_problem_free(pb);
        return MF_FAIL(err, MF_ENOMEM, "out of memory for the tensors of a case file");
    }
    memcpy(pb->x, tx->data, nx * 2);
    memcpy(pb->w13, t13->data, n13 * 2);
    memcpy(pb->w2, t2->data, n2 * 2);
    for (size_t i = 0; i < nl; i++) {
        if (l16) {
            uint16_t b;
            memcpy(&b, tl->data + 2 * i, 2);
            pb->logits[i] = mf_bf16_to_f32(b);
        } else {
            memcpy(&pb->logits[i], tl->data + 4 * i, 4);
        }
    }
    for (int e = 0; tb && e < p->E; e++) {
        if (p->bias == MF_BIAS_BF16) {
            uint16_t b;
            memcpy(&b, tb->data + 2 * (size_t)e, 2);
            pb->bias[e] = mf_bf16_to_f32(b);
        } else {
            memcpy(&pb->bias[e], tb->data + 4 * (size_t)e, 4);
        }
    }
    pb->t.x = pb->x;
    pb->t.logits = pb->logits;
    pb->t.bias = p->bias != MF_BIAS_NONE ? pb->bias : NULL;
    pb->t.w13 = pb->w13;
    pb->t.w2 = pb->w2;
    pb->w_dims[0] = -1; /* not from generators: mf_problem_update must regenerate */
    return MF_OK;
}

mf_status mf_xcase_parse(const uint8_t *data, size_t size, mf_case *c, mf_problem *pb,
                         mf_error *err) {
    mf_safetensors st;
    memset(pb, 0, sizeof *pb);
    MF_TRY(mf_st_parse(data, size, &st, err));
    mf_status s = params_from_meta(&st, c, err);
    if (s == MF_OK) s = problem_from_tensors(&st, c, pb, err);
    mf_st_free(&st);
    return s;
}

mf_status mf_xcase_read(const char *path, mf_case *c, mf_problem *pb, mf_error *err) {
    uint8_t *data;
    size_t size;
    memset(pb, 0, sizeof *pb);
    MF_TRY(mf_read_file(path, &data, &size, (size_t)1 << 40, err));
    mf_status s = mf_xcase_parse(data, size, c, pb, err);
    free(data);
    if (s != MF_OK) {
        /* name the file once, in front of the first message */
        mf_error e2 = *err;
        MF_FAIL(err, s, "%.200s: %.760s", path, e2.msg);
    }
    return s;
}

/* ---- result files ---- */

mf_status mf_xresult_parse(const uint8_t *data, size_t size, const mf_moe_params *p,
                           mf_run_result *r, mf_error *err) {
    memset(r, 0, sizeof *r);
    mf_safetensors st;
    MF_TRY(mf_st_parse(data, size, &st, err));
    mf_status s = MF_OK;
    const char *uns = mf_st_meta_get(&st, "unsupported");
    if (uns) {
        r->unsupported = 1;
        snprintf(r->reason, sizeof r->reason, "%s", uns[0] ? uns : "(no reason given)");
        mf_st_free(&st);
        return MF_OK;
    }
    uint64_t so[2] = {(uint64_t)p->T, (uint64_t)p->H}, sk[2] = {(uint64_t)p->T,
                                                                (uint64_t)p->top_k};
    const mf_st_tensor *to, *ti = NULL, *tw = NULL;
    size_t n_out = (size_t)p->T * p->H, n_sel = (size_t)p->T * p->top_k;
    s = mf_st_expect(&st, "out", MF_ST_BF16, 2, so, &to, err);
    if (s == MF_OK && mf_st_find(&st, "topk_ids"))
        s = mf_st_expect(&st, "topk_ids", MF_ST_I32, 2, sk, &ti, err);
    if (s == MF_OK && mf_st_find(&st, "topk_weights")) {
        s = mf_st_expect(&st, "topk_weights", MF_ST_F32, 2, sk, &tw, err);
        if (s == MF_OK && !ti)
            s = MF_FAIL(err, MF_EINVAL,
                        "topk_weights without topk_ids: weights need the slots they belong to");
    }
    if (s == MF_OK) {
        r->out = malloc(n_out * 2 + 2);
        if (ti) r->ids = malloc(n_sel * 4 + 4);
        if (tw) r->weights = malloc(n_sel * 4 + 4);
        if (!r->out || (ti && !r->ids) || (tw && !r->weights))
            s = MF_FAIL(err, MF_ENOMEM, "out of memory");
    }
    if (s == MF_OK) {
        memcpy(r->out, to->data, n_out * 2);
        if (ti) memcpy(r->ids, ti->data, n_sel * 4);
        if (tw) memcpy(r->weights, tw->data, n_sel * 4);
        /* the poison pattern never comes out of arithmetic: count it as unwritten */
        for (size_t i = 0; i < n_out; i++)
            if (r->out[i] == MF_POISON_BF16) {
                if (!r->unwritten) r->first_unwritten = i;
                r->unwritten++;
            }
    }
    mf_st_free(&st);
    if (s != MF_OK) mf_run_result_free(r);
    return s;
}

mf_status mf_xresult_read(const char *path, const mf_moe_params *p, mf_run_result *r,
                          mf_error *err) {
    uint8_t *data;
    size_t size;
    memset(r, 0, sizeof *r);
    MF_TRY(mf_read_file(path, &data, &size, (size_t)1 << 40, err));
    mf_status s = mf_xresult_parse(data, size, p, r, err);
    free(data);
    if (s != MF_OK) {
        mf_error e2 = *err;
        MF_FAIL(err, s, "%.200s: %.760s", path, e2.msg);
    }
    return s;
}

mf_status mf_xresult_write(const char *path, const mf_moe_params *p, const mf_run_result *r,
                           mf_error *err) {
    mf_st_writer w;
    mf_st_writer_init(&w);
    mf_status s = mf_st_writer_meta(&w, "format", "moefuzz-result-1", err);
    uint64_t so[2] = {(uint64_t)p->T, (uint64_t)p->H}, sk[2] = {(uint64_t)p->T,
                                                                (uint64_t)p->top_k};
    if (s == MF_OK && r->unsupported) s = mf_st_writer_meta(&w, "unsupported", r->reason, err);
    if (s == MF_OK && !r->unsupported)
        s = mf_st_writer_add(&w, "out", MF_ST_BF16, 2, so, r->out, err);
    if (s == MF_OK && !r->unsupported && r->ids)
        s = mf_st_writer_add(&w, "topk_ids", MF_ST_I32, 2, sk, r->ids, err);
    if (s == MF_OK && !r->unsupported && r->ids && r->weights)
        s = mf_st_writer_add(&w, "topk_weights", MF_ST_F32, 2, sk, r->weights, err);
    if (s == MF_OK) s = mf_st_writer_save(&w, path, err);
    mf_st_writer_free(&w);
    return s;
}
