#include "search_space/child_size.h"

#include <algorithm>
#include <vector>

#include "gtest/gtest.h"
#include "search_space/defaults.h"
#include "search_space/search_space.h"

namespace nas::search_space {
namespace {

// Every architecture of `space` with `layers` layers, by counting through
// the token digits.
std::vector<v1::Architecture> Enumerate(const v1::SearchSpace& space, int layers) {
  std::vector<int> radix;
  for (const Decision& d : Decisions(space, layers)) {
    if (d.kind == Decision::Kind::kAnchor) {
      for (int j = 0; j < d.num_choices; ++j) radix.push_back(2);
    } else {
      radix.push_back(d.num_choices);
    }
  }
  std::vector<v1::Architecture> out;
  std::vector<int> tokens(radix.size(), 0);
  while (true) {
    out.push_back(ArchitectureFromTokens(space, layers, tokens).value());
    size_t i = 0;
    while (i < tokens.size() && ++tokens[i] == radix[i]) tokens[i++] = 0;
    if (i == tokens.size()) return out;
  }
}

// The largest sizes by brute force, checked against LargestChildSize: the
// parameter maximum exactly, the activation maximum from above within the
// documented slack (every layer's pooled features).
void ExpectLargestMatchesBruteForce(const v1::SearchSpace& space, int layers, const ImageShape& input,
                                    int batch, int64_t activation_slack) {
  int64_t parameters = 0, activations = 0;
  for (const v1::Architecture& a : Enumerate(space, layers)) {
    absl::StatusOr<ChildSize> size = EstimateChildSize(a, space, input, batch);
    ASSERT_TRUE(size.ok()) << size.status() << " " << a.canonical();
    parameters = std::max(parameters, size->parameters);
    activations = std::max(activations, size->activation_bytes);
  }
  absl::StatusOr<ChildSize> largest = LargestChildSize(space, input, batch);
  ASSERT_TRUE(largest.ok()) << largest.status();
  EXPECT_EQ(largest->parameters, parameters);
  EXPECT_GE(largest->activation_bytes, activations);
  EXPECT_LE(largest->activation_bytes, activations + activation_slack);
}

v1::SearchSpace SmallMacro(std::vector<int> heights, std::vector<int> widths, std::vector<int> filters,
                           std::vector<int> strides, bool skip, int layers) {
  v1::SearchSpace space;
  v1::MacroCnnSpace* m = space.mutable_macro_cnn();
  for (int v : heights) m->add_filter_heights(v);
  for (int v : widths) m->add_filter_widths(v);
  for (int v : filters) m->add_num_filters(v);
  for (int v : strides) m->add_strides(v);
  m->set_skip_connections(skip);
  m->mutable_depth()->set_initial_layers(layers);
  m->mutable_depth()->set_max_layers(layers);
  return space;
}

TEST(ChildSizeTest, LargestMacroChildIsTheBruteForceMaximum) {
  const ImageShape mnist{1, 28, 28, 10};
  // Even and odd kernels (even ones widen the maps), strides, skip connections.
  ExpectLargestMatchesBruteForce(SmallMacro({1, 2}, {3, 2}, {2, 5}, {2, 1}, true, 3), 3, mnist, 4,
                                 4 * 4 * 2 * 3 * 5);
  // Narrow 1x1 layers: feeding a later layer adds fewer weights than the
  // classifier loses, so the largest child keeps its layers as outputs.
  // Here the largest child (286 weights) has layers 0 and 1 feed all later
  // ones and 2..4 as outputs; all-image has 270, all-connected 254.
  ExpectLargestMatchesBruteForce(SmallMacro({1}, {1}, {1, 4}, {}, true, 5), 5, {1, 8, 8, 10}, 2,
                                 4 * 2 * 2 * 5 * 4);
  ExpectLargestMatchesBruteForce(SmallMacro({1, 3}, {1, 4}, {3, 8}, {1, 3}, false, 3), 3, mnist, 8,
                                 4 * 8 * 2 * 3 * 8);
}

TEST(ChildSizeTest, LargestCellChildIsTheBruteForceMaximum) {
  v1::SearchSpace space;
  space.mutable_cell()->set_num_nodes(3);
  for (const char* op : {"none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3"}) {
    space.mutable_cell()->add_operations(op);
  }
  space.mutable_cell()->set_cells_per_stage(2);
  space.mutable_cell()->set_initial_channels(4);
  ExpectLargestMatchesBruteForce(space, 0, {3, 32, 32, 10}, 16, 0);
  // Without convolutions the largest child has only the fixed skeleton's weights.
  space.mutable_cell()->clear_operations();
  space.mutable_cell()->add_operations("skip_connect");
  space.mutable_cell()->add_operations("none");
  ExpectLargestMatchesBruteForce(space, 0, {1, 28, 28, 10}, 3, 0);
}

TEST(ChildSizeTest, HostileSpecsAreFarOverTheDefaults) {
  // Issue 18 row 1: 16 nodes, 32 cells per stage, 256 channels.
  v1::SearchSpace cell;
  cell.mutable_cell()->set_num_nodes(16);
  cell.mutable_cell()->add_operations("nor_conv_3x3");
  cell.mutable_cell()->add_operations("none");
  cell.mutable_cell()->set_cells_per_stage(32);
  cell.mutable_cell()->set_initial_channels(256);
  absl::StatusOr<ChildSize> size = LargestChildSize(cell, {1, 28, 28, 10}, 128);
  ASSERT_TRUE(size.ok());
  EXPECT_GT(size->parameters, 100 * kDefaultMaxParameters);
  EXPECT_GT(size->activation_bytes, 100 * kDefaultMaxActivationBytes);
  // A maximal macro CNN: 64 layers of 1024 15x15 filters, all connected.
  v1::SearchSpace macro = SmallMacro({15}, {14}, {1024}, {1}, true, SpaceLimits::kMaxLayers);
  size = LargestChildSize(macro, {3, 32, 32, 10}, 4096);
  ASSERT_TRUE(size.ok());
  EXPECT_GT(size->parameters, 1000 * kDefaultMaxParameters);
  EXPECT_GT(size->activation_bytes, 1000 * kDefaultMaxActivationBytes);
  EXPECT_LT(size->activation_bytes, std::numeric_limits<int64_t>::max());
}

TEST(ChildSizeTest, ThePaperSpaceFitsTheDefaults) {
  // examples/cifar10.yaml: 15 layers of up to 64 7x7 filters, skip connections.
  v1::SearchSpace paper = SmallMacro({1, 3, 5, 7}, {1, 3, 5, 7}, {24, 36, 48, 64}, {1, 2, 3}, true, 15);
  absl::StatusOr<ChildSize> size = LargestChildSize(paper, DatasetImageShape("cifar10").value(), 128);
  ASSERT_TRUE(size.ok());
  EXPECT_LT(size->parameters, kDefaultMaxParameters);
  EXPECT_LT(size->activation_bytes, kDefaultMaxActivationBytes);
  EXPECT_GT(size->activation_bytes, int64_t{1} << 30);
}

TEST(ChildSizeTest, RefusesWhatNoNetworkIsBuiltFrom) {
  v1::SearchSpace space = SmallMacro({3}, {3}, {8}, {}, true, 2);
  v1::Architecture a;
  v1::MacroCnnLayer* l = a.mutable_macro_cnn()->add_layers();
  l->set_filter_height(3);
  l->set_filter_width(3);
  l->set_num_filters(8);
  l->add_inputs(0);  // itself
  EXPECT_TRUE(absl::IsInvalidArgument(EstimateChildSize(a, space, {}, 1).status()));
  l->clear_inputs();
  l->set_num_filters(SpaceLimits::kMaxFilters + 1);
  EXPECT_TRUE(absl::IsInvalidArgument(EstimateChildSize(a, space, {}, 1).status()));
  l->set_num_filters(8);
  EXPECT_TRUE(absl::IsInvalidArgument(EstimateChildSize(a, space, {}, 0).status()));
  EXPECT_TRUE(EstimateChildSize(a, space, {}, 1).ok());
  v1::Architecture cell;
  cell.mutable_cell()->set_num_nodes(2);
  cell.mutable_cell()->add_edge_operations("conv_7x7");
  EXPECT_TRUE(absl::IsInvalidArgument(EstimateChildSize(cell, space, {}, 1).status()));
  v1::Architecture recurrent;
  recurrent.mutable_recurrent_cell();
  EXPECT_TRUE(absl::IsInvalidArgument(EstimateChildSize(recurrent, space, {}, 1).status()));
  EXPECT_TRUE(absl::IsInvalidArgument(DatasetImageShape("imagenet").status()));
}

}  // namespace
}  // namespace nas::search_space
