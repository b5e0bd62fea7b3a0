// The server's Adam (plain float math) against torch::optim::Adam.
#include <torch/torch.h>

#include <random>

#include "gtest/gtest.h"
#include "parameter_server/optimizer.h"

namespace nas::ps {
namespace {

TEST(AdamTest, MatchesTorchAdamWithinOneMillionthOverHundredSteps) {
  v1::OptimizerConfig config;
  config.set_kind(v1::OptimizerConfig::ADAM);
  config.set_learning_rate(6e-4);
  auto adam = CreateOptimizer(config);
  ASSERT_TRUE(adam.ok());
  constexpr int kN = 257;
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> u(-0.08f, 0.08f);
  std::normal_distribution<float> g(0, 1);
  std::vector<float> theta(kN), m(kN, 0), v(kN, 0);
  for (float& x : theta) x = u(rng);
  torch::Tensor reference = torch::tensor(theta).requires_grad_(true);
  torch::optim::Adam torch_adam({reference}, torch::optim::AdamOptions(6e-4));
  double max_error = 0;
  for (int step = 1; step <= 100; ++step) {
    std::vector<float> gradient(kN);
    for (float& x : gradient) x = g(rng) * (step % 7 == 0 ? 10.f : 1.f);
    (*adam)->Apply(theta.data(), gradient.data(), m.data(), v.data(), kN, step);
    torch_adam.zero_grad();
    reference.mutable_grad() = torch::tensor(gradient);
    torch_adam.step();
    auto acc = reference.accessor<float, 1>();
    for (int i = 0; i < kN; ++i) max_error = std::max(max_error, std::fabs(double(acc[i]) - theta[i]));
  }
  EXPECT_LT(max_error, 1e-6);
}

TEST(AdamTest, UnknownKindAndBadLearningRateAreRejected) {
  v1::OptimizerConfig config;
  config.set_kind(v1::OptimizerConfig::SGD);
  config.set_learning_rate(0);
  EXPECT_EQ(CreateOptimizer(config).status().code(), absl::StatusCode::kInvalidArgument);
  config.set_learning_rate(0.1);
  config.set_kind(static_cast<v1::OptimizerConfig::Kind>(9));
  EXPECT_EQ(CreateOptimizer(config).status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace nas::ps
