#include "controller/evolution_strategy.h"

#include <numeric>
#include <utility>

#include "search_space/search_space.h"

namespace nas::controller {

int TournamentWinner(const std::vector<double>& rewards, int tournament_size,
                     std::mt19937_64& rng, std::vector<int>* drawn) {
  const int n = static_cast<int>(rewards.size());
  const int k = std::min(n, std::max(1, tournament_size));
  // A partial Fisher-Yates shuffle: the first k of `order` are the draw.
  std::vector<int> order(n);
  std::iota(order.begin(), order.end(), 0);
  for (int i = 0; i < k; ++i) {
    std::swap(order[i], order[std::uniform_int_distribution<int>(i, n - 1)(rng)]);
  }
  int best = order[0];
  for (int i = 1; i < k; ++i) {
    const int candidate = order[i];
    if (rewards[candidate] > rewards[best] ||
        (rewards[candidate] == rewards[best] && candidate < best)) {
      best = candidate;
    }
  }
  if (drawn != nullptr) drawn->assign(order.begin(), order.begin() + k);
  return best;
}

EvolutionPopulation::EvolutionPopulation(const v1::JobSpec& spec)
    : space_(spec.search_space()),
      population_size_(spec.strategy().population_size() > 0 ? spec.strategy().population_size()
                                                              : kDefaultPopulationSize),
      tournament_size_(spec.strategy().tournament_size() > 0 ? spec.strategy().tournament_size()
                                                             : kDefaultTournamentSize) {}

void EvolutionPopulation::Restore(const std::vector<Observation>& finished) { Add(finished); }

void EvolutionPopulation::Add(const std::vector<Observation>& observations) {
  absl::MutexLock lock(&mu_);
  for (const Observation& o : observations) AddLocked(o);
}

void EvolutionPopulation::AddLocked(const Observation& observation) {
  const std::string& canonical = observation.architecture.canonical();
  if (!observed_.insert(canonical).second) return;
  proposed_.insert(canonical);
  members_.push_back(observation);
  while (static_cast<int>(members_.size()) > population_size_) members_.pop_front();
}

absl::StatusOr<v1::Architecture> EvolutionPopulation::Propose(int64_t sample_index,
                                                              int num_layers,
                                                              std::mt19937_64& rng) {
  absl::MutexLock lock(&mu_);
  v1::Architecture child;
  if (sample_index < population_size_ || members_.empty()) {
    for (int attempt = 0; attempt < kMaxMutationTries; ++attempt) {
      child = search_space::SampleUniform(space_, num_layers, rng);
      if (!proposed_.contains(child.canonical())) break;
    }
  } else {
    std::vector<double> rewards;
    rewards.reserve(members_.size());
    for (const Observation& m : members_) rewards.push_back(m.reward);
    const v1::Architecture& parent =
        members_[TournamentWinner(rewards, tournament_size_, rng)].architecture;
    for (int attempt = 0; attempt < kMaxMutationTries; ++attempt) {
      absl::StatusOr<v1::Architecture> mutated =
          search_space::MutateOneDecision(space_, parent, rng);
      if (!mutated.ok()) return mutated.status();
      child = *std::move(mutated);
      if (!proposed_.contains(child.canonical())) break;
    }
  }
  proposed_.insert(child.canonical());
  return child;
}

std::vector<Observation> EvolutionPopulation::Members() const {
  absl::MutexLock lock(&mu_);
  return {members_.begin(), members_.end()};
}

namespace {

class EvolutionStrategy : public SearchStrategy {
 public:
  EvolutionStrategy(const v1::JobSpec& spec, int replica_index,
                    std::shared_ptr<EvolutionPopulation> population, int64_t rounds_before)
      : space_(spec.search_space()),
        population_(std::move(population)),
        rng_(ReplicaSeed(spec.strategy().seed(), replica_index, rounds_before)) {}

  std::vector<FlatTensor> InitialParameters() override { return {}; }
  absl::Status LoadParameters(const std::vector<FlatTensor>& parameters) override {
    return parameters.empty() ? absl::OkStatus()
                              : absl::InvalidArgumentError("evolution has no parameters");
  }
  absl::StatusOr<std::vector<v1::Architecture>> Sample(int count,
                                                      const SampleContext& context) override {
    std::vector<v1::Architecture> out;
    for (int i = 0; i < count; ++i) {
      const int64_t index = context.samples_so_far + i;
      const int layers =
          space_.has_macro_cnn() ? search_space::LayersForSamples(space_.macro_cnn(), index) : 0;
      absl::StatusOr<v1::Architecture> child = population_->Propose(index, layers, rng_);
      if (!child.ok()) return child.status();
      out.push_back(*std::move(child));
    }
    return out;
  }
  absl::StatusOr<std::vector<FlatTensor>> Gradient(const std::vector<v1::Architecture>&,
                                                   const std::vector<double>&) override {
    return std::vector<FlatTensor>{};
  }
  void Observe(const std::vector<Observation>& observations) override {
    population_->Add(observations);
  }

 private:
  const v1::SearchSpace space_;
  const std::shared_ptr<EvolutionPopulation> population_;
  std::mt19937_64 rng_;
};

}  // namespace

std::shared_ptr<JobStrategyState> NewEvolutionPopulation(const v1::JobSpec& spec) {
  return std::make_shared<EvolutionPopulation>(spec);
}

std::unique_ptr<SearchStrategy> NewEvolutionStrategy(const v1::JobSpec& spec, int replica_index,
                                                     std::shared_ptr<JobStrategyState> population,
                                                     int64_t rounds_before) {
  std::shared_ptr<EvolutionPopulation> shared =
      std::dynamic_pointer_cast<EvolutionPopulation>(population);
  if (shared == nullptr) shared = std::make_shared<EvolutionPopulation>(spec);
  return std::make_unique<EvolutionStrategy>(spec, replica_index, std::move(shared),
                                             rounds_before);
}

}  // namespace nas::controller
