// The update rules a shard applies to its tensors: plain float math, no
// LibTorch. Adam follows torch.optim.Adam (bias-corrected moments, epsilon
// added after the square root); SGD is theta -= lr * g.
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
  // `m` and `v` are the tensor's moment buffers (unused by SGD).
  virtual void Apply(float* theta, const float* gradient, float* m, float* v, size_t n,
                     int64_t step) const = 0;
  // Whether the optimizer keeps moment buffers.
  virtual bool uses_moments() const = 0;
};

// Adam or SGD from a job's config (defaults for unset Adam constants).
// INVALID_ARGUMENT for an unknown kind or a non-positive learning rate.
absl::StatusOr<std::unique_ptr<Optimizer>> CreateOptimizer(const v1::OptimizerConfig& config);

}  // namespace nas::ps

#endif  // NAS_PARAMETER_SERVER_OPTIMIZER_H_
