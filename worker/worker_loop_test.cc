// The worker loop against an in-process TaskService on 127.0.0.1 that hands
// out scripted tasks and records heartbeats and reports.
#include "worker/worker_loop.h"

#include <grpcpp/grpcpp.h>

#include <deque>
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
  void CancelAll() {
    absl::MutexLock lock(&mu_);
    cancel_ = true;
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
    reports_.push_back(*request);
    if (request->acquire_next() && !tasks_.empty()) {  // as the controller does: never waits
      *response->mutable_next_task() = tasks_.front();
      tasks_.pop_front();
    }
    return grpc::Status::OK;
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

 private:
  absl::Mutex mu_;
  std::deque<v1::Task> tasks_ ABSL_GUARDED_BY(mu_);
  std::vector<v1::ReportResultRequest> reports_ ABSL_GUARDED_BY(mu_);
  int heartbeats_ ABSL_GUARDED_BY(mu_) = 0;
  int epochs_ ABSL_GUARDED_BY(mu_) = 0;
  int acquires_ ABSL_GUARDED_BY(mu_) = 0;
  bool cancel_ ABSL_GUARDED_BY(mu_) = false;
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
