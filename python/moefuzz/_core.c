/* _core.c: the moefuzz Python package's extension module, on the CPython limited API (abi3,
 * 3.10 and later). It holds no checking logic of its own: cases are loaded, parsed, generated
 * and prepared by src/prepare.c, src/codec.c, src/casegen.c and src/exchange.c; a Python
 * callable becomes a kernel behind the ABI's function table (mf_inproc_open_api), so
 * mf_check_problem runs it as `moefuzz check` runs a backend (poisoned output between guard
 * bands, twice for determinism, the metamorphic relations, attribution); outputs computed
 * elsewhere go through mf_check_result and mf_attribute. Tensors cross as addresses into the
 * problem's own arrays; moefuzz/__init__.py wraps them (numpy, DLPack) and keeps the owner
 * alive. The GIL is held throughout: a kernel call re-enters Python. */
#ifndef Py_LIMITED_API
#define Py_LIMITED_API 0x030A0000
#endif
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attribute.h"
#include "backend.h"
#include "bf16.h"
#include "casegen.h"
#include "check.h"
#include "codec.h"
#include "exchange.h"
#include "fp8.h"
#include "fuzz.h"
#include "models.h"
#include "paths.h"
#include "prepare.h"
#include "verdict.h"

static PyObject *MoefuzzError; /* bad input: a case, a contract, a model that is not one */

static PyObject *raise_err(const mf_error *err) {
    PyErr_SetString(MoefuzzError, err->msg);
    return NULL;
}

/* ---- Problem: a case and its materialised tensors ---- */

typedef struct {
    PyObject_HEAD
    mf_case c;
    mf_problem pb;
    int built;
} ProblemObject;

static PyTypeObject *ProblemType; /* a heap type (PyType_FromSpec) */

static void problem_dealloc(PyObject *self) {
    ProblemObject *po = (ProblemObject *)self;
    if (po->built) mf_problem_free(&po->pb);
    PyTypeObject *tp = Py_TYPE(self);
    freefunc tp_free = (freefunc)PyType_GetSlot(tp, Py_tp_free);
    tp_free(self);
    Py_DECREF(tp);
}

static ProblemObject *problem_new(void) {
    allocfunc alloc = (allocfunc)PyType_GetSlot(ProblemType, Py_tp_alloc);
    ProblemObject *po = (ProblemObject *)alloc(ProblemType, 0);
    if (!po) return NULL;
    memset(&po->c, 0, sizeof po->c);
    memset(&po->pb, 0, sizeof po->pb);
    po->built = 0;
    return po;
}

/* the case's text form, as `moefuzz case` prints it */
static PyObject *problem_text(PyObject *self, PyObject *unused) {
    ProblemObject *po = (ProblemObject *)self;
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f) return PyErr_NoMemory();
    mf_case_print_text(&po->c, f);
    fclose(f);
    PyObject *s = PyUnicode_FromStringAndSize(buf, (Py_ssize_t)len);
    free(buf);
    return s;
}

/* tensor(name, materialise=True) -> (address, shape, "bf16" | "f32" | "i32") of the problem's own
 * array, or None for a tensor the kernel does not get. bf16 tensors are uint16 bit patterns;
 * every expert is generated first (lazy cases generate on demand) unless materialise is false
 * (the address alone: a lazy case's unroutable experts stay poisoned). */
static PyObject *problem_tensor(PyObject *self, PyObject *args) {
    ProblemObject *po = (ProblemObject *)self;
    const char *name;
    int materialise = 1;
    if (!PyArg_ParseTuple(args, "s|p", &name, &materialise)) return NULL;
    int t = mf_tensor_lookup(name);
    if (t < 0) return PyErr_Format(PyExc_KeyError, "no tensor '%s'", name);
    const mf_moe_params *p = &po->pb.p;
    if (!mf_tensor_present(p, (mf_tensor_id)t)) Py_RETURN_NONE;
    mf_error err = {0};
    if (materialise && mf_problem_materialise_all(&po->pb, &err) != MF_OK) return raise_err(&err);
    uint64_t shape[MF_TENSOR_MAX_RANK];
    int rank = mf_tensor_shape(p, (mf_tensor_id)t, shape);
    PyObject *sh = PyTuple_New(rank);
    if (!sh) return NULL;
    for (int i = 0; i < rank; i++)
        PyTuple_SetItem(sh, i, PyLong_FromUnsignedLongLong(shape[i]));
    /* storage: uint16_t holds bf16 bits; float holds fp32 values (bf16-representable when the
     * kernel gets bf16: the wrapper rounds nothing, it narrows exactly) */
    const char *kind = mf_tensor_host_size((mf_tensor_id)t) == 2 ? "bf16"
                       : mf_tensor_is_i32((mf_tensor_id)t)           ? "i32"
                                                                     : "f32";
    return Py_BuildValue("(NNs)", PyLong_FromVoidPtr(mf_problem_tensor(&po->pb, (mf_tensor_id)t)),
                         sh, kind);
}

/* ---- a Python callable as a kernel behind the ABI ---- */

/* The callable of the backend being opened (create() has no argument to carry it), and the
 * exception or unsupported answer of the last call, which mf_check_problem cannot carry. */
static PyObject *opening_callable;
static PyObject *call_exc_type, *call_exc_value, *call_exc_tb;
static char call_unsupported[256];

static int call_count; /* kernel calls of this check */
static int in_check;   /* the state above belongs to one check at a time */

static int pk_create(void **ctx, char *msg, size_t msg_len) {
    Py_INCREF(opening_callable);
    *ctx = opening_callable;
    return 0;
}

/* The call's parameters twice: numbers (the ABI's, as k.p has them: T, H, ..., score_fn,
 * bias_dtype, ... and each v2 parameter by its case-file key) and text (the case file's keys and
 * values, every v2 parameter included, as src/codec.c writes them), from the problem's
 * parameters p that the call's ABI params stand for. */
static PyObject *params_dicts(const mf_moe_params *p, const mf_kernel_params *kp) {
    PyObject *num = Py_BuildValue(
        "{si,si,si,si,si,si,si,si,si,si,si,si,si,sd,sd,si,si,si,si}", "T", kp->T, "H", kp->H, "I",
        kp->I, "E", kp->E, "E_local", kp->E_local, "expert_offset", kp->expert_offset, "top_k",
        kp->top_k, "score_fn", kp->score_fn, "bias_dtype", kp->bias_dtype, "n_group",
        kp->n_group, "topk_group", kp->topk_group, "group_rule", kp->group_rule, "renormalize",
        kp->renormalize, "renorm_eps", (double)kp->renorm_eps, "rsf",
        (double)kp->routed_scaling_factor, "rsf_site", kp->rsf_site, "activation",
        kp->activation, "layout", kp->layout, "logits_dtype", kp->logits_dtype);
    if (!num) return NULL;
    for (int i = 0; i < mf_n_params_v2; i++) {
        const mf_param_v2 *d = &mf_params_v2[i];
        double v = mf_param_v2_get(p, d);
        PyObject *o = d->kind == MF_PK_F32 ? PyFloat_FromDouble(v) : PyLong_FromDouble(v);
        if (!o || PyDict_SetItemString(num, d->key, o) < 0) {
            Py_XDECREF(o);
            Py_DECREF(num);
            return NULL;
        }
        Py_DECREF(o);
    }
    /* the text: the case's own printer, v1's keys; then every v2 key (0: its level-1 value) */
    mf_case c;
    mf_case_default(&c);
    c.p = *p;
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f) {
        Py_DECREF(num);
        return PyErr_NoMemory();
    }
    mf_case_print_text(&c, f);
    fclose(f);
    PyObject *text = PyDict_New();
    for (char *line = buf, *nl; text && line && *line; line = nl ? nl + 1 : NULL) {
        nl = strchr(line, '\n');
        if (nl) *nl = '\0';
        char *eq = strstr(line, " = ");
        if (line[0] == '#' || !eq || !strncmp(line, "gen.", 4) || !strncmp(line, "poke", 4) ||
            !strncmp(line, "defaults", 8))
            continue;
        *eq = '\0';
        PyObject *v = PyUnicode_FromString(eq + 3);
        if (!v || PyDict_SetItemString(text, line, v) < 0) Py_CLEAR(text);
        Py_XDECREF(v);
    }
    free(buf);
    for (int i = 0; text && i < mf_n_params_v2; i++) {
        char v[48];
        mf_param_v2_text(p, i, v, sizeof v);
        PyObject *o = PyUnicode_FromString(v);
        if (!o || PyDict_SetItemString(text, mf_params_v2[i].key, o) < 0) Py_CLEAR(text);
        Py_XDECREF(o);
    }
    if (!text) {
        Py_DECREF(num);
        return NULL;
    }
    return Py_BuildValue("(NN)", num, text);
}

/* A tensor's element kind as the kernel gets it: "bf16" (uint16 bits), "e4m3" (codes), "f32",
 * "i32", or "u8" (MXFP4's packed bytes), and its numpy typestr. */
static const char *kernel_kind(const mf_moe_params *p, mf_tensor_id t, const char **typestr) {
    if (mf_tensor_is_e4m3(p, t)) return *typestr = "|u1", "e4m3";
    if (mf_tensor_is_bf16(p, t)) return *typestr = "<u2", "bf16";
    if (mf_tensor_is_i32(t)) return *typestr = "<i4", "i32";
    return *typestr = "<f4", "f32";
}

static PyObject *shape_tuple(const uint64_t *shape, int rank) {
    PyObject *sh = PyTuple_New(rank);
    for (int i = 0; sh && i < rank; i++)
        PyTuple_SetItem(sh, i, PyLong_FromUnsignedLongLong(shape[i]));
    return sh;
}

/* One entry of a call's layout: (name, address, shape, typestr, kind, weight); weight: a
 * per-expert tensor, one of those the exec protocol's weights key covers. */
static int layout_add(PyObject *lay, const char *name, const void *addr, const uint64_t *shape,
                      int rank, const char *typestr, const char *kind, int weight) {
    PyObject *e = Py_BuildValue("(sNNssO)", name, PyLong_FromVoidPtr((void *)addr),
                                shape_tuple(shape, rank), typestr, kind,
                                weight ? Py_True : Py_False);
    int rc = e ? PyList_Append(lay, e) : -1;
    Py_XDECREF(e);
    return rc;
}

/* The tensors of a call as a list of layout entries, from the tensor table (src/case.h): the
 * per-expert ones first, then the other inputs, then MXFP4's packed form (with weight_format
 * mxfp4), then the outputs (the routing's where the contract reports it: moefuzz passes their
 * buffers then). An absent tensor is left out. */
static PyObject *call_layout(const mf_moe_params *p, const void *const data[MF_NUM_TENSORS],
                             const mf_kernel_params *kp, int routing) {
    PyObject *lay = PyList_New(0);
    if (!lay) return NULL;
    uint64_t shape[MF_TENSOR_MAX_RANK];
    for (int pass = 0; pass < 2; pass++)
        for (int t = 0; t < MF_NUM_TENSORS; t++) {
            mf_tensor_id id = (mf_tensor_id)t;
            int weight = mf_tensor_per_expert(id);
            if (weight != (pass == 0) || !mf_tensor_present(p, id)) continue;
            const char *ts, *kind = kernel_kind(p, id, &ts);
            int rank = mf_tensor_shape(p, id, shape);
            if (layout_add(lay, mf_tensor_name(id), data ? data[t] : NULL, shape, rank, ts, kind,
                           weight) < 0)
                goto fail;
        }
    const mf_kernel_mxfp4 *mx = mf_kernel_mxfp4_of(kp);
    if (p->weight_format == MF_WFMT_MXFP4 && mx) {
        static const char *const names[4] = {"w13_q", "w13_sc", "w2_q", "w2_sc"};
        const void *addr[4] = {mx->w13_q, mx->w13_sc, mx->w2_q, mx->w2_sc};
        for (int i = 0; i < 4; i++) {
            uint64_t q[3], sc[3];
            mf_mxfp4_shapes(p, i / 2, q, sc);
            if (layout_add(lay, names[i], addr[i], i % 2 ? sc : q, 3, "|u1", "u8", 1) < 0)
                goto fail;
        }
    }
    const uint64_t out[2] = {(uint64_t)p->T, (uint64_t)p->H};
    const uint64_t sel[2] = {(uint64_t)p->T, (uint64_t)p->top_k};
    if (layout_add(lay, "out", kp->out, out, 2, "<u2", "bf16", 0) < 0) goto fail;
    if (routing && (layout_add(lay, "topk_ids", kp->topk_ids, sel, 2, "<i4", "i32", 0) < 0 ||
                    layout_add(lay, "topk_weights", kp->topk_weights, sel, 2, "<f4", "f32", 0) <
                        0))
        goto fail;
    return lay;
fail:
    Py_DECREF(lay);
    return NULL;
}

static void keep_exception(void) {
    if (!call_exc_type) PyErr_Fetch(&call_exc_type, &call_exc_value, &call_exc_tb);
    PyErr_Clear();
}

/* ctx is (call, supports): supports(params) returns None for yes or the reason for no; None
 * supports everything. */
static int pk_supports(void *ctx, const mf_kernel_params *kp, char *msg, size_t msg_len) {
    PyObject *sup = PyTuple_GetItem((PyObject *)ctx, 1);
    if (!sup || sup == Py_None) return 1;
    mf_moe_params p;
    const void *data[MF_NUM_TENSORS];
    mf_error err = {0};
    if (mf_backend_params_inverse(kp, &p, data, &err) != MF_OK) {
        snprintf(msg, msg_len, "%s", err.msg);
        return -1;
    }
    PyObject *both = params_dicts(&p, kp);
    PyObject *res = both ? PyObject_CallFunctionObjArgs(sup, PyTuple_GetItem(both, 1), NULL)
                         : NULL;
    Py_XDECREF(both);
    if (!res) {
        keep_exception();
        snprintf(msg, msg_len, "the Python supports callable raised an exception");
        return -1;
    }
    int rc = 1;
    if (PyUnicode_Check(res)) {
        const char *why = PyUnicode_AsUTF8AndSize(res, NULL);
        snprintf(msg, msg_len, "%s", why ? why : "(no reason)");
        rc = 0;
    }
    Py_DECREF(res);
    return rc;
}

static int pk_workspace(void *ctx, const mf_kernel_params *p, size_t *bytes, char *msg,
                        size_t msg_len) {
    *bytes = 0;
    return 0;
}

/* The callable gets (params, text, layout, pkey): params and text as params_dicts makes them,
 * layout as call_layout, and pkey the problem's parameters as bytes (what weights_key_of
 * reads back); it returns None, or a string: the reason it refuses the call (any call: the
 * case itself, the determinism run, a metamorphic variant), answered as
 * MF_KERNEL_RUN_UNSUPPORTED. An exception is kept and re-raised once mf_check_problem
 * returns. */
static int pk_run(void *ctx, const mf_kernel_params *kp, char *msg, size_t msg_len) {
    call_count++;
    mf_moe_params p;
    const void *data[MF_NUM_TENSORS];
    mf_error err = {0};
    if (mf_backend_params_inverse(kp, &p, data, &err) != MF_OK) {
        snprintf(msg, msg_len, "%s", err.msg);
        return 1;
    }
    PyObject *both = params_dicts(&p, kp);
    PyObject *lay = both ? call_layout(&p, data, kp, kp->topk_ids != NULL) : NULL;
    PyObject *pkey = lay ? PyBytes_FromStringAndSize((const char *)&p, sizeof p) : NULL;
    PyObject *call = PyTuple_GetItem((PyObject *)ctx, 0);
    PyObject *res = pkey && call ? PyObject_CallFunctionObjArgs(call, PyTuple_GetItem(both, 0),
                                                                PyTuple_GetItem(both, 1), lay,
                                                                pkey, NULL)
                                 : NULL;
    Py_XDECREF(both);
    Py_XDECREF(lay);
    Py_XDECREF(pkey);
    if (!res) {
        keep_exception();
        snprintf(msg, msg_len, "the Python callable raised an exception");
        return 1;
    }
    int rc = 0;
    if (PyUnicode_Check(res)) {
        const char *why = PyUnicode_AsUTF8AndSize(res, NULL);
        snprintf(msg, msg_len, "%s", why ? why : "(no reason)");
        if (call_count == 1) snprintf(call_unsupported, sizeof call_unsupported, "%s", msg);
        rc = MF_KERNEL_RUN_UNSUPPORTED;
    }
    Py_DECREF(res);
    return rc;
}

static void pk_release(void *ctx) { Py_XDECREF((PyObject *)ctx); }

/* weights_key_of(pkey, {name: address}) -> the exec protocol's weights key (mf_xcase_weights_key)
 * of a kernel call's per-expert tensors at those addresses (their layout's `weight` entries,
 * MXFP4's packed form included), pkey the call's parameters as pk_run passed them: what the
 * worker of moefuzz.fuzz keys its weight cache by, and KernelCall.weights_key. */
static PyObject *mod_weights_key_of(PyObject *m, PyObject *args) {
    const char *pk;
    Py_ssize_t pk_len;
    PyObject *addrs;
    if (!PyArg_ParseTuple(args, "y#O!", &pk, &pk_len, &PyDict_Type, &addrs)) return NULL;
    if ((size_t)pk_len != sizeof(mf_moe_params))
        return PyErr_Format(PyExc_ValueError, "weights_key_of: not a call's parameters");
    mf_moe_params p;
    memcpy(&p, pk, sizeof p);
    mf_kernel_inputs ki;
    memset(&ki, 0, sizeof ki);
    for (int t = 0; t < MF_NUM_TENSORS; t++) {
        mf_tensor_id id = (mf_tensor_id)t;
        if (!mf_tensor_per_expert(id) || !mf_tensor_present(&p, id)) continue;
        PyObject *a = PyDict_GetItemString(addrs, mf_tensor_name(id));
        if (!a) return PyErr_Format(PyExc_KeyError, "weights_key_of: no %s", mf_tensor_name(id));
        ki.data[t] = PyLong_AsVoidPtr(a);
        ki.bytes[t] = mf_tensor_elems(&p, id) * mf_tensor_kernel_size(&p, id);
    }
    if (p.weight_format == MF_WFMT_MXFP4) {
        static const char *const names[4] = {"w13_q", "w13_sc", "w2_q", "w2_sc"};
        for (int i = 0; i < 4; i++) {
            PyObject *a = PyDict_GetItemString(addrs, names[i]);
            if (!a) return PyErr_Format(PyExc_KeyError, "weights_key_of: no %s", names[i]);
            uint64_t q[3], sc[3];
            mf_mxfp4_shapes(&p, i / 2, q, sc);
            const uint64_t *sh = i % 2 ? sc : q;
            size_t n = (size_t)(sh[0] * sh[1] * sh[2]);
            if (i % 2) ki.mx_sc[i / 2] = PyLong_AsVoidPtr(a), ki.mx_sc_bytes[i / 2] = n;
            else ki.mx_q[i / 2] = PyLong_AsVoidPtr(a), ki.mx_q_bytes[i / 2] = n;
        }
    }
    if (PyErr_Occurred()) return NULL;
    return PyLong_FromUnsignedLongLong(mf_xcase_weights_key(&p, &ki));
}

/* v2_params() -> {key: (level, text)}: each case format v2 parameter, the ABI level that
 * carries it, and its text when 0 (level 1's semantics) */
static PyObject *mod_v2_params(PyObject *m, PyObject *unused) {
    mf_moe_params z;
    memset(&z, 0, sizeof z);
    PyObject *d = PyDict_New();
    for (int i = 0; d && i < mf_n_params_v2; i++) {
        char v[48];
        mf_param_v2_text(&z, i, v, sizeof v);
        PyObject *e = Py_BuildValue("(is)", mf_params_v2[i].level, v);
        if (!e || PyDict_SetItemString(d, mf_params_v2[i].key, e) < 0) Py_CLEAR(d);
        Py_XDECREF(e);
    }
    return d;
}

/* case_layout(text) -> [(name, dtype, shape)]: the tensors a case file of the text case's
 * parameters holds, with their safetensors dtypes and shapes (mf_xcase_layout) */
static PyObject *mod_case_layout(PyObject *m, PyObject *args) {
    const char *text;
    if (!PyArg_ParseTuple(args, "s", &text)) return NULL;
    mf_case c;
    mf_error err = {0};
    if (mf_case_parse_text(text, &c, &err) != MF_OK) return raise_err(&err);
    mf_xcase_entry lay[MF_XCASE_MAX_TENSORS];
    int n = mf_xcase_layout(&c.p, lay);
    PyObject *list = PyList_New(0);
    for (int i = 0; list && i < n; i++) {
        PyObject *e = Py_BuildValue("(ssN)", lay[i].name, mf_st_dtype_name(lay[i].dtype),
                                    shape_tuple(lay[i].shape, lay[i].rank));
        if (!e || PyList_Append(list, e) < 0) Py_CLEAR(list);
        Py_XDECREF(e);
    }
    return list;
}

/* tensor_names() -> the names of a case's tensors (src/case.h's table, in order) */
static PyObject *mod_tensor_names(PyObject *m, PyObject *unused) {
    PyObject *t = PyTuple_New(MF_NUM_TENSORS);
    for (int i = 0; t && i < MF_NUM_TENSORS; i++)
        PyTuple_SetItem(t, i, PyUnicode_FromString(mf_tensor_name((mf_tensor_id)i)));
    return t;
}

/* ---- verdicts ---- */

static PyObject *verdict_dict(const mf_verdict *v) {
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f) return PyErr_NoMemory();
    mf_verdict_print(v, f);
    fclose(f);
    char stages[160];
    mf_stages_format(mf_verdict_stages(v), stages, sizeof stages);
    PyObject *bad = PyDict_New();
    for (int s = 0; bad && s < MF_STAGE_COUNT; s++) {
        PyObject *n = PyLong_FromUnsignedLongLong(v->n_bad[s]);
        PyDict_SetItemString(bad, mf_stage_name((mf_stage)s), n);
        Py_XDECREF(n);
    }
    PyObject *d = Py_BuildValue(
        "{sOsOsssssNss#sssdsdsdsKsO}", "passed", v->pass ? Py_True : Py_False, "unsupported",
        v->unsupported ? Py_True : Py_False, "unsupported_reason", v->unsupported_reason,
        "stages", stages, "n_bad", bad, "report", buf ? buf : "", (Py_ssize_t)len, "attribution",
        v->has_attribution ? v->attr.text : "", "max_util", v->max_util_out, "kernel_s",
        v->kernel_s, "ref_s", v->ref_s, "elems_checked", v->elems_checked, "metamorphic_violated",
        v->has_meta && v->meta.n_violated ? Py_True : Py_False);
    free(buf);
    return d;
}

static mf_status pick_contract(const char *name, mf_contract *out, mf_error *err) {
    const mf_contract *c = mf_contract_find(name);
    if (!c) return MF_FAIL(err, MF_EINVAL, "unknown contract '%s'", name);
    *out = *c;
    return MF_OK;
}

static void clear_call_state(void) {
    Py_CLEAR(call_exc_type);
    Py_CLEAR(call_exc_value);
    Py_CLEAR(call_exc_tb);
    call_unsupported[0] = '\0';
}

/* A Python callable speaks this header's feature level: its calls carry every tensor and
 * parameter of the case (call_layout, params_dicts), and the callable refuses what it does not
 * handle. Static, as get_ext requires. */
static const mf_kernel_features pk_features = {
    {MF_KERNEL_EXT_FEATURES, sizeof(mf_kernel_features), NULL}, MF_KERNEL_FEATURE_LEVEL, 0};

static const mf_kernel_ext *pk_get_ext(uint32_t kind) {
    return kind == MF_KERNEL_EXT_FEATURES ? &pk_features.ext : NULL;
}

/* the ABI's function table of a Python callable (pk_*) checked against contract */
static void python_api(mf_kernel_api *api, const char *name, const char *contract, int routing) {
    memset(api, 0, sizeof *api);
    api->abi_version = MF_KERNEL_ABI_VERSION;
    api->struct_size = sizeof *api;
    api->name = name;
    api->description = "a Python callable";
    api->memory = MF_ABI_MEM_HOST;
    api->contract.struct_size = sizeof api->contract;
    api->contract.name = contract;
    api->contract.reports_routing = routing;
    api->contract.deterministic = 1; /* the named contract says whether runs must agree */
    api->create = pk_create;
    api->supports = pk_supports;
    api->workspace_size = pk_workspace;
    api->run = pk_run;
    api->release = pk_release;
    api->get_ext = pk_get_ext;
}

/* check(call, contract, determinism, metamorphic, attribute, reports_routing, name): call is
 * (run, supports), supports None or a callable (pk_supports) */
static PyObject *problem_check(PyObject *self, PyObject *args, PyObject *kw) {
    ProblemObject *po = (ProblemObject *)self;
    static char *kwlist[] = {"call", "contract", "determinism", "metamorphic", "attribute",
                             "reports_routing", "name", NULL};
    PyObject *call;
    const char *contract = "any-order", *name = "python";
    int determinism = 1, metamorphic = 0, attribute = 1, routing = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "O!|spppps", kwlist, &PyTuple_Type, &call,
                                     &contract, &determinism, &metamorphic, &attribute, &routing,
                                     &name))
        return NULL;
    if (PyTuple_Size(call) != 2)
        return PyErr_Format(PyExc_TypeError, "check: call must be (run, supports)");
    mf_error err = {0};
    mf_kernel_api api;
    python_api(&api, name, contract, routing);
    if (!mf_contract_find(contract))
        return PyErr_Format(MoefuzzError, "unknown contract '%s'", contract);
    if (in_check)
        return PyErr_Format(MoefuzzError, "moefuzz.check called from inside a checked kernel");
    in_check = 1;
    mf_backend b;
    opening_callable = call;
    mf_status st = mf_inproc_open_api(name, &api, &b, &err);
    opening_callable = NULL;
    if (st != MF_OK) {
        in_check = 0;
        return raise_err(&err);
    }
    mf_check_opts o;
    mf_check_opts_default(&o);
    o.determinism = determinism;
    o.metamorphic = metamorphic;
    o.attribute = attribute;
    clear_call_state();
    call_count = 0;
    mf_verdict *v = malloc(sizeof *v);
    if (!v) {
        mf_inproc_close(&b);
        in_check = 0;
        return PyErr_NoMemory();
    }
    st = mf_check_problem(&po->pb, &b, &o, v, &err);
    mf_inproc_close(&b);
    PyObject *res = NULL;
    if (call_exc_type) {
        PyErr_Restore(call_exc_type, call_exc_value, call_exc_tb);
        call_exc_type = call_exc_value = call_exc_tb = NULL;
    } else if (st != MF_OK) {
        raise_err(&err);
    } else {
        res = verdict_dict(v);
    }
    clear_call_state();
    free(v);
    in_check = 0;
    return res;
}

/* bytes-like b of exactly n bytes, or NULL with a ValueError naming what */
static const char *exact_bytes(PyObject *o, size_t n, const char *what) {
    char *data;
    Py_ssize_t len;
    if (PyBytes_AsStringAndSize(o, &data, &len) < 0) return NULL;
    if ((size_t)len != n) {
        PyErr_Format(PyExc_ValueError, "%s: %zd bytes, the case needs %zu", what, len, n);
        return NULL;
    }
    return data;
}

/* check_outputs(out, ids, weights, contract, attribute): out [T][H] bf16 bits, ids [T][k]
 * int32 and weights [T][k] float32 as bytes (ids and weights both or neither) */
static PyObject *problem_check_outputs(PyObject *self, PyObject *args, PyObject *kw) {
    ProblemObject *po = (ProblemObject *)self;
    static char *kwlist[] = {"out", "ids", "weights", "contract", "attribute", NULL};
    PyObject *out, *ids = Py_None, *weights = Py_None;
    const char *contract = "any-order";
    int attribute = 1;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "O|OOsp", kwlist, &out, &ids, &weights,
                                     &contract, &attribute))
        return NULL;
    const mf_moe_params *p = &po->pb.p;
    size_t n_out = (size_t)p->T * p->H, n_sel = (size_t)p->T * p->top_k;
    mf_error err = {0};
    mf_contract con;
    if (pick_contract(contract, &con, &err) != MF_OK) return raise_err(&err);
    if ((ids == Py_None) != (weights == Py_None))
        return PyErr_Format(PyExc_ValueError, "topk_ids and topk_weights go together");
    const char *o_b = exact_bytes(out, n_out * 2, "out");
    if (!o_b) return NULL;
    const char *i_b = NULL, *w_b = NULL;
    if (ids != Py_None) {
        if (!(i_b = exact_bytes(ids, n_sel * 4, "topk_ids"))) return NULL;
        if (!(w_b = exact_bytes(weights, n_sel * 4, "topk_weights"))) return NULL;
    }
    mf_run_result r = {0};
    r.out = malloc(n_out * 2);
    if (i_b) {
        r.ids = malloc(n_sel * 4);
        r.weights = malloc(n_sel * 4);
    }
    mf_verdict *v = malloc(sizeof *v);
    if (!r.out || !v || (i_b && (!r.ids || !r.weights))) {
        mf_run_result_free(&r);
        free(v);
        return PyErr_NoMemory();
    }
    memcpy(r.out, o_b, n_out * 2);
    if (i_b) {
        memcpy(r.ids, i_b, n_sel * 4);
        memcpy(r.weights, w_b, n_sel * 4);
    }
    mf_run_result_count_unwritten(&r, n_out);
    mf_check_opts o;
    mf_check_opts_default(&o);
    o.determinism = 0;
    mf_status st = mf_check_result_fresh(&po->pb, &con, &r, NULL, &o, v, &err);
    int failed = 0;
    for (int s = 0; s < MF_STAGE_COUNT; s++) failed |= v->n_bad[s] != 0;
    if (st == MF_OK && attribute && failed) {
        st = mf_attribute(&po->pb, &con, &r, &v->attr, &err);
        v->has_attribution = st == MF_OK;
    }
    mf_run_result_free(&r);
    PyObject *res = st == MF_OK ? verdict_dict(v) : raise_err(&err);
    free(v);
    return res;
}

/* weights_key() -> the weights key of the problem's kernel inputs as they are (a lazy case's
 * unroutable experts poisoned until tensor() generates them), as the exec backend computes it
 * for a case file (mf_kernel_inputs_make, mf_xcase_weights_key) */
static PyObject *problem_weights_key(PyObject *self, PyObject *unused) {
    ProblemObject *po = (ProblemObject *)self;
    mf_error err = {0};
    mf_kernel_inputs ki;
    if (mf_kernel_inputs_make(&po->pb, &ki, &err) != MF_OK) return raise_err(&err);
    uint64_t key = mf_xcase_weights_key(&po->pb.p, &ki);
    mf_kernel_inputs_free(&ki);
    return PyLong_FromUnsignedLongLong(key);
}

/* experts_ready() -> the experts generated so far (a lazy case generates the rest on demand) */
static PyObject *problem_experts_ready(PyObject *self, PyObject *unused) {
    return PyLong_FromLong(mf_problem_experts_ready(&((ProblemObject *)self)->pb));
}

static PyMethodDef problem_methods[] = {
    {"experts_ready", problem_experts_ready, METH_NOARGS, "the experts generated so far"},
    {"weights_key", problem_weights_key, METH_NOARGS, "the weights key of the kernel inputs"},
    {"text", problem_text, METH_NOARGS, "the case as text"},
    {"tensor", problem_tensor, METH_VARARGS, "(address, shape, kind) of a tensor, or None"},
    {"check", (PyCFunction)(void (*)(void))problem_check, METH_VARARGS | METH_KEYWORDS,
     "run a callable as the kernel and check it"},
    {"check_outputs", (PyCFunction)(void (*)(void))problem_check_outputs,
     METH_VARARGS | METH_KEYWORDS, "check outputs already computed"},
    {NULL, NULL, 0, NULL}};

static PyType_Slot problem_slots[] = {
    {Py_tp_dealloc, problem_dealloc},
    {Py_tp_methods, problem_methods},
    {Py_tp_doc, "a moefuzz case and its tensors (moefuzz.Case wraps it)"},
    {0, NULL}};

static PyType_Spec problem_spec = {"moefuzz._core.Problem", sizeof(ProblemObject), 0,
                                   Py_TPFLAGS_DEFAULT, problem_slots};

/* ---- a fuzz campaign on a Python callable (moefuzz.fuzz) ----
 * The loop libFuzzer drives for fuzz/fuzz_moe.c, driven from here: inputs are fuzz inputs
 * (codec.h) drawn by mf_case_random, mf_case_mutate and mf_case_crossover under the campaign's
 * limits (src/casegen.c), run and checked by mf_fuzz_one with the callable as the backend, and
 * kept in the corpus when they set a counter of mf_fuzz_features (the numerical counters: cell,
 * utilisation bucket, observable knobs) that no input set before. */

typedef struct {
    uint8_t *d;
    size_t n;
} fz_input;

typedef struct {
    PyObject_HEAD
    mf_fuzz_config cfg;
    mf_fuzz *f;
    mf_fuzz_result *r;
    mf_rng rng;
    fz_input *in; /* the corpus: seeds first, then the inputs kept */
    int n_in, cap_in;
    int ran; /* corpus entries [ran, n_in) added by add() and not run yet */
    uint8_t seen[MF_FUZZ_COUNTERS];
} FuzzerObject;

static PyTypeObject *FuzzerType;

static void fuzzer_dealloc(PyObject *self) {
    FuzzerObject *fz = (FuzzerObject *)self;
    mf_fuzz_free(fz->f); /* releases the callable (pk_release) */
    free(fz->r);
    for (int i = 0; i < fz->n_in; i++) free(fz->in[i].d);
    free(fz->in);
    PyTypeObject *tp = Py_TYPE(self);
    freefunc tp_free = (freefunc)PyType_GetSlot(tp, Py_tp_free);
    tp_free(self);
    Py_DECREF(tp);
}

static int fuzzer_keep(FuzzerObject *fz, const uint8_t *d, size_t n) {
    if (fz->n_in == fz->cap_in) {
        int cap = fz->cap_in ? 2 * fz->cap_in : 64;
        fz_input *in = realloc(fz->in, (size_t)cap * sizeof *in);
        if (!in) return -1;
        fz->in = in;
        fz->cap_in = cap;
    }
    uint8_t *c = malloc(n ? n : 1);
    if (!c) return -1;
    memcpy(c, d, n);
    fz->in[fz->n_in++] = (fz_input){c, n};
    return 0;
}

/* add(path): a corpus file (text case, binary case or fuzz input, as `moefuzz repro` reads
 * them), run by the next steps before any new input */
static PyObject *fuzzer_add(PyObject *self, PyObject *args) {
    FuzzerObject *fz = (FuzzerObject *)self;
    const char *path;
    if (!PyArg_ParseTuple(args, "s", &path)) return NULL;
    mf_fuzz_input in;
    mf_error err = {0};
    if (mf_fuzz_input_load(path, 0, &in, &err) != MF_OK) return raise_err(&err);
    int rc = fuzzer_keep(fz, in.bytes, in.len);
    mf_fuzz_input_free(&in);
    if (rc) return PyErr_NoMemory();
    Py_RETURN_NONE;
}

/* the next input: a corpus entry not run yet, else a random case (1 in 16, or while the corpus
 * is empty), a crossover of two entries (3 in 16) or a mutated entry, as fuzz_moe.c's custom
 * mutator and crossover make them */
static size_t fuzzer_next(FuzzerObject *fz, uint8_t *buf, size_t cap, int *from_corpus) {
    *from_corpus = fz->ran < fz->n_in;
    if (*from_corpus) {
        fz_input *e = &fz->in[fz->ran++];
        size_t n = e->n < cap ? e->n : cap;
        memcpy(buf, e->d, n);
        return n;
    }
    for (int tries = 0; tries < 8; tries++) {
        mf_case a, b, c;
        uint32_t k = mf_rng_below(&fz->rng, 16);
        if (fz->n_in == 0 || k == 0) {
            mf_case_random(&fz->rng, &fz->cfg.lim, &c);
        } else {
            fz_input *e = &fz->in[mf_rng_below(&fz->rng, (uint32_t)fz->n_in)];
            mf_case_decode(e->d, e->n, &a, NULL);
            mf_fuzz_shape(&fz->cfg, &a);
            if (k < 4 && fz->n_in > 1) {
                fz_input *e2 = &fz->in[mf_rng_below(&fz->rng, (uint32_t)fz->n_in)];
                mf_case_decode(e2->d, e2->n, &b, NULL);
                mf_fuzz_shape(&fz->cfg, &b);
                mf_case_crossover(&a, &b, &fz->rng, &fz->cfg.lim, &c);
            } else {
                c = a;
                mf_case_mutate(&c, &fz->rng, &fz->cfg.lim);
            }
        }
        mf_fuzz_shape(&fz->cfg, &c);
        c.rows = 0; /* as fuzz_moe.c's mutator: mf_fuzz_shape derives it from the input */
        size_t n = mf_case_encode(&c, 0, buf, cap);
        if (n) return n;
    }
    return 0;
}

static const char *outcome_name(mf_fuzz_outcome o) {
    return o == MF_FUZZ_PASS ? "pass" : o == MF_FUZZ_SKIP ? "skip" : o == MF_FUZZ_FAIL ? "fail"
                                                                                       : "error";
}

/* step() -> dict: outcome (pass, skip, fail, error), input (the bytes run), kept (it reached a
 * new counter), stage, signature, report (mf_fuzz_report's text) for a failure or an error,
 * unsupported (the callable's reason, when it refused the case), exception (what the callable
 * raised, for the caller to judge) */
static PyObject *fuzzer_step(PyObject *self, PyObject *unused) {
    FuzzerObject *fz = (FuzzerObject *)self;
    if (in_check)
        return PyErr_Format(MoefuzzError, "moefuzz.fuzz stepped from inside a checked kernel");
    uint8_t buf[MF_CASE_MAX_BYTES];
    int from_corpus;
    size_t n = fuzzer_next(fz, buf, sizeof buf, &from_corpus);
    in_check = 1;
    clear_call_state();
    call_count = 0;
    mf_fuzz_outcome o = mf_fuzz_one(fz->f, buf, n, fz->r);
    in_check = 0;
    mf_fuzz_result *r = fz->r;
    uint32_t idx[4 + MF_FUZZ_KNOBS];
    int nf = mf_fuzz_features(r, idx, (int)(sizeof idx / sizeof idx[0])), kept = 0;
    for (int i = 0; i < nf; i++) {
        kept |= !fz->seen[idx[i]];
        fz->seen[idx[i]] = 1;
    }
    if (kept && !from_corpus && fuzzer_keep(fz, buf, n)) return PyErr_NoMemory();
    char sig[256] = "", *rep = NULL;
    size_t rep_len = 0;
    if (o == MF_FUZZ_FAIL || o == MF_FUZZ_ERROR) {
        mf_fuzz_signature(r, sig, sizeof sig);
        FILE *f = open_memstream(&rep, &rep_len);
        if (!f) return PyErr_NoMemory();
        mf_fuzz_report(r, fz->cfg.backend, f);
        fclose(f);
    }
    PyObject *exc = Py_None;
    Py_INCREF(exc);
    if (call_exc_type) {
        PyErr_NormalizeException(&call_exc_type, &call_exc_value, &call_exc_tb);
        Py_DECREF(exc);
        exc = call_exc_value ? call_exc_value : Py_None;
        Py_INCREF(exc);
    }
    const char *stage = mf_fuzz_failed_stage(r);
    PyObject *d = Py_BuildValue("{sssy#sOszssss#szsNsO}", "outcome", outcome_name(o), "input",
                                (const char *)buf, (Py_ssize_t)n, "kept",
                                kept ? Py_True : Py_False, "stage", stage, "signature", sig,
                                "report", rep ? rep : "", (Py_ssize_t)rep_len, "unsupported",
                                call_unsupported[0] ? call_unsupported : NULL, "exception", exc,
                                "unusable", r->backend_unusable ? Py_True : Py_False);
    free(rep);
    clear_call_state();
    return d;
}

static PyObject *stats_dict(const mf_fuzz_stats *st) {
    int cells = 0;
    for (int i = 0; i < MF_FUZZ_CELLS; i++) cells += st->cells[i] != 0;
    return Py_BuildValue("{sKsKsKsKsKsKsisdsKsKss}", "execs", st->execs, "passes", st->passes,
                         "skips", st->skips, "fails", st->fails, "errors", st->errors,
                         "unsupported", st->unsupported, "cells", cells, "max_util", st->max_util,
                         "meta_runs", st->meta_runs, "observed_cases", st->observed_cases,
                         "contract", st->contract);
}

/* stats() -> (dict of the counts, the summary lines of mf_fuzz_stats_print) */
static PyObject *fuzzer_stats(PyObject *self, PyObject *unused) {
    FuzzerObject *fz = (FuzzerObject *)self;
    const mf_fuzz_stats *st = mf_fuzz_get_stats(fz->f);
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f) return PyErr_NoMemory();
    mf_fuzz_stats_print(st, f);
    fclose(f);
    PyObject *res = Py_BuildValue("(Ns#)", stats_dict(st), buf, (Py_ssize_t)len);
    free(buf);
    return res;
}

static PyObject *fuzzer_corpus_size(PyObject *self, PyObject *unused) {
    return PyLong_FromLong(((FuzzerObject *)self)->n_in);
}

static PyMethodDef fuzzer_methods[] = {
    {"add", fuzzer_add, METH_VARARGS, "a corpus file, run first"},
    {"step", fuzzer_step, METH_NOARGS, "draw, run and check one input"},
    {"stats", fuzzer_stats, METH_NOARGS, "(counts, summary lines)"},
    {"corpus_size", fuzzer_corpus_size, METH_NOARGS, "inputs in the corpus"},
    {NULL, NULL, 0, NULL}};

static PyType_Slot fuzzer_slots[] = {
    {Py_tp_dealloc, fuzzer_dealloc},
    {Py_tp_methods, fuzzer_methods},
    {Py_tp_doc, "a fuzz campaign on a Python callable (moefuzz.fuzz drives it)"},
    {0, NULL}};

static PyType_Spec fuzzer_spec = {"moefuzz._core.Fuzzer", sizeof(FuzzerObject), 0,
                                  Py_TPFLAGS_DEFAULT, fuzzer_slots};

/* fuzzer(call, seed, model=None, full=False, method=None, contract="any-order", routing=False,
 * name="python", meta_every=8): call is (run, supports) as for check */
static PyObject *mod_fuzzer(PyObject *m, PyObject *args, PyObject *kw) {
    static char *kwlist[] = {"call", "seed", "model", "full", "method", "contract", "routing",
                             "name", "meta_every", NULL};
    PyObject *call;
    unsigned long long seed;
    const char *model = NULL, *method = NULL, *contract = "any-order", *name = "python";
    int full = 0, routing = 0, meta_every = MF_FUZZ_META_EVERY;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "O!K|zpzspsi", kwlist, &PyTuple_Type, &call,
                                     &seed, &model, &full, &method, &contract, &routing, &name,
                                     &meta_every))
        return NULL;
    if (PyTuple_Size(call) != 2)
        return PyErr_Format(PyExc_TypeError, "fuzzer: call must be (run, supports)");
    const mf_model *mm = NULL;
    if (model && !(mm = mf_model_find(model)))
        return PyErr_Format(MoefuzzError, "unknown model '%s' (moefuzz models)", model);
    if (method && !mf_method_find(method))
        return PyErr_Format(MoefuzzError, "unknown routing method '%s' (moefuzz methods)", method);
    if (!mf_contract_find(contract))
        return PyErr_Format(MoefuzzError, "unknown contract '%s'", contract);
    if (meta_every < 1) return PyErr_Format(PyExc_ValueError, "meta_every must be at least 1");
    allocfunc alloc = (allocfunc)PyType_GetSlot(FuzzerType, Py_tp_alloc);
    FuzzerObject *fz = (FuzzerObject *)alloc(FuzzerType, 0);
    if (!fz) return NULL;
    fz->f = NULL;
    fz->r = NULL;
    fz->in = NULL;
    fz->n_in = fz->cap_in = fz->ran = 0;
    memset(fz->seen, 0, sizeof fz->seen);
    fz->rng = (mf_rng){seed};
    mf_fuzz_config_init(&fz->cfg, name, mm, full);
    fz->cfg.meta_every = meta_every;
    if (method) {
        snprintf(fz->cfg.method_name, sizeof fz->cfg.method_name, "%s", method);
        fz->cfg.method = mf_method_find(method);
    }
    snprintf(fz->cfg.contract_name, sizeof fz->cfg.contract_name, "%s", contract);
    fz->r = malloc(sizeof *fz->r);
    fz->f = mf_fuzz_new(&fz->cfg);
    if (!fz->r || !fz->f) {
        Py_DECREF(fz);
        return PyErr_NoMemory();
    }
    mf_kernel_api api;
    python_api(&api, name, contract, routing);
    mf_backend b;
    mf_error err = {0};
    opening_callable = call;
    mf_status st = mf_inproc_open_api(name, &api, &b, &err);
    opening_callable = NULL;
    if (st != MF_OK) {
        Py_DECREF(fz);
        return raise_err(&err);
    }
    mf_fuzz_use_backend(fz->f, &b);
    return (PyObject *)fz;
}

/* ---- constructors ---- */

/* po once its problem is built (st MF_OK), or NULL with err raised and po released */
static PyObject *problem_done(ProblemObject *po, mf_status st, const mf_error *err) {
    if (st != MF_OK) {
        Py_DECREF(po);
        return raise_err(err);
    }
    po->built = 1;
    return (PyObject *)po;
}

/* A new, empty Problem, and in pp the preparation a model and a method ask for (NULL: none);
 * NULL with the error raised for an unknown model or method */
static ProblemObject *problem_start(const char *model, int full, const char *method,
                                   mf_prep *pp) {
    mf_error err = {0};
    mf_prep_default(pp);
    if (mf_prep_set_model(pp, model, full, &err) != MF_OK ||
        mf_prep_set_method(pp, method, &err) != MF_OK) {
        raise_err(&err);
        return NULL;
    }
    return problem_new();
}

/* load(path, model=None, full=False, method=None, raw=False) */
static PyObject *mod_load(PyObject *m, PyObject *args, PyObject *kw) {
    static char *kwlist[] = {"path", "model", "full", "method", "raw", NULL};
    const char *path, *model = NULL, *method = NULL;
    int full = 0, raw = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "s|zpzp", kwlist, &path, &model, &full, &method,
                                     &raw))
        return NULL;
    mf_error err = {0};
    mf_prep pp;
    ProblemObject *po = problem_start(model, full, method, &pp);
    if (!po) return NULL;
    return problem_done(po, mf_prep_load(&pp, path, raw, &po->c, &po->pb, &err), &err);
}

/* parse(text, model=None, full=False, method=None) */
static PyObject *mod_parse(PyObject *m, PyObject *args, PyObject *kw) {
    static char *kwlist[] = {"text", "model", "full", "method", NULL};
    const char *text, *model = NULL, *method = NULL;
    int full = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "s|zpz", kwlist, &text, &model, &full, &method))
        return NULL;
    mf_error err = {0};
    mf_prep pp;
    ProblemObject *po = problem_start(model, full, method, &pp);
    if (!po) return NULL;
    mf_status st = mf_case_parse_text(text, &po->c, &err);
    if (st == MF_OK) st = mf_prep_problem(&pp, &po->c, &po->pb, &err);
    return problem_done(po, st, &err);
}

/* random(seed, model=None, full=False, method=None): the generator of `moefuzz fuzz`'s mix
 * (mf_case_random under the default limits), or with a model a case of it as `moefuzz check
 * --model M --cases N` draws one (routing fixed, tokens and data vary) */
static PyObject *mod_random(PyObject *m, PyObject *args, PyObject *kw) {
    static char *kwlist[] = {"seed", "model", "full", "method", NULL};
    unsigned long long seed;
    const char *model = NULL, *method = NULL;
    int full = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "K|zpz", kwlist, &seed, &model, &full, &method))
        return NULL;
    mf_error err = {0};
    mf_prep pp;
    ProblemObject *po = problem_start(model, full, method, &pp);
    if (!po) return NULL;
    mf_rng rng = {seed};
    mf_case_limits lim;
    if (pp.model) {
        mf_case_limits ml = {full ? 8 : 64, MF_MAX_H, MF_MAX_I, MF_MAX_E, 1e30, 1e30, 0, 0, 0, 0, 0};
        lim = ml;
        mf_case_random(&rng, &lim, &po->c);
        po->c.p.T = mf_dim_boundary(&rng, lim.max_T);
    } else {
        mf_case_limits_default(&lim);
        mf_case_random(&rng, &lim, &po->c);
    }
    return problem_done(po, mf_prep_problem(&pp, &po->c, &po->pb, &err), &err);
}

/* from_safetensors(data): a case file's bytes (docs/files.md), as `moefuzz verify` reads one:
 * the caller's own tensors with the case's parameters in the metadata */
static PyObject *mod_from_safetensors(PyObject *m, PyObject *args) {
    const char *data;
    Py_ssize_t n;
    if (!PyArg_ParseTuple(args, "y#", &data, &n)) return NULL;
    mf_error err = {0};
    ProblemObject *po = problem_new();
    if (!po) return NULL;
    return problem_done(po, mf_xcase_parse((const uint8_t *)data, (size_t)n, &po->c, &po->pb, &err),
                        &err);
}

/* paths(path) -> the case files under path, as `moefuzz check PATH` collects them */
static PyObject *mod_paths(PyObject *m, PyObject *args) {
    const char *path;
    if (!PyArg_ParseTuple(args, "s", &path)) return NULL;
    mf_path_list l = {0};
    mf_error err = {0};
    if (mf_paths_collect(path, &l, &err) != MF_OK) {
        mf_paths_free(&l);
        return raise_err(&err);
    }
    PyObject *list = PyList_New(l.n);
    for (int i = 0; list && i < l.n; i++) PyList_SetItem(list, i, PyUnicode_FromString(l.paths[i]));
    mf_paths_free(&l);
    return list;
}

/* differ(a, b, n, sampled) -> whether the n bytes at a and at b differ; with sampled, only in
 * one of 64 evenly spaced 8-byte words or the last bytes: true then proves they differ (their
 * weights keys too, but for a collision), false proves nothing. The worker's parent skips
 * hashing weights that plainly changed, and learns the key of the weights it holds from a
 * call whose weights are those bytes. */
static PyObject *mod_differ(PyObject *m, PyObject *args) {
    PyObject *a_o, *b_o;
    Py_ssize_t n;
    int sampled;
    if (!PyArg_ParseTuple(args, "OOnp", &a_o, &b_o, &n, &sampled)) return NULL;
    const unsigned char *a = PyLong_AsVoidPtr(a_o), *b = PyLong_AsVoidPtr(b_o);
    if (PyErr_Occurred()) return NULL;
    if (n < 8 || !sampled) return PyBool_FromLong(n > 0 && memcmp(a, b, (size_t)n) != 0);
    size_t words = (size_t)n / 8, step = words > 64 ? words / 64 : 1;
    for (size_t w = 0; w < words; w += step)
        if (memcmp(a + 8 * w, b + 8 * w, 8)) Py_RETURN_TRUE;
    return PyBool_FromLong(memcmp(a + n - 8, b + n - 8, 8) != 0);
}

/* ---- bf16 conversions over arrays the caller (moefuzz/__init__.py) owns, by address: the
 * limited API of 3.10 has no buffer protocol; numpy gives the addresses, the caller the sizes */

/* (src, dst, n) of a conversion by address: NULL pointers and an exception on bad arguments */
static int addr_args(PyObject *args, const void **src, void **dst, Py_ssize_t *n) {
    PyObject *src_o, *dst_o;
    if (!PyArg_ParseTuple(args, "OOn", &src_o, &dst_o, n)) return -1;
    *src = PyLong_AsVoidPtr(src_o);
    *dst = PyLong_AsVoidPtr(dst_o);
    return PyErr_Occurred() ? -1 : 0;
}

/* bf16_widen(src, dst, n): n bf16 bit patterns at src -> float32 at dst (exact) */
static PyObject *mod_bf16_widen(PyObject *m, PyObject *args) {
    const void *src;
    void *dst;
    Py_ssize_t n;
    if (addr_args(args, &src, &dst, &n) < 0) return NULL;
    for (Py_ssize_t i = 0; i < n; i++)
        ((float *)dst)[i] = mf_bf16_to_f32(((const uint16_t *)src)[i]);
    Py_RETURN_NONE;
}

/* e4m3_widen(src, dst, n): n e4m3 codes at src -> float32 values at dst (exact) */
static PyObject *mod_e4m3_widen(PyObject *m, PyObject *args) {
    const void *src;
    void *dst;
    Py_ssize_t n;
    if (addr_args(args, &src, &dst, &n) < 0) return NULL;
    for (Py_ssize_t i = 0; i < n; i++)
        ((float *)dst)[i] = (float)mf_fp8_decode(MF_FP8_E4M3, ((const uint8_t *)src)[i]);
    Py_RETURN_NONE;
}

/* bf16_round(src, dst, n): n float32 at src -> bf16 bit patterns at dst, to nearest even (NaN
 * stays a quiet NaN: mf_f32_to_bf16) */
static PyObject *mod_bf16_round(PyObject *m, PyObject *args) {
    const void *src;
    void *dst;
    Py_ssize_t n;
    if (addr_args(args, &src, &dst, &n) < 0) return NULL;
    for (Py_ssize_t i = 0; i < n; i++)
        ((uint16_t *)dst)[i] = mf_f32_to_bf16(((const float *)src)[i]);
    Py_RETURN_NONE;
}

static PyObject *mod_contracts(PyObject *m, PyObject *unused) {
    PyObject *list = PyList_New(0);
    for (const mf_contract *const *c = mf_contract_list(); list && *c; c++) {
        PyObject *s = PyUnicode_FromString((*c)->name);
        PyList_Append(list, s);
        Py_XDECREF(s);
    }
    return list;
}

static PyObject *mod_models(PyObject *m, PyObject *unused) {
    int n = 0;
    const mf_model *ms = mf_model_list(&n);
    PyObject *list = PyList_New(n);
    for (int i = 0; list && i < n; i++) PyList_SetItem(list, i, PyUnicode_FromString(ms[i].name));
    return list;
}

static PyMethodDef mod_methods[] = {
    {"load", (PyCFunction)(void (*)(void))mod_load, METH_VARARGS | METH_KEYWORDS,
     "a case file (text, binary corpus input, or safetensors case file)"},
    {"parse", (PyCFunction)(void (*)(void))mod_parse, METH_VARARGS | METH_KEYWORDS,
     "a text case"},
    {"random", (PyCFunction)(void (*)(void))mod_random, METH_VARARGS | METH_KEYWORDS,
     "a random case"},
    {"from_safetensors", mod_from_safetensors, METH_VARARGS, "a case file's bytes"},
    {"paths", mod_paths, METH_VARARGS, "case files under a path"},
    {"differ", mod_differ, METH_VARARGS, "bytes (or sampled words) differ, by address"},
    {"bf16_widen", mod_bf16_widen, METH_VARARGS, "bf16 bits -> float32, by address"},
    {"bf16_round", mod_bf16_round, METH_VARARGS, "float32 -> bf16 bits, by address"},
    {"weights_key_of", mod_weights_key_of, METH_VARARGS,
     "the weights key of a call's per-expert tensors, by address"},
    {"e4m3_widen", mod_e4m3_widen, METH_VARARGS, "e4m3 codes -> float32, by address"},
    {"tensor_names", mod_tensor_names, METH_NOARGS, "the names of a case's tensors"},
    {"case_layout", mod_case_layout, METH_VARARGS, "the tensors of a case file, by parameters"},
    {"v2_params", mod_v2_params, METH_NOARGS, "case format v2 parameters: level, text of 0"},
    {"contracts", mod_contracts, METH_NOARGS, "contract names"},
    {"models", mod_models, METH_NOARGS, "model preset names"},
    {"fuzzer", (PyCFunction)(void (*)(void))mod_fuzzer, METH_VARARGS | METH_KEYWORDS,
     "a fuzz campaign on a Python callable"},
    {NULL, NULL, 0, NULL}};

static struct PyModuleDef moddef = {PyModuleDef_HEAD_INIT, "_core", NULL, -1, mod_methods,
                                    NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__core(void) {
    PyObject *m = PyModule_Create(&moddef);
    if (!m) return NULL;
    ProblemType = (PyTypeObject *)PyType_FromSpec(&problem_spec);
    FuzzerType = (PyTypeObject *)PyType_FromSpec(&fuzzer_spec);
    MoefuzzError = PyErr_NewException("moefuzz.MoefuzzError", PyExc_ValueError, NULL);
    if (!ProblemType || !FuzzerType || !MoefuzzError) {
        Py_DECREF(m);
        return NULL;
    }
    Py_INCREF(ProblemType);
    PyModule_AddObject(m, "Problem", (PyObject *)ProblemType);
    Py_INCREF(MoefuzzError);
    PyModule_AddObject(m, "MoefuzzError", MoefuzzError);
    PyModule_AddStringConstant(m, "version", "0.1.0");
    return m;
}
