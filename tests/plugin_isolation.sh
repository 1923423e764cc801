#!/usr/bin/env bash
# plugin_isolation.sh MOEFUZZ CRASH_SO HANG_SO SEEDS: a plugin that crashes (segfault, abort) or
# hangs does not take moefuzz down. Each failing case is reported with the signal or the timeout,
# saved as a text case that replays the failure, and the run goes on to pass the next case;
# the exit code is 1. The example plugins misbehave on single-token cases (segfault, hang) and on
# cases with a bf16 bias (abort): examples/plugin/misbehave.c.
set -u
mf=$1 crash=$2 hang=$3 seeds=$4
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }

cases="$seeds/decode-t1-top1.txt $seeds/bf16-logits-bf16-bias.txt $seeds/exact-ties.txt"
out=$("$mf" check -q --fail-unsupported --timeout 5 --save-failures "$tmp/crash" \
  --backend "plugin:$crash" $cases 2>&1)
code=$?
echo "$out"
[ "$code" -eq 1 ] || fail "crashing plugin: exit $code, want 1"
grep -q "^CRASH .*decode-t1-top1.txt.*crashed with signal 11 (Segmentation fault) on this case" <<<"$out" ||
  fail "the segfault is not reported"
grep -q "^CRASH .*bf16-logits-bf16-bias.txt.*crashed with signal 6 (Aborted) on this case" <<<"$out" ||
  fail "the abort is not reported"
grep -q "^PASS .*exact-ties.txt" <<<"$out" || fail "the case after the crashes did not pass"
grep -q "1 passed, 0 failed, 2 crashed or timed out" <<<"$out" || fail "summary"
saved="$tmp/crash/decode-t1-top1-crash.txt"
[ -f "$saved" ] && [ -f "$tmp/crash/bf16-logits-bf16-bias-crash.txt" ] || fail "cases not saved"
grep -q "case saved: $saved" <<<"$out" || fail "the saved path is not printed"
# the saved case replays the crash
out2=$("$mf" check -q --save-failures "$tmp/again" --backend "plugin:$crash" "$saved" 2>&1)
[ $? -eq 1 ] && grep -q "crashed with signal 11" <<<"$out2" || fail "the saved case does not replay: $out2"

out=$("$mf" check -q --fail-unsupported --timeout 1 --save-failures "$tmp/hang" \
  --backend "plugin:$hang" \
  "$seeds/decode-t1-top1.txt" "$seeds/exact-ties.txt" 2>&1)
code=$?
echo "$out"
[ "$code" -eq 1 ] || fail "hanging plugin: exit $code, want 1"
grep -q "^TIMEOUT .*decode-t1-top1.txt.*timed out after 1 s on this case" <<<"$out" ||
  fail "the hang is not reported"
grep -q "^PASS .*exact-ties.txt" <<<"$out" || fail "the case after the hang did not pass"
[ -f "$tmp/hang/decode-t1-top1-timeout.txt" ] || fail "the hanging case is not saved"

# a built-in kernel runs isolated on request, with the same verdicts
out=$("$mf" check -q --fail-unsupported --isolate "$seeds/exact-ties.txt" \
  "$seeds/nan-logit-row.txt" 2>&1) ||
  fail "cpu --isolate: $out"
[ "$fails" -eq 0 ] && echo "plugin_isolation: all passed"
exit $((fails > 0))
