// The search-strategy interface the controller's replica loops drive.
//
// One SearchStrategy object per replica (not thread-safe; a replica is one
// thread); what a job's replicas share (evolution's population) is a
// JobStrategyState, one per job and thread-safe. A round of a replica:
//   1. LoadParameters(tensors pulled from the parameter servers)   [learned strategies]
//   2. Sample(m, context)          -> m architectures to evaluate
//   3. (the controller evaluates them on workers)
//   4. Gradient(architectures, rewards) -> named gradient tensors to push
// Failed trials never enter Gradient (documented policy). The header is free of
// LibTorch so the service code that uses it compiles fast.
//
// This target is the interface only. Each strategy is its own target with its
// own test (random_strategy.h, reinforce_strategy.h, evolution_strategy.h); the controller creates
// them by name through controller/strategy_registry.h, the one place a
// strategy name is checked (docs/controller.md, "Strategies").
#ifndef NAS_CONTROLLER_STRATEGY_H_
#define NAS_CONTROLLER_STRATEGY_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/flat_tensor.h"
#include "proto/job.pb.h"
#include "proto/search_space.pb.h"

namespace nas::controller {

// What a replica knows when it samples.
struct SampleContext {
  // Architectures sampled so far by the whole job (drives the depth schedule).
  int64_t samples_so_far = 0;
};

// A finished (succeeded) trial, as a strategy that learns from history sees
// it (regularized evolution).
struct Observation {
  v1::Architecture architecture;
  double reward = 0;
};

// State shared by the strategies of one job's replicas (one object per job,
// thread-safe), for strategies whose replicas search together: evolution's
// population. Strategies whose replicas share nothing have none.
class JobStrategyState {
 public:
  virtual ~JobStrategyState() = default;
  // After a controller restart, before any replica runs: the job's succeeded
  // trials in completion order, from the trial store.
  virtual void Restore(const std::vector<Observation>& finished) = 0;
};

class SearchStrategy {
 public:
  virtual ~SearchStrategy() = default;

  // The learned parameters with stable names and their initial values, to be
  // placed on the parameter servers. Empty for strategies without parameters
  // (random); the controller then skips pull and push. Must agree with the
  // strategy's StrategyTraits::needs_parameter_servers.
  virtual std::vector<FlatTensor> InitialParameters() = 0;

  // Replaces the parameters with values pulled from the parameter servers.
  // INVALID_ARGUMENT if names or shapes differ from InitialParameters().
  virtual absl::Status LoadParameters(const std::vector<FlatTensor>& parameters) = 0;

  // Samples `count` architectures (each with tokens, canonical string and
  // readable form filled in and validated).
  virtual absl::StatusOr<std::vector<v1::Architecture>> Sample(int count,
                                                              const SampleContext& context) = 0;

  // The REINFORCE gradient for architectures that were actually evaluated and
  // their rewards (same length, at least one), as named tensors matching
  // InitialParameters(); the gradient of the loss to *minimise*, so a server
  // applying "theta -= lr * g" (or Adam) raises expected reward. Updates the
  // moving-average baseline. Empty vector for strategies without parameters,
  // and for those whose parameters the workers train (darts: they push α's
  // gradients themselves): the replica then pushes nothing and pulls the
  // parameters again before its next Sample.
  virtual absl::StatusOr<std::vector<FlatTensor>> Gradient(
      const std::vector<v1::Architecture>& architectures, const std::vector<double>& rewards) = 0;

  // The round's succeeded trials, for strategies that learn from history. Optional.
  virtual void Observe(const std::vector<Observation>& observations) { (void)observations; }

  // The moving-average reward baseline (0 for strategies without one), and a
  // way to restore it after a controller restart.
  virtual double baseline() const { return 0; }
  virtual void set_baseline(double baseline) { (void)baseline; }

  // Mean entropy of the last Sample() call's decisions (0 if not applicable).
  virtual double last_entropy() const { return 0; }
};

// The random stream of replica `replica_index` of a job with `seed`: the same
// seed gives the same samples, and different replicas draw different streams.
// `rounds_before` is how many rounds the replica had stored when this process
// took it over (0 for a new job, which keeps the plain stream): a replica
// resumed after a controller restart continues from a seed of its own
// instead of redrawing its first samples (which the result cache would
// answer, wasting samples), and the same stored history gives the same seed.
inline uint64_t ReplicaSeed(int64_t seed, int replica_index, int64_t rounds_before = 0) {
  const uint64_t plain = static_cast<uint64_t>(seed) * 1000003ULL +
                         static_cast<uint64_t>(replica_index) * 7919ULL + 1;
  if (rounds_before <= 0) return plain;
  // splitmix64 of the plain seed and the stream position.
  uint64_t z = plain + static_cast<uint64_t>(rounds_before) * 0x9E3779B97F4A7C15ULL;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

}  // namespace nas::controller

#endif  // NAS_CONTROLLER_STRATEGY_H_
