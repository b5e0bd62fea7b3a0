#include "worker/train_evaluator.h"

#include <torch/torch.h>

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "search_space/defaults.h"
#include "worker/child_net.h"
#include "worker/image_split.h"

namespace nas::worker {
namespace {

using Tensors = ImageTensors;

double Accuracy(ChildNetImpl& net, const Tensors& data, int batch, const torch::Device& device) {
  torch::NoGradGuard no_grad;
  net.eval();
  int64_t correct = 0;
  const int64_t n = data.images.size(0);
  for (int64_t start = 0; start < n; start += batch) {
    const int64_t end = std::min(n, start + batch);
    torch::Tensor logits = net.forward(data.images.slice(0, start, end).to(device));
    correct += logits.argmax(1).eq(data.labels.slice(0, start, end).to(device)).sum().item<int64_t>();
  }
  net.train();
  return n == 0 ? 0 : static_cast<double>(correct) / n;
}

}  // namespace

absl::StatusOr<v1::TrialMetrics> TrainOnImages(const v1::Task& task, const ImageSet& set,
                                               const std::string& device_name,
                                               const EvaluationContext& context, int64_t max_child_bytes,
                                               const ImageSet* test_set) {
  // The controller sends specs with defaults filled in; the same defaults
  // again cover a task built without them (tests, benchmarks).
  const v1::TrainEvaluatorSpec spec = search_space::WithTrainDefaults(task.evaluator().train());
  const int epochs = spec.epochs();
  const int batch = spec.batch_size();
  const int validation = spec.validation_size();
  if (epochs < 1) return absl::InvalidArgumentError("evaluator.train.epochs: must be >= 1");
  if (batch < 1) return absl::InvalidArgumentError("evaluator.train.batch_size: must be >= 1");
  if (validation < 1) return absl::InvalidArgumentError("evaluator.train.validation_size: must be >= 1");
  if (spec.test_accuracy() && test_set == nullptr) {
    return absl::InvalidArgumentError("evaluator.train.test_accuracy: no test split was loaded");
  }
  if (test_set != nullptr && (test_set->channels != set.channels || test_set->height != set.height ||
                              test_set->width != set.width || test_set->classes > set.classes)) {
    return absl::InvalidArgumentError("evaluator.train.test_accuracy: the test split's images differ in shape "
                                      "or classes from the training images");
  }
  if (validation >= set.count) {
    return absl::InvalidArgumentError(absl::StrCat("evaluator.train.validation_size ", validation,
                                                   " leaves no training images of ", set.count));
  }
  try {
    const torch::Device device(device_name);
    InputShape input{set.channels, set.height, set.width, set.classes};
    const v1::EvaluatorSpec limits_spec = search_space::WithEvaluatorLimitDefaults(task.evaluator());
    ChildLimits limits;
    limits.max_parameters = limits_spec.max_parameters();
    limits.max_activation_bytes = limits_spec.max_activation_bytes();
    limits.batch_size = batch;
    limits.max_memory_bytes = max_child_bytes;
    absl::StatusOr<std::shared_ptr<ChildNetImpl>> built =
        BuildChildNet(task.architecture(), task.search_space(), input, limits);
    if (!built.ok()) return built.status();
    std::shared_ptr<ChildNetImpl> net = *built;
    net->to(device);

    // A split that depends only on the job, so every trial sees the same data.
    const ImageSplit split = SplitImages(set, task.job_id(), validation, spec.train_size());
    const Tensors& train = split.train;
    const Tensors& val = split.validation;
    const int64_t train_count = train.images.size(0);

    const double lr = spec.learning_rate();
    torch::optim::SGD optimizer(net->parameters(), torch::optim::SGDOptions(lr)
                                                       .momentum(spec.momentum())
                                                       .nesterov(true)
                                                       .weight_decay(spec.weight_decay()));
    const int64_t steps_per_epoch = (train_count + batch - 1) / batch;
    const int64_t total_steps = steps_per_epoch * epochs;
    int64_t step = 0;
    v1::TrialMetrics metrics;
    const absl::Time start = absl::Now();
    net->train();
    for (int epoch = 1; epoch <= epochs && !context.StopEarly(); ++epoch) {
      const absl::Time epoch_start = absl::Now();
      torch::Tensor perm = torch::randperm(train_count, torch::TensorOptions().dtype(torch::kLong));
      double loss_sum = 0;
      int64_t correct = 0;
      for (int64_t b = 0; b < steps_per_epoch; ++b, ++step) {
        if (context.Cancelled()) return absl::CancelledError("cancelled");
        if (context.StopEarly()) break;
        const double progress = static_cast<double>(step) / total_steps;
        double rate = lr;
        if (spec.lr_schedule() == "step") {
          rate = lr * (progress >= 0.75 ? 0.01 : progress >= 0.5 ? 0.1 : 1.0);
        } else {
          rate = 0.5 * lr * (1 + std::cos(M_PI * progress));
        }
        for (auto& group : optimizer.param_groups()) {
          static_cast<torch::optim::SGDOptions&>(group.options()).lr(rate);
        }
        torch::Tensor idx = perm.slice(0, b * batch, std::min<int64_t>(train_count, (b + 1) * batch));
        torch::Tensor x = train.images.index_select(0, idx).to(device);
        torch::Tensor y = train.labels.index_select(0, idx).to(device);
        optimizer.zero_grad();
        torch::Tensor logits = net->forward(x);
        torch::Tensor loss = torch::cross_entropy_loss(logits, y);
        loss.backward();
        optimizer.step();
        loss_sum += loss.item<double>() * idx.size(0);
        correct += logits.argmax(1).eq(y).sum().item<int64_t>();
      }
      if (context.StopEarly()) break;  // the epoch in progress is dropped
      v1::EpochResult* result = metrics.add_epochs();
      result->set_epoch(epoch);
      result->set_train_loss(loss_sum / train_count);
      result->set_train_accuracy(static_cast<double>(correct) / train_count);
      result->set_validation_accuracy(Accuracy(*net, val, 256, device));
      result->set_seconds(absl::ToDoubleSeconds(absl::Now() - epoch_start));
      context.on_epoch(*result);
    }
    metrics.set_train_seconds(absl::ToDoubleSeconds(absl::Now() - start));
    metrics.set_parameters(net->parameter_count());
    metrics.set_flops(net->flops());
    metrics.set_device(device.str());
    v1::ImageShape* shape = metrics.mutable_input_shape();
    shape->set_channels(input.channels);
    shape->set_height(input.height);
    shape->set_width(input.width);
    shape->set_classes(input.classes);
    {
      torch::NoGradGuard no_grad;
      net->eval();
      torch::Tensor one = val.images.slice(0, 0, 1).to(device);
      for (int i = 0; i < 3; ++i) net->forward(one);
      std::vector<double> times;
      for (int i = 0; i < 10; ++i) {
        const absl::Time t0 = absl::Now();
        net->forward(one);
        times.push_back(absl::ToDoubleSeconds(absl::Now() - t0));
      }
      std::sort(times.begin(), times.end());
      metrics.set_latency_seconds(times[times.size() / 2]);
    }
    if (test_set != nullptr && spec.test_accuracy()) {
      metrics.set_test_accuracy(Accuracy(*net, NormaliseLike(*test_set, split), 256, device));
    }
    metrics.set_accuracy(
        RecentAccuracy(metrics, search_space::WithRewardDefaults(task.reward()).last_epochs()));
    metrics.set_reward(ComputeReward(task.reward(), metrics.accuracy(), metrics));
    return metrics;
  } catch (const c10::Error& e) {
    // Out of memory or a shape LibTorch refuses: retry elsewhere may help.
    return absl::InternalError(absl::StrCat("LibTorch: ", e.what_without_backtrace()));
  }
}

namespace {

class TrainEvaluator : public Evaluator {
 public:
  explicit TrainEvaluator(EvaluatorOptions options) : options_(std::move(options)) {}
  absl::StatusOr<v1::TrialMetrics> Evaluate(const v1::Task& task, const EvaluationContext& context) override {
    const v1::TrainEvaluatorSpec& spec = task.evaluator().train();
    if (spec.dataset() == "ptb") {
      absl::StatusOr<std::shared_ptr<const TextCorpus>> corpus = LoadPtb(spec.data_dir(), options_.data_roots);
      if (absl::IsPermissionDenied(corpus.status())) {
        return absl::FailedPreconditionError(std::string(corpus.status().message()));
      }
      if (!corpus.ok()) return absl::UnavailableError(std::string(corpus.status().message()));
      return TrainOnText(task, **corpus, options_.device, context, options_.max_child_bytes);
    }
    ImageFolderOptions folder;
    folder.height = spec.image_height();
    folder.width = spec.image_width();
    folder.channels = spec.color() == "gray" ? 1 : 3;
    absl::StatusOr<std::shared_ptr<const ImageSet>> set =
        LoadTrainingSet(spec.dataset(), spec.data_dir(), options_.data_roots, folder);
    if (absl::IsPermissionDenied(set.status())) {
      // Outside this worker's --data_roots: the spec's problem.
      return absl::FailedPreconditionError(std::string(set.status().message()));
    }
    if (!set.ok()) {
      // A missing or broken dataset is this worker's problem, not the architecture's.
      return absl::UnavailableError(std::string(set.status().message()));
    }
    std::shared_ptr<const ImageSet> test;
    if (spec.test_accuracy()) {
      absl::StatusOr<std::shared_ptr<const ImageSet>> loaded =
          LoadTestSet(spec.dataset(), spec.data_dir(), options_.data_roots);
      if (absl::IsPermissionDenied(loaded.status()) || absl::IsInvalidArgument(loaded.status())) {
        return absl::FailedPreconditionError(std::string(loaded.status().message()));
      }
      if (!loaded.ok()) return absl::UnavailableError(std::string(loaded.status().message()));
      test = *std::move(loaded);
    }
    return TrainOnImages(task, **set, options_.device, context, options_.max_child_bytes, test.get());
  }

 private:
  const EvaluatorOptions options_;
};

}  // namespace

std::unique_ptr<Evaluator> NewTrainEvaluator(const EvaluatorOptions& options) {
  return std::make_unique<TrainEvaluator>(options);
}

}  // namespace nas::worker
