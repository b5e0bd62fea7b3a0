#include "controller/darts_strategy.h"

#include <cmath>
#include <string>
#include <vector>

#include "controller/job_spec.h"
#include "gtest/gtest.h"
#include "search_space/search_space.h"

namespace nas::controller {
namespace {

v1::JobSpec DartsJob(int64_t seed) {
  v1::JobSpec spec;
  v1::CellSpace* cell = spec.mutable_search_space()->mutable_cell();
  cell->set_num_nodes(4);
  for (const char* op : {"none", "skip_connect", "nor_conv_3x3"}) cell->add_operations(op);
  spec.mutable_strategy()->set_name("darts");
  spec.mutable_strategy()->set_seed(seed);
  spec.mutable_budget()->set_max_trials(1);
  spec.mutable_evaluator()->mutable_shared()->mutable_data()->set_dataset("fashion_mnist");
  return WithDefaults(spec);
}

TEST(DartsStrategyTest, AlphaIsEdgesByOperationsOfSmallSeededNoise) {
  std::unique_ptr<SearchStrategy> a = NewDartsStrategy(DartsJob(7), 0);
  std::unique_ptr<SearchStrategy> b = NewDartsStrategy(DartsJob(7), 3);
  std::unique_ptr<SearchStrategy> c = NewDartsStrategy(DartsJob(8), 0);
  const std::vector<FlatTensor> alpha = a->InitialParameters();
  ASSERT_EQ(alpha.size(), 1u);
  EXPECT_EQ(alpha[0].name, "alpha");
  EXPECT_EQ(alpha[0].shape, (std::vector<int64_t>{6, 3}));
  ASSERT_EQ(alpha[0].values.size(), 18u);
  double sum_squares = 0;
  for (float v : alpha[0].values) {
    EXPECT_LT(std::fabs(v), 1e-2);
    sum_squares += double{v} * v;
  }
  EXPECT_GT(sum_squares, 0);  // not all zero: N(0, 1e-6)
  // Every replica starts from the same α (the servers keep one); the seed changes it.
  EXPECT_EQ(b->InitialParameters()[0].values, alpha[0].values);
  EXPECT_NE(c->InitialParameters()[0].values, alpha[0].values);
}

TEST(DartsStrategyTest, SampleIsTheArgmaxOfTheLoadedAlpha) {
  std::unique_ptr<SearchStrategy> darts = NewDartsStrategy(DartsJob(1), 0);
  FlatTensor alpha = darts->InitialParameters()[0];
  // Edge e prefers operation 1 + e % 2 (none is never chosen: ArgmaxSkipsTheZeroOperation).
  for (int e = 0; e < 6; ++e) alpha.values[e * 3 + 1 + e % 2] = 1.0f + e;
  ASSERT_TRUE(darts->LoadParameters({alpha}).ok());
  absl::StatusOr<std::vector<v1::Architecture>> sampled = darts->Sample(2, {});
  ASSERT_TRUE(sampled.ok()) << sampled.status();
  ASSERT_EQ(sampled->size(), 2u);
  const std::vector<std::string> expected = {"skip_connect", "nor_conv_3x3", "skip_connect",
                                             "nor_conv_3x3", "skip_connect", "nor_conv_3x3"};
  for (const v1::Architecture& a : *sampled) {
    ASSERT_EQ(a.cell().edge_operations_size(), 6);
    for (int e = 0; e < 6; ++e) EXPECT_EQ(a.cell().edge_operations(e), expected[e]) << e;
    EXPECT_FALSE(a.canonical().empty());
  }
  // A new α changes the sample.
  alpha.values[0 * 3 + 2] = 100.0f;
  ASSERT_TRUE(darts->LoadParameters({alpha}).ok());
  EXPECT_EQ(darts->Sample(1, {})->at(0).cell().edge_operations(0), "nor_conv_3x3");
}

TEST(DartsStrategyTest, TheWorkersTrainAlphaSoThereIsNoGradient) {
  std::unique_ptr<SearchStrategy> darts = NewDartsStrategy(DartsJob(1), 0);
  absl::StatusOr<std::vector<v1::Architecture>> sampled = darts->Sample(1, {});
  ASSERT_TRUE(sampled.ok());
  absl::StatusOr<std::vector<FlatTensor>> gradient = darts->Gradient(*sampled, {0.5});
  ASSERT_TRUE(gradient.ok());
  EXPECT_TRUE(gradient->empty());
}

TEST(DartsStrategyTest, RefusesAlphaOfAnotherShape) {
  std::unique_ptr<SearchStrategy> darts = NewDartsStrategy(DartsJob(1), 0);
  FlatTensor wrong = darts->InitialParameters()[0];
  wrong.shape = {3, 6};
  EXPECT_EQ(darts->LoadParameters({wrong}).code(), absl::StatusCode::kInvalidArgument);
  FlatTensor renamed = darts->InitialParameters()[0];
  renamed.name = "theta";
  EXPECT_EQ(darts->LoadParameters({renamed}).code(), absl::StatusCode::kInvalidArgument);
}

TEST(DartsStrategyTest, ArgmaxScoreIsTheMeanSoftmaxWeightOfTheChoices) {
  const v1::JobSpec spec = DartsJob(1);
  FlatTensor alpha;
  alpha.name = "alpha";
  alpha.shape = {6, 3};
  alpha.values.assign(18, 0.0f);  // uniform: each choice weighs 1/3
  double score = 0;
  ASSERT_TRUE(DartsArgmax(spec.search_space(), alpha, &score).ok());
  EXPECT_NEAR(score, 1.0 / 3, 1e-9);
  for (int e = 0; e < 6; ++e) alpha.values[e * 3 + 1] = 50.0f;
  absl::StatusOr<v1::Architecture> argmax = DartsArgmax(spec.search_space(), alpha, &score);
  ASSERT_TRUE(argmax.ok());
  EXPECT_NEAR(score, 1.0, 1e-9);
  EXPECT_EQ(argmax->cell().edge_operations(3), "skip_connect");
}

// As in the paper, none is never chosen: on an edge where it has the largest
// α, the strongest other operation is, and the score is that one's weight.
TEST(DartsStrategyTest, ArgmaxSkipsTheZeroOperation) {
  const v1::JobSpec spec = DartsJob(1);  // none, skip_connect, nor_conv_3x3
  FlatTensor alpha;
  alpha.name = "alpha";
  alpha.shape = {6, 3};
  alpha.values.assign(18, 0.0f);
  for (int e = 0; e < 6; ++e) {
    alpha.values[e * 3] = 3.0f;                         // none strongest everywhere
    alpha.values[e * 3 + (e % 2 == 0 ? 2 : 1)] = 1.0f;  // then conv on even edges, skip on odd
  }
  double score = 0;
  absl::StatusOr<v1::Architecture> argmax = DartsArgmax(spec.search_space(), alpha, &score);
  ASSERT_TRUE(argmax.ok()) << argmax.status();
  for (int e = 0; e < 6; ++e) {
    EXPECT_EQ(argmax->cell().edge_operations(e), e % 2 == 0 ? "nor_conv_3x3" : "skip_connect") << e;
  }
  // softmax(3, 1, 0) at the chosen 1: e / (e^3 + e + 1).
  EXPECT_NEAR(score, std::exp(1.0) / (std::exp(3.0) + std::exp(1.0) + 1.0), 1e-6);
}

}  // namespace
}  // namespace nas::controller
