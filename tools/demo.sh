#!/usr/bin/env bash
# README quick start (a): set up this machine, build, start a local cluster
# (2 parameter-server shards, the controller, 2 workers) and run a real
# architecture search on Fashion-MNIST (Debian's dataset-fashion-mnist): submit
# examples/fashion_mnist_quick.yaml, watch it, print the top 5 trials, export
# the best one, stop the cluster.
set -euo pipefail
cd "$(dirname "$0")/.."

bash tools/setup.sh
echo "demo: building (the first build takes a while) ..."
bazel build //client:nasctl //controller:nas_controller //parameter_server:nas_parameter_server \
  //worker:nas_worker 2>&1 | grep -E '^(ERROR|FAILED)|Build completed' || true
bin="$(bazel info bazel-bin 2>/dev/null)"
nasctl="$bin/client/nasctl"

export NAS_LOCAL_DIR="${NAS_LOCAL_DIR:-$HOME/.nas-service/demo}"
out="${NAS_DEMO_OUT:-$PWD/nas-demo-best}"
"$nasctl" local down >/dev/null 2>&1 || true
trap '"$nasctl" local down' EXIT
"$nasctl" local up --shards=2 --workers=2 --worker_threads=1 --controller_port=0
NAS_SERVER="$("$nasctl" local address)"
export NAS_SERVER

"$nasctl" submit examples/fashion_mnist_quick.yaml --watch
job="$("$nasctl" list -o csv | sed -n 2p | cut -d, -f1)"
echo
echo "demo: top 5 trials of $job"
"$nasctl" trials "$job" --top 5
echo
"$nasctl" export "$job" --out "$out"
echo
echo "demo: done. The best architecture is in $out (model.py rebuilds it in PyTorch)."
echo "demo: the trial store is $NAS_LOCAL_DIR/controller/trials.db (sqlite3 can read it)."
