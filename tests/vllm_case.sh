#!/usr/bin/env bash
# vllm_case.sh MODEL T H I SEED [E_LOCAL OFFSET]: prints a text case (format v1) with the routing
# of MODEL as vLLM 0.33.0 runs it and no shared expert (vLLM computes shared experts outside
# fused_experts, so its fused MoE adapter never gets them): deepseek-v3 (sigmoid, f32 bias,
# 8 groups keep 4, top-8, rsf 2.5 on the output, bf16 logits), mixtral-8x7b (softmax top-2),
# qwen3-30b-a3b (softmax top-8), kimi-linear (sigmoid, bf16 bias, rsf 2.446 in the weights);
# deepseek-v3-fp8 and deepseek-v3-fp8-ue8m0: deepseek-v3 with FP8 block-scale weights (128 x
# 128, fp32 or UE8M0 activation scales; case format v2).
# The parameters are those of `moefuzz models`; H, I and T are the caller's.
set -u
[ $# -ge 5 ] || { echo "usage: vllm_case.sh MODEL T H I SEED [E_LOCAL OFFSET]" >&2; exit 2; }
model=$1 T=$2 H=$3 I=$4 seed=$5
case $model in
deepseek-v3|deepseek-v3-fp8|deepseek-v3-fp8-ue8m0)
  E=256 k=8 score=sigmoid bias=f32 ng=8 tg=4 eps=1e-20 rsf=2.5 site=output ldt=bf16 ;;
mixtral-8x7b) E=8 k=2 score=softmax bias=none ng=1 tg=1 eps=0 rsf=1 site=weights ldt=f32 ;;
qwen3-30b-a3b) E=128 k=8 score=softmax bias=none ng=1 tg=1 eps=0 rsf=1 site=weights ldt=f32 ;;
kimi-linear) E=256 k=8 score=sigmoid bias=bf16 ng=1 tg=1 eps=1e-20 rsf=2.446 site=weights ldt=f32 ;;
*) echo "vllm_case.sh: unknown model $model" >&2; exit 2 ;;
esac
El=${6:-$E} off=${7:-0}
[[ $model == *fp8* ]] && echo "# format v2"
cat <<EOF
# $model routing at T $T, H $H, I $I (vLLM 0.33.0's fused MoE; no shared expert)
T = $T
H = $H
I = $I
E = $E
E_local = $El
expert_offset = $off
top_k = $k
score = $score
bias = $bias
n_group = $ng
topk_group = $tg
group_rule = top2_sum
renormalize = true
eps = $eps
rsf = $rsf
rsf_site = $site
activation = silu_glu
layout = gate_up
logits_dtype = $ldt
gen.x = normal seed=$((seed * 8 + 1))
gen.logits = normal seed=$((seed * 8 + 2))
gen.bias = normal seed=$((seed * 8 + 3))
gen.w13 = normal seed=$((seed * 8 + 4))
gen.w2 = normal seed=$((seed * 8 + 5))
EOF
if [[ $model == *fp8* ]]; then
  cat <<EOF
weight_format = fp8_block
scale_format = $([[ $model == *ue8m0 ]] && echo ue8m0 || echo f32)
block_n = 128
block_k = 128
gen.w13_s = normal seed=$((seed * 8 + 6))
gen.w2_s = normal seed=$((seed * 8 + 7))
EOF
fi
