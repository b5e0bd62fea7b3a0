#!/usr/bin/env bash
# The search benchmark's protocol through the service users get: starts a
# real local cluster (`nasctl local up`: parameter servers, controller,
# workers with the lookup evaluator), submits one job per configuration and
# seed with the job spec's defaults (only the strategy, its seed, K and the
# budget set), reads each job's trials in completion order (`nasctl trials
# --order time`) and has //bench:search_bench --replay_dir print the same
# table as the in-process benchmark, with the same goal and exit status.
#   bash tools/bench_search_service.sh                 # FAMILY=additive SEEDS=3 N=100
#   FAMILY=interacting SEEDS=10 N=200 WORKERS=8 bash tools/bench_search_service.sh
# CONFIGS (default "random evolution evolution_k8 reinforce reinforce_k8")
# names the configurations as search_bench does; _k8 sets
# parallelism.num_replicas: 8. GOAL_BUDGETS (default 100,200, those within N)
# is passed on as --goal_budgets.
set -euo pipefail
cd "$(dirname "$0")/.."
family=${FAMILY:-additive}
seeds=${SEEDS:-3}
n=${N:-100}
workers=${WORKERS:-4}
configs=${CONFIGS:-random evolution evolution_k8 reinforce reinforce_k8}
goal_budgets=${GOAL_BUDGETS:-}
if [[ -z "$goal_budgets" ]]; then
  for b in 100 200; do [[ $b -le $n ]] && goal_budgets+="${goal_budgets:+,}$b"; done
fi
targets=(//client:nasctl //controller:nas_controller //worker:nas_worker
  //parameter_server:nas_parameter_server //tools:make_lookup_table //bench:search_bench)
bazel build "${targets[@]}" >/dev/null 2>&1 || bazel build "${targets[@]}"
work=$(mktemp -d)
nasctl() { bazel-bin/client/nasctl --server="127.0.0.1:$port" "$@"; }
port=$(( 20000 + RANDOM % 20000 ))
cleanup() {
  bazel-bin/client/nasctl local down --data_dir="$work/cluster" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
bazel-bin/tools/make_lookup_table --family="$family" --out="$work/table.csv" >/dev/null
bazel-bin/client/nasctl local up --shards=1 --workers="$workers" --controller_port="$port" \
  --data_dir="$work/cluster" --data_roots="$work" >/dev/null
mkdir -p "$work/replay"
for config in $configs; do
  strategy=${config%%_k*}
  replicas=1
  [[ $config == *_k* ]] && replicas=${config##*_k}
  for ((s = 0; s < seeds; s++)); do
    seed=$(( 1000 + s ))
    cat >"$work/spec.yaml" <<YAML
name: search-bench-$config-$seed
search_space:
  cell: {num_nodes: 4, operations: [none, skip_connect, nor_conv_1x1, nor_conv_3x3, avg_pool_3x3]}
strategy: {name: $strategy, seed: $seed}
parallelism: {num_replicas: $replicas}
budget: {max_trials: $n}
evaluator: {lookup: {table_path: $work/table.csv}}
YAML
    job=$(nasctl submit "$work/spec.yaml" | awk '/^submitted job/ { print $3 }')
    nasctl watch "$job" >/dev/null
    state=$(nasctl get "$job" -o csv | awk -F, 'NR == 2 { print $3 }')
    if [[ $state != succeeded ]]; then
      echo "bench_search_service: job $job ($config, seed $seed) ended $state" >&2
      exit 1
    fi
    nasctl trials "$job" --order time -o csv |
      awk -F, 'NR == 1 { for (i = 1; i <= NF; i++) if ($i == "canonical") c = i; next } { print $c }' \
        >"$work/replay/$config.$seed.txt"
    echo "$config seed $seed: job $job, $(wc -l <"$work/replay/$config.$seed.txt") trials" >&2
  done
done
bazel-bin/bench/search_bench --table="$work/table.csv" --replay_dir="$work/replay" \
  --seeds="$seeds" --evaluations="$n" --configs="$(echo $configs | tr ' ' ,)" \
  --goal_budgets="$goal_budgets"
