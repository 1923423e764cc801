#!/usr/bin/env bash
# golden_v1.sh MOEFUZZ DIR: case format v1 is frozen. Each canonical DIR/NAME.bin decodes to
# DIR/NAME.txt and that text encodes back to the same bytes; each raw fuzz input DIR/NAME.raw
# decodes (--raw) to DIR/NAME.txt. The files were written by the moefuzz of commit 5009051, the
# last before the format's constants were frozen; a change that alters what existing bytes mean
# fails here. Comment lines are not compared (they name the file decoded).
set -u
mf=$1
dir=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fails=0 n=0
strip() { grep -v '^#' "$1"; }
for bin in "$dir"/*.bin; do
  name=$(basename "$bin" .bin)
  n=$((n + 1))
  if ! "$mf" decode "$bin" >"$tmp/$name.txt" 2>"$tmp/err"; then
    echo "FAIL: decode $bin: $(cat "$tmp/err")"; fails=$((fails + 1)); continue
  fi
  if ! diff <(strip "$dir/$name.txt") <(strip "$tmp/$name.txt") >"$tmp/diff"; then
    echo "FAIL: $bin decodes differently:"; head -10 "$tmp/diff"; fails=$((fails + 1))
  fi
  if ! "$mf" encode "$dir/$name.txt" -o "$tmp/$name.bin" >/dev/null 2>"$tmp/err"; then
    echo "FAIL: encode $dir/$name.txt: $(cat "$tmp/err")"; fails=$((fails + 1)); continue
  fi
  cmp -s "$bin" "$tmp/$name.bin" || { echo "FAIL: $name.txt encodes to other bytes"; fails=$((fails + 1)); }
done
for raw in "$dir"/*.raw; do
  name=$(basename "$raw" .raw)
  n=$((n + 1))
  if ! "$mf" decode --raw "$raw" >"$tmp/$name.txt" 2>"$tmp/err"; then
    echo "FAIL: decode --raw $raw: $(cat "$tmp/err")"; fails=$((fails + 1)); continue
  fi
  if ! diff <(strip "$dir/$name.txt") <(strip "$tmp/$name.txt") >"$tmp/diff"; then
    echo "FAIL: $raw decodes differently:"; head -10 "$tmp/diff"; fails=$((fails + 1))
  fi
done
[ "$n" -ge 10 ] || { echo "FAIL: only $n golden files in $dir"; fails=$((fails + 1)); }
echo "golden v1: $n files, $fails failures"
[ "$fails" -eq 0 ]
