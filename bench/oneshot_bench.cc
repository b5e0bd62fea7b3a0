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
//   bazel run -c opt //bench:oneshot_bench -- --strategy=reinforce
#include <sys/stat.h>

#include <algorithm>
#include <cstdio>
#include <string>
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

ABSL_FLAG(std::string, strategy, "reinforce", "reinforce (ENAS) or darts.");
ABSL_FLAG(int, shards, 2, "Parameter-server shards S.");
ABSL_FLAG(int, workers, 2, "Workers W (each uses --worker_threads LibTorch threads).");
ABSL_FLAG(int, worker_threads, 1, "LibTorch threads per worker.");
ABSL_FLAG(int, search_trials, 60, "One-shot search tasks (budget.max_trials).");
ABSL_FLAG(int, train_steps, 20, "Training minibatches per search task.");
ABSL_FLAG(int, cells_per_stage, 1, "Cells per stage of the space.");
ABSL_FLAG(int, channels, 16, "initial_channels of the space.");
ABSL_FLAG(int, final_epochs, 8, "Epochs of the final training.");
ABSL_FLAG(int, final_validation, 1000, "Training images held out for validation in the final training.");
ABSL_FLAG(int, top_k, 1, "Architectures trained from scratch at the end.");
ABSL_FLAG(double, goal_minutes, 20, "Goal: submit to end (final training included) within this.");
ABSL_FLAG(double, goal_accuracy, 0.93, "Goal: the best final trial's test accuracy at least this.");
ABSL_FLAG(std::string, spec_out, "", "Also write the job spec used here (for docs).");

namespace nas {
namespace {

std::string JobSpec() {
  const bool darts = absl::GetFlag(FLAGS_strategy) == "darts";
  return absl::StrCat(R"(
name: oneshot-bench
search_space:
  cell: {num_nodes: 4, operations: [none, skip_connect, nor_conv_1x1, nor_conv_3x3, avg_pool_3x3],
         cells_per_stage: )", absl::GetFlag(FLAGS_cells_per_stage),
                      ", initial_channels: ", absl::GetFlag(FLAGS_channels), R"(}
strategy: {name: )", absl::GetFlag(FLAGS_strategy), R"(, seed: 1}
controller: {learning_rate: )", darts ? "0.0003" : "0.0035", R"(}
parallelism: {num_replicas: 1, children_per_replica: )", darts ? 1 : absl::GetFlag(FLAGS_workers), R"(}
budget: {max_trials: )", absl::GetFlag(FLAGS_search_trials), R"(}
evaluator:
  shared:
    data: {dataset: fashion_mnist, batch_size: 64, validation_size: 5000}
    train_steps: )", absl::GetFlag(FLAGS_train_steps), R"(
    reward_batches: 2
    final_top_k: )", absl::GetFlag(FLAGS_top_k), R"(
    final_training: {dataset: fashion_mnist, epochs: )", absl::GetFlag(FLAGS_final_epochs), R"(, batch_size: 64,
                     validation_size: )", absl::GetFlag(FLAGS_final_validation), R"(, learning_rate: 0.05,
                     test_accuracy: true}
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
  options.workers = absl::GetFlag(FLAGS_workers);
  options.ps_flags = {"--log_level=warning"};
  options.controller_flags = {"--log_level=warning"};
  options.worker_flags = {absl::StrCat("--threads=", absl::GetFlag(FLAGS_worker_threads)), "--log_level=warning"};
  options.workers_reach_parameter_servers = true;  // for ω (docs/one_shot.md)
  absl::StatusOr<std::unique_ptr<testing::Cluster>> cluster = testing::Cluster::Start(options);
  if (!cluster.ok()) return fail(std::string(cluster.status().message()));
  const std::string spec = JobSpec();
  if (!absl::GetFlag(FLAGS_spec_out).empty()) (void)WriteFileAtomically(absl::GetFlag(FLAGS_spec_out), spec);
  testing::JobClient& jobs = (*cluster)->jobs();
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
  return nas::Run();
}
