// A named dense float tensor in plain C++: how controller parameters and
// gradients travel between the controller (LibTorch) and the parameter
// servers (no LibTorch). Converts to and from the nas.v1.Tensor proto.
#ifndef NAS_COMMON_FLAT_TENSOR_H_
#define NAS_COMMON_FLAT_TENSOR_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "proto/parameter_server.pb.h"

namespace nas {

struct FlatTensor {
  std::string name;
  std::vector<int64_t> shape;
  // Row-major, product(shape) values.
  std::vector<float> values;

  // product(shape); 1 for a scalar (empty shape).
  int64_t NumElements() const;
};

// Copies into / out of the proto. FromProto checks that the value count
// matches the shape and that no dimension is negative.
void ToProto(const FlatTensor& tensor, v1::Tensor* proto);
absl::StatusOr<FlatTensor> FromProto(const v1::Tensor& proto);

}  // namespace nas

#endif  // NAS_COMMON_FLAT_TENSOR_H_
