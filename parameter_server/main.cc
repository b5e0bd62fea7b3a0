// nas_parameter_server: one shard of the controller's weights.
// main() only wires flags to objects; the shard logic lives in this directory's
// libraries.
#include <memory>

#include "absl/flags/flag.h"
#include "common/grpc_server.h"
#include "common/logging.h"
#include "common/process.h"
#include "common/signals.h"
#include "proto/parameter_server.grpc.pb.h"

ABSL_FLAG(int, shard_index, 0, "This shard's index, 0..num_shards-1.");
ABSL_FLAG(int, num_shards, 1, "Total shards S (1..64).");
ABSL_FLAG(std::string, data_dir, "", "Directory for checkpoints; empty = no durability.");

namespace {
constexpr int kDefaultPort = 7080;
}  // namespace

int main(int argc, char** argv) {
  nas::InitProcess(argc, argv,
                   "nas_parameter_server --shard_index=I --num_shards=S --data_dir=DIR "
                   "[--port=7080] [--metrics_port=0]");
  nas::GrpcServerOptions options = nas::ServerOptionsFromFlags("nas_parameter_server");
  if (options.port < 0) options.port = kDefaultPort;
  const int num_shards = absl::GetFlag(FLAGS_num_shards);
  const int shard_index = absl::GetFlag(FLAGS_shard_index);
  if (num_shards < 1 || num_shards > 64 || shard_index < 0 || shard_index >= num_shards) {
    NAS_LOG(Error) << "--num_shards must be 1..64 and --shard_index 0..num_shards-1; got "
                   << num_shards << " and " << shard_index;
    return 2;
  }

  auto server = nas::GrpcServer::Create(options);
  if (!server.ok()) {
    NAS_LOG(Error) << server.status();
    return 1;
  }
  nas::v1::ParameterServer::Service service;
  if (absl::Status started = (*server)->Start({&service}); !started.ok()) {
    NAS_LOG(Error) << started;
    return 1;
  }
  const int signal_number = nas::WaitForShutdownSignal();
  NAS_LOG(Info) << "signal " << signal_number << ": shutting down";
  (*server)->Shutdown(absl::Seconds(5));
  return 0;
}
