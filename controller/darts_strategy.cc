#include "controller/darts_strategy.h"

#include <algorithm>
#include <cmath>
#include <random>

#include "absl/strings/str_cat.h"
#include "search_space/search_space.h"

namespace nas::controller {
namespace {

class DartsStrategy : public SearchStrategy {
 public:
  explicit DartsStrategy(const v1::JobSpec& spec)
      : space_(spec.search_space()), seed_(spec.strategy().seed()) {
    alpha_ = Initial();
  }

  std::vector<FlatTensor> InitialParameters() override { return {Initial()}; }

  absl::Status LoadParameters(const std::vector<FlatTensor>& parameters) override {
    const FlatTensor expected = Initial();
    if (parameters.size() != 1 || parameters[0].name != expected.name ||
        parameters[0].shape != expected.shape ||
        static_cast<int64_t>(parameters[0].values.size()) != expected.NumElements()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "darts: the pulled parameters are not one tensor \"alpha\" of shape [", expected.shape[0], ", ",
          expected.shape[1], "]"));
    }
    alpha_ = parameters[0];
    return absl::OkStatus();
  }

  absl::StatusOr<std::vector<v1::Architecture>> Sample(int count, const SampleContext&) override {
    absl::StatusOr<v1::Architecture> argmax = DartsArgmax(space_, alpha_);
    if (!argmax.ok()) return argmax.status();
    return std::vector<v1::Architecture>(count, *argmax);
  }

  // The workers push α's gradients themselves.
  absl::StatusOr<std::vector<FlatTensor>> Gradient(const std::vector<v1::Architecture>&,
                                                   const std::vector<double>&) override {
    return std::vector<FlatTensor>{};
  }

 private:
  FlatTensor Initial() const {
    const int nodes = space_.cell().num_nodes();
    FlatTensor alpha;
    alpha.name = kDartsAlpha;
    alpha.shape = {int64_t{nodes} * (nodes - 1) / 2, space_.cell().operations_size()};
    std::mt19937_64 rng(static_cast<uint64_t>(seed_) * 1000003ULL + 17);
    std::normal_distribution<float> normal(0.0f, 1.0f);
    alpha.values.resize(static_cast<size_t>(alpha.NumElements()));
    for (float& v : alpha.values) v = 1e-3f * normal(rng);
    return alpha;
  }

  const v1::SearchSpace space_;
  const int64_t seed_;
  FlatTensor alpha_;
};

}  // namespace

absl::StatusOr<v1::Architecture> DartsArgmax(const v1::SearchSpace& space, const FlatTensor& alpha,
                                             double* mean_weight) {
  if (!space.has_cell()) {
    return absl::InvalidArgumentError("darts: the search space must be a cell space");
  }
  const int nodes = space.cell().num_nodes();
  const int64_t edges = int64_t{nodes} * (nodes - 1) / 2;
  const int64_t ops = space.cell().operations_size();
  if (alpha.shape != std::vector<int64_t>{edges, ops} ||
      static_cast<int64_t>(alpha.values.size()) != edges * ops || ops < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("darts: alpha must have shape [", edges, ", ", ops, "] for this space"));
  }
  // As in the DARTS paper, the choice is the strongest operation other than
  // the zero one ("none"): an edge of the discrete cell always carries
  // something (a cell whose edges from its input all chose none would drop
  // its input, and the network with it). A space of none alone keeps none.
  std::vector<bool> candidate(static_cast<size_t>(ops));
  bool any_candidate = false;
  for (int o = 0; o < ops; ++o) {
    candidate[static_cast<size_t>(o)] = space.cell().operations(o) != "none";
    any_candidate = any_candidate || candidate[static_cast<size_t>(o)];
  }
  if (!any_candidate) candidate.assign(candidate.size(), true);
  std::vector<int> tokens(static_cast<size_t>(edges));
  double weights = 0;
  for (int64_t e = 0; e < edges; ++e) {
    const float* row = alpha.values.data() + e * ops;
    int best = -1;
    for (int o = 0; o < ops; ++o) {
      if (candidate[static_cast<size_t>(o)] && (best < 0 || row[o] > row[best])) best = o;
    }
    if (!std::all_of(row, row + ops, [](float v) { return std::isfinite(v); })) {
      return absl::InvalidArgumentError(absl::StrCat("darts: alpha's row ", e, " is not finite"));
    }
    const float top = *std::max_element(row, row + ops);
    double total = 0;
    for (int o = 0; o < ops; ++o) total += std::exp(static_cast<double>(row[o]) - top);
    weights += std::exp(static_cast<double>(row[best]) - top) / total;
    tokens[static_cast<size_t>(e)] = best;
  }
  if (mean_weight != nullptr) *mean_weight = weights / static_cast<double>(edges);
  return search_space::ArchitectureFromTokens(space, 0, tokens);
}

std::unique_ptr<SearchStrategy> NewDartsStrategy(const v1::JobSpec& spec, int replica_index,
                                                 int64_t rounds_before) {
  (void)replica_index;
  (void)rounds_before;
  return std::make_unique<DartsStrategy>(spec);
}

}  // namespace nas::controller
