#include "worker/worker_loop.h"

#include <algorithm>
#include <atomic>
#include <memory>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/grpc_status.h"
#include "common/logging.h"
#include "prometheus/counter.h"
#include "prometheus/family.h"
#include "prometheus/gauge.h"
#include "prometheus/histogram.h"
#include "prometheus/registry.h"

namespace nas::worker {

struct WorkerLoop::Metrics {
  Metrics(prometheus::Registry& r, const std::string& device)
      : tasks(prometheus::BuildCounter().Name("nas_worker_tasks_total").Help("Tasks by outcome.").Register(r)),
        seconds(prometheus::BuildHistogram()
                    .Name("nas_worker_evaluation_seconds")
                    .Help("Time to evaluate one task.")
                    .Register(r)
                    .Add({}, prometheus::Histogram::BucketBoundaries{0.01, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 900,
                                                                     3600})),
        epoch(prometheus::BuildGauge()
                  .Name("nas_worker_current_epoch")
                  .Help("Epoch of the task being evaluated (0 when idle).")
                  .Register(r)
                  .Add({})),
        images(prometheus::BuildCounter()
                   .Name("nas_worker_images_total")
                   .Help("Training images processed (train_size x epochs of each trained child); "
                         "rate() is the training throughput.")
                   .Register(r)
                   .Add({})),
        busy_seconds(prometheus::BuildCounter()
                         .Name("nas_worker_busy_seconds_total")
                         .Help("Seconds spent evaluating tasks; rate() is the busy fraction.")
                         .Register(r)
                         .Add({})),
        last_progress(prometheus::BuildGauge()
                          .Name("nas_worker_last_progress_timestamp_seconds")
                          .Help("Unix time the worker last showed progress (a loop turn or an "
                                "epoch).")
                          .Register(r)
                          .Add({})) {
    prometheus::BuildGauge()
        .Name("nas_worker_device_info")
        .Help("Always 1; the label names the device.")
        .Register(r)
        .Add({{"device", device}})
        .Set(1);
  }
  prometheus::Family<prometheus::Counter>& tasks;
  prometheus::Histogram& seconds;
  prometheus::Gauge& epoch;
  prometheus::Counter& images;
  prometheus::Counter& busy_seconds;
  prometheus::Gauge& last_progress;
};

WorkerLoop::WorkerLoop(WorkerLoopOptions options, std::shared_ptr<v1::TaskService::StubInterface> stub)
    : options_(std::move(options)), stub_(std::move(stub)) {
  if (options_.metrics != nullptr) metrics_ = std::make_unique<Metrics>(*options_.metrics, options_.evaluator.device);
}

WorkerLoop::~WorkerLoop() = default;

void WorkerLoop::Stop() {
  absl::MutexLock lock(&mu_);
  stopping_ = true;
  cancel_current_ = true;
}

bool WorkerLoop::SleepUnlessStopped(absl::Duration d) {
  absl::MutexLock lock(&mu_);
  return !mu_.AwaitWithTimeout(absl::Condition(&stopping_), d);
}

void WorkerLoop::Progress() {
  if (metrics_) metrics_->last_progress.Set(absl::ToDoubleSeconds(absl::Now() - absl::UnixEpoch()));
  if (options_.on_progress) options_.on_progress();
}

void WorkerLoop::Run() {
  absl::Duration backoff = options_.initial_backoff;
  int failures = 0;
  while (true) {
    Progress();
    {
      absl::MutexLock lock(&mu_);
      if (stopping_) return;
    }
    absl::StatusOr<bool> ran = RunOnce();
    if (ran.ok()) {
      backoff = options_.initial_backoff;
      failures = 0;
      continue;
    }
    if (failures++ % 20 == 0) {
      if (absl::IsUnauthenticated(ran.status()) || absl::IsPermissionDenied(ran.status())) {
        // Retrying will not fix this worker's token, but the controller may
        // be restarted with new token files: keep trying with the backoff.
        NAS_LOG(Error) << "controller rejected this worker (" << ran.status()
                       << "); check --token_file against the controller's --worker_tokens_file";
      } else {
        NAS_LOG(Warning) << "controller unreachable (" << ran.status() << "); retrying every "
                         << absl::FormatDuration(backoff);
      }
    }
    if (!SleepUnlessStopped(backoff)) return;
    backoff = std::min(backoff * 2, options_.max_backoff);
  }
}

std::shared_ptr<Evaluator> WorkerLoop::EvaluatorFor(const v1::Task& task) {
  const auto kind = task.evaluator().kind_case();
  auto it = evaluators_.find(kind);
  if (it != evaluators_.end()) return it->second;
  absl::StatusOr<std::unique_ptr<Evaluator>> created =
      options_.evaluator_factory ? options_.evaluator_factory(task.evaluator())
                                 : CreateEvaluator(task.evaluator(), options_.evaluator);
  if (!created.ok()) return nullptr;
  return evaluators_[kind] = std::shared_ptr<Evaluator>(std::move(created).value());
}

absl::StatusOr<bool> WorkerLoop::RunOnce() {
  v1::AcquireTaskResponse response;
  if (next_task_.has_value()) {
    *response.mutable_task() = *std::move(next_task_);
    next_task_.reset();
  } else {
    v1::AcquireTaskRequest request;
    request.set_worker_id(options_.worker_id);
    request.set_wait_seconds(absl::ToDoubleSeconds(options_.poll_wait));
    request.set_device(options_.evaluator.device);
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(absl::Now() + options_.poll_wait + options_.call_timeout));
    absl::Status status =
        FromGrpcStatus(stub_->AcquireTask(&context, request, &response), "AcquireTask");
    if (!status.ok()) return status;
    if (!response.has_task()) return false;
  }
  const v1::Task& task = response.task();
  NAS_LOG(Info) << "task " << task.task_id() << ": " << task.architecture().canonical();
  cancel_current_ = false;
  {
    absl::MutexLock lock(&mu_);
    if (stopping_) return false;  // The lease will hand it back.
  }
  const absl::Time start = absl::Now();
  absl::StatusOr<v1::TrialMetrics> result = EvaluateWithHeartbeats(task);
  if (metrics_) {
    metrics_->seconds.Observe(absl::ToDoubleSeconds(absl::Now() - start));
    metrics_->busy_seconds.Increment(absl::ToDoubleSeconds(absl::Now() - start));
    metrics_->epoch.Set(0);
  }
  {
    absl::MutexLock lock(&mu_);
    if (stopping_ && !result.ok()) {
      NAS_LOG(Info) << "stopping: task " << task.task_id() << " handed back through its lease";
      if (metrics_) metrics_->tasks.Add({{"outcome", "abandoned"}}).Increment();
      return true;
    }
  }
  Report(task, result);
  ++tasks_done_;
  return true;
}

// One evaluation, shared by the loop, the heartbeat thread and the
// evaluating thread; the last may outlive the others when abandoned.
struct Evaluation {
  explicit Evaluation(v1::Task t, std::shared_ptr<Evaluator> e) : task(std::move(t)), evaluator(std::move(e)) {}
  const v1::Task task;
  const std::shared_ptr<Evaluator> evaluator;
  std::atomic<bool> cancelled{false};
  // The controller stopped it early (HeartbeatResponse.stop): set by the
  // heartbeat thread, read by the evaluator.
  std::atomic<bool> stop_early{false};
  std::atomic<int64_t> alive{0};
  absl::Mutex mu;
  bool done ABSL_GUARDED_BY(mu) = false;
  absl::StatusOr<v1::TrialMetrics> result ABSL_GUARDED_BY(mu);
  // Epochs not yet sent; `heartbeats_done` ends the heartbeat thread.
  std::vector<v1::EpochResult> pending_epochs ABSL_GUARDED_BY(mu);
  int64_t epoch_events ABSL_GUARDED_BY(mu) = 0;
  int last_epoch ABSL_GUARDED_BY(mu) = 0;
  bool heartbeats_done ABSL_GUARDED_BY(mu) = false;
  // The attempt's output not yet sent to the controller (AppendTrialLog):
  // bytes [log_offset, log_offset + log_pending.size()) of it, at most the
  // last kMaxPendingLog (older ones are dropped, leaving a gap).
  std::string log_pending ABSL_GUARDED_BY(mu);
  int64_t log_offset ABSL_GUARDED_BY(mu) = 0;
  int64_t log_total ABSL_GUARDED_BY(mu) = 0;
};

namespace {

// The most output a worker holds for the controller per attempt (the
// controller keeps as much per attempt, TrialStore::kMaxLogBytes).
constexpr size_t kMaxPendingLog = size_t{1} << 20;

}  // namespace

void WorkerLoop::SendLog(const std::shared_ptr<Evaluation>& ev, bool complete) {
  v1::AppendTrialLogRequest request;
  {
    absl::MutexLock lock(&ev->mu);
    if (ev->log_total == 0) return;  // no output: no log (the built-in evaluators)
    if (ev->log_pending.empty() && !complete) return;
    request.set_offset(ev->log_offset);
    request.set_data(std::move(ev->log_pending));
    ev->log_pending.clear();
    ev->log_offset += static_cast<int64_t>(request.data().size());
  }
  request.set_task_id(ev->task.task_id());
  request.set_worker_id(options_.worker_id);
  request.set_complete(complete);
  v1::AppendTrialLogResponse response;
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + options_.call_timeout));
  grpc::Status status = stub_->AppendTrialLog(&context, request, &response);
  if (status.ok()) return;
  // Output is not a result: a chunk the controller did not take is put back
  // for the next try while the controller is away, else dropped.
  if (status.error_code() == grpc::StatusCode::UNAVAILABLE ||
      status.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED) {
    absl::MutexLock lock(&ev->mu);
    ev->log_pending.insert(0, request.data());
    ev->log_offset = request.offset();
    if (ev->log_pending.size() > kMaxPendingLog) {
      const size_t drop = ev->log_pending.size() - kMaxPendingLog;
      ev->log_pending.erase(0, drop);
      ev->log_offset += static_cast<int64_t>(drop);
    }
    return;
  }
  NAS_LOG(Warning) << "task " << ev->task.task_id() << ": the controller refused its log ("
                   << status.error_message() << ")";
}

absl::StatusOr<v1::TrialMetrics> WorkerLoop::EvaluateWithHeartbeats(const v1::Task& task) {
  std::shared_ptr<Evaluator> evaluator = EvaluatorFor(task);
  if (evaluator == nullptr) return absl::InvalidArgumentError("task has no known evaluator");
  auto ev = std::make_shared<Evaluation>(task, evaluator);
  std::thread heartbeat([this, ev] {
    int64_t seen = 0;
    while (true) {
      std::vector<v1::EpochResult> epochs;
      {
        absl::MutexLock lock(&ev->mu);
        auto wake = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(ev->mu) {
          return ev->heartbeats_done || ev->epoch_events > seen;
        };
        ev->mu.AwaitWithTimeout(absl::Condition(&wake), options_.heartbeat_interval);
        // After the evaluation, flush the last epochs once, then end.
        if (ev->heartbeats_done && (ev->pending_epochs.empty() || !ev->done)) return;
        seen = ev->epoch_events;
        epochs.swap(ev->pending_epochs);
      }
      v1::HeartbeatRequest request;
      request.set_task_id(ev->task.task_id());
      request.set_worker_id(options_.worker_id);
      for (v1::EpochResult& e : epochs) *request.add_epochs() = std::move(e);
      v1::HeartbeatResponse response;
      grpc::ClientContext context;
      context.set_deadline(absl::ToChronoTime(absl::Now() + options_.call_timeout));
      grpc::Status status = stub_->Heartbeat(&context, request, &response);
      // FAILED_PRECONDITION: this worker no longer holds the task's lease.
      if (status.error_code() == grpc::StatusCode::FAILED_PRECONDITION ||
          status.error_code() == grpc::StatusCode::NOT_FOUND || (status.ok() && response.cancel())) {
        NAS_LOG(Info) << "task " << ev->task.task_id() << ": controller says stop ("
                      << (status.ok() ? response.reason() : status.error_message()) << ")";
        cancel_current_ = true;
      } else if (status.ok() && response.stop() && !ev->stop_early.exchange(true)) {
        NAS_LOG(Info) << "task " << ev->task.task_id() << ": stopped early (" << response.reason()
                      << ")";
      }
      SendLog(ev, /*complete=*/false);
    }
  });
  // The evaluating thread touches only `ev` (and what it owns): it may be
  // left behind, blocked, after this loop has moved on or exited.
  std::thread evaluating([ev, setup = options_.on_evaluation_thread] {
    setup();
    EvaluationContext context;
    context.cancelled = &ev->cancelled;
    context.stop_early = &ev->stop_early;
    context.alive = &ev->alive;
    Evaluation* raw = ev.get();
    context.on_epoch = [raw](const v1::EpochResult& epoch) {
      absl::MutexLock lock(&raw->mu);
      raw->pending_epochs.push_back(epoch);
      raw->last_epoch = epoch.epoch();
      ++raw->epoch_events;
    };
    context.on_output = [raw](absl::string_view chunk) {
      absl::MutexLock lock(&raw->mu);
      raw->log_pending.append(chunk.data(), chunk.size());
      raw->log_total += static_cast<int64_t>(chunk.size());
      if (raw->log_pending.size() > kMaxPendingLog) {
        const size_t drop = raw->log_pending.size() - kMaxPendingLog;
        raw->log_pending.erase(0, drop);
        raw->log_offset += static_cast<int64_t>(drop);
      }
    };
    absl::StatusOr<v1::TrialMetrics> result = ev->evaluator->Evaluate(ev->task, context);
    absl::MutexLock lock(&ev->mu);
    ev->result = std::move(result);
    ev->done = true;
  });
  // The watchdog: wait for the result, passing a cancel on, and give up on
  // an evaluation that ignores a cancel or stops making progress.
  const absl::Duration tick = std::min(options_.heartbeat_interval, absl::Milliseconds(100));
  // A command gets its own grace between SIGTERM and SIGKILL to end its
  // process group; the watchdog waits for that before abandoning it.
  absl::Duration cancel_grace = options_.cancel_grace;
  if (task.evaluator().has_command()) {
    const double seconds = task.evaluator().command().grace_seconds();
    cancel_grace = std::max(cancel_grace, absl::Seconds(seconds > 0 ? seconds : 10) + absl::Seconds(5));
  }
  int64_t progress = -1, epochs_seen = 0;
  absl::Time last_progress = absl::Now(), cancelled_at = absl::InfiniteFuture();
  absl::Status abandon;
  // Epochs are the progress the liveness probe sees, each reported from this
  // thread, never from the evaluating one (which may be left behind).
  auto report_epochs = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(ev->mu) {
    if (ev->epoch_events > epochs_seen && metrics_) metrics_->epoch.Set(ev->last_epoch);
    for (; epochs_seen < ev->epoch_events; ++epochs_seen) Progress();
  };
  while (true) {
    {
      absl::MutexLock lock(&ev->mu);
      const bool done = ev->mu.AwaitWithTimeout(absl::Condition(&ev->done), tick);
      report_epochs();
      if (done) break;
      const int64_t now_progress = ev->alive.load() + ev->epoch_events;
      if (now_progress != progress) {
        progress = now_progress;
        last_progress = absl::Now();
      }
    }
    const absl::Time now = absl::Now();
    if (cancel_current_ && !ev->cancelled.exchange(true)) cancelled_at = now;
    if (now - cancelled_at > cancel_grace) {
      abandon = absl::CancelledError(absl::StrCat("cancelled; the evaluator did not stop within ",
                                                  absl::FormatDuration(cancel_grace),
                                                  " and was abandoned"));
      break;
    }
    if (now - last_progress > options_.stall_timeout) {
      ev->cancelled = true;
      abandon = absl::DeadlineExceededError(absl::StrCat(
          "the evaluator made no progress for ", absl::FormatDuration(options_.stall_timeout),
          " (stuck, e.g. in I/O) and was abandoned"));
      break;
    }
  }
  {
    absl::MutexLock lock(&ev->mu);
    ev->heartbeats_done = true;
  }
  heartbeat.join();
  if (!abandon.ok()) {
    // Its thread cannot be interrupted: leave it, and give the next task of
    // this kind a fresh evaluator (the stuck one may hold its locks).
    evaluating.detach();
    evaluators_.erase(task.evaluator().kind_case());
    const int64_t count = ++abandoned_;
    NAS_LOG(Warning) << "task " << task.task_id() << ": " << abandon.message() << " (" << count
                     << " evaluation thread(s) abandoned so far)";
    return abandon;
  }
  evaluating.join();
  // The rest of the output, marked complete, before the report ends the lease.
  SendLog(ev, /*complete=*/true);
  absl::StatusOr<v1::TrialMetrics> result;
  {
    absl::MutexLock lock(&ev->mu);
    result = ev->result;
  }
  if (result.ok() && metrics_ && task.evaluator().has_train()) {
    metrics_->images.Increment(task.evaluator().train().train_size() *
                               static_cast<double>(result->epochs_size()));
  }
  return result;
}

void WorkerLoop::Report(const v1::Task& task, const absl::StatusOr<v1::TrialMetrics>& result) {
  v1::ReportResultRequest request;
  request.set_task_id(task.task_id());
  request.set_worker_id(options_.worker_id);
  {
    absl::MutexLock lock(&mu_);
    request.set_acquire_next(!stopping_);
  }
  std::string outcome = "succeeded";
  if (result.ok()) {
    *request.mutable_metrics() = *result;
    NAS_LOG(Info) << "task " << task.task_id() << ": reward " << result->reward();
  } else {
    request.set_error(std::string(result.status().ToString()));
    request.set_permanent(IsPermanent(result.status()));
    outcome = absl::IsCancelled(result.status()) ? "cancelled" : "failed";
    NAS_LOG(Warning) << "task " << task.task_id() << " failed: " << result.status();
  }
  if (metrics_) metrics_->tasks.Add({{"outcome", outcome}}).Increment();
  const absl::Time give_up = absl::Now() + options_.report_retry_limit;
  absl::Duration backoff = options_.initial_backoff;
  while (true) {
    v1::ReportResultResponse response;
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(absl::Now() + options_.call_timeout));
    grpc::Status status = stub_->ReportResult(&context, request, &response);
    if (status.ok()) {
      // The chaos test matches these lines against the trial store.
      NAS_LOG(Info) << "task " << task.task_id() << ": report accepted"
                    << (response.duplicate() ? " (duplicate)" : "");
      // A next task leased while this worker began to stop goes back
      // through its lease.
      if (response.has_next_task()) next_task_ = response.next_task();
      return;
    }
    // RESOURCE_EXHAUSTED: the controller could not commit it (a full disk);
    // the lease stays this worker's while it retries.
    const bool retry = status.error_code() == grpc::StatusCode::UNAVAILABLE ||
                       status.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED ||
                       status.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED;
    if (!retry || absl::Now() > give_up) {
      NAS_LOG(Error) << "cannot report task " << task.task_id() << ": " << status.error_message();
      return;
    }
    if (!SleepUnlessStopped(backoff)) {
      // Stopping: one last try happened; the lease will hand the task back.
      return;
    }
    backoff = std::min(backoff * 2, options_.max_backoff);
  }
}

}  // namespace nas::worker
