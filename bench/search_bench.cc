// Benchmark: search efficiency on a lookup table. REINFORCE with one replica,
// REINFORCE with K = 8 asynchronous replicas (each computes its gradient from
// the weights it pulled, while the others' pushes land in between: staleness
// up to K - 1), and random search, over the same cell space, for >= 20 seeds.
// Prints the mean and standard deviation of the best accuracy found after 100,
// 200 and 500 evaluations. Goal (docs/benchmarks.md): both REINFORCE
// configurations find, on average, at least the accuracy random search finds
// at each of the three budgets; exits 1 naming each figure that misses it, or
// when the reference (random search) finds no architecture of the table (a
// table that does not match --num_nodes / --operations). Any table in the
// lookup CSV format works:
//   bazel run //tools:make_lookup_table -- --out=/tmp/nb201.csv
//   bazel run //bench:search_bench -- --table=/tmp/nb201.csv
// --curve_out=FILE also writes the mean best accuracy after every evaluation
// per strategy (tab-separated; tools/bench_search.sh plots it).
#include <cmath>
#include <iterator>
#include <cstdio>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "common/file_util.h"
#include "controller/job_spec.h"
#include "controller/strategy_registry.h"
#include "parameter_server/optimizer.h"
#include "worker/lookup_evaluator.h"

ABSL_FLAG(std::string, table, "", "Lookup CSV (arch,accuracy,...). Required.");
ABSL_FLAG(int, seeds, 20, "Seeds per strategy.");
ABSL_FLAG(int, num_nodes, 4, "Cell nodes of the table's space.");
ABSL_FLAG(std::string, operations, "none,skip_connect,nor_conv_1x1,nor_conv_3x3,avg_pool_3x3",
          "The table's operations, in token order.");
ABSL_FLAG(std::string, curve_out, "",
          "If set, writes `evaluations` and each strategy's mean and std of the best accuracy "
          "after every evaluation, tab-separated.");

namespace {

constexpr int kEvaluations = 500;
const int kCheckpoints[] = {100, 200, 500};

nas::v1::JobSpec Spec(const std::string& strategy, int64_t seed) {
  nas::v1::JobSpec spec;
  nas::v1::CellSpace* cell = spec.mutable_search_space()->mutable_cell();
  cell->set_num_nodes(absl::GetFlag(FLAGS_num_nodes));
  for (absl::string_view op : absl::StrSplit(absl::GetFlag(FLAGS_operations), ',')) {
    cell->add_operations(std::string(op));
  }
  spec.mutable_strategy()->set_name(strategy);
  spec.mutable_strategy()->set_seed(seed);
  spec.mutable_controller()->set_learning_rate(0.01);
  spec.mutable_controller()->set_entropy_weight(1e-4);
  spec.mutable_budget()->set_max_trials(kEvaluations);
  spec.mutable_evaluator()->mutable_synthetic();
  return nas::controller::WithDefaults(spec);
}

// Best accuracy after each evaluation.
std::vector<double> Run(const std::string& strategy, int replicas, int m, int64_t seed,
                        const std::map<std::string, nas::worker::LookupRow>& table) {
  std::vector<std::unique_ptr<nas::controller::SearchStrategy>> workers;
  for (int r = 0; r < replicas; ++r) workers.push_back(nas::controller::CreateStrategy(Spec(strategy, seed), r).value());
  std::vector<nas::FlatTensor> theta = workers[0]->InitialParameters();
  std::vector<std::vector<float>> m1, m2;
  for (const auto& t : theta) {
    m1.emplace_back(t.values.size(), 0.f);
    m2.emplace_back(t.values.size(), 0.f);
  }
  nas::v1::OptimizerConfig config;
  config.set_kind(nas::v1::OptimizerConfig::ADAM);
  config.set_learning_rate(0.01);
  auto adam = nas::ps::CreateOptimizer(config).value();
  int64_t step = 0;
  std::vector<double> best;
  double best_so_far = 0;
  while (static_cast<int>(best.size()) < kEvaluations) {
    // Every replica pulls the current weights and samples; then they push one
    // after another, so later pushes are computed from stale weights.
    std::vector<std::vector<nas::v1::Architecture>> sampled(replicas);
    for (int r = 0; r < replicas; ++r) {
      if (!theta.empty()) (void)workers[r]->LoadParameters(theta);
      sampled[r] = workers[r]->Sample(m, {}).value();
    }
    for (int r = 0; r < replicas && static_cast<int>(best.size()) < kEvaluations; ++r) {
      std::vector<double> rewards;
      for (const auto& a : sampled[r]) {
        auto it = table.find(a.canonical());
        const double acc = it == table.end() ? 0 : it->second.accuracy;
        rewards.push_back(std::pow(acc, 3));
        best_so_far = std::max(best_so_far, acc);
        if (static_cast<int>(best.size()) < kEvaluations) best.push_back(best_so_far);
      }
      if (theta.empty()) continue;
      auto gradient = workers[r]->Gradient(sampled[r], rewards).value();
      ++step;
      for (size_t k = 0; k < theta.size(); ++k) {
        adam->Apply(theta[k].values.data(), gradient[k].values.data(), m1[k].data(), m2[k].data(),
                    theta[k].values.size(), step);
      }
    }
  }
  return best;
}

}  // namespace

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  auto csv = nas::ReadFile(absl::GetFlag(FLAGS_table));
  if (!csv.ok()) {
    std::fprintf(stderr, "--table: %s\n", std::string(csv.status().message()).c_str());
    return 2;
  }
  auto table = nas::worker::ParseLookupTable(*csv, absl::GetFlag(FLAGS_table));
  if (!table.ok()) {
    std::fprintf(stderr, "%s\n", std::string(table.status().message()).c_str());
    return 2;
  }
  if (table->empty()) {
    std::fprintf(stderr, "--table: %s has no rows\n", absl::GetFlag(FLAGS_table).c_str());
    return 2;
  }
  double table_best = 0;
  for (const auto& [arch, row] : *table) table_best = std::max(table_best, row.accuracy);
  std::printf("table_architectures %zu\ntable_best_accuracy %.4f\n", table->size(), table_best);
  struct Config {
    const char* name;
    const char* strategy;
    int replicas;
    int m;
  };
  const Config configs[] = {{"random", "random", 1, 4}, {"reinforce_k1", "reinforce", 1, 4},
                            {"reinforce_k8_async", "reinforce", 8, 4}};
  const int seeds = absl::GetFlag(FLAGS_seeds);
  // [strategy][evaluation] -> mean, std over seeds.
  std::vector<std::vector<std::pair<double, double>>> curves;
  // [strategy][checkpoint] -> mean best accuracy over seeds.
  std::vector<std::vector<double>> at_checkpoints;
  for (const Config& c : configs) {
    std::vector<std::vector<double>> runs;
    for (int s = 0; s < seeds; ++s) runs.push_back(Run(c.strategy, c.replicas, c.m, 1000 + s, *table));
    std::vector<std::pair<double, double>> curve(kEvaluations);
    for (int e = 0; e < kEvaluations; ++e) {
      double mean = 0, sq = 0;
      for (const auto& r : runs) mean += r[e] / seeds;
      for (const auto& r : runs) sq += std::pow(r[e] - mean, 2) / seeds;
      curve[e] = {mean, std::sqrt(sq)};
    }
    curves.push_back(std::move(curve));
    at_checkpoints.emplace_back();
    for (int checkpoint : kCheckpoints) {
      double mean = 0, sq = 0;
      for (const auto& r : runs) mean += r[checkpoint - 1] / seeds;
      for (const auto& r : runs) sq += std::pow(r[checkpoint - 1] - mean, 2) / seeds;
      std::printf("%s_best_accuracy_after_%d %.4f (std %.4f over %d seeds)\n", c.name, checkpoint, mean,
                  std::sqrt(sq), seeds);
      at_checkpoints.back().push_back(mean);
    }
  }
  std::fflush(stdout);
  // configs[0] is random search, the reference; the others must match or beat it.
  std::vector<std::string> missed;
  const std::vector<double>& random = at_checkpoints[0];
  if (!(random.back() > 0)) {
    missed.push_back(absl::StrCat(
        "random_best_accuracy_after_", kEvaluations, " is ", random.back(),
        ": random search found no architecture of the table (do --num_nodes and --operations "
        "match it?)"));
  } else {
    for (size_t i = 1; i < std::size(configs); ++i) {
      for (size_t k = 0; k < std::size(kCheckpoints); ++k) {
        if (at_checkpoints[i][k] < random[k]) {
          missed.push_back(absl::StrFormat(
              "%s_best_accuracy_after_%d %.4f misses its goal >= random search's %.4f",
              configs[i].name, kCheckpoints[k], at_checkpoints[i][k], random[k]));
        }
      }
    }
  }
  if (const std::string path = absl::GetFlag(FLAGS_curve_out); !path.empty()) {
    std::string out = "evaluations";
    for (const Config& c : configs) out += absl::StrCat("\t", c.name, "_mean\t", c.name, "_std");
    out += "\n";
    for (int e = 0; e < kEvaluations; ++e) {
      out += absl::StrCat(e + 1);
      for (const auto& curve : curves) {
        out += absl::StrFormat("\t%.5f\t%.5f", curve[e].first, curve[e].second);
      }
      out += "\n";
    }
    if (absl::Status written = nas::WriteFileAtomically(path, out); !written.ok()) {
      std::fprintf(stderr, "--curve_out: %s\n", std::string(written.message()).c_str());
      return 1;
    }
  }
  for (const std::string& m : missed) std::printf("MISSED %s\n", m.c_str());
  if (!missed.empty()) return 1;
  std::printf("all goals met\n");
  return 0;
}
