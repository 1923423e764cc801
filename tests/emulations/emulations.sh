#!/bin/sh
# emulations.sh MOEFUZZ NAME NEW.so OLD.so CORPUS: an emulation of a named contract (NEW.so,
# declaring the contract; OLD.so, the same code declaring the contract's previous definition
# field by field) against the corpus:
#   1. NEW.so passes every case of corpus/seeds and corpus/regress it supports; the cases it
#      refuses are named below with the reason (a case refused and not named fails, and so does
#      a named one it runs);
#   2. each mutation that adds error or changes what is computed (MOEFUZZ_EMU_MUTATION) is
#      caught on at least one case, and rsf-dropped is attributed to the rsf;
#   3. a mutation that only removes a rounding passes (admissible by construction);
#   4. OLD.so fails on at least one case that NEW.so passes: the false alarms of the previous
#      definition (issue 19), gone under the named contract (for a contract that had no previous
#      definition, old_alarms=reported: OLD.so declares the nearest other contract and its
#      result is printed, not required);
#   5. where a model preset exercises the emulated path (model=), NEW.so passes 10 random cases
#      of it (a smoke of random inputs; libFuzzer campaigns are not part of this test);
#   6. each case of differs= (the kernel computes another function than the case's semantics
#      there, a finding the emulation must keep) fails on the routing.
set -u
M=$1 NAME=$2 NEW=$3 OLD=$4 CORPUS=$5
cases=$(ls "$CORPUS"/seeds/*.txt "$CORPUS"/regress/*.txt)
fails=0
model=""
note() { echo "emulations.sh $NAME: $*"; }
bad() { note "FAIL: $*"; fails=$((fails + 1)); }
# the file names of the corpus's cases not in the list $1
all_but() {
  for f in $cases; do
    b=$(basename "$f")
    echo " $1 " | tr -s ' \n' '  ' | grep -q " $b " || echo "$b"
  done
}

case $NAME in
vllm_033_triton_sm90)
  # the torch grouped_topk path (grouped without a bias, softmax or max rule; an rsf without
  # bias or groups) is vllm_033_triton_sm90_torch_router's; quantized weights are not emulated
  unsupported="deepseek-v2-max-rule.txt exact-ties.txt heavy-sparse-data.txt integer-exact.txt
    model-deepseek-v2.txt sigmoid-underflow-eps.txt metamorphic-rsf-scaling-subnormal-weights.txt
    reference-combine-overflow-before-output-rsf.txt reference-gemm2-overflow-zero-activation.txt
    reference-nan-radius-huge-integer-weights.txt reference-nan-radius-overflowing-activation.txt
    model-deepseek-v3-fp8.txt fp8-ue8m0-blocks32.txt mxfp4-rsf2.5-weights.txt"
  caught="rsf-dropped tanh-approx bf16-weights eps-dropped"
  # moe_sum in bf16 (vLLM issue 15045) stays inside the contract's bound at the corpus's sizes
  # (top-k <= 8 bf16 adds): reported only
  reported="bf16-combine"
  admissible="silu-unrounded"
  # eps-dropped shows only where every selected score underflows: a grouped case with the
  # logits far below 0 (tests/emulations/cases/)
  extra="$(dirname "$0")/cases/grouped-underflow-eps.txt"
  ;;
flashinfer_07_trtllm_bf16)
  # DeepSeekV3 routing only: sigmoid with a bias, renormalized by sum + 1e-20, rsf in the weights
  supported="bf16-logits-bf16-bias.txt deepseek-v3-rsf2.446.txt ep-shard-offset32.txt
    glm-large-positive-bias.txt grouped-negative-bias.txt kimi-linear-tiny.txt minimax-m2-tiny.txt
    model-minimax-m2.txt nan-logit-row.txt sigmoid-inf-logits-max-eps.txt"
  unsupported=$(all_but "$supported")
  caught="rsf-dropped bf16-combine eps-dropped bf16-exp"
  reported=""
  admissible="bias-unrounded"
  extra="$(dirname "$0")/cases/grouped-underflow-eps.txt"
  ;;
vllm_033_triton_sm90_torch_router)
  # the torch grouped_topk path: no bias, grouped by the max or an rsf in the weights without
  # groups, no eps (OLD.so declares vllm-0.33-triton-sm90, which does not cover the path)
  supported="deepseek-v2-max-rule.txt model-deepseek-v2.txt"
  unsupported=$(all_but "$supported")
  caught="rsf-dropped renorm-dropped softmax-for-sigmoid"
  # truncating each bf16 rounding adds about one rounding's error: inside the radii of the
  # four roundings of a weight, not expected to be caught
  reported="weights-truncated"
  admissible="weights-unrounded"
  extra=$(ls "$(dirname "$0")"/cases/torch-*.txt)
  model=deepseek-v2
  ;;
sglang_05_triton_sm90)
  # SGLang's two paths of the contract: softmax top-k without bias or groups, grouped biased
  # sigmoid (top-2 sum); rsf on the output only; T <= 32 where the combine is the Triton one
  supported="mixtral-tiny.txt model-hunyuan-a13b.txt model-mixtral-8x7b.txt
    model-olmoe-1b-7b.txt model-qwen3-235b-a22b.txt model-qwen3-30b-a3b.txt
    nan-logit-row-softmax.txt near-ties.txt qwen3-30b-a3b-tiny.txt rsf-on-output.txt
    tile-edges-17-129-63.txt"
  unsupported=$(all_but "$supported")
  # eps-dropped: the router's sum > 0 ? sum : 1 guard dropped (SGLang adds no eps)
  caught="rsf-dropped bf16-combine eps-dropped tanh-approx router-bf16-exp bf16-exp bf16-weights"
  # w * y kept in fp32: a required rounding point left out, which the reference does not admit
  # (only an optional point is computed both ways; this contract has none)
  reported="weighted-unrounded"
  # the router's division rounded once, the activation's flush to zero left out: error removed
  admissible="div-rn no-ftz"
  extra=$(ls "$(dirname "$0")"/cases/sglang-*.txt)
  # OLD.so declares vllm-0.33-triton-sm90, whose Triton GEMM loop SGLang's shares; SGLang's
  # contract is the first for this kernel
  old_alarms=reported
  model=qwen3-30b-a3b
  # SGLang's router: a repeated top key leaves the group score; sum > 0 ? sum : 1, not + eps
  differs=$(ls "$(dirname "$0")"/cases/semantics-sglang-*.txt)
  ;;
hopper_tc_fp8)
  # fp8_block cases only (level 3); OLD.so declares cpu-scalar, the only contract that covered
  # fp8_block before. 12 fraction bits instead of 13 shows on the case of cases/ whose GEMM2 k32
  # steps truncate; a 13-bit step result (not 14) adds about one truncation of the step's sum
  # per step, below the outputs' bf16 rounding on these cases: reported
  # (it refuses every other case by design: the corpus's fp8_block cases are its whole corpus)
  level=3
  cases=$(grep -l '^weight_format = fp8_block' $cases)
  unsupported=""
  caught="rsf-dropped fp8-ue8m0-not-rounded f12"
  reported="p13"
  admissible=""
  extra="$(dirname "$0")/cases/fp8-tc-ties-heavy.txt"
  ;;
vllm_033_triton_fp8_sm90)
  # vLLM's FP8 block-scale path (level 3): the corpus's fp8_block cases; with EMU_FULL=1 (label
  # emu-full) also a T 80 case past the swap-AB kernel, DeepSeek-V3 FP8 with UE8M0 scales,
  # fp8-tc-ties-heavy and 10 random deepseek-v3-fp8 cases. OLD.so declares hopper-tc-fp8,
  # moefuzz's own FP8 recipe (no bf16 roundings of GEMM1 and silu, y / s). Dividing by the
  # scale where vLLM multiplies by its reciprocal changes a code now and then, below the
  # outputs' radii on these cases: reported
  level=3
  cases=$(grep -l '^weight_format = fp8_block' $cases)
  unsupported=""
  caught="rsf-dropped fp8-w-scale-dropped fp8-a-scale-dropped fp8-w-scale-transposed
    fp8-ue8m0-rounded-down fp8-ue8m0-not-rounded"
  reported="fp8-quant-div"
  admissible="fp8-fma fp8-no-swap"
  extra=""
  if [ "${EMU_FULL:-0}" = 1 ]; then
    extra=$(ls "$(dirname "$0")"/cases/vllm-fp8-*.txt "$(dirname "$0")"/cases/fp8-tc-ties-heavy.txt)
    model=deepseek-v3-fp8
  fi
  ;;
vllm_033_triton_fp8_served_sm90)
  # vLLM's modular path with the fused silu_and_mul_per_block_quant (level 3): fp32 scales and
  # 128 x 128 blocks only (UE8M0 and other blocks take the unfused path: refused). OLD.so
  # declares vllm-0.33-triton-fp8-sm90 (bf16 silu and activation, y fl(1 / s), no scale floor):
  # its alarms show that the new fields are needed. The floor shows only where a whole group's
  # |silu(g) u| is below 2^-9 (cases/vllm-fp8-served-tiny-act.txt); y fl(1 / s) for y / s moves
  # a code only at an e4m3 midpoint (test_fp8: 0 of 2000 random groups, 1556 of 2000 aimed at e4m3 midpoints): reported. With EMU_FULL=1
  # also 10 random deepseek-v3-fp8 cases (about 5 s each)
  level=3
  cases=$(grep -l '^weight_format = fp8_block' $cases)
  unsupported="fp8-ue8m0-blocks32.txt"
  caught="rsf-dropped served-bf16-product served-no-floor"
  reported="served-quant-recip"
  admissible=""
  extra="$(dirname "$0")/cases/vllm-fp8-t80-noswap.txt $(dirname "$0")/cases/vllm-fp8-served-tiny-act.txt"
  [ "${EMU_FULL:-0}" = 1 ] && model=deepseek-v3-fp8
  ;;
*) echo "emulations.sh: unknown emulation $NAME" >&2; exit 2 ;;
esac

# the emulations are of level 1 (unless level=3 above): the cases of case format v2 (first line
# "# format v2") are refused by the level gate
[ "${level:-1}" = 3 ] || for f in $cases; do
  b=$(basename "$f")
  if head -n 1 "$f" | grep -q '^# format v2' && ! echo " $unsupported " | tr -s ' \n' '  ' |
    grep -q " $b "; then unsupported="$unsupported $b"; fi
done
exp_args=""
for u in $unsupported; do exp_args="$exp_args --expect-unsupported $u"; done

# 1. the corpus under the named contract (and the case of eps)
# shellcheck disable=SC2086
out=$("$M" check -q --backend "plugin:$NEW" $exp_args $cases $extra 2>&1)
rc=$?
echo "$out" | tail -1
[ $rc -eq 0 ] || { echo "$out" | grep -E "^(FAIL|CRASH|ERROR|UNSUPPORTED)" | head; bad "corpus exit $rc"; }

# 2. mutations caught, 3. removals admitted: on the cases NEW.so runs (those of supported=,
# where the emulation names them: refused cases cost time and cannot fail)
mcases=$cases margs=$exp_args
if [ -n "${supported:-}" ]; then
  mcases="" margs=""
  for f in $cases; do
    echo " $supported " | tr -s ' \n' '  ' | grep -q " $(basename "$f") " && mcases="$mcases $f"
  done
fi
for mut in $caught; do
  # shellcheck disable=SC2086
  o=$(MOEFUZZ_EMU_MUTATION=$mut "$M" check -q --backend "plugin:$NEW" $margs $mcases $extra 2>&1)
  r=$?
  n=$(echo "$o" | grep -c "^FAIL")
  if [ $r -ne 1 ] || [ "$n" -lt 1 ]; then bad "mutation $mut not caught (exit $r)"; else
    note "mutation $mut caught on $n cases"; fi
  if [ "$mut" = rsf-dropped ] && ! echo "$o" | grep -q "suspected: routed_scaling_factor not applied"; then
    bad "rsf-dropped not attributed to the rsf"; fi
done
for mut in $reported; do
  # shellcheck disable=SC2086
  n=$(MOEFUZZ_EMU_MUTATION=$mut "$M" check -q --backend "plugin:$NEW" $margs $mcases $extra 2>&1 |
      grep -c "^FAIL")
  note "mutation $mut (power, not required): caught on $n cases"
done
for mut in $admissible; do
  # shellcheck disable=SC2086
  o=$(MOEFUZZ_EMU_MUTATION=$mut "$M" check -q --backend "plugin:$NEW" $margs $mcases $extra 2>&1)
  r=$?
  [ $r -eq 0 ] && note "removal $mut admitted" || bad "removal $mut rejected (exit $r)"
done

# 4. the previous definition's false alarms
# shellcheck disable=SC2086
o=$("$M" check -q --backend "plugin:$OLD" $exp_args $cases $extra 2>&1)
n=$(echo "$o" | grep -c "^FAIL")
if [ "${old_alarms:-required}" = reported ]; then
  note "nearest other contract (power, not required): $(echo "$o" | grep "^moefuzz check:" |
    sed 's/.*(contract/(contract/')"
elif [ "$n" -lt 1 ]; then bad "the old definition raised no false alarm"; else
  note "old definition: $n false alarms:"; echo "$o" | grep "^FAIL" | sed 's/ (.*//'; fi

# 5. random cases of a model that takes the emulated path
if [ -n "$model" ]; then
  o=$("$M" check -q --model "$model" --cases 10 --backend "plugin:$NEW" 2>&1)
  r=$?
  echo "$o" | tail -1
  [ $r -eq 0 ] || { echo "$o" | grep "^FAIL" | head -3; bad "$model random cases: exit $r"; }
fi

# 6. the kernel's own semantics, where they differ from the case's
for f in ${differs:-}; do
  o=$("$M" check -q --backend "plugin:$NEW" "$f" 2>&1)
  r=$?
  if [ $r -eq 1 ] && echo "$o" | grep -Eq "^  routing-(ids|weights) "; then
    note "semantics differ on $(basename "$f"): $(echo "$o" | grep -E "^  routing-" | head -1 |
      cut -c1-120)"
  else
    echo "$o" | tail -3; bad "$(basename "$f"): exit $r, want a routing failure"
  fi
done

[ $fails -eq 0 ] || exit 1
note "ok"
