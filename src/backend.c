/* backend.c: the kernel in this process (built-ins, mutants, plugins) run on poisoned, guarded
 * buffers, and the ABI helpers the worker and exec backends share: params, contract, feature
 * level and its gate (see backend.h). The factory above (backend_factory.c) picks the kind. */
#include "backend.h"

#include <dlfcn.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../kernels/cpu/moe_cpu.h"
#include "bf16.h"
#include "methods.h"
#include "../kernels/mutants.h"

/* ---- mutant names ---- */

static const char *const mutant_names[] = {"none",
#define X(id, name, knob, doc) name,
                                           MF_MUTANT_LIST(X)
#undef X
};
static const char *const mutant_knobs[] = {"-",
#define X(id, name, knob, doc) knob,
                                           MF_MUTANT_LIST(X)
#undef X
};
static const char *const mutant_docs[] = {"",
#define X(id, name, knob, doc) doc,
                                          MF_MUTANT_LIST(X)
#undef X
};

int mf_mutant_count(void) { return MF_MUTANT_COUNT - 1; }
int mf_mutant_lookup(const char *name) {
    for (int i = 1; i < MF_MUTANT_COUNT; i++)
        if (!strcmp(name, mutant_names[i])) return i;
    return -1;
}
const char *mf_mutant_name(int id) {
    return id > 0 && id < MF_MUTANT_COUNT ? mutant_names[id] : "none";
}
const char *mf_mutant_knob(int id) {
    return id > 0 && id < MF_MUTANT_COUNT ? mutant_knobs[id] : "-";
}
const char *mf_mutant_doc(int id) { return id > 0 && id < MF_MUTANT_COUNT ? mutant_docs[id] : ""; }

/* ---- the ABI's enum values ----
 * Every internal value (reference/enums.h) equals its ABI value; the mapping is the identity on
 * the values the list knows, and a value outside it is an error, never a default. */
#define MF_ABI_SAME_(P, id, name, abi) \
    _Static_assert((int)P##_##id == (int)(abi), #P "_" #id " equals " #abi);
MF_SCORE_LIST(MF_ABI_SAME_, MF_SCORE)
MF_BIAS_LIST(MF_ABI_SAME_, MF_BIAS)
MF_GROUP_RULE_LIST(MF_ABI_SAME_, MF_GROUP)
MF_RSF_SITE_LIST(MF_ABI_SAME_, MF_RSF)
MF_ACTIVATION_LIST(MF_ABI_SAME_, MF_ACT)
MF_LAYOUT_LIST(MF_ABI_SAME_, MF_LAYOUT)
MF_DTYPE_LIST(MF_ABI_SAME_, MF_DTYPE)
MF_RENORM_DENOM_LIST(MF_ABI_SAME_, MF_RENORM)
MF_NONFINITE_LIST(MF_ABI_SAME_, MF_NONFINITE)
MF_EXPERT_BIAS_LIST(MF_ABI_SAME_, MF_EBIAS)
MF_WEIGHT_FORMAT_LIST(MF_ABI_SAME_, MF_WFMT)
MF_SCALE_FORMAT_LIST(MF_ABI_SAME_, MF_SCALE)
MF_SHARED_WEIGHT_LIST(MF_ABI_SAME_, MF_SHW)
MF_SHARED_OWNER_LIST(MF_ABI_SAME_, MF_SHOWN)
MF_PREROUTE_LIST(MF_ABI_SAME_, MF_PREROUTE)
MF_PLACEMENT_LIST(MF_ABI_SAME_, MF_PLACEMENT)
MF_EXP_LIST(MF_ABI_SAME_, MF_EXP)
MF_DIV_LIST(MF_ABI_SAME_, MF_DIV)
MF_ACC_LIST(MF_ABI_SAME_, MF_ACC)
MF_SIGMOID_FORM_LIST(MF_ABI_SAME_, MF_SIGMOID)
MF_TIE_RULE_LIST(MF_ABI_SAME_, MF_TIE)
MF_WEIGHT_FORM_LIST(MF_ABI_SAME_, MF_WEIGHT)
#undef MF_ABI_SAME_
#define MF_RP_SAME_(id) _Static_assert((unsigned)MF_RP_##id == (unsigned)MF_ABI_RP_##id, #id);
MF_RP_SAME_(GEMM1_OUT)
MF_RP_SAME_(ACT_OUT)
MF_RP_SAME_(GEMM2_OUT)
MF_RP_SAME_(WEIGHTED)
MF_RP_SAME_(WEIGHTS)
MF_RP_SAME_(SILU_OUT)
MF_RP_SAME_(RSF_OUT)
MF_RP_SAME_(BIAS)
#undef MF_RP_SAME_
/* the round points the ABI knows; a declared bit outside them is an error */
#define MF_ABI_RP_KNOWN_ (2u * MF_ABI_RP_BIAS - 1u)

/* v as the ABI's value of enum e, or an error naming the enum and the value */
static mf_status abi_value(const mf_enum_info *e, int v, int32_t *out, mf_error *err) {
    if (v < 0 || v >= e->count)
        return MF_FAIL(err, MF_EINTERNAL, "%s value %d has no kernel ABI value", e->key, v);
    *out = v;
    return MF_OK;
}

/* ---- feature levels ---- */

/* The slots the extensions took were reserved in the first header: the layouts did not move. */
_Static_assert(offsetof(mf_kernel_api, get_ext) ==
                   offsetof(mf_kernel_api, release) + sizeof(void (*)(void *)),
               "get_ext is the first header's reserved[0] of mf_kernel_api");
_Static_assert(sizeof(mf_kernel_api) ==
                   offsetof(mf_kernel_api, release) + sizeof(void (*)(void *)) + 8 * sizeof(void *),
               "mf_kernel_api keeps the first header's size");
_Static_assert(sizeof(mf_kernel_contract_ext) == 128 &&
                   offsetof(mf_kernel_contract_ext, reserved) == 96,
               "mf_kernel_contract_ext's layout is fixed: fields are appended into reserved");
_Static_assert(offsetof(mf_kernel_params, ext) + 8 == offsetof(mf_kernel_params, reserved) &&
                   sizeof(mf_kernel_params) == offsetof(mf_kernel_params, reserved) + 7 * 8,
               "params.ext is the first header's reserved[0]");

/* The enum values of each level: ABI values below count exist from level on. Level 1 is what the
 * first header declares, frozen; a level that adds values appends its row with the new count. */
static const struct {
    const mf_enum_info *e;
    int count;
    uint32_t level;
} enum_levels[] = {
    {&mf_enum_score, 2, MF_ABI_LEVEL_1},      {&mf_enum_bias, 3, MF_ABI_LEVEL_1},
    {&mf_enum_group_rule, 2, MF_ABI_LEVEL_1}, {&mf_enum_rsf_site, 2, MF_ABI_LEVEL_1},
    {&mf_enum_activation, 1, MF_ABI_LEVEL_1}, {&mf_enum_layout, 2, MF_ABI_LEVEL_1},
    {&mf_enum_dtype, 2, MF_ABI_LEVEL_1},      {&mf_enum_activation, 4, MF_ABI_LEVEL_2},
    {&mf_enum_layout, 3, MF_ABI_LEVEL_2},     {&mf_enum_score, 3, MF_ABI_LEVEL_2},
    {&mf_enum_score, 4, MF_ABI_LEVEL_5},
};

/* UINT32_MAX for a value no level has (mf_backend_params refuses it) */
static uint32_t enum_level(const mf_enum_info *e, int v) {
    uint32_t lvl = UINT32_MAX;
    for (size_t i = 0; i < sizeof enum_levels / sizeof enum_levels[0]; i++)
        if (enum_levels[i].e == e && v >= 0 && v < enum_levels[i].count &&
            enum_levels[i].level < lvl)
            lvl = enum_levels[i].level;
    return lvl;
}

uint32_t mf_case_level(const mf_moe_params *p, char *what, size_t n) {
    uint32_t level = MF_ABI_LEVEL_1;
    snprintf(what, n, "the first header's case");
    const struct {
        const mf_enum_info *e;
        int v;
    } enums[] = {{&mf_enum_score, p->score},         {&mf_enum_bias, p->bias},
                 {&mf_enum_group_rule, p->group_rule}, {&mf_enum_rsf_site, p->rsf_site},
                 {&mf_enum_activation, p->activation}, {&mf_enum_layout, p->layout},
                 {&mf_enum_dtype, p->logits_dtype}};
    for (size_t i = 0; i < sizeof enums / sizeof enums[0]; i++) {
        uint32_t l = enum_level(enums[i].e, enums[i].v);
        if (l > level) {
            level = l;
            snprintf(what, n, "%s = %s", enums[i].e->key, mf_enum_name(enums[i].e, enums[i].v));
        }
    }
    for (int i = 0; i < mf_n_params_v2; i++) {
        const mf_param_v2 *d = &mf_params_v2[i];
        double v = mf_param_v2_get(p, d);
        if (v != 0 && (uint32_t)d->level > level) {
            level = (uint32_t)d->level;
            if (d->kind == MF_PK_ENUM) snprintf(what, n, "%s = %s", d->key, mf_enum_name(d->e, (int)v));
            else snprintf(what, n, "%s = %g", d->key, v);
        }
    }
    for (int t = 0; t < MF_NUM_TENSORS; t++) {
        uint32_t l = (uint32_t)mf_tensor_level((mf_tensor_id)t);
        if (mf_tensor_present(p, (mf_tensor_id)t) && l > level) {
            level = l;
            snprintf(what, n, "tensor %s", mf_tensor_name((mf_tensor_id)t));
        }
    }
    return level;
}

mf_status mf_backend_level(const mf_kernel_features *f, uint32_t *level, mf_error *err) {
    *level = MF_ABI_LEVEL_1;
    if (f->ext.kind == 0) return MF_OK; /* nothing declared */
    if (f->ext.kind != MF_KERNEL_EXT_FEATURES ||
        f->ext.struct_size < offsetof(mf_kernel_features, level) + sizeof f->level)
        return MF_FAIL(err, MF_EINVAL,
                       "kernel's features extension has kind %u and size %u (want kind %u, "
                       "size >= %zu)",
                       f->ext.kind, f->ext.struct_size, (unsigned)MF_KERNEL_EXT_FEATURES,
                       offsetof(mf_kernel_features, level) + sizeof f->level);
    if (f->level < MF_ABI_LEVEL_1)
        return MF_FAIL(err, MF_EINVAL, "kernel declares feature level %u (levels start at 1)",
                       f->level);
    *level = f->level < MF_KERNEL_FEATURE_LEVEL ? f->level : MF_KERNEL_FEATURE_LEVEL;
    return MF_OK;
}

/* The kernel's extension of a kind, copied by value into out (size bytes: the reader's struct;
 * the bytes past the writer's struct_size stay zero; all zero when it declares none). */
static void api_ext(const mf_kernel_api *api, uint32_t kind, mf_kernel_ext *out, size_t size) {
    memset(out, 0, size);
    if (api->struct_size < offsetof(mf_kernel_api, get_ext) + sizeof api->get_ext || !api->get_ext)
        return;
    const mf_kernel_ext *e = api->get_ext(kind);
    if (!e) return;
    size_t n = e->struct_size < size ? e->struct_size : size;
    memcpy(out, e, n < sizeof *e ? sizeof *e : n);
    out->next = NULL;
}

/* ---- contracts ---- */

static mf_status acc_from_abi(int32_t kind, int32_t block, int32_t frac_bits, mf_acc_model *out,
                              mf_error *err) {
    switch (kind) {
    case MF_ABI_ACC_SEQ_FP32:
        *out = (mf_acc_model){MF_ACC_SEQ_FP32, 1, 0};
        break;
    case MF_ABI_ACC_FUSED_BLOCK:
        if (block < 1 || block > 4096 || frac_bits < 22 || frac_bits > 60)
            return MF_FAIL(err, MF_EINVAL,
                           "declared fused-block contract B=%d F=%d unsupported (B in 1 .. 4096, "
                           "F in 22 .. 60)",
                           block, frac_bits);
        *out = (mf_acc_model){MF_ACC_FUSED_BLOCK, block, frac_bits};
        break;
    case MF_ABI_ACC_ORDERED_BLOCKS:
        if (block < 1 || block > 4096 || frac_bits < 22 || frac_bits > 60)
            return MF_FAIL(err, MF_EINVAL,
                           "declared ordered-blocks contract B=%d F=%d unsupported (B in 1 .. "
                           "4096, F in 22 .. 60)",
                           block, frac_bits);
        *out = (mf_acc_model){MF_ACC_ORDERED_BLOCKS, block, frac_bits};
        break;
    case MF_ABI_ACC_ANY_ORDER:
        *out = (mf_acc_model){MF_ACC_ANY_ORDER, 0, 0};
        break;
    default:
        return MF_FAIL(err, MF_EINVAL, "unknown accumulation kind %d", kind);
    }
    return MF_OK;
}

/* One field of the contract extension: an enum value in its list, a flag 0 or 1, a number in
 * its range; anything else names the field and the value. */
static mf_status ext_enum(const char *field, const mf_enum_info *e, int32_t v, int *out,
                          mf_error *err) {
    char names[160];
    if (v < 0 || v >= e->count)
        return MF_FAIL(err, MF_EINVAL,
                       "kernel's contract extension: %s = %d is not one of %s "
                       "(0 .. %d)",
                       field, v, mf_enum_choices(e, names, sizeof names), e->count - 1);
    *out = v;
    return MF_OK;
}

static mf_status ext_flag(const char *field, int32_t v, int *out, mf_error *err) {
    if (v != 0 && v != 1)
        return MF_FAIL(err, MF_EINVAL, "kernel's contract extension: %s = %d (0 or 1)", field, v);
    *out = v;
    return MF_OK;
}

/* an exp kind and its ulps: accurate needs ulps in (0, 1024], fast takes none */
static mf_status ext_exp(const char *kind_field, const char *field, int32_t kind, float ulps,
                         mf_exp_kind *k, double *u, mf_error *err) {
    int v = 0;
    MF_TRY(ext_enum(kind_field, &mf_enum_exp, kind, &v, err));
    *k = (mf_exp_kind)v;
    if (v == MF_EXP_ACCURATE ? !(ulps > 0 && ulps <= 1024) : ulps != 0)
        return MF_FAIL(err, MF_EINVAL,
                       "kernel's contract extension: %s = %g with exp kind %s (accurate: "
                       "(0, 1024] ulps; fast: 0)",
                       field, (double)ulps, mf_enum_name(&mf_enum_exp, v));
    *u = v == MF_EXP_ACCURATE ? ulps : 0;
    return MF_OK;
}

mf_status mf_contract_from_ext(const mf_kernel_contract_ext *x, mf_contract *out, char *name_buf,
                               size_t name_len, mf_error *err) {
    if (x->ext.kind != MF_KERNEL_EXT_CONTRACT ||
        x->ext.struct_size < offsetof(mf_kernel_contract_ext, reserved))
        return MF_FAIL(err, MF_EINVAL,
                       "kernel's contract extension has kind %u and size %u (want kind %u, size "
                       ">= %zu)",
                       x->ext.kind, x->ext.struct_size, (unsigned)MF_KERNEL_EXT_CONTRACT,
                       offsetof(mf_kernel_contract_ext, reserved));
    memset(out, 0, sizeof *out);
    snprintf(name_buf, name_len, "declared");
    out->name = name_buf;
    out->summary = "declared field by field by the kernel (MF_KERNEL_EXT_CONTRACT)";
    MF_TRY(acc_from_abi(x->acc_kind, x->acc_block, x->acc_frac_bits, &out->gemm, err));
    MF_TRY(
        ext_exp("exp_kind", "exp_ulps", x->exp_kind, x->exp_ulps, &out->exp, &out->exp_ulps, err));
    int v = 0;
    MF_TRY(ext_enum("div_kind", &mf_enum_div, x->div_kind, &v, err));
    out->div = (mf_div_kind)v;
    if (x->round_points & ~MF_ABI_RP_KNOWN_)
        return MF_FAIL(err, MF_EINVAL,
                       "kernel's contract extension: round_points 0x%x has bits this moefuzz "
                       "does not know (0x%x)",
                       x->round_points, x->round_points & ~MF_ABI_RP_KNOWN_);
    if (!(x->round_points & MF_ABI_RP_ACT_OUT))
        return MF_FAIL(err, MF_EUNSUPPORTED,
                       "declared contract must round the activation to bf16 (MF_ABI_RP_ACT_OUT)");
    out->round_points = x->round_points;
    MF_TRY(ext_flag("deterministic", x->deterministic, &out->deterministic, err));
    MF_TRY(ext_flag("router_own", x->router_own, &out->router.own, err));
    if (out->router.own) {
        MF_TRY(ext_exp("router_exp_kind", "router_exp_ulps", x->router_exp_kind, x->router_exp_ulps,
                       &out->router.exp, &out->router.exp_ulps, err));
        MF_TRY(ext_enum("router_div_kind", &mf_enum_div, x->router_div_kind, &v, err));
        out->router.div = (mf_div_kind)v;
    } else if (x->router_exp_kind || x->router_exp_ulps != 0 || x->router_div_kind) {
        return MF_FAIL(err, MF_EINVAL,
                       "kernel's contract extension: router_exp_kind, router_exp_ulps or "
                       "router_div_kind set with router_own = 0");
    }
    MF_TRY(ext_enum("sigmoid_form", &mf_enum_sigmoid_form, x->sigmoid_form, &v, err));
    out->sigmoid_form = (mf_sigmoid_form)v;
    int tanh_form = v != MF_SIGMOID_EXP_DIV;
    if (tanh_form ? !(x->tanh_rel > 0 && x->tanh_rel <= 0x1p-8f) : x->tanh_rel != 0)
        return MF_FAIL(err, MF_EINVAL,
                       "kernel's contract extension: tanh_rel = %g with sigmoid_form %s (a tanh "
                       "form: (0, 2^-8]; exp_div: 0)",
                       (double)x->tanh_rel, mf_enum_name(&mf_enum_sigmoid_form, v));
    out->tanh_rel = x->tanh_rel;
    MF_TRY(ext_flag("softmax_recip", x->softmax_recip, &out->softmax_recip, err));
    MF_TRY(ext_enum("weight_form", &mf_enum_weight_form, x->weight_form, &v, err));
    out->weight_form = (mf_weight_form)v;
    MF_TRY(ext_enum("tie_rule", &mf_enum_tie_rule, x->tie_rule, &v, err));
    out->tie_rule = (mf_tie_rule)v;
    MF_TRY(ext_flag("ftz", x->ftz, &out->ftz, err));
    MF_TRY(ext_enum("combine_dtype", &mf_enum_dtype, x->combine_dtype, &v, err));
    out->combine_dtype = (mf_dtype)v;
    MF_TRY(ext_flag("router_logits_dtype", x->router_logits_dtype, &out->router_logits_dtype,
                    err));
    for (size_t i = 0; i < sizeof x->reserved / sizeof x->reserved[0]; i++)
        if (x->reserved[i])
            return MF_FAIL(err, MF_EINVAL,
                           "kernel's contract extension: reserved[%zu] = %u is not zero (a field "
                           "this moefuzz does not know)",
                           i, x->reserved[i]);
    return MF_OK;
}

mf_status mf_backend_contract(mf_backend *b, mf_error *err) {
    if (b->contract_ext.ext.kind == 0)
        return mf_contract_from_abi(&b->api.contract, &b->contract, b->contract_name,
                                    sizeof b->contract_name, err);
    if (b->api.contract.name)
        return MF_FAIL(err, MF_EINVAL,
                       "kernel declares contract '%.60s' by name and field by field "
                       "(MF_KERNEL_EXT_CONTRACT): declare one or the other",
                       b->api.contract.name);
    return mf_contract_from_ext(&b->contract_ext, &b->contract, b->contract_name,
                                sizeof b->contract_name, err);
}

mf_status mf_contract_from_abi(const mf_kernel_contract *kc, mf_contract *out, char *name_buf,
                               size_t name_len, mf_error *err) {
    if (kc->name) {
        const mf_contract *c = mf_contract_find(kc->name);
        if (!c) return MF_FAIL(err, MF_EINVAL, "kernel declares unknown contract '%s'", kc->name);
        *out = *c;
        snprintf(name_buf, name_len, "%s", c->name);
        out->name = name_buf;
        if (kc->struct_size >= offsetof(mf_kernel_contract, reserved))
            out->deterministic = c->deterministic && kc->deterministic;
        return MF_OK;
    }
    memset(out, 0, sizeof *out);
    snprintf(name_buf, name_len, "declared");
    out->name = name_buf;
    out->summary = "declared field by field by the kernel";
    MF_TRY(acc_from_abi(kc->acc_kind, kc->acc_block, kc->acc_frac_bits, &out->gemm, err));
    if (kc->exp_kind < 0 || kc->exp_kind >= MF_EXP_COUNT)
        return MF_FAIL(err, MF_EINVAL, "unknown exp kind %d", kc->exp_kind);
    if (kc->div_kind < 0 || kc->div_kind >= MF_DIV_COUNT)
        return MF_FAIL(err, MF_EINVAL, "unknown division kind %d", kc->div_kind);
    out->exp = (mf_exp_kind)kc->exp_kind;
    out->exp_ulps = kc->exp_ulps > 0 ? kc->exp_ulps : 2.0;
    out->div = (mf_div_kind)kc->div_kind;
    out->round_points = kc->round_points;
    out->deterministic = kc->deterministic;
    if (!(out->round_points & MF_RP_ACT_OUT))
        return MF_FAIL(err, MF_EUNSUPPORTED,
                       "declared contract must round the activation to bf16 (MF_ABI_RP_ACT_OUT)");
    return MF_OK;
}

/* ---- opening ---- */

static mf_status open_api(mf_backend *b, mf_error *err) {
    char msg[512] = "";
    if (b->api.abi_version != MF_KERNEL_ABI_VERSION || b->api.struct_size < sizeof(mf_kernel_api))
        return MF_FAIL(err, MF_EINVAL, "backend %s: ABI version %u / size %u not supported",
                       b->spec, b->api.abi_version, b->api.struct_size);
    if (!b->api.create || !b->api.supports || !b->api.workspace_size || !b->api.run ||
        !b->api.release)
        return MF_FAIL(err, MF_EINVAL, "backend %s: function table incomplete", b->spec);
    api_ext(&b->api, MF_KERNEL_EXT_CONTRACT, &b->contract_ext.ext, sizeof b->contract_ext);
    MF_TRY(mf_backend_contract(b, err));
    const mf_kernel_contract *kc = &b->api.contract;
    if (kc->struct_size >= offsetof(mf_kernel_contract, reserved) && kc->routing_method) {
        if (!mf_method_find(kc->routing_method))
            return MF_FAIL(err, MF_EINVAL,
                           "backend %s declares unknown routing method '%.60s' (moefuzz methods)",
                           b->spec, kc->routing_method);
        snprintf(b->routing_method, sizeof b->routing_method, "%s", kc->routing_method);
    }
    api_ext(&b->api, MF_KERNEL_EXT_FEATURES, &b->features.ext, sizeof b->features);
    MF_TRY(mf_backend_level(&b->features, &b->level, err));
    if (b->api.create(&b->ctx, msg, sizeof msg) != 0)
        return MF_FAIL(err, MF_EBACKEND, "backend %s: create failed: %s", b->spec, msg);
    return MF_OK;
}

const char *mf_backend_builtin_names(void) {
    if (mf_cuda_backend_provider && mf_cuda_backend_provider()) return "cpu, cuda";
    return "cpu";
}

mf_status mf_inproc_open(const char *spec, mf_backend *b, mf_error *err) {
    memset(b, 0, sizeof *b);
    snprintf(b->spec, sizeof b->spec, "%s", spec);
    int rc = 1;
    if (!strcmp(spec, "cpu")) {
        rc = mf_cpu_kernel_get_api(MF_KERNEL_ABI_VERSION, &b->api, sizeof b->api);
    } else if (!strcmp(spec, "cuda")) {
        const mf_cuda_provider *cp = mf_cuda_backend_provider ? mf_cuda_backend_provider() : NULL;
        if (!cp)
            return MF_FAIL(err, MF_EUNSUPPORTED,
                           "backend cuda: this moefuzz was built without CUDA");
        char msg[256] = "";
        int av = cp->available(msg, sizeof msg);
        if (av < 0) return MF_FAIL(err, MF_EBACKEND, "backend cuda: %s", msg);
        if (av == 0) return MF_FAIL(err, MF_ENODEVICE, "backend cuda: no usable device: %s", msg);
        rc = cp->get_api(MF_KERNEL_ABI_VERSION, &b->api, sizeof b->api);
        b->dev = cp->ops;
    } else if (!strncmp(spec, "cpu-mutant:", 11) || !strncmp(spec, "cuda-mutant:", 12)) {
        int cuda = spec[1] == 'u';
        const mf_mutant_provider *mp =
            cuda ? (mf_cuda_mutant_provider ? mf_cuda_mutant_provider() : NULL)
                 : (mf_cpu_mutant_provider ? mf_cpu_mutant_provider() : NULL);
        if (!mp)
            return MF_FAIL(err, MF_EUNSUPPORTED,
                           "backend %s: mutants exist only in test builds (moefuzz-test)", spec);
        const char *name = strchr(spec, ':') + 1;
        b->mutant = mf_mutant_lookup(name);
        if (b->mutant < 0)
            return MF_FAIL(err, MF_EINVAL, "unknown mutant '%s' (moefuzz mutants --list)", name);
        if (cuda) {
            const mf_cuda_provider *cp =
                mf_cuda_backend_provider ? mf_cuda_backend_provider() : NULL;
            char msg[256] = "";
            if (!cp) return MF_FAIL(err, MF_EUNSUPPORTED, "backend %s: built without CUDA", spec);
            int av = cp->available(msg, sizeof msg);
            if (av < 0) return MF_FAIL(err, MF_EBACKEND, "backend %s: %s", spec, msg);
            if (av == 0)
                return MF_FAIL(err, MF_ENODEVICE, "backend %s: no usable device: %s", spec, msg);
            b->dev = cp->ops;
        }
        rc = mp->get_api(MF_KERNEL_ABI_VERSION, &b->api, sizeof b->api);
        if (rc == 0) {
            MF_TRY(open_api(b, err));
            mp->set(b->ctx, b->mutant);
            return MF_OK;
        }
    } else if (!strncmp(spec, "plugin:", 7)) {
        const char *path = spec + 7;
        b->dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
        if (!b->dl) return MF_FAIL(err, MF_EINVAL, "plugin %s: %s", path, dlerror());
        mf_kernel_get_api_fn fn;
        void *sym = dlsym(b->dl, MF_KERNEL_GET_API_SYMBOL);
        memcpy(&fn, &sym, sizeof fn);
        if (!fn) {
            dlclose(b->dl);
            b->dl = NULL;
            return MF_FAIL(err, MF_EINVAL, "plugin %s does not export %s", path,
                           MF_KERNEL_GET_API_SYMBOL);
        }
        rc = fn(MF_KERNEL_ABI_VERSION, &b->api, sizeof b->api);
        if (b->api.memory == MF_ABI_MEM_DEVICE) {
            const mf_cuda_provider *cp =
                mf_cuda_backend_provider ? mf_cuda_backend_provider() : NULL;
            if (!cp)
                return MF_FAIL(err, MF_EUNSUPPORTED,
                               "plugin %s wants device memory; this moefuzz has no CUDA", path);
            b->dev = cp->ops;
        }
    } else {
        return MF_FAIL(err, MF_EINVAL,
                       "unknown backend '%s' (built in: %s; or plugin:PATH.so, exec:COMMAND)",
                       spec, mf_backend_builtin_names());
    }
    if (rc != 0)
        return MF_FAIL(err, MF_EINVAL, "backend %s refused ABI version %u", spec,
                       MF_KERNEL_ABI_VERSION);
    return open_api(b, err);
}

mf_status mf_inproc_open_api(const char *spec, const mf_kernel_api *api, mf_backend *b,
                             mf_error *err) {
    memset(b, 0, sizeof *b);
    snprintf(b->spec, sizeof b->spec, "%s", spec);
    b->api = *api;
    return open_api(b, err);
}

void mf_inproc_close(mf_backend *b) {
    if (b->ctx && b->api.release) b->api.release(b->ctx);
    b->ctx = NULL;
    if (b->dl) dlclose(b->dl);
    b->dl = NULL;
}

/* ---- running ---- */

mf_status mf_backend_params(const mf_moe_params *p, uint32_t level, mf_kernel_params *kp,
                            mf_kernel_params_v2 *ext, mf_error *err) {
    memset(kp, 0, sizeof *kp);
    memset(ext, 0, sizeof *ext);
    if (level >= MF_ABI_LEVEL_2) {
        ext->ext.kind = MF_KERNEL_EXT_PARAMS;
        ext->ext.struct_size = sizeof *ext;
        kp->ext = &ext->ext;
    }
    MF_TRY(abi_value(&mf_enum_renorm_denom, p->renorm_denom, &ext->renorm_denom, err));
    MF_TRY(abi_value(&mf_enum_nonfinite, p->nonfinite, &ext->nonfinite, err));
    MF_TRY(abi_value(&mf_enum_expert_bias, p->expert_bias, &ext->expert_bias, err));
    ext->act_alpha = p->act_alpha;
    ext->act_limit = p->act_limit;
    MF_TRY(abi_value(&mf_enum_weight_format, p->weight_format, &ext->weight_format, err));
    MF_TRY(abi_value(&mf_enum_scale_format, p->scale_format, &ext->scale_format, err));
    if (p->weight_format == MF_WFMT_FP8_BLOCK) {
        ext->block_n = mf_block_n(p);
        ext->block_k = mf_block_k(p);
    }
    ext->n_shared = p->n_shared;
    ext->shared_I = p->shared_I;
    MF_TRY(abi_value(&mf_enum_shared_weight, p->shared_weight, &ext->shared_weight, err));
    MF_TRY(abi_value(&mf_enum_shared_owner, p->shared_owner, &ext->shared_owner, err));
    ext->weight_on_input = p->weight_on_input;
    MF_TRY(abi_value(&mf_enum_preroute, p->preroute, &ext->preroute, err));
    MF_TRY(abi_value(&mf_enum_placement, p->placement, &ext->placement, err));
    ext->tp_size = p->tp_size;
    ext->tp_rank = p->tp_rank;
    kp->abi_version = MF_KERNEL_ABI_VERSION;
    kp->struct_size = sizeof *kp;
    kp->T = p->T;
    kp->H = p->H;
    kp->I = p->I;
    kp->E = p->E;
    kp->E_local = p->E_local;
    kp->expert_offset = p->expert_offset;
    kp->top_k = p->top_k;
    kp->n_group = p->n_group;
    kp->topk_group = p->topk_group;
    kp->renormalize = p->renormalize;
    kp->renorm_eps = p->renorm_eps;
    kp->routed_scaling_factor = p->rsf;
    MF_TRY(abi_value(&mf_enum_score, p->score, &kp->score_fn, err));
    MF_TRY(abi_value(&mf_enum_bias, p->bias, &kp->bias_dtype, err));
    MF_TRY(abi_value(&mf_enum_group_rule, p->group_rule, &kp->group_rule, err));
    MF_TRY(abi_value(&mf_enum_rsf_site, p->rsf_site, &kp->rsf_site, err));
    MF_TRY(abi_value(&mf_enum_activation, p->activation, &kp->activation, err));
    MF_TRY(abi_value(&mf_enum_layout, p->layout, &kp->layout, err));
    MF_TRY(abi_value(&mf_enum_dtype, p->logits_dtype, &kp->logits_dtype, err));
    return MF_OK;
}

/* The kernel's field of each tensor (MF_TENSOR_LIST's slot column). */
#define MF_ABI_SLOT_params(kp, ext, name) (kp)->name
#define MF_ABI_SLOT_ext(kp, ext, name) (ext)->name
static void params_set_tensors(mf_kernel_params *kp, mf_kernel_params_v2 *ext,
                               const void *const data[MF_NUM_TENSORS]) {
    mf_kernel_params_v2 unused; /* a kernel below level 2 gets no ext: nor any ext tensor */
    if (!ext) ext = &unused;
#define MF_TENSOR_ABI_(ID, name, storage, rank, d0, d1, d2, bf16, present, scale, kept, slot, \
                       level)                                                                 \
    MF_ABI_SLOT_##slot(kp, ext, name) = data[MF_T_##ID];
    MF_TENSOR_LIST(MF_TENSOR_ABI_)
#undef MF_TENSOR_ABI_
}

/* v as enum e's value, from the ABI's (the same numbers: asserted above), or an error naming it */
static mf_status value_of_abi(const mf_enum_info *e, int32_t v, int *out, mf_error *err) {
    if (v < 0 || v >= e->count)
        return MF_FAIL(err, MF_EINVAL, "kernel params: %s value %d is not one of the ABI's", e->key,
                       (int)v);
    *out = (int)v;
    return MF_OK;
}

mf_status mf_backend_params_inverse(const mf_kernel_params *kp, mf_moe_params *p,
                                    const void *data[MF_NUM_TENSORS], mf_error *err) {
    memset(p, 0, sizeof *p);
    p->T = kp->T;
    p->H = kp->H;
    p->I = kp->I;
    p->E = kp->E;
    p->E_local = kp->E_local;
    p->expert_offset = kp->expert_offset;
    p->top_k = kp->top_k;
    p->n_group = kp->n_group;
    p->topk_group = kp->topk_group;
    p->renormalize = kp->renormalize;
    p->renorm_eps = kp->renorm_eps;
    p->rsf = kp->routed_scaling_factor;
    int v = 0;
#define MF_INV_(e, field, src)                   \
    MF_TRY(value_of_abi(&(e), (src), &v, err)); \
    p->field = v
    MF_INV_(mf_enum_score, score, kp->score_fn);
    MF_INV_(mf_enum_bias, bias, kp->bias_dtype);
    MF_INV_(mf_enum_group_rule, group_rule, kp->group_rule);
    MF_INV_(mf_enum_rsf_site, rsf_site, kp->rsf_site);
    MF_INV_(mf_enum_activation, activation, kp->activation);
    MF_INV_(mf_enum_layout, layout, kp->layout);
    MF_INV_(mf_enum_dtype, logits_dtype, kp->logits_dtype);
    /* no extension, or a writer of an older header (fewer fields): the rest read as 0, level
     * 1's semantics */
    mf_kernel_params_v2 ext;
    memset(&ext, 0, sizeof ext);
    const mf_kernel_params_v2 *x = mf_kernel_params_v2_of(kp);
    if (x) memcpy(&ext, x, x->ext.struct_size < sizeof ext ? x->ext.struct_size : sizeof ext);
    MF_INV_(mf_enum_renorm_denom, renorm_denom, ext.renorm_denom);
    MF_INV_(mf_enum_nonfinite, nonfinite, ext.nonfinite);
    MF_INV_(mf_enum_expert_bias, expert_bias, ext.expert_bias);
    p->act_alpha = ext.act_alpha;
    p->act_limit = ext.act_limit;
    MF_INV_(mf_enum_weight_format, weight_format, ext.weight_format);
    MF_INV_(mf_enum_scale_format, scale_format, ext.scale_format);
    p->block_n = ext.block_n;
    p->block_k = ext.block_k;
    p->n_shared = ext.n_shared;
    p->shared_I = ext.shared_I;
    MF_INV_(mf_enum_shared_weight, shared_weight, ext.shared_weight);
    MF_INV_(mf_enum_shared_owner, shared_owner, ext.shared_owner);
    p->weight_on_input = ext.weight_on_input;
    MF_INV_(mf_enum_preroute, preroute, ext.preroute);
    MF_INV_(mf_enum_placement, placement, ext.placement);
#undef MF_INV_
    p->tp_size = ext.tp_size;
    p->tp_rank = ext.tp_rank;
    const mf_kernel_params_v2 *slots = &ext;
#define MF_TENSOR_INV_(ID, name, storage, rank, d0, d1, d2, bf16, present, scale, kept, slot, \
                       level)                                                                 \
    data[MF_T_##ID] = MF_ABI_SLOT_##slot(kp, slots, name);
    MF_TENSOR_LIST(MF_TENSOR_INV_)
#undef MF_TENSOR_INV_
    return MF_OK;
}

/* The packed MXFP4 weights (q13, sc13, q2, sc2) chained after params.ext's v2 struct (an mxfp4
 * case has one: level 3 and above). */
static void params_set_mxfp4(mf_kernel_params *kp, mf_kernel_mxfp4 *mx, const void *const q[4]) {
    mf_kernel_params_v2 *v2 = (mf_kernel_params_v2 *)kp->ext;
    memset(mx, 0, sizeof *mx);
    mx->ext.kind = MF_KERNEL_EXT_MXFP4;
    mx->ext.struct_size = sizeof *mx;
    mx->w13_q = q[0];
    mx->w13_sc = q[1];
    mx->w2_q = q[2];
    mx->w2_sc = q[3];
    if (v2) v2->ext.next = &mx->ext;
}

/* The guard bands around the n output elements of buf; the output itself is r->out's to count
 * (mf_run_result_count_unwritten). */
static void check_guards(const uint16_t *buf, size_t n, mf_run_result *r) {
    for (size_t i = 0; i < MF_GUARD_ELEMS; i++)
        if (buf[i] != MF_GUARD_BF16) {
            if (!r->guard_broken) r->guard_first = (long)i - MF_GUARD_ELEMS;
            r->guard_broken = 1;
        }
    for (size_t i = 0; i < MF_GUARD_ELEMS; i++)
        if (buf[MF_GUARD_ELEMS + n + i] != MF_GUARD_BF16 && !r->guard_broken) {
            r->guard_first = (long)(n + i);
            r->guard_broken = 1;
        }
}

/* ---- device-memory kernels: copy in, run, copy back (generic over mf_device_ops) ---- */

typedef struct dev_bufs {
    void *in[MF_NUM_TENSORS];
    void *mx[4]; /* the packed MXFP4 weights */
    void *out, *ids, *weights, *ws;
} dev_bufs;

static void dev_free_all(const mf_device_ops *d, dev_bufs *db) {
    for (int t = 0; t < MF_NUM_TENSORS; t++)
        if (db->in[t]) d->free(db->in[t]), db->in[t] = NULL;
    for (int i = 0; i < 4; i++)
        if (db->mx[i]) d->free(db->mx[i]), db->mx[i] = NULL;
    void **v[] = {&db->out, &db->ids, &db->weights, &db->ws};
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++)
        if (*v[i]) d->free(*v[i]), *v[i] = NULL;
}

static mf_status dev_upload(const mf_device_ops *d, void **dst, const void *src, size_t bytes,
                            mf_error *err) {
    char msg[256] = "";
    if (d->alloc(dst, bytes ? bytes : 16, msg, sizeof msg) != 0)
        return MF_FAIL(err, MF_ENOMEM, "device alloc of %zu bytes: %s", bytes, msg);
    if (src && bytes && d->to_device(*dst, src, bytes, msg, sizeof msg) != 0)
        return MF_FAIL(err, MF_EBACKEND, "copy to device: %s", msg);
    return MF_OK;
}

/* run() answered MF_KERNEL_RUN_UNSUPPORTED: the call is refused as supports() refuses one, and
 * the result carries no outputs (as a refusal by supports() carries none) */
static void refused(mf_run_result *r, const char *msg) {
    char why[sizeof r->reason];
    snprintf(why, sizeof why, "%s", msg[0] ? msg : "(no reason given)");
    mf_run_result_free(r);
    r->unsupported = 1;
    memcpy(r->reason, why, sizeof why);
}

static mf_status run_device(mf_backend *b, const mf_problem *pb, const mf_kernel_inputs *ki,
                            mf_kernel_params *kp, mf_kernel_mxfp4 *mx, uint16_t *obuf,
                            size_t wbytes, mf_run_result *r, mf_error *err) {
    const mf_device_ops *d = b->dev;
    const mf_moe_params *p = &pb->p;
    size_t n_out = (size_t)p->T * p->H, n_sel = (size_t)p->T * p->top_k;
    dev_bufs db = {0};
    mf_status st = MF_OK;
    char msg[512] = "";
    for (int t = 0; t < MF_NUM_TENSORS && st == MF_OK; t++)
        if (ki->data[t]) st = dev_upload(d, &db.in[t], ki->data[t], ki->bytes[t], err);
    for (int i = 0; i < 4 && ki->mx_q[0] && st == MF_OK; i++) {
        const void *src = i % 2 ? ki->mx_sc[i / 2] : ki->mx_q[i / 2];
        size_t n = i % 2 ? ki->mx_sc_bytes[i / 2] : ki->mx_q_bytes[i / 2];
        st = dev_upload(d, &db.mx[i], src, n, err);
    }
    if (st == MF_OK) st = dev_upload(d, &db.out, obuf, (n_out + 2 * MF_GUARD_ELEMS) * 2, err);
    if (st == MF_OK && r->ids) st = dev_upload(d, &db.ids, r->ids, n_sel * 4, err);
    if (st == MF_OK && r->ids) st = dev_upload(d, &db.weights, r->weights, n_sel * 4, err);
    if (st == MF_OK) st = dev_upload(d, &db.ws, NULL, wbytes, err);
    if (st != MF_OK) goto out;
    params_set_tensors(kp, (mf_kernel_params_v2 *)kp->ext, (const void *const *)db.in);
    if (ki->mx_q[0]) params_set_mxfp4(kp, mx, (const void *const *)db.mx);
    kp->out = (uint16_t *)db.out + MF_GUARD_ELEMS;
    kp->topk_ids = db.ids;
    kp->topk_weights = db.weights;
    kp->workspace = db.ws;
    kp->workspace_bytes = wbytes;
    kp->stream = d->stream;
    double t0 = mf_now_s();
    int rc = b->api.run(b->ctx, kp, msg, sizeof msg);
    if (rc == MF_KERNEL_RUN_UNSUPPORTED) {
        refused(r, msg);
        goto out;
    }
    if (rc != 0) {
        st = MF_FAIL(err, MF_EBACKEND, "%s: run() failed: %s", b->spec, msg);
        goto out;
    }
    if (d->sync(d->stream, msg, sizeof msg) != 0) {
        st = MF_FAIL(err, MF_EBACKEND, "%s: kernel failed on the device: %s", b->spec, msg);
        goto out;
    }
    r->seconds = mf_now_s() - t0;
    if (d->to_host(obuf, db.out, (n_out + 2 * MF_GUARD_ELEMS) * 2, msg, sizeof msg) != 0 ||
        (r->ids && (d->to_host(r->ids, db.ids, n_sel * 4, msg, sizeof msg) != 0 ||
                    d->to_host(r->weights, db.weights, n_sel * 4, msg, sizeof msg) != 0)))
        st = MF_FAIL(err, MF_EBACKEND, "copy from device: %s", msg);
out:
    dev_free_all(d, &db);
    return st;
}

int mf_backend_gate(const mf_backend *b, const mf_moe_params *p, mf_run_result *r) {
    char what[128];
    uint32_t need = mf_case_level(p, what, sizeof what);
    if (need <= b->level) return 0;
    r->unsupported = 1;
    if (need == UINT32_MAX)
        snprintf(r->reason, sizeof r->reason,
                 "needs an ABI feature no level has (%s); the kernel speaks level %u", what,
                 b->level);
    else
        snprintf(r->reason, sizeof r->reason,
                 "needs ABI feature level %u (%s); the kernel speaks level %u", need, what,
                 b->level);
    return 1;
}

mf_status mf_inproc_run(mf_backend *b, const mf_problem *pb, mf_run_result *r, mf_error *err) {
    memset(r, 0, sizeof *r);
    const mf_moe_params *p = &pb->p;
    if (mf_backend_gate(b, p, r)) return MF_OK;
    mf_kernel_params kp;
    mf_kernel_params_v2 ext;
    mf_kernel_mxfp4 mx;
    MF_TRY(mf_backend_params(p, b->level, &kp, &ext, err));
    kp.memory = b->api.memory;
    const void *no_mx[4] = {NULL, NULL, NULL, NULL};
    if (p->weight_format == MF_WFMT_MXFP4) params_set_mxfp4(&kp, &mx, no_mx);
    char msg[512] = "";
    int sup = b->api.supports(b->ctx, &kp, msg, sizeof msg);
    if (sup < 0) return MF_FAIL(err, MF_EBACKEND, "%s: supports() failed: %s", b->spec, msg);
    if (sup == 0) {
        r->unsupported = 1;
        snprintf(r->reason, sizeof r->reason, "%s", msg[0] ? msg : "(no reason given)");
        return MF_OK;
    }
    size_t n_out = (size_t)p->T * p->H, n_sel = (size_t)p->T * p->top_k;
    size_t wbytes = 0;
    if (b->api.workspace_size(b->ctx, &kp, &wbytes, msg, sizeof msg) != 0)
        return MF_FAIL(err, MF_EBACKEND, "%s: workspace_size() failed: %s", b->spec, msg);
    r->out = malloc(n_out * 2);
    if (b->api.contract.reports_routing) {
        r->ids = malloc(n_sel * sizeof(int32_t));
        r->weights = malloc(n_sel * sizeof(float));
    }
    uint16_t *obuf = malloc((n_out + 2 * MF_GUARD_ELEMS) * 2);
    mf_kernel_inputs ki = {0};
    mf_status st = MF_OK;
    if (!r->out || !obuf || (b->api.contract.reports_routing && (!r->ids || !r->weights))) {
        st = MF_FAIL(err, MF_ENOMEM, "out of memory for outputs");
        goto done;
    }
    for (size_t i = 0; i < n_out + 2 * MF_GUARD_ELEMS; i++)
        obuf[i] = i < MF_GUARD_ELEMS || i >= MF_GUARD_ELEMS + n_out ? MF_GUARD_BF16
                                                                     : MF_POISON_BF16;
    if (r->ids) {
        for (size_t i = 0; i < n_sel; i++) r->ids[i] = -7777;
        for (size_t i = 0; i < n_sel; i++) r->weights[i] = NAN;
    }
    if ((st = mf_kernel_inputs_make(pb, &ki, err)) != MF_OK) goto done;
    params_set_tensors(&kp, &ext, ki.data);
    if (ki.mx_q[0]) {
        const void *q[4] = {ki.mx_q[0], ki.mx_sc[0], ki.mx_q[1], ki.mx_sc[1]};
        params_set_mxfp4(&kp, &mx, q);
    }
    if (b->dev) {
        if ((st = run_device(b, pb, &ki, &kp, &mx, obuf, wbytes, r, err)) != MF_OK ||
            r->unsupported)
            goto done;
        check_guards(obuf, n_out, r);
        memcpy(r->out, obuf + MF_GUARD_ELEMS, n_out * 2);
        mf_run_result_count_unwritten(r, n_out);
        goto done;
    }
    void *ws = malloc(wbytes ? wbytes : 1);
    if (!ws) {
        st = MF_FAIL(err, MF_ENOMEM, "out of memory for a %zu-byte workspace", wbytes);
        goto done;
    }
    kp.out = obuf + MF_GUARD_ELEMS;
    kp.topk_ids = r->ids;
    kp.topk_weights = r->weights;
    kp.workspace = ws;
    kp.workspace_bytes = wbytes;
    double t0 = mf_now_s();
    int rc = b->api.run(b->ctx, &kp, msg, sizeof msg);
    r->seconds = mf_now_s() - t0;
    free(ws);
    if (rc == MF_KERNEL_RUN_UNSUPPORTED) {
        refused(r, msg);
        goto done;
    }
    if (rc != 0) {
        st = MF_FAIL(err, MF_EBACKEND, "%s: run() failed: %s", b->spec, msg);
        goto done;
    }
    check_guards(obuf, n_out, r);
    memcpy(r->out, obuf + MF_GUARD_ELEMS, n_out * 2);
    mf_run_result_count_unwritten(r, n_out);
done:
    free(obuf);
    mf_kernel_inputs_free(&ki);
    if (st != MF_OK) mf_run_result_free(r);
    return st;
}
