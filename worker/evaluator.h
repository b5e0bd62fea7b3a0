// How a worker turns a task into metrics. One interface, three
// implementations (train, lookup, synthetic), each in its own target.
// Torch-free so the worker loop does not pay for LibTorch headers.
#ifndef NAS_WORKER_EVALUATOR_H_
#define NAS_WORKER_EVALUATOR_H_

#include <atomic>
#include <functional>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "proto/job.pb.h"
#include "proto/task_service.pb.h"

namespace nas::worker {

struct EvaluationContext {
  // Called after every epoch (from the evaluating thread).
  std::function<void(const v1::EpochResult&)> on_epoch = [](const v1::EpochResult&) {};
  // Set (by the heartbeat thread or a signal) to stop the evaluation; checked
  // at least once per batch. Not owned; may be null.
  const std::atomic<bool>* cancelled = nullptr;
  // Set (by the heartbeat thread) when the controller stops the evaluation
  // early: the evaluator ends at once and returns the metrics of the epochs
  // it finished (an epoch in progress is dropped). Checked like `cancelled`.
  // Not owned; may be null.
  const std::atomic<bool>* stop_early = nullptr;

  bool Cancelled() const { return cancelled != nullptr && cancelled->load(); }
  bool StopEarly() const { return stop_early != nullptr && stop_early->load(); }
};

class Evaluator {
 public:
  virtual ~Evaluator() = default;
  // Metrics with the reward filled in, from the epochs trained (all, or those
  // finished before the context said stop_early). Errors: CANCELLED when the context was
  // cancelled; INVALID_ARGUMENT / RESOURCE_EXHAUSTED / UNIMPLEMENTED /
  // NOT_FOUND for problems of the architecture itself (the trial fails for
  // good, see IsPermanent); anything else may succeed on another attempt.
  virtual absl::StatusOr<v1::TrialMetrics> Evaluate(const v1::Task& task,
                                                    const EvaluationContext& context) = 0;
};

// Whether a failed evaluation should not be retried.
bool IsPermanent(const absl::Status& status);

// R = (max validation accuracy over the last `last_epochs` epochs) ^ power,
// times (metric / target) ^ weight with an objective (MnasNet).
double ComputeReward(const v1::RewardSpec& reward, double accuracy, const v1::TrialMetrics& metrics);
// The max validation accuracy over the last `last_epochs` epochs.
double RecentAccuracy(const v1::TrialMetrics& metrics, int last_epochs);

// The evaluator for a task's EvaluatorSpec: train (`device`, LibTorch),
// lookup or synthetic.
absl::StatusOr<std::unique_ptr<Evaluator>> CreateEvaluator(const v1::EvaluatorSpec& spec,
                                                           const std::string& device);

}  // namespace nas::worker

#endif  // NAS_WORKER_EVALUATOR_H_
