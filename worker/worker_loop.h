// The worker's loop: acquire a task (long poll), evaluate it while a
// heartbeat thread extends the lease and listens for "cancel", report the
// result. Never crashes on a missing controller: calls are retried with
// exponential backoff. Stop() (e.g. on SIGTERM) cancels the running
// evaluation within one batch; its task is not reported, so its lease expires
// and the controller hands it to another worker. Each evaluation runs on a
// thread of its own under a watchdog: one that ignores a cancel for
// cancel_grace, or shows no progress for stall_timeout, is abandoned (its
// thread left behind, its evaluator replaced), so a cancel, a stuck
// evaluator and Stop() always end the task in bounded time.
#ifndef NAS_WORKER_WORKER_LOOP_H_
#define NAS_WORKER_WORKER_LOOP_H_

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "proto/task_service.grpc.pb.h"
#include "worker/evaluator.h"

namespace prometheus {
class Registry;
}

namespace nas::worker {

struct WorkerLoopOptions {
  // Identifies this worker to the controller.
  std::string worker_id;
  // What the evaluators may do: device, memory ceiling, data roots.
  EvaluatorOptions evaluator;
  // Makes the evaluator for a task (tests inject their own); unset:
  // CreateEvaluator(spec, evaluator).
  std::function<absl::StatusOr<std::unique_ptr<Evaluator>>(const v1::EvaluatorSpec&)> evaluator_factory;
  // Run first on each evaluating thread (the binary sets LibTorch's threads).
  std::function<void()> on_evaluation_thread = [] {};
  // An evaluation that shows no progress (EvaluationContext::Cancelled calls,
  // epochs) for this long is abandoned and reported as failed
  // (DEADLINE_EXCEEDED, retried elsewhere); its heartbeats stop.
  absl::Duration stall_timeout = absl::Minutes(10);
  // After a cancel (the controller's, or Stop) the evaluation gets this long
  // to return before it is abandoned.
  absl::Duration cancel_grace = absl::Seconds(5);
  // Long-poll wait of each AcquireTask.
  absl::Duration poll_wait = absl::Seconds(10);
  // Heartbeats go out at least this often (and after every epoch).
  absl::Duration heartbeat_interval = absl::Seconds(2);
  // Deadline of unary calls.
  absl::Duration call_timeout = absl::Seconds(10);
  // Backoff while the controller cannot be reached.
  absl::Duration initial_backoff = absl::Milliseconds(200);
  absl::Duration max_backoff = absl::Seconds(10);
  // How long a finished result is retried while the controller is away.
  absl::Duration report_retry_limit = absl::Minutes(5);
  // Metrics go here when set. Not owned.
  prometheus::Registry* metrics = nullptr;
  // Called whenever the worker shows it is not stuck: at every turn of Run's
  // loop (an acquire answered, failed or timed out) and after every epoch of
  // a task. Not called while an evaluator works between epochs, so the time
  // since the last call tells a hung trainer from a slow one (main.cc writes it
  // to --progress_file for the liveness probe). Runs on the Run thread.
  std::function<void()> on_progress;
};

// One running evaluation (worker_loop.cc).
struct Evaluation;

class WorkerLoop {
 public:
  WorkerLoop(WorkerLoopOptions options, std::shared_ptr<v1::TaskService::StubInterface> stub);
  ~WorkerLoop();

  // Runs until Stop().
  void Run() ABSL_LOCKS_EXCLUDED(mu_);
  // Thread-safe; returns at once.
  void Stop() ABSL_LOCKS_EXCLUDED(mu_);

  // One acquire + evaluate + report. Returns whether a task ran; an error when
  // the controller could not be reached. The report asks for the next task
  // (acquire_next); when one comes back, the next RunOnce starts on it
  // without calling AcquireTask.
  absl::StatusOr<bool> RunOnce() ABSL_LOCKS_EXCLUDED(mu_);

  int64_t tasks_done() const { return tasks_done_.load(); }
  // Evaluations abandoned while stuck; their threads never returned, so the
  // process should exit without joining them (worker/main.cc).
  int64_t abandoned() const { return abandoned_.load(); }

 private:
  struct Metrics;

  absl::StatusOr<v1::TrialMetrics> EvaluateWithHeartbeats(const v1::Task& task);
  // Sends the evaluation's output not yet sent (AppendTrialLog), marked
  // `complete` for the last chunk; nothing for an evaluation without output.
  void SendLog(const std::shared_ptr<Evaluation>& ev, bool complete);
  void Report(const v1::Task& task, const absl::StatusOr<v1::TrialMetrics>& result)
      ABSL_LOCKS_EXCLUDED(mu_);
  std::shared_ptr<Evaluator> EvaluatorFor(const v1::Task& task);
  // Records progress: the last-progress gauge and options_.on_progress.
  void Progress();
  // Sleeps for `d` unless stopped first; false when stopped.
  bool SleepUnlessStopped(absl::Duration d) ABSL_LOCKS_EXCLUDED(mu_);

  const WorkerLoopOptions options_;
  std::shared_ptr<v1::TaskService::StubInterface> stub_;
  std::unique_ptr<Metrics> metrics_;
  // Shared with evaluating threads, which may outlive an abandoned task.
  std::map<v1::EvaluatorSpec::KindCase, std::shared_ptr<Evaluator>> evaluators_;
  std::atomic<bool> cancel_current_{false};
  std::atomic<int64_t> tasks_done_{0};
  std::atomic<int64_t> abandoned_{0};
  // Leased with the last report; only the Run thread touches it.
  std::optional<v1::Task> next_task_;

  absl::Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace nas::worker

#endif  // NAS_WORKER_WORKER_LOOP_H_
