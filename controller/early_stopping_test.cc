#include "controller/early_stopping.h"

#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace nas::controller {
namespace {

v1::EarlyStoppingSpec Spec(const std::string& rule, int min_epochs, int min_trials, double eta) {
  v1::EarlyStoppingSpec spec;
  spec.set_rule(rule);
  spec.set_min_epochs(min_epochs);
  spec.set_min_trials(min_trials);
  spec.set_eta(eta);
  return spec;
}

TEST(EarlyStoppingTest, NoRuleStopsNothing) {
  EXPECT_EQ(EarlyStopping::Create(v1::EarlyStoppingSpec(), 10), nullptr);
}

TEST(EarlyStoppingTest, MedianStopsABestSoFarBelowTheMedianOfRunningAveragesOnly) {
  auto rule = EarlyStopping::Create(Spec("median", 2, 3, 0), 4);
  ASSERT_NE(rule, nullptr);
  // Running averages at epoch 2: 0.45, 0.55, 0.65 -> median 0.55.
  rule->Finished("a", {0.4, 0.5, 0.6, 0.7});
  rule->Finished("b", {0.5, 0.6, 0.7, 0.8});
  EXPECT_FALSE(rule->ShouldStop("x", {0.1, 0.2})) << "only 2 finished trials so far";
  rule->Finished("c", {0.6, 0.7, 0.8, 0.9});
  EXPECT_FALSE(rule->ShouldStop("x", {0.1})) << "before min_epochs";
  EXPECT_TRUE(rule->ShouldStop("x", {0.1, 0.54}));
  EXPECT_FALSE(rule->ShouldStop("y", {0.56, 0.1})) << "its best so far counts, not its last";
  EXPECT_FALSE(rule->ShouldStop("z", {0.2, 0.55})) << "equal to the median goes on";
  // Epoch 4: averages 0.55, 0.65, 0.75 -> median 0.65.
  EXPECT_TRUE(rule->ShouldStop("x", {0.1, 0.2, 0.3, 0.64}));
  // A shorter finished curve does not count at epochs it never reached.
  rule->Finished("short", {0.0});
  EXPECT_TRUE(rule->ShouldStop("x", {0.1, 0.54}));
}

TEST(EarlyStoppingTest, MedianOfAnEvenCountIsTheMeanOfTheMiddleTwo) {
  auto rule = EarlyStopping::Create(Spec("median", 1, 2, 0), 3);
  rule->Finished("a", {0.4});
  rule->Finished("b", {0.6});
  EXPECT_TRUE(rule->ShouldStop("x", {0.49}));
  EXPECT_FALSE(rule->ShouldStop("y", {0.5}));
}

TEST(EarlyStoppingTest, SuccessiveHalvingKeepsTheTopThirdAtEachRung) {
  // Rungs at 1 and 3 epochs (9 is not below 9).
  auto rule = EarlyStopping::Create(Spec("successive_halving", 1, 0, 3), 9);
  ASSERT_NE(rule, nullptr);
  EXPECT_FALSE(rule->ShouldStop("a", {0.5})) << "the first at a rung goes on";
  EXPECT_TRUE(rule->ShouldStop("b", {0.4})) << "one of 2 did better: not in the top ceil(2/3)=1";
  EXPECT_FALSE(rule->ShouldStop("c", {0.6})) << "the best so far";
  EXPECT_FALSE(rule->ShouldStop("d", {0.55})) << "1 of 4 better, ceil(4/3) = 2 go on";
  // Epoch 2 is no rung; a trial is judged once per rung.
  EXPECT_FALSE(rule->ShouldStop("a", {0.5, 0.1}));
  EXPECT_FALSE(rule->ShouldStop("a", {0.5, 0.1, 0.7}));
  EXPECT_TRUE(rule->ShouldStop("c", {0.6, 0.6, 0.65}));
  EXPECT_FALSE(rule->ShouldStop("c", {0.6, 0.6, 0.65, 0.66})) << "rung 3 was judged already";
}

TEST(EarlyStoppingTest, SuccessiveHalvingJudgesEveryRungAHeartbeatSkipped) {
  auto rule = EarlyStopping::Create(Spec("successive_halving", 1, 0, 2), 8);  // rungs 1, 2, 4
  EXPECT_FALSE(rule->ShouldStop("a", {0.9, 0.9, 0.9, 0.9}));
  // b reports 4 epochs at once: judged at rung 1 (2 trials, ceil(2/2)=1 go on) and stopped.
  EXPECT_TRUE(rule->ShouldStop("b", {0.1, 0.2, 0.3, 0.95}));
}

TEST(EarlyStoppingTest, EvaluatorEpochsComeFromTrainSyntheticOrCommand) {
  v1::EvaluatorSpec e;
  e.mutable_train()->set_epochs(7);
  EXPECT_EQ(EvaluatorEpochs(e), 7);
  e.mutable_synthetic()->set_epochs(4);
  EXPECT_EQ(EvaluatorEpochs(e), 4);
  e.mutable_command()->set_epochs(5);
  EXPECT_EQ(EvaluatorEpochs(e), 5);
  e.mutable_lookup();
  EXPECT_EQ(EvaluatorEpochs(e), 0);
}

}  // namespace
}  // namespace nas::controller
