#include "worker/macro_supernet.h"

#include <random>
#include <set>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "search_space/child_size.h"
#include "search_space/search_space.h"
#include "worker/child_net.h"

namespace nas::worker {
namespace {

v1::SearchSpace Space(bool skip) {
  v1::SearchSpace space;
  v1::MacroCnnSpace* m = space.mutable_macro_cnn();
  for (int h : {1, 3}) m->add_filter_heights(h);
  for (int w : {3, 5}) m->add_filter_widths(w);
  for (int f : {4, 8}) m->add_num_filters(f);
  for (int s : {1, 2}) m->add_strides(s);
  m->set_skip_connections(skip);
  m->mutable_depth()->set_initial_layers(2);
  m->mutable_depth()->set_layers_increment(1);
  m->mutable_depth()->set_samples_per_increment(10);
  m->mutable_depth()->set_max_layers(4);
  return space;
}

const InputShape kInput{3, 9, 9, 5};

int64_t Count(const std::vector<torch::Tensor>& tensors) {
  int64_t n = 0;
  for (const torch::Tensor& t : tensors) n += t.numel();
  return n;
}

TEST(MacroSupernetTest, ParameterCountIsTheTorchFreeEstimate) {
  for (bool skip : {true, false}) {
    const v1::SearchSpace space = Space(skip);
    auto net = MacroSupernetImpl::Create(space, kInput);
    ASSERT_TRUE(net.ok()) << net.status();
    EXPECT_EQ((*net)->layers(), 4);
    auto size = search_space::EstimateMacroSupernetSize(space, kInput, 16);
    ASSERT_TRUE(size.ok()) << size.status();
    EXPECT_EQ(Count((*net)->parameters()), size->parameters);
    // 4 layers x 2 x 2 x 2 choices, inputs 3 + 8i; classifier 4 * 8 -> 5.
    int64_t expected = 4 * 8 * 5 + 5;
    for (int i = 0; i < 4; ++i) {
      for (int kernel : {1 * 3, 1 * 5, 3 * 3, 3 * 5}) expected += (4 + 8) * (3 + 8 * i) * kernel + 2 * (4 + 8);
    }
    EXPECT_EQ(size->parameters, expected);
    auto largest = search_space::LargestChildSize(space, kInput, 16);
    ASSERT_TRUE(largest.ok());
    EXPECT_EQ(size->activation_bytes, largest->activation_bytes);
  }
  v1::SearchSpace cell;
  cell.mutable_cell();
  EXPECT_EQ(search_space::EstimateMacroSupernetSize(cell, kInput, 16).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(MacroSupernetTest, ChildIsItsStandaloneNetworkWithTheSlicedWeightsAndUsesOnlyItsTensors) {
  torch::manual_seed(2);
  for (bool skip : {true, false}) {
    const v1::SearchSpace space = Space(skip);
    auto net = MacroSupernetImpl::Create(space, kInput);
    ASSERT_TRUE(net.ok()) << net.status();
    MacroSupernetImpl& supernet = **net;
    std::mt19937_64 rng(skip ? 3 : 4);
    for (int trial = 0; trial < 8; ++trial) {
      const v1::Architecture child = search_space::SampleUniform(space, 1 + trial % 4, rng);
      const v1::MacroCnnArchitecture& arch = child.macro_cnn();
      SCOPED_TRACE(search_space::CanonicalString(child));
      ASSERT_TRUE(supernet.CheckArchitecture(arch).ok()) << supernet.CheckArchitecture(arch);
      auto standalone = BuildChildNet(child, space, kInput);
      ASSERT_TRUE(standalone.ok()) << standalone.status();
      auto params = supernet.named_parameters();
      {
        torch::NoGradGuard no_grad;
        for (auto& item : (*standalone)->named_parameters()) {
          const std::string& name = item.key();
          torch::Tensor source;
          if (name.rfind("conv", 0) == 0 || name.rfind("norm", 0) == 0) {
            const int i = std::stoi(name.substr(4, name.find('.') - 4));
            const v1::MacroCnnLayer& l = arch.layers(i);
            const std::string choice =
                MacroSupernetImpl::ChoiceName(i, l.filter_height(), l.filter_width(), l.num_filters());
            if (name.rfind("conv", 0) == 0) {
              source = params[choice + ".conv.weight"].index_select(1, torch::tensor(supernet.InputColumns(arch, i)));
            } else {
              source = params[choice + ".norm" + name.substr(name.find('.'))];
            }
          } else if (name == "classifier.weight") {
            source = params["classifier.weight"].index_select(1, torch::tensor(supernet.FeatureColumns(arch)));
          } else {
            source = params[name];
          }
          ASSERT_EQ(item.value().sizes(), source.sizes()) << name;
          item.value().copy_(source);
        }
      }
      supernet.eval();
      (*standalone)->eval();
      const torch::Tensor x = torch::randn({2, 3, 9, 9});
      EXPECT_TRUE(torch::allclose(supernet.Forward(x, arch), (*standalone)->forward(x), 1e-4, 1e-5));

      // Gradients reach only the child's tensors (still in eval mode: a
      // training forward would move the batch norms' running statistics).
      for (auto& p : supernet.parameters()) p.mutable_grad() = torch::Tensor();
      supernet.Forward(x, arch).pow(2).sum().backward();
      const std::vector<std::string> used = supernet.UsedParameters(arch);
      const std::set<std::string> used_set(used.begin(), used.end());
      EXPECT_EQ(used_set.size(), 2 + 3 * static_cast<size_t>(arch.layers_size()));
      for (const auto& item : supernet.named_parameters()) {
        EXPECT_EQ(item.value().grad().defined(), used_set.count(item.key()) > 0) << item.key();
      }
    }
  }
}

TEST(MacroSupernetTest, ASourceMeetsTheSameColumnsWhateverElseIsConcatenated) {
  auto net = MacroSupernetImpl::Create(Space(true), kInput);
  ASSERT_TRUE(net.ok()) << net.status();
  v1::MacroCnnArchitecture arch;
  for (int f : {4, 8, 4, 8}) {
    v1::MacroCnnLayer* l = arch.add_layers();
    l->set_filter_height(3);
    l->set_filter_width(3);
    l->set_num_filters(f);
    l->set_stride(1);
  }
  arch.mutable_layers(3)->add_inputs(2);
  v1::MacroCnnArchitecture both = arch;
  both.mutable_layers(3)->clear_inputs();
  both.mutable_layers(3)->add_inputs(1);
  both.mutable_layers(3)->add_inputs(2);
  // Layer 2 (4 filters) owns columns 3 + 2*8 .. +4 of layer 3's conv, alone
  // or after layer 1's 8; the image owns 0..2.
  const std::vector<int64_t> alone = (*net)->InputColumns(arch, 3);
  EXPECT_EQ(alone, (std::vector<int64_t>{19, 20, 21, 22}));
  const std::vector<int64_t> after = (*net)->InputColumns(both, 3);
  ASSERT_EQ(after.size(), 12u);
  EXPECT_EQ(std::vector<int64_t>(after.begin() + 8, after.end()), alone);
  EXPECT_EQ((*net)->InputColumns(arch, 0), (std::vector<int64_t>{0, 1, 2}));
  // The classifier: layer 3 and the unconsumed 0 and 1, each in its block of 8.
  EXPECT_EQ((*net)->FeatureColumns(arch),
            (std::vector<int64_t>{0, 1, 2, 3, 8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31}));
}

TEST(MacroSupernetTest, ChildrenOutsideTheSpaceNameTheField) {
  auto net = MacroSupernetImpl::Create(Space(false), kInput);
  ASSERT_TRUE(net.ok()) << net.status();
  v1::MacroCnnArchitecture arch;
  for (int i = 0; i < 2; ++i) {
    v1::MacroCnnLayer* l = arch.add_layers();
    l->set_filter_height(3);
    l->set_filter_width(5);
    l->set_num_filters(8);
    l->set_stride(1);
  }
  arch.mutable_layers(1)->add_inputs(0);
  EXPECT_TRUE((*net)->CheckArchitecture(arch).ok());
  v1::MacroCnnArchitecture bad = arch;
  bad.mutable_layers(1)->set_stride(3);
  EXPECT_NE((*net)->CheckArchitecture(bad).message().find("layers[1].stride: 3"), std::string::npos);
  bad = arch;
  bad.mutable_layers(0)->set_num_filters(6);
  EXPECT_NE((*net)->CheckArchitecture(bad).message().find("layers[0]: 3x5/6"), std::string::npos);
  bad = arch;
  bad.mutable_layers(0)->add_inputs(1);
  EXPECT_NE((*net)->CheckArchitecture(bad).message().find("layers[0].inputs: layer 1"), std::string::npos);
  EXPECT_THROW((*net)->Forward(torch::randn({1, 3, 9, 9}), bad), c10::Error);
  v1::SearchSpace cell;
  cell.mutable_cell();
  EXPECT_EQ(MacroSupernetImpl::Create(cell, kInput).status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace nas::worker
