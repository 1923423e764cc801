#!/usr/bin/env bash
# gpu-vllm.sh [MOEFUZZ] [VLLM_SRC] [OUT_DIR]: vLLM 0.33.0's bf16 fused MoE on the GPU machine,
# through python/moefuzz/adapters/vllm_fused_moe.py: vLLM's Triton fused_moe_kernel compiled by
# Triton for the card, its launcher, config choice (tuned JSON where vLLM has one for the card)
# and torch router read from vLLM's sources, its C++ ops computed in torch from their CUDA
# sources. Run from the source root:
#
#   scripts/gpu-vllm.sh build-gpu/moefuzz vllm-src "$OUT"
#
# MOEFUZZ defaults to build-gpu/moefuzz, VLLM_SRC to vllm-src (git-ignored: the files of the
# vLLM 0.33.0 sdist named in VLLM_FILES of the adapter, and optionally its
# vllm/model_executor/layers/fused_moe/configs/ JSON files for the card), OUT_DIR to
# gpu-vllm-out. python3 needs torch and triton (no vllm package). Runs, each with and without
# VLLM_ADAPTER_BUG=drop-rsf (vLLM PR #43769's routed scaling factor dropped):
#   1. corpus/seeds with --router cuda (contract vllm-0.33-triton-sm90) and --router torch
#      (vllm-0.33-triton-sm90-torch-router); each seed is run by the one router vLLM takes
#      for it, refused by the other;
#   2. full-size routing of deepseek-v3 (H 7168, I 2048, one EP-8 rank of 32 experts: all 256
#      experts are 22.5 GB) at T = 1, 64, 200, mixtral-8x7b (4096, 14336) at T = 1, 16 and
#      qwen3-30b-a3b (2048, 768) at T = 1, 16, 200 (tests/vllm_case.sh: no shared expert);
#      deepseek-v3 at T = 64 with the bug.
# Writes OUT_DIR/summary.txt (the verdict line of each run), OUT_DIR/NAME.txt (each run's
# per-case lines) and OUT_DIR/NAME.err (the adapter's log: the router path and the Triton config
# of every case). Exit 0 when the runs without the bug have no failure and every run with it
# fails its rsf != 1 cases; 1 otherwise; 2 bad usage. Aims at under 5 minutes on an H100.
# GPU_VLLM_DEVICE=cpu runs the seed runs only, on Triton's interpreter (its CPU half: python3 is
# then whichever Python has torch and triton, e.g. PATH=/work/venv-torch/bin:$PATH).
# GPU_VLLM_MODE=fp8 runs vLLM's FP8 block-scale path instead (adapter --fp8, contract
# vllm-0.33-triton-fp8-sm90), each with and without the bug: the fp8_block seeds with the two
# vllm-fp8 cases of tests/emulations/cases/, then DeepSeek-V3 FP8 at full size (H 7168, I 2048,
# blocks 128 x 128) at T = 1 (fp32 activation scales, one EP-8 rank of 32 experts; its token
# selects expert 25 of the rank) and T = 64 (UE8M0 scales, as vLLM with DeepGEMM's E8M0 takes
# them; one EP-16 rank of 16 experts, 1024 sampled output columns, to keep the exact reference
# near 2 minutes of one core).
# GPU_VLLM_MODE=fp8-served runs vLLM's modular path as a served FP8 model runs it (adapter
# --fp8 --served, contract vllm-0.33-triton-fp8-served-sm90: the fused
# silu_and_mul_per_block_quant), each with and without the bug: the fp8_block seeds and cases with
# fp32 scales and 128 x 128 blocks (the others take the unfused path: GPU_VLLM_MODE=fp8), then
# DeepSeek-V3 FP8 at full size at T = 1 (the fp8 mode's T 1 case).
set -u
device=${GPU_VLLM_DEVICE:-cuda}
mf=${1:-build-gpu/moefuzz} vsrc=${2:-vllm-src} out=${3:-gpu-vllm-out}
[ -x "$mf" ] || { echo "gpu-vllm: no moefuzz binary at $mf" >&2; exit 2; }
[ -f "$vsrc/vllm/model_executor/layers/fused_moe/fused_moe.py" ] ||
  { echo "gpu-vllm: $vsrc holds no vLLM sources" >&2; exit 2; }
tag=gpu-vllm bug_var=VLLM_ADAPTER_BUG
source "$(dirname "$0")/gpu-adapter-common.sh"
adapter="python3 python/moefuzz/adapters/vllm_fused_moe.py --vllm-src $vsrc --device $device"
if [ "${GPU_VLLM_MODE:-bf16}" = fp8-served ]; then
  served=($(grep -l '^weight_format = fp8_block' corpus/seeds/*.txt \
    tests/emulations/cases/vllm-fp8-*.txt | xargs grep -l '^scale_format = f32' |
    xargs grep -l '^block_k = 128' | xargs grep -l '^block_n = 128'))
  served_rsf=()
  for f in "${served[@]}"; do grep -Eq '^rsf = (1|1\.0)$' "$f" || served_rsf+=("$f"); done
  run served-seeds "" pass --backend "exec:$adapter --fp8 --served" --fail-unsupported \
    "${served[@]}" &
  run served-seeds-rsf-dropped drop-rsf fail --backend "exec:$adapter --fp8 --served" \
    "${served_rsf[@]}" &
  wait
  [ "$device" = cpu ] && finish "fp8-served seeds only: cpu"
  tests/vllm_case.sh deepseek-v3-fp8 1 7168 2048 41 32 0 >"$cases/deepseek-v3-fp8-t1.txt"
  run full-served-deepseek-v3-fp8-t1 "" pass --fail-unsupported \
    --backend "exec:$adapter --fp8 --served" "$cases/deepseek-v3-fp8-t1.txt" &
  run full-served-deepseek-v3-fp8-t1-rsf-dropped drop-rsf fail --fail-unsupported \
    --no-attribution --backend "exec:$adapter --fp8 --served" "$cases/deepseek-v3-fp8-t1.txt" &
  wait
  finish "fp8-served full"
fi
if [ "${GPU_VLLM_MODE:-bf16}" = fp8 ]; then
  fp8_seeds=($(grep -l '^weight_format = fp8_block' corpus/seeds/*.txt) \
    tests/emulations/cases/vllm-fp8-*.txt)
  fp8_rsf=()
  for f in "${fp8_seeds[@]}"; do grep -Eq '^rsf = (1|1\.0)$' "$f" || fp8_rsf+=("$f"); done
  run fp8-seeds "" pass --backend "exec:$adapter --fp8" --fail-unsupported "${fp8_seeds[@]}" &
  run fp8-seeds-rsf-dropped drop-rsf fail --backend "exec:$adapter --fp8" "${fp8_rsf[@]}" &
  wait
  [ "$device" = cpu ] && finish "fp8 seeds only: cpu"
  tests/vllm_case.sh deepseek-v3-fp8 1 7168 2048 41 32 0 >"$cases/deepseek-v3-fp8-t1.txt"
  tests/vllm_case.sh deepseek-v3-fp8-ue8m0 64 7168 2048 42 16 96 \
    >"$cases/deepseek-v3-fp8-ue8m0-t64.txt"
  for c in deepseek-v3-fp8-t1 deepseek-v3-fp8-ue8m0-t64; do
    sample=()
    [ "$c" = deepseek-v3-fp8-t1 ] || sample=(--sample-cols 1024)
    run "full-$c" "" pass --fail-unsupported ${sample[@]+"${sample[@]}"} \
      --backend "exec:$adapter --fp8" "$cases/$c.txt" &
    run "full-$c-rsf-dropped" drop-rsf fail --fail-unsupported --no-attribution \
      ${sample[@]+"${sample[@]}"} --backend "exec:$adapter --fp8" "$cases/$c.txt" &
  done
  wait
  finish "fp8 full"
fi
# the seed runs, then the full-size runs, each group in parallel (moefuzz's reference is one
# core per run; the GPU machine has 16)
run seeds-cuda-router "" pass --backend "exec:$adapter --router cuda" corpus/seeds &
run seeds-torch-router "" pass --backend "exec:$adapter --router torch" corpus/seeds &
run seeds-cuda-router-rsf-dropped drop-rsf fail --backend "exec:$adapter --router cuda" \
  "${rsf_seeds[@]}" &
run seeds-torch-router-rsf-dropped drop-rsf fail --backend "exec:$adapter --router torch" \
  "${rsf_seeds[@]}" &
wait
if [ "$device" = cpu ]; then
  finish "seeds only: cpu"
fi
# full-size model routing; T and the models chosen so that the exact reference stays within
# about a minute a run on one core (Mixtral's experts are the costly ones: 176M products each)
for spec in "deepseek-v3 1 7168 2048 11 32 0" "deepseek-v3 64 7168 2048 12 32 96" \
            "deepseek-v3 200 7168 2048 13 32 224" "mixtral-8x7b 1 4096 14336 21" \
            "mixtral-8x7b 16 4096 14336 22" "qwen3-30b-a3b 1 2048 768 31" \
            "qwen3-30b-a3b 16 2048 768 32" "qwen3-30b-a3b 200 2048 768 33"; do
  set -- $spec
  tests/vllm_case.sh "$@" >"$cases/$1-t$2.txt"
done
for m in deepseek-v3 mixtral-8x7b qwen3-30b-a3b; do
  run "full-$m" "" pass --backend "exec:$adapter --router cuda" "$cases/$m"-t*.txt &
done
# T = 64 only: the T = 1 case's token selects no expert of this rank (its output is 0 whatever
# rsf is); no attribution (its counterfactual references cost minutes at this size)
run full-deepseek-v3-rsf-dropped drop-rsf fail --no-attribution \
  --backend "exec:$adapter --router cuda" "$cases"/deepseek-v3-t64.txt &
wait
finish "full"
