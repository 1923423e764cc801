#!/usr/bin/env bash
# main-job.sh: set up, build with clang (libFuzzer), and fuzz the built-in CPU kernel against the
# exact reference for 60 seconds (the replay of an existing corpus included), ending with a
# summary. Extra arguments go to `moefuzz fuzz` (e.g. --time 10m, --model deepseek-v3, which
# fuzzes in its own work dir fuzz-out-deepseek-v3, --overnight: 8 h unless --time).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cmake --preset fuzz >/dev/null
cmake --build --preset fuzz
# 60 s unless the arguments set the length (--time, --runs, --overnight)
limit=(--time 60)
for a in "$@"; do
  case $a in --time | --runs | --overnight) limit=() ;; esac
done
exec build/fuzz/moefuzz fuzz "${limit[@]}" "$@"
