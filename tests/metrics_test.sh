#!/usr/bin/env bash
# Metrics as users see them: a local cluster runs a short synthetic job while
# Debian's Prometheus scrapes every process with the config `nasctl local
# prometheus-config` writes. Checked: promtool accepts the config and every
# process's /metrics; every PromQL expression of the Grafana dashboard returns
# data through Prometheus's HTTP API; the dashboard's trial count equals
# `nasctl get`'s. Every wait is for a condition, with a deadline.
set -euo pipefail

runfiles="${TEST_SRCDIR}/${TEST_WORKSPACE}"
nasctl="$runfiles/client/nasctl"
dashboard="$runfiles/deploy/grafana/dashboards/nas-service.json"
work="${TEST_TMPDIR}/metrics"
mkdir -p "$work"
data="$work/cluster"
prom_pid=""
cleanup() {
  [[ -n "$prom_pid" ]] && kill "$prom_pid" 2>/dev/null && wait "$prom_pid" 2>/dev/null || true
  "$nasctl" local down --data_dir="$data" >/dev/null 2>&1 || true
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
for tool in prometheus promtool curl python3; do
  command -v "$tool" >/dev/null || fail "$tool is not installed (tools/setup.sh installs it)"
done

"$nasctl" local up --data_dir="$data" --bin_dir="$runfiles" --shards=2 --workers=2 \
  --controller_port=0 --device=cpu >/dev/null
server="$("$nasctl" local address --data_dir="$data")"

# Scrape config from nasctl, every second.
"$nasctl" local prometheus-config --data_dir="$data" | sed 's/scrape_interval: 5s/scrape_interval: 1s/' \
  > "$work/prometheus.yml"
promtool check config "$work/prometheus.yml" >/dev/null || fail "promtool rejects the scrape config"
targets=$(grep -o "127.0.0.1:[0-9]*" "$work/prometheus.yml")
[[ $(echo "$targets" | wc -l) -eq 5 ]] || fail "expected 5 scrape targets, got: $targets"
for target in $targets; do
  curl -sf "http://$target/metrics" > "$work/one.prom" || fail "no /metrics at $target"
  promtool check metrics < "$work/one.prom" > "$work/lint.txt" 2>&1 || {
    cat "$work/lint.txt" >&2; fail "promtool check metrics fails for $target"; }
done

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
prometheus --config.file="$work/prometheus.yml" --storage.tsdb.path="$work/tsdb" \
  --web.listen-address="127.0.0.1:$port" >"$work/prometheus.log" 2>&1 &
prom_pid=$!
api="http://127.0.0.1:$port/api/v1"
query() { curl -sf --get "$api/query" --data-urlencode "query=$1"; }
count() { python3 -c 'import json,sys; print(len(json.load(sys.stdin)["data"]["result"]))'; }

deadline=$((SECONDS + 60))
until [[ "$(query 'sum(up)' 2>/dev/null | python3 -c 'import json,sys; r=json.load(sys.stdin)["data"]["result"]; print(r[0]["value"][1] if r else 0)' 2>/dev/null)" == "5" ]]; do
  (( SECONDS < deadline )) || { cat "$work/prometheus.log" >&2; fail "Prometheus does not see 5 healthy targets"; }
  sleep 0.5
done

cat > "$work/job.yaml" <<'YAML'
name: metrics
search_space:
  macro_cnn: {filter_heights: [3, 5], filter_widths: [3, 5], num_filters: [24, 64], skip_connections: true,
              depth: {initial_layers: 3, max_layers: 3}}
strategy: {name: reinforce, seed: 3}
controller: {learning_rate: 0.01}
parallelism: {num_replicas: 2, children_per_replica: 2}
budget: {max_trials: 40}
evaluator: {synthetic: {duration_seconds: 0.3, epochs: 2}}
YAML
"$nasctl" submit "$work/job.yaml" --watch --server="$server" > "$work/watch.txt"
job=$("$nasctl" list -o csv --server="$server" | sed -n 2p | cut -d, -f1)
succeeded=$("$nasctl" get "$job" -o json --server="$server" | python3 -c 'import json,sys; print(int(json.load(sys.stdin)["trials_succeeded"]))')
[[ "$succeeded" -eq 40 ]] || fail "nasctl get says $succeeded trials succeeded, expected 40"
watched=$(sed -n "s/^job $job succeeded: \([0-9]*\) succeeded.*/\1/p" "$work/watch.txt")
[[ "$watched" == "$succeeded" ]] || fail "nasctl watch ended with '$watched' succeeded trials, nasctl get says $succeeded"

# The dashboard agrees with nasctl once Prometheus has scraped the end of the job.
deadline=$((SECONDS + 30))
until [[ "$(query "sum(nas_controller_trials_total{job_id=\"$job\",status=\"succeeded\"})" | python3 -c 'import json,sys; r=json.load(sys.stdin)["data"]["result"]; print(int(float(r[0]["value"][1])) if r else -1)')" == "$succeeded" ]]; do
  (( SECONDS < deadline )) || fail "Prometheus's trial count never reached nasctl's ($succeeded)"
  sleep 0.5
done

# Every dashboard query returns data.
python3 - "$dashboard" > "$work/exprs.txt" <<'PY'
import json, sys
for panel in json.load(open(sys.argv[1]))["panels"]:
    for target in panel["targets"]:
        print(target["expr"])
PY
empty=0
total=0
while IFS= read -r expr; do
  total=$((total + 1))
  n=$(query "$expr" | count) || n=0
  if [[ "$n" -eq 0 ]]; then echo "FAIL: dashboard query returns nothing: $expr" >&2; empty=$((empty + 1)); fi
done < "$work/exprs.txt"
[[ $empty -eq 0 ]] || fail "$empty of $total dashboard queries return no data"
echo "PASS: $total dashboard queries return data; Prometheus and nasctl agree on $succeeded trials"
