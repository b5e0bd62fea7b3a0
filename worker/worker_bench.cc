// Benchmark: worker overhead. Trains the same fixed child on the same
// Fashion-MNIST subset twice in one run:
//   bare   — a hand-written LibTorch loop (forward, loss, backward, SGD step,
//            then validation each epoch);
//   worker — the full worker: WorkerLoop acquiring the task over gRPC from an
//            in-process TaskService on 127.0.0.1, heartbeats, metrics, the
//            train evaluator, the report.
// Prints training images/s of each and their ratio (goal >= 0.95).
#include <torch/torch.h>

#include <cstdio>
#include <deque>
#include <thread>

#include <grpcpp/grpcpp.h>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "common/grpc_server.h"
#include "common/metrics.h"
#include "worker/child_net.h"
#include "worker/dataset.h"
#include "worker/worker_loop.h"

namespace {

constexpr int kTrain = 8000;
constexpr int kValidation = 2000;
constexpr int kEpochs = 2;
constexpr int kBatch = 64;

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
  double WaitSeconds() {
    absl::MutexLock lock(&mu_);
    mu_.Await(absl::Condition(&done_));
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
  auto set = nas::worker::LoadTrainingSet("fashion_mnist", "");
  if (!set.ok()) {
    std::fprintf(stderr, "%s\n", std::string(set.status().message()).c_str());
    return 1;
  }
  const nas::v1::Task task = BenchTask();
  (void)BareLoop(task, **set);  // warm-up
  const double bare_seconds = BareLoop(task, **set);

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
  nas::worker::WorkerLoop loop(options, nas::v1::TaskService::NewStub(grpc::CreateChannel(
                                            absl::StrCat("127.0.0.1:", server->port()),
                                            grpc::InsecureChannelCredentials())));
  std::thread runner([&loop] { loop.Run(); });
  const double worker_seconds = service.WaitSeconds();
  loop.Stop();
  runner.join();
  server->Shutdown(absl::Seconds(1));
  const double images = static_cast<double>(kTrain) * kEpochs;
  const double bare = images / bare_seconds, worker = images / worker_seconds;
  std::printf("bare_libtorch_images_per_second %.1f images/s\n", bare);
  std::printf("worker_images_per_second %.1f images/s\n", worker);
  std::printf("worker_overhead_ratio %.3f (goal 0.95, ratio to goal %.2f)\n", worker / bare,
              worker / bare / 0.95);
  std::printf("worker_validation_accuracy %.4f\n", service.report().metrics().accuracy());
  return 0;
}
