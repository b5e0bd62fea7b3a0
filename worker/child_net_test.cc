#include "worker/child_net.h"

#include <random>

#include "absl/strings/str_cat.h"
#include "search_space/child_size.h"
#include "search_space/search_space.h"
#include "gtest/gtest.h"

namespace nas::worker {
namespace {

v1::SearchSpace PaperSpace(bool strides) {
  v1::SearchSpace space;
  v1::MacroCnnSpace* m = space.mutable_macro_cnn();
  for (int v : {1, 3, 5, 7}) m->add_filter_heights(v);
  for (int v : {1, 3, 5, 7}) m->add_filter_widths(v);
  for (int v : {24, 36, 48, 64}) m->add_num_filters(v);
  if (strides) {
    for (int v : {1, 2, 3}) m->add_strides(v);
  }
  m->set_skip_connections(true);
  m->mutable_depth()->set_initial_layers(6);
  m->mutable_depth()->set_max_layers(16);
  return space;
}

TEST(ChildNetTest, FiveHundredRandomPaperArchitecturesBuildRunForwardAndBackward) {
  torch::set_num_threads(1);
  std::mt19937_64 rng(2016);
  for (int i = 0; i < 500; ++i) {
    const bool strides = i % 2 == 0;
    const v1::SearchSpace space = PaperSpace(strides);
    const int layers = 6 + static_cast<int>(rng() % 11);
    v1::Architecture arch = search_space::SampleUniform(space, layers, rng);
    const bool color = i % 4 >= 2;
    InputShape input = color ? InputShape{3, 32, 32, 10} : InputShape{1, 28, 28, 10};
    auto net = BuildChildNet(arch, space, input);
    ASSERT_TRUE(net.ok()) << net.status() << " " << arch.canonical();
    torch::Tensor x = torch::randn({2, input.channels, input.height, input.width});
    torch::Tensor y = (*net)->forward(x);
    ASSERT_EQ(y.sizes(), (std::vector<int64_t>{2, 10})) << arch.canonical();
    y.sum().backward();
    for (const torch::Tensor& p : (*net)->parameters()) {
      ASSERT_TRUE(p.grad().defined()) << arch.canonical();
    }
    EXPECT_GT((*net)->flops(), 0);
    EXPECT_GT((*net)->parameter_count(), 0);
    // The size worked out before building is the built module's exactly.
    EXPECT_EQ(search_space::EstimateChildSize(arch, space, input, 2)->parameters, (*net)->parameter_count())
        << arch.canonical();
  }
}

TEST(ChildNetTest, CellNetworksOfEveryOperationBuildAndRun) {
  v1::SearchSpace space;
  space.mutable_cell()->set_num_nodes(4);
  for (const char* op : {"none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3"}) {
    space.mutable_cell()->add_operations(op);
  }
  std::mt19937_64 rng(5);
  for (int i = 0; i < 20; ++i) {
    space.mutable_cell()->set_num_nodes(2 + i % 4);
    space.mutable_cell()->set_cells_per_stage(1 + i % 2);
    space.mutable_cell()->set_initial_channels(i < 10 ? 8 : 0);  // 0: the default, 16
    v1::Architecture arch = search_space::SampleUniform(space, 0, rng);
    const InputShape input = i % 2 == 0 ? InputShape{3, 32, 32, 10} : InputShape{1, 28, 28, 10};
    auto net = BuildChildNet(arch, space, input);
    ASSERT_TRUE(net.ok()) << net.status();
    torch::Tensor y = (*net)->forward(torch::randn({2, input.channels, input.height, input.width}));
    EXPECT_EQ(y.sizes(), (std::vector<int64_t>{2, 10}));
    EXPECT_EQ(search_space::EstimateChildSize(arch, space, input, 2)->parameters, (*net)->parameter_count())
        << arch.canonical();
  }
}

TEST(ChildNetTest, InvalidAndOversizedArchitecturesFailWithAClearMessage) {
  const v1::SearchSpace space = PaperSpace(false);
  v1::Architecture arch;
  auto* layer = arch.mutable_macro_cnn()->add_layers();
  layer->set_filter_height(3);
  layer->set_filter_width(3);
  layer->set_num_filters(8);
  layer->set_stride(1);
  layer->add_inputs(0);  // from itself
  auto bad = BuildChildNet(arch, space, {});
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(bad.status().message().find("not an earlier layer"), absl::string_view::npos);

  v1::Architecture wide;
  for (int i = 0; i < 3; ++i) {
    auto* l = wide.mutable_macro_cnn()->add_layers();
    l->set_filter_height(7);
    l->set_filter_width(7);
    l->set_num_filters(1024);
    l->set_stride(1);
    if (i > 0) l->add_inputs(i - 1);
  }
  ChildLimits limits;
  limits.max_parameters = 1'000'000;
  auto huge = BuildChildNet(wide, space, {}, limits);
  EXPECT_EQ(huge.status().code(), absl::StatusCode::kResourceExhausted);
  // 7*7*1024*1024*2 + 7*7*1024 + 3*2048 + 10250 weights.
  EXPECT_NE(huge.status().message().find("the child has 102827018 parameters, "), absl::string_view::npos)
      << huge.status();
  EXPECT_NE(huge.status().message().find("over evaluator.max_parameters (1000000)"), absl::string_view::npos)
      << huge.status();
  v1::Architecture recurrent;
  recurrent.mutable_recurrent_cell();
  // Recurrent cells are language models: BuildRecurrentLm (recurrent_net.h) builds them.
  const absl::Status not_here = BuildChildNet(recurrent, space, {}).status();
  EXPECT_EQ(not_here.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(not_here.message().find("EstimateRecurrentChildSize"), absl::string_view::npos) << not_here;
}

TEST(ChildNetTest, AChildOverTheLimitsIsRefusedBeforeAnythingIsAllocated) {
  // Issue 18 row 1: 47.6 billion parameters (190 GB of weights): building it
  // first would exhaust any machine; refused at once from its size.
  v1::SearchSpace space;
  space.mutable_cell()->set_num_nodes(16);
  space.mutable_cell()->add_operations("nor_conv_3x3");
  space.mutable_cell()->set_cells_per_stage(32);
  space.mutable_cell()->set_initial_channels(256);
  std::mt19937_64 rng(18);
  const v1::Architecture arch = search_space::SampleUniform(space, 0, rng);
  auto built = BuildChildNet(arch, space, {});
  EXPECT_EQ(built.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_NE(built.status().message().find("the child has 47595541258 parameters"), absl::string_view::npos)
      << built.status();
  // Within the job's limits but over this worker's own ceiling.
  space.mutable_cell()->set_num_nodes(4);
  space.mutable_cell()->set_cells_per_stage(1);
  space.mutable_cell()->set_initial_channels(16);
  const v1::Architecture small = search_space::SampleUniform(space, 0, rng);
  ChildLimits limits;
  limits.batch_size = 64;
  const auto size = search_space::EstimateChildSize(small, space, {}, 64);
  ASSERT_TRUE(size.ok());
  limits.max_memory_bytes = size->MemoryBytes();
  EXPECT_TRUE(BuildChildNet(small, space, {}, limits).ok());
  limits.max_memory_bytes = size->MemoryBytes() - 1;
  built = BuildChildNet(small, space, {}, limits);
  EXPECT_EQ(built.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_NE(built.status().message().find("over this worker's --max_child_bytes"), absl::string_view::npos)
      << built.status();
  EXPECT_NE(built.status().message().find(absl::StrCat("the child has ", size->parameters, " parameters")),
            absl::string_view::npos)
      << built.status();
}

}  // namespace
}  // namespace nas::worker
