#!/usr/bin/env bash
# fuzz_cli.sh MODE BIN_DIR SOURCE_DIR WORK: the fuzz commands' promises, one MODE per ctest entry,
# each a few seconds. BIN_DIR holds moefuzz and, in fuzz builds, fuzz_moe; fuzz/ under it the
# replay binaries.
#   replay      fuzz_moe_replay: a .txt that does not parse is exit 2 with its message; the summary
#               counts what ran; a printable raw input runs as raw bytes
#   exit-codes  `moefuzz fuzz` fails (non-zero) when the target checked nothing or exited non-zero
#               without an artifact, and passes only a campaign that checked inputs
#   time        --time takes 90, 10m, 8h (else exit 2) and bounds the whole campaign
#   signals     SIGTERM and Ctrl-C (SIGINT) stop every worker; the summary follows
#   workdir     per-model work dirs, campaign.txt, a foreign corpus announced, exit 77 without a
#               GPU (no artifact), seeds next to a copied binary
#   minimize    fuzz -> repro -> minimize -> repro round trip on a kernel with a bug; rerun lines
#               run when pasted; printable raw inputs stay raw
set -u
mode=$1 bin=$(cd "$2" && pwd) src=$3 work=$4/$1
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
  # a real campaign passes and says what it checked (more runs than seeds: libFuzzer replays
  # every seed whatever --runs says)
  n_seeds=$(find "$src/corpus/seeds" "$src/corpus/regress" -name '*.txt' | wc -l)
  runs=$((n_seeds + 90))
  run clean 0 "$mf" fuzz --runs "$runs" --seed 1 --workdir "$work/w4"
  # libFuzzer may run an input twice (under ASan, to look for a leak): at least --runs
  execs=$(sed -n 's/^execs *\([0-9]*\) .*/\1/p' "$work/clean.out")
  [ "${execs:-0}" -ge "$runs" ] || fail "clean: execs '${execs:-}' below --runs $runs"
  has clean "^failures *none"
  ;;
time)
  for bad in abc -5 0 10x 1m30 '' inf; do
    run "time_bad" 2 "$mf" fuzz --time "$bad" --workdir "$work/w0"
    has time_bad "give a duration"
  done
  run time_and_runs 2 "$mf" fuzz --time 5 --runs 5 --workdir "$work/w0"
  run jobs_bad 2 "$mf" fuzz --jobs 0 --workdir "$work/w0"
  run runs_bad 2 "$mf" fuzz --runs -3 --workdir "$work/w0"
  run unknown_opt 2 "$mf" fuzz --runs 5 --bogus --workdir "$work/w0"
  # 10m is ten minutes (a target that stops at once: nothing checked, exit 2)
  run time_10m 2 "$mf" fuzz --time 10m --workdir "$work/w1" --target /bin/true
  has time_10m "stops after 600 s, corpus replay included"
  # --time bounds a target that ignores SIGINT: SIGKILL 5 s after the limit, nothing left
  printf '#!/bin/sh\ntrap "" INT\nsleep 300 &\nwait\nwait\n' >"$work/stubborn.sh"
  chmod +x "$work/stubborn.sh"
  t0=$(date +%s)
  run stubborn 2 "$mf" fuzz --time 2 --workdir "$work/w2" --target "$work/stubborn.sh"
  el=$(($(date +%s) - t0))
  [ "$el" -le 10 ] || fail "--time 2 took $el s with a target ignoring SIGINT"
  has stubborn "stopped at the time limit"
  sleep 0.5
  ps -eo args | grep -v grep | grep -q "$work/stubborn.sh" && fail "the stubborn target outlived moefuzz"
  # a real campaign stops at its time with its summary; its progress line (every 10 s) says
  # when the replay of its 49 seeds is over and fuzzing has begun
  t0=$(date +%s)
  run timed 0 "$mf" fuzz --time 12 --seed 1 --workdir "$work/w3"
  el=$(($(date +%s) - t0))
  [ "$el" -le 20 ] || fail "--time 12 took $el s"
  has timed "^failures *none"
  has timed "^\[ *10s of 12s\] fuzzing "
  ;;
signals)
  # SIGTERM and SIGINT to moefuzz stop every fork-mode worker and leave the summary
  for sig in TERM INT; do
    "$mf" fuzz --time 120 --jobs 2 --seed 1 --workdir "$work/w-$sig" >"$work/sig$sig.out" 2>&1 &
    pid=$!
    sleep 4
    kill -s "$sig" "$pid"
    t0=$(date +%s)
    wait "$pid"
    code=$?
    el=$(($(date +%s) - t0))
    [ "$code" -eq 0 ] || { fail "SIG$sig: exit $code, want 0"; tail -5 "$work/sig$sig.out"; }
    [ "$el" -le 10 ] || fail "SIG$sig: moefuzz took $el s to stop"
    has "sig$sig" "==== moefuzz fuzz summary"
    sleep 0.5
    left=$(ps -eo pid,args | grep -v grep | grep -- "$work/w-$sig")
    [ -z "$left" ] || { fail "SIG$sig: processes outlived moefuzz: $left"; kill -9 $(awk '{print $1}' <<<"$left"); }
  done
  has sigTERM "stopped by SIGTERM"
  has sigINT "interrupted (SIGINT)"
  ;;
workdir)
  # per model by default, the settings recorded, a foreign corpus announced
  # one small seed: the model's twin costs about half a second per input
  mkdir -p "$work/src1/corpus/seeds"
  text_case 4 >"$work/src1/corpus/seeds/one.txt"
  (cd "$work" && MOEFUZZ_SOURCE_DIR=$work/src1 "$mf" fuzz --model deepseek-v3 --runs 3 --seed 1 \
    >"$work/model.out" 2>&1) || fail "model campaign: exit $?"
  grep -qx "model = deepseek-v3" "$work/fuzz-out-deepseek-v3/campaign.txt" ||
    fail "no model in fuzz-out-deepseek-v3/campaign.txt"
  grep -q "^# checked against contract cpu-scalar" "$work/fuzz-out-deepseek-v3/campaign.txt" ||
    fail "no contract in campaign.txt"
  run other 0 "$mf" fuzz --runs 20 --seed 1 --workdir "$work/fuzz-out-deepseek-v3"
  has other "come from another campaign"
  # a fake target that says "no GPU": exit 77 with the reason, no artifact
  printf '#!/bin/sh\necho "fuzz_moe: backend cuda: no usable device: no CUDA device (skipped: exit 77)" >&2\nexit 77\n' >"$work/nogpu.sh"
  chmod +x "$work/nogpu.sh"
  run nogpu 77 "$mf" fuzz --runs 5 --workdir "$work/w-nogpu" --target "$work/nogpu.sh"
  has nogpu "skipped: backend cuda: no usable device"
  MOEFUZZ_REQUIRE_GPU=1 run nogpu_required 1 "$mf" fuzz --runs 5 --workdir "$work/w-nogpu" \
    --target "$work/nogpu.sh"
  run nogpu_fork 77 "$mf" fuzz --jobs 2 --time 30 --workdir "$work/w-nogpu2" --target "$work/nogpu.sh"
  [ -z "$(find "$work/w-nogpu/artifacts" "$work/w-nogpu2/artifacts" -type f)" ] ||
    fail "no-GPU run left artifacts"
  # --backend cuda needs fuzz_moe_cuda; a build without it says so (exit 2), never runs fuzz_moe
  if [ ! -x "$bin/fuzz_moe_cuda" ]; then
    run cuda_missing 2 "$mf" fuzz --backend cuda --runs 5 --workdir "$work/w-cuda"
    has cuda_missing "needs fuzz_moe_cuda"
  fi
  # seeds next to a copied binary, and the run says where it looked
  mkdir -p "$work/copy/corpus/seeds" "$work/elsewhere"
  cp "$mf" "$bin/fuzz_moe" "$work/copy/"
  text_case 3 >"$work/copy/corpus/seeds/one.txt"
  (cd "$work/elsewhere" && env -u MOEFUZZ_SOURCE_DIR "$work/copy/moefuzz" fuzz --runs 5 \
    --workdir w >"$work/copied.out" 2>&1) || fail "copied binary: exit $?"
  has copied "seeds: 1 inputs from $work/copy/corpus"
  ;;
minimize)
  # fuzz -> repro -> minimize -> repro: a kernel that drops the routed scaling factor (the
  # example adapter with MOE_NUMPY_BUG=drop-rsf; numpy is part of the set-up)
  py=${MOEFUZZ_PYTHON:-/usr/bin/python3}
  "$py" -c "import numpy" || { fail "no numpy for $py (scripts/setup.sh installs it)"; exit 1; }
  export MOE_NUMPY_BUG=drop-rsf
  adapter="exec:$py $src/examples/python/moe_numpy.py"
  cd "$work"
  run campaign 1 "$mf" fuzz --runs 200 --seed 1 --workdir w --backend "$adapter"
  art=$(ls w/artifacts/crash-* 2>/dev/null | head -1)
  [ -n "$art" ] || { fail "no artifact"; exit 1; }
  run repro 1 "$mf" repro "$art"
  has repro "campaign settings from w/campaign.txt"
  # the dropped rsf shows either as an output failure attributed to it or, on a case whose
  # outputs underflow into the radius, as the rsf-scaling relation (out(2 rsf) = 2 out(rsf))
  has repro 'suspected: routed_scaling_factor not applied\|rsf-scaling *VIOLATED'
  # the printed rerun line runs when pasted
  rerun=$(grep -A1 "^rerun:" "$work/repro.out" | tail -1)
  run pasted 1 bash -c "${rerun/moefuzz/\"\$0\"}" "$mf"
  run minimize 0 "$mf" minimize --runs 30 "$art" -o w/min.bin
  has minimize "still fails at stage"
  run repro_min 1 "$mf" repro w/min.bin
  has repro_min "(binary input"
  run minimize_txt 0 "$mf" minimize --runs 10 "$art" -o w/min.txt
  run repro_txt 1 "$mf" repro w/min.txt
  has repro_txt "(text input"
  # a correct kernel: nothing to minimize (exit 2), and the raw bytes never read as text
  unset MOE_NUMPY_BUG
  run nothing 2 "$mf" minimize --runs 10 "$art"
  printf 'a = b\n' >"$work/printable"
  run printable 0 "$mf" repro --backend cpu "$work/printable"
  has printable "(raw input"
  run printable_raw 0 "$mf" repro --raw --backend cpu "$work/printable"
  ;;
*)
  echo "fuzz_cli.sh: unknown mode '$mode'"
  exit 2
  ;;
esac
[ "$fails" -eq 0 ] && echo "fuzz_cli $mode: all passed"
exit $((fails > 0))
