#!/usr/bin/env bash
# test.sh: set up, build and run the test suite (what CI runs).
#   scripts/test.sh                        the default build and its ctest (preset default: every
#                                          test but label emu-full), then the ASan+UBSan build
#                                          and its ctest (preset asan: the tests labelled asan)
#   MOEFUZZ_SKIP_ASAN=1 scripts/test.sh    skip the sanitizer pass
#   MOEFUZZ_REQUIRE_GPU=1 scripts/test.sh  on the GPU machine: a GPU test that skips fails
# After each ctest run its JUnit report (build/PRESET/junit.xml) is read back
# (scripts/ctest_junit_check.py): the run fails if a selected test did not run or skipped,
# except tests labelled gpu (no usable device) or optional (a package that scripts/setup.sh does
# not install), each listed with its reason. A timing line per phase closes the run.
set -euo pipefail
cd "$(dirname "$0")/.."

timings=()
t_phase=0
t_all=$(date +%s%N)
ms_since() { echo $((($(date +%s%N) - $1) / 1000000)); }
phase_start() { t_phase=$(date +%s%N); }
phase_end() {
  local ms
  ms=$(ms_since "$t_phase")
  timings+=("$1 $((ms / 1000)).$((ms % 1000 / 100)) s")
}
print_timings() {
  local ms line=""
  ms=$(ms_since "$t_all")
  for t in "${timings[@]}"; do line+="$t; "; done
  echo "test.sh timing: ${line}total $((ms / 1000)).$((ms % 1000 / 100)) s"
}
trap print_timings EXIT

# ctest_run PRESET: ctest, then its JUnit report against the tests the preset selects
ctest_run() {
  local preset=$1 dir=build/$1 rc=0
  rm -f "$dir/junit.xml"
  ctest --preset "$preset" --output-junit junit.xml </dev/null || rc=1
  ctest --preset "$preset" --show-only=json-v1 >"$dir/tests-selected.json"
  ctest --test-dir "$dir" --show-only=json-v1 >"$dir/tests-all.json"
  python3 scripts/ctest_junit_check.py "$dir/junit.xml" "$dir/tests-selected.json" \
    "$dir/tests-all.json" || rc=1
  return $rc
}

phase_start
scripts/setup.sh
phase_end setup

phase_start
cmake --preset default >/dev/null
cmake --build --preset default
phase_end "build default"
phase_start
status=0
ctest_run default || status=1
phase_end "test default"

if [ -z "${MOEFUZZ_SKIP_ASAN:-}" ]; then
  phase_start
  cmake --preset asan >/dev/null
  cmake --build --preset asan
  phase_end "build asan"
  phase_start
  ctest_run asan || status=1
  phase_end "test asan"
fi
exit $status
