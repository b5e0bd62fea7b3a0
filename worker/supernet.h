// The one-shot supernet of a cell space (issue 21; ENAS and DARTS share
// weights through it): the cell network of worker/child_net.h with, on every
// edge of every cell, each candidate operation of the space holding its own
// weights. Forward(input, architecture) runs the sampled child: on each edge
// only the operation the architecture chose, so a backward pass reaches only
// that child's tensors (the others' gradients stay undefined).
// UsedParameters names the tensors a child reads, the slices a worker would
// pull and push. Built like BuildChildNet's cell network (same stem,
// reductions, classifier and per-op modules), so a child's used parameters
// number exactly what its standalone network has.
//
// Parameter names: the shared layers as in the child ("stem_conv.weight",
// "reduce1_a.conv.weight", "classifier.bias" ...); an edge's operation
// "s<stage>c<cell>e<edge>_<op>.conv.weight" / ".norm.weight" / ".norm.bias".
// Only nor_conv_1x1 and nor_conv_3x3 have weights; none, skip_connect and
// avg_pool_3x3 have none. Batch norm running statistics are buffers, per
// edge and operation like the weights.
//
// DARTS (first order) runs the same weights as a mixed network:
// ForwardMixed(x, alpha) makes every edge the softmax(alpha[edge])-weighted
// sum of all the space's operations (in the space's order; "none" adds
// zero), so gradients reach alpha and every operation's weights; ArgmaxCell
// reads the discrete child off alpha (the strongest operation per edge,
// "none" included, as the controller's "darts" strategy samples it).
//
// The macro-CNN space's supernet is worker/macro_supernet.h (Create here
// refuses other spaces with INVALID_ARGUMENT).
#ifndef NAS_WORKER_SUPERNET_H_
#define NAS_WORKER_SUPERNET_H_

#include <torch/torch.h>

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "proto/search_space.pb.h"
#include "worker/child_net.h"

namespace nas::worker {

class CellSupernetImpl : public torch::nn::Module {
 public:
  // `space` must hold a cell space (defaults filled in as for training)
  // whose operations are all known to workers; INVALID_ARGUMENT naming the
  // field otherwise. Built on the CPU: move it with to(device).
  static absl::StatusOr<std::shared_ptr<CellSupernetImpl>> Create(const v1::SearchSpace& space,
                                                                  const InputShape& input);

  // OK when `cell` is a child of this supernet: its num_nodes and edge count
  // match and every operation is one of the space's; INVALID_ARGUMENT naming
  // the field otherwise.
  absl::Status CheckArchitecture(const v1::CellArchitecture& cell) const;

  // Logits [batch, classes] of the child `cell` (checked first: c10::Error
  // with CheckArchitecture's message when it is not a child).
  torch::Tensor Forward(torch::Tensor x, const v1::CellArchitecture& cell);

  // Logits of the mixed network: alpha is [num_edges, num_operations]
  // (operations in the space's order), on the input's device; each edge is
  // sum_o softmax(alpha[edge])_o * op_o(x). c10::Error for another shape.
  torch::Tensor ForwardMixed(torch::Tensor x, const torch::Tensor& alpha);

  // The child DARTS reads off alpha: per edge the operation with the largest
  // alpha. INVALID_ARGUMENT naming the shape when alpha does not fit.
  absl::StatusOr<v1::CellArchitecture> ArgmaxCell(const torch::Tensor& alpha) const;

  int num_edges() const { return num_edges_; }

  // The names (as named_parameters() gives them) of the tensors the child
  // reads: the shared layers and its chosen operations', in
  // named_parameters() order. An operation on an edge out of a node that
  // only "none" consumes is listed (it runs, as in the standalone network)
  // but gets no gradient.
  std::vector<std::string> UsedParameters(const v1::CellArchitecture& cell) const;

 private:
  CellSupernetImpl(const v1::CellSpace& space, const InputShape& input);
  // An edge's output in stage `stage`, cell k (undefined: nothing).
  using EdgeFn = std::function<torch::Tensor(int stage, int k, int edge, const torch::Tensor& x)>;
  // The network around the cells (stem, reductions, classifier), with each
  // cell's edges computed by `edge`.
  torch::Tensor Run(torch::Tensor x, const EdgeFn& edge);
  ReluConvBnImpl* EdgeOp(int stage, int k, int edge, const std::string& op);
  static std::string EdgeOpName(int stage, int k, int edge, const std::string& op);

  const v1::CellSpace space_;
  int num_edges_ = 0;
  torch::nn::Conv2d stem_conv_{nullptr};
  torch::nn::BatchNorm2d stem_norm_{nullptr};
  std::vector<ReluConvBn> reductions_a_, reductions_b_;
  std::vector<torch::nn::Conv2d> shortcuts_;
  // Every weighted operation of every edge, by EdgeOpName.
  std::map<std::string, ReluConvBn> edge_ops_;
  torch::nn::BatchNorm2d final_norm_{nullptr};
  torch::nn::Linear classifier_{nullptr};
};

}  // namespace nas::worker

#endif  // NAS_WORKER_SUPERNET_H_
