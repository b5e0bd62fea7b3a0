// The client side of the parameter server's streaming calls: Pull, Push and
// InitJob for tensor sets larger than one gRPC message, cut into chunks of
// at most `chunk_values` float values (0 = kDefaultChunkValues, 4 MiB) and
// put back together (tensor_pieces.h). Errors are the server's, or the
// transport's, as absl statuses naming the call.
#ifndef NAS_PARAMETER_SERVER_STREAM_CLIENT_H_
#define NAS_PARAMETER_SERVER_STREAM_CLIENT_H_

#include <cstdint>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "proto/parameter_server.grpc.pb.h"

namespace nas::ps {

// A PullResponse as the unary Pull would give it.
absl::StatusOr<v1::PullResponse> PullStreamed(v1::ParameterServer::StubInterface& stub,
                                              const v1::PullRequest& request, int64_t chunk_values,
                                              absl::Duration timeout);

// `request` with its gradients; return_parameters must be false. The
// gradients' values are moved into the stream (pass a copy to keep them).
absl::StatusOr<v1::PushResponse> PushStreamed(v1::ParameterServer::StubInterface& stub,
                                              v1::PushRequest request, int64_t chunk_values,
                                              absl::Duration timeout);

absl::StatusOr<v1::InitJobResponse> InitJobStreamed(v1::ParameterServer::StubInterface& stub,
                                                    const v1::InitJobRequest& request,
                                                    int64_t chunk_values, absl::Duration timeout);

}  // namespace nas::ps

#endif  // NAS_PARAMETER_SERVER_STREAM_CLIENT_H_
