// Child networks built from architectures (LibTorch).
//
// Macro CNN (the paper): each layer is conv(fh x fw, filters, stride, "same"
// padding fh/2 x fw/2, no bias) + batch norm + ReLU. A layer's inputs are the
// layers its anchor chose, concatenated along channels, smaller maps
// zero-padded at the bottom/right to the largest; a layer with no input takes
// the image. Every layer no other layer consumes is global-average-pooled;
// the pooled vectors are concatenated and fed to a linear classifier (pooling
// each map on its own keeps zero padding out of the averages).
//
// Cell networks (NAS-Bench-201 style): a 3x3 stem, three stages of cells
// (channels C, 2C, 4C) joined by stride-2 residual blocks, batch norm, ReLU,
// pooling and a linear classifier; in a cell node i sums op(j->i)(node j).
#ifndef NAS_WORKER_CHILD_NET_H_
#define NAS_WORKER_CHILD_NET_H_

#include <torch/torch.h>

#include <functional>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "proto/search_space.pb.h"
#include "search_space/child_size.h"
#include "search_space/defaults.h"

namespace nas::worker {

using InputShape = search_space::ImageShape;

// Limits that keep any spec from exhausting a worker, checked on the size
// worked out from the architecture (search_space/child_size.h) before
// anything is allocated.
struct ChildLimits {
  // The job's evaluator.max_parameters and max_activation_bytes (for a batch
  // of batch_size).
  int64_t max_parameters = search_space::kDefaultMaxParameters;
  int64_t max_activation_bytes = search_space::kDefaultMaxActivationBytes;
  int batch_size = search_space::kDefaultBatchSize;
  // This worker's ceiling on ChildSize::MemoryBytes (--max_child_bytes);
  // 0 = none.
  int64_t max_memory_bytes = 0;
};

// ReLU -> conv (kernel x kernel, "same" padding, no bias) -> batch norm: the
// cell networks' convolution, also the supernet's (worker/supernet.h).
struct ReluConvBnImpl : torch::nn::Module {
  ReluConvBnImpl(int cin, int cout, int kernel, int stride);
  torch::Tensor forward(torch::Tensor x);
  torch::nn::Conv2d conv{nullptr};
  torch::nn::BatchNorm2d norm{nullptr};
};
TORCH_MODULE(ReluConvBn);

// The cell sum, one function for the standalone cell network and the
// supernet (worker/supernet.h): node 0 is `input`, node i (1..num_nodes-1)
// sums edge(e, node j) over j < i, edges numbered in that order (e = 0 is
// 0->1, then 0->2, 1->2, ...); the cell's output is the last node. `edge`
// returns an undefined tensor for an edge that contributes nothing ("none").
torch::Tensor CellForward(const torch::Tensor& input, int num_nodes,
                          const std::function<torch::Tensor(int edge, const torch::Tensor& x)>& edge);

// One cell operation on x: undefined for "none", x for "skip_connect", the
// 3x3 average pool (stride 1, padding excluded) for "avg_pool_3x3",
// conv->forward(x) for "nor_conv_1x1" / "nor_conv_3x3" (`conv` must then be
// set).
torch::Tensor CellOperation(const std::string& op, const torch::Tensor& x, ReluConvBnImpl* conv);

class ChildNetImpl : public torch::nn::Module {
 public:
  virtual torch::Tensor forward(torch::Tensor x) = 0;
  // Multiply-adds x 2 of the conv and linear layers for one image.
  virtual int64_t flops() const = 0;
  int64_t parameter_count() const;
};

// RESOURCE_EXHAUSTED naming the child's size when it is over `limits`.
absl::Status CheckChildLimits(const search_space::ChildSize& size, const ChildLimits& limits);

// Builds the child. INVALID_ARGUMENT for an architecture that does not make a
// network (unknown operation, input from a later layer ...), RESOURCE_EXHAUSTED
// naming the child's size when it is over `limits` (nothing is allocated
// then). Recurrent cells are built by BuildRecurrentLm (worker/recurrent_net.h).
absl::StatusOr<std::shared_ptr<ChildNetImpl>> BuildChildNet(const v1::Architecture& architecture,
                                                            const v1::SearchSpace& space,
                                                            const InputShape& input,
                                                            const ChildLimits& limits = {});

}  // namespace nas::worker

#endif  // NAS_WORKER_CHILD_NET_H_
