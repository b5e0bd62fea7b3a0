#include "search_space/search_space.h"

#include <random>
#include <set>
#include <string>

#include "gtest/gtest.h"

namespace nas::search_space {
namespace {

v1::SearchSpace PaperSpace(bool strides, bool skip) {
  v1::SearchSpace space;
  v1::MacroCnnSpace* m = space.mutable_macro_cnn();
  for (int v : {1, 3, 5, 7}) m->add_filter_heights(v);
  for (int v : {1, 3, 5, 7}) m->add_filter_widths(v);
  for (int v : {24, 36, 48, 64}) m->add_num_filters(v);
  if (strides) {
    for (int v : {1, 2, 3}) m->add_strides(v);
  }
  m->set_skip_connections(skip);
  m->mutable_depth()->set_initial_layers(6);
  m->mutable_depth()->set_layers_increment(2);
  m->mutable_depth()->set_samples_per_increment(1600);
  m->mutable_depth()->set_max_layers(12);
  return space;
}

v1::SearchSpace Nb201() {
  v1::SearchSpace space;
  space.mutable_cell()->set_num_nodes(4);
  for (const char* op : {"none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3"}) {
    space.mutable_cell()->add_operations(op);
  }
  return space;
}

TEST(SearchSpaceTest, DepthScheduleStepsAtTheRightSampleCounts) {
  const v1::MacroCnnSpace m = PaperSpace(true, true).macro_cnn();
  EXPECT_EQ(LayersForSamples(m, 0), 6);
  EXPECT_EQ(LayersForSamples(m, 1599), 6);
  EXPECT_EQ(LayersForSamples(m, 1600), 8);
  EXPECT_EQ(LayersForSamples(m, 3199), 8);
  EXPECT_EQ(LayersForSamples(m, 3200), 10);
  EXPECT_EQ(LayersForSamples(m, 4800), 12);
  EXPECT_EQ(LayersForSamples(m, 1000000), 12);
}

TEST(SearchSpaceTest, FirstLayerHasNoAnchorDecisionAndLayerIHasIAnchorTokens) {
  const std::vector<Decision> d = Decisions(PaperSpace(true, true), 3);
  // Layer 0: h, w, filters, stride. Layer 1: + anchor(1). Layer 2: + anchor(2).
  ASSERT_EQ(d.size(), 4u + 5u + 5u);
  for (int i = 0; i < 4; ++i) EXPECT_EQ(d[i].kind, Decision::Kind::kCategorical);
  EXPECT_EQ(d[8].kind, Decision::Kind::kAnchor);
  EXPECT_EQ(d[8].num_choices, 1);
  EXPECT_EQ(d[13].num_choices, 2);
  EXPECT_EQ(TokenCount(d), 4 + 5 + 6);
}

TEST(SearchSpaceTest, DecodesMacroTokensIntoLayersAndCanonicalString) {
  const v1::SearchSpace space = PaperSpace(true, true);
  // L0: 3x5/36/s1; L1: 7x1/64/s2 from L0; L2: 5x5/24/s3 from L1 only.
  auto arch = ArchitectureFromTokens(space, 3, {1, 2, 1, 0, 3, 0, 3, 1, 1, 2, 2, 0, 2, 0, 1});
  ASSERT_TRUE(arch.ok()) << arch.status();
  EXPECT_EQ(arch->canonical(), "L0:3x5/36/s1/in[]|L1:7x1/64/s2/in[0]|L2:5x5/24/s3/in[1]");
  EXPECT_TRUE(ValidateArchitecture(space, *arch).ok());
}

TEST(SearchSpaceTest, WithoutSkipConnectionsLayersChain) {
  const v1::SearchSpace space = PaperSpace(false, false);
  std::mt19937_64 rng(1);
  v1::Architecture arch = SampleUniform(space, 4, rng);
  ASSERT_EQ(arch.macro_cnn().layers_size(), 4);
  EXPECT_TRUE(arch.macro_cnn().layers(0).inputs().empty());
  for (int i = 1; i < 4; ++i) {
    ASSERT_EQ(arch.macro_cnn().layers(i).inputs_size(), 1);
    EXPECT_EQ(arch.macro_cnn().layers(i).inputs(0), i - 1);
    EXPECT_EQ(arch.macro_cnn().layers(i).stride(), 1);
  }
}

TEST(SearchSpaceTest, CellArchitecturesPrintInNasBench201Form) {
  auto arch = ArchitectureFromTokens(Nb201(), 0, {3, 0, 1, 2, 4, 3});
  ASSERT_TRUE(arch.ok());
  EXPECT_EQ(arch->canonical(),
            "|nor_conv_3x3~0|+|none~0|skip_connect~1|+|nor_conv_1x1~0|avg_pool_3x3~1|"
            "nor_conv_3x3~2|");
}

TEST(SearchSpaceTest, RecurrentCellIsRepresentableAndSampled) {
  v1::SearchSpace space;
  v1::RecurrentCellSpace* r = space.mutable_recurrent_cell();
  r->set_base(8);
  r->add_combinations("add");
  r->add_combinations("elem_mult");
  for (const char* a : {"identity", "tanh", "sigmoid", "relu"}) r->add_activations(a);
  r->set_cell_inject(true);
  ASSERT_TRUE(ValidateSearchSpace(space).ok());
  std::mt19937_64 rng(3);
  v1::Architecture arch = SampleUniform(space, 0, rng);
  EXPECT_EQ(arch.recurrent_cell().nodes_size(), 15);
  EXPECT_GE(arch.recurrent_cell().cell_inject_node(), 0);
  EXPECT_TRUE(ValidateArchitecture(space, arch).ok());
  EXPECT_NE(arch.canonical().find("inject:n"), std::string::npos);
}

TEST(SearchSpaceTest, InvalidSpacesListEveryProblemWithItsPath) {
  v1::SearchSpace space = PaperSpace(true, true);
  space.mutable_macro_cnn()->clear_filter_heights();
  space.mutable_macro_cnn()->add_num_filters(64);
  space.mutable_macro_cnn()->add_strides(9);
  space.mutable_macro_cnn()->mutable_depth()->set_max_layers(2);
  absl::Status status = ValidateSearchSpace(space);
  ASSERT_FALSE(status.ok());
  std::string message(status.message());
  for (const char* expected : {"search_space.macro_cnn.filter_heights: must not be empty",
                               "search_space.macro_cnn.num_filters: duplicate choice 64",
                               "search_space.macro_cnn.strides: every value must be in [1, 4]",
                               "search_space.macro_cnn.depth.max_layers"}) {
    EXPECT_NE(message.find(expected), std::string::npos) << expected << "\n" << message;
  }
  v1::SearchSpace cell = Nb201();
  cell.mutable_cell()->add_operations("none");
  cell.mutable_cell()->set_num_nodes(1);
  message = std::string(ValidateSearchSpace(cell).message());
  EXPECT_NE(message.find("search_space.cell.operations: duplicate choice 'none'"), std::string::npos);
  EXPECT_NE(message.find("search_space.cell.num_nodes"), std::string::npos);
}

TEST(SearchSpaceTest, ValidateArchitectureRejectsTamperedForms) {
  const v1::SearchSpace space = PaperSpace(true, true);
  std::mt19937_64 rng(9);
  v1::Architecture arch = SampleUniform(space, 5, rng);
  ASSERT_TRUE(ValidateArchitecture(space, arch).ok());
  v1::Architecture bad = arch;
  bad.mutable_macro_cnn()->mutable_layers(2)->set_num_filters(65);
  EXPECT_FALSE(ValidateArchitecture(space, bad).ok());
  bad = arch;
  bad.mutable_macro_cnn()->mutable_layers(1)->add_inputs(3);
  EXPECT_FALSE(ValidateArchitecture(space, bad).ok());
  bad = arch;
  bad.mutable_tokens()->RemoveLast();
  EXPECT_FALSE(ValidateArchitecture(space, bad).ok());
  bad = arch;
  bad.clear_macro_cnn();
  EXPECT_FALSE(ValidateArchitecture(space, bad).ok());
}

// Found with the fuzz target (fuzz/regressions/search_space): a claimed node
// count of 2e9 used to build a canonical string quadratic in it first.
TEST(SearchSpaceTest, CellArchitectureOfTheWrongSizeIsRefusedBeforeAnyWork) {
  auto arch = ArchitectureFromTokens(Nb201(), 0, {3, 0, 1, 2, 4, 3});
  ASSERT_TRUE(arch.ok());
  v1::Architecture huge = *arch;
  huge.mutable_cell()->set_num_nodes(2000000000);
  absl::Status status = ValidateArchitecture(Nb201(), huge);
  EXPECT_FALSE(status.ok());
  EXPECT_NE(status.message().find("2000000000 nodes"), absl::string_view::npos) << status;
  v1::Architecture extra = *arch;
  extra.mutable_cell()->add_edge_operations("none");
  EXPECT_FALSE(ValidateArchitecture(Nb201(), extra).ok());
}

v1::SearchSpace RecurrentSpace() {
  v1::SearchSpace space;
  v1::RecurrentCellSpace* r = space.mutable_recurrent_cell();
  r->set_base(8);
  r->add_combinations("add");
  r->add_combinations("elem_mult");
  for (const char* a : {"identity", "tanh", "sigmoid", "relu"}) r->add_activations(a);
  r->set_cell_inject(true);
  return space;
}

// Regularized evolution's mutation, on every space: exactly one token
// changes, the child is valid, keeps the parent's depth, and over many draws
// every token position gets mutated (no decision is left out).
TEST(SearchSpaceTest, MutationChangesExactlyOneDecisionAndStaysValidInEverySpace) {
  for (const v1::SearchSpace& space : {PaperSpace(true, true), PaperSpace(false, false), Nb201(),
                                       RecurrentSpace()}) {
    std::mt19937_64 rng(17);
    const v1::Architecture parent = SampleUniform(space, space.has_macro_cnn() ? 5 : 0, rng);
    std::set<int> mutated_positions;
    for (int i = 0; i < 500; ++i) {
      absl::StatusOr<v1::Architecture> child = MutateOneDecision(space, parent, rng);
      ASSERT_TRUE(child.ok()) << child.status();
      EXPECT_TRUE(ValidateArchitecture(space, *child).ok());
      EXPECT_EQ(NumLayers(*child), NumLayers(parent));
      ASSERT_EQ(child->tokens_size(), parent.tokens_size());
      int changed = 0;
      for (int t = 0; t < parent.tokens_size(); ++t) {
        if (child->tokens(t) != parent.tokens(t)) {
          ++changed;
          mutated_positions.insert(t);
        }
      }
      EXPECT_EQ(changed, 1) << space.DebugString();
      EXPECT_NE(child->canonical(), parent.canonical());
    }
    EXPECT_EQ(static_cast<int>(mutated_positions.size()), parent.tokens_size()) << space.DebugString();
  }
}

TEST(SearchSpaceTest, MutationRefusesAParentOutsideTheSpaceAndASpaceWithoutChoices) {
  std::mt19937_64 rng(1);
  v1::Architecture foreign = SampleUniform(PaperSpace(true, true), 4, rng);
  EXPECT_EQ(MutateOneDecision(Nb201(), foreign, rng).status().code(),
            absl::StatusCode::kInvalidArgument);
  v1::SearchSpace single;
  single.mutable_cell()->set_num_nodes(3);
  single.mutable_cell()->add_operations("none");
  v1::Architecture only = SampleUniform(single, 0, rng);
  EXPECT_EQ(MutateOneDecision(single, only, rng).status().code(),
            absl::StatusCode::kFailedPrecondition);
}

}  // namespace
}  // namespace nas::search_space
