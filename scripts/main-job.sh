#!/usr/bin/env bash
# main-job.sh: set up, build, and check the built-in CPU kernel over the seed corpus, with a
# summary. Extra arguments go to `moefuzz check`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cmake --preset default >/dev/null
cmake --build --preset default
exec build/default/moefuzz check -q "$@" corpus/seeds corpus/regress
