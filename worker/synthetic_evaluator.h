// The synthetic evaluator: a deterministic function of the architecture, with
// an optional simulated duration split over epochs, for load and chaos tests.
#ifndef NAS_WORKER_SYNTHETIC_EVALUATOR_H_
#define NAS_WORKER_SYNTHETIC_EVALUATOR_H_

#include <memory>

#include "worker/evaluator.h"

namespace nas::worker {

// The synthetic accuracy of an architecture, in [0, 1]:
//  macro CNN: the fraction of layer properties that are "good" (5x5 filters,
//    64 filters) — something REINFORCE can learn and random search rarely hits;
//  cell: the mean per-edge operation score (conv 3x3 best, none worst);
//  recurrent cell: the fraction of tree nodes using tanh.
double SyntheticAccuracy(const v1::Architecture& architecture);

std::unique_ptr<Evaluator> NewSyntheticEvaluator();

}  // namespace nas::worker

#endif  // NAS_WORKER_SYNTHETIC_EVALUATOR_H_
