#include "worker/worker_loop.h"

#include <thread>

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
        images_per_second(prometheus::BuildGauge()
                              .Name("nas_worker_images_per_second")
                              .Help("Training images per second of the last trained child.")
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
  prometheus::Gauge& images_per_second;
};

WorkerLoop::WorkerLoop(WorkerLoopOptions options, std::shared_ptr<v1::TaskService::StubInterface> stub)
    : options_(std::move(options)), stub_(std::move(stub)) {
  if (options_.metrics != nullptr) metrics_ = std::make_unique<Metrics>(*options_.metrics, options_.device);
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

void WorkerLoop::Run() {
  absl::Duration backoff = options_.initial_backoff;
  int failures = 0;
  while (true) {
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

Evaluator* WorkerLoop::EvaluatorFor(const v1::Task& task) {
  const auto kind = task.evaluator().kind_case();
  auto it = evaluators_.find(kind);
  if (it != evaluators_.end()) return it->second.get();
  absl::StatusOr<std::unique_ptr<Evaluator>> created = CreateEvaluator(task.evaluator(), options_.device);
  if (!created.ok()) return nullptr;
  return (evaluators_[kind] = std::move(created).value()).get();
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
    request.set_device(options_.device);
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
  stop_current_early_ = false;
  {
    absl::MutexLock lock(&mu_);
    if (stopping_) return false;  // The lease will hand it back.
  }
  const absl::Time start = absl::Now();
  absl::StatusOr<v1::TrialMetrics> result = EvaluateWithHeartbeats(task);
  if (metrics_) {
    metrics_->seconds.Observe(absl::ToDoubleSeconds(absl::Now() - start));
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

absl::StatusOr<v1::TrialMetrics> WorkerLoop::EvaluateWithHeartbeats(const v1::Task& task) {
  Evaluator* evaluator = EvaluatorFor(task);
  if (evaluator == nullptr) return absl::InvalidArgumentError("task has no known evaluator");
  // Shared by this thread (the evaluation) and the heartbeat thread.
  struct HeartbeatState {
    absl::Mutex mu;
    bool done ABSL_GUARDED_BY(mu) = false;
    std::vector<v1::EpochResult> pending_epochs ABSL_GUARDED_BY(mu);
    int64_t epoch_events ABSL_GUARDED_BY(mu) = 0;
  } hb;
  std::thread heartbeat([&] {
    int64_t seen = 0;
    while (true) {
      std::vector<v1::EpochResult> epochs;
      {
        absl::MutexLock lock(&hb.mu);
        auto wake = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(hb.mu) {
          return hb.done || hb.epoch_events > seen;
        };
        hb.mu.AwaitWithTimeout(absl::Condition(&wake), options_.heartbeat_interval);
        // After the evaluation, flush the last epochs once, then end.
        if (hb.done && hb.pending_epochs.empty()) return;
        seen = hb.epoch_events;
        epochs.swap(hb.pending_epochs);
      }
      v1::HeartbeatRequest request;
      request.set_task_id(task.task_id());
      request.set_worker_id(options_.worker_id);
      for (v1::EpochResult& e : epochs) *request.add_epochs() = std::move(e);
      v1::HeartbeatResponse response;
      grpc::ClientContext context;
      context.set_deadline(absl::ToChronoTime(absl::Now() + options_.call_timeout));
      grpc::Status status = stub_->Heartbeat(&context, request, &response);
      // FAILED_PRECONDITION: this worker no longer holds the task's lease.
      if (status.error_code() == grpc::StatusCode::FAILED_PRECONDITION ||
          status.error_code() == grpc::StatusCode::NOT_FOUND || (status.ok() && response.cancel())) {
        NAS_LOG(Info) << "task " << task.task_id() << ": controller says stop ("
                      << (status.ok() ? response.reason() : status.error_message()) << ")";
        cancel_current_ = true;
      } else if (status.ok() && response.stop() && !stop_current_early_) {
        NAS_LOG(Info) << "task " << task.task_id() << ": stopped early (" << response.reason()
                      << ")";
        stop_current_early_ = true;
      }
    }
  });
  EvaluationContext context;
  context.cancelled = &cancel_current_;
  context.stop_early = &stop_current_early_;
  context.on_epoch = [&](const v1::EpochResult& epoch) {
    if (metrics_) metrics_->epoch.Set(epoch.epoch());
    absl::MutexLock lock(&hb.mu);
    hb.pending_epochs.push_back(epoch);
    ++hb.epoch_events;
  };
  absl::StatusOr<v1::TrialMetrics> result = evaluator->Evaluate(task, context);
  {
    absl::MutexLock lock(&hb.mu);
    hb.done = true;
  }
  heartbeat.join();
  if (result.ok() && metrics_ && result->train_seconds() > 0 && task.evaluator().has_train()) {
    const auto& spec = task.evaluator().train();
    if (spec.train_size() > 0) {
      metrics_->images_per_second.Set(spec.train_size() * static_cast<double>(result->epochs_size()) /
                                      result->train_seconds());
    }
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
    const bool retry = status.error_code() == grpc::StatusCode::UNAVAILABLE ||
                       status.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED;
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
