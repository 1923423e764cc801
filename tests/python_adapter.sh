#!/usr/bin/env bash
# python_adapter.sh MOEFUZZ PYTHON SOURCE_DIR SCENARIO: the example Python adapter
# (examples/python/moe_numpy.py) through both file paths, over corpus/seeds. Fails when PYTHON
# has no numpy: scripts/setup.sh installs Debian's python3-numpy, so it is no optional package.
#
#   exec            moefuzz check --backend exec:ADAPTER over the seeds: every case passes
#   export-verify   moefuzz export, the adapter over the directory, moefuzz verify: all pass
#   rsf-dropped     the adapter made to drop the routed scaling factor (MOE_NUMPY_BUG=drop-rsf)
#                   fails on every case with rsf != 1 and is attributed to rsf_dropped, through
#                   exec and through export + verify
#   crash-hang      the adapter made to crash or hang on single-token cases: reported, the case
#                   saved, the process restarted, the next case passes; exit 1
#   contracts       --mode vllm-triton / flashinfer-trtllm-bf16 pass their contracts on every
#                   seed; the same arithmetic fails the any-order contract, and the cpu kernel
#                   fails both contracts, on seeds with small hidden sizes (there a bf16
#                   rounding step is wider than the any-order radius, so rounding points show)
#   method          an adapter that declares flashinfer:DeepSeekV3 gets every case routed so
#                   (it refuses any other); --method overrides a declaration
#   weight-cache    exec protocol 3's cache=weights: over model cases with the metamorphic
#                   relations (which rerun a case's weights), the adapter completes some case
#                   files from its cache and every case passes; an adapter whose cache keeps
#                   stale weights fails; without cache=weights no case file omits its weights
set -u
mf=$1 py=$2 src=$3 scenario=$4
"$py" -c "import numpy" 2>/dev/null || {
  echo "FAIL: no numpy for $py (scripts/setup.sh installs python3-numpy; or -DMOEFUZZ_PYTHON=)"
  exit 1
}
adapter="$py $src/examples/python/moe_numpy.py"
seeds=$src/corpus/seeds
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
# the adapter speaks ABI level 2: the seeds of quantized weights (level 3), of shared experts
# (level 4), of routing variants (level 5), of pre-routed input (level 6), of expert maps (level
# 7) and of tensor-parallel shards (level 8) are refused by the level gate, and expected so
v2_expect=()
n_v2=0
for f in "$seeds"/*.txt; do
  if grep -Eq '^(weight_format = (fp8_block|mxfp4)|n_shared = [1-9]|score = none|weight_on_input = 1|preroute = (f32|bf16)|placement = map|tp_size = [1-9])' "$f"; then
    v2_expect+=(--expect-unsupported "$(basename "$f")")
    n_v2=$((n_v2 + 1))
  fi
done
n_seeds=$(($(ls "$seeds" | grep -c '\.txt$') - n_v2))
# rsf != 1 at either site; the routed scaling factor is observable on every one of them
rsf_cases="$seeds/deepseek-v3-rsf2.446.txt $seeds/kimi-linear-tiny.txt $seeds/rsf-on-output.txt"

case $scenario in
exec)
  out=$("$mf" check -q --fail-unsupported "${v2_expect[@]}" --backend "exec:$adapter" "$seeds" 2>&1) ||
    fail "exit $?"
  echo "$out" | tail -2
  grep -q "$n_seeds passed, 0 failed" <<<"$out" || fail "not every seed passed"
  ;;
export-verify)
  "$mf" export "$seeds" --out "$tmp/cases" >/dev/null || fail "export"
  t0=$(date +%s.%N)
  $adapter "$tmp/cases" || fail "adapter"
  t1=$(date +%s.%N)
  out=$("$mf" verify -q "$tmp/cases" 2>&1) || fail "verify exit $?"
  echo "$out" | tail -2
  ms=$(awk -v a="$t0" -v b="$t1" -v n="$n_seeds" 'BEGIN { printf "%.1f", (b - a) / n * 1000 }')
  echo "adapter: $ms ms per case"
  grep -q "$((n_seeds + n_v2)) cases (contract any-order): $n_seeds passed, 0 failed, $n_v2 unsupported" <<<"$out" ||
    fail "not every exported case passed"
  ;;
rsf-dropped)
  out=$(MOE_NUMPY_BUG=drop-rsf "$mf" check --backend "exec:$adapter" $rsf_cases 2>&1)
  [ $? -eq 1 ] || fail "exec: the dropped rsf was not caught"
  n=$(grep -c "suspected: routed_scaling_factor not applied" <<<"$out")
  [ "$n" -eq 3 ] || fail "exec: $n of 3 failures attributed to rsf_dropped"
  mkdir -p "$tmp/x"
  for c in $rsf_cases; do "$mf" export "$c" --out "$tmp/x" >/dev/null || fail "export $c"; done
  MOE_NUMPY_BUG=drop-rsf $adapter "$tmp/x" || fail "adapter"
  out=$("$mf" verify "$tmp/x" 2>&1)
  [ $? -eq 1 ] || fail "verify: the dropped rsf was not caught"
  n=$(grep -c "suspected: routed_scaling_factor not applied" <<<"$out")
  [ "$n" -eq 3 ] || fail "verify: $n of 3 failures attributed to rsf_dropped"
  grep "suspected" <<<"$out"
  ;;
crash-hang)
  out=$(MOE_NUMPY_BUG=crash "$mf" check -q --fail-unsupported --save-failures "$tmp/f" \
    --backend "exec:$adapter" \
    "$seeds/decode-t1-top1.txt" "$seeds/exact-ties.txt" 2>&1)
  [ $? -eq 1 ] || fail "crash: exit code"
  echo "$out" | head -3
  grep -q "^CRASH .*decode-t1-top1.txt.*signal 11" <<<"$out" || fail "crash not reported"
  grep -q "^PASS .*exact-ties.txt" <<<"$out" || fail "no restart after the crash"
  [ -f "$tmp/f/decode-t1-top1-crash.txt" ] || fail "crashing case not saved"
  out=$(MOE_NUMPY_BUG=hang "$mf" check -q --timeout 2 --save-failures "$tmp/f" \
    --backend "exec:$adapter" "$seeds/decode-t1-top1.txt" "$seeds/exact-ties.txt" 2>&1)
  [ $? -eq 1 ] || fail "hang: exit code"
  echo "$out" | head -3
  grep -q "^TIMEOUT .*decode-t1-top1.txt.*timed out after 2 s on this case" <<<"$out" ||
    fail "hang not reported"
  grep -q "^PASS .*exact-ties.txt" <<<"$out" || fail "no restart after the hang"
  [ -f "$tmp/f/decode-t1-top1-timeout.txt" ] || fail "hanging case not saved"
  ;;
contracts)
  # rounding points show on these seeds: each contract rejects arithmetic that lacks them
  picks="$seeds/exact-ties.txt $seeds/integer-exact.txt $seeds/up-gate-layout.txt"
  # the modes are the aliases of the newest named contracts; reports print the resolved name
  for mode in vllm-triton flashinfer-trtllm-bf16; do
    case $mode in
      vllm-triton) named=vllm-0.33-triton-sm90 ;;
      flashinfer-trtllm-bf16) named=flashinfer-0.7-trtllm-bf16 ;;
    esac
    out=$("$mf" check -q --fail-unsupported "${v2_expect[@]}" --backend "exec:$adapter --mode $mode" \
      "$seeds" 2>&1) ||
      fail "$mode: its own contract rejects it"
    echo "$out" | tail -1
    grep -q "(contract $named): $n_seeds passed, 0 failed" <<<"$out" || fail "$mode: summary"
    out=$("$mf" check -q --no-attribution --contract any-order \
      --backend "exec:$adapter --mode $mode" $picks 2>&1)
    [ $? -eq 1 ] || fail "$mode arithmetic passes the any-order contract on $picks"
  done
  # a rounding point is a place where the kernel may round: arithmetic without it (the cpu
  # kernel's fp32 chain) is admissible by construction
  out=$("$mf" check -q --no-attribution --contract vllm-triton --backend cpu $picks 2>&1) ||
    fail "the cpu kernel (no intermediate roundings) fails the vllm contract on $picks"
  ;;
method)
  picks="$seeds/exact-ties.txt $seeds/deepseek-v3-rsf2.446.txt $seeds/qwen3-30b-a3b-tiny.txt
    $seeds/nan-logit-row.txt $seeds/ep-shard-offset32.txt $seeds/up-gate-layout.txt"
  out=$("$mf" check -q --fail-unsupported \
    --backend "exec:$adapter --method flashinfer:DeepSeekV3" $picks 2>&1) ||
    fail "declared method: exit $?"
  echo "$out" | tail -1
  grep -q "routing method flashinfer:DeepSeekV3 (declared by the kernel)" <<<"$out" ||
    fail "the declared method is not applied"
  grep -q "6 passed, 0 failed" <<<"$out" || fail "declared method: not every case passed"
  out=$("$mf" check -q --method vllm:Renormalize \
    --backend "exec:$adapter --method flashinfer:DeepSeekV3" "$seeds/exact-ties.txt" 2>&1)
  [ $? -eq 2 ] && grep -q "not routed by flashinfer:DeepSeekV3" <<<"$out" ||
    fail "--method does not override the declaration: $out"
  ;;
weight-cache)
  export MOE_NUMPY_STATS=1
  args=(check -q --metamorphic --model qwen3-30b-a3b --cases 6)
  out=$("$mf" "${args[@]}" --backend "exec:$adapter" 2>&1) || fail "cached: exit $?"
  echo "$out" | grep -E "weight cache|^moefuzz check"
  grep -q "6 passed, 0 failed" <<<"$out" || fail "cached: not every case passed"
  hits=$(sed -n 's/.*, \([0-9]*\) of them completed from the weight cache/\1/p' <<<"$out")
  [ "${hits:-0}" -gt 0 ] || fail "no case file was completed from the cache ('${hits:-}')"
  out=$(MOE_NUMPY_BUG=stale-weights "$mf" "${args[@]}" --backend "exec:$adapter" 2>&1)
  rc=$?
  echo "$out" | grep "^moefuzz check"
  [ $rc -eq 1 ] && grep -q " 0 passed, 6 failed" <<<"$out" ||
    fail "stale cached weights: exit $rc, want every case failed"
  out=$("$mf" "${args[@]}" --backend "exec:$adapter --no-cache" 2>&1) || fail "uncached: exit $?"
  grep -q "weights_key" <<<"$out" && fail "without cache=weights, case files carry a weights_key"
  grep -q "6 passed, 0 failed" <<<"$out" || fail "uncached: not every case passed"
  ;;
*)
  echo "unknown scenario $scenario"
  exit 2
  ;;
esac
[ "$fails" -eq 0 ] && echo "python_adapter $scenario: all passed"
exit $((fails > 0))
