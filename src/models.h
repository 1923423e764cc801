/* models.h: MoE presets of real models (`moefuzz models` lists them; each value from the
 * model's published config), each with a small twin: the same routing with H and I scaled down
 * so the exact reference runs in milliseconds.
 *
 * A preset fixes the routing (score, E, top_k, groups, bias, renormalize, eps, rsf and where it
 * applies, layout, logits dtype); campaigns on a model vary tokens and data only.
 */
#ifndef MF_MODELS_H
#define MF_MODELS_H

#include <stdio.h>

#include "case.h"

typedef struct mf_model {
    const char *name;
    const char *hf_id;
    int H, I, E, top_k, n_group, topk_group;
    mf_group_rule group_rule;
    mf_score_fn score;
    mf_bias_kind bias;
    int renormalize;
    float eps;
    float rsf;
    mf_rsf_site rsf_site;
    mf_activation activation;
    mf_layout layout;
    mf_dtype logits;
    int H_twin, I_twin;
    const char *unsupported; /* NULL, or what the case format lacks for this model */
    /* case format v2 (0: v1's semantics) */
    mf_expert_bias expert_bias;
    float act_alpha, act_limit;
    /* quantized weights (0: bf16): format, fp8 activation scale format, weight block */
    mf_weight_format weight_format;
    mf_scale_format scale_format;
    int block_n, block_k;
    /* shared experts (0: none): count, intermediate size (full and twin), weight form */
    int n_shared, shared_I, shared_I_twin;
    mf_shared_weight shared_weight;
    int weight_on_input; /* the routing weight multiplies the expert's input (Llama-4) */
    const char *note;
} mf_model;

/* The preset named name, compared case-insensitively (m->name is the canonical spelling); NULL if
 * none. */
const mf_model *mf_model_find(const char *name);
const mf_model *mf_model_list(int *n);

/* Applies the model's routing and sizes to c (the twin's sizes unless full). T, data generators
 * and pokes are kept. */
void mf_model_apply(const mf_model *m, int full, mf_case *c);

void mf_models_print(FILE *f);

#endif /* MF_MODELS_H */
