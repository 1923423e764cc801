/* methods.h: routing methods by the names and numbers the inference projects give them.
 *
 * FlashInfer's trtllm-gen kernels, vLLM and TensorRT-LLM select a routing implementation by an
 * enum (RoutingMethodType) whose names and numbers differ between the projects (the source
 * files are named in methods.c): "DeepSeekV3" is 2 everywhere, but
 * MiniMax2 is 7 in FlashInfer and vLLM and 5 in TensorRT-LLM, and vLLM's "Renormalize" is
 * FlashInfer's "RenormalizeNaive". Each entry here says which case parameters the method implies
 * (score function, bias, grouping, renormalization and its eps, whether the kernel applies the
 * routed scaling factor at all), so `--method flashinfer:DeepSeekV3` checks a kernel on exactly
 * the routing it claims. A method the case format cannot express would be listed with the
 * reason and refused (raw-logit weights and sqrt-softplus scores are case format v2's).
 */
#ifndef MF_METHODS_H
#define MF_METHODS_H

#include <stdio.h>

#include "case.h"
#include "mf_base.h"

typedef struct mf_method {
    const char *name;    /* "project:Name", e.g. "flashinfer:DeepSeekV3" */
    int number;          /* the project's enum value */
    const char *summary; /* what the kernel computes */
    int score;           /* mf_score_fn */
    int bias;            /* 0: none; 1: required (f32 unless the case has bf16) */
    int grouped;         /* 1: the case's groups (top-2 sum rule); 0: no grouping */
    int renormalize;     /* 0, 1, or -1: the case's (a flag of the kernel, e.g. norm_topk_prob) */
    int eps_1e20;        /* renormalization eps: 1 -> 1e-20, 0 -> 0 */
    int uses_rsf;        /* 1: rsf multiplies the weights inside routing; 0: the kernel ignores
                            it, cases run with rsf = 1 (the caller must scale the output) */
    int top_k;           /* 0: the case's; else forced (Llama4: 1) */
    int renorm_denom;    /* 0: the case's; else the mf_renorm_denom it forces */
    const char *unsupported; /* NULL, or what case format v1 lacks */
    const char *note;
} mf_method;

/* By name ("flashinfer:DeepSeekV3", case-insensitive) or "project:NUMBER" ("trtllm:5"). */
const mf_method *mf_method_find(const char *name);
const mf_method *mf_method_list(int *n);

/* Sets the routing parameters the method implies; sizes, data and the rest are kept. Fails
 * (MF_EUNSUPPORTED) for a method the case format cannot express. */
mf_status mf_method_apply(const mf_method *m, mf_case *c, mf_error *err);

void mf_methods_print(FILE *f);

#endif /* MF_METHODS_H */
