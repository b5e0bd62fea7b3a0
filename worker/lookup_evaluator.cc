#include "worker/lookup_evaluator.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "common/file_util.h"
#include "search_space/defaults.h"
#include "search_space/search_space.h"

namespace nas::worker {

absl::StatusOr<std::map<std::string, LookupRow>> ParseLookupTable(const std::string& csv,
                                                                   const std::string& name) {
  std::vector<absl::string_view> lines = absl::StrSplit(csv, '\n', absl::SkipEmpty());
  if (lines.empty()) return absl::InvalidArgumentError(absl::StrCat(name, ": empty table"));
  std::vector<std::string> header = absl::StrSplit(absl::StripSuffix(lines[0], "\r"), ',');
  int arch = -1, accuracy = -1, parameters = -1, flops = -1, latency = -1, per_epoch = -1;
  std::map<int, int> curve_columns;  // epoch -> column
  for (int i = 0; i < static_cast<int>(header.size()); ++i) {
    const std::string column(absl::StripAsciiWhitespace(header[i]));
    if (column == "arch") arch = i;
    if (column == "accuracy") accuracy = i;
    if (column == "parameters") parameters = i;
    if (column == "flops") flops = i;
    if (column == "latency_seconds") latency = i;
    if (column == "seconds_per_epoch") per_epoch = i;
    int epoch = 0;
    if (absl::StartsWith(column, "val_accuracy_e") &&
        absl::SimpleAtoi(column.substr(std::string("val_accuracy_e").size()), &epoch)) {
      if (epoch < 1 || !curve_columns.emplace(epoch, i).second) {
        // The header's text is not quoted either: the column is named by number.
        return absl::InvalidArgumentError(absl::StrCat(
            name, " line 1, column ", i + 1, ": a val_accuracy_e column that is not a new epoch from 1"));
      }
    }
  }
  if (arch < 0 || accuracy < 0) {
    return absl::InvalidArgumentError(absl::StrCat(name, ": the header needs columns arch and accuracy"));
  }
  if (!curve_columns.empty() && curve_columns.rbegin()->first != static_cast<int>(curve_columns.size())) {
    return absl::InvalidArgumentError(absl::StrCat(
        name, ": curve columns must be val_accuracy_e1 ... val_accuracy_eN without a gap; found ",
        curve_columns.size(), " up to epoch ", curve_columns.rbegin()->first));
  }
  std::map<std::string, LookupRow> table;
  for (size_t l = 1; l < lines.size(); ++l) {
    std::vector<std::string> cells = absl::StrSplit(absl::StripSuffix(lines[l], "\r"), ',');
    if (cells.size() != header.size()) {
      return absl::InvalidArgumentError(absl::StrCat(name, " line ", l + 1, ": ", cells.size(),
                                                     " columns, the header has ", header.size()));
    }
    // Errors name the line, the column and the problem, never a cell's
    // text: a table path may name a file whose bytes are not the job's to see.
    LookupRow row;
    if (!absl::SimpleAtod(cells[accuracy], &row.accuracy) || !(row.accuracy >= 0 && row.accuracy <= 1)) {
      return absl::InvalidArgumentError(
          absl::StrCat(name, " line ", l + 1, ", column 'accuracy': not a number in [0, 1]"));
    }
    if (parameters >= 0) (void)absl::SimpleAtoi(cells[parameters], &row.parameters);
    if (flops >= 0) (void)absl::SimpleAtoi(cells[flops], &row.flops);
    if (latency >= 0) (void)absl::SimpleAtod(cells[latency], &row.latency_seconds);
    for (const auto& [epoch, column] : curve_columns) {
      double value = 0;
      if (!absl::SimpleAtod(cells[column], &value) || !(value >= 0 && value <= 1)) {
        return absl::InvalidArgumentError(absl::StrCat(name, " line ", l + 1, ", column 'val_accuracy_e",
                                                       epoch, "': not a number in [0, 1]"));
      }
      row.curve.push_back(value);
    }
    if (per_epoch >= 0 && (!absl::SimpleAtod(cells[per_epoch], &row.seconds_per_epoch) ||
                           !(row.seconds_per_epoch >= 0 && row.seconds_per_epoch < 1e7))) {
      return absl::InvalidArgumentError(absl::StrCat(
          name, " line ", l + 1, ", column 'seconds_per_epoch': not a number in [0, 1e7)"));
    }
    if (!table.emplace(cells[arch], row).second) {
      return absl::InvalidArgumentError(
          absl::StrCat(name, " line ", l + 1, ", column 'arch': an architecture an earlier line has"));
    }
  }
  return table;
}

namespace {

class LookupEvaluator : public Evaluator {
 public:
  explicit LookupEvaluator(EvaluatorOptions options) : options_(std::move(options)) {}

  absl::StatusOr<v1::TrialMetrics> Evaluate(const v1::Task& task, const EvaluationContext& context) override {
    const std::string& path = task.evaluator().lookup().table_path();
    absl::StatusOr<std::shared_ptr<const std::map<std::string, LookupRow>>> table = Load(path);
    if (!table.ok()) return table.status();
    if (context.Cancelled()) return absl::CancelledError("cancelled");
    // The key is printed from the readable form by the same code that wrote
    // the table (tools/make_lookup_table), not taken from the task's
    // `canonical` field on trust.
    if (task.architecture().form_case() == v1::Architecture::FORM_NOT_SET) {
      return absl::InvalidArgumentError("architecture has no readable form to look up");
    }
    const std::string canonical = search_space::CanonicalString(task.architecture());
    auto it = (*table)->find(canonical);
    if (it == (*table)->end()) {
      return absl::NotFoundError(absl::StrCat("architecture ", canonical, " is not in ", path));
    }
    v1::TrialMetrics metrics;
    if (it->second.curve.empty()) {
      v1::EpochResult* epoch = metrics.add_epochs();
      epoch->set_epoch(1);
      epoch->set_validation_accuracy(it->second.accuracy);
      context.on_epoch(*epoch);
      metrics.set_accuracy(it->second.accuracy);
    } else {
      absl::Status replayed = Replay(task, it->second, context, &metrics);
      if (!replayed.ok()) return replayed;
    }
    metrics.set_parameters(it->second.parameters);
    metrics.set_flops(it->second.flops);
    metrics.set_latency_seconds(it->second.latency_seconds);
    metrics.set_device("lookup");
    metrics.set_reward(ComputeReward(task.reward(), metrics.accuracy(), metrics));
    return metrics;
  }

 private:
  // Replays `row`'s curve into `metrics` epoch by epoch, in simulated time
  // scaled by evaluator.lookup.time_scale, until its end or a stop.
  static absl::Status Replay(const v1::Task& task, const LookupRow& row,
                             const EvaluationContext& context, v1::TrialMetrics* metrics) {
    const absl::Duration wait =
        absl::Seconds(row.seconds_per_epoch * std::max(0.0, task.evaluator().lookup().time_scale()));
    for (size_t e = 0; e < row.curve.size() && !context.StopEarly(); ++e) {
      const absl::Time end = absl::Now() + wait;
      while (absl::Now() < end && !context.StopEarly()) {
        if (context.Cancelled()) return absl::CancelledError("cancelled");
        absl::SleepFor(std::min(absl::Milliseconds(20), end - absl::Now()));
      }
      if (context.Cancelled()) return absl::CancelledError("cancelled");
      if (context.StopEarly()) break;  // the epoch in progress is dropped
      v1::EpochResult* epoch = metrics->add_epochs();
      epoch->set_epoch(static_cast<int>(e) + 1);
      epoch->set_validation_accuracy(row.curve[e]);
      epoch->set_seconds(row.seconds_per_epoch);
      context.on_epoch(*epoch);
    }
    // Simulated seconds: what training the epochs replayed would have cost.
    metrics->set_train_seconds(row.seconds_per_epoch * metrics->epochs_size());
    metrics->set_accuracy(
        RecentAccuracy(*metrics, search_space::WithRewardDefaults(task.reward()).last_epochs()));
    return absl::OkStatus();
  }

  absl::StatusOr<std::shared_ptr<const std::map<std::string, LookupRow>>> Load(const std::string& path)
      ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    auto it = tables_.find(path);
    if (it != tables_.end()) return it->second;
    absl::StatusOr<std::string> csv = ReadFileUnderRoots(path, options_.data_roots, options_.max_table_bytes);
    if (!csv.ok()) {
      return absl::FailedPreconditionError(absl::StrCat("lookup table: ", csv.status().message()));
    }
    absl::StatusOr<std::map<std::string, LookupRow>> parsed = ParseLookupTable(*csv, path);
    if (!parsed.ok()) return parsed.status();
    auto shared = std::make_shared<const std::map<std::string, LookupRow>>(*std::move(parsed));
    tables_[path] = shared;
    return shared;
  }

  const EvaluatorOptions options_;
  absl::Mutex mu_;
  std::map<std::string, std::shared_ptr<const std::map<std::string, LookupRow>>> tables_ ABSL_GUARDED_BY(mu_);
};

}  // namespace

std::unique_ptr<Evaluator> NewLookupEvaluator(const EvaluatorOptions& options) {
  return std::make_unique<LookupEvaluator>(options);
}

}  // namespace nas::worker
