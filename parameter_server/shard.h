// One parameter-server shard: per job, the controller tensors the sharding
// rule assigns to this shard, their optimizer state and a version. Domain
// code: no gRPC. Thread-safe; each job has its own lock, so pushes to one job
// are applied one at a time (atomically) while pulls see either the state
// before or after an update, never half of one.
#ifndef NAS_PARAMETER_SERVER_SHARD_H_
#define NAS_PARAMETER_SERVER_SHARD_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "parameter_server/optimizer.h"
#include "proto/parameter_server.pb.h"

namespace prometheus {
class Registry;
}

namespace nas::ps {

struct ShardOptions {
  // This shard's index and the total S.
  int shard_index = 0;
  int num_shards = 1;
  // Checkpoints go here; empty disables durability.
  std::string data_dir;
  // A job is checkpointed after this many updates (0 = never by count) ...
  int checkpoint_every_updates = 100;
  // ... or when this long has passed since its last checkpoint and it has
  // changed (checked on each push and by CheckpointDue()).
  absl::Duration checkpoint_interval = absl::Seconds(30);
  // Once a job's checkpoint cannot be written, its pushes are refused
  // (RESOURCE_EXHAUSTED) until a retry succeeds; retries back off from the
  // first to the second of these (on a push or on CheckpointDue()).
  absl::Duration checkpoint_retry_initial = absl::Milliseconds(500);
  absl::Duration checkpoint_retry_max = absl::Seconds(5);
  // Writes one checkpoint; empty means WriteCheckpoint (checkpoint.h). A seam
  // for tests that make the disk fail.
  std::function<absl::Status(const std::string& dir, const v1::ShardCheckpoint&)>
      write_checkpoint;
  // Not owned.
  Clock* clock = Clock::Real();
  // Metrics are registered here when set. Not owned.
  prometheus::Registry* metrics = nullptr;
};

class Shard {
 public:
  // Restores every job from data_dir (newest verified checkpoint per job;
  // corrupt ones are logged and skipped, never loaded). DATA_LOSS when a job
  // has checkpoint files and none of them verifies: the shard never starts
  // empty (version 0) in place of state it cannot read.
  static absl::StatusOr<std::unique_ptr<Shard>> Create(const ShardOptions& options);
  ~Shard();

  absl::StatusOr<v1::InitJobResponse> InitJob(const v1::InitJobRequest& request)
      ABSL_LOCKS_EXCLUDED(mu_);
  absl::Status DropJob(const std::string& job_id) ABSL_LOCKS_EXCLUDED(mu_);
  absl::StatusOr<v1::PullResponse> Pull(const v1::PullRequest& request) ABSL_LOCKS_EXCLUDED(mu_);
  // A push is acknowledged only while the job's checkpoints are being
  // written: when the checkpoint a push makes due fails, the push is undone
  // and refused with RESOURCE_EXHAUSTED, and so is every push until a retried
  // checkpoint succeeds. So a crash loses at most the pushes since the last
  // checkpoint (fewer than checkpoint_every_updates updates, or
  // checkpoint_interval), full disk or not.
  absl::StatusOr<v1::PushResponse> Push(const v1::PushRequest& request) ABSL_LOCKS_EXCLUDED(mu_);
  v1::GetShardInfoResponse Info() ABSL_LOCKS_EXCLUDED(mu_);

  // Checkpoints every job changed since its last checkpoint (at shutdown).
  absl::Status CheckpointAll() ABSL_LOCKS_EXCLUDED(mu_);
  // Checkpoints jobs whose interval has passed, and retries failed ones whose
  // backoff has passed (called periodically).
  void CheckpointDue() ABSL_LOCKS_EXCLUDED(mu_);

 private:
  struct Metrics;
  struct Job;

  explicit Shard(const ShardOptions& options);
  std::shared_ptr<Job> FindJob(const std::string& job_id) ABSL_LOCKS_EXCLUDED(mu_);

  const ShardOptions options_;
  std::unique_ptr<Metrics> metrics_;

  // Lock order: mu_ before a job's own mutex (Info holds both); a job's
  // mutex is never held while taking mu_. Clang cannot check this order
  // across objects (ABSL_ACQUIRED_AFTER names members of one object only).
  absl::Mutex mu_;
  std::map<std::string, std::shared_ptr<Job>> jobs_ ABSL_GUARDED_BY(mu_);
};

// Job ids become directory names: 1..128 characters of [A-Za-z0-9._-], not
// starting with '.'.
absl::Status ValidateJobId(const std::string& job_id);

}  // namespace nas::ps

#endif  // NAS_PARAMETER_SERVER_SHARD_H_
