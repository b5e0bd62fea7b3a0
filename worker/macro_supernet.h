// The one-shot supernet of a macro-CNN space (issue 21): every layer index up
// to the depth schedule's deepest (search_space::MacroSupernetLayers) and every
// (filter_height, filter_width, num_filters) choice of it has its own conv and
// batch norm weights; strides need no weights of their own. Forward(x, arch)
// runs the child as worker/child_net.h's standalone network does (same
// padding, strides, concatenation of the anchor's inputs zero-padded to the
// largest map, each unconsumed layer pooled on its own).
//
// Where it must differ, the input channels: a standalone layer's conv has as
// many input channels as its inputs have together, which varies from child to
// child. Here layer i's conv is allocated for every input it could have, one
// block of columns per source: the image's C channels first, then F (the
// space's largest num_filters) for each earlier layer j (at C + j*F); a child
// uses, of each of its inputs' blocks, the first (that layer's num_filters)
// columns, in its inputs' order. So a given (source, layer, choice) always
// meets the same weights, whichever other inputs the child has. The
// classifier likewise has one block of F columns per layer (classes x
// layers*F). A space without skip connections is laid out the same (only the
// previous layer's block is used). With the same weights, sliced, a child's
// logits equal its standalone network's (macro_supernet_test).
//
// Parameter names: "l<i>_<fh>x<fw>x<f>.conv.weight", ".norm.weight",
// ".norm.bias"; "classifier.weight", "classifier.bias". UsedParameters names
// whole tensors: the unused columns of a child's conv and classifier get a
// zero gradient.
#ifndef NAS_WORKER_MACRO_SUPERNET_H_
#define NAS_WORKER_MACRO_SUPERNET_H_

#include <torch/torch.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "proto/search_space.pb.h"
#include "worker/child_net.h"

namespace nas::worker {

class MacroSupernetImpl : public torch::nn::Module {
 public:
  // `space` must hold a macro_cnn space that validates; INVALID_ARGUMENT
  // naming the field otherwise. Built on the CPU: move it with to(device).
  static absl::StatusOr<std::shared_ptr<MacroSupernetImpl>> Create(const v1::SearchSpace& space,
                                                                   const InputShape& input);

  // OK when `arch` is a child of this supernet: at most layers() layers,
  // each choice one of the space's, inputs from earlier layers (the previous
  // one only without skip connections); INVALID_ARGUMENT naming the field.
  absl::Status CheckArchitecture(const v1::MacroCnnArchitecture& arch) const;

  // Logits [batch, classes] of the child (c10::Error with
  // CheckArchitecture's message when it is not one).
  torch::Tensor Forward(torch::Tensor x, const v1::MacroCnnArchitecture& arch);

  // The tensors the child reads, in named_parameters() order.
  std::vector<std::string> UsedParameters(const v1::MacroCnnArchitecture& arch) const;

  int layers() const { return layers_; }

  // Layer i's module name for a choice.
  static std::string ChoiceName(int layer, int filter_height, int filter_width, int filters);
  // The columns of layer i's conv a child's layer reads (its inputs' blocks,
  // in order), and of the classifier its unconsumed layers' features.
  std::vector<int64_t> InputColumns(const v1::MacroCnnArchitecture& arch, int layer) const;
  std::vector<int64_t> FeatureColumns(const v1::MacroCnnArchitecture& arch) const;

 private:
  MacroSupernetImpl(const v1::MacroCnnSpace& space, const InputShape& input, int layers);

  const v1::MacroCnnSpace space_;
  const InputShape input_;
  const int layers_;
  int widest_ = 1;  // F
  std::map<std::string, torch::nn::Conv2d> convs_;
  std::map<std::string, torch::nn::BatchNorm2d> norms_;
  torch::nn::Linear classifier_{nullptr};
};

}  // namespace nas::worker

#endif  // NAS_WORKER_MACRO_SUPERNET_H_
