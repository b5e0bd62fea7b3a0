// The train evaluator for recurrent cells (dataset "ptb"): the cell's
// language model (worker/recurrent_net.h) trained with truncated
// back-propagation through time, gradient norm clipping and SGD; the curve is
// the validation perplexity of each epoch.
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "search_space/defaults.h"
#include "worker/recurrent_net.h"
#include "worker/train_evaluator.h"

namespace nas::worker {
namespace {

// The first `limit` ids (0 = all) as [rows, batch]: column j is the j-th
// contiguous stretch of the text; the tail that does not fill a row is cut.
torch::Tensor Batchify(const std::vector<int32_t>& ids, int64_t limit, int batch) {
  const int64_t n = limit > 0 ? std::min<int64_t>(limit, static_cast<int64_t>(ids.size()))
                              : static_cast<int64_t>(ids.size());
  const int64_t rows = n / batch;
  torch::Tensor all = torch::from_blob(const_cast<int32_t*>(ids.data()), {rows * batch}, torch::kInt);
  return all.to(torch::kLong).view({batch, rows}).t().contiguous();
}

// NaN (a diverged child) counts as the worst perplexity.
double Perplexity(double mean_nll) {
  const double p = std::exp(mean_nll);
  return std::isnan(p) ? std::numeric_limits<double>::infinity() : p;
}

}  // namespace

absl::StatusOr<v1::TrialMetrics> TrainOnText(const v1::Task& task, const TextCorpus& corpus,
                                             const std::string& device_name, const EvaluationContext& context,
                                             int64_t max_child_bytes) {
  v1::TrainEvaluatorSpec raw = task.evaluator().train();
  raw.set_dataset("ptb");  // the language model's defaults
  const v1::TrainEvaluatorSpec spec = search_space::WithTrainDefaults(raw);
  const v1::LanguageModelSpec& lm = spec.language_model();
  const int epochs = spec.epochs(), batch = spec.batch_size(), eval_batch = lm.eval_batch_size();
  const int bptt = lm.bptt_steps();
  if (epochs < 1) return absl::InvalidArgumentError("evaluator.train.epochs: must be >= 1");
  if (batch < 1) return absl::InvalidArgumentError("evaluator.train.batch_size: must be >= 1");
  if (eval_batch < 1) {
    return absl::InvalidArgumentError("evaluator.train.language_model.eval_batch_size: must be >= 1");
  }
  LanguageModelOptions options;
  options.shape.vocabulary = static_cast<int>(corpus.words.size());
  options.shape.embedding_size = lm.embedding_size();
  options.shape.hidden_size = lm.hidden_size();
  options.shape.tie_weights = lm.tie_weights();
  options.shape.bptt_steps = bptt;
  options.dropout = lm.dropout();
  const v1::EvaluatorSpec limits_spec = search_space::WithEvaluatorLimitDefaults(task.evaluator());
  ChildLimits limits;
  limits.max_parameters = limits_spec.max_parameters();
  limits.max_activation_bytes = limits_spec.max_activation_bytes();
  limits.batch_size = batch;
  limits.max_memory_bytes = max_child_bytes;
  try {
    const torch::Device device(device_name);
    absl::StatusOr<RecurrentLm> built = BuildRecurrentLm(task.architecture(), options, limits);
    if (!built.ok()) return built.status();
    RecurrentLm net = *built;
    net->to(device);
    const torch::Tensor train = Batchify(corpus.train, lm.train_tokens(), batch).to(device);
    const torch::Tensor valid = Batchify(corpus.valid, lm.valid_tokens(), eval_batch).to(device);
    if (train.size(0) < 2 || valid.size(0) < 2) {
      return absl::InvalidArgumentError(absl::StrCat(
          "evaluator.train.language_model: ", train.size(0), " training and ", valid.size(0),
          " validation rows of tokens (train_tokens / batch_size, valid_tokens / eval_batch_size); need 2 each"));
    }
    const int64_t vocabulary = options.shape.vocabulary;
    const auto mean_nll = [&](const torch::Tensor& data, int sequences) -> absl::StatusOr<double> {
      torch::NoGradGuard no_grad;
      net->eval();
      RecurrentState state = net->cell->InitialState(sequences, device);
      torch::Tensor total = torch::zeros({}, torch::TensorOptions().dtype(torch::kDouble).device(device));
      for (int64_t t = 0; t + 1 < data.size(0); t += bptt) {
        if (context.Cancelled()) return absl::CancelledError("cancelled");
        const int64_t n = std::min<int64_t>(bptt, data.size(0) - 1 - t);
        const torch::Tensor logits = net->forward(data.slice(0, t, t + n), &state);
        total += torch::nn::functional::cross_entropy(
            logits.view({-1, vocabulary}), data.slice(0, t + 1, t + 1 + n).reshape(-1),
            torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kSum));
      }
      net->train();
      return total.item<double>() / static_cast<double>((data.size(0) - 1) * data.size(1));
    };

    const double lr = spec.learning_rate();
    torch::optim::SGD optimizer(net->parameters(), torch::optim::SGDOptions(lr)
                                                       .momentum(spec.momentum())
                                                       .nesterov(spec.momentum() > 0)
                                                       .weight_decay(spec.weight_decay()));
    const int64_t steps_per_epoch = (train.size(0) - 1 + bptt - 1) / bptt;
    const int64_t total_steps = steps_per_epoch * epochs;
    int64_t step = 0;
    v1::TrialMetrics metrics;
    const absl::Time start = absl::Now();
    net->train();
    for (int epoch = 1; epoch <= epochs && !context.StopEarly(); ++epoch) {
      const absl::Time epoch_start = absl::Now();
      // The state runs on across the epoch's batches, cut from the graph at
      // each (truncated back-propagation).
      RecurrentState state = net->cell->InitialState(batch, device);
      torch::Tensor loss_sum = torch::zeros({}, torch::TensorOptions().dtype(torch::kDouble).device(device));
      for (int64_t t = 0; t + 1 < train.size(0); t += bptt, ++step) {
        if (context.Cancelled()) return absl::CancelledError("cancelled");
        if (context.StopEarly()) break;
        const double progress = static_cast<double>(step) / total_steps;
        const double rate = spec.lr_schedule() == "step"
                                ? lr * (progress >= 0.75 ? 0.01 : progress >= 0.5 ? 0.1 : 1.0)
                                : 0.5 * lr * (1 + std::cos(M_PI * progress));
        for (auto& group : optimizer.param_groups()) {
          static_cast<torch::optim::SGDOptions&>(group.options()).lr(rate);
        }
        const int64_t n = std::min<int64_t>(bptt, train.size(0) - 1 - t);
        state = state.Detached();
        optimizer.zero_grad();
        const torch::Tensor logits = net->forward(train.slice(0, t, t + n), &state);
        const torch::Tensor loss = torch::nn::functional::cross_entropy(
            logits.view({-1, vocabulary}), train.slice(0, t + 1, t + 1 + n).reshape(-1));
        loss.backward();
        if (lm.grad_clip() > 0) torch::nn::utils::clip_grad_norm_(net->parameters(), lm.grad_clip());
        optimizer.step();
        loss_sum += loss.detach().to(torch::kDouble) * static_cast<double>(n);
      }
      if (context.StopEarly()) break;  // the epoch in progress is dropped
      absl::StatusOr<double> valid_nll = mean_nll(valid, eval_batch);
      if (!valid_nll.ok()) return valid_nll.status();
      const double train_loss = loss_sum.item<double>() / static_cast<double>(train.size(0) - 1);
      v1::EpochResult* result = metrics.add_epochs();
      result->set_epoch(epoch);
      result->set_train_loss(train_loss);
      result->set_train_perplexity(Perplexity(train_loss));
      result->set_validation_perplexity(Perplexity(*valid_nll));
      result->set_seconds(absl::ToDoubleSeconds(absl::Now() - epoch_start));
      context.on_epoch(*result);
    }
    metrics.set_train_seconds(absl::ToDoubleSeconds(absl::Now() - start));
    metrics.set_parameters(net->parameter_count());
    // Multiply-adds x 2 per token: both projections and the decoder.
    const int64_t e = options.shape.embedding_size, h = options.shape.hidden_size, b = net->cell->base();
    metrics.set_flops(2 * (e * b * h + h * b * h + h * vocabulary));
    metrics.set_device(device.str());
    {
      // One token of one sequence, the state carried.
      torch::NoGradGuard no_grad;
      net->eval();
      RecurrentState state = net->cell->InitialState(1, device);
      const torch::Tensor one = valid.slice(0, 0, 1).slice(1, 0, 1);
      for (int i = 0; i < 3; ++i) net->forward(one, &state);
      std::vector<double> times;
      for (int i = 0; i < 10; ++i) {
        const absl::Time t0 = absl::Now();
        net->forward(one, &state).sum().item<float>();
        times.push_back(absl::ToDoubleSeconds(absl::Now() - t0));
      }
      std::sort(times.begin(), times.end());
      metrics.set_latency_seconds(times[times.size() / 2]);
    }
    metrics.set_perplexity(RecentPerplexity(metrics, search_space::WithRewardDefaults(task.reward()).last_epochs()));
    metrics.set_reward(ComputePerplexityReward(task.reward(), metrics.perplexity(), metrics));
    return metrics;
  } catch (const c10::Error& e) {
    // Out of memory or a shape LibTorch refuses: retry elsewhere may help.
    return absl::InternalError(absl::StrCat("LibTorch: ", e.what_without_backtrace()));
  }
}

}  // namespace nas::worker
