// Asks a server's standard gRPC health service whether it is serving.
#ifndef NAS_COMMON_HEALTH_CLIENT_H_
#define NAS_COMMON_HEALTH_CLIENT_H_

#include <memory>
#include <string>

#include <grpcpp/channel.h>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "common/channel.h"

namespace nas {

// OK when the server answers SERVING within `timeout`; UNAVAILABLE when it
// cannot be reached, FAILED_PRECONDITION when it answers NOT_SERVING.
absl::Status CheckHealth(const std::shared_ptr<grpc::Channel>& channel, absl::Duration timeout);
// Over a plaintext channel.
absl::Status CheckHealth(const std::string& address, absl::Duration timeout);
// Over a channel built from `options` (TLS when it has a CA). The health
// service needs no token.
absl::Status CheckHealth(const std::string& address, const ChannelOptions& options,
                         absl::Duration timeout);

}  // namespace nas

#endif  // NAS_COMMON_HEALTH_CLIENT_H_
