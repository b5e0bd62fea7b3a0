// What the controller's replica loops (and, for one-shot search, the
// workers: docs/one_shot.md) need from the parameter servers, as an
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

// What a sparse push did (PushSparse).
struct SparsePushResult {
  // Each shard's version after the push; -1 where nothing was sent to it.
  std::vector<int64_t> versions;
  int shards_applied = 0;
  // Shards that refused the push as staler than the set's max_staleness:
  // not an error, the caller pulls again.
  int shards_refused_stale = 0;
  // The largest staleness of an applied shard push.
  int64_t max_staleness = 0;
  // Gradient bytes sent.
  int64_t bytes = 0;
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

  // Sparse tensor sets (one-shot ω, OptimizerConfig.sparse): only the
  // tensors `names` (all when empty), each fetched from the shard that
  // holds it; PulledWeights.versions has every shard's version (-1 for a
  // shard asked for nothing).
  virtual absl::StatusOr<PulledWeights> PullSome(const std::string& job_id,
                                                 const std::vector<std::string>& names) = 0;
  // Gradients of any subset of a sparse set's tensors, each sent to its
  // shard with that shard's base version (base_versions[shard]). A shard
  // refusing as too stale counts in shards_refused_stale; any other refusal
  // is an error.
  virtual absl::StatusOr<SparsePushResult> PushSparse(const std::string& job_id,
                                                      const std::vector<int64_t>& base_versions,
                                                      const std::vector<FlatTensor>& gradients) = 0;
};

}  // namespace nas::controller

#endif  // NAS_CONTROLLER_WEIGHTS_CLIENT_H_
