#!/usr/bin/env bash
# main-job.sh: set up, build with clang (libFuzzer), and fuzz the built-in CPU kernel against the
# exact reference for 60 seconds, ending with a summary. Extra arguments go to `moefuzz fuzz`
# (e.g. --time 600, --model deepseek-v3, --overnight).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cmake --preset fuzz >/dev/null
cmake --build --preset fuzz
exec build/fuzz/moefuzz fuzz --time 60 "$@"
