/* exchange.c: case and result files as safetensors (see exchange.h, docs/files.md). */
#include "exchange.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bf16.h"
#include "codec.h"
#include "fp8.h"
#include "safetensors.h"

/* The parameter keys of the text case format, in its order: each is required in a case file's
 * metadata, so a file never silently takes a default (a missing rsf would read as 2.5). */
static const char *const param_keys[] = {
    "T",          "H",           "I",         "E",        "E_local",  "expert_offset",
    "top_k",      "score",       "bias",      "n_group",  "topk_group", "group_rule",
    "renormalize", "eps",        "rsf",       "rsf_site", "activation", "layout",
    "logits_dtype"};
#define N_PARAM_KEYS ((int)(sizeof param_keys / sizeof param_keys[0]))

/* The parameters of case format v2 (src/case.h MF_PARAM_V2_LIST) follow as optional keys: a
 * file names them when its case sets one (the text case then prints them all), and a file
 * without them (v1's) means each at 0, v1's semantics. */
#define MF_PARAM_V2_ONE_(...) +1
enum { N_V2_KEYS = 0 MF_PARAM_V2_LIST(MF_PARAM_V2_ONE_) };
#undef MF_PARAM_V2_ONE_

/* Values of the parameter keys, as the text format prints them: v1's, then v2's ("" when the
 * case does not print them). */
typedef struct param_text {
    char val[N_PARAM_KEYS + N_V2_KEYS][48];
    int v2; /* the v2 keys are printed */
} param_text;

static const char *key_name(int i) {
    return i < N_PARAM_KEYS ? param_keys[i] : mf_params_v2[i - N_PARAM_KEYS].key;
}

static int key_index(const char *k) {
    for (int i = 0; i < N_PARAM_KEYS + N_V2_KEYS; i++)
        if (!strcmp(k, key_name(i))) return i;
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
    pt->v2 = mf_case_format(&c) >= 2;
    if (seen != N_PARAM_KEYS + (pt->v2 ? N_V2_KEYS : 0))
        return MF_FAIL(err, MF_EINTERNAL, "the text case printed %d of %d parameters", seen,
                       N_PARAM_KEYS + (pt->v2 ? N_V2_KEYS : 0));
    return MF_OK;
}

/* ---- case files ---- */

static mf_st_dtype st_dtype(const mf_moe_params *p, mf_tensor_id t) {
    if (mf_tensor_is_e4m3(p, t)) return MF_ST_F8_E4M3;
    if (mf_tensor_is_i32(t)) return MF_ST_I32;
    return mf_tensor_is_bf16(p, t) ? MF_ST_BF16 : MF_ST_F32;
}

static uint64_t hash_mix(uint64_t h, uint64_t w) {
    h ^= w;
    h *= 0x9e3779b97f4a7c15ull;
    return h ^ (h >> 29);
}

static uint64_t hash_bytes(uint64_t h, const uint8_t *b, size_t n) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, b + i, 8);
        h = hash_mix(h, w);
    }
    uint64_t last = 0;
    memcpy(&last, b + i, n - i);
    return hash_mix(h, last ^ (uint64_t)n << 56);
}

uint64_t mf_xcase_weights_key(const mf_moe_params *p, const mf_kernel_inputs *ki) {
    uint64_t h = 0x6d6f6566757a7a31ull;
    for (int t = 0; t < MF_NUM_TENSORS; t++) {
        mf_tensor_id id = (mf_tensor_id)t;
        if (!mf_tensor_per_expert(id) || !ki->data[t]) continue;
        uint64_t shape[MF_TENSOR_MAX_RANK];
        int rank = mf_tensor_shape(p, id, shape);
        h = hash_mix(h, (uint64_t)t << 8 | (uint64_t)st_dtype(p, id));
        for (int d = 0; d < rank; d++) h = hash_mix(h, shape[d]);
        h = hash_bytes(h, ki->data[t], ki->bytes[t]);
    }
    /* an mxfp4 case's packed weights: equal bf16 weights of a bf16 and an mxfp4 case differ */
    for (int i = 0; i < 4 && ki->mx_q[0]; i++) {
        const uint8_t *b = i % 2 ? ki->mx_sc[i / 2] : ki->mx_q[i / 2];
        size_t n = i % 2 ? ki->mx_sc_bytes[i / 2] : ki->mx_q_bytes[i / 2];
        h = hash_bytes(hash_mix(h, 0x6d78667034ull + (uint64_t)i), b, n);
    }
    return h;
}

/* The packed MXFP4 form of w13 and w2 (kernel_abi.h mf_kernel_mxfp4) in a case file: codes and
 * scales of each, U8, written beside the dequantized bf16 tensors of an mxfp4 case. */
static const char *const mx_names[4] = {"w13_q", "w13_sc", "w2_q", "w2_sc"};

static void mx_shape(const mf_moe_params *p, int i, uint64_t shape[3]) {
    uint64_t q[3], sc[3];
    mf_mxfp4_shapes(p, i / 2, q, sc);
    memcpy(shape, i % 2 ? sc : q, sizeof q);
}

int mf_xcase_layout(const mf_moe_params *p, mf_xcase_entry out[MF_XCASE_MAX_TENSORS]) {
    int n = 0;
    for (int t = 0; t < MF_NUM_TENSORS; t++) {
        mf_tensor_id id = (mf_tensor_id)t;
        if (!mf_tensor_present(p, id)) continue;
        mf_xcase_entry *e = &out[n++];
        e->name = mf_tensor_name(id);
        e->dtype = st_dtype(p, id);
        e->rank = mf_tensor_shape(p, id, e->shape);
        e->tensor = t;
    }
    for (int i = 0; i < 4 && p->weight_format == MF_WFMT_MXFP4; i++) {
        mf_xcase_entry *e = &out[n++];
        e->name = mx_names[i];
        e->dtype = MF_ST_U8;
        e->rank = 3;
        mx_shape(p, i, e->shape);
        e->tensor = -1 - i;
    }
    return n;
}

static mf_status xcase_write(const char *path, const mf_problem *pb, const mf_case *c,
                             const char *name, const char *method, mf_xcase_cache *cache,
                             mf_error *err) {
    const mf_moe_params *p = &pb->p;
    param_text pt;
    MF_TRY(params_to_text(p, &pt, err));
    char *case_text = NULL;
    size_t case_len = 0;
    mf_kernel_inputs ki;
    mf_st_writer w;
    mf_st_writer_init(&w);
    mf_status st = mf_kernel_inputs_make(pb, &ki, err);
    if (st == MF_OK) st = mf_st_writer_meta(&w, "format", MF_XCASE_FORMAT, err);
    for (int i = 0; i < N_PARAM_KEYS + (pt.v2 ? N_V2_KEYS : 0) && st == MF_OK; i++)
        st = mf_st_writer_meta(&w, key_name(i), pt.val[i], err);
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
    int omit = 0;
    if (st == MF_OK && cache) {
        char hex[20];
        cache->pending = mf_xcase_weights_key(p, &ki);
        omit = cache->held && cache->key == cache->pending;
        snprintf(hex, sizeof hex, "%016llx", (unsigned long long)cache->pending);
        st = mf_st_writer_meta(&w, "weights_key", hex, err);
        if (st == MF_OK && omit) st = mf_st_writer_meta(&w, "weights", "cached", err);
        if (st == MF_OK && omit) cache->omitted++;
        else if (st == MF_OK) cache->sent++;
    }
    mf_xcase_entry lay[MF_XCASE_MAX_TENSORS];
    int n_lay = mf_xcase_layout(p, lay);
    for (int i = 0; i < n_lay && st == MF_OK; i++) {
        const mf_xcase_entry *e = &lay[i];
        int mx = -1 - e->tensor; /* MXFP4's packed arrays: codes and scales of w13, then w2 */
        const void *data = e->tensor >= 0 ? ki.data[e->tensor]
                           : mx % 2          ? ki.mx_sc[mx / 2]
                                             : ki.mx_q[mx / 2];
        int weight = e->tensor < 0 || mf_tensor_per_expert((mf_tensor_id)e->tensor);
        if (data && !(omit && weight))
            st = mf_st_writer_add(&w, e->name, e->dtype, e->rank, e->shape, data, err);
    }
    if (st == MF_OK) st = mf_st_writer_save(&w, path, err);
    mf_st_writer_free(&w);
    mf_kernel_inputs_free(&ki);
    free(case_text);
    return st;
}

mf_status mf_xcase_write(const char *path, const mf_problem *pb, const mf_case *c,
                         const char *name, const char *method, mf_error *err) {
    return xcase_write(path, pb, c, name, method, NULL, err);
}

mf_status mf_xcase_write_cached(const char *path, const mf_problem *pb, const char *method,
                                mf_xcase_cache *cache, mf_error *err) {
    return xcase_write(path, pb, NULL, NULL, method, cache, err);
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
    /* the tensors are in the file: the metadata names no generators (of v1's tensors: the
     * others are never required) */
    char no_gens[64 + 24 * MF_NUM_TENSORS] = "defaults =";
    for (int t = 0; t < MF_NUM_TENSORS; t++)
        if (mf_tensor_level((mf_tensor_id)t) == 1)
            snprintf(no_gens + strlen(no_gens), sizeof no_gens - strlen(no_gens), " gen.%s",
                     mf_tensor_name((mf_tensor_id)t));
    strcat(no_gens, "\n");
    size_t cap = 64 + sizeof no_gens;
    for (int i = 0; i < N_PARAM_KEYS + N_V2_KEYS; i++) {
        const char *v = mf_st_meta_get(st, key_name(i));
        if (!v && i >= N_PARAM_KEYS) continue;
        if (!v) return MF_FAIL(err, MF_EINVAL, "case metadata lacks \"%s\"", key_name(i));
        if (strlen(v) > 40 || strpbrk(v, "#\n\r="))
            return MF_FAIL(err, MF_EINVAL, "case metadata \"%s\" has a bad value '%.40s'",
                           key_name(i), v);
        cap += strlen(key_name(i)) + strlen(v) + 8;
    }
    char *text = malloc(cap);
    if (!text) return MF_FAIL(err, MF_ENOMEM, "out of memory");
    size_t o = 0;
    for (int i = 0; i < N_PARAM_KEYS + N_V2_KEYS; i++)
        if (mf_st_meta_get(st, key_name(i)))
            o += (size_t)snprintf(text + o, cap - o, "%s = %s\n", key_name(i),
                                  mf_st_meta_get(st, key_name(i)));
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
    /* a v1 side leaves its v2 values (0) out of its text: the same printer gives them */
    for (int i = N_PARAM_KEYS; i < N_PARAM_KEYS + N_V2_KEYS; i++) {
        if (!a.v2) mf_param_v2_text(&c->p, i - N_PARAM_KEYS, a.val[i], sizeof a.val[i]);
        if (!b.v2) mf_param_v2_text(&full.p, i - N_PARAM_KEYS, b.val[i], sizeof b.val[i]);
    }
    for (int i = 0; i < N_PARAM_KEYS + N_V2_KEYS; i++)
        if (strcmp(a.val[i], b.val[i]))
            return MF_FAIL(err, MF_EINVAL,
                           "the metadata does not match its text case: %s = %s in the metadata, "
                           "%s in \"case\"",
                           key_name(i), a.val[i], b.val[i]);
    *c = full;
    return MF_OK;
}

static mf_status problem_from_tensors(const mf_safetensors *st, const mf_case *c, mf_problem *pb,
                                      mf_error *err) {
    const mf_moe_params *p = &c->p;
    const mf_st_tensor *ts[MF_NUM_TENSORS] = {0};
    for (int t = 0; t < MF_NUM_TENSORS; t++) {
        mf_tensor_id id = (mf_tensor_id)t;
        uint64_t shape[MF_TENSOR_MAX_RANK];
        int rank = mf_tensor_shape(p, id, shape);
        if (mf_tensor_present(p, id))
            MF_TRY(mf_st_expect(st, mf_tensor_name(id), st_dtype(p, id), rank, shape, &ts[t],
                                err));
        else if (mf_st_find(st, mf_tensor_name(id)))
            return MF_FAIL(err, MF_EINVAL,
                           "tensor '%s' present, but the metadata's parameters leave it out",
                           mf_tensor_name(id));
    }
    /* the packed MXFP4 weights, optional in an mxfp4 case's file: checked against w13 and w2 */
    const mf_st_tensor *mx[4] = {0};
    for (int i = 0; i < 4; i++) {
        uint64_t shape[3];
        mx_shape(p, i, shape);
        if (!mf_st_find(st, mx_names[i])) continue;
        if (p->weight_format != MF_WFMT_MXFP4)
            return MF_FAIL(err, MF_EINVAL,
                           "tensor '%s' present, but the case's weight_format is not mxfp4",
                           mx_names[i]);
        MF_TRY(mf_st_expect(st, mx_names[i], MF_ST_U8, 3, shape, &mx[i], err));
    }
    MF_TRY(mf_problem_alloc(p, pb, err)); /* zero where a tensor is absent */
    for (int t = 0; t < MF_NUM_TENSORS; t++) {
        mf_tensor_id id = (mf_tensor_id)t;
        size_t n = mf_tensor_elems(p, id);
        void *a = mf_problem_tensor(pb, id);
        if (!ts[t]) continue;
        if (mf_tensor_is_e4m3(p, id)) {
            /* e4m3 codes: their values are bf16 values (the NaN code a bf16 NaN) */
            uint16_t *b = a;
            for (size_t i = 0; i < n; i++)
                b[i] = mf_f64_to_bf16(mf_fp8_decode(MF_FP8_E4M3, ts[t]->data[i]));
        } else if (mf_tensor_host_size(id) == mf_tensor_kernel_size(p, id)) {
            memcpy(a, ts[t]->data, n * mf_tensor_host_size(id));
        } else {
            float *f = a;
            for (size_t i = 0; i < n; i++) {
                uint16_t b;
                memcpy(&b, ts[t]->data + 2 * i, 2);
                f[i] = mf_bf16_to_f32(b);
            }
        }
    }
    char why[160];
    if (mf_expert_map_check(p, pb->expert_map, why, sizeof why)) {
        mf_problem_free(pb);
        return MF_FAIL(err, MF_EINVAL, "%s", why);
    }
    if (!mx[0] && !mx[1] && !mx[2] && !mx[3]) return MF_OK;
    mf_kernel_inputs ki;
    mf_status s = mf_kernel_inputs_make(pb, &ki, err);
    for (int i = 0; i < 4 && s == MF_OK; i++) {
        if (!mx[i]) continue;
        const uint8_t *want = i % 2 ? ki.mx_sc[i / 2] : ki.mx_q[i / 2];
        size_t n = i % 2 ? ki.mx_sc_bytes[i / 2] : ki.mx_q_bytes[i / 2];
        for (size_t j = 0; j < n && s == MF_OK; j++)
            if (mx[i]->data[j] != want[j])
                s = MF_FAIL(err, MF_EINVAL,
                            "tensor '%s' byte %zu is 0x%02x, the canonical MXFP4 packing of %s "
                            "has 0x%02x: the file's packed and bf16 weights differ",
                            mx_names[i], j, mx[i]->data[j], i < 2 ? "w13" : "w2", want[j]);
    }
    mf_kernel_inputs_free(&ki);
    if (s != MF_OK) mf_problem_free(pb);
    return s;
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
        mf_run_result_count_unwritten(r, n_out);
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
