// Search spaces as ordered lists of decisions, and the architectures they
// produce. Torch-free: the controller, the worker (child networks, the lookup
// evaluator), tools/make_lookup_table and the fuzzers use it to decode,
// validate and print architectures. CanonicalString is the only code that
// writes an architecture's canonical string; everything else calls it.
//
// Token layout (docs/search_spaces.md):
//  * macro CNN, per layer i: filter_height, filter_width, num_filters,
//    [stride if strides are listed], [anchor if skip_connections and i > 0:
//    i tokens, 1 when layer j < i feeds layer i].
//  * cell: one token per edge (1<-0), (2<-0), (2<-1), (3<-0) ...: the
//    operation's index.
//  * recurrent cell: per tree node (2*base-1, breadth first): combination,
//    activation; then, with cell_inject: inject node index, inject
//    combination, inject activation, cell-output node index.
#ifndef NAS_SEARCH_SPACE_SEARCH_SPACE_H_
#define NAS_SEARCH_SPACE_SEARCH_SPACE_H_

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "proto/job.pb.h"
#include "proto/search_space.pb.h"

namespace nas::search_space {

// Limits every space and architecture must respect.
struct SpaceLimits {
  static constexpr int kMaxLayers = 64;
  static constexpr int kMaxFilterSize = 15;
  static constexpr int kMaxFilters = 1024;
  static constexpr int kMaxStride = 4;
  static constexpr int kMaxCellNodes = 16;
  static constexpr int kMaxCellsPerStage = 32;
  static constexpr int kMaxInitialChannels = 256;
  static constexpr int kMaxChoices = 64;
};

struct Decision {
  enum class Kind { kCategorical, kAnchor };
  Kind kind = Kind::kCategorical;
  // What is decided: "filter_height", "filter_width", "num_filters", "stride",
  // "operation", "combination", "activation", "node"; "anchor" for anchors.
  // Decisions of the same name share the controller's embedding and softmax.
  std::string name;
  // Categorical: number of choices. Anchor: number of earlier layers (one
  // 0/1 token each).
  int num_choices = 0;
  // Macro CNN layer (or tree node) the decision belongs to.
  int layer = 0;
};

// OK, or INVALID_ARGUMENT with one line per problem, each starting with the
// field path ("search_space.macro_cnn.filter_heights: must not be empty").
absl::Status ValidateSearchSpace(const v1::SearchSpace& space);

// Layers sampled after `samples` architectures under the depth schedule.
int LayersForSamples(const v1::MacroCnnSpace& space, int64_t samples);

// The decisions of an architecture with `num_layers` layers (macro CNN; the
// argument is ignored for other spaces).
std::vector<Decision> Decisions(const v1::SearchSpace& space, int num_layers);

// Number of tokens of a decision list.
int TokenCount(const std::vector<Decision>& decisions);

// Decodes tokens into an Architecture (tokens, readable form, canonical string).
absl::StatusOr<v1::Architecture> ArchitectureFromTokens(const v1::SearchSpace& space,
                                                        int num_layers,
                                                        const std::vector<int>& tokens);

// The number of layers an architecture has (macro CNN), else 0.
int NumLayers(const v1::Architecture& architecture);

// Checks an architecture against its space: its readable form uses only
// listed choices, inputs come from earlier layers, sizes are within limits, and
// its tokens decode to the same form. The message names the problem.
absl::Status ValidateArchitecture(const v1::SearchSpace& space,
                                  const v1::Architecture& architecture);

// Canonical string of the readable form:
//   macro CNN  "L0:3x3/36/s1/in[]|L1:5x5/64/s2/in[0]"   (in[] = the image)
//   cell       "|nor_conv_3x3~0|+|none~0|skip_connect~1|+|...~0|...~1|...~2|"
//   recurrent  "n0:add/tanh|n1:elem_mult/relu|...|inject:n3:add/tanh|out:n2"
std::string CanonicalString(const v1::Architecture& architecture);

// A uniformly random architecture (each anchor token 1 with probability 1/2).
v1::Architecture SampleUniform(const v1::SearchSpace& space, int num_layers,
                               std::mt19937_64& rng);

// `parent` with exactly one token changed (regularized evolution's mutation):
// a token is drawn uniformly among those whose decision has another choice
// (an operation or an edge's input for cells; a filter size, filter count,
// stride or one skip connection of an anchor for macro CNNs; a combination,
// activation or node index for recurrent cells) and set to a different
// choice, drawn uniformly. Keeps the parent's depth. INVALID_ARGUMENT when
// the parent does not belong to the space, FAILED_PRECONDITION when no
// decision has a second choice.
absl::StatusOr<v1::Architecture> MutateOneDecision(const v1::SearchSpace& space,
                                                   const v1::Architecture& parent,
                                                   std::mt19937_64& rng);

}  // namespace nas::search_space

#endif  // NAS_SEARCH_SPACE_SEARCH_SPACE_H_
