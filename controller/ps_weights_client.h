// The WeightsClient that talks gRPC to the S parameter-server shards. Tensors
// are split across shards by the shared sharding function (common/sharding.h).
#ifndef NAS_CONTROLLER_PS_WEIGHTS_CLIENT_H_
#define NAS_CONTROLLER_PS_WEIGHTS_CLIENT_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/channel.h"
#include "controller/weights_client.h"

namespace nas::controller {

// `addresses` are the shards' host:port in shard order. Every call carries
// `timeout` as its deadline. `channel` says how to dial the shards (TLS,
// client certificate, the bearer token of --parameter_server_token_file);
// its max_message_bytes is replaced by `max_message_bytes`. A call whose
// request or answer for a shard would exceed that goes on the shard's
// streaming form (InitJob, and PullSome / PushSparse of sparse sets); 0
// means gRPC's default, which receives 4 MiB.
// PullSome and PushSparse route each tensor to its shard by the set's layout,
// which the client knows from its InitJob of the set (every worker calls it;
// it is idempotent) or else learns from one pull of the whole set. A shard
// that refuses a sparse push as stale keeps version -1 in the result.
absl::StatusOr<std::unique_ptr<WeightsClient>> CreatePsWeightsClient(
    const std::vector<std::string>& addresses, absl::Duration timeout, int max_message_bytes,
    const ChannelOptions& channel = ChannelOptions());

}  // namespace nas::controller

#endif  // NAS_CONTROLLER_PS_WEIGHTS_CLIENT_H_
