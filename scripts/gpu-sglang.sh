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
python3 -c "import torch, triton; assert '$device' == 'cpu' or torch.cuda.is_available()" ||
  { echo "gpu-sglang: python3 needs torch and triton (and a CUDA device)" >&2; exit 2; }
mkdir -p "$out/cases"
cases=$out/cases
adapter="python3 python/moefuzz/adapters/sglang_fused_moe.py --sglang-src $ssrc --device $device"
summary=$out/summary.txt
{
  echo "gpu-sglang.sh, $(date -u +%FT%TZ), commit $(git rev-parse --short HEAD 2>/dev/null || echo ?)"
  nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null
  python3 -c "import torch, triton; print('torch', torch.__version__, 'triton', triton.__version__)"
} >"$summary"
status=0
rm -f "$out"/*.status
finish() {
  grep -qv '^0$' "$out"/*.status 2>/dev/null && status=1
  echo "verdict: $([ $status -eq 0 ] && echo as expected || echo NOT as expected) ($SECONDS s, $1)" \
    >>"$summary"
  cat "$summary"
  exit $status
}
# run NAME BUG EXPECT ARGS...: EXPECT is pass (exit 0) or fail (every case that ran fails)
run() {
  local name=$1 bug=$2 expect=$3
  shift 3
  local t0=$SECONDS code
  SGLANG_ADAPTER_BUG=$bug "$mf" check --no-determinism -q --timeout 600 --max-mib 16384 "$@" \
    >"$out/$name.txt" 2>"$out/$name.err"
  code=$?
  local line
  line=$(grep '^moefuzz check:' "$out/$name.txt" | tail -1)
  printf '%-28s exit %d, %ds: %s\n' "$name" "$code" $((SECONDS - t0)) "${line#moefuzz check: }" \
    >>"$summary"
  local ok=1
  if [ "$expect" = pass ]; then
    [ $code -eq 0 ] || ok=0
  else
    # every case that ran failed (at least one; none crashed or timed out), and under
    # --fail-unsupported none was refused
    local unsup='[0-9]+'
    [[ " $* " == *" --fail-unsupported "* ]] && unsup=0
    [ $code -eq 1 ] && grep -Eq ": 0 passed, [1-9][0-9]* failed, $unsup unsupported" <<<"$line" ||
      ok=0
  fi
  echo $((1 - ok)) >"$out/$name.status"
}
rsf_seeds=()
for f in corpus/seeds/*.txt; do
  grep -Eq '^rsf = (1|1\.0)$' "$f" || ! grep -q '^rsf = ' "$f" || rsf_seeds+=("$f")
done
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
