#!/usr/bin/env bash
# readme_commands.sh MOEFUZZ SOURCE_DIR: every command of the `sh` blocks of README.md and
# docs/files.md runs, as written, and exits 0.
#
# The commands run one by one, in order, in a copy of the source tree (without build*/ and .git)
# with HOME set to an empty folder, so `cmake --install ... --prefix "$HOME/.local"` and the
# files the commands write stay in the copy. The documents run `moefuzz` from build/fuzz (put on
# PATH by the README's `export PATH=...` line); in the copy build/fuzz is a link to the build
# under test, whatever its preset, since every command that can run here works in every build.
#
# A command whose trailing comment starts with `gpu:` (needs an NVIDIA Hopper GPU) or `long:`
# (a build, an overnight campaign, a crash file of one, more than a few seconds of checking) is
# skipped, by its line, with the comment as the reason; no command is shortened. `export` and
# `cd` lines run in this shell so that what they set holds for the lines after them; every other
# line runs under `bash -c` with a time limit of its own. Any other failure fails the test.
set -u
mf=$1 src=$2
limit_s=60
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

mkdir -p "$tmp/src/build" "$tmp/home"
tar -C "$src" --exclude='./build' --exclude='./build-*' --exclude='./.git' -cf - . |
  tar -C "$tmp/src" -xf - || { echo "FAIL: cannot copy $src"; exit 1; }
ln -s "$(cd "$(dirname "$mf")" && pwd)" "$tmp/src/build/fuzz"
export HOME="$tmp/home"

# FILE<TAB>LINE<TAB>COMMAND for each command of FILE's ```sh blocks; a line ending in a
# backslash continues on the next
extract() {
  awk -v f="$1" '
    /^```sh[ \t]*$/ { inb = 1; next }
    inb && /^```/ { inb = 0; next }
    !inb { next }
    {
      line = $0
      if (!cont) { buf = ""; start = FNR }
      if (line ~ /\\$/) { buf = buf substr(line, 1, length(line) - 1) " "; cont = 1; next }
      buf = buf line; cont = 0
      if (buf ~ /^[ \t]*(#|$)/) next
      print f "\t" start "\t" buf
    }' "$src/$1"
}

cd "$tmp/src" || exit 1
ran=0 skipped=0 failed=0
declare -A ran_in=()
t_all=$(date +%s)
while IFS=$'\t' read -r file line cmd; do
  where="$file:$line"
  if [[ $cmd =~ [[:space:]]#[[:space:]]*(gpu|long):[[:space:]]*(.*)$ ]]; then
    echo "SKIP $where (${BASH_REMATCH[1]}: ${BASH_REMATCH[2]}): $cmd"
    skipped=$((skipped + 1))
    continue
  fi
  echo "RUN  $where: $cmd"
  t0=$(date +%s%N)
  if [[ $cmd =~ ^(export|cd)[[:space:]] ]]; then
    eval "$cmd" >"$tmp/out" 2>&1 </dev/null
    rc=$?
  else
    timeout -k 5 "$limit_s" bash -c "$cmd" >"$tmp/out" 2>&1 </dev/null
    rc=$?
  fi
  ms=$((($(date +%s%N) - t0) / 1000000))
  ran=$((ran + 1))
  ran_in[$file]=$((${ran_in[$file]:-0} + 1))
  if [ "$rc" -ne 0 ]; then
    failed=$((failed + 1))
    if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
      echo "FAIL $where: still running after $limit_s s (mark it '# long:' if it is meant to)"
    else
      echo "FAIL $where: exit $rc; its output ends:"
    fi
    tail -n 25 "$tmp/out" | sed 's/^/    /'
  else
    echo "     ok in $((ms / 1000)).$((ms % 1000 / 100)) s"
  fi
done < <(extract README.md; extract docs/files.md)

echo "readme_commands: $ran commands run (README.md ${ran_in[README.md]:-0}," \
  "docs/files.md ${ran_in[docs/files.md]:-0}), $failed failed, $skipped skipped" \
  "(gpu or long); $(($(date +%s) - t_all)) s"
for f in README.md docs/files.md; do
  if [ "${ran_in[$f]:-0}" -eq 0 ]; then
    echo "FAIL: no command of $f ran (no \`\`\`sh block found?)"
    failed=$((failed + 1))
  fi
done
[ "$failed" -eq 0 ]
