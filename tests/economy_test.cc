// Compute economy across real processes: a parameter server, the controller
// and three nas_worker processes (synthetic evaluator, heartbeats every
// epoch). A REINFORCE job in a space of four architectures spends no worker
// run on a repeat (the result cache answers them), and jobs with an
// early-stopping rule stop children on their learning curves: the stopped
// ones report shorter curves, marked stopped_early, rewarded from the epochs
// they trained.
#include <grpcpp/grpcpp.h>

#include <cmath>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "proto/job_service.grpc.pb.h"
#include "tests/cluster.h"

namespace nas::testing {
namespace {

class EconomyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ClusterOptions options;
    options.name = "economy";
    options.workers = 3;
    options.worker_flags = {"--heartbeat_interval=20ms"};
    auto cluster = Cluster::Start(options);
    ASSERT_TRUE(cluster.ok()) << cluster.status();
    cluster_ = *std::move(cluster);
  }

  std::string Submit(const std::string& yaml) {
    std::string job_id;
    grpc::Status status = cluster_->jobs().Submit(yaml, &job_id);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return job_id;
  }

  v1::Job WaitUntilDone(const std::string& job_id) {
    return cluster_->jobs().WaitForEnd(job_id, absl::Seconds(150));
  }

  std::vector<v1::Trial> Trials(const std::string& job_id) {
    std::vector<v1::Trial> trials;
    grpc::Status status = cluster_->jobs().Trials(job_id, &trials);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return trials;
  }

  std::unique_ptr<Cluster> cluster_;
};

TEST_F(EconomyTest, ReinforceInASmallSpaceSpendsNoWorkerRunOnRepeats) {
  const std::string job_id = Submit(R"(
name: repeats
search_space:
  macro_cnn: {filter_heights: [3, 5], filter_widths: [3], num_filters: [24],
              skip_connections: false, depth: {initial_layers: 2, max_layers: 2}}
strategy: {name: reinforce, seed: 3}
controller: {learning_rate: 0.01}
parallelism: {num_replicas: 2, children_per_replica: 2}
budget: {max_trials: 10}
evaluator: {synthetic: {duration_seconds: 0.05}}
)");
  const v1::Job job = WaitUntilDone(job_id);
  ASSERT_EQ(job.state(), v1::JOB_STATE_SUCCEEDED) << job.error() << cluster_->Logs();
  EXPECT_EQ(job.samples(), 100) << "budget.max_samples defaults to 10 x max_trials";
  const std::vector<v1::Trial> trials = Trials(job_id);
  ASSERT_EQ(trials.size(), 100u);
  std::map<std::string, int> runs;  // worker runs per architecture
  int hits = 0;
  for (const v1::Trial& t : trials) {
    EXPECT_EQ(t.state(), v1::TRIAL_STATE_SUCCEEDED) << t.trial_id() << " " << t.error();
    if (t.cached_from().empty()) {
      ++runs[t.architecture().canonical()];
      EXPECT_FALSE(t.worker_id().empty()) << t.trial_id();
    } else {
      ++hits;
      EXPECT_TRUE(t.worker_id().empty()) << t.trial_id();
      EXPECT_EQ(t.attempts(), 0) << t.trial_id();
    }
  }
  EXPECT_LE(runs.size(), 4u);
  for (const auto& [canonical, n] : runs) EXPECT_EQ(n, 1) << canonical << " evaluated twice";
  EXPECT_EQ(hits, 100 - static_cast<int>(runs.size()));
  EXPECT_EQ(job.cache_hits(), hits);
  // The ledger counts the worker runs alone: no worker-second went to a repeat.
  double worker_seconds = 0;
  for (const v1::Trial& t : trials) {
    if (t.cached_from().empty()) worker_seconds += t.metrics().train_seconds();
  }
  EXPECT_GT(job.worker_seconds(), 0);
  EXPECT_NEAR(job.worker_seconds(), worker_seconds, 1e-6);
  EXPECT_EQ(job.epochs_trained(), static_cast<int64_t>(runs.size()));
}

// Every trial of an early-stopping job: a stopped one trained fewer than
// `epochs` epochs and its reward is that of the epochs it trained; the
// others trained all. Returns how many were stopped.
int CheckStoppedTrials(const std::vector<v1::Trial>& trials, int epochs, double power) {
  int stopped = 0;
  for (const v1::Trial& t : trials) {
    EXPECT_EQ(t.state(), v1::TRIAL_STATE_SUCCEEDED) << t.trial_id() << " " << t.error();
    if (!t.cached_from().empty()) continue;
    const v1::TrialMetrics& m = t.metrics();
    double best = 0;
    for (const v1::EpochResult& e : m.epochs()) best = std::max(best, e.validation_accuracy());
    EXPECT_LE(m.accuracy(), best + 1e-12) << t.trial_id() << ": better than its curve";
    EXPECT_NEAR(m.reward(), std::pow(m.accuracy(), power), 1e-9) << t.trial_id();
    if (m.stopped_early()) {
      ++stopped;
      EXPECT_LT(m.epochs_size(), epochs) << t.trial_id();
      EXPECT_GE(m.epochs_size(), 1) << t.trial_id();
    } else {
      EXPECT_EQ(m.epochs_size(), epochs) << t.trial_id();
    }
  }
  return stopped;
}

TEST_F(EconomyTest, MedianAndSuccessiveHalvingJobsStopChildrenOnTheirCurves) {
  const std::string spec = R"(
search_space:
  cell: {num_nodes: 4, operations: [none, skip_connect, nor_conv_1x1, nor_conv_3x3, avg_pool_3x3]}
strategy: {name: random, seed: 11}
parallelism: {num_replicas: 2, children_per_replica: 3}
budget: {max_trials: 30}
reward: {power: 2}
evaluator: {synthetic: {duration_seconds: 0.6, epochs: 6}}
)";
  const std::string median =
      Submit(spec + "name: median\nearly_stopping: {rule: median, min_epochs: 1, min_trials: 3}\n");
  const std::string asha =
      Submit(spec + "name: asha\nearly_stopping: {rule: successive_halving, min_epochs: 1, eta: 2}\n");
  for (const std::string& job_id : {median, asha}) {
    const v1::Job job = WaitUntilDone(job_id);
    ASSERT_EQ(job.state(), v1::JOB_STATE_SUCCEEDED)
        << job.error() << cluster_->Logs();
    const std::vector<v1::Trial> trials = Trials(job_id);
    const int stopped = CheckStoppedTrials(trials, 6, 2.0);
    EXPECT_GT(stopped, 0) << job.spec().name() << ": nothing was stopped";
    // The ledger: epochs trained and saved add up to 6 per evaluation.
    int64_t evaluations = 0;
    for (const v1::Trial& t : trials) evaluations += t.cached_from().empty() ? 1 : 0;
    EXPECT_EQ(job.trials_stopped(), stopped);
    EXPECT_GT(job.epochs_saved(), 0);
    EXPECT_EQ(job.epochs_trained() + job.epochs_saved(), 6 * evaluations) << job.spec().name();
  }
}

// evaluator.reuse_results across jobs: a second job with reuse on, in the
// same space with the same evaluator settings (all but lease_seconds and
// max_attempts, which are not in the fingerprint), is answered by the first
// job's evaluations with no worker run; a job whose evaluator differs in a
// setting that changes the result, and a job with reuse off, evaluate
// afresh.
TEST_F(EconomyTest, ReuseResultsAnswersALaterJobFromAnEarlierJobsEvaluations) {
  const std::string space = R"(
search_space:
  macro_cnn: {filter_heights: [3, 5], filter_widths: [3], num_filters: [24],
              skip_connections: false, depth: {initial_layers: 2, max_layers: 2}}
parallelism: {num_replicas: 2, children_per_replica: 2}
)";
  const std::string first = Submit(space + R"(
name: reuse-first
strategy: {name: random, seed: 3}
budget: {max_trials: 4}
evaluator: {synthetic: {duration_seconds: 0.05}, reuse_results: true}
)");
  const v1::Job first_job = WaitUntilDone(first);
  ASSERT_EQ(first_job.state(), v1::JOB_STATE_SUCCEEDED)
      << first_job.error() << cluster_->Logs();
  std::map<std::string, v1::Trial> evaluated;  // the worker runs, by trial id
  for (const v1::Trial& t : Trials(first)) {
    if (t.cached_from().empty() && t.state() == v1::TRIAL_STATE_SUCCEEDED) {
      evaluated[t.trial_id()] = t;
    }
  }
  ASSERT_EQ(evaluated.size(), 4u) << "the first job evaluated the whole space";

  const std::string second = Submit(space + R"(
name: reuse-second
strategy: {name: reinforce, seed: 9}
budget: {max_trials: 4, max_samples: 40}
evaluator: {synthetic: {duration_seconds: 0.05}, reuse_results: true, lease_seconds: 30,
            max_attempts: 2}
)");
  // Differs in a setting that changes the result: not answered by the first.
  const std::string other_evaluator = Submit(space + R"(
name: reuse-other-evaluator
strategy: {name: random, seed: 3}
budget: {max_trials: 4, max_samples: 12}
evaluator: {synthetic: {duration_seconds: 0.05, epochs: 2}, reuse_results: true}
)");
  // Reuse off: takes nothing.
  const std::string without = Submit(space + R"(
name: reuse-off
strategy: {name: random, seed: 3}
budget: {max_trials: 4, max_samples: 12}
evaluator: {synthetic: {duration_seconds: 0.05}}
)");

  const v1::Job second_job = WaitUntilDone(second);
  ASSERT_EQ(second_job.state(), v1::JOB_STATE_SUCCEEDED)
      << second_job.error() << cluster_->Logs();
  const std::vector<v1::Trial> trials = Trials(second);
  ASSERT_EQ(trials.size(), 40u);
  for (const v1::Trial& t : trials) {
    EXPECT_EQ(t.state(), v1::TRIAL_STATE_SUCCEEDED) << t.trial_id() << " " << t.error();
    EXPECT_EQ(t.cached_from_job(), first) << t.trial_id();
    auto source = evaluated.find(t.cached_from());
    ASSERT_NE(source, evaluated.end()) << t.trial_id() << " names " << t.cached_from();
    EXPECT_EQ(source->second.architecture().canonical(), t.architecture().canonical())
        << t.trial_id();
    EXPECT_TRUE(t.worker_id().empty()) << t.trial_id();
    EXPECT_EQ(t.attempts(), 0) << t.trial_id();
    // The source's metrics, as measured.
    EXPECT_EQ(t.metrics().reward(), source->second.metrics().reward()) << t.trial_id();
    EXPECT_EQ(t.metrics().accuracy(), source->second.metrics().accuracy()) << t.trial_id();
    EXPECT_EQ(t.metrics().train_seconds(), source->second.metrics().train_seconds())
        << t.trial_id();
  }
  // Counted like same-job hits: every sample a hit, no worker-second spent.
  EXPECT_EQ(second_job.cache_hits(), 40);
  EXPECT_EQ(second_job.worker_seconds(), 0);
  EXPECT_EQ(second_job.epochs_trained(), 0);

  for (const std::string& job_id : {other_evaluator, without}) {
    const v1::Job job = WaitUntilDone(job_id);
    ASSERT_EQ(job.state(), v1::JOB_STATE_SUCCEEDED) << job.error();
    int runs = 0;
    for (const v1::Trial& t : Trials(job_id)) {
      EXPECT_TRUE(t.cached_from_job().empty()) << job.spec().name() << " " << t.trial_id();
      runs += t.cached_from().empty() ? 1 : 0;
    }
    EXPECT_GT(runs, 0) << job.spec().name();
    EXPECT_GT(job.worker_seconds(), 0) << job.spec().name();
  }
}

}  // namespace
}  // namespace nas::testing
