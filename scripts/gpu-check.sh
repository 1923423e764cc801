#!/usr/bin/env bash
# gpu-check.sh [BUILD_DIR] [CTEST_ARG...]: every GPU test (`ctest -L gpu`) of a CUDA build, on the
# GPU machine, where no test may skip.
#
# The build comes from elsewhere (the cuda preset links MPFR, GMP and cudart statically, so
# neither clang, nvcc nor the MPFR headers are needed here): copy the source tree with its build
# directory inside it (to another path too: the ctest files' absolute paths are rewritten to
# this checkout's), then run, from the source root,
#
#   scripts/gpu-check.sh build/cuda            # or the build directory it was built in
#   scripts/gpu-check.sh build/cuda -R corpus  # extra arguments go to ctest
#
# MOEFUZZ_REQUIRE_GPU=1 is set for every test: a test that finds no usable device fails instead
# of skipping (tests/gpu_test.sh, kernels/cuda/cuda_device.h). MOEFUZZ_CUDA_* knobs of the
# caller's environment are unset: each test sets those it forces. The tests run one at a time
# (they share the GPU; the full-shape cases hold gigabytes). Prints a table of every test with
# its status and time, and a verdict. Exit: 0 every GPU test ran and passed; 1 any failed,
# skipped or did not run, or no GPU test was found; 2 bad usage or a build tree that cannot run
# here.
set -u

die() {
  echo "gpu-check: $*" >&2
  exit 2
}

case "${1:-}" in
  -h | --help)
    sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'
    exit 0
    ;;
esac
build=build/cuda
if [ $# -gt 0 ] && [ "${1#-}" = "$1" ]; then
  build=$1
  shift
fi
[ -d "$build" ] || die "no build directory '$build' (pass the CUDA build's directory)"
build=$(cd "$build" && pwd)
command -v ctest > /dev/null || die "ctest not found (install cmake >= 3.21)"
[ -f "$build/CTestTestfile.cmake" ] ||
  die "$build has no CTestTestfile.cmake: not a configured build"
[ -x "$build/moefuzz" ] || die "$build/moefuzz missing: build the cuda preset first"
[ -f "$build/tests/gpu/CTestTestfile.cmake" ] ||
  die "$build has no GPU tests: configured without CUDA (cmake --preset cuda)"
# ctest's files name the source and build trees by absolute path. A tree copied elsewhere (this
# script's checkout, with the build directory inside it) gets those paths rewritten in its
# CTestTestfile.cmake files.
src=$(sed -n 's/^# Source directory: //p' "$build/CTestTestfile.cmake")
old_build=$(sed -n 's/^# Build directory: //p' "$build/CTestTestfile.cmake")
here=$(cd "$(dirname "$0")/.." && pwd)
if [ "$old_build" != "$build" ]; then
  [ -d "$here/corpus/seeds" ] ||
    die "$build was configured as $old_build, from $src: neither is here"
  echo "gpu-check: relocating $build's ctest files: $old_build -> $build, $src -> $here"
  find "$build" -name CTestTestfile.cmake -exec sed -i -e "s#$old_build#$build#g" \
    -e "s#$src#$here#g" {} +
  src=$here
fi
[ -d "${src:-/nonexistent}/corpus/seeds" ] ||
  die "the source tree '$src' that $build was configured from is not here"
for lib in "$build/moefuzz" "$build/tests/gpu/probe_hopper"; do
  [ -x "$lib" ] || die "$lib missing: build every target of the cuda preset"
  if command -v ldd > /dev/null && ldd "$lib" 2>&1 | grep -q "not found"; then
    ldd "$lib" | grep "not found" >&2
    die "$lib needs libraries this machine lacks (above)"
  fi
done

echo "gpu-check: build $build (source $src)"
if command -v nvidia-smi > /dev/null; then
  nvidia-smi --query-gpu=index,name,driver_version,memory.total --format=csv,noheader |
    sed 's/^/gpu-check: device /'
else
  echo "gpu-check: nvidia-smi not found (the tests still say which device they find)"
fi

# a tuning knob exported by the caller would run the tests that force nothing on a forced path
for v in $(env | sed -n 's/^\(MOEFUZZ_CUDA_[A-Z_]*\)=.*/\1/p'); do
  echo "gpu-check: unsetting $v (each test sets the knobs it forces)"
  unset "$v"
done

n_listed=$(ctest --test-dir "$build" -N -L gpu "$@" | sed -n 's/^Total Tests: //p')
[ "${n_listed:-0}" -gt 0 ] || {
  echo "gpu-check: FAIL: ctest lists no GPU test (-L gpu $*)"
  exit 1
}

junit=$(mktemp "${TMPDIR:-/tmp}/gpu-check.XXXXXX.xml")
log=$(mktemp "${TMPDIR:-/tmp}/gpu-check.XXXXXX.log")
trap 'rm -f "$junit"' EXIT
t0=$(date +%s)
MOEFUZZ_REQUIRE_GPU=1 ctest --test-dir "$build" -L gpu -j1 --output-on-failure \
  --output-junit "$junit" "$@" 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
t1=$(date +%s)

# one line per test case of the JUnit file: status, seconds, name
rows=$(awk '
  /<testcase / {
    name = $0; sub(/.*name="/, "", name); sub(/".*/, "", name)
    st = $0; if (st ~ /status="/) { sub(/.*status="/, "", st); sub(/".*/, "", st) } else st = "run"
    tm = $0; if (tm ~ /time="/) { sub(/.*time="/, "", tm); sub(/".*/, "", tm) } else tm = "?"
    printf "%s %s %s\n", st, tm, name
  }' "$junit")
n_run=$(printf '%s\n' "$rows" | grep -c '^run ' || true)
n_fail=$(printf '%s\n' "$rows" | grep -c '^fail ' || true)
n_other=$(printf '%s\n' "$rows" | grep -vc -e '^run ' -e '^fail ' -e '^$' || true)
n_all=$((n_run + n_fail + n_other))

echo
echo "gpu-check summary ($((t1 - t0)) s, MOEFUZZ_REQUIRE_GPU=1, log $log)"
printf '%-8s %9s  %s\n' status seconds test
printf '%s\n' "$rows" | while read -r st tm name; do
  [ -n "$name" ] || continue
  case "$st" in
    run) label=PASS ;;
    fail) label=FAIL ;;
    *) label="NOT RUN" ;;
  esac
  printf '%-8s %9s  %s\n' "$label" "$tm" "$name"
done
echo "listed $n_listed, passed $n_run, failed $n_fail, skipped or not run $n_other"
if [ "$rc" -eq 0 ] && [ "$n_fail" -eq 0 ] && [ "$n_other" -eq 0 ] && [ "$n_run" -eq "$n_listed" ] &&
  [ "$n_all" -eq "$n_listed" ]; then
  echo "gpu-check: PASS: all $n_run GPU tests ran and passed"
  exit 0
fi
echo "gpu-check: FAIL (ctest exit $rc)"
exit 1
