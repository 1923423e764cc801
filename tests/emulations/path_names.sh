#!/bin/sh
# path_names.sh MOEFUZZ TORCH.so CORPUS: a kernel names the router path it ran by its contract,
# through the C plugin ABI (TORCH.so, the vLLM emulation of the torch grouped_topk path, declares
# vllm-0.33-triton-sm90-torch-router) and through the exec hello (contract=, by the full name or
# by its alias vllm-triton-torch-router); every report prints the resolved name.
set -u
M=$1 P=$2 CORPUS=$3
case1=$CORPUS/seeds/model-deepseek-v2.txt
want="(contract vllm-0.33-triton-sm90-torch-router)"
fails=0
bad() { echo "path_names.sh: FAIL: $*"; fails=$((fails + 1)); }
expect_name() { # WHAT OUTPUT
  if echo "$2" | tail -1 | grep -qF "$want"; then echo "path_names.sh: $1: $want"; else
    echo "$2" | tail -2; bad "$1 does not print $want"; fi
}
o=$("$M" check -q --backend "plugin:$P" "$case1" 2>&1)
[ $? -eq 0 ] || { echo "$o" | tail -3; bad "the plugin fails"; }
expect_name "plugin" "$o"
for name in vllm-0.33-triton-sm90-torch-router vllm-triton-torch-router; do
  o=$("$M" check -q --backend "exec:read l; echo hello path contract=$name; while read c a b; do
       echo unsupported names only; done" "$case1" 2>&1)
  expect_name "exec hello contract=$name" "$o"
done
o=$("$M" check -q --contract vllm-triton-torch-router "$case1" 2>&1)
expect_name "--contract vllm-triton-torch-router" "$o"
[ $fails -eq 0 ] || exit 1
echo "path_names.sh: ok"
