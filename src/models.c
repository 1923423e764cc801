/* models.c: model presets (see models.h). Values from the model configs and the inference
 * engines' routers, as collected in the shared notes (model-configs.md, sections 2 and 5);
 * twins from its section 5.2. */
#include "models.h"

#include <string.h>
#include <strings.h>

#define SIG MF_SCORE_SIGMOID
#define SMX MF_SCORE_SOFTMAX
#define F32 MF_BIAS_F32
#define B16 MF_BIAS_BF16
#define NOB MF_BIAS_NONE
#define W MF_RSF_WEIGHTS
#define O MF_RSF_OUTPUT
#define GU MF_LAYOUT_GATE_UP
#define LF MF_DTYPE_F32
#define LB MF_DTYPE_BF16

static const mf_model models[] = {
    {"deepseek-v3", "deepseek-ai/DeepSeek-V3", 7168, 2048, 256, 8, 8, 4, SIG, F32, 1, 1e-20f,
     2.5f, O, GU, LB, 512, 128, NULL, "rsf applied to the output by vLLM; 1 shared expert not modelled"},
    {"kimi-k2", "moonshotai/Kimi-K2-Instruct", 7168, 2048, 384, 8, 1, 1, SIG, F32, 1, 1e-20f,
     2.827f, O, GU, LB, 512, 128, NULL, "n_group 1 still maps to FlashInfer DeepSeekV3"},
    {"kimi-linear", "moonshotai/Kimi-Linear-48B-A3B-Instruct", 2304, 1024, 256, 8, 1, 1, SIG, B16,
     1, 0.0f, 2.446f, W, GU, LB, 256, 128, NULL,
     "rsf passed to the kernel: the seam of vLLM #43769 (GSM8K 0.886 -> 0.378 when dropped)"},
    {"glm-4.5", "zai-org/GLM-4.5", 5120, 1536, 160, 8, 1, 1, SIG, F32, 1, 1e-20f, 2.5f, O, GU, LF,
     512, 128, NULL, "sigmoid and bias hard-coded in the model code, fp32 router"},
    {"glm-4.5-air", "zai-org/GLM-4.5-Air", 4096, 1408, 128, 8, 1, 1, SIG, F32, 1, 1e-20f, 1.0f, O,
     GU, LF, 512, 192, NULL, "rsf 1.0: an rsf-dropping bug is invisible on this model"},
    {"glm-5", "zai-org/GLM-5", 6144, 2048, 256, 8, 1, 1, SIG, F32, 1, 1e-20f, 2.5f, O, GU, LF,
     512, 192, NULL, "fp32 routing forced; tiny sigmoids against large biases"},
    {"qwen3-30b-a3b", "Qwen/Qwen3-30B-A3B", 2048, 768, 128, 8, 1, 1, SMX, NOB, 1, 0.0f, 1.0f, W,
     GU, LB, 256, 128, NULL, NULL},
    {"qwen3-235b-a22b", "Qwen/Qwen3-235B-A22B", 4096, 1536, 128, 8, 1, 1, SMX, NOB, 1, 0.0f, 1.0f,
     W, GU, LB, 512, 192, NULL, NULL},
    {"qwen3-next-80b-a3b", "Qwen/Qwen3-Next-80B-A3B-Instruct", 2048, 512, 512, 10, 1, 1, SMX, NOB,
     1, 0.0f, 1.0f, W, GU, LB, 256, 64, NULL, "sigmoid-gated shared expert not modelled"},
    {"deepseek-v2-lite", "deepseek-ai/DeepSeek-V2-Lite", 2048, 1408, 64, 6, 1, 1, SMX, NOB, 0,
     0.0f, 1.0f, W, GU, LB, 256, 192, NULL, "softmax without renormalization; 2 shared experts not modelled"},
    {"deepseek-v2", "deepseek-ai/DeepSeek-V2", 5120, 1536, 160, 6, 8, 3, SMX, NOB, 0, 0.0f, 16.0f,
     O, GU, LB, 512, 128, NULL, "the only max-per-group model; group rule max (set below)"},
    {"mixtral-8x7b", "mistralai/Mixtral-8x7B-v0.1", 4096, 14336, 8, 2, 1, 1, SMX, NOB, 1, 0.0f,
     1.0f, W, GU, LB, 512, 512, NULL, NULL},
    {"minimax-m2", "MiniMaxAI/MiniMax-M2", 3072, 1536, 256, 8, 1, 1, SIG, F32, 1, 1e-20f, 1.0f, W,
     GU, LF, 256, 128, NULL, "fp32 logits and bias"},
    {"step3", "stepfun-ai/step3", 7168, 5120, 48, 3, 1, 1, SMX, NOB, 0, 0.0f, 1.0f, W, GU, LB, 512,
     384, NULL, "shared expert not modelled"},
    {"trinity-mini", "arcee-ai/Trinity-Mini", 2048, 1024, 128, 8, 1, 1, SIG, F32, 1, 0.0f, 2.826f,
     W, GU, LF, 256, 128, NULL, "rsf passed to the kernel (vLLM #43769 class); 2.826, not 2.827"},
    {"ernie-4.5-21b-a3b", "baidu/ERNIE-4.5-21B-A3B-PT", 2560, 1536, 64, 6, 1, 1, SMX, F32, 1, 0.0f,
     1.0f, W, GU, LB, 256, 128, NULL, "softmax + bias; its clamp(min=1e-12) denominator not modelled"},
    {"hunyuan-a13b", "tencent/Hunyuan-A13B-Instruct", 4096, 3072, 64, 8, 1, 1, SMX, NOB, 1, 0.0f,
     1.0f, W, GU, LB, 512, 384, NULL, "all values inferred, unverified"},
    {"olmoe-1b-7b", "allenai/OLMoE-1B-7B-0924", 2048, 1024, 64, 8, 1, 1, SMX, NOB, 0, 0.0f, 1.0f,
     W, GU, LB, 256, 128, NULL, NULL},
    {"dots-llm1", "rednote-hilab/dots.llm1.base", 4096, 1408, 128, 6, 1, 1, SIG, B16, 1, 1e-20f,
     2.5f, O, GU, LB, 512, 192, NULL, "vLLM scales routed and shared output by rsf"},
    {"llama4-scout", "meta-llama/Llama-4-Scout-17B-16E", 5120, 8192, 16, 1, 1, 1, SIG, NOB, 0, 0.0f,
     1.0f, W, GU, LB, 512, 512, "apply_router_weight_on_input", NULL},
    {"llama4-maverick", "meta-llama/Llama-4-Maverick-17B-128E", 5120, 8192, 128, 1, 1, 1, SIG, NOB,
     0, 0.0f, 1.0f, W, GU, LB, 512, 512, "apply_router_weight_on_input", NULL},
    {"gpt-oss-120b", "openai/gpt-oss-120b", 2880, 2880, 128, 4, 1, 1, SMX, NOB, 1, 0.0f, 1.0f, W, GU,
     LB, 320, 320, "clamped SwiGLU (alpha 1.702, limit 7), interleaved layout, expert biases", NULL},
    {"gpt-oss-20b", "openai/gpt-oss-20b", 2880, 2880, 32, 4, 1, 1, SMX, NOB, 1, 0.0f, 1.0f, W, GU,
     LB, 320, 320, "clamped SwiGLU (alpha 1.702, limit 7), interleaved layout, expert biases", NULL},
    {"phi-3.5-moe", "microsoft/Phi-3.5-MoE-instruct", 4096, 6400, 16, 2, 1, 1, SMX, NOB, 0, 0.0f,
     1.0f, W, GU, LB, 512, 512, "sparsemixer routing", NULL},
    {"nemotron-3-nano", "nvidia/NVIDIA-Nemotron-3-Nano-30B-A3B-BF16", 2688, 1856, 128, 6, 1, 1, SIG,
     F32, 1, 1e-20f, 2.5f, O, GU, LF, 256, 192, "non-gated squared-ReLU experts", NULL},
    {"step-3.5-flash", "stepfun-ai/Step-3.5-Flash", 4096, 1280, 288, 8, 1, 1, SIG, F32, 1, 1e-20f,
     3.0f, W, GU, LF, 256, 64, "SwigluStep activation (limit 7)", NULL},
};

const mf_model *mf_model_list(int *n) {
    *n = (int)(sizeof models / sizeof models[0]);
    return models;
}

/* Case-insensitive: the README and the model cards write DeepSeek-V3, the table deepseek-v3. */
const mf_model *mf_model_find(const char *name) {
    int n;
    const mf_model *m = mf_model_list(&n);
    for (int i = 0; i < n; i++)
        if (!strcasecmp(m[i].name, name)) return &m[i];
    return NULL;
}

void mf_model_apply(const mf_model *m, int full, mf_case *c) {
    mf_moe_params *p = &c->p;
    p->H = full ? m->H : m->H_twin;
    p->I = full ? m->I : m->I_twin;
    p->E = m->E;
    p->E_local = m->E;
    p->expert_offset = 0;
    p->top_k = m->top_k;
    p->n_group = m->n_group;
    p->topk_group = m->topk_group;
    p->group_rule = !strcmp(m->name, "deepseek-v2") ? MF_GROUP_MAX : MF_GROUP_TOP2_SUM;
    p->score = m->score;
    p->bias = m->bias;
    p->renormalize = m->renormalize;
    p->renorm_eps = m->eps;
    p->rsf = m->rsf;
    p->rsf_site = m->rsf_site;
    p->activation = MF_ACT_SILU_GLU;
    p->layout = m->layout;
    p->logits_dtype = m->logits;
}

void mf_models_print(FILE *f) {
    int n;
    const mf_model *m = mf_model_list(&n);
    fprintf(f, "%-20s %5s %5s %4s %3s %5s %-8s %-5s %2s %6s %-7s %8s  %s\n", "model", "H", "I",
            "E", "k", "groups", "score", "bias", "rn", "rsf", "at", "twin H,I", "notes");
    for (int i = 0; i < n; i++) {
        char g[16], twin[24];
        snprintf(g, sizeof g, "%d/%d", m[i].n_group, m[i].topk_group);
        snprintf(twin, sizeof twin, "%d,%d", m[i].H_twin, m[i].I_twin);
        fprintf(f, "%-20s %5d %5d %4d %3d %5s %-8s %-5s %2s %6.4g %-7s %8s  %s%s%s\n", m[i].name,
                m[i].H, m[i].I, m[i].E, m[i].top_k, g, mf_score_name(m[i].score),
                mf_bias_name(m[i].bias), m[i].renormalize ? "y" : "n", (double)m[i].rsf,
                mf_rsf_site_name(m[i].rsf_site), twin,
                m[i].unsupported ? "NOT IN CASE FORMAT v1: needs " : "",
                m[i].unsupported ? m[i].unsupported : "", m[i].note ? m[i].note : "");
    }
}
