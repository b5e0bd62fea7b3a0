// `reinforce`: the paper's LSTM controller (controller/fast_policy.h) trained
// with REINFORCE against an exponential-moving-average reward baseline. Its
// parameters live on the parameter servers, so it needs them. Registered in
// controller/strategy_registry.cc. docs/search_spaces.md gives the loss.
#ifndef NAS_CONTROLLER_REINFORCE_STRATEGY_H_
#define NAS_CONTROLLER_REINFORCE_STRATEGY_H_

#include <memory>

#include "controller/strategy.h"
#include "proto/job.pb.h"

namespace nas::controller {

// The REINFORCE strategy for replica `replica_index` of a job whose spec is
// valid. Every replica starts from the same weights (the job's seed) and
// samples from its own stream (ReplicaSeed).
std::unique_ptr<SearchStrategy> NewReinforceStrategy(const v1::JobSpec& spec, int replica_index);

}  // namespace nas::controller

#endif  // NAS_CONTROLLER_REINFORCE_STRATEGY_H_
