#!/usr/bin/env bash
# gpu_test.sh COMMAND...: runs a test labelled gpu (mf_add_test wraps every one). Exit 77 (no
# usable device) stays a skip, except under MOEFUZZ_REQUIRE_GPU=1, which the GPU machine sets:
# there a GPU test that finds no device has checked nothing, and fails.
"$@"
code=$?
if [ "$code" -eq 77 ] && [ "${MOEFUZZ_REQUIRE_GPU:-0}" = 1 ]; then
  echo "gpu_test: $1 skipped (exit 77: no usable device); MOEFUZZ_REQUIRE_GPU=1 makes it a failure"
  exit 1
fi
exit "$code"
