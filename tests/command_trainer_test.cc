// The command evaluator across real processes (docs/command_evaluator.md): a
// parameter server, the controller and a nas_worker started with
// --allow_command_evaluator run examples/trainers/pytorch_trainer.py (Debian's
// python3-torch) on a few hundred Fashion-MNIST images for one epoch; the
// trial's learning curve (from the heartbeats) and its final accuracy and
// parameter count (from the script's last line) arrive at the controller.
// The script's output is the trial's log (JobService.GetTrialLogs). A worker
// without the flag fails such a trial for good, naming the flag.
#include <grpcpp/grpcpp.h>
#include <sys/wait.h>

#include <filesystem>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "common/file_util.h"
#include "gtest/gtest.h"
#include "proto/job_service.grpc.pb.h"
#include "tests/cluster.h"

namespace nas::testing {
namespace {

class CommandTrainerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ClusterOptions options;
    options.name = "command";
    options.worker_flags = {"--heartbeat_interval=100ms"};
    auto cluster = Cluster::Start(options);
    ASSERT_TRUE(cluster.ok()) << cluster.status();
    cluster_ = *std::move(cluster);
    dir_ = cluster_->dir();
  }

  void StartWorker(const std::vector<std::string>& flags) {
    absl::Status started = cluster_->StartWorker(flags);
    ASSERT_TRUE(started.ok()) << started;
  }

  // One trial of a one-layer space, trained by the example script.
  std::string JobYaml() const {
    return absl::StrCat(R"(
name: command-e2e
search_space:
  macro_cnn: {filter_heights: [3], filter_widths: [3], num_filters: [8], strides: [2],
              skip_connections: false, depth: {initial_layers: 1, max_layers: 1}}
strategy: {name: random, seed: 1}
budget: {max_trials: 1}
evaluator:
  command:
    argv: [/usr/bin/python3, )",
                        BinaryPath("examples/trainers/pytorch_trainer.py"), R"(,
           --train_size, "300", --validation_size, "200", --batch_size, "32", --threads, "1"]
    epochs: 1
    timeout_seconds: 120
  max_attempts: 2
  lease_seconds: 60
reward: {last_epochs: 1, power: 1}
)");
  }

  std::string dir_;
  std::unique_ptr<Cluster> cluster_;
};

TEST_F(CommandTrainerTest, TheExampleTrainerTrainsAChildAndItsCurveAndAccuracyArrive) {
  const std::string work_dir = NewTempDir("command-trials");
  StartWorker({"--allow_command_evaluator", "--command_work_dir=" + work_dir, "--keep_command_dirs"});
  std::string job_id;
  grpc::Status submitted = cluster_->jobs().Submit(JobYaml(), &job_id);
  ASSERT_TRUE(submitted.ok()) << submitted.error_message();
  const v1::Job job = cluster_->jobs().WaitForEnd(job_id, absl::Seconds(150));
  ASSERT_EQ(job.state(), v1::JOB_STATE_SUCCEEDED)
      << job.error() << cluster_->Logs();
  std::vector<v1::Trial> trials;
  ASSERT_TRUE(cluster_->jobs().Trials(job_id, &trials).ok());
  ASSERT_EQ(trials.size(), 1u);
  ASSERT_EQ(trials[0].state(), v1::TRIAL_STATE_SUCCEEDED) << trials[0].error();

  // The curve the heartbeats carried, and the final line's metrics.
  v1::GetTrialRequest request;
  request.set_job_id(job_id);
  request.set_trial_id(trials[0].trial_id());
  v1::Trial trial;
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  ASSERT_TRUE(cluster_->jobs().stub()->GetTrial(&context, request, &trial).ok());
  ASSERT_EQ(trial.curve_size(), 1);
  EXPECT_EQ(trial.curve(0).epoch(), 1);
  EXPECT_GT(trial.curve(0).validation_accuracy(), 0);
  EXPECT_GT(trial.curve(0).train_loss(), 0);
  const v1::TrialMetrics& m = trial.metrics();
  EXPECT_GT(m.accuracy(), 0);
  EXPECT_LE(m.accuracy(), 1);
  EXPECT_DOUBLE_EQ(m.reward(), m.accuracy());
  // conv 3x3x1x8 + batch norm (16) + linear 8x10+10: what model.py builds.
  EXPECT_EQ(m.parameters(), 72 + 16 + 90);
  EXPECT_EQ(m.epochs_size(), 1);
  EXPECT_EQ(m.device(), "cpu");

  // The script's output, kept by the controller (what `nasctl logs` shows).
  v1::GetTrialLogsRequest logs_request;
  logs_request.set_job_id(job_id);
  logs_request.set_trial_id(trials[0].trial_id());
  v1::GetTrialLogsResponse logs;
  grpc::ClientContext logs_context;
  logs_context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  grpc::Status got_logs = cluster_->jobs().stub()->GetTrialLogs(&logs_context, logs_request, &logs);
  ASSERT_TRUE(got_logs.ok()) << got_logs.error_message();
  EXPECT_EQ(logs.attempt(), 1);
  EXPECT_TRUE(logs.complete());
  EXPECT_EQ(logs.offset(), 0);
  EXPECT_NE(logs.data().find("300 training and 200 validation images"), std::string::npos) << logs.data();
  EXPECT_NE(logs.data().find("{\"epoch\": 1, \"accuracy\": "), std::string::npos) << logs.data();
  EXPECT_EQ(logs.next_offset(), static_cast<int64_t>(logs.data().size()));
  // ... and through nasctl (which ends at once: the attempt is complete).
  const std::string nasctl_log = dir_ + "/nasctl-logs.txt";
  absl::StatusOr<Subprocess> nasctl = Subprocess::Start(
      {BinaryPath("client/nasctl"), "logs", job_id, trials[0].trial_id(), "--follow",
       absl::StrCat("--server=127.0.0.1:", cluster_->controller_port())},
      nasctl_log);
  ASSERT_TRUE(nasctl.ok()) << nasctl.status();
  absl::StatusOr<int> exited = nasctl->Wait(absl::Seconds(30));
  ASSERT_TRUE(exited.ok()) << exited.status();
  EXPECT_TRUE(WIFEXITED(*exited) && WEXITSTATUS(*exited) == 0) << ReadFile(nasctl_log).value_or("");
  const std::string printed = ReadFile(nasctl_log).value_or("");
  EXPECT_NE(printed.find(absl::StrCat("# trial ", trials[0].trial_id(), ", attempt 1\n")), std::string::npos)
      << printed;
  EXPECT_NE(printed.find("300 training and 200 validation images"), std::string::npos) << printed;

  // The kept working directory: the export and the script's saved weights.
  int dirs = 0;
  for (const auto& entry : std::filesystem::directory_iterator(work_dir)) {
    ++dirs;
    EXPECT_TRUE(std::filesystem::exists(entry.path() / "architecture.json")) << entry.path();
    EXPECT_TRUE(std::filesystem::exists(entry.path() / "model.py")) << entry.path();
    EXPECT_TRUE(std::filesystem::exists(entry.path() / "output" / "model.pt")) << entry.path();
  }
  EXPECT_EQ(dirs, 1);
}

TEST_F(CommandTrainerTest, TheExampleJobSpecIsValid) {
  absl::StatusOr<std::string> yaml = ReadFile(BinaryPath("examples/fashion_mnist_command.yaml"));
  ASSERT_TRUE(yaml.ok()) << yaml.status();
  v1::SubmitJobRequest request;
  request.set_spec_yaml(*yaml);
  request.set_validate_only(true);
  v1::SubmitJobResponse response;
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  grpc::Status status = cluster_->jobs().stub()->SubmitJob(&context, request, &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(response.job().spec().evaluator().command().epochs(), 3);
}

TEST_F(CommandTrainerTest, AWorkerWithoutTheFlagFailsTheTrialForGoodNamingTheFlag) {
  StartWorker({});
  std::string job_id;
  grpc::Status submitted = cluster_->jobs().Submit(JobYaml(), &job_id);
  ASSERT_TRUE(submitted.ok()) << submitted.error_message();
  cluster_->jobs().WaitForEnd(job_id, absl::Seconds(60));
  std::vector<v1::Trial> trials;
  ASSERT_TRUE(cluster_->jobs().Trials(job_id, &trials).ok());
  ASSERT_EQ(trials.size(), 1u);
  EXPECT_EQ(trials[0].state(), v1::TRIAL_STATE_FAILED);
  EXPECT_EQ(trials[0].attempts(), 1) << "a permanent failure is not retried";
  EXPECT_NE(trials[0].error().find("--allow_command_evaluator"), std::string::npos) << trials[0].error();
}

}  // namespace
}  // namespace nas::testing
