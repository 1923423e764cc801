#!/usr/bin/env bash
# calibrate.sh SCENARIO ARGS...: `moefuzz calibrate` recovers the contract of a kernel
# (docs/calibrate.md). Each scenario compares the `contract.FIELD = VALUE` lines it prints with
# what the kernel's code computes.
#
#   cpu MOEFUZZ MOEFUZZ_TEST
#       the CPU kernel comes out cpu-scalar, equal field by field (validation: the corpus and 5
#       random cases per model preset); the CPU mutant bf16-combine is not certified cpu-scalar
#       and gets a rounding; bad usage exits 2 with a message
#   example MOEFUZZ PLUGIN
#       examples/plugin: four interleaved accumulators, libm exp and IEEE division, fp32 combine,
#       deterministic: cpu-scalar's fields but gemm = ordered_blocks B=16 F=25 (no probe tells
#       its four lanes from that class: docs/calibrate.md; seq_fp32 and fused_block are refuted)
#   numpy MOEFUZZ PYTHON SOURCE_DIR
#       the numpy adapter: cpu-scalar's fields but gemm, which depends on the BLAS under numpy
#   emu MOEFUZZ NAME PLUGIN
#       an emulation of tests/emulations: the nearest built-in that passes every case is its
#       named contract, differing in exactly the fields listed below (with why); a mutation
#       that adds one bf16 rounding (vLLM: the routing weights) or removes one (FlashInfer: the
#       bias's) comes out with that rounding point set or cleared, the other fields unchanged
#       (SGLang: the routing weights rounded to bf16, as vLLM's)
set -u
scenario=$1
shift
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# cpu-scalar's fields as calibrate prints them (reference/contract.c: mf_contract_cpu_scalar)
cat >"$tmp/cpu-scalar" <<'EOF'
contract.gemm = seq_fp32
contract.tie_rule = lower_index
contract.deterministic = yes
contract.ftz = off
contract.round.gemm1_out = off
contract.round.silu_out = off
contract.round.act_out = on (required)
contract.combine = fp32
contract.round.rsf_out = off
contract.round.weighted = off
contract.round.gemm2_out = off
contract.round.weights = off
contract.round.bias = off
contract.exp = accurate (2 ulp)
contract.div = ieee
contract.router = as the contract's exp and div
contract.sigmoid = exp_div
contract.softmax_recip = e / Z
contract.weight_form = plain
EOF

# calibrate OUT ARGS...: runs it, keeps the output, fails on a nonzero exit
calibrate() {
  local out=$1
  shift
  "$@" >"$out" 2>&1 || fail "exit $? from: $*"
  sed -n 's/^    \(contract\..*\)/\1/p' "$out" >"$out.fields"
  grep -E "^(probes|contract|nearest|the kernel failed)" "$out"
}

# expect_fields OUT EXPECTED_FILE: the printed fields equal the expected ones
expect_fields() {
  diff <(sort "$2") <(sort "$1.fields") >"$tmp/diff" ||
    { fail "fields of $1 differ (expected <, got >):"; cat "$tmp/diff"; }
}

# with_field FILE FIELD VALUE: FILE with that field's value replaced, to stdout
with_field() { sed "s/^contract\.$2 = .*/contract.$2 = $3/" "$1"; }

case $scenario in
cpu)
  mf=$1 mft=$2
  calibrate "$tmp/cpu" "$mf" calibrate -q --random 5 --backend cpu
  grep -q "^contract: cpu-scalar (built-in, equal field by field)" "$tmp/cpu" ||
    fail "the CPU kernel is not recovered as cpu-scalar"
  grep -Eq "validation: [0-9]{3,} cases run" "$tmp/cpu" || fail "no validation set of 100+ cases"
  expect_fields "$tmp/cpu" "$tmp/cpu-scalar"
  # one extra rounding, the combine accumulated in bf16 (kernels/mutants.h): not certified as
  # cpu-scalar, and charged to a rounding; silu's bound covers a bf16 combine, and the search
  # keeps silu (docs/calibrate.md, "What the probes cannot tell apart")
  calibrate "$tmp/mut" "$mft" calibrate -q --random 2 --backend cpu-mutant:bf16-combine
  grep -q "^contract: cpu-scalar" "$tmp/mut" && fail "the bf16-combine mutant is certified cpu-scalar"
  grep -Eq "^contract\.(round\.silu_out = on|combine = bf16)$" "$tmp/mut.fields" ||
    fail "the bf16-combine mutant gets no rounding: $(tr '\n' ' ' <"$tmp/mut.fields")"
  # bad usage: a message and exit 2
  for args in "" "--backend nosuch" "--backend cpu extra" "--backend cpu --random x" \
    "--backend cpu --corpus /nonexistent/dir"; do
    # shellcheck disable=SC2086
    "$mf" calibrate -q $args >"$tmp/bad" 2>&1
    rc=$?
    [ $rc -eq 2 ] || fail "moefuzz calibrate $args: exit $rc, want 2"
    grep -q "moefuzz calibrate" "$tmp/bad" || fail "moefuzz calibrate $args: no message"
  done
  ;;
example)
  mf=$1 plugin=$2
  calibrate "$tmp/ex" "$mf" calibrate -q --random 2 --backend "plugin:$plugin"
  with_field "$tmp/cpu-scalar" gemm "ordered_blocks B=16 F=25" >"$tmp/want"
  expect_fields "$tmp/ex" "$tmp/want"
  ;;
numpy)
  mf=$1 py=$2 src=$3
  "$py" -c "import numpy" 2>/dev/null || {
    echo "FAIL: no numpy for $py (scripts/setup.sh installs python3-numpy)"
    exit 1
  }
  calibrate "$tmp/np" "$mf" calibrate -q --random 1 \
    --backend "exec:$py $src/examples/python/moe_numpy.py"
  grep -v '^contract\.gemm = ' "$tmp/cpu-scalar" >"$tmp/want"
  grep -v '^contract\.gemm = ' "$tmp/np.fields" >"$tmp/np.rest"
  diff "$tmp/want" "$tmp/np.rest" || fail "numpy adapter: fields other than gemm differ"
  grep -q '^contract\.gemm = ' "$tmp/np.fields" || fail "numpy adapter: no gemm field"
  ;;
emu)
  mf=$1 name=$2 plugin=$3
  # The fields where the calibrated contract of the emulation differs from its named contract
  # (docs/calibrate.md, "What the probes cannot tell apart"):
  case $name in
  vllm_033_triton_sm90)
    named=vllm-0.33-triton-sm90
    # deterministic: the C emulation is, vLLM on the GPU is not declared so; the output-site
    # rsf is rounded too, but the hull of the optional silu rounding's alternatives covers its
    # effect; the router's __expf and the reciprocal softmax stay within the accurate bounds and
    # the tanh form's absolute one on these cases
    # gemm: the emulation's measured wgmma chain passes every probe and validation case under
    # the sequential fp32 chain's bound too, a tighter class than its contract's fused_block;
    # round.rsf_out is found when gemm is tightened past any_order (docs/calibrate.md)
    diff_fields="gemm deterministic router sigmoid softmax_recip"
    mutation=bf16-weights mutated_field=round.weights mutated_value=on ;;
  flashinfer_07_trtllm_bf16)
    named=flashinfer-0.7-trtllm-bf16
    # deterministic in C; flushed scores give weights of ~1e-22 next to eps 1e-20 either way;
    # a bf16 combine explains what the GEMM2 rounding and the fast exp explain together (probe
    # ties-grouped); fast-math division and rcp sit behind bf16 roundings (activation, weights)
    # gemm: the emulation accumulates in K order (a tighter class than the any order the
    # contract assumes for trtllm-gen, which runs only on SM100)
    diff_fields="gemm deterministic ftz combine round.gemm2_out exp div router softmax_recip"
    mutation=bias-unrounded mutated_field=round.bias mutated_value=off ;;
  sglang_05_triton_sm90)
    named=sglang-0.5-triton-sm90
    # gemm: the measured wgmma chain passes under the sequential fp32 bound (as vLLM's);
    # deterministic in C (the contract does not claim it for the card); ftz: a flushed subnormal
    # decides no probe's output; exp, div, router: __expf, __fdividef and Triton's ex2.approx
    # and div.full stay within the accurate bounds on these cases (the activation's behind its
    # bf16 rounding). GEMM1 output and w * y rounded, fp32 combine: recovered as SGLang's code
    # has them (the plain fp32 alternative of reference/forward.c lets the search keep both)
    diff_fields="gemm deterministic ftz exp div router"
    mutation=bf16-weights mutated_field=round.weights mutated_value=on ;;
  *) echo "FAIL: unknown emulation $name"; exit 1 ;;
  esac
  calibrate "$tmp/emu" "$mf" calibrate -q --random 2 --backend "plugin:$plugin"
  line=$(grep "^nearest built-in that passes every case run: " "$tmp/emu")
  [[ $line == *": $named; it differs in"* ]] || fail "nearest built-in is not $named: $line"
  got=""
  for f in $(sed 's/ = .*//; s/^contract\.//' "$tmp/cpu-scalar"); do
    [[ $line == *" $f ("* ]] && got="$got $f"
  done
  got=$(xargs <<<"$got")
  [ "$got" = "$diff_fields" ] || fail "differs from $named in '$got', want '$diff_fields'"
  calibrate "$tmp/mut" env MOEFUZZ_EMU_MUTATION=$mutation "$mf" calibrate -q --random 2 \
    --backend "plugin:$plugin"
  grep -q "^contract\.$mutated_field = $mutated_value$" "$tmp/mut.fields" ||
    fail "mutation $mutation: $mutated_field not recovered: $(grep "$mutated_field" "$tmp/mut.fields")"
  # the rest as the unmutated emulation, but for the field the mutation changes
  grep -v "^contract\.$mutated_field = " "$tmp/emu.fields" >"$tmp/a"
  grep -v "^contract\.$mutated_field = " "$tmp/mut.fields" >"$tmp/b"
  diff "$tmp/a" "$tmp/b" || fail "mutation $mutation changed other fields"
  ;;
*)
  echo "FAIL: unknown scenario $scenario"
  exit 1
  ;;
esac
[ $fails -eq 0 ] && echo "PASS" || echo "$fails failure(s)"
[ $fails -eq 0 ]
