#include "controller/reinforce_strategy.h"

#include <torch/torch.h>

#include <cmath>
#include <map>
#include <random>

#include "controller/lstm_policy.h"
#include "controller/random_strategy.h"
#include "controller/strategy_test_jobs.h"
#include "gtest/gtest.h"
#include "search_space/search_space.h"

namespace nas::controller {
namespace {

double SyntheticReward(const v1::Architecture& arch) {
  int good = 0;
  for (const v1::MacroCnnLayer& l : arch.macro_cnn().layers()) {
    good += (l.filter_height() == 5 && l.filter_width() == 5 ? 1 : 0) + (l.num_filters() == 64 ? 1 : 0);
  }
  return good / (2.0 * arch.macro_cnn().layers_size());
}

class ReinforceStrategyTest : public ::testing::Test {
 protected:
  void SetUp() override { torch::set_num_threads(1); }
};

TEST_F(ReinforceStrategyTest, RecomputedLogProbabilityEqualsTheSampledOne) {
  for (const bool cell : {false, true}) {
    v1::JobSpec spec = MacroJob("reinforce", 3);
    if (cell) {
      spec.mutable_search_space()->mutable_cell()->set_num_nodes(4);
      for (const char* op : {"none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3"}) {
        spec.mutable_search_space()->mutable_cell()->add_operations(op);
      }
    }
    LstmPolicy policy(spec.search_space(), spec.controller(), 3);
    std::mt19937_64 rng(11);
    torch::NoGradGuard no_grad;
    PolicyRun sampled = policy->Run(8, 6, nullptr, &rng);
    PolicyRun scored = policy->Run(8, 6, &sampled.tokens, nullptr);
    EXPECT_EQ(scored.tokens, sampled.tokens);
    EXPECT_TRUE(torch::allclose(sampled.log_prob, scored.log_prob, 1e-5, 1e-6));
    EXPECT_TRUE(torch::allclose(sampled.entropy, scored.entropy, 1e-5, 1e-6));
    EXPECT_TRUE((sampled.log_prob < 0).all().item<bool>());
  }
}

TEST_F(ReinforceStrategyTest, AutogradGradientMatchesFiniteDifferences) {
  v1::JobSpec spec = MacroJob("reinforce", 5, 3);
  spec.mutable_controller()->set_lstm_units(4);
  spec.mutable_controller()->set_lstm_layers(1);
  spec.mutable_controller()->set_init_range(0.5);
  LstmPolicy policy(spec.search_space(), spec.controller(), 5);
  std::mt19937_64 rng(2);
  std::vector<std::vector<int>> tokens;
  {
    torch::NoGradGuard no_grad;
    tokens = policy->Run(2, 3, nullptr, &rng).tokens;
  }
  policy->zero_grad();
  policy->Run(2, 3, &tokens, nullptr).log_prob.sum().backward();
  std::vector<FlatTensor> grads = policy->Gradients();
  std::vector<FlatTensor> params = policy->Parameters();
  auto log_prob = [&](const std::vector<FlatTensor>& p) {
    EXPECT_TRUE(policy->Load(p).ok());
    torch::NoGradGuard no_grad;
    return policy->Run(2, 3, &tokens, nullptr).log_prob.sum().item<double>();
  };
  int checked = 0;
  std::mt19937_64 pick(4);
  for (size_t t = 0; t < params.size(); ++t) {
    for (int trial = 0; trial < 2; ++trial) {
      const size_t i = pick() % params[t].values.size();
      const float eps = 1e-2f;
      std::vector<FlatTensor> plus = params, minus = params;
      plus[t].values[i] += eps;
      minus[t].values[i] -= eps;
      const double numeric = (log_prob(plus) - log_prob(minus)) / (2 * eps);
      const double analytic = grads[t].values[i];
      EXPECT_NEAR(numeric, analytic, 2e-3 + 2e-2 * std::fabs(analytic))
          << params[t].name << "[" << i << "]";
      ++checked;
    }
  }
  EXPECT_GT(checked, 10);
}

TEST_F(ReinforceStrategyTest, AnchorProbabilitiesStayStrictlyBetweenZeroAndOne) {
  v1::JobSpec spec = MacroJob("reinforce", 1, 4);
  spec.mutable_controller()->set_init_range(1.0);
  LstmPolicy policy(spec.search_space(), spec.controller(), 1);
  std::mt19937_64 rng(1);
  torch::NoGradGuard no_grad;
  std::vector<std::vector<int>> tokens = policy->Run(1, 4, nullptr, &rng).tokens;
  // Force every anchor token to 1, then every one to 0: both finite.
  const std::vector<search_space::Decision> decisions = search_space::Decisions(spec.search_space(), 4);
  for (int bit : {0, 1}) {
    std::vector<int> forced = tokens[0];
    size_t t = 0;
    for (const search_space::Decision& d : decisions) {
      if (d.kind == search_space::Decision::Kind::kAnchor) {
        for (int j = 0; j < d.num_choices; ++j) forced[t++] = bit;
      } else {
        ++t;
      }
    }
    std::vector<std::vector<int>> batch = {forced};
    const double lp = policy->Run(1, 4, &batch, nullptr).log_prob.item<double>();
    EXPECT_TRUE(std::isfinite(lp));
    EXPECT_LT(lp, 0);
  }
}

TEST_F(ReinforceStrategyTest, SameSeedGivesSameSamples) {
  auto a = NewReinforceStrategy(MacroJob("reinforce", 42), 0);
  auto b = NewReinforceStrategy(MacroJob("reinforce", 42), 0);
  auto c = NewReinforceStrategy(MacroJob("reinforce", 42), 1);
  ASSERT_TRUE(a && b && c);
  const std::string ca = SampledCanonicals(*a, 8);
  const std::string cb = SampledCanonicals(*b, 8);
  const std::string cc = SampledCanonicals(*c, 8);
  ASSERT_FALSE(ca.empty() || cb.empty() || cc.empty());
  EXPECT_EQ(ca, cb);
  EXPECT_NE(ca, cc) << "replicas must draw different streams";
}

// Adam on named flat tensors, as a parameter server would apply it.
class TestAdam {
 public:
  explicit TestAdam(double lr) : lr_(lr) {}
  void Step(std::vector<FlatTensor>& params, const std::vector<FlatTensor>& grads) {
    ++t_;
    for (size_t k = 0; k < params.size(); ++k) {
      auto& m = m_[params[k].name];
      auto& v = v_[params[k].name];
      m.resize(params[k].values.size());
      v.resize(params[k].values.size());
      for (size_t i = 0; i < m.size(); ++i) {
        const double g = grads[k].values[i];
        m[i] = 0.9 * m[i] + 0.1 * g;
        v[i] = 0.999 * v[i] + 0.001 * g * g;
        const double mh = m[i] / (1 - std::pow(0.9, t_));
        const double vh = v[i] / (1 - std::pow(0.999, t_));
        params[k].values[i] -= static_cast<float>(lr_ * mh / (std::sqrt(vh) + 1e-8));
      }
    }
  }

 private:
  double lr_;
  int t_ = 0;
  std::map<std::string, std::vector<double>> m_, v_;
};

TEST_F(ReinforceStrategyTest, ReinforceLearnsASyntheticRewardFarBetterThanRandomSearch) {
  // Random search over the same space (controller/random_strategy.h) is the
  // bar to clear.
  std::unique_ptr<SearchStrategy> reinforce = NewReinforceStrategy(MacroJob("reinforce", 7), 0);
  std::unique_ptr<SearchStrategy> random = NewRandomStrategy(MacroJob("random", 7), 0);
  ASSERT_TRUE(reinforce && random);
  std::vector<FlatTensor> params = reinforce->InitialParameters();
  ASSERT_FALSE(params.empty());
  TestAdam adam(0.01);
  std::vector<double> reinforce_rewards, random_rewards;
  constexpr int kM = 8;
  for (int round = 0; round < 2000 / kM; ++round) {
    ASSERT_TRUE(reinforce->LoadParameters(params).ok());
    auto archs = reinforce->Sample(kM, {});
    ASSERT_TRUE(archs.ok());
    std::vector<double> rewards;
    for (const v1::Architecture& a : *archs) rewards.push_back(SyntheticReward(a));
    reinforce_rewards.insert(reinforce_rewards.end(), rewards.begin(), rewards.end());
    auto grads = reinforce->Gradient(*archs, rewards);
    ASSERT_TRUE(grads.ok());
    adam.Step(params, *grads);
    auto uniform = random->Sample(kM, {});
    ASSERT_TRUE(uniform.ok());
    for (const v1::Architecture& a : *uniform) random_rewards.push_back(SyntheticReward(a));
  }
  auto tail_mean = [](const std::vector<double>& r) {
    double s = 0;
    for (size_t i = r.size() - 200; i < r.size(); ++i) s += r[i];
    return s / 200;
  };
  const double learned = tail_mean(reinforce_rewards);
  const double baseline = tail_mean(random_rewards);
  EXPECT_GT(learned, baseline + 0.25) << "reinforce " << learned << " vs random " << baseline;
  EXPECT_GT(reinforce->baseline(), baseline);
}

}  // namespace
}  // namespace nas::controller
