// Hostile jobs and failing disks, the controller's store (issue 18, rows 5
// and 7; docs/reliability.md, "Hostile jobs and failing disks"): a real
// controller and real workers (synthetic evaluator) while
//  - the controller's data dir, a small tmpfs in its own mount namespace,
//    fills up and then has space again;
//  - pages of one job's trials in trials.db are overwritten between runs;
//  - the store is replaced by a scheduled online backup, per the restore
//    procedure in docs/trial_store.md.
#include <signal.h>
#include <sys/stat.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "absl/strings/match.h"
#include "absl/strings/strip.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "common/file_util.h"
#include "common/grpc_server.h"
#include "common/http_client.h"
#include "common/subprocess.h"
#include "controller/store_faults.h"
#include "gtest/gtest.h"
#include "proto/job_service.grpc.pb.h"
#include "tests/job_client.h"
#include "tests/test_util.h"

namespace nas {
namespace {

using ::nas::controller::DamagePages;
using ::nas::testing::BinaryPath;
using ::nas::testing::JobClient;
using ::nas::testing::LogTail;
using ::nas::testing::NamespacedTmpfs;
using ::nas::testing::NewTempDir;
using ::nas::testing::RunningServer;
using ::nas::testing::StartServer;

// A random-search job over a small cell space, synthetic evaluator.
std::string JobYaml(const std::string& name, int budget, int lease_seconds = 10,
                    int max_attempts = 20, double max_failed_fraction = 0.5) {
  return absl::StrCat(R"(
name: )", name, R"(
search_space:
  cell: {num_nodes: 4, operations: [none, skip_connect, nor_conv_1x1, nor_conv_3x3, avg_pool_3x3]}
strategy: {name: random, seed: 3}
parallelism: {num_replicas: 2, children_per_replica: 4}
budget: {max_trials: )", budget, ", max_samples: ", budget, ", max_failed_fraction: ", max_failed_fraction, R"(}
evaluator:
  synthetic: {duration_seconds: 0.02, epochs: 1}
  lease_seconds: )", lease_seconds, R"(
  max_attempts: )", max_attempts, "\n");
}

// Polls `condition` until `timeout`.
template <typename F>
bool Eventually(F condition, absl::Duration timeout) {
  for (const absl::Time deadline = absl::Now() + timeout; absl::Now() < deadline;) {
    if (condition()) return true;
    absl::SleepFor(absl::Milliseconds(50));
  }
  return condition();
}

class HostileJobsStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = NewTempDir("hostile-store");
    data_dir_ = dir_ + "/controller-data";
    ASSERT_TRUE(MakeDirectories(data_dir_).ok());
  }

  // The controller on data_dir_, plain.
  void StartController(std::vector<std::string> extra = {}) {
    extra.push_back("--data_dir=" + data_dir_);
    auto started = StartServer("controller/nas_controller", extra, dir_);
    ASSERT_TRUE(started.ok()) << started.status();
    controller_.emplace(std::move(started).value());
    Connect();
  }

  // The controller inside a mount namespace whose data_dir_ is a tmpfs of
  // `size` (NamespacedTmpfs: unshare -Urm). Fails loudly when namespaces are
  // not available.
  void StartControllerOnTmpfs(const std::string& size) {
    auto tmpfs = NamespacedTmpfs::Create(data_dir_, size, dir_);
    ASSERT_TRUE(tmpfs.ok()) << "this test needs a tmpfs in a mount namespace (unshare -Urm): "
                            << tmpfs.status();
    tmpfs_ = std::move(tmpfs).value();
    auto started = StartServer("controller/nas_controller", {"--data_dir=" + data_dir_}, dir_,
                               "ready_file", absl::Seconds(60), tmpfs_->Enter());
    ASSERT_TRUE(started.ok()) << started.status();
    controller_.emplace(std::move(started).value());
    Connect();
  }

  void Connect() {
    jobs_ = std::make_unique<JobClient>(controller_->ready.grpc_port);
  }

  void StopController() {
    ASSERT_TRUE(controller_->process.Signal(SIGTERM).ok());
    auto status = controller_->process.Wait(absl::Seconds(30));
    ASSERT_TRUE(status.ok()) << "the controller did not stop on SIGTERM";
    EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0) << LogTail(controller_->log_path);
    controller_.reset();
  }

  void StartWorkers(int n) {
    for (int w = 0; w < n; ++w) {
      const std::string dir = absl::StrCat(dir_, "/worker", w);
      ASSERT_TRUE(MakeDirectories(dir).ok());
      auto worker = StartServer(
          "worker/nas_worker",
          {absl::StrCat("--controller=127.0.0.1:", controller_->ready.grpc_port), "--device=cpu",
           "--threads=1", absl::StrCat("--worker_id=store-worker-", w)},
          dir, "worker_ready_file");
      ASSERT_TRUE(worker.ok()) << worker.status();
      workers_.push_back(std::move(worker).value());
    }
  }

  grpc::Status Submit(const std::string& yaml, std::string* job_id) { return jobs_->Submit(yaml, job_id); }
  grpc::Status GetJob(const std::string& job_id, v1::Job* job) { return jobs_->Get(job_id, job); }

  int64_t Succeeded(const std::string& job_id) {
    v1::Job job;
    return GetJob(job_id, &job).ok() ? job.trials_succeeded() : -1;
  }

  // Waits until the job leaves RUNNING; its last state.
  v1::Job WaitForEnd(const std::string& job_id, absl::Duration timeout) {
    return jobs_->WaitForEnd(job_id, timeout);
  }

  // Every trial of the job through ListTrials, by id (a repeated id fails).
  std::map<std::string, v1::Trial> AllTrials(const std::string& job_id) {
    std::vector<v1::Trial> listed;
    grpc::Status status = jobs_->Trials(job_id, &listed);
    EXPECT_TRUE(status.ok()) << status.error_message();
    std::map<std::string, v1::Trial> trials;
    for (const v1::Trial& t : listed) {
      EXPECT_TRUE(trials.emplace(t.trial_id(), t).second) << "trial " << t.trial_id() << " twice";
    }
    return trials;
  }

  // Trial id -> attempt of every report the workers logged as accepted.
  std::multimap<std::string, int> AcceptedReports(const std::string& job_id) {
    std::multimap<std::string, int> accepted;
    for (const RunningServer& worker : workers_) {
      auto log = ReadFile(worker.log_path);
      EXPECT_TRUE(log.ok());
      if (!log.ok()) continue;
      for (absl::string_view line : absl::StrSplit(*log, '\n')) {
        const size_t at = line.find("] task ");
        if (at == absl::string_view::npos || !absl::StrContains(line, ": report accepted") ||
            absl::StrContains(line, "(duplicate)")) {
          continue;
        }
        absl::string_view task = line.substr(at + 7);
        task = task.substr(0, task.find(':'));
        const size_t slash = task.find('/'), hash = task.rfind('#');  // job/trial#attempt
        if (slash == absl::string_view::npos || hash == absl::string_view::npos) continue;
        if (task.substr(0, slash) != job_id) continue;
        int attempt = 0;
        EXPECT_TRUE(absl::SimpleAtoi(task.substr(hash + 1), &attempt)) << line;
        accepted.emplace(std::string(task.substr(slash + 1, hash - slash - 1)), attempt);
      }
    }
    return accepted;
  }

  std::string dir_, data_dir_;
  std::unique_ptr<NamespacedTmpfs> tmpfs_;
  std::optional<RunningServer> controller_;
  std::vector<RunningServer> workers_;
  std::unique_ptr<JobClient> jobs_;
};

// Row 5: the data dir fills up while a job runs, then has space again.
TEST_F(HostileJobsStoreTest, AFullDataDirRefusesWritesServesReadsAndTheJobFinishesOnceThereIsSpace) {
  constexpr int kBudget = 400;
  // Short leases and one attempt each: a lease that expires while the disk
  // is full ends its trial FAILED, and that outcome too must reach the store
  // (a trial must never stay in flight without a lease); failed trials do
  // not fail the job (max_failed_fraction 1).
  constexpr absl::Duration kLease = absl::Seconds(2);
  StartControllerOnTmpfs("16m");
  StartWorkers(2);
  std::string job_id;
  grpc::Status submitted =
      Submit(JobYaml("fills-the-disk", kBudget, absl::ToInt64Seconds(kLease), 1, 1.0), &job_id);
  ASSERT_TRUE(submitted.ok()) << submitted.error_message();
  ASSERT_TRUE(Eventually([&] { return Succeeded(job_id) >= 20; }, absl::Minutes(2)))
      << LogTail(controller_->log_path);

  ASSERT_TRUE(tmpfs_->Fill().ok());
  // Writes are refused, naming the data dir; reads are served.
  grpc::Status refused = Submit(JobYaml("refused", 10), nullptr);
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << refused.error_message();
  EXPECT_TRUE(absl::StrContains(refused.error_message(), data_dir_)) << refused.error_message();
  // The job's own writes fail too (outcomes, sampled rounds) before space returns.
  ASSERT_TRUE(Eventually(
      [&] {
        auto log = ReadFile(controller_->log_path);
        return log.ok() && absl::StrContains(*log, "cannot store the outcome of trial");
      },
      absl::Minutes(1)))
      << LogTail(controller_->log_path);
  v1::Job during;
  ASSERT_TRUE(GetJob(job_id, &during).ok());
  EXPECT_EQ(during.state(), v1::JOB_STATE_RUNNING);
  {
    v1::ListJobsRequest request;
    v1::ListJobsResponse response;
    grpc::ClientContext context;
    ASSERT_TRUE(jobs_->stub()->ListJobs(&context, request, &response).ok());
    EXPECT_EQ(response.jobs_size(), 1);
  }
  EXPECT_FALSE(AllTrials(job_id).empty());
  EXPECT_LT(during.trials_succeeded(), kBudget);
  // The failed writes are counted (the metric follows the store within 250 ms).
  std::string metric_lines;
  EXPECT_TRUE(Eventually(
      [&] {
        auto metrics = HttpGet("127.0.0.1", controller_->ready.metrics_port, "/metrics",
                               absl::Seconds(10));
        if (!metrics.ok()) return false;
        double failures = 0;
        metric_lines.clear();
        for (absl::string_view line : absl::StrSplit(metrics->body, '\n')) {
          if (absl::StrContains(line, "store_write_failures")) {
            absl::StrAppend(&metric_lines, line, "\n");
          }
          if (absl::ConsumePrefix(&line, "nas_controller_store_write_failures_total ")) {
            (void)absl::SimpleAtod(line, &failures);
          }
        }
        return failures > 0;
      },
      absl::Seconds(10)))
      << metric_lines;
  // The scenario: the disk stays full for several lease periods (leases of
  // workers whose reports are refused may expire meanwhile).
  absl::SleepFor(4 * kLease);

  ASSERT_TRUE(tmpfs_->Free().ok());
  // No restart: the job finishes its whole budget by itself.
  v1::Job done = WaitForEnd(job_id, absl::Minutes(3));
  ASSERT_EQ(done.state(), v1::JOB_STATE_SUCCEEDED) << done.error() << "\n"
                                                   << LogTail(controller_->log_path);
  EXPECT_EQ(done.trials_succeeded() + done.trials_failed(), kBudget);
  EXPECT_EQ(done.trials_running() + done.trials_queued(), 0);
  std::map<std::string, v1::Trial> stored = AllTrials(job_id);
  EXPECT_EQ(stored.size(), static_cast<size_t>(kBudget));
  std::printf("disk full: %ld of %d trials failed (leases that expired while it was full)\n",
              static_cast<long>(done.trials_failed()), kBudget);
  // Every acknowledged report is in the store, once, as the attempt it reported.
  const std::multimap<std::string, int> accepted = AcceptedReports(job_id);
  EXPECT_GT(accepted.size(), static_cast<size_t>(kBudget / 2));
  for (const auto& [trial_id, attempt] : accepted) {
    EXPECT_EQ(accepted.count(trial_id), 1u) << trial_id << " acknowledged twice";
    auto it = stored.find(trial_id);
    ASSERT_NE(it, stored.end()) << "acknowledged trial " << trial_id << " lost";
    EXPECT_EQ(it->second.state(), v1::TRIAL_STATE_SUCCEEDED) << trial_id;
    EXPECT_EQ(it->second.attempts(), attempt) << trial_id;
  }
}

// Row 7: pages holding one job's trials are overwritten while the controller is down.
TEST_F(HostileJobsStoreTest, DamagedPagesOfOneJobFailThatJobAloneAndTheOtherRunsToCompletion) {
  StartController();
  StartWorkers(2);
  std::string damaged, intact;
  ASSERT_TRUE(Submit(JobYaml("damaged", 100000), &damaged).ok());
  // Its first trials fill table pages of their own before the other job starts.
  ASSERT_TRUE(Eventually([&] { return Succeeded(damaged) >= 150; }, absl::Minutes(2)));
  ASSERT_TRUE(Submit(JobYaml("intact", 60), &intact).ok());
  ASSERT_TRUE(Eventually([&] { return Succeeded(intact) >= 8; }, absl::Minutes(1)));
  const int port = controller_->ready.grpc_port;
  StopController();

  // Three leaf pages of the trials table that hold the first job's rows and
  // none of the other's (SQLite's dbstat says which pages are the table's).
  auto pages = DamagePages(data_dir_ + "/trials.db", "trials", damaged, intact, 3);
  ASSERT_TRUE(pages.ok()) << pages.status();
  ASSERT_EQ(*pages, 3);

  // Same port: the workers keep calling it.
  StartController({absl::StrCat("--port=", port)});
  auto log = ReadFile(controller_->log_path);
  ASSERT_TRUE(log.ok());
  EXPECT_TRUE(absl::StrContains(*log, "quick_check found damage")) << LogTail(controller_->log_path);
  v1::Job failed;
  grpc::Status got = GetJob(damaged, &failed);
  ASSERT_TRUE(got.ok()) << got.error_message();
  EXPECT_EQ(failed.state(), v1::JOB_STATE_FAILED);
  EXPECT_TRUE(absl::StrContains(failed.error(), damaged)) << failed.error();
  EXPECT_TRUE(absl::StrContains(failed.error(), "malformed")) << failed.error();
  {
    v1::ListJobsRequest request;
    v1::ListJobsResponse response;
    grpc::ClientContext context;
    ASSERT_TRUE(jobs_->stub()->ListJobs(&context, request, &response).ok());
    EXPECT_EQ(response.jobs_size(), 2);
  }
  v1::Job done = WaitForEnd(intact, absl::Minutes(2));
  EXPECT_EQ(done.state(), v1::JOB_STATE_SUCCEEDED) << done.error();
  EXPECT_EQ(done.trials_succeeded(), 60);
  EXPECT_EQ(AllTrials(intact).size(), 60u);
}

// Row 7, worst case: a store too damaged to open (its header and schema page).
TEST_F(HostileJobsStoreTest, AStoreTooDamagedToOpenStopsTheControllerNamingTheFileAndTheRestore) {
  StartController();
  StartWorkers(1);
  std::string job_id;
  ASSERT_TRUE(Submit(JobYaml("lost", 20), &job_id).ok());
  ASSERT_EQ(WaitForEnd(job_id, absl::Minutes(1)).state(), v1::JOB_STATE_SUCCEEDED);
  StopController();
  const std::string db = data_dir_ + "/trials.db";
  auto contents = ReadFile(db);
  ASSERT_TRUE(contents.ok());
  ASSERT_GT(contents->size(), 4096u);
  std::fill(contents->begin(), contents->begin() + 4096, '\xa5');
  ASSERT_TRUE(WriteFileAtomically(db, *contents).ok());

  const std::string log = dir_ + "/damaged-start.log";
  auto process = Subprocess::Start(
      {BinaryPath("controller/nas_controller"), "--host=127.0.0.1", "--port=0",
       "--metrics_port=0", "--data_dir=" + data_dir_},
      log);
  ASSERT_TRUE(process.ok());
  auto status = process->Wait(absl::Seconds(30));
  ASSERT_TRUE(status.ok()) << "the controller did not exit";
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 1) << *status << "\n" << LogTail(log);
  const std::string tail = LogTail(log);
  EXPECT_TRUE(absl::StrContains(tail, db + " is too damaged to open")) << tail;
  EXPECT_TRUE(absl::StrContains(tail, "backup")) << tail;
  EXPECT_TRUE(absl::StrContains(tail, "docs/trial_store.md")) << tail;
  // Nothing was written over it.
  auto after = ReadFile(db);
  ASSERT_TRUE(after.ok());
  EXPECT_EQ(*after, *contents);
}

// Point 5: a backup taken while jobs run restores, per docs/trial_store.md.
TEST_F(HostileJobsStoreTest, AStoreReplacedByAnOnlineBackupBringsBackTheJobs) {
  const std::string backups = dir_ + "/backups";
  StartController({"--backup_dir=" + backups, "--backup_interval=1s", "--backup_keep=3"});
  StartWorkers(2);
  std::string finished, running;
  ASSERT_TRUE(Submit(JobYaml("finished", 16), &finished).ok());
  v1::Job first = WaitForEnd(finished, absl::Minutes(1));
  ASSERT_EQ(first.state(), v1::JOB_STATE_SUCCEEDED) << first.error();
  ASSERT_TRUE(Submit(JobYaml("running", 100000), &running).ok());
  ASSERT_TRUE(Eventually([&] { return Succeeded(running) >= 20; }, absl::Minutes(1)));
  // Two backups after that point: the newest was taken while the job ran.
  auto backup_files = [&] {
    std::vector<std::string> files;
    std::error_code error;
    for (const auto& entry : std::filesystem::directory_iterator(backups, error)) {
      const std::string name = entry.path().filename().string();
      if (absl::StartsWith(name, "trials-") && absl::EndsWith(name, ".db")) {
        files.push_back(entry.path().string());
      }
    }
    std::sort(files.begin(), files.end());
    return files;
  };
  const std::vector<std::string> before = backup_files();
  ASSERT_TRUE(Eventually(
      [&] {
        std::vector<std::string> now = backup_files();
        return !now.empty() && (before.empty() || now.back() > before.back()) &&
               Succeeded(running) > 0;
      },
      absl::Seconds(30)));
  EXPECT_LE(backup_files().size(), 3u) << "--backup_keep=3";
  const int port = controller_->ready.grpc_port;
  StopController();

  // The restore procedure: move the store aside, copy the newest backup in.
  const std::string newest = backup_files().back();
  for (const char* suffix : {"", "-wal", "-shm"}) {
    const std::string path = data_dir_ + "/trials.db" + suffix;
    std::error_code error;
    std::filesystem::rename(path, path + ".damaged", error);
  }
  std::filesystem::copy_file(newest, data_dir_ + "/trials.db");

  StartController({absl::StrCat("--port=", port)});
  v1::Job restored_finished, restored_running;
  ASSERT_TRUE(GetJob(finished, &restored_finished).ok());
  EXPECT_EQ(restored_finished.state(), v1::JOB_STATE_SUCCEEDED);
  EXPECT_EQ(restored_finished.trials_succeeded(), 16);
  ASSERT_TRUE(GetJob(running, &restored_running).ok());
  EXPECT_EQ(restored_running.state(), v1::JOB_STATE_RUNNING);
  // The restored job goes on from the backup's trials.
  const int64_t at_restore = restored_running.trials_succeeded();
  EXPECT_GT(at_restore, 0);
  EXPECT_TRUE(Eventually([&] { return Succeeded(running) > at_restore + 10; }, absl::Minutes(1)))
      << LogTail(controller_->log_path);
}

}  // namespace
}  // namespace nas
