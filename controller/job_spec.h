// Job specs: defaults for unset fields and validation that names every bad
// field by its path. The controller validates the whole spec before it
// accepts a job; nasctl runs the same checks through SubmitJob(validate_only).
#ifndef NAS_CONTROLLER_JOB_SPEC_H_
#define NAS_CONTROLLER_JOB_SPEC_H_

#include <cstdint>

#include "absl/status/status.h"
#include "proto/job.pb.h"

namespace nas::controller {

// Hard limits a spec must stay within; they keep one job from exhausting the
// controller or a worker. docs/job_spec.md lists them.
struct JobLimits {
  static constexpr int kMaxShards = 64;
  static constexpr int kMaxReplicas = 1000;
  static constexpr int kMaxChildrenPerReplica = 256;
  static constexpr int kMaxGradientsPerUpdate = 1000;
  static constexpr int64_t kMaxTrials = 10'000'000;
  static constexpr int64_t kMaxSamples = 100'000'000;
  // budget.max_samples when unset: this many samples per budgeted evaluation.
  static constexpr int64_t kDefaultSamplesPerTrial = 10;
  static constexpr int kMaxEpochs = 1000;
  static constexpr int kMaxBatchSize = 4096;
  // evaluator.train.image_height and image_width (image_folder).
  static constexpr int kMaxImageSide = 4096;
  static constexpr int64_t kMaxParameters = 10'000'000'000;
  static constexpr int64_t kMaxActivationBytes = int64_t{1} << 40;
  static constexpr int kMaxAttempts = 100;
  static constexpr int kMaxLstmLayers = 8;
  static constexpr int kMaxLstmUnits = 1024;
  static constexpr int kMaxNameLength = 200;
  static constexpr int kMaxPopulationSize = 100'000;
  // K x m for strategy evolution (one replica loop, a thread, per child in flight).
  static constexpr int kMaxEvolutionInFlight = 1024;
  // evaluator.shared.max_supernet_bytes (its default is 4 GiB).
  static constexpr int64_t kDefaultMaxSupernetBytes = int64_t{4} << 30;
  static constexpr int64_t kMaxSupernetBytes = int64_t{1} << 40;
};

// Fills unset (zero) fields with their documented defaults (docs/job_spec.md):
// strategy "reinforce" (evolution: population_size 64, tournament_size 16); parallelism K=1, m=1, N=1 (S stays unset: the
// controller's shard count); the paper's controller (2 x 35 LSTM) with
// the small-budget settings (Adam 0.01, tanh_constant 1.5, entropy_weight
// 0.01, baseline_decay 0.8; explicit 0 keeps tanh and the bonus off);
// evaluator max_attempts 3, lease_seconds 60 (and, with the train evaluator,
// max_parameters and max_activation_bytes; with evaluator.shared those and
// the one-shot defaults of proto/job.proto, final_training taking data's
// dataset; strategy darts: controller.learning_rate 3e-4); and the search space's, train
// evaluator's and reward's defaults from search_space/defaults.h (the one
// place they are written down; the worker applies the same functions).
v1::JobSpec WithDefaults(const v1::JobSpec& spec);

// Checks a spec (after WithDefaults). OK, or INVALID_ARGUMENT whose message
// has one line per problem, each "field.path: what is wrong".
absl::Status ValidateJobSpec(const v1::JobSpec& spec);

}  // namespace nas::controller

#endif  // NAS_CONTROLLER_JOB_SPEC_H_
