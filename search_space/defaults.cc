#include "search_space/defaults.h"

// Sets `field` of `message` to `value` when it holds its zero value.
#define NAS_DEFAULT(message, field, value)                    \
  do {                                                        \
    if ((message).field() == decltype((message).field()){}) { \
      (message).set_##field(value);                           \
    }                                                         \
  } while (0)

namespace nas::search_space {

v1::SearchSpace WithSearchSpaceDefaults(v1::SearchSpace space) {
  if (space.has_cell()) *space.mutable_cell() = WithCellDefaults(space.cell());
  return space;
}

v1::CellSpace WithCellDefaults(v1::CellSpace cell) {
  NAS_DEFAULT(cell, cells_per_stage, kDefaultCellsPerStage);
  NAS_DEFAULT(cell, initial_channels, kDefaultInitialChannels);
  return cell;
}

v1::TrainEvaluatorSpec WithTrainDefaults(v1::TrainEvaluatorSpec train) {
  if (train.dataset() == "ptb") {
    NAS_DEFAULT(train, batch_size, kDefaultLmBatchSize);
    NAS_DEFAULT(train, learning_rate, kDefaultLmLearningRate);
    NAS_DEFAULT(train, lr_schedule, kDefaultLrSchedule);
    v1::LanguageModelSpec* lm = train.mutable_language_model();
    NAS_DEFAULT(*lm, embedding_size, kDefaultLmSize);
    NAS_DEFAULT(*lm, hidden_size, kDefaultLmSize);
    NAS_DEFAULT(*lm, bptt_steps, kDefaultBpttSteps);
    NAS_DEFAULT(*lm, grad_clip, kDefaultGradClip);
    NAS_DEFAULT(*lm, eval_batch_size, kDefaultLmEvalBatchSize);
    return train;
  }
  NAS_DEFAULT(train, batch_size, kDefaultBatchSize);
  NAS_DEFAULT(train, validation_size, kDefaultValidationSize);
  NAS_DEFAULT(train, learning_rate, kDefaultLearningRate);
  NAS_DEFAULT(train, momentum, kDefaultMomentum);
  NAS_DEFAULT(train, weight_decay, kDefaultWeightDecay);
  NAS_DEFAULT(train, lr_schedule, kDefaultLrSchedule);
  return train;
}

v1::EvaluatorSpec WithEvaluatorLimitDefaults(v1::EvaluatorSpec evaluator) {
  NAS_DEFAULT(evaluator, max_parameters, kDefaultMaxParameters);
  NAS_DEFAULT(evaluator, max_activation_bytes, kDefaultMaxActivationBytes);
  return evaluator;
}

v1::RewardSpec WithRewardDefaults(v1::RewardSpec reward) {
  NAS_DEFAULT(reward, last_epochs, kDefaultLastEpochs);
  NAS_DEFAULT(reward, power, kDefaultRewardPower);
  NAS_DEFAULT(reward, perplexity_constant, kDefaultPerplexityConstant);
  return reward;
}

}  // namespace nas::search_space

#undef NAS_DEFAULT
