// The one-shot evaluator (evaluator.shared, issue 21, docs/one_shot.md):
// tasks whose children share the weights ω of one supernet (a cell space's
// worker/supernet.h, a macro_cnn space's worker/macro_supernet.h) held on the
// parameter servers as the tensor set Task.shared.omega_set.
//
// ENAS (Task.shared.alpha_set empty; a cell or macro_cnn child of the task's
// space, else INVALID_ARGUMENT): for each of train_steps training
// minibatches, pull the child's slices of ω (the supernet's UsedParameters),
// forward and backward the child, push those gradients (a sparse push); then
// pull again and score the child on reward_batches validation minibatches:
// TrialMetrics.accuracy, the one epoch row's validation_accuracy, and the
// reward (ComputeReward; reward.last_epochs does not apply).
//
// DARTS (alpha_set = the job's strategy set, tensor "alpha" [edges,
// operations]): each step pulls all of ω and α, pushes ω's gradient of the
// mixed network (CellSupernetImpl::ForwardMixed) on a training minibatch,
// then α's gradient on a validation minibatch (first order: with the same ω).
// The score is the mixed network's validation accuracy; parameters are the
// argmax child's.
// Cell spaces only: a DARTS task on another space is INVALID_ARGUMENT.
//
// A push a shard refuses as staler than the set's max_staleness is redone:
// pull again, recompute the step (counted in SharedStats.pushes_refused_stale;
// shards of a partly refused push that applied it see that minibatch twice);
// after max_stale_retries refusals of one step the task fails with
// UNAVAILABLE. The first task of a job on this worker creates ω with
// WeightsClient::InitJob (idempotent: a set that exists is kept), from a
// supernet initialised with a seed derived from the job id, so every worker
// offers the same values.
//
// Batch norm: the running statistics stay on each worker (they are not on the
// servers), and since they mix every child's they are not used: training and
// scoring both normalise with the minibatch's statistics.
//
// The evaluator keeps one job's supernet and data split (the last job it saw)
// between tasks and rebuilds them when a task of another job arrives.
#ifndef NAS_WORKER_ONESHOT_EVALUATOR_H_
#define NAS_WORKER_ONESHOT_EVALUATOR_H_

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "worker/dataset.h"
#include "worker/evaluator.h"

namespace nas::controller {
class WeightsClient;
}

namespace nas::worker {

struct OneShotOptions {
  // LibTorch device ("cpu", "cuda:0").
  std::string device = "cpu";
  // The parameter servers; null (no --parameter_servers): every task fails
  // for good naming the flag.
  std::shared_ptr<controller::WeightsClient> weights;
  // Stale refusals of one step before the task fails with UNAVAILABLE.
  int max_stale_retries = 8;
  // The task's images (shared.data). Default: LoadTrainingSet under
  // data_roots, as the train evaluator loads them.
  std::function<absl::StatusOr<std::shared_ptr<const ImageSet>>(const v1::TrainEvaluatorSpec&)> load;
  std::vector<std::string> data_roots = EvaluatorOptions::DefaultDataRoots();
};

std::unique_ptr<Evaluator> NewOneShotEvaluator(OneShotOptions options);

// The defaults of SharedEvaluatorSpec (proto/job.proto) the worker needs:
// train_steps 10, reward_batches 1, max_staleness 16.
v1::SharedEvaluatorSpec WithSharedWorkerDefaults(v1::SharedEvaluatorSpec shared);

}  // namespace nas::worker

#endif  // NAS_WORKER_ONESHOT_EVALUATOR_H_
