// The plain-C++ controller against the LibTorch reference module: same
// parameters, same log-probabilities and entropies, same REINFORCE gradient
// (autograd) for every kind of search space and logit shaping.
#include <torch/torch.h>

#include <cmath>
#include <random>

#include "controller/fast_policy.h"
#include "controller/job_spec.h"
#include "controller/lstm_policy.h"
#include "gtest/gtest.h"

namespace nas::controller {
namespace {

struct Case {
  std::string name;
  v1::JobSpec spec;
  int layers;
};

std::vector<Case> Cases() {
  std::vector<Case> cases;
  auto macro = [](bool skip, bool strides, int layers) {
    v1::JobSpec spec;
    v1::MacroCnnSpace* m = spec.mutable_search_space()->mutable_macro_cnn();
    for (int v : {1, 3, 5, 7}) m->add_filter_heights(v);
    for (int v : {1, 3, 5}) m->add_filter_widths(v);
    for (int v : {24, 36, 48, 64}) m->add_num_filters(v);
    if (strides) {
      for (int v : {1, 2}) m->add_strides(v);
    }
    m->set_skip_connections(skip);
    m->mutable_depth()->set_initial_layers(layers);
    m->mutable_depth()->set_max_layers(layers);
    spec.mutable_strategy()->set_name("reinforce");
    spec.mutable_budget()->set_max_trials(1);
    spec.mutable_evaluator()->mutable_synthetic();
    return WithDefaults(spec);
  };
  cases.push_back({"macro_skip", macro(true, true, 5), 5});
  cases.push_back({"macro_no_skip", macro(false, false, 4), 4});
  Case shaped{"macro_skip_tanh_temperature", macro(true, false, 4), 4};
  shaped.spec.mutable_controller()->set_tanh_constant(2.5);
  shaped.spec.mutable_controller()->set_temperature(5);
  shaped.spec.mutable_controller()->set_lstm_layers(1);
  shaped.spec.mutable_controller()->set_lstm_units(16);
  shaped.spec.mutable_controller()->set_init_range(0.3);
  cases.push_back(shaped);
  Case cell{"cell", macro(false, false, 1), 0};
  cell.spec.mutable_search_space()->mutable_cell()->set_num_nodes(4);
  for (const char* op : {"none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3"}) {
    cell.spec.mutable_search_space()->mutable_cell()->add_operations(op);
  }
  cases.push_back(cell);
  return cases;
}

TEST(FastPolicyTest, ParametersEqualTheReferenceModule) {
  for (const Case& c : Cases()) {
    FastPolicy fast(c.spec.search_space(), c.spec.controller(), 7);
    LstmPolicy reference(c.spec.search_space(), c.spec.controller(), 7);
    std::vector<FlatTensor> a = fast.Parameters(), b = reference->Parameters();
    ASSERT_EQ(a.size(), b.size()) << c.name;
    for (size_t t = 0; t < a.size(); ++t) {
      EXPECT_EQ(a[t].name, b[t].name);
      EXPECT_EQ(a[t].shape, b[t].shape) << a[t].name;
      EXPECT_EQ(a[t].values, b[t].values) << a[t].name;
    }
  }
}

TEST(FastPolicyTest, LogProbabilityEntropyAndGradientMatchLibTorchAutograd) {
  torch::set_num_threads(1);
  for (const Case& c : Cases()) {
    SCOPED_TRACE(c.name);
    FastPolicy fast(c.spec.search_space(), c.spec.controller(), 3);
    LstmPolicy reference(c.spec.search_space(), c.spec.controller(), 3);
    std::mt19937_64 rng(19);
    const int batch = 6;
    std::vector<std::vector<int>> tokens;
    std::vector<double> sampled_log_prob;
    for (int b = 0; b < batch; ++b) {
      double lp = 0, entropy = 0;
      tokens.push_back(fast.Sample(c.layers, &rng, &lp, &entropy));
      sampled_log_prob.push_back(lp);
    }
    const std::vector<double> weights = {0.7, -0.3, 0.0, 1.2, -0.9, 0.25};
    const double entropy_weight = 0.05;
    reference->zero_grad();
    PolicyRun run = reference->Run(batch, c.layers, &tokens, nullptr);
    torch::Tensor w = torch::tensor(std::vector<float>(weights.begin(), weights.end()));
    (-(w * run.log_prob).sum() - entropy_weight * run.entropy.sum()).backward();
    fast.ZeroGradients();
    for (int b = 0; b < batch; ++b) {
      double lp = 0, entropy = 0;
      ASSERT_TRUE(fast.Score(tokens[b], c.layers, &lp, &entropy).ok());
      EXPECT_NEAR(lp, sampled_log_prob[b], 1e-9);
      EXPECT_NEAR(lp, run.log_prob[b].item<double>(), 1e-4 * (1 + std::fabs(lp)));
      EXPECT_NEAR(entropy, run.entropy[b].item<double>(), 1e-4 * (1 + entropy));
      ASSERT_TRUE(fast.Backward(tokens[b], c.layers, weights[b], entropy_weight).ok());
    }
    std::vector<FlatTensor> a = fast.Gradients(), e = reference->Gradients();
    ASSERT_EQ(a.size(), e.size());
    double nonzero = 0;
    for (size_t t = 0; t < a.size(); ++t) {
      ASSERT_EQ(a[t].values.size(), e[t].values.size());
      for (size_t i = 0; i < a[t].values.size(); ++i) {
        EXPECT_NEAR(a[t].values[i], e[t].values[i], 1e-5 + 1e-3 * std::fabs(e[t].values[i]))
            << a[t].name << "[" << i << "]";
        nonzero += std::fabs(e[t].values[i]);
      }
    }
    EXPECT_GT(nonzero, 1e-3);
  }
}

TEST(FastPolicyTest, SamplingFollowsTheScoredDistribution) {
  // One layer without strides or skips: 4 x 3 x 4 sequences. Their scored
  // probabilities sum to 1, and sampled frequencies of the first token match
  // the scored marginals (with a bias making choice 2 likely).
  Case c = Cases()[1];
  c.layers = 1;
  FastPolicy fast(c.spec.search_space(), c.spec.controller(), 1);
  std::vector<FlatTensor> p = fast.Parameters();
  for (FlatTensor& f : p) {
    if (f.name == "head_filter_height_bias") f.values = {0.f, -1.f, 2.f, 0.5f};
  }
  ASSERT_TRUE(fast.Load(p).ok());
  std::vector<double> marginal(4, 0.0);
  double total = 0;
  for (int a = 0; a < 4; ++a) {
    for (int b = 0; b < 3; ++b) {
      for (int n = 0; n < 4; ++n) {
        double lp = 0, entropy = 0;
        ASSERT_TRUE(fast.Score({a, b, n}, 1, &lp, &entropy).ok());
        marginal[a] += std::exp(lp);
        total += std::exp(lp);
      }
    }
  }
  EXPECT_NEAR(total, 1.0, 1e-5);
  std::mt19937_64 rng(5);
  std::vector<int> hits(4, 0);
  const int samples = 20000;
  for (int s = 0; s < samples; ++s) {
    double lp = 0, entropy = 0;
    ++hits[fast.Sample(1, &rng, &lp, &entropy)[0]];
  }
  for (int a = 0; a < 4; ++a) {
    EXPECT_NEAR(static_cast<double>(hits[a]) / samples, marginal[a], 0.015) << "choice " << a;
  }
  EXPECT_GT(marginal[2], 0.5);
}

TEST(FastPolicyTest, BadTokensAndParametersAreRejected) {
  const Case c = Cases()[0];
  FastPolicy fast(c.spec.search_space(), c.spec.controller(), 1);
  double lp = 0, entropy = 0;
  std::mt19937_64 rng(1);
  std::vector<int> tokens = fast.Sample(c.layers, &rng, &lp, &entropy);
  std::vector<int> too_long = tokens;
  too_long.push_back(0);
  EXPECT_FALSE(fast.Score(too_long, c.layers, &lp, &entropy).ok());
  std::vector<int> out_of_range = tokens;
  out_of_range[0] = 99;
  EXPECT_FALSE(fast.Score(out_of_range, c.layers, &lp, &entropy).ok());
  EXPECT_FALSE(fast.Backward({}, c.layers, 1, 0).ok());
  std::vector<FlatTensor> p = fast.Parameters();
  p[0].shape.push_back(1);
  EXPECT_FALSE(fast.Load(p).ok());
  p = fast.Parameters();
  p.pop_back();
  EXPECT_FALSE(fast.Load(p).ok());
}

TEST(FastPolicyTest, KeptSampleTracesGiveTheSameGradientAndGoStaleOnLoad) {
  for (const Case& c : Cases()) {
    SCOPED_TRACE(c.name);
    FastPolicy keeping(c.spec.search_space(), c.spec.controller(), 3);
    FastPolicy plain(c.spec.search_space(), c.spec.controller(), 3);
    keeping.KeepSampleTraces(4);
    std::mt19937_64 rng_a(7), rng_b(7);
    auto sample = [&](int n) {
      std::vector<std::vector<int>> out;
      for (int k = 0; k < n; ++k) {
        double lp = 0, ea = 0, eb = 0;
        out.push_back(keeping.Sample(c.layers, &rng_a, &lp, &ea));
        EXPECT_EQ(plain.Sample(c.layers, &rng_b, &lp, &eb), out.back());
      }
      return out;
    };
    auto gradients_match = [&](const std::vector<std::vector<int>>& seqs) {
      keeping.ZeroGradients();
      plain.ZeroGradients();
      for (size_t k = 0; k < seqs.size(); ++k) {
        const double weight = 0.3 * static_cast<double>(k) - 0.5;
        ASSERT_TRUE(keeping.Backward(seqs[k], c.layers, weight, 0.01).ok());
        ASSERT_TRUE(plain.Backward(seqs[k], c.layers, weight, 0.01).ok());
      }
      const std::vector<FlatTensor> a = keeping.Gradients(), b = plain.Gradients();
      ASSERT_EQ(a.size(), b.size());
      for (size_t i = 0; i < a.size(); ++i) EXPECT_EQ(a[i].values, b[i].values) << a[i].name;
    };
    // Five samples, four kept: the first has no trace left and runs forward.
    gradients_match(sample(5));
    EXPECT_EQ(keeping.traces_reused(), 4);
    // New parameters make kept traces stale: both policies run forward.
    const std::vector<std::vector<int>> more = sample(2);
    std::vector<FlatTensor> changed = keeping.Parameters();
    for (FlatTensor& f : changed) {
      for (float& v : f.values) v *= 1.5f;
    }
    ASSERT_TRUE(keeping.Load(changed).ok());
    ASSERT_TRUE(plain.Load(changed).ok());
    gradients_match(more);
    EXPECT_EQ(keeping.traces_reused(), 4);
    EXPECT_EQ(plain.traces_reused(), 0);
  }
}

TEST(FastPolicyTest, ClipGradientNormScalesToTheLimit) {
  const Case c = Cases()[0];
  FastPolicy fast(c.spec.search_space(), c.spec.controller(), 1);
  double lp = 0, entropy = 0;
  std::mt19937_64 rng(1);
  std::vector<int> tokens = fast.Sample(c.layers, &rng, &lp, &entropy);
  ASSERT_TRUE(fast.Backward(tokens, c.layers, 50, 0).ok());
  const double before = fast.ClipGradientNorm(0.5);
  EXPECT_GT(before, 0.5);
  double squares = 0;
  for (const FlatTensor& g : fast.Gradients()) {
    for (float v : g.values) squares += v * v;
  }
  EXPECT_NEAR(std::sqrt(squares), 0.5, 1e-3);
}

}  // namespace
}  // namespace nas::controller
