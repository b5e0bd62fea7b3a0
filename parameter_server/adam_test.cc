// The server's Adam and SGD with momentum (plain float math) against
// torch::optim::Adam and torch::optim::SGD.
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

TEST(AdamTest, SgdWithMomentumMatchesTorchSgdWithinOneMillionthOverHundredSteps) {
  v1::OptimizerConfig config;
  config.set_kind(v1::OptimizerConfig::SGD);
  config.set_learning_rate(0.05);
  config.set_momentum(0.9);
  auto sgd = CreateOptimizer(config);
  ASSERT_TRUE(sgd.ok()) << sgd.status();
  EXPECT_EQ((*sgd)->buffers(), 1);
  constexpr int kN = 129;
  std::mt19937 rng(11);
  std::uniform_real_distribution<float> u(-0.08f, 0.08f);
  std::normal_distribution<float> g(0, 1);
  std::vector<float> theta(kN), buf(kN, 0);
  for (float& x : theta) x = u(rng);
  torch::Tensor reference = torch::tensor(theta).requires_grad_(true);
  torch::optim::SGD torch_sgd({reference}, torch::optim::SGDOptions(0.05).momentum(0.9));
  double max_error = 0, max_moved = 0;
  for (int step = 1; step <= 100; ++step) {
    std::vector<float> gradient(kN);
    for (float& x : gradient) x = g(rng) * 0.1f;
    (*sgd)->Apply(theta.data(), gradient.data(), buf.data(), nullptr, kN, step);
    torch_sgd.zero_grad();
    reference.mutable_grad() = torch::tensor(gradient);
    torch_sgd.step();
    auto acc = reference.accessor<float, 1>();
    for (int i = 0; i < kN; ++i) {
      max_error = std::max(max_error, std::fabs(double(acc[i]) - theta[i]));
      max_moved = std::max(max_moved, std::fabs(double(buf[i])));
    }
  }
  EXPECT_LT(max_error, 1e-6);
  EXPECT_GT(max_moved, 0.1);  // the buffer carried momentum
  config.set_momentum(0);
  EXPECT_EQ(CreateOptimizer(config).value()->buffers(), 0);
}

TEST(AdamTest, BadMomentumStalenessOrSparseAccumulationAreRejectedNamingTheField) {
  v1::OptimizerConfig config;
  config.set_kind(v1::OptimizerConfig::SGD);
  config.set_learning_rate(0.1);
  auto refused = [&](const std::string& field) {
    absl::Status status = CreateOptimizer(config).status();
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << field;
    EXPECT_NE(status.message().find(field), absl::string_view::npos) << status;
  };
  config.set_momentum(1.0);
  refused("optimizer.momentum");
  config.set_momentum(-0.1);
  refused("optimizer.momentum");
  config.set_momentum(0.9);
  config.set_kind(v1::OptimizerConfig::ADAM);
  refused("optimizer.momentum");
  config.set_momentum(0);
  config.set_max_staleness(-1);
  refused("optimizer.max_staleness");
  config.set_max_staleness(4);
  config.set_sparse(true);
  config.set_gradients_per_update(2);
  refused("optimizer.gradients_per_update");
  config.set_gradients_per_update(1);
  EXPECT_TRUE(CreateOptimizer(config).ok());
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
