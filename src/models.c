/* models.c: model presets (see models.h). Values from each model's published config (hf_id) and
 * the inference engines' routers; a note says where a value is inferred or not modelled. */
#include "models.h"

#include <string.h>
#include <strings.h>

static const mf_model models[] = {
    {.name = "deepseek-v3",
     .hf_id = "deepseek-ai/DeepSeek-V3",
     .H = 7168, .I = 2048, .E = 256, .top_k = 8,
     .n_group = 8, .topk_group = 4, .group_rule = MF_GROUP_TOP2_SUM,
     .score = MF_SCORE_SIGMOID, .bias = MF_BIAS_F32, .logits = MF_DTYPE_BF16,
     .renormalize = 1, .eps = 1e-20f, .rsf = 2.5f, .rsf_site = MF_RSF_OUTPUT,
     .activation = MF_ACT_SILU_GLU, .layout = MF_LAYOUT_GATE_UP,
     .H_twin = 512, .I_twin = 128,
     .n_shared = 1, .shared_I = 2048, .shared_I_twin = 128, .shared_weight = MF_SHW_INV_RSF,
     .note = "rsf applied to the output by vLLM; 1 shared expert (n_shared_experts 1 x "
             "moe_intermediate_size 2048) of net weight 1: 1/rsf before the output's rsf"},
    {.name = "deepseek-v3-fp8",
     .hf_id = "deepseek-ai/DeepSeek-V3",
     .H = 7168, .I = 2048, .E = 256, .top_k = 8,
     .n_group = 8, .topk_group = 4, .group_rule = MF_GROUP_TOP2_SUM,
     .score = MF_SCORE_SIGMOID, .bias = MF_BIAS_F32, .logits = MF_DTYPE_BF16,
     .renormalize = 1, .eps = 1e-20f, .rsf = 2.5f, .rsf_site = MF_RSF_OUTPUT,
     .activation = MF_ACT_SILU_GLU, .layout = MF_LAYOUT_GATE_UP,
     .H_twin = 512, .I_twin = 128,
     .weight_format = MF_WFMT_FP8_BLOCK, .scale_format = MF_SCALE_F32,
     .block_n = 128, .block_k = 128,
     .note = "FP8 checkpoint (README_WEIGHTS.md: quantization_config fp8 e4m3, "
             "weight_block_size [128, 128], dynamic activations, fp32 weight_scale_inv); "
             "fp32 activation scales (V3.1's ue8m0 unverified); 1 shared expert not modelled "
             "(shared experts with FP8 weights are not)"},
    {.name = "kimi-k2",
     .hf_id = "moonshotai/Kimi-K2-Instruct",
     .H = 7168, .I = 2048, .E = 384, .top_k = 8,
     .n_group = 1, .topk_group = 1, .group_rule = MF_GROUP_TOP2_SUM,
     .score = MF_SCORE_SIGMOID, .bias = MF_BIAS_F32, .logits = MF_DTYPE_BF16,
     .renormalize = 1, .eps = 1e-20f, .rsf = 2.827f, .rsf_site = MF_RSF_OUTPUT,
     .activation = MF_ACT_SILU_GLU, .layout = MF_LAYOUT_GATE_UP,
     .H_twin = 512, .I_twin = 128,
     .note = "n_group 1 still maps to FlashInfer DeepSeekV3"},
    {.name = "kimi-linear",
     .hf_id = "moonshotai/Kimi-Linear-48B-A3B-Instruct",
     .H = 2304, .I = 1024, .E = 256, .top_k = 8,
     .n_group = 1, .topk_group = 1, .group_rule = MF_GROUP_TOP2_SUM,
     .score = MF_SCORE_SIGMOID, .bias = MF_BIAS_BF16, .logits = MF_DTYPE_BF16,
     .renormalize = 1, .eps = 0.0f, .rsf = 2.446f, .rsf_site = MF_RSF_WEIGHTS,
     .activation = MF_ACT_SILU_GLU, .layout = MF_LAYOUT_GATE_UP,
     .H_twin = 256, .I_twin = 128,
     .note = "rsf passed to the kernel: the seam of vLLM #43769 (GSM8K 0.886 -> 0.378 when "
             "dropped)"},
    {.name = "glm-4.5",
     .hf_id = "zai-org/GLM-4.5",
     .H = 5120, .I = 1536, .E = 160, .top_k = 8,
     .n_group = 1, .topk_group = 1, .group_rule = MF_GROUP_TOP2_SUM,
     .score = MF_SCORE_SIGMOID, .bias = MF_BIAS_F32, .logits = MF_DTYPE_F32,
     .renormalize = 1, .eps = 1e-20f, .rsf = 2.5f, .rsf_site = MF_RSF_OUTPUT,
     .activation = MF_ACT_SILU_GLU, .layout = MF_LAYOUT_GATE_UP,
     .H_twin = 512, .I_twin = 128,
     .note = "sigmoid and bias hard-coded in the model code, fp32 router"},
    {.name = "glm-4.5-air",
     .hf_id = "zai-org/GLM-4.5-Air",
     .H = 4096, .I = 1408, .E = 128, .top_k = 8,
     .n_group = 1, .topk_group = 1, .group_rule = MF_GROUP_TOP2_SUM,
     .score = MF_SCORE_SIGMOID, .bias = MF_BIAS_F32, .logits = MF_DTYPE_F32,
     .renormalize = 1, .eps = 1e-20f, .rsf = 1.0f, .rsf_site = MF_RSF_OUTPUT,
     .activation = MF_ACT_SILU_GLU, .layout = MF_LAYOUT_GATE_UP,
     .H_twin = 512, .I_twin = 192,
     .note = "rsf 1.0: an rsf-dropping bug is invisible on this model"},
    {.name = "glm-5",
     .hf_id = "zai-org/GLM-5",
     .H = 6144, .I = 2048, .E = 256, .top_k = 8,
     .n_group = 1, .topk_group = 1, .group_rule = MF_GROUP_TOP2_SUM,
     .score = MF_SCORE_SIGMOID, .bias = MF_BIAS_F32, .logits = MF_DTYPE_F32,
     .renormalize = 1, .eps = 1e-20f, .rsf = 2.5f, .rsf_site = MF_RSF_OUTPUT,
     .activation = MF_ACT_SILU_GLU, .layout = MF_LAYOUT_GATE_UP,
     .H_twin = 512, .I_twin = 192,
     .note = "fp32 routing forced; tiny sigmoids against large biases"},
    {.name = "qwen3-30b-a3b",
     .hf_id = "Qwen/Qwen3-30B-A3B",
     .H = 2048, .I = 768, .E = 128, .top_k = 8,
     .n_group = 1, .topk_group = 1, .group_rule = MF_GROUP_TOP2_SUM,
     .score = MF_SCORE_SOFTMAX, .bias = MF_BIAS_NONE, .logits = MF_DTYPE_BF16,
     .renormalize = 1, .eps = 0.0f, .rsf = 1.0f, .rsf_site = MF_RSF_WEIGHTS,
     .activation = MF_ACT_SILU_GLU, .layout = MF_LAYOUT_GATE_UP,
     .H_twin = 256, .I_twin = 128},
    {.name = "qwen3-235b-a22b",
     .hf_id = "Qwen/Qwen3-235B-A22B",
     .H = 4096, .I = 1536, .E = 128, .top_k = 8,
     .n_group = 1, .topk_group = 1, .group_rule = MF_GROUP_TOP2_SUM,
     .score = MF_SCORE_SOFTMAX, .bias = MF_BIAS_NONE, .logits = MF_DTYPE_BF16,
     .renormalize = 1, .eps = 0.0f, .rsf = 1.0f, .rsf_site = MF_RSF_WEIGHTS,
     .activation = MF_ACT_SILU_GLU, .layout = MF_LAYOUT_GATE_UP,
     .H_twin = 512, .I_twin = 192},
    {.name = "qwen3-next-80b-a3b",
     .hf_id = "Qwen/Qwen3-Next-80B-A3B-Instruct",
     .H = 2048, .I = 512, .E = 512, .top_k = 10,
     .n_group = 1, .topk_group = 1, .group_rule = MF_GROUP_TOP2_SUM,
     .score = MF_SCORE_SOFTMAX, .bias = MF_BIAS_NONE, .logits = MF_DTYPE_BF16,
     .renormalize = 1, .eps = 0.0f, .rsf = 1.0f, .rsf_site = MF_RSF_WEIGHTS,
     .activation = MF_ACT_SILU_GLU, .layout = MF_LAYOUT_GATE_UP,
     .H_twin = 256, .I_twin = 64,
     .n_shared = 1, .shared_I = 512, .shared_I_twin = 64, .shared_weight = MF_SHW_GATE,
     .note = "1 sigmoid-gated shared expert (shared_expert_intermediate_size 512; unverified), "
             "its gate's logit a case tensor"},
    {.name = "deepseek-v2-lite",
     .hf_id = "deepseek-ai/DeepSeek-V2-Lite",
     .H = 2048, .I = 1408, .E = 64, .top_k = 6,
     .n_group = 1, .topk_group = 1, .group_rule = MF_GROUP_TOP2_SUM,
     .score = MF_SCORE_SOFTMAX, .bias = MF_BIAS_NONE, .logits = MF_DTYPE_BF16,
     .renormalize = 0, .eps = 0.0f, .rsf = 1.0f, .rsf_site = MF_RSF_WEIGHTS,
     .activation = MF_ACT_SILU_GLU, .layout = MF_LAYOUT_GATE_UP,
     .H_twin = 256, .I_twin = 192,
     .n_shared = 2, .shared_I = 1408, .shared_I_twin = 192, .shared_weight = MF_SHW_ONE,
     .note = "softmax without renormalization; 2 shared experts of 1408 (n_shared_experts 2; "
             "unverified), weight 1"},
    {.name = "deepseek-v2",
     .hf_id = "deepseek-ai/DeepSeek-V2",
     .H = 5120, .I = 1536, .E = 160, .top_k = 6,
     .n_group = 8, .topk_group = 3, .group_rule = MF_GROUP_MAX,
     .score = MF_SCORE_SOFTMAX, .bias = MF_BIAS_NONE, .logits = MF_DTYPE_BF16,
     .renormalize = 0, .eps = 0.0f, .rsf = 16.0f, .rsf_site = MF_RSF_OUTPUT,
     .activation = MF_ACT_SILU_GLU, .layout = MF_LAYOUT_GATE_UP,
     .H_twin = 512, .I_twin = 128,
     .note = "the only max-per-group model"},
    {.name = "mixtral-8x7b",
     .hf_id = "mistralai/Mixtral-8x7B-v0.1",
     .H = 4096, .I = 14336, .E = 8, .top_k = 2,
     .n_group = 1, .topk_group = 1, .group_rule = MF_GROUP_TOP2_SUM,
     .score = MF_SCORE_SOFTMAX, .bias = MF_BIAS_NONE, .logits = MF_DTYPE_BF16,
     .renormalize = 1, .eps = 0.0f, .rsf = 1.0f, .rsf_site = MF_RSF_WEIGHTS,
     .activation = MF_ACT_SILU_GLU, .layout = MF_LAYOUT_GATE_UP,
     .H_twin = 512, .I_twin = 512},
    {.name = "minimax-m2",
     .hf_id = "MiniMaxAI/MiniMax-M2",
     .H = 3072, .I = 1536, .E = 256, .top_k = 8,
     .n_group = 1, .topk_group = 1, .group_rule = MF_GROUP_TOP2_SUM,
     .score = MF_SCORE_SIGMOID, .bias = MF_BIAS_F32, .logits = MF_DTYPE_F32,
     .renormalize = 1, .eps = 1e-20f, .rsf = 1.0f, .rsf_site = MF_RSF_WEIGHTS,
     .activation = MF_ACT_SILU_GLU, .layout = MF_LAYOUT_GATE_UP,
     .H_twin = 256, .I_twin = 128,
     .note = "fp32 logits and bias"},
    {.name = "step3",
     .hf_id = "stepfun-ai/step3",
     .H = 7168, .I = 5120, .E = 48, .top_k = 3,
     .n_group = 1, .topk_group = 1, .group_rule = MF_GROUP_TOP2_SUM,
     .score = MF_SCORE_SOFTMAX, .bias = MF_BIAS_NONE, .logits = MF_DTYPE_BF16,
     .renormalize = 0, .eps = 0.0f, .rsf = 1.0f, .rsf_site = MF_RSF_WEIGHTS,
     .activation = MF_ACT_SILU_GLU, .layout = MF_LAYOUT_GATE_UP,
     .H_twin = 512, .I_twin = 384,
     .n_shared = 1, .shared_I = 5120, .shared_I_twin = 384, .shared_weight = MF_SHW_ONE,
     .note = "1 shared expert of 5120 (share_expert_dim; unverified), weight 1"},
    {.name = "trinity-mini",
     .hf_id = "arcee-ai/Trinity-Mini",
     .H = 2048, .I = 1024, .E = 128, .top_k = 8,
     .n_group = 1, .topk_group = 1, .group_rule = MF_GROUP_TOP2_SUM,
     .score = MF_SCORE_SIGMOID, .bias = MF_BIAS_F32, .logits = MF_DTYPE_F32,
     .renormalize = 1, .eps = 0.0f, .rsf = 2.826f, .rsf_site = MF_RSF_WEIGHTS,
     .activation = MF_ACT_SILU_GLU, .layout = MF_LAYOUT_GATE_UP,
     .H_twin = 256, .I_twin = 128,
     .note = "rsf passed to the kernel (vLLM #43769 class); 2.826, not 2.827"},
    {.name = "ernie-4.5-21b-a3b",
     .hf_id = "baidu/ERNIE-4.5-21B-A3B-PT",
     .H = 2560, .I = 1536, .E = 64, .top_k = 6,
     .n_group = 1, .topk_group = 1, .group_rule = MF_GROUP_TOP2_SUM,
     .score = MF_SCORE_SOFTMAX, .bias = MF_BIAS_F32, .logits = MF_DTYPE_BF16,
     .renormalize = 1, .eps = 0.0f, .rsf = 1.0f, .rsf_site = MF_RSF_WEIGHTS,
     .activation = MF_ACT_SILU_GLU, .layout = MF_LAYOUT_GATE_UP,
     .H_twin = 256, .I_twin = 128,
     .note = "softmax + bias; its clamp(min=1e-12) denominator not modelled"},
    {.name = "hunyuan-a13b",
     .hf_id = "tencent/Hunyuan-A13B-Instruct",
     .H = 4096, .I = 3072, .E = 64, .top_k = 8,
     .n_group = 1, .topk_group = 1, .group_rule = MF_GROUP_TOP2_SUM,
     .score = MF_SCORE_SOFTMAX, .bias = MF_BIAS_NONE, .logits = MF_DTYPE_BF16,
     .renormalize = 1, .eps = 0.0f, .rsf = 1.0f, .rsf_site = MF_RSF_WEIGHTS,
     .activation = MF_ACT_SILU_GLU, .layout = MF_LAYOUT_GATE_UP,
     .H_twin = 512, .I_twin = 384,
     .note = "all values inferred, unverified"},
    {.name = "olmoe-1b-7b",
     .hf_id = "allenai/OLMoE-1B-7B-0924",
     .H = 2048, .I = 1024, .E = 64, .top_k = 8,
     .n_group = 1, .topk_group = 1, .group_rule = MF_GROUP_TOP2_SUM,
     .score = MF_SCORE_SOFTMAX, .bias = MF_BIAS_NONE, .logits = MF_DTYPE_BF16,
     .renormalize = 0, .eps = 0.0f, .rsf = 1.0f, .rsf_site = MF_RSF_WEIGHTS,
     .activation = MF_ACT_SILU_GLU, .layout = MF_LAYOUT_GATE_UP,
     .H_twin = 256, .I_twin = 128},
    {.name = "dots-llm1",
     .hf_id = "rednote-hilab/dots.llm1.base",
     .H = 4096, .I = 1408, .E = 128, .top_k = 6,
     .n_group = 1, .topk_group = 1, .group_rule = MF_GROUP_TOP2_SUM,
     .score = MF_SCORE_SIGMOID, .bias = MF_BIAS_BF16, .logits = MF_DTYPE_BF16,
     .renormalize = 1, .eps = 1e-20f, .rsf = 2.5f, .rsf_site = MF_RSF_OUTPUT,
     .activation = MF_ACT_SILU_GLU, .layout = MF_LAYOUT_GATE_UP,
     .H_twin = 512, .I_twin = 192,
     .note = "vLLM scales routed and shared output by rsf"},
    {.name = "llama4-scout",
     .hf_id = "meta-llama/Llama-4-Scout-17B-16E",
     .H = 5120, .I = 8192, .E = 16, .top_k = 1,
     .n_group = 1, .topk_group = 1, .group_rule = MF_GROUP_TOP2_SUM,
     .score = MF_SCORE_SIGMOID, .bias = MF_BIAS_NONE, .logits = MF_DTYPE_BF16,
     .renormalize = 0, .eps = 0.0f, .rsf = 1.0f, .rsf_site = MF_RSF_WEIGHTS,
     .activation = MF_ACT_SILU_GLU, .layout = MF_LAYOUT_GATE_UP,
     .H_twin = 512, .I_twin = 512,
     .n_shared = 1, .shared_I = 8192, .shared_I_twin = 512, .shared_weight = MF_SHW_ONE,
     .weight_on_input = 1,
     .note = "format v2: top-1 of the logits, weight sigmoid(logit) on the expert's input "
             "(vLLM apply_router_weight_on_input); 1 shared expert of I 8192 on the unscaled "
             "input, weight 1; E 16 from third-party copies of the config (unverified), gate/up "
             "order of the checkpoint unverified"},
    {.name = "llama4-maverick",
     .hf_id = "meta-llama/Llama-4-Maverick-17B-128E",
     .H = 5120, .I = 8192, .E = 128, .top_k = 1,
     .n_group = 1, .topk_group = 1, .group_rule = MF_GROUP_TOP2_SUM,
     .score = MF_SCORE_SIGMOID, .bias = MF_BIAS_NONE, .logits = MF_DTYPE_BF16,
     .renormalize = 0, .eps = 0.0f, .rsf = 1.0f, .rsf_site = MF_RSF_WEIGHTS,
     .activation = MF_ACT_SILU_GLU, .layout = MF_LAYOUT_GATE_UP,
     .H_twin = 512, .I_twin = 512,
     .n_shared = 1, .shared_I = 8192, .shared_I_twin = 512, .shared_weight = MF_SHW_ONE,
     .weight_on_input = 1,
     .note = "format v2: top-1 of the logits, weight sigmoid(logit) on the expert's input "
             "(vLLM apply_router_weight_on_input); 1 shared expert of I 8192 on the unscaled "
             "input, weight 1; MoE on every other layer (TensorRT-LLM test config), gate/up "
             "order of the checkpoint unverified"},
    {.name = "gpt-oss-120b",
     .hf_id = "openai/gpt-oss-120b",
     .H = 2880, .I = 2880, .E = 128, .top_k = 4,
     .n_group = 1, .topk_group = 1, .group_rule = MF_GROUP_TOP2_SUM,
     .score = MF_SCORE_SOFTMAX, .bias = MF_BIAS_NONE, .logits = MF_DTYPE_BF16,
     .renormalize = 1, .eps = 0.0f, .rsf = 1.0f, .rsf_site = MF_RSF_WEIGHTS,
     .activation = MF_ACT_SWIGLU_OAI, .layout = MF_LAYOUT_INTERLEAVED,
     .expert_bias = MF_EBIAS_B13_B2, .act_alpha = 1.702f, .act_limit = 7.0f,
     .H_twin = 320, .I_twin = 320,
     .note = "format v2: SwiGLU-OAI (alpha 1.702, limit 7), interleaved, expert biases; MXFP4 "
             "weights modelled as bf16"},
    {.name = "gpt-oss-20b",
     .hf_id = "openai/gpt-oss-20b",
     .H = 2880, .I = 2880, .E = 32, .top_k = 4,
     .n_group = 1, .topk_group = 1, .group_rule = MF_GROUP_TOP2_SUM,
     .score = MF_SCORE_SOFTMAX, .bias = MF_BIAS_NONE, .logits = MF_DTYPE_BF16,
     .renormalize = 1, .eps = 0.0f, .rsf = 1.0f, .rsf_site = MF_RSF_WEIGHTS,
     .activation = MF_ACT_SWIGLU_OAI, .layout = MF_LAYOUT_INTERLEAVED,
     .expert_bias = MF_EBIAS_B13_B2, .act_alpha = 1.702f, .act_limit = 7.0f,
     .H_twin = 320, .I_twin = 320,
     .note = "format v2: SwiGLU-OAI (alpha 1.702, limit 7), interleaved, expert biases; MXFP4 "
             "weights modelled as bf16"},
    {.name = "phi-3.5-moe",
     .hf_id = "microsoft/Phi-3.5-MoE-instruct",
     .H = 4096, .I = 6400, .E = 16, .top_k = 2,
     .n_group = 1, .topk_group = 1, .group_rule = MF_GROUP_TOP2_SUM,
     .score = MF_SCORE_SOFTMAX, .bias = MF_BIAS_NONE, .logits = MF_DTYPE_BF16,
     .renormalize = 0, .eps = 0.0f, .rsf = 1.0f, .rsf_site = MF_RSF_WEIGHTS,
     .activation = MF_ACT_SILU_GLU, .layout = MF_LAYOUT_GATE_UP,
     .H_twin = 512, .I_twin = 512,
     .unsupported = "sparsemixer routing"},
    {.name = "nemotron-3-nano",
     .hf_id = "nvidia/NVIDIA-Nemotron-3-Nano-30B-A3B-BF16",
     .H = 2688, .I = 1856, .E = 128, .top_k = 6,
     .n_group = 1, .topk_group = 1, .group_rule = MF_GROUP_TOP2_SUM,
     .score = MF_SCORE_SIGMOID, .bias = MF_BIAS_F32, .logits = MF_DTYPE_F32,
     .renormalize = 1, .eps = 1e-20f, .rsf = 2.5f, .rsf_site = MF_RSF_OUTPUT,
     .activation = MF_ACT_SILU_GLU, .layout = MF_LAYOUT_GATE_UP,
     .H_twin = 256, .I_twin = 192,
     .unsupported = "non-gated squared-ReLU experts"},
    {.name = "step-3.5-flash",
     .hf_id = "stepfun-ai/Step-3.5-Flash",
     .H = 4096, .I = 1280, .E = 288, .top_k = 8,
     .n_group = 1, .topk_group = 1, .group_rule = MF_GROUP_TOP2_SUM,
     .score = MF_SCORE_SIGMOID, .bias = MF_BIAS_F32, .logits = MF_DTYPE_F32,
     .renormalize = 1, .eps = 1e-20f, .rsf = 3.0f, .rsf_site = MF_RSF_WEIGHTS,
     .activation = MF_ACT_SILU_CLAMP_AFTER, .layout = MF_LAYOUT_GATE_UP,
     .H_twin = 256, .I_twin = 64,
     .act_limit = 7.0f,
     .note = "format v2: SwigluStep as silu_clamp_after, limit 7 as vLLM's swiglustep (per-layer "
             "limits unverified)"},
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
    p->placement = MF_PLACEMENT_CONTIGUOUS; /* the model's experts, all on this rank */
    p->top_k = m->top_k;
    p->n_group = m->n_group;
    p->topk_group = m->topk_group;
    p->group_rule = m->group_rule;
    p->score = m->score;
    p->bias = m->bias;
    p->renormalize = m->renormalize;
    p->renorm_eps = m->eps;
    p->rsf = m->rsf;
    p->rsf_site = m->rsf_site;
    p->activation = m->activation;
    p->layout = m->layout;
    p->logits_dtype = m->logits;
    /* the model's routing as its reference code writes it: w / (sum + eps), NaN propagated (a
     * framework's other denominators and non-finite policies are case parameters, not the
     * model's) */
    p->renorm_denom = MF_RENORM_SUM_EPS;
    p->nonfinite = MF_NONFINITE_PROPAGATE;
    p->expert_bias = m->expert_bias;
    p->act_alpha = m->act_alpha;
    p->act_limit = m->act_limit;
    p->weight_format = m->weight_format;
    p->scale_format = m->scale_format;
    p->block_n = m->block_n;
    p->block_k = m->block_k;
    p->n_shared = m->n_shared;
    p->shared_I = m->n_shared ? (full ? m->shared_I : m->shared_I_twin) : 0;
    p->shared_weight = m->shared_weight;
    p->shared_owner = MF_SHOWN_THIS_RANK;
    p->weight_on_input = m->weight_on_input;
    p->preroute = MF_PREROUTE_NONE; /* a model's cases route themselves */
    p->tp_size = p->tp_rank = 0;       /* and hold every expert's whole I */
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
                m[i].unsupported ? "NOT IN CASE FORMAT: needs " : "",
                m[i].unsupported ? m[i].unsupported : "", m[i].note ? m[i].note : "");
    }
}
