#!/bin/bash -eu
# build.sh: builds the moefuzz fuzz targets the OSS-Fuzz / ClusterFuzzLite way, through the
# project's CMake build (its source lists are the only ones).
#
# Inputs (set by the fuzzing service): $CC, $CFLAGS (sanitizer and coverage flags),
# $LIB_FUZZING_ENGINE (the engine to link, e.g. -fsanitize=fuzzer), $OUT (where targets go),
# $WORK (scratch). Outputs in $OUT, per target: the binary, TARGET.options, TARGET.dict and
# TARGET_seed_corpus.zip. Needs cmake, MPFR and GMP headers (Debian: cmake libmpfr-dev
# libgmp-dev; the Dockerfile beside this installs them). Run locally:
#   CC=clang CFLAGS="-O1 -g -fsanitize=address,fuzzer-no-link" \
#   LIB_FUZZING_ENGINE=-fsanitize=fuzzer OUT=/tmp/out WORK=/tmp/work fuzz/oss-fuzz/build.sh
# fuzz/oss-fuzz/check_build.sh runs it so and runs each target over its seed corpus (ctest).
# the source tree: around this script, or the working directory where the service copied the
# script to /src/build.sh (the Dockerfile's WORKDIR is the tree)
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
[ -f "$ROOT/fuzz/oss-fuzz/build.sh" ] || ROOT=$PWD
: "${WORK:=$(mktemp -d)}"
: "${CFLAGS:=}"
B="$WORK/moefuzz-build"
SEEDS="$WORK/moefuzz-seeds"
mkdir -p "$OUT"
rm -rf "$SEEDS"
mkdir -p "$SEEDS"

# CMAKE_BUILD_TYPE=None: the service's CFLAGS alone set optimisation and instrumentation.
cmake -S "$ROOT" -B "$B" -DCMAKE_C_COMPILER="$CC" -DCMAKE_C_FLAGS="$CFLAGS" \
  -DCMAKE_BUILD_TYPE=None -DMOEFUZZ_FUZZ=ON -DMOEFUZZ_FUZZ_ENGINE="$LIB_FUZZING_ENGINE" \
  -DMOEFUZZ_CUDA=OFF -DMOEFUZZ_TESTS=OFF >"$WORK/moefuzz-cmake.log" ||
  { cat "$WORK/moefuzz-cmake.log"; exit 1; }
# the moefuzz tool encodes the seeds; it is built with the same flags
cmake --build "$B" -j"$(nproc)" --target fuzz_moe fuzz_inputs moefuzz

for t in fuzz_moe fuzz_inputs; do
  cp "$B/$t" "$OUT/$t"
  cp "$ROOT/fuzz/moe.dict" "$OUT/$t.dict"
  printf '[libfuzzer]\nmax_len = 512\ntimeout = 60\nrss_limit_mb = 8192\ndict = %s.dict\n' \
    "$t" >"$OUT/$t.options"
done

# seed corpus: the text seeds and regressions as canonical binary cases
n=0
for f in "$ROOT"/corpus/seeds/*.txt "$ROOT"/corpus/regress/*.txt; do
  [ -f "$f" ] || continue
  # leak checks of the instrumented tool would only slow this down
  ASAN_OPTIONS=detect_leaks=0 "$B/moefuzz" encode "$f" -o "$SEEDS/$(basename "${f%.txt}")" \
    2>"$WORK/moefuzz-encode.log" || { cat "$WORK/moefuzz-encode.log"; exit 1; }
  n=$((n + 1))
done
[ "$n" -gt 0 ] || { echo "build.sh: no seed cases under $ROOT/corpus" >&2; exit 1; }
rm -f "$OUT/fuzz_moe_seed_corpus.zip"
(cd "$SEEDS" && cmake -E tar cf "$OUT/fuzz_moe_seed_corpus.zip" --format=zip -- *)
cp "$OUT/fuzz_moe_seed_corpus.zip" "$OUT/fuzz_inputs_seed_corpus.zip"
echo "built fuzz_moe and fuzz_inputs in $OUT ($n seed inputs each)"
