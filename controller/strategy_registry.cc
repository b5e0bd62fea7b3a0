#include "controller/strategy_registry.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "controller/darts_strategy.h"
#include "controller/evolution_strategy.h"
#include "controller/random_strategy.h"
#include "controller/reinforce_strategy.h"
#include "search_space/search_space.h"

namespace nas::controller {
namespace {

struct Registration {
  const char* name;
  StrategyTraits traits;
  std::unique_ptr<SearchStrategy> (*create)(const v1::JobSpec& spec, int replica_index,
                                            std::shared_ptr<JobStrategyState> state,
                                            int64_t rounds_before);
  // Null when the job's replicas share nothing.
  std::shared_ptr<JobStrategyState> (*create_state)(const v1::JobSpec& spec);
};

template <std::unique_ptr<SearchStrategy> (*New)(const v1::JobSpec&, int, int64_t)>
std::unique_ptr<SearchStrategy> Unshared(const v1::JobSpec& spec, int replica_index,
                                         std::shared_ptr<JobStrategyState>,
                                         int64_t rounds_before) {
  return New(spec, replica_index, rounds_before);
}

// Every strategy the controller can run; one line each.
const std::vector<Registration>& Registry() {
  static const auto* registry = new std::vector<Registration>{
      {"darts", {/*needs_parameter_servers=*/true}, &Unshared<&NewDartsStrategy>, nullptr},
      {"evolution",
       {/*needs_parameter_servers=*/false, /*one_child_per_round=*/true},
       &NewEvolutionStrategy,
       &NewEvolutionPopulation},
      {"random", {/*needs_parameter_servers=*/false}, &Unshared<&NewRandomStrategy>, nullptr},
      {"reinforce", {/*needs_parameter_servers=*/true}, &Unshared<&NewReinforceStrategy>, nullptr},
  };
  return *registry;
}

absl::StatusOr<const Registration*> Find(const std::string& name) {
  for (const Registration& r : Registry()) {
    if (name == r.name) return &r;
  }
  return absl::InvalidArgumentError(absl::StrCat("strategy.name: unknown strategy '", name,
                                                 "' (known: ", absl::StrJoin(StrategyNames(), ", "),
                                                 ")"));
}

}  // namespace

absl::StatusOr<StrategyTraits> LookupStrategy(const std::string& name) {
  absl::StatusOr<const Registration*> found = Find(name);
  if (!found.ok()) return found.status();
  return (*found)->traits;
}

std::vector<std::string> StrategyNames() {
  std::vector<std::string> names;
  for (const Registration& r : Registry()) names.emplace_back(r.name);
  std::sort(names.begin(), names.end());
  return names;
}

ReplicaLayout LayoutOf(const v1::JobSpec& spec) {
  const int k = spec.parallelism().num_replicas();
  const int m = spec.parallelism().children_per_replica();
  absl::StatusOr<const Registration*> found = Find(spec.strategy().name());
  if (found.ok() && (*found)->traits.one_child_per_round) return ReplicaLayout{k * m, 1};
  return ReplicaLayout{k, m};
}

absl::StatusOr<std::shared_ptr<JobStrategyState>> CreateJobStrategyState(const v1::JobSpec& spec) {
  absl::StatusOr<const Registration*> found = Find(spec.strategy().name());
  if (!found.ok()) return found.status();
  if ((*found)->create_state == nullptr) return std::shared_ptr<JobStrategyState>();
  return (*found)->create_state(spec);
}

absl::StatusOr<std::unique_ptr<SearchStrategy>> CreateStrategy(
    const v1::JobSpec& spec, int replica_index, std::shared_ptr<JobStrategyState> state,
    int64_t rounds_before) {
  if (absl::Status valid = search_space::ValidateSearchSpace(spec.search_space()); !valid.ok()) {
    return valid;
  }
  absl::StatusOr<const Registration*> found = Find(spec.strategy().name());
  if (!found.ok()) return found.status();
  return (*found)->create(spec, replica_index, std::move(state), rounds_before);
}

}  // namespace nas::controller
