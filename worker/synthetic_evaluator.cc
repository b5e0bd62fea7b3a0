#include "worker/synthetic_evaluator.h"

#include <functional>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "search_space/defaults.h"

namespace nas::worker {

double SyntheticAccuracy(const v1::Architecture& a) {
  if (a.has_macro_cnn()) {
    const auto& layers = a.macro_cnn().layers();
    if (layers.empty()) return 0;
    int good = 0;
    for (const v1::MacroCnnLayer& l : layers) {
      good += (l.filter_height() == 5 && l.filter_width() == 5 ? 1 : 0) + (l.num_filters() == 64 ? 1 : 0);
    }
    return good / (2.0 * layers.size());
  }
  if (a.has_cell()) {
    if (a.cell().edge_operations().empty()) return 0;
    double total = 0;
    for (const std::string& op : a.cell().edge_operations()) {
      total += op == "nor_conv_3x3" ? 1.0 : op == "nor_conv_1x1" ? 0.7 : op == "avg_pool_3x3" ? 0.4
               : op == "skip_connect" ? 0.3 : 0.0;
    }
    return total / a.cell().edge_operations_size();
  }
  if (a.has_recurrent_cell()) {
    const auto& nodes = a.recurrent_cell().nodes();
    if (nodes.empty()) return 0;
    int tanh = 0;
    for (const auto& n : nodes) tanh += n.activation() == "tanh" ? 1 : 0;
    return static_cast<double>(tanh) / nodes.size();
  }
  return 0;
}

namespace {

class SyntheticEvaluator : public Evaluator {
 public:
  absl::StatusOr<v1::TrialMetrics> Evaluate(const v1::Task& task, const EvaluationContext& context) override {
    const v1::SyntheticEvaluatorSpec& spec = task.evaluator().synthetic();
    const double accuracy = SyntheticAccuracy(task.architecture());
    // Deterministic per (trial, attempt) failures, to exercise retries.
    if (spec.failure_probability() > 0) {
      const size_t h = std::hash<std::string>()(absl::StrCat(task.trial_id(), "#", task.attempt()));
      if (static_cast<double>(h % 1000000) / 1e6 < spec.failure_probability()) {
        return absl::UnavailableError("synthetic failure (failure_probability)");
      }
    }
    const int epochs = std::max(1, spec.epochs());
    const absl::Duration per_epoch = absl::Seconds(spec.duration_seconds()) / epochs;
    v1::TrialMetrics metrics;
    const absl::Time start = absl::Now();
    for (int e = 1; e <= epochs && !context.StopEarly(); ++e) {
      // Sleep in short slices so a cancel or stop is noticed quickly.
      const absl::Time end = absl::Now() + per_epoch;
      while (absl::Now() < end && !context.StopEarly()) {
        if (context.Cancelled()) return absl::CancelledError("cancelled");
        absl::SleepFor(std::min(absl::Milliseconds(20), end - absl::Now()));
      }
      if (context.Cancelled()) return absl::CancelledError("cancelled");
      if (context.StopEarly()) break;  // the epoch in progress is dropped
      v1::EpochResult* epoch = metrics.add_epochs();
      epoch->set_epoch(e);
      epoch->set_validation_accuracy(accuracy * e / epochs);
      epoch->set_train_accuracy(accuracy * e / epochs);
      epoch->set_seconds(absl::ToDoubleSeconds(per_epoch));
      context.on_epoch(*epoch);
    }
    metrics.set_accuracy(RecentAccuracy(metrics, search_space::WithRewardDefaults(task.reward()).last_epochs()));
    metrics.set_parameters(1000 + static_cast<int64_t>(task.architecture().tokens_size()) * 100);
    metrics.set_train_seconds(absl::ToDoubleSeconds(absl::Now() - start));
    metrics.set_device("synthetic");
    metrics.set_reward(ComputeReward(task.reward(), metrics.accuracy(), metrics));
    return metrics;
  }
};

}  // namespace

std::unique_ptr<Evaluator> NewSyntheticEvaluator() { return std::make_unique<SyntheticEvaluator>(); }

}  // namespace nas::worker
