// The command evaluator (docs/command_evaluator.md): runs the user's own
// training command per attempt, in a fresh working directory holding the
// architecture (architecture.json, model.py as `nasctl export` writes them),
// with NAS_* variables in its environment, and reads its metrics from the
// JSON lines it prints on stdout. The command runs in a process group of its
// own, which a cancel, an early stop, a lease loss or a limit ends (SIGTERM,
// SIGKILL after the spec's grace_seconds).
#ifndef NAS_WORKER_COMMAND_EVALUATOR_H_
#define NAS_WORKER_COMMAND_EVALUATOR_H_

#include <cstdint>
#include <memory>
#include <optional>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "worker/evaluator.h"

namespace nas::worker {

// One metric line: a JSON object with at least "epoch" or "accuracy".
struct MetricLine {
  std::optional<int> epoch;
  // Validation accuracy (per epoch), or the trial's accuracy (final line).
  std::optional<double> accuracy;
  std::optional<double> loss;
  std::optional<double> train_accuracy;
  std::optional<int64_t> parameters;
  std::optional<int64_t> flops;
  std::optional<double> latency_seconds;
};

// A line of the command's stdout: nullopt for ordinary output (anything that
// is not a JSON object, or an object with neither "epoch" nor "accuracy");
// INVALID_ARGUMENT naming the key for a metric line with a bad value
// (accuracy not a number in [0, 1], epoch not an integer >= 1, ...). NaN and
// Infinity (Python's json writes them) are accepted for "loss" only and
// read as "not reported".
absl::StatusOr<std::optional<MetricLine>> ParseMetricLine(absl::string_view line);

std::unique_ptr<Evaluator> NewCommandEvaluator(const EvaluatorOptions& options);

}  // namespace nas::worker

#endif  // NAS_WORKER_COMMAND_EVALUATOR_H_
