// The worker's loop: acquire a task (long poll), evaluate it while a
// heartbeat thread extends the lease and listens for "cancel", report the
// result. Never crashes on a missing controller: calls are retried with
// exponential backoff. Stop() (e.g. on SIGTERM) cancels the running
// evaluation within one batch; its task is not reported, so its lease expires
// and the controller hands it to another worker.
#ifndef NAS_WORKER_WORKER_LOOP_H_
#define NAS_WORKER_WORKER_LOOP_H_

#include <atomic>
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
  // LibTorch device for the train evaluator.
  std::string device = "cpu";
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
};

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

 private:
  struct Metrics;

  absl::StatusOr<v1::TrialMetrics> EvaluateWithHeartbeats(const v1::Task& task);
  void Report(const v1::Task& task, const absl::StatusOr<v1::TrialMetrics>& result)
      ABSL_LOCKS_EXCLUDED(mu_);
  Evaluator* EvaluatorFor(const v1::Task& task);
  // Sleeps for `d` unless stopped first; false when stopped.
  bool SleepUnlessStopped(absl::Duration d) ABSL_LOCKS_EXCLUDED(mu_);

  const WorkerLoopOptions options_;
  std::shared_ptr<v1::TaskService::StubInterface> stub_;
  std::unique_ptr<Metrics> metrics_;
  std::map<v1::EvaluatorSpec::KindCase, std::unique_ptr<Evaluator>> evaluators_;
  std::atomic<bool> cancel_current_{false};
  // The controller stopped the current task early (HeartbeatResponse.stop).
  std::atomic<bool> stop_current_early_{false};
  std::atomic<int64_t> tasks_done_{0};
  // Leased with the last report; only the Run thread touches it.
  std::optional<v1::Task> next_task_;

  absl::Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace nas::worker

#endif  // NAS_WORKER_WORKER_LOOP_H_
