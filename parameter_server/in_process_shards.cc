#include "parameter_server/in_process_shards.h"

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace nas::ps {

absl::StatusOr<std::unique_ptr<InProcessShards>> InProcessShards::Start(int num_shards,
                                                                       int max_message_bytes) {
  auto started = std::make_unique<InProcessShards>();
  for (int i = 0; i < num_shards; ++i) {
    ShardOptions options;
    options.shard_index = i;
    options.num_shards = num_shards;
    ASSIGN_OR_RETURN(std::unique_ptr<Shard> shard, Shard::Create(options));
    started->shards.push_back(std::move(shard));
    started->services.push_back(
        std::make_unique<ParameterServerServiceImpl>(started->shards.back().get()));
    GrpcServerOptions server_options;
    server_options.host = "127.0.0.1";
    server_options.metrics_port = -1;
    if (max_message_bytes > 0) server_options.max_message_bytes = max_message_bytes;
    ASSIGN_OR_RETURN(std::unique_ptr<GrpcServer> server, GrpcServer::Create(server_options));
    RETURN_IF_ERROR(server->Start({started->services.back().get()}));
    started->addresses.push_back(absl::StrCat("127.0.0.1:", server->port()));
    started->servers.push_back(std::move(server));
  }
  return started;
}

}  // namespace nas::ps
