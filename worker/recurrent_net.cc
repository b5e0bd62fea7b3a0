#include "worker/recurrent_net.h"

#include <cmath>
#include <string>

#include "absl/strings/str_cat.h"

namespace nas::worker {

RecurrentState RecurrentState::Detached() const {
  return RecurrentState{h.defined() ? h.detach() : h, c.defined() ? c.detach() : c};
}

RecurrentCellImpl::RecurrentCellImpl(const v1::RecurrentCellArchitecture& cell, int input_size, int hidden_size)
    : base_((cell.nodes_size() + 1) / 2), hidden_size_(hidden_size) {
  const auto combination = [](const std::string& name) {
    return name == "elem_mult" ? Combination::kElemMult : Combination::kAdd;
  };
  const auto activation = [](const std::string& name) {
    if (name == "tanh") return Activation::kTanh;
    if (name == "sigmoid") return Activation::kSigmoid;
    if (name == "relu") return Activation::kRelu;
    return Activation::kIdentity;
  };
  for (const v1::RecurrentTreeNode& node : cell.nodes()) {
    combinations_.push_back(combination(node.combination()));
    activations_.push_back(activation(node.activation()));
  }
  inject_node_ = cell.cell_inject_node();
  output_node_ = cell.cell_output_node();
  inject_combination_ = combination(cell.cell_inject_combination());
  inject_activation_ = activation(cell.cell_inject_activation());
  w_x = register_module("w_x", torch::nn::Linear(torch::nn::LinearOptions(input_size, base_ * hidden_size)));
  w_h = register_module("w_h",
                        torch::nn::Linear(torch::nn::LinearOptions(hidden_size, base_ * hidden_size).bias(false)));
  // As torch::nn::LSTM initialises its projections.
  const double bound = 1.0 / std::sqrt(static_cast<double>(hidden_size));
  torch::NoGradGuard no_grad;
  for (torch::Tensor& p : parameters()) p.uniform_(-bound, bound);
}

RecurrentState RecurrentCellImpl::InitialState(int64_t batch, const torch::Device& device) const {
  const auto options = torch::TensorOptions().device(device);
  RecurrentState state{torch::zeros({batch, hidden_size_}, options), torch::Tensor()};
  if (injects()) state.c = torch::zeros({batch, hidden_size_}, options);
  return state;
}

torch::Tensor RecurrentCellImpl::Combine(Combination c, const torch::Tensor& a, const torch::Tensor& b) {
  return c == Combination::kAdd ? a + b : a * b;
}

torch::Tensor RecurrentCellImpl::Activate(Activation a, const torch::Tensor& x) {
  switch (a) {
    case Activation::kTanh:
      return torch::tanh(x);
    case Activation::kSigmoid:
      return torch::sigmoid(x);
    case Activation::kRelu:
      return torch::relu(x);
    case Activation::kIdentity:
      break;
  }
  return x;
}

RecurrentState RecurrentCellImpl::Step(const torch::Tensor& projected_x, const RecurrentState& state) {
  const std::vector<torch::Tensor> xs = projected_x.chunk(base_, 1);
  const std::vector<torch::Tensor> hs = w_h->forward(state.h).chunk(base_, 1);
  const int nodes = 2 * base_ - 1;
  std::vector<torch::Tensor> out(nodes);
  RecurrentState next;
  for (int k = nodes - 1; k >= 0; --k) {
    const bool leaf = k >= base_ - 1;
    const torch::Tensor pre = leaf ? Combine(combinations_[k], xs[k - (base_ - 1)], hs[k - (base_ - 1)])
                                   : Combine(combinations_[k], out[2 * k + 1], out[2 * k + 2]);
    out[k] = Activate(activations_[k], pre);
    if (k == output_node_) next.c = pre;
    if (k == inject_node_) out[k] = Activate(inject_activation_, Combine(inject_combination_, out[k], state.c));
  }
  next.h = out[0];
  return next;
}

torch::Tensor RecurrentCellImpl::forward(const torch::Tensor& x, RecurrentState* state) {
  const torch::Tensor projected = w_x->forward(x);  // [T, B, base*H]
  std::vector<torch::Tensor> hs;
  hs.reserve(x.size(0));
  for (int64_t t = 0; t < x.size(0); ++t) {
    *state = Step(projected[t], *state);
    hs.push_back(state->h);
  }
  return torch::stack(hs);
}

RecurrentLmImpl::RecurrentLmImpl(const v1::RecurrentCellArchitecture& cell_arch,
                                 const LanguageModelOptions& options)
    : dropout_(options.dropout) {
  const search_space::LanguageModelShape& shape = options.shape;
  embedding = register_module("embedding", torch::nn::Embedding(shape.vocabulary, shape.embedding_size));
  cell = register_module("cell", RecurrentCell(cell_arch, shape.embedding_size, shape.hidden_size));
  decoder = register_module("decoder", std::make_shared<torch::nn::Module>());
  torch::NoGradGuard no_grad;
  embedding->weight.uniform_(-0.1, 0.1);
  if (shape.tie_weights) {
    decoder_weight_ = embedding->weight;
  } else {
    decoder_weight_ =
        decoder->register_parameter("weight", torch::empty({shape.vocabulary, shape.hidden_size}).uniform_(-0.1, 0.1));
  }
  decoder_bias_ = decoder->register_parameter("bias", torch::zeros({shape.vocabulary}));
}

torch::Tensor RecurrentLmImpl::forward(const torch::Tensor& tokens, RecurrentState* state) {
  torch::Tensor x = torch::dropout(embedding->forward(tokens), dropout_, is_training());
  torch::Tensor h = torch::dropout(cell->forward(x, state), dropout_, is_training());
  return torch::nn::functional::linear(h, decoder_weight_, decoder_bias_);
}

int64_t RecurrentLmImpl::parameter_count() const {
  int64_t n = 0;
  for (const torch::Tensor& p : parameters()) n += p.numel();
  return n;
}

v1::RecurrentCellArchitecture LstmCellArchitecture() {
  v1::RecurrentCellArchitecture cell;
  const std::vector<std::pair<const char*, const char*>> nodes = {
      {"elem_mult", "identity"},  // 0: sigma(o) * tanh(c_t)
      {"add", "sigmoid"},         // 1: sigma(o)
      {"add", "tanh"},            // 2: pre = i*g + f*c_{t-1} = c_t
      {"add", "identity"},        // 3
      {"add", "identity"},        // 4
      {"elem_mult", "identity"},  // 5: i * g
      {"add", "sigmoid"},         // 6: sigma(f), injected: * c_{t-1}
      {"add", "identity"},        // 7..10: o
      {"add", "identity"},
      {"add", "identity"},
      {"add", "identity"},
      {"add", "sigmoid"},   // 11: i
      {"add", "tanh"},      // 12: g
      {"add", "identity"},  // 13, 14: f
      {"add", "identity"},
  };
  for (const auto& [combination, activation] : nodes) {
    v1::RecurrentTreeNode* node = cell.add_nodes();
    node->set_combination(combination);
    node->set_activation(activation);
  }
  cell.set_cell_inject_node(6);
  cell.set_cell_inject_combination("elem_mult");
  cell.set_cell_inject_activation("identity");
  cell.set_cell_output_node(2);
  return cell;
}

absl::StatusOr<RecurrentLm> BuildRecurrentLm(const v1::Architecture& architecture,
                                             const LanguageModelOptions& options, const ChildLimits& limits) {
  if (!(options.dropout >= 0 && options.dropout < 1)) {
    return absl::InvalidArgumentError(absl::StrCat("dropout must be in [0, 1), got ", options.dropout));
  }
  absl::StatusOr<search_space::ChildSize> size =
      search_space::EstimateRecurrentChildSize(architecture, options.shape, limits.batch_size);
  if (!size.ok()) return size.status();
  if (absl::Status s = CheckChildLimits(*size, limits); !s.ok()) return s;
  try {
    return RecurrentLm(architecture.recurrent_cell(), options);
  } catch (const c10::Error& e) {
    return absl::InvalidArgumentError(absl::StrCat("cannot build the network: ", e.what_without_backtrace()));
  }
}

}  // namespace nas::worker
