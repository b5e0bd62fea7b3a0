// `evolution`: regularized (aging) evolution (Real et al. 2019). A job-level
// population of the last `population_size` children that succeeded (the
// oldest leaves when a new one arrives); the first `population_size` samples
// are uniformly random; after that each child is a mutation
// (search_space::MutateOneDecision) of the best of `tournament_size` members
// drawn without replacement. A child whose architecture was already proposed
// or evaluated by the job is mutated again, up to kMaxMutationTries times.
//
// Asynchronous: the job runs K·m replica loops of one child each
// (StrategyTraits::one_child_per_round), all sharing one EvolutionPopulation
// (the job's JobStrategyState), so each finished child starts the next.
// Deterministic per seed given the same completion order: each loop draws
// from its own stream (ReplicaSeed) and the population changes only in
// completion order. After a controller restart the job manager rebuilds the
// population from the trial store (Restore). Registered in
// controller/strategy_registry.cc; needs no parameter servers.
#ifndef NAS_CONTROLLER_EVOLUTION_STRATEGY_H_
#define NAS_CONTROLLER_EVOLUTION_STRATEGY_H_

#include <cstdint>
#include <deque>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "controller/strategy.h"
#include "proto/job.pb.h"

namespace nas::controller {

// Defaults of strategy.population_size and strategy.tournament_size.
inline constexpr int kDefaultPopulationSize = 64;
inline constexpr int kDefaultTournamentSize = 16;
// Mutations tried for a child not proposed before; the last one is taken
// even if it was (a small space can be exhausted).
inline constexpr int kMaxMutationTries = 32;

// The index (into `rewards`) of the best of `tournament_size` entries drawn
// uniformly without replacement (all of them when there are fewer); ties go
// to the lowest index (the oldest member). `drawn`, when set, receives the
// drawn indices. `rewards` must not be empty.
int TournamentWinner(const std::vector<double>& rewards, int tournament_size,
                     std::mt19937_64& rng, std::vector<int>* drawn = nullptr);

// One job's population. Thread-safe.
class EvolutionPopulation final : public JobStrategyState {
 public:
  // `spec` valid and with defaults applied.
  explicit EvolutionPopulation(const v1::JobSpec& spec);

  void Restore(const std::vector<Observation>& finished) override ABSL_LOCKS_EXCLUDED(mu_);

  // Children that succeeded, in completion order: each joins the population
  // and the oldest members leave beyond population_size. An architecture
  // already a member or observed before is ignored (a trial reported twice).
  void Add(const std::vector<Observation>& observations) ABSL_LOCKS_EXCLUDED(mu_);

  // The next child for the job's `sample_index`-th sample: random while the
  // initial population is drawn (or when no member succeeded yet), else a
  // mutated tournament winner. Remembers it so no later call proposes it
  // again while tries last. `num_layers`: the depth of a random macro CNN.
  absl::StatusOr<v1::Architecture> Propose(int64_t sample_index, int num_layers,
                                           std::mt19937_64& rng) ABSL_LOCKS_EXCLUDED(mu_);

  // The members, oldest first.
  std::vector<Observation> Members() const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  void AddLocked(const Observation& observation) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const v1::SearchSpace space_;
  const int population_size_;
  const int tournament_size_;
  mutable absl::Mutex mu_;
  std::deque<Observation> members_ ABSL_GUARDED_BY(mu_);
  // Canonical strings of every architecture proposed or observed.
  absl::flat_hash_set<std::string> proposed_ ABSL_GUARDED_BY(mu_);
  // Canonical strings of every architecture observed (added).
  absl::flat_hash_set<std::string> observed_ ABSL_GUARDED_BY(mu_);
};

// The evolution strategy of replica loop `replica_index` of a job whose spec
// is valid, drawing from `population` (the job's; when null, a population of
// its own, as for a probe or a single-loop benchmark). Its stream is
// ReplicaSeed(seed, replica_index, rounds_before).
std::unique_ptr<SearchStrategy> NewEvolutionStrategy(const v1::JobSpec& spec, int replica_index,
                                                     std::shared_ptr<JobStrategyState> population,
                                                     int64_t rounds_before = 0);

// The job's population (a JobStrategyState) for a valid spec.
std::shared_ptr<JobStrategyState> NewEvolutionPopulation(const v1::JobSpec& spec);

}  // namespace nas::controller

#endif  // NAS_CONTROLLER_EVOLUTION_STRATEGY_H_
