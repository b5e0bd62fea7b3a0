// The one place where the defaults of job-spec fields read by more than one
// process are written down: the search space's training shape (cell), the
// train evaluator's hyperparameters and the reward. The controller fills them
// into a submitted spec (controller/job_spec.h WithDefaults); the worker and
// nasctl apply the same functions to what they receive, so a task or a stored
// job written before a field had a default still reads the same.
//
// A field is "unset" when it holds its zero value (proto3 scalars), so an
// explicit 0 also takes the default; docs/job_spec.md lists the values.
#ifndef NAS_SEARCH_SPACE_DEFAULTS_H_
#define NAS_SEARCH_SPACE_DEFAULTS_H_

#include <cstdint>

#include "proto/job.pb.h"
#include "proto/search_space.pb.h"

namespace nas::search_space {

// Cell spaces: the network a worker trains stacks this many cells per stage
// (3 stages), starting at this many channels (doubled at each stage).
inline constexpr int kDefaultCellsPerStage = 1;
inline constexpr int kDefaultInitialChannels = 16;

// Train evaluator: Nesterov SGD with a cosine schedule, 5000 images held out.
inline constexpr int kDefaultBatchSize = 128;
inline constexpr int kDefaultValidationSize = 5000;
inline constexpr double kDefaultLearningRate = 0.1;
inline constexpr double kDefaultMomentum = 0.9;
inline constexpr double kDefaultWeightDecay = 1e-4;
inline constexpr const char kDefaultLrSchedule[] = "cosine";

// Train evaluator on "ptb" (a recurrent cell's language model): plain SGD
// (momentum and weight decay 0) at 20, cosine schedule, 20 sequences of 35
// steps, E = H = 200, gradient norm clipped at 0.25, evaluated in batches of
// 10 sequences.
inline constexpr int kDefaultLmBatchSize = 20;
inline constexpr double kDefaultLmLearningRate = 20;
inline constexpr int kDefaultLmSize = 200;
inline constexpr int kDefaultBpttSteps = 35;
inline constexpr double kDefaultGradClip = 0.25;
inline constexpr int kDefaultLmEvalBatchSize = 10;

// Evaluator: the largest child a train evaluator builds (fits a worker with
// 24 GiB of memory: 16 GiB of activations plus 16 bytes per parameter).
inline constexpr int64_t kDefaultMaxParameters = 50'000'000;
inline constexpr int64_t kDefaultMaxActivationBytes = int64_t{16} << 30;

// Reward: R = (max validation accuracy over the last 5 epochs) ^ 3.
inline constexpr int kDefaultLastEpochs = 5;
inline constexpr double kDefaultRewardPower = 3.0;
// Language models: R = c / perplexity^2 with c = 80^2.
inline constexpr double kDefaultPerplexityConstant = 6400;

// `space` with its unset defaulted fields filled in (a cell's, below). Other
// kinds of space have no defaulted fields. Does not validate.
v1::SearchSpace WithSearchSpaceDefaults(v1::SearchSpace space);

// `cell` with cells_per_stage and initial_channels filled in where unset.
v1::CellSpace WithCellDefaults(v1::CellSpace cell);

// `train` with batch_size, validation_size, learning_rate, momentum,
// weight_decay and lr_schedule filled in where unset. epochs, dataset and
// data_dir have no default here (epochs is required; data_dir's default is
// the dataset's, worker/dataset.h). For dataset "ptb" the language model's
// defaults instead (above; validation_size, momentum and weight_decay stay 0)
// and language_model's fields.
v1::TrainEvaluatorSpec WithTrainDefaults(v1::TrainEvaluatorSpec train);

// `evaluator` with max_parameters and max_activation_bytes filled in where
// unset (its other fields' defaults are the controller's).
v1::EvaluatorSpec WithEvaluatorLimitDefaults(v1::EvaluatorSpec evaluator);

// `reward` with last_epochs, power and perplexity_constant filled in where
// unset.
v1::RewardSpec WithRewardDefaults(v1::RewardSpec reward);

}  // namespace nas::search_space

#endif  // NAS_SEARCH_SPACE_DEFAULTS_H_
