#!/usr/bin/env bash
# expect_output.sh [-e PATTERN]... COMMAND...: passes when COMMAND exits 0 and each PATTERN
# (grep -E) matches a line of its output. ctest's PASS_REGULAR_EXPRESSION alone would pass a
# command that printed the right lines and then failed.
set -u
pats=()
while [ "${1:-}" = "-e" ] && [ $# -ge 2 ]; do
  pats+=("$2")
  shift 2
done
[ $# -ge 1 ] || { echo "usage: expect_output.sh [-e PATTERN]... COMMAND..."; exit 2; }
out=$("$@" 2>&1)
code=$?
echo "$out"
fails=0
[ "$code" -eq 0 ] || { echo "FAIL: exit $code, want 0"; fails=1; }
for p in "${pats[@]}"; do
  grep -qE -- "$p" <<<"$out" || { echo "FAIL: no line matches '$p'"; fails=1; }
done
exit "$fails"
