// `random`: uniform search over the job's space (each categorical token
// uniform, each anchor token 1 with probability 1/2). No parameters, no
// gradient: the baseline every NAS result must beat. Registered in
// controller/strategy_registry.cc; needs no parameter servers.
#ifndef NAS_CONTROLLER_RANDOM_STRATEGY_H_
#define NAS_CONTROLLER_RANDOM_STRATEGY_H_

#include <cstdint>
#include <memory>

#include "controller/strategy.h"
#include "proto/job.pb.h"

namespace nas::controller {

// The random strategy for replica `replica_index` of a job whose spec is
// valid (its stream is ReplicaSeed(spec.strategy().seed(), replica_index,
// rounds_before)).
std::unique_ptr<SearchStrategy> NewRandomStrategy(const v1::JobSpec& spec, int replica_index,
                                                  int64_t rounds_before = 0);

}  // namespace nas::controller

#endif  // NAS_CONTROLLER_RANDOM_STRATEGY_H_
