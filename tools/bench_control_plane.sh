#!/usr/bin/env bash
# Control-plane benchmark: the paper's configuration (S = 20, K = 100, m = 8,
# W = 800 simulated workers) with its goals (>= 2,000 evaluations/s, >= 0.5 of
# the echo bound), then the scale curves W = 8, 80, 800, 2000 for S = 1, 4, 20
# (K = W / 8 replicas of m = 8 so every worker can be busy; no throughput
# goals, but every run must show the controller's weights changing and its
# reward rising). Prints the paper run's figures and a markdown table of the
# curves; exits 1 if any run missed a goal (its MISSED lines are printed).
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

rc=0
run() {  # S K m W [flags] -> the bench's figure lines; a missed goal sets rc
  local status=0
  "$bench" --shards="$1" --replicas="$2" --children="$3" --workers="$4" --measure="${measure}s" \
    "${@:5}" 2>/dev/null || status=$?
  if [[ $status -ne 0 ]]; then
    echo "exit $status (S=$1 K=$2 m=$3 W=$4)"
    rc=1
  fi
}
field() { awk -v k="$1" '$1 == k { print $2 }'; }

echo "== paper configuration"
run 20 100 8 800

echo
echo "== scale curves (${measure} s each)"
echo "| S | W (K × m) | evaluations/s | controller CPU ms/eval | controller RSS MiB | max PS RSS MiB | report p50 ms | report p99 ms |"
echo "|---|---|---|---|---|---|---|---|"
missed=""
for S in 1 4 20; do
  for W in 8 80 800 2000; do
    K=$((W / 8))
    out=$(run "$S" "$K" 8 "$W" --min_evaluations_per_second=0 --min_echo_bound_ratio=0)
    lines=$(grep -E '^(MISSED|exit) ' <<<"$out" || true)
    if [[ -n "$lines" ]]; then missed+="$lines"$'\n'; fi
    printf '| %s | %s (%s × 8) | %s | %.2f | %s | %s | %s | %s |\n' "$S" "$W" "$K" \
      "$(field evaluations_per_second <<<"$out")" \
      "$(awk '$1 == "controller_cpu_seconds_per_evaluation" { print $2 * 1000 }' <<<"$out")" \
      "$(field controller_resident_mib <<<"$out")" \
      "$(field parameter_server_max_resident_mib <<<"$out")" \
      "$(field report_latency_p50 <<<"$out")" \
      "$(field report_latency_p99 <<<"$out")"
  done
done
if [[ -n "$missed" ]]; then
  echo
  printf '%s' "$missed"
  rc=1
fi
exit "$rc"
