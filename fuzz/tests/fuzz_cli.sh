#!/usr/bin/env bash
# fuzz_cli.sh MODE BIN_DIR SOURCE_DIR WORK: the fuzz commands' promises, one MODE per ctest entry,
# each a few seconds. BIN_DIR holds moefuzz and, in fuzz builds, fuzz_moe; fuzz/ under it the
# replay binaries.
#   replay      fuzz_moe_replay: a .txt that does not parse is exit 2 with its message; the summary
#               counts what ran; a printable raw input runs as raw bytes
#   exit-codes  `moefuzz fuzz` fails (non-zero) when the target checked nothing or exited non-zero
#               without an artifact, and passes only a campaign that checked inputs
set -u
mode=$1 bin=$2 src=$3 work=$4/$1
export MOEFUZZ_SOURCE_DIR=$src
mf=$bin/moefuzz
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
# run NAME WANT_EXIT CMD...: runs CMD, output to $work/NAME.out, checks the exit code
run() {
  local name=$1 want=$2
  shift 2
  "$@" >"$work/$name.out" 2>&1
  local got=$?
  [ "$got" -eq "$want" ] || { fail "$name: exit $got, want $want"; tail -15 "$work/$name.out"; }
}
has() { grep -q -- "$2" "$work/$1.out" || { fail "$1: no '$2' in the output"; tail -15 "$work/$1.out"; }; }
# text_case N: a complete text case (small, fixed) decoded from fixed raw bytes
text_case() {
  printf '\001\007\063\220\020\042\%03o' "$1" >"$work/raw-$1"
  "$mf" decode --raw "$work/raw-$1"
}
rm -rf "$work"
mkdir -p "$work"

case $mode in
replay)
  printf 'T = 4\nthis is not a key\n' >"$work/broken.txt"
  run broken 2 "$bin/fuzz/fuzz_moe_replay" "$work/broken.txt"
  has broken "broken.txt: line 2"
  run broken_inputs 2 "$bin/fuzz/fuzz_inputs_replay" "$work/broken.txt"
  mkdir "$work/empty"
  run empty 2 "$bin/fuzz/fuzz_moe_replay" "$work/empty"
  # printable bytes without the .txt name are a fuzzer input: run raw, never parsed as text
  printf 'T = 4\nbogus\n' >"$work/crash-printable"
  text_case 1 >"$work/case1.txt" && text_case 2 >"$work/case2.txt" || fail "decode --raw"
  run mixed 0 "$bin/fuzz/fuzz_moe_replay" "$work/crash-printable" "$work/case1.txt" \
    "$work/case2.txt"
  has mixed "crash-printable (raw)"
  has mixed "replayed 3 inputs (2 text, 0 binary, 1 raw), none failed"
  has mixed "fuzz_moe: 3 inputs run on backend cpu (contract cpu-scalar): 3 passed, 0 not checked"
  # an input the kernel cannot run is not a pass
  MOEFUZZ_BACKEND=nonexistent-backend run nobackend 2 "$bin/fuzz/fuzz_moe_replay" "$work/case1.txt"
  has nobackend "unknown backend"
  ;;
exit-codes)
  # a "target" that runs nothing and exits 0, and one that exits 1 without an artifact
  run true_target 2 "$mf" fuzz --runs 10 --workdir "$work/w1" --target /bin/true
  has true_target "no input was checked"
  run false_target 2 "$mf" fuzz --runs 10 --workdir "$work/w2" --target /bin/false
  has false_target "exited with 1 without leaving an artifact"
  # every input over the work budget: nothing checked
  MOEFUZZ_MAX_WORK=1 run all_skipped 2 "$mf" fuzz --runs 20 --seed 1 --workdir "$work/w3"
  has all_skipped "no input was checked"
  # a real campaign passes and says what it checked
  run clean 0 "$mf" fuzz --runs 60 --seed 1 --workdir "$work/w4"
  has clean "^execs *60 "
  has clean "^failures *none"
  ;;
*)
  echo "fuzz_cli.sh: unknown mode '$mode'"
  exit 2
  ;;
esac
[ "$fails" -eq 0 ] && echo "fuzz_cli $mode: all passed"
exit $((fails > 0))
