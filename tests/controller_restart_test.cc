// The controller as a real process, SIGKILLed mid-job and restarted on the
// same data directory: the job finishes its budget, every trial whose result
// was acknowledged is stored exactly once with that result, and no trial is
// lost or counted twice. The parameter server is a real process too; the
// workers are threads speaking TaskService over gRPC.
#include <signal.h>

#include <atomic>
#include <map>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "proto/job_service.grpc.pb.h"
#include "proto/task_service.grpc.pb.h"
#include "tests/test_util.h"

namespace nas {
namespace {

using ::nas::testing::LogTail;
using ::nas::testing::NewTempDir;
using ::nas::testing::RunningServer;
using ::nas::testing::StartServer;

double Reward(const v1::Architecture& arch) {
  int good = 0;
  for (const v1::MacroCnnLayer& layer : arch.macro_cnn().layers()) {
    good += layer.filter_height() == 5 ? 1 : 0;
  }
  return arch.macro_cnn().layers().empty() ? 0 : 1.0 * good / arch.macro_cnn().layers_size();
}

class Workers {
 public:
  void SetController(const std::string& address) {
    absl::MutexLock lock(&mu_);
    channel_ = grpc::CreateChannel(address, grpc::InsecureChannelCredentials());
  }

  void Start(int n) {
    for (int i = 0; i < n; ++i) threads_.emplace_back([this, i] { Run(i); });
  }

  void Stop() {
    stop_ = true;
    for (std::thread& t : threads_) t.join();
    threads_.clear();
  }

  std::map<std::string, double> acked() {
    absl::MutexLock lock(&mu_);
    return acked_;
  }
  int acked_count() {
    absl::MutexLock lock(&mu_);
    return static_cast<int>(acked_.size());
  }

 private:
  void Run(int index) {
    const std::string id = absl::StrCat("w", index);
    while (!stop_) {
      std::shared_ptr<grpc::Channel> channel;
      {
        absl::MutexLock lock(&mu_);
        channel = channel_;
      }
      auto stub = v1::TaskService::NewStub(channel);
      v1::AcquireTaskRequest request;
      request.set_worker_id(id);
      request.set_wait_seconds(0.3);
      v1::AcquireTaskResponse response;
      grpc::ClientContext context;
      context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(2)));
      if (!stub->AcquireTask(&context, request, &response).ok() || !response.has_task()) continue;
      v1::ReportResultRequest report;
      report.set_task_id(response.task().task_id());
      report.set_worker_id(id);
      report.mutable_metrics()->set_reward(Reward(response.task().architecture()));
      v1::ReportResultResponse ack;
      grpc::ClientContext report_context;
      report_context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(2)));
      if (stub->ReportResult(&report_context, report, &ack).ok() && !ack.duplicate()) {
        absl::MutexLock lock(&mu_);
        const std::string key = absl::StrCat(response.task().job_id(), "/", response.task().trial_id());
        EXPECT_EQ(acked_.count(key), 0u) << "trial acknowledged twice as new: " << key;
        acked_[key] = report.metrics().reward();
      }
    }
  }

  absl::Mutex mu_;
  std::shared_ptr<grpc::Channel> channel_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, double> acked_ ABSL_GUARDED_BY(mu_);
  std::atomic<bool> stop_{false};
  std::vector<std::thread> threads_;
};

TEST(ControllerRestartTest, SigkilledControllerResumesJobWithoutLosingOrRepeatingTrials) {
  const std::string dir = NewTempDir("restart");
  auto ps = StartServer("parameter_server/nas_parameter_server",
                        {"--shard_index=0", "--num_shards=1", "--data_dir=" + dir + "/ps"}, dir);
  ASSERT_TRUE(ps.ok()) << ps.status();
  const std::vector<std::string> controller_args = {
      "--data_dir=" + dir + "/controller",
      absl::StrCat("--parameter_servers=127.0.0.1:", ps->ready.grpc_port)};
  auto controller = StartServer("controller/nas_controller", controller_args, dir);
  ASSERT_TRUE(controller.ok()) << controller.status();

  Workers workers;
  workers.SetController(absl::StrCat("127.0.0.1:", controller->ready.grpc_port));
  workers.Start(3);

  constexpr int kBudget = 120;
  v1::SubmitJobRequest submit;
  submit.set_spec_yaml(absl::StrCat(R"(
name: restart
search_space:
  macro_cnn:
    filter_heights: [1, 3, 5]
    filter_widths: [1, 3, 5]
    num_filters: [24, 36]
    skip_connections: true
    depth: {initial_layers: 3, max_layers: 3}
strategy: {name: reinforce, seed: 2}
controller: {learning_rate: 0.01}
parallelism: {num_replicas: 3, children_per_replica: 2}
budget: {max_trials: )",
                                    kBudget, ", max_samples: ", kBudget, R"(}
evaluator:
  synthetic: {}
  lease_seconds: 2
)"));
  std::string job_id;
  {
    auto stub = v1::JobService::NewStub(grpc::CreateChannel(
        absl::StrCat("127.0.0.1:", controller->ready.grpc_port), grpc::InsecureChannelCredentials()));
    v1::SubmitJobResponse response;
    grpc::ClientContext context;
    grpc::Status status = stub->SubmitJob(&context, submit, &response);
    ASSERT_TRUE(status.ok()) << status.error_message();
    job_id = response.job().job_id();
  }

  // Two kills at different points of the job.
  for (int kill = 1; kill <= 2; ++kill) {
    const absl::Time deadline = absl::Now() + absl::Seconds(60);
    while (workers.acked_count() < kill * kBudget / 3 && absl::Now() < deadline) {
      absl::SleepFor(absl::Milliseconds(10));
    }
    ASSERT_TRUE(controller->process.Signal(SIGKILL).ok());
    ASSERT_TRUE(controller->process.Wait(absl::Seconds(10)).ok());
    controller = StartServer("controller/nas_controller", controller_args, dir);
    ASSERT_TRUE(controller.ok()) << controller.status();
    workers.SetController(absl::StrCat("127.0.0.1:", controller->ready.grpc_port));
  }

  auto stub = v1::JobService::NewStub(grpc::CreateChannel(
      absl::StrCat("127.0.0.1:", controller->ready.grpc_port), grpc::InsecureChannelCredentials()));
  v1::Job job;
  const absl::Time deadline = absl::Now() + absl::Seconds(120);
  while (absl::Now() < deadline) {
    v1::GetJobRequest request;
    request.set_job_id(job_id);
    grpc::ClientContext context;
    ASSERT_TRUE(stub->GetJob(&context, request, &job).ok());
    if (job.state() != v1::JOB_STATE_RUNNING) break;
    absl::SleepFor(absl::Milliseconds(50));
  }
  workers.Stop();
  ASSERT_EQ(job.state(), v1::JOB_STATE_SUCCEEDED) << LogTail(controller->log_path);

  std::vector<v1::Trial> trials;
  v1::ListTrialsRequest list;
  list.set_job_id(job_id);
  list.set_page_size(1000);
  v1::ListTrialsResponse response;
  grpc::ClientContext context;
  ASSERT_TRUE(stub->ListTrials(&context, list, &response).ok());
  std::set<std::string> ids;
  std::map<std::string, double> stored;
  for (const v1::Trial& t : response.trials()) {
    ids.insert(t.trial_id());
    EXPECT_EQ(t.state(), v1::TRIAL_STATE_SUCCEEDED) << t.trial_id() << " " << t.error();
    stored[absl::StrCat(job_id, "/", t.trial_id())] = t.metrics().reward();
  }
  EXPECT_EQ(response.trials_size(), kBudget);
  EXPECT_EQ(ids.size(), static_cast<size_t>(kBudget));
  for (const auto& [key, reward] : workers.acked()) {
    ASSERT_EQ(stored.count(key), 1u) << "acknowledged trial lost: " << key;
    EXPECT_DOUBLE_EQ(stored[key], reward) << key;
  }
  ASSERT_TRUE(controller->process.Signal(SIGTERM).ok());
  EXPECT_TRUE(controller->process.Wait(absl::Seconds(20)).ok());
  ASSERT_TRUE(ps->process.Signal(SIGTERM).ok());
  EXPECT_TRUE(ps->process.Wait(absl::Seconds(20)).ok());
}

}  // namespace
}  // namespace nas
