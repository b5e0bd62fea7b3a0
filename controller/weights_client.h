// What the controller's replica loops need from the parameter servers, as an
// interface: the real implementation talks gRPC to S shards
// (controller/ps_weights_client.h); tests can use an in-process one.
#ifndef NAS_CONTROLLER_WEIGHTS_CLIENT_H_
#define NAS_CONTROLLER_WEIGHTS_CLIENT_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/flat_tensor.h"
#include "proto/parameter_server.pb.h"

namespace nas::controller {

struct PulledWeights {
  // Every tensor of the job, in no particular order.
  std::vector<FlatTensor> tensors;
  // The version of each shard the tensors came from (index = shard).
  std::vector<int64_t> versions;
};

// Thread-safe. Every call has its own deadline; UNAVAILABLE / DEADLINE_EXCEEDED
// mean "retry later", other errors are final for that call.
class WeightsClient {
 public:
  virtual ~WeightsClient() = default;
  // Number of shards S behind this client.
  virtual int num_shards() const = 0;
  // Places the job's initial tensors on their shards. Idempotent.
  virtual absl::Status InitJob(const std::string& job_id, const std::vector<FlatTensor>& initial,
                               const v1::OptimizerConfig& optimizer) = 0;
  // Removes the job's tensors from every shard; a shard that does not hold
  // them counts as done.
  virtual absl::Status DropJob(const std::string& job_id) = 0;
  // NOT_FOUND (naming the shard) when a shard does not hold the job.
  virtual absl::StatusOr<PulledWeights> Pull(const std::string& job_id) = 0;
  // Sends each shard its slice of `gradients`, computed from `base_versions`.
  // With `updated`, the shards also return their tensors as they are after
  // the push (as a Pull right after it would, without the extra calls).
  virtual absl::Status Push(const std::string& job_id, int replica_id,
                            const std::vector<int64_t>& base_versions,
                            const std::vector<FlatTensor>& gradients,
                            PulledWeights* updated = nullptr) = 0;
};

}  // namespace nas::controller

#endif  // NAS_CONTROLLER_WEIGHTS_CLIENT_H_
