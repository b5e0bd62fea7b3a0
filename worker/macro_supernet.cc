#include "worker/macro_supernet.h"

#include <algorithm>
#include <set>

#include "absl/strings/str_cat.h"
#include "search_space/child_size.h"
#include "search_space/search_space.h"

namespace nas::worker {
namespace {

bool Listed(const google::protobuf::RepeatedField<int32_t>& list, int value) {
  return std::find(list.begin(), list.end(), value) != list.end();
}

}  // namespace

absl::StatusOr<std::shared_ptr<MacroSupernetImpl>> MacroSupernetImpl::Create(const v1::SearchSpace& space,
                                                                             const InputShape& input) {
  if (!space.has_macro_cnn()) {
    return absl::InvalidArgumentError("search_space: a macro-CNN supernet needs a macro_cnn space");
  }
  if (absl::Status valid = search_space::ValidateSearchSpace(space); !valid.ok()) return valid;
  const int layers = search_space::MacroSupernetLayers(space.macro_cnn());
  if (layers < 1) return absl::InvalidArgumentError("search_space.macro_cnn.depth: no layers");
  return std::shared_ptr<MacroSupernetImpl>(new MacroSupernetImpl(space.macro_cnn(), input, layers));
}

std::string MacroSupernetImpl::ChoiceName(int layer, int filter_height, int filter_width, int filters) {
  return absl::StrCat("l", layer, "_", filter_height, "x", filter_width, "x", filters);
}

MacroSupernetImpl::MacroSupernetImpl(const v1::MacroCnnSpace& space, const InputShape& input, int layers)
    : space_(space), input_(input), layers_(layers) {
  widest_ = *std::max_element(space.num_filters().begin(), space.num_filters().end());
  const std::set<int> heights(space.filter_heights().begin(), space.filter_heights().end());
  const std::set<int> widths(space.filter_widths().begin(), space.filter_widths().end());
  const std::set<int> filters(space.num_filters().begin(), space.num_filters().end());
  for (int i = 0; i < layers; ++i) {
    const int in = input.channels + i * widest_;
    for (int fh : heights) {
      for (int fw : widths) {
        for (int f : filters) {
          const std::string name = ChoiceName(i, fh, fw, f);
          // Registered as one module per choice: "<name>.conv", "<name>.norm".
          auto choice = register_module(name, std::make_shared<torch::nn::Module>());
          convs_.emplace(name, choice->register_module(
                                   "conv", torch::nn::Conv2d(torch::nn::Conv2dOptions(in, f, {fh, fw}).bias(false))));
          norms_.emplace(name, choice->register_module("norm", torch::nn::BatchNorm2d(f)));
        }
      }
    }
  }
  classifier_ = register_module("classifier", torch::nn::Linear(layers * widest_, input.classes));
}

absl::Status MacroSupernetImpl::CheckArchitecture(const v1::MacroCnnArchitecture& arch) const {
  if (arch.layers_size() < 1 || arch.layers_size() > layers_) {
    return absl::InvalidArgumentError(absl::StrCat("architecture.macro_cnn.layers: ", arch.layers_size(),
                                                   " layers, the supernet has 1..", layers_));
  }
  for (int i = 0; i < arch.layers_size(); ++i) {
    const v1::MacroCnnLayer& l = arch.layers(i);
    const std::string field = absl::StrCat("architecture.macro_cnn.layers[", i, "]");
    if (!Listed(space_.filter_heights(), l.filter_height()) || !Listed(space_.filter_widths(), l.filter_width()) ||
        !Listed(space_.num_filters(), l.num_filters())) {
      return absl::InvalidArgumentError(absl::StrCat(field, ": ", l.filter_height(), "x", l.filter_width(), "/",
                                                     l.num_filters(), " is not one of the space's choices"));
    }
    const int stride = std::max(1, l.stride());
    if (space_.strides().empty() ? stride != 1 : !Listed(space_.strides(), stride)) {
      return absl::InvalidArgumentError(absl::StrCat(field, ".stride: ", stride, " is not one of the space's"));
    }
    for (int j : l.inputs()) {
      if (j < 0 || j >= i || (!space_.skip_connections() && j != i - 1)) {
        return absl::InvalidArgumentError(absl::StrCat(field, ".inputs: layer ", j, " cannot feed layer ", i));
      }
    }
  }
  return absl::OkStatus();
}

std::vector<int64_t> MacroSupernetImpl::InputColumns(const v1::MacroCnnArchitecture& arch, int layer) const {
  std::vector<int64_t> columns;
  const auto& inputs = arch.layers(layer).inputs();
  if (inputs.empty()) {
    for (int c = 0; c < input_.channels; ++c) columns.push_back(c);
    return columns;
  }
  for (int j : inputs) {
    const int64_t start = input_.channels + int64_t{j} * widest_;
    for (int c = 0; c < arch.layers(j).num_filters(); ++c) columns.push_back(start + c);
  }
  return columns;
}

std::vector<int64_t> MacroSupernetImpl::FeatureColumns(const v1::MacroCnnArchitecture& arch) const {
  std::set<int> consumed;
  for (const v1::MacroCnnLayer& l : arch.layers()) consumed.insert(l.inputs().begin(), l.inputs().end());
  std::vector<int64_t> columns;
  for (int i = 0; i < arch.layers_size(); ++i) {
    if (consumed.count(i) > 0) continue;
    for (int c = 0; c < arch.layers(i).num_filters(); ++c) columns.push_back(int64_t{i} * widest_ + c);
  }
  return columns;
}

torch::Tensor MacroSupernetImpl::Forward(torch::Tensor x, const v1::MacroCnnArchitecture& arch) {
  const absl::Status checked = CheckArchitecture(arch);
  TORCH_CHECK(checked.ok(), std::string(checked.message()));
  const auto on = [&x](const std::vector<int64_t>& v) {
    return torch::tensor(v, torch::TensorOptions().dtype(torch::kLong)).to(x.device());
  };
  std::vector<torch::Tensor> outs;
  for (int i = 0; i < arch.layers_size(); ++i) {
    const v1::MacroCnnLayer& l = arch.layers(i);
    torch::Tensor in = x;
    if (!l.inputs().empty()) {
      int64_t h = 0, w = 0;
      for (int j : l.inputs()) {
        h = std::max(h, outs[j].size(2));
        w = std::max(w, outs[j].size(3));
      }
      std::vector<torch::Tensor> maps;
      for (int j : l.inputs()) {
        const torch::Tensor& m = outs[j];
        maps.push_back(m.size(2) == h && m.size(3) == w
                           ? m
                           : torch::constant_pad_nd(m, {0, w - m.size(3), 0, h - m.size(2)}, 0));
      }
      in = maps.size() == 1 ? maps[0] : torch::cat(maps, 1);
    }
    const std::string name = ChoiceName(i, l.filter_height(), l.filter_width(), l.num_filters());
    const torch::Tensor weight = convs_.at(name)->weight.index_select(1, on(InputColumns(arch, i)));
    const int64_t stride = std::max(1, l.stride());
    torch::Tensor y = torch::conv2d(in, weight, {}, {stride, stride},
                                    {l.filter_height() / 2, l.filter_width() / 2});
    outs.push_back(torch::relu(norms_.at(name)->forward(y)));
  }
  std::vector<torch::Tensor> pooled;
  std::set<int> consumed;
  for (const v1::MacroCnnLayer& l : arch.layers()) consumed.insert(l.inputs().begin(), l.inputs().end());
  for (int i = 0; i < arch.layers_size(); ++i) {
    if (consumed.count(i) == 0) pooled.push_back(outs[i].mean({2, 3}));
  }
  const torch::Tensor features = pooled.size() == 1 ? pooled[0] : torch::cat(pooled, 1);
  return torch::linear(features, classifier_->weight.index_select(1, on(FeatureColumns(arch))),
                       classifier_->bias);
}

std::vector<std::string> MacroSupernetImpl::UsedParameters(const v1::MacroCnnArchitecture& arch) const {
  std::set<std::string> chosen;
  for (int i = 0; i < arch.layers_size() && i < layers_; ++i) {
    const v1::MacroCnnLayer& l = arch.layers(i);
    chosen.insert(ChoiceName(i, l.filter_height(), l.filter_width(), l.num_filters()));
  }
  std::vector<std::string> used;
  for (const auto& item : named_parameters()) {
    const std::string& name = item.key();
    const std::string module = name.substr(0, name.find('.'));
    if (module == "classifier" || chosen.count(module) > 0) used.push_back(name);
  }
  return used;
}

}  // namespace nas::worker
