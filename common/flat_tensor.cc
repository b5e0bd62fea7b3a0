#include "common/flat_tensor.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace nas {

int64_t FlatTensor::NumElements() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

void ToProto(const FlatTensor& tensor, v1::Tensor* proto) {
  proto->set_name(tensor.name);
  proto->mutable_shape()->Assign(tensor.shape.begin(), tensor.shape.end());
  proto->mutable_values()->Assign(tensor.values.begin(), tensor.values.end());
}

absl::StatusOr<FlatTensor> FromProto(const v1::Tensor& proto) {
  FlatTensor tensor;
  tensor.name = proto.name();
  int64_t n = 1;
  for (int64_t d : proto.shape()) {
    if (d < 0 || (d > 0 && n > (int64_t{1} << 40) / d)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "tensor '", proto.name(), "': shape [", absl::StrJoin(proto.shape(), ","),
          "] has a negative or too large dimension"));
    }
    n *= d;
  }
  if (n != proto.values_size()) {
    return absl::InvalidArgumentError(absl::StrCat("tensor '", proto.name(), "': shape [",
                                                   absl::StrJoin(proto.shape(), ","), "] needs ",
                                                   n, " values, got ", proto.values_size()));
  }
  tensor.shape.assign(proto.shape().begin(), proto.shape().end());
  tensor.values.assign(proto.values().begin(), proto.values().end());
  return tensor;
}

}  // namespace nas
