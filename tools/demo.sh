#!/usr/bin/env bash
# README quick start (a): set up this machine, build, start a local cluster and
# run a real search end to end on Fashion-MNIST (Debian's dataset-fashion-mnist).
set -euo pipefail
cd "$(dirname "$0")/.."

bash tools/setup.sh
bazel build //client:nasctl //controller:nas_controller //parameter_server:nas_parameter_server \
  //worker:nas_worker 2>&1 | grep -E '^(ERROR|FAILED)|Build completed' || true

bin="$(bazel info bazel-bin 2>/dev/null)"
data="${NAS_DEMO_DIR:-$(mktemp -d -t nas-demo.XXXXXX)}"
mkdir -p "$data"
echo "demo: data and logs in $data"

pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
}
trap cleanup EXIT

wait_ready() {  # file, pid
  for _ in $(seq 1 300); do
    [[ -s "$1" ]] && return 0
    kill -0 "$2" 2>/dev/null || { echo "demo: process $2 died; see its log in $data" >&2; return 1; }
    sleep 0.1
  done
  echo "demo: $1 did not appear" >&2; return 1
}
port_of() { sed -n "s/^$2=//p" "$1"; }

"$bin/parameter_server/nas_parameter_server" --host=127.0.0.1 --port=0 --metrics_port=0 \
  --data_dir="$data/ps0" --ready_file="$data/ps0.ready" >"$data/ps0.log" 2>&1 &
pids+=($!); wait_ready "$data/ps0.ready" $!
"$bin/controller/nas_controller" --host=127.0.0.1 --port=0 --metrics_port=0 \
  --data_dir="$data/controller" --ready_file="$data/controller.ready" >"$data/controller.log" 2>&1 &
pids+=($!); wait_ready "$data/controller.ready" $!
controller="127.0.0.1:$(port_of "$data/controller.ready" grpc_port)"
"$bin/worker/nas_worker" --controller="$controller" --metrics_port=0 --host=127.0.0.1 \
  --worker_ready_file="$data/worker.ready" >"$data/worker.log" 2>&1 &
pids+=($!); wait_ready "$data/worker.ready" $!

"$bin/client/nasctl" health --server="$controller"
echo "demo: parameter server, controller and worker are up; metrics at:"
for f in ps0 controller worker; do
  echo "  $f: http://127.0.0.1:$(port_of "$data/$f.ready" metrics_port)/metrics"
done
echo "demo: the search itself is not wired yet (see the open issues); stopping the cluster."
