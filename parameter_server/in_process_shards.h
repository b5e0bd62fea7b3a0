// For tests: S real parameter-server shards (Shard and its gRPC service) in
// this process, each serving on 127.0.0.1 at a port picked at run time.
#ifndef NAS_PARAMETER_SERVER_IN_PROCESS_SHARDS_H_
#define NAS_PARAMETER_SERVER_IN_PROCESS_SHARDS_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/grpc_server.h"
#include "parameter_server/service.h"
#include "parameter_server/shard.h"

namespace nas::ps {

struct InProcessShards {
  // Shards without checkpoints or metrics, serving plaintext without auth;
  // max_message_bytes > 0 replaces the servers' default message limit.
  static absl::StatusOr<std::unique_ptr<InProcessShards>> Start(int num_shards,
                                                                int max_message_bytes = 0);

  // In this order, so that the servers stop before their services and shards go.
  std::vector<std::unique_ptr<Shard>> shards;
  std::vector<std::unique_ptr<ParameterServerServiceImpl>> services;
  std::vector<std::unique_ptr<GrpcServer>> servers;
  // "127.0.0.1:port", one per shard.
  std::vector<std::string> addresses;
};

}  // namespace nas::ps

#endif  // NAS_PARAMETER_SERVER_IN_PROCESS_SHARDS_H_
