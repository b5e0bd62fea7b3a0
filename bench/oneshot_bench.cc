// Time to quality of one-shot search through the service (issue 21, point
// 5; docs/benchmarks.md): real nas_parameter_server (S shards),
// nas_controller and nas_worker (W) processes on this machine run a
// Fashion-MNIST job with evaluator.shared (ENAS: --strategy=reinforce, or
// --strategy=darts) whose final trial retrains the chosen architecture from
// scratch on the full training set (all but --final_validation images) and
// measures it on the 10,000 test images (evaluator.train.test_accuracy).
// Prints the wall time from submit to the job's end (final training
// included), the search's and the final phase's shares, and the final
// test accuracy; exits 1 when the job fails, takes longer than
// --goal_minutes or the best final trial's test accuracy is below
// --goal_accuracy.
//
// One-shot runs W = 1 worker with all the machine's cores: the search
// tasks are seconds each, and the final trial trains on one worker, so a
// second worker would only split the cores (two workers of 2 LibTorch
// threads each on 2 cores made search tasks 3x slower).
//
// --strategy=full is the reference the issue compares with: full-training
// REINFORCE as examples/fashion_mnist_quick.yaml searches (its space and
// proxy training, W = 2 workers of one thread each, as the quick start)
// for --full_search_minutes through the same processes,
// then its best child retrained here, in this process, with exactly the
// final training a one-shot job's final trial gets (the train evaluator's
// code, the same spec, the test split), the retraining counted in the wall
// time. Its goals are the same two figures.
//
//   bazel run -c opt //bench:oneshot_bench -- --strategy=reinforce
//   bazel run -c opt //bench:oneshot_bench -- --strategy=full
#include <sys/stat.h>

#include <algorithm>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/file_util.h"
#include "tests/cluster.h"
#include "worker/dataset.h"
#include "worker/device.h"
#include "worker/evaluator.h"
#include "worker/train_evaluator.h"

ABSL_FLAG(std::string, strategy, "reinforce",
          "reinforce (ENAS), darts, or full (the full-training REINFORCE reference).");
ABSL_FLAG(double, full_search_minutes, 16,
          "--strategy=full: the search's wall budget before retraining.");
ABSL_FLAG(int, shards, 2, "Parameter-server shards S.");
ABSL_FLAG(int, workers, 0,
          "Workers W (each uses --worker_threads LibTorch threads); 0 = by strategy: 1 for "
          "one-shot (one worker trains the final trial with every core), 2 for full (as the "
          "quick start).");
ABSL_FLAG(int, worker_threads, 0,
          "LibTorch threads per worker; 0 = the machine's cores / W (more threads than cores slow "
          "every worker down several times).");
ABSL_FLAG(int, retrain_threads, 0,
          "--strategy=full: LibTorch threads of the retraining (0 = the machine's cores).");
ABSL_FLAG(int, search_trials, 60, "One-shot search tasks (budget.max_trials).");
ABSL_FLAG(int, train_steps, 20, "Training minibatches per search task.");
ABSL_FLAG(int, cells_per_stage, 1, "Cells per stage of the space.");
ABSL_FLAG(int, channels, 16, "initial_channels of the space.");
ABSL_FLAG(int, final_epochs, 10, "Epochs of the final training.");
ABSL_FLAG(int, final_validation, 1000, "Training images held out for validation in the final training.");
ABSL_FLAG(int, top_k, 1, "Architectures trained from scratch at the end.");
ABSL_FLAG(double, goal_minutes, 20, "Goal: submit to end (final training included) within this.");
ABSL_FLAG(double, goal_accuracy, 0.93, "Goal: the best final trial's test accuracy at least this.");
ABSL_FLAG(std::string, spec_out, "", "Also write the job spec used here (for docs).");
ABSL_FLAG(std::string, runfiles, "",
          "Runfiles directory holding the binaries (default: $TEST_SRCDIR, else <argv[0]>.runfiles).");

namespace nas {
namespace {

int Cores() { return std::max(1, static_cast<int>(std::thread::hardware_concurrency())); }

int Workers() {
  if (absl::GetFlag(FLAGS_workers) > 0) return absl::GetFlag(FLAGS_workers);
  return absl::GetFlag(FLAGS_strategy) == "full" ? 2 : 1;
}

int WorkerThreads() {
  if (absl::GetFlag(FLAGS_worker_threads) > 0) return absl::GetFlag(FLAGS_worker_threads);
  return std::max(1, Cores() / Workers());
}

// The final training every mode ends with: as a spec (the reference's
// in-process retraining) and as the job spec's YAML (one-shot jobs).
v1::TrainEvaluatorSpec FinalTrainingSpec() {
  v1::TrainEvaluatorSpec spec;
  spec.set_dataset("fashion_mnist");
  spec.set_epochs(absl::GetFlag(FLAGS_final_epochs));
  spec.set_batch_size(64);
  spec.set_validation_size(absl::GetFlag(FLAGS_final_validation));
  spec.set_learning_rate(0.05);
  spec.set_test_accuracy(true);
  return spec;
}

std::string FinalTraining() {
  const v1::TrainEvaluatorSpec spec = FinalTrainingSpec();
  return absl::StrCat("{dataset: ", spec.dataset(), ", epochs: ", spec.epochs(), ", batch_size: ", spec.batch_size(),
                      ", validation_size: ", spec.validation_size(), ", learning_rate: ", spec.learning_rate(),
                      ", test_accuracy: true}");
}

// --strategy=full: `searched` retrained from scratch with the final
// training, on this process's CPU with the workers' thread count.
absl::StatusOr<v1::TrialMetrics> Retrain(const v1::Job& job, const v1::Trial& searched) {
  v1::Task task;
  task.set_job_id(job.job_id());
  task.set_trial_id("retrain");
  *task.mutable_architecture() = searched.architecture();
  *task.mutable_search_space() = job.spec().search_space();
  *task.mutable_evaluator()->mutable_train() = FinalTrainingSpec();
  task.mutable_reward()->set_last_epochs(1);
  task.mutable_reward()->set_power(1);
  const std::vector<std::string> roots = {"/usr/share/datasets"};
  auto set = worker::LoadTrainingSet("fashion_mnist", "", roots);
  if (!set.ok()) return set.status();
  auto test = worker::LoadTestSet("fashion_mnist", "", roots);
  if (!test.ok()) return test.status();
  const int threads = absl::GetFlag(FLAGS_retrain_threads);
  worker::SetTorchThreads(threads > 0 ? threads : Cores());
  return worker::TrainOnImages(task, **set, "cpu", worker::EvaluationContext(), 0, test->get());
}

// examples/fashion_mnist_quick.yaml with a wall budget.
std::string FullTrainingSpec() {
  return absl::StrCat(R"(
name: oneshot-bench-full-reference
search_space:
  macro_cnn:
    filter_heights: [3, 5]
    filter_widths: [3, 5]
    num_filters: [24, 36, 48, 64]
    strides: [2]
    skip_connections: true
    depth: {initial_layers: 4, max_layers: 4}
strategy: {name: reinforce, seed: 7}
controller: {learning_rate: 0.006}
parallelism: {num_replicas: 2, children_per_replica: 2}
budget: {max_trials: 1000, max_wall_seconds: )", static_cast<int>(absl::GetFlag(FLAGS_full_search_minutes) * 60),
                      R"(}
evaluator:
  train: {dataset: fashion_mnist, epochs: 3, batch_size: 32, train_size: 20000, validation_size: 2000,
          learning_rate: 0.05}
  lease_seconds: 120
reward: {last_epochs: 3, power: 1}
)");
}

// DARTS' α learns with Adam at 3e-3, ten times the paper's 3e-4: the
// paper's rate moves α by at most ~0.2 over the few hundred steps a
// 20-minute budget leaves, too little to choose anything.
std::string JobSpec() {
  if (absl::GetFlag(FLAGS_strategy) == "full") return FullTrainingSpec();
  const bool darts = absl::GetFlag(FLAGS_strategy) == "darts";
  return absl::StrCat(R"(
name: oneshot-bench
search_space:
  cell: {num_nodes: 4, operations: [none, skip_connect, nor_conv_1x1, nor_conv_3x3, avg_pool_3x3],
         cells_per_stage: )", absl::GetFlag(FLAGS_cells_per_stage),
                      ", initial_channels: ", absl::GetFlag(FLAGS_channels), R"(}
strategy: {name: )", absl::GetFlag(FLAGS_strategy), R"(, seed: 1}
controller: {learning_rate: )", darts ? "0.003" : "0.0035", R"(}
parallelism: {num_replicas: 1, children_per_replica: )", darts ? 1 : Workers(), R"(}
budget: {max_trials: )", absl::GetFlag(FLAGS_search_trials), R"(}
evaluator:
  shared:
    data: {dataset: fashion_mnist, batch_size: 64, validation_size: 5000}
    train_steps: )", absl::GetFlag(FLAGS_train_steps), R"(
    reward_batches: 2
    final_top_k: )", absl::GetFlag(FLAGS_top_k), R"(
    final_training: )", FinalTraining(), R"(
  max_attempts: 2
  lease_seconds: 600
reward: {last_epochs: 1, power: 1}
)");
}

int Run() {
  int failures = 0;
  auto fail = [&](const std::string& what) {
    std::printf("FAILED: %s\n", what.c_str());
    ++failures;
    return 1;
  };
  testing::ClusterOptions options;
  options.name = "oneshot-bench";
  options.shards = absl::GetFlag(FLAGS_shards);
  options.workers = Workers();
  options.ps_flags = {"--log_level=warning"};
  options.controller_flags = {"--log_level=warning"};
  options.worker_flags = {absl::StrCat("--threads=", WorkerThreads()), "--log_level=warning"};
  options.workers_reach_parameter_servers = true;  // for ω (docs/one_shot.md)
  absl::StatusOr<std::unique_ptr<testing::Cluster>> cluster = testing::Cluster::Start(options);
  if (!cluster.ok()) return fail(std::string(cluster.status().message()));
  const std::string spec = JobSpec();
  if (!absl::GetFlag(FLAGS_spec_out).empty()) (void)WriteFileAtomically(absl::GetFlag(FLAGS_spec_out), spec);
  testing::JobClient& jobs = (*cluster)->jobs();
  std::printf("cluster S=%d W=%d threads_per_worker=%d final_epochs=%d\n", options.shards,
              options.workers, WorkerThreads(), absl::GetFlag(FLAGS_final_epochs));
  const absl::Time start = absl::Now();
  std::string id;
  if (grpc::Status submitted = jobs.Submit(spec, &id); !submitted.ok()) {
    return fail(absl::StrCat("submit: ", submitted.error_message()));
  }
  const v1::Job job = jobs.WaitForEnd(id, absl::Minutes(absl::GetFlag(FLAGS_goal_minutes) * 3));
  const double minutes = absl::ToDoubleMinutes(absl::Now() - start);
  if (job.state() != v1::JOB_STATE_SUCCEEDED) {
    return fail(absl::StrCat("job ", id, " ended ", v1::JobState_Name(job.state()), " ", job.error(), "\n",
                             (*cluster)->Logs()));
  }
  std::vector<v1::Trial> trials;
  if (grpc::Status listed = jobs.Trials(id, &trials); !listed.ok()) {
    return fail(absl::StrCat("trials: ", listed.error_message()));
  }
  if (absl::GetFlag(FLAGS_strategy) == "full") {
    const v1::Trial* searched = nullptr;
    for (const v1::Trial& t : trials) {
      if (t.state() == v1::TRIAL_STATE_SUCCEEDED &&
          (searched == nullptr || t.metrics().reward() > searched->metrics().reward())) {
        searched = &t;
      }
    }
    if (searched == nullptr) return fail("the reference search had no succeeded trial");
    const double search_minutes = minutes;
    absl::StatusOr<v1::TrialMetrics> retrained = Retrain(job, *searched);
    if (!retrained.ok()) return fail(absl::StrCat("retraining: ", retrained.status().message()));
    const double total = absl::ToDoubleMinutes(absl::Now() - start);
    std::printf("full_search_trials %zu trials\n", trials.size());
    std::printf("full_search_minutes %.2f min\n", search_minutes);
    std::printf("full_retrain_minutes %.2f min\n", total - search_minutes);
    std::printf("full_total_minutes %.2f min (goal <= %.1f)\n", total, absl::GetFlag(FLAGS_goal_minutes));
    std::printf("full_best_architecture %s\n", searched->architecture().canonical().c_str());
    std::printf("full_search_validation_accuracy %.4f\n", searched->metrics().accuracy());
    std::printf("full_final_test_accuracy %.4f (goal >= %.3f)\n", retrained->test_accuracy(),
                absl::GetFlag(FLAGS_goal_accuracy));
    if (total > absl::GetFlag(FLAGS_goal_minutes)) {
      fail(absl::StrFormat("GOAL MISSED: full_total_minutes %.2f > %.1f", total, absl::GetFlag(FLAGS_goal_minutes)));
    }
    if (retrained->test_accuracy() < absl::GetFlag(FLAGS_goal_accuracy)) {
      fail(absl::StrFormat("GOAL MISSED: full_final_test_accuracy %.4f < %.3f", retrained->test_accuracy(),
                           absl::GetFlag(FLAGS_goal_accuracy)));
    }
    if (failures == 0) std::printf("all goals met\n");
    return failures == 0 ? 0 : 1;
  }
  // The search ends when its last task ends; the final phase from there.
  int64_t search_end_ms = 0;
  const v1::Trial* best = nullptr;
  int search = 0;
  int64_t max_staleness = 0, bytes = 0;
  for (const v1::Trial& t : trials) {
    if (t.final_training()) {
      if (t.state() == v1::TRIAL_STATE_SUCCEEDED &&
          (best == nullptr || t.metrics().test_accuracy() > best->metrics().test_accuracy())) {
        best = &t;
      }
      continue;
    }
    ++search;
    search_end_ms = std::max(search_end_ms, t.end_time_unix_ms());
    max_staleness = std::max(max_staleness, t.metrics().shared().max_staleness());
    bytes += t.metrics().shared().bytes_pulled() + t.metrics().shared().bytes_pushed();
  }
  if (best == nullptr) return fail("no final trial succeeded");
  const double search_minutes = (search_end_ms - job.start_time_unix_ms()) / 60000.0;
  std::printf("oneshot_strategy %s\n", absl::GetFlag(FLAGS_strategy).c_str());
  std::printf("oneshot_search_tasks %d tasks\n", search);
  std::printf("oneshot_search_minutes %.2f min\n", search_minutes);
  std::printf("oneshot_final_minutes %.2f min\n", minutes - search_minutes);
  std::printf("oneshot_total_minutes %.2f min (goal <= %.1f)\n", minutes, absl::GetFlag(FLAGS_goal_minutes));
  std::printf("oneshot_omega_bytes_per_task %.1f MB\n", search > 0 ? bytes / 1e6 / search : 0.0);
  std::printf("oneshot_max_staleness %lld versions\n", static_cast<long long>(max_staleness));
  std::printf("oneshot_best_architecture %s\n", best->architecture().canonical().c_str());
  std::printf("oneshot_final_validation_accuracy %.4f\n", best->metrics().accuracy());
  std::printf("oneshot_final_test_accuracy %.4f (goal >= %.3f)\n", best->metrics().test_accuracy(),
              absl::GetFlag(FLAGS_goal_accuracy));
  if (minutes > absl::GetFlag(FLAGS_goal_minutes)) {
    fail(absl::StrFormat("GOAL MISSED: oneshot_total_minutes %.2f > %.1f", minutes,
                         absl::GetFlag(FLAGS_goal_minutes)));
  }
  if (best->metrics().test_accuracy() < absl::GetFlag(FLAGS_goal_accuracy)) {
    fail(absl::StrFormat("GOAL MISSED: oneshot_final_test_accuracy %.4f < %.3f", best->metrics().test_accuracy(),
                         absl::GetFlag(FLAGS_goal_accuracy)));
  }
  if (failures == 0) std::printf("all goals met\n");
  return failures == 0 ? 0 : 1;
}

}  // namespace
}  // namespace nas

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  // test_util starts the binaries from $TEST_SRCDIR (a runfiles tree).
  if (absl::Status s = nas::testing::UseRunfiles(argv[0], absl::GetFlag(FLAGS_runfiles)); !s.ok()) {
    std::fprintf(stderr, "%s\n", std::string(s.message()).c_str());
    return 2;
  }
  return nas::Run();
}
