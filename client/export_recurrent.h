// `nasctl export` for recurrent-cell architectures: a standalone PyTorch
// module (only torch imported) with the paper's cell tree (RecurrentCell) and
// the word-level language model the worker trains around it (RNNModel), and
// the lines summary.txt adds about that model. The network is the one
// worker/recurrent_net builds (docs/search_spaces.md, "Recurrent cells"):
// parameter names mirror the C++ module (embedding, cell.w_x, cell.w_h,
// decoder), and their count is search_space::RecurrentLmParameters, as the
// worker's.
#ifndef NAS_CLIENT_EXPORT_RECURRENT_H_
#define NAS_CLIENT_EXPORT_RECURRENT_H_

#include <string>

#include "absl/status/statusor.h"
#include "proto/job.pb.h"
#include "proto/search_space.pb.h"
#include "search_space/child_size.h"

namespace nas::client {

// The language model model.py builds.
struct RecurrentLmSizes {
  // Vocabulary, embedding and hidden sizes, weight tying (bptt_steps unused).
  search_space::LanguageModelShape shape;
  // Dropout probability after the embedding and before the decoder, [0, 1).
  double dropout = 0.0;
};

// The sizes of the model `spec` trains: evaluator.train.language_model with
// its defaults (E = H = 200, no dropout, untied), vocabulary 10,000 (PTB's;
// model.py's RNNModel takes another as vocab_size).
RecurrentLmSizes RecurrentSizesFor(const v1::JobSpec& spec);

// model.py for a trial whose architecture is a recurrent cell. UNIMPLEMENTED
// (no model.py; architecture.json and summary.txt still describe the trial)
// for a cell search_space::CheckRecurrentCell refuses: only names it knows
// become Python. INVALID_ARGUMENT for sizes CheckLanguageModelShape refuses
// or a dropout outside [0, 1).
absl::StatusOr<std::string> RecurrentPyTorchModule(const v1::Job& job, const v1::Trial& trial,
                                                   const RecurrentLmSizes& sizes);

// summary.txt's line on the language model (sizes and parameter count).
std::string RecurrentLmSummary(const v1::RecurrentCellArchitecture& cell,
                               const RecurrentLmSizes& sizes);

}  // namespace nas::client

#endif  // NAS_CLIENT_EXPORT_RECURRENT_H_
