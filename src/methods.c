/* methods.c: the routing-method table (see methods.h).
 *
 * Sources (as collected in the shared notes, moe-semantics-and-bugs.md 1.2 and 1.13):
 *   flashinfer  include/flashinfer/trtllm/fused_moe/runner.h, RoutingMethodType, and the kernel
 *               mapping in csrc/fused_moe/trtllm_backend/trtllm_fused_moe_routing_runner.cu
 *   vllm        vllm/model_executor/layers/fused_moe/config.py, RoutingMethodType (the values
 *               vLLM passes to FlashInfer: the kernel semantics are FlashInfer's)
 *   trtllm      tensorrt_llm/_torch/modules/fused_moe/routing.py, RoutingMethodType
 * The numbers moved between releases of each project (vLLM once had Custom = 6, Simulated = 7,
 * Unspecified = 8; an older TensorRT-LLM had Unspecified = 6): the table holds the values of the
 * versions the notes record, and `moefuzz methods` prints them so a mismatch is easy to spot.
 */
#include "methods.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define SMX MF_SCORE_SOFTMAX
#define SIG MF_SCORE_SIGMOID

/* clang-format off */
static const mf_method methods[] = {
    /* ---- FlashInfer trtllm-gen ---- */
    {"flashinfer:Default", 0, "softmax -> top-k, weights softmax[ids], no renormalization",
     SMX, 0, 0, 0, 0, 0, 0, NULL, NULL},
    {"flashinfer:Renormalize", 1, "top-k of the logits -> softmax over the k (= softmax, top-k, "
     "renormalize without eps)", SMX, 0, 0, 1, 0, 0, 0, NULL, NULL},
    {"flashinfer:DeepSeekV3", 2, "sigmoid + bias, top-2-sum groups, top-k, weights sigmoid[ids] "
     "/ (sum + 1e-20) * rsf", SIG, 1, 1, 1, 1, 1, 0, NULL,
     "the only FlashInfer method besides MiniMax2 that applies rsf; the routing output is bf16 "
     "(contract flashinfer-trtllm-bf16)"},
    {"flashinfer:Llama4", 3, "top-1 of the logits, weight sigmoid(logit)", SIG, 0, 0, 0, 0, 0, 1,
     NULL, "the BF16 launcher applies the weight in finalize (output side)"},
    {"flashinfer:RenormalizeNaive", 4, "softmax -> top-k -> renormalize (no eps)", SMX, 0, 0, 1,
     0, 0, 0, NULL, "what vLLM calls Renormalize (notes D15)"},
    {"flashinfer:TopK", 5, "top-k of the logits, raw logits as weights", SMX, 0, 0, 0, 0, 0, 0,
     "score function 'none' (raw logits as weights)", NULL},
    {"flashinfer:SigmoidRenorm", 6, "sigmoid -> top-k -> renormalize (+1e-20) if norm_topk_prob",
     SIG, 0, 0, -1, 1, 0, 0, NULL, "renormalize is the case's (the norm_topk_prob flag)"},
    {"flashinfer:MiniMax2", 7, "sigmoid + bias -> top-k -> weights / (sum + 1e-20) * rsf", SIG, 1,
     0, 1, 1, 1, 0, NULL, "rsf was hard-coded 1.0 until flashinfer #3499"},
    {"flashinfer:Sigmoid", 8, "sigmoid -> top-k, no renormalization", SIG, 0, 0, 0, 0, 0, 0, NULL,
     NULL},
    {"flashinfer:TopKSigmoid", 9, "top-k of the logits, weights sigmoid(logit)", SIG, 0, 0, 0, 0,
     0, 0, NULL, "selection by logit equals selection by sigmoid (monotone)"},
    /* ---- vLLM ---- */
    {"vllm:Default", 0, "softmax -> top-k, no renormalization", SMX, 0, 0, 0, 0, 0, 0, NULL, NULL},
    {"vllm:Renormalize", 1, "softmax -> top-k -> renormalize (no eps)", SMX, 0, 0, 1, 0, 0, 0,
     NULL, "vLLM's Renormalize is FlashInfer's RenormalizeNaive (vllm #43223; equal in exact "
     "arithmetic to FlashInfer's Renormalize)"},
    {"vllm:DeepSeekV3", 2, "sigmoid + bias, top-2-sum groups, top-k, weights / (sum + 1e-20) * "
     "rsf", SIG, 1, 1, 1, 1, 1, 0, NULL,
     "the kernel's eps is 1e-20; vLLM's own grouped_topk uses 0; vLLM #43769 dropped rsf here"},
    {"vllm:Llama4", 3, "top-1 of the logits, weight sigmoid(logit)", SIG, 0, 0, 0, 0, 0, 1, NULL,
     NULL},
    {"vllm:RenormalizeNaive", 4, "softmax -> top-k -> renormalize (no eps)", SMX, 0, 0, 1, 0, 0,
     0, NULL, NULL},
    {"vllm:TopK", 5, "top-k of the logits, raw logits as weights", SMX, 0, 0, 0, 0, 0, 0,
     "score function 'none' (raw logits as weights)", NULL},
    {"vllm:SigmoidRenorm", 6, "sigmoid -> top-k -> renormalize (+1e-20) if norm_topk_prob", SIG,
     0, 0, -1, 1, 0, 0, NULL, NULL},
    {"vllm:MiniMax2", 7, "sigmoid + bias -> top-k -> weights / (sum + 1e-20) * rsf", SIG, 1, 0, 1,
     1, 1, 0, NULL, NULL},
    {"vllm:Sigmoid", 8, "sigmoid -> top-k, no renormalization", SIG, 0, 0, 0, 0, 0, 0, NULL,
     "vLLM's Unspecified is 9 (FlashInfer's TopKSigmoid)"},
    {"vllm:DeepseekV4", 100, "sqrt(softplus) + bias -> top-k -> renormalize", SMX, 1, 0, 1, 0, 1,
     0, "score function sqrt-softplus", NULL},
    /* ---- TensorRT-LLM ---- */
    {"trtllm:Default", 0, "softmax -> top-k, no renormalization", SMX, 0, 0, 0, 0, 0, 0, NULL,
     NULL},
    {"trtllm:Renormalize", 1, "top-k of the logits -> softmax over the k", SMX, 0, 0, 1, 0, 0, 0,
     NULL, NULL},
    {"trtllm:DeepSeekV3", 2, "sigmoid + bias, top-2-sum groups, top-k, weights / (sum + 1e-20) "
     "* rsf", SIG, 1, 1, 1, 1, 1, 0, NULL, NULL},
    {"trtllm:Llama4", 3, "top-1 of the logits, weight sigmoid(logit)", SIG, 0, 0, 0, 0, 0, 1, NULL,
     NULL},
    {"trtllm:RenormalizeNaive", 4, "softmax -> top-k -> renormalize", SMX, 0, 0, 1, 0, 0, 0, NULL,
     NULL},
    {"trtllm:MiniMax2", 5, "sigmoid + bias -> top-k -> weights / (sum + 1e-20) * rsf", SIG, 1, 0,
     1, 1, 1, 0, NULL, "5 here, 7 in FlashInfer and vLLM (notes D14)"},
    {"trtllm:SigmoidRenorm", 6, "sigmoid -> top-k -> renormalize (+1e-20)", SIG, 0, 0, -1, 1, 0,
     0, NULL, "newer releases; older ones had Unspecified = 6"},
};
/* clang-format on */

const mf_method *mf_method_list(int *n) {
    *n = (int)(sizeof methods / sizeof methods[0]);
    return methods;
}

const mf_method *mf_method_find(const char *name) {
    int n;
    const mf_method *m = mf_method_list(&n);
    for (int i = 0; i < n; i++)
        if (!strcasecmp(m[i].name, name)) return &m[i];
    /* "project:NUMBER" */
    const char *colon = strchr(name, ':');
    if (!colon || !isdigit((unsigned char)colon[1])) return NULL;
    char *end;
    long num = strtol(colon + 1, &end, 10);
    if (*end) return NULL;
    size_t plen = (size_t)(colon - name);
    for (int i = 0; i < n; i++)
        if (!strncasecmp(m[i].name, name, plen) && m[i].name[plen] == ':' && m[i].number == num)
            return &m[i];
    return NULL;
}

mf_status mf_method_apply(const mf_method *m, mf_case *c, mf_error *err) {
    if (m->unsupported)
        return MF_FAIL(err, MF_EUNSUPPORTED, "routing method %s needs %s, not in case format v1",
                       m->name, m->unsupported);
    mf_moe_params *p = &c->p;
    p->score = (mf_score_fn)m->score;
    if (!m->bias) p->bias = MF_BIAS_NONE;
    else if (p->bias == MF_BIAS_NONE) p->bias = MF_BIAS_F32;
    if (!m->grouped) {
        p->n_group = 1;
        p->topk_group = 1;
    }
    p->group_rule = MF_GROUP_TOP2_SUM;
    if (m->renormalize >= 0) p->renormalize = m->renormalize;
    p->renorm_eps = m->eps_1e20 ? 1e-20f : 0.0f;
    if (!m->uses_rsf) p->rsf = 1.0f;
    p->rsf_site = MF_RSF_WEIGHTS; /* inside routing, when applied at all */
    if (m->top_k) p->top_k = m->top_k;
    if (p->top_k > p->E) p->top_k = p->E;
    mf_error e2;
    if (mf_case_validate(c, &e2) != MF_OK)
        return MF_FAIL(err, MF_EINVAL, "routing method %s on this case: %s", m->name, e2.msg);
    return MF_OK;
}

void mf_methods_print(FILE *f) {
    int n;
    const mf_method *m = mf_method_list(&n);
    fprintf(f, "%-28s %4s %-7s %-4s %-6s %-6s %-5s %-7s %s\n", "method", "num", "score", "bias",
            "groups", "renorm", "eps", "rsf", "what the kernel computes");
    for (int i = 0; i < n; i++) {
        const char *rn = m[i].renormalize < 0 ? "case" : m[i].renormalize ? "yes" : "no";
        fprintf(f, "%-28s %4d %-7s %-4s %-6s %-6s %-5s %-7s %s\n", m[i].name, m[i].number,
                mf_score_name((mf_score_fn)m[i].score), m[i].bias ? "yes" : "no",
                m[i].grouped ? "case" : "none", rn, m[i].eps_1e20 ? "1e-20" : "0",
                m[i].uses_rsf ? "applied" : "IGNORED", m[i].summary);
        if (m[i].unsupported)
            fprintf(f, "%-33s NOT IN CASE FORMAT v1: needs %s\n", "", m[i].unsupported);
        if (m[i].note) fprintf(f, "%-33s %s\n", "", m[i].note);
    }
    fprintf(f, "\nrsf IGNORED: the kernel never multiplies by routed_scaling_factor, so cases run "
               "with rsf = 1;\na model with rsf != 1 routed this way must scale the output itself "
               "(the vLLM #43769 seam).\n`--method NAME` (check, fuzz, export) applies a method "
               "to every case; NAME may also be\nproject:NUMBER, e.g. trtllm:5.\n");
}
