#!/usr/bin/env bash
# cli_bad_input.sh MOEFUZZ SEED_TEXT: bad input gets a clear message and exit 2, never a crash.
# Truncated and corrupted canonical binaries, garbage bytes, malformed text cases, missing files,
# unknown commands and options.
set -u
mf=$1
seed=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fails=0
# Fixed-seed pseudo-random bytes (a 32-bit LCG) instead of /dev/urandom, so that a failure
# replays: rand_bytes N SEED. The seed is printed; MOEFUZZ_TEST_SEED overrides it.
rand_bytes() {
  local n=$1 s=$2 h out="" i
  for ((i = 0; i < n; i++)); do
    s=$(((s * 1103515245 + 12345) & 0xffffffff))
    printf -v h '\\x%02x' $(((s >> 16) & 255))
    out+=$h
  done
  printf "$out"
}
rseed=${MOEFUZZ_TEST_SEED:-1}
echo "random bytes from seed $rseed (MOEFUZZ_TEST_SEED=$rseed reruns them)"

expect() { # expect CODE PATTERN -- command...
  local want=$1 pat=$2
  shift 3
  local out code
  out=$("$@" 2>&1)
  code=$?
  if [ "$code" -ne "$want" ] || ! grep -qiE -- "$pat" <<<"$out"; then
    echo "FAIL: '$*' exited $code (want $want), output:"
    echo "$out" | head -5
    fails=$((fails + 1))
  fi
}

"$mf" encode "$seed" -o "$tmp/good.bin" >/dev/null 2>&1 || { echo "cannot encode the seed"; exit 1; }
n=$(stat -c %s "$tmp/good.bin")
head -c $((n - 3)) "$tmp/good.bin" >"$tmp/truncated.bin"
head -c 12 "$tmp/good.bin" >"$tmp/truncated_header.bin"
cp "$tmp/good.bin" "$tmp/corrupt.bin"
printf '\x55' | dd of="$tmp/corrupt.bin" bs=1 seek=$((n - 5)) conv=notrunc status=none
rand_bytes 700 "$rseed" >"$tmp/garbage.bin"
printf '\x01' >"$tmp/one_byte.bin"
: >"$tmp/empty.bin"
printf 'T = 8\nH = lots\n' >"$tmp/bad_value.txt"
printf 'T = 8\nflavour = strawberry\n' >"$tmp/bad_key.txt"
{ grep -vE '^(E|n_group|topk_group) =' "$seed"; printf 'E = 12\nn_group = 5\ntopk_group = 1\n'; } \
  >"$tmp/bad_group.txt"
printf 'T 8\n' >"$tmp/no_equals.txt"

expect 0 "PASS" -- "$mf" check --fail-unsupported "$tmp/good.bin"
for f in truncated truncated_header corrupt; do
  expect 2 "truncated|corrupted|checksum|canonical" -- "$mf" check "$tmp/$f.bin"
  expect 2 "truncated|corrupted|checksum|canonical" -- "$mf" decode "$tmp/$f.bin"
done
for f in garbage one_byte empty; do
  expect 2 "neither a text case nor a canonical|raw" -- "$mf" check "$tmp/$f.bin"
  expect 2 "neither a text case nor a canonical|raw" -- "$mf" decode "$tmp/$f.bin"
done
expect 0 "raw fuzz input" -- "$mf" decode --raw "$tmp/garbage.bin"
expect 2 "line 2: bad value 'lots'" -- "$mf" check "$tmp/bad_value.txt"
expect 2 "line 2: unknown key 'flavour'" -- "$mf" check "$tmp/bad_key.txt"
expect 2 "n_group=5 does not divide E=12" -- "$mf" encode "$tmp/bad_group.txt"
expect 2 "line 1: expected 'key = value'" -- "$mf" explain "$tmp/no_equals.txt"
expect 2 "cannot access|cannot open" -- "$mf" check "$tmp/does_not_exist.bin"
expect 2 "unknown command" -- "$mf" frobnicate
expect 2 "unknown or incomplete option" -- "$mf" check --sideways "$tmp/good.bin"
expect 2 "unknown backend" -- "$mf" check --backend tpu "$tmp/good.bin"
expect 2 "unknown contract" -- "$mf" check --contract approximately "$tmp/good.bin"
expect 0 "usage: moefuzz check" -- "$mf" check --help
expect 0 "usage: moefuzz bench" -- "$mf" bench --help

# No false green: an empty input set, a file that is not a complete case (truncated mid-way,
# comments only), an option after the paths, an unknown option anywhere.
mkdir "$tmp/empty_dir"
expect 2 "holds no case files" -- "$mf" check "$tmp/empty_dir"
expect 2 "holds no case files" -- "$mf" check "$seed" "$tmp/empty_dir"
"$mf" decode "$seed" >"$tmp/full.txt" 2>/dev/null || { echo "cannot decode the seed"; exit 1; }
head -n 8 "$tmp/full.txt" >"$tmp/truncated.txt"
expect 2 "not a complete case: missing score bias" -- "$mf" check "$tmp/truncated.txt"
printf '# a comment\n\n# another\n' >"$tmp/comments.txt"
expect 2 "not a complete case: missing T H I" -- "$mf" check "$tmp/comments.txt"
{ cat "$tmp/full.txt"; echo "defaults = T"; } >"$tmp/set_and_defaulted.txt"
expect 2 "T both set and listed in defaults" -- "$mf" check "$tmp/set_and_defaulted.txt"
{ grep -v '^rsf =' "$tmp/full.txt"; echo "defaults = rfs"; } >"$tmp/typo_default.txt"
expect 2 "'rfs' in defaults is not a key" -- "$mf" check "$tmp/typo_default.txt"
expect 0 "1 case against" -- "$mf" check "$seed" -q
expect 2 "unknown or incomplete option '--sideways'" -- "$mf" check "$seed" --sideways

echo "cli bad input: $fails failures"
[ "$fails" -eq 0 ]
