// Durable, verifiable checkpoints of one job's state on one shard.
//
// File DIR/<job_id>/ckpt-<version, 20 digits>.bin:
//   8 bytes  "NASCKPT1"
//   8 bytes  payload length (little endian)
//   4 bytes  CRC-32 of the payload (zlib's polynomial, little endian)
//   payload  a serialized nas.v1.ShardCheckpoint
// Written to a temporary file, fsynced and renamed (common/file_util.h), so a
// crash leaves the old file or the new one. The two newest are kept; loading
// takes the newest that verifies and reports the ones that do not.
#ifndef NAS_PARAMETER_SERVER_CHECKPOINT_H_
#define NAS_PARAMETER_SERVER_CHECKPOINT_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "proto/parameter_server.pb.h"

namespace nas::ps {

std::string EncodeCheckpoint(const v1::ShardCheckpoint& checkpoint);
// DATA_LOSS naming the problem for a torn, truncated or corrupt file.
absl::StatusOr<v1::ShardCheckpoint> DecodeCheckpoint(const std::string& bytes);

// Writes `checkpoint` for its job under `dir` and deletes all but the newest
// `keep` checkpoints of the job.
absl::Status WriteCheckpoint(const std::string& dir, const v1::ShardCheckpoint& checkpoint,
                             int keep = 2);

struct LoadedCheckpoint {
  v1::ShardCheckpoint checkpoint;
  // Newer files that failed to verify (path: reason), for the log.
  std::vector<std::string> skipped;
};

// The newest checkpoint of every job under `dir` that verifies. A job whose
// files all fail verification is returned in `broken` (path: reason) instead
// (Shard::Create refuses to start then).
struct LoadedJobs {
  std::vector<LoadedCheckpoint> jobs;
  std::vector<std::string> broken;
  // Temporary files of writes a crash interrupted (ckpt-*.bin.tmp.*), deleted
  // so they do not hold disk space.
  std::vector<std::string> removed;
};
absl::StatusOr<LoadedJobs> LoadCheckpoints(const std::string& dir);

// Removes the job's checkpoint directory.
absl::Status DeleteCheckpoints(const std::string& dir, const std::string& job_id);

}  // namespace nas::ps

#endif  // NAS_PARAMETER_SERVER_CHECKPOINT_H_
