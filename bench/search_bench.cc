// Benchmark: what a user gets from each search strategy on a lookup table.
//
// Each configuration (--configs: random, evolution, reinforce; "_k8" runs 8
// replicas, or for evolution 8 children in flight) searches the table's cell
// space for --evaluations evaluations per seed, over --seeds seeds, with the
// job spec's defaults for every setting no flag names (a flag per strategy,
// controller and parallelism setting). The search sees only the `accuracy`
// column (reward = accuracy^reward.power, the worker's formula); for the
// architecture with the best accuracy among the first N evaluations the
// bench reports every column of the table (e.g. test_accuracy, parameters,
// train_seconds), mean ± std over seeds, at N = 25, 50, 100, 200, 500, 1000
// (those within --evaluations); when the table has `train_seconds`, also the
// best accuracy within simulated training-time budgets (the summed
// train_seconds of the evaluations so far: one worker's clock) of 25 ... 1000
// times the table's mean train_seconds; and the distinct architectures per
// 100 evaluations. --per_seed_out writes every seed's figures as CSV and
// --curve_out the mean best accuracy after every evaluation (for
// tools/bench_search.sh's plot).
//
// How each strategy is driven, in process (no controller, no workers):
//   random, reinforce: K replicas each sample m from the same weights, then
//     push their gradients one after another through the job's optimizer (so
//     later pushes are stale by up to K - 1 updates), as the service's
//     replicas do;
//   evolution: K·m loops of one child share the job's population; children
//     complete first in, first out, and each completion starts the next.
//
// Goal (docs/benchmarks.md): each of --goal_configs (default evolution and
// reinforce, the job spec's defaults) beats random search at each
// --goal_budgets N (default 100 and 200) by more than --goal_standard_errors
// (2) standard errors of the difference of the means; the other
// configurations' margins are printed too.
// Exits 1 naming each figure that misses it, or when random search finds
// no architecture of the table (a table that does not match --num_nodes /
// --operations); 2 on bad flags or an unreadable table.
//   bazel run //tools:make_lookup_table -- --family=interacting --out=/tmp/t.csv
//   bazel run //bench:search_bench -- --table=/tmp/t.csv
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <deque>
#include <limits>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/file_util.h"
#include "controller/job_spec.h"
#include "controller/strategy_registry.h"
#include "parameter_server/optimizer.h"

ABSL_FLAG(std::string, table, "", "Lookup CSV (arch,accuracy,...). Required.");
ABSL_FLAG(int, seeds, 50, "Seeds per configuration.");
ABSL_FLAG(int, evaluations, 1000, "Evaluations per seed (the largest N).");
ABSL_FLAG(std::string, configs, "random,evolution,evolution_k8,reinforce,reinforce_k8",
          "Configurations: random, evolution or reinforce, each optionally with _k<K> "
          "(K replicas; evolution: K·m children in flight). The first must be random (the "
          "reference).");
ABSL_FLAG(int, num_nodes, 4, "Cell nodes of the table's space.");
ABSL_FLAG(std::string, operations, "none,skip_connect,nor_conv_1x1,nor_conv_3x3,avg_pool_3x3",
          "The table's operations, in token order.");
// Strategy, parallelism and controller settings: unset (0, -1 or empty)
// means the job spec's default (controller/job_spec.cc WithDefaults).
ABSL_FLAG(int, population_size, 0, "strategy.population_size (evolution).");
ABSL_FLAG(int, tournament_size, 0, "strategy.tournament_size (evolution).");
ABSL_FLAG(int, children_per_replica, 0, "parallelism.children_per_replica (m).");
ABSL_FLAG(int, lstm_layers, 0, "controller.lstm_layers.");
ABSL_FLAG(int, lstm_units, 0, "controller.lstm_units.");
ABSL_FLAG(double, init_range, -1, "controller.init_range.");
ABSL_FLAG(double, temperature, -1, "controller.temperature.");
ABSL_FLAG(double, tanh_constant, -1, "controller.tanh_constant.");
ABSL_FLAG(double, entropy_weight, -1, "controller.entropy_weight.");
ABSL_FLAG(double, baseline_decay, -1, "controller.baseline_decay.");
ABSL_FLAG(double, grad_clip_norm, -1, "controller.grad_clip_norm.");
ABSL_FLAG(double, learning_rate, -1, "controller.learning_rate.");
ABSL_FLAG(std::string, optimizer, "", "controller.optimizer (adam or sgd).");
ABSL_FLAG(double, reward_power, -1, "reward.power (reward = accuracy^power).");
ABSL_FLAG(std::string, goal_budgets, "100,200", "The N at which the goal is checked.");
ABSL_FLAG(std::string, goal_configs, "evolution,reinforce",
          "The configurations the goal applies to (the defaults: K = 1, m = 1); the others are "
          "reported with their margins but not held to it.");
ABSL_FLAG(double, goal_standard_errors, 2.0,
          "How many standard errors of the difference each strategy must beat random by.");
ABSL_FLAG(std::string, curve_out, "",
          "If set, writes `evaluations` and each configuration's mean and std of the best "
          "accuracy after every evaluation, tab-separated.");
ABSL_FLAG(std::string, replay_dir, "",
          "If set, searches nothing: reads each configuration's evaluations from "
          "DIR/<config>.<seed>.txt (canonical strings in completion order, one a line; seeds "
          "1000, 1001, ...) and reports them the same way (tools/bench_search_service.sh writes "
          "them from jobs run through a real cluster).");
ABSL_FLAG(std::string, per_seed_out, "",
          "If set, writes config,seed,budget,value and every column of the best architecture, "
          "one row per seed and budget (CSV).");

namespace {

const int kBudgets[] = {25, 50, 100, 200, 500, 1000};

// The table: every numeric column of every row, and the row of each
// architecture. Column 0 of `values` is accuracy.
struct Table {
  std::vector<std::string> columns;  // without arch; columns[0] == "accuracy"
  std::vector<std::vector<double>> rows;
  absl::flat_hash_map<std::string, int> row_of;
  int train_seconds = -1;  // column index, -1 if absent
};

absl::StatusOr<Table> ReadTable(const std::string& path) {
  absl::StatusOr<std::string> csv = nas::ReadFile(path);
  if (!csv.ok()) return csv.status();
  std::vector<absl::string_view> lines = absl::StrSplit(*csv, '\n', absl::SkipEmpty());
  if (lines.empty()) return absl::InvalidArgumentError(absl::StrCat(path, ": empty"));
  std::vector<std::string> header = absl::StrSplit(absl::StripSuffix(lines[0], "\r"), ',');
  int arch = -1, accuracy = -1;
  for (int i = 0; i < static_cast<int>(header.size()); ++i) {
    header[i] = std::string(absl::StripAsciiWhitespace(header[i]));
    if (header[i] == "arch") arch = i;
    if (header[i] == "accuracy") accuracy = i;
  }
  if (arch < 0 || accuracy < 0) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": the header needs arch and accuracy"));
  }
  Table table;
  std::vector<int> order = {accuracy};
  for (int i = 0; i < static_cast<int>(header.size()); ++i) {
    if (i != arch && i != accuracy) order.push_back(i);
  }
  for (int i : order) table.columns.push_back(header[i]);
  for (size_t c = 0; c < table.columns.size(); ++c) {
    if (table.columns[c] == "train_seconds") table.train_seconds = static_cast<int>(c);
  }
  for (size_t l = 1; l < lines.size(); ++l) {
    std::vector<absl::string_view> cells = absl::StrSplit(absl::StripSuffix(lines[l], "\r"), ',');
    if (cells.size() != header.size()) {
      return absl::InvalidArgumentError(absl::StrCat(path, ":", l + 1, ": ", cells.size(),
                                                     " columns, the header has ", header.size()));
    }
    std::vector<double> values;
    for (int i : order) {
      double v = 0;
      if (!absl::SimpleAtod(absl::StripAsciiWhitespace(cells[i]), &v)) {
        return absl::InvalidArgumentError(
            absl::StrCat(path, ":", l + 1, ": column ", header[i], " is not a number"));
      }
      values.push_back(v);
    }
    table.row_of[std::string(absl::StripAsciiWhitespace(cells[arch]))] =
        static_cast<int>(table.rows.size());
    table.rows.push_back(std::move(values));
  }
  if (table.rows.empty()) return absl::InvalidArgumentError(absl::StrCat(path, ": no rows"));
  return table;
}

struct Config {
  std::string name;
  std::string strategy;
  int replicas = 1;
};

absl::StatusOr<nas::v1::JobSpec> Spec(const Config& config, int64_t seed, int evaluations) {
  nas::v1::JobSpec spec;
  nas::v1::CellSpace* cell = spec.mutable_search_space()->mutable_cell();
  cell->set_num_nodes(absl::GetFlag(FLAGS_num_nodes));
  for (absl::string_view op : absl::StrSplit(absl::GetFlag(FLAGS_operations), ',')) {
    cell->add_operations(std::string(op));
  }
  nas::v1::StrategySpec* strategy = spec.mutable_strategy();
  strategy->set_name(config.strategy);
  strategy->set_seed(seed);
  if (config.strategy == "evolution") {
    strategy->set_population_size(absl::GetFlag(FLAGS_population_size));
    strategy->set_tournament_size(absl::GetFlag(FLAGS_tournament_size));
  }
  spec.mutable_parallelism()->set_num_replicas(config.replicas);
  if (int m = absl::GetFlag(FLAGS_children_per_replica); m != 0) {
    spec.mutable_parallelism()->set_children_per_replica(m);
  }
  nas::v1::ControllerSpec* c = spec.mutable_controller();
  c->set_lstm_layers(absl::GetFlag(FLAGS_lstm_layers));
  c->set_lstm_units(absl::GetFlag(FLAGS_lstm_units));
  auto set = [](double value, void (nas::v1::ControllerSpec::*setter)(double),
                nas::v1::ControllerSpec* spec) {
    if (value >= 0) (spec->*setter)(value);
  };
  set(absl::GetFlag(FLAGS_init_range), &nas::v1::ControllerSpec::set_init_range, c);
  set(absl::GetFlag(FLAGS_temperature), &nas::v1::ControllerSpec::set_temperature, c);
  set(absl::GetFlag(FLAGS_tanh_constant), &nas::v1::ControllerSpec::set_tanh_constant, c);
  set(absl::GetFlag(FLAGS_entropy_weight), &nas::v1::ControllerSpec::set_entropy_weight, c);
  set(absl::GetFlag(FLAGS_baseline_decay), &nas::v1::ControllerSpec::set_baseline_decay, c);
  set(absl::GetFlag(FLAGS_grad_clip_norm), &nas::v1::ControllerSpec::set_grad_clip_norm, c);
  set(absl::GetFlag(FLAGS_learning_rate), &nas::v1::ControllerSpec::set_learning_rate, c);
  c->set_optimizer(absl::GetFlag(FLAGS_optimizer));
  if (double p = absl::GetFlag(FLAGS_reward_power); p >= 0) spec.mutable_reward()->set_power(p);
  spec.mutable_budget()->set_max_trials(evaluations);
  spec.mutable_evaluator()->mutable_synthetic();
  spec = nas::controller::WithDefaults(spec);
  if (absl::Status valid = nas::controller::ValidateJobSpec(spec); !valid.ok()) return valid;
  return spec;
}

double Accuracy(const Table& table, int row) { return row < 0 ? 0 : table.rows[row][0]; }

// The table rows (-1: not in the table) of `evaluations` evaluations, in order.
absl::StatusOr<std::vector<int>> Run(const Config& config, int64_t seed, int evaluations,
                                     const Table& table) {
  absl::StatusOr<nas::v1::JobSpec> spec = Spec(config, seed, evaluations);
  if (!spec.ok()) return spec.status();
  const double power = spec->reward().power();
  auto row_of = [&](const nas::v1::Architecture& a) {
    auto it = table.row_of.find(a.canonical());
    return it == table.row_of.end() ? -1 : it->second;
  };
  const nas::controller::ReplicaLayout layout = nas::controller::LayoutOf(*spec);
  absl::StatusOr<std::shared_ptr<nas::controller::JobStrategyState>> state =
      nas::controller::CreateJobStrategyState(*spec);
  if (!state.ok()) return state.status();
  std::vector<std::unique_ptr<nas::controller::SearchStrategy>> loops;
  for (int r = 0; r < layout.loops; ++r) {
    auto created = nas::controller::CreateStrategy(*spec, r, *state);
    if (!created.ok()) return created.status();
    loops.push_back(std::move(created).value());
  }
  std::vector<int> out;
  int64_t sampled = 0;
  if (layout.children_per_round == 1 && *state != nullptr) {
    // Evolution: one child per loop in flight, completing first in, first out.
    struct InFlight {
      int loop;
      nas::v1::Architecture architecture;
    };
    std::deque<InFlight> in_flight;
    auto start = [&](int loop) -> absl::Status {
      nas::controller::SampleContext context;
      context.samples_so_far = sampled++;
      auto child = loops[loop]->Sample(1, context);
      if (!child.ok()) return child.status();
      in_flight.push_back({loop, std::move(child->front())});
      return absl::OkStatus();
    };
    for (int r = 0; r < layout.loops && sampled < evaluations; ++r) {
      if (absl::Status s = start(r); !s.ok()) return s;
    }
    while (!in_flight.empty()) {
      InFlight done = std::move(in_flight.front());
      in_flight.pop_front();
      const int row = row_of(done.architecture);
      out.push_back(row);
      loops[done.loop]->Observe(
          {{done.architecture, std::pow(Accuracy(table, row), power)}});
      if (sampled < evaluations) {
        if (absl::Status s = start(done.loop); !s.ok()) return s;
      }
    }
    return out;
  }
  // Random and REINFORCE: every replica samples m from the same weights, then
  // they push one after another.
  std::vector<nas::FlatTensor> theta = loops[0]->InitialParameters();
  std::vector<std::vector<float>> m1, m2;
  for (const auto& t : theta) {
    m1.emplace_back(t.values.size(), 0.f);
    m2.emplace_back(t.values.size(), 0.f);
  }
  nas::v1::OptimizerConfig optimizer;
  optimizer.set_kind(spec->controller().optimizer() == "sgd" ? nas::v1::OptimizerConfig::SGD
                                                             : nas::v1::OptimizerConfig::ADAM);
  optimizer.set_learning_rate(spec->controller().learning_rate());
  auto apply = nas::ps::CreateOptimizer(optimizer);
  if (!apply.ok()) return apply.status();
  int64_t step = 0;
  while (static_cast<int>(out.size()) < evaluations) {
    std::vector<std::vector<nas::v1::Architecture>> sampled_now(loops.size());
    for (size_t r = 0; r < loops.size(); ++r) {
      if (!theta.empty()) {
        if (absl::Status s = loops[r]->LoadParameters(theta); !s.ok()) return s;
      }
      nas::controller::SampleContext context;
      context.samples_so_far = sampled;
      auto archs = loops[r]->Sample(layout.children_per_round, context);
      if (!archs.ok()) return archs.status();
      sampled += layout.children_per_round;
      sampled_now[r] = *std::move(archs);
    }
    for (size_t r = 0; r < loops.size() && static_cast<int>(out.size()) < evaluations; ++r) {
      std::vector<double> rewards;
      for (const auto& a : sampled_now[r]) {
        const int row = row_of(a);
        rewards.push_back(std::pow(Accuracy(table, row), power));
        if (static_cast<int>(out.size()) < evaluations) out.push_back(row);
      }
      if (theta.empty()) continue;
      auto gradient = loops[r]->Gradient(sampled_now[r], rewards);
      if (!gradient.ok()) return gradient.status();
      ++step;
      for (size_t k = 0; k < theta.size(); ++k) {
        (*apply)->Apply(theta[k].values.data(), (*gradient)[k].values.data(), m1[k].data(),
                        m2[k].data(), theta[k].values.size(), step);
      }
    }
  }
  return out;
}

// A run recorded by tools/bench_search_service.sh: at least `evaluations`
// canonical strings; the rows of the first `evaluations`.
absl::StatusOr<std::vector<int>> Replay(const std::string& path, int evaluations,
                                        const Table& table) {
  absl::StatusOr<std::string> text = nas::ReadFile(path);
  if (!text.ok()) return text.status();
  std::vector<int> rows;
  for (absl::string_view line : absl::StrSplit(*text, '\n', absl::SkipEmpty())) {
    if (static_cast<int>(rows.size()) == evaluations) break;
    auto it = table.row_of.find(absl::StripAsciiWhitespace(line));
    rows.push_back(it == table.row_of.end() ? -1 : it->second);
  }
  if (static_cast<int>(rows.size()) < evaluations) {
    return absl::InvalidArgumentError(absl::StrCat(path, " has ", rows.size(),
                                                   " evaluations; --evaluations is ", evaluations));
  }
  return rows;
}

// The row with the best accuracy among the first `n` evaluations (ties: the
// first), or -1.
int BestRow(const Table& table, const std::vector<int>& rows, size_t n) {
  int best = -1;
  for (size_t i = 0; i < std::min(n, rows.size()); ++i) {
    if (rows[i] >= 0 && (best < 0 || Accuracy(table, rows[i]) > Accuracy(table, best))) {
      best = rows[i];
    }
  }
  return best;
}

struct MeanStd {
  double mean = 0, std = 0, standard_error = 0;
};

MeanStd Summarise(const std::vector<double>& values) {
  MeanStd out;
  const double n = static_cast<double>(values.size());
  if (values.empty()) return out;
  for (double v : values) out.mean += v / n;
  double sq = 0;
  for (double v : values) sq += (v - out.mean) * (v - out.mean);
  out.std = values.size() > 1 ? std::sqrt(sq / (n - 1)) : 0;
  out.standard_error = out.std / std::sqrt(n);
  return out;
}

absl::StatusOr<std::vector<Config>> ParseConfigs(const std::string& text) {
  std::vector<Config> configs;
  for (absl::string_view item : absl::StrSplit(text, ',', absl::SkipEmpty())) {
    Config c;
    c.name = std::string(item);
    c.strategy = c.name;
    if (size_t k = c.name.rfind("_k"); k != std::string::npos) {
      if (!absl::SimpleAtoi(c.name.substr(k + 2), &c.replicas) || c.replicas < 1) {
        return absl::InvalidArgumentError(absl::StrCat("--configs: bad replica count in ", c.name));
      }
      c.strategy = c.name.substr(0, k);
    }
    if (!nas::controller::LookupStrategy(c.strategy).ok()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--configs: unknown strategy in ", c.name, " (known: ",
          absl::StrJoin(nas::controller::StrategyNames(), ", "), ")"));
    }
    configs.push_back(c);
  }
  if (configs.empty() || configs[0].strategy != "random") {
    return absl::InvalidArgumentError("--configs: the first configuration must be random (the reference)");
  }
  return configs;
}

}  // namespace

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  absl::StatusOr<Table> table = ReadTable(absl::GetFlag(FLAGS_table));
  if (!table.ok()) {
    std::fprintf(stderr, "--table: %s\n", std::string(table.status().message()).c_str());
    return 2;
  }
  absl::StatusOr<std::vector<Config>> configs = ParseConfigs(absl::GetFlag(FLAGS_configs));
  if (!configs.ok()) {
    std::fprintf(stderr, "%s\n", std::string(configs.status().message()).c_str());
    return 2;
  }
  std::vector<int> goal_budgets;
  for (absl::string_view b : absl::StrSplit(absl::GetFlag(FLAGS_goal_budgets), ',', absl::SkipEmpty())) {
    int n = 0;
    if (!absl::SimpleAtoi(b, &n) || n < 1) {
      std::fprintf(stderr, "--goal_budgets: bad budget '%s'\n", std::string(b).c_str());
      return 2;
    }
    goal_budgets.push_back(n);
  }
  const int seeds = absl::GetFlag(FLAGS_seeds);
  const int evaluations = absl::GetFlag(FLAGS_evaluations);
  if (seeds < 2 || evaluations < 1) {
    std::fprintf(stderr, "need --seeds >= 2 and --evaluations >= 1\n");
    return 2;
  }
  double table_best = 0, mean_train_seconds = 0;
  for (const auto& row : table->rows) {
    table_best = std::max(table_best, row[0]);
    if (table->train_seconds >= 0) mean_train_seconds += row[table->train_seconds] / table->rows.size();
  }
  std::printf("table %s: %zu architectures, best accuracy %.4f, columns %s\n",
              absl::GetFlag(FLAGS_table).c_str(), table->rows.size(), table_best,
              absl::StrJoin(table->columns, ",").c_str());
  std::vector<int> budgets;
  for (int b : kBudgets) {
    if (b <= evaluations) budgets.push_back(b);
  }
  // [config][budget index] -> best accuracy per seed (for the goal).
  std::vector<std::vector<std::vector<double>>> best_at(configs->size());
  std::vector<std::vector<std::pair<double, double>>> curves;
  std::string per_seed = absl::StrCat("config,seed,budget_kind,budget,",
                                      absl::StrJoin(table->columns, ","), "\n");
  for (size_t ci = 0; ci < configs->size(); ++ci) {
    const Config& config = (*configs)[ci];
    std::vector<std::vector<int>> runs;
    for (int s = 0; s < seeds; ++s) {
      const std::string replay = absl::GetFlag(FLAGS_replay_dir);
      absl::StatusOr<std::vector<int>> run =
          replay.empty()
              ? Run(config, 1000 + s, evaluations, *table)
              : Replay(absl::StrCat(replay, "/", config.name, ".", 1000 + s, ".txt"), evaluations,
                       *table);
      if (!run.ok()) {
        std::fprintf(stderr, "%s: %s\n", config.name.c_str(), std::string(run.status().message()).c_str());
        return 2;
      }
      runs.push_back(*std::move(run));
    }
    // Every column of the best architecture at each budget.
    std::printf("\n%s (%s, K = %d)\n%-8s", config.name.c_str(), config.strategy.c_str(),
                config.replicas, "N");
    for (const std::string& column : table->columns) std::printf(" %24s", column.c_str());
    std::printf("\n");
    auto report = [&](const std::string& kind, double budget, const std::vector<int>& best_rows) {
      std::printf("%-8s", kind == "evaluations" ? absl::StrCat(static_cast<int>(budget)).c_str()
                                                 : absl::StrFormat("T%.0f", budget).c_str());
      for (size_t c = 0; c < table->columns.size(); ++c) {
        std::vector<double> values;
        for (int row : best_rows) {
          values.push_back(row < 0 ? std::numeric_limits<double>::quiet_NaN() : table->rows[row][c]);
        }
        const MeanStd m = Summarise(values);
        std::printf(" %24s", absl::StrFormat("%.4g ± %.3g", m.mean, m.std).c_str());
      }
      std::printf("\n");
      for (int s = 0; s < seeds; ++s) {
        absl::StrAppend(&per_seed, config.name, ",", 1000 + s, ",", kind, ",", budget);
        for (size_t c = 0; c < table->columns.size(); ++c) {
          absl::StrAppend(&per_seed, ",", best_rows[s] < 0 ? std::string("")
                                                           : absl::StrCat(table->rows[best_rows[s]][c]));
        }
        absl::StrAppend(&per_seed, "\n");
      }
    };
    best_at[ci].resize(budgets.size());
    for (size_t b = 0; b < budgets.size(); ++b) {
      std::vector<int> best_rows;
      for (const auto& run : runs) {
        best_rows.push_back(BestRow(*table, run, budgets[b]));
        best_at[ci][b].push_back(Accuracy(*table, best_rows.back()));
      }
      report("evaluations", budgets[b], best_rows);
    }
    if (table->train_seconds >= 0) {
      for (int b : kBudgets) {
        const double limit = b * mean_train_seconds;
        std::vector<int> best_rows;
        bool reached = true;
        for (const auto& run : runs) {
          double used = 0;
          size_t n = 0;
          while (n < run.size() &&
                 used + (run[n] < 0 ? 0 : table->rows[run[n]][table->train_seconds]) <= limit) {
            used += run[n] < 0 ? 0 : table->rows[run[n]][table->train_seconds];
            ++n;
          }
          reached = reached && n < run.size();
          best_rows.push_back(BestRow(*table, run, n));
        }
        if (!reached) break;  // the evaluations ran out before this budget
        report("train_seconds", limit, best_rows);
      }
    }
    // Distinct architectures per 100 evaluations.
    std::printf("distinct architectures per 100 evaluations:");
    for (int start = 0; start + 100 <= evaluations; start += 100) {
      double distinct = 0;
      for (const auto& run : runs) {
        distinct += static_cast<double>(
                        std::set<int>(run.begin() + start, run.begin() + start + 100).size()) /
                    seeds;
      }
      std::printf(" %.1f", distinct);
    }
    std::printf("\n");
    std::fflush(stdout);
    std::vector<std::pair<double, double>> curve(evaluations);
    for (int e = 0; e < evaluations; ++e) {
      std::vector<double> values;
      for (const auto& run : runs) values.push_back(Accuracy(*table, BestRow(*table, run, e + 1)));
      const MeanStd m = Summarise(values);
      curve[e] = {m.mean, m.std};
    }
    curves.push_back(std::move(curve));
  }
  // The goal: each configuration beats random search by more than
  // goal_standard_errors standard errors at each goal budget.
  std::vector<std::string> missed;
  const double z = absl::GetFlag(FLAGS_goal_standard_errors);
  const std::vector<std::string> goal_configs =
      absl::StrSplit(absl::GetFlag(FLAGS_goal_configs), ',', absl::SkipEmpty());
  std::printf("\ngoal: best accuracy minus random search's, in standard errors of the difference\n");
  if (!(Summarise(best_at[0].back()).mean > 0)) {
    missed.push_back("random search found no architecture of the table (do --num_nodes and "
                     "--operations match it?)");
  }
  for (size_t ci = 1; ci < configs->size(); ++ci) {
    for (int n : goal_budgets) {
      auto it = std::find(budgets.begin(), budgets.end(), n);
      if (it == budgets.end()) {
        missed.push_back(absl::StrCat("goal budget ", n, " is not one of the reported budgets"));
        continue;
      }
      const size_t b = it - budgets.begin();
      const MeanStd a = Summarise(best_at[ci][b]);
      const MeanStd r = Summarise(best_at[0][b]);
      const double se = std::sqrt(a.standard_error * a.standard_error +
                                  r.standard_error * r.standard_error);
      const double margin = se > 0 ? (a.mean - r.mean) / se : (a.mean > r.mean ? 1e9 : 0);
      const bool held = std::find(goal_configs.begin(), goal_configs.end(),
                                  (*configs)[ci].name) != goal_configs.end();
      std::printf("%s_vs_random_at_%d %+.4f (%.1f standard errors)%s\n",
                  (*configs)[ci].name.c_str(), n, a.mean - r.mean, margin,
                  held ? "" : " [no goal]");
      if (held && !(margin > z)) {
        missed.push_back(absl::StrFormat(
            "%s_best_accuracy_after_%d %.4f misses its goal: random search's %.4f + %.1f standard "
            "errors (it is %.1f)",
            (*configs)[ci].name, n, a.mean, r.mean, z, margin));
      }
    }
  }
  if (const std::string path = absl::GetFlag(FLAGS_curve_out); !path.empty()) {
    std::string out = "evaluations";
    for (const Config& c : *configs) out += absl::StrCat("\t", c.name, "_mean\t", c.name, "_std");
    out += "\n";
    for (int e = 0; e < evaluations; ++e) {
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
  if (const std::string path = absl::GetFlag(FLAGS_per_seed_out); !path.empty()) {
    if (absl::Status written = nas::WriteFileAtomically(path, per_seed); !written.ok()) {
      std::fprintf(stderr, "--per_seed_out: %s\n", std::string(written.message()).c_str());
      return 1;
    }
  }
  for (const std::string& m : missed) std::printf("MISSED %s\n", m.c_str());
  if (!missed.empty()) return 1;
  std::printf("all goals met\n");
  return 0;
}
