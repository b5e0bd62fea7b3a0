// Recurrent cells (the paper's tree of combinations and activations, with the
// cell-inject memory) and the word-level language model they are trained in
// (LibTorch, CPU and CUDA). docs/search_spaces.md describes the cell:
//
//  * the tree has 2*base-1 nodes, breadth first, the root first: node k <
//    base-1 is internal with children 2k+1 and 2k+2; leaf j is node base-1+j;
//  * w_x: E -> base*H (with bias) and w_h: H -> base*H (without) are computed
//    once per step for all leaves; leaf j takes rows j*H .. (j+1)*H-1 of each:
//    pre_j = comb_j(Wx_j, Wh_j), out_j = act_j(pre_j);
//  * internal node k: pre_k = comb_k(out_{2k+1}, out_{2k+2}), out_k =
//    act_k(pre_k), computed bottom-up;
//  * injection (cell_inject_node n >= 0): right after out_n is computed,
//    out_n <- inject_act(inject_comb(out_n, c_{t-1})); the parent sees that;
//  * c_t = pre_m of m = cell_output_node (before its activation, and for the
//    inject node before the injection); h_t = out_0. Without injection the
//    state is h alone.
//
// The language model: Embedding(V, E) -> dropout -> the cell over the steps
// -> dropout -> decoder Linear(H, V) with bias, its weight the embedding's
// when tied (E == H). Parameter names: embedding.weight, cell.w_x.weight,
// cell.w_x.bias, cell.w_h.weight, decoder.weight (absent when tied),
// decoder.bias; their count is search_space::RecurrentLmParameters.
#ifndef NAS_WORKER_RECURRENT_NET_H_
#define NAS_WORKER_RECURRENT_NET_H_

#include <torch/torch.h>

#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "proto/search_space.pb.h"
#include "search_space/child_size.h"
#include "worker/child_net.h"

namespace nas::worker {

// h [B, H] and, for a cell with injection, c [B, H] (undefined otherwise).
struct RecurrentState {
  torch::Tensor h;
  torch::Tensor c;

  // The same values cut from the graph (truncated back-propagation).
  RecurrentState Detached() const;
};

class RecurrentCellImpl : public torch::nn::Module {
 public:
  // `cell` must pass search_space::CheckRecurrentCell.
  RecurrentCellImpl(const v1::RecurrentCellArchitecture& cell, int input_size, int hidden_size);

  // Zeros for a batch of `batch` sequences.
  RecurrentState InitialState(int64_t batch, const torch::Device& device) const;

  // One step from x_t's projection w_x(x_t) ([B, base*H]) and the state.
  RecurrentState Step(const torch::Tensor& projected_x, const RecurrentState& state);

  // Runs the cell over x [T, B, E] (w_x applied to all steps at once);
  // returns the h of every step, [T, B, H], and leaves the last state in
  // *state.
  torch::Tensor forward(const torch::Tensor& x, RecurrentState* state);

  int base() const { return base_; }
  int hidden_size() const { return hidden_size_; }
  bool injects() const { return inject_node_ >= 0; }

  torch::nn::Linear w_x{nullptr};
  torch::nn::Linear w_h{nullptr};

 private:
  enum class Combination { kAdd, kElemMult };
  enum class Activation { kIdentity, kTanh, kSigmoid, kRelu };
  static torch::Tensor Combine(Combination c, const torch::Tensor& a, const torch::Tensor& b);
  static torch::Tensor Activate(Activation a, const torch::Tensor& x);

  int base_ = 0;
  int hidden_size_ = 0;
  std::vector<Combination> combinations_;
  std::vector<Activation> activations_;
  int inject_node_ = -1;
  int output_node_ = -1;
  Combination inject_combination_ = Combination::kAdd;
  Activation inject_activation_ = Activation::kIdentity;
};
TORCH_MODULE(RecurrentCell);

struct LanguageModelOptions {
  search_space::LanguageModelShape shape;
  // Dropout after the embedding and before the decoder, in [0, 1).
  double dropout = 0;
};

class RecurrentLmImpl : public torch::nn::Module {
 public:
  RecurrentLmImpl(const v1::RecurrentCellArchitecture& cell, const LanguageModelOptions& options);

  // tokens [T, B] (int64) -> logits [T, B, V]; *state is the state carried
  // in and, on return, the last step's (not detached).
  torch::Tensor forward(const torch::Tensor& tokens, RecurrentState* state);

  int64_t parameter_count() const;

  torch::nn::Embedding embedding{nullptr};
  RecurrentCell cell{nullptr};
  // weight [V, H] unless tied, bias [V].
  std::shared_ptr<torch::nn::Module> decoder;

 private:
  double dropout_ = 0;
  torch::Tensor decoder_weight_;
  torch::Tensor decoder_bias_;
};
TORCH_MODULE(RecurrentLm);

// The LSTM as a cell of the base-8 space (docs/search_spaces.md): leaves
// 7..10 add/identity summed by nodes 3, 4 (add/identity) into node 1
// (add/sigmoid: the output gate); leaf 11 add/sigmoid (input gate) times
// leaf 12 add/tanh (candidate) at node 5 (elem_mult/identity); leaves 13, 14
// add/identity into node 6 (add/sigmoid: the forget gate), injected as
// elem_mult/identity with c_{t-1}; node 2 add/tanh sums them (its pre is
// c_t: cell_output_node 2); the root elem_mult/identity gives h_t.
v1::RecurrentCellArchitecture LstmCellArchitecture();

// Builds the language model around `architecture`'s recurrent cell.
// INVALID_ARGUMENT for a cell or shape no network is built from,
// RESOURCE_EXHAUSTED naming the size when it is over `limits` (batch_size
// sequences of shape.bptt_steps tokens; nothing is allocated then).
absl::StatusOr<RecurrentLm> BuildRecurrentLm(const v1::Architecture& architecture,
                                             const LanguageModelOptions& options, const ChildLimits& limits = {});

}  // namespace nas::worker

#endif  // NAS_WORKER_RECURRENT_NET_H_
