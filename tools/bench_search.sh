#!/usr/bin/env bash
# Search-efficiency benchmark and its plots: for each table family
# (FAMILIES, default "structured additive interacting noisy") builds the
# synthetic NAS-Bench-201-style table with tools/make_lookup_table
# --family, runs //bench:search_bench on it (50 seeds, every strategy with
# the job spec's defaults; extra arguments go to search_bench) and draws
# docs/search_efficiency_<family>.png (mean best accuracy vs evaluations per
# configuration, ±1 std bands) with gnuplot. TABLE=path runs one given lookup
# CSV instead (plot docs/search_efficiency_table.png). Prints the
# benchmark's figures; exits 1 (after drawing every plot) when a strategy
# misses its goal against random search on any family.
#   bash tools/bench_search.sh                        # all four families
#   FAMILIES=noisy bash tools/bench_search.sh --seeds=20
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v gnuplot >/dev/null; then
  echo "bench_search: installing gnuplot-nox (Debian)" >&2
  apt-get install -y -qq gnuplot-nox >/dev/null
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
bazel build //tools:make_lookup_table //bench:search_bench >/dev/null 2>&1 ||
  bazel build //tools:make_lookup_table //bench:search_bench
status=0
plot() {  # plot NAME CURVE_TSV
  local configs names
  configs=$(( ($(head -1 "$2" | awk -F'\t' '{print NF}') - 1) / 2 ))
  names=$(head -1 "$2" | tr '\t' '\n' | sed -n 's/_mean$//p' | tr '\n' ' ')
  gnuplot <<GNUPLOT
set terminal pngcairo size 900,560 font "sans,11" noenhanced
set output "docs/search_efficiency_$1.png"
set title "$1 table: best accuracy found vs evaluations (mean ± 1 std over seeds)"
set xlabel "evaluations"
set ylabel "best validation accuracy so far"
set key bottom right
set grid
set logscale x
set datafile columnheaders
plot for [i=1:$configs] "$2" using 1:(column(2*i)-column(2*i+1)):(column(2*i)+column(2*i+1)) \
       with filledcurves fs transparent solid 0.10 lc i notitle, \
     for [i=1:$configs] "$2" using 1:(column(2*i)) with lines lw 2 lc i title word("$names", i)
GNUPLOT
  echo "plot: docs/search_efficiency_$1.png"
}
run() {  # run NAME TABLE [search_bench flags]
  local name=$1 table=$2
  shift 2
  echo "=== $name"
  bazel-bin/bench/search_bench --table="$table" --curve_out="$work/$name.tsv" "$@" || status=1
  [[ -f "$work/$name.tsv" ]] && plot "$name" "$work/$name.tsv"
}
if [[ -n "${TABLE:-}" ]]; then
  run table "$TABLE" "$@"
else
  for family in ${FAMILIES:-structured additive interacting noisy}; do
    bazel-bin/tools/make_lookup_table --family="$family" --out="$work/$family.csv" >/dev/null
    run "$family" "$work/$family.csv" "$@"
  done
fi
exit "$status"
