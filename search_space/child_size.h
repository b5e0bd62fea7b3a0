// The size of a child network, worked out from its architecture by
// arithmetic alone: nothing is allocated, so a worker can refuse a child too
// large for it before building it, and the controller can refuse at submit a
// spec whose largest child cannot fit. Torch-free (the controller links it).
//
// The networks are the ones worker/child_net.h builds (its comment describes
// them): the parameter count here equals the built module's exactly
// (worker/child_net_test checks it over sampled architectures of every
// trainable space). The activation figure is an estimate of the float32
// tensors one training step keeps alive for backward, for one batch:
//  * the input batch;
//  * macro CNN: per layer its concatenated input (when it joins two or more
//    layers) and the outputs of its convolution, batch norm and ReLU;
//  * cell network: the stem's convolution and batch norm outputs; per
//    reduction block its pooled shortcut, both ReLU/conv/batch-norm triples,
//    the shortcut's convolution and the sum; per cell node a zero tensor plus,
//    per edge, one tensor for the sum and one per step of its operation
//    (skip_connect 0, avg_pool_3x3 1, nor_conv_* 3: ReLU, conv, batch norm);
//    the final batch norm and ReLU;
//  * the pooled features and the logits.
// Not counted: backward's transient gradients and LibTorch's scratch space
// (each at most a few of the largest tensors), padded copies freed at once,
// and the parameters' own memory (see MemoryBytes).
#ifndef NAS_SEARCH_SPACE_CHILD_SIZE_H_
#define NAS_SEARCH_SPACE_CHILD_SIZE_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "proto/search_space.pb.h"

namespace nas::search_space {

// The images a child is trained on.
struct ImageShape {
  int channels = 1;
  int height = 28;
  int width = 28;
  int classes = 10;
};

// The shape of a train evaluator dataset's images: fashion_mnist and mnist
// 1x28x28, cifar10 3x32x32, 10 classes each. INVALID_ARGUMENT otherwise.
absl::StatusOr<ImageShape> DatasetImageShape(const std::string& dataset);

struct ChildSize {
  int64_t parameters = 0;
  // Estimated bytes of activations of one training batch (see above).
  int64_t activation_bytes = 0;

  // What training the child takes in all: the activations plus four float32
  // copies of the parameters (weights, gradients, the momentum buffer and
  // Nesterov's temporary).
  int64_t MemoryBytes() const;
  // "1,234,567 parameters, 1.5 GiB of activations per batch".
  std::string ToString() const;
};

// "512 MiB", "1.5 GiB", "123 bytes".
std::string FormatBytes(int64_t bytes);

// The size of `architecture` (macro CNN or cell; a cell network's depth and
// width come from `space`, with their defaults) trained on `input` in
// batches of `batch_size`. INVALID_ARGUMENT for a form no network is built
// from (out-of-range layer, input from a later layer, unknown operation,
// cell size out of range or a recurrent cell: see EstimateRecurrentChildSize).
absl::StatusOr<ChildSize> EstimateChildSize(const v1::Architecture& architecture,
                                            const v1::SearchSpace& space, const ImageShape& input,
                                            int batch_size);

// The largest parameter count and the largest activation estimate of any
// child `space` can produce (each maximised on its own, so they may belong
// to different children), computed from the space's choices without
// enumerating or sampling children. The activation maximum may exceed every
// child's by the pooled features of a few layers (it counts every layer's).
// Same errors as EstimateChildSize for a space that does not validate.
absl::StatusOr<ChildSize> LargestChildSize(const v1::SearchSpace& space, const ImageShape& input,
                                           int batch_size);

// The one-shot supernet of a cell space (worker/supernet.h, CellSupernetImpl):
// the cell network with, on every edge of every cell, each distinct
// operation of the space holding its own weights. `parameters` is exact
// (tests/supernet_size_test checks it against the built module). The
// activation estimate is one training batch's: with `all_operations_run`
// (DARTS' mixed net) every edge keeps every operation's tensors plus its
// output scaled by the softmax weight; without (ENAS: one sampled child per
// step) the largest child's, as LargestChildSize. A macro_cnn space's is
// EstimateMacroSupernetSize's (ENAS only: INVALID_ARGUMENT with
// `all_operations_run`). INVALID_ARGUMENT for a space without a supernet
// (recurrent_cell) or one that does not validate.
absl::StatusOr<ChildSize> EstimateSupernetSize(const v1::SearchSpace& space, const ImageShape& input,
                                               int batch_size, bool all_operations_run);
// The one-shot supernet of a macro-CNN space (worker/macro_supernet.h): the
// layers it holds (the depth schedule's deepest: max_layers when the depth
// grows, initial_layers otherwise).
int MacroSupernetLayers(const v1::MacroCnnSpace& space);

// The size of that supernet trained one child at a time: its parameters,
// exact (worker/macro_supernet_test checks the module's count): per layer i
// and each distinct (filter_height, filter_width, num_filters) choice f, a
// conv of f x (C + i*F) x fh x fw weights (C = input channels, F = the
// largest num_filters: an input block per earlier layer) and a batch norm
// (2f); a classifier of (layers*F) x classes + classes. Activations: the
// largest child's (LargestChildSize), one step trains one child. Errors as
// LargestChildSize's; INVALID_ARGUMENT for a space that is not macro_cnn.
absl::StatusOr<ChildSize> EstimateMacroSupernetSize(const v1::SearchSpace& space, const ImageShape& input,
                                                    int batch_size);

// Recurrent cells are trained inside a word-level language model
// (worker/recurrent_net.h, docs/search_spaces.md): embedding (V x E), the
// cell (w_x: E -> base*H with bias, w_h: H -> base*H without), a decoder
// H -> V with bias whose weight is the embedding's when tied (E == H).
struct LanguageModelShape {
  int vocabulary = 10000;
  int embedding_size = 0;
  int hidden_size = 0;
  bool tie_weights = false;
  // Truncated back-propagation length: the time steps one batch keeps alive.
  int bptt_steps = 35;
};

// Penn Treebank's vocabulary (Mikolov's: 9,999 words and <eos>), the
// language models' V (worker/ptb_dataset.h).
inline constexpr int kPtbVocabulary = 10000;

// Upper limits LanguageModelShape is checked against (job_spec.cc too).
inline constexpr int kMaxVocabulary = 1000000;
inline constexpr int kMaxRecurrentSize = 65536;
inline constexpr int kMaxBpttSteps = 10000;

// INVALID_ARGUMENT naming the field when a size is out of range (base 2, 4,
// 8 or 16; sizes >= 1 and under the limits above; tying with E != H).
absl::Status CheckLanguageModelShape(int base, const LanguageModelShape& shape);

// V*E + (E*base*H + base*H) + H*base*H + (tie ? 0 : V*H) + V: the language
// model's parameter count, exact (worker/recurrent_net_test checks it
// against the built module). Torch-free, for the controller and the export.
int64_t RecurrentLmParameters(int base, const LanguageModelShape& shape);

// INVALID_ARGUMENT when `cell` is not a tree the network is built from:
// 2*base-1 nodes (base 2, 4, 8 or 16), known combinations and activations,
// the inject and output nodes in range (both -1, or both set).
absl::Status CheckRecurrentCell(const v1::RecurrentCellArchitecture& cell);

// The size of a recurrent child's language model trained in batches of
// `batch_size` sequences of shape.bptt_steps tokens. The activation estimate
// counts, per token: the embedding and its dropout (output and mask), both
// projections (base*H each), each tree node's combination and activation
// (H each), the injection (2H), the output dropout (2H), the logits and
// their log-softmax (V each).
absl::StatusOr<ChildSize> EstimateRecurrentChildSize(const v1::Architecture& architecture,
                                                     const LanguageModelShape& shape, int batch_size);

// The largest of any child of a recurrent `space` (all children of a space
// have the same parameter count; the activation estimate assumes injection
// when the space has it).
absl::StatusOr<ChildSize> LargestRecurrentChildSize(const v1::SearchSpace& space,
                                                    const LanguageModelShape& shape, int batch_size);

}  // namespace nas::search_space

#endif  // NAS_SEARCH_SPACE_CHILD_SIZE_H_
