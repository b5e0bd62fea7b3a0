// The train evaluator: builds the child with LibTorch and trains it on a
// dataset (Nesterov SGD, cosine or step schedule), holding a validation split
// out of the training set. Reports the per-epoch curve, parameters, FLOPs,
// inference latency and training time. Recurrent cells train as language
// models on Penn Treebank (dataset "ptb", TrainOnText).
#ifndef NAS_WORKER_TRAIN_EVALUATOR_H_
#define NAS_WORKER_TRAIN_EVALUATOR_H_

#include <memory>
#include <string>

#include "worker/dataset.h"
#include "worker/evaluator.h"
#include "worker/ptb_dataset.h"

namespace nas::worker {

// Trains on options.device (a LibTorch device string: "cpu", "cuda:0"); a
// child over the task's evaluator.max_parameters / max_activation_bytes or
// options.max_child_bytes fails with RESOURCE_EXHAUSTED (permanent) before
// it is built.
std::unique_ptr<Evaluator> NewTrainEvaluator(const EvaluatorOptions& options);

// Trains on an in-memory set (tests, benchmarks): same as Evaluate, with
// `images` instead of the task's dataset and `test_set` as its test split
// (required when the spec asks for test_accuracy; ignored otherwise).
absl::StatusOr<v1::TrialMetrics> TrainOnImages(const v1::Task& task, const ImageSet& images,
                                               const std::string& device, const EvaluationContext& context,
                                               int64_t max_child_bytes = 0,
                                               const ImageSet* test_set = nullptr);

// Trains a recurrent cell's language model on `corpus` (dataset ptb,
// worker/train_lm.cc): truncated back-propagation through time over the
// training tokens in batch_size sequences, gradient norm clipping, SGD;
// after each epoch the perplexity on the validation tokens (the curve, and
// the reward c / perplexity^2).
absl::StatusOr<v1::TrialMetrics> TrainOnText(const v1::Task& task, const TextCorpus& corpus,
                                             const std::string& device, const EvaluationContext& context,
                                             int64_t max_child_bytes = 0);

}  // namespace nas::worker

#endif  // NAS_WORKER_TRAIN_EVALUATOR_H_
