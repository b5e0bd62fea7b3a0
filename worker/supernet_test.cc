#include "worker/supernet.h"

#include <algorithm>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "gtest/gtest.h"
#include "worker/child_net.h"

namespace nas::worker {
namespace {

const std::vector<std::string> kOps = {"none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3",
                                       "avg_pool_3x3"};

v1::SearchSpace Space(int num_nodes = 4, int cells_per_stage = 2, int channels = 4) {
  v1::SearchSpace space;
  v1::CellSpace* cell = space.mutable_cell();
  cell->set_num_nodes(num_nodes);
  for (const std::string& op : kOps) cell->add_operations(op);
  cell->set_cells_per_stage(cells_per_stage);
  cell->set_initial_channels(channels);
  return space;
}

InputShape Input() { return InputShape{3, 8, 8, 10}; }

v1::Architecture Child(std::vector<std::string> ops, int num_nodes = 4) {
  v1::Architecture a;
  a.mutable_cell()->set_num_nodes(num_nodes);
  for (const std::string& op : ops) a.mutable_cell()->add_edge_operations(op);
  return a;
}

std::shared_ptr<CellSupernetImpl> Supernet(const v1::SearchSpace& space) {
  absl::StatusOr<std::shared_ptr<CellSupernetImpl>> net = CellSupernetImpl::Create(space, Input());
  EXPECT_TRUE(net.ok()) << net.status();
  return net.ok() ? *net : nullptr;
}

int64_t Count(const std::vector<torch::Tensor>& tensors) {
  int64_t n = 0;
  for (const torch::Tensor& t : tensors) n += t.numel();
  return n;
}

TEST(CellSupernetTest, ParameterCountIsSharedLayersPlusEveryOperationOfEveryEdge) {
  const v1::SearchSpace space = Space();
  auto net = Supernet(space);
  ASSERT_NE(net, nullptr);
  // The shared layers: what a child without weighted operations has.
  auto bare =
      BuildChildNet(Child({"none", "none", "none", "none", "none", "none"}), space, Input());
  ASSERT_TRUE(bare.ok()) << bare.status();
  int64_t expected = (*bare)->parameter_count();
  // 6 edges, 2 cells per stage, channels 4, 8, 16: 1x1 conv c*c, 3x3 9*c*c,
  // each with a batch norm (2c).
  for (int c : {4, 8, 16}) expected += 2 * 6 * ((c * c + 2 * c) + (9 * c * c + 2 * c));
  EXPECT_EQ(Count(net->parameters()), expected);
}

TEST(CellSupernetTest, ChildUsesOnlyItsOperationsAndCountsAsItsStandaloneNetwork) {
  torch::manual_seed(0);
  const v1::SearchSpace space = Space();
  auto net = Supernet(space);
  ASSERT_NE(net, nullptr);
  std::mt19937 rng(21);
  for (int trial = 0; trial < 6; ++trial) {
    std::vector<std::string> ops;
    for (int e = 0; e < 6; ++e) ops.push_back(kOps[rng() % kOps.size()]);
    if (trial == 0)
      ops = {"nor_conv_3x3", "nor_conv_1x1", "skip_connect",
             "none",         "avg_pool_3x3", "nor_conv_3x3"};
    const v1::Architecture child = Child(ops);
    SCOPED_TRACE(absl::StrJoin(ops, ","));
    net->zero_grad();
    for (auto& p : net->parameters()) p.mutable_grad() = torch::Tensor();
    torch::Tensor out = net->Forward(torch::randn({5, 3, 8, 8}), child.cell());
    EXPECT_EQ(out.sizes(), (std::vector<int64_t>{5, 10}));
    out.pow(2).sum().backward();

    const std::vector<std::string> used = net->UsedParameters(child.cell());
    const std::set<std::string> used_set(used.begin(), used.end());
    int64_t used_count = 0;
    for (const auto& item : net->named_parameters()) {
      const torch::Tensor& grad = item.value().grad();
      if (used_set.count(item.key()) > 0) {
        used_count += item.value().numel();
        // Trial 0's edges all reach the output; a random child may have a
        // node that only "none" consumes, whose operations run but get no
        // gradient (as in the standalone network).
        if (trial == 0) EXPECT_TRUE(grad.defined()) << item.key() << " is used but got no gradient";
      } else {
        EXPECT_FALSE(grad.defined()) << item.key() << " is not the child's but got a gradient";
      }
    }
    auto standalone = BuildChildNet(child, space, Input());
    ASSERT_TRUE(standalone.ok()) << standalone.status();
    EXPECT_EQ(used_count, (*standalone)->parameter_count());
  }
}

TEST(CellSupernetTest, ChildOutputsEqualTheStandaloneNetworkWithTheSameWeights) {
  torch::manual_seed(1);
  const v1::SearchSpace space = Space(3, 1, 4);
  auto net = Supernet(space);
  ASSERT_NE(net, nullptr);
  const v1::Architecture child = Child({"nor_conv_3x3", "skip_connect", "nor_conv_1x1"}, 3);
  auto standalone = BuildChildNet(child, space, Input());
  ASSERT_TRUE(standalone.ok()) << standalone.status();
  // The child's module names "s0c0e2" are the supernet's "s0c0e2_nor_conv_1x1".
  auto supernet_params = net->named_parameters();
  torch::NoGradGuard no_grad;
  for (auto& item : (*standalone)->named_parameters()) {
    std::string name = item.key();
    const std::string module = name.substr(0, name.find('.'));
    if (module.size() >= 5 && module[0] == 's' && module.find('e') != std::string::npos &&
        supernet_params.find(name) == nullptr) {
      const int edge = std::stoi(module.substr(module.find('e') + 1));
      name =
          absl::StrCat(module, "_", child.cell().edge_operations(edge), name.substr(module.size()));
    }
    const torch::Tensor* source = supernet_params.find(name);
    ASSERT_NE(source, nullptr) << item.key() << " -> " << name;
    item.value().copy_(*source);
  }
  net->eval();
  (*standalone)->eval();
  const torch::Tensor x = torch::randn({2, 3, 8, 8});
  EXPECT_TRUE(
      torch::allclose(net->Forward(x, child.cell()), (*standalone)->forward(x), 1e-5, 1e-6));
}

TEST(CellSupernetTest, BadSpacesAndChildrenNameTheField) {
  v1::SearchSpace macro;
  macro.mutable_macro_cnn();
  EXPECT_NE(CellSupernetImpl::Create(macro, Input()).status().message().find("search_space"),
            std::string::npos);
  v1::SearchSpace unknown = Space();
  unknown.mutable_cell()->add_operations("sep_conv_5x5");
  absl::Status s = CellSupernetImpl::Create(unknown, Input()).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("search_space.cell.operations[5]: 'sep_conv_5x5'"), std::string::npos)
      << s;

  v1::SearchSpace narrow = Space();
  narrow.mutable_cell()->clear_operations();
  narrow.mutable_cell()->add_operations("none");
  narrow.mutable_cell()->add_operations("nor_conv_1x1");
  auto net = Supernet(narrow);
  ASSERT_NE(net, nullptr);
  s = net->CheckArchitecture(
      Child({"none", "none", "nor_conv_3x3", "none", "none", "none"}).cell());
  EXPECT_NE(s.message().find("edge_operations[2]: 'nor_conv_3x3'"), std::string::npos) << s;
  s = net->CheckArchitecture(Child({"none", "none", "none"}, 3).cell());
  EXPECT_NE(s.message().find("num_nodes"), std::string::npos) << s;
  EXPECT_THROW(net->Forward(torch::randn({1, 3, 8, 8}),
                            Child({"none", "none", "nor_conv_3x3", "none", "none", "none"}).cell()),
               c10::Error);
}

// alpha with `big` at each edge's chosen operation (space order) and 0
// elsewhere: softmax of it is one-hot up to exp(-big).
torch::Tensor PeakedAlpha(const std::vector<std::string>& ops, double big) {
  torch::Tensor alpha = torch::zeros({static_cast<int64_t>(ops.size()),
                                      static_cast<int64_t>(kOps.size())});
  for (size_t e = 0; e < ops.size(); ++e) {
    const auto at = std::find(kOps.begin(), kOps.end(), ops[e]) - kOps.begin();
    alpha[e][at] = big;
  }
  return alpha;
}

TEST(CellSupernetTest, MixedNetworkWithOneHotAlphaIsTheChild) {
  torch::manual_seed(3);
  const v1::SearchSpace space = Space();
  auto net = Supernet(space);
  ASSERT_NE(net, nullptr);
  net->eval();
  torch::NoGradGuard no_grad;
  const torch::Tensor x = torch::randn({3, 3, 8, 8});
  for (const std::vector<std::string>& ops : std::vector<std::vector<std::string>>{
           {"nor_conv_3x3", "nor_conv_1x1", "skip_connect", "none", "avg_pool_3x3", "nor_conv_3x3"},
           {"none", "avg_pool_3x3", "nor_conv_1x1", "skip_connect", "nor_conv_3x3", "none"}}) {
    SCOPED_TRACE(absl::StrJoin(ops, ","));
    const torch::Tensor child = net->Forward(x, Child(ops).cell());
    EXPECT_TRUE(torch::allclose(net->ForwardMixed(x, PeakedAlpha(ops, 100)), child, 1e-4, 1e-5));
    // A soft alpha is a different network.
    EXPECT_FALSE(torch::allclose(net->ForwardMixed(x, PeakedAlpha(ops, 1)), child, 1e-4, 1e-5));
  }
}

TEST(CellSupernetTest, MixedGradientsReachAlphaAndEveryOperation) {
  torch::manual_seed(4);
  const v1::SearchSpace space = Space(3, 1, 4);
  auto net = Supernet(space);
  ASSERT_NE(net, nullptr);
  torch::Tensor alpha = (1e-3 * torch::randn({3, 5})).requires_grad_(true);
  torch::nn::functional::cross_entropy(net->ForwardMixed(torch::randn({4, 3, 8, 8}), alpha),
                                       torch::tensor({1, 2, 3, 4}))
      .backward();
  ASSERT_TRUE(alpha.grad().defined());
  // Every weighted operation's column, and the parameter-free ones too.
  for (int o = 0; o < 5; ++o) {
    if (kOps[o] == "none") continue;
    EXPECT_GT(alpha.grad().select(1, o).abs().sum().item<double>(), 0) << kOps[o];
  }
  for (const auto& item : net->named_parameters()) {
    ASSERT_TRUE(item.value().grad().defined()) << item.key();
    EXPECT_GT(item.value().grad().abs().sum().item<double>(), 0) << item.key();
  }
  EXPECT_THROW(net->ForwardMixed(torch::randn({1, 3, 8, 8}), torch::zeros({3, 4})), c10::Error);
}

TEST(CellSupernetTest, ArgmaxCellTakesTheStrongestOperationPerEdge) {
  const v1::SearchSpace space = Space();
  auto net = Supernet(space);
  ASSERT_NE(net, nullptr);
  const std::vector<std::string> ops = {"avg_pool_3x3", "none",         "nor_conv_1x1",
                                        "skip_connect", "nor_conv_3x3", "nor_conv_1x1"};
  torch::Tensor alpha = 1e-3 * torch::randn({6, 5}) + PeakedAlpha(ops, 0.5);
  absl::StatusOr<v1::CellArchitecture> cell = net->ArgmaxCell(alpha);
  ASSERT_TRUE(cell.ok()) << cell.status();
  EXPECT_EQ(cell->num_nodes(), 4);
  EXPECT_EQ(std::vector<std::string>(cell->edge_operations().begin(), cell->edge_operations().end()),
            ops);
  absl::Status bad = net->ArgmaxCell(torch::zeros({6, 4})).status();
  EXPECT_EQ(bad.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(bad.message().find("alpha: shape [6, 4]"), std::string::npos) << bad;
}

}  // namespace
}  // namespace nas::worker
