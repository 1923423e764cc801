# shellcheck shell=bash disable=SC2154
# adapter_checks.sh: the run and summary of a framework adapter's test (vllm_adapter.sh,
# sglang_adapter.sh), sourced by them after they set mf (the moefuzz binary), src (the source
# tree) and py (the Python with torch and triton). Each step runs `moefuzz check` through the
# adapter's exec backend and counts a failure with what it printed; adapter_finish NAME exits
# with the summary.
#   adapter_require_sources DIR FILE WHAT   FILE missing under DIR (or DIR empty): WHAT is missing
#   adapter_skip_if_missing                 exit 77 naming what is missing (torch, triton, sources)
#   adapter_seeds ADAPTER "PASS" "REFUSED"  the PASS seeds pass, the REFUSED ones are unsupported
#   adapter_models ADAPTER SPEC...          vllm_case.sh SPEC cases at twin sizes pass (sets cases)
#   adapter_rsf_dropped VAR ADAPTER CASE... with VAR=drop-rsf every CASE fails

missing=()
"$py" -c "import torch" 2>/dev/null || missing+=("torch (for $py; set MOEFUZZ_TORCH_PYTHON)")
"$py" -c "import triton" 2>/dev/null || missing+=("triton (for $py)")

adapter_require_sources() {
  [ -n "$1" ] && [ -f "$1/$2" ] || missing+=("$3")
}

adapter_skip_if_missing() {
  if [ ${#missing[@]} -gt 0 ]; then
    echo "SKIP: missing $(IFS=';'; echo "${missing[*]}")"
    exit 77
  fi
  seeds=$src/corpus/seeds
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  fails=0
}

fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
check() { "$mf" check --no-determinism -q --timeout 300 "$@" 2>"$tmp/stderr"; }

# 1. seeds: supported ones pass, the ones the framework's path cannot express are refused
adapter_seeds() {
  local adapter=$1 pass_seeds=$2 refused_seeds=$3 s out code n_pass
  local files=() expect=()
  for s in $pass_seeds; do files+=("$seeds/$s.txt"); done
  for s in $refused_seeds; do files+=("$seeds/$s.txt"); expect+=(--expect-unsupported "$s.txt"); done
  out=$(check --backend "exec:$adapter" "${expect[@]}" "${files[@]}")
  code=$?
  echo "$out" | tail -1
  n_pass=$(wc -w <<<"$pass_seeds")
  [ $code -eq 0 ] && grep -q ": $n_pass passed, 0 failed" <<<"$out" ||
    { fail "seeds (exit $code)"; echo "$out" | grep -v '^PASS' | head -20; tail -5 "$tmp/stderr"; }
}

# 2. model routing at twin sizes (vllm_case.sh: no shared expert); the case files in cases
adapter_models() {
  local adapter=$1 spec f out code
  shift
  cases=()
  for spec in "$@"; do
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
}

# 3. rsf dropped (the adapter's VAR=drop-rsf): every case with rsf != 1 fails
adapter_rsf_dropped() {
  local adapter=$2 out code
  local -x "$1=drop-rsf"
  shift 2
  out=$(check --backend "exec:$adapter" --fail-unsupported "$@")
  code=$?
  echo "$out" | tail -1
  [ $code -eq 1 ] && grep -q ": 0 passed, $# failed" <<<"$out" ||
    { fail "rsf dropped not caught on every case (exit $code)"; echo "$out" | head -20; }
}

adapter_finish() {
  [ $fails -eq 0 ] && echo "$1: all checks passed"
  exit $((fails > 0))
}
