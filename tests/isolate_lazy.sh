#!/usr/bin/env bash
# isolate_lazy.sh MOEFUZZ PLUGIN: an isolated plugin (the worker reads the tensors from shared
# memory) gets a full-size model case without the experts that no routing can select being
# written there: the run's peak memory stays near the in-process run's, far below the experts'
# 1.2 GB (qwen3-30b-a3b --full: 128 experts, H 2048, I 768).
set -u
mf=$1 plugin=$2
peak() { # peak RSS in MiB of the child (the largest of moefuzz and its worker), then its exit
  python3 - "$@" <<'PY'
import resource, subprocess, sys
r = subprocess.run(sys.argv[1:], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
sys.stderr.write(r.stdout)
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss // 1024, r.returncode)
PY
}
args=(check --model qwen3-30b-a3b --full --cases 1 --seed 3 --no-determinism
  --backend "plugin:$plugin")
read -r inproc code1 < <(peak "$mf" "${args[@]}" --no-isolate)
read -r iso code2 < <(peak "$mf" "${args[@]}" --isolate)
echo "peak RSS: in process $inproc MiB, isolated $iso MiB (experts: 1152 MiB)"
fails=0
[ "$code1" = 0 ] && [ "$code2" = 0 ] || { echo "FAIL: exit $code1 / $code2, want 0 / 0"; fails=1; }
# the isolated run holds the READY experts twice (the problem and the shared file): under 3x the
# in-process peak, and under half of all experts (before: 1.3 GB, every expert copied)
[ "$iso" -lt $((3 * inproc)) ] && [ "$iso" -lt 576 ] ||
  { echo "FAIL: the isolated run's peak ($iso MiB) is not near the in-process run's"; fails=1; }
exit $fails
