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
};

// INVALID_ARGUMENT "strategy.name: unknown strategy 'x' (known: random, reinforce)" for an unknown name.
absl::StatusOr<StrategyTraits> LookupStrategy(const std::string& name);

// Names of every registered strategy, sorted.
std::vector<std::string> StrategyNames();

// Creates the strategy named in spec.strategy().name() for replica
// `replica_index` of a job. The spec must already be valid (ValidateJobSpec);
// the search space is checked again here, and an unknown name is the
// LookupStrategy error. Different replicas get different random streams
// derived from the job's seed and the index (ReplicaSeed).
absl::StatusOr<std::unique_ptr<SearchStrategy>> CreateStrategy(const v1::JobSpec& spec,
                                                               int replica_index);

}  // namespace nas::controller

#endif  // NAS_CONTROLLER_STRATEGY_REGISTRY_H_
