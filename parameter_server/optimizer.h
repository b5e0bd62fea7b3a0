// The update rules a shard applies to its tensors: plain float math, no
// LibTorch. Adam follows torch.optim.Adam (bias-corrected moments, epsilon
// added after the square root); SGD follows torch.optim.SGD (heavy-ball
// momentum: buf = momentum * buf + g; theta -= lr * buf; plain theta -= lr * g
// without momentum).
#ifndef NAS_PARAMETER_SERVER_OPTIMIZER_H_
#define NAS_PARAMETER_SERVER_OPTIMIZER_H_

#include <cstddef>
#include <cstdint>
#include <memory>

#include "absl/status/statusor.h"
#include "proto/parameter_server.pb.h"

namespace nas::ps {

class Optimizer {
 public:
  virtual ~Optimizer() = default;
  // One update of n values at optimizer step `step` (1 on the first update).
  // `m` and `v` are the tensor's state buffers: Adam's first and second
  // moments, SGD's momentum buffer in `m`; one the optimizer does not use
  // (buffers() says which) may be null.
  virtual void Apply(float* theta, const float* gradient, float* m, float* v, size_t n,
                     int64_t step) const = 0;
  // State buffers per tensor, zero-initialised: 2 (Adam: m and v), 1 (SGD
  // with momentum: m) or 0 (plain SGD).
  virtual int buffers() const = 0;
};

// Adam or SGD from a job's config (defaults for unset Adam constants).
// INVALID_ARGUMENT naming the field for an unknown kind, a non-positive
// learning rate, a momentum outside [0, 1) or set for Adam, a negative
// max_staleness, or a sparse set that accumulates gradients
// (gradients_per_update > 1).
absl::StatusOr<std::unique_ptr<Optimizer>> CreateOptimizer(const v1::OptimizerConfig& config);

}  // namespace nas::ps

#endif  // NAS_PARAMETER_SERVER_OPTIMIZER_H_
