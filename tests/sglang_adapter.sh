#!/usr/bin/env bash
# sglang_adapter.sh MOEFUZZ SOURCE_DIR: SGLang 0.5.23's bf16 Triton fused MoE (its Triton
# fused_moe_kernel, router and combine run by Triton's interpreter, their launchers, config
# choice and routers AST-loaded from the sglang wheel, its CUDA ops computed in torch) through
# python/moefuzz/adapters/sglang_fused_moe.py, under the contract sglang-0.5-triton-sm90:
#   1. seeds it supports pass (0 false alarms), and seeds it cannot express (or the adapter does
#      not map) are refused;
#   2. DeepSeek-V3 (grouped biased sigmoid, rsf 2.5 on the output), Mixtral-8x7B and
#      Qwen3-30B-A3B routing at twin sizes pass (tests/vllm_case.sh: no shared expert);
#   3. with SGLANG_ADAPTER_BUG=drop-rsf (the routed scaling factor not passed, the class of
#      vLLM PR #43769) every case with rsf != 1 fails.
# Needs a Python with torch and triton (MOEFUZZ_TORCH_PYTHON, default python3) and SGLang
# 0.5.23's unpacked wheel (MOEFUZZ_SGLANG_SRC): where one is missing it says which and exits 77
# (label optional: CI installs neither). The steps are tests/adapter_checks.sh's.
set -u
[ $# -eq 2 ] || { echo "usage: sglang_adapter.sh MOEFUZZ SOURCE_DIR"; exit 2; }
mf=$1 src=$2
py=${MOEFUZZ_TORCH_PYTHON:-python3}
source "$(dirname "$0")/adapter_checks.sh"
ssrc=${MOEFUZZ_SGLANG_SRC:-}
adapter_require_sources "$ssrc" sglang/kernels/ops/moe/fused_moe_triton_kernels.py \
  "SGLang 0.5.23's sources (MOEFUZZ_SGLANG_SRC: the unpacked wheel)"
adapter_skip_if_missing
adapter="$py $src/python/moefuzz/adapters/sglang_fused_moe.py --sglang-src $ssrc --device cpu"

adapter_seeds "$adapter" "mixtral-tiny qwen3-30b-a3b-tiny rsf-on-output near-ties
  tile-edges-17-129-63" "deepseek-v3-rsf2.446 kimi-linear-tiny ep-shard-offset32
  model-deepseek-v3 up-gate-layout"
adapter_models "$adapter" "deepseek-v3 5 256 128 1" "mixtral-8x7b 9 256 128 2" \
  "qwen3-30b-a3b 17 256 128 3"
adapter_rsf_dropped SGLANG_ADAPTER_BUG "$adapter" "$seeds/rsf-on-output.txt" "${cases[0]}"
adapter_finish sglang_adapter
