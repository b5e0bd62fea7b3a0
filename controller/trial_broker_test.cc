// The trial broker over a real trial store (SQLite in TEST_TMPDIR) with a
// fake clock: who may heartbeat and report, what an expired lease does, how
// failures are retried and recorded, what closing a job does, and how a
// restart's running attempts keep their workers.
#include "controller/trial_broker.h"

#include <functional>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/strings/match.h"
#include "controller/store_faults.h"
#include "controller/trial_store.h"
#include "gtest/gtest.h"

namespace nas::controller {
namespace {

constexpr char kJob[] = "job-1";

v1::EpochResult Epoch(int epoch, double validation_accuracy) {
  v1::EpochResult e;
  e.set_epoch(epoch);
  e.set_validation_accuracy(validation_accuracy);
  return e;
}

// Records every final outcome the broker announces.
class RecordingListener : public TrialListener {
 public:
  void OnTrialFinal(const v1::Trial& trial) override {
    std::function<void(const v1::Trial&)> then;
    {
      absl::MutexLock lock(&mu_);
      finals_.push_back(trial);
      then = then_;
    }
    if (then) then(trial);
  }
  // Runs `then` on each final outcome after recording it.
  void Then(std::function<void(const v1::Trial&)> then) {
    absl::MutexLock lock(&mu_);
    then_ = std::move(then);
  }
  std::vector<v1::Trial> finals() {
    absl::MutexLock lock(&mu_);
    return finals_;
  }

 private:
  absl::Mutex mu_;
  std::vector<v1::Trial> finals_ ABSL_GUARDED_BY(mu_);
  std::function<void(const v1::Trial&)> then_ ABSL_GUARDED_BY(mu_);
};

class TrialBrokerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    TrialStoreOptions store_options;
    store_options.path = absl::StrCat(std::getenv("TEST_TMPDIR"), "/",
                                      ::testing::UnitTest::GetInstance()->current_test_info()->name(),
                                      "/trials.db");
    store_options.sync_every_commit = false;
    RegisterFullDiskVfs();  // the disk fills only where a test says so
    store_options.vfs = kFullDiskVfs;
    store_ = TrialStore::Open(store_options).value();
    v1::Job job;
    job.set_job_id(kJob);
    job.set_state(v1::JOB_STATE_RUNNING);
    ASSERT_TRUE(store_->CreateJob(job).ok());
    spec_.mutable_evaluator()->set_max_attempts(2);
    spec_.mutable_evaluator()->set_lease_seconds(30);
    spec_.mutable_evaluator()->mutable_synthetic();
    StartBroker();
  }

  void TearDown() override {
    SetDiskFull(false);
    if (broker_) broker_->Shutdown();
    ASSERT_TRUE(store_->Flush().ok());
    broker_.reset();
  }

  void StartBroker() {
    TrialBrokerOptions options;
    options.store = store_.get();
    options.clock = &clock_;
    options.listener = &listener_;
    options.lease_check_interval = absl::Milliseconds(5);
    broker_ = TrialBroker::Create(options).value();
    broker_->OpenJob(kJob, spec_);
  }

  // Dispatches `n` trials t000000.. as round 0 and returns their outcomes.
  std::shared_ptr<RoundOutcomes> Dispatch(int n) {
    std::vector<v1::Trial> trials(n);
    for (int i = 0; i < n; ++i) {
      trials[i].set_trial_id(absl::StrCat("t00000", i));
      trials[i].set_replica(0);
      trials[i].mutable_architecture()->set_canonical(absl::StrCat("arch-", i));
    }
    auto outcomes = std::make_shared<RoundOutcomes>(n);
    EXPECT_TRUE(broker_->Dispatch(kJob, 0, std::move(trials), outcomes).ok());
    return outcomes;
  }

  // Dispatches trials `ids` with canonical architectures `archs` as one
  // round; `hits` gets the cache hits among them.
  std::shared_ptr<RoundOutcomes> DispatchArchs(const std::vector<std::string>& ids,
                                               const std::vector<std::string>& archs,
                                               int* hits) {
    std::vector<v1::Trial> trials(ids.size());
    for (size_t i = 0; i < ids.size(); ++i) {
      trials[i].set_trial_id(ids[i]);
      trials[i].mutable_architecture()->set_canonical(archs[i]);
    }
    auto outcomes = std::make_shared<RoundOutcomes>(static_cast<int>(ids.size()));
    EXPECT_TRUE(broker_->Dispatch(kJob, 0, std::move(trials), outcomes, hits).ok());
    return outcomes;
  }

  // Leases the one queued task and reports it (reward, or a permanent error).
  void RunOne(const std::string& trial_id, double reward, const std::string& error = "") {
    std::optional<v1::Task> task = broker_->TryAcquire("w");
    ASSERT_TRUE(task.has_value());
    ASSERT_EQ(task->trial_id(), trial_id);
    v1::ReportResultRequest report;
    report.set_task_id(task->task_id());
    report.set_worker_id("w");
    if (error.empty()) {
      report.mutable_metrics()->set_reward(reward);
    } else {
      report.set_error(error);
      report.set_permanent(true);
    }
    absl::Notification answered;
    broker_->ReportAsync(report, [&](absl::StatusOr<bool> r) {
      EXPECT_TRUE(r.ok()) << r.status();
      answered.Notify();
    });
    answered.WaitForNotification();
  }

  // Reports `task` (leased to "w") succeeded with `reward`.
  void RunOneLeased(const v1::Task& task, double reward) {
    v1::ReportResultRequest report;
    report.set_task_id(task.task_id());
    report.set_worker_id("w");
    report.mutable_metrics()->set_reward(reward);
    // A worker cannot mark itself stopped: the controller decides.
    report.mutable_metrics()->set_stopped_early(true);
    absl::Notification answered;
    broker_->ReportAsync(report, [&](absl::StatusOr<bool> r) {
      EXPECT_TRUE(r.ok()) << r.status();
      answered.Notify();
    });
    answered.WaitForNotification();
  }

  absl::StatusOr<bool> Report(const std::string& task_id, const std::string& worker,
                              const std::string& error = "", double reward = 0.5) {
    v1::ReportResultRequest report;
    report.set_task_id(task_id);
    report.set_worker_id(worker);
    if (error.empty()) {
      report.mutable_metrics()->set_reward(reward);
    } else {
      report.set_error(error);
    }
    absl::Notification answered;
    absl::StatusOr<bool> result;
    broker_->ReportAsync(report, [&](absl::StatusOr<bool> r) {
      result = std::move(r);
      answered.Notify();
    });
    answered.WaitForNotification();
    return result;
  }

  v1::Trial Stored(const std::string& trial_id) {
    EXPECT_TRUE(store_->Flush().ok());
    return store_->GetTrial(kJob, trial_id).value();
  }

  // Polls `condition` for up to 20 s.
  template <typename F>
  bool Eventually(F condition) {
    for (absl::Time deadline = absl::Now() + absl::Seconds(20); absl::Now() < deadline;) {
      if (condition()) return true;
      absl::SleepFor(absl::Milliseconds(5));
    }
    return condition();
  }

  FakeClock clock_;
  RecordingListener listener_;
  v1::JobSpec spec_;
  std::unique_ptr<TrialStore> store_;
  std::unique_ptr<TrialBroker> broker_;
};

TEST_F(TrialBrokerTest, OnlyTheLeaseHolderMayHeartbeatOrReport) {
  Dispatch(1);
  std::optional<v1::Task> task = broker_->TryAcquire("holder");
  ASSERT_TRUE(task.has_value());
  EXPECT_EQ(task->attempt(), 1);

  // Another worker, and a task id the holder was never given, change nothing.
  std::vector<v1::EpochResult> forged(1);
  forged[0].set_epoch(1);
  forged[0].set_validation_accuracy(0.99);
  EXPECT_EQ(broker_->Heartbeat(task->task_id(), "intruder", forged).status().code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(Report(task->task_id(), "intruder", "", 0.9).status().code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(Report(MakeTaskId(kJob, "t000000", 2), "holder", "", 0.9).status().code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(Stored("t000000").state(), v1::TRIAL_STATE_RUNNING);
  EXPECT_EQ(Stored("t000000").curve_size(), 0);

  // The holder's heartbeat and report are taken; its epochs are the curve.
  std::vector<v1::EpochResult> epochs(2);
  for (int e = 0; e < 2; ++e) {
    epochs[e].set_epoch(e + 1);
    epochs[e].set_validation_accuracy(0.5 + 0.1 * e);
  }
  absl::StatusOr<HeartbeatAnswer> answer = broker_->Heartbeat(task->task_id(), "holder", epochs);
  ASSERT_TRUE(answer.ok()) << answer.status();
  EXPECT_FALSE(answer->cancel);
  ASSERT_EQ(Stored("t000000").curve_size(), 2);
  EXPECT_DOUBLE_EQ(Stored("t000000").curve(1).validation_accuracy(), 0.6);
  absl::StatusOr<bool> duplicate = Report(task->task_id(), "holder", "", 0.25);
  ASSERT_TRUE(duplicate.ok()) << duplicate.status();
  EXPECT_FALSE(*duplicate);
  v1::Trial stored = Stored("t000000");
  EXPECT_EQ(stored.state(), v1::TRIAL_STATE_SUCCEEDED);
  EXPECT_DOUBLE_EQ(stored.metrics().reward(), 0.25);
  EXPECT_EQ(stored.worker_id(), "holder");

  // The holder reporting again is a duplicate; anyone else is refused.
  duplicate = Report(task->task_id(), "holder", "", 0.99);
  ASSERT_TRUE(duplicate.ok()) << duplicate.status();
  EXPECT_TRUE(*duplicate);
  EXPECT_EQ(Report(task->task_id(), "intruder", "", 0.99).status().code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_DOUBLE_EQ(Stored("t000000").metrics().reward(), 0.25);
  EXPECT_EQ(listener_.finals().size(), 1u);
}

TEST_F(TrialBrokerTest, ReportForAQueuedTrialNeverLeasedIsRefused) {
  Dispatch(1);
  EXPECT_EQ(Report(MakeTaskId(kJob, "t000000", 1), "w", "", 0.9).status().code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(Stored("t000000").state(), v1::TRIAL_STATE_QUEUED);
  // The real result still counts.
  std::optional<v1::Task> task = broker_->TryAcquire("w2");
  ASSERT_TRUE(task.has_value());
  ASSERT_TRUE(Report(task->task_id(), "w2", "", 0.4).ok());
  EXPECT_EQ(Stored("t000000").state(), v1::TRIAL_STATE_SUCCEEDED);
}

TEST_F(TrialBrokerTest, ExpiredLeaseRequeuesTheNextAttemptAndTheLateWorkerIsRefused) {
  auto outcomes = Dispatch(1);
  std::optional<v1::Task> first = broker_->TryAcquire("slow");
  ASSERT_TRUE(first.has_value());
  clock_.Advance(absl::Seconds(31));
  // The lease thread expires the lease and queues attempt 2.
  std::optional<v1::Task> second;
  for (int i = 0; i < 2000 && !second.has_value(); ++i) {
    second = broker_->TryAcquire("fast");
    if (!second.has_value()) absl::SleepFor(absl::Milliseconds(5));
  }
  ASSERT_TRUE(second.has_value()) << "attempt 2 was never queued";
  EXPECT_EQ(second->attempt(), 2);
  EXPECT_EQ(second->trial_id(), "t000000");
  EXPECT_EQ(Report(first->task_id(), "slow", "", 0.9).status().code(),
            absl::StatusCode::kFailedPrecondition);
  ASSERT_TRUE(Report(second->task_id(), "fast", "", 0.3).ok());
  absl::StatusOr<std::vector<v1::Trial>> done = outcomes->Wait();
  ASSERT_TRUE(done.ok());
  ASSERT_EQ(done->size(), 1u);
  EXPECT_EQ((*done)[0].state(), v1::TRIAL_STATE_SUCCEEDED);
  EXPECT_EQ((*done)[0].attempts(), 2);
  EXPECT_EQ((*done)[0].architecture().canonical(), "arch-0");
  EXPECT_DOUBLE_EQ((*done)[0].metrics().reward(), 0.3);
}

TEST_F(TrialBrokerTest, TrialFailingEveryAttemptIsFailedWithItsLastError) {
  auto outcomes = Dispatch(1);
  for (int attempt = 1; attempt <= 2; ++attempt) {
    std::optional<v1::Task> task = broker_->TryAcquire("w");
    ASSERT_TRUE(task.has_value()) << "attempt " << attempt;
    EXPECT_EQ(task->attempt(), attempt);
    ASSERT_TRUE(Report(task->task_id(), "w", absl::StrCat("boom ", attempt)).ok());
  }
  EXPECT_FALSE(broker_->TryAcquire("w").has_value());
  absl::StatusOr<std::vector<v1::Trial>> done = outcomes->Wait();
  ASSERT_TRUE(done.ok());
  EXPECT_EQ((*done)[0].state(), v1::TRIAL_STATE_FAILED);
  EXPECT_EQ((*done)[0].error(), "failed 2 attempts; last: boom 2");
  EXPECT_EQ(Stored("t000000").state(), v1::TRIAL_STATE_FAILED);
}

TEST_F(TrialBrokerTest, ClosingAJobCancelsQueuedTrialsAndTellsHoldersToStop) {
  auto outcomes = Dispatch(2);
  std::optional<v1::Task> running = broker_->TryAcquire("w");
  ASSERT_TRUE(running.has_value());
  broker_->CloseJob(kJob);
  ASSERT_TRUE(store_->Flush().ok());
  absl::StatusOr<HeartbeatAnswer> answer = broker_->Heartbeat(running->task_id(), "w", {});
  ASSERT_TRUE(answer.ok());
  EXPECT_TRUE(answer->cancel);
  EXPECT_FALSE(broker_->TryAcquire("w").has_value());
  ASSERT_TRUE(Report(running->task_id(), "w", "cancelled by the controller").ok());
  EXPECT_EQ(Stored("t000000").state(), v1::TRIAL_STATE_CANCELLED);
  EXPECT_EQ(Stored("t000001").state(), v1::TRIAL_STATE_CANCELLED);
  absl::StatusOr<std::vector<v1::Trial>> done = outcomes->Wait();
  ASSERT_TRUE(done.ok());
  EXPECT_EQ(done->size(), 2u);
  // Nothing more is dispatched.
  std::vector<v1::Trial> more(1);
  more[0].set_trial_id("t000009");
  EXPECT_EQ(broker_->Dispatch(kJob, 1, more, std::make_shared<RoundOutcomes>(1)).code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST_F(TrialBrokerTest, AfterARestartARunningAttemptKeepsItsWorker) {
  Dispatch(2);
  std::optional<v1::Task> running = broker_->TryAcquire("survivor");
  ASSERT_TRUE(running.has_value());
  ASSERT_TRUE(store_->Flush().ok());  // the running mark is stored
  // The controller restarts: a new broker adopts the unfinished trials.
  broker_->Shutdown();
  broker_.reset();
  StartBroker();
  std::vector<AdoptedTrial> adopted;
  std::vector<PendingTrial> unfinished = store_->UnfinishedTrials(kJob).value();
  for (PendingTrial& p : unfinished) {
    adopted.push_back(AdoptedTrial{std::move(p.trial), nullptr});
  }
  ASSERT_EQ(adopted.size(), 2u);
  broker_->Adopt(kJob, std::move(adopted), store_->EvaluatedTrials(kJob).value());
  // The survivor's attempt goes on: heartbeat and report are its to make.
  ASSERT_TRUE(broker_->Heartbeat(running->task_id(), "survivor", {}).ok());
  // The never-leased trial is queued again, as its next attempt.
  std::optional<v1::Task> queued = broker_->TryAcquire("other");
  ASSERT_TRUE(queued.has_value());
  EXPECT_EQ(queued->trial_id(), "t000001");
  EXPECT_FALSE(broker_->TryAcquire("other").has_value());
  ASSERT_TRUE(Report(running->task_id(), "survivor", "", 0.7).ok());
  EXPECT_EQ(Stored("t000000").state(), v1::TRIAL_STATE_SUCCEEDED);
}

TEST_F(TrialBrokerTest, AReportTheStoreRefusesIsAnsweredResourceExhaustedAndTheWorkerKeepsItsLease) {
  auto outcomes = Dispatch(1);
  std::optional<v1::Task> task = broker_->TryAcquire("w");
  ASSERT_TRUE(task.has_value());
  SetDiskFull(true);
  absl::StatusOr<bool> refused = Report(task->task_id(), "w", "", 0.7);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kResourceExhausted) << refused.status();
  EXPECT_TRUE(absl::StrContains(refused.status().message(), store_->path()));
  // Still the worker's: its heartbeat is accepted, and so is the report again.
  EXPECT_TRUE(broker_->Heartbeat(task->task_id(), "w", {}).ok());
  SetDiskFull(false);
  absl::StatusOr<bool> accepted = Report(task->task_id(), "w", "", 0.7);
  ASSERT_TRUE(accepted.ok()) << accepted.status();
  EXPECT_FALSE(*accepted);
  absl::StatusOr<std::vector<v1::Trial>> done = outcomes->Wait();
  ASSERT_TRUE(done.ok());
  EXPECT_EQ((*done)[0].state(), v1::TRIAL_STATE_SUCCEEDED);
  EXPECT_EQ(Stored("t000000").state(), v1::TRIAL_STATE_SUCCEEDED);
  EXPECT_EQ(listener_.finals().size(), 1u);
}

TEST_F(TrialBrokerTest, ALastAttemptsExpiredLeaseOnAFullDiskIsStoredFailedOnceThereIsSpace) {
  spec_.mutable_evaluator()->set_max_attempts(1);
  broker_->OpenJob(kJob, spec_);
  auto outcomes = Dispatch(1);
  std::optional<v1::Task> task = broker_->TryAcquire("vanished");
  ASSERT_TRUE(task.has_value());
  ASSERT_TRUE(store_->Flush().ok());  // the running mark is stored
  SetDiskFull(true);
  clock_.Advance(absl::Seconds(31));
  // The lease expired and its FAILED outcome waits for space: the trial has
  // neither a lease nor a final state, and the broker holds it.
  ASSERT_TRUE(Eventually([&] { return broker_->uncommitted() == 1; }));
  EXPECT_EQ(broker_->leased(), 0);
  auto stored = store_->GetTrial(kJob, "t000000");
  ASSERT_TRUE(stored.ok()) << stored.status();
  EXPECT_EQ(stored->state(), v1::TRIAL_STATE_RUNNING);
  SetDiskFull(false);
  absl::StatusOr<std::vector<v1::Trial>> done = outcomes->Wait();
  ASSERT_TRUE(done.ok());
  ASSERT_EQ(done->size(), 1u);
  EXPECT_EQ((*done)[0].state(), v1::TRIAL_STATE_FAILED);
  EXPECT_TRUE(absl::StrContains((*done)[0].error(), "lease expired")) << (*done)[0].error();
  EXPECT_EQ(Stored("t000000").state(), v1::TRIAL_STATE_FAILED);
  EXPECT_EQ(broker_->uncommitted(), 0);
  EXPECT_EQ(listener_.finals().size(), 1u);
}

TEST_F(TrialBrokerTest, ClosingAJobOnAFullDiskCancelsItsQueuedTrialsOnceThereIsSpace) {
  auto outcomes = Dispatch(2);
  SetDiskFull(true);
  broker_->CloseJob(kJob);
  ASSERT_TRUE(Eventually([&] { return broker_->uncommitted() == 2; }));
  SetDiskFull(false);
  absl::StatusOr<std::vector<v1::Trial>> done = outcomes->Wait();
  ASSERT_TRUE(done.ok());
  ASSERT_EQ(done->size(), 2u);
  for (const v1::Trial& t : *done) EXPECT_EQ(t.state(), v1::TRIAL_STATE_CANCELLED);
  EXPECT_EQ(Stored("t000000").state(), v1::TRIAL_STATE_CANCELLED);
  EXPECT_EQ(Stored("t000001").state(), v1::TRIAL_STATE_CANCELLED);
}

TEST_F(TrialBrokerTest, ACacheHitAnsweredWhileTheDiskIsFullIsStoredOnceThereIsSpace) {
  int hits = -1;
  auto round = DispatchArchs({"t000000", "t000001"}, {"A", "A"}, &hits);
  EXPECT_EQ(hits, 1);
  // The evaluation is stored; the disk fills before its waiting hit is.
  listener_.Then([](const v1::Trial& t) {
    if (t.trial_id() == "t000000") SetDiskFull(true);
  });
  RunOne("t000000", 0.6);
  ASSERT_TRUE(Eventually([&] { return broker_->uncommitted() == 1; }));
  EXPECT_EQ(Stored("t000001").state(), v1::TRIAL_STATE_QUEUED);
  SetDiskFull(false);
  absl::StatusOr<std::vector<v1::Trial>> done = round->Wait();
  ASSERT_TRUE(done.ok());
  ASSERT_EQ(done->size(), 2u);
  const v1::Trial stored = Stored("t000001");
  EXPECT_EQ(stored.state(), v1::TRIAL_STATE_SUCCEEDED);
  EXPECT_EQ(stored.cached_from(), "t000000");
  EXPECT_DOUBLE_EQ(stored.metrics().reward(), 0.6);
  EXPECT_EQ(broker_->uncommitted(), 0);
}

TEST_F(TrialBrokerTest, AnEvaluatedArchitectureIsAnsweredFromTheCacheWithoutATask) {
  int hits = -1;
  auto first = DispatchArchs({"t000000"}, {"A"}, &hits);
  EXPECT_EQ(hits, 0);
  RunOne("t000000", 0.7);
  ASSERT_TRUE(first->Wait().ok());

  auto second = DispatchArchs({"t000001", "t000002"}, {"A", "B"}, &hits);
  EXPECT_EQ(hits, 1);
  // Only B goes to a worker.
  RunOne("t000002", 0.4);
  EXPECT_FALSE(broker_->TryAcquire("w").has_value());
  absl::StatusOr<std::vector<v1::Trial>> done = second->Wait();
  ASSERT_TRUE(done.ok());
  ASSERT_EQ(done->size(), 2u);
  for (const v1::Trial& t : *done) {
    EXPECT_EQ(t.state(), v1::TRIAL_STATE_SUCCEEDED) << t.trial_id();
    if (t.trial_id() == "t000001") {
      EXPECT_EQ(t.cached_from(), "t000000");
      EXPECT_DOUBLE_EQ(t.metrics().reward(), 0.7);
      EXPECT_EQ(t.architecture().canonical(), "A");
    } else {
      EXPECT_EQ(t.cached_from(), "");
    }
  }
  const v1::Trial stored = Stored("t000001");
  EXPECT_EQ(stored.state(), v1::TRIAL_STATE_SUCCEEDED);
  EXPECT_EQ(stored.cached_from(), "t000000");
  EXPECT_EQ(stored.attempts(), 0);
  EXPECT_DOUBLE_EQ(stored.metrics().reward(), 0.7);
  EXPECT_EQ(store_->CountTrials(kJob)->cache_hits, 1);
  EXPECT_EQ(listener_.finals().size(), 3u);
}

// One-shot jobs (evaluator.shared, docs/one_shot.md): every search sample is
// a task carrying where ω (and DARTS' α) are, the result cache is off for
// them, and a final trial is trained from scratch with final_training.
TEST_F(TrialBrokerTest, OneShotSearchTasksShareWeightsSkipTheCacheAndFinalTrialsTrainFromScratch) {
  v1::JobSpec shared;
  shared.mutable_evaluator()->set_max_attempts(2);
  shared.mutable_evaluator()->set_lease_seconds(30);
  shared.mutable_evaluator()->mutable_shared()->mutable_data()->set_dataset("fashion_mnist");
  shared.mutable_evaluator()->mutable_shared()->mutable_final_training()->set_dataset("mnist");
  shared.mutable_evaluator()->mutable_shared()->mutable_final_training()->set_epochs(4);
  shared.mutable_strategy()->set_name("reinforce");
  broker_->OpenJob(kJob, shared);
  int hits = -1;
  auto first = DispatchArchs({"t000000"}, {"A"}, &hits);
  std::optional<v1::Task> task = broker_->TryAcquire("w");
  ASSERT_TRUE(task.has_value());
  EXPECT_EQ(task->shared().omega_set(), std::string(kJob) + ".omega");
  EXPECT_EQ(task->shared().alpha_set(), "");
  EXPECT_TRUE(task->evaluator().has_shared());
  RunOneLeased(*task, 0.5);
  ASSERT_TRUE(first->Wait().ok());
  // The same architecture again is evaluated again: ω has changed since.
  auto second = DispatchArchs({"t000001"}, {"A"}, &hits);
  EXPECT_EQ(hits, 0);
  task = broker_->TryAcquire("w");
  ASSERT_TRUE(task.has_value());
  EXPECT_EQ(task->trial_id(), "t000001");
  // A final trial: the train evaluator of final_training, no shared weights.
  std::vector<v1::Trial> finals(1);
  finals[0].set_trial_id("t000002");
  finals[0].mutable_architecture()->set_canonical("A");
  finals[0].set_final_training(true);
  ASSERT_TRUE(broker_->Dispatch(kJob, -1, std::move(finals), nullptr).ok());
  std::optional<v1::Task> final_task = broker_->TryAcquire("w");
  ASSERT_TRUE(final_task.has_value());
  EXPECT_EQ(final_task->trial_id(), "t000002");
  EXPECT_FALSE(final_task->has_shared());
  ASSERT_TRUE(final_task->evaluator().has_train());
  EXPECT_EQ(final_task->evaluator().train().dataset(), "mnist");
  EXPECT_EQ(final_task->evaluator().train().epochs(), 4);
  EXPECT_EQ(final_task->evaluator().max_attempts(), 2);
  EXPECT_DOUBLE_EQ(final_task->lease_seconds(), 30);
  // DARTS: α is the job's own tensor set.
  shared.mutable_strategy()->set_name("darts");
  broker_->OpenJob(kJob, shared);
  auto third = DispatchArchs({"t000003"}, {"B"}, &hits);
  task = broker_->TryAcquire("w");
  ASSERT_TRUE(task.has_value());
  EXPECT_EQ(task->shared().alpha_set(), kJob);
}

// The reuse fingerprint: what changes a measurement is in it, the attempt,
// lease and size limits (and the flag itself) are not.
TEST(ReuseFingerprintTest, HoldsWhatChangesAMeasurementOnly) {
  v1::JobSpec base;
  base.mutable_search_space()->mutable_cell()->set_num_nodes(4);
  base.mutable_evaluator()->mutable_synthetic()->set_epochs(3);
  base.mutable_evaluator()->set_reuse_results(true);
  base.mutable_reward()->set_power(1);
  const std::string fingerprint = ReuseFingerprint(base);
  v1::JobSpec same = base;
  same.mutable_evaluator()->set_max_attempts(7);
  same.mutable_evaluator()->set_lease_seconds(99);
  same.mutable_evaluator()->set_max_parameters(5);
  same.mutable_evaluator()->set_max_activation_bytes(5);
  same.mutable_evaluator()->set_reuse_results(false);
  same.mutable_strategy()->set_seed(42);
  same.mutable_budget()->set_max_trials(3);
  EXPECT_EQ(ReuseFingerprint(same), fingerprint);
  v1::JobSpec epochs = base;
  epochs.mutable_evaluator()->mutable_synthetic()->set_epochs(4);
  v1::JobSpec reward = base;
  reward.mutable_reward()->set_power(2);
  v1::JobSpec space = base;
  space.mutable_search_space()->mutable_cell()->set_num_nodes(5);
  for (const v1::JobSpec& changed : {epochs, reward, space}) {
    EXPECT_NE(ReuseFingerprint(changed), fingerprint) << changed.DebugString();
  }
}

// Another job's shared result answers a sample of a job with reuse on at
// once, naming that job and trial; an evaluation stopped early is never
// shared, and a job with reuse off takes nothing.
TEST_F(TrialBrokerTest, SharedResultsAnswerAJobWithReuseOnButNeverAStoppedEvaluation) {
  spec_.mutable_evaluator()->set_reuse_results(true);
  auto evaluation = [](const std::string& trial_id, const std::string& canonical, bool stopped) {
    v1::Trial t;
    t.set_job_id("earlier");
    t.set_trial_id(trial_id);
    t.set_state(v1::TRIAL_STATE_SUCCEEDED);
    t.mutable_architecture()->set_canonical(canonical);
    t.mutable_metrics()->set_reward(0.7);
    t.mutable_metrics()->set_train_seconds(12);
    t.mutable_metrics()->set_stopped_early(stopped);
    return t;
  };
  broker_->AddSharedResults(spec_, {evaluation("t000004", "A", false),
                                    evaluation("t000005", "B", true)});
  broker_->OpenJob(kJob, spec_);
  int hits = -1;
  auto round = DispatchArchs({"t000000", "t000001"}, {"A", "B"}, &hits);
  EXPECT_EQ(hits, 1);
  RunOne("t000001", 0.4);  // B, whose shared evaluation was stopped, is trained
  EXPECT_FALSE(broker_->TryAcquire("w").has_value());
  ASSERT_TRUE(round->Wait().ok());
  const v1::Trial hit = Stored("t000000");
  EXPECT_EQ(hit.state(), v1::TRIAL_STATE_SUCCEEDED);
  EXPECT_EQ(hit.cached_from_job(), "earlier");
  EXPECT_EQ(hit.cached_from(), "t000004");
  EXPECT_EQ(hit.attempts(), 0);
  EXPECT_DOUBLE_EQ(hit.metrics().reward(), 0.7);
  EXPECT_EQ(store_->CountTrials(kJob)->cache_hits, 1);
  EXPECT_EQ(store_->CountTrials(kJob)->worker_seconds, 0);

  // With reuse off the job takes nothing: A goes to a worker.
  spec_.mutable_evaluator()->set_reuse_results(false);
  broker_->OpenJob(kJob, spec_);
  round = DispatchArchs({"t000002"}, {"A"}, &hits);
  EXPECT_EQ(hits, 0);
  RunOne("t000002", 0.2);
  ASSERT_TRUE(round->Wait().ok());
  EXPECT_EQ(Stored("t000002").cached_from_job(), "");
}

TEST_F(TrialBrokerTest, ASampleOfAnArchitectureInFlightWaitsForItsEvaluation) {
  int hits = -1;
  auto round = DispatchArchs({"t000000", "t000001"}, {"A", "A"}, &hits);
  EXPECT_EQ(hits, 1);
  auto other = DispatchArchs({"t000002"}, {"A"}, &hits);
  EXPECT_EQ(hits, 1);
  EXPECT_EQ(Stored("t000001").state(), v1::TRIAL_STATE_QUEUED);
  RunOne("t000000", 0.6);
  EXPECT_FALSE(broker_->TryAcquire("w").has_value()) << "a waiting sample was queued";
  absl::StatusOr<std::vector<v1::Trial>> done = round->Wait();
  ASSERT_TRUE(done.ok());
  ASSERT_EQ(done->size(), 2u);
  ASSERT_TRUE(other->Wait().ok());
  for (const char* id : {"t000001", "t000002"}) {
    const v1::Trial stored = Stored(id);
    EXPECT_EQ(stored.state(), v1::TRIAL_STATE_SUCCEEDED) << id;
    EXPECT_EQ(stored.cached_from(), "t000000") << id;
    EXPECT_DOUBLE_EQ(stored.metrics().reward(), 0.6) << id;
  }
}

TEST_F(TrialBrokerTest, AFailedEvaluationFailsItsWaitersAndLeavesTheCache) {
  int hits = -1;
  auto round = DispatchArchs({"t000000", "t000001"}, {"A", "A"}, &hits);
  RunOne("t000000", 0, "invalid architecture");
  ASSERT_TRUE(round->Wait().ok());
  const v1::Trial waiter = Stored("t000001");
  EXPECT_EQ(waiter.state(), v1::TRIAL_STATE_FAILED);
  EXPECT_EQ(waiter.error(),
            "the evaluation this sample reuses, trial t000000, ended failed: invalid architecture");
  // A later sample evaluates the architecture afresh.
  DispatchArchs({"t000002"}, {"A"}, &hits);
  EXPECT_EQ(hits, 0);
  RunOne("t000002", 0.5);
}

TEST_F(TrialBrokerTest, AfterARestartTheCacheHoldsTheStoredEvaluationsAndHitsWaitAgain) {
  int hits = -1;
  DispatchArchs({"t000000", "t000001"}, {"A", "B"}, &hits);
  RunOne("t000000", 0.8);
  // t000002 waits on B, which is still queued when the controller restarts.
  DispatchArchs({"t000002"}, {"B"}, &hits);
  EXPECT_EQ(hits, 1);
  ASSERT_TRUE(store_->Flush().ok());
  broker_->Shutdown();
  broker_.reset();
  StartBroker();
  std::vector<AdoptedTrial> adopted;
  std::vector<PendingTrial> unfinished = store_->UnfinishedTrials(kJob).value();
  for (PendingTrial& p : unfinished) adopted.push_back(AdoptedTrial{std::move(p.trial), nullptr});
  ASSERT_EQ(adopted.size(), 2u);
  broker_->Adopt(kJob, std::move(adopted), store_->EvaluatedTrials(kJob).value());
  RunOne("t000001", 0.3);
  EXPECT_FALSE(broker_->TryAcquire("w").has_value());
  EXPECT_EQ(Stored("t000002").state(), v1::TRIAL_STATE_SUCCEEDED);
  EXPECT_DOUBLE_EQ(Stored("t000002").metrics().reward(), 0.3);
  auto again = DispatchArchs({"t000003"}, {"A"}, &hits);
  EXPECT_EQ(hits, 1);
  absl::StatusOr<std::vector<v1::Trial>> done = again->Wait();
  ASSERT_TRUE(done.ok());
  EXPECT_EQ((*done)[0].cached_from(), "t000000");
  EXPECT_DOUBLE_EQ((*done)[0].metrics().reward(), 0.8);
}

TEST_F(TrialBrokerTest, TheMedianRuleStopsATrialBehindOnItsHeartbeatAndMarksItsResult) {
  spec_.mutable_early_stopping()->set_rule("median");
  spec_.mutable_early_stopping()->set_min_epochs(1);
  spec_.mutable_early_stopping()->set_min_trials(1);
  spec_.mutable_evaluator()->mutable_synthetic()->set_epochs(3);
  broker_->OpenJob(kJob, spec_);
  int hits = 0;
  auto outcomes = DispatchArchs({"t000000", "t000001", "t000002"}, {"A", "B", "C"}, &hits);
  std::optional<v1::Task> a = broker_->TryAcquire("w");
  std::optional<v1::Task> b = broker_->TryAcquire("w");
  std::optional<v1::Task> c = broker_->TryAcquire("w");
  ASSERT_TRUE(a.has_value() && b.has_value() && c.has_value());
  // Nothing finished yet: nothing to compare with.
  EXPECT_FALSE(broker_->Heartbeat(b->task_id(), "w", {Epoch(1, 0.1)})->stop);
  // A finishes with running averages 0.6, 0.7, 0.8.
  v1::ReportResultRequest report;
  report.set_task_id(a->task_id());
  report.set_worker_id("w");
  report.mutable_metrics()->set_reward(0.9);
  for (int e = 1; e <= 3; ++e) *report.mutable_metrics()->add_epochs() = Epoch(e, 0.5 + 0.1 * e);
  absl::Notification reported;
  broker_->ReportAsync(report, [&](absl::StatusOr<bool> r) {
    EXPECT_TRUE(r.ok());
    reported.Notify();
  });
  reported.WaitForNotification();
  // B, best 0.65 at epoch 2 against a median of 0.65: goes on; at epoch 3, 0.65 < 0.7: stopped.
  absl::StatusOr<HeartbeatAnswer> answer = broker_->Heartbeat(b->task_id(), "w", {Epoch(2, 0.65)});
  ASSERT_TRUE(answer.ok());
  EXPECT_FALSE(answer->stop);
  EXPECT_FALSE(answer->cancel);
  answer = broker_->Heartbeat(b->task_id(), "w", {Epoch(3, 0.6)});
  EXPECT_TRUE(answer->stop);
  EXPECT_FALSE(answer->cancel);
  EXPECT_TRUE(broker_->Heartbeat(b->task_id(), "w", {})->stop) << "said again until it reports";
  // C is ahead and goes on.
  EXPECT_FALSE(broker_->Heartbeat(c->task_id(), "w", {Epoch(1, 0.9), Epoch(2, 0.9)})->stop);
  // B reports what it trained; the controller marks it stopped, the worker's word aside.
  v1::ReportResultRequest partial;
  partial.set_task_id(b->task_id());
  partial.set_worker_id("w");
  partial.mutable_metrics()->set_reward(0.65);
  partial.mutable_metrics()->set_accuracy(0.65);
  for (double v : {0.1, 0.65, 0.6}) {
    *partial.mutable_metrics()->add_epochs() = Epoch(partial.metrics().epochs_size() + 1, v);
  }
  absl::Notification partial_reported;
  broker_->ReportAsync(partial, [&](absl::StatusOr<bool> r) {
    EXPECT_TRUE(r.ok());
    partial_reported.Notify();
  });
  partial_reported.WaitForNotification();
  RunOneLeased(*c, 0.9);
  absl::StatusOr<std::vector<v1::Trial>> done = outcomes->Wait();
  ASSERT_TRUE(done.ok());
  EXPECT_TRUE(Stored("t000001").metrics().stopped_early());
  EXPECT_DOUBLE_EQ(Stored("t000001").metrics().reward(), 0.65);
  EXPECT_FALSE(Stored("t000000").metrics().stopped_early());
  EXPECT_FALSE(Stored("t000002").metrics().stopped_early());
}

}  // namespace
}  // namespace nas::controller
