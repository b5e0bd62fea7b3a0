#include <cmath>
#include <map>
#include <random>

#include <torch/torch.h>

#include "absl/strings/str_cat.h"
#include "controller/lstm_policy.h"
#include "controller/search_space.h"
#include "controller/strategies.h"

namespace nas::controller {
namespace {

class ReinforceStrategy : public SearchStrategy {
 public:
  ReinforceStrategy(const v1::JobSpec& spec, int replica_index)
      : spec_(spec),
        policy_(spec.search_space(), spec.controller(), static_cast<uint64_t>(spec.strategy().seed())),
        rng_(ReplicaSeed(spec.strategy().seed(), replica_index)) {}

  std::vector<FlatTensor> InitialParameters() override { return policy_->Parameters(); }

  absl::Status LoadParameters(const std::vector<FlatTensor>& parameters) override {
    return policy_->Load(parameters);
  }

  absl::StatusOr<std::vector<v1::Architecture>> Sample(int count,
                                                      const SampleContext& context) override {
    const v1::SearchSpace& space = spec_.search_space();
    const int layers =
        space.has_macro_cnn() ? LayersForSamples(space.macro_cnn(), context.samples_so_far) : 0;
    torch::NoGradGuard no_grad;
    PolicyRun run = policy_->Run(count, layers, nullptr, &rng_);
    last_entropy_ = run.entropy.mean().item<double>();
    std::vector<v1::Architecture> out;
    for (const std::vector<int>& tokens : run.tokens) {
      absl::StatusOr<v1::Architecture> arch = ArchitectureFromTokens(space, layers, tokens);
      if (!arch.ok()) return arch.status();
      out.push_back(*std::move(arch));
    }
    return out;
  }

  absl::StatusOr<std::vector<FlatTensor>> Gradient(const std::vector<v1::Architecture>& archs,
                                                   const std::vector<double>& rewards) override {
    if (archs.empty() || archs.size() != rewards.size()) {
      return absl::InvalidArgumentError("Gradient needs as many rewards as architectures (>= 1)");
    }
    for (double r : rewards) {
      if (!std::isfinite(r)) return absl::InvalidArgumentError("a reward is not finite");
    }
    if (!baseline_set_) {
      double mean = 0;
      for (double r : rewards) mean += r / rewards.size();
      baseline_ = mean;
      baseline_set_ = true;
    }
    // Group by depth: one teacher-forced batch per token structure.
    std::map<int, std::vector<size_t>> by_layers;
    for (size_t k = 0; k < archs.size(); ++k) by_layers[NumLayers(archs[k])].push_back(k);
    policy_->zero_grad();
    const double m = static_cast<double>(archs.size());
    const double entropy_weight = spec_.controller().entropy_weight();
    torch::Tensor loss = torch::zeros({});
    for (const auto& [layers, indices] : by_layers) {
      std::vector<std::vector<int>> tokens;
      std::vector<float> advantages;
      for (size_t k : indices) {
        tokens.emplace_back(archs[k].tokens().begin(), archs[k].tokens().end());
        advantages.push_back(static_cast<float>(rewards[k] - baseline_));
      }
      PolicyRun run = policy_->Run(static_cast<int>(indices.size()), layers, &tokens, nullptr);
      for (size_t b = 0; b < tokens.size(); ++b) {
        if (run.tokens[b].size() != tokens[b].size()) {
          return absl::InvalidArgumentError("an architecture's tokens do not fit the search space");
        }
      }
      torch::Tensor adv = torch::from_blob(advantages.data(),
                                           {static_cast<int64_t>(advantages.size())},
                                           torch::kFloat32)
                              .clone();
      loss = loss - (adv * run.log_prob).sum() / m - entropy_weight * run.entropy.sum() / m;
    }
    loss.backward();
    const double clip = spec_.controller().grad_clip_norm();
    if (clip > 0) torch::nn::utils::clip_grad_norm_(policy_->parameters(), clip);
    const double decay = spec_.controller().baseline_decay();
    for (double r : rewards) baseline_ = decay * baseline_ + (1 - decay) * r;
    return policy_->Gradients();
  }

  double baseline() const override { return baseline_; }
  void set_baseline(double baseline) override {
    // 0 means "never set" in the job record: keep learning it from rewards.
    if (baseline == 0) return;
    baseline_ = baseline;
    baseline_set_ = true;
  }
  double last_entropy() const override { return last_entropy_; }

 private:
  const v1::JobSpec spec_;
  LstmPolicy policy_;
  std::mt19937_64 rng_;
  double baseline_ = 0;
  bool baseline_set_ = false;
  double last_entropy_ = 0;
};

}  // namespace

std::unique_ptr<SearchStrategy> NewReinforceStrategy(const v1::JobSpec& spec, int replica_index) {
  // Replicas are threads; LibTorch's own thread pool would only oversubscribe.
  static const bool threads_set = [] {
    torch::set_num_threads(1);
    return true;
  }();
  (void)threads_set;
  return std::make_unique<ReinforceStrategy>(spec, replica_index);
}

}  // namespace nas::controller
