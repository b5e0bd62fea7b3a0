#include "controller/services.h"

#include <algorithm>
#include <chrono>
#include <limits>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/grpc_status.h"
#include "common/proto_yaml.h"
#include "common/raw_message.h"

namespace nas::controller {
namespace {

constexpr int kDefaultPageSize = 100;
constexpr int kMaxPageSize = 1000;
constexpr size_t kMaxIdLength = 256;

grpc::Status Invalid(const std::string& message) {
  return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, message);
}

grpc::Status CheckId(const std::string& field, const std::string& id) {
  if (id.empty()) return Invalid(absl::StrCat(field, ": must not be empty"));
  if (id.size() > kMaxIdLength) {
    return Invalid(absl::StrCat(field, ": longer than ", kMaxIdLength, " characters"));
  }
  return grpc::Status::OK;
}

absl::StatusOr<int> PageSize(int requested) {
  if (requested < 0) {
    return absl::InvalidArgumentError(absl::StrCat("page_size: must be >= 0, got ", requested));
  }
  if (requested == 0) return kDefaultPageSize;
  return std::min(requested, kMaxPageSize);
}

// The earlier of the call's deadline and `limit` from now.
absl::Time CallDeadline(const grpc::ServerContextBase* context, absl::Duration limit) {
  const absl::Time cap = absl::Now() + limit;
  const auto raw = context->deadline();
  if (raw == std::chrono::system_clock::time_point::max()) return cap;
  return std::min(cap, absl::FromChrono(raw));
}

}  // namespace

absl::StatusOr<int64_t> ParsePageToken(const std::string& token) {
  if (token.empty()) return 0;
  int64_t offset = 0;
  if (!absl::SimpleAtoi(token, &offset) || offset < 0) {
    return absl::InvalidArgumentError(
        "page_token: not a token this server issued (pass next_page_token unchanged)");
  }
  return offset;
}

grpc::Status JobServiceImpl::SubmitJob(grpc::ServerContext* context,
                                       const v1::SubmitJobRequest* request,
                                       v1::SubmitJobResponse* response) {
  if (grpc::Status s = Authenticate(auth_, *context); !s.ok()) return s;
  v1::JobSpec spec = request->spec();
  if (!request->has_spec()) {
    if (request->spec_yaml().empty()) return Invalid("spec: set spec or spec_yaml");
    absl::Status parsed = ParseYamlToMessage(request->spec_yaml(), &spec);
    if (!parsed.ok()) return ToGrpcStatus(parsed);
  }
  absl::StatusOr<v1::Job> job = manager_->Submit(spec, request->validate_only());
  if (!job.ok()) return ToGrpcStatus(job.status());
  *response->mutable_job() = *std::move(job);
  return grpc::Status::OK;
}

grpc::Status JobServiceImpl::GetJob(grpc::ServerContext* context,
                                    const v1::GetJobRequest* request, v1::Job* response) {
  if (grpc::Status s = Authenticate(auth_, *context); !s.ok()) return s;
  if (grpc::Status s = CheckId("job_id", request->job_id()); !s.ok()) return s;
  absl::StatusOr<v1::Job> job = manager_->GetJob(request->job_id());
  if (!job.ok()) return ToGrpcStatus(job.status());
  *response = *std::move(job);
  return grpc::Status::OK;
}

grpc::Status JobServiceImpl::ListJobs(grpc::ServerContext* context,
                                      const v1::ListJobsRequest* request,
                                      v1::ListJobsResponse* response) {
  if (grpc::Status s = Authenticate(auth_, *context); !s.ok()) return s;
  absl::StatusOr<int> size = PageSize(request->page_size());
  if (!size.ok()) return ToGrpcStatus(size.status());
  absl::StatusOr<int64_t> offset = ParsePageToken(request->page_token());
  if (!offset.ok()) return ToGrpcStatus(offset.status());
  std::vector<v1::Job> jobs = manager_->ListJobs();
  const int64_t end = std::min<int64_t>(jobs.size(), *offset + *size);
  for (int64_t i = *offset; i < end; ++i) *response->add_jobs() = std::move(jobs[i]);
  if (end < static_cast<int64_t>(jobs.size())) response->set_next_page_token(absl::StrCat(end));
  return grpc::Status::OK;
}

grpc::Status JobServiceImpl::WatchJob(grpc::ServerContext* context,
                                      const v1::WatchJobRequest* request,
                                      grpc::ServerWriter<v1::WatchJobEvent>* writer) {
  if (grpc::Status s = Authenticate(auth_, *context); !s.ok()) return s;
  if (grpc::Status s = CheckId("job_id", request->job_id()); !s.ok()) return s;
  double interval_seconds = request->status_interval_seconds();
  if (interval_seconds < 0 || !(interval_seconds <= 3600)) {
    return Invalid("status_interval_seconds: must be in [0, 3600]");
  }
  const absl::Duration interval =
      interval_seconds == 0 ? absl::Seconds(2) : absl::Seconds(interval_seconds);
  const std::string& job_id = request->job_id();
  absl::StatusOr<v1::Job> first = manager_->GetJob(job_id);
  if (!first.ok()) return ToGrpcStatus(first.status());

  int64_t seen_sequence = 0;
  absl::Time next_status = absl::InfinitePast();
  absl::StatusOr<int64_t> change = manager_->WaitForChange(job_id, -1, absl::Now());
  while (!context->IsCancelled()) {
    if (!change.ok()) return ToGrpcStatus(change.status());
    const bool finished = manager_->IsFinished(job_id);
    // Send every trial finished since the last look.
    while (true) {
      absl::StatusOr<std::vector<v1::Trial>> trials =
          manager_->TrialsAfter(job_id, seen_sequence, 100);
      if (!trials.ok()) return ToGrpcStatus(trials.status());
      for (v1::Trial& trial : *trials) {
        seen_sequence = trial.sequence();
        v1::WatchJobEvent event;
        *event.mutable_trial() = std::move(trial);
        if (!writer->Write(event)) return grpc::Status::OK;  // Client went away.
      }
      if (trials->size() < 100) break;
    }
    if (finished || absl::Now() >= next_status) {
      absl::StatusOr<v1::Job> job = manager_->GetJob(job_id);
      if (!job.ok()) return ToGrpcStatus(job.status());
      v1::WatchJobEvent event;
      *event.mutable_status() = *std::move(job);
      if (!writer->Write(event)) return grpc::Status::OK;
      next_status = absl::Now() + interval;
    }
    if (finished) return grpc::Status::OK;
    // Wake on the next change, the next status event, or at least every second
    // to notice a cancelled call.
    const absl::Time wake = std::min(CallDeadline(context, absl::Seconds(1)), next_status);
    change = manager_->WaitForChange(job_id, *change, wake);
  }
  return grpc::Status::OK;
}

grpc::Status JobServiceImpl::CancelJob(grpc::ServerContext* context,
                                       const v1::CancelJobRequest* request, v1::Job* response) {
  if (grpc::Status s = Authenticate(auth_, *context); !s.ok()) return s;
  if (grpc::Status s = CheckId("job_id", request->job_id()); !s.ok()) return s;
  absl::StatusOr<v1::Job> job = manager_->Cancel(request->job_id());
  if (!job.ok()) return ToGrpcStatus(job.status());
  *response = *std::move(job);
  return grpc::Status::OK;
}

grpc::Status JobServiceImpl::ListTrials(grpc::ServerContext* context,
                                        const v1::ListTrialsRequest* request,
                                        v1::ListTrialsResponse* response) {
  if (grpc::Status s = Authenticate(auth_, *context); !s.ok()) return s;
  if (grpc::Status s = CheckId("job_id", request->job_id()); !s.ok()) return s;
  if (!v1::ListTrialsRequest::Order_IsValid(request->order())) {
    return Invalid(absl::StrCat("order: unknown value ", request->order()));
  }
  if (!v1::TrialState_IsValid(request->state())) {
    return Invalid(absl::StrCat("state: unknown value ", request->state()));
  }
  absl::StatusOr<int> size = PageSize(request->page_size());
  if (!size.ok()) return ToGrpcStatus(size.status());
  absl::StatusOr<int64_t> offset = ParsePageToken(request->page_token());
  if (!offset.ok()) return ToGrpcStatus(offset.status());
  int64_t total = 0;
  absl::StatusOr<std::vector<v1::Trial>> trials = manager_->ListTrials(
      request->job_id(), request->order(), request->state(), *offset, *size, &total);
  if (!trials.ok()) return ToGrpcStatus(trials.status());
  for (v1::Trial& trial : *trials) *response->add_trials() = std::move(trial);
  response->set_total(total);
  const int64_t end = *offset + response->trials_size();
  if (end < total) response->set_next_page_token(absl::StrCat(end));
  return grpc::Status::OK;
}

grpc::Status JobServiceImpl::GetTrial(grpc::ServerContext* context,
                                      const v1::GetTrialRequest* request, v1::Trial* response) {
  if (grpc::Status s = Authenticate(auth_, *context); !s.ok()) return s;
  if (grpc::Status s = CheckId("job_id", request->job_id()); !s.ok()) return s;
  if (request->trial_id().size() > kMaxIdLength) return Invalid("trial_id: too long");
  absl::StatusOr<v1::Trial> trial = manager_->GetTrial(request->job_id(), request->trial_id());
  if (!trial.ok()) return ToGrpcStatus(trial.status());
  *response = *std::move(trial);
  return grpc::Status::OK;
}

grpc::Status JobServiceImpl::GetTrialLogs(grpc::ServerContext* context, const v1::GetTrialLogsRequest* request,
                                          v1::GetTrialLogsResponse* response) {
  if (grpc::Status s = Authenticate(auth_, *context); !s.ok()) return s;
  if (grpc::Status s = CheckId("job_id", request->job_id()); !s.ok()) return s;
  if (grpc::Status s = CheckId("trial_id", request->trial_id()); !s.ok()) return s;
  if (request->attempt() < 0) return Invalid("attempt: must be 0 (the latest) or an attempt number");
  if (request->offset() < 0) return Invalid("offset: must not be negative");
  absl::StatusOr<TrialLog> log = manager_->GetTrialLog(request->job_id(), request->trial_id(), request->attempt());
  if (!log.ok()) return ToGrpcStatus(log.status());
  const int64_t end = log->first_offset + static_cast<int64_t>(log->data.size());
  const int64_t from = std::min(end, std::max(request->offset(), log->first_offset));
  response->set_data(log->data.substr(static_cast<size_t>(from - log->first_offset)));
  response->set_offset(from);
  response->set_next_offset(end);
  response->set_complete(log->complete);
  response->set_attempt(log->attempt);
  response->set_first_offset(log->first_offset);
  return grpc::Status::OK;
}

grpc::Status TaskServiceImpl::AppendTrialLog(grpc::ServerContext* context, const v1::AppendTrialLogRequest* request,
                                             v1::AppendTrialLogResponse* response) {
  (void)response;
  if (grpc::Status s = Authenticate(auth_, *context); !s.ok()) return s;
  if (grpc::Status s = CheckId("worker_id", request->worker_id()); !s.ok()) return s;
  if (grpc::Status s = CheckId("task_id", request->task_id()); !s.ok()) return s;
  if (request->offset() < 0) return Invalid("offset: must not be negative");
  if (static_cast<int64_t>(request->data().size()) > TrialStore::kMaxLogBytes) {
    return Invalid(absl::StrCat("data: at most ", TrialStore::kMaxLogBytes, " bytes per chunk"));
  }
  return ToGrpcStatus(broker_->AppendLog(request->task_id(), request->worker_id(), request->offset(),
                                         request->data(), request->complete()));
}

namespace {

// One AcquireTask call. Finish is called exactly once: by the task queue's
// callback (a task, the deadline, a cancel or shutdown) or at once for a bad
// request. gRPC calls OnDone after everything else, and only then.
class AcquireReactor final : public grpc::ServerUnaryReactor {
 public:
  explicit AcquireReactor(TrialBroker* broker)
      : broker_(broker), waiter_(std::make_shared<std::atomic<int64_t>>(-1)) {}
  std::shared_ptr<std::atomic<int64_t>> waiter() const { return waiter_; }
  void OnCancel() override { broker_->CancelAcquire(waiter_->load()); }
  void OnDone() override { delete this; }

 private:
  TrialBroker* const broker_;
  const std::shared_ptr<std::atomic<int64_t>> waiter_;
};

}  // namespace

grpc::ServerUnaryReactor* TaskServiceImpl::AcquireTask(grpc::CallbackServerContext* context,
                                                       const grpc::ByteBuffer* raw_request,
                                                       grpc::ByteBuffer* raw_response) {
  auto* reactor = new AcquireReactor(broker_);
  v1::AcquireTaskRequest request;
  grpc::Status invalid = ParseRawRequest(*raw_request, &request);
  if (invalid.ok()) invalid = Authenticate(auth_, *context);
  if (invalid.ok()) invalid = CheckId("worker_id", request.worker_id());
  const double wait = request.wait_seconds();
  if (invalid.ok() && !(wait >= 0 && wait <= 60)) {
    invalid = Invalid("wait_seconds: must be in [0, 60]");
  }
  if (!invalid.ok()) {
    reactor->Finish(invalid);
    return reactor;
  }
  // Answer a little before the caller's deadline so the empty answer arrives.
  const absl::Time deadline =
      CallDeadline(context, absl::Seconds(wait)) - absl::Milliseconds(wait > 0.2 ? 100 : 0);
  broker_->AcquireAsync(
      request.worker_id(), deadline,
      [reactor, raw_response](std::optional<v1::Task> task) {
        v1::AcquireTaskResponse response;
        if (task.has_value()) *response.mutable_task() = *std::move(task);
        reactor->Finish(SerializeRawResponse(response, raw_response));
      },
      reactor->waiter());
  return reactor;
}

grpc::Status TaskServiceImpl::Heartbeat(grpc::ServerContext* context,
                                        const v1::HeartbeatRequest* request,
                                        v1::HeartbeatResponse* response) {
  if (grpc::Status s = Authenticate(auth_, *context); !s.ok()) return s;
  if (grpc::Status s = CheckId("worker_id", request->worker_id()); !s.ok()) return s;
  if (grpc::Status s = CheckId("task_id", request->task_id()); !s.ok()) return s;
  std::vector<v1::EpochResult> epochs(request->epochs().begin(), request->epochs().end());
  absl::StatusOr<HeartbeatAnswer> answer =
      broker_->Heartbeat(request->task_id(), request->worker_id(), epochs);
  if (!answer.ok()) {
    if (absl::IsFailedPrecondition(answer.status())) {
      response->set_cancel(true);
      response->set_reason(std::string(answer.status().message()));
    }
    return ToGrpcStatus(answer.status());
  }
  response->set_cancel(answer->cancel);
  if (answer->cancel) response->set_reason("job cancelled or finished");
  response->set_stop(answer->stop);
  if (answer->stop) response->set_reason("stopped early: its learning curve is behind");
  return grpc::Status::OK;
}

grpc::ServerUnaryReactor* TaskServiceImpl::ReportResult(grpc::CallbackServerContext* context,
                                                        const grpc::ByteBuffer* raw_request,
                                                        grpc::ByteBuffer* raw_response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  auto request = std::make_shared<v1::ReportResultRequest>();
  grpc::Status invalid = ParseRawRequest(*raw_request, request.get());
  if (invalid.ok()) invalid = Authenticate(auth_, *context);
  if (invalid.ok()) invalid = CheckId("worker_id", request->worker_id());
  if (invalid.ok()) invalid = CheckId("task_id", request->task_id());
  if (!invalid.ok()) {
    reactor->Finish(invalid);
    return reactor;
  }
  // Answered once the result is committed (gRPC keeps raw_response alive
  // until Finish).
  broker_->ReportAsync(
      *request, [this, reactor, request, raw_response](absl::StatusOr<bool> duplicate) {
        if (!duplicate.ok()) return reactor->Finish(ToGrpcStatus(duplicate.status()));
        v1::ReportResultResponse response;
        response.set_duplicate(*duplicate);
        if (request->acquire_next()) {
          std::optional<v1::Task> next = broker_->TryAcquire(request->worker_id());
          if (next.has_value()) *response.mutable_next_task() = *std::move(next);
        }
        reactor->Finish(SerializeRawResponse(response, raw_response));
      });
  return reactor;
}

}  // namespace nas::controller
