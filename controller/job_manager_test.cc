// The controller's services over real gRPC on 127.0.0.1 (in process), with
// an in-memory stand-in for the parameter servers and test workers that
// score architectures with a synthetic reward.
#include "controller/job_manager.h"

#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <atomic>
#include <functional>
#include <map>
#include <mutex>
#include <cstdlib>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/grpc_server.h"
#include "controller/ps_weights_client.h"
#include "controller/services.h"
#include "controller/store_faults.h"
#include "controller/trial_store.h"
#include "gtest/gtest.h"
#include "parameter_server/in_process_shards.h"
#include "prometheus/registry.h"
#include "proto/job_service.grpc.pb.h"
#include "proto/task_service.grpc.pb.h"

namespace nas::controller {
namespace {

// The fraction of layers with a 5x5 filter and 64 filters: a reward REINFORCE
// can learn and random search rarely maximises.
double SyntheticReward(const v1::Architecture& arch) {
  if (arch.has_cell()) {
    // Cells: the fraction of edges with a 3x3 convolution.
    const auto& ops = arch.cell().edge_operations();
    if (ops.empty()) return 0;
    return static_cast<double>(std::count(ops.begin(), ops.end(), "nor_conv_3x3")) / ops.size();
  }
  const auto& layers = arch.macro_cnn().layers();
  if (layers.empty()) return 0;
  int good = 0;
  for (const v1::MacroCnnLayer& layer : layers) {
    good += (layer.filter_height() == 5 && layer.filter_width() == 5 ? 1 : 0) +
            (layer.num_filters() == 64 ? 1 : 0);
  }
  return static_cast<double>(good) / (2.0 * layers.size());
}

class ControllerFixture : public ::testing::Test {
 protected:
  void SetUp() override { Start(); }
  void TearDown() override {
    SetDiskFull(false);
    Stop();
  }

  // Two real parameter-server shards over gRPC on 127.0.0.1, started once per
  // test (they outlive controller restarts within a test).
  void StartShards() {
    shards_ = ps::InProcessShards::Start(2).value();
    weights_ = CreatePsWeightsClient(shards_->addresses, absl::Seconds(5), 64 << 20).value();
  }

  int64_t ShardPushes() {
    int64_t pushes = 0;
    for (auto& shard : shards_->shards) {
      const v1::GetShardInfoResponse info = shard->Info();
      for (const v1::ShardJobInfo& job : info.jobs()) pushes += job.pushes();
    }
    return pushes;
  }

  void Start() {
    if (shards_ == nullptr) StartShards();
    TrialStoreOptions store_options;
    store_options.path = absl::StrCat(std::getenv("TEST_TMPDIR"), "/", test_name(), "/trials.db");
    store_options.sync_every_commit = false;
    RegisterFullDiskVfs();  // the disk fills only where a test says so
    store_options.vfs = kFullDiskVfs;
    auto store = TrialStore::Open(store_options);
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = std::move(store).value();
    JobManagerOptions options;
    options.store = store_.get();
    options.weights = weights_.get();
    options.lease_check_interval = absl::Milliseconds(50);
    options.max_running_jobs = max_running_jobs_;
    options.weights_retention = weights_retention_;
    options.metrics = &registry_;
    options.metrics_retention = metrics_retention_;
    auto manager = JobManager::Create(options);
    ASSERT_TRUE(manager.ok()) << manager.status();
    manager_ = std::move(manager).value();
    job_service_ = std::make_unique<JobServiceImpl>(manager_.get());
    task_service_ = std::make_unique<TaskServiceImpl>(manager_->trials());
    GrpcServerOptions server_options;
    server_options.host = "127.0.0.1";
    server_options.metrics_port = -1;
    auto server = GrpcServer::Create(server_options);
    ASSERT_TRUE(server.ok());
    server_ = std::move(server).value();
    ASSERT_TRUE(server_->Start({job_service_.get(), task_service_.get()}).ok());
    auto channel = grpc::CreateChannel(absl::StrCat("127.0.0.1:", server_->port()),
                                       grpc::InsecureChannelCredentials());
    jobs_ = v1::JobService::NewStub(channel);
    tasks_ = v1::TaskService::NewStub(channel);
  }

  void Stop() {
    StopWorkers();
    if (server_) server_->Shutdown(absl::Seconds(1));
    server_.reset();
    manager_.reset();
    store_.reset();
  }

  std::string test_name() const {
    return ::testing::UnitTest::GetInstance()->current_test_info()->name();
  }

  // Stops the controller once `reports` results came in, starts a new one on
  // the same store with `workers` workers; returns when the restart began (ms).
  int64_t RestartAfterReports(int reports, int workers) {
    while (reports_ < reports) absl::SleepFor(absl::Milliseconds(5));
    Stop();
    const int64_t restart_ms = absl::ToUnixMillis(absl::Now());
    reports_ = 0;
    Start();
    StartWorkers(workers);
    return restart_ms;
  }

  // Workers that acquire, score with SyntheticReward and report; the tasks
  // of every `fail_every`-th trial (by trial index; 1 = all, 0 = none) they
  // report as failed with `error` (permanently).
  void StartWorkers(int n, int fail_every = 0, const std::string& error = "",
                    std::function<void(const v1::Task&)> on_task = nullptr) {
    for (int i = 0; i < n; ++i) {
      workers_.emplace_back([this, i, fail_every, error, on_task] {
        const std::string id = absl::StrCat("test-worker-", i);
        while (!stop_workers_) {
          v1::AcquireTaskRequest request;
          request.set_worker_id(id);
          request.set_wait_seconds(0.5);
          v1::AcquireTaskResponse response;
          grpc::ClientContext context;
          context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(5)));
          if (!tasks_->AcquireTask(&context, request, &response).ok() || !response.has_task()) {
            continue;
          }
          if (on_task) on_task(response.task());
          // A one-shot job's final trial (no shared weights, trained from
          // scratch) left unreported: its lease runs out.
          if (hold_final_tasks_ && response.task().evaluator().has_train() &&
              !response.task().has_shared()) {
            ++held_final_tasks_;
            continue;
          }
          int64_t index = 0;
          ASSERT_TRUE(absl::SimpleAtoi(response.task().trial_id().substr(1), &index));
          v1::ReportResultRequest report;
          report.set_task_id(response.task().task_id());
          report.set_worker_id(id);
          if (fail_every > 0 && index % fail_every == 0) {
            report.set_error(error);
            report.set_permanent(true);
          } else {
            report.mutable_metrics()->set_reward(SyntheticReward(response.task().architecture()));
            report.mutable_metrics()->set_accuracy(report.metrics().reward());
          }
          v1::ReportResultResponse ack;
          grpc::ClientContext report_context;
          report_context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(5)));
          (void)tasks_->ReportResult(&report_context, report, &ack);
          ++reports_;
        }
      });
    }
  }

  void StopWorkers() {
    stop_workers_ = true;
    for (std::thread& t : workers_) t.join();
    workers_.clear();
    stop_workers_ = false;
  }

  grpc::Status Submit(const v1::JobSpec& spec, v1::Job* job) {
    v1::SubmitJobRequest request;
    *request.mutable_spec() = spec;
    v1::SubmitJobResponse response;
    grpc::ClientContext context;
    grpc::Status status = jobs_->SubmitJob(&context, request, &response);
    if (job != nullptr) *job = response.job();
    return status;
  }

  v1::Job WaitUntilDone(const std::string& job_id, absl::Duration timeout) {
    v1::WatchJobRequest request;
    request.set_job_id(job_id);
    request.set_status_interval_seconds(0.5);
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(absl::Now() + timeout));
    auto reader = jobs_->WatchJob(&context, request);
    v1::WatchJobEvent event;
    v1::Job last;
    while (reader->Read(&event)) {
      if (event.has_status()) last = event.status();
      if (event.has_trial()) watched_trials_.insert(event.trial().trial_id());
    }
    EXPECT_TRUE(reader->Finish().ok());
    return last;
  }

  std::vector<v1::Trial> AllTrials(const std::string& job_id, v1::ListTrialsRequest::Order order) {
    std::vector<v1::Trial> trials;
    std::string token;
    do {
      v1::ListTrialsRequest request;
      request.set_job_id(job_id);
      request.set_order(order);
      request.set_page_size(37);
      request.set_page_token(token);
      v1::ListTrialsResponse response;
      grpc::ClientContext context;
      EXPECT_TRUE(jobs_->ListTrials(&context, request, &response).ok());
      trials.insert(trials.end(), response.trials().begin(), response.trials().end());
      token = response.next_page_token();
    } while (!token.empty());
    return trials;
  }

  absl::StatusOr<v1::Job> GetJob(const std::string& job_id) {
    v1::GetJobRequest request;
    request.set_job_id(job_id);
    v1::Job job;
    grpc::ClientContext context;
    grpc::Status status = jobs_->GetJob(&context, request, &job);
    if (!status.ok()) return absl::Status(static_cast<absl::StatusCode>(status.error_code()),
                                          status.error_message());
    return job;
  }

  // Polls `condition` for up to `timeout`.
  template <typename F>
  bool Eventually(F condition, absl::Duration timeout = absl::Seconds(30)) {
    for (absl::Time deadline = absl::Now() + timeout; absl::Now() < deadline;) {
      if (condition()) return true;
      absl::SleepFor(absl::Milliseconds(10));
    }
    return condition();
  }

  std::string store_path() const {
    return absl::StrCat(std::getenv("TEST_TMPDIR"), "/", test_name(), "/trials.db");
  }

  // Whether shard `s` holds `job_id`.
  bool ShardHolds(int s, const std::string& job_id) {
    const v1::GetShardInfoResponse info = shards_->shards[s]->Info();
    for (const v1::ShardJobInfo& job : info.jobs()) {
      if (job.job_id() == job_id) return true;
    }
    return false;
  }

  // Series labelled job_id in registry_: {job_id -> series}.
  std::map<std::string, int> JobSeries() {
    std::map<std::string, int> series;
    for (const prometheus::MetricFamily& family : registry_.Collect()) {
      for (const prometheus::ClientMetric& metric : family.metric) {
        for (const prometheus::ClientMetric::Label& label : metric.label) {
          if (label.name == "job_id") ++series[label.value];
        }
      }
    }
    return series;
  }

  int max_running_jobs_ = 16;
  absl::Duration weights_retention_ = absl::Hours(1);
  absl::Duration metrics_retention_ = absl::Minutes(2);
  prometheus::Registry registry_;
  std::unique_ptr<ps::InProcessShards> shards_;
  std::unique_ptr<WeightsClient> weights_;
  std::unique_ptr<TrialStore> store_;
  std::unique_ptr<JobManager> manager_;
  std::unique_ptr<JobServiceImpl> job_service_;
  std::unique_ptr<TaskServiceImpl> task_service_;
  std::unique_ptr<GrpcServer> server_;
  std::unique_ptr<v1::JobService::Stub> jobs_;
  std::unique_ptr<v1::TaskService::Stub> tasks_;
  std::vector<std::thread> workers_;
  std::atomic<bool> stop_workers_{false};
  std::atomic<int> reports_{0};
  std::atomic<bool> hold_final_tasks_{false};
  std::atomic<int> held_final_tasks_{0};
  std::set<std::string> watched_trials_;
};

v1::JobSpec MacroSpec(int max_trials) {
  v1::JobSpec spec;
  spec.set_name("test");
  v1::MacroCnnSpace* space = spec.mutable_search_space()->mutable_macro_cnn();
  for (int v : {1, 3, 5, 7}) space->add_filter_heights(v);
  for (int v : {1, 3, 5, 7}) space->add_filter_widths(v);
  for (int v : {24, 36, 48, 64}) space->add_num_filters(v);
  space->set_skip_connections(true);
  space->mutable_depth()->set_initial_layers(4);
  space->mutable_depth()->set_max_layers(4);
  spec.mutable_strategy()->set_name("reinforce");
  spec.mutable_strategy()->set_seed(5);
  spec.mutable_controller()->set_learning_rate(0.05);
  spec.mutable_controller()->set_optimizer("sgd");
  spec.mutable_parallelism()->set_num_shards(2);
  spec.mutable_parallelism()->set_num_replicas(4);
  spec.mutable_parallelism()->set_children_per_replica(2);
  spec.mutable_budget()->set_max_trials(max_trials);
  spec.mutable_evaluator()->mutable_synthetic();
  spec.mutable_evaluator()->set_lease_seconds(5);
  return spec;
}

TEST_F(ControllerFixture, JobRunsToItsBudgetStoresEveryTrialOnceAndLearns) {
  StartWorkers(4);
  v1::Job job;
  ASSERT_TRUE(Submit(MacroSpec(600), &job).ok());
  v1::Job done = WaitUntilDone(job.job_id(), absl::Minutes(3));
  EXPECT_EQ(done.state(), v1::JOB_STATE_SUCCEEDED);
  std::vector<v1::Trial> trials = AllTrials(job.job_id(), v1::ListTrialsRequest::ORDER_TIME);
  // 600 evaluations; the samples of architectures evaluated before are cache hits.
  int64_t evaluations = 0;
  for (const v1::Trial& t : trials) evaluations += t.cached_from().empty() ? 1 : 0;
  EXPECT_EQ(evaluations, 600);
  EXPECT_EQ(reports_, 600);
  EXPECT_EQ(done.trials_succeeded(), static_cast<int64_t>(trials.size()));
  EXPECT_EQ(done.samples(), static_cast<int64_t>(trials.size()));
  EXPECT_EQ(done.cache_hits(), static_cast<int64_t>(trials.size()) - 600);
  std::set<std::string> ids;
  for (const v1::Trial& t : trials) ids.insert(t.trial_id());
  EXPECT_EQ(ids.size(), trials.size());
  EXPECT_EQ(watched_trials_.size(), trials.size());
  // Every round of every replica pushed a gradient to both shards.
  int64_t rounds = 0;
  const std::vector<int64_t> last_rounds = store_->LastRounds(job.job_id(), 4).value();
  for (int64_t last : last_rounds) rounds += last + 1;
  EXPECT_EQ(ShardPushes(), 2 * rounds);
  double first = 0, last = 0;
  for (int i = 0; i < 100; ++i) {
    first += trials[i].metrics().reward() / 100;
    last += trials[trials.size() - 1 - i].metrics().reward() / 100;
  }
  EXPECT_GT(last, first + 0.1) << "first 100 mean " << first << ", last 100 mean " << last;
}

TEST_F(ControllerFixture, ASmallSpaceSpendsNoWorkerRunOnRepeatsAndEndsAtMaxSamples) {
  // 4 architectures: REINFORCE repeats them from its first rounds on.
  std::mutex mu;
  std::map<std::string, int> evaluated;
  StartWorkers(3, 0, "", [&](const v1::Task& task) {
    std::lock_guard<std::mutex> lock(mu);
    ++evaluated[task.architecture().canonical()];
  });
  v1::JobSpec spec = MacroSpec(10);
  v1::MacroCnnSpace* space = spec.mutable_search_space()->mutable_macro_cnn();
  space->clear_filter_widths();
  space->add_filter_widths(3);
  space->clear_num_filters();
  space->add_num_filters(24);
  space->clear_filter_heights();
  space->add_filter_heights(3);
  space->add_filter_heights(5);
  space->set_skip_connections(false);
  space->mutable_depth()->set_initial_layers(2);
  space->mutable_depth()->set_max_layers(2);
  v1::Job job;
  ASSERT_TRUE(Submit(spec, &job).ok());
  EXPECT_EQ(job.spec().budget().max_samples(), 100) << "the default: 10 per evaluation";
  v1::Job done = WaitUntilDone(job.job_id(), absl::Minutes(2));
  EXPECT_EQ(done.state(), v1::JOB_STATE_SUCCEEDED);
  EXPECT_EQ(done.samples(), 100);
  EXPECT_EQ(done.trials_succeeded(), 100);
  {
    std::lock_guard<std::mutex> lock(mu);
    EXPECT_LE(evaluated.size(), 4u);
    for (const auto& [canonical, runs] : evaluated) EXPECT_EQ(runs, 1) << canonical;
    EXPECT_EQ(done.cache_hits(), 100 - static_cast<int64_t>(evaluated.size()));
  }
  std::vector<v1::Trial> trials = AllTrials(job.job_id(), v1::ListTrialsRequest::ORDER_TIME);
  ASSERT_EQ(trials.size(), 100u);
  std::map<std::string, std::string> evaluation_of;
  for (const v1::Trial& t : trials) {
    if (t.cached_from().empty()) evaluation_of[t.architecture().canonical()] = t.trial_id();
  }
  for (const v1::Trial& t : trials) {
    if (t.cached_from().empty()) continue;
    EXPECT_EQ(t.cached_from(), evaluation_of[t.architecture().canonical()]) << t.trial_id();
    EXPECT_DOUBLE_EQ(t.metrics().reward(), SyntheticReward(t.architecture())) << t.trial_id();
  }
}

TEST_F(ControllerFixture, DuplicateReportIsAcknowledgedAndIgnored) {
  v1::JobSpec spec = MacroSpec(2);
  spec.mutable_parallelism()->set_num_replicas(1);
  v1::Job job;
  ASSERT_TRUE(Submit(spec, &job).ok());
  v1::AcquireTaskRequest acquire;
  acquire.set_worker_id("w");
  acquire.set_wait_seconds(5);
  v1::AcquireTaskResponse task;
  {
    grpc::ClientContext context;
    ASSERT_TRUE(tasks_->AcquireTask(&context, acquire, &task).ok());
  }
  ASSERT_TRUE(task.has_task());
  v1::ReportResultRequest report;
  report.set_task_id(task.task().task_id());
  report.set_worker_id("w");
  report.mutable_metrics()->set_reward(0.25);
  for (int i = 0; i < 2; ++i) {
    v1::ReportResultResponse ack;
    grpc::ClientContext context;
    ASSERT_TRUE(tasks_->ReportResult(&context, report, &ack).ok());
    EXPECT_EQ(ack.duplicate(), i == 1);
  }
  report.mutable_metrics()->set_reward(0.99);
  v1::ReportResultResponse ack;
  grpc::ClientContext context;
  ASSERT_TRUE(tasks_->ReportResult(&context, report, &ack).ok());
  EXPECT_TRUE(ack.duplicate());
  auto stored = store_->GetTrial(job.job_id(), task.task().trial_id());
  ASSERT_TRUE(stored.ok());
  EXPECT_DOUBLE_EQ(stored->metrics().reward(), 0.25);
  auto counts = store_->CountTrials(job.job_id());
  ASSERT_TRUE(counts.ok());
  EXPECT_EQ(counts->succeeded, 1);
}

TEST_F(ControllerFixture, VanishedWorkersTaskIsRequeuedAfterItsLease) {
  v1::JobSpec spec = MacroSpec(1);
  spec.mutable_parallelism()->set_num_replicas(1);
  spec.mutable_parallelism()->set_children_per_replica(1);
  spec.mutable_evaluator()->set_lease_seconds(1);
  v1::Job job;
  ASSERT_TRUE(Submit(spec, &job).ok());
  v1::AcquireTaskRequest acquire;
  acquire.set_worker_id("vanishing");
  acquire.set_wait_seconds(5);
  v1::AcquireTaskResponse first;
  {
    grpc::ClientContext context;
    ASSERT_TRUE(tasks_->AcquireTask(&context, acquire, &first).ok());
  }
  ASSERT_TRUE(first.has_task());
  EXPECT_EQ(first.task().attempt(), 1);
  // The worker never heartbeats; another one asks and waits past the lease.
  acquire.set_worker_id("survivor");
  v1::AcquireTaskResponse second;
  {
    grpc::ClientContext context;
    ASSERT_TRUE(tasks_->AcquireTask(&context, acquire, &second).ok());
  }
  ASSERT_TRUE(second.has_task());
  EXPECT_EQ(second.task().trial_id(), first.task().trial_id());
  EXPECT_EQ(second.task().attempt(), 2);
  // The vanished worker's heartbeat now finds no lease.
  v1::HeartbeatRequest heartbeat;
  heartbeat.set_task_id(first.task().task_id());
  heartbeat.set_worker_id("vanishing");
  v1::HeartbeatResponse answer;
  grpc::ClientContext context;
  EXPECT_EQ(tasks_->Heartbeat(&context, heartbeat, &answer).error_code(),
            grpc::StatusCode::FAILED_PRECONDITION);
}

TEST_F(ControllerFixture, TrialFailingEveryAttemptIsRecordedFailedWithItsError) {
  v1::JobSpec spec = MacroSpec(1);
  spec.mutable_parallelism()->set_num_replicas(1);
  spec.mutable_parallelism()->set_children_per_replica(1);
  spec.mutable_evaluator()->set_max_attempts(2);
  v1::Job job;
  ASSERT_TRUE(Submit(spec, &job).ok());
  for (int attempt = 1; attempt <= 2; ++attempt) {
    v1::AcquireTaskRequest acquire;
    acquire.set_worker_id("w");
    acquire.set_wait_seconds(5);
    v1::AcquireTaskResponse task;
    grpc::ClientContext context;
    ASSERT_TRUE(tasks_->AcquireTask(&context, acquire, &task).ok());
    ASSERT_TRUE(task.has_task());
    EXPECT_EQ(task.task().attempt(), attempt);
    v1::ReportResultRequest report;
    report.set_task_id(task.task().task_id());
    report.set_worker_id("w");
    report.set_error("CUDA out of memory");
    v1::ReportResultResponse ack;
    grpc::ClientContext report_context;
    ASSERT_TRUE(tasks_->ReportResult(&report_context, report, &ack).ok());
  }
  v1::Job done = WaitUntilDone(job.job_id(), absl::Seconds(30));
  // Its only trial failed: the job did not succeed.
  EXPECT_EQ(done.state(), v1::JOB_STATE_FAILED);
  EXPECT_NE(done.error().find("CUDA out of memory"), std::string::npos) << done.error();
  EXPECT_EQ(done.trials_failed(), 1);
  std::vector<v1::Trial> trials = AllTrials(job.job_id(), v1::ListTrialsRequest::ORDER_TIME);
  ASSERT_EQ(trials.size(), 1u);
  EXPECT_EQ(trials[0].state(), v1::TRIAL_STATE_FAILED);
  EXPECT_NE(trials[0].error().find("CUDA out of memory"), std::string::npos);
  EXPECT_EQ(trials[0].attempts(), 2);
}

TEST_F(ControllerFixture, JobWhoseTrialsKeepFailingEndsFailedWithTheirErrorEarly) {
  StartWorkers(2, /*fail_every=*/1, "lookup table /data/t.csv: no such file");
  v1::Job job;
  ASSERT_TRUE(Submit(MacroSpec(1000), &job).ok());
  v1::Job done = WaitUntilDone(job.job_id(), absl::Minutes(1));
  EXPECT_EQ(done.state(), v1::JOB_STATE_FAILED);
  EXPECT_NE(done.error().find("budget.max_failed_fraction"), std::string::npos) << done.error();
  EXPECT_NE(done.error().find("lookup table /data/t.csv: no such file"), std::string::npos)
      << done.error();
  // Judged at the 10th finished trial: at most the K*m = 8 in flight then
  // finish after it, not the 1,000 of the budget.
  EXPECT_GE(done.trials_failed(), 10);
  EXPECT_LE(done.samples(), 10 + 8);
}

TEST_F(ControllerFixture, FailedTrialsBelowTheFractionDoNotFailTheJob) {
  // Every third trial fails: a third is below the default 0.5.
  StartWorkers(2, /*fail_every=*/3, "flaky");
  v1::Job job;
  ASSERT_TRUE(Submit(MacroSpec(40), &job).ok());
  v1::Job done = WaitUntilDone(job.job_id(), absl::Minutes(1));
  EXPECT_EQ(done.state(), v1::JOB_STATE_SUCCEEDED) << done.error();
  EXPECT_EQ(done.trials_failed(), 14);  // t000000, t000003, ..., t000039
  EXPECT_EQ(done.trials_succeeded(), 26);
}

TEST_F(ControllerFixture, AFractionOfOneNeverFailsTheJob) {
  v1::JobSpec spec = MacroSpec(12);
  spec.mutable_budget()->set_max_failed_fraction(1);
  StartWorkers(2, /*fail_every=*/1, "always");
  v1::Job job;
  ASSERT_TRUE(Submit(spec, &job).ok());
  v1::Job done = WaitUntilDone(job.job_id(), absl::Minutes(1));
  EXPECT_EQ(done.state(), v1::JOB_STATE_SUCCEEDED) << done.error();
  EXPECT_EQ(done.trials_failed(), 12);
}

TEST_F(ControllerFixture, FiftyConcurrentSubmitsNeverExceedTheRunningJobsLimit) {
  Stop();
  max_running_jobs_ = 16;
  Start();
  std::atomic<int> accepted{0}, refused{0}, other{0};
  std::vector<std::thread> submitters;
  for (int i = 0; i < 50; ++i) {
    submitters.emplace_back([&] {
      grpc::Status status = Submit(MacroSpec(1000), nullptr);
      if (status.ok()) {
        ++accepted;
      } else if (status.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED) {
        ++refused;
      } else {
        ++other;
      }
    });
  }
  for (std::thread& t : submitters) t.join();
  EXPECT_EQ(accepted, 16);
  EXPECT_EQ(refused, 34);
  EXPECT_EQ(other, 0);
}

TEST_F(ControllerFixture, ShardThatLosesARunningJobIsReinitialisedFromTheLastTheta) {
  StartWorkers(2);
  v1::Job job;
  ASSERT_TRUE(Submit(MacroSpec(300), &job).ok());
  while (reports_ < 60) absl::SleepFor(absl::Milliseconds(5));
  // Shard 1 loses the job's tensors (say, its volume was replaced).
  ASSERT_TRUE(shards_->shards[1]->DropJob(job.job_id()).ok());
  v1::Job done = WaitUntilDone(job.job_id(), absl::Minutes(2));
  EXPECT_EQ(done.state(), v1::JOB_STATE_SUCCEEDED) << done.error();
  EXPECT_EQ(done.trials_succeeded(), 300);
  EXPECT_TRUE(ShardHolds(0, job.job_id()));
  EXPECT_TRUE(ShardHolds(1, job.job_id()));
}

TEST_F(ControllerFixture, RestartAfterAShardLostTheJobFailsItNamingTheShard) {
  StartWorkers(2);
  v1::Job job;
  ASSERT_TRUE(Submit(MacroSpec(300), &job).ok());
  while (reports_ < 30) absl::SleepFor(absl::Milliseconds(5));
  Stop();
  ASSERT_TRUE(shards_->shards[1]->DropJob(job.job_id()).ok());
  Start();
  v1::Job done = WaitUntilDone(job.job_id(), absl::Minutes(1));
  EXPECT_EQ(done.state(), v1::JOB_STATE_FAILED);
  EXPECT_NE(done.error().find("shard 1"), std::string::npos) << done.error();
  // Never fresh random weights in place of the lost ones.
  EXPECT_FALSE(ShardHolds(1, job.job_id()));
}

TEST_F(ControllerFixture, EndedJobsTensorsAreDroppedFromEveryShardAfterTheRetention) {
  Stop();
  weights_retention_ = absl::Seconds(1);
  Start();
  StartWorkers(2);
  v1::Job job;
  ASSERT_TRUE(Submit(MacroSpec(20), &job).ok());
  v1::Job done = WaitUntilDone(job.job_id(), absl::Minutes(1));
  ASSERT_EQ(done.state(), v1::JOB_STATE_SUCCEEDED);
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  while ((ShardHolds(0, job.job_id()) || ShardHolds(1, job.job_id())) && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(20));
  }
  EXPECT_FALSE(ShardHolds(0, job.job_id()));
  EXPECT_FALSE(ShardHolds(1, job.job_id()));
}

// Per-job series exist while a job runs and go a retention after it ends: over
// 100 jobs the registry never holds more than the running jobs' series.
TEST_F(ControllerFixture, PerJobSeriesAreRemovedWhenJobsEndSoCardinalityStaysBounded) {
  Stop();
  metrics_retention_ = absl::ZeroDuration();
  Start();
  StartWorkers(4);
  constexpr int kJobs = 100;
  constexpr int kAtOnce = 10;
  for (int first = 0; first < kJobs; first += kAtOnce) {
    std::vector<std::string> ids;
    for (int i = 0; i < kAtOnce; ++i) {
      v1::JobSpec spec = MacroSpec(4);
      spec.mutable_parallelism()->set_num_replicas(2);
      v1::Job job;
      ASSERT_TRUE(Submit(spec, &job).ok());
      ids.push_back(job.job_id());
    }
    for (const std::string& id : ids) {
      ASSERT_EQ(WaitUntilDone(id, absl::Minutes(1)).state(), v1::JOB_STATE_SUCCEEDED);
    }
    // The ended batch's series go within a maintenance pass (2 s), so the
    // registry never holds more than one batch of jobs; without the removal
    // it would hold all of them.
    const absl::Time deadline = absl::Now() + absl::Seconds(15);
    while (!JobSeries().empty() && absl::Now() < deadline) absl::SleepFor(absl::Milliseconds(50));
    ASSERT_EQ(JobSeries().size(), 0u) << "after job " << first + kAtOnce;
  }
  // The job-less series stay.
  bool leases_family = false;
  for (const prometheus::MetricFamily& family : registry_.Collect()) {
    leases_family = leases_family || family.name == "nas_controller_leases_expired_total";
  }
  EXPECT_TRUE(leases_family);
}

TEST_F(ControllerFixture, ARunningJobExportsOneSeriesPerQuantity) {
  StartWorkers(2);
  v1::Job job;
  ASSERT_TRUE(Submit(MacroSpec(1000), &job).ok());
  std::set<std::string> names;
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  while (absl::Now() < deadline) {
    names.clear();
    for (const prometheus::MetricFamily& family : registry_.Collect()) {
      for (const prometheus::ClientMetric& metric : family.metric) {
        for (const prometheus::ClientMetric::Label& label : metric.label) {
          if (label.name == "job_id" && label.value == job.job_id()) names.insert(family.name);
        }
      }
    }
    if (names.size() >= 13) break;
    absl::SleepFor(absl::Milliseconds(50));
  }
  EXPECT_EQ(names, (std::set<std::string>{
                       "nas_controller_trials_total", "nas_controller_samples_total",
                       "nas_controller_gradient_pushes_total", "nas_controller_job_best_reward",
                       "nas_controller_job_mean_reward", "nas_controller_job_baseline_reward",
                       "nas_controller_job_policy_entropy", "nas_controller_job_trials",
                       "nas_controller_job_budget_used_ratio",
                       "nas_controller_job_last_progress_timestamp_seconds",
                       "nas_controller_job_worker_seconds_total",
                       "nas_controller_job_epochs_trained_total",
                       "nas_controller_job_epochs_saved_total"}));
  v1::CancelJobRequest request;
  request.set_job_id(job.job_id());
  v1::Job response;
  grpc::ClientContext context;
  ASSERT_TRUE(jobs_->CancelJob(&context, request, &response).ok());
  // The default retention (2 minutes) keeps them after the end.
  EXPECT_FALSE(JobSeries().empty());
}

TEST_F(ControllerFixture, CancelStopsTheJobAndTheNextHeartbeatSaysCancel) {
  v1::JobSpec spec = MacroSpec(1000);
  v1::Job job;
  ASSERT_TRUE(Submit(spec, &job).ok());
  v1::AcquireTaskRequest acquire;
  acquire.set_worker_id("w");
  acquire.set_wait_seconds(5);
  v1::AcquireTaskResponse task;
  {
    grpc::ClientContext context;
    ASSERT_TRUE(tasks_->AcquireTask(&context, acquire, &task).ok());
  }
  ASSERT_TRUE(task.has_task());
  v1::HeartbeatRequest heartbeat;
  heartbeat.set_task_id(task.task().task_id());
  heartbeat.set_worker_id("w");
  {
    v1::HeartbeatResponse answer;
    grpc::ClientContext context;
    ASSERT_TRUE(tasks_->Heartbeat(&context, heartbeat, &answer).ok());
    EXPECT_FALSE(answer.cancel());
  }
  {
    v1::CancelJobRequest cancel;
    cancel.set_job_id(job.job_id());
    v1::Job cancelled;
    grpc::ClientContext context;
    ASSERT_TRUE(jobs_->CancelJob(&context, cancel, &cancelled).ok());
    EXPECT_EQ(cancelled.state(), v1::JOB_STATE_CANCELLED);
  }
  {
    v1::HeartbeatResponse answer;
    grpc::ClientContext context;
    ASSERT_TRUE(tasks_->Heartbeat(&context, heartbeat, &answer).ok());
    EXPECT_TRUE(answer.cancel());
  }
  // The result of the running trial is still kept.
  v1::ReportResultRequest report;
  report.set_task_id(task.task().task_id());
  report.set_worker_id("w");
  report.mutable_metrics()->set_reward(0.5);
  v1::ReportResultResponse ack;
  grpc::ClientContext context;
  ASSERT_TRUE(tasks_->ReportResult(&context, report, &ack).ok());
  auto stored = store_->GetTrial(job.job_id(), task.task().trial_id());
  ASSERT_TRUE(stored.ok());
  EXPECT_EQ(stored->state(), v1::TRIAL_STATE_SUCCEEDED);
  // No more tasks are handed out, and cancelling again is refused.
  acquire.set_wait_seconds(0.3);
  v1::AcquireTaskResponse none;
  grpc::ClientContext acquire_context;
  ASSERT_TRUE(tasks_->AcquireTask(&acquire_context, acquire, &none).ok());
  EXPECT_FALSE(none.has_task());
  v1::CancelJobRequest again;
  again.set_job_id(job.job_id());
  v1::Job unused;
  grpc::ClientContext again_context;
  EXPECT_EQ(jobs_->CancelJob(&again_context, again, &unused).error_code(),
            grpc::StatusCode::FAILED_PRECONDITION);
}

TEST_F(ControllerFixture, RestartResumesRunningJobWithoutLosingOrRepeatingTrials) {
  StartWorkers(2);
  v1::Job job;
  v1::JobSpec spec = MacroSpec(200);
  spec.mutable_budget()->set_max_samples(200);
  ASSERT_TRUE(Submit(spec, &job).ok());
  // Let part of the budget run, then stop the controller mid-job.
  while (reports_ < 60) absl::SleepFor(absl::Milliseconds(5));
  Stop();
  reports_ = 0;
  Start();
  StartWorkers(2);
  v1::Job done = WaitUntilDone(job.job_id(), absl::Minutes(2));
  EXPECT_EQ(done.state(), v1::JOB_STATE_SUCCEEDED);
  std::vector<v1::Trial> trials = AllTrials(job.job_id(), v1::ListTrialsRequest::ORDER_TIME);
  std::set<std::string> ids;
  std::map<std::string, int> evaluations;  // by canonical
  int finished = 0;
  for (const v1::Trial& t : trials) {
    ids.insert(t.trial_id());
    finished += t.state() == v1::TRIAL_STATE_SUCCEEDED ? 1 : 0;
    if (t.cached_from().empty()) ++evaluations[t.architecture().canonical()];
  }
  EXPECT_EQ(ids.size(), trials.size());
  EXPECT_EQ(trials.size(), 200u);
  EXPECT_EQ(finished, 200);
  // The result cache survived the restart: no architecture was evaluated twice.
  for (const auto& [canonical, n] : evaluations) EXPECT_EQ(n, 1) << canonical;
}

// A restarted job's replicas continue their random streams instead of
// starting them again: random search in a space of millions of
// architectures draws no architecture twice across a restart. (With each
// replica re-seeded as at the job's start, its first rounds after the
// restart redrew the samples of its first rounds before it: cache hits that
// wasted samples.)
TEST_F(ControllerFixture, RestartedReplicasContinueTheirStreamsAndRedrawNothing) {
  StartWorkers(2);
  v1::JobSpec spec = MacroSpec(120);
  spec.mutable_strategy()->set_name("random");
  spec.clear_controller();
  spec.mutable_parallelism()->clear_num_shards();
  spec.mutable_budget()->set_max_samples(120);
  v1::Job job;
  ASSERT_TRUE(Submit(spec, &job).ok());
  const int64_t restart_ms = RestartAfterReports(40, 2);
  v1::Job done = WaitUntilDone(job.job_id(), absl::Minutes(2));
  ASSERT_EQ(done.state(), v1::JOB_STATE_SUCCEEDED) << done.error();
  std::vector<v1::Trial> trials = AllTrials(job.job_id(), v1::ListTrialsRequest::ORDER_TIME);
  ASSERT_EQ(trials.size(), 120u);
  std::set<std::string> canonicals;
  int sampled_after_restart = 0;
  for (const v1::Trial& t : trials) {
    canonicals.insert(t.architecture().canonical());
    EXPECT_TRUE(t.cached_from().empty()) << t.trial_id() << " redrew " << t.cached_from();
    sampled_after_restart += t.create_time_unix_ms() >= restart_ms ? 1 : 0;
  }
  EXPECT_GE(sampled_after_restart, 8) << "every replica sampled after the restart";
  EXPECT_EQ(canonicals.size(), 120u);
  EXPECT_EQ(done.cache_hits(), 0);
}

// Cross-job reuse survives a restart: the shared results are reloaded from
// the store, so a job submitted after it is answered by the earlier job's
// evaluations without a worker run.
TEST_F(ControllerFixture, SharedResultsOfAnEndedJobAnswerANewJobAfterARestart) {
  v1::JobSpec spec = MacroSpec(4);
  spec.mutable_strategy()->set_name("random");
  spec.clear_controller();
  spec.mutable_parallelism()->clear_num_shards();
  spec.mutable_parallelism()->set_num_replicas(1);
  v1::MacroCnnSpace* space = spec.mutable_search_space()->mutable_macro_cnn();
  space->clear_filter_heights();
  space->add_filter_heights(3);
  space->add_filter_heights(5);
  space->clear_filter_widths();
  space->add_filter_widths(3);
  space->clear_num_filters();
  space->add_num_filters(24);
  space->set_skip_connections(false);
  space->mutable_depth()->set_initial_layers(2);
  space->mutable_depth()->set_max_layers(2);  // 4 architectures
  spec.mutable_budget()->set_max_samples(60);
  spec.mutable_evaluator()->set_reuse_results(true);
  StartWorkers(2);
  v1::Job first;
  ASSERT_TRUE(Submit(spec, &first).ok());
  v1::Job done = WaitUntilDone(first.job_id(), absl::Minutes(1));
  ASSERT_EQ(done.state(), v1::JOB_STATE_SUCCEEDED) << done.error();
  std::set<std::string> evaluations;  // "trial canonical" of the first job's worker runs
  for (const v1::Trial& t : AllTrials(first.job_id(), v1::ListTrialsRequest::ORDER_TIME)) {
    if (t.cached_from().empty()) evaluations.insert(t.trial_id() + " " + t.architecture().canonical());
  }
  ASSERT_EQ(evaluations.size(), 4u) << "the first job evaluated every architecture";
  Stop();
  Start();
  StartWorkers(2);
  const int reports_before = reports_;
  spec.mutable_strategy()->set_seed(11);
  spec.mutable_evaluator()->set_lease_seconds(30);  // not in the fingerprint
  v1::Job second;
  ASSERT_TRUE(Submit(spec, &second).ok());
  done = WaitUntilDone(second.job_id(), absl::Minutes(1));
  ASSERT_EQ(done.state(), v1::JOB_STATE_SUCCEEDED) << done.error();
  const std::vector<v1::Trial> trials =
      AllTrials(second.job_id(), v1::ListTrialsRequest::ORDER_TIME);
  ASSERT_EQ(trials.size(), 60u);
  for (const v1::Trial& t : trials) {
    EXPECT_EQ(t.state(), v1::TRIAL_STATE_SUCCEEDED) << t.trial_id() << " " << t.error();
    EXPECT_EQ(t.cached_from_job(), first.job_id()) << t.trial_id();
    EXPECT_TRUE(evaluations.count(t.cached_from() + " " + t.architecture().canonical()))
        << t.trial_id() << " names " << t.cached_from();
    EXPECT_EQ(t.metrics().reward(), SyntheticReward(t.architecture())) << t.trial_id();
    EXPECT_TRUE(t.worker_id().empty()) << t.trial_id();
  }
  EXPECT_EQ(done.cache_hits(), 60);
  EXPECT_EQ(done.worker_seconds(), 0);
  EXPECT_EQ(reports_ - reports_before, 0) << "no worker ran a trial of the second job";
}

v1::JobSpec EvolutionSpec(int max_trials) {
  v1::JobSpec spec = MacroSpec(max_trials);
  spec.mutable_strategy()->set_name("evolution");
  spec.mutable_strategy()->set_population_size(10);
  spec.mutable_strategy()->set_tournament_size(3);
  spec.clear_controller();
  spec.mutable_parallelism()->clear_num_shards();
  return spec;
}

int TokenDistance(const v1::Architecture& a, const v1::Architecture& b) {
  if (a.tokens_size() != b.tokens_size()) return 1 << 20;
  int d = 0;
  for (int t = 0; t < a.tokens_size(); ++t) d += a.tokens(t) != b.tokens(t) ? 1 : 0;
  return d;
}

// How many of `children` are not one decision away from any other trial of
// `trials` (a mutation's parent is always an earlier trial of the job).
int NotMutations(const std::vector<v1::Trial>& children, const std::vector<v1::Trial>& trials) {
  int not_mutations = 0;
  for (const v1::Trial& child : children) {
    bool found = false;
    for (const v1::Trial& other : trials) {
      found = found || TokenDistance(child.architecture(), other.architecture()) == 1;
    }
    not_mutations += found ? 0 : 1;
  }
  return not_mutations;
}

// Evolution through the real JobManager: K·m = 4·2 loops of one child, the
// whole budget once, no architecture twice, and past the random initial
// population every child a mutation of an earlier one.
TEST_F(ControllerFixture, EvolutionJobRunsToItsBudgetWithKTimesMLoopsAndMutatedChildren) {
  StartWorkers(3);
  v1::Job job;
  ASSERT_TRUE(Submit(EvolutionSpec(60), &job).ok());
  v1::Job done = WaitUntilDone(job.job_id(), absl::Minutes(2));
  EXPECT_EQ(done.state(), v1::JOB_STATE_SUCCEEDED) << done.error();
  std::vector<v1::Trial> trials = AllTrials(job.job_id(), v1::ListTrialsRequest::ORDER_TIME);
  ASSERT_EQ(trials.size(), 60u);
  std::set<std::string> canonicals;
  std::set<int> loops;
  std::vector<v1::Trial> children;
  for (const v1::Trial& t : trials) {
    EXPECT_EQ(t.state(), v1::TRIAL_STATE_SUCCEEDED);
    canonicals.insert(t.architecture().canonical());
    loops.insert(t.replica());
    int64_t index = 0;
    ASSERT_TRUE(absl::SimpleAtoi(t.trial_id().substr(1), &index));
    if (index >= 10) children.push_back(t);
  }
  EXPECT_EQ(canonicals.size(), 60u);
  EXPECT_EQ(loops, (std::set<int>{0, 1, 2, 3, 4, 5, 6, 7}));
  EXPECT_EQ(children.size(), 50u);
  EXPECT_EQ(NotMutations(children, trials), 0);
}

// After a restart the population is rebuilt from the trial store: children
// sampled by the new process have parents that finished before the restart.
// (Without the rebuild every parent would be a trial finished after it: the
// children the new process took over, or its own.)
TEST_F(ControllerFixture, RestartRebuildsTheEvolutionPopulationFromTheTrialStore) {
  StartWorkers(2);
  v1::Job job;
  ASSERT_TRUE(Submit(EvolutionSpec(100), &job).ok());
  const int64_t restart_ms = RestartAfterReports(40, 2);
  v1::Job done = WaitUntilDone(job.job_id(), absl::Minutes(2));
  EXPECT_EQ(done.state(), v1::JOB_STATE_SUCCEEDED) << done.error();
  std::vector<v1::Trial> trials = AllTrials(job.job_id(), v1::ListTrialsRequest::ORDER_TIME);
  // max_trials counts evaluations. A child the new process draws while the
  // same architecture is still in flight from before the restart is a cache
  // hit (answered by that evaluation, never run twice) and is a trial too.
  int evaluations = 0;
  std::set<std::string> evaluated;
  for (const v1::Trial& t : trials) {
    if (!t.cached_from().empty()) continue;
    ++evaluations;
    EXPECT_TRUE(evaluated.insert(t.architecture().canonical()).second) << t.trial_id() << " ran twice";
  }
  EXPECT_EQ(evaluations, 100);
  std::vector<v1::Trial> before, after;  // finished before the restart; sampled after it
  for (const v1::Trial& t : trials) {
    if (t.end_time_unix_ms() < restart_ms) before.push_back(t);
    if (t.create_time_unix_ms() >= restart_ms) after.push_back(t);
  }
  ASSERT_GT(after.size(), 4u);
  int children_of_restored_members = 0;
  for (const v1::Trial& child : after) {
    bool restored_parent = false, later_parent = false;
    for (const v1::Trial& parent : before) {
      restored_parent |= TokenDistance(child.architecture(), parent.architecture()) == 1;
    }
    for (const v1::Trial& parent : trials) {
      later_parent |= parent.end_time_unix_ms() >= restart_ms &&
                      parent.end_time_unix_ms() <= child.create_time_unix_ms() &&
                      TokenDistance(child.architecture(), parent.architecture()) == 1;
    }
    children_of_restored_members += restored_parent && !later_parent ? 1 : 0;
  }
  EXPECT_GT(children_of_restored_members, 0);
  EXPECT_EQ(NotMutations(after, trials), 0);
}

TEST_F(ControllerFixture, AJobOnAFullDiskContinuesByItselfOnceThereIsSpace) {
  StartWorkers(4);
  v1::Job job;
  ASSERT_TRUE(Submit(MacroSpec(120), &job).ok());
  ASSERT_TRUE(Eventually([&] { return reports_ >= 20; }));
  SetDiskFull(true);
  // Writes are refused naming the store; reads are served.
  grpc::Status refused = Submit(MacroSpec(10), nullptr);
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << refused.error_message();
  EXPECT_TRUE(absl::StrContains(refused.error_message(), store_path())) << refused.error_message();
  // Reports and sampled rounds fail while it is full.
  ASSERT_TRUE(Eventually([&] { return store_->write_failures() >= 10; }));
  absl::StatusOr<v1::Job> running = GetJob(job.job_id());
  ASSERT_TRUE(running.ok()) << running.status();
  EXPECT_EQ(running->state(), v1::JOB_STATE_RUNNING);
  EXPECT_FALSE(AllTrials(job.job_id(), v1::ListTrialsRequest::ORDER_TIME).empty());
  SetDiskFull(false);
  v1::Job done = WaitUntilDone(job.job_id(), absl::Minutes(2));
  EXPECT_EQ(done.state(), v1::JOB_STATE_SUCCEEDED) << done.error();
  std::vector<v1::Trial> trials = AllTrials(job.job_id(), v1::ListTrialsRequest::ORDER_TIME);
  std::set<std::string> ids;
  int succeeded = 0;
  for (const v1::Trial& t : trials) {
    ids.insert(t.trial_id());
    succeeded += t.state() == v1::TRIAL_STATE_SUCCEEDED ? 1 : 0;
  }
  EXPECT_EQ(ids.size(), trials.size());
  EXPECT_EQ(trials.size(), 120u);
  EXPECT_EQ(succeeded, 120);
}

TEST_F(ControllerFixture, ACancelOnAFullDiskIsStoredOnceThereIsSpace) {
  v1::Job job;
  ASSERT_TRUE(Submit(MacroSpec(1000), &job).ok());
  ASSERT_TRUE(Eventually([&] { return manager_->trials()->queued() > 0; }));
  SetDiskFull(true);
  v1::CancelJobRequest cancel;
  cancel.set_job_id(job.job_id());
  v1::Job cancelled;
  grpc::ClientContext context;
  grpc::Status answer = jobs_->CancelJob(&context, cancel, &cancelled);
  EXPECT_EQ(answer.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << answer.error_message();
  EXPECT_TRUE(absl::StrContains(answer.error_message(), store_path())) << answer.error_message();
  absl::StatusOr<v1::Job> now = GetJob(job.job_id());
  ASSERT_TRUE(now.ok()) << now.status();
  EXPECT_EQ(now->state(), v1::JOB_STATE_CANCELLED);
  ASSERT_TRUE(Eventually([&] { return store_->write_failures() >= 2; }));
  SetDiskFull(false);
  // The job's state and its queued trials' cancellations reach the store by themselves.
  EXPECT_TRUE(Eventually([&] {
    auto jobs = store_->LoadJobs();
    auto counts = store_->CountTrials(job.job_id());
    return jobs.ok() && jobs->size() == 1 && (*jobs)[0].state() == v1::JOB_STATE_CANCELLED &&
           counts.ok() && counts->queued == 0 && counts->running == 0 && counts->cancelled > 0;
  }));
}

TEST_F(ControllerFixture, AJobWhoseStoredTrialsAreDamagedIsListedFailedAndTheOtherResumes) {
  StartWorkers(2);
  v1::Job damaged, intact;
  ASSERT_TRUE(Submit(MacroSpec(100000), &damaged).ok());
  ASSERT_TRUE(Eventually([&] { return reports_ >= 150; }, absl::Minutes(1)));
  ASSERT_TRUE(Submit(MacroSpec(60), &intact).ok());
  ASSERT_TRUE(Eventually([&] { return reports_ >= 170; }, absl::Minutes(1)));
  Stop();
  // Table pages holding only the first job's trials (its earliest ones).
  auto pages = DamagePages(store_path(), "trials", damaged.job_id(), intact.job_id(), 3);
  ASSERT_TRUE(pages.ok()) << pages.status();
  ASSERT_EQ(*pages, 3);
  Start();
  StartWorkers(2);
  absl::StatusOr<v1::Job> failed = GetJob(damaged.job_id());
  ASSERT_TRUE(failed.ok()) << failed.status();
  EXPECT_EQ(failed->state(), v1::JOB_STATE_FAILED);
  EXPECT_TRUE(absl::StrContains(failed->error(), damaged.job_id())) << failed->error();
  EXPECT_TRUE(absl::StrContains(failed->error(), "malformed")) << failed->error();
  v1::Job done = WaitUntilDone(intact.job_id(), absl::Minutes(2));
  EXPECT_EQ(done.state(), v1::JOB_STATE_SUCCEEDED) << done.error();
  // max_trials counts evaluations; the result cache answered the repeats.
  EXPECT_EQ(done.trials_succeeded() - done.cache_hits(), 60);
}

// One-shot search (evaluator.shared, docs/one_shot.md) with fake workers that
// answer search tasks with a made-up reward (the real worker side is the
// worker's): a cell space, final_top_k final trials once the budget is spent.
v1::JobSpec OneShotSpec(const std::string& strategy, int max_trials, int final_top_k) {
  v1::JobSpec spec;
  spec.set_name("one-shot");
  v1::CellSpace* cell = spec.mutable_search_space()->mutable_cell();
  cell->set_num_nodes(4);
  for (const char* op : {"none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3"}) {
    cell->add_operations(op);
  }
  spec.mutable_strategy()->set_name(strategy);
  spec.mutable_strategy()->set_seed(3);
  spec.mutable_parallelism()->set_num_shards(2);
  spec.mutable_parallelism()->set_num_replicas(2);
  spec.mutable_parallelism()->set_children_per_replica(2);
  spec.mutable_budget()->set_max_trials(max_trials);
  v1::SharedEvaluatorSpec* shared = spec.mutable_evaluator()->mutable_shared();
  shared->mutable_data()->set_dataset("fashion_mnist");
  shared->set_final_top_k(final_top_k);
  shared->mutable_final_training()->set_epochs(2);
  spec.mutable_evaluator()->set_lease_seconds(2);
  return spec;
}

TEST_F(ControllerFixture, OneShotJobEvaluatesEverySampleThenTrainsItsTopKAndDropsOmega) {
  Stop();
  weights_retention_ = absl::Seconds(1);
  Start();
  std::mutex mu;
  std::vector<v1::Task> seen;
  StartWorkers(2, 0, "", [&](const v1::Task& task) {
    std::lock_guard<std::mutex> lock(mu);
    if (task.has_shared() && seen.empty()) {
      // What the first worker does (worker/): create ω on the servers.
      v1::OptimizerConfig sgd;
      sgd.set_kind(v1::OptimizerConfig::SGD);
      sgd.set_learning_rate(0.1);
      EXPECT_TRUE(weights_->InitJob(task.shared().omega_set(),
                                    {FlatTensor{"a", {2}, {0, 0}}, FlatTensor{"b", {2}, {0, 0}}}, sgd)
                      .ok());
    }
    seen.push_back(task);
  });
  v1::Job job;
  ASSERT_TRUE(Submit(OneShotSpec("reinforce", 24, 2), &job).ok());
  v1::Job done = WaitUntilDone(job.job_id(), absl::Minutes(1));
  ASSERT_EQ(done.state(), v1::JOB_STATE_SUCCEEDED) << done.error();
  std::vector<v1::Trial> trials = AllTrials(job.job_id(), v1::ListTrialsRequest::ORDER_TIME);
  std::vector<v1::Trial> finals;
  int search = 0;
  double search_rewards = 0;
  for (const v1::Trial& t : trials) {
    EXPECT_EQ(t.state(), v1::TRIAL_STATE_SUCCEEDED) << t.trial_id();
    EXPECT_EQ(t.cached_from(), "") << t.trial_id();  // the result cache is off
    if (t.final_training()) {
      finals.push_back(t);
    } else {
      ++search;
      search_rewards += t.metrics().reward();
    }
  }
  EXPECT_EQ(search, 24);
  // The mean reward is the search's, not mixed with the final trials'.
  EXPECT_NEAR(done.mean_reward(), search_rewards / 24, 1e-9);
  ASSERT_EQ(finals.size(), 2u);
  EXPECT_NE(finals[0].architecture().canonical(), finals[1].architecture().canonical());
  // Chosen among the later half of the search by one-shot reward.
  for (const v1::Trial& f : finals) {
    EXPECT_DOUBLE_EQ(f.one_shot_score(), SyntheticReward(f.architecture())) << f.trial_id();
  }
  // The best trial is a final one.
  EXPECT_TRUE(done.best_trial_id() == finals[0].trial_id() || done.best_trial_id() == finals[1].trial_id())
      << done.best_trial_id();
  {
    std::lock_guard<std::mutex> lock(mu);
    int final_tasks = 0;
    for (const v1::Task& task : seen) {
      if (task.has_shared()) {
        EXPECT_EQ(task.shared().omega_set(), job.job_id() + ".omega");
        EXPECT_EQ(task.shared().alpha_set(), "");
        EXPECT_EQ(task.shared().init_seed(), 3);  // strategy.seed
        EXPECT_TRUE(task.evaluator().has_shared());
      } else {
        ++final_tasks;
        ASSERT_TRUE(task.evaluator().has_train());
        EXPECT_EQ(task.evaluator().train().epochs(), 2);
        EXPECT_EQ(task.evaluator().train().dataset(), "fashion_mnist");
      }
    }
    EXPECT_EQ(final_tasks, 2);
  }
  // ω goes with the job's other tensors, a retention after the end.
  EXPECT_TRUE(Eventually([&] {
    return !ShardHolds(0, job.job_id() + ".omega") && !ShardHolds(1, job.job_id() + ".omega") &&
           !ShardHolds(0, job.job_id()) && !ShardHolds(1, job.job_id());
  }));
}

TEST_F(ControllerFixture, ARestartDuringTheFinalPhaseCreatesNoFinalTrialTwice) {
  hold_final_tasks_ = true;
  StartWorkers(2);
  v1::Job job;
  ASSERT_TRUE(Submit(OneShotSpec("random", 16, 3), &job).ok());
  // The search is done and the final trials are out, none reported.
  ASSERT_TRUE(Eventually([&] { return held_final_tasks_ >= 1; }, absl::Seconds(60)));
  Stop();
  hold_final_tasks_ = false;
  Start();
  StartWorkers(2);
  v1::Job done = WaitUntilDone(job.job_id(), absl::Minutes(1));
  ASSERT_EQ(done.state(), v1::JOB_STATE_SUCCEEDED) << done.error();
  std::vector<v1::Trial> trials = AllTrials(job.job_id(), v1::ListTrialsRequest::ORDER_TIME);
  std::set<std::string> final_architectures;
  int finals = 0;
  for (const v1::Trial& t : trials) {
    if (!t.final_training()) continue;
    ++finals;
    final_architectures.insert(t.architecture().canonical());
    EXPECT_EQ(t.state(), v1::TRIAL_STATE_SUCCEEDED) << t.trial_id();
  }
  EXPECT_EQ(finals, 3);
  EXPECT_EQ(final_architectures.size(), 3u);
  EXPECT_EQ(trials.size(), 16u + 3u);
}

// DARTS: the workers train α (the fake ones here do not), so the controller
// pulls α every round and never pushes; every search task names the job's α
// set and the argmax, and the final trial is the argmax of the latest α.
TEST_F(ControllerFixture, DartsPullsAlphaWithoutPushingAndTrainsItsArgmax) {
  std::mutex mu;
  std::vector<v1::Task> seen;
  StartWorkers(2, 0, "", [&](const v1::Task& task) {
    std::lock_guard<std::mutex> lock(mu);
    seen.push_back(task);
  });
  v1::Job job;
  ASSERT_TRUE(Submit(OneShotSpec("darts", 12, 1), &job).ok());
  v1::Job done = WaitUntilDone(job.job_id(), absl::Minutes(1));
  ASSERT_EQ(done.state(), v1::JOB_STATE_SUCCEEDED) << done.error();
  EXPECT_EQ(ShardPushes(), 0);
  EXPECT_EQ(done.gradient_pushes(), 0);
  absl::StatusOr<PulledWeights> alpha = weights_->Pull(job.job_id());
  ASSERT_TRUE(alpha.ok()) << alpha.status();
  ASSERT_EQ(alpha->tensors.size(), 1u);
  EXPECT_EQ(alpha->tensors[0].name, "alpha");
  EXPECT_EQ(alpha->tensors[0].shape, (std::vector<int64_t>{6, 5}));
  std::vector<v1::Trial> trials = AllTrials(job.job_id(), v1::ListTrialsRequest::ORDER_TIME);
  ASSERT_EQ(trials.size(), 13u);
  std::set<std::string> architectures;
  int finals = 0;
  for (const v1::Trial& t : trials) {
    architectures.insert(t.architecture().canonical());
    finals += t.final_training() ? 1 : 0;
  }
  EXPECT_EQ(finals, 1);
  EXPECT_EQ(architectures.size(), 1u);  // α never moved: one argmax throughout
  std::lock_guard<std::mutex> lock(mu);
  for (const v1::Task& task : seen) {
    if (task.has_shared()) EXPECT_EQ(task.shared().alpha_set(), job.job_id());
  }
}

TEST_F(ControllerFixture, WatchOfUnknownJobIsNotFound) {
  v1::WatchJobRequest request;
  request.set_job_id("no-such-job");
  grpc::ClientContext context;
  auto reader = jobs_->WatchJob(&context, request);
  v1::WatchJobEvent event;
  EXPECT_FALSE(reader->Read(&event));
  EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::NOT_FOUND);
}

struct InvalidSpec {
  const char* what;
  std::function<void(v1::JobSpec&)> mutate;
  const char* field;
};

TEST_F(ControllerFixture, InvalidSpecsAreRejectedNamingTheField) {
  const std::vector<InvalidSpec> cases = {
      {"no search space", [](v1::JobSpec& s) { s.clear_search_space(); }, "search_space"},
      {"empty choice list",
       [](v1::JobSpec& s) { s.mutable_search_space()->mutable_macro_cnn()->clear_filter_heights(); },
       "search_space.macro_cnn.filter_heights"},
      {"K = 0", [](v1::JobSpec& s) { s.mutable_parallelism()->set_num_replicas(0); },
       "parallelism.num_replicas"},
      {"m over the limit",
       [](v1::JobSpec& s) { s.mutable_parallelism()->set_children_per_replica(100000); },
       "parallelism.children_per_replica"},
      {"missing dataset",
       [](v1::JobSpec& s) { s.mutable_evaluator()->mutable_train()->set_epochs(1); },
       "evaluator.train.dataset"},
      {"negative epochs",
       [](v1::JobSpec& s) {
         s.mutable_evaluator()->mutable_train()->set_dataset("mnist");
         s.mutable_evaluator()->mutable_train()->set_epochs(-2);
       },
       "evaluator.train.epochs"},
      {"unknown strategy", [](v1::JobSpec& s) { s.mutable_strategy()->set_name("hillclimb"); },
       "strategy.name"},
      {"duplicate choices",
       [](v1::JobSpec& s) { s.mutable_search_space()->mutable_macro_cnn()->add_num_filters(64); },
       "search_space.macro_cnn.num_filters"},
      {"budget 0", [](v1::JobSpec& s) { s.mutable_budget()->set_max_trials(0); }, "budget"},
      {"negative lease", [](v1::JobSpec& s) { s.mutable_evaluator()->set_lease_seconds(-1); },
       "evaluator.lease_seconds"},
      {"no evaluator", [](v1::JobSpec& s) { s.clear_evaluator(); }, "evaluator"},
      {"bad optimizer", [](v1::JobSpec& s) { s.mutable_controller()->set_optimizer("rmsprop"); },
       "controller.optimizer"},
      {"baseline decay 1", [](v1::JobSpec& s) { s.mutable_controller()->set_baseline_decay(1); },
       "controller.baseline_decay"},
      {"shards mismatch", [](v1::JobSpec& s) { s.mutable_parallelism()->set_num_shards(3); },
       "parallelism.num_shards"},
      {"lookup without table", [](v1::JobSpec& s) { s.mutable_evaluator()->mutable_lookup(); },
       "evaluator.lookup.table_path"},
      {"bad objective", [](v1::JobSpec& s) { s.mutable_reward()->set_objective_metric("joules"); },
       "reward.objective_metric"},
  };
  for (const InvalidSpec& c : cases) {
    v1::JobSpec spec = MacroSpec(10);
    c.mutate(spec);
    grpc::Status status = Submit(spec, nullptr);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << c.what;
    EXPECT_NE(status.error_message().find(std::string(c.field) + ":"), std::string::npos)
        << c.what << ": " << status.error_message();
  }
  // An unknown field in YAML is named too.
  v1::SubmitJobRequest request;
  request.set_spec_yaml("name: x\nbudgett: {max_trials: 3}\n");
  v1::SubmitJobResponse response;
  grpc::ClientContext context;
  grpc::Status status = jobs_->SubmitJob(&context, request, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(status.error_message().find("budgett: unknown field"), std::string::npos)
      << status.error_message();
  // Nothing was created by any of them.
  v1::ListJobsRequest list;
  v1::ListJobsResponse jobs;
  grpc::ClientContext list_context;
  ASSERT_TRUE(jobs_->ListJobs(&list_context, list, &jobs).ok());
  EXPECT_EQ(jobs.jobs_size(), 0);
}

}  // namespace
}  // namespace nas::controller
