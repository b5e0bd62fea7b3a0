#!/usr/bin/env bash
# Search-efficiency benchmark and its plot: builds the structured synthetic
# NAS-Bench-201-style table (or uses TABLE=path, any lookup CSV), runs
# //bench:search_bench over 20 seeds and draws docs/search_efficiency.png
# (mean best accuracy vs evaluations per strategy, with ±1 std bands) with
# gnuplot. Prints the benchmark's figures; exits 1 (after drawing the plot)
# when REINFORCE misses its goal against random search.
#   bash tools/bench_search.sh            # figures + docs/search_efficiency.png
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
table=${TABLE:-$work/table.csv}
if [[ -z "${TABLE:-}" ]]; then
  bazel-bin/tools/make_lookup_table --out="$table" >/dev/null
fi
status=0
bazel-bin/bench/search_bench --table="$table" --curve_out="$work/curve.tsv" "$@" || status=$?
[[ -f "$work/curve.tsv" ]] || exit "$status"
gnuplot <<GNUPLOT
set terminal pngcairo size 900,560 font "sans,11"
set output "docs/search_efficiency.png"
set title "Best accuracy found vs evaluations (lookup table, mean ± 1 std over seeds)"
set xlabel "evaluations"
set ylabel "best validation accuracy so far"
set key bottom right
set grid
set xrange [1:500]
plot "$work/curve.tsv" using 1:(\$2-\$3):(\$2+\$3) with filledcurves fs transparent solid 0.15 lc rgb "#888888" notitle, \
     "" using 1:2 with lines lw 2 lc rgb "#555555" title "random", \
     "" using 1:(\$4-\$5):(\$4+\$5) with filledcurves fs transparent solid 0.15 lc rgb "#1f77b4" notitle, \
     "" using 1:4 with lines lw 2 lc rgb "#1f77b4" title "REINFORCE, K = 1", \
     "" using 1:(\$6-\$7):(\$6+\$7) with filledcurves fs transparent solid 0.15 lc rgb "#d62728" notitle, \
     "" using 1:6 with lines lw 2 lc rgb "#d62728" title "REINFORCE, K = 8 asynchronous"
GNUPLOT
echo "plot: docs/search_efficiency.png"
exit "$status"
