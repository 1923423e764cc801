#!/usr/bin/env bash
# gpu-sglang.sh [MOEFUZZ] [SGLANG_SRC] [OUT_DIR]: SGLang 0.5.23's bf16 Triton fused MoE on the GPU
# machine, through python/moefuzz/adapters/sglang_fused_moe.py: SGLang's Triton kernels
# (fused_moe_kernel, the router moe_fused_gate, moe_sum_reduce_triton, the small-batch align)
# compiled by Triton for the card, their launchers, config choice (tuned JSON where SGLang has
# one for the card) and routers read from SGLang's sources, its CUDA silu_and_mul and align op
# computed in torch from their sources. Run from the source root:
#
#   scripts/gpu-sglang.sh build-gpu/moefuzz sglang-src "$OUT"
#
# MOEFUZZ defaults to build-gpu/moefuzz, SGLANG_SRC to sglang-src (git-ignored: the files of the
# sglang 0.5.23 wheel named in SGLANG_FILES of the adapter, and its
# sglang/srt/layers/moe/moe_runner/triton_utils/configs/ folder, which SGLang's config lookup
# lists), OUT_DIR to gpu-sglang-out. python3 needs torch and triton (no sglang package). Runs:
#   1. corpus/seeds (contract sglang-0.5-triton-sm90), and the seeds with rsf != 1 with
#      SGLANG_ADAPTER_BUG=drop-rsf (the routed scaling factor not passed: every one that runs
#      must fail);
#   2. model routing at full H and I where the whole expert set fits a case file: mixtral-8x7b
#      (4096, 14336) at T = 1, 16 and qwen3-30b-a3b (2048, 768) at T = 1, 16, 32; deepseek-v3
#      at H 2048, I 256 (all 256 experts: the adapter maps no expert parallelism, and at 7168 /
#      2048 they are 22.5 GB; I 256 because SGLang's tuned H200 config for E 256, N 512 asks for
#      the TMA path, which the adapter refuses) at T = 1, 32, with and without the bug. T stays
#      <= 32 where top-k > 2 or rsf != 1: above it SGLang's combine is sgl_kernel's
#      moe_sum_reduce, which the adapter refuses (no source in the wheel).
# Writes OUT_DIR/summary.txt (the verdict line of each run), OUT_DIR/NAME.txt (each run's
# per-case lines) and OUT_DIR/NAME.err (the adapter's log: the router, combine and Triton config
# of every case). Exit 0 when the runs without the bug have no failure and every run with it
# fails every case it runs; 1 otherwise; 2 bad usage. Aims at under 4 minutes on an H100.
# GPU_SGLANG_DEVICE=cpu runs the seed runs only, on Triton's interpreter (python3 is then
# whichever Python has torch and triton, e.g. PATH=/work/venv-torch/bin:$PATH).
set -u
device=${GPU_SGLANG_DEVICE:-cuda}
mf=${1:-build-gpu/moefuzz} ssrc=${2:-sglang-src} out=${3:-gpu-sglang-out}
[ -x "$mf" ] || { echo "gpu-sglang: no moefuzz binary at $mf" >&2; exit 2; }
[ -f "$ssrc/sglang/kernels/ops/moe/fused_moe_triton_kernels.py" ] ||
  { echo "gpu-sglang: $ssrc holds no SGLang sources" >&2; exit 2; }
tag=gpu-sglang bug_var=SGLANG_ADAPTER_BUG
source "$(dirname "$0")/gpu-adapter-common.sh"
adapter="python3 python/moefuzz/adapters/sglang_fused_moe.py --sglang-src $ssrc --device $device"
run seeds "" pass --backend "exec:$adapter" corpus/seeds &
run seeds-rsf-dropped drop-rsf fail --backend "exec:$adapter" "${rsf_seeds[@]}" &
wait
if [ "$device" = cpu ]; then
  finish "seeds only: cpu"
fi
for spec in "mixtral-8x7b 1 4096 14336 21" "mixtral-8x7b 16 4096 14336 22" \
            "qwen3-30b-a3b 1 2048 768 31" "qwen3-30b-a3b 16 2048 768 32" \
            "qwen3-30b-a3b 32 2048 768 33" "deepseek-v3 1 2048 256 11" "deepseek-v3 32 2048 256 12"; do
  set -- $spec
  tests/vllm_case.sh "$@" >"$cases/$1-t$2.txt"
done
for m in mixtral-8x7b qwen3-30b-a3b deepseek-v3; do
  run "full-$m" "" pass --backend "exec:$adapter" --fail-unsupported "$cases/$m"-t*.txt &
done
run deepseek-v3-rsf-dropped drop-rsf fail --backend "exec:$adapter" --fail-unsupported \
  "$cases"/deepseek-v3-t*.txt &
wait
finish "full"
