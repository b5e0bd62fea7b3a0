// `darts`: first-order DARTS (Liu et al. 2019) on a one-shot job's cell
// supernet (evaluator.shared, docs/one_shot.md). Its parameters are the
// architecture weights α, one tensor "alpha" of shape [edges, operations]
// (one cell architecture shared by every cell, as the supernet has;
// operations in the order of search_space.cell.operations), initialised to
// 1e-3 * N(0, 1) from the job's seed and placed on the parameter servers
// under the job id like REINFORCE's LSTM weights. The WORKERS train α: each
// search task pushes α's gradient from validation minibatches (and ω's from
// training minibatches), so Gradient returns nothing and the replica pulls α
// every round without pushing. Sample returns the discrete architecture the
// paper derives, the argmax of α per edge (ties: the first operation),
// `count` copies: each search task trains the same mixed supernet, and its
// architecture names the current argmax. Registered in
// controller/strategy_registry.cc (needs parameter servers).
#ifndef NAS_CONTROLLER_DARTS_STRATEGY_H_
#define NAS_CONTROLLER_DARTS_STRATEGY_H_

#include <cstdint>
#include <memory>

#include "controller/strategy.h"
#include "proto/job.pb.h"

namespace nas::controller {

// The DARTS strategy for replica `replica_index` of a job whose spec is
// valid (a cell space). α's initial values come from strategy.seed alone,
// the same for every replica (the servers keep the first InitJob's).
std::unique_ptr<SearchStrategy> NewDartsStrategy(const v1::JobSpec& spec, int replica_index,
                                                 int64_t rounds_before = 0);

// The name of DARTS' one tensor.
inline constexpr char kDartsAlpha[] = "alpha";

// The argmax architecture of `alpha` ([edges, operations] row-major) in the
// cell `space`, validated: per edge the operation of the largest α other
// than "none" (as the DARTS paper derives its cells), and the mean over
// edges of the chosen operation's softmax weight (the one-shot score of
// DARTS' final trial).
absl::StatusOr<v1::Architecture> DartsArgmax(const v1::SearchSpace& space, const FlatTensor& alpha,
                                             double* mean_weight = nullptr);

}  // namespace nas::controller

#endif  // NAS_CONTROLLER_DARTS_STRATEGY_H_
