#include "search_space/search_space.h"

#include <algorithm>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/status_macros.h"
#include "search_space/defaults.h"

namespace nas::search_space {
namespace {

// The operations a cell edge may choose: the five of NAS-Bench-201, which the
// worker's cell networks build (worker/child_net.cc), `nasctl export` writes
// as PyTorch, and lookup tables in that format name.
const std::vector<std::string>& KnownCellOperations() {
  static const auto* names = new std::vector<std::string>{"none", "skip_connect", "nor_conv_1x1",
                                                          "nor_conv_3x3", "avg_pool_3x3"};
  return *names;
}
const std::vector<std::string>& KnownCombinations() {
  static const auto* names = new std::vector<std::string>{"add", "elem_mult"};
  return *names;
}
const std::vector<std::string>& KnownActivations() {
  static const auto* names = new std::vector<std::string>{"identity", "tanh", "sigmoid", "relu"};
  return *names;
}

class Problems {
 public:
  void Add(const std::string& path, const std::string& problem) {
    lines_.push_back(absl::StrCat(path, ": ", problem));
  }
  absl::Status ToStatus() const {
    if (lines_.empty()) return absl::OkStatus();
    return absl::InvalidArgumentError(absl::StrJoin(lines_, "\n"));
  }

 private:
  std::vector<std::string> lines_;
};

template <typename List>
void CheckIntChoices(const std::string& path, const List& values, int low, int high,
                     bool may_be_empty, Problems& p) {
  if (values.empty()) {
    if (!may_be_empty) p.Add(path, "must not be empty");
    return;
  }
  if (values.size() > SpaceLimits::kMaxChoices) {
    p.Add(path, absl::StrCat("at most ", SpaceLimits::kMaxChoices, " choices"));
  }
  std::set<int> seen;
  for (int v : values) {
    if (v < low || v > high) {
      p.Add(path, absl::StrCat("every value must be in [", low, ", ", high, "], got ", v));
    }
    if (!seen.insert(v).second) p.Add(path, absl::StrCat("duplicate choice ", v));
  }
}

template <typename List>
void CheckNameChoices(const std::string& path, const List& values,
                      const std::vector<std::string>* known, Problems& p) {
  if (values.empty()) {
    p.Add(path, "must not be empty");
    return;
  }
  if (values.size() > SpaceLimits::kMaxChoices) {
    p.Add(path, absl::StrCat("at most ", SpaceLimits::kMaxChoices, " choices"));
  }
  std::set<std::string> seen;
  for (const std::string& v : values) {
    if (v.empty() || v.size() > 64) p.Add(path, "names must be 1..64 characters");
    if (v.find_first_of("|~+,\"\n") != std::string::npos) {
      p.Add(path, absl::StrCat("'", v, "' contains one of | ~ + , \" or a newline"));
    }
    if (known != nullptr && std::find(known->begin(), known->end(), v) == known->end()) {
      p.Add(path, absl::StrCat("unknown '", v, "' (known: ", absl::StrJoin(*known, ", "), ")"));
    }
    if (!seen.insert(v).second) p.Add(path, absl::StrCat("duplicate choice '", v, "'"));
  }
}

int TreeNodes(const v1::RecurrentCellSpace& space) { return 2 * space.base() - 1; }

int CellEdges(const v1::CellSpace& space) { return space.num_nodes() * (space.num_nodes() - 1) / 2; }

}  // namespace

absl::Status ValidateSearchSpace(const v1::SearchSpace& space) {
  Problems p;
  switch (space.space_case()) {
    case v1::SearchSpace::kMacroCnn: {
      const v1::MacroCnnSpace& m = space.macro_cnn();
      const std::string base = "search_space.macro_cnn.";
      CheckIntChoices(base + "filter_heights", m.filter_heights(), 1, SpaceLimits::kMaxFilterSize,
                      false, p);
      CheckIntChoices(base + "filter_widths", m.filter_widths(), 1, SpaceLimits::kMaxFilterSize,
                      false, p);
      CheckIntChoices(base + "num_filters", m.num_filters(), 1, SpaceLimits::kMaxFilters, false, p);
      CheckIntChoices(base + "strides", m.strides(), 1, SpaceLimits::kMaxStride, true, p);
      const v1::DepthSchedule& d = m.depth();
      if (d.initial_layers() < 1 || d.initial_layers() > SpaceLimits::kMaxLayers) {
        p.Add(base + "depth.initial_layers",
              absl::StrCat("must be in [1, ", SpaceLimits::kMaxLayers, "], got ", d.initial_layers()));
      }
      if (d.max_layers() < d.initial_layers() || d.max_layers() > SpaceLimits::kMaxLayers) {
        p.Add(base + "depth.max_layers",
              absl::StrCat("must be in [initial_layers, ", SpaceLimits::kMaxLayers, "], got ",
                           d.max_layers()));
      }
      if (d.layers_increment() < 0) p.Add(base + "depth.layers_increment", "must be >= 0");
      if (d.layers_increment() > 0 && d.samples_per_increment() <= 0) {
        p.Add(base + "depth.samples_per_increment", "must be > 0 when layers_increment is set");
      }
      break;
    }
    case v1::SearchSpace::kCell: {
      const v1::CellSpace& c = space.cell();
      if (c.num_nodes() < 2 || c.num_nodes() > SpaceLimits::kMaxCellNodes) {
        p.Add("search_space.cell.num_nodes",
              absl::StrCat("must be in [2, ", SpaceLimits::kMaxCellNodes, "], got ", c.num_nodes()));
      }
      CheckNameChoices("search_space.cell.operations", c.operations(), &KnownCellOperations(),
                       p);
      if (c.cells_per_stage() < 0 || c.cells_per_stage() > SpaceLimits::kMaxCellsPerStage) {
        p.Add("search_space.cell.cells_per_stage",
              absl::StrCat("must be in [0, ", SpaceLimits::kMaxCellsPerStage, "] (0 = ", kDefaultCellsPerStage, ")"));
      }
      if (c.initial_channels() < 0 || c.initial_channels() > SpaceLimits::kMaxInitialChannels) {
        p.Add("search_space.cell.initial_channels",
              absl::StrCat("must be in [0, ", SpaceLimits::kMaxInitialChannels, "] (0 = ", kDefaultInitialChannels, ")"));
      }
      break;
    }
    case v1::SearchSpace::kRecurrentCell: {
      const v1::RecurrentCellSpace& r = space.recurrent_cell();
      if (r.base() != 2 && r.base() != 4 && r.base() != 8 && r.base() != 16) {
        p.Add("search_space.recurrent_cell.base", absl::StrCat("must be 2, 4, 8 or 16, got ", r.base()));
      }
      CheckNameChoices("search_space.recurrent_cell.combinations", r.combinations(),
                       &KnownCombinations(), p);
      CheckNameChoices("search_space.recurrent_cell.activations", r.activations(),
                       &KnownActivations(), p);
      break;
    }
    case v1::SearchSpace::SPACE_NOT_SET:
      p.Add("search_space", "one of macro_cnn, cell or recurrent_cell must be set");
      break;
  }
  return p.ToStatus();
}

int LayersForSamples(const v1::MacroCnnSpace& space, int64_t samples) {
  const v1::DepthSchedule& d = space.depth();
  int64_t layers = d.initial_layers();
  if (d.layers_increment() > 0 && d.samples_per_increment() > 0) {
    layers += d.layers_increment() * (samples / d.samples_per_increment());
  }
  return static_cast<int>(std::min<int64_t>(layers, std::max(d.max_layers(), d.initial_layers())));
}

std::vector<Decision> Decisions(const v1::SearchSpace& space, int num_layers) {
  std::vector<Decision> out;
  using Kind = Decision::Kind;
  if (space.has_macro_cnn()) {
    const v1::MacroCnnSpace& m = space.macro_cnn();
    for (int i = 0; i < num_layers; ++i) {
      out.push_back({Kind::kCategorical, "filter_height", m.filter_heights_size(), i});
      out.push_back({Kind::kCategorical, "filter_width", m.filter_widths_size(), i});
      out.push_back({Kind::kCategorical, "num_filters", m.num_filters_size(), i});
      if (m.strides_size() > 0) out.push_back({Kind::kCategorical, "stride", m.strides_size(), i});
      if (m.skip_connections() && i > 0) out.push_back({Kind::kAnchor, "anchor", i, i});
    }
  } else if (space.has_cell()) {
    const int edges = CellEdges(space.cell());
    for (int e = 0; e < edges; ++e) {
      out.push_back({Kind::kCategorical, "operation", space.cell().operations_size(), e});
    }
  } else if (space.has_recurrent_cell()) {
    const v1::RecurrentCellSpace& r = space.recurrent_cell();
    const int nodes = TreeNodes(r);
    for (int n = 0; n < nodes; ++n) {
      out.push_back({Kind::kCategorical, "combination", r.combinations_size(), n});
      out.push_back({Kind::kCategorical, "activation", r.activations_size(), n});
    }
    if (r.cell_inject()) {
      out.push_back({Kind::kCategorical, "node", nodes, nodes});
      out.push_back({Kind::kCategorical, "combination", r.combinations_size(), nodes});
      out.push_back({Kind::kCategorical, "activation", r.activations_size(), nodes});
      out.push_back({Kind::kCategorical, "node", nodes, nodes + 1});
    }
  }
  return out;
}

int TokenCount(const std::vector<Decision>& decisions) {
  int n = 0;
  for (const Decision& d : decisions) n += d.kind == Decision::Kind::kAnchor ? d.num_choices : 1;
  return n;
}

int NumLayers(const v1::Architecture& architecture) {
  return architecture.has_macro_cnn() ? architecture.macro_cnn().layers_size() : 0;
}

absl::StatusOr<v1::Architecture> ArchitectureFromTokens(const v1::SearchSpace& space,
                                                        int num_layers,
                                                        const std::vector<int>& tokens) {
  const std::vector<Decision> decisions = Decisions(space, num_layers);
  if (static_cast<int>(tokens.size()) != TokenCount(decisions)) {
    return absl::InvalidArgumentError(absl::StrCat("architecture has ", tokens.size(),
                                                   " tokens; the space needs ",
                                                   TokenCount(decisions)));
  }
  v1::Architecture arch;
  arch.mutable_tokens()->Assign(tokens.begin(), tokens.end());
  size_t t = 0;
  auto next = [&](const Decision& d) -> absl::StatusOr<int> {
    const int v = tokens[t++];
    if (v < 0 || v >= d.num_choices) {
      return absl::InvalidArgumentError(absl::StrCat("token ", t - 1, " (", d.name, ") is ", v,
                                                     "; must be in [0, ", d.num_choices, ")"));
    }
    return v;
  };
  if (space.has_macro_cnn()) {
    const v1::MacroCnnSpace& m = space.macro_cnn();
    v1::MacroCnnArchitecture* out = arch.mutable_macro_cnn();
    for (int i = 0; i < num_layers; ++i) {
      v1::MacroCnnLayer* layer = out->add_layers();
      layer->set_stride(1);
      if (!m.skip_connections() && i > 0) layer->add_inputs(i - 1);
    }
    for (const Decision& d : decisions) {
      v1::MacroCnnLayer* layer = out->mutable_layers(d.layer);
      if (d.kind == Decision::Kind::kAnchor) {
        for (int j = 0; j < d.num_choices; ++j) {
          const int bit = tokens[t++];
          if (bit != 0 && bit != 1) {
            return absl::InvalidArgumentError(
                absl::StrCat("anchor token of layer ", d.layer, " is ", bit, "; must be 0 or 1"));
          }
          if (bit == 1) layer->add_inputs(j);
        }
        continue;
      }
      ASSIGN_OR_RETURN(int v, next(d));
      if (d.name == "filter_height") layer->set_filter_height(m.filter_heights(v));
      if (d.name == "filter_width") layer->set_filter_width(m.filter_widths(v));
      if (d.name == "num_filters") layer->set_num_filters(m.num_filters(v));
      if (d.name == "stride") layer->set_stride(m.strides(v));
    }
  } else if (space.has_cell()) {
    v1::CellArchitecture* out = arch.mutable_cell();
    out->set_num_nodes(space.cell().num_nodes());
    for (const Decision& d : decisions) {
      ASSIGN_OR_RETURN(int v, next(d));
      out->add_edge_operations(space.cell().operations(v));
    }
  } else if (space.has_recurrent_cell()) {
    const v1::RecurrentCellSpace& r = space.recurrent_cell();
    v1::RecurrentCellArchitecture* out = arch.mutable_recurrent_cell();
    const int nodes = TreeNodes(r);
    out->set_cell_inject_node(-1);
    out->set_cell_output_node(-1);
    for (size_t i = 0; i < decisions.size(); ++i) {
      const Decision& d = decisions[i];
      ASSIGN_OR_RETURN(int v, next(d));
      if (d.layer < nodes) {
        if (d.name == "combination") out->add_nodes()->set_combination(r.combinations(v));
        if (d.name == "activation") out->mutable_nodes(d.layer)->set_activation(r.activations(v));
      } else if (d.layer == nodes) {
        if (d.name == "node") out->set_cell_inject_node(v);
        if (d.name == "combination") out->set_cell_inject_combination(r.combinations(v));
        if (d.name == "activation") out->set_cell_inject_activation(r.activations(v));
      } else {
        out->set_cell_output_node(v);
      }
    }
  } else {
    return absl::InvalidArgumentError("search space is not set");
  }
  arch.set_canonical(CanonicalString(arch));
  return arch;
}

std::string CanonicalString(const v1::Architecture& a) {
  std::string out;
  if (a.has_macro_cnn()) {
    std::vector<std::string> layers;
    for (int i = 0; i < a.macro_cnn().layers_size(); ++i) {
      const v1::MacroCnnLayer& l = a.macro_cnn().layers(i);
      layers.push_back(absl::StrCat("L", i, ":", l.filter_height(), "x", l.filter_width(), "/",
                                    l.num_filters(), "/s", l.stride(), "/in[",
                                    absl::StrJoin(l.inputs(), ","), "]"));
    }
    return absl::StrJoin(layers, "|");
  }
  if (a.has_cell()) {
    int edge = 0;
    for (int i = 1; i < a.cell().num_nodes(); ++i) {
      if (i > 1) out += "+";
      out += "|";
      for (int j = 0; j < i; ++j, ++edge) {
        const std::string op =
            edge < a.cell().edge_operations_size() ? a.cell().edge_operations(edge) : "?";
        absl::StrAppend(&out, op, "~", j, "|");
      }
    }
    return out;
  }
  if (a.has_recurrent_cell()) {
    const v1::RecurrentCellArchitecture& r = a.recurrent_cell();
    std::vector<std::string> parts;
    for (int n = 0; n < r.nodes_size(); ++n) {
      parts.push_back(absl::StrCat("n", n, ":", r.nodes(n).combination(), "/", r.nodes(n).activation()));
    }
    if (r.cell_inject_node() >= 0) {
      parts.push_back(absl::StrCat("inject:n", r.cell_inject_node(), ":", r.cell_inject_combination(),
                                   "/", r.cell_inject_activation()));
      parts.push_back(absl::StrCat("out:n", r.cell_output_node()));
    }
    return absl::StrJoin(parts, "|");
  }
  return out;
}

absl::Status ValidateArchitecture(const v1::SearchSpace& space, const v1::Architecture& a) {
  if (a.form_case() == v1::Architecture::FORM_NOT_SET) {
    return absl::InvalidArgumentError("architecture has no readable form");
  }
  if (space.has_macro_cnn() != a.has_macro_cnn() || space.has_cell() != a.has_cell() ||
      space.has_recurrent_cell() != a.has_recurrent_cell()) {
    return absl::InvalidArgumentError("architecture is not of the search space's kind");
  }
  // The readable form is printed below (CanonicalString), which takes time
  // quadratic in a cell's num_nodes: check the cell's size first (a cell of
  // 2e9 nodes hung ValidateArchitecture: fuzz/regressions/search_space/).
  if (a.has_cell() && (a.cell().num_nodes() != space.cell().num_nodes() ||
                       a.cell().edge_operations_size() != CellEdges(space.cell()))) {
    return absl::InvalidArgumentError(absl::StrCat(
        "cell architecture has ", a.cell().num_nodes(), " nodes and ",
        a.cell().edge_operations_size(), " edge operations; the search space has ",
        space.cell().num_nodes(), " nodes and ", CellEdges(space.cell()), " edges"));
  }
  if (a.has_macro_cnn()) {
    const int layers = a.macro_cnn().layers_size();
    if (layers < 1 || layers > SpaceLimits::kMaxLayers) {
      return absl::InvalidArgumentError(
          absl::StrCat("architecture has ", layers, " layers; allowed 1..", SpaceLimits::kMaxLayers));
    }
    const v1::MacroCnnSpace& m = space.macro_cnn();
    auto listed = [](const auto& list, int v) {
      return std::find(list.begin(), list.end(), v) != list.end();
    };
    for (int i = 0; i < layers; ++i) {
      const v1::MacroCnnLayer& l = a.macro_cnn().layers(i);
      if (!listed(m.filter_heights(), l.filter_height()) ||
          !listed(m.filter_widths(), l.filter_width()) || !listed(m.num_filters(), l.num_filters()) ||
          (m.strides_size() > 0 ? !listed(m.strides(), l.stride()) : l.stride() != 1)) {
        return absl::InvalidArgumentError(
            absl::StrCat("layer ", i, " (", l.filter_height(), "x", l.filter_width(), ", ",
                         l.num_filters(), " filters, stride ", l.stride(),
                         ") uses a value the search space does not list"));
      }
      int previous = -1;
      for (int j : l.inputs()) {
        if (j < 0 || j >= i || j <= previous) {
          return absl::InvalidArgumentError(absl::StrCat(
              "layer ", i, " input ", j, " is not an earlier layer in increasing order"));
        }
        previous = j;
      }
    }
  }
  absl::StatusOr<v1::Architecture> decoded = ArchitectureFromTokens(
      space, NumLayers(a), std::vector<int>(a.tokens().begin(), a.tokens().end()));
  if (!decoded.ok()) return decoded.status();
  if (decoded->canonical() != CanonicalString(a)) {
    return absl::InvalidArgumentError("architecture's tokens and readable form disagree");
  }
  return absl::OkStatus();
}

v1::Architecture SampleUniform(const v1::SearchSpace& space, int num_layers,
                               std::mt19937_64& rng) {
  std::vector<int> tokens;
  for (const Decision& d : Decisions(space, num_layers)) {
    if (d.kind == Decision::Kind::kAnchor) {
      for (int j = 0; j < d.num_choices; ++j) tokens.push_back(static_cast<int>(rng() & 1));
    } else {
      tokens.push_back(std::uniform_int_distribution<int>(0, d.num_choices - 1)(rng));
    }
  }
  // Cannot fail: the tokens follow the decisions.
  return ArchitectureFromTokens(space, num_layers, tokens).value();
}

absl::StatusOr<v1::Architecture> MutateOneDecision(const v1::SearchSpace& space,
                                                   const v1::Architecture& parent,
                                                   std::mt19937_64& rng) {
  if (absl::Status valid = ValidateArchitecture(space, parent); !valid.ok()) return valid;
  const int num_layers = NumLayers(parent);
  // The choices of each token: anchors contribute one two-way token per
  // earlier layer.
  std::vector<int> choices;
  for (const Decision& d : Decisions(space, num_layers)) {
    if (d.kind == Decision::Kind::kAnchor) {
      choices.insert(choices.end(), d.num_choices, 2);
    } else {
      choices.push_back(d.num_choices);
    }
  }
  std::vector<int> mutable_tokens;
  for (size_t t = 0; t < choices.size(); ++t) {
    if (choices[t] > 1) mutable_tokens.push_back(static_cast<int>(t));
  }
  if (mutable_tokens.empty()) {
    return absl::FailedPreconditionError(
        "no decision of the search space has a second choice: nothing to mutate");
  }
  std::vector<int> tokens(parent.tokens().begin(), parent.tokens().end());
  const int t = mutable_tokens[std::uniform_int_distribution<size_t>(
      0, mutable_tokens.size() - 1)(rng)];
  // A different choice, uniformly: draw among the other n - 1 and skip the current one.
  const int other = std::uniform_int_distribution<int>(0, choices[t] - 2)(rng);
  tokens[t] = other >= tokens[t] ? other + 1 : other;
  return ArchitectureFromTokens(space, num_layers, tokens);
}

}  // namespace nas::search_space
