// Writes a structured synthetic lookup table over a NAS-Bench-201-style cell
// space: every architecture of `num_nodes` nodes with one of `operations` per
// edge, in the canonical string form (search_space/search_space.h
// CanonicalString, the same code the controller and the lookup evaluator use), with an accuracy that behaves like the
// real benchmark's — cells whose output is cut off from the input score
// chance (0.1); convolutions on the input-to-output paths help most, 3x3 more
// than 1x1; pooling and skips help a little; deterministic noise per
// architecture. The lookup evaluator and the search-efficiency benchmark read
// it (columns: arch,accuracy,parameters,flops).
//
// --family picks another kind of table over the same space, for measuring
// search strategies on more than one landscape (bench/search_bench.cc,
// docs/benchmarks.md); their columns are arch,accuracy,test_accuracy,
// parameters,flops,train_seconds (test_accuracy: the same architecture's
// score with independent noise; train_seconds: a training time growing with
// the parameters):
//   additive     a sum of one random gain per (edge, operation): no
//                interactions, the easiest landscape for mutation and for a
//                factorised controller;
//   interacting  random pairwise gains between the operations of every two
//                edges outweigh the per-edge ones, and a cell cut off from its
//                input scores chance, as in the structured table;
//   noisy        the structured table's accuracy with noise of std 0.03 on
//                `accuracy` (what the search sees) and 0.005 on test_accuracy.
// With --curve_epochs=N it (any --family) also writes a learning curve per
// architecture (val_accuracy_e1 ... val_accuracy_eN, then seconds_per_epoch; the lookup
// evaluator replays it): structured, noisy and crossing — the more 3x3
// convolutions, the higher the final accuracy tends to be and the slower the
// start, so a slow starter can finish best; the last epoch is the row's
// accuracy.
//
//   bazel run //tools:make_lookup_table -- --out=/tmp/nb201_table.csv
//   bazel run //tools:make_lookup_table -- --family=interacting --out=/tmp/interacting.csv
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <algorithm>
#include <functional>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "common/file_util.h"
#include "proto/search_space.pb.h"
#include "search_space/search_space.h"

ABSL_FLAG(int, num_nodes, 4, "Nodes of the cell including the input (2..5).");
ABSL_FLAG(std::string, operations, "none,skip_connect,nor_conv_1x1,nor_conv_3x3,avg_pool_3x3",
          "Comma-separated operation names.");
ABSL_FLAG(std::string, out, "", "Output CSV path.");
ABSL_FLAG(uint64_t, seed, 201, "Seed of the per-architecture noise.");
ABSL_FLAG(std::string, family, "structured",
          "structured (the default table), additive, interacting or noisy.");
ABSL_FLAG(int, curve_epochs, 0, "Epochs of the learning curve to write per architecture (0: none).");
ABSL_FLAG(double, seconds_per_epoch, 30,
          "Simulated seconds per epoch of the smallest cell (bigger cells take longer).");

namespace {

// How much an operation on an input-to-output path adds, by name.
double OperationGain(const std::string& op) {
  if (op == "nor_conv_3x3") return 0.16;
  if (op == "nor_conv_1x1") return 0.10;
  if (op == "avg_pool_3x3") return 0.03;
  if (op == "skip_connect") return 0.02;
  return 0.0;  // none, and unknown names
}

uint64_t Mix(uint64_t x) {
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdULL;
  x ^= x >> 33;
  x *= 0xc4ceb9fe1a85ec53ULL;
  x ^= x >> 33;
  return x;
}

// The curve columns of the header: ",val_accuracy_e1,...,seconds_per_epoch".
std::string CurveHeader(int epochs) {
  std::string header;
  for (int e = 1; e <= epochs; ++e) absl::StrAppend(&header, ",val_accuracy_e", e);
  return header + ",seconds_per_epoch";
}

// How slowly a cell with `parameters` over `edges` edges starts, in [0, 1]:
// its share of 3x3 convolutions.
double CurveSlowness(int64_t parameters, int edges) {
  return static_cast<double>(parameters) / (16 * 16 * 9 * edges);
}

// One architecture's curve cells: `accuracy` reached at the last epoch along
// 1 - exp(-e / k), k growing with the cell's 3x3 convolutions (`slowness` in
// [0, 1]) plus per-architecture noise `key`; each epoch but the last gets
// noise of 0.01.
std::string CurveCells(uint64_t key, double accuracy, double slowness, int64_t parameters,
                       int epochs) {
  auto unit = [&](uint64_t salt) {
    return static_cast<double>(Mix(key * 7919 + salt) % 100001) / 100000;
  };
  const double k = 0.5 + 2.0 * slowness + 1.5 * unit(1);
  const double end = 1 - std::exp(-epochs / k);
  std::string cells;
  for (int e = 1; e <= epochs; ++e) {
    double value = accuracy * (1 - std::exp(-e / k)) / end;
    if (e < epochs) {
      // Roughly normal noise from the sum of three uniforms.
      const double noise = (unit(10 + 3 * e) + unit(11 + 3 * e) + unit(12 + 3 * e) - 1.5) * 0.02;
      value = std::min(1.0, std::max(0.0, value + noise));
    }
    absl::StrAppend(&cells, ",", absl::StrFormat("%.5f", value));
  }
  const double seconds =
      absl::GetFlag(FLAGS_seconds_per_epoch) * (1 + static_cast<double>(parameters) / 10000);
  absl::StrAppend(&cells, ",", absl::StrFormat("%.3f", seconds));
  return cells;
}

// A deterministic uniform number in [0, 1) from a seed and a key.
double Uniform(uint64_t seed, uint64_t key) {
  return static_cast<double>(Mix(seed * 0x9e3779b97f4a7c15ULL + key) >> 11) / 9007199254740992.0;
}

// A deterministic standard normal number (Box-Muller) from a seed and a key.
double Normal(uint64_t seed, uint64_t key) {
  const double u1 = std::max(1e-12, Uniform(seed, 2 * key));
  const double u2 = Uniform(seed, 2 * key + 1);
  return std::sqrt(-2 * std::log(u1)) * std::cos(2 * M_PI * u2);
}

// One architecture of a --family table: its edges' operation indexes, and
// what the structured table gives it (accuracy, parameters, whether the
// output is reachable).
struct FamilyInput {
  int64_t index = 0;
  std::vector<int> choice;
  double structured_accuracy = 0;
  int64_t parameters = 0;
  bool connected = true;
};

// The raw (unscaled) score of an architecture under `family`; scaled to
// accuracies after every architecture is scored. Noisy scores are accuracies
// already.
double FamilyScore(const std::string& family, const FamilyInput& a, int num_ops, uint64_t seed) {
  const int edges = static_cast<int>(a.choice.size());
  if (family == "additive") {
    double score = 0;
    for (int e = 0; e < edges; ++e) score += Uniform(seed, 1000 + e * 64 + a.choice[e]);
    return score;
  }
  if (family == "interacting") {
    double score = 0;
    for (int e = 0; e < edges; ++e) score += 0.3 * Uniform(seed, 1000 + e * 64 + a.choice[e]);
    for (int e = 0; e < edges; ++e) {
      for (int f = e + 1; f < edges; ++f) {
        const uint64_t key = 100000 + ((e * 16 + f) * num_ops + a.choice[e]) * num_ops + a.choice[f];
        score += Normal(seed, key);
      }
    }
    return score;
  }
  // noisy
  return a.structured_accuracy;
}

// Writes a --family table (see the top of this file). Returns the exit code.
int WriteFamilyTable(const std::string& family, const std::vector<std::string>& ops,
                     const std::vector<FamilyInput>& archs,
                     const std::vector<std::string>& canonicals, const std::string& out,
                     int curve_epochs) {
  const uint64_t seed = absl::GetFlag(FLAGS_seed);
  const int num_ops = static_cast<int>(ops.size());
  std::vector<double> score(archs.size());
  double low = 1e300, high = -1e300;
  for (size_t i = 0; i < archs.size(); ++i) {
    score[i] = FamilyScore(family, archs[i], num_ops, seed);
    low = std::min(low, score[i]);
    high = std::max(high, score[i]);
  }
  std::string csv = absl::StrCat("arch,accuracy,test_accuracy,parameters,flops,train_seconds",
                                 curve_epochs > 0 ? CurveHeader(curve_epochs) : "", "\n");
  for (size_t i = 0; i < archs.size(); ++i) {
    const FamilyInput& a = archs[i];
    double truth = a.structured_accuracy;
    double noise = 0.003;
    if (family == "additive" || family == "interacting") {
      // Rescaled to [0.55, 0.94], the structured table's range.
      truth = high > low ? 0.55 + 0.39 * (score[i] - low) / (high - low) : 0.55;
      if (family == "interacting" && !a.connected) truth = 0.1;
    } else {
      noise = 0.03;
    }
    auto clamp = [](double x) { return std::min(0.99, std::max(0.0, x)); };
    const double accuracy = clamp(truth + noise * Normal(seed + 1, a.index));
    const double test_accuracy = clamp(truth + 0.005 * Normal(seed + 2, a.index));
    const double train_seconds =
        30 + static_cast<double>(a.parameters) / 64.0 * (0.9 + 0.2 * Uniform(seed + 3, a.index));
    absl::StrAppend(&csv, canonicals[i], ",", absl::StrFormat("%.5f", accuracy), ",",
                    absl::StrFormat("%.5f", test_accuracy), ",", a.parameters, ",",
                    a.parameters * 32 * 32 * 2, ",", absl::StrFormat("%.2f", train_seconds));
    if (curve_epochs > 0) {
      absl::StrAppend(&csv, CurveCells(seed * 1000003 + static_cast<uint64_t>(a.index),
                                       std::round(accuracy * 1e5) / 1e5,
                                       CurveSlowness(a.parameters, static_cast<int>(a.choice.size())),
                                       a.parameters, curve_epochs));
    }
    absl::StrAppend(&csv, "\n");
  }
  absl::Status written = nas::WriteFileAtomically(out, csv);
  if (!written.ok()) {
    std::fprintf(stderr, "%s\n", std::string(written.message()).c_str());
    return 1;
  }
  std::printf("wrote %zu architectures (%s) to %s\n", archs.size(), family.c_str(), out.c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage("make_lookup_table --out=FILE.csv [--num_nodes=4] [--operations=...]");
  absl::ParseCommandLine(argc, argv);
  const int nodes = absl::GetFlag(FLAGS_num_nodes);
  const std::vector<std::string> ops =
      absl::StrSplit(absl::GetFlag(FLAGS_operations), ',', absl::SkipEmpty());
  const std::string out = absl::GetFlag(FLAGS_out);
  if (nodes < 2 || nodes > 5 || ops.empty() || out.empty()) {
    std::fprintf(stderr, "need --out, --num_nodes in 2..5 and at least one operation\n");
    return 2;
  }
  const std::string family = absl::GetFlag(FLAGS_family);
  if (family != "structured" && family != "additive" && family != "interacting" &&
      family != "noisy") {
    std::fprintf(stderr, "--family: unknown family '%s' (known: structured, additive, interacting, noisy)\n",
                 family.c_str());
    return 2;
  }
  std::vector<FamilyInput> family_archs;
  std::vector<std::string> family_canonicals;
  // The table's space must be one a job can name (operation names without
  // the canonical form's separators, no duplicates).
  nas::v1::SearchSpace space;
  space.mutable_cell()->set_num_nodes(nodes);
  for (const std::string& op : ops) space.mutable_cell()->add_operations(op);
  if (absl::Status valid = nas::search_space::ValidateSearchSpace(space); !valid.ok()) {
    std::fprintf(stderr, "%s\n", std::string(valid.message()).c_str());
    return 2;
  }
  nas::v1::Architecture architecture;
  nas::v1::CellArchitecture* cell = architecture.mutable_cell();
  cell->set_num_nodes(nodes);
  const int edges = nodes * (nodes - 1) / 2;
  int64_t total = 1;
  for (int e = 0; e < edges; ++e) total *= static_cast<int64_t>(ops.size());
  const int curve_epochs = absl::GetFlag(FLAGS_curve_epochs);
  if (curve_epochs < 0 || curve_epochs > 1000 || !(absl::GetFlag(FLAGS_seconds_per_epoch) >= 0)) {
    std::fprintf(stderr, "need --curve_epochs in 0..1000 and --seconds_per_epoch >= 0\n");
    return 1;
  }
  std::string csv = absl::StrCat("arch,accuracy,parameters,flops",
                                 curve_epochs > 0 ? CurveHeader(curve_epochs) : "", "\n");
  std::vector<int> choice(edges, 0);
  for (int64_t index = 0; index < total; ++index) {
    int64_t rest = index;
    for (int e = 0; e < edges; ++e) {
      choice[e] = static_cast<int>(rest % static_cast<int64_t>(ops.size()));
      rest /= static_cast<int64_t>(ops.size());
    }
    // Edge e of node i from node j, in the order (1<-0), (2<-0), (2<-1), ...
    auto edge_index = [](int i, int j) { return i * (i - 1) / 2 + j; };
    // Reachability from the input through edges that are not "none".
    std::vector<bool> reach(nodes, false);
    reach[0] = true;
    for (int i = 1; i < nodes; ++i) {
      for (int j = 0; j < i; ++j) {
        if (reach[j] && ops[choice[edge_index(i, j)]] != "none") reach[i] = true;
      }
    }
    // Which nodes reach the output.
    std::vector<bool> to_out(nodes, false);
    to_out[nodes - 1] = true;
    for (int j = nodes - 2; j >= 0; --j) {
      for (int i = j + 1; i < nodes; ++i) {
        if (to_out[i] && ops[choice[edge_index(i, j)]] != "none") to_out[j] = true;
      }
    }
    cell->clear_edge_operations();
    for (int e = 0; e < edges; ++e) cell->add_edge_operations(ops[choice[e]]);
    double gain = 0;
    int64_t parameters = 0;
    for (int i = 1; i < nodes; ++i) {
      for (int j = 0; j < i; ++j) {
        const std::string& op = ops[choice[edge_index(i, j)]];
        if (reach[j] && to_out[i]) gain += OperationGain(op);
        if (op == "nor_conv_3x3") parameters += 16 * 16 * 9;
        if (op == "nor_conv_1x1") parameters += 16 * 16;
      }
    }
    double accuracy = 0.1;
    if (reach[nodes - 1]) {
      // Diminishing returns, in [0.55, 0.94] for NAS-Bench-201's 4 nodes.
      accuracy = 0.55 + 0.39 * (1 - std::exp(-2.2 * gain));
      const double noise =
          (static_cast<double>(Mix(absl::GetFlag(FLAGS_seed) * 1000003 + index) % 10001) / 10000 -
           0.5) * 0.02;
      accuracy = std::min(0.99, std::max(0.1, accuracy + noise));
    }
    absl::StrAppend(&csv, nas::search_space::CanonicalString(architecture), ",", absl::StrFormat("%.5f", accuracy), ",", parameters, ",",
                    parameters * 32 * 32 * 2);
    if (curve_epochs > 0) {
      absl::StrAppend(&csv, CurveCells(absl::GetFlag(FLAGS_seed) * 1000003 + index,
                                       std::round(accuracy * 1e5) / 1e5, CurveSlowness(parameters, edges),
                                       parameters, curve_epochs));
    }
    absl::StrAppend(&csv, "\n");
    if (family != "structured") {
      // The noiseless structured accuracy: a --family table adds its own noise.
      const double noiseless =
          reach[nodes - 1] ? 0.55 + 0.39 * (1 - std::exp(-2.2 * gain)) : 0.1;
      family_archs.push_back({index, choice, noiseless, parameters, reach[nodes - 1]});
      family_canonicals.push_back(nas::search_space::CanonicalString(architecture));
    }
  }
  if (family != "structured") {
    return WriteFamilyTable(family, ops, family_archs, family_canonicals, out, curve_epochs);
  }
  absl::Status written = nas::WriteFileAtomically(out, csv);
  if (!written.ok()) {
    std::fprintf(stderr, "%s\n", std::string(written.message()).c_str());
    return 1;
  }
  std::printf("wrote %lld architectures to %s\n", static_cast<long long>(total), out.c_str());
  return 0;
}
