#include "controller/reinforce_strategy.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <random>

#include "absl/strings/str_cat.h"
#include "controller/fast_policy.h"
#include "search_space/search_space.h"

namespace nas::controller {
namespace {

class ReinforceStrategy : public SearchStrategy {
 public:
  ReinforceStrategy(const v1::JobSpec& spec, int replica_index, int64_t rounds_before)
      : spec_(spec),
        policy_(spec.search_space(), spec.controller(),
                static_cast<uint64_t>(spec.strategy().seed())),
        rng_(ReplicaSeed(spec.strategy().seed(), replica_index, rounds_before)) {
    // A round's gradient covers the children it sampled: keep their traces.
    policy_.KeepSampleTraces(std::max(1, spec.parallelism().children_per_replica()));
  }

  std::vector<FlatTensor> InitialParameters() override { return policy_.Parameters(); }

  absl::Status LoadParameters(const std::vector<FlatTensor>& parameters) override {
    return policy_.Load(parameters);
  }

  absl::StatusOr<std::vector<v1::Architecture>> Sample(int count,
                                                      const SampleContext& context) override {
    const v1::SearchSpace& space = spec_.search_space();
    const int layers =
        space.has_macro_cnn() ? search_space::LayersForSamples(space.macro_cnn(), context.samples_so_far) : 0;
    std::vector<v1::Architecture> out;
    double entropy = 0;
    for (int k = 0; k < count; ++k) {
      const std::vector<int> tokens = policy_.Sample(layers, &rng_, nullptr, &entropy);
      absl::StatusOr<v1::Architecture> arch = search_space::ArchitectureFromTokens(space, layers, tokens);
      if (!arch.ok()) return arch.status();
      out.push_back(*std::move(arch));
    }
    last_entropy_ = count > 0 ? entropy / count : 0;
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
    // loss = -sum_k (r_k - b) log p(a_k) / m - w * sum_k H(a_k) / m, each
    // architecture teacher-forced through the policy at its own depth.
    policy_.ZeroGradients();
    const double m = static_cast<double>(archs.size());
    const double entropy_weight = spec_.controller().entropy_weight();
    for (size_t k = 0; k < archs.size(); ++k) {
      const std::vector<int> tokens(archs[k].tokens().begin(), archs[k].tokens().end());
      absl::Status s = policy_.Backward(tokens, search_space::NumLayers(archs[k]), (rewards[k] - baseline_) / m,
                                        entropy_weight / m);
      if (!s.ok()) {
        return absl::InvalidArgumentError(absl::StrCat(
            "architecture ", k, "'s tokens do not fit the search space: ", s.message()));
      }
    }
    const double clip = spec_.controller().grad_clip_norm();
    if (clip > 0) policy_.ClipGradientNorm(clip);
    const double decay = spec_.controller().baseline_decay();
    for (double r : rewards) baseline_ = decay * baseline_ + (1 - decay) * r;
    return policy_.Gradients();
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
  FastPolicy policy_;
  std::mt19937_64 rng_;
  double baseline_ = 0;
  bool baseline_set_ = false;
  double last_entropy_ = 0;
};

}  // namespace

std::unique_ptr<SearchStrategy> NewReinforceStrategy(const v1::JobSpec& spec, int replica_index,
                                                     int64_t rounds_before) {
  return std::make_unique<ReinforceStrategy>(spec, replica_index, rounds_before);
}

}  // namespace nas::controller
