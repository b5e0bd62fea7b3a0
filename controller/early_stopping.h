// Early-stopping rules on learning curves (EarlyStoppingSpec): given a
// running trial's curve so far, whether to stop it now. The trial broker owns
// one per job and asks it on each heartbeat; it sees every curve of the job
// through ShouldStop and Finished. Not thread-safe (the broker's lock guards
// it).
#ifndef NAS_CONTROLLER_EARLY_STOPPING_H_
#define NAS_CONTROLLER_EARLY_STOPPING_H_

#include <memory>
#include <string>
#include <vector>

#include "proto/job.pb.h"

namespace nas::controller {

class EarlyStopping {
 public:
  virtual ~EarlyStopping() = default;
  // `spec` validated, with defaults (WithDefaults); `epochs` the evaluator's
  // epochs (0: unknown). Null when spec.rule is empty. With
  // `lower_is_better` (perplexity curves) the rule ranks curves the other
  // way round: the same rule, with that direction.
  static std::unique_ptr<EarlyStopping> Create(const v1::EarlyStoppingSpec& spec, int epochs,
                                               bool lower_is_better = false);

  // `curve`: the trial's curve metric per epoch (CurvePoint), epoch 1 first,
  // every epoch it finished so far. True: stop it now.
  virtual bool ShouldStop(const std::string& trial_id, const std::vector<double>& curve) = 0;
  // The trial ended (succeeded, stopped or not) with `curve`.
  virtual void Finished(const std::string& trial_id, const std::vector<double>& curve) = 0;
};

// The curve's metric of an epoch: the validation perplexity for a language
// model (train evaluator on ptb; lower is better), else the validation
// accuracy (higher is better).
bool LowerIsBetter(const v1::EvaluatorSpec& evaluator);
double CurvePoint(const v1::EvaluatorSpec& evaluator, const v1::EpochResult& epoch);

// The evaluator's epochs for a spec (train or synthetic); 0 when unknown.
int EvaluatorEpochs(const v1::EvaluatorSpec& evaluator);

}  // namespace nas::controller

#endif  // NAS_CONTROLLER_EARLY_STOPPING_H_
