#!/usr/bin/env bash
# vllm_adapter.sh MOEFUZZ SOURCE_DIR: vLLM 0.33.0's fused MoE (its Triton fused_moe_kernel run
# by Triton's interpreter, its launcher, config and torch router AST-loaded from the vLLM sdist,
# its C++ ops computed in torch) through python/moefuzz/adapters/vllm_fused_moe.py:
#   1. seeds it supports pass (0 false alarms), and the seeds it cannot express are refused;
#   2. DeepSeek-V3 (EP shard too), Qwen3-30B-A3B and Kimi-Linear routing at twin sizes pass;
#   3. with VLLM_ADAPTER_BUG=drop-rsf (the routed scaling factor dropped, as vLLM PR #43769 did)
#      every case with rsf != 1 fails;
#   4. with --fp8 (vLLM's FP8 block-scale path, contract vllm-0.33-triton-fp8-sm90) the fp8_block
#      seeds pass and the mxfp4 seed is refused, and drop-rsf fails DeepSeek-V3 FP8 with fp32
#      and with UE8M0 activation scales;
#   5. with --fp8 --served (the modular path with the fused silu_and_mul_per_block_quant,
#      contract vllm-0.33-triton-fp8-served-sm90) the fp32-scale 128 x 128 seed and cases pass,
#      UE8M0 and 32 x 32 are refused, drop-rsf fails DeepSeek-V3 FP8, and the same outputs
#      declared under the unfused path's contract fail the two cases where the fused op's codes
#      differ (the new contract is needed).
# Needs a Python with torch and triton (MOEFUZZ_TORCH_PYTHON, default python3) and vLLM 0.33.0's
# unpacked sdist (MOEFUZZ_VLLM_SRC): where one is missing it says which and exits 77 (label
# optional: CI installs neither). About 3 minutes on the 2-core CPU machine. The steps are
# tests/adapter_checks.sh's.
set -u
[ $# -eq 2 ] || { echo "usage: vllm_adapter.sh MOEFUZZ SOURCE_DIR"; exit 2; }
mf=$1 src=$2
py=${MOEFUZZ_TORCH_PYTHON:-python3}
source "$(dirname "$0")/adapter_checks.sh"
vsrc=${MOEFUZZ_VLLM_SRC:-}
adapter_require_sources "$vsrc" vllm/model_executor/layers/fused_moe/fused_moe.py \
  "vLLM 0.33.0's sources (MOEFUZZ_VLLM_SRC: the unpacked sdist)"
adapter_skip_if_missing
adapter="$py $src/python/moefuzz/adapters/vllm_fused_moe.py --vllm-src $vsrc --device cpu"

adapter_seeds "$adapter" "mixtral-tiny qwen3-30b-a3b-tiny deepseek-v3-rsf2.446 kimi-linear-tiny
  rsf-on-output near-ties ep-shard-offset32 tile-edges-17-129-63 bf16-logits-bf16-bias
  decode-t1-top1" "up-gate-layout deepseek-v2-max-rule exact-ties"
adapter_models "$adapter" "deepseek-v3 5 256 128 1" "deepseek-v3 40 256 128 2 32 64" \
  "qwen3-30b-a3b 17 256 128 3" "kimi-linear 9 256 128 4"
adapter_rsf_dropped VLLM_ADAPTER_BUG "$adapter" "$seeds/deepseek-v3-rsf2.446.txt" \
  "$seeds/kimi-linear-tiny.txt" "$seeds/rsf-on-output.txt" "${cases[0]}" "${cases[1]}" \
  "${cases[3]}"
adapter_seeds "$adapter --fp8" "fp8-ue8m0-blocks32 model-deepseek-v3-fp8" "mxfp4-rsf2.5-weights"
adapter_rsf_dropped VLLM_ADAPTER_BUG "$adapter --fp8" "$seeds/model-deepseek-v3-fp8.txt" \
  "$src/tests/emulations/cases/vllm-fp8-deepseek-v3-ue8m0.txt"
served="$adapter --fp8 --served" emu=$src/tests/emulations/cases
adapter_seeds "$served" "model-deepseek-v3-fp8" "fp8-ue8m0-blocks32 mxfp4-rsf2.5-weights"
out=$(check --backend "exec:$served" --fail-unsupported "$emu/vllm-fp8-t80-noswap.txt" \
  "$emu/vllm-fp8-served-tiny-act.txt")
code=$?
echo "$out" | tail -1
[ $code -eq 0 ] && grep -q ": 2 passed, 0 failed" <<<"$out" || fail "served cases: $(tail -1 <<<"$out")"
adapter_rsf_dropped VLLM_ADAPTER_BUG "$served" "$seeds/model-deepseek-v3-fp8.txt"
out=$(check --backend "exec:$served --cpu-contract vllm-0.33-triton-fp8-sm90" \
  "$emu/vllm-fp8-t80-noswap.txt" "$emu/vllm-fp8-served-tiny-act.txt")
code=$?
echo "$out" | tail -1
[ $code -eq 1 ] && grep -q ": 0 passed, 2 failed" <<<"$out" || fail "the unfused contract passed the served path"
adapter_finish vllm_adapter
