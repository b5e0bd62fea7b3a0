// `reinforce`: the paper's LSTM controller (controller/fast_policy.h) trained
// with REINFORCE against an exponential-moving-average reward baseline. Its
// parameters live on the parameter servers, so it needs them. Registered in
// controller/strategy_registry.cc. docs/search_spaces.md gives the loss.
#ifndef NAS_CONTROLLER_REINFORCE_STRATEGY_H_
#define NAS_CONTROLLER_REINFORCE_STRATEGY_H_

#include <cstdint>
#include <memory>

#include "controller/strategy.h"
#include "proto/job.pb.h"

namespace nas::controller {

// The REINFORCE strategy for replica `replica_index` of a job whose spec is
// valid. Every replica starts from the same weights (the job's seed) and
// samples from its own stream (ReplicaSeed, continued past `rounds_before`
// on a resumed replica).
std::unique_ptr<SearchStrategy> NewReinforceStrategy(const v1::JobSpec& spec, int replica_index,
                                                     int64_t rounds_before = 0);

}  // namespace nas::controller

#endif  // NAS_CONTROLLER_REINFORCE_STRATEGY_H_
