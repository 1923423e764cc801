/* methods.c: the routing-method table (see methods.h).
 *
 * Sources, each project's RoutingMethodType and the kernels it selects:
 *   flashinfer  include/flashinfer/trtllm/fused_moe/runner.h, RoutingMethodType, and the kernel
 *               mapping in csrc/fused_moe/trtllm_backend/trtllm_fused_moe_routing_runner.cu
 *   vllm        vllm/model_executor/layers/fused_moe/config.py, RoutingMethodType (the values
 *               vLLM passes to FlashInfer: the kernel semantics are FlashInfer's)
 *   trtllm      tensorrt_llm/_torch/modules/fused_moe/routing.py, RoutingMethodType
 * The numbers moved between releases of each project (vLLM once had Custom = 6, Simulated = 7,
 * Unspecified = 8; an older TensorRT-LLM had Unspecified = 6): the table holds the values of the
 * versions these files were read at, and `moefuzz methods` prints them so a mismatch is easy to
 * spot.
 */
#include "methods.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* clang-format off */
static const mf_method methods[] = {
    /* ---- FlashInfer trtllm-gen ---- */
    {.name = "flashinfer:Default", .number = 0,
     .summary = "softmax -> top-k, weights softmax[ids], no renormalization",
     .score = MF_SCORE_SOFTMAX, .bias = 0, .grouped = 0, .renormalize = 0, .eps_1e20 = 0,
     .uses_rsf = 0, .top_k = 0},
    {.name = "flashinfer:Renormalize", .number = 1,
     .summary = "top-k of the logits -> softmax over the k (= softmax, top-k, renormalize without "
                "eps)",
     .score = MF_SCORE_SOFTMAX, .bias = 0, .grouped = 0, .renormalize = 1, .eps_1e20 = 0,
     .uses_rsf = 0, .top_k = 0},
    {.name = "flashinfer:DeepSeekV3", .number = 2,
     .summary = "sigmoid + bias, top-2-sum groups, top-k, weights sigmoid[ids] / (sum + 1e-20) * "
                "rsf",
     .score = MF_SCORE_SIGMOID, .bias = 1, .grouped = 1, .renormalize = 1, .eps_1e20 = 1,
     .uses_rsf = 1, .top_k = 0,
     .note = "the only FlashInfer method besides MiniMax2 that applies rsf; the routing output is "
             "bf16 (contract flashinfer-0.7-trtllm-bf16)"},
    {.name = "flashinfer:Llama4", .number = 3,
     .summary = "top-1 of the logits, weight sigmoid(logit)",
     .score = MF_SCORE_SIGMOID, .bias = 0, .grouped = 0, .renormalize = 0, .eps_1e20 = 0,
     .uses_rsf = 0, .top_k = 1,
     .note = "the BF16 launcher applies the weight in finalize (output side)"},
    {.name = "flashinfer:RenormalizeNaive", .number = 4,
     .summary = "softmax -> top-k -> renormalize (no eps)",
     .score = MF_SCORE_SOFTMAX, .bias = 0, .grouped = 0, .renormalize = 1, .eps_1e20 = 0,
     .uses_rsf = 0, .top_k = 0,
     .note = "what vLLM calls Renormalize"},
    {.name = "flashinfer:TopK", .number = 5,
     .summary = "top-k of the logits, raw logits as weights",
     .score = MF_SCORE_NONE, .bias = 0, .grouped = 0, .renormalize = 0, .eps_1e20 = 0,
     .uses_rsf = 0, .top_k = 0,
     .note = "score none (format v2); SGLang's flashinfer_trtllm_routed path computes it with "
             "fused_topk_softmax_torch_raw_logits (srt/layers/moe/topk.py)"},
    {.name = "flashinfer:SigmoidRenorm", .number = 6,
     .summary = "sigmoid -> top-k -> renormalize (+1e-20) if norm_topk_prob",
     .score = MF_SCORE_SIGMOID, .bias = 0, .grouped = 0, .renormalize = -1, .eps_1e20 = 1,
     .uses_rsf = 0, .top_k = 0,
     .note = "renormalize is the case's (the norm_topk_prob flag)"},
    {.name = "flashinfer:MiniMax2", .number = 7,
     .summary = "sigmoid + bias -> top-k -> weights / (sum + 1e-20) * rsf",
     .score = MF_SCORE_SIGMOID, .bias = 1, .grouped = 0, .renormalize = 1, .eps_1e20 = 1,
     .uses_rsf = 1, .top_k = 0,
     .note = "rsf was hard-coded 1.0 until flashinfer #3499"},
    {.name = "flashinfer:Sigmoid", .number = 8,
     .summary = "sigmoid -> top-k, no renormalization",
     .score = MF_SCORE_SIGMOID, .bias = 0, .grouped = 0, .renormalize = 0, .eps_1e20 = 0,
     .uses_rsf = 0, .top_k = 0},
    {.name = "flashinfer:TopKSigmoid", .number = 9,
     .summary = "top-k of the logits, weights sigmoid(logit)",
     .score = MF_SCORE_SIGMOID, .bias = 0, .grouped = 0, .renormalize = 0, .eps_1e20 = 0,
     .uses_rsf = 0, .top_k = 0,
     .note = "selection by logit equals selection by sigmoid (monotone)"},
    /* ---- vLLM ---- */
    {.name = "vllm:Default", .number = 0,
     .summary = "softmax -> top-k, no renormalization",
     .score = MF_SCORE_SOFTMAX, .bias = 0, .grouped = 0, .renormalize = 0, .eps_1e20 = 0,
     .uses_rsf = 0, .top_k = 0},
    {.name = "vllm:Renormalize", .number = 1,
     .summary = "softmax -> top-k -> renormalize (no eps)",
     .score = MF_SCORE_SOFTMAX, .bias = 0, .grouped = 0, .renormalize = 1, .eps_1e20 = 0,
     .uses_rsf = 0, .top_k = 0,
     .note = "vLLM's Renormalize is FlashInfer's RenormalizeNaive (vllm #43223; equal in exact "
             "arithmetic to FlashInfer's Renormalize)"},
    {.name = "vllm:DeepSeekV3", .number = 2,
     .summary = "sigmoid + bias, top-2-sum groups, top-k, weights / (sum + 1e-20) * rsf",
     .score = MF_SCORE_SIGMOID, .bias = 1, .grouped = 1, .renormalize = 1, .eps_1e20 = 1,
     .uses_rsf = 1, .top_k = 0,
     .note = "the kernel's eps is 1e-20; vLLM's own grouped_topk uses 0; vLLM #43769 dropped rsf "
             "here"},
    {.name = "vllm:Llama4", .number = 3,
     .summary = "top-1 of the logits, weight sigmoid(logit)",
     .score = MF_SCORE_SIGMOID, .bias = 0, .grouped = 0, .renormalize = 0, .eps_1e20 = 0,
     .uses_rsf = 0, .top_k = 1},
    {.name = "vllm:RenormalizeNaive", .number = 4,
     .summary = "softmax -> top-k -> renormalize (no eps)",
     .score = MF_SCORE_SOFTMAX, .bias = 0, .grouped = 0, .renormalize = 1, .eps_1e20 = 0,
     .uses_rsf = 0, .top_k = 0},
    {.name = "vllm:TopK", .number = 5,
     .summary = "top-k of the logits, raw logits as weights",
     .score = MF_SCORE_NONE, .bias = 0, .grouped = 0, .renormalize = 0, .eps_1e20 = 0,
     .uses_rsf = 0, .top_k = 0,
     .note = "score none (format v2); SGLang's flashinfer_trtllm_routed path computes it with "
             "fused_topk_softmax_torch_raw_logits (srt/layers/moe/topk.py)"},
    {.name = "vllm:SigmoidRenorm", .number = 6,
     .summary = "sigmoid -> top-k -> renormalize (+1e-20) if norm_topk_prob",
     .score = MF_SCORE_SIGMOID, .bias = 0, .grouped = 0, .renormalize = -1, .eps_1e20 = 1,
     .uses_rsf = 0, .top_k = 0},
    {.name = "vllm:MiniMax2", .number = 7,
     .summary = "sigmoid + bias -> top-k -> weights / (sum + 1e-20) * rsf",
     .score = MF_SCORE_SIGMOID, .bias = 1, .grouped = 0, .renormalize = 1, .eps_1e20 = 1,
     .uses_rsf = 1, .top_k = 0},
    {.name = "vllm:Sigmoid", .number = 8,
     .summary = "sigmoid -> top-k, no renormalization",
     .score = MF_SCORE_SIGMOID, .bias = 0, .grouped = 0, .renormalize = 0, .eps_1e20 = 0,
     .uses_rsf = 0, .top_k = 0,
     .note = "vLLM's Unspecified is 9 (FlashInfer's TopKSigmoid)"},
    {.name = "vllm:DeepseekV4", .number = 100,
     .summary = "sqrt(softplus) + bias -> top-k -> weights * rsf / (sum > 0 ? sum : 1)",
     .score = MF_SCORE_SQRT_SOFTPLUS, .bias = 1, .grouped = 0, .renormalize = 1, .eps_1e20 = 0,
     .uses_rsf = 1, .top_k = 0, .renorm_denom = MF_RENORM_SUM_OR_ONE,
     .note = "format v2; vLLM's CUDA kernel (csrc/moe/topk_softplus_sqrt_kernels.cu) computes "
             "__logf(1 + __expf(l)), not log1p; not passed to FlashInfer"},
    /* ---- TensorRT-LLM ---- */
    {.name = "trtllm:Default", .number = 0,
     .summary = "softmax -> top-k, no renormalization",
     .score = MF_SCORE_SOFTMAX, .bias = 0, .grouped = 0, .renormalize = 0, .eps_1e20 = 0,
     .uses_rsf = 0, .top_k = 0},
    {.name = "trtllm:Renormalize", .number = 1,
     .summary = "top-k of the logits -> softmax over the k",
     .score = MF_SCORE_SOFTMAX, .bias = 0, .grouped = 0, .renormalize = 1, .eps_1e20 = 0,
     .uses_rsf = 0, .top_k = 0},
    {.name = "trtllm:DeepSeekV3", .number = 2,
     .summary = "sigmoid + bias, top-2-sum groups, top-k, weights / (sum + 1e-20) * rsf",
     .score = MF_SCORE_SIGMOID, .bias = 1, .grouped = 1, .renormalize = 1, .eps_1e20 = 1,
     .uses_rsf = 1, .top_k = 0},
    {.name = "trtllm:Llama4", .number = 3,
     .summary = "top-1 of the logits, weight sigmoid(logit)",
     .score = MF_SCORE_SIGMOID, .bias = 0, .grouped = 0, .renormalize = 0, .eps_1e20 = 0,
     .uses_rsf = 0, .top_k = 1},
    {.name = "trtllm:RenormalizeNaive", .number = 4,
     .summary = "softmax -> top-k -> renormalize",
     .score = MF_SCORE_SOFTMAX, .bias = 0, .grouped = 0, .renormalize = 1, .eps_1e20 = 0,
     .uses_rsf = 0, .top_k = 0},
    {.name = "trtllm:MiniMax2", .number = 5,
     .summary = "sigmoid + bias -> top-k -> weights / (sum + 1e-20) * rsf",
     .score = MF_SCORE_SIGMOID, .bias = 1, .grouped = 0, .renormalize = 1, .eps_1e20 = 1,
     .uses_rsf = 1, .top_k = 0,
     .note = "5 here, 7 in FlashInfer and vLLM"},
    {.name = "trtllm:SigmoidRenorm", .number = 6,
     .summary = "sigmoid -> top-k -> renormalize (+1e-20)",
     .score = MF_SCORE_SIGMOID, .bias = 0, .grouped = 0, .renormalize = -1, .eps_1e20 = 1,
     .uses_rsf = 0, .top_k = 0,
     .note = "newer releases; older ones had Unspecified = 6"},
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
    if (m->renorm_denom) p->renorm_denom = (mf_renorm_denom)m->renorm_denom;
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
    fprintf(f, "%-28s %4s %-13s %-4s %-6s %-6s %-5s %-7s %s\n", "method", "num", "score", "bias",
            "groups", "renorm", "eps", "rsf", "what the kernel computes");
    for (int i = 0; i < n; i++) {
        const char *rn = m[i].renormalize < 0 ? "case" : m[i].renormalize ? "yes" : "no";
        fprintf(f, "%-28s %4d %-13s %-4s %-6s %-6s %-5s %-7s %s\n", m[i].name, m[i].number,
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
