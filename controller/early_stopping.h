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
  // epochs (0: unknown). Null when spec.rule is empty.
  static std::unique_ptr<EarlyStopping> Create(const v1::EarlyStoppingSpec& spec, int epochs);

  // `curve`: the trial's validation accuracy per epoch, epoch 1 first, every
  // epoch it finished so far. True: stop it now.
  virtual bool ShouldStop(const std::string& trial_id, const std::vector<double>& curve) = 0;
  // The trial ended (succeeded, stopped or not) with `curve`.
  virtual void Finished(const std::string& trial_id, const std::vector<double>& curve) = 0;
};

// The evaluator's epochs for a spec (train, synthetic or command); 0 when
// unknown.
int EvaluatorEpochs(const v1::EvaluatorSpec& evaluator);

}  // namespace nas::controller

#endif  // NAS_CONTROLLER_EARLY_STOPPING_H_
