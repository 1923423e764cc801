#!/usr/bin/env bash
# sglang_adapter.sh MOEFUZZ SOURCE_DIR: SGLang 0.5.23's bf16 Triton fused MoE (its Triton
# fused_moe_kernel, router and combine run by Triton's interpreter, their launchers, config
# choice and routers AST-loaded from the sglang wheel, its CUDA ops computed in torch) through
# python/moefuzz/adapters/sglang_fused_moe.py, under the contract sglang-0.5-triton-sm90:
#   1. seeds it supports pass (0 false alarms), and seeds it cannot express are refused;
#   2. DeepSeek-V3 (grouped biased sigmoid, rsf 2.5 on the output), Mixtral-8x7B and
#      Qwen3-30B-A3B routing at twin sizes pass (tests/vllm_case.sh: no shared expert);
#   3. with SGLANG_ADAPTER_BUG=drop-rsf (the routed scaling factor not passed, the class of
#      vLLM PR #43769) every case with rsf != 1 fails.
# Needs a Python with torch and triton (MOEFUZZ_TORCH_PYTHON, default python3) and SGLang
# 0.5.23's unpacked wheel (MOEFUZZ_SGLANG_SRC): where one is missing it says which and exits 77
# (label optional: CI installs neither).
set -u
[ $# -eq 2 ] || { echo "usage: sglang_adapter.sh MOEFUZZ SOURCE_DIR"; exit 2; }
mf=$1 src=$2
py=${MOEFUZZ_TORCH_PYTHON:-python3}
missing=()
"$py" -c "import torch" 2>/dev/null || missing+=("torch (for $py; set MOEFUZZ_TORCH_PYTHON)")
"$py" -c "import triton" 2>/dev/null || missing+=("triton (for $py)")
ssrc=${MOEFUZZ_SGLANG_SRC:-}
[ -n "$ssrc" ] && [ -f "$ssrc/sglang/kernels/ops/moe/fused_moe_triton_kernels.py" ] ||
  missing+=("SGLang 0.5.23's sources (MOEFUZZ_SGLANG_SRC: the unpacked wheel)")
if [ ${#missing[@]} -gt 0 ]; then
  echo "SKIP: missing $(IFS=';'; echo "${missing[*]}")"
  exit 77
fi
adapter="$py $src/python/moefuzz/adapters/sglang_fused_moe.py --sglang-src $ssrc --device cpu"
seeds=$src/corpus/seeds
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
check() { "$mf" check --no-determinism -q --timeout 300 "$@" 2>"$tmp/stderr"; }

# 1. seeds: supported ones pass, the ones SGLang's path cannot express (or the adapter does not
#    map) are refused
pass_seeds="mixtral-tiny qwen3-30b-a3b-tiny rsf-on-output near-ties tile-edges-17-129-63"
refused_seeds="deepseek-v3-rsf2.446 kimi-linear-tiny ep-shard-offset32 model-deepseek-v3
  up-gate-layout"
files=() expect=()
for s in $pass_seeds; do files+=("$seeds/$s.txt"); done
for s in $refused_seeds; do files+=("$seeds/$s.txt"); expect+=(--expect-unsupported "$s.txt"); done
out=$(check --backend "exec:$adapter" "${expect[@]}" "${files[@]}")
code=$?
echo "$out" | tail -1
n_pass=$(wc -w <<<"$pass_seeds")
[ $code -eq 0 ] && grep -q ": $n_pass passed, 0 failed" <<<"$out" ||
  { fail "seeds (exit $code)"; echo "$out" | grep -v '^PASS' | head -20; tail -5 "$tmp/stderr"; }

# 2. model routing at twin sizes
cases=()
for spec in "deepseek-v3 5 256 128 1" "mixtral-8x7b 9 256 128 2" "qwen3-30b-a3b 17 256 128 3"; do
  set -- $spec
  f="$tmp/$1-$2.txt"
  "$src/tests/vllm_case.sh" "$@" >"$f" || fail "vllm_case.sh $spec"
  cases+=("$f")
done
out=$(check --backend "exec:$adapter" --fail-unsupported "${cases[@]}")
code=$?
echo "$out" | tail -1
[ $code -eq 0 ] && grep -q ": ${#cases[@]} passed, 0 failed" <<<"$out" ||
  { fail "model cases (exit $code)"; echo "$out" | grep -v '^PASS' | head -20; tail -5 "$tmp/stderr"; }

# 3. rsf dropped: every case with rsf != 1 fails
rsf_cases=("$seeds/rsf-on-output.txt" "${cases[0]}")
out=$(SGLANG_ADAPTER_BUG=drop-rsf check --backend "exec:$adapter" \
      --fail-unsupported "${rsf_cases[@]}")
code=$?
echo "$out" | tail -1
[ $code -eq 1 ] && grep -q ": 0 passed, ${#rsf_cases[@]} failed" <<<"$out" ||
  { fail "rsf dropped not caught on every case (exit $code)"; echo "$out" | head -20; }
[ $fails -eq 0 ] && echo "sglang_adapter: all checks passed"
exit $((fails > 0))
