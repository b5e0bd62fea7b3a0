// The controller's gRPC edge: JobService (for nasctl), a thin adapter over
// JobManager's commands and queries, and TaskService (for workers), a thin
// adapter over the TrialBroker. They check the caller's bearer
// token (when the service has an authenticator), check requests, pass the
// call's deadline down, and convert absl::Status to grpc::Status.
#ifndef NAS_CONTROLLER_SERVICES_H_
#define NAS_CONTROLLER_SERVICES_H_

#include "common/auth.h"
#include "controller/job_manager.h"
#include "controller/trial_broker.h"
#include "proto/job_service.grpc.pb.h"
#include "proto/task_service.grpc.pb.h"

namespace nas::controller {

class JobServiceImpl final : public v1::JobService::Service {
 public:
  // `manager` is not owned and must outlive the service. `auth` (not owned;
  // may be null = every caller is accepted) decides which bearer tokens may
  // call; a call without one of them is answered UNAUTHENTICATED.
  explicit JobServiceImpl(JobManager* manager, const BearerTokenAuthenticator* auth = nullptr)
      : manager_(manager), auth_(auth) {}

  grpc::Status SubmitJob(grpc::ServerContext* context, const v1::SubmitJobRequest* request,
                         v1::SubmitJobResponse* response) override;
  grpc::Status GetJob(grpc::ServerContext* context, const v1::GetJobRequest* request,
                      v1::Job* response) override;
  grpc::Status ListJobs(grpc::ServerContext* context, const v1::ListJobsRequest* request,
                        v1::ListJobsResponse* response) override;
  grpc::Status WatchJob(grpc::ServerContext* context, const v1::WatchJobRequest* request,
                        grpc::ServerWriter<v1::WatchJobEvent>* writer) override;
  grpc::Status CancelJob(grpc::ServerContext* context, const v1::CancelJobRequest* request,
                         v1::Job* response) override;
  grpc::Status ListTrials(grpc::ServerContext* context, const v1::ListTrialsRequest* request,
                          v1::ListTrialsResponse* response) override;
  grpc::Status GetTrial(grpc::ServerContext* context, const v1::GetTrialRequest* request,
                        v1::Trial* response) override;
  grpc::Status GetTrialLogs(grpc::ServerContext* context, const v1::GetTrialLogsRequest* request,
                            v1::GetTrialLogsResponse* response) override;

 private:
  JobManager* const manager_;
  const BearerTokenAuthenticator* const auth_;
};

// AcquireTask and ReportResult use gRPC's callback API. A waiting worker's
// long poll holds no server thread (it is a parked callback in the task
// queue), so W idle workers cost W small records, not W threads; a report
// holds none while its result waits for the trial store's group commit, and
// is answered from the store's writer thread once committed. Heartbeat is
// synchronous.
class TaskServiceImpl final
    : public v1::TaskService::WithRawCallbackMethod_AcquireTask<
          v1::TaskService::WithRawCallbackMethod_ReportResult<v1::TaskService::Service>> {
 public:
  // `broker` is not owned and must outlive the service. As JobServiceImpl:
  // `auth` holds the workers' tokens, or is null.
  explicit TaskServiceImpl(TrialBroker* broker, const BearerTokenAuthenticator* auth = nullptr)
      : broker_(broker), auth_(auth) {}

  // Raw bytes in and out: the request is parsed here (common/raw_message.h says why).
  grpc::ServerUnaryReactor* AcquireTask(grpc::CallbackServerContext* context,
                                        const grpc::ByteBuffer* request,
                                        grpc::ByteBuffer* response) override;
  grpc::Status Heartbeat(grpc::ServerContext* context, const v1::HeartbeatRequest* request,
                         v1::HeartbeatResponse* response) override;
  grpc::ServerUnaryReactor* ReportResult(grpc::CallbackServerContext* context,
                                         const grpc::ByteBuffer* request,
                                         grpc::ByteBuffer* response) override;
  grpc::Status AppendTrialLog(grpc::ServerContext* context, const v1::AppendTrialLogRequest* request,
                              v1::AppendTrialLogResponse* response) override;

 private:
  TrialBroker* const broker_;
  const BearerTokenAuthenticator* const auth_;
};

// Page tokens are opaque to clients; inside they are decimal offsets.
absl::StatusOr<int64_t> ParsePageToken(const std::string& token);

}  // namespace nas::controller

#endif  // NAS_CONTROLLER_SERVICES_H_
