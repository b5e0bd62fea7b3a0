// Tensor sets larger than one gRPC message travel as TensorPiece runs
// (proto/parameter_server.proto says the order rules). SplitIntoPieces cuts
// tensors into chunks of at most a given number of values; TensorAssembler
// puts pieces back together, checking the order and a bound on the values it
// will hold, so a malformed or oversized stream is refused before it is
// applied. Used by the server's streaming calls and by their client.
#ifndef NAS_PARAMETER_SERVER_TENSOR_PIECES_H_
#define NAS_PARAMETER_SERVER_TENSOR_PIECES_H_

#include <cstdint>
#include <functional>
#include <set>
#include <string>

#include "absl/status/status.h"
#include "google/protobuf/repeated_field.h"
#include "proto/parameter_server.pb.h"

namespace nas::ps {

// Values in a chunk when a request asks for 0, and the most it may ask for
// (32 MiB of floats: half the default 64 MiB message limit).
inline constexpr int64_t kDefaultChunkValues = int64_t{1} << 20;
inline constexpr int64_t kMaxChunkValues = int64_t{8} << 20;

using Pieces = google::protobuf::RepeatedPtrField<v1::TensorPiece>;
using Tensors = google::protobuf::RepeatedPtrField<v1::Tensor>;

// Calls `emit` with consecutive chunks of pieces of `tensors`, in order, each
// with at most `chunk_values` (>= 1) values; a tensor without values is one
// empty piece. At least one call, with no pieces when `tensors` is empty.
// Stops and returns false as soon as `emit` does.
bool SplitIntoPieces(const Tensors& tensors, int64_t chunk_values,
                     const std::function<bool(Pieces*)>& emit);
// The same, taking the values of `tensors` (left without them) where a whole
// tensor is one piece instead of copying them.
bool SplitIntoPieces(Tensors* tensors, int64_t chunk_values,
                     const std::function<bool(Pieces*)>& emit);

class TensorAssembler {
 public:
  // Refuses pieces whose tensors declare more than `max_values` values in all.
  explicit TensorAssembler(int64_t max_values) : max_values_(max_values) {}

  // INVALID_ARGUMENT naming the tensor when the piece breaks the order
  // (a gap, an overlap, a tensor repeated or left incomplete), changes the
  // shape, has a negative dimension or goes past the bound.
  absl::Status Add(const v1::TensorPiece& piece);
  absl::Status AddAll(const Pieces& pieces);
  // The same, taking a piece's values when it is a whole tensor.
  absl::Status AddAll(Pieces* pieces);
  // The tensors assembled so far, moved out; INVALID_ARGUMENT when the last
  // one is incomplete.
  absl::Status Finish(Tensors* tensors);

 private:
  absl::Status CheckLastComplete() const;
  absl::Status Add(const v1::TensorPiece& piece, v1::TensorPiece* owned);

  const int64_t max_values_;
  int64_t declared_values_ = 0;
  std::set<std::string> names_;
  Tensors tensors_;
  // Values the last tensor's shape declares.
  int64_t last_size_ = 0;
};

}  // namespace nas::ps

#endif  // NAS_PARAMETER_SERVER_TENSOR_PIECES_H_
