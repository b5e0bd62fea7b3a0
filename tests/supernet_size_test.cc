// search_space::EstimateSupernetSize (torch-free, what the controller refuses
// a one-shot job by) against the supernet the workers build
// (worker/supernet.h): the parameter count must be exact for every shape.
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "search_space/child_size.h"
#include "worker/supernet.h"

namespace nas {
namespace {

v1::SearchSpace CellSpace(int num_nodes, const std::vector<std::string>& operations,
                          int cells_per_stage, int channels) {
  v1::SearchSpace space;
  v1::CellSpace* cell = space.mutable_cell();
  cell->set_num_nodes(num_nodes);
  for (const std::string& op : operations) cell->add_operations(op);
  cell->set_cells_per_stage(cells_per_stage);
  cell->set_initial_channels(channels);
  return space;
}

int64_t BuiltParameters(const v1::SearchSpace& space, const search_space::ImageShape& input) {
  absl::StatusOr<std::shared_ptr<worker::CellSupernetImpl>> net =
      worker::CellSupernetImpl::Create(space, input);
  EXPECT_TRUE(net.ok()) << net.status();
  if (!net.ok()) return -1;
  int64_t n = 0;
  for (const torch::Tensor& t : (*net)->parameters()) n += t.numel();
  return n;
}

TEST(SupernetSizeTest, ParameterCountIsTheBuiltSupernetsExactly) {
  struct Case {
    v1::SearchSpace space;
    search_space::ImageShape input;
  };
  const std::vector<std::string> all = {"none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3",
                                        "avg_pool_3x3"};
  const std::vector<Case> cases = {
      {CellSpace(4, all, 1, 16), {1, 28, 28, 10}},
      {CellSpace(3, {"none", "nor_conv_3x3"}, 2, 8), {3, 32, 32, 10}},
      {CellSpace(5, {"nor_conv_1x1", "skip_connect"}, 1, 4), {1, 9, 7, 3}},
      // A repeated operation is one module per edge.
      {CellSpace(4, {"nor_conv_3x3", "nor_conv_3x3", "avg_pool_3x3"}, 1, 6), {3, 8, 8, 5}},
      // No weighted operation: the shared layers only.
      {CellSpace(3, {"none", "skip_connect", "avg_pool_3x3"}, 3, 4), {1, 12, 12, 2}},
  };
  for (const Case& c : cases) {
    for (bool all_operations_run : {false, true}) {
      absl::StatusOr<search_space::ChildSize> estimate =
          search_space::EstimateSupernetSize(c.space, c.input, 32, all_operations_run);
      ASSERT_TRUE(estimate.ok()) << estimate.status();
      EXPECT_EQ(estimate->parameters, BuiltParameters(c.space, c.input)) << c.space.DebugString();
    }
  }
}

TEST(SupernetSizeTest, TheMixedNetKeepsMoreActivationsThanOneChild) {
  const v1::SearchSpace space =
      CellSpace(4, {"none", "skip_connect", "nor_conv_3x3", "avg_pool_3x3"}, 1, 16);
  const search_space::ImageShape input{1, 28, 28, 10};
  absl::StatusOr<search_space::ChildSize> child = search_space::EstimateSupernetSize(space, input, 64, false);
  absl::StatusOr<search_space::ChildSize> mixed = search_space::EstimateSupernetSize(space, input, 64, true);
  ASSERT_TRUE(child.ok() && mixed.ok());
  // One sampled child at a time: the largest child's activations.
  absl::StatusOr<search_space::ChildSize> largest = search_space::LargestChildSize(space, input, 64);
  ASSERT_TRUE(largest.ok());
  EXPECT_EQ(child->activation_bytes, largest->activation_bytes);
  EXPECT_GT(mixed->activation_bytes, 2 * child->activation_bytes);
}

TEST(SupernetSizeTest, MacroSpacesAreEstimatedForEnasOnly) {
  v1::SearchSpace macro;
  macro.mutable_macro_cnn()->add_filter_heights(3);
  macro.mutable_macro_cnn()->add_filter_widths(3);
  macro.mutable_macro_cnn()->add_num_filters(8);
  macro.mutable_macro_cnn()->mutable_depth()->set_initial_layers(2);
  absl::StatusOr<search_space::ChildSize> size =
      search_space::EstimateSupernetSize(macro, {1, 28, 28, 10}, 8, false);
  absl::StatusOr<search_space::ChildSize> direct = search_space::EstimateMacroSupernetSize(macro, {1, 28, 28, 10}, 8);
  ASSERT_TRUE(size.ok()) << size.status();
  ASSERT_TRUE(direct.ok()) << direct.status();
  EXPECT_GT(size->parameters, 0);
  EXPECT_EQ(size->parameters, direct->parameters);
  EXPECT_EQ(size->activation_bytes, direct->activation_bytes);
  absl::StatusOr<search_space::ChildSize> mixed = search_space::EstimateSupernetSize(macro, {1, 28, 28, 10}, 8, true);
  EXPECT_EQ(mixed.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(mixed.status().message().find("DARTS' mixed net takes a cell space"), std::string::npos);
}

TEST(SupernetSizeTest, RecurrentSpacesAreRefused) {
  v1::SearchSpace recurrent;
  recurrent.mutable_recurrent_cell()->set_base(8);
  EXPECT_FALSE(search_space::EstimateSupernetSize(recurrent, {1, 28, 28, 10}, 8, false).ok());
}

}  // namespace
}  // namespace nas
