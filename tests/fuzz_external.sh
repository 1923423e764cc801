#!/usr/bin/env bash
# fuzz_external.sh MOEFUZZ PYTHON SOURCE_DIR CRASH_SO WORKDIR: `moefuzz fuzz` drives kernels that
# live outside moefuzz (fuzz builds only: the libFuzzer target sits next to MOEFUZZ).
#  1. the example Python adapter through the exec backend: a fixed-seed campaign over the seeds
#     and mutations of them, 400 inputs in all, finds no failure (numpy is installed by
#     scripts/setup.sh: without it the test fails);
#  2. the example plugin that segfaults on single-token cases: the crash is a finding, not the
#     end of moefuzz: an artifact, a summary line "crashed with signal 11", exit 1.
set -u
mf=$1 py=$2 src=$3 crash=$4 work=$5
export MOEFUZZ_SOURCE_DIR=$src
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
rm -rf "$work"
if "$py" -c "import numpy" 2>/dev/null; then
  out=$("$mf" fuzz --runs 400 --seed 1 --workdir "$work/exec" \
    --backend "exec:$py $src/examples/python/moe_numpy.py" 2>&1)
  code=$?
  echo "$out" | grep -E "^(execs|failures|config cells)"
  [ "$code" -eq 0 ] || fail "exec campaign: exit $code"
  grep -q "^failures *none" <<<"$out" || fail "exec campaign found failures: $(tail -20 <<<"$out")"
else
  fail "no numpy for $py (scripts/setup.sh installs python3-numpy): the exec campaign cannot run"
fi
out=$("$mf" fuzz --runs 200 --seed 1 --timeout 10 --workdir "$work/crash" \
  --backend "plugin:$crash" 2>&1)
code=$?
echo "$out" | grep -E "^(execs|failures)| crashed with signal" | head -5
[ "$code" -eq 1 ] || fail "crash campaign: exit $code, want 1"
grep -q "crashed with signal 11 (Segmentation fault)" <<<"$out" || fail "no crash signature"
ls "$work/crash/artifacts/" | grep -q "^crash-" || fail "no crash artifact"
[ "$fails" -eq 0 ] && echo "fuzz_external: all passed"
exit $((fails > 0))
