#include "absl/strings/str_cat.h"
#include "worker/command_evaluator.h"
#include "worker/evaluator.h"
#include "worker/lookup_evaluator.h"
#include "worker/oneshot_evaluator.h"
#include "worker/synthetic_evaluator.h"
#include "worker/train_evaluator.h"

namespace nas::worker {

absl::StatusOr<std::unique_ptr<Evaluator>> CreateEvaluator(const v1::EvaluatorSpec& spec,
                                                           const EvaluatorOptions& options) {
  switch (spec.kind_case()) {
    case v1::EvaluatorSpec::kTrain:
      return NewTrainEvaluator(options);
    case v1::EvaluatorSpec::kLookup:
      return NewLookupEvaluator(options);
    case v1::EvaluatorSpec::kSynthetic:
      return NewSyntheticEvaluator();
    case v1::EvaluatorSpec::kCommand:
      return NewCommandEvaluator(options);
    case v1::EvaluatorSpec::kShared: {
      OneShotOptions one_shot;
      one_shot.device = options.device;
      one_shot.weights = options.parameter_servers;
      one_shot.data_roots = options.data_roots;
      return NewOneShotEvaluator(std::move(one_shot));
    }
    default:
      return absl::InvalidArgumentError("task has no evaluator (train, lookup, synthetic, command or shared)");
  }
}

}  // namespace nas::worker
