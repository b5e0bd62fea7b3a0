#include "worker/child_net.h"

#include <algorithm>
#include <set>

#include "absl/strings/str_cat.h"
#include "search_space/defaults.h"

namespace nas::worker {
namespace {

int ConvOut(int size, int kernel, int stride) { return (size + 2 * (kernel / 2) - kernel) / stride + 1; }

class MacroNetImpl : public ChildNetImpl {
 public:
  MacroNetImpl(const v1::MacroCnnArchitecture& arch, const InputShape& input) : arch_(arch) {
    std::vector<int> channels, heights, widths;
    std::set<int> consumed;
    for (int i = 0; i < arch.layers_size(); ++i) {
      const v1::MacroCnnLayer& l = arch.layers(i);
      int cin = input.channels, h = input.height, w = input.width;
      if (!l.inputs().empty()) {
        cin = 0;
        h = 0;
        w = 0;
        for (int j : l.inputs()) {
          cin += channels[j];
          h = std::max(h, heights[j]);
          w = std::max(w, widths[j]);
          consumed.insert(j);
        }
      }
      const int stride = std::max(1, l.stride());
      convs_.push_back(register_module(
          absl::StrCat("conv", i),
          torch::nn::Conv2d(torch::nn::Conv2dOptions(cin, l.num_filters(), {l.filter_height(), l.filter_width()})
                                .stride(stride)
                                .padding({l.filter_height() / 2, l.filter_width() / 2})
                                .bias(false))));
      norms_.push_back(register_module(absl::StrCat("norm", i), torch::nn::BatchNorm2d(l.num_filters())));
      const int ho = ConvOut(h, l.filter_height(), stride), wo = ConvOut(w, l.filter_width(), stride);
      flops_ += int64_t{2} * l.filter_height() * l.filter_width() * cin * l.num_filters() * ho * wo;
      channels.push_back(l.num_filters());
      heights.push_back(ho);
      widths.push_back(wo);
    }
    int features = 0;
    for (int i = 0; i < arch.layers_size(); ++i) {
      if (consumed.count(i) == 0) {
        outputs_.push_back(i);
        features += channels[i];
      }
    }
    classifier_ = register_module("classifier", torch::nn::Linear(features, input.classes));
    flops_ += int64_t{2} * features * input.classes;
  }

  torch::Tensor forward(torch::Tensor x) override {
    std::vector<torch::Tensor> outs;
    outs.reserve(convs_.size());
    for (size_t i = 0; i < convs_.size(); ++i) {
      const auto& inputs = arch_.layers(static_cast<int>(i)).inputs();
      torch::Tensor in = x;
      if (!inputs.empty()) {
        std::vector<torch::Tensor> maps;
        int64_t h = 0, w = 0;
        for (int j : inputs) {
          h = std::max(h, outs[j].size(2));
          w = std::max(w, outs[j].size(3));
        }
        for (int j : inputs) {
          const torch::Tensor& m = outs[j];
          maps.push_back(m.size(2) == h && m.size(3) == w
                             ? m
                             : torch::constant_pad_nd(m, {0, w - m.size(3), 0, h - m.size(2)}, 0));
        }
        in = maps.size() == 1 ? maps[0] : torch::cat(maps, 1);
      }
      outs.push_back(torch::relu(norms_[i]->forward(convs_[i]->forward(in))));
    }
    std::vector<torch::Tensor> pooled;
    for (int i : outputs_) pooled.push_back(outs[i].mean({2, 3}));
    return classifier_->forward(pooled.size() == 1 ? pooled[0] : torch::cat(pooled, 1));
  }

  int64_t flops() const override { return flops_; }

 private:
  const v1::MacroCnnArchitecture arch_;
  std::vector<torch::nn::Conv2d> convs_;
  std::vector<torch::nn::BatchNorm2d> norms_;
  std::vector<int> outputs_;
  torch::nn::Linear classifier_{nullptr};
  int64_t flops_ = 0;
};

class CellNetImpl : public ChildNetImpl {
 public:
  CellNetImpl(const v1::CellArchitecture& cell, int cells_per_stage, int channels,
              const InputShape& input)
      : cell_(cell) {
    stem_conv_ = register_module("stem_conv", torch::nn::Conv2d(torch::nn::Conv2dOptions(input.channels, channels, 3)
                                                                    .padding(1)
                                                                    .bias(false)));
    stem_norm_ = register_module("stem_norm", torch::nn::BatchNorm2d(channels));
    int c = channels, h = input.height, w = input.width;
    flops_ += int64_t{2} * 9 * input.channels * c * h * w;
    for (int stage = 0; stage < 3; ++stage) {
      if (stage > 0) {
        const int out = c * 2;
        const int ho = (h + 1) / 2, wo = (w + 1) / 2;
        reductions_a_.push_back(register_module(absl::StrCat("reduce", stage, "_a"), ReluConvBn(c, out, 3, 2)));
        reductions_b_.push_back(register_module(absl::StrCat("reduce", stage, "_b"), ReluConvBn(out, out, 3, 1)));
        shortcuts_.push_back(register_module(absl::StrCat("shortcut", stage),
                                             torch::nn::Conv2d(torch::nn::Conv2dOptions(c, out, 1).bias(false))));
        flops_ += int64_t{2} * ho * wo * (9 * c * out + 9 * out * out + c * out);
        c = out;
        h = ho;
        w = wo;
      }
      for (int k = 0; k < cells_per_stage; ++k) {
        std::vector<std::shared_ptr<torch::nn::Module>> ops;
        for (int e = 0; e < cell.edge_operations_size(); ++e) {
          const std::string& op = cell.edge_operations(e);
          const std::string name = absl::StrCat("s", stage, "c", k, "e", e);
          if (op == "nor_conv_1x1" || op == "nor_conv_3x3") {
            const int kernel = op == "nor_conv_1x1" ? 1 : 3;
            ops.push_back(register_module(name, ReluConvBn(c, c, kernel, 1)));
            flops_ += int64_t{2} * kernel * kernel * c * c * h * w;
          } else {
            ops.push_back(nullptr);
          }
        }
        cells_.push_back(std::move(ops));
      }
    }
    final_norm_ = register_module("final_norm", torch::nn::BatchNorm2d(c));
    classifier_ = register_module("classifier", torch::nn::Linear(c, input.classes));
    flops_ += int64_t{2} * c * input.classes;
    cells_per_stage_ = cells_per_stage;
  }

  torch::Tensor forward(torch::Tensor x) override {
    x = stem_norm_->forward(stem_conv_->forward(x));
    size_t cell_index = 0;
    for (int stage = 0; stage < 3; ++stage) {
      if (stage > 0) {
        torch::Tensor shortcut =
            shortcuts_[stage - 1]->forward(torch::avg_pool2d(x, 2, 2, 0, /*ceil_mode=*/true));
        x = shortcut + reductions_b_[stage - 1]->forward(reductions_a_[stage - 1]->forward(x));
      }
      for (int k = 0; k < cells_per_stage_; ++k) x = Cell(x, cells_[cell_index++]);
    }
    x = torch::relu(final_norm_->forward(x)).mean({2, 3});
    return classifier_->forward(x);
  }

  int64_t flops() const override { return flops_; }

 private:
  torch::Tensor Cell(const torch::Tensor& input, const std::vector<std::shared_ptr<torch::nn::Module>>& ops) {
    return CellForward(input, cell_.num_nodes(), [&](int edge, const torch::Tensor& x) {
      return CellOperation(cell_.edge_operations(edge), x,
                           static_cast<ReluConvBnImpl*>(ops[edge].get()));
    });
  }

  const v1::CellArchitecture cell_;
  int cells_per_stage_ = 1;
  torch::nn::Conv2d stem_conv_{nullptr};
  torch::nn::BatchNorm2d stem_norm_{nullptr};
  std::vector<ReluConvBn> reductions_a_, reductions_b_;
  std::vector<torch::nn::Conv2d> shortcuts_;
  std::vector<std::vector<std::shared_ptr<torch::nn::Module>>> cells_;
  torch::nn::BatchNorm2d final_norm_{nullptr};
  torch::nn::Linear classifier_{nullptr};
  int64_t flops_ = 0;
};

}  // namespace

ReluConvBnImpl::ReluConvBnImpl(int cin, int cout, int kernel, int stride) {
  conv = register_module("conv", torch::nn::Conv2d(torch::nn::Conv2dOptions(cin, cout, kernel)
                                                       .stride(stride)
                                                       .padding(kernel / 2)
                                                       .bias(false)));
  norm = register_module("norm", torch::nn::BatchNorm2d(cout));
}

torch::Tensor ReluConvBnImpl::forward(torch::Tensor x) {
  return norm->forward(conv->forward(torch::relu(x)));
}

torch::Tensor CellForward(const torch::Tensor& input, int num_nodes,
                          const std::function<torch::Tensor(int edge, const torch::Tensor& x)>& edge) {
  std::vector<torch::Tensor> nodes = {input};
  int e = 0;
  for (int i = 1; i < num_nodes; ++i) {
    torch::Tensor total = torch::zeros_like(input);
    for (int j = 0; j < i; ++j, ++e) {
      torch::Tensor out = edge(e, nodes[j]);
      if (out.defined()) total = total + out;
    }
    nodes.push_back(total);
  }
  return nodes.back();
}

torch::Tensor CellOperation(const std::string& op, const torch::Tensor& x, ReluConvBnImpl* conv) {
  if (op == "none") return torch::Tensor();
  if (op == "skip_connect") return x;
  if (op == "avg_pool_3x3") return torch::avg_pool2d(x, 3, 1, 1, false, /*count_include_pad=*/false);
  TORCH_CHECK(conv != nullptr, "cell operation ", op, " has no weights");
  return conv->forward(x);
}

int64_t ChildNetImpl::parameter_count() const {
  int64_t n = 0;
  for (const torch::Tensor& p : parameters()) n += p.numel();
  return n;
}

absl::Status CheckChildLimits(const search_space::ChildSize& size, const ChildLimits& limits) {
  const std::string described = absl::StrCat("the child has ", size.ToString(), " of ", limits.batch_size);
  if (size.parameters > limits.max_parameters) {
    return absl::ResourceExhaustedError(
        absl::StrCat(described, ": over evaluator.max_parameters (", limits.max_parameters, ")"));
  }
  if (size.activation_bytes > limits.max_activation_bytes) {
    return absl::ResourceExhaustedError(absl::StrCat(described, ": over evaluator.max_activation_bytes (",
                                                     search_space::FormatBytes(limits.max_activation_bytes),
                                                     ")"));
  }
  if (limits.max_memory_bytes > 0 && size.MemoryBytes() > limits.max_memory_bytes) {
    return absl::ResourceExhaustedError(absl::StrCat(
        described, "; training it takes about ", search_space::FormatBytes(size.MemoryBytes()),
        ", over this worker's --max_child_bytes (", search_space::FormatBytes(limits.max_memory_bytes), ")"));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::shared_ptr<ChildNetImpl>> BuildChildNet(const v1::Architecture& architecture,
                                                            const v1::SearchSpace& space,
                                                            const InputShape& input,
                                                            const ChildLimits& limits) {
  // Sized before anything is allocated: a spec that validates can still ask
  // for a network no worker holds (issue 18: 22.6 GB in 60 s).
  absl::StatusOr<search_space::ChildSize> size =
      search_space::EstimateChildSize(architecture, space, input, limits.batch_size);
  if (!size.ok()) return size.status();
  if (absl::Status s = CheckChildLimits(*size, limits); !s.ok()) return s;
  try {
    if (architecture.has_macro_cnn()) {
      return std::shared_ptr<ChildNetImpl>(std::make_shared<MacroNetImpl>(architecture.macro_cnn(), input));
    }
    if (architecture.has_cell()) {
      const v1::CellSpace shape = search_space::WithCellDefaults(space.cell());
      return std::shared_ptr<ChildNetImpl>(std::make_shared<CellNetImpl>(
          architecture.cell(), shape.cells_per_stage(), shape.initial_channels(), input));
    }
  } catch (const c10::Error& e) {
    return absl::InvalidArgumentError(absl::StrCat("cannot build the network: ", e.what_without_backtrace()));
  }
  return absl::InvalidArgumentError("architecture has no readable form");
}

}  // namespace nas::worker
