#include "controller/trial_store.h"

#include <sqlite3.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "common/file_util.h"
#include "controller/store_faults.h"
#include "google/protobuf/util/json_util.h"
#include "gtest/gtest.h"

namespace nas::controller {
namespace {

std::string DbPath(const std::string& name) {
  return absl::StrCat(std::getenv("TEST_TMPDIR"), "/", name, "/trials.db");
}

v1::Job MakeJob(const std::string& id) {
  v1::Job job;
  job.set_job_id(id);
  job.set_state(v1::JOB_STATE_RUNNING);
  job.mutable_spec()->set_name("test job");
  job.mutable_spec()->mutable_budget()->set_max_trials(10);
  job.set_create_time_unix_ms(1000);
  return job;
}

PendingTrial MakeTrial(const std::string& job, const std::string& id, int replica, int64_t round) {
  PendingTrial pending;
  pending.trial.set_job_id(job);
  pending.trial.set_trial_id(id);
  pending.trial.set_replica(replica);
  pending.trial.mutable_architecture()->set_canonical(absl::StrCat("arch-", id));
  pending.trial.mutable_architecture()->add_tokens(3);
  pending.round = round;
  return pending;
}

v1::Trial Succeeded(const std::string& job, const std::string& id, double reward) {
  v1::Trial trial;
  trial.set_job_id(job);
  trial.set_trial_id(id);
  trial.set_state(v1::TRIAL_STATE_SUCCEEDED);
  trial.mutable_metrics()->set_reward(reward);
  trial.mutable_metrics()->set_accuracy(reward);
  trial.set_worker_id("w1");
  trial.set_attempts(1);
  return trial;
}

v1::EpochResult Epoch(int epoch, double validation_accuracy) {
  v1::EpochResult result;
  result.set_epoch(epoch);
  result.set_train_loss(2.0 / epoch);
  result.set_train_accuracy(validation_accuracy + 0.05);
  result.set_validation_accuracy(validation_accuracy);
  result.set_seconds(1.5 * epoch);
  return result;
}

// "epoch:validation_accuracy" of each curve point, in order.
std::string CurveString(const v1::Trial& trial) {
  std::string out;
  for (const v1::EpochResult& e : trial.curve()) {
    absl::StrAppend(&out, out.empty() ? "" : " ", e.epoch(), ":", e.validation_accuracy());
  }
  return out;
}

// A canonical string for `a`; every 7th carries characters JSON escapes.
std::string CanonicalLikeString(const v1::Architecture& a, int n) {
  std::string s =
      absl::StrCat("L0:", a.macro_cnn().layers_size(), "x3/36/s1/in[0,1]|L1:1x1/24/s2/in[]");
  if (n % 7 == 0) s += "\"quoted\" \\ <tag> caf\xc3\xa9 \x01";
  return s;
}

TEST(TrialStoreTest, JobsSurviveReopeningTheDatabase) {
  const std::string path = DbPath("reopen");
  {
    auto store = TrialStore::Open({path});
    ASSERT_TRUE(store.ok()) << store.status();
    ASSERT_TRUE((*store)->CreateJob(MakeJob("j1")).ok());
    EXPECT_EQ((*store)->CreateJob(MakeJob("j1")).code(), absl::StatusCode::kAlreadyExists);
    v1::Job updated = MakeJob("j1");
    updated.set_state(v1::JOB_STATE_CANCELLED);
    updated.set_baseline(0.25);
    ASSERT_TRUE((*store)->UpdateJob(updated).ok());
    EXPECT_EQ((*store)->UpdateJob(MakeJob("nope")).code(), absl::StatusCode::kNotFound);
  }
  auto store = TrialStore::Open({path});
  ASSERT_TRUE(store.ok());
  auto jobs = (*store)->LoadJobs();
  ASSERT_TRUE(jobs.ok());
  ASSERT_EQ(jobs->size(), 1u);
  EXPECT_EQ((*jobs)[0].state(), v1::JOB_STATE_CANCELLED);
  EXPECT_DOUBLE_EQ((*jobs)[0].baseline(), 0.25);
  EXPECT_EQ((*jobs)[0].spec().name(), "test job");
  EXPECT_EQ((*jobs)[0].spec().budget().max_trials(), 10);
}

TEST(TrialStoreTest, FinishTrialIsRecordedOnceAndDuplicatesChangeNothing) {
  auto store = TrialStore::Open({DbPath("finish")});
  ASSERT_TRUE(store.ok());
  ASSERT_TRUE((*store)->CreateJob(MakeJob("j")).ok());
  ASSERT_TRUE((*store)->InsertTrials({MakeTrial("j", "t1", 0, 0), MakeTrial("j", "t2", 0, 0)})
                  .ok());
  auto first = (*store)->FinishTrial(Succeeded("j", "t1", 0.5));
  ASSERT_TRUE(first.ok());
  EXPECT_TRUE(*first);
  auto duplicate = (*store)->FinishTrial(Succeeded("j", "t1", 0.9));
  ASSERT_TRUE(duplicate.ok());
  EXPECT_FALSE(*duplicate);
  auto trial = (*store)->GetTrial("j", "t1");
  ASSERT_TRUE(trial.ok());
  EXPECT_DOUBLE_EQ(trial->metrics().reward(), 0.5);
  EXPECT_EQ(trial->sequence(), 1);
  EXPECT_EQ(trial->architecture().canonical(), "arch-t1");
  EXPECT_EQ((*store)->FinishTrial(Succeeded("j", "missing", 1)).status().code(),
            absl::StatusCode::kNotFound);

  auto counts = (*store)->CountTrials("j");
  ASSERT_TRUE(counts.ok());
  EXPECT_EQ(counts->succeeded, 1);
  EXPECT_EQ(counts->queued, 1);
  EXPECT_EQ(counts->best_trial_id, "t1");
}

TEST(TrialStoreTest, ListsTrialsByRewardOrTimeWithFiltersAndPages) {
  auto store = TrialStore::Open({DbPath("list")});
  ASSERT_TRUE(store.ok());
  ASSERT_TRUE((*store)->CreateJob(MakeJob("j")).ok());
  std::vector<PendingTrial> trials;
  for (int i = 0; i < 5; ++i) trials.push_back(MakeTrial("j", absl::StrCat("t", i), 0, 0));
  ASSERT_TRUE((*store)->InsertTrials(trials).ok());
  const double rewards[] = {0.2, 0.8, 0.5};
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE((*store)->FinishTrial(Succeeded("j", absl::StrCat("t", i), rewards[i])).ok());
  }
  v1::Trial failed;
  failed.set_job_id("j");
  failed.set_trial_id("t3");
  failed.set_state(v1::TRIAL_STATE_FAILED);
  failed.set_error("out of memory");
  ASSERT_TRUE((*store)->FinishTrial(failed).ok());

  int64_t total = 0;
  auto by_reward = (*store)->ListTrials("j", v1::ListTrialsRequest::ORDER_REWARD,
                                        v1::TRIAL_STATE_SUCCEEDED, 0, 2, &total);
  ASSERT_TRUE(by_reward.ok());
  EXPECT_EQ(total, 3);
  ASSERT_EQ(by_reward->size(), 2u);
  EXPECT_EQ((*by_reward)[0].trial_id(), "t1");
  EXPECT_EQ((*by_reward)[1].trial_id(), "t2");
  auto page2 = (*store)->ListTrials("j", v1::ListTrialsRequest::ORDER_REWARD,
                                    v1::TRIAL_STATE_SUCCEEDED, 2, 2, &total);
  ASSERT_TRUE(page2.ok());
  ASSERT_EQ(page2->size(), 1u);
  EXPECT_EQ((*page2)[0].trial_id(), "t0");

  auto by_time = (*store)->ListTrials("j", v1::ListTrialsRequest::ORDER_TIME,
                                      v1::TRIAL_STATE_UNSPECIFIED, 0, 10, &total);
  ASSERT_TRUE(by_time.ok());
  EXPECT_EQ(total, 5);
  EXPECT_EQ((*by_time)[0].trial_id(), "t0");
  EXPECT_EQ((*by_time)[3].trial_id(), "t3");
  EXPECT_EQ((*by_time)[3].error(), "out of memory");

  auto best = (*store)->GetTrial("j", "");
  ASSERT_TRUE(best.ok());
  EXPECT_EQ(best->trial_id(), "t1");
  auto after = (*store)->TrialsAfter("j", 2, 10);
  ASSERT_TRUE(after.ok());
  ASSERT_EQ(after->size(), 2u);
  EXPECT_EQ((*after)[0].trial_id(), "t2");
}

TEST(TrialStoreTest, UnfinishedTrialsAndRoundsSupportResumingAfterRestart) {
  const std::string path = DbPath("resume");
  {
    auto store = TrialStore::Open({path});
    ASSERT_TRUE(store.ok());
    ASSERT_TRUE((*store)->CreateJob(MakeJob("j")).ok());
    ASSERT_TRUE((*store)
                    ->InsertTrials({MakeTrial("j", "a", 0, 0), MakeTrial("j", "b", 0, 1),
                                    MakeTrial("j", "c", 1, 0), MakeTrial("j", "d", 0, 1)})
                    .ok());
    ASSERT_TRUE((*store)->FinishTrial(Succeeded("j", "a", 0.1)).ok());
    ASSERT_TRUE((*store)->FinishTrial(Succeeded("j", "b", 0.1)).ok());
    ASSERT_TRUE((*store)->MarkRunning("j", "d", "w9", 2).ok());
  }
  auto store = TrialStore::Open({path});
  ASSERT_TRUE(store.ok());
  auto unfinished = (*store)->UnfinishedTrials("j");
  ASSERT_TRUE(unfinished.ok());
  ASSERT_EQ(unfinished->size(), 2u);
  EXPECT_EQ((*unfinished)[0].trial.trial_id(), "c");
  EXPECT_EQ((*unfinished)[1].trial.trial_id(), "d");
  EXPECT_EQ((*unfinished)[1].round, 1);
  EXPECT_EQ((*unfinished)[1].trial.attempts(), 2);
  auto rounds = (*store)->LastRounds("j", 3);
  ASSERT_TRUE(rounds.ok());
  EXPECT_EQ(*rounds, (std::vector<int64_t>{1, 0, -1}));
  auto round_trials = (*store)->RoundTrials("j", 0, 1);
  ASSERT_TRUE(round_trials.ok());
  EXPECT_EQ(round_trials->size(), 2u);
}

TEST(TrialStoreTest, RunningMarksAreVisibleToReadsAndSurviveClosing) {
  const std::string path = DbPath("running_marks");
  {
    auto store = TrialStore::Open({path, false});
    ASSERT_TRUE(store.ok()) << store.status();
    ASSERT_TRUE((*store)->CreateJob(MakeJob("j")).ok());
    ASSERT_TRUE(
        (*store)->InsertTrials({MakeTrial("j", "a", 0, 0), MakeTrial("j", "b", 0, 0)}).ok());
    ASSERT_TRUE((*store)->MarkRunning("j", "a", "w7", 2).ok());
    auto a = (*store)->GetTrial("j", "a");
    ASSERT_TRUE(a.ok()) << a.status();
    EXPECT_EQ(a->state(), v1::TRIAL_STATE_RUNNING);
    EXPECT_EQ(a->worker_id(), "w7");
    EXPECT_EQ(a->attempts(), 2);
    // A batch with a known id is refused whole (no trial of it stored).
    EXPECT_EQ((*store)->InsertTrials({MakeTrial("j", "c", 0, 1), MakeTrial("j", "a", 0, 1)}).code(),
              absl::StatusCode::kAlreadyExists);
    EXPECT_TRUE(absl::IsNotFound((*store)->GetTrial("j", "c").status()));
    // Marked and not read again before closing: still stored.
    ASSERT_TRUE((*store)->MarkRunning("j", "b", "w8", 1).ok());
  }
  auto store = TrialStore::Open({path, false});
  ASSERT_TRUE(store.ok()) << store.status();
  auto b = (*store)->GetTrial("j", "b");
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_EQ(b->state(), v1::TRIAL_STATE_RUNNING);
  EXPECT_EQ(b->worker_id(), "w8");
}

TEST(TrialStoreTest, BothFinishFormsRefuseANonFinalStateAndStoreNothing) {
  auto store = TrialStore::Open({DbPath("non_final"), false});
  ASSERT_TRUE(store.ok()) << store.status();
  ASSERT_TRUE((*store)->CreateJob(MakeJob("j")).ok());
  ASSERT_TRUE((*store)->InsertTrials({MakeTrial("j", "a", 0, 0)}).ok());
  v1::Trial running = Succeeded("j", "a", 0.5);
  running.set_state(v1::TRIAL_STATE_RUNNING);
  EXPECT_EQ((*store)->FinishTrial(running).status().code(), absl::StatusCode::kInvalidArgument);
  absl::StatusOr<bool> async_answer = true;
  (*store)->FinishTrialAsync(running, [&](absl::StatusOr<bool> r) { async_answer = r; });
  ASSERT_TRUE((*store)->Flush().ok());
  EXPECT_EQ(async_answer.status().code(), absl::StatusCode::kInvalidArgument);
  auto a = (*store)->GetTrial("j", "a");
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->state(), v1::TRIAL_STATE_QUEUED);
}

TEST(TrialStoreTest, AsyncResultsCallBackAfterTheirCommitAndCloseWritesTheRest) {
  const std::string path = DbPath("async");
  // What each callback saw, in the order the callbacks ran.
  struct Answers {
    absl::Mutex mu;
    std::vector<std::string> lines ABSL_GUARDED_BY(mu);
  } answers;
  {
    auto store = TrialStore::Open({path, false});
    ASSERT_TRUE(store.ok()) << store.status();
    TrialStore* raw = store->get();
    ASSERT_TRUE(raw->CreateJob(MakeJob("j")).ok());
    std::vector<PendingTrial> trials;
    for (int i = 0; i < 40; ++i) trials.push_back(MakeTrial("j", absl::StrCat("t", i), 0, 0));
    ASSERT_TRUE(raw->InsertTrials(trials).ok());
    // Each callback reads its own trial back: the commit is done by then. A
    // blocking write from the callback fails instead of waiting forever.
    auto check = [&](const std::string& id) {
      return [&, id](absl::StatusOr<bool> recorded) {
        absl::StatusOr<v1::Trial> stored = raw->GetTrial("j", id);
        const absl::Status blocking = raw->MarkRunning("j", id, "w", 1);
        absl::MutexLock lock(&answers.mu);
        answers.lines.push_back(absl::StrCat(
            id, recorded.ok() ? (*recorded ? " recorded" : " duplicate") : " error",
            stored.ok() ? absl::StrCat(" ", TrialStateName(stored->state())) : " missing",
            blocking.code() == absl::StatusCode::kFailedPrecondition ? " refused" : " BLOCKING"));
      };
    };
    for (int i = 0; i < 20; ++i) {
      const std::string id = absl::StrCat("t", i);
      raw->MarkRunningAsync("j", id, "w1", 1);
      raw->FinishTrialAsync(Succeeded("j", id, 0.5), check(id));
    }
    raw->FinishTrialAsync(Succeeded("j", "t3", 0.9), check("t3"));  // a duplicate
    raw->FinishTrialAsync(Succeeded("j", "nope", 0.9), check("nope"));
    raw->MarkRunningAsync("j", "t0", "late", 2);  // after its result: ignored
    ASSERT_TRUE(raw->Flush().ok());
    {
      absl::MutexLock lock(&answers.mu);
      ASSERT_EQ(answers.lines.size(), 22u);  // every callback ran before Flush returned
      for (int i = 0; i < 20; ++i) {
        EXPECT_EQ(answers.lines[i], absl::StrCat("t", i, " recorded succeeded refused"));
      }
      EXPECT_EQ(answers.lines[20], "t3 duplicate succeeded refused");
      EXPECT_EQ(answers.lines[21], "nope error missing refused");
    }
    // Queued and not flushed: closing the store writes them and calls back.
    raw->MarkRunningAsync("j", "t30", "w3", 1);
    raw->FinishTrialAsync(Succeeded("j", "t31", 0.7), check("t31"));
  }
  {
    absl::MutexLock lock(&answers.mu);
    ASSERT_EQ(answers.lines.size(), 23u);
    EXPECT_EQ(answers.lines[22], "t31 recorded succeeded refused");
  }
  auto store = TrialStore::Open({path, false});
  ASSERT_TRUE(store.ok()) << store.status();
  auto t0 = (*store)->GetTrial("j", "t0");
  ASSERT_TRUE(t0.ok());
  EXPECT_EQ(t0->state(), v1::TRIAL_STATE_SUCCEEDED);
  auto t30 = (*store)->GetTrial("j", "t30");
  ASSERT_TRUE(t30.ok());
  EXPECT_EQ(t30->state(), v1::TRIAL_STATE_RUNNING);
  EXPECT_EQ(t30->worker_id(), "w3");
  auto counts = (*store)->CountTrials("j");
  ASSERT_TRUE(counts.ok());
  EXPECT_EQ(counts->succeeded, 21);
  EXPECT_EQ(counts->running, 1);
  EXPECT_EQ(counts->queued, 18);
}

TEST(TrialStoreTest, ConcurrentReportsAndRunningMarksAreEachCommittedOnce) {
  // Many threads report results (each trial twice) and mark trials running at
  // once, so writes share group commits. Every trial must end with exactly one
  // recorded result, a distinct completion sequence, and survive reopening.
  const std::string path = DbPath("group_commit");
  constexpr int kThreads = 16;
  constexpr int kPerThread = 40;
  {
    auto store = TrialStore::Open({path, /*sync_every_commit=*/false});
    ASSERT_TRUE(store.ok()) << store.status();
    ASSERT_TRUE((*store)->CreateJob(MakeJob("j")).ok());
    std::vector<PendingTrial> pending;
    for (int i = 0; i < kThreads * kPerThread; ++i) {
      pending.push_back(MakeTrial("j", absl::StrCat("t", i), i % 4, 0));
    }
    ASSERT_TRUE((*store)->InsertTrials(pending).ok());
    std::vector<int> recorded(kThreads, 0), duplicates(kThreads, 0), errors(kThreads, 0);
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, t] {
        for (int k = 0; k < kPerThread; ++k) {
          const std::string id = absl::StrCat("t", t * kPerThread + k);
          if (!(*store)->MarkRunning("j", id, absl::StrCat("w", t), 1).ok()) ++errors[t];
          for (int copy = 0; copy < 2; ++copy) {
            absl::StatusOr<bool> r = (*store)->FinishTrial(Succeeded("j", id, 0.5));
            if (!r.ok()) {
              ++errors[t];
            } else {
              ++(*r ? recorded[t] : duplicates[t]);
            }
          }
          // A mark after the result must not undo it.
          if (!(*store)->MarkRunning("j", id, "late", 2).ok()) ++errors[t];
        }
        // Unknown trials are NOT_FOUND and do not disturb the batch they share.
        if (!absl::IsNotFound((*store)->FinishTrial(Succeeded("j", "nope", 1)).status())) {
          ++errors[t];
        }
      });
    }
    for (std::thread& thread : threads) thread.join();
    for (int t = 0; t < kThreads; ++t) {
      EXPECT_EQ(recorded[t], kPerThread);
      EXPECT_EQ(duplicates[t], kPerThread);
      EXPECT_EQ(errors[t], 0);
    }
  }
  auto store = TrialStore::Open({path, false});
  ASSERT_TRUE(store.ok()) << store.status();
  auto counts = (*store)->CountTrials("j");
  ASSERT_TRUE(counts.ok()) << counts.status();
  EXPECT_EQ(counts->succeeded, kThreads * kPerThread);
  EXPECT_EQ(counts->running + counts->queued, 0);
  auto done = (*store)->TrialsAfter("j", 0, 10 * kThreads * kPerThread);
  ASSERT_TRUE(done.ok()) << done.status();
  ASSERT_EQ(done->size(), static_cast<size_t>(kThreads * kPerThread));
  std::set<int64_t> sequences;
  for (const v1::Trial& trial : *done) {
    sequences.insert(trial.sequence());
    EXPECT_NE(trial.worker_id(), "late") << trial.trial_id();
  }
  EXPECT_EQ(sequences.size(), done->size());
  EXPECT_EQ(*sequences.begin(), 1);
  EXPECT_EQ(*sequences.rbegin(), kThreads * kPerThread);
}

TEST(TrialStoreTest, CurvePointsAreReadInEpochOrderAndAResentEpochReplacesItsRow) {
  auto store = TrialStore::Open({DbPath("curve_order"), false});
  ASSERT_TRUE(store.ok()) << store.status();
  ASSERT_TRUE((*store)->CreateJob(MakeJob("j")).ok());
  ASSERT_TRUE((*store)->InsertTrials({MakeTrial("j", "a", 0, 0)}).ok());
  (*store)->AppendCurveAsync("j", "a", 1, {Epoch(2, 0.5), Epoch(1, 0.25)});
  (*store)->AppendCurveAsync("j", "a", 1, {Epoch(3, 0.75)});
  v1::EpochResult diverged = Epoch(2, 0.625);  // epoch 2 again, new values
  diverged.set_train_loss(std::nan(""));
  (*store)->AppendCurveAsync("j", "a", 1, {diverged});
  (*store)->AppendCurveAsync("j", "a", 1, {});  // nothing to store
  ASSERT_TRUE((*store)->Flush().ok());
  auto a = (*store)->GetTrial("j", "a");
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(CurveString(*a), "1:0.25 2:0.625 3:0.75");
  ASSERT_EQ(a->curve_size(), 3);
  EXPECT_DOUBLE_EQ(a->curve(0).train_loss(), 2.0);
  EXPECT_DOUBLE_EQ(a->curve(0).train_accuracy(), 0.3);
  EXPECT_DOUBLE_EQ(a->curve(0).seconds(), 1.5);
  EXPECT_TRUE(std::isnan(a->curve(1).train_loss()));  // stored as NULL, read back as NaN
  EXPECT_DOUBLE_EQ(a->curve(2).seconds(), 4.5);
}

TEST(TrialStoreTest, ALanguageModelsCurveKeepsItsPerplexities) {
  auto store = TrialStore::Open({DbPath("curve_perplexity"), false});
  ASSERT_TRUE(store.ok()) << store.status();
  ASSERT_TRUE((*store)->CreateJob(MakeJob("j")).ok());
  ASSERT_TRUE((*store)->InsertTrials({MakeTrial("j", "a", 0, 0)}).ok());
  v1::EpochResult epoch;
  epoch.set_epoch(1);
  epoch.set_train_loss(6.5);
  epoch.set_train_perplexity(665.25);
  epoch.set_validation_perplexity(705.5);
  epoch.set_seconds(30);
  v1::EpochResult diverged = epoch;
  diverged.set_epoch(2);
  diverged.set_validation_perplexity(std::numeric_limits<double>::infinity());
  (*store)->AppendCurveAsync("j", "a", 1, {epoch, diverged});
  ASSERT_TRUE((*store)->Flush().ok());
  auto a = (*store)->GetTrial("j", "a");
  ASSERT_TRUE(a.ok()) << a.status();
  ASSERT_EQ(a->curve_size(), 2);
  EXPECT_DOUBLE_EQ(a->curve(0).train_perplexity(), 665.25);
  EXPECT_DOUBLE_EQ(a->curve(0).validation_perplexity(), 705.5);
  EXPECT_TRUE(std::isinf(a->curve(1).validation_perplexity()));
}

TEST(TrialStoreTest, TrialLogsAppendInOrderKeepTheLastMebibyteAndSurviveAReopen) {
  const std::string path = DbPath("trial_logs");
  {
    auto store = TrialStore::Open({path, false});
    ASSERT_TRUE(store.ok()) << store.status();
    ASSERT_TRUE((*store)->CreateJob(MakeJob("j")).ok());
    ASSERT_TRUE((*store)->InsertTrials({MakeTrial("j", "a", 0, 0), MakeTrial("j", "b", 0, 0)}).ok());
    (*store)->AppendLogAsync("j", "a", 1, 0, "hello ", false);
    (*store)->AppendLogAsync("j", "a", 1, 6, "world\n", false);
    (*store)->AppendLogAsync("j", "a", 1, 6, "world\n", false);  // re-sent: skipped
    (*store)->AppendLogAsync("j", "a", 1, 9, "ld\nmore", true);  // overlaps: the new part only
    (*store)->AppendLogAsync("j", "a", 2, 0, "second attempt", false);
    (*store)->AppendLogAsync("j", "zz", 1, 0, "unknown trial", false);  // dropped alone
    // b: 1.5 MiB in three chunks, the last after a gap: the last MiB is kept.
    const std::string mib(TrialStore::kMaxLogBytes, 'x');
    (*store)->AppendLogAsync("j", "b", 1, 0, "0123456789", false);
    (*store)->AppendLogAsync("j", "b", 1, 100, mib.substr(0, 1000), false);  // gap at 10..100
    (*store)->AppendLogAsync("j", "b", 1, 1100, mib + "END", true);
    ASSERT_TRUE((*store)->Flush().ok());
  }
  auto store = TrialStore::Open({path, false});
  ASSERT_TRUE(store.ok()) << store.status();
  absl::StatusOr<TrialLog> first = (*store)->GetTrialLog("j", "a", 1);
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ(first->data, "hello world\nmore");
  EXPECT_EQ(first->first_offset, 0);
  EXPECT_TRUE(first->complete);
  absl::StatusOr<TrialLog> latest = (*store)->GetTrialLog("j", "a", 0);
  ASSERT_TRUE(latest.ok()) << latest.status();
  EXPECT_EQ(latest->attempt, 2);
  EXPECT_EQ(latest->data, "second attempt");
  EXPECT_FALSE(latest->complete);
  absl::StatusOr<TrialLog> b = (*store)->GetTrialLog("j", "b", 1);
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_EQ(static_cast<int64_t>(b->data.size()), TrialStore::kMaxLogBytes);
  EXPECT_EQ(b->first_offset + static_cast<int64_t>(b->data.size()), 1100 + TrialStore::kMaxLogBytes + 3);
  EXPECT_EQ(b->data.substr(b->data.size() - 4), "xEND");
  EXPECT_TRUE(b->complete);
  EXPECT_EQ((*store)->GetTrialLog("j", "a", 3).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ((*store)->GetTrialLog("j", "zz", 0).status().code(), absl::StatusCode::kNotFound);
}

TEST(TrialStoreTest, GetTrialReturnsTheCurveOfTheLatestAttempt) {
  auto store = TrialStore::Open({DbPath("curve_attempts"), false});
  ASSERT_TRUE(store.ok()) << store.status();
  ASSERT_TRUE((*store)->CreateJob(MakeJob("j")).ok());
  ASSERT_TRUE((*store)
                  ->InsertTrials({MakeTrial("j", "a", 0, 0), MakeTrial("j", "b", 0, 0),
                                  MakeTrial("j", "c", 0, 0), MakeTrial("j", "d", 0, 0)})
                  .ok());
  // a: attempt 1 got three epochs in, attempt 2 one; a late heartbeat of
  // attempt 1 does not make its curve the latest.
  (*store)->AppendCurveAsync("j", "a", 1, {Epoch(1, 0.1), Epoch(2, 0.2), Epoch(3, 0.3)});
  (*store)->AppendCurveAsync("j", "a", 2, {Epoch(1, 0.4)});
  (*store)->AppendCurveAsync("j", "a", 1, {Epoch(4, 0.35)});
  // b: rows of attempt 1, then attempt 2 succeeded with epochs in its final
  // metrics but sent none in heartbeats: the metrics are the latest curve.
  (*store)->AppendCurveAsync("j", "b", 1, {Epoch(1, 0.1)});
  v1::Trial b = Succeeded("j", "b", 0.9);
  b.set_attempts(2);
  *b.mutable_metrics()->add_epochs() = Epoch(2, 0.9);
  *b.mutable_metrics()->add_epochs() = Epoch(1, 0.8);
  ASSERT_TRUE((*store)->FinishTrial(b).ok());
  // c: no rows at all (finished before curves were stored): the metrics.
  v1::Trial c = Succeeded("j", "c", 0.5);
  *c.mutable_metrics()->add_epochs() = Epoch(1, 0.5);
  ASSERT_TRUE((*store)->FinishTrial(c).ok());
  // d: rows and metrics of the same attempt: the rows win.
  (*store)->AppendCurveAsync("j", "d", 1, {Epoch(1, 0.6), Epoch(2, 0.7)});
  v1::Trial d = Succeeded("j", "d", 0.7);
  *d.mutable_metrics()->add_epochs() = Epoch(2, 0.7);
  ASSERT_TRUE((*store)->FinishTrial(d).ok());
  ASSERT_TRUE((*store)->Flush().ok());

  auto a = (*store)->GetTrial("j", "a");
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(CurveString(*a), "1:0.4");
  auto stored_b = (*store)->GetTrial("j", "b");
  ASSERT_TRUE(stored_b.ok()) << stored_b.status();
  EXPECT_EQ(CurveString(*stored_b), "1:0.8 2:0.9");
  auto stored_c = (*store)->GetTrial("j", "c");
  ASSERT_TRUE(stored_c.ok()) << stored_c.status();
  EXPECT_EQ(CurveString(*stored_c), "1:0.5");
  auto stored_d = (*store)->GetTrial("j", "d");
  ASSERT_TRUE(stored_d.ok()) << stored_d.status();
  EXPECT_EQ(CurveString(*stored_d), "1:0.6 2:0.7");
  // The best-trial form fills the curve too.
  auto best = (*store)->GetTrial("j", "");
  ASSERT_TRUE(best.ok()) << best.status();
  EXPECT_EQ(best->trial_id(), "b");
  EXPECT_EQ(CurveString(*best), "1:0.8 2:0.9");
}

TEST(TrialStoreTest, CurvesSurviveClosingAndReopening) {
  const std::string path = DbPath("curve_reopen");
  {
    auto store = TrialStore::Open({path, false});
    ASSERT_TRUE(store.ok()) << store.status();
    ASSERT_TRUE((*store)->CreateJob(MakeJob("j")).ok());
    ASSERT_TRUE((*store)->InsertTrials({MakeTrial("j", "a", 0, 0)}).ok());
    (*store)->AppendCurveAsync("j", "a", 1, {Epoch(1, 0.5)});
    ASSERT_TRUE((*store)->Flush().ok());
    // Queued and not flushed: closing the store writes it.
    (*store)->AppendCurveAsync("j", "a", 1, {Epoch(2, 0.75)});
  }
  auto store = TrialStore::Open({path, false});
  ASSERT_TRUE(store.ok()) << store.status();
  auto a = (*store)->GetTrial("j", "a");
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(CurveString(*a), "1:0.5 2:0.75");
}

TEST(TrialStoreTest, ACurveThatCannotBeStoredDoesNotFailTheWritesOfItsBatch) {
  auto store = TrialStore::Open({DbPath("curve_batch"), false});
  ASSERT_TRUE(store.ok()) << store.status();
  TrialStore* raw = store->get();
  ASSERT_TRUE(raw->CreateJob(MakeJob("j")).ok());
  ASSERT_TRUE(raw->InsertTrials({MakeTrial("j", "a", 0, 0), MakeTrial("j", "b", 0, 0)}).ok());
  // Hold the writer thread in a callback so that every write queued
  // meanwhile shares its next batch (one transaction).
  absl::Notification writer_held, release;
  raw->FinishTrialAsync(Succeeded("j", "a", 0.5), [&](absl::StatusOr<bool>) {
    writer_held.Notify();
    release.WaitForNotification();
  });
  writer_held.WaitForNotification();
  raw->AppendCurveAsync("j", "b", 1, {Epoch(1, 0.25)});
  raw->AppendCurveAsync("j", "nope", 1, {Epoch(1, 0.5)});              // unknown trial
  raw->AppendCurveAsync("other-job", "b", 1, {Epoch(1, 0.5)});         // unknown job
  raw->AppendCurveAsync("j", "b", 1, {Epoch(2, 0.5), Epoch(0, 0.5)});  // epoch 0: dropped whole
  absl::StatusOr<bool> finished = absl::UnknownError("no callback");
  raw->FinishTrialAsync(Succeeded("j", "b", 0.75), [&](absl::StatusOr<bool> r) { finished = r; });
  raw->AppendCurveAsync("j", "b", 1, {Epoch(3, 0.75)});
  release.Notify();
  ASSERT_TRUE(raw->Flush().ok());
  ASSERT_TRUE(finished.ok()) << finished.status();
  EXPECT_TRUE(*finished);
  auto b = raw->GetTrial("j", "b");
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_EQ(b->state(), v1::TRIAL_STATE_SUCCEEDED);
  EXPECT_DOUBLE_EQ(b->metrics().reward(), 0.75);
  EXPECT_EQ(CurveString(*b), "1:0.25 3:0.75");
  EXPECT_TRUE(absl::IsNotFound(raw->GetTrial("j", "nope").status()));
}

TEST(TrialStoreTest, ListsOfTrialsLeaveTheCurveEmpty) {
  auto store = TrialStore::Open({DbPath("curve_lists"), false});
  ASSERT_TRUE(store.ok()) << store.status();
  ASSERT_TRUE((*store)->CreateJob(MakeJob("j")).ok());
  ASSERT_TRUE((*store)->InsertTrials({MakeTrial("j", "a", 0, 0)}).ok());
  (*store)->AppendCurveAsync("j", "a", 1, {Epoch(1, 0.5), Epoch(2, 0.6)});
  ASSERT_TRUE((*store)->FinishTrial(Succeeded("j", "a", 0.6)).ok());
  auto a = (*store)->GetTrial("j", "a");
  ASSERT_TRUE(a.ok()) << a.status();
  ASSERT_EQ(a->curve_size(), 2);  // stored, so the lists below could show it
  int64_t total = 0;
  auto listed = (*store)->ListTrials("j", v1::ListTrialsRequest::ORDER_REWARD,
                                     v1::TRIAL_STATE_UNSPECIFIED, 0, 10, &total);
  ASSERT_TRUE(listed.ok()) << listed.status();
  ASSERT_EQ(listed->size(), 1u);
  EXPECT_EQ((*listed)[0].curve_size(), 0);
  auto after = (*store)->TrialsAfter("j", 0, 10);
  ASSERT_TRUE(after.ok()) << after.status();
  ASSERT_EQ(after->size(), 1u);
  EXPECT_EQ((*after)[0].curve_size(), 0);
}

TEST(TrialStoreTest, ADatabaseMadeBeforeCurvesGetsTheTableWhenOpened) {
  const std::string path = DbPath("curve_upgrade");
  {
    auto store = TrialStore::Open({path, false});
    ASSERT_TRUE(store.ok()) << store.status();
    ASSERT_TRUE((*store)->CreateJob(MakeJob("j")).ok());
    ASSERT_TRUE((*store)->InsertTrials({MakeTrial("j", "a", 0, 0)}).ok());
  }
  // What the previous version left: the same schema (version 1) without curves.
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(db, "DROP TABLE curves", nullptr, nullptr, nullptr), SQLITE_OK)
      << sqlite3_errmsg(db);
  sqlite3_close(db);

  auto store = TrialStore::Open({path, false});
  ASSERT_TRUE(store.ok()) << store.status();
  (*store)->AppendCurveAsync("j", "a", 1, {Epoch(1, 0.5)});
  ASSERT_TRUE((*store)->Flush().ok());
  auto a = (*store)->GetTrial("j", "a");
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(CurveString(*a), "1:0.5");
}

TEST(TrialStoreTest, ADatabaseMadeBeforeCurvePerplexitiesGetsTheColumnsAndKeepsItsCurves) {
  const std::string path = DbPath("curve_perplexity_upgrade");
  {
    auto store = TrialStore::Open({path, false});
    ASSERT_TRUE(store.ok()) << store.status();
    ASSERT_TRUE((*store)->CreateJob(MakeJob("j")).ok());
    ASSERT_TRUE((*store)->InsertTrials({MakeTrial("j", "a", 0, 0)}).ok());
    (*store)->AppendCurveAsync("j", "a", 1, {Epoch(1, 0.5)});
    ASSERT_TRUE((*store)->Flush().ok());
  }
  // What the previous version left: curves without the perplexity columns.
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  for (const char* sql : {"ALTER TABLE curves DROP COLUMN train_perplexity",
                          "ALTER TABLE curves DROP COLUMN validation_perplexity"}) {
    ASSERT_EQ(sqlite3_exec(db, sql, nullptr, nullptr, nullptr), SQLITE_OK) << sqlite3_errmsg(db);
  }
  sqlite3_close(db);

  auto store = TrialStore::Open({path, false});
  ASSERT_TRUE(store.ok()) << store.status();
  v1::EpochResult epoch = Epoch(2, 0);
  epoch.set_validation_perplexity(705.5);
  (*store)->AppendCurveAsync("j", "a", 1, {epoch});
  ASSERT_TRUE((*store)->Flush().ok());
  auto a = (*store)->GetTrial("j", "a");
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(CurveString(*a), "1:0.5 2:0");
  EXPECT_TRUE(std::isnan(a->curve(0).validation_perplexity()));  // NULL: not stored then
  EXPECT_DOUBLE_EQ(a->curve(1).validation_perplexity(), 705.5);
}

TEST(TrialStoreTest, ADatabaseMadeBeforeCachedFromGetsTheColumnAndKeepsItsTrials) {
  const std::string path = DbPath("cached_from_upgrade");
  {
    auto store = TrialStore::Open({path, false});
    ASSERT_TRUE(store.ok()) << store.status();
    ASSERT_TRUE((*store)->CreateJob(MakeJob("j")).ok());
    ASSERT_TRUE((*store)->InsertTrials({MakeTrial("j", "a", 0, 0)}).ok());
  }
  // What the previous version left: the trials table without cached_from.
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  for (const char* column : {"cached_from", "cached_from_job", "final_training", "one_shot_score"}) {
    ASSERT_EQ(sqlite3_exec(db, absl::StrCat("ALTER TABLE trials DROP COLUMN ", column).c_str(),
                           nullptr, nullptr, nullptr),
              SQLITE_OK)
        << sqlite3_errmsg(db);
  }
  sqlite3_close(db);

  auto store = TrialStore::Open({path, false});
  ASSERT_TRUE(store.ok()) << store.status();
  PendingTrial hit = MakeTrial("j", "b", 0, 0);
  hit.trial.set_cached_from("a");
  PendingTrial other_jobs_hit = MakeTrial("j", "c", 0, 0);
  other_jobs_hit.trial.set_cached_from("t000007");
  other_jobs_hit.trial.set_cached_from_job("earlier");
  ASSERT_TRUE((*store)->InsertTrials({hit, other_jobs_hit}).ok());
  ASSERT_TRUE((*store)->FinishTrial(Succeeded("j", "a", 0.5)).ok());
  ASSERT_TRUE((*store)->FinishTrial(Succeeded("j", "b", 0.5)).ok());
  ASSERT_TRUE((*store)->FinishTrial(Succeeded("j", "c", 0.5)).ok());
  EXPECT_EQ((*store)->GetTrial("j", "a")->cached_from(), "");
  EXPECT_EQ((*store)->GetTrial("j", "b")->cached_from(), "a");
  EXPECT_EQ((*store)->GetTrial("j", "b")->cached_from_job(), "");
  EXPECT_EQ((*store)->GetTrial("j", "c")->cached_from(), "t000007");
  EXPECT_EQ((*store)->GetTrial("j", "c")->cached_from_job(), "earlier");
  EXPECT_EQ((*store)->CountTrials("j")->cache_hits, 2);
  absl::StatusOr<std::vector<v1::Trial>> evaluated = (*store)->EvaluatedTrials("j");
  ASSERT_TRUE(evaluated.ok()) << evaluated.status();
  ASSERT_EQ(evaluated->size(), 1u);
  EXPECT_EQ((*evaluated)[0].trial_id(), "a");
  EXPECT_DOUBLE_EQ((*evaluated)[0].metrics().reward(), 0.5);
  EXPECT_FALSE((*store)->GetTrial("j", "a")->final_training());
}

// One-shot jobs (docs/one_shot.md): final trials are stored as such, with the
// score that chose them, and the job's best trial is its best FINAL trial
// once one succeeded (one-shot rewards and final accuracies do not compare).
TEST(TrialStoreTest, FinalTrialsKeepTheirMarkAndScoreAndAreTheBestOnceOneSucceeded) {
  const std::string path = DbPath("final_trials");
  {
    auto store = TrialStore::Open({path, false}).value();
    ASSERT_TRUE(store->CreateJob(MakeJob("j")).ok());
    PendingTrial final_trial = MakeTrial("j", "t000002", -1, 0);
    final_trial.trial.set_final_training(true);
    final_trial.trial.set_one_shot_score(0.75);
    ASSERT_TRUE(store->InsertTrials({MakeTrial("j", "t000000", 0, 0), MakeTrial("j", "t000001", 0, 0),
                                     final_trial})
                    .ok());
    ASSERT_TRUE(store->FinishTrial(Succeeded("j", "t000000", 0.9)).ok());
    ASSERT_TRUE(store->FinishTrial(Succeeded("j", "t000001", 0.8)).ok());
    EXPECT_EQ(store->CountTrials("j")->best_trial_id, "t000000");  // no final trial done yet
    ASSERT_TRUE(store->FinishTrial(Succeeded("j", "t000002", 0.6)).ok());
  }
  auto store = TrialStore::Open({path, false}).value();
  const v1::Trial stored = store->GetTrial("j", "t000002").value();
  EXPECT_TRUE(stored.final_training());
  EXPECT_DOUBLE_EQ(stored.one_shot_score(), 0.75);
  EXPECT_FALSE(store->GetTrial("j", "t000000")->final_training());
  const TrialStore::TrialCounts counts = store->CountTrials("j").value();
  EXPECT_EQ(counts.best_trial_id, "t000002");
  EXPECT_DOUBLE_EQ(counts.best_reward, 0.6);
  // The mean is the search's (0.9 and 0.8), and the final trial is counted
  // apart from the search's budget.
  EXPECT_DOUBLE_EQ(counts.mean_reward, 0.85);
  EXPECT_EQ(counts.succeeded, 3);
  EXPECT_EQ(counts.final_finished, 1);
  // What `nasctl export JOB` (no trial: the best) and `nasctl trials` (best
  // first) get: the final trial, though a search task scored higher.
  EXPECT_EQ(store->GetTrial("j", "")->trial_id(), "t000002");
  int64_t total = 0;
  auto by_reward = store->ListTrials("j", v1::ListTrialsRequest::ORDER_REWARD, v1::TRIAL_STATE_UNSPECIFIED, 0,
                                     10, &total);
  ASSERT_TRUE(by_reward.ok()) << by_reward.status();
  ASSERT_EQ(by_reward->size(), 3u);
  EXPECT_EQ((*by_reward)[0].trial_id(), "t000002");
  EXPECT_EQ((*by_reward)[1].trial_id(), "t000000");
}

TEST(TrialStoreTest, CountsKeepTheComputeLedgerOfWorkerEvaluationsOnly) {
  auto store = TrialStore::Open({DbPath("ledger"), false}).value();
  ASSERT_TRUE(store->CreateJob(MakeJob("j")).ok());
  PendingTrial hit = MakeTrial("j", "hit", 0, 0);
  hit.trial.set_cached_from("full");
  ASSERT_TRUE(store->InsertTrials({MakeTrial("j", "full", 0, 0), MakeTrial("j", "stopped", 0, 0),
                                   hit, MakeTrial("j", "failed", 0, 0)})
                  .ok());
  v1::Trial full = Succeeded("j", "full", 0.9);
  full.mutable_metrics()->set_train_seconds(10.5);
  for (int e = 1; e <= 6; ++e) *full.mutable_metrics()->add_epochs() = Epoch(e, 0.9);
  v1::Trial stopped = Succeeded("j", "stopped", 0.2);
  stopped.mutable_metrics()->set_train_seconds(2.0);
  stopped.mutable_metrics()->set_stopped_early(true);
  for (int e = 1; e <= 2; ++e) *stopped.mutable_metrics()->add_epochs() = Epoch(e, 0.2);
  v1::Trial hit_outcome = full;  // a cache hit carries its evaluation's metrics
  hit_outcome.set_trial_id("hit");
  hit_outcome.set_cached_from("full");
  v1::Trial failed;
  failed.set_job_id("j");
  failed.set_trial_id("failed");
  failed.set_state(v1::TRIAL_STATE_FAILED);
  for (const v1::Trial& t : {full, stopped, hit_outcome, failed}) {
    ASSERT_TRUE(store->FinishTrial(t).ok()) << t.trial_id();
  }
  const TrialStore::TrialCounts counts = store->CountTrials("j").value();
  EXPECT_DOUBLE_EQ(counts.worker_seconds, 12.5);
  EXPECT_EQ(counts.epochs_trained, 8);
  EXPECT_EQ(counts.trials_stopped, 1);
  EXPECT_EQ(counts.stopped_epochs, 2);
  EXPECT_EQ(counts.cache_hits, 1);
}

TEST(TrialStoreTest, OpeningAFileThatIsNotADatabaseFailsWithoutDestroyingIt) {
  const std::string path = DbPath("garbage");
  ASSERT_TRUE(MakeDirectories(path.substr(0, path.rfind('/'))).ok());
  const std::string garbage(4096, 'x');
  ASSERT_TRUE(WriteFileAtomically(path, garbage).ok());
  auto store = TrialStore::Open({path});
  EXPECT_FALSE(store.ok());
  auto contents = ReadFile(path);
  ASSERT_TRUE(contents.ok());
  EXPECT_EQ(*contents, garbage);
}

TEST(TrialStoreTest, WritesOnAFullDiskFailNamingTheFileReadsGoOnAndTheWritesWorkOnceThereIsSpace) {
  RegisterFullDiskVfs();
  TrialStoreOptions options;
  options.path = DbPath("full_disk");
  options.vfs = kFullDiskVfs;
  auto store = TrialStore::Open(options);
  ASSERT_TRUE(store.ok()) << store.status();
  TrialStore& s = **store;
  ASSERT_TRUE(s.CreateJob(MakeJob("j")).ok());
  ASSERT_TRUE(s.InsertTrials({MakeTrial("j", "t1", 0, 0)}).ok());
  ASSERT_TRUE(s.FinishTrial(Succeeded("j", "t1", 0.5)).ok());
  EXPECT_EQ(s.write_failures(), 0);

  SetDiskFull(true);
  const std::vector<absl::Status> refused = {
      s.InsertTrials({MakeTrial("j", "t2", 0, 1)}),
      s.CreateJob(MakeJob("k")),
      s.UpdateJob([] {
        v1::Job ended = MakeJob("j");
        ended.set_state(v1::JOB_STATE_SUCCEEDED);
        return ended;
      }()),
  };
  for (const absl::Status& status : refused) {
    EXPECT_EQ(status.code(), absl::StatusCode::kResourceExhausted) << status;
    EXPECT_TRUE(absl::StrContains(status.message(), options.path)) << status;
  }
  EXPECT_EQ(s.write_failures(), 3);
  // Reads go on.
  auto trial = s.GetTrial("j", "t1");
  ASSERT_TRUE(trial.ok()) << trial.status();
  EXPECT_EQ(trial->state(), v1::TRIAL_STATE_SUCCEEDED);
  auto counts = s.CountTrials("j");
  ASSERT_TRUE(counts.ok());
  EXPECT_EQ(counts->succeeded, 1);
  auto jobs = s.LoadJobs();
  ASSERT_TRUE(jobs.ok());
  ASSERT_EQ(jobs->size(), 1u);
  EXPECT_EQ((*jobs)[0].state(), v1::JOB_STATE_RUNNING);

  SetDiskFull(false);
  ASSERT_TRUE(s.InsertTrials({MakeTrial("j", "t2", 0, 1)}).ok());
  auto finished = s.FinishTrial(Succeeded("j", "t2", 0.7));
  ASSERT_TRUE(finished.ok()) << finished.status();
  EXPECT_TRUE(*finished);
  counts = s.CountTrials("j");
  ASSERT_TRUE(counts.ok());
  EXPECT_EQ(counts->succeeded, 2);
}

TEST(TrialStoreTest, OpenChecksTheFileAndReportsOk) {
  auto store = TrialStore::Open({DbPath("quick_check")});
  ASSERT_TRUE(store.ok());
  EXPECT_EQ((*store)->integrity_report(), "ok");
}

// Two jobs; the trials of "job-damaged" are long enough that many table pages
// hold its rows and nothing else.
void FillTwoJobs(const std::string& path) {
  auto store = TrialStore::Open({path});
  ASSERT_TRUE(store.ok());
  ASSERT_TRUE((*store)->CreateJob(MakeJob("job-damaged")).ok());
  ASSERT_TRUE((*store)->CreateJob(MakeJob("job-intact")).ok());
  std::vector<PendingTrial> damaged, intact;
  for (int i = 0; i < 60; ++i) {
    PendingTrial t = MakeTrial("job-damaged", absl::StrCat("t", 100 + i), 0, i);
    t.trial.mutable_architecture()->set_canonical(std::string(600, 'a' + i % 26));
    damaged.push_back(std::move(t));
  }
  for (int i = 0; i < 20; ++i) intact.push_back(MakeTrial("job-intact", absl::StrCat("t", i), 0, 0));
  ASSERT_TRUE((*store)->InsertTrials(damaged).ok());
  ASSERT_TRUE((*store)->InsertTrials(intact).ok());
}

TEST(TrialStoreTest, DamagedPagesOfOneJobFailOnlyThatJobsCheckAndQuickCheckReportsThem) {
  const std::string path = DbPath("damaged");
  FillTwoJobs(path);
  auto damaged = DamagePages(path, "trials", "job-damaged", "job-intact", 3);
  ASSERT_TRUE(damaged.ok()) << damaged.status();
  ASSERT_EQ(*damaged, 3);
  auto store = TrialStore::Open({path});
  ASSERT_TRUE(store.ok()) << store.status();
  EXPECT_NE((*store)->integrity_report(), "ok");
  absl::Status check = (*store)->CheckJob("job-damaged");
  EXPECT_EQ(check.code(), absl::StatusCode::kDataLoss) << check;
  EXPECT_TRUE(absl::StrContains(check.message(), path)) << check;
  EXPECT_TRUE((*store)->CheckJob("job-intact").ok());
  int64_t total = 0;
  auto intact = (*store)->ListTrials("job-intact", v1::ListTrialsRequest::ORDER_TIME,
                                     v1::TRIAL_STATE_UNSPECIFIED, 0, 100, &total);
  ASSERT_TRUE(intact.ok()) << intact.status();
  EXPECT_EQ(intact->size(), 20u);
  // The intact job takes writes.
  EXPECT_TRUE((*store)->FinishTrial(Succeeded("job-intact", "t3", 0.5)).ok());
}

TEST(TrialStoreTest, AJobWhoseRowCannotBeReadIsLoadedFailedNamingItAndTheOthersLoad) {
  const std::string path = DbPath("bad_job_row");
  FillTwoJobs(path);
  {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
    ASSERT_EQ(sqlite3_exec(db, "UPDATE jobs SET spec_json='{not json' WHERE job_id='job-damaged'",
                           nullptr, nullptr, nullptr),
              SQLITE_OK);
    sqlite3_close(db);
  }
  auto store = TrialStore::Open({path});
  ASSERT_TRUE(store.ok());
  auto jobs = (*store)->LoadJobs();
  ASSERT_TRUE(jobs.ok()) << jobs.status();
  ASSERT_EQ(jobs->size(), 2u);
  for (const v1::Job& job : *jobs) {
    if (job.job_id() == "job-damaged") {
      EXPECT_EQ(job.state(), v1::JOB_STATE_FAILED);
      EXPECT_TRUE(absl::StrContains(job.error(), "job-damaged")) << job.error();
      EXPECT_TRUE(absl::StrContains(job.error(), "damaged")) << job.error();
    } else {
      EXPECT_EQ(job.state(), v1::JOB_STATE_RUNNING);
      EXPECT_EQ(job.spec().name(), "test job");
    }
  }
}

TEST(TrialStoreTest, AFileTooDamagedToOpenFailsNamingItAndTheRestore) {
  const std::string path = DbPath("header");
  FillTwoJobs(path);
  {
    // The first page holds the header and the schema.
    std::string contents = ReadFile(path).value();
    std::fill(contents.begin(), contents.begin() + 4096, '\xa5');
    ASSERT_TRUE(WriteFileAtomically(path, contents).ok());
  }
  auto store = TrialStore::Open({path});
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), absl::StatusCode::kDataLoss) << store.status();
  EXPECT_TRUE(absl::StrContains(store.status().message(), path)) << store.status();
  EXPECT_TRUE(absl::StrContains(store.status().message(), "backup")) << store.status();
}

TEST(TrialStoreTest, BackupsWhileWritingAreCompleteDatabasesAndOnlyTheNewestAreKept) {
  const std::string path = DbPath("backups");
  FillTwoJobs(path);
  auto store = TrialStore::Open({path});
  ASSERT_TRUE(store.ok());
  TrialStoreBackupOptions options;
  options.store = store->get();
  options.dir = absl::StrCat(std::getenv("TEST_TMPDIR"), "/backups/kept");
  options.interval = absl::Hours(1);
  options.keep = 2;
  auto backups = TrialStoreBackups::Start(options);
  ASSERT_TRUE(backups.ok()) << backups.status();
  std::atomic<bool> stop{false};
  std::thread writer([&] {
    for (int i = 0; !stop; ++i) {
      ASSERT_TRUE((*store)->InsertTrials({MakeTrial("job-intact", absl::StrCat("w", i), 0, 1)})
                      .ok());
    }
  });
  std::vector<std::string> written;
  for (int i = 0; i < 3; ++i) {
    auto file = (*backups)->BackupNow();
    ASSERT_TRUE(file.ok()) << file.status();
    written.push_back(*file);
  }
  stop = true;
  writer.join();
  EXPECT_FALSE(ReadFile(written[0]).ok()) << "the oldest backup beyond keep=2 is removed";
  for (int i = 1; i < 3; ++i) {
    auto copy = TrialStore::Open({written[i]});
    ASSERT_TRUE(copy.ok()) << copy.status();
    EXPECT_EQ((*copy)->integrity_report(), "ok");
    auto jobs = (*copy)->LoadJobs();
    ASSERT_TRUE(jobs.ok());
    EXPECT_EQ(jobs->size(), 2u);
    auto counts = (*copy)->CountTrials("job-damaged");
    ASSERT_TRUE(counts.ok());
    EXPECT_EQ(counts->queued, 60);
  }
}

TEST(ArchitectureJsonTest, IsByteForByteWhatTheProtobufPrinterWrites) {
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  std::mt19937 rng(11);
  auto value = [&](int range) { return static_cast<int>(rng() % (2 * range + 1)) - range; };
  std::vector<v1::Architecture> cases(1);    // the empty architecture first
  cases.emplace_back().mutable_macro_cnn();  // a macro form without layers
  for (int n = 0; n < 300; ++n) {
    v1::Architecture a;
    for (int t = 0, tokens = value(20); t < tokens; ++t) a.add_tokens(value(3));
    const int layers = static_cast<int>(rng() % 8);
    for (int i = 0; i < layers; ++i) {
      v1::MacroCnnLayer* l = a.mutable_macro_cnn()->add_layers();
      // Zeros included: the printer leaves default values out.
      l->set_filter_height(value(2) * 3);
      l->set_filter_width(value(1) * 7);
      l->set_num_filters(value(1) * 64);
      l->set_stride(value(2));
      for (int j = 0, inputs = value(3); j < inputs; ++j) l->add_inputs(value(i + 1));
    }
    if (n % 3 > 0) a.set_canonical(CanonicalLikeString(a, n));
    if (n % 10 == 9) a.mutable_cell()->add_edge_operations("nor_conv_3x3");  // another form
    cases.push_back(a);
  }
  for (const v1::Architecture& a : cases) {
    std::string expected;
    ASSERT_TRUE(google::protobuf::util::MessageToJsonString(a, &expected, options).ok());
    EXPECT_EQ(ArchitectureJson(a), expected) << a.ShortDebugString();
  }
}

}  // namespace
}  // namespace nas::controller
