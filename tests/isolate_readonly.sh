#!/usr/bin/env bash
# isolate_readonly.sh MOEFUZZ WRITE_PLUGIN SEEDS: an isolated plugin's inputs are read-only. The
# plugin writes to its weights (w13, the value unchanged, so its output stays right) on
# single-token cases (examples/plugin/misbehave.c, EXAMPLE_WRITE):
#   1. isolated (the default for plugins), the write faults: the case is reported as a crash
#      (signal 11) and saved, and the next case passes;
#   2. in process (--no-isolate) nothing protects the inputs and the same case passes: the
#      crash in 1 is the read-only mapping's doing, not a wrong output.
set -u
[ $# -eq 3 ] || { echo "usage: isolate_readonly.sh MOEFUZZ WRITE_PLUGIN SEEDS"; exit 2; }
mf=$1 plugin=$2 seeds=$3
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }

cases=("$seeds/decode-t1-top1.txt" "$seeds/exact-ties.txt")
out=$("$mf" check -q --fail-unsupported --timeout 30 --save-failures "$tmp/saved" \
  --backend "plugin:$plugin" "${cases[@]}" 2>&1)
code=$?
echo "$out"
[ "$code" -eq 1 ] || fail "isolated: exit $code, want 1"
grep -q "^CRASH .*decode-t1-top1.txt.*crashed with signal 11 (Segmentation fault) on this case" \
  <<<"$out" || fail "the write to w13 is not reported as a crash"
grep -q "^PASS .*exact-ties.txt" <<<"$out" || fail "the case after the crash did not pass"
[ -f "$tmp/saved/decode-t1-top1-crash.txt" ] || fail "the case is not saved"

out=$("$mf" check -q --fail-unsupported --no-isolate --backend "plugin:$plugin" "${cases[@]}" 2>&1)
code=$?
echo "$out"
[ "$code" -eq 0 ] && grep -q ": 2 passed, 0 failed" <<<"$out" ||
  fail "in process: exit $code, want 0 with both cases passed (the write leaves the output right)"
[ "$fails" -eq 0 ] && echo "isolate_readonly: all passed"
exit $((fails > 0))
