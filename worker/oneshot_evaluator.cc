#include "worker/oneshot_evaluator.h"

#include <torch/torch.h>

#include <algorithm>
#include <functional>
#include <map>
#include <set>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "common/flat_tensor.h"
#include "controller/weights_client.h"
#include "search_space/defaults.h"
#include "worker/image_split.h"
#include "worker/macro_supernet.h"
#include "worker/supernet.h"

namespace nas::worker {

v1::SharedEvaluatorSpec WithSharedWorkerDefaults(v1::SharedEvaluatorSpec shared) {
  if (shared.train_steps() <= 0) shared.set_train_steps(10);
  if (shared.reward_batches() <= 0) shared.set_reward_batches(1);
  if (shared.optimizer().empty()) shared.set_optimizer("sgd");
  if (shared.learning_rate() <= 0) shared.set_learning_rate(shared.optimizer() == "adam" ? 0.001 : 0.05);
  if (!shared.has_momentum()) shared.set_momentum(0.9);
  if (!shared.has_max_staleness()) shared.set_max_staleness(16);
  return shared;
}

namespace {

using controller::PulledWeights;
using controller::SparsePushResult;
using controller::WeightsClient;

// The child an ENAS task trains: its forward pass through the supernet and
// the tensors it reads.
struct SampledChild {
  std::function<torch::Tensor(const torch::Tensor&)> forward;
  std::vector<std::string> used;
};

// What one task did with the shared weights, as it goes.
struct Tally {
  v1::SharedStats stats;
  double loss_sum = 0;
  int64_t correct = 0;
  int64_t seen = 0;
};

int64_t Bytes(const std::vector<FlatTensor>& tensors) {
  int64_t bytes = 0;
  for (const FlatTensor& t : tensors) bytes += static_cast<int64_t>(t.values.size()) * 4;
  return bytes;
}

int64_t VersionSum(const std::vector<int64_t>& versions) {
  int64_t sum = 0;
  for (int64_t v : versions) sum += std::max<int64_t>(0, v);
  return sum;
}

FlatTensor ToFlat(const std::string& name, const torch::Tensor& tensor) {
  const torch::Tensor cpu = tensor.detach().to(torch::kCPU, torch::kFloat).contiguous();
  FlatTensor flat;
  flat.name = name;
  flat.shape = cpu.sizes().vec();
  flat.values.assign(cpu.data_ptr<float>(), cpu.data_ptr<float>() + cpu.numel());
  return flat;
}

torch::Tensor FromFlat(const FlatTensor& flat) {
  return torch::from_blob(const_cast<float*>(flat.values.data()), flat.shape, torch::kFloat).clone();
}

// One job's supernet and data on this worker: `module` is the supernet,
// `cell` or `macro` the same module by its kind (the other is null).
struct JobState {
  std::string job_id;
  std::shared_ptr<torch::nn::Module> module;
  std::shared_ptr<CellSupernetImpl> cell;
  std::shared_ptr<MacroSupernetImpl> macro;
  std::map<std::string, torch::Tensor> params;  // named_parameters(), by name
  ImageSplit data;
  InputShape input;
  torch::Tensor train_order;
  int64_t train_cursor = 0;
  int64_t validation_cursor = 0;
};

class OneShotEvaluator : public Evaluator {
 public:
  explicit OneShotEvaluator(OneShotOptions options) : options_(std::move(options)) {
    if (!options_.load) {
      const std::vector<std::string> roots = options_.data_roots;
      options_.load = [roots](const v1::TrainEvaluatorSpec& spec) {
        ImageFolderOptions folder;
        folder.height = spec.image_height();
        folder.width = spec.image_width();
        folder.channels = spec.color() == "gray" ? 1 : 3;
        return LoadTrainingSet(spec.dataset(), spec.data_dir(), roots, folder);
      };
    }
  }

  absl::StatusOr<v1::TrialMetrics> Evaluate(const v1::Task& task, const EvaluationContext& context) override {
    if (options_.weights == nullptr) {
      return absl::FailedPreconditionError(
          "evaluator.shared: this worker has no parameter servers (start nas_worker with "
          "--parameter_servers=HOST:PORT,... to take one-shot search tasks)");
    }
    if (task.shared().omega_set().empty()) {
      return absl::InvalidArgumentError("task.shared.omega_set: empty (a one-shot task names its ω set)");
    }
    if (task.shared().alpha_set().empty() && !task.architecture().has_cell() &&
        !task.architecture().has_macro_cnn()) {
      return absl::InvalidArgumentError(
          "architecture: ENAS runs a cell or macro_cnn child on its space's supernet (a recurrent cell has none)");
    }
    if (!task.shared().alpha_set().empty() && !task.search_space().has_cell()) {
      return absl::InvalidArgumentError(
          "task.shared.alpha_set: DARTS' mixed supernet takes a cell space (a macro_cnn supernet runs one "
          "sampled child at a time)");
    }
    // One evaluation at a time per worker; the lock only guards the job state.
    absl::MutexLock lock(&mu_);
    try {
      absl::Status ready = Prepare(task);
      if (!ready.ok()) return ready;
      return task.shared().alpha_set().empty() ? RunEnas(task, context) : RunDarts(task, context);
    } catch (const c10::Error& e) {
      return absl::InternalError(absl::StrCat("LibTorch: ", e.what_without_backtrace()));
    }
  }

 private:
  // Builds (or keeps) the job's supernet and data split, and creates ω on
  // the servers when this worker has not yet.
  absl::Status Prepare(const v1::Task& task) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (job_ != nullptr && job_->job_id == task.job_id()) return absl::OkStatus();
    job_.reset();
    const v1::SharedEvaluatorSpec shared = WithSharedWorkerDefaults(task.evaluator().shared());
    const v1::TrainEvaluatorSpec data = search_space::WithTrainDefaults(shared.data());
    if (data.batch_size() < 1) return absl::InvalidArgumentError("evaluator.shared.data.batch_size: must be >= 1");
    absl::StatusOr<std::shared_ptr<const ImageSet>> set = options_.load(data);
    if (absl::IsPermissionDenied(set.status())) {
      return absl::FailedPreconditionError(std::string(set.status().message()));
    }
    if (!set.ok()) return absl::UnavailableError(std::string(set.status().message()));
    const ImageSet& images = **set;
    if (data.validation_size() < 1 || data.validation_size() >= images.count) {
      return absl::InvalidArgumentError(absl::StrCat("evaluator.shared.data.validation_size ",
                                                     data.validation_size(), " must be in 1..",
                                                     images.count - 1, " (the dataset's images - 1)"));
    }
    auto job = std::make_unique<JobState>();
    job->job_id = task.job_id();
    job->input = InputShape{images.channels, images.height, images.width, images.classes};
    // The same initial ω on every worker (whichever InitJob arrives first
    // wins), and the same for the same strategy.seed.
    const int64_t seed = task.shared().init_seed();
    torch::manual_seed(seed != 0 ? static_cast<uint64_t>(seed)
                                 : std::hash<std::string>()(task.job_id()) & 0x7fffffffffffffffULL);
    if (task.search_space().has_macro_cnn()) {
      absl::StatusOr<std::shared_ptr<MacroSupernetImpl>> net =
          MacroSupernetImpl::Create(task.search_space(), job->input);
      if (!net.ok()) return net.status();
      job->macro = *net;
      job->module = *net;
    } else {
      absl::StatusOr<std::shared_ptr<CellSupernetImpl>> net =
          CellSupernetImpl::Create(task.search_space(), job->input);
      if (!net.ok()) return net.status();
      job->cell = *net;
      job->module = *net;
    }
    std::vector<FlatTensor> initial;
    for (const auto& item : job->module->named_parameters()) {
      initial.push_back(ToFlat(item.key(), item.value()));
    }
    job->module->to(torch::Device(options_.device));
    for (const auto& item : job->module->named_parameters()) job->params[item.key()] = item.value();
    job->data = SplitImages(images, task.job_id(), data.validation_size(), data.train_size());
    job->train_order = torch::randperm(job->data.train.images.size(0), torch::kLong);

    v1::OptimizerConfig config;
    config.set_kind(shared.optimizer() == "adam" ? v1::OptimizerConfig::ADAM : v1::OptimizerConfig::SGD);
    config.set_learning_rate(shared.learning_rate());
    if (shared.optimizer() != "adam") config.set_momentum(shared.momentum());
    config.set_sparse(true);
    config.set_max_staleness(shared.max_staleness());
    absl::Status created = options_.weights->InitJob(task.shared().omega_set(), initial, config);
    if (!created.ok()) return created;
    job_ = std::move(job);
    return absl::OkStatus();
  }

  // Copies pulled tensors into the supernet.
  absl::Status Load(const std::vector<FlatTensor>& tensors) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    torch::NoGradGuard no_grad;
    for (const FlatTensor& t : tensors) {
      auto it = job_->params.find(t.name);
      if (it == job_->params.end() || it->second.numel() != t.NumElements()) {
        return absl::FailedPreconditionError(absl::StrCat(
            "ω set holds tensor '", t.name, "' that this worker's supernet ",
            it == job_->params.end() ? "does not have" : "has with another shape"));
      }
      it->second.copy_(FromFlat(t).view(it->second.sizes()));
    }
    return absl::OkStatus();
  }

  // The next training minibatch (a per-job shuffle, reshuffled when used up).
  std::pair<torch::Tensor, torch::Tensor> NextTrainBatch(int batch) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    const int64_t n = job_->train_order.size(0);
    if (job_->train_cursor >= n) {
      job_->train_order = torch::randperm(n, torch::kLong);
      job_->train_cursor = 0;
    }
    const int64_t end = std::min(n, job_->train_cursor + batch);
    torch::Tensor idx = job_->train_order.slice(0, job_->train_cursor, end);
    job_->train_cursor = end;
    const torch::Device device(options_.device);
    return {job_->data.train.images.index_select(0, idx).to(device),
            job_->data.train.labels.index_select(0, idx).to(device)};
  }

  // The next validation minibatch, in order, wrapping around.
  std::pair<torch::Tensor, torch::Tensor> NextValidationBatch(int batch) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    const int64_t n = job_->data.validation.images.size(0);
    if (job_->validation_cursor >= n) job_->validation_cursor = 0;
    const int64_t start = job_->validation_cursor, end = std::min(n, start + batch);
    job_->validation_cursor = end;
    const torch::Device device(options_.device);
    return {job_->data.validation.images.slice(0, start, end).to(device),
            job_->data.validation.labels.slice(0, start, end).to(device)};
  }

  // Pushes `gradients` of ω; true when applied, false after a stale refusal
  // (counted), an error otherwise.
  absl::StatusOr<bool> PushOmega(const v1::Task& task, const std::vector<int64_t>& base,
                                 const std::vector<FlatTensor>& gradients, Tally& tally) {
    absl::StatusOr<SparsePushResult> pushed =
        options_.weights->PushSparse(task.shared().omega_set(), base, gradients);
    if (!pushed.ok()) return pushed.status();
    tally.stats.set_bytes_pushed(tally.stats.bytes_pushed() + pushed->bytes);
    if (pushed->shards_refused_stale > 0) {
      tally.stats.set_pushes_refused_stale(tally.stats.pushes_refused_stale() + 1);
      return false;
    }
    tally.stats.set_pushes_applied(tally.stats.pushes_applied() + 1);
    tally.stats.set_max_staleness(std::max(tally.stats.max_staleness(), pushed->max_staleness));
    return true;
  }

  absl::StatusOr<PulledWeights> PullOmega(const v1::Task& task, const std::vector<std::string>& names,
                                          Tally& tally) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    absl::StatusOr<PulledWeights> pulled = options_.weights->PullSome(task.shared().omega_set(), names);
    if (!pulled.ok()) return pulled.status();
    tally.stats.set_bytes_pulled(tally.stats.bytes_pulled() + Bytes(pulled->tensors));
    if (absl::Status loaded = Load(pulled->tensors); !loaded.ok()) return loaded;
    return pulled;
  }

  // α from the job's strategy set, on the device.
  absl::StatusOr<std::pair<torch::Tensor, std::vector<int64_t>>> PullAlpha(const v1::Task& task, Tally& tally)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    absl::StatusOr<PulledWeights> pulled = options_.weights->Pull(task.shared().alpha_set());
    if (!pulled.ok()) return pulled.status();
    tally.stats.set_bytes_pulled(tally.stats.bytes_pulled() + Bytes(pulled->tensors));
    for (const FlatTensor& t : pulled->tensors) {
      if (t.name != "alpha") continue;
      torch::Tensor alpha = FromFlat(t);
      if (!job_->cell->ArgmaxCell(alpha).ok()) {
        return absl::FailedPreconditionError(absl::StrCat(
            job_->cell->ArgmaxCell(alpha).status().message(), " (tensor 'alpha' of set ", task.shared().alpha_set(), ")"));
      }
      return std::make_pair(alpha.to(torch::Device(options_.device)), pulled->versions);
    }
    return absl::FailedPreconditionError(
        absl::StrCat("set ", task.shared().alpha_set(), " holds no tensor 'alpha' (task.shared.alpha_set)"));
  }

  void ClearGradients() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    for (auto& p : job_->module->parameters()) p.mutable_grad() = torch::Tensor();
  }

  std::vector<FlatTensor> Gradients(const std::vector<std::string>& names) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    std::vector<FlatTensor> gradients;
    for (const std::string& name : names) {
      const torch::Tensor& grad = job_->params.at(name).grad();
      if (grad.defined()) gradients.push_back(ToFlat(name, grad));
    }
    return gradients;
  }

  absl::Status Unavailable(int retries) {
    return absl::UnavailableError(absl::StrCat("ω pushes refused as stale ", retries,
                                               " times in a row (the servers' max_staleness); giving up"));
  }

  // The task's child on the job's supernet (cell or macro), checked.
  absl::StatusOr<SampledChild> Child(const v1::Task& task) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    const v1::Architecture& arch = task.architecture();
    if (job_->cell != nullptr && arch.has_cell()) {
      CellSupernetImpl* net = job_->cell.get();
      const v1::CellArchitecture& cell = arch.cell();
      if (absl::Status s = net->CheckArchitecture(cell); !s.ok()) return s;
      return SampledChild{[net, &cell](const torch::Tensor& x) { return net->Forward(x, cell); },
                          net->UsedParameters(cell)};
    }
    if (job_->macro != nullptr && arch.has_macro_cnn()) {
      MacroSupernetImpl* net = job_->macro.get();
      const v1::MacroCnnArchitecture& macro = arch.macro_cnn();
      if (absl::Status s = net->CheckArchitecture(macro); !s.ok()) return s;
      return SampledChild{[net, &macro](const torch::Tensor& x) { return net->Forward(x, macro); },
                          net->UsedParameters(macro)};
    }
    return absl::InvalidArgumentError(absl::StrCat("architecture: a ", arch.has_cell() ? "cell" : "macro_cnn",
                                                   " child does not run on the ",
                                                   job_->cell != nullptr ? "cell" : "macro_cnn",
                                                   " space's supernet"));
  }

  // One training step of ω, shared by ENAS and DARTS: pull `pull_names`
  // of ω (empty: all), run `after_pull` (may be null; DARTS pulls α there),
  // train `forward` on a training minibatch and push the gradients of
  // `push_names`. A push refused as stale is pulled again and redone, at most
  // max_stale_retries times (then UNAVAILABLE); cancellation is checked
  // before each try.
  absl::Status TrainOmegaStep(const v1::Task& task, const std::vector<std::string>& pull_names,
                              const std::vector<std::string>& push_names, int batch,
                              const EvaluationContext& context, Tally& tally,
                              const std::function<absl::Status()>& after_pull,
                              const std::function<torch::Tensor(const torch::Tensor&)>& forward)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    for (int refused = 0;; ++refused) {
      if (refused > options_.max_stale_retries) return Unavailable(refused);
      if (context.Cancelled()) return absl::CancelledError("cancelled");
      absl::StatusOr<PulledWeights> pulled = PullOmega(task, pull_names, tally);
      if (!pulled.ok()) return pulled.status();
      if (after_pull) {
        if (absl::Status s = after_pull(); !s.ok()) return s;
      }
      auto [x, y] = NextTrainBatch(batch);
      ClearGradients();
      torch::Tensor logits = forward(x);
      torch::Tensor loss = torch::cross_entropy_loss(logits, y);
      loss.backward();
      absl::StatusOr<bool> applied = PushOmega(task, pulled->versions, Gradients(push_names), tally);
      if (!applied.ok()) return applied.status();
      if (!*applied) continue;
      tally.loss_sum += loss.item<double>() * x.size(0);
      tally.correct += logits.argmax(1).eq(y).sum().item<int64_t>();
      tally.seen += x.size(0);
      return absl::OkStatus();
    }
  }

  absl::StatusOr<v1::TrialMetrics> RunEnas(const v1::Task& task, const EvaluationContext& context)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    const v1::SharedEvaluatorSpec shared = WithSharedWorkerDefaults(task.evaluator().shared());
    const int batch = search_space::WithTrainDefaults(shared.data()).batch_size();
    absl::StatusOr<SampledChild> child = Child(task);
    if (!child.ok()) return child.status();
    const std::vector<std::string>& used = child->used;
    const absl::Time start = absl::Now();
    Tally tally;
    job_->module->train();
    for (int step = 0; step < shared.train_steps(); ++step) {
      absl::Status trained = TrainOmegaStep(task, used, used, batch, context, tally, nullptr, child->forward);
      if (!trained.ok()) return trained;
      tally.stats.set_train_steps(step + 1);
    }
    if (context.Cancelled()) return absl::CancelledError("cancelled");
    absl::StatusOr<PulledWeights> scored = PullOmega(task, used, tally);
    if (!scored.ok()) return scored.status();
    tally.stats.set_omega_version(VersionSum(scored->versions));
    const double accuracy = Score(shared.reward_batches(), batch, child->forward);
    int64_t parameters = 0;
    for (const std::string& name : used) parameters += job_->params.at(name).numel();
    return Finish(task, context, tally, accuracy, parameters, start);
  }

  absl::StatusOr<v1::TrialMetrics> RunDarts(const v1::Task& task, const EvaluationContext& context)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    const v1::SharedEvaluatorSpec shared = WithSharedWorkerDefaults(task.evaluator().shared());
    const int batch = search_space::WithTrainDefaults(shared.data()).batch_size();
    std::vector<std::string> all;
    for (const auto& item : job_->params) all.push_back(item.first);
    const absl::Time start = absl::Now();
    Tally tally;
    job_->module->train();
    for (int step = 0; step < shared.train_steps(); ++step) {
      torch::Tensor alpha;
      std::vector<int64_t> alpha_versions;
      // ω's step on a training minibatch, α (pulled with ω) fixed.
      CellSupernetImpl* net = job_->cell.get();
      absl::Status trained = TrainOmegaStep(
          task, {}, all, batch, context, tally,
          [&]() -> absl::Status {
            mu_.AssertHeld();  // called by TrainOmegaStep, which holds it
            auto pulled_alpha = PullAlpha(task, tally);
            if (!pulled_alpha.ok()) return pulled_alpha.status();
            alpha = pulled_alpha->first;
            alpha_versions = pulled_alpha->second;
            return absl::OkStatus();
          },
          [net, &alpha](const torch::Tensor& x) { return net->ForwardMixed(x, alpha); });
      if (!trained.ok()) return trained;
      // α's step on a validation minibatch, with the same ω (first order).
      auto [xv, yv] = NextValidationBatch(batch);
      torch::Tensor a = alpha.detach().clone().requires_grad_(true);
      torch::Tensor val_loss = torch::cross_entropy_loss(job_->cell->ForwardMixed(xv, a), yv);
      torch::Tensor grad = torch::autograd::grad({val_loss}, {a})[0];
      std::vector<FlatTensor> alpha_gradient = {ToFlat("alpha", grad)};
      absl::Status pushed = options_.weights->Push(task.shared().alpha_set(), /*replica_id=*/0, alpha_versions,
                                                   alpha_gradient);
      if (!pushed.ok()) return pushed;
      tally.stats.set_bytes_pushed(tally.stats.bytes_pushed() + Bytes(alpha_gradient));
      tally.stats.set_train_steps(step + 1);
    }
    if (context.Cancelled()) return absl::CancelledError("cancelled");
    absl::StatusOr<PulledWeights> scored = PullOmega(task, {}, tally);
    if (!scored.ok()) return scored.status();
    tally.stats.set_omega_version(VersionSum(scored->versions));
    auto alpha = PullAlpha(task, tally);
    if (!alpha.ok()) return alpha.status();
    const torch::Tensor a = alpha->first;
    CellSupernetImpl* net = job_->cell.get();
    const double accuracy = Score(shared.reward_batches(), batch, [net, &a](const torch::Tensor& x) {
      return net->ForwardMixed(x, a);
    });
    absl::StatusOr<v1::CellArchitecture> argmax = job_->cell->ArgmaxCell(a);
    if (!argmax.ok()) return argmax.status();
    int64_t parameters = 0;
    for (const std::string& name : job_->cell->UsedParameters(*argmax)) parameters += job_->params.at(name).numel();
    return Finish(task, context, tally, accuracy, parameters, start);
  }

  // Accuracy over `batches` validation minibatches (batch statistics, see
  // the header).
  double Score(int batches, int batch, const std::function<torch::Tensor(const torch::Tensor&)>& forward)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    torch::NoGradGuard no_grad;
    int64_t correct = 0, seen = 0;
    for (int b = 0; b < batches; ++b) {
      auto [x, y] = NextValidationBatch(batch);
      correct += forward(x).argmax(1).eq(y).sum().item<int64_t>();
      seen += x.size(0);
    }
    return seen == 0 ? 0 : static_cast<double>(correct) / seen;
  }

  absl::StatusOr<v1::TrialMetrics> Finish(const v1::Task& task, const EvaluationContext& context, const Tally& tally,
                                          double accuracy, int64_t parameters, absl::Time start)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    v1::TrialMetrics metrics;
    v1::EpochResult* epoch = metrics.add_epochs();
    epoch->set_epoch(1);
    if (tally.seen > 0) {
      epoch->set_train_loss(tally.loss_sum / tally.seen);
      epoch->set_train_accuracy(static_cast<double>(tally.correct) / tally.seen);
    }
    epoch->set_validation_accuracy(accuracy);
    epoch->set_seconds(absl::ToDoubleSeconds(absl::Now() - start));
    context.on_epoch(*epoch);
    metrics.set_accuracy(accuracy);
    metrics.set_parameters(parameters);
    metrics.set_device(options_.device);
    metrics.set_train_seconds(epoch->seconds());
    v1::ImageShape* shape = metrics.mutable_input_shape();
    shape->set_channels(job_->input.channels);
    shape->set_height(job_->input.height);
    shape->set_width(job_->input.width);
    shape->set_classes(job_->input.classes);
    *metrics.mutable_shared() = tally.stats;
    metrics.set_reward(ComputeReward(task.reward(), accuracy, metrics));
    return metrics;
  }

  OneShotOptions options_;
  absl::Mutex mu_;
  std::unique_ptr<JobState> job_ ABSL_GUARDED_BY(mu_);
};

}  // namespace

std::unique_ptr<Evaluator> NewOneShotEvaluator(OneShotOptions options) {
  return std::make_unique<OneShotEvaluator>(std::move(options));
}

}  // namespace nas::worker
