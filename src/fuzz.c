/* fuzz.c: one fuzz iteration and its statistics (see fuzz.h). */
#include "fuzz.h"

#include <math.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "attribute.h"
#include "codec.h"
#include "prepare.h"

struct mf_fuzz {
    mf_fuzz_config cfg;
    int opened, given; /* given: the backend came open (mf_fuzz_use_backend) */
    mf_status open_status;
    char open_error[1024];
    mf_backend b;
    mf_problem pb;
    mf_check_opts opts;
    mf_fuzz_stats st;
    uint64_t since_flush;
    double last_flush;
};

void mf_fuzz_config_init(mf_fuzz_config *cfg, const char *backend, const mf_model *model,
                         int full) {
    memset(cfg, 0, sizeof *cfg);
    snprintf(cfg->backend, sizeof cfg->backend, "%s", backend);
    cfg->model = model;
    cfg->full = full;
    mf_case_limits_default(&cfg->lim);
    cfg->lim.max_work = 2e5;                /* about a millisecond of reference per case */
    cfg->lim.max_bytes = 2.0 * 1024 * 1024; /* about a millisecond of tensor generation */
    /* large T past the kernels' path switches (the CPU kernel's 128-token launches, the CUDA
     * kernel's routing above 64 tokens) from a few distinct rows; model H and I with 1 to 4
     * tokens (one random case in 256, one dimension mutation in 128: a second each) */
    cfg->lim.max_T = 4096;
    cfg->lim.rows_T = 64;
    cfg->lim.max_rows = 16;
    cfg->lim.full_T = 4;
    cfg->lim.max_work_full = 5e7;
    cfg->lim.max_bytes_full = 128.0 * 1024 * 1024;
    if (cfg->model) {
        /* model campaigns keep the model's sizes: allow one twin token per expert slot */
        cfg->lim.max_E = MF_MAX_E;
        cfg->lim.max_H = MF_MAX_H;
        cfg->lim.max_I = MF_MAX_I;
        cfg->lim.max_work = 3.0 * cfg->model->top_k * cfg->model->H_twin * cfg->model->I_twin * 4;
        cfg->lim.max_bytes = 512.0 * 1024 * 1024;
        cfg->lim.rows_T = cfg->lim.full_T = 0; /* the model's own sizes */
        if (cfg->full) cfg->lim.max_work = 1e13, cfg->lim.max_bytes = 1e12;
    }
    cfg->meta_every = MF_FUZZ_META_EVERY;
    cfg->observe_every = MF_FUZZ_OBSERVE_EVERY;
}

void mf_fuzz_config_from_env(mf_fuzz_config *cfg, const char *default_backend) {
    const char *b = getenv("MOEFUZZ_BACKEND");
    const char *m = getenv("MOEFUZZ_MODEL");
    mf_fuzz_config_init(cfg, b && *b ? b : default_backend, m && *m ? mf_model_find(m) : NULL,
                        getenv("MOEFUZZ_FULL") && atoi(getenv("MOEFUZZ_FULL")) != 0);
    const char *w = getenv("MOEFUZZ_MAX_WORK");
    if (w && *w) cfg->lim.max_work = atof(w);
    const char *nb = getenv("MOEFUZZ_NO_BUDGET");
    if (nb && atoi(nb)) { /* replay: every input runs, whatever its size */
        mf_fuzz_config_no_budget(cfg);
    }
    const char *me = getenv("MOEFUZZ_META_EVERY");
    if (me && atoi(me) > 0) cfg->meta_every = atoi(me);
    const char *s = getenv("MOEFUZZ_STATS");
    if (s && *s) snprintf(cfg->stats_dir, sizeof cfg->stats_dir, "%s", s);
    const char *rm = getenv("MOEFUZZ_METHOD");
    if (rm && *rm) {
        snprintf(cfg->method_name, sizeof cfg->method_name, "%s", rm);
        cfg->method = mf_method_find(rm);
    }
    const char *ct = getenv("MOEFUZZ_CONTRACT");
    if (ct && *ct) snprintf(cfg->contract_name, sizeof cfg->contract_name, "%s", ct);
}

void mf_fuzz_config_no_budget(mf_fuzz_config *cfg) {
    int rows_T = cfg->lim.rows_T, max_rows = cfg->lim.max_rows; /* what the inputs meant */
    cfg->lim = (mf_case_limits){MF_MAX_T, MF_MAX_H, MF_MAX_I, MF_MAX_E, 1e30, 64e9,
                                rows_T, max_rows, 0, 0, 0};
}

mf_fuzz *mf_fuzz_new(const mf_fuzz_config *cfg) {
    mf_fuzz *f = calloc(1, sizeof *f);
    if (!f) return NULL;
    f->cfg = *cfg;
    mf_check_opts_default(&f->opts);
    f->st.magic = MF_FUZZ_STATS_MAGIC;
    f->st.version = MF_FUZZ_STATS_VERSION;
    f->last_flush = mf_now_s();
    return f;
}

void mf_fuzz_use_backend(mf_fuzz *f, const mf_backend *b) {
    f->b = *b;
    f->given = 1;
}

void mf_fuzz_free(mf_fuzz *f) {
    if (!f) return;
    mf_fuzz_stats_flush(f);
    if ((f->opened && f->open_status == MF_OK) || f->given) mf_backend_close(&f->b);
    mf_problem_free(&f->pb);
    free(f);
}

const mf_fuzz_stats *mf_fuzz_get_stats(const mf_fuzz *f) {
    return &f->st;
}

const char *mf_fuzz_contract_name(const mf_fuzz *f) {
    return f->st.contract;
}

void mf_fuzz_stats_flush(mf_fuzz *f) {
    f->since_flush = 0;
    f->last_flush = mf_now_s();
    if (!f->cfg.stats_dir[0] || f->st.execs == 0) return;
    char path[1200], tmp[1240];
    snprintf(path, sizeof path, "%s/stats-%ld.bin", f->cfg.stats_dir, (long)getpid());
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *o = fopen(tmp, "wb");
    if (!o) return;
    int ok = fwrite(&f->st, sizeof f->st, 1, o) == 1;
    ok &= fclose(o) == 0;
    if (ok) rename(tmp, path);
}

void mf_fuzz_stats_print(const mf_fuzz_stats *sum, FILE *out) {
    int cells = 0;
    for (int i = 0; i < MF_FUZZ_CELLS; i++) cells += sum->cells[i] != 0;
    fprintf(out, "config cells     %d of %d reached\n", cells, MF_FUZZ_CELLS);
    fprintf(out,
            "utilisation      highest %.3g (%.3g where the radius is below |z|/2); cases by "
            "bucket:",
            sum->max_util, sum->max_util_informative);
    static const char *bl[] = {"0", "<1/64", "<1/32", "<1/16", "<1/8", "<1/4", "<1/2", "<=1", ">1"};
    for (int b = 0; b < MF_FUZZ_UTIL_BUCKETS; b++)
        fprintf(out, " %s:%llu", bl[b], (unsigned long long)sum->cases_by_bucket[b]);
    fprintf(out, "\n");
    fprintf(out, "sizes            cases checked by size class:");
    for (int z = 0; z < MF_SIZE_COUNT; z++)
        fprintf(out, " %s %llu (max T %llu, H %llu, I %llu)%s",
                mf_size_class_name((mf_size_class)z), (unsigned long long)sum->cases_by_size[z],
                (unsigned long long)sum->size_max[z][0], (unsigned long long)sum->size_max[z][1],
                (unsigned long long)sum->size_max[z][2], z + 1 < MF_SIZE_COUNT ? ";" : "");
    fprintf(out, "\n");
    fprintf(out, "metamorphic      %llu inputs ran the relations, %llu violated one\n",
            (unsigned long long)sum->meta_runs, (unsigned long long)sum->meta_violations);
    fprintf(out,
            "observability    of %llu cases examined, how many could catch each knob's loss:\n",
            (unsigned long long)sum->observed_cases);
    for (int k = 0; k < MF_FUZZ_KNOBS; k++)
        fprintf(out, "  %-20s %8llu  %s\n", mf_knob_name((mf_knob)k),
                (unsigned long long)sum->observable[k], mf_knob_summary((mf_knob)k));
}

/* ---- configuration cells ---- */

/* The v2 semantics class of a case: 0 = the v1 model, 1 = v2 float semantics (clamped or
 * parameterised activation, expert biases, interleaved layout, renormalisation denominator or
 * non-finite policy), 2 = fp8_block weights, 3 = mxfp4 weights, 4 = shared experts, 5 = the
 * routing weight on the input, 6 = pre-routed input, 7 = a tensor-parallel rank. */
static int v2_class(const mf_moe_params *p) {
    if (p->tp_size > 1) return 7;
    if (p->preroute != MF_PREROUTE_NONE) return 6;
    if (p->weight_on_input) return 5;
    if (p->n_shared > 0) return 4;
    if (p->weight_format == MF_WFMT_FP8_BLOCK) return 2;
    if (p->weight_format == MF_WFMT_MXFP4) return 3;
    return p->activation != MF_ACT_SILU_GLU || p->expert_bias != MF_EBIAS_NONE ||
           p->layout == MF_LAYOUT_INTERLEAVED || p->renorm_denom != MF_RENORM_SUM_EPS ||
           p->nonfinite != MF_NONFINITE_PROPAGATE;
}

/* 1 if c pokes its expert map (a fuzz input's pokes may leave it no placement map) */
static int map_poked(const mf_case *c) {
    if (c->p.placement != MF_PLACEMENT_MAP) return 0;
    for (int i = 0; i < c->n_pokes; i++)
        if (c->pokes[i].tensor == MF_T_EXPERT_MAP) return 1;
    return 0;
}

/* mixed radix: each digit is clamped to its radix, so a value out of range (a decoded case is
 * validated first, but the cell must never index past the counters) lands on the last cell */
static int digit(int cell, int v, int radix) { return cell * radix + (v >= 0 && v < radix ? v : radix - 1); }

/* docs/fuzzing.md quotes this count (tests/docs_claims.sh) */
_Static_assert(MF_FUZZ_CELLS == 248832, "update docs/fuzzing.md's cell count");

int mf_fuzz_cell(const mf_case *c) {
    const mf_moe_params *p = &c->p;
    int rsf = p->rsf == 1.0f ? 0 : 1 + (int)p->rsf_site;
    int kc = p->top_k == 1 ? 0 : p->top_k <= 8 ? 1 : 2;
    int tc = p->T == 1 ? 0 : p->T <= 16 ? 1 : 2;
    int cell = digit(0, p->score, MF_SCORE_COUNT);
    cell = digit(cell, p->bias, MF_BIAS_COUNT);
    cell = digit(cell, p->n_group > 1, 2);
    cell = digit(cell, p->renormalize != 0, 2);
    cell = digit(cell, rsf, 1 + MF_RSF_COUNT);
    cell = digit(cell, p->placement == MF_PLACEMENT_MAP ? 2 : p->E_local < p->E, 3);
    cell = digit(cell, p->layout == MF_LAYOUT_UP_GATE, 2);
    cell = digit(cell, p->logits_dtype, MF_DTYPE_COUNT);
    cell = digit(cell, p->renorm_eps != 0, 2);
    cell = digit(cell, kc, 3);
    cell = digit(cell, tc, 3);
    cell = digit(cell, v2_class(p), 8);
    return cell;
}

int mf_fuzz_coarse(const mf_case *c) {
    const mf_moe_params *p = &c->p;
    int coarse = digit(0, p->score, MF_SCORE_COUNT);
    coarse = digit(coarse, p->bias, MF_BIAS_COUNT);
    coarse = digit(coarse, p->n_group > 1, 2);
    return digit(coarse, p->renormalize != 0, 2);
}

int mf_fuzz_util_bucket(double util, int pass) {
    if (!pass) return 8;
    if (util <= 0) return 0;
    int b = 1;
    for (double edge = 1.0 / 64; util > edge && b < 7; edge *= 2) b++;
    return b;
}

int mf_fuzz_features(const mf_fuzz_result *r, uint32_t *idx, int max) {
    int n = 0;
    if (r->outcome != MF_FUZZ_PASS && r->outcome != MF_FUZZ_FAIL) return 0;
    uint32_t base = 0;
    if (n < max) idx[n++] = (uint32_t)(r->cell * 2 + r->ambiguous);
    base += MF_FUZZ_CELLS * 2;
    if (n < max) idx[n++] = base + (uint32_t)(r->coarse * MF_FUZZ_UTIL_BUCKETS + r->util_bucket);
    base += MF_FUZZ_COARSE * MF_FUZZ_UTIL_BUCKETS;
    if (r->observed) {
        /* reward cases that can observe more knobs, and any case observing a knob */
        int pop = __builtin_popcount(r->knobs);
        if (n < max) idx[n++] = base + (uint32_t)(r->coarse * (MF_FUZZ_KNOBS + 1) + pop);
        for (int k = 0; k < MF_FUZZ_KNOBS && n < max; k++)
            if (r->knobs & (1u << k))
                idx[n++] = base + MF_FUZZ_COARSE * (MF_FUZZ_KNOBS + 1) + (uint32_t)k;
    }
    return n;
}

void mf_fuzz_shape(const mf_fuzz_config *cfg, mf_case *c) {
    /* the fuzz budget (over_budget), not a size limit, bounds what runs; a method keeps a
     * decoded case valid */
    mf_prep pp = {.model = cfg->model, .full = cfg->full, .fold_T = 64, .method = cfg->method};
    (void)mf_prep_case(&pp, c, NULL);
    mf_case_rows(c, &cfg->lim);
}

static int over_budget(const mf_fuzz_config *cfg, const mf_case *c) {
    if (cfg->lim.max_work >= 1e30) return 0;
    if (cfg->model && !cfg->full)
        return mf_case_work(c) > cfg->lim.max_work * 4 || mf_case_bytes(c) > cfg->lim.max_bytes;
    return !mf_case_fits(c, &cfg->lim);
}

mf_fuzz_outcome mf_fuzz_one(mf_fuzz *f, const uint8_t *data, size_t size, mf_fuzz_result *r) {
    memset(r, 0, sizeof *r);
    mf_case_decode(data, size, &r->c, NULL);
    mf_fuzz_shape(&f->cfg, &r->c);
    f->st.execs++;
    mf_error err = {0};
    /* the backend opens on the first input, skipped or not: an unusable backend shows at once */
    if (!f->opened) {
        f->opened = 1;
        f->open_status = f->given ? MF_OK : mf_backend_open(f->cfg.backend, &f->b, &err);
        snprintf(f->open_error, sizeof f->open_error, "%s", err.msg);
        /* the routing method: asked for, or declared by the kernel; exec case files record it */
        if (f->open_status == MF_OK && !f->cfg.method && !f->cfg.method_name[0] &&
            f->b.routing_method[0])
            f->cfg.method = mf_method_find(f->b.routing_method);
        mf_case probe;
        mf_case_default(&probe);
        if (f->open_status == MF_OK && f->cfg.method_name[0] && !f->cfg.method) {
            f->open_status = MF_EINVAL;
            snprintf(f->open_error, sizeof f->open_error,
                     "unknown routing method '%.60s' (moefuzz methods)", f->cfg.method_name);
        } else if (f->open_status == MF_OK && f->cfg.method &&
                   mf_method_apply(f->cfg.method, &probe, &err) != MF_OK) {
            f->open_status = err.status;
            snprintf(f->open_error, sizeof f->open_error, "%s", err.msg);
        } else if (f->open_status == MF_OK && f->cfg.method) {
            snprintf(f->b.routing_method, sizeof f->b.routing_method, "%s", f->cfg.method->name);
        }
        const mf_contract *con =
            f->cfg.contract_name[0] ? mf_contract_find(f->cfg.contract_name) : NULL;
        if (f->open_status == MF_OK && f->cfg.contract_name[0] && !con) {
            f->open_status = MF_EINVAL;
            snprintf(f->open_error, sizeof f->open_error, "unknown contract '%.60s'",
                     f->cfg.contract_name);
        } else if (f->open_status == MF_OK && con) {
            f->b.contract = *con;
        }
        if (f->open_status == MF_OK)
            snprintf(f->st.contract, sizeof f->st.contract, "%s", f->b.contract.name);
    }
    if (f->open_status == MF_OK && f->cfg.method) mf_fuzz_shape(&f->cfg, &r->c);
    if (f->open_status != MF_OK) {
        /* backend.c's messages already name the backend */
        if (!strncmp(f->open_error, "backend ", 8))
            snprintf(r->error, sizeof r->error, "%.900s", f->open_error);
        else
            snprintf(r->error, sizeof r->error, "backend %.200s: %.700s", f->cfg.backend,
                     f->open_error);
        r->backend_unusable = 1;
        /* MF_ENODEVICE: a GPU backend without a GPU */
        r->no_device = f->open_status == MF_ENODEVICE;
        f->st.errors++;
        return r->outcome = MF_FUZZ_ERROR;
    }
    if (over_budget(&f->cfg, &r->c)) {
        f->st.skips++;
        return r->outcome = MF_FUZZ_SKIP;
    }
    f->opts.metamorphic = f->st.execs % (uint64_t)f->cfg.meta_every == 0;
    mf_status ust = mf_problem_update(&r->c, &f->pb, &err);
    if (ust != MF_OK && map_poked(&r->c)) {
        /* raw bytes whose pokes left the expert map no placement map: bad input (exit 2 in
         * `moefuzz check`), not a kernel's error */
        f->st.skips++;
        return r->outcome = MF_FUZZ_SKIP;
    }
    if (ust != MF_OK || mf_check_problem(&f->pb, &f->b, &f->opts, &r->v, &err) != MF_OK) {
        snprintf(r->error, sizeof r->error, "%s", err.msg);
        f->st.errors++;
        return r->outcome = MF_FUZZ_ERROR;
    }
    if (r->v.unsupported) {
        f->st.unsupported++;
        f->st.skips++;
        return r->outcome = MF_FUZZ_SKIP;
    }
    r->cell = mf_fuzz_cell(&r->c);
    r->coarse = mf_fuzz_coarse(&r->c);
    r->ambiguous = r->v.tokens_ambiguous > 0;
    r->util_bucket = mf_fuzz_util_bucket(r->v.max_util_informative, r->v.pass);
    f->st.cells[r->cell] = 1;
    f->st.cases_by_bucket[r->util_bucket]++;
    mf_size_class sc = mf_case_size_class(&r->c);
    f->st.cases_by_size[sc]++;
    if ((uint64_t)r->c.p.T > f->st.size_max[sc][0]) f->st.size_max[sc][0] = (uint64_t)r->c.p.T;
    if ((uint64_t)r->c.p.H > f->st.size_max[sc][1]) f->st.size_max[sc][1] = (uint64_t)r->c.p.H;
    if ((uint64_t)r->c.p.I > f->st.size_max[sc][2]) f->st.size_max[sc][2] = (uint64_t)r->c.p.I;
    if (r->v.pass) {
        if (r->v.max_util_out > f->st.max_util) f->st.max_util = r->v.max_util_out;
        if (r->v.max_util_informative > f->st.max_util_informative)
            f->st.max_util_informative = r->v.max_util_informative;
    }
    if (r->v.has_meta) {
        f->st.meta_runs++;
        f->st.meta_violations += r->v.meta.n_violated > 0;
    }
    if (r->v.pass && f->cfg.observe_every > 1 &&
        f->st.execs % (uint64_t)f->cfg.observe_every == (uint64_t)f->cfg.observe_every / 2 &&
        mf_observable_knobs(&f->pb, &f->b.contract, &r->knobs, &err) == MF_OK) {
        r->observed = 1;
        f->st.observed_cases++;
        for (int k = 0; k < MF_FUZZ_KNOBS; k++) f->st.observable[k] += (r->knobs >> k) & 1u;
    }
    if (++f->since_flush >= 256 || mf_now_s() - f->last_flush >= 1.0) mf_fuzz_stats_flush(f);
    if (r->v.pass) {
        f->st.passes++;
        return r->outcome = MF_FUZZ_PASS;
    }
    f->st.fails++;
    mf_fuzz_stats_flush(f); /* the trap that follows skips atexit */
    return r->outcome = MF_FUZZ_FAIL;
}

const char *mf_fuzz_failed_stage(const mf_fuzz_result *r) {
    if (r->outcome == MF_FUZZ_ERROR) return "error";
    if (r->outcome != MF_FUZZ_FAIL) return NULL;
    for (int s = 0; s < MF_STAGE_COUNT; s++)
        if (r->v.n_bad[s]) return mf_stage_name((mf_stage)s);
    return r->v.has_meta && r->v.meta.n_violated ? "metamorphic" : "unknown";
}

void mf_fuzz_signature(const mf_fuzz_result *r, char *sig, size_t n) {
    const char *stage = mf_fuzz_failed_stage(r);
    if (r->outcome == MF_FUZZ_ERROR)
        snprintf(sig, n, "backend error: %.120s", r->error);
    else if (r->v.has_attribution && r->v.attr.n_match == 1)
        snprintf(sig, n, "stage %s; suspected %s (%s)", stage, mf_knob_name(r->v.attr.match[0]),
                 mf_knob_summary(r->v.attr.match[0]));
    else if (r->v.has_attribution && r->v.attr.n_match > 1)
        snprintf(sig, n, "stage %s; suspected one of %d knobs, first %s", stage,
                 r->v.attr.n_match, mf_knob_name(r->v.attr.match[0]));
    else
        snprintf(sig, n, "stage %s; no single knob explains it", stage);
}

void mf_fuzz_report(const mf_fuzz_result *r, const char *backend, FILE *out) {
    char q[600];
    mf_shell_quote(backend, q, sizeof q);
    fprintf(out, "\n==== moefuzz: %s on backend %s ====\n",
            r->outcome == MF_FUZZ_FAIL ? "MISMATCH" : "BACKEND ERROR", backend);
    fprintf(out, "---- case (save as a .txt file; `moefuzz check --backend %s FILE` replays it)\n",
            q);
    mf_case_print_text(&r->c, out);
    fprintf(out, "---- diagnosis\n");
    if (r->outcome == MF_FUZZ_ERROR)
        fprintf(out, "  %s\n", r->error);
    else
        mf_verdict_print(&r->v, out);
    fprintf(out, "====\n");
}

/* ---- input files of the fuzz tools ---- */

const char *mf_fuzz_input_kind_name(mf_fuzz_input_kind k) {
    return k == MF_FUZZ_INPUT_TEXT ? "text" : k == MF_FUZZ_INPUT_CANONICAL ? "binary" : "raw";
}

static int reads_as_text(const uint8_t *d, size_t n) {
    if (n == 0) return 0;
    for (size_t i = 0; i < n; i++)
        if (d[i] == 0 || d[i] >= 0x7f ||
            (d[i] < 0x20 && d[i] != '\n' && d[i] != '\t' && d[i] != '\r'))
            return 0;
    return 1;
}

mf_status mf_fuzz_input_load(const char *path, int raw, mf_fuzz_input *in, mf_error *err) {
    memset(in, 0, sizeof *in);
    uint8_t *d;
    size_t n;
    MF_TRY(mf_read_file(path, &d, &n, 1u << 20, err));
    in->file_len = n;
    size_t plen = strlen(path);
    if (!raw && plen > 4 && !strcmp(path + plen - 4, ".txt")) {
        mf_case c;
        mf_error e2 = {0};
        uint8_t *buf = malloc(MF_CASE_MAX_BYTES);
        mf_status st = buf ? mf_case_parse_text((const char *)d, &c, &e2) : MF_ENOMEM;
        free(d);
        if (st != MF_OK) {
            free(buf);
            return MF_FAIL(err, st, "%.300s: %.600s", path, buf ? e2.msg : "out of memory");
        }
        in->len = mf_case_encode(&c, 1, buf, MF_CASE_MAX_BYTES);
        if (in->len == 0) {
            free(buf);
            return MF_FAIL(err, MF_EINTERNAL, "%.300s: the case does not encode", path);
        }
        in->kind = MF_FUZZ_INPUT_TEXT;
        in->bytes = buf;
        return MF_OK;
    }
    in->bytes = d;
    in->len = n;
    in->kind = MF_FUZZ_INPUT_RAW;
    if (!raw) {
        char why[256];
        mf_bin_kind bk = mf_case_classify(d, n, why, sizeof why);
        if (bk == MF_BIN_DAMAGED) {
            mf_fuzz_input_free(in);
            return MF_FAIL(err, MF_EINVAL,
                           "%.300s: %.250s (pass --raw to run its bytes as a "
                           "fuzzer input)",
                           path, why);
        }
        if (bk == MF_BIN_CANONICAL) in->kind = MF_FUZZ_INPUT_CANONICAL;
    }
    in->printable = in->kind == MF_FUZZ_INPUT_RAW && reads_as_text(d, n);
    return MF_OK;
}

void mf_fuzz_input_free(mf_fuzz_input *in) {
    free(in->bytes);
    memset(in, 0, sizeof *in);
}

void mf_shell_quote(const char *s, char *out, size_t n) {
    if (n == 0) return;
    int plain = *s != '\0';
    for (const char *p = s; *p && plain; p++)
        plain = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
                strchr("@%+=:,./_-", *p) != NULL;
    if (plain) {
        snprintf(out, n, "%s", s);
        return;
    }
    /* '...' with every ' written as '\'' */
    size_t o = 0;
    out[o++] = '\'';
    for (const char *p = s; *p && o + 5 < n; p++) {
        if (*p == '\'') {
            memcpy(out + o, "'\\''", 4);
            o += 4;
        } else {
            out[o++] = *p;
        }
    }
    if (o + 1 < n) out[o++] = '\'';
    out[o < n ? o : n - 1] = '\0';
}

/* ---- a campaign's settings ---- */

mf_status mf_fuzz_campaign_write(const char *workdir, const mf_fuzz_campaign *c, const char *note,
                                 mf_error *err) {
    char path[1200], tmp[1240];
    snprintf(path, sizeof path, "%s/%s", workdir, MF_FUZZ_CAMPAIGN_FILE);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f) return MF_FAIL(err, MF_EIO, "cannot write %s", tmp);
    fprintf(f,
            "# moefuzz fuzz campaign: `moefuzz repro` and `moefuzz minimize` of inputs under this\n"
            "# directory use these settings unless told otherwise (empty: none; contract: the\n"
            "# kernel's own)\n");
    if (note) fprintf(f, "# %s\n", note);
    fprintf(f, "backend = %s\nmodel = %s\nfull = %d\nmethod = %s\ncontract = %s\n", c->backend,
            c->model, c->full, c->method, c->contract);
    if (fclose(f) != 0 || rename(tmp, path) != 0)
        return MF_FAIL(err, MF_EIO, "cannot write %s", path);
    return MF_OK;
}

mf_status mf_fuzz_campaign_read(const char *workdir, mf_fuzz_campaign *c, mf_error *err) {
    memset(c, 0, sizeof *c);
    char path[1200], line[512];
    snprintf(path, sizeof path, "%s/%s", workdir, MF_FUZZ_CAMPAIGN_FILE);
    FILE *f = fopen(path, "r");
    if (!f) return MF_FAIL(err, MF_EIO, "no %s", path);
    int n = 0, seen = 0;
    mf_status st = MF_OK;
    while (st == MF_OK && fgets(line, sizeof line, f)) {
        n++;
        line[strcspn(line, "\r\n")] = '\0';
        if (line[0] == '#' || line[0] == '\0') continue;
        char *eq = strstr(line, " = ");
        if (!eq && line[strlen(line) - 1] == '=' && strlen(line) >= 2 &&
            line[strlen(line) - 2] == ' ')
            eq = line + strlen(line) - 2; /* "key =" with an empty value */
        if (!eq) {
            st = MF_FAIL(err, MF_EINVAL, "%s: line %d: expected 'key = value'", path, n);
            break;
        }
        *eq = '\0';
        const char *v = eq[1] && eq[2] ? eq + 3 : "";
        if (!strcmp(line, "backend"))
            snprintf(c->backend, sizeof c->backend, "%s", v);
        else if (!strcmp(line, "model"))
            snprintf(c->model, sizeof c->model, "%s", v);
        else if (!strcmp(line, "method"))
            snprintf(c->method, sizeof c->method, "%s", v);
        else if (!strcmp(line, "contract"))
            snprintf(c->contract, sizeof c->contract, "%s", v);
        else if (!strcmp(line, "full"))
            c->full = atoi(v) != 0;
        else
            st = MF_FAIL(err, MF_EINVAL, "%s: line %d: unknown key '%s'", path, n, line);
        seen++;
    }
    fclose(f);
    if (st == MF_OK && seen < 5)
        st = MF_FAIL(err, MF_EINVAL, "%s: incomplete (backend, model, full, method, contract)",
                     path);
    return st;
}

int mf_fuzz_campaign_find(const char *input_path, char *dir, size_t n) {
    char d[1024];
    snprintf(d, sizeof d, "%s", input_path);
    for (int up = 0; up < 2; up++) {
        char *slash = strrchr(d, '/');
        if (slash)
            *slash = '\0';
        else
            snprintf(d, sizeof d, ".");
        char path[1200];
        snprintf(path, sizeof path, "%s/%s", d[0] ? d : "/", MF_FUZZ_CAMPAIGN_FILE);
        if (access(path, R_OK) == 0) {
            snprintf(dir, n, "%s", d[0] ? d : "/");
            return 1;
        }
        if (!slash) break;
    }
    return 0;
}

int mf_fuzz_campaign_same(const mf_fuzz_campaign *a, const mf_fuzz_campaign *b) {
    return !strcmp(a->backend, b->backend) && !strcmp(a->model, b->model) && a->full == b->full &&
           !strcmp(a->method, b->method) && !strcmp(a->contract, b->contract);
}

int mf_fuzz_campaign_use(const char *input_path, mf_fuzz_campaign *c, char *dir, size_t n,
                         mf_error *err) {
    if (!mf_fuzz_campaign_find(input_path, dir, n)) return 0;
    if (mf_fuzz_campaign_read(dir, c, err) != MF_OK) return -1;
    int model_given = getenv("MOEFUZZ_MODEL") != NULL;
    if (c->backend[0]) setenv("MOEFUZZ_BACKEND", c->backend, 0);
    if (c->model[0]) setenv("MOEFUZZ_MODEL", c->model, 0);
    if (!model_given && c->full) setenv("MOEFUZZ_FULL", "1", 0);
    if (c->method[0]) setenv("MOEFUZZ_METHOD", c->method, 0);
    if (c->contract[0]) setenv("MOEFUZZ_CONTRACT", c->contract, 0);
    return 1;
}
