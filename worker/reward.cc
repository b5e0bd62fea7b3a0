#include <algorithm>
#include <cmath>

#include "search_space/defaults.h"
#include "worker/evaluator.h"

namespace nas::worker {

std::vector<std::string> EvaluatorOptions::DefaultDataRoots() { return {"/usr/share/datasets", "/data"}; }

bool IsPermanent(const absl::Status& status) {
  return absl::IsInvalidArgument(status) || absl::IsResourceExhausted(status) ||
         absl::IsUnimplemented(status) || absl::IsNotFound(status) || absl::IsFailedPrecondition(status);
}

double RecentAccuracy(const v1::TrialMetrics& metrics, int last_epochs) {
  const int n = metrics.epochs_size();
  if (n == 0) return metrics.accuracy();
  double best = 0;
  for (int i = std::max(0, n - std::max(1, last_epochs)); i < n; ++i) {
    best = std::max(best, metrics.epochs(i).validation_accuracy());
  }
  return best;
}

double ComputeReward(const v1::RewardSpec& reward, double accuracy, const v1::TrialMetrics& metrics) {
  const double power = search_space::WithRewardDefaults(reward).power();
  double r = std::pow(std::max(0.0, accuracy), power);
  if (!reward.objective_metric().empty() && reward.objective_target() > 0) {
    double value = 0;
    if (reward.objective_metric() == "parameters") value = static_cast<double>(metrics.parameters());
    if (reward.objective_metric() == "flops") value = static_cast<double>(metrics.flops());
    if (reward.objective_metric() == "latency_seconds") value = metrics.latency_seconds();
    if (value > 0) r *= std::pow(value / reward.objective_target(), reward.objective_weight());
  }
  return r;
}

}  // namespace nas::worker
