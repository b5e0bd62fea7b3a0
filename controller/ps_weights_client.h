// The WeightsClient that talks gRPC to the S parameter-server shards. Tensors
// are split across shards by the shared sharding function (common/sharding.h).
#ifndef NAS_CONTROLLER_PS_WEIGHTS_CLIENT_H_
#define NAS_CONTROLLER_PS_WEIGHTS_CLIENT_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "controller/weights_client.h"

namespace nas::controller {

// `addresses` are the shards' host:port in shard order. Every call carries
// `timeout` as its deadline.
absl::StatusOr<std::unique_ptr<WeightsClient>> CreatePsWeightsClient(
    const std::vector<std::string>& addresses, absl::Duration timeout, int max_message_bytes);

}  // namespace nas::controller

#endif  // NAS_CONTROLLER_PS_WEIGHTS_CLIENT_H_
