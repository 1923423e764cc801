#!/usr/bin/env bash
# test.sh: set up, build and run the test suite (what CI runs).
#   scripts/test.sh            default build + ctest, then the ASan+UBSan build of the labelled tests
#   MOEFUZZ_SKIP_ASAN=1 scripts/test.sh    skip the sanitizer pass
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cmake --preset default >/dev/null
cmake --build --preset default
ctest --preset default
if [ -z "${MOEFUZZ_SKIP_ASAN:-}" ] && command -v clang >/dev/null; then
  cmake --preset asan >/dev/null
  cmake --build --preset asan
  ctest --preset asan
fi
