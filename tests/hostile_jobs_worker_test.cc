// Issue 18 rows 1-4, the worker's side, across real processes: a parameter
// server, the controller and one nas_worker on 127.0.0.1, hostile job specs
// submitted over gRPC. After every hostile job the worker must be the same
// live process, and a following normal job must complete (0 crashes, 0
// wedged jobs); no trial, job or log output may hold a byte of a file a
// job pointed at (0 bytes disclosed).
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "absl/strings/str_cat.h"
#include "common/file_util.h"
#include "gtest/gtest.h"
#include "proto/job_service.grpc.pb.h"
#include "tests/job_client.h"
#include "tests/test_util.h"

namespace nas {
namespace {

using ::nas::testing::JobClient;
using ::nas::testing::LogTail;
using ::nas::testing::NewTempDir;
using ::nas::testing::RunningServer;
using ::nas::testing::StartServer;

constexpr char kSecret[] = "SECRET-7f3a9c";

// A cell space scored by a lookup table at `table`; `trials` trials.
std::string LookupSpec(const std::string& name, const std::string& table, int trials, double failed_fraction) {
  return absl::StrCat(R"(
name: )", name, R"(
search_space:
  cell: {num_nodes: 3, operations: [none, skip_connect]}
strategy: {name: random, seed: 1}
budget: {max_trials: )", trials, ", max_samples: ", trials, ", max_failed_fraction: ", failed_fraction, R"(}
evaluator:
  lookup: {table_path: ")", table, R"("}
  max_attempts: 2
  lease_seconds: 5
)");
}

constexpr char kNormalSpec[] = R"(
name: normal
search_space:
  cell: {num_nodes: 3, operations: [none, skip_connect, nor_conv_3x3]}
strategy: {name: random, seed: 2}
budget: {max_trials: 4, max_samples: 4}
evaluator:
  synthetic: {duration_seconds: 0.05}
  lease_seconds: 5
)";

class Cluster {
 public:
  // Starts the parameter server, the controller and a worker with
  // `worker_flags` (plus --device=cpu --threads=1).
  void Start(const std::vector<std::string>& worker_flags) {
    dir_ = NewTempDir("hostile_jobs");
    auto ps = StartServer("parameter_server/nas_parameter_server",
                          {"--shard_index=0", "--num_shards=1", "--data_dir=" + dir_ + "/ps"}, dir_);
    ASSERT_TRUE(ps.ok()) << ps.status();
    ps_ = std::move(*ps);
    auto controller = StartServer("controller/nas_controller",
                                  {"--data_dir=" + dir_ + "/controller",
                                   absl::StrCat("--parameter_servers=127.0.0.1:", ps_->ready.grpc_port)},
                                  dir_);
    ASSERT_TRUE(controller.ok()) << controller.status();
    controller_ = std::move(*controller);
    jobs_ = std::make_unique<JobClient>(controller_->ready.grpc_port);
    StartWorker(worker_flags);
  }
  void StartWorker(const std::vector<std::string>& flags) {
    std::vector<std::string> args = {absl::StrCat("--controller=127.0.0.1:", controller_->ready.grpc_port),
                                     "--device=cpu", "--threads=1", "--worker_id=hostile-worker"};
    args.insert(args.end(), flags.begin(), flags.end());
    const std::string worker_dir = NewTempDir("worker");
    auto worker = StartServer("worker/nas_worker", args, worker_dir, "worker_ready_file");
    ASSERT_TRUE(worker.ok()) << worker.status();
    worker_ = std::move(*worker);
    worker_pid_ = worker_->process.pid();
  }

  grpc::Status Submit(const std::string& yaml, std::string* job_id) { return jobs_->Submit(yaml, job_id); }
  v1::Job Get(const std::string& job_id) {
    v1::Job job;
    EXPECT_TRUE(jobs_->Get(job_id, &job).ok());
    return job;
  }
  v1::Job WaitForEnd(const std::string& job_id, absl::Duration timeout) {
    return jobs_->WaitForEnd(job_id, timeout);
  }
  std::vector<v1::Trial> Trials(const std::string& job_id) {
    std::vector<v1::Trial> trials;
    EXPECT_TRUE(jobs_->Trials(job_id, &trials).ok());
    return trials;
  }
  v1::Job Cancel(const std::string& job_id) {
    v1::Job job;
    grpc::Status status = jobs_->Cancel(job_id, &job);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return job;
  }

  // The worker is the process started first, still running, and a normal
  // job completes on it.
  void ExpectWorkerAliveAndANormalJobCompletes() {
    ASSERT_EQ(worker_->process.pid(), worker_pid_);
    ASSERT_TRUE(worker_->process.Running()) << LogTail(worker_->log_path);
    std::string id;
    ASSERT_TRUE(Submit(kNormalSpec, &id).ok());
    const v1::Job job = WaitForEnd(id, absl::Seconds(60));
    EXPECT_EQ(job.state(), v1::JOB_STATE_SUCCEEDED) << job.error() << "\n" << LogTail(worker_->log_path);
    EXPECT_EQ(job.trials_succeeded(), 4);
    EXPECT_TRUE(worker_->process.Running()) << LogTail(worker_->log_path);
  }

  const std::string& dir() const { return dir_; }
  RunningServer& worker() { return *worker_; }
  RunningServer& controller() { return *controller_; }

 private:
  std::string dir_;
  std::optional<RunningServer> ps_, controller_, worker_;
  pid_t worker_pid_ = 0;
  std::unique_ptr<JobClient> jobs_;
};

// Row 1: too large at submit, and too large for one worker.
TEST(HostileJobsWorkerTest, Row1OversizedChildrenAreRefusedAtSubmitOrFailTheirTrialWithTheirSize) {
  Cluster cluster;
  // 1 MB: every trained child of the job below is over it.
  ASSERT_NO_FATAL_FAILURE(cluster.Start({"--max_child_bytes=1000000"}));
  std::string id;
  grpc::Status refused = cluster.Submit(R"(
name: row1
search_space:
  cell: {num_nodes: 16, operations: [none, skip_connect, nor_conv_3x3], cells_per_stage: 32, initial_channels: 256}
budget: {max_trials: 10, max_samples: 10}
evaluator: {train: {dataset: fashion_mnist, epochs: 1}}
)",
                                        &id);
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(refused.error_message().find(
                "evaluator.max_parameters: the search space's largest child has 47595541258 parameters"),
            std::string::npos)
      << refused.error_message();
  refused = cluster.Submit(R"(
name: maximal-macro
search_space:
  macro_cnn:
    filter_heights: [15]
    filter_widths: [15]
    num_filters: [1024]
    skip_connections: true
    depth: {initial_layers: 64, max_layers: 64}
budget: {max_trials: 10, max_samples: 10}
evaluator: {train: {dataset: fashion_mnist, epochs: 1, batch_size: 4096}}
)",
                           &id);
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(refused.error_message().find("evaluator.max_parameters: the search space's largest child has "),
            std::string::npos)
      << refused.error_message();
  EXPECT_NE(refused.error_message().find("evaluator.max_activation_bytes: the search space's largest child "
                                         "needs about "),
            std::string::npos)
      << refused.error_message();

  // Fits the job's limits, not this worker's ceiling: each trial fails once,
  // for good, with the child's size.
  grpc::Status accepted = cluster.Submit(R"(
name: over-the-ceiling
search_space:
  cell: {num_nodes: 3, operations: [nor_conv_3x3, nor_conv_1x1]}
strategy: {name: random, seed: 3}
budget: {max_trials: 2, max_samples: 2, max_failed_fraction: 1}
evaluator:
  train: {dataset: fashion_mnist, epochs: 1, train_size: 64, validation_size: 64}
  lease_seconds: 5
)",
                                         &id);
  ASSERT_TRUE(accepted.ok()) << accepted.error_message();
  const v1::Job job = cluster.WaitForEnd(id, absl::Seconds(90));
  EXPECT_NE(job.state(), v1::JOB_STATE_RUNNING) << LogTail(cluster.worker().log_path);
  const std::vector<v1::Trial> trials = cluster.Trials(id);
  ASSERT_FALSE(trials.empty());
  for (const v1::Trial& t : trials) {
    EXPECT_EQ(t.state(), v1::TRIAL_STATE_FAILED) << t.trial_id();
    EXPECT_NE(t.error().find("RESOURCE_EXHAUSTED: the child has "), std::string::npos) << t.error();
    EXPECT_NE(t.error().find("over this worker's --max_child_bytes (1000000 bytes)"), std::string::npos)
        << t.error();
  }
  cluster.ExpectWorkerAliveAndANormalJobCompletes();
}

// Rows 2 and 4: /dev/zero, a 2 GB file, /etc/shadow, a secret outside the
// roots and a non-table inside them.
TEST(HostileJobsWorkerTest, Rows2And4HostileTablePathsFailTheJobAndDiscloseNothing) {
  Cluster cluster;
  const std::string roots = NewTempDir("roots");
  const std::string outside = NewTempDir("outside");
  ASSERT_NO_FATAL_FAILURE(cluster.Start({"--data_roots=" + roots}));
  const std::string secret_line = absl::StrCat("arch,accuracy\nx,", kSecret, "\n");
  ASSERT_TRUE(WriteFileAtomically(roots + "/secret.csv", secret_line).ok());
  ASSERT_EQ(::chmod((roots + "/secret.csv").c_str(), 0400), 0);
  ASSERT_TRUE(WriteFileAtomically(outside + "/secret.csv", secret_line).ok());
  ASSERT_EQ(::chmod((outside + "/secret.csv").c_str(), 0400), 0);
  {
    const int fd = ::open((roots + "/big.csv").c_str(), O_CREAT | O_WRONLY | O_TRUNC, 0600);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(::ftruncate(fd, int64_t{2} << 30), 0);  // sparse: 2 GiB of zeros
    ::close(fd);
  }
  struct Case {
    std::string table;
    std::string expected;
  };
  const std::vector<Case> cases = {
      {"/dev/zero", "/dev/zero is not under the worker's --data_roots"},
      {roots + "/big.csv", "big.csv is 2147483648 bytes; the limit is 256 MiB"},
      {"/etc/shadow", "/etc/shadow is not under the worker's --data_roots"},
      {outside + "/secret.csv", "secret.csv is not under the worker's --data_roots"},
      {outside + "/absent.csv", "absent.csv is not under the worker's --data_roots"},
      {roots + "/../" + outside.substr(outside.rfind('/') + 1) + "/secret.csv", "is not under the worker's"},
      {roots + "/secret.csv", "line 2, column 'accuracy': not a number in [0, 1]"},
  };
  std::vector<std::string> outputs;
  for (const Case& c : cases) {
    std::string id;
    grpc::Status submitted = cluster.Submit(LookupSpec("hostile-table", c.table, 3, 0.5), &id);
    ASSERT_TRUE(submitted.ok()) << c.table << ": " << submitted.error_message();
    const v1::Job job = cluster.WaitForEnd(id, absl::Seconds(60));
    EXPECT_EQ(job.state(), v1::JOB_STATE_FAILED) << c.table << "\n" << LogTail(cluster.worker().log_path);
    outputs.push_back(job.DebugString());
    const std::vector<v1::Trial> trials = cluster.Trials(id);
    ASSERT_FALSE(trials.empty()) << c.table;
    for (const v1::Trial& t : trials) {
      EXPECT_NE(t.error().find(c.expected), std::string::npos) << c.table << ": " << t.error();
      outputs.push_back(t.DebugString());
    }
    ASSERT_TRUE(cluster.worker().process.Running()) << c.table << "\n" << LogTail(cluster.worker().log_path);
  }
  cluster.ExpectWorkerAliveAndANormalJobCompletes();
  // Not a byte of the files, anywhere: trials, jobs, both logs.
  absl::StatusOr<std::string> shadow = ReadFile("/etc/shadow");
  outputs.push_back(LogTail(cluster.worker().log_path, 1 << 20));
  outputs.push_back(LogTail(cluster.controller().log_path, 1 << 20));
  for (const std::string& output : outputs) {
    EXPECT_EQ(output.find(kSecret), std::string::npos) << output;
    EXPECT_EQ(output.find("root:"), std::string::npos) << output;
    if (shadow.ok() && shadow->size() > 16) {
      EXPECT_EQ(output.find(shadow->substr(0, 16)), std::string::npos) << output;
    }
  }
}

// Row 3: a FIFO table blocks nothing, cancel ends the job, SIGTERM ends the
// worker within its grace period.
TEST(HostileJobsWorkerTest, Row3AFifoTableNeitherBlocksNorWedgesCancelAndSigtermWin) {
  Cluster cluster;
  const std::string roots = NewTempDir("roots");
  ASSERT_NO_FATAL_FAILURE(
      cluster.Start({"--data_roots=" + roots, "--cancel_grace=1s", "--shutdown_grace=5s"}));
  const std::string fifo = roots + "/table.csv";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);

  std::string id;
  ASSERT_TRUE(cluster.Submit(LookupSpec("fifo", fifo, 3, 0.5), &id).ok());
  v1::Job job = cluster.WaitForEnd(id, absl::Seconds(60));
  EXPECT_EQ(job.state(), v1::JOB_STATE_FAILED) << LogTail(cluster.worker().log_path);
  for (const v1::Trial& t : cluster.Trials(id)) {
    EXPECT_NE(t.error().find("table.csv is a FIFO; only regular files are read"), std::string::npos)
        << t.error();
  }
  cluster.ExpectWorkerAliveAndANormalJobCompletes();

  // A job that keeps failing on the FIFO (it may: max_failed_fraction 1) is
  // cancelled promptly.
  ASSERT_TRUE(cluster.Submit(LookupSpec("fifo-cancel", fifo, 100000, 1.0), &id).ok());
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  while (cluster.Get(id).trials_failed() < 2 && absl::Now() < deadline) absl::SleepFor(absl::Milliseconds(20));
  ASSERT_GE(cluster.Get(id).trials_failed(), 2) << LogTail(cluster.worker().log_path);
  cluster.Cancel(id);
  job = cluster.WaitForEnd(id, absl::Seconds(20));
  EXPECT_EQ(job.state(), v1::JOB_STATE_CANCELLED) << LogTail(cluster.worker().log_path);
  cluster.ExpectWorkerAliveAndANormalJobCompletes();

  // SIGTERM while it works on FIFO tasks: out within --shutdown_grace (5 s).
  ASSERT_TRUE(cluster.Submit(LookupSpec("fifo-term", fifo, 100000, 1.0), &id).ok());
  while (cluster.Get(id).trials_failed() < 1 && absl::Now() < deadline + absl::Seconds(30)) {
    absl::SleepFor(absl::Milliseconds(20));
  }
  const absl::Time term = absl::Now();
  ASSERT_TRUE(cluster.worker().process.Signal(SIGTERM).ok());
  absl::StatusOr<int> exited = cluster.worker().process.Wait(absl::Seconds(10));
  ASSERT_TRUE(exited.ok()) << "worker ignored SIGTERM\n" << LogTail(cluster.worker().log_path);
  EXPECT_LT(absl::Now() - term, absl::Seconds(8));
  EXPECT_TRUE(WIFEXITED(*exited) && WEXITSTATUS(*exited) == 0) << *exited;
}

}  // namespace
}  // namespace nas
