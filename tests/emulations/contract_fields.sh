#!/bin/sh
# contract_fields.sh MOEFUZZ FIELDS.so CORPUS: a kernel that declares its contract field by field
# through the ABI's contract extension (MF_KERNEL_EXT_CONTRACT). FIELDS.so is the vLLM 0.33
# emulation declaring vllm-0.33-triton-sm90's fields that way:
#   1. it passes corpus/seeds and corpus/regress under them, isolated and in process, and the
#      report names the contract "declared";
#   2. declaring a field tighter than its arithmetic (a rounding point it has, left out) fails;
#   3. a value outside a field's list or range is refused when moefuzz loads the kernel, with
#      the field named, isolated and in process;
#   4. the declared fields decide how each metamorphic relation runs: identity where the
#      contract gives what it needs, independent checks (and why) where a field takes it away.
set -u
M=$1 F=$2 CORPUS=$3
cases=$(ls "$CORPUS"/seeds/*.txt "$CORPUS"/regress/*.txt)
fails=0
bad() { echo "contract_fields.sh: FAIL: $*"; fails=$((fails + 1)); }

for iso in isolate no-isolate; do
  # shellcheck disable=SC2086
  o=$("$M" check -q --$iso --backend "plugin:$F" $cases 2>&1)
  r=$?
  echo "$o" | tail -1
  [ $r -eq 0 ] || { echo "$o" | grep "^FAIL" | head -3; bad "$iso: corpus exit $r"; }
  echo "$o" | tail -1 | grep -q "(contract declared): [0-9]* passed, 0 failed" ||
    bad "$iso: the summary does not name the declared contract"
done

for field in no-silu-out no-gemm1-out; do
  # shellcheck disable=SC2086
  o=$(MOEFUZZ_EMU_FIELD=$field "$M" check -q --backend "plugin:$F" $cases 2>&1)
  r=$?
  n=$(echo "$o" | grep -c "^FAIL")
  if [ $r -eq 1 ] && [ "$n" -ge 1 ]; then echo "tighter field $field: $n cases fail"; else
    bad "tighter field $field not caught (exit $r)"; fi
done

for spec in bad-sigmoid-form:sigmoid_form bad-tie-rule:tie_rule bad-tanh-rel:tanh_rel \
            bad-round-point:round_points bad-fused-block:fused-block bad-ftz:ftz \
            bad-combine-dtype:combine_dtype; do
  field=${spec%%:*} word=${spec#*:}
  for iso in isolate no-isolate; do
    o=$(MOEFUZZ_EMU_FIELD=$field "$M" check -q --$iso --backend "plugin:$F" \
        "$CORPUS/seeds/exact-ties.txt" 2>&1)
    r=$?
    if [ $r -ne 2 ] || ! echo "$o" | grep -q "$word"; then
      echo "$o" | tail -2; bad "$field ($iso): exit $r, want 2 and a message naming $word"; fi
  done
  echo "$field refused: $(echo "$o" | tail -1)"
done

g=$CORPUS/seeds/grouped-negative-bias.txt
meta() { # FIELD RELATION MODE WHY: the relation ran in MODE, saying WHY
  o=$(MOEFUZZ_EMU_FIELD=$1 "$M" check --metamorphic --backend "plugin:$F" "$g" 2>&1)
  r=$?
  if [ $r -eq 0 ] && echo "$o" | grep -Eq "^    $2 +$3 +ok .*$4"; then
    echo "field '$1': $2 $3 ($4)"; else
    echo "$o" | grep -A6 "metamorphic:"; bad "field '$1': $2 not $3 ($4), exit $r"; fi
}
meta none rsf-scaling identity "ftz = 0"
meta none bias-shift identity "weight_form plain"
meta none relabel independent "acc any_order"
meta none full-groups independent "sigmoid_form exp_div_or_tanh"
meta ftz rsf-scaling independent "ftz = 1"
meta key-minus-bias bias-shift independent "weight_form key_minus_bias"

[ $fails -eq 0 ] || exit 1
echo "contract_fields.sh: ok"
