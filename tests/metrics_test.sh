#!/usr/bin/env bash
# Metrics as users see them: a local cluster runs a synthetic job (with
# failing trials) while Debian's Prometheus scrapes every process with the
# config `nasctl local prometheus-config` writes. Checked: promtool accepts the
# config and every process's /metrics; while the job runs, every PromQL
# expression of the Grafana dashboard (and its job variable's metric) returns
# data through Prometheus's HTTP API; after it is cancelled, the dashboard's
# trial count equals `nasctl get`'s. Every wait is for a condition, with a
# deadline.
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

# A live job: long enough to still run while the dashboard is checked, with
# trials that fail (failure_probability, one attempt) so the failure panels
# have data. It is cancelled at the end.
cat > "$work/job.yaml" <<'YAML'
name: metrics
search_space:
  macro_cnn: {filter_heights: [3, 5], filter_widths: [3, 5], num_filters: [24, 64], skip_connections: true,
              depth: {initial_layers: 3, max_layers: 3}}
strategy: {name: reinforce, seed: 3}
controller: {learning_rate: 0.01}
parallelism: {num_replicas: 2, children_per_replica: 2}
budget: {max_trials: 100000, max_failed_fraction: 1}
evaluator: {synthetic: {duration_seconds: 0.2, epochs: 2, failure_probability: 0.2}, max_attempts: 1}
YAML
"$nasctl" submit "$work/job.yaml" --server="$server" > "$work/submit.txt"
job=$("$nasctl" list -o csv --server="$server" | sed -n 2p | cut -d, -f1)
[[ -n "$job" ]] || fail "no job listed after submit: $(cat "$work/submit.txt")"
state() { "$nasctl" get "$job" -o json --server="$server" | python3 -c 'import json,sys; print(json.load(sys.stdin)["state"])'; }
value() { query "$1" | python3 -c 'import json,sys; r=json.load(sys.stdin)["data"]["result"]; print(int(float(r[0]["value"][1])) if r else -1)'; }

# Prometheus has seen trials of both kinds finish and rates over a full window.
deadline=$((SECONDS + 90))
until [[ $(value "sum(nas_controller_trials_total{job_id=\"$job\",status=\"succeeded\"})") -ge 20 &&
         $(value "sum(nas_controller_trials_total{job_id=\"$job\",status=\"failed\"})") -ge 2 &&
         $(value "count(count_over_time(nas_controller_job_best_reward{job_id=\"$job\"}[30s]) >= 20)") -ge 1 ]]; do
  (( SECONDS < deadline )) || fail "Prometheus never saw 20 succeeded and 2 failed trials of $job"
  sleep 0.5
done
[[ "$(state)" == "running" ]] || fail "job $job is $(state) before the dashboard check, expected running"
echo "[${SECONDS}s] job $job running, Prometheus has its trials; checking the dashboard"

# Every dashboard query returns data while the job runs: $__rate_interval as
# Grafana would pick it for a 1 s scrape and a short range, $job = All.
python3 - "$dashboard" > "$work/exprs.txt" <<'PY'
import json, sys
dashboard = json.load(open(sys.argv[1]))
for panel in dashboard["panels"]:
    for target in panel.get("targets", []):
        print(target["expr"].replace("$__rate_interval", "30s").replace("$job", ".*"))
# The job variable's values come from label_values(METRIC, job_id).
for variable in dashboard["templating"]["list"]:
    if variable["type"] == "query":
        q = variable["query"]["query"]
        print(q[len("label_values("):q.index(",")])
PY
empty=0
total=0
while IFS= read -r expr; do
  total=$((total + 1))
  n=$(query "$expr" | count) || n=0
  if [[ "$n" -eq 0 ]]; then echo "FAIL: dashboard query returns nothing: $expr" >&2; empty=$((empty + 1)); fi
done < "$work/exprs.txt"
[[ $empty -eq 0 ]] || fail "$empty of $total dashboard queries return no data"
[[ "$(state)" == "running" ]] || fail "job $job ended during the dashboard check: the data was not live"

echo "[${SECONDS}s] $total dashboard queries return data"
# The dashboard agrees with nasctl once the job is cancelled and Prometheus
# has scraped its end (its series stay for the controller's retention).
"$nasctl" cancel "$job" --server="$server" > /dev/null
succeeded=$("$nasctl" get "$job" -o json --server="$server" | python3 -c 'import json,sys; print(int(json.load(sys.stdin)["trials_succeeded"]))')
deadline=$((SECONDS + 30))
until [[ $(value "sum(nas_controller_trials_total{job_id=\"$job\",status=\"succeeded\"})") == "$succeeded" ]]; do
  (( SECONDS < deadline )) || fail "Prometheus's trial count never reached nasctl's ($succeeded)"
  sleep 0.5
done
echo "PASS: $total dashboard queries return data during a live job; Prometheus and nasctl agree on $succeeded trials"
