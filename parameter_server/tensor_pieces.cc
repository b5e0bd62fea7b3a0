#include "parameter_server/tensor_pieces.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace nas::ps {
namespace {

std::string Quoted(const std::string& name) { return absl::StrCat("'", name.substr(0, 200), "'"); }

}  // namespace

namespace {

// `owned` (may be null) is `tensors`, whose values may be taken.
bool Split(const Tensors& tensors, Tensors* owned, int64_t chunk_values,
           const std::function<bool(Pieces*)>& emit) {
  chunk_values = std::max<int64_t>(chunk_values, 1);
  Pieces chunk;
  int64_t in_chunk = 0;
  for (int t = 0; t < tensors.size(); ++t) {
    const v1::Tensor& tensor = tensors[t];
    const int64_t size = tensor.values_size();
    int64_t offset = 0;
    do {
      if (in_chunk == chunk_values) {
        if (!emit(&chunk)) return false;
        chunk.Clear();
        in_chunk = 0;
      }
      const int64_t n = std::min(size - offset, chunk_values - in_chunk);
      v1::TensorPiece* piece = chunk.Add();
      piece->set_name(tensor.name());
      *piece->mutable_shape() = tensor.shape();
      piece->set_offset(offset);
      if (owned != nullptr && n == size) {
        piece->mutable_values()->Swap((*owned)[t].mutable_values());
      } else {
        piece->mutable_values()->Assign(tensor.values().begin() + offset,
                                        tensor.values().begin() + offset + n);
      }
      offset += n;
      in_chunk += n;
    } while (offset < size);
  }
  return emit(&chunk);
}

}  // namespace

bool SplitIntoPieces(const Tensors& tensors, int64_t chunk_values,
                     const std::function<bool(Pieces*)>& emit) {
  return Split(tensors, nullptr, chunk_values, emit);
}

bool SplitIntoPieces(Tensors* tensors, int64_t chunk_values,
                     const std::function<bool(Pieces*)>& emit) {
  return Split(*tensors, tensors, chunk_values, emit);
}

absl::Status TensorAssembler::CheckLastComplete() const {
  if (tensors_.empty()) return absl::OkStatus();
  const v1::Tensor& last = tensors_[tensors_.size() - 1];
  if (last.values_size() != last_size_) {
    return absl::InvalidArgumentError(absl::StrCat("tensor ", Quoted(last.name()), " ended after ",
                                                   last.values_size(), " of its ", last_size_,
                                                   " values"));
  }
  return absl::OkStatus();
}

absl::Status TensorAssembler::Add(const v1::TensorPiece& piece) { return Add(piece, nullptr); }

absl::Status TensorAssembler::Add(const v1::TensorPiece& piece, v1::TensorPiece* owned) {
  const bool continues = !tensors_.empty() && tensors_[tensors_.size() - 1].name() == piece.name();
  if (!continues) {
    if (absl::Status s = CheckLastComplete(); !s.ok()) return s;
    if (names_.count(piece.name()) > 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("tensor ", Quoted(piece.name()), " appears twice in the stream"));
    }
    if (piece.offset() != 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "tensor ", Quoted(piece.name()), " starts at offset ", piece.offset(), ", not 0"));
    }
    int64_t size = 1;
    for (int64_t d : piece.shape()) {
      if (d < 0) {
        return absl::InvalidArgumentError(
            absl::StrCat("tensor ", Quoted(piece.name()), " has a negative dimension ", d));
      }
      if (d > 0 && size > (max_values_ - declared_values_) / d) {
        size = -1;
        break;
      }
      size *= d;
    }
    if (size < 0 || declared_values_ + size > max_values_) {
      return absl::InvalidArgumentError(absl::StrCat(
          "tensor ", Quoted(piece.name()), " of shape [", absl::StrJoin(piece.shape(), ","),
          "] takes the stream past its limit of ", max_values_, " values"));
    }
    declared_values_ += size;
    last_size_ = size;
    names_.insert(piece.name());
    v1::Tensor* tensor = tensors_.Add();
    tensor->set_name(piece.name());
    *tensor->mutable_shape() = piece.shape();
  }
  v1::Tensor* tensor = &tensors_[tensors_.size() - 1];
  if (continues && !std::equal(piece.shape().begin(), piece.shape().end(), tensor->shape().begin(),
                               tensor->shape().end())) {
    return absl::InvalidArgumentError(
        absl::StrCat("tensor ", Quoted(piece.name()), " changes shape from [",
                     absl::StrJoin(tensor->shape(), ","), "] to [",
                     absl::StrJoin(piece.shape(), ","), "] within the stream"));
  }
  if (piece.offset() != tensor->values_size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("tensor ", Quoted(piece.name()), ": a piece at offset ", piece.offset(),
                     " where ", tensor->values_size(), " was expected"));
  }
  if (piece.values_size() > last_size_ - tensor->values_size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("tensor ", Quoted(piece.name()), ": values past its ", last_size_,
                     " (piece at offset ", piece.offset(), " with ", piece.values_size(), ")"));
  }
  if (owned != nullptr && piece.values_size() == last_size_) {
    tensor->mutable_values()->Swap(owned->mutable_values());
  } else {
    if (tensor->values_size() == 0) tensor->mutable_values()->Reserve(static_cast<int>(last_size_));
    tensor->mutable_values()->Add(piece.values().begin(), piece.values().end());
  }
  return absl::OkStatus();
}

absl::Status TensorAssembler::AddAll(const Pieces& pieces) {
  for (const v1::TensorPiece& piece : pieces) {
    if (absl::Status s = Add(piece); !s.ok()) return s;
  }
  return absl::OkStatus();
}

absl::Status TensorAssembler::AddAll(Pieces* pieces) {
  for (v1::TensorPiece& piece : *pieces) {
    if (absl::Status s = Add(piece, &piece); !s.ok()) return s;
  }
  return absl::OkStatus();
}

absl::Status TensorAssembler::Finish(Tensors* tensors) {
  if (absl::Status s = CheckLastComplete(); !s.ok()) return s;
  tensors->Swap(&tensors_);
  tensors_.Clear();
  return absl::OkStatus();
}

}  // namespace nas::ps
