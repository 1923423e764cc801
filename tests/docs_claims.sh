#!/usr/bin/env bash
# docs_claims.sh MOEFUZZ SRC: the counts and lists that README.md and docs/*.md state, compared
# with what the built tool prints and what the tree holds. A number in the docs that a test
# enforces is listed with its test in docs/design.md ("What the numbers rest on"); the ones this
# script owns are:
#   - the README's commands table against `moefuzz --help`, and every command's --help exits 0;
#   - the exit codes the README states against `moefuzz --help`;
#   - the mutants named in the README's zoo table and in docs/bugs.md against `moefuzz mutants
#     --list`, with their knobs, and the counts of mutants and knob mutants the docs state;
#   - the findings of docs/fuzzing.md against corpus/regress/;
#   - the number of seeds the README states against corpus/seeds/, a seed per supported model;
#   - the model families and the projects of `moefuzz methods` the README names;
#   - the case counts of the soundness and power tests the README states against their ctest
#     registration;
#   - the README's example case: it parses, round-trips through the binary form and passes;
#   - every ctest name cited in README.md and docs/*.md is registered in tests/;
#   - the ctest labels the README lists against those registered;
#   - the README's table of semantics ("What it models"): every case key and every value of every
#     enum key (as the parser lists them) has a row; every value marked computed by the reference
#     and the CPU kernel is used by a seed or a passing tests/cases/cpu-*.txt; the CUDA column's
#     "gate" (the CUDA kernel declares no feature level); the "not expressible" refusals; every
#     row of the refusals table, run, prints its message and exits as stated;
#   - constants quoted by the docs against the source (fuzz cells, poison payload, guard band);
#   - every docs/ path cited in README.md and docs/ exists.
# Exit 0: every claim holds; 1: a claim is wrong (each printed); 2: bad usage.
set -u
if [ $# -ne 2 ] || [ ! -x "$1" ] || [ ! -f "$2/README.md" ]; then
  echo "usage: docs_claims.sh MOEFUZZ SOURCE_DIR" >&2
  exit 2
fi
mf=$1 src=$2
readme=$src/README.md
fails=0 checks=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
ok() { checks=$((checks + 1)); }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# lines of README.md from the heading $1 to the next heading of level 2
section() { awk -v h="$1" '$0 == h {on = 1; next} on && /^## / {exit} on' "$readme"; }
# compare two sorted lists, named $1 and $2, in files $3 and $4
same_list() {
  if ! diff -q "$3" "$4" >/dev/null; then
    fail "$1 and $2 differ (< $1, > $2):"
    diff "$3" "$4" | grep '^[<>]'
  else
    ok
  fi
}

# ---- commands ----
"$mf" --help >"$tmp/help" || fail "moefuzz --help exited $?"
awk '/^commands:/ {on = 1; next} on && NF == 0 {exit} on {print $1}' "$tmp/help" | sort \
  >"$tmp/cmds.tool"
section "## Commands" | grep '^| `moefuzz' | cut -d'|' -f2 | grep -o 'moefuzz [a-z]*' |
  awk '{print $2}' | sort -u >"$tmp/cmds.readme"
[ -s "$tmp/cmds.tool" ] || fail "moefuzz --help lists no command"
same_list "README commands table" "moefuzz --help" "$tmp/cmds.readme" "$tmp/cmds.tool"
while read -r c; do
  if "$mf" "$c" --help >"$tmp/out" 2>&1 && [ -s "$tmp/out" ]; then ok; else
    fail "moefuzz $c --help: exit $? or no text"
  fi
done <"$tmp/cmds.tool"
codes='0 pass, 1 mismatch, 2 bad input'
if grep -q "Exit codes: $codes" "$readme" && grep -q "Exit codes: $codes" "$tmp/help"; then ok
else fail "exit codes '$codes': not stated alike by README.md and moefuzz --help"; fi

# ---- mutants ----
"$mf" mutants --list >"$tmp/mutants" || fail "moefuzz mutants --list exited $?"
awk '{print $1, $3}' "$tmp/mutants" | sort >"$tmp/mut.tool"
n_mut=$(wc -l <"$tmp/mut.tool")
n_knob=$(awk '$2 != "-"' "$tmp/mut.tool" | wc -l)
[ "$n_mut" -gt 0 ] || fail "moefuzz mutants --list lists no mutant"
# README zoo table: mutant and "attributed to" (none for a mutant that names no knob)
section "## Measured" | grep '^| [a-z0-9-]* |' | grep -v -e '^| correct kernel' -e '^| mutant |' |
  awk -F'|' '{gsub(/ /, "", $2); gsub(/ /, "", $5); print $2, ($5 == "none" ? "-" : $5)}' |
  sort >"$tmp/mut.readme"
same_list "README zoo table (mutant, knob)" "moefuzz mutants --list" "$tmp/mut.readme" \
  "$tmp/mut.tool"
grep '^| [a-z0-9-]* | ' "$src/docs/bugs.md" | grep -v '^| mutant |' | awk -F'|' '{gsub(/ /, "", $2); print $2}' |
  sort >"$tmp/bugs.docs"
awk '{print $1}' "$tmp/mut.tool" >"$tmp/mut.names"
same_list "docs/bugs.md table" "moefuzz mutants --list" "$tmp/bugs.docs" "$tmp/mut.names"
words=(zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen
  fifteen sixteen seventeen eighteen nineteen twenty twenty-one twenty-two twenty-three
  twenty-four twenty-five twenty-six twenty-seven twenty-eight twenty-nine thirty)
claim() { # claim FILE TEXT: TEXT occurs in FILE (line breaks in FILE read as spaces)
  if tr '\n' ' ' <"$1" | tr -s ' ' | grep -qF -- "$2"; then ok; else
    fail "${1#"$src"/} does not state '$2' (the tool or tree says so)"
  fi
}
claim "$readme" "the CPU kernel's $n_mut mutants"
claim "$readme" "the $n_knob knob mutants are attributed"
claim "$src/docs/bugs.md" "The knob mutants (${words[$n_knob]}:"
claim "$src/docs/bugs.md" "the other ${words[$((n_mut - n_knob))]} are caught"

# ---- the regression files of docs/fuzzing.md's findings ----
n_regress=$(find "$src/corpus/regress" -maxdepth 1 -name '*.txt' | wc -l)
claim "$src/docs/fuzzing.md" "no kernel bug, and ${words[$n_regress]} false alarms"
while read -r f; do
  if [ -f "$src/corpus/regress/$f.txt" ]; then ok; else
    fail "docs/fuzzing.md's findings name corpus/regress/$f.txt; there is none"
  fi
done < <(grep -o '^| `[a-z0-9-]*` |' "$src/docs/fuzzing.md" | tr -d '|` ')

# ---- seeds and models ----
n_seeds=$(find "$src/corpus/seeds" -maxdepth 1 -name '*.txt' | wc -l)
claim "$readme" "(the $n_seeds seeds + 100 random cases)"
"$mf" models >"$tmp/models" || fail "moefuzz models exited $?"
awk 'NR > 1 && !/NOT IN CASE FORMAT/ {print $1}' "$tmp/models" >"$tmp/models.supported"
[ -s "$tmp/models.supported" ] || fail "moefuzz models lists no supported model"
while read -r m; do
  if [ -f "$src/corpus/seeds/model-$m.txt" ]; then ok; else
    fail "README: corpus/seeds holds the small twin of every supported model; no model-$m.txt"
  fi
done <"$tmp/models.supported"
for fam in DeepSeek-V3 Kimi GLM Qwen3 Mixtral; do
  if grep -qi "^$fam" "$tmp/models.supported"; then ok; else
    fail "README names $fam among the model presets; moefuzz models has none"
  fi
done
"$mf" methods >"$tmp/methods" || fail "moefuzz methods exited $?"
for p in flashinfer vllm trtllm; do
  if grep -q "^$p:" "$tmp/methods"; then ok; else fail "moefuzz methods lists no $p: method"; fi
done

# ---- case counts of the tests the README cites ----
cm=$src/tests/CMakeLists.txt
n=$(grep -o 'random10000 COMMAND test_soundness [0-9]*' "$cm" | awk '{print $4}')
[ "$n" = 10000 ] && grep -q 'soundness.cpu.random10000' "$cm" && ok ||
  fail "README: soundness on 10,000 random cases; tests/CMakeLists.txt runs '${n:-none}'"
claim "$readme" "inside it on 10,000 random cases"
n=$(grep -o 'COMMAND test_power [0-9]*' "$cm" | awk '{print $3}')
claim "$readme" "rejected on each of ${n:-?} random cases"

# ---- the README's example case ----
section "## Cases" | awk '/^```/ {n++; next} n == 1' >"$tmp/example.txt"
grep -q '^rsf = ' "$tmp/example.txt" || fail "README: no example case found under ## Cases"
if "$mf" encode "$tmp/example.txt" -o "$tmp/example.bin" >/dev/null 2>&1 &&
  "$mf" decode "$tmp/example.bin" >"$tmp/example.dec" 2>&1 &&
  "$mf" check -q "$tmp/example.txt" >"$tmp/example.out" 2>&1; then ok
else
  fail "README's example case does not encode, decode and pass:"
  cat "$tmp/example.out" 2>/dev/null | head -5
fi

# ---- ctest names and labels ----
# registered names, with ${...} of a foreach as a wildcard
grep -rho --include=CMakeLists.txt 'mf_add_test([^ ]*' "$src/tests" | sed 's/mf_add_test(//' |
  sed 's/\${[^}]*}/*/g' | sort -u >"$tmp/tests.registered"
cat "$readme" "$src"/docs/*.md | grep -o '`[a-z0-9_]*\.[a-z0-9_.*]*`' | tr -d '`' |
  grep -E '^(soundness|reference|check|codec|cli|corpus|docs|fuzz|mutants|files|plugin|install|python|gpu|emu)\.' |
  grep -vE '\.(md|txt|c|h|cu|cuh|sh|so|py|log)$' | sort -u >"$tmp/tests.cited"
while read -r t; do
  found=0
  while read -r r; do
    # shellcheck disable=SC2053 # glob matches on purpose, both ways
    if [[ $t == $r || $r == $t ]]; then found=1 && break; fi
  done <"$tmp/tests.registered"
  if [ $found = 1 ]; then ok; else fail "the docs cite ctest '$t'; no test of that name"; fi
done <"$tmp/tests.cited"
grep -rh --include=CMakeLists.txt -E 'LABELS|set\(labels|APPEND labels' "$src/tests" |
  sed -E 's/.*(LABELS|set\(labels|APPEND labels)//; s/(TIMEOUT|\)).*//' | tr ' ' '\n' |
  grep -E '^[a-z][a-z-]*$' | sort -u >"$tmp/labels.registered"
grep -o 'ctest programs (labels: [^)]*)' "$readme" | sed 's/.*labels: //; s/)$//' | tr -d ',' |
  tr ' ' '\n' | grep . | sort -u >"$tmp/labels.readme"
same_list "README's ctest labels" "the labels in tests/" "$tmp/labels.readme" \
  "$tmp/labels.registered"

# ---- constants the docs quote ----
const() { # const NAME VALUE FILE DOCFILE TEXT
  if grep -qE "#define $1 $2\b" "$src/$3"; then ok; else fail "$3: $1 is not $2"; fi
  claim "$src/$4" "$5"
}
if grep -qF "_Static_assert(MF_FUZZ_CELLS == 248832," "$src/src/fuzz.c"; then ok; else
  fail "src/fuzz.c: MF_FUZZ_CELLS is not asserted to be 248832"; fi
claim "$src/docs/fuzzing.md" "248,832 cells"
const MF_POISON_BF16 0x7fa5u src/run_result.h docs/design.md "NaN payload (0x7fa5)"
const MF_GUARD_ELEMS 64 src/run_result.h docs/design.md "64 guard elements"
if grep -q '^limit=(--time 60)' "$src/scripts/main-job.sh"; then ok; else
  fail "scripts/main-job.sh no longer fuzzes for 60 s"
fi
claim "$readme" "fuzz the built-in CPU kernel for 60 s"

# ---- the README's table of semantics ("What it models") ----
section "## What it models" >"$tmp/wim"
# rows of the main table (10 columns: NF 12) and of the refusals table (4 columns: NF 6)
awk -F'|' 'NF == 12 && $2 !~ /^ *(semantic|---)/' "$tmp/wim" >"$tmp/wim.rows"
awk -F'|' 'NF == 6 && $2 !~ /^ *(refused|---)/' "$tmp/wim" >"$tmp/wim.refusals"
[ -s "$tmp/wim.rows" ] || fail "README: no table under ## What it models"
# every key of the case format, and every value of each enum key, from the parser itself: a
# v2 case decoded prints every key; a bad value is refused with the key's choices
"$mf" decode "$src/tests/cases/fp8-block-plain.txt" >"$tmp/full.txt" ||
  fail "moefuzz decode tests/cases/fp8-block-plain.txt exited $?"
: >"$tmp/pairs.tool"
grep -v -e '^#' -e '^gen\.' "$tmp/full.txt" | awk '{print $1}' >"$tmp/keys"
while read -r k; do
  awk -v k="$k" '$1 == k {print k " = zzz"; next} {print}' "$tmp/full.txt" >"$tmp/bad.txt"
  msg=$("$mf" encode "$tmp/bad.txt" -o "$tmp/bad.bin" 2>&1)
  choices=$(printf '%s\n' "$msg" | sed -n "s/.*bad value 'zzz' for $k (\(.*\))\$/\1/p")
  if [ -n "$choices" ]; then
    printf '%s\n' "$choices" | sed 's/, / /g; s/ or / /' | tr ' ' '\n' |
      awk -v k="$k" 'NF {print k " = " $1}' >>"$tmp/pairs.tool"
  else
    case $k in T | H | I | E | top_k) continue ;; esac # shapes, not semantics
    if grep -qF "\`$k" "$tmp/wim.rows"; then ok; else
      fail "README's table under ## What it models does not name the case key '$k'"
    fi
  fi
done <"$tmp/keys"
[ -s "$tmp/pairs.tool" ] || fail "no enum values found through moefuzz encode's messages"
while read -r pair; do
  if grep -qF "\`$pair\`" "$tmp/wim.rows"; then ok; else
    fail "README's table under ## What it models has no row for \`$pair\`"
  fi
done <"$tmp/pairs.tool"
# a value the table says the reference and the CPU kernel compute is used by a seed, which
# ctest corpus.seeds_and_regressions.cpu checks on the CPU kernel, or by a case
# tests/cases/cpu-*.txt, checked here (a v1 case uses the first value of every v2 key: v1's
# semantics)
: >"$tmp/pairs.seeds"
for f in "$src"/tests/cases/cpu-*.txt; do
  [ -f "$f" ] || continue
  if "$mf" check -q --fail-unsupported "$f" >"$tmp/out" 2>&1; then ok; else
    fail "${f#"$src"/} does not pass on the CPU kernel: $(head -3 "$tmp/out")"
  fi
done
for f in "$src"/corpus/seeds/*.txt "$src"/tests/cases/cpu-*.txt; do
  [ -f "$f" ] || continue
  "$mf" decode "$f" >"$tmp/seed.txt" 2>/dev/null || { fail "moefuzz decode $f exited $?"; continue; }
  grep -v -e '^#' -e '^gen\.' "$tmp/seed.txt" >>"$tmp/pairs.seeds"
  awk '{print $1}' "$tmp/pairs.tool" | sort -u | while read -r k; do
    grep -q "^$k = " "$tmp/seed.txt" || grep -m1 "^$k = " "$tmp/pairs.tool"
  done >>"$tmp/pairs.seeds"
done
awk -F'|' '{gsub(/ /, "", $4); gsub(/ /, "", $5); if ($4 == "yes" && $5 == "yes") print $3}' \
  "$tmp/wim.rows" | grep -o '`[a-z_0-9]* = [a-z_0-9]*`' | tr -d '`' | sort -u >"$tmp/pairs.cpu"
while read -r pair; do
  if grep -qxF "$pair" "$tmp/pairs.seeds"; then ok; else
    fail "README: the CPU kernel computes '$pair'; no seed in corpus/seeds nor tests/cases/cpu-*.txt uses it"
  fi
done <"$tmp/pairs.cpu"
# the CUDA column's "gate": the CUDA kernel declares no feature level (it speaks level 1)
if grep -q 'gate' <(awk -F'|' '{print $6}' "$tmp/wim.rows"); then
  if grep -q 'get_ext' "$src/kernels/cuda/moe_cuda.cu"; then
    fail "kernels/cuda/moe_cuda.cu declares get_ext (a feature level): README's CUDA column says level 1"
  else ok; fi
  claim "$src/src/backend.c" '"needs ABI feature level %u (%s); the kernel speaks level %u"'
fi
# "not expressible": a case that names it is refused
for bad in 'sparsemixer = 1|unknown key '"'"'sparsemixer'"'" \
  'weight_format = nvfp4|bad value '"'"'nvfp4'"'"' for weight_format (bf16, fp8_block or mxfp4)'; do
  line=${bad%%|*} want=${bad#*|}
  { grep -v "^${line%% =*} = " "$tmp/full.txt"; echo "$line"; } >"$tmp/bad.txt"
  out=$("$mf" check "$tmp/bad.txt" 2>&1)
  rc=$?
  if [ $rc = 2 ] && printf '%s' "$out" | grep -qF -- "$want"; then ok; else
    fail "a case with '$line': exit $rc, not 2 with '$want': $out"
  fi
  claim "$readme" "$want"
done
# every refusal of the table: the command, run from the top directory, prints the message (its
# parts around " ... " in order) and exits as stated
[ -s "$tmp/wim.refusals" ] || fail "README: no refusals table under ## What it models"
mf_abs=$(cd "$(dirname "$mf")" && pwd)/$(basename "$mf")
while IFS='|' read -r _ _ cmd want code _; do
  cmd=$(printf '%s' "$cmd" | sed 's/^ *`//; s/` *$//')
  want=$(printf '%s' "$want" | sed 's/^ *//; s/ *$//')
  code=$(printf '%s' "$code" | tr -d ' ')
  case $cmd in "moefuzz "*) ;; *) fail "refusals table: '$cmd' is not a moefuzz command"; continue ;; esac
  read -ra argv <<<"${cmd#moefuzz }"
  out=$(cd "$src" && "$mf_abs" "${argv[@]}" 2>&1)
  rc=$?
  rest=$(printf '%s' "$out" | tr '\n' ' ')
  found=1
  while IFS= read -r part; do
    case $rest in *"$part"*) rest=${rest#*"$part"} ;; *) found=0 ;; esac
  done < <(printf '%s\n' "$want" | sed 's/ \.\.\. /\n/g')
  if [ "$rc" = "$code" ] && [ $found = 1 ]; then ok; else
    fail "README refusal '$cmd': exit $rc (table: $code), message '$want' $([ $found = 1 ] && echo found || echo 'not found'): $(printf '%s' "$out" | head -3)"
  fi
done <"$tmp/wim.refusals"

# ---- links ----
cat "$readme" "$src"/docs/*.md "$src"/docs/notes/*.md | grep -o 'docs/[A-Za-z0-9_/.-]*\.md' |
  sort -u | while read -r d; do
  [ -f "$src/$d" ] || echo "$d"
done >"$tmp/dangling"
if [ -s "$tmp/dangling" ]; then
  fail "docs cited but missing: $(tr '\n' ' ' <"$tmp/dangling")"
else ok; fi

echo "docs claims: $checks held, $fails wrong"
[ $fails -eq 0 ]
