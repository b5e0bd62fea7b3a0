// Benchmark: one-shot (ENAS) training speed of a worker. Trains one fixed
// child of a NAS-Bench-201 cell supernet on Fashion-MNIST two ways:
//   one-shot — the one-shot evaluator (worker/oneshot_evaluator.h) running
//              ENAS tasks: per minibatch it pulls the child's slices of ω
//              through a WeightsClient, forwards and backwards the child,
//              pushes the gradients (sparse), and per task scores the child
//              on one validation minibatch;
//   bare     — a LibTorch loop over the same supernet and child: forward,
//              backward and an SGD (momentum) step on the child's
//              parameters, the same batch size and data split.
// The bare loop runs before and after the one-shot tasks (after warm-ups)
// and the mean is taken, as this shared VM's speed drifts. Prints training
// images/s of each, their ratio, and ω bytes pulled and pushed per step.
// Goal (docs/benchmarks.md): ratio >= 0.9; exits 1 below it, or when a
// measurement fails. Where ω lives is pluggable (--weights):
//   memory — worker/in_memory_weights.h (plain SGD applied in this process);
//   shards — --shards real parameter-server shards in this process
//            (parameter_server/in_process_shards.h) behind the gRPC client
//            (controller/ps_weights_client.h), as a worker reaches them.
//   bazel run //bench:supernet_bench [-- --weights=shards --shards=2]
#include <torch/torch.h>

#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "controller/ps_weights_client.h"
#include "parameter_server/in_process_shards.h"
#include "worker/dataset.h"
#include "worker/image_split.h"
#include "worker/in_memory_weights.h"
#include "worker/oneshot_evaluator.h"
#include "worker/supernet.h"

ABSL_FLAG(std::string, weights, "memory", "Where ω lives: memory or shards.");
ABSL_FLAG(int, shards, 2, "Parameter-server shards with --weights=shards.");
ABSL_FLAG(int, steps, 40, "Training minibatches per one-shot task.");
ABSL_FLAG(int, tasks, 3, "Timed one-shot tasks.");
ABSL_FLAG(int, channels, 16, "The cell space's initial_channels.");

namespace {

constexpr int kBatch = 64;
constexpr int kValidation = 1000;
constexpr int kTrainSize = 8192;
const char kJob[] = "bench";

nas::v1::Task BenchTask() {
  nas::v1::Task task;
  task.set_job_id(kJob);
  task.set_task_id("bench/1#1");
  nas::v1::CellSpace* space = task.mutable_search_space()->mutable_cell();
  space->set_num_nodes(4);
  for (const char* op : {"none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3"}) {
    space->add_operations(op);
  }
  space->set_cells_per_stage(1);
  space->set_initial_channels(absl::GetFlag(FLAGS_channels));
  nas::v1::CellArchitecture* cell = task.mutable_architecture()->mutable_cell();
  cell->set_num_nodes(4);
  for (const char* op : {"nor_conv_3x3", "nor_conv_1x1", "skip_connect", "avg_pool_3x3", "nor_conv_3x3",
                         "nor_conv_1x1"}) {
    cell->add_edge_operations(op);
  }
  nas::v1::SharedEvaluatorSpec* shared = task.mutable_evaluator()->mutable_shared();
  shared->mutable_data()->set_dataset("fashion_mnist");
  shared->mutable_data()->set_batch_size(kBatch);
  shared->mutable_data()->set_validation_size(kValidation);
  shared->mutable_data()->set_train_size(kTrainSize);
  shared->set_train_steps(absl::GetFlag(FLAGS_steps));
  shared->set_reward_batches(1);
  task.mutable_shared()->set_omega_set(absl::StrCat(kJob, ".omega"));
  return task;
}

// Seconds for `steps` SGD steps of the child on the supernet, bare LibTorch.
double BareLoop(const nas::v1::Task& task, const nas::worker::ImageSet& set, int steps) {
  const nas::worker::InputShape input{set.channels, set.height, set.width, set.classes};
  auto net = nas::worker::CellSupernetImpl::Create(task.search_space(), input).value();
  const nas::v1::CellArchitecture& cell = task.architecture().cell();
  std::vector<torch::Tensor> params;
  auto named = net->named_parameters();
  for (const std::string& name : net->UsedParameters(cell)) params.push_back(named[name]);
  torch::optim::SGD optimizer(params, torch::optim::SGDOptions(0.05).momentum(0.9));
  const nas::worker::ImageSplit split = nas::worker::SplitImages(set, kJob, kValidation, kTrainSize);
  const int64_t n = split.train.images.size(0);
  torch::Tensor order = torch::randperm(n, torch::kLong);
  int64_t cursor = 0;
  net->train();
  const absl::Time start = absl::Now();
  for (int step = 0; step < steps; ++step) {
    if (cursor >= n) {
      order = torch::randperm(n, torch::kLong);
      cursor = 0;
    }
    torch::Tensor idx = order.slice(0, cursor, std::min(n, cursor + kBatch));
    cursor += kBatch;
    torch::Tensor x = split.train.images.index_select(0, idx);
    torch::Tensor y = split.train.labels.index_select(0, idx);
    optimizer.zero_grad();
    torch::Tensor loss = torch::cross_entropy_loss(net->Forward(x, cell), y);
    loss.backward();
    optimizer.step();
  }
  return absl::ToDoubleSeconds(absl::Now() - start);
}

}  // namespace

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  torch::set_num_threads(1);
  auto set = nas::worker::LoadTrainingSet("fashion_mnist", "", {"/usr/share/datasets"});
  if (!set.ok()) {
    std::fprintf(stderr, "%s\n", std::string(set.status().message()).c_str());
    return 1;
  }
  const nas::v1::Task task = BenchTask();
  const int steps = absl::GetFlag(FLAGS_steps), tasks = absl::GetFlag(FLAGS_tasks);

  std::unique_ptr<nas::ps::InProcessShards> shards;
  std::shared_ptr<nas::controller::WeightsClient> weights;
  const std::string where = absl::GetFlag(FLAGS_weights);
  if (where == "memory") {
    weights = std::make_shared<nas::worker::InMemoryWeightsClient>();
  } else if (where == "shards") {
    auto started = nas::ps::InProcessShards::Start(absl::GetFlag(FLAGS_shards));
    if (!started.ok()) {
      std::fprintf(stderr, "shards: %s\n", started.status().ToString().c_str());
      return 1;
    }
    shards = std::move(started).value();
    auto client = nas::controller::CreatePsWeightsClient(shards->addresses, absl::Seconds(30), 64 << 20);
    if (!client.ok()) {
      std::fprintf(stderr, "client: %s\n", client.status().ToString().c_str());
      return 1;
    }
    weights = std::move(client).value();
  } else {
    std::fprintf(stderr, "--weights: '%s' is not memory or shards\n", where.c_str());
    return 1;
  }

  double bare_before = 0, bare_after = 0;
  try {
    (void)BareLoop(task, **set, 10);  // warm-up
    bare_before = BareLoop(task, **set, steps * tasks);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "the bare LibTorch reference failed: %s\n", e.what());
    return 1;
  }

  nas::worker::OneShotOptions options;
  options.weights = weights;
  const std::shared_ptr<const nas::worker::ImageSet> data = *set;
  options.load = [data](const nas::v1::TrainEvaluatorSpec&)
      -> absl::StatusOr<std::shared_ptr<const nas::worker::ImageSet>> { return data; };
  std::unique_ptr<nas::worker::Evaluator> evaluator = nas::worker::NewOneShotEvaluator(std::move(options));
  nas::worker::EvaluationContext context;
  // Warm-up: builds the supernet and the split, creates ω on the servers.
  absl::StatusOr<nas::v1::TrialMetrics> warm = evaluator->Evaluate(task, context);
  if (!warm.ok()) {
    std::fprintf(stderr, "one-shot warm-up task failed: %s\n", warm.status().ToString().c_str());
    return 1;
  }
  nas::v1::SharedStats stats;
  const absl::Time start = absl::Now();
  for (int t = 0; t < tasks; ++t) {
    absl::StatusOr<nas::v1::TrialMetrics> metrics = evaluator->Evaluate(task, context);
    if (!metrics.ok()) {
      std::fprintf(stderr, "one-shot task failed: %s\n", metrics.status().ToString().c_str());
      return 1;
    }
    stats.set_bytes_pulled(stats.bytes_pulled() + metrics->shared().bytes_pulled());
    stats.set_bytes_pushed(stats.bytes_pushed() + metrics->shared().bytes_pushed());
    stats.set_pushes_refused_stale(stats.pushes_refused_stale() + metrics->shared().pushes_refused_stale());
  }
  const double one_shot_seconds = absl::ToDoubleSeconds(absl::Now() - start);
  try {
    bare_after = BareLoop(task, **set, steps * tasks);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "the bare LibTorch reference failed: %s\n", e.what());
    return 1;
  }

  const double images = static_cast<double>(steps) * tasks * kBatch;
  const double bare_rate = images / ((bare_before + bare_after) / 2);
  const double one_shot_rate = images / one_shot_seconds;
  const double ratio = one_shot_rate / bare_rate;
  std::printf("supernet_bench weights=%s%s channels=%d batch=%d steps=%d\n", where.c_str(),
              where == "shards" ? absl::StrCat(" S=", absl::GetFlag(FLAGS_shards)).c_str() : "",
              absl::GetFlag(FLAGS_channels), kBatch, steps * tasks);
  std::printf("bare_images_per_second %.1f images/s (before %.1f, after %.1f)\n", bare_rate,
              images / bare_before, images / bare_after);
  std::printf("one_shot_images_per_second %.1f images/s\n", one_shot_rate);
  std::printf("one_shot_over_bare %.3f ratio (goal >= 0.9)\n", ratio);
  std::printf("omega_bytes_pulled_per_step %.0f bytes\n", stats.bytes_pulled() / (static_cast<double>(steps) * tasks));
  std::printf("omega_bytes_pushed_per_step %.0f bytes\n", stats.bytes_pushed() / (static_cast<double>(steps) * tasks));
  std::printf("pushes_refused_stale %d\n", stats.pushes_refused_stale());
  if (ratio < 0.9) {
    std::fprintf(stderr, "one_shot_over_bare %.3f is below its goal 0.9\n", ratio);
    return 1;
  }
  return 0;
}
