// Benchmark: worker overhead. Trains the same fixed child on the same
// Fashion-MNIST subset twice in one run:
//   bare   — a hand-written LibTorch loop (forward, loss, backward, SGD step,
//            then validation each epoch);
//   worker — the full worker: WorkerLoop acquiring the task over gRPC from an
//            in-process TaskService on 127.0.0.1, heartbeats, metrics, the
//            train evaluator, the report.
// The bare loop runs before and after the worker (after a warm-up run) and
// the mean is taken, as this shared VM's speed drifts. Prints training
// images/s of each and their ratio. For diagnosis it also runs the bare loop
// once more on a thread of its own, as nas_worker trains on one (not the main
// thread). Every thread that trains sets its own LibTorch thread count
// (UseTorchThreadsOnThisThread, as nas_worker does): OpenMP's is a per-thread
// setting, and a thread that does not set it runs one OpenMP thread per core.
// Goals (docs/benchmarks.md): the ratio
// >= 0.95, and the worker's report a success with validation accuracy >= 0.70
// (the child really trained). Exits 1 naming each figure that misses its
// goal, or when a measurement (the bare reference's included) fails.
//   bazel run //bench:worker_bench
#include <torch/torch.h>

#include <cmath>
#include <cstdio>
#include <deque>
#include <string>
#include <thread>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "common/grpc_server.h"
#include "common/metrics.h"
#include "worker/child_net.h"
#include "worker/dataset.h"
#include "worker/device.h"
#include "worker/worker_loop.h"

namespace {

constexpr int kTrain = 8000;
constexpr int kValidation = 2000;
constexpr int kEpochs = 2;
constexpr int kBatch = 64;
constexpr double kOverheadRatioGoal = 0.95;
constexpr double kAccuracyGoal = 0.70;
// Far above the ~16 s the worker needs; a worker that never reports fails.
constexpr absl::Duration kWorkerTimeout = absl::Minutes(10);

nas::v1::Task BenchTask() {
  nas::v1::Task task;
  task.set_task_id("bench/t0#1");
  task.set_job_id("bench");
  task.set_trial_id("t0");
  task.set_attempt(1);
  task.set_lease_seconds(600);
  const int filters[] = {32, 48, 64, 64};
  const int strides[] = {1, 2, 1, 2};
  for (int i = 0; i < 4; ++i) {
    nas::v1::MacroCnnLayer* l = task.mutable_architecture()->mutable_macro_cnn()->add_layers();
    l->set_filter_height(3);
    l->set_filter_width(3);
    l->set_num_filters(filters[i]);
    l->set_stride(strides[i]);
    if (i > 0) l->add_inputs(i - 1);
  }
  nas::v1::TrainEvaluatorSpec* spec = task.mutable_evaluator()->mutable_train();
  spec->set_dataset("fashion_mnist");
  spec->set_epochs(kEpochs);
  spec->set_batch_size(kBatch);
  spec->set_train_size(kTrain);
  spec->set_validation_size(kValidation);
  spec->set_learning_rate(0.05);
  spec->set_momentum(0.9);
  spec->set_weight_decay(1e-4);
  task.mutable_reward()->set_last_epochs(5);
  task.mutable_reward()->set_power(3);
  return task;
}

class OneTaskService final : public nas::v1::TaskService::Service {
 public:
  explicit OneTaskService(nas::v1::Task task) { tasks_.push_back(std::move(task)); }
  grpc::Status AcquireTask(grpc::ServerContext*, const nas::v1::AcquireTaskRequest*,
                           nas::v1::AcquireTaskResponse* response) override {
    absl::MutexLock lock(&mu_);
    if (!tasks_.empty()) {
      *response->mutable_task() = tasks_.front();
      tasks_.pop_front();
      acquired_ = absl::Now();
    }
    return grpc::Status::OK;
  }
  grpc::Status Heartbeat(grpc::ServerContext*, const nas::v1::HeartbeatRequest*,
                         nas::v1::HeartbeatResponse*) override {
    return grpc::Status::OK;
  }
  grpc::Status ReportResult(grpc::ServerContext*, const nas::v1::ReportResultRequest* request,
                            nas::v1::ReportResultResponse*) override {
    absl::MutexLock lock(&mu_);
    report_ = *request;
    reported_ = absl::Now();
    done_ = true;
    return grpc::Status::OK;
  }
  // Seconds from the task's acquisition to its report; 0 if no report came
  // within `timeout`.
  double WaitSeconds(absl::Duration timeout) {
    absl::MutexLock lock(&mu_);
    if (!mu_.AwaitWithTimeout(absl::Condition(&done_), timeout)) return 0;
    return absl::ToDoubleSeconds(reported_ - acquired_);
  }
  nas::v1::ReportResultRequest report() {
    absl::MutexLock lock(&mu_);
    return report_;
  }

 private:
  absl::Mutex mu_;
  std::deque<nas::v1::Task> tasks_ ABSL_GUARDED_BY(mu_);
  bool done_ ABSL_GUARDED_BY(mu_) = false;
  absl::Time acquired_ ABSL_GUARDED_BY(mu_);
  absl::Time reported_ ABSL_GUARDED_BY(mu_);
  nas::v1::ReportResultRequest report_ ABSL_GUARDED_BY(mu_);
};

double BareLoop(const nas::v1::Task& task, const nas::worker::ImageSet& set) {
  auto net = nas::worker::BuildChildNet(task.architecture(), task.search_space(), {1, 28, 28, 10}).value();
  // The same data volume: kTrain training and kValidation validation images.
  auto to_tensor = [&](int start, int count) {
    torch::Tensor x = torch::empty({count, 1, 28, 28});
    torch::Tensor y = torch::empty({count}, torch::kLong);
    for (int i = 0; i < count; ++i) {
      for (int p = 0; p < 784; ++p) x.data_ptr<float>()[i * 784 + p] = set.pixels[(start + i) * 784 + p] / 255.f;
      y.data_ptr<int64_t>()[i] = set.labels[start + i];
    }
    return std::make_pair(x, y);
  };
  auto [train_x, train_y] = to_tensor(0, kTrain);
  auto [val_x, val_y] = to_tensor(kTrain, kValidation);
  torch::optim::SGD sgd(net->parameters(),
                        torch::optim::SGDOptions(0.05).momentum(0.9).nesterov(true).weight_decay(1e-4));
  const absl::Time start = absl::Now();
  for (int epoch = 0; epoch < kEpochs; ++epoch) {
    net->train();
    torch::Tensor perm = torch::randperm(kTrain, torch::kLong);
    for (int b = 0; b < kTrain; b += kBatch) {
      torch::Tensor idx = perm.slice(0, b, std::min(kTrain, b + kBatch));
      sgd.zero_grad();
      torch::Tensor loss = torch::cross_entropy_loss(net->forward(train_x.index_select(0, idx)),
                                                     train_y.index_select(0, idx));
      loss.backward();
      sgd.step();
    }
    torch::NoGradGuard no_grad;
    net->eval();
    for (int b = 0; b < kValidation; b += 256) {
      (void)net->forward(val_x.slice(0, b, std::min(kValidation, b + 256))).argmax(1);
    }
  }
  return absl::ToDoubleSeconds(absl::Now() - start);
}

}  // namespace

int main() {
  torch::set_num_threads(1);
  auto set = nas::worker::LoadTrainingSet("fashion_mnist", "", {"/usr/share/datasets"});
  if (!set.ok()) {
    std::fprintf(stderr, "%s\n", std::string(set.status().message()).c_str());
    return 1;
  }
  const nas::v1::Task task = BenchTask();
  // LibTorch reports errors by exception: a bare reference that throws has
  // no figure, and the benchmark fails.
  double bare_before_seconds = 0;
  try {
    (void)BareLoop(task, **set);  // warm-up
    bare_before_seconds = BareLoop(task, **set);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "the bare LibTorch reference failed: %s\n", e.what());
    return 1;
  }

  OneTaskService service(task);
  nas::GrpcServerOptions server_options;
  server_options.host = "127.0.0.1";
  server_options.metrics_port = -1;
  auto server = nas::GrpcServer::Create(server_options).value();
  if (!server->Start({&service}).ok()) return 1;
  nas::MetricsServerOptions metrics_options;
  metrics_options.host = "127.0.0.1";
  auto metrics = nas::MetricsServer::Create(metrics_options).value();
  nas::worker::WorkerLoopOptions options;
  options.worker_id = "bench";
  options.metrics = &metrics->registry();
  // Each task trains on a thread of its own (the loop's watchdog waits).
  options.on_evaluation_thread = [] { nas::worker::UseTorchThreadsOnThisThread(1); };
  nas::worker::WorkerLoop loop(options, nas::v1::TaskService::NewStub(grpc::CreateChannel(
                                            absl::StrCat("127.0.0.1:", server->port()),
                                            grpc::InsecureChannelCredentials())));
  std::thread runner([&loop] { loop.Run(); });
  const double worker_seconds = service.WaitSeconds(kWorkerTimeout);
  loop.Stop();
  runner.join();
  server->Shutdown(absl::Seconds(1));
  if (worker_seconds <= 0) {
    std::fprintf(stderr, "the worker reported no result within %s\n",
                 absl::FormatDuration(kWorkerTimeout).c_str());
    return 1;
  }
  double bare_after_seconds = 0;
  try {
    bare_after_seconds = BareLoop(task, **set);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "the bare LibTorch reference failed: %s\n", e.what());
    return 1;
  }
  double bare_thread_seconds = 0;
  std::string thread_error;
  std::thread bare_thread([&] {
    nas::worker::UseTorchThreadsOnThisThread(1);
    try {
      bare_thread_seconds = BareLoop(task, **set);
    } catch (const std::exception& e) {
      thread_error = e.what();
    }
  });
  bare_thread.join();
  if (!thread_error.empty()) {
    std::fprintf(stderr, "the bare LibTorch loop on a thread failed: %s\n", thread_error.c_str());
    return 1;
  }
  const nas::v1::ReportResultRequest report = service.report();
  const double images = static_cast<double>(kTrain) * kEpochs;
  const double bare_before = images / bare_before_seconds, bare_after = images / bare_after_seconds;
  const double bare = (bare_before + bare_after) / 2, worker = images / worker_seconds;
  const double ratio = worker / bare;
  const double accuracy = report.metrics().accuracy();
  std::printf("bare_libtorch_images_per_second %.1f images/s (mean of %.1f before and %.1f after)\n",
              bare, bare_before, bare_after);
  std::printf("bare_libtorch_thread_images_per_second %.1f images/s (the bare loop on a thread "
              "of its own; no goal)\n",
              images / bare_thread_seconds);
  std::printf("worker_images_per_second %.1f images/s (training %.1f s of %.1f s from acquire "
              "to report)\n",
              worker, report.metrics().train_seconds(), worker_seconds);
  std::printf("worker_overhead_ratio %.3f (goal >= %.2f)\n", ratio, kOverheadRatioGoal);
  std::printf("worker_validation_accuracy %.4f (goal >= %.2f)\n", accuracy, kAccuracyGoal);

  std::vector<std::string> missed;
  if (!report.error().empty()) {
    missed.push_back(absl::StrCat("the worker reported a failure: ", report.error()));
  }
  if (!std::isfinite(ratio) || !(bare > 0)) {
    missed.push_back(absl::StrFormat("worker_overhead_ratio %g is not a measurement", ratio));
  } else if (ratio < kOverheadRatioGoal) {
    missed.push_back(absl::StrFormat("worker_overhead_ratio %.3f misses its goal >= %.2f", ratio,
                                     kOverheadRatioGoal));
  }
  if (!(accuracy >= kAccuracyGoal)) {
    missed.push_back(absl::StrFormat("worker_validation_accuracy %.4f misses its goal >= %.2f",
                                     accuracy, kAccuracyGoal));
  }
  for (const std::string& m : missed) std::printf("MISSED %s\n", m.c_str());
  if (!missed.empty()) return 1;
  std::printf("all goals met\n");
  return 0;
}
