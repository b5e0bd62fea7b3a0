#include "worker/supernet.h"

#include <algorithm>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "search_space/defaults.h"

namespace nas::worker {
namespace {

const std::set<std::string>& KnownOperations() {
  static const auto* known = new std::set<std::string>{"none", "skip_connect", "nor_conv_1x1",
                                                       "nor_conv_3x3", "avg_pool_3x3"};
  return *known;
}

bool IsConv(const std::string& op) { return op == "nor_conv_1x1" || op == "nor_conv_3x3"; }

}  // namespace

absl::StatusOr<std::shared_ptr<CellSupernetImpl>> CellSupernetImpl::Create(
    const v1::SearchSpace& space, const InputShape& input) {
  if (!space.has_cell()) {
    return absl::InvalidArgumentError(
        "search_space: CellSupernetImpl is built for a cell space (a macro_cnn space's is "
        "MacroSupernetImpl; recurrent_cell has none)");
  }
  const v1::CellSpace cell = search_space::WithCellDefaults(space.cell());
  if (cell.num_nodes() < 2 || cell.num_nodes() > 16) {
    return absl::InvalidArgumentError(
        absl::StrCat("search_space.cell.num_nodes: ", cell.num_nodes(), " is not in 2..16"));
  }
  if (cell.operations().empty()) {
    return absl::InvalidArgumentError("search_space.cell.operations: empty");
  }
  for (int i = 0; i < cell.operations_size(); ++i) {
    if (KnownOperations().count(cell.operations(i)) == 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("search_space.cell.operations[", i, "]: '", cell.operations(i),
                       "' is not an operation workers know (none, skip_connect, nor_conv_1x1, "
                       "nor_conv_3x3, avg_pool_3x3)"));
    }
  }
  if (cell.cells_per_stage() < 1 || cell.initial_channels() < 1) {
    return absl::InvalidArgumentError(
        "search_space.cell: cells_per_stage and initial_channels must be positive");
  }
  return std::shared_ptr<CellSupernetImpl>(new CellSupernetImpl(cell, input));
}

std::string CellSupernetImpl::EdgeOpName(int stage, int k, int edge, const std::string& op) {
  return absl::StrCat("s", stage, "c", k, "e", edge, "_", op);
}

CellSupernetImpl::CellSupernetImpl(const v1::CellSpace& space, const InputShape& input)
    : space_(space), num_edges_(space.num_nodes() * (space.num_nodes() - 1) / 2) {
  const int channels = space.initial_channels();
  stem_conv_ = register_module(
      "stem_conv",
      torch::nn::Conv2d(
          torch::nn::Conv2dOptions(input.channels, channels, 3).padding(1).bias(false)));
  stem_norm_ = register_module("stem_norm", torch::nn::BatchNorm2d(channels));
  int c = channels;
  for (int stage = 0; stage < 3; ++stage) {
    if (stage > 0) {
      const int out = c * 2;
      reductions_a_.push_back(
          register_module(absl::StrCat("reduce", stage, "_a"), ReluConvBn(c, out, 3, 2)));
      reductions_b_.push_back(
          register_module(absl::StrCat("reduce", stage, "_b"), ReluConvBn(out, out, 3, 1)));
      shortcuts_.push_back(
          register_module(absl::StrCat("shortcut", stage),
                          torch::nn::Conv2d(torch::nn::Conv2dOptions(c, out, 1).bias(false))));
      c = out;
    }
    for (int k = 0; k < space.cells_per_stage(); ++k) {
      for (int e = 0; e < num_edges_; ++e) {
        for (const std::string& op :
             std::set<std::string>(space.operations().begin(), space.operations().end())) {
          if (!IsConv(op)) continue;
          const std::string name = EdgeOpName(stage, k, e, op);
          edge_ops_.emplace(
              name, register_module(name, ReluConvBn(c, c, op == "nor_conv_1x1" ? 1 : 3, 1)));
        }
      }
    }
  }
  final_norm_ = register_module("final_norm", torch::nn::BatchNorm2d(c));
  classifier_ = register_module("classifier", torch::nn::Linear(c, input.classes));
}

absl::Status CellSupernetImpl::CheckArchitecture(const v1::CellArchitecture& cell) const {
  if (cell.num_nodes() != space_.num_nodes()) {
    return absl::InvalidArgumentError(
        absl::StrCat("architecture.cell.num_nodes: ", cell.num_nodes(), ", the supernet has ",
                     space_.num_nodes()));
  }
  if (cell.edge_operations_size() != num_edges_) {
    return absl::InvalidArgumentError(
        absl::StrCat("architecture.cell.edge_operations: ", cell.edge_operations_size(),
                     " operations for ", num_edges_, " edges"));
  }
  for (int e = 0; e < num_edges_; ++e) {
    const std::string& op = cell.edge_operations(e);
    if (std::find(space_.operations().begin(), space_.operations().end(), op) ==
        space_.operations().end()) {
      return absl::InvalidArgumentError(absl::StrCat("architecture.cell.edge_operations[", e,
                                                     "]: '", op,
                                                     "' is not one of the space's operations"));
    }
  }
  return absl::OkStatus();
}

torch::Tensor CellSupernetImpl::Forward(torch::Tensor x, const v1::CellArchitecture& cell) {
  const absl::Status checked = CheckArchitecture(cell);
  TORCH_CHECK(checked.ok(), std::string(checked.message()));
  return Run(x, [&](int stage, int k, int edge, const torch::Tensor& in) {
    const std::string& op = cell.edge_operations(edge);
    return CellOperation(op, in, IsConv(op) ? EdgeOp(stage, k, edge, op) : nullptr);
  });
}

torch::Tensor CellSupernetImpl::ForwardMixed(torch::Tensor x, const torch::Tensor& alpha) {
  const int num_ops = space_.operations_size();
  TORCH_CHECK(alpha.dim() == 2 && alpha.size(0) == num_edges_ && alpha.size(1) == num_ops,
              "alpha: shape ", alpha.sizes(), ", the supernet needs [", num_edges_, ", ", num_ops,
              "] (edges, operations)");
  const torch::Tensor weights = torch::softmax(alpha, 1);
  return Run(x, [&](int stage, int k, int edge, const torch::Tensor& in) {
    torch::Tensor total;
    for (int o = 0; o < num_ops; ++o) {
      const std::string& op = space_.operations(o);
      torch::Tensor out = CellOperation(op, in, IsConv(op) ? EdgeOp(stage, k, edge, op) : nullptr);
      if (!out.defined()) continue;  // "none" contributes zero
      out = weights[edge][o] * out;
      total = total.defined() ? total + out : out;
    }
    return total;
  });
}

absl::StatusOr<v1::CellArchitecture> CellSupernetImpl::ArgmaxCell(const torch::Tensor& alpha) const {
  if (alpha.dim() != 2 || alpha.size(0) != num_edges_ ||
      alpha.size(1) != space_.operations_size()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "alpha: shape [", absl::StrJoin(alpha.sizes(), ", "), "], the supernet needs [", num_edges_,
        ", ", space_.operations_size(), "] (edges, operations)"));
  }
  const torch::Tensor best = alpha.detach().to(torch::kCPU).argmax(1);
  v1::CellArchitecture cell;
  cell.set_num_nodes(space_.num_nodes());
  for (int e = 0; e < num_edges_; ++e) {
    cell.add_edge_operations(space_.operations(static_cast<int>(best[e].item<int64_t>())));
  }
  return cell;
}

torch::Tensor CellSupernetImpl::Run(torch::Tensor x, const EdgeFn& edge) {
  x = stem_norm_->forward(stem_conv_->forward(x));
  for (int stage = 0; stage < 3; ++stage) {
    if (stage > 0) {
      torch::Tensor shortcut =
          shortcuts_[stage - 1]->forward(torch::avg_pool2d(x, 2, 2, 0, /*ceil_mode=*/true));
      x = shortcut + reductions_b_[stage - 1]->forward(reductions_a_[stage - 1]->forward(x));
    }
    for (int k = 0; k < space_.cells_per_stage(); ++k) {
      x = CellForward(x, space_.num_nodes(), [&](int e, const torch::Tensor& in) {
        return edge(stage, k, e, in);
      });
    }
  }
  x = torch::relu(final_norm_->forward(x)).mean({2, 3});
  return classifier_->forward(x);
}

ReluConvBnImpl* CellSupernetImpl::EdgeOp(int stage, int k, int edge, const std::string& op) {
  return edge_ops_.at(EdgeOpName(stage, k, edge, op)).get();
}

std::vector<std::string> CellSupernetImpl::UsedParameters(const v1::CellArchitecture& cell) const {
  std::set<std::string> chosen;  // module names of the child's operations
  for (int stage = 0; stage < 3; ++stage) {
    for (int k = 0; k < space_.cells_per_stage(); ++k) {
      for (int e = 0; e < cell.edge_operations_size() && e < num_edges_; ++e) {
        if (IsConv(cell.edge_operations(e))) {
          chosen.insert(EdgeOpName(stage, k, e, cell.edge_operations(e)));
        }
      }
    }
  }
  std::vector<std::string> used;
  for (const auto& item : named_parameters()) {
    const std::string& name = item.key();
    const std::string module = name.substr(0, name.find('.'));
    if (edge_ops_.count(module) == 0 || chosen.count(module) > 0) used.push_back(name);
  }
  return used;
}

}  // namespace nas::worker
