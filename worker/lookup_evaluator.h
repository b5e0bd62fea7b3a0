// The lookup evaluator: metrics from a table of canonical architecture
// strings (tabular benchmarks such as NAS-Bench-201). CSV with a header row;
// column `arch` holds canonical strings (search_space/search_space.h
// CanonicalString of the task's readable form is the key), `accuracy` (in
// [0, 1]) is required,
// `parameters`, `flops` and `latency_seconds` are optional. Tables are parsed
// once per path and cached.
//
// A table may carry a learning curve: columns `val_accuracy_e1` ...
// `val_accuracy_eN` (every epoch from 1, each in [0, 1]) and optionally
// `seconds_per_epoch`. The evaluator then replays the curve epoch by epoch
// (each epoch to on_epoch, so heartbeats carry it), waiting
// evaluator.lookup.time_scale real seconds per simulated second, and stops
// after the epoch during which the context says stop_early: its metrics are
// then those of the epochs replayed, like a stopped training's.
#ifndef NAS_WORKER_LOOKUP_EVALUATOR_H_
#define NAS_WORKER_LOOKUP_EVALUATOR_H_

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "worker/evaluator.h"

namespace nas::worker {

struct LookupRow {
  double accuracy = 0;
  int64_t parameters = 0;
  int64_t flops = 0;
  double latency_seconds = 0;
  // Validation accuracy per epoch (empty: no curve) and simulated seconds each.
  std::vector<double> curve;
  double seconds_per_epoch = 0;
};

// Parses a table; errors name the line, the column and the problem, never
// the text of a cell.
absl::StatusOr<std::map<std::string, LookupRow>> ParseLookupTable(const std::string& csv,
                                                                   const std::string& name);

// Reads tables only under options.data_roots, regular files of at most
// options.max_table_bytes (common/file_util.h ReadFileUnderRoots); a table it
// cannot read is FAILED_PRECONDITION (permanent).
std::unique_ptr<Evaluator> NewLookupEvaluator(const EvaluatorOptions& options = {});

}  // namespace nas::worker

#endif  // NAS_WORKER_LOOKUP_EVALUATOR_H_
