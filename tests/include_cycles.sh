#!/usr/bin/env bash
# include_cycles.sh SRC_DIR [LIBRARY.a...]: src/ depends one way. A module is a source's stem
# (check.c and check.h are module check); module A depends on B when a file of A includes B's
# header, or, for each library given, when an object of A uses a symbol an object of B defines
# (a call into a .c whose declaration sits in another module's header). Every cycle of either
# graph is printed, as "a -> b -> a"; exit 0 when there is none, 1 when there is, 2 on bad usage.
set -u
if [ $# -lt 1 ] || [ ! -d "$1" ]; then
  echo "usage: include_cycles.sh SRC_DIR [LIBRARY.a...]" >&2
  exit 2
fi
src=$1
shift
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# every cycle of the graph in file $2 (lines "FROM TO"), printed with the graph's name $1
cycles() {
  awk -v graph="$1" '
    # a module including its own header is no edge
    $1 != $2 && !(($1, $2) in e) { e[$1, $2] = 1; out[$1] = out[$1] " " $2; nodes[$1]; nodes[$2] }
    # the elementary cycles whose least node is s: paths from s through nodes above s back to s
    function walk(v, depth,    n, i, next_) {
      path[depth] = v
      onpath[v] = 1
      n = split(out[v], next_, " ")
      for (i = 1; i <= n; i++) {
        if (next_[i] == s) { show(depth); continue }
        if (next_[i] > s && !(next_[i] in onpath)) walk(next_[i], depth + 1)
      }
      delete onpath[v]
    }
    function show(depth,    j, line) {
      line = path[0]
      for (j = 1; j <= depth; j++) line = line " -> " path[j]
      print graph " cycle: " line " -> " path[0]
      found++
    }
    END {
      for (s in nodes) { delete onpath; walk(s, 0) }
      exit found > 0
    }' "$2"
}

# ---- includes: "X.h" resolved in the including file's directory, then in src/ ----
find "$src" -name '*.[ch]' | sort >"$tmp/files"
while read -r f; do
  dir=$(dirname "$f")
  from=${f#"$src"/}
  from=${from%.*}
  grep -oE '^[[:space:]]*#[[:space:]]*include[[:space:]]*"[^"]+"' "$f" | sed -E 's/.*"([^"]+)"/\1/' |
    while read -r inc; do
      for cand in "$dir/$inc" "$src/$inc"; do
        if [ -f "$cand" ]; then
          to=$(realpath --relative-to="$src" "$cand")
          echo "$from ${to%.*}"
          break
        fi
      done
    done
done <"$tmp/files" >"$tmp/includes"
[ -s "$tmp/includes" ] || { echo "no includes found under $src" >&2; exit 2; }
rc=0
cycles includes "$tmp/includes" >"$tmp/found" || rc=1
sort "$tmp/found"

# ---- symbols: who calls whom across the objects of each library ----
for lib in "$@"; do
  if [ ! -f "$lib" ]; then
    echo "no library $lib" >&2
    exit 2
  fi
  # "OBJECT SYMBOL" for definitions and for uses; the object's module is its stem
  nm -A --defined-only "$lib" 2>/dev/null | awk '$(NF-1) ~ /^[TDBRVWC]$/ {
      split($1, a, ":"); o = a[2]; sub(/\..*/, "", o); print o, $NF }' | sort -u >"$tmp/defs"
  nm -A -u "$lib" 2>/dev/null | awk '{ split($1, a, ":"); o = a[2]; sub(/\..*/, "", o); print o, $NF }' |
    sort -u >"$tmp/uses"
  [ -s "$tmp/defs" ] || { echo "no symbols in $lib" >&2; exit 2; }
  awk 'NR == FNR { def[$2] = def[$2] " " $1; next }
       ($2 in def) { n = split(def[$2], d, " "); for (i = 1; i <= n; i++) if (d[i] != $1) print $1, d[i] }' \
    "$tmp/defs" "$tmp/uses" | sort -u >"$tmp/links"
  cycles "symbols of $(basename "$lib")" "$tmp/links" >"$tmp/found" || rc=1
  sort "$tmp/found"
done
n_inc=$(wc -l <"$tmp/includes")
echo "src/ layering: $(wc -l <"$tmp/files") files, $n_inc include edges, $# libraries: $([ $rc -eq 0 ] && echo "no cycle" || echo "CYCLES above")"
exit $rc
