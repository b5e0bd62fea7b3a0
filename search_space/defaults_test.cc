#include "search_space/defaults.h"

#include "gtest/gtest.h"

namespace nas::search_space {
namespace {

TEST(DefaultsTest, UnsetCellFieldsTakeTheDocumentedDefaults) {
  v1::SearchSpace space;
  space.mutable_cell()->set_num_nodes(4);
  const v1::SearchSpace filled = WithSearchSpaceDefaults(space);
  EXPECT_EQ(filled.cell().num_nodes(), 4);
  EXPECT_EQ(filled.cell().cells_per_stage(), 1);
  EXPECT_EQ(filled.cell().initial_channels(), 16);
}

TEST(DefaultsTest, SetCellFieldsAreKept) {
  v1::SearchSpace space;
  space.mutable_cell()->set_cells_per_stage(5);
  space.mutable_cell()->set_initial_channels(8);
  const v1::SearchSpace filled = WithSearchSpaceDefaults(space);
  EXPECT_EQ(filled.cell().cells_per_stage(), 5);
  EXPECT_EQ(filled.cell().initial_channels(), 8);
}

TEST(DefaultsTest, AnUnsetCellTakesTheDefaultShape) {
  const v1::CellSpace filled = WithCellDefaults(v1::SearchSpace().cell());
  EXPECT_EQ(filled.cells_per_stage(), 1);
  EXPECT_EQ(filled.initial_channels(), 16);
}

TEST(DefaultsTest, OtherSpacesAreLeftAlone) {
  v1::SearchSpace macro;
  macro.mutable_macro_cnn()->add_filter_heights(3);
  EXPECT_EQ(WithSearchSpaceDefaults(macro).SerializeAsString(), macro.SerializeAsString());
  v1::SearchSpace unset;
  EXPECT_FALSE(WithSearchSpaceDefaults(unset).has_cell());
}

TEST(DefaultsTest, UnsetTrainFieldsTakeTheDocumentedDefaults) {
  v1::TrainEvaluatorSpec train;
  train.set_dataset("mnist");
  train.set_epochs(3);
  const v1::TrainEvaluatorSpec filled = WithTrainDefaults(train);
  EXPECT_EQ(filled.dataset(), "mnist");
  EXPECT_EQ(filled.epochs(), 3);
  EXPECT_EQ(filled.data_dir(), "");
  EXPECT_EQ(filled.train_size(), 0);
  EXPECT_EQ(filled.batch_size(), 128);
  EXPECT_EQ(filled.validation_size(), 5000);
  EXPECT_DOUBLE_EQ(filled.learning_rate(), 0.1);
  EXPECT_DOUBLE_EQ(filled.momentum(), 0.9);
  EXPECT_DOUBLE_EQ(filled.weight_decay(), 1e-4);
  EXPECT_EQ(filled.lr_schedule(), "cosine");
}

TEST(DefaultsTest, SetTrainFieldsAreKept) {
  v1::TrainEvaluatorSpec train;
  train.set_batch_size(32);
  train.set_validation_size(100);
  train.set_learning_rate(0.05);
  train.set_momentum(0.5);
  train.set_weight_decay(5e-4);
  train.set_lr_schedule("step");
  const v1::TrainEvaluatorSpec filled = WithTrainDefaults(train);
  EXPECT_EQ(filled.SerializeAsString(), train.SerializeAsString());
}

TEST(DefaultsTest, RewardDefaultsFillOnlyUnsetFields) {
  const v1::RewardSpec filled = WithRewardDefaults(v1::RewardSpec());
  EXPECT_EQ(filled.last_epochs(), 5);
  EXPECT_DOUBLE_EQ(filled.power(), 3.0);
  EXPECT_EQ(filled.objective_metric(), "");
  v1::RewardSpec set;
  set.set_last_epochs(2);
  set.set_power(1);
  set.set_perplexity_constant(100);
  EXPECT_EQ(WithRewardDefaults(set).SerializeAsString(), set.SerializeAsString());
  EXPECT_DOUBLE_EQ(filled.perplexity_constant(), 6400);
}

TEST(DefaultsTest, PtbTakesTheLanguageModelsDefaultsAndKeepsMomentumAndDecayOff) {
  v1::TrainEvaluatorSpec train;
  train.set_dataset("ptb");
  train.set_epochs(2);
  train.mutable_language_model()->set_hidden_size(64);
  const v1::TrainEvaluatorSpec filled = WithTrainDefaults(train);
  EXPECT_EQ(filled.batch_size(), 20);
  EXPECT_DOUBLE_EQ(filled.learning_rate(), 20);
  EXPECT_DOUBLE_EQ(filled.momentum(), 0);
  EXPECT_DOUBLE_EQ(filled.weight_decay(), 0);
  EXPECT_EQ(filled.validation_size(), 0);
  EXPECT_EQ(filled.lr_schedule(), "cosine");
  EXPECT_EQ(filled.language_model().embedding_size(), 200);
  EXPECT_EQ(filled.language_model().hidden_size(), 64);
  EXPECT_EQ(filled.language_model().bptt_steps(), 35);
  EXPECT_DOUBLE_EQ(filled.language_model().grad_clip(), 0.25);
  EXPECT_EQ(filled.language_model().eval_batch_size(), 10);
  EXPECT_DOUBLE_EQ(filled.language_model().dropout(), 0);
}

}  // namespace
}  // namespace nas::search_space
