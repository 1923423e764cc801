#!/usr/bin/env bash
# files_cli.sh MOEFUZZ SEEDS: `moefuzz export` and `moefuzz verify` on malformed, truncated and
# mismatched files: each gets a clear message and exit 2, never a crash. Result files are built
# here byte by byte (u64 little-endian header length, JSON header, data), so no Python is needed.
set -u
mf=$1
seeds=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fails=0

expect() { # expect CODE PATTERN -- command...
  local want=$1 pat=$2
  shift 3
  local out code
  out=$("$@" 2>&1)
  code=$?
  if [ "$code" -ne "$want" ] || ! grep -qiE -- "$pat" <<<"$out"; then
    echo "FAIL: '$*' exited $code (want $want, pattern '$pat'), output:"
    echo "$out" | tail -5
    fails=$((fails + 1))
  fi
}

le64() { # the 8 bytes of a u64, little-endian
  local n=$1 i
  for i in 0 1 2 3 4 5 6 7; do printf "\\$(printf %03o $(((n >> (8 * i)) & 255)))"; done
}

st() { # st FILE JSON DATA_BYTES: a safetensors file with DATA_BYTES zero bytes of data
  { le64 ${#2}; printf '%s' "$2"; head -c "$3" /dev/zero; } >"$1"
}

# shellcheck source=rand_bytes.sh
. "$(dirname "$0")/rand_bytes.sh"

# exact-ties: T = 6, H = 64, top_k = 5
d=$tmp/cases
expect 0 "wrote .*exact-ties.safetensors" -- "$mf" export "$seeds/exact-ties.txt" --out "$d"
expect 0 "wrote .*integer-exact.safetensors" -- "$mf" export "$seeds/integer-exact.txt" --out "$tmp/two"
r=$d/exact-ties.out.safetensors
expect 2 "no result file .*exact-ties.out.safetensors" -- "$mf" verify "$d"

# a well-formed result that is wrong (all zeros) is a mismatch, not bad input
st "$r" '{"out":{"dtype":"BF16","shape":[6,64],"data_offsets":[0,768]}}' 768
expect 1 "FAIL .*exact-ties" -- "$mf" verify -q "$d"
st "$r" '{"__metadata__":{"unsupported":"no grouped routing here"}}' 0
expect 0 "UNSUPPORTED .*no grouped routing here" -- "$mf" verify "$d"

# malformed results
{ le64 999999; printf '{}'; } >"$r"
expect 2 "header length 999999 exceeds" -- "$mf" verify "$d"
printf 'abc' >"$r"
expect 2 "shorter than the 8-byte header length" -- "$mf" verify "$d"
st "$r" '{"out":{"dtype":"BF16","shape":[6,64],"data_offsets":[0,768]}' 768
expect 2 "safetensors header: .*at byte" -- "$mf" verify "$d"
st "$r" '{"out":{"dtype":"F16","shape":[6,64],"data_offsets":[0,768]}}' 768
expect 2 "tensor 'out' has dtype F16, expected BF16" -- "$mf" verify "$d"
st "$r" '{"out":{"dtype":"BF16","shape":[6,63],"data_offsets":[0,756]}}' 756
expect 2 "tensor 'out' has shape \[6, 63\], expected \[6, 64\]" -- "$mf" verify "$d"
st "$r" '{"out":{"dtype":"BF16","shape":[6,64],"data_offsets":[0,768]}}' 700
expect 2 "reach past the 700-byte data section" -- "$mf" verify "$d"
st "$r" '{"outt":{"dtype":"BF16","shape":[6,64],"data_offsets":[0,768]}}' 768
expect 2 "missing tensor 'out'" -- "$mf" verify "$d"
st "$r" '{"out":{"dtype":"BF16","shape":[6,64],"data_offsets":[0,768]},"topk_ids":{"dtype":"I64","shape":[6,5],"data_offsets":[768,1008]}}' 1008
expect 2 "tensor 'topk_ids' has dtype I64, expected I32" -- "$mf" verify "$d"
st "$r" '{"out":{"dtype":"BF16","shape":[6,64],"data_offsets":[0,768]},"topk_weights":{"dtype":"F32","shape":[6,5],"data_offsets":[768,888]}}' 888
expect 2 "topk_weights without topk_ids" -- "$mf" verify "$d"

# malformed or mismatched case files
st "$r" '{"out":{"dtype":"BF16","shape":[6,64],"data_offsets":[0,768]}}' 768
c=$d/exact-ties.safetensors
cp "$c" "$tmp/good.safetensors"
head -c 2000 "$tmp/good.safetensors" >"$c"
expect 2 "reach past|exceeds" -- "$mf" verify "$d"
LC_ALL=C sed 's/"T":"6"/"T":"7"/' "$tmp/good.safetensors" >"$c"
expect 2 "does not match its text case: T = 7 in the metadata, 6" -- "$mf" verify "$d"
LC_ALL=C sed 's/"rsf":"2.5"/"rsf":"two"/' "$tmp/good.safetensors" >"$c"
expect 2 "bad value 'two' for rsf" -- "$mf" verify "$d"
LC_ALL=C sed 's/"dtype":"F32"/"dtype":"I32"/' "$tmp/good.safetensors" >"$c"
expect 2 "tensor 'logits' has dtype I32, expected F32" -- "$mf" verify "$d"
LC_ALL=C sed 's/"format":"moefuzz-case-1"/"format":"moefuzz-case-9"/' "$tmp/good.safetensors" >"$c"
expect 2 "case file format 'moefuzz-case-9'" -- "$mf" verify "$d"
rand_bytes 3000 "$rseed" >"$c"
expect 2 "safetensors|exceeds|shorter" -- "$mf" verify "$d"
cp "$tmp/good.safetensors" "$c"
expect 1 "FAIL .*exact-ties" -- "$mf" verify -q "$d"

# a result for another case: the shapes disagree
cp "$r" "$tmp/two/integer-exact.out.safetensors"
expect 2 "tensor 'out' has shape \[6, 64\], expected \[4, 64\]" -- "$mf" verify "$tmp/two"

# usage errors
expect 2 "give --out DIR" -- "$mf" export "$seeds/exact-ties.txt"
expect 2 "unknown routing method" -- "$mf" export --method flashinfer:Nope "$seeds/exact-ties.txt" --out "$tmp/m"
expect 0 "k=5 none g=1/1 rn=0" -- "$mf" export --method flashinfer:TopK "$seeds/exact-ties.txt" --out "$tmp/m"
expect 2 "unknown contract" -- "$mf" verify --contract roughly "$d"
mkdir -p "$tmp/empty"
expect 2 "no case files" -- "$mf" verify "$tmp/empty"
expect 2 "cannot access" -- "$mf" verify "$tmp/does-not-exist"
expect 2 "unknown routing method" -- "$mf" check --method trtllm:77 "$seeds/exact-ties.txt"
expect 2 "exec backend.*(exited|killed|no hello|hello)" -- "$mf" check --backend "exec:exit 3" "$seeds/exact-ties.txt"
expect 2 "before answering hello; its last output: howdy" -- "$mf" check --backend "exec:read l; echo howdy" "$seeds/exact-ties.txt"
expect 2 "hello without the adapter's name" -- "$mf" check --backend "exec:read l; echo hello" "$seeds/exact-ties.txt"
expect 2 "unknown contract 'roughly'" -- "$mf" check --backend "exec:read l; echo hello x contract=roughly" "$seeds/exact-ties.txt"
expect 2 "does not export mf_kernel_get_api|cannot open|No such file" -- "$mf" check --backend plugin:/nonexistent.so "$seeds/exact-ties.txt"
expect 0 "flashinfer:DeepSeekV3 +2 " -- "$mf" methods
expect 0 "trtllm:MiniMax2 +5 " -- "$mf" methods
expect 0 "vllm:Renormalize +1 .*IGNORED" -- "$mf" methods
[ "$fails" -eq 0 ] && echo "files_cli: all passed"
exit $((fails > 0))
