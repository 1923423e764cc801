#!/usr/bin/env bash
# vllm_silu_optional.sh MOEFUZZ_TEST CASE SEEDS: under vllm-0.33-triton-sm90, whose silu
# rounding is optional (docs/error-model.md, "Optional rounding points"), the CPU kernel (which
# rounds neither silu nor any other intermediate but the activation) passes CASE and every seed,
# and the CPU kernel with rsf dropped fails CASE (rsf 1.1, I 2048: the per-activation widening
# this replaced admitted it).
set -u
[ $# -eq 3 ] || { echo "usage: vllm_silu_optional.sh MOEFUZZ_TEST CASE SEEDS"; exit 2; }
mf=$1 case=$2 seeds=$3
fails=0
run() { "$mf" check --contract vllm-0.33-triton-sm90 --no-determinism -q --no-attribution "$@" 2>&1; }
# the seeds this contract computes: its FP8 block-scale path is refused in the reference (an
# error, exit 2), not a verdict on the kernel
mapfile -t files < <(grep -L "^weight_format = fp8_block" "$seeds"/*.txt)
out=$(run --backend cpu "$case" "${files[@]}"); code=$?
echo "$out" | tail -1
[ $code -eq 0 ] && grep -qE " 0 failed, 0 unsupported" <<<"$out" ||
  { echo "FAIL: the CPU kernel is rejected under vllm-0.33-triton-sm90 (exit $code)"; fails=1; }
out=$(run --backend cpu-mutant:rsf-dropped "$case"); code=$?
echo "$out" | tail -1
[ $code -eq 1 ] && grep -qE ": 0 passed, 1 failed" <<<"$out" ||
  { echo "FAIL: rsf 1.1 dropped not caught under vllm-0.33-triton-sm90 (exit $code)"; fails=1; }
exit "$fails"
