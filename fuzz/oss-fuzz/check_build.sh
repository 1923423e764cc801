#!/usr/bin/env bash
# check_build.sh CC DIR: builds the fuzz targets with build.sh exactly as the README shows it
# (ASan, -O1, libFuzzer as $LIB_FUZZING_ENGINE) into DIR, then runs each target for RUNS inputs
# (default 300) from its seed corpus zip. Fails if the build fails, a target is missing its
# options, dictionary or seed zip, a seed zip is empty, or a target crashes or does not run its
# inputs. The fuzz.oss_fuzz.build_and_run_seeds test.
set -u
cc=$1 dir=$2 runs=${RUNS:-300}
src=$(cd "$(dirname "$0")/../.." && pwd)
rm -rf "$dir"
mkdir -p "$dir"
t0=$(date +%s)
if ! CC=$cc CFLAGS="-O1 -g -fsanitize=address,fuzzer-no-link" LIB_FUZZING_ENGINE=-fsanitize=fuzzer \
  OUT="$dir/out" WORK="$dir/work" "$src/fuzz/oss-fuzz/build.sh" >"$dir/build.log" 2>&1; then
  tail -30 "$dir/build.log"
  echo "FAIL: build.sh failed"
  exit 1
fi
echo "build.sh: $(tail -1 "$dir/build.log") in $(($(date +%s) - t0)) s"
fails=0
for t in fuzz_moe fuzz_inputs; do
  for f in "$t" "$t.options" "$t.dict" "${t}_seed_corpus.zip"; do
    [ -s "$dir/out/$f" ] || { echo "FAIL: $f missing or empty"; fails=$((fails + 1)); }
  done
  [ -x "$dir/out/$t" ] || continue
  mkdir -p "$dir/seeds-$t" "$dir/run-$t"
  (cd "$dir/seeds-$t" && cmake -E tar xf "$dir/out/${t}_seed_corpus.zip")
  nseeds=$(ls "$dir/seeds-$t" | wc -l)
  [ "$nseeds" -gt 0 ] || { echo "FAIL: $t: empty seed corpus"; fails=$((fails + 1)); continue; }
  # the options file as the service applies it, the seeds as a read-only corpus
  opts=$(sed -n 's/^\([a-z_]*\) = \(.*\)$/-\1=\2/p' "$dir/out/$t.options" |
    sed "s|^-dict=|-dict=$dir/out/|")
  # shellcheck disable=SC2086
  (cd "$dir/run-$t" && ASAN_OPTIONS=detect_leaks=0 "$dir/out/$t" $opts -seed=1 -runs="$runs" \
    "$dir/seeds-$t" >"$dir/$t.log" 2>&1)
  code=$?
  done_line=$(grep -E "^Done [0-9]+ runs" "$dir/$t.log")
  echo "$t: $nseeds seeds, exit $code, ${done_line:-no 'Done' line}"
  # libFuzzer checks -runs between its mutation batches, so it may run a few more
  done_runs=$(sed -n 's/^Done \([0-9]*\) runs.*/\1/p' <<<"$done_line")
  if [ "$code" -ne 0 ] || [ -z "$done_runs" ] || [ "$done_runs" -lt "$runs" ]; then
    tail -30 "$dir/$t.log"
    echo "FAIL: $t did not run $runs inputs cleanly"
    fails=$((fails + 1))
  fi
done
[ "$fails" -eq 0 ] && echo "oss-fuzz build: all passed"
exit $((fails > 0))
