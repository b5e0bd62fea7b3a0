// Every gRPC method of the controller and the parameter server, called with
// malformed and hostile requests: unknown ids, huge sizes, negative numbers,
// NaN and infinity, wrong shapes, empty and non-UTF-8 strings. Each must
// answer with the documented status code, crash nothing and change no state.
// The cases are the table in docs/reliability.md.
#include <signal.h>

#include <cmath>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "proto/health.grpc.pb.h"
#include "proto/job_service.grpc.pb.h"
#include "proto/parameter_server.grpc.pb.h"
#include "proto/task_service.grpc.pb.h"
#include "tests/test_util.h"

namespace nas {
namespace {

using ::nas::testing::LogTail;
using ::nas::testing::NewTempDir;
using ::nas::testing::StartServer;

const float kNaN = std::numeric_limits<float>::quiet_NaN();
const float kInf = std::numeric_limits<float>::infinity();
const std::string kNotUtf8 = std::string("job-\xff\xfe\xc3\x28", 8);

struct Case {
  std::string method, what;
  grpc::StatusCode expected;
  std::function<grpc::Status(grpc::ClientContext*)> call;
};

v1::Tensor Tensor(const std::string& name, std::vector<int64_t> shape, std::vector<float> values) {
  v1::Tensor t;
  t.set_name(name);
  for (int64_t d : shape) t.add_shape(d);
  for (float v : values) t.add_values(v);
  return t;
}

class HostileRequestsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = NewTempDir("hostile");
    auto ps = StartServer("parameter_server/nas_parameter_server",
                          {"--shard_index=0", "--num_shards=1", "--data_dir=" + dir_ + "/ps"}, dir_);
    ASSERT_TRUE(ps.ok()) << ps.status();
    ps_.emplace(std::move(ps).value());
    auto controller = StartServer(
        "controller/nas_controller",
        {"--data_dir=" + dir_ + "/controller",
         absl::StrCat("--parameter_servers=127.0.0.1:", ps_->ready.grpc_port)},
        dir_);
    ASSERT_TRUE(controller.ok()) << controller.status();
    controller_.emplace(std::move(controller).value());
    auto controller_channel =
        grpc::CreateChannel(absl::StrCat("127.0.0.1:", controller_->ready.grpc_port),
                            grpc::InsecureChannelCredentials());
    auto ps_channel = grpc::CreateChannel(absl::StrCat("127.0.0.1:", ps_->ready.grpc_port),
                                          grpc::InsecureChannelCredentials());
    jobs_ = v1::JobService::NewStub(controller_channel);
    tasks_ = v1::TaskService::NewStub(controller_channel);
    health_ = grpc::health::v1::Health::NewStub(controller_channel);
    shard_ = v1::ParameterServer::NewStub(ps_channel);
  }

  // Submits a job spec given as YAML; returns its id (empty on failure).
  std::string SubmitYaml(const std::string& yaml) {
    v1::SubmitJobRequest submit;
    submit.set_spec_yaml(yaml);
    v1::SubmitJobResponse submitted;
    grpc::ClientContext context;
    grpc::Status status = jobs_->SubmitJob(&context, submit, &submitted);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return submitted.job().job_id();
  }

  std::string dir_;
  std::optional<testing::RunningServer> ps_, controller_;
  std::unique_ptr<v1::JobService::Stub> jobs_;
  std::unique_ptr<v1::TaskService::Stub> tasks_;
  std::unique_ptr<grpc::health::v1::Health::Stub> health_;
  std::unique_ptr<v1::ParameterServer::Stub> shard_;
};

TEST_F(HostileRequestsTest, EveryMethodRejectsBadInputWithTheRightCodeAndNoStateChange) {
  // Legitimate state to protect: one job on the controller (random search, no
  // workers, so its trials stay queued) and one job on the shard.
  const std::string job_id = SubmitYaml(R"(
name: legit
search_space:
  cell: {num_nodes: 4, operations: [none, skip_connect, nor_conv_3x3]}
strategy: {name: random}
parallelism: {num_replicas: 1, children_per_replica: 2}
budget: {max_trials: 4}
evaluator: {synthetic: {}}
)");
  ASSERT_FALSE(job_id.empty());
  v1::InitJobRequest init;
  init.set_job_id("legit");
  init.set_num_shards(1);
  init.set_shard_index(0);
  init.mutable_optimizer()->set_kind(v1::OptimizerConfig::ADAM);
  init.mutable_optimizer()->set_learning_rate(0.01);
  {
    v1::TensorSpec* spec = init.add_layout();
    spec->set_name("w");
    spec->add_shape(2);
    spec->add_shape(3);
    *init.add_tensors() = Tensor("w", {2, 3}, {1, 2, 3, 4, 5, 6});
    v1::InitJobResponse response;
    grpc::ClientContext context;
    ASSERT_TRUE(shard_->InitJob(&context, init, &response).ok());
  }
  auto pull_legit = [&] {
    v1::PullRequest pull;
    pull.set_job_id("legit");
    v1::PullResponse state;
    grpc::ClientContext context;
    EXPECT_TRUE(shard_->Pull(&context, pull, &state).ok());
    return state.SerializeAsString();
  };
  const std::string shard_before = pull_legit();
  // A trial of the legitimate job, for reports naming a real trial.
  std::string trial_id;
  {
    v1::ListTrialsRequest request;
    request.set_job_id(job_id);
    v1::ListTrialsResponse response;
    for (int i = 0; i < 100 && trial_id.empty(); ++i) {  // the replica stores them first
      grpc::ClientContext context;
      ASSERT_TRUE(jobs_->ListTrials(&context, request, &response).ok());
      if (response.trials_size() > 0) trial_id = response.trials(0).trial_id();
      if (trial_id.empty()) {
        v1::WatchJobRequest watch;
        watch.set_job_id(job_id);
        grpc::ClientContext watch_context;
        watch_context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Milliseconds(200)));
        auto stream = jobs_->WatchJob(&watch_context, watch);
        v1::WatchJobEvent event;
        stream->Read(&event);
      }
    }
  }
  ASSERT_FALSE(trial_id.empty());
  const std::string real_task = absl::StrCat(job_id, "/", trial_id, "#1");
  const std::string huge(2 << 20, 'x');
  using Code = grpc::StatusCode;
  std::vector<Case> cases;
  auto job_case = [&](std::string method, std::string what, Code code, std::string id,
                      std::function<grpc::Status(grpc::ClientContext*, const std::string&)> f) {
    cases.push_back({method, what, code, [f, id](grpc::ClientContext* c) { return f(c, id); }});
  };
  // --- JobService.SubmitJob
  auto submit_yaml = [&](std::string yaml) {
    return [this, yaml](grpc::ClientContext* c) {
      v1::SubmitJobRequest r;
      r.set_spec_yaml(yaml);
      v1::SubmitJobResponse out;
      return jobs_->SubmitJob(c, r, &out);
    };
  };
  cases.push_back({"SubmitJob", "no spec at all", Code::INVALID_ARGUMENT, submit_yaml("")});
  cases.push_back({"SubmitJob", "YAML that does not parse", Code::INVALID_ARGUMENT, submit_yaml("{{{ [")});
  cases.push_back({"SubmitJob", "a 2 MiB YAML string", Code::INVALID_ARGUMENT, submit_yaml("name: " + huge)});
  // Not even parsed: a proto3 string must be UTF-8, so gRPC rejects the
  // request before the service sees it (INTERNAL, "failed to parse").
  cases.push_back({"SubmitJob", "non-UTF-8 bytes in the YAML", Code::INTERNAL,
                   submit_yaml("name: " + kNotUtf8)});
  const std::string base_spec =
      "search_space: {cell: {num_nodes: 4, operations: [none, nor_conv_3x3]}}\n"
      "evaluator: {synthetic: {}}\n";
  cases.push_back({"SubmitJob", "negative max_trials", Code::INVALID_ARGUMENT,
                   submit_yaml(base_spec + "budget: {max_trials: -5}\n")});
  cases.push_back({"SubmitJob", "NaN learning rate", Code::INVALID_ARGUMENT,
                   submit_yaml(base_spec + "budget: {max_trials: 5}\ncontroller: {learning_rate: .nan}\n")});
  cases.push_back({"SubmitJob", "infinite learning rate", Code::INVALID_ARGUMENT,
                   submit_yaml(base_spec + "budget: {max_trials: 5}\ncontroller: {learning_rate: .inf}\n")});
  cases.push_back({"SubmitJob", "a million replicas", Code::INVALID_ARGUMENT,
                   submit_yaml(base_spec + "budget: {max_trials: 5}\nparallelism: {num_replicas: 1000000}\n")});
  cases.push_back({"SubmitJob", "2^40 trials", Code::INVALID_ARGUMENT,
                   submit_yaml(base_spec + "budget: {max_trials: 1099511627776}\n")});
  cases.push_back({"SubmitJob", "an unknown field", Code::INVALID_ARGUMENT,
                   submit_yaml(base_spec + "budget: {max_trials: 5}\nbogus: 1\n")});
  cases.push_back({"SubmitJob", "a 64-node cell", Code::INVALID_ARGUMENT,
                   submit_yaml("search_space: {cell: {num_nodes: 64, operations: [none]}}\n"
                               "evaluator: {synthetic: {}}\nbudget: {max_trials: 5}\n")});
  // Issue 18, rows 9 and 10: a name that would clear a terminal and forge a
  // row, a key given twice, a cell operation no worker builds.
  cases.push_back({"SubmitJob", "a name holding terminal escape sequences", Code::INVALID_ARGUMENT,
                   submit_yaml(base_spec + "budget: {max_trials: 5}\n"
                                           "name: \"\\e[2J\\e[31mPWNED\\e[0m\\r\\nfake-job  running\"\n")});
  cases.push_back({"SubmitJob", "a duplicate key", Code::INVALID_ARGUMENT,
                   submit_yaml(base_spec + "budget: {max_trials: 5}\nbudget: {max_trials: 500}\n")});
  cases.push_back({"SubmitJob", "an unknown cell operation", Code::INVALID_ARGUMENT,
                   submit_yaml("search_space: {cell: {num_nodes: 4, operations: [none, conv_9x9]}}\n"
                               "evaluator: {synthetic: {}}\nbudget: {max_trials: 5}\n")});
  // --- JobService: ids
  auto get_job = [this](grpc::ClientContext* c, const std::string& id) {
    v1::GetJobRequest r;
    r.set_job_id(id);
    v1::Job out;
    return jobs_->GetJob(c, r, &out);
  };
  job_case("GetJob", "unknown id", Code::NOT_FOUND, "no-such-job", get_job);
  job_case("GetJob", "empty id", Code::INVALID_ARGUMENT, "", get_job);
  job_case("GetJob", "2 MiB id", Code::INVALID_ARGUMENT, huge, get_job);
  job_case("GetJob", "non-UTF-8 id", Code::INTERNAL, kNotUtf8, get_job);
  auto cancel = [this](grpc::ClientContext* c, const std::string& id) {
    v1::CancelJobRequest r;
    r.set_job_id(id);
    v1::Job out;
    return jobs_->CancelJob(c, r, &out);
  };
  job_case("CancelJob", "unknown id", Code::NOT_FOUND, "no-such-job", cancel);
  job_case("CancelJob", "empty id", Code::INVALID_ARGUMENT, "", cancel);
  cases.push_back({"ListJobs", "negative page_size", Code::INVALID_ARGUMENT, [this](grpc::ClientContext* c) {
                     v1::ListJobsRequest r;
                     r.set_page_size(-1);
                     v1::ListJobsResponse out;
                     return jobs_->ListJobs(c, r, &out);
                   }});
  cases.push_back({"ListJobs", "forged page_token", Code::INVALID_ARGUMENT, [this](grpc::ClientContext* c) {
                     v1::ListJobsRequest r;
                     r.set_page_token("-99999999999999999999");
                     v1::ListJobsResponse out;
                     return jobs_->ListJobs(c, r, &out);
                   }});
  cases.push_back({"WatchJob", "unknown id", Code::NOT_FOUND, [this](grpc::ClientContext* c) {
                     v1::WatchJobRequest r;
                     r.set_job_id("no-such-job");
                     auto stream = jobs_->WatchJob(c, r);
                     v1::WatchJobEvent event;
                     while (stream->Read(&event)) {
                     }
                     return stream->Finish();
                   }});
  cases.push_back({"WatchJob", "negative status interval", Code::INVALID_ARGUMENT,
                   [this, job_id](grpc::ClientContext* c) {
                     v1::WatchJobRequest r;
                     r.set_job_id(job_id);
                     r.set_status_interval_seconds(-1);
                     auto stream = jobs_->WatchJob(c, r);
                     v1::WatchJobEvent event;
                     while (stream->Read(&event)) {
                     }
                     return stream->Finish();
                   }});
  auto list_trials = [this, job_id](int page_size, std::string token, int order) {
    return [=](grpc::ClientContext* c) {
      v1::ListTrialsRequest r;
      r.set_job_id(job_id);
      r.set_page_size(page_size);
      r.set_page_token(token);
      r.set_order(static_cast<v1::ListTrialsRequest::Order>(order));
      v1::ListTrialsResponse out;
      return jobs_->ListTrials(c, r, &out);
    };
  };
  cases.push_back({"ListTrials", "negative page_size", Code::INVALID_ARGUMENT, list_trials(-3, "", 0)});
  // Clamped to 1,000 (documented in job_service.proto), as list APIs do.
  cases.push_back({"ListTrials", "page_size 10^9 (clamped)", Code::OK, list_trials(1000000000, "", 0)});
  cases.push_back({"ListTrials", "forged page_token", Code::INVALID_ARGUMENT, list_trials(10, "abc", 0)});
  cases.push_back({"ListTrials", "unknown order enum 77", Code::INVALID_ARGUMENT, list_trials(10, "", 77)});
  job_case("ListTrials", "unknown job", Code::NOT_FOUND, "no-such-job",
           [this](grpc::ClientContext* c, const std::string& id) {
             v1::ListTrialsRequest r;
             r.set_job_id(id);
             v1::ListTrialsResponse out;
             return jobs_->ListTrials(c, r, &out);
           });
  cases.push_back({"GetTrial", "unknown trial", Code::NOT_FOUND, [this, job_id](grpc::ClientContext* c) {
                     v1::GetTrialRequest r;
                     r.set_job_id(job_id);
                     r.set_trial_id("t999999");
                     v1::Trial out;
                     return jobs_->GetTrial(c, r, &out);
                   }});
  auto trial_logs = [this, job_id](std::string trial, int attempt, int64_t offset) {
    return [=](grpc::ClientContext* c) {
      v1::GetTrialLogsRequest r;
      r.set_job_id(job_id);
      r.set_trial_id(trial);
      r.set_attempt(attempt);
      r.set_offset(offset);
      v1::GetTrialLogsResponse out;
      return jobs_->GetTrialLogs(c, r, &out);
    };
  };
  cases.push_back({"GetTrialLogs", "unknown trial", Code::NOT_FOUND, trial_logs("t999999", 0, 0)});
  cases.push_back({"GetTrialLogs", "negative attempt", Code::INVALID_ARGUMENT, trial_logs(trial_id, -1, 0)});
  cases.push_back({"GetTrialLogs", "negative offset", Code::INVALID_ARGUMENT, trial_logs(trial_id, 0, -5)});
  cases.push_back({"GetTrialLogs", "offset 2^62 (past the end)", Code::OK,
                   trial_logs(trial_id, 0, int64_t{1} << 62)});
  // --- TaskService
  auto acquire = [this](std::string worker, double wait) {
    return [=](grpc::ClientContext* c) {
      v1::AcquireTaskRequest r;
      r.set_worker_id(worker);
      r.set_wait_seconds(wait);
      v1::AcquireTaskResponse out;
      return tasks_->AcquireTask(c, r, &out);
    };
  };
  cases.push_back({"AcquireTask", "empty worker_id", Code::INVALID_ARGUMENT, acquire("", 0)});
  cases.push_back({"AcquireTask", "NaN wait_seconds", Code::INVALID_ARGUMENT, acquire("w", kNaN)});
  cases.push_back({"AcquireTask", "negative wait_seconds", Code::INVALID_ARGUMENT, acquire("w", -1)});
  cases.push_back({"AcquireTask", "wait_seconds 10^9", Code::INVALID_ARGUMENT, acquire("w", 1e9)});
  cases.push_back({"AcquireTask", "2 MiB worker_id", Code::INVALID_ARGUMENT, acquire(huge, 0)});
  auto heartbeat = [this](std::string task) {
    return [=](grpc::ClientContext* c) {
      v1::HeartbeatRequest r;
      r.set_worker_id("w");
      r.set_task_id(task);
      v1::HeartbeatResponse out;
      return tasks_->Heartbeat(c, r, &out);
    };
  };
  cases.push_back({"Heartbeat", "malformed task_id", Code::INVALID_ARGUMENT, heartbeat("not-a-task")});
  cases.push_back({"Heartbeat", "attempt -1", Code::INVALID_ARGUMENT, heartbeat(job_id + "/t0#-1")});
  cases.push_back(
      {"Heartbeat", "a task nobody leased", Code::FAILED_PRECONDITION, heartbeat(real_task)});
  auto report = [this](std::string task, double reward, std::string error) {
    return [=](grpc::ClientContext* c) {
      v1::ReportResultRequest r;
      r.set_worker_id("w");
      r.set_task_id(task);
      r.mutable_metrics()->set_reward(reward);
      r.set_error(error);
      v1::ReportResultResponse out;
      return tasks_->ReportResult(c, r, &out);
    };
  };
  cases.push_back({"ReportResult", "malformed task_id", Code::INVALID_ARGUMENT, report("x#y", 0.5, "")});
  cases.push_back({"ReportResult", "unknown job", Code::NOT_FOUND, report("no-such-job/t0#1", 0.5, "")});
  cases.push_back({"ReportResult", "unknown trial", Code::NOT_FOUND, report(job_id + "/t999999#1", 0.5, "")});
  cases.push_back({"ReportResult", "NaN reward", Code::INVALID_ARGUMENT, report(real_task, kNaN, "")});
  cases.push_back({"ReportResult", "infinite reward", Code::INVALID_ARGUMENT, report(real_task, kInf, "")});
  cases.push_back({"ReportResult", "a result for a queued task nobody leased",
                   Code::FAILED_PRECONDITION, report(real_task, 0.5, "")});
  cases.push_back({"ReportResult", "a failure for a queued task nobody leased",
                   Code::FAILED_PRECONDITION, report(real_task, 0, "out of memory")});
  auto append_log = [this](std::string task, int64_t offset, std::string data) {
    return [=](grpc::ClientContext* c) {
      v1::AppendTrialLogRequest r;
      r.set_worker_id("w");
      r.set_task_id(task);
      r.set_offset(offset);
      r.set_data(data);
      v1::AppendTrialLogResponse out;
      return tasks_->AppendTrialLog(c, r, &out);
    };
  };
  cases.push_back({"AppendTrialLog", "malformed task_id", Code::INVALID_ARGUMENT, append_log("x#y", 0, "a")});
  cases.push_back({"AppendTrialLog", "negative offset", Code::INVALID_ARGUMENT, append_log(real_task, -1, "a")});
  cases.push_back({"AppendTrialLog", "a 2 MiB chunk", Code::INVALID_ARGUMENT, append_log(real_task, 0, huge)});
  cases.push_back({"AppendTrialLog", "a task nobody leased", Code::FAILED_PRECONDITION,
                   append_log(real_task, 0, "forged output")});
  // The callback-API methods reject an unparsable request as the synchronous ones do.
  cases.push_back({"ReportResult", "non-UTF-8 task_id", Code::INTERNAL, report(kNotUtf8, 0.5, "")});
  cases.push_back({"AcquireTask", "non-UTF-8 worker_id", Code::INTERNAL, acquire(kNotUtf8, 0)});
  // --- ParameterServer
  auto init_job = [this, &init](std::function<void(v1::InitJobRequest*)> edit) {
    v1::InitJobRequest r = init;
    r.set_job_id("hostile");
    edit(&r);
    return [this, r](grpc::ClientContext* c) {
      v1::InitJobResponse out;
      return shard_->InitJob(c, r, &out);
    };
  };
  cases.push_back({"InitJob", "empty job_id", Code::INVALID_ARGUMENT,
                   init_job([](v1::InitJobRequest* r) { r->set_job_id(""); })});
  cases.push_back({"InitJob", "negative dimension", Code::INVALID_ARGUMENT, init_job([](v1::InitJobRequest* r) {
                     r->mutable_layout(0)->set_shape(0, -2);
                     r->mutable_tensors(0)->set_shape(0, -2);
                   })});
  cases.push_back({"InitJob", "values do not fill the shape", Code::INVALID_ARGUMENT,
                   init_job([](v1::InitJobRequest* r) { r->mutable_tensors(0)->add_values(7); })});
  cases.push_back({"InitJob", "NaN initial value", Code::INVALID_ARGUMENT,
                   init_job([](v1::InitJobRequest* r) { r->mutable_tensors(0)->set_values(0, kNaN); })});
  cases.push_back({"InitJob", "a 2^40-element shape", Code::INVALID_ARGUMENT, init_job([](v1::InitJobRequest* r) {
                     r->mutable_layout(0)->set_shape(0, int64_t{1} << 20);
                     r->mutable_layout(0)->set_shape(1, int64_t{1} << 20);
                     r->mutable_tensors(0)->set_shape(0, int64_t{1} << 20);
                     r->mutable_tensors(0)->set_shape(1, int64_t{1} << 20);
                   })});
  cases.push_back({"InitJob", "shard index out of range", Code::INVALID_ARGUMENT,
                   init_job([](v1::InitJobRequest* r) { r->set_shard_index(5); })});
  cases.push_back({"InitJob", "NaN learning rate", Code::INVALID_ARGUMENT,
                   init_job([](v1::InitJobRequest* r) { r->mutable_optimizer()->set_learning_rate(kNaN); })});
  cases.push_back({"InitJob", "the legit job again with other shapes", Code::FAILED_PRECONDITION,
                   [this, &init](grpc::ClientContext* c) {
                     v1::InitJobRequest r = init;
                     r.mutable_layout(0)->set_shape(1, 4);
                     r.mutable_tensors(0)->set_shape(1, 4);
                     r.mutable_tensors(0)->add_values(7);
                     r.mutable_tensors(0)->add_values(8);
                     v1::InitJobResponse out;
                     return shard_->InitJob(c, r, &out);
                   }});
  auto push = [this](std::string job, std::vector<v1::Tensor> gradients, int64_t base) {
    return [=](grpc::ClientContext* c) {
      v1::PushRequest r;
      r.set_job_id(job);
      r.set_base_version(base);
      for (const v1::Tensor& g : gradients) *r.add_gradients() = g;
      v1::PushResponse out;
      return shard_->Push(c, r, &out);
    };
  };
  cases.push_back({"Push", "unknown job", Code::NOT_FOUND, push("no-such-job", {Tensor("w", {2, 3}, {0, 0, 0, 0, 0, 0})}, 0)});
  cases.push_back({"Push", "wrong shape", Code::INVALID_ARGUMENT, push("legit", {Tensor("w", {3, 2}, {0, 0, 0, 0, 0, 0})}, 0)});
  cases.push_back({"Push", "too few values", Code::INVALID_ARGUMENT, push("legit", {Tensor("w", {2, 3}, {0, 0})}, 0)});
  cases.push_back({"Push", "a NaN gradient", Code::INVALID_ARGUMENT, push("legit", {Tensor("w", {2, 3}, {0, kNaN, 0, 0, 0, 0})}, 0)});
  cases.push_back({"Push", "an infinite gradient", Code::INVALID_ARGUMENT, push("legit", {Tensor("w", {2, 3}, {0, 0, kInf, 0, 0, 0})}, 0)});
  cases.push_back({"Push", "an unknown tensor", Code::INVALID_ARGUMENT, push("legit", {Tensor("zz", {2, 3}, {0, 0, 0, 0, 0, 0})}, 0)});
  cases.push_back({"Push", "no gradients", Code::INVALID_ARGUMENT, push("legit", {}, 0)});
  cases.push_back({"Push", "negative base_version", Code::INVALID_ARGUMENT, push("legit", {Tensor("w", {2, 3}, {0, 0, 0, 0, 0, 0})}, -4)});
  auto push_batch = [this](int pushes, std::string job) {
    return [=](grpc::ClientContext* c) {
      v1::PushBatchRequest r;
      for (int i = 0; i < pushes; ++i) {
        v1::PushRequest* p = r.add_pushes();
        p->set_job_id(job);
        *p->add_gradients() = Tensor("w", {2, 3}, {0, 0, 0, 0, 0, 0});
      }
      v1::PushBatchResponse out;
      return shard_->PushBatch(c, r, &out);
    };
  };
  cases.push_back({"PushBatch", "no pushes", Code::INVALID_ARGUMENT, push_batch(0, "legit")});
  cases.push_back({"PushBatch", "1,025 pushes", Code::INVALID_ARGUMENT, push_batch(1025, "legit")});
  cases.push_back({"PushBatch", "non-UTF-8 job id", Code::INTERNAL, push_batch(1, kNotUtf8)});
  cases.push_back({"Pull", "unknown job", Code::NOT_FOUND, [this](grpc::ClientContext* c) {
                     v1::PullRequest r;
                     r.set_job_id("no-such-job");
                     v1::PullResponse out;
                     return shard_->Pull(c, r, &out);
                   }});
  cases.push_back({"Pull", "non-UTF-8 job id", Code::INTERNAL, [this](grpc::ClientContext* c) {
                     v1::PullRequest r;
                     r.set_job_id(kNotUtf8);
                     v1::PullResponse out;
                     return shard_->Pull(c, r, &out);
                   }});
  cases.push_back({"DropJob", "unknown job", Code::NOT_FOUND, [this](grpc::ClientContext* c) {
                     v1::DropJobRequest r;
                     r.set_job_id("no-such-job");
                     v1::DropJobResponse out;
                     return shard_->DropJob(c, r, &out);
                   }});
  cases.push_back({"Health.Check", "unknown service name", Code::NOT_FOUND, [this](grpc::ClientContext* c) {
                     grpc::health::v1::HealthCheckRequest r;
                     r.set_service("no.such.Service");
                     grpc::health::v1::HealthCheckResponse out;
                     return health_->Check(c, r, &out);
                   }});

  std::string table = "| method | request | expected | got |\n|---|---|---|---|\n";
  for (const Case& c : cases) {
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
    const grpc::Status status = c.call(&context);
    EXPECT_EQ(status.error_code(), c.expected)
        << c.method << " with " << c.what << ": " << status.error_message();
    absl::StrAppend(&table, "| ", c.method, " | ", c.what, " | ", c.expected, " | ",
                    status.error_code(), " |\n");
    // The message names the problem without echoing huge input back.
    EXPECT_LT(status.error_message().size(), 4096u) << c.method << " with " << c.what;
    // ... and never hands a control sequence back to whoever prints it.
    EXPECT_EQ(status.error_message().find('\x1b'), std::string::npos)
        << c.method << " with " << c.what << ": " << status.error_message();
    ASSERT_TRUE(controller_->process.Running()) << "controller died on " << c.method << " with "
                                                << c.what << "\n" << LogTail(controller_->log_path);
    ASSERT_TRUE(ps_->process.Running()) << "parameter server died on " << c.method << " with "
                                        << c.what << "\n" << LogTail(ps_->log_path);
  }
  std::printf("%zu hostile requests\n%s", cases.size(), table.c_str());

  // No state changed: still exactly one job, its trials unfinished; the
  // shard's job untouched and no other job created there.
  v1::ListJobsResponse listed;
  {
    grpc::ClientContext context;
    ASSERT_TRUE(jobs_->ListJobs(&context, v1::ListJobsRequest(), &listed).ok());
  }
  ASSERT_EQ(listed.jobs_size(), 1);
  EXPECT_EQ(listed.jobs(0).job_id(), job_id);
  EXPECT_EQ(listed.jobs(0).trials_succeeded(), 0);
  EXPECT_EQ(listed.jobs(0).trials_failed(), 0);
  EXPECT_EQ(pull_legit(), shard_before);
  {
    v1::PullRequest pull;
    pull.set_job_id("hostile");
    v1::PullResponse state;
    grpc::ClientContext context;
    EXPECT_EQ(shard_->Pull(&context, pull, &state).error_code(), grpc::StatusCode::NOT_FOUND);
  }
}

TEST_F(HostileRequestsTest, OnlyTheWorkerHoldingTheLeaseMayHeartbeatOrReport) {
  const std::string job_id = SubmitYaml(R"(
name: leases
search_space:
  cell: {num_nodes: 4, operations: [none, skip_connect, nor_conv_3x3]}
strategy: {name: random}
parallelism: {num_replicas: 1, children_per_replica: 1}
budget: {max_trials: 1}
evaluator: {synthetic: {}}
)");
  ASSERT_FALSE(job_id.empty());
  v1::AcquireTaskResponse leased;
  {
    v1::AcquireTaskRequest acquire;
    acquire.set_worker_id("holder");
    acquire.set_wait_seconds(10);
    grpc::ClientContext context;
    ASSERT_TRUE(tasks_->AcquireTask(&context, acquire, &leased).ok());
  }
  ASSERT_TRUE(leased.has_task());
  const std::string task_id = leased.task().task_id();
  auto heartbeat = [&](const std::string& worker) {
    v1::HeartbeatRequest r;
    r.set_worker_id(worker);
    r.set_task_id(task_id);
    v1::HeartbeatResponse out;
    grpc::ClientContext context;
    return tasks_->Heartbeat(&context, r, &out);
  };
  auto report = [&](const std::string& worker, double reward, const std::string& error) {
    v1::ReportResultRequest r;
    r.set_worker_id(worker);
    r.set_task_id(task_id);
    r.mutable_metrics()->set_reward(reward);
    r.set_error(error);
    v1::ReportResultResponse out;
    grpc::ClientContext context;
    return tasks_->ReportResult(&context, r, &out);
  };
  auto trial = [&] {
    v1::GetTrialRequest r;
    r.set_job_id(job_id);
    r.set_trial_id(leased.task().trial_id());
    v1::Trial out;
    grpc::ClientContext context;
    EXPECT_TRUE(jobs_->GetTrial(&context, r, &out).ok());
    return out;
  };
  EXPECT_EQ(heartbeat("intruder").error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(report("intruder", 0.99, "").error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(report("intruder", 0, "sabotage").error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  v1::Trial before = trial();
  EXPECT_EQ(before.state(), v1::TRIAL_STATE_RUNNING);
  EXPECT_EQ(before.attempts(), 1);
  // The holder's heartbeat and result are taken; the intruder's never were.
  EXPECT_TRUE(heartbeat("holder").ok());
  grpc::Status reported = report("holder", 0.25, "");
  ASSERT_TRUE(reported.ok()) << reported.error_message();
  v1::Trial after = trial();
  EXPECT_EQ(after.state(), v1::TRIAL_STATE_SUCCEEDED);
  EXPECT_DOUBLE_EQ(after.metrics().reward(), 0.25);
  EXPECT_EQ(after.worker_id(), "holder");
  EXPECT_EQ(report("intruder", 0.99, "").error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_DOUBLE_EQ(trial().metrics().reward(), 0.25);
}

}  // namespace
}  // namespace nas
