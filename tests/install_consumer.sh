#!/usr/bin/env bash
# install_consumer.sh BUILD_DIR SOURCE_DIR MOEFUZZ SEED: the plugin ABI installs and is found.
# Installs this build into a fresh prefix, builds examples/plugin on its own against it with
# find_package(moefuzz) (target moefuzz::kernel_abi), checks a case with that plugin, and
# compiles a file that includes moefuzz/kernel_abi.h with `pkg-config --cflags moefuzz`.
set -eu
build=$1 src=$2 mf=$3 seed=$4
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cmake --install "$build" --prefix "$tmp/prefix" >"$tmp/install.log"
test -f "$tmp/prefix/include/moefuzz/kernel_abi.h"
cmake -S "$src/examples/plugin" -B "$tmp/plugin" -DCMAKE_PREFIX_PATH="$tmp/prefix" \
  -DCMAKE_BUILD_TYPE=Release >"$tmp/configure.log"
cmake --build "$tmp/plugin" >"$tmp/build.log"
"$mf" check -q --fail-unsupported --backend "plugin:$tmp/plugin/libmoe_example.so" "$seed"
if ! command -v pkg-config >/dev/null; then
  echo "FAIL: pkg-config not installed (scripts/setup.sh installs pkgconf): moefuzz.pc unchecked"
  exit 1
fi
pc=$(find "$tmp/prefix" -name moefuzz.pc)
[ -n "$pc" ] || { echo "FAIL: no moefuzz.pc installed under $tmp/prefix"; exit 1; }
cflags=$(PKG_CONFIG_PATH=$(dirname "$pc") pkg-config --cflags moefuzz)
printf '#include <moefuzz/kernel_abi.h>\nint main(void) { return MF_KERNEL_ABI_VERSION == 1u ? 0 : 1; }\n' >"$tmp/t.c"
cc $cflags "$tmp/t.c" -o "$tmp/t"
"$tmp/t"
echo "install_consumer: find_package(moefuzz) and pkg-config --cflags moefuzz ($cflags) work"
