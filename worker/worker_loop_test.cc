// The worker loop against an in-process TaskService on 127.0.0.1 that hands
// out scripted tasks and records heartbeats and reports.
#include "worker/worker_loop.h"

#include <grpcpp/grpcpp.h>

#include <unistd.h>

#include <atomic>
#include <deque>
#include <memory>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "common/grpc_server.h"
#include "gtest/gtest.h"
#include "worker/synthetic_evaluator.h"

namespace nas::worker {
namespace {

class FakeTaskService final : public v1::TaskService::Service {
 public:
  void Add(v1::Task task) {
    absl::MutexLock lock(&mu_);
    tasks_.push_back(std::move(task));
  }
  void CancelAll(bool cancel = true) {
    absl::MutexLock lock(&mu_);
    cancel_ = cancel;
  }
  // Heartbeats answer stop once this many epochs were heartbeated.
  void StopAfterEpochs(int epochs) {
    absl::MutexLock lock(&mu_);
    stop_after_epochs_ = epochs;
  }
  grpc::Status AcquireTask(grpc::ServerContext*, const v1::AcquireTaskRequest* request,
                           v1::AcquireTaskResponse* response) override {
    absl::MutexLock lock(&mu_);
    auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return !tasks_.empty(); };
    mu_.AwaitWithTimeout(absl::Condition(&ready), absl::Seconds(request->wait_seconds()));
    if (!tasks_.empty()) {
      ++acquires_;
      *response->mutable_task() = tasks_.front();
      tasks_.pop_front();
    }
    return grpc::Status::OK;
  }
  grpc::Status Heartbeat(grpc::ServerContext*, const v1::HeartbeatRequest* request,
                         v1::HeartbeatResponse* response) override {
    absl::MutexLock lock(&mu_);
    ++heartbeats_;
    epochs_ += request->epochs_size();
    response->set_cancel(cancel_);
    response->set_stop(stop_after_epochs_ > 0 && epochs_ >= stop_after_epochs_);
    return grpc::Status::OK;
  }
  grpc::Status ReportResult(grpc::ServerContext*, const v1::ReportResultRequest* request,
                            v1::ReportResultResponse* response) override {
    absl::MutexLock lock(&mu_);
    if (progress_ != nullptr) progress_at_report_.push_back(progress_->load());
    reports_.push_back(*request);
    if (refuse_reports_ > 0) {  // as a controller whose disk is full answers
      --refuse_reports_;
      return grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED, "trial store cannot write");
    }
    if (request->acquire_next() && !tasks_.empty()) {  // as the controller does: never waits
      *response->mutable_next_task() = tasks_.front();
      tasks_.pop_front();
    }
    return grpc::Status::OK;
  }
  grpc::Status AppendTrialLog(grpc::ServerContext*, const v1::AppendTrialLogRequest* request,
                              v1::AppendTrialLogResponse*) override {
    absl::MutexLock lock(&mu_);
    logs_.push_back(*request);
    reports_at_log_.push_back(reports_.size());
    return grpc::Status::OK;
  }
  std::vector<v1::AppendTrialLogRequest> logs() {
    absl::MutexLock lock(&mu_);
    return logs_;
  }
  // Reports received before each log chunk.
  std::vector<size_t> reports_at_log() {
    absl::MutexLock lock(&mu_);
    return reports_at_log_;
  }
  // The next `n` reports are answered RESOURCE_EXHAUSTED (and recorded).
  void RefuseReports(int n) {
    absl::MutexLock lock(&mu_);
    refuse_reports_ = n;
  }
  // AcquireTask calls that handed out a task.
  int acquires() {
    absl::MutexLock lock(&mu_);
    return acquires_;
  }
  bool WaitForReports(size_t n, absl::Duration timeout) {
    absl::MutexLock lock(&mu_);
    auto enough = [this, n]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return reports_.size() >= n; };
    return mu_.AwaitWithTimeout(absl::Condition(&enough), timeout);
  }
  std::vector<v1::ReportResultRequest> reports() {
    absl::MutexLock lock(&mu_);
    return reports_;
  }
  int heartbeats() {
    absl::MutexLock lock(&mu_);
    return heartbeats_;
  }
  int epochs() {
    absl::MutexLock lock(&mu_);
    return epochs_;
  }
  // Counts the worker's progress calls at each report.
  void WatchProgress(const std::atomic<int>* progress) {
    absl::MutexLock lock(&mu_);
    progress_ = progress;
  }
  std::vector<int> progress_at_report() {
    absl::MutexLock lock(&mu_);
    return progress_at_report_;
  }

 private:
  absl::Mutex mu_;
  std::deque<v1::Task> tasks_ ABSL_GUARDED_BY(mu_);
  std::vector<v1::ReportResultRequest> reports_ ABSL_GUARDED_BY(mu_);
  int heartbeats_ ABSL_GUARDED_BY(mu_) = 0;
  int epochs_ ABSL_GUARDED_BY(mu_) = 0;
  int acquires_ ABSL_GUARDED_BY(mu_) = 0;
  const std::atomic<int>* progress_ ABSL_GUARDED_BY(mu_) = nullptr;
  std::vector<int> progress_at_report_ ABSL_GUARDED_BY(mu_);
  bool cancel_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<v1::AppendTrialLogRequest> logs_ ABSL_GUARDED_BY(mu_);
  std::vector<size_t> reports_at_log_ ABSL_GUARDED_BY(mu_);
  int refuse_reports_ ABSL_GUARDED_BY(mu_) = 0;
  int stop_after_epochs_ ABSL_GUARDED_BY(mu_) = 0;
};

v1::Task SyntheticTask(const std::string& id, double seconds, int epochs) {
  v1::Task task;
  task.set_task_id(absl::StrCat("job/", id, "#1"));
  task.set_job_id("job");
  task.set_trial_id(id);
  task.set_attempt(1);
  for (int i = 0; i < 2; ++i) {
    v1::MacroCnnLayer* l = task.mutable_architecture()->mutable_macro_cnn()->add_layers();
    l->set_filter_height(5);
    l->set_filter_width(5);
    l->set_num_filters(i == 0 ? 64 : 24);
    l->set_stride(1);
  }
  task.mutable_evaluator()->mutable_synthetic()->set_duration_seconds(seconds);
  task.mutable_evaluator()->mutable_synthetic()->set_epochs(epochs);
  task.mutable_reward()->set_last_epochs(5);
  task.mutable_reward()->set_power(1);
  return task;
}

class WorkerLoopTest : public ::testing::Test {
 protected:
  virtual void Configure(WorkerLoopOptions&) {}
  void SetUp() override {
    GrpcServerOptions options;
    options.host = "127.0.0.1";
    options.metrics_port = -1;
    server_ = GrpcServer::Create(options).value();
    ASSERT_TRUE(server_->Start({&service_}).ok());
    WorkerLoopOptions loop_options;
    loop_options.worker_id = "w-test";
    loop_options.poll_wait = absl::Milliseconds(200);
    loop_options.heartbeat_interval = absl::Milliseconds(50);
    loop_options.on_progress = [this] { ++progress_; };
    Configure(loop_options);
    loop_ = std::make_unique<WorkerLoop>(
        loop_options, v1::TaskService::NewStub(grpc::CreateChannel(
                          absl::StrCat("127.0.0.1:", server_->port()), grpc::InsecureChannelCredentials())));
    runner_ = std::thread([this] { loop_->Run(); });
  }
  void TearDown() override {
    loop_->Stop();
    runner_.join();
    server_->Shutdown(absl::Seconds(1));
  }

  FakeTaskService service_;
  std::unique_ptr<GrpcServer> server_;
  std::unique_ptr<WorkerLoop> loop_;
  std::thread runner_;
  std::atomic<int> progress_{0};
};

TEST_F(WorkerLoopTest, QueuedTasksComeBackWithTheReportInsteadOfAnotherAcquire) {
  // Queued before the worker's first long poll can return them one by one:
  // the first comes from AcquireTask, the other three with the reports.
  service_.Add(SyntheticTask("t1", 0.2, 1));
  service_.Add(SyntheticTask("t2", 0, 1));
  service_.Add(SyntheticTask("t3", 0, 1));
  service_.Add(SyntheticTask("t4", 0, 1));
  ASSERT_TRUE(service_.WaitForReports(4, absl::Seconds(20)));
  std::vector<v1::ReportResultRequest> reports = service_.reports();
  ASSERT_EQ(reports.size(), 4u);
  for (int i = 0; i < 4; ++i) {
    EXPECT_EQ(reports[i].task_id(), absl::StrCat("job/t", i + 1, "#1"));
    EXPECT_TRUE(reports[i].acquire_next());
  }
  EXPECT_EQ(service_.acquires(), 1);
}

TEST_F(WorkerLoopTest, AcquiresEvaluatesHeartbeatsEveryEpochAndReports) {
  service_.Add(SyntheticTask("t1", 0.3, 3));
  service_.Add(SyntheticTask("t2", 0, 1));
  ASSERT_TRUE(service_.WaitForReports(2, absl::Seconds(20)));
  std::vector<v1::ReportResultRequest> reports = service_.reports();
  EXPECT_EQ(reports[0].task_id(), "job/t1#1");
  EXPECT_TRUE(reports[0].error().empty()) << reports[0].error();
  EXPECT_DOUBLE_EQ(reports[0].metrics().reward(), SyntheticAccuracy(SyntheticTask("t1", 0, 1).architecture()));
  EXPECT_EQ(reports[0].metrics().epochs_size(), 3);
  EXPECT_EQ(reports[0].worker_id(), "w-test");
  EXPECT_GE(service_.epochs(), 3);
  EXPECT_GE(service_.heartbeats(), 3);
}

class CommandWorkerLoopTest : public WorkerLoopTest {
 protected:
  void Configure(WorkerLoopOptions& options) override {
    options.evaluator.allow_command = true;
    options.evaluator.command_work_dir = ::testing::TempDir() + "/command_worker_loop";
  }
};

TEST_F(CommandWorkerLoopTest, TheCommandsOutputGoesToTheControllerInOrderAndCompleteBeforeTheReport) {
  v1::Task task = SyntheticTask("t1", 0, 1);
  v1::CommandEvaluatorSpec* command = task.mutable_evaluator()->mutable_command();
  command->add_argv("/bin/sh");
  command->add_argv("-c");
  // Two epochs apart, so that heartbeats carry output while it runs.
  command->add_argv(
      "echo start; echo '{\"epoch\": 1, \"accuracy\": 0.5}'; echo err >&2; "
      "sleep 0.5; "
      "echo '{\"epoch\": 2, \"accuracy\": 0.6}'; echo end");
  command->set_epochs(2);
  service_.Add(task);
  service_.Add(SyntheticTask("t2", 0, 1));  // no output: no log
  ASSERT_TRUE(service_.WaitForReports(2, absl::Seconds(30)));
  const std::vector<v1::AppendTrialLogRequest> logs = service_.logs();
  ASSERT_GE(logs.size(), 1u);
  std::string output;
  for (size_t i = 0; i < logs.size(); ++i) {
    EXPECT_EQ(logs[i].task_id(), "job/t1#1");
    EXPECT_EQ(logs[i].worker_id(), "w-test");
    EXPECT_EQ(logs[i].offset(), static_cast<int64_t>(output.size())) << "chunk " << i;
    EXPECT_EQ(logs[i].complete(), i + 1 == logs.size()) << "chunk " << i;
    output += logs[i].data();
  }
  for (const char* line : {"start\n", "err\n", "end\n", "\"epoch\": 2"}) {
    EXPECT_NE(output.find(line), std::string::npos) << line << " in " << output;
  }
  EXPECT_EQ(service_.reports_at_log().back(), 0u) << "the last chunk came after the report";
  EXPECT_TRUE(service_.reports()[0].error().empty()) << service_.reports()[0].error();
}

TEST_F(WorkerLoopTest, AReportRefusedWithResourceExhaustedIsRetriedUntilAccepted) {
  service_.RefuseReports(2);
  service_.Add(SyntheticTask("t1", 0, 1));
  ASSERT_TRUE(service_.WaitForReports(3, absl::Seconds(20)));
  std::vector<v1::ReportResultRequest> reports = service_.reports();
  ASSERT_EQ(reports.size(), 3u);
  for (const v1::ReportResultRequest& report : reports) {
    EXPECT_EQ(report.task_id(), "job/t1#1");
    EXPECT_TRUE(report.error().empty()) << report.error();
  }
}

// The liveness signal: every epoch counts as progress, not only the turns of
// the loop between tasks (a long task would look hung otherwise).
TEST_F(WorkerLoopTest, EveryEpochIsProgress) {
  service_.WatchProgress(&progress_);
  const int before_task = progress_.load();
  service_.Add(SyntheticTask("t1", 0.2, 8));
  ASSERT_TRUE(service_.WaitForReports(1, absl::Seconds(20)));
  // The poll in flight when the task was added hands it out, so between the
  // Add and the report the loop turns at most once; the 8 epochs must each
  // have counted.
  ASSERT_EQ(service_.progress_at_report().size(), 1u);
  EXPECT_GE(service_.progress_at_report()[0] - before_task, 8);
}

TEST_F(WorkerLoopTest, CancelFromTheControllerStopsTheTaskAndReportsIt) {
  service_.CancelAll();
  service_.Add(SyntheticTask("long", 60, 1));
  ASSERT_TRUE(service_.WaitForReports(1, absl::Seconds(20)));
  const v1::ReportResultRequest report = service_.reports()[0];
  EXPECT_NE(report.error().find("CANCELLED"), std::string::npos) << report.error();
}

TEST_F(WorkerLoopTest, StopFromTheControllerEndsTrainingAtOnceAndReportsTheEpochsSoFar) {
  service_.StopAfterEpochs(2);
  // 60 epochs of 1 s: told to stop after its second, it ends during its third.
  service_.Add(SyntheticTask("long", 60, 60));
  ASSERT_TRUE(service_.WaitForReports(1, absl::Seconds(30)));
  const v1::ReportResultRequest report = service_.reports()[0];
  EXPECT_TRUE(report.error().empty()) << report.error();
  ASSERT_EQ(report.metrics().epochs_size(), 2);
  const double accuracy = SyntheticAccuracy(SyntheticTask("long", 0, 1).architecture());
  // The reward of the epochs it trained: never more than its best so far.
  EXPECT_DOUBLE_EQ(report.metrics().accuracy(), accuracy * 2 / 60);
  EXPECT_DOUBLE_EQ(report.metrics().reward(), accuracy * 2 / 60);
  EXPECT_LT(report.metrics().train_seconds(), 30);
}

TEST_F(WorkerLoopTest, LookupOfAMissingTableFailsTheTrialAndTheWorkerStaysUp) {
  v1::Task task = SyntheticTask("lookup", 0, 1);
  task.mutable_evaluator()->mutable_lookup()->set_table_path("/no/such/table.csv");
  service_.Add(task);
  service_.Add(SyntheticTask("after", 0, 1));
  ASSERT_TRUE(service_.WaitForReports(2, absl::Seconds(20)));
  std::vector<v1::ReportResultRequest> reports = service_.reports();
  EXPECT_NE(reports[0].error().find("/no/such/table.csv"), std::string::npos);
  EXPECT_TRUE(reports[0].permanent());
  EXPECT_TRUE(reports[1].error().empty());
}

// An evaluator stuck in I/O: lookup tasks block reading a pipe nobody writes
// (until the test ends), never calling Cancelled(); other tasks are synthetic.
class StuckEvaluatorTest : public WorkerLoopTest {
 protected:
  class Stuck : public Evaluator {
   public:
    explicit Stuck(int fd) : fd_(fd) {}
    absl::StatusOr<v1::TrialMetrics> Evaluate(const v1::Task&, const EvaluationContext&) override {
      char byte;
      (void)::read(fd_, &byte, 1);
      return absl::InternalError("unblocked");
    }

   private:
    const int fd_;
  };
  void Configure(WorkerLoopOptions& options) override {
    ASSERT_EQ(::pipe(pipe_), 0);
    options.stall_timeout = absl::Seconds(1);
    options.cancel_grace = absl::Milliseconds(300);
    options.evaluator_factory = [this](const v1::EvaluatorSpec& spec)
        -> absl::StatusOr<std::unique_ptr<Evaluator>> {
      if (spec.has_lookup()) {
        ++created_stuck_;
        return std::unique_ptr<Evaluator>(std::make_unique<Stuck>(pipe_[0]));
      }
      return NewSyntheticEvaluator();
    };
  }
  void TearDown() override {
    WorkerLoopTest::TearDown();
    // Release the abandoned threads (one byte each) before the pipe closes.
    for (int i = 0; i < created_stuck_; ++i) (void)!::write(pipe_[1], "x", 1);
  }
  static v1::Task StuckTask(const std::string& id) {
    v1::Task task = SyntheticTask(id, 0, 1);
    task.mutable_evaluator()->mutable_lookup()->set_table_path("/a/fifo");
    return task;
  }
  int pipe_[2] = {-1, -1};
  std::atomic<int> created_stuck_{0};
};

TEST_F(StuckEvaluatorTest, AStuckEvaluatorIsAbandonedAfterTheStallTimeoutAndTheNextTaskRuns) {
  service_.Add(StuckTask("stuck"));
  service_.Add(SyntheticTask("after", 0, 1));
  service_.Add(StuckTask("stuck-again"));  // a fresh evaluator, not the stuck one's locks
  ASSERT_TRUE(service_.WaitForReports(3, absl::Seconds(20)));
  std::vector<v1::ReportResultRequest> reports = service_.reports();
  EXPECT_NE(reports[0].error().find("made no progress for 1s"), std::string::npos) << reports[0].error();
  EXPECT_FALSE(reports[0].permanent());  // another worker may do better
  EXPECT_TRUE(reports[1].error().empty()) << reports[1].error();
  EXPECT_NE(reports[2].error().find("made no progress"), std::string::npos) << reports[2].error();
  EXPECT_EQ(created_stuck_, 2);
  EXPECT_EQ(loop_->abandoned(), 2);
}

TEST_F(StuckEvaluatorTest, ACancelWinsOverAStuckEvaluator) {
  service_.CancelAll();
  service_.Add(StuckTask("cancelled"));
  ASSERT_TRUE(service_.WaitForReports(1, absl::Seconds(20)));
  const std::string error = service_.reports()[0].error();
  EXPECT_NE(error.find("CANCELLED: cancelled; the evaluator did not stop within 300ms"), std::string::npos)
      << error;
  service_.CancelAll(false);
  service_.Add(SyntheticTask("after", 0, 1));
  ASSERT_TRUE(service_.WaitForReports(2, absl::Seconds(20)));
  EXPECT_TRUE(service_.reports()[1].error().empty()) << service_.reports()[1].error();
}

TEST_F(StuckEvaluatorTest, StopWinsOverAStuckEvaluator) {
  service_.Add(StuckTask("stuck"));
  // Stall timeout 1 s is not reached: the stop comes first.
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  while (created_stuck_ == 0 && absl::Now() < deadline) absl::SleepFor(absl::Milliseconds(10));
  ASSERT_EQ(created_stuck_, 1);
  const absl::Time start = absl::Now();
  loop_->Stop();
  runner_.join();
  runner_ = std::thread([] {});
  EXPECT_LT(absl::Now() - start, absl::Seconds(5));
  EXPECT_EQ(loop_->abandoned(), 1);
  EXPECT_TRUE(service_.reports().empty());  // handed back through its lease
}

TEST(WorkerLoopNoControllerTest, UnreachableControllerIsRetriedUntilStop) {
  WorkerLoopOptions options;
  options.worker_id = "lonely";
  options.poll_wait = absl::Milliseconds(100);
  options.call_timeout = absl::Milliseconds(200);
  WorkerLoop loop(options, v1::TaskService::NewStub(grpc::CreateChannel(
                               "127.0.0.1:1", grpc::InsecureChannelCredentials())));
  EXPECT_FALSE(loop.RunOnce().ok());
  std::thread runner([&] { loop.Run(); });
  loop.Stop();
  runner.join();
  EXPECT_EQ(loop.tasks_done(), 0);
}

}  // namespace
}  // namespace nas::worker
