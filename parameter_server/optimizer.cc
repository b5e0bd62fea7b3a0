#include "parameter_server/optimizer.h"

#include <cmath>

#include "absl/strings/str_cat.h"
#include "common/vector_clones.h"

namespace nas::ps {
namespace {

// The update loops, apart from the classes so they can be multi-versioned.
// __restrict: the buffers never overlap, so no runtime alias checks.
NAS_VECTOR_CLONES
void AdamLoop(float* __restrict theta, const float* __restrict g, float* __restrict m,
              float* __restrict v, size_t n, float b1, float b2, float step_size, float bias2_sqrt,
              float eps) {
  for (size_t i = 0; i < n; ++i) {
    m[i] = b1 * m[i] + (1 - b1) * g[i];
    v[i] = b2 * v[i] + (1 - b2) * g[i] * g[i];
    const float denom = std::sqrt(v[i]) / bias2_sqrt + eps;
    theta[i] -= step_size * m[i] / denom;
  }
}

NAS_VECTOR_CLONES
void SgdLoop(float* __restrict theta, const float* __restrict g, size_t n, float lr) {
  for (size_t i = 0; i < n; ++i) theta[i] -= lr * g[i];
}

// torch.optim.SGD's heavy ball (dampening 0, not Nesterov): its first step
// sets buf = g, which momentum * 0 + g is.
NAS_VECTOR_CLONES
void MomentumLoop(float* __restrict theta, const float* __restrict g, float* __restrict buf,
                  size_t n, float lr, float momentum) {
  for (size_t i = 0; i < n; ++i) {
    buf[i] = momentum * buf[i] + g[i];
    theta[i] -= lr * buf[i];
  }
}

class Adam : public Optimizer {
 public:
  Adam(double lr, double beta1, double beta2, double epsilon)
      : lr_(lr), beta1_(beta1), beta2_(beta2), epsilon_(epsilon) {}

  void Apply(float* theta, const float* g, float* m, float* v, size_t n,
             int64_t step) const override {
    const double bias1 = 1 - std::pow(beta1_, static_cast<double>(step));
    const double bias2 = 1 - std::pow(beta2_, static_cast<double>(step));
    const float step_size = static_cast<float>(lr_ / bias1);
    const float bias2_sqrt = static_cast<float>(std::sqrt(bias2));
    const float b1 = static_cast<float>(beta1_), b2 = static_cast<float>(beta2_);
    const float eps = static_cast<float>(epsilon_);
    AdamLoop(theta, g, m, v, n, b1, b2, step_size, bias2_sqrt, eps);
  }
  int buffers() const override { return 2; }

 private:
  const double lr_, beta1_, beta2_, epsilon_;
};

class Sgd : public Optimizer {
 public:
  Sgd(double lr, double momentum)
      : lr_(static_cast<float>(lr)), momentum_(static_cast<float>(momentum)) {}
  void Apply(float* theta, const float* g, float* m, float*, size_t n, int64_t) const override {
    if (momentum_ == 0) {
      SgdLoop(theta, g, n, lr_);
    } else {
      MomentumLoop(theta, g, m, n, lr_, momentum_);
    }
  }
  int buffers() const override { return momentum_ == 0 ? 0 : 1; }

 private:
  const float lr_, momentum_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<Optimizer>> CreateOptimizer(const v1::OptimizerConfig& config) {
  const double lr = config.learning_rate();
  if (!(lr > 0 && std::isfinite(lr))) {
    return absl::InvalidArgumentError(
        absl::StrCat("optimizer.learning_rate: must be > 0, got ", lr));
  }
  const double momentum = config.momentum();
  if (!(momentum >= 0 && momentum < 1)) {
    return absl::InvalidArgumentError(
        absl::StrCat("optimizer.momentum: must be in [0, 1), got ", momentum));
  }
  if (config.max_staleness() < 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "optimizer.max_staleness: must be >= 0 (0 = no bound), got ", config.max_staleness()));
  }
  if (config.sparse() && config.gradients_per_update() > 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "optimizer.gradients_per_update: a sparse set (optimizer.sparse) applies every push at "
        "once, so it must be 0 or 1, got ", config.gradients_per_update()));
  }
  switch (config.kind()) {
    case v1::OptimizerConfig::ADAM:
    case v1::OptimizerConfig::KIND_UNSPECIFIED: {
      const double b1 = config.beta1() == 0 ? 0.9 : config.beta1();
      const double b2 = config.beta2() == 0 ? 0.999 : config.beta2();
      const double eps = config.epsilon() == 0 ? 1e-8 : config.epsilon();
      if (momentum != 0) {
        return absl::InvalidArgumentError(
            "optimizer.momentum: SGD only (Adam's momentum is beta1)");
      }
      if (!(b1 > 0 && b1 < 1 && b2 > 0 && b2 < 1 && eps > 0)) {
        return absl::InvalidArgumentError("optimizer: betas must be in (0, 1), epsilon > 0");
      }
      return std::make_unique<Adam>(lr, b1, b2, eps);
    }
    case v1::OptimizerConfig::SGD:
      return std::make_unique<Sgd>(lr, momentum);
    default:
      return absl::InvalidArgumentError(absl::StrCat("optimizer.kind: unknown value ", config.kind()));
  }
}

}  // namespace nas::ps
