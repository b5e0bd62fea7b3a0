#!/usr/bin/env bash
# Control-plane benchmark: the paper's configuration (S = 20, K = 100, m = 8,
# W = 800 simulated workers), then the scale curves W = 8, 80, 800, 2000 for
# S = 1, 4, 20 (K = W / 8 replicas of m = 8 so every worker can be busy).
# Prints the paper run's figures and a markdown table of the curves.
#   bash tools/bench_control_plane.sh [measure_seconds]
set -euo pipefail
cd "$(dirname "$0")/.."
measure=${1:-10}
bazel build //bench:control_plane_bench >/dev/null 2>&1 || bazel build //bench:control_plane_bench
bench=bazel-bin/bench/control_plane_bench
export TEST_SRCDIR=$PWD/$bench.runfiles
export TEST_TMPDIR=$(mktemp -d)
trap 'rm -rf "$TEST_TMPDIR"' EXIT
ulimit -n 65536 2>/dev/null || true

run() {  # S K m W -> the bench's figure lines
  "$bench" --shards="$1" --replicas="$2" --children="$3" --workers="$4" --measure="${measure}s" 2>/dev/null
}
field() { awk -v k="$1" '$1 == k { print $2 }'; }

echo "== paper configuration"
run 20 100 8 800

echo
echo "== scale curves (${measure} s each)"
echo "| S | W (K × m) | evaluations/s | controller CPU ms/eval | controller RSS MiB | max PS RSS MiB | report p50 ms | report p99 ms |"
echo "|---|---|---|---|---|---|---|---|"
for S in 1 4 20; do
  for W in 8 80 800 2000; do
    K=$((W / 8))
    out=$(run "$S" "$K" 8 "$W")
    printf '| %s | %s (%s × 8) | %s | %.2f | %s | %s | %s | %s |\n' "$S" "$W" "$K" \
      "$(field evaluations_per_second <<<"$out")" \
      "$(awk '$1 == "controller_cpu_seconds_per_evaluation" { print $2 * 1000 }' <<<"$out")" \
      "$(field controller_resident_mib <<<"$out")" \
      "$(field parameter_server_max_resident_mib <<<"$out")" \
      "$(field report_latency_p50 <<<"$out")" \
      "$(field report_latency_p99 <<<"$out")"
  done
done
