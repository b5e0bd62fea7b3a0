// The JobService calls the cross-process tests make against a real
// nas_controller on 127.0.0.1: one RPC each, with a deadline, so a test that
// waits on a job never hangs on a wedged controller.
#ifndef NAS_TESTS_JOB_CLIENT_H_
#define NAS_TESTS_JOB_CLIENT_H_

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "proto/job_service.grpc.pb.h"

namespace nas::testing {

class JobClient {
 public:
  explicit JobClient(int controller_port);

  // SubmitJob with the YAML; `job_id` (may be null) gets the new job's id.
  grpc::Status Submit(const std::string& yaml, std::string* job_id);
  grpc::Status Get(const std::string& job_id, v1::Job* job);
  grpc::Status Cancel(const std::string& job_id, v1::Job* job);
  // Polls Get every 50 ms until the job leaves PENDING/RUNNING or `timeout`
  // passes; the last answer (default-constructed if none came).
  v1::Job WaitForEnd(const std::string& job_id, absl::Duration timeout);
  // Every trial of the job, all ListTrials pages in order.
  grpc::Status Trials(const std::string& job_id, std::vector<v1::Trial>* trials);

  v1::JobService::Stub* stub() { return stub_.get(); }

 private:
  std::unique_ptr<v1::JobService::Stub> stub_;
};

}  // namespace nas::testing

#endif  // NAS_TESTS_JOB_CLIENT_H_
