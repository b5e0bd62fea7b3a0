// `nasctl export` for recurrent-cell architectures: a standalone PyTorch
// module (only torch imported) with the paper's cell tree (RecurrentCell) and
// the word-level language model the worker trains around it (RNNModel), and
// the lines summary.txt adds about that model. The network is the one
// worker/recurrent_net builds (docs/search_spaces.md, "Recurrent cells"):
// parameter names mirror the C++ module (embedding, cell.w_x, cell.w_h,
// decoder), so the parameter counts agree.
#ifndef NAS_CLIENT_EXPORT_RECURRENT_H_
#define NAS_CLIENT_EXPORT_RECURRENT_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "proto/job.pb.h"
#include "proto/search_space.pb.h"

namespace nas::client {

// The language model's sizes, as the job's train evaluator sets them.
struct RecurrentLmSizes {
  // Words in the vocabulary (PTB: 10,000).
  int vocab_size = 10000;
  // Width of the word embedding (E) and of the cell's state (H).
  int embedding_size = 0;
  int hidden_size = 0;
  // Dropout probability after the embedding and before the decoder.
  double dropout = 0.0;
  // Whether the decoder's weight is the embedding's (needs E == H).
  bool tie_weights = false;
};

// The sizes of the model `spec` trains.
RecurrentLmSizes RecurrentSizesFor(const v1::JobSpec& spec);

// OK when `cell` is a tree model.py can build: 2*base-1 nodes (2 <= base <=
// 16), every combination add or elem_mult, every activation identity, tanh,
// sigmoid or relu, the inject and output nodes inside the tree. Otherwise
// UNIMPLEMENTED for an unknown combination or activation (nothing else is
// turned into Python), INVALID_ARGUMENT for a malformed tree; the message
// names the node.
absl::Status CheckExportableCell(const v1::RecurrentCellArchitecture& cell);

// Parameters of the language model: V*E + (E*base*H + base*H) + H*base*H +
// (tied ? 0 : V*H) + V.
int64_t RecurrentLmParameters(const v1::RecurrentCellArchitecture& cell,
                              const RecurrentLmSizes& sizes);

// model.py for a trial whose architecture is a recurrent cell.
absl::StatusOr<std::string> RecurrentPyTorchModule(const v1::Job& job, const v1::Trial& trial,
                                                   const RecurrentLmSizes& sizes);

// summary.txt's lines on the language model (sizes and parameter count).
std::string RecurrentLmSummary(const v1::RecurrentCellArchitecture& cell,
                               const RecurrentLmSizes& sizes);

}  // namespace nas::client

#endif  // NAS_CLIENT_EXPORT_RECURRENT_H_
