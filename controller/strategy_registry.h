// The strategies the controller knows, by name: the one place a strategy name
// is checked. Job-spec validation asks LookupStrategy whether a name exists and
// the job manager asks it what the strategy needs; CreateStrategy builds one
// per replica. Adding a strategy: its own target and test beside the others,
// then one line in the list in strategy_registry.cc (docs/controller.md).
//
// Thread-safe: the list is fixed at compile time and never changes.
#ifndef NAS_CONTROLLER_STRATEGY_REGISTRY_H_
#define NAS_CONTROLLER_STRATEGY_REGISTRY_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "controller/strategy.h"
#include "proto/job.pb.h"

namespace nas::controller {

// What the controller needs to know about a strategy before running it.
struct StrategyTraits {
  // Learns parameters on the parameter servers (pull/push); false for random.
  bool needs_parameter_servers = false;
  // Asynchronous per child: the job runs K·m replica loops of one child per
  // round instead of K loops of m (evolution: each finished child starts the
  // next, with K·m children in flight).
  bool one_child_per_round = false;
};

// How a job's replicas run: `loops` threads (replica indexes 0..loops-1),
// each sampling `children_per_round` per round. K and m, or K·m and 1 for a
// strategy with one_child_per_round. The spec must be valid.
struct ReplicaLayout {
  int loops = 1;
  int children_per_round = 1;
};
ReplicaLayout LayoutOf(const v1::JobSpec& spec);

// INVALID_ARGUMENT "strategy.name: unknown strategy 'x' (known: darts,
// evolution, random, reinforce)" for an unknown name.
absl::StatusOr<StrategyTraits> LookupStrategy(const std::string& name);

// Names of every registered strategy, sorted.
std::vector<std::string> StrategyNames();

// The state a job's replicas share (JobStrategyState; evolution's
// population), or null for a strategy whose replicas share nothing. One per
// job, created before its replicas' strategies. The spec must be valid.
absl::StatusOr<std::shared_ptr<JobStrategyState>> CreateJobStrategyState(const v1::JobSpec& spec);

// Creates the strategy named in spec.strategy().name() for replica
// `replica_index` of a job, sharing `state` (from CreateJobStrategyState;
// null gives a strategy that needs one a state of its own). The spec must
// already be valid (ValidateJobSpec); the search space is checked again
// here, and an unknown name is the LookupStrategy error. Different replicas
// get different random streams derived from the job's seed and the index
// (ReplicaSeed); a replica resumed after a restart with `rounds_before`
// rounds stored continues from a stream of its own (ReplicaSeed's third
// argument), so it does not redraw the samples of its first rounds.
absl::StatusOr<std::unique_ptr<SearchStrategy>> CreateStrategy(
    const v1::JobSpec& spec, int replica_index, std::shared_ptr<JobStrategyState> state = nullptr,
    int64_t rounds_before = 0);

}  // namespace nas::controller

#endif  // NAS_CONTROLLER_STRATEGY_REGISTRY_H_
