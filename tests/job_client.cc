#include "tests/job_client.h"

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

namespace nas::testing {
namespace {

void SetDeadline(grpc::ClientContext* context, absl::Duration timeout) {
  context->set_deadline(absl::ToChronoTime(absl::Now() + timeout));
}

}  // namespace

JobClient::JobClient(int controller_port)
    : stub_(v1::JobService::NewStub(grpc::CreateChannel(
          absl::StrCat("127.0.0.1:", controller_port), grpc::InsecureChannelCredentials()))) {}

grpc::Status JobClient::Submit(const std::string& yaml, std::string* job_id) {
  v1::SubmitJobRequest request;
  request.set_spec_yaml(yaml);
  v1::SubmitJobResponse response;
  grpc::ClientContext context;
  SetDeadline(&context, absl::Seconds(30));
  grpc::Status status = stub_->SubmitJob(&context, request, &response);
  if (job_id != nullptr) *job_id = response.job().job_id();
  return status;
}

grpc::Status JobClient::Get(const std::string& job_id, v1::Job* job) {
  v1::GetJobRequest request;
  request.set_job_id(job_id);
  grpc::ClientContext context;
  SetDeadline(&context, absl::Seconds(10));
  return stub_->GetJob(&context, request, job);
}

grpc::Status JobClient::Cancel(const std::string& job_id, v1::Job* job) {
  v1::CancelJobRequest request;
  request.set_job_id(job_id);
  grpc::ClientContext context;
  SetDeadline(&context, absl::Seconds(30));
  return stub_->CancelJob(&context, request, job);
}

v1::Job JobClient::WaitForEnd(const std::string& job_id, absl::Duration timeout) {
  v1::Job job;
  for (const absl::Time deadline = absl::Now() + timeout;;) {
    v1::Job answer;
    if (Get(job_id, &answer).ok()) {
      job = answer;
      if (job.state() != v1::JOB_STATE_RUNNING && job.state() != v1::JOB_STATE_PENDING) break;
    }
    if (absl::Now() >= deadline) break;
    absl::SleepFor(absl::Milliseconds(50));
  }
  return job;
}

grpc::Status JobClient::Trials(const std::string& job_id, std::vector<v1::Trial>* trials) {
  trials->clear();
  std::string token;
  do {
    v1::ListTrialsRequest request;
    request.set_job_id(job_id);
    request.set_page_size(1000);
    request.set_page_token(token);
    v1::ListTrialsResponse response;
    grpc::ClientContext context;
    SetDeadline(&context, absl::Seconds(30));
    grpc::Status status = stub_->ListTrials(&context, request, &response);
    if (!status.ok()) return status;
    trials->insert(trials->end(), response.trials().begin(), response.trials().end());
    token = response.next_page_token();
  } while (!token.empty());
  return grpc::Status::OK;
}

}  // namespace nas::testing
