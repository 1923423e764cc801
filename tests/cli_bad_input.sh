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
# shellcheck source=rand_bytes.sh
. "$(dirname "$0")/rand_bytes.sh"

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

# Every command's options come from one table: a malformed number is refused naming the option
# (never read as 0 or a prefix), an unknown option anywhere is refused, and so is a stray
# argument. Each of these stops before any work, so a build without fuzz targets runs them too.
num="give a whole number"
expect 2 "--max-mib '1e999': give a number above 0" -- "$mf" check --max-mib 1e999 "$seed"
expect 2 "--sample-cols ' 8': $num" -- "$mf" check --sample-cols ' 8' "$seed"
expect 2 "--tokens 'two': $num from 0" -- "$mf" explain --tokens two "$seed"
expect 2 "'--tokens': it needs a value" -- "$mf" explain "$seed" --tokens
expect 2 "unknown or incomplete option '--bogus'" -- "$mf" explain "$seed" --bogus
expect 2 "unexpected argument" -- "$mf" explain "$seed" "$seed"
expect 2 "--max-mib '64MiB': give a number above 0" -- \
  "$mf" export --max-mib 64MiB "$seed" --out "$tmp/x"
expect 2 "--max-total-mib '0': give a number above 0" -- \
  "$mf" export "$seed" --out "$tmp/x" --max-total-mib 0
expect 2 "unknown or incomplete option '--bogus'" -- "$mf" export --bogus "$seed" --out "$tmp/x"
[ ! -e "$tmp/x" ] || { echo "FAIL: export wrote $tmp/x despite bad options"; fails=$((fails + 1)); }
expect 2 "--sample-cols '3.5': $num" -- "$mf" verify --sample-cols 3.5 "$tmp"
expect 2 "unknown or incomplete option '--bogus'" -- "$mf" verify "$tmp" --bogus
expect 2 "--reps 'x': $num from 1 to 32" -- "$mf" bench reference --reps x
expect 2 "--reps '33': $num from 1 to 32" -- "$mf" bench reference --reps 33
expect 2 "--cases '0': $num from 1" -- "$mf" bench reference --cases 0
expect 2 "unknown or incomplete option '--bogus'" -- "$mf" bench reference --bogus
expect 2 "--budget 'soon': give a number above 0" -- "$mf" mutants --budget soon
expect 2 "--seeds '3x': $num from 1 to 32" -- "$mf" mutants --seeds 3x
expect 2 "--eval '-1': $num from 0" -- "$mf" mutants --eval -1
expect 2 "unknown or incomplete option '--bogus'" -- "$mf" mutants --list --bogus
expect 2 "--jobs '2x': $num from 1 to 4096" -- "$mf" fuzz --jobs 2x --workdir "$tmp/w"
expect 2 "--seed '-1': $num from 0" -- "$mf" fuzz --seed -1 --workdir "$tmp/w"
expect 2 "--timeout '1q': give a duration" -- "$mf" fuzz --timeout 1q --workdir "$tmp/w"
expect 2 "unknown or incomplete option '--bogus'" -- "$mf" fuzz --bogus --workdir "$tmp/w"
expect 2 "unexpected argument 'stray'" -- "$mf" fuzz stray --workdir "$tmp/w"
[ ! -e "$tmp/w" ] || { echo "FAIL: fuzz made $tmp/w despite bad options"; fails=$((fails + 1)); }
expect 2 "--runs '0x10': $num from 1" -- "$mf" minimize --runs 0x10 "$tmp/garbage.bin"
expect 2 "unknown or incomplete option '--bogus'" -- "$mf" minimize "$tmp/garbage.bin" --bogus
expect 2 "unknown or incomplete option '--bogus'" -- "$mf" repro --bogus "$tmp/garbage.bin"
expect 2 "unexpected argument" -- "$mf" repro "$tmp/garbage.bin" "$tmp/empty.bin"
expect 2 "unknown or incomplete option '--bogus'" -- "$mf" merge "$tmp/m" "$tmp" --bogus
expect 2 "give OUT_DIR and at least one IN_DIR" -- "$mf" merge "$tmp/m"
[ ! -e "$tmp/m" ] || { echo "FAIL: merge made $tmp/m despite bad options"; fails=$((fails + 1)); }
expect 2 "unknown or incomplete option '--bogus'" -- "$mf" decode --bogus "$tmp/good.bin"
expect 2 "give exactly one file" -- "$mf" decode "$tmp/good.bin" "$tmp/good.bin"
expect 0 "raw fuzz input" -- "$mf" decode "$tmp/garbage.bin" --raw
expect 2 "unknown or incomplete option '--bogus'" -- "$mf" encode --bogus "$seed"
expect 2 "'-o': it needs a value" -- "$mf" encode "$seed" -o
expect 2 "unknown or incomplete option '--bogus'" -- "$mf" models --bogus
expect 2 "takes no arguments" -- "$mf" models deepseek
expect 2 "unknown or incomplete option '--bogus'" -- "$mf" methods --bogus
expect 2 "takes no arguments" -- "$mf" methods flashinfer

echo "cli bad input: $fails failures"
[ "$fails" -eq 0 ]
