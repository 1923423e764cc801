#!/usr/bin/env bash
# vllm_adapter.sh MOEFUZZ SOURCE_DIR: vLLM 0.33.0's fused MoE (its Triton fused_moe_kernel run
# by Triton's interpreter, its launcher, config and torch router AST-loaded from the vLLM sdist,
# its C++ ops computed in torch) through python/moefuzz/adapters/vllm_fused_moe.py:
#   1. seeds it supports pass (0 false alarms), and the seeds it cannot express are refused;
#   2. DeepSeek-V3 (EP shard too), Qwen3-30B-A3B and Kimi-Linear routing at twin sizes pass;
#   3. with VLLM_ADAPTER_BUG=drop-rsf (the routed scaling factor dropped, as vLLM PR #43769 did)
#      every case with rsf != 1 fails.
# Needs a Python with torch and triton (MOEFUZZ_TORCH_PYTHON, default python3) and vLLM 0.33.0's
# unpacked sdist (MOEFUZZ_VLLM_SRC): where one is missing it says which and exits 77 (label
# optional: CI installs neither). About 90 s on the 2-core CPU machine.
set -u
[ $# -eq 2 ] || { echo "usage: vllm_adapter.sh MOEFUZZ SOURCE_DIR"; exit 2; }
mf=$1 src=$2
py=${MOEFUZZ_TORCH_PYTHON:-python3}
missing=()
"$py" -c "import torch" 2>/dev/null || missing+=("torch (for $py; set MOEFUZZ_TORCH_PYTHON)")
"$py" -c "import triton" 2>/dev/null || missing+=("triton (for $py)")
vsrc=${MOEFUZZ_VLLM_SRC:-}
[ -n "$vsrc" ] && [ -f "$vsrc/vllm/model_executor/layers/fused_moe/fused_moe.py" ] ||
  missing+=("vLLM 0.33.0's sources (MOEFUZZ_VLLM_SRC: the unpacked sdist)")
if [ ${#missing[@]} -gt 0 ]; then
  echo "SKIP: missing $(IFS=';'; echo "${missing[*]}")"
  exit 77
fi
adapter="$py $src/python/moefuzz/adapters/vllm_fused_moe.py --vllm-src $vsrc --device cpu"
seeds=$src/corpus/seeds
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
check() { "$mf" check --no-determinism -q --timeout 300 "$@" 2>"$tmp/stderr"; }

# 1. seeds: supported ones pass, the ones vLLM's path cannot express are refused
pass_seeds="mixtral-tiny qwen3-30b-a3b-tiny deepseek-v3-rsf2.446 kimi-linear-tiny rsf-on-output
  near-ties ep-shard-offset32 tile-edges-17-129-63 bf16-logits-bf16-bias decode-t1-top1"
refused_seeds="up-gate-layout deepseek-v2-max-rule exact-ties"
files=() expect=()
for s in $pass_seeds; do files+=("$seeds/$s.txt"); done
for s in $refused_seeds; do files+=("$seeds/$s.txt"); expect+=(--expect-unsupported "$s.txt"); done
out=$(check --backend "exec:$adapter" "${expect[@]}" "${files[@]}")
code=$?
echo "$out" | tail -1
n_pass=$(wc -w <<<"$pass_seeds")
[ $code -eq 0 ] && grep -q ": $n_pass passed, 0 failed" <<<"$out" ||
  { fail "seeds (exit $code)"; echo "$out" | grep -v '^PASS' | head -20; tail -5 "$tmp/stderr"; }

# 2. model routing at twin sizes (vllm_case.sh: no shared expert)
cases=()
for spec in "deepseek-v3 5 256 128 1" "deepseek-v3 40 256 128 2 32 64" "qwen3-30b-a3b 17 256 128 3" \
            "kimi-linear 9 256 128 4"; do
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
rsf_cases=("$seeds/deepseek-v3-rsf2.446.txt" "$seeds/kimi-linear-tiny.txt" "$seeds/rsf-on-output.txt"
           "${cases[0]}" "${cases[1]}" "${cases[3]}")
out=$(VLLM_ADAPTER_BUG=drop-rsf check --backend "exec:$adapter" \
      --fail-unsupported "${rsf_cases[@]}")
code=$?
echo "$out" | tail -1
[ $code -eq 1 ] && grep -q ": 0 passed, ${#rsf_cases[@]} failed" <<<"$out" ||
  { fail "rsf dropped not caught on every case (exit $code)"; echo "$out" | head -20; }
[ $fails -eq 0 ] && echo "vllm_adapter: all checks passed"
exit $((fails > 0))
