// The built-in search strategies (see strategy.h for the interface).
#ifndef NAS_CONTROLLER_STRATEGIES_H_
#define NAS_CONTROLLER_STRATEGIES_H_

#include <memory>

#include "controller/strategy.h"

namespace nas::controller {

// `random`: uniform over the same space; no parameters, no gradient. The
// baseline every NAS result must beat.
std::unique_ptr<SearchStrategy> NewRandomStrategy(const v1::JobSpec& spec, int replica_index);

// `reinforce`: the paper's LSTM controller trained with REINFORCE against an
// exponential-moving-average baseline.
std::unique_ptr<SearchStrategy> NewReinforceStrategy(const v1::JobSpec& spec, int replica_index);

// The random stream of replica `replica_index` of a job with `seed`.
uint64_t ReplicaSeed(int64_t seed, int replica_index);

}  // namespace nas::controller

#endif  // NAS_CONTROLLER_STRATEGIES_H_
