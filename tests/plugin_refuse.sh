#!/usr/bin/env bash
# plugin_refuse.sh MOEFUZZ PLUGIN SEEDS: a kernel whose run() answers MF_KERNEL_RUN_UNSUPPORTED
# (examples/plugin, EXAMPLE_REFUSE: rsf != 1 refused while running), in process and isolated:
#   - a case it refuses is unsupported (exit 0, "1 unsupported");
#   - the rsf-scaling variant it refuses is left out and reported ("left out ... refused");
#   - refusing every second call (EXAMPLE_REFUSE_MODE=second) makes the determinism run of a
#     case it computed an error (exit 2; cpu-scalar: a deterministic contract, so two runs), in
#     `check` and in `calibrate` (no crash).
set -u
mf=$1 plugin=$2 seeds=$3
fails=0
fail() { echo "FAIL: $*"; fails=1; }
for iso in --no-isolate --isolate; do
  out=$("$mf" check "$iso" --backend "plugin:$plugin" "$seeds/deepseek-v3-rsf2.446.txt" 2>&1)
  code=$?
  [ $code -eq 0 ] && grep -q ": 0 passed, 0 failed, 1 unsupported" <<<"$out" &&
    grep -q "rsf != 1 (refused while running)" <<<"$out" ||
    fail "$iso: a refused case is not unsupported (exit $code): $out"
  out=$("$mf" check "$iso" --metamorphic --backend "plugin:$plugin" "$seeds/mixtral-tiny.txt" 2>&1)
  code=$?
  [ $code -eq 0 ] && grep -q ": 1 passed, 0 failed" <<<"$out" &&
    grep -Eq "rsf-scaling +left out +1 transformed runs refused by the kernel \(rsf != 1 \(refused while running\)\)" <<<"$out" ||
    fail "$iso: the refused rsf-scaling variant is not reported as left out (exit $code): $out"
  out=$(EXAMPLE_REFUSE_MODE=second "$mf" check "$iso" --contract cpu-scalar --backend "plugin:$plugin" \
    "$seeds/mixtral-tiny.txt" 2>&1)
  code=$?
  [ $code -eq 2 ] && grep -q "then refused it on the determinism run" <<<"$out" ||
    fail "$iso: a refused determinism run is not an error (exit $code): $out"
done
out=$(EXAMPLE_REFUSE_MODE=second timeout 300 "$mf" calibrate --backend "plugin:$plugin" 2>&1)
code=$?
[ $code -ne 0 ] && [ $code -lt 128 ] && grep -q "refused it on the second run" <<<"$out" ||
  fail "calibrate: a refused second run is not reported as an error (exit $code): $(tail -5 <<<"$out")"
[ $fails -eq 0 ] && echo "plugin_refuse: PASS"
exit $fails
