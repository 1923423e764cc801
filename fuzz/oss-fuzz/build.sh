#!/bin/bash -eu
# build.sh: builds the moefuzz fuzz targets the OSS-Fuzz / ClusterFuzzLite way.
#
# Inputs (set by the fuzzing service): $CC, $CFLAGS (sanitizer and coverage flags),
# $LIB_FUZZING_ENGINE (the engine to link, e.g. -fsanitize=fuzzer), $OUT (where targets go),
# $WORK (scratch). Outputs in $OUT, per target: the binary, TARGET.options, TARGET.dict and
# TARGET_seed_corpus.zip. Needs MPFR and GMP headers (Debian: libmpfr-dev libgmp-dev; the
# Dockerfile beside this installs them). Run locally:
#   CC=clang CFLAGS="-O1 -g -fsanitize=address,fuzzer-no-link" \
#   LIB_FUZZING_ENGINE=-fsanitize=fuzzer OUT=/tmp/out WORK=/tmp/work fuzz/oss-fuzz/build.sh
SRC=$(cd "$(dirname "$0")/../.." && pwd)
: "${WORK:=$(mktemp -d)}"
B="$WORK/moefuzz-build"
mkdir -p "$B/obj" "$B/host" "$B/seeds" "$OUT"
INC="-I$SRC/reference -I$SRC/src -I$SRC/src/tool -I$SRC/kernels/include"
DEFS="-std=c11 -D_GNU_SOURCE -ffp-contract=off -DMF_SOURCE_DIR=\"$SRC\""
LIBS="-lmpfr -lgmp -lm -ldl"
LIB_SOURCES="$(ls "$SRC"/reference/*.c) $SRC/src/case.c $SRC/src/codec.c $SRC/src/casegen.c
  $SRC/src/models.c $SRC/src/backend.c $SRC/src/check.c $SRC/src/fuzz.c
  $SRC/kernels/cpu/moe_cpu.c"

# the library, instrumented with the service's flags
objs=()
for f in $LIB_SOURCES; do
  o="$B/obj/$(basename "${f%.c}").o"
  $CC $CFLAGS $DEFS $INC -c "$f" -o "$o"
  objs+=("$o")
done
ar rcs "$B/libmoefuzz.a" "${objs[@]}"

for t in fuzz_moe fuzz_inputs; do
  $CC $CFLAGS $DEFS $INC -c "$SRC/fuzz/$t.c" -o "$B/$t.o"
  $CC $CFLAGS $LIB_FUZZING_ENGINE "$B/$t.o" "$B/libmoefuzz.a" $LIBS -o "$OUT/$t"
  cp "$SRC/fuzz/moe.dict" "$OUT/$t.dict"
  printf '[libfuzzer]\nmax_len = 512\ntimeout = 60\nrss_limit_mb = 8192\ndict = %s.dict\n' \
    "$t" >"$OUT/$t.options"
done

# seed corpus: the text seeds and regressions encoded by a plain (uninstrumented) host build
cc -O1 $DEFS $INC $LIB_SOURCES "$SRC"/src/tool/*.c $LIBS -o "$B/host/moefuzz"
for f in "$SRC"/corpus/seeds/*.txt "$SRC"/corpus/regress/*.txt; do
  [ -f "$f" ] || continue
  "$B/host/moefuzz" encode "$f" -o "$B/seeds/$(basename "${f%.txt}")" 2>/dev/null
done
(cd "$B/seeds" && python3 -c "import sys,zipfile,os
z=zipfile.ZipFile(sys.argv[1],'w')
[z.write(f) for f in sorted(os.listdir('.'))]" "$OUT/fuzz_moe_seed_corpus.zip")
cp "$OUT/fuzz_moe_seed_corpus.zip" "$OUT/fuzz_inputs_seed_corpus.zip"
echo "built fuzz_moe and fuzz_inputs in $OUT"
