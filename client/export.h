// `nasctl export`: a trial's architecture as JSON, a readable summary (layers,
// inputs, parameters, FLOPs) and a standalone PyTorch module (Python source)
// that builds the same network as the worker does, for retraining in PyTorch.
#ifndef NAS_CLIENT_EXPORT_H_
#define NAS_CLIENT_EXPORT_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "proto/job.pb.h"

namespace nas::client {

// Writes architecture.json, summary.txt and model.py into `out_dir` (created
// if missing). Returns the paths written.
absl::StatusOr<std::vector<std::string>> ExportTrial(const v1::Job& job, const v1::Trial& trial,
                                                     const std::string& out_dir);

// The pieces, for tests.
std::string ArchitectureJson(const v1::Job& job, const v1::Trial& trial);
std::string Summary(const v1::Job& job, const v1::Trial& trial);
absl::StatusOr<std::string> PyTorchModule(const v1::Job& job, const v1::Trial& trial);

}  // namespace nas::client

#endif  // NAS_CLIENT_EXPORT_H_
