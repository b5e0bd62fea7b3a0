// What the strategy tests share (testonly): job specs of the paper's macro-CNN
// space with strides and skip connections, at a fixed depth, after
// WithDefaults; and the canonical strings of a strategy's samples.
#ifndef NAS_CONTROLLER_STRATEGY_TEST_JOBS_H_
#define NAS_CONTROLLER_STRATEGY_TEST_JOBS_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

#include "controller/job_spec.h"
#include "controller/strategy.h"
#include "proto/job.pb.h"

namespace nas::controller {

inline v1::JobSpec MacroJob(const std::string& strategy, int64_t seed, int layers = 6) {
  v1::JobSpec spec;
  v1::MacroCnnSpace* m = spec.mutable_search_space()->mutable_macro_cnn();
  for (int v : {1, 3, 5, 7}) m->add_filter_heights(v);
  for (int v : {1, 3, 5, 7}) m->add_filter_widths(v);
  for (int v : {24, 36, 48, 64}) m->add_num_filters(v);
  for (int v : {1, 2, 3}) m->add_strides(v);
  m->set_skip_connections(true);
  m->mutable_depth()->set_initial_layers(layers);
  m->mutable_depth()->set_max_layers(layers);
  spec.mutable_strategy()->set_name(strategy);
  spec.mutable_strategy()->set_seed(seed);
  spec.mutable_budget()->set_max_trials(1);
  spec.mutable_evaluator()->mutable_synthetic();
  return WithDefaults(spec);
}

// The canonical strings of `count` architectures `strategy` samples,
// concatenated; empty if sampling failed.
inline std::string SampledCanonicals(SearchStrategy& strategy, int count) {
  absl::StatusOr<std::vector<v1::Architecture>> sampled = strategy.Sample(count, {});
  std::string out;
  if (!sampled.ok()) return out;
  for (const v1::Architecture& a : *sampled) out += a.canonical();
  return out;
}

}  // namespace nas::controller

#endif  // NAS_CONTROLLER_STRATEGY_TEST_JOBS_H_
