// How a worker turns a task into metrics. One interface, four
// implementations (train, lookup, synthetic, command), each in its own target.
// Torch-free so the worker loop does not pay for LibTorch headers.
#ifndef NAS_WORKER_EVALUATOR_H_
#define NAS_WORKER_EVALUATOR_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "proto/job.pb.h"
#include "proto/task_service.pb.h"

namespace nas::controller {
class WeightsClient;  // controller/weights_client.h
}

namespace nas::worker {

struct EvaluationContext {
  // Called after every epoch (from the evaluating thread).
  std::function<void(const v1::EpochResult&)> on_epoch = [](const v1::EpochResult&) {};
  // Called with the evaluation's output as it arrives (the command
  // evaluator's stdout and stderr), from the evaluating thread.
  std::function<void(absl::string_view)> on_output = [](absl::string_view) {};
  // Set (by the heartbeat thread or a signal) to stop the evaluation; checked
  // at least once per batch. Not owned; may be null.
  const std::atomic<bool>* cancelled = nullptr;
  // Counts Cancelled() calls: the worker's watchdog takes them as signs of
  // progress, so an evaluator stuck between two (blocked in I/O) is
  // abandoned after --evaluator_stall_timeout. Not owned; may be null.
  std::atomic<int64_t>* alive = nullptr;

  bool Cancelled() const {
    if (alive != nullptr) alive->fetch_add(1, std::memory_order_relaxed);
    return cancelled != nullptr && cancelled->load();
  }
  // Set (by the heartbeat thread) when the controller stops the evaluation
  // early: the evaluator ends at once and returns the metrics of the epochs
  // it finished (an epoch in progress is dropped). Checked like `cancelled`
  // (through StopEarly(), which counts as a sign of progress too).
  // Not owned; may be null.
  const std::atomic<bool>* stop_early = nullptr;
  bool StopEarly() const {
    if (alive != nullptr) alive->fetch_add(1, std::memory_order_relaxed);
    return stop_early != nullptr && stop_early->load();
  }
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

// Language models (dataset ptb): the lowest validation perplexity over the
// last `last_epochs` epochs, and R = c / perplexity^2 (the paper's; c =
// reward.perplexity_constant), times the objective factor as above; 0 for a
// perplexity that is not a positive finite number (a diverged child).
double RecentPerplexity(const v1::TrialMetrics& metrics, int last_epochs);
double ComputePerplexityReward(const v1::RewardSpec& reward, double perplexity, const v1::TrialMetrics& metrics);

// What a worker lets its evaluators do (its flags, docs/worker.md).
struct EvaluatorOptions {
  // LibTorch device of the train evaluator.
  std::string device = "cpu";
  // Ceiling on what training one child takes (ChildSize::MemoryBytes); a
  // child over it fails for good before it is built. 0 = none.
  int64_t max_child_bytes = 0;
  // Lookup tables and datasets are read only under these directories
  // (common/file_util.h ReadFileUnderRoots).
  std::vector<std::string> data_roots = DefaultDataRoots();
  // The largest lookup table read.
  size_t max_table_bytes = size_t{256} << 20;
  // Whether job specs may run their own commands here (--allow_command_evaluator).
  bool allow_command = false;
  // Where each command attempt gets its working directory; empty:
  // $TMPDIR/nas-worker-trials (/tmp when TMPDIR is unset).
  std::string command_work_dir;
  // Keep a command attempt's working directory (and its output/) after it
  // ends; by default it is removed.
  bool keep_command_dirs = false;
  // The parameter servers one-shot tasks (evaluator.shared) share their
  // supernet's weights through (--parameter_servers); null: such tasks fail
  // for good naming the flag.
  std::shared_ptr<controller::WeightsClient> parameter_servers;

  // The packaged datasets' directory and /data (docs/worker.md).
  static std::vector<std::string> DefaultDataRoots();
};

// The evaluator for a task's EvaluatorSpec: train (LibTorch), lookup,
// synthetic, command or shared (one-shot, worker/oneshot_evaluator.h).
absl::StatusOr<std::unique_ptr<Evaluator>> CreateEvaluator(const v1::EvaluatorSpec& spec,
                                                           const EvaluatorOptions& options);

}  // namespace nas::worker

#endif  // NAS_WORKER_EVALUATOR_H_
