#!/usr/bin/env bash
# setup.sh: installs what a fresh Debian machine lacks to build and test moefuzz.
#
# As root it installs the missing Debian packages; otherwise it lists them and the command to
# install them, and fails. nvcc is expected at /usr/local/cuda (CUDA builds only).
set -euo pipefail

need=()
have_pkg() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }
# python3 runs scripts/ctest_junit_check.py; numpy the example adapter's tests; python3-dev
# (headers) and python3-pytest the Python package's build and tests (ctest python.package)
for pkg in cmake make gcc g++ clang libclang-rt-14-dev libmpfr-dev libgmp-dev python3 \
  python3-numpy python3-dev python3-pytest pkgconf; do
  have_pkg "$pkg" || need+=("$pkg")
done

if [ ${#need[@]} -eq 0 ]; then
  echo "setup: all build dependencies present"
  exit 0
fi

if [ "$(id -u)" -eq 0 ]; then
  echo "setup: installing ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  echo "setup: done"
else
  echo "setup: missing packages: ${need[*]}" >&2
  echo "setup: run as root:  apt-get install -y ${need[*]}" >&2
  exit 1
fi
