// Conversion between absl::Status (used everywhere inside) and grpc::Status
// (used only at the RPC edge). The two share the canonical code vocabulary.
#ifndef NAS_COMMON_GRPC_STATUS_H_
#define NAS_COMMON_GRPC_STATUS_H_

#include <grpcpp/support/status.h>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace nas {

grpc::Status ToGrpcStatus(const absl::Status& status);
absl::Status FromGrpcStatus(const grpc::Status& status);

// FromGrpcStatus with the call's name prefixed to the message, e.g.
// "Pull(shard 3 at 127.0.0.1:5000): UNAVAILABLE: connection refused".
absl::Status FromGrpcStatus(const grpc::Status& status, absl::string_view call);

}  // namespace nas

#endif  // NAS_COMMON_GRPC_STATUS_H_
