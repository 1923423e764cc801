# gpu-adapter-common.sh: what scripts/gpu-vllm.sh and scripts/gpu-sglang.sh share, sourced
# after each has set mf (the moefuzz binary), out (OUT_DIR), device (cuda or cpu), tag (the
# script's name in messages) and bug_var (its adapter's bug switch, e.g. VLLM_ADAPTER_BUG).
# It checks python3, writes the summary's header, and defines run, finish and rsf_seeds.
python3 -c "import torch, triton; assert '$device' == 'cpu' or torch.cuda.is_available()" ||
  { echo "$tag: python3 needs torch and triton (and a CUDA device)" >&2; exit 2; }
cases=$out/cases
mkdir -p "$cases"
summary=$out/summary.txt
{
  echo "$tag.sh, $(date -u +%FT%TZ), commit $(git rev-parse --short HEAD 2>/dev/null || echo ?)"
  nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null
  python3 -c "import torch, triton; print('torch', torch.__version__, 'triton', triton.__version__)"
} >"$summary"
status=0
# a run's status travels through a file: runs go to the background
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
  env "$bug_var=$bug" "$mf" check --no-determinism -q --timeout 600 --max-mib 16384 "$@" \
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
# the seeds whose rsf is not 1 (where dropping it is observable)
rsf_seeds=()
for f in corpus/seeds/*.txt; do
  grep -Eq '^rsf = (1|1\.0)$' "$f" || ! grep -q '^rsf = ' "$f" || rsf_seeds+=("$f")
done
