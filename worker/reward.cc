#include <algorithm>
#include <cmath>
#include <limits>

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

namespace {

// (metric / target) ^ weight with an objective (MnasNet), else 1.
double ObjectiveFactor(const v1::RewardSpec& reward, const v1::TrialMetrics& metrics) {
  if (reward.objective_metric().empty() || reward.objective_target() <= 0) return 1;
  double value = 0;
  if (reward.objective_metric() == "parameters") value = static_cast<double>(metrics.parameters());
  if (reward.objective_metric() == "flops") value = static_cast<double>(metrics.flops());
  if (reward.objective_metric() == "latency_seconds") value = metrics.latency_seconds();
  return value > 0 ? std::pow(value / reward.objective_target(), reward.objective_weight()) : 1;
}

}  // namespace

double ComputeReward(const v1::RewardSpec& reward, double accuracy, const v1::TrialMetrics& metrics) {
  const double power = search_space::WithRewardDefaults(reward).power();
  return std::pow(std::max(0.0, accuracy), power) * ObjectiveFactor(reward, metrics);
}

double RecentPerplexity(const v1::TrialMetrics& metrics, int last_epochs) {
  const int n = metrics.epochs_size();
  if (n == 0) return metrics.perplexity();
  double best = std::numeric_limits<double>::infinity();
  for (int i = std::max(0, n - std::max(1, last_epochs)); i < n; ++i) {
    best = std::min(best, metrics.epochs(i).validation_perplexity());
  }
  return best;
}

double ComputePerplexityReward(const v1::RewardSpec& reward, double perplexity, const v1::TrialMetrics& metrics) {
  if (!(perplexity > 0) || !std::isfinite(perplexity)) return 0;
  const double c = search_space::WithRewardDefaults(reward).perplexity_constant();
  return c / (perplexity * perplexity) * ObjectiveFactor(reward, metrics);
}

}  // namespace nas::worker
