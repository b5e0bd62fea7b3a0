#include "controller/random_strategy.h"

#include <random>

#include "search_space/search_space.h"

namespace nas::controller {
namespace {

class RandomStrategy : public SearchStrategy {
 public:
  RandomStrategy(const v1::JobSpec& spec, int replica_index, int64_t rounds_before)
      : space_(spec.search_space()),
        rng_(ReplicaSeed(spec.strategy().seed(), replica_index, rounds_before)) {}

  std::vector<FlatTensor> InitialParameters() override { return {}; }
  absl::Status LoadParameters(const std::vector<FlatTensor>& parameters) override {
    return parameters.empty() ? absl::OkStatus()
                              : absl::InvalidArgumentError("random search has no parameters");
  }
  absl::StatusOr<std::vector<v1::Architecture>> Sample(int count,
                                                      const SampleContext& context) override {
    const int layers =
        space_.has_macro_cnn() ? search_space::LayersForSamples(space_.macro_cnn(), context.samples_so_far) : 0;
    std::vector<v1::Architecture> out;
    for (int i = 0; i < count; ++i) out.push_back(search_space::SampleUniform(space_, layers, rng_));
    return out;
  }
  absl::StatusOr<std::vector<FlatTensor>> Gradient(const std::vector<v1::Architecture>&,
                                                   const std::vector<double>&) override {
    return std::vector<FlatTensor>{};
  }

 private:
  const v1::SearchSpace space_;
  std::mt19937_64 rng_;
};

}  // namespace

std::unique_ptr<SearchStrategy> NewRandomStrategy(const v1::JobSpec& spec, int replica_index,
                                                  int64_t rounds_before) {
  return std::make_unique<RandomStrategy>(spec, replica_index, rounds_before);
}

}  // namespace nas::controller
