#include <torch/torch.h>

#include <atomic>
#include <cmath>
#include <cstdlib>
#include <string>

#include "gtest/gtest.h"
#include "search_space/child_size.h"
#include "worker/evaluator.h"
#include "worker/ptb_dataset.h"
#include "worker/recurrent_net.h"
#include "worker/train_evaluator.h"

namespace nas::worker {
namespace {

std::shared_ptr<const TextCorpus> Ptb() {
  auto corpus = LoadPtb(std::string(std::getenv("TEST_SRCDIR")) + "/ptb", {"/"});
  EXPECT_TRUE(corpus.ok()) << corpus.status();
  return corpus.ok() ? *corpus : nullptr;
}

v1::Task LstmTask(int epochs) {
  v1::Task task;
  task.set_job_id("lm-test");
  task.set_trial_id("t0");
  *task.mutable_architecture()->mutable_recurrent_cell() = LstmCellArchitecture();
  v1::TrainEvaluatorSpec* spec = task.mutable_evaluator()->mutable_train();
  spec->set_dataset("ptb");
  spec->set_epochs(epochs);
  spec->set_batch_size(10);
  spec->set_learning_rate(10);
  v1::LanguageModelSpec* lm = spec->mutable_language_model();
  lm->set_embedding_size(16);
  lm->set_hidden_size(16);
  lm->set_tie_weights(true);
  lm->set_bptt_steps(20);
  lm->set_train_tokens(6000);
  lm->set_valid_tokens(2000);
  task.mutable_reward()->set_last_epochs(1);
  task.mutable_reward()->set_perplexity_constant(100 * 100);
  return task;
}

TEST(TrainLmTest, TrainsTheCellsLanguageModelWithAPerplexityCurveAndTheRewardCOverPerplexitySquared) {
  torch::set_num_threads(1);
  torch::manual_seed(0);
  auto corpus = Ptb();
  ASSERT_NE(corpus, nullptr);
  std::vector<double> seen;
  EvaluationContext context;
  context.on_epoch = [&](const v1::EpochResult& e) { seen.push_back(e.validation_perplexity()); };
  auto metrics = TrainOnText(LstmTask(2), *corpus, "cpu", context);
  ASSERT_TRUE(metrics.ok()) << metrics.status();
  ASSERT_EQ(metrics->epochs_size(), 2);
  EXPECT_EQ(seen.size(), 2u);
  std::printf("validation perplexity per epoch: %.1f %.1f (%.1f s)\n", metrics->epochs(0).validation_perplexity(),
              metrics->epochs(1).validation_perplexity(), metrics->train_seconds());
  for (const v1::EpochResult& e : metrics->epochs()) {
    // Learned: far below the 10,000 of guessing uniformly over the vocabulary.
    EXPECT_LT(e.validation_perplexity(), 2000);
    EXPECT_GT(e.validation_perplexity(), 1);
    EXPECT_NEAR(e.train_perplexity(), std::exp(e.train_loss()), 1e-6 * e.train_perplexity());
  }
  EXPECT_LT(metrics->epochs(1).validation_perplexity(), metrics->epochs(0).validation_perplexity());
  // last_epochs 1: the last epoch's perplexity; R = 100^2 / perplexity^2.
  EXPECT_DOUBLE_EQ(metrics->perplexity(), metrics->epochs(1).validation_perplexity());
  EXPECT_NEAR(metrics->reward(), 1e4 / (metrics->perplexity() * metrics->perplexity()), 1e-12);
  EXPECT_EQ(metrics->accuracy(), 0);
  search_space::LanguageModelShape shape{10000, 16, 16, true, 20};
  EXPECT_EQ(metrics->parameters(), search_space::RecurrentLmParameters(8, shape));
  EXPECT_GT(metrics->flops(), 0);
  EXPECT_GT(metrics->latency_seconds(), 0);
}

TEST(TrainLmTest, CancelledStoppedEarlyAndOversizedChildren) {
  torch::set_num_threads(1);
  auto corpus = Ptb();
  ASSERT_NE(corpus, nullptr);
  std::atomic<bool> cancelled{true};
  EvaluationContext context;
  context.cancelled = &cancelled;
  EXPECT_TRUE(absl::IsCancelled(TrainOnText(LstmTask(1), *corpus, "cpu", context).status()));

  // Stopped early after the first epoch: its metrics alone.
  std::atomic<bool> stop{false};
  EvaluationContext stopping;
  stopping.stop_early = &stop;
  stopping.on_epoch = [&](const v1::EpochResult&) { stop = true; };
  auto metrics = TrainOnText(LstmTask(3), *corpus, "cpu", stopping);
  ASSERT_TRUE(metrics.ok()) << metrics.status();
  EXPECT_EQ(metrics->epochs_size(), 1);
  EXPECT_DOUBLE_EQ(metrics->perplexity(), metrics->epochs(0).validation_perplexity());

  v1::Task big = LstmTask(1);
  big.mutable_evaluator()->set_max_parameters(100000);
  auto refused = TrainOnText(big, *corpus, "cpu", EvaluationContext());
  EXPECT_TRUE(absl::IsResourceExhausted(refused.status())) << refused.status();
  EXPECT_TRUE(IsPermanent(refused.status()));
}

TEST(TrainLmTest, PerplexityRewardUsesTheLastEpochsBestAndTheConstant) {
  v1::TrialMetrics metrics;
  for (double p : {300.0, 120.0, 150.0, 160.0}) metrics.add_epochs()->set_validation_perplexity(p);
  EXPECT_DOUBLE_EQ(RecentPerplexity(metrics, 2), 150);
  EXPECT_DOUBLE_EQ(RecentPerplexity(metrics, 3), 120);
  v1::RewardSpec reward;  // default c = 80^2
  EXPECT_DOUBLE_EQ(ComputePerplexityReward(reward, 80, metrics), 1);
  EXPECT_DOUBLE_EQ(ComputePerplexityReward(reward, 160, metrics), 0.25);
  EXPECT_EQ(ComputePerplexityReward(reward, std::numeric_limits<double>::infinity(), metrics), 0);
  reward.set_perplexity_constant(2);
  EXPECT_DOUBLE_EQ(ComputePerplexityReward(reward, 2, metrics), 0.5);
}

}  // namespace
}  // namespace nas::worker
