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
#      experts are 22.5 GB), mixtral-8x7b (4096, 14336) and qwen3-30b-a3b (2048, 768) at
#      T = 1, 16 and 200 (tests/vllm_case.sh: no shared expert).
# Writes OUT_DIR/summary.txt (the verdict line of each run), OUT_DIR/NAME.txt (each run's
# per-case lines) and OUT_DIR/NAME.err (the adapter's log: the router path and the Triton config
# of every case). Exit 0 when the runs without the bug have no failure and every run with it
# fails its rsf != 1 cases; 1 otherwise; 2 bad usage. Aims at under 5 minutes on an H100.
# GPU_VLLM_DEVICE=cpu runs the seed runs only, on Triton's interpreter (its CPU half: python3 is
# then whichever Python has torch and triton, e.g. PATH=/work/venv-torch/bin:$PATH).
set -u
device=${GPU_VLLM_DEVICE:-cuda}
mf=${1:-build-gpu/moefuzz} vsrc=${2:-vllm-src} out=${3:-gpu-vllm-out}
[ -x "$mf" ] || { echo "gpu-vllm: no moefuzz binary at $mf" >&2; exit 2; }
[ -f "$vsrc/vllm/model_executor/layers/fused_moe/fused_moe.py" ] ||
  { echo "gpu-vllm: $vsrc holds no vLLM sources" >&2; exit 2; }
python3 -c "import torch, triton; assert '$device' == 'cpu' or torch.cuda.is_available()" ||
  { echo "gpu-vllm: python3 needs torch and triton (and a CUDA device)" >&2; exit 2; }
mkdir -p "$out"
cases=$out/cases
mkdir -p "$cases"
adapter="python3 python/moefuzz/adapters/vllm_fused_moe.py --vllm-src $vsrc --device $device"
summary=$out/summary.txt
{
  echo "gpu-vllm.sh, $(date -u +%FT%TZ), commit $(git rev-parse --short HEAD 2>/dev/null || echo ?)"
  nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null
  python3 -c "import torch, triton; print('torch', torch.__version__, 'triton', triton.__version__)"
} >"$summary"
status=0
# run NAME BUG EXPECT ARGS...: EXPECT is pass (exit 0) or fail (every case that ran fails)
run() {
  local name=$1 bug=$2 expect=$3
  shift 3
  local t0=$SECONDS code
  VLLM_ADAPTER_BUG=$bug "$mf" check --no-determinism -q --timeout 600 --max-mib 16384 "$@" \
    >"$out/$name.txt" 2>"$out/$name.err"
  code=$?
  local line
  line=$(grep '^moefuzz check:' "$out/$name.txt" | tail -1)
  printf '%-28s exit %d, %ds: %s\n' "$name" "$code" $((SECONDS - t0)) "${line#moefuzz check: }" \
    >>"$summary"
  if [ "$expect" = pass ]; then
    [ $code -eq 0 ] || status=1
  else
    [ $code -eq 1 ] && grep -q ": 0 passed," <<<"$line" || status=1
  fi
}
# the seeds whose rsf is not 1 (where dropping it is observable)
rsf_seeds=()
for f in corpus/seeds/*.txt; do
  grep -Eq '^rsf = (1|1\.0)$' "$f" || ! grep -q '^rsf = ' "$f" || rsf_seeds+=("$f")
done
run seeds-cuda-router "" pass --backend "exec:$adapter --router cuda" corpus/seeds
run seeds-torch-router "" pass --backend "exec:$adapter --router torch" corpus/seeds
run seeds-cuda-router-rsf-dropped drop-rsf fail --backend "exec:$adapter --router cuda" \
  "${rsf_seeds[@]}"
if [ "$device" = cpu ]; then
  echo "verdict: $([ $status -eq 0 ] && echo as expected || echo NOT as expected) ($SECONDS s, seeds only: cpu)" >>"$summary"
  cat "$summary"
  exit $status
fi
# full-size model routing
full=()
for spec in "deepseek-v3 1 7168 2048 11 32 0" "deepseek-v3 16 7168 2048 12 32 96" \
            "deepseek-v3 200 7168 2048 13 32 224" "mixtral-8x7b 1 4096 14336 21" \
            "mixtral-8x7b 16 4096 14336 22" "mixtral-8x7b 200 4096 14336 23" \
            "qwen3-30b-a3b 1 2048 768 31" "qwen3-30b-a3b 16 2048 768 32" \
            "qwen3-30b-a3b 200 2048 768 33"; do
  set -- $spec
  f="$cases/$1-t$2.txt"
  tests/vllm_case.sh "$@" >"$f"
  full+=("$f")
done
run full-size "" pass --backend "exec:$adapter --router cuda" "${full[@]}"
run full-size-rsf-dropped drop-rsf fail --backend "exec:$adapter --router cuda" \
  "$cases"/deepseek-v3-t*.txt
echo "verdict: $([ $status -eq 0 ] && echo as expected || echo NOT as expected) ($SECONDS s)" \
  >>"$summary"
cat "$summary"
exit $status
