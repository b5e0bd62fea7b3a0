#include "search_space/child_size.h"

#include <algorithm>
#include <functional>
#include <set>
#include <limits>
#include <set>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "search_space/defaults.h"
#include "search_space/search_space.h"

namespace nas::search_space {
namespace {

constexpr int64_t kMax = std::numeric_limits<int64_t>::max();

// Output size of a "same"-padded convolution (padding kernel / 2).
int ConvOut(int size, int kernel, int stride) { return (size + 2 * (kernel / 2) - kernel) / stride + 1; }

// floats per image -> bytes per batch, saturating.
int64_t BatchBytes(int64_t floats_per_image, int batch_size) {
  const int64_t per_batch = int64_t{4} * batch_size;
  if (floats_per_image > kMax / per_batch) return kMax;
  return floats_per_image * per_batch;
}

absl::Status CheckMacro(const v1::MacroCnnArchitecture& arch) {
  if (arch.layers_size() < 1 || arch.layers_size() > SpaceLimits::kMaxLayers) {
    return absl::InvalidArgumentError(absl::StrCat("architecture has ", arch.layers_size(),
                                                   " layers; allowed 1..", SpaceLimits::kMaxLayers));
  }
  for (int i = 0; i < arch.layers_size(); ++i) {
    const v1::MacroCnnLayer& l = arch.layers(i);
    if (l.filter_height() < 1 || l.filter_width() < 1 || l.filter_height() > SpaceLimits::kMaxFilterSize ||
        l.filter_width() > SpaceLimits::kMaxFilterSize || l.num_filters() < 1 ||
        l.num_filters() > SpaceLimits::kMaxFilters || l.stride() < 0 || l.stride() > SpaceLimits::kMaxStride) {
      return absl::InvalidArgumentError(absl::StrCat("layer ", i, " has filter ", l.filter_height(), "x",
                                                     l.filter_width(), ", ", l.num_filters(),
                                                     " filters, stride ", l.stride(), ": out of range"));
    }
    for (int j : l.inputs()) {
      if (j < 0 || j >= i) {
        return absl::InvalidArgumentError(
            absl::StrCat("layer ", i, " takes input from layer ", j, ", which is not an earlier layer"));
      }
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<ChildSize> MacroSize(const v1::MacroCnnArchitecture& arch, const ImageShape& input,
                                    int batch_size) {
  if (absl::Status s = CheckMacro(arch); !s.ok()) return s;
  const int n = arch.layers_size();
  std::vector<int64_t> channels(n), heights(n), widths(n);
  std::vector<bool> consumed(n, false);
  int64_t parameters = 0;
  int64_t floats = int64_t{input.channels} * input.height * input.width;  // the input batch
  for (int i = 0; i < n; ++i) {
    const v1::MacroCnnLayer& l = arch.layers(i);
    int64_t cin = input.channels, h = input.height, w = input.width;
    if (!l.inputs().empty()) {
      cin = h = w = 0;
      for (int j : l.inputs()) {
        cin += channels[j];
        h = std::max(h, heights[j]);
        w = std::max(w, widths[j]);
        consumed[j] = true;
      }
      if (l.inputs_size() > 1) floats += cin * h * w;  // the concatenation
    }
    const int stride = std::max(1, l.stride());
    const int64_t f = l.num_filters();
    const int64_t ho = ConvOut(static_cast<int>(h), l.filter_height(), stride);
    const int64_t wo = ConvOut(static_cast<int>(w), l.filter_width(), stride);
    parameters += int64_t{l.filter_height()} * l.filter_width() * cin * f + 2 * f;  // conv + batch norm
    floats += 3 * f * ho * wo;                                                        // conv, norm, ReLU
    channels[i] = f;
    heights[i] = ho;
    widths[i] = wo;
  }
  int64_t features = 0, outputs = 0;
  for (int i = 0; i < n; ++i) {
    if (!consumed[i]) {
      features += channels[i];
      ++outputs;
    }
  }
  parameters += features * input.classes + input.classes;
  floats += features * (outputs > 1 ? 2 : 1) + input.classes;
  return ChildSize{parameters, BatchBytes(floats, batch_size)};
}

// Tensors one edge operation leaves per cell node (see the header) and its
// parameters at `c` channels.
int EdgeTensors(const std::string& op) {
  if (op == "skip_connect") return 1;
  if (op == "avg_pool_3x3") return 2;
  if (op == "nor_conv_1x1" || op == "nor_conv_3x3") return 4;
  return 0;  // none
}
int64_t EdgeParameters(const std::string& op, int64_t c) {
  if (op == "nor_conv_1x1") return c * c + 2 * c;
  if (op == "nor_conv_3x3") return 9 * c * c + 2 * c;
  return 0;
}

// The cell network around its cells (stem, reductions, final norm,
// classifier) with `cell_parameters(c)` weights per cell at c channels and
// `cell_tensors` maps of c x h x w per cell kept for backward.
absl::StatusOr<ChildSize> CellNetworkSize(const v1::CellSpace& space_cell, const ImageShape& input,
                                          int batch_size,
                                          const std::function<int64_t(int64_t)>& cell_parameters,
                                          int64_t cell_tensors) {
  const v1::CellSpace shape = WithCellDefaults(space_cell);
  if (shape.cells_per_stage() < 1 || shape.cells_per_stage() > SpaceLimits::kMaxCellsPerStage ||
      shape.initial_channels() < 1 || shape.initial_channels() > SpaceLimits::kMaxInitialChannels) {
    return absl::InvalidArgumentError(absl::StrCat(
        "cell network of ", shape.cells_per_stage(), " cells per stage and ", shape.initial_channels(),
        " initial channels: allowed 1..", SpaceLimits::kMaxCellsPerStage, " and 1..",
        SpaceLimits::kMaxInitialChannels));
  }
  int64_t c = shape.initial_channels(), h = input.height, w = input.width;
  const int64_t cin = input.channels;
  int64_t parameters = 9 * cin * c + 2 * c;                      // stem conv + norm
  int64_t floats = cin * h * w + 2 * c * h * w;                  // input, stem conv and norm
  for (int stage = 0; stage < 3; ++stage) {
    if (stage > 0) {
      const int64_t out = 2 * c, ho = (h + 1) / 2, wo = (w + 1) / 2;
      parameters += (9 * c * out + 2 * out) + (9 * out * out + 2 * out) + c * out;
      // pooled input, ReLU of the input, then 7 maps at the new size: the
      // shortcut conv, conv + norm, ReLU + conv + norm, the sum.
      floats += c * ho * wo + c * h * w + 7 * out * ho * wo;
      c = out;
      h = ho;
      w = wo;
    }
    parameters += shape.cells_per_stage() * cell_parameters(c);
    floats += shape.cells_per_stage() * cell_tensors * c * h * w;
  }
  parameters += 2 * c + c * input.classes + input.classes;  // final norm + classifier
  floats += 2 * c * h * w + c + input.classes;
  return ChildSize{parameters, BatchBytes(floats, batch_size)};
}

absl::StatusOr<ChildSize> CellSize(const v1::CellArchitecture& cell, const v1::CellSpace& space_cell,
                                   const ImageShape& input, int batch_size) {
  if (cell.num_nodes() < 2 || cell.num_nodes() > SpaceLimits::kMaxCellNodes ||
      cell.edge_operations_size() != cell.num_nodes() * (cell.num_nodes() - 1) / 2) {
    return absl::InvalidArgumentError("cell: num_nodes and edge_operations do not agree");
  }
  for (const std::string& op : cell.edge_operations()) {
    if (op != "none" && op != "skip_connect" && op != "nor_conv_1x1" && op != "nor_conv_3x3" &&
        op != "avg_pool_3x3") {
      return absl::InvalidArgumentError(absl::StrCat(
          "cell operation '", op,
          "' cannot be trained (known: none, skip_connect, nor_conv_1x1, nor_conv_3x3, avg_pool_3x3)"));
    }
  }
  int64_t cell_tensors = cell.num_nodes() - 1;  // each node's zero tensor
  for (const std::string& op : cell.edge_operations()) cell_tensors += EdgeTensors(op);
  return CellNetworkSize(
      space_cell, input, batch_size,
      [&cell](int64_t c) {
        int64_t parameters = 0;
        for (const std::string& op : cell.edge_operations()) parameters += EdgeParameters(op, c);
        return parameters;
      },
      cell_tensors);
}

absl::Status CheckShape(const ImageShape& input, int batch_size) {
  if (input.channels < 1 || input.height < 1 || input.width < 1 || input.classes < 1 ||
      input.channels > 64 || input.height > 4096 || input.width > 4096 || input.classes > 1'000'000) {
    return absl::InvalidArgumentError(absl::StrCat("image shape ", input.channels, "x", input.height, "x",
                                                   input.width, " with ", input.classes,
                                                   " classes is out of range"));
  }
  if (batch_size < 1) return absl::InvalidArgumentError(absl::StrCat("batch size ", batch_size, " < 1"));
  return absl::OkStatus();
}

// The deepest macro CNN the depth schedule reaches.
int DeepestMacro(const v1::MacroCnnSpace& m) {
  const v1::DepthSchedule& d = m.depth();
  if (d.layers_increment() > 0 && d.samples_per_increment() > 0) {
    return std::max(d.max_layers(), d.initial_layers());
  }
  return d.initial_layers();
}

template <typename List>
int MaxOf(const List& list, int fallback) {
  return list.empty() ? fallback : *std::max_element(list.begin(), list.end());
}
template <typename List>
int MinOf(const List& list, int fallback) {
  return list.empty() ? fallback : *std::min_element(list.begin(), list.end());
}
// The kernel whose "same" convolution gives the largest output: an even one
// when listed (one row more than an odd one).
template <typename List>
int WidestOutputKernel(const List& list) {
  for (int k : list) {
    if (k % 2 == 0) return k;
  }
  return MaxOf(list, 1);
}

absl::StatusOr<ChildSize> LargestMacro(const v1::MacroCnnSpace& m, const ImageShape& input, int batch_size) {
  const int n = DeepestMacro(m);
  if (n < 1 || n > SpaceLimits::kMaxLayers || m.filter_heights().empty() || m.filter_widths().empty() ||
      m.num_filters().empty()) {
    return absl::InvalidArgumentError("macro CNN space does not validate");
  }
  const int f = MaxOf(m.num_filters(), 1);
  const int stride = MinOf(m.strides(), 1);
  // Parameters: each layer's conv has fh * fw * (input channels) * f
  // weights, so every layer takes the largest kernel and f filters. With
  // skip connections, what remains is which layers feed later ones: a layer
  // that feeds any later layer best feeds all of them (every edge adds
  // weights) and leaves the classifier (classes * f weights less). Given the
  // first such layer m0 (layers up to m0 read the image), each later layer
  // feeds the rest exactly when that adds more than the classifier loses;
  // every m0 is tried.
  const int kh = MaxOf(m.filter_heights(), 1), kw = MaxOf(m.filter_widths(), 1);
  auto layer = [&](v1::MacroCnnArchitecture& arch, int fh, int fw) {
    v1::MacroCnnLayer* l = arch.add_layers();
    l->set_filter_height(fh);
    l->set_filter_width(fw);
    l->set_num_filters(f);
    l->set_stride(stride);
    return l;
  };
  int64_t parameters = 0;
  if (!m.skip_connections()) {
    v1::MacroCnnArchitecture chain;
    for (int i = 0; i < n; ++i) {
      v1::MacroCnnLayer* l = layer(chain, kh, kw);
      if (i > 0) l->add_inputs(i - 1);
    }
    absl::StatusOr<ChildSize> size = MacroSize(chain, input, batch_size);
    if (!size.ok()) return size.status();
    parameters = size->parameters;
  } else {
    for (int first = -1; first < n - 1; ++first) {
      std::vector<bool> feeds(n, false);
      if (first >= 0) feeds[first] = true;
      for (int j = first + 1; first >= 0 && j < n - 1; ++j) {
        feeds[j] = int64_t{kh} * kw * f * (n - 1 - j) > input.classes;
      }
      v1::MacroCnnArchitecture arch;
      for (int i = 0; i < n; ++i) {
        v1::MacroCnnLayer* l = layer(arch, kh, kw);
        for (int j = 0; j < i; ++j) {
          if (feeds[j]) l->add_inputs(j);
        }
      }
      absl::StatusOr<ChildSize> size = MacroSize(arch, input, batch_size);
      if (!size.ok()) return size.status();
      parameters = std::max(parameters, size->parameters);
    }
  }
  // Activations: every term grows with the maps' sizes and channels, so the
  // largest is the child with the most filters, the smallest stride, the
  // kernels with the widest outputs and (with skip connections) every layer
  // feeding every later one. Its pooled features are counted as if every
  // layer were an output.
  v1::MacroCnnArchitecture widest;
  for (int i = 0; i < n; ++i) {
    v1::MacroCnnLayer* l = layer(widest, WidestOutputKernel(m.filter_heights()),
                                 WidestOutputKernel(m.filter_widths()));
    for (int j = m.skip_connections() ? 0 : i - 1; i > 0 && j < i; ++j) l->add_inputs(j);
  }
  absl::StatusOr<ChildSize> size = MacroSize(widest, input, batch_size);
  if (!size.ok()) return size.status();
  const int64_t pooled_bytes = BatchBytes(int64_t{2} * n * f, batch_size);
  return ChildSize{parameters, std::min(kMax - pooled_bytes, size->activation_bytes) + pooled_bytes};
}

absl::StatusOr<ChildSize> LargestCell(const v1::CellSpace& c, const ImageShape& input, int batch_size) {
  if (c.num_nodes() < 2 || c.num_nodes() > SpaceLimits::kMaxCellNodes || c.operations().empty()) {
    return absl::InvalidArgumentError("cell space does not validate");
  }
  // Every edge chooses on its own: the operation with the most parameters
  // for one, the one leaving the most tensors for the other.
  std::string most_parameters = c.operations(0), most_tensors = c.operations(0);
  for (const std::string& op : c.operations()) {
    if (EdgeParameters(op, 1) > EdgeParameters(most_parameters, 1)) most_parameters = op;
    if (EdgeTensors(op) > EdgeTensors(most_tensors)) most_tensors = op;
  }
  const int edges = c.num_nodes() * (c.num_nodes() - 1) / 2;
  v1::CellArchitecture by_parameters, by_tensors;
  by_parameters.set_num_nodes(c.num_nodes());
  by_tensors.set_num_nodes(c.num_nodes());
  for (int e = 0; e < edges; ++e) {
    by_parameters.add_edge_operations(most_parameters);
    by_tensors.add_edge_operations(most_tensors);
  }
  absl::StatusOr<ChildSize> p = CellSize(by_parameters, c, input, batch_size);
  if (!p.ok()) return p.status();
  absl::StatusOr<ChildSize> a = CellSize(by_tensors, c, input, batch_size);
  if (!a.ok()) return a.status();
  return ChildSize{p->parameters, a->activation_bytes};
}

}  // namespace

absl::StatusOr<ImageShape> DatasetImageShape(const std::string& dataset) {
  if (dataset == "fashion_mnist" || dataset == "mnist") return ImageShape{1, 28, 28, 10};
  if (dataset == "cifar10") return ImageShape{3, 32, 32, 10};
  return absl::InvalidArgumentError(absl::StrCat("unknown dataset '", dataset, "'"));
}

int64_t ChildSize::MemoryBytes() const {
  const int64_t weights = parameters > kMax / 16 ? kMax : parameters * 16;
  return activation_bytes > kMax - weights ? kMax : activation_bytes + weights;
}

std::string FormatBytes(int64_t bytes) {
  if (bytes >= (int64_t{1} << 30)) return absl::StrFormat("%.1f GiB", bytes / double(int64_t{1} << 30));
  if (bytes >= (int64_t{1} << 20)) return absl::StrFormat("%.1f MiB", bytes / double(int64_t{1} << 20));
  return absl::StrCat(bytes, " bytes");
}

std::string ChildSize::ToString() const {
  return absl::StrCat(parameters, " parameters, ", FormatBytes(activation_bytes),
                      " of activations per batch");
}

absl::StatusOr<ChildSize> EstimateChildSize(const v1::Architecture& architecture, const v1::SearchSpace& space,
                                            const ImageShape& input, int batch_size) {
  if (absl::Status s = CheckShape(input, batch_size); !s.ok()) return s;
  if (architecture.has_macro_cnn()) return MacroSize(architecture.macro_cnn(), input, batch_size);
  if (architecture.has_cell()) return CellSize(architecture.cell(), space.cell(), input, batch_size);
  if (architecture.has_recurrent_cell()) {
    return absl::InvalidArgumentError(
        "a recurrent cell is trained in a language model: its size is EstimateRecurrentChildSize's");
  }
  return absl::InvalidArgumentError("architecture has no readable form");
}

int MacroSupernetLayers(const v1::MacroCnnSpace& space) { return DeepestMacro(space); }

absl::StatusOr<ChildSize> EstimateMacroSupernetSize(const v1::SearchSpace& space, const ImageShape& input,
                                                    int batch_size) {
  if (!space.has_macro_cnn()) {
    return absl::InvalidArgumentError("search_space: a macro-CNN supernet needs a macro_cnn space");
  }
  absl::StatusOr<ChildSize> largest = LargestChildSize(space, input, batch_size);
  if (!largest.ok()) return largest.status();
  const v1::MacroCnnSpace& m = space.macro_cnn();
  const int64_t layers = DeepestMacro(m);
  const int64_t widest = MaxOf(m.num_filters(), 1);
  const std::set<int> heights(m.filter_heights().begin(), m.filter_heights().end());
  const std::set<int> widths(m.filter_widths().begin(), m.filter_widths().end());
  const std::set<int> filters(m.num_filters().begin(), m.num_filters().end());
  const auto mul = [](int64_t x, int64_t y) { return x != 0 && y > kMax / x ? kMax : x * y; };
  int64_t kernels = 0, filter_sum = 0;
  for (int h : heights) {
    for (int w : widths) kernels += int64_t{h} * w;
  }
  for (int f : filters) filter_sum += f;
  int64_t parameters = 0;
  for (int64_t i = 0; i < layers; ++i) {
    const int64_t in = input.channels + i * widest;
    // Every (fh, fw, f): f * in * fh * fw conv weights and 2f batch norm.
    const int64_t layer = mul(mul(filter_sum, in), kernels);
    const int64_t norms = mul(2 * filter_sum, static_cast<int64_t>(heights.size() * widths.size()));
    parameters = std::min(kMax - layer, parameters) + layer;
    parameters = std::min(kMax - norms, parameters) + norms;
  }
  const int64_t classifier = mul(layers * widest, input.classes) + input.classes;
  parameters = std::min(kMax - classifier, parameters) + classifier;
  return ChildSize{parameters, largest->activation_bytes};
}

absl::StatusOr<ChildSize> LargestChildSize(const v1::SearchSpace& space, const ImageShape& input,
                                           int batch_size) {
  if (absl::Status s = CheckShape(input, batch_size); !s.ok()) return s;
  if (space.has_macro_cnn()) return LargestMacro(space.macro_cnn(), input, batch_size);
  if (space.has_cell()) return LargestCell(space.cell(), input, batch_size);
  if (space.has_recurrent_cell()) {
    return absl::InvalidArgumentError(
        "a recurrent cell is trained in a language model: its size is LargestRecurrentChildSize's");
  }
  return absl::InvalidArgumentError("search space has no kind");
}

absl::StatusOr<ChildSize> EstimateSupernetSize(const v1::SearchSpace& space, const ImageShape& input,
                                               int batch_size, bool all_operations_run) {
  if (absl::Status s = CheckShape(input, batch_size); !s.ok()) return s;
  if (space.has_macro_cnn()) {
    if (all_operations_run) {
      return absl::InvalidArgumentError(
          "a macro-CNN supernet runs one sampled child at a time: DARTS' mixed net takes a cell space");
    }
    return EstimateMacroSupernetSize(space, input, batch_size);
  }
  if (!space.has_cell()) {
    return absl::InvalidArgumentError(
        "one-shot search takes a cell or macro_cnn space (a recurrent_cell space has no supernet)");
  }
  const v1::CellSpace& c = space.cell();
  if (c.num_nodes() < 2 || c.num_nodes() > SpaceLimits::kMaxCellNodes || c.operations().empty()) {
    return absl::InvalidArgumentError("cell space does not validate");
  }
  // The supernet holds each distinct operation once per edge.
  const std::set<std::string> operations(c.operations().begin(), c.operations().end());
  const int64_t edges = int64_t{c.num_nodes()} * (c.num_nodes() - 1) / 2;
  int64_t edge_tensors = 0;
  if (all_operations_run) {
    // Every operation's steps and sum (EdgeTensors) and its output scaled by
    // its softmax weight.
    for (const std::string& op : operations) edge_tensors += EdgeTensors(op) + 1;
  } else {
    // One child at a time: the operation leaving the most tensors.
    for (const std::string& op : operations) edge_tensors = std::max<int64_t>(edge_tensors, EdgeTensors(op));
  }
  return CellNetworkSize(
      c, input, batch_size,
      [&](int64_t channels) {
        int64_t per_edge = 0;
        for (const std::string& op : operations) per_edge += EdgeParameters(op, channels);
        return edges * per_edge;
      },
      (c.num_nodes() - 1) + edges * edge_tensors);
}

namespace {

bool ValidBase(int base) { return base == 2 || base == 4 || base == 8 || base == 16; }

bool Known(const std::string& name, std::initializer_list<const char*> names) {
  for (const char* n : names) {
    if (name == n) return true;
  }
  return false;
}

bool KnownCombination(const std::string& name) { return Known(name, {"add", "elem_mult"}); }
bool KnownActivation(const std::string& name) { return Known(name, {"identity", "tanh", "sigmoid", "relu"}); }

int64_t SaturatingMul(int64_t a, int64_t b) { return a != 0 && b > kMax / a ? kMax : a * b; }

// Floats one token keeps alive (see EstimateRecurrentChildSize).
int64_t RecurrentFloatsPerToken(int base, bool inject, const LanguageModelShape& shape) {
  const int64_t e = shape.embedding_size, h = shape.hidden_size, v = shape.vocabulary;
  return 2 * e + 2 * base * h + (2 * base - 1) * 2 * h + (inject ? 2 * h : 0) + 2 * h + 2 * v;
}

ChildSize RecurrentSize(int base, bool inject, const LanguageModelShape& shape, int batch_size) {
  const int64_t tokens = int64_t{shape.bptt_steps} * batch_size;
  return ChildSize{RecurrentLmParameters(base, shape),
                   SaturatingMul(SaturatingMul(RecurrentFloatsPerToken(base, inject, shape), tokens), 4)};
}

}  // namespace

absl::Status CheckLanguageModelShape(int base, const LanguageModelShape& shape) {
  if (!ValidBase(base)) return absl::InvalidArgumentError(absl::StrCat("base must be 2, 4, 8 or 16, got ", base));
  if (shape.vocabulary < 1 || shape.vocabulary > kMaxVocabulary) {
    return absl::InvalidArgumentError(
        absl::StrCat("vocabulary must be in [1, ", kMaxVocabulary, "], got ", shape.vocabulary));
  }
  if (shape.embedding_size < 1 || shape.embedding_size > kMaxRecurrentSize) {
    return absl::InvalidArgumentError(
        absl::StrCat("embedding_size must be in [1, ", kMaxRecurrentSize, "], got ", shape.embedding_size));
  }
  if (shape.hidden_size < 1 || shape.hidden_size > kMaxRecurrentSize) {
    return absl::InvalidArgumentError(
        absl::StrCat("hidden_size must be in [1, ", kMaxRecurrentSize, "], got ", shape.hidden_size));
  }
  if (shape.bptt_steps < 1 || shape.bptt_steps > kMaxBpttSteps) {
    return absl::InvalidArgumentError(
        absl::StrCat("bptt_steps must be in [1, ", kMaxBpttSteps, "], got ", shape.bptt_steps));
  }
  if (shape.tie_weights && shape.embedding_size != shape.hidden_size) {
    return absl::InvalidArgumentError(absl::StrCat("tie_weights needs embedding_size (", shape.embedding_size,
                                                   ") == hidden_size (", shape.hidden_size, ")"));
  }
  return absl::OkStatus();
}

int64_t RecurrentLmParameters(int base, const LanguageModelShape& shape) {
  const int64_t v = shape.vocabulary, e = shape.embedding_size, h = shape.hidden_size, b = base;
  return v * e + (e * b * h + b * h) + h * b * h + (shape.tie_weights ? 0 : v * h) + v;
}

absl::Status CheckRecurrentCell(const v1::RecurrentCellArchitecture& cell) {
  const int nodes = cell.nodes_size();
  if (!ValidBase((nodes + 1) / 2) || nodes % 2 == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("recurrent cell has ", nodes, " tree nodes; a tree of base 2, 4, 8 or 16 has 3, 7, 15 or 31"));
  }
  for (int n = 0; n < nodes; ++n) {
    if (!KnownCombination(cell.nodes(n).combination()) || !KnownActivation(cell.nodes(n).activation())) {
      return absl::InvalidArgumentError(absl::StrCat("recurrent cell node ", n, " has combination '",
                                                     cell.nodes(n).combination(), "' and activation '",
                                                     cell.nodes(n).activation(),
                                                     "'; known: add, elem_mult; identity, tanh, sigmoid, relu"));
    }
  }
  const int inject = cell.cell_inject_node(), output = cell.cell_output_node();
  if (inject == -1 && output == -1) return absl::OkStatus();
  if (inject < 0 || inject >= nodes || output < 0 || output >= nodes) {
    return absl::InvalidArgumentError(absl::StrCat("recurrent cell's cell_inject_node (", inject,
                                                   ") and cell_output_node (", output,
                                                   ") must both be -1 or both in [0, ", nodes, ")"));
  }
  if (!KnownCombination(cell.cell_inject_combination()) || !KnownActivation(cell.cell_inject_activation())) {
    return absl::InvalidArgumentError(absl::StrCat("recurrent cell's injection has combination '",
                                                   cell.cell_inject_combination(), "' and activation '",
                                                   cell.cell_inject_activation(), "'"));
  }
  return absl::OkStatus();
}

absl::StatusOr<ChildSize> EstimateRecurrentChildSize(const v1::Architecture& architecture,
                                                     const LanguageModelShape& shape, int batch_size) {
  if (!architecture.has_recurrent_cell()) return absl::InvalidArgumentError("architecture is not a recurrent cell");
  const v1::RecurrentCellArchitecture& cell = architecture.recurrent_cell();
  if (absl::Status s = CheckRecurrentCell(cell); !s.ok()) return s;
  const int base = (cell.nodes_size() + 1) / 2;
  if (absl::Status s = CheckLanguageModelShape(base, shape); !s.ok()) return s;
  if (batch_size < 1) return absl::InvalidArgumentError(absl::StrCat("batch size must be >= 1, got ", batch_size));
  return RecurrentSize(base, cell.cell_inject_node() >= 0, shape, batch_size);
}

absl::StatusOr<ChildSize> LargestRecurrentChildSize(const v1::SearchSpace& space, const LanguageModelShape& shape,
                                                    int batch_size) {
  if (!space.has_recurrent_cell()) return absl::InvalidArgumentError("search space is not a recurrent cell space");
  const int base = space.recurrent_cell().base();
  if (absl::Status s = CheckLanguageModelShape(base, shape); !s.ok()) return s;
  if (batch_size < 1) return absl::InvalidArgumentError(absl::StrCat("batch size must be >= 1, got ", batch_size));
  return RecurrentSize(base, space.recurrent_cell().cell_inject(), shape, batch_size);
}

}  // namespace nas::search_space
