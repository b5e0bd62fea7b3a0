// nas_parameter_server: one shard of the controller's weights. main() only
// wires flags to objects.
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <memory>
#include <string>
#include <thread>

#include "absl/flags/flag.h"
#include "absl/status/statusor.h"
#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "common/auth.h"
#include "common/grpc_server.h"
#include "common/logging.h"
#include "common/process.h"
#include "common/signals.h"
#include "parameter_server/service.h"
#include "parameter_server/shard.h"

ABSL_FLAG(int, shard_index, 0, "This shard's index, 0..num_shards-1.");
ABSL_FLAG(bool, shard_index_from_hostname, false,
          "Take the shard index from the trailing -<ordinal> of the hostname (a Kubernetes "
          "StatefulSet pod, e.g. nas-parameter-server-3 is shard 3) instead of --shard_index.");
ABSL_FLAG(int, num_shards, 1, "Total shards S (1..64).");
ABSL_FLAG(std::string, data_dir, "", "Directory for checkpoints; empty = no durability.");
ABSL_FLAG(int, checkpoint_every_updates, 100,
          "Checkpoint a job after this many updates (0 = only by time and at shutdown).");
ABSL_FLAG(absl::Duration, checkpoint_interval, absl::Seconds(30),
          "Checkpoint a changed job at least this often.");
ABSL_FLAG(std::string, tokens_file, "",
          "File of bearer tokens (one per line, '#' comments) that may call this server: the "
          "controller's --parameter_server_token_file. Empty: open to anyone who reaches the "
          "port.");

namespace {
constexpr int kDefaultPort = 7080;

// The ordinal a StatefulSet gives its pod: the digits after the hostname's
// last '-'. INVALID_ARGUMENT naming the hostname when there is none.
absl::StatusOr<int> OrdinalFromHostname() {
  char host[256] = {0};
  if (::gethostname(host, sizeof(host) - 1) != 0) {
    return absl::InternalError("--shard_index_from_hostname: gethostname failed");
  }
  const std::string hostname(host);
  const std::string::size_type dash = hostname.rfind('-');
  const std::string digits = dash == std::string::npos ? "" : hostname.substr(dash + 1);
  int ordinal = -1;
  const bool all_digits =
      !digits.empty() && digits.size() <= 4 &&
      std::all_of(digits.begin(), digits.end(), [](char c) { return absl::ascii_isdigit(c); });
  if (!all_digits || !absl::SimpleAtoi(digits, &ordinal)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--shard_index_from_hostname: hostname '", hostname,
                     "' does not end in -<ordinal> (expected a StatefulSet pod name such as "
                     "nas-parameter-server-0)"));
  }
  return ordinal;
}
}  // namespace

int main(int argc, char** argv) {
  nas::InitProcess(argc, argv,
                   "nas_parameter_server --shard_index=I|--shard_index_from_hostname --num_shards=S "
                   "--data_dir=DIR "
                   "[--port=7080] [--metrics_port=0]");
  nas::GrpcServerOptions options = nas::ServerOptionsFromFlags("nas_parameter_server");
  if (options.port < 0) options.port = kDefaultPort;
  const int num_shards = absl::GetFlag(FLAGS_num_shards);
  int shard_index = absl::GetFlag(FLAGS_shard_index);
  if (absl::GetFlag(FLAGS_shard_index_from_hostname)) {
    if (shard_index != 0) {
      NAS_LOG(Error) << "give either --shard_index or --shard_index_from_hostname, not both";
      return 2;
    }
    absl::StatusOr<int> ordinal = OrdinalFromHostname();
    if (!ordinal.ok()) {
      NAS_LOG(Error) << ordinal.status();
      return 2;
    }
    if (*ordinal >= num_shards) {
      NAS_LOG(Error) << "--shard_index_from_hostname: ordinal " << *ordinal
                     << " is not below --num_shards=" << num_shards
                     << " (the StatefulSet has more replicas than shards)";
      return 2;
    }
    shard_index = *ordinal;
    NAS_LOG(Info) << "shard index " << shard_index << " from the hostname";
  }
  if (num_shards < 1 || num_shards > 64 || shard_index < 0 || shard_index >= num_shards) {
    NAS_LOG(Error) << "--num_shards must be 1..64 and --shard_index 0..num_shards-1; got "
                   << num_shards << " and " << shard_index;
    return 2;
  }

  std::unique_ptr<nas::BearerTokenAuthenticator> auth;
  if (const std::string path = absl::GetFlag(FLAGS_tokens_file); !path.empty()) {
    auto loaded = nas::BearerTokenAuthenticator::FromFile(
        "--tokens_file", path, "ParameterServer",
        "nas_controller: --parameter_server_token_file");
    if (!loaded.ok()) {
      NAS_LOG(Error) << loaded.status().message();
      return 2;
    }
    auth = std::move(loaded).value();
    NAS_LOG(Info) << "ParameterServer requires a bearer token: " << auth->num_tokens()
                  << " token(s) from --tokens_file";
  } else {
    NAS_LOG(Warning) << "ParameterServer is unauthenticated: anyone who reaches the gRPC port "
                        "may read and change weights (set --tokens_file; docs/security.md)";
  }

  auto server = nas::GrpcServer::Create(options);
  if (!server.ok()) {
    NAS_LOG(Error) << server.status();
    return 1;
  }
  nas::ps::ShardOptions shard_options;
  shard_options.shard_index = shard_index;
  shard_options.num_shards = num_shards;
  shard_options.data_dir = absl::GetFlag(FLAGS_data_dir);
  shard_options.checkpoint_every_updates = absl::GetFlag(FLAGS_checkpoint_every_updates);
  shard_options.checkpoint_interval = absl::GetFlag(FLAGS_checkpoint_interval);
  if ((*server)->metrics() != nullptr) shard_options.metrics = &(*server)->metrics()->registry();
  auto shard = nas::ps::Shard::Create(shard_options);
  if (!shard.ok()) {
    NAS_LOG(Error) << shard.status();
    return 1;
  }
  nas::ps::ParameterServerServiceImpl service(shard->get(), auth.get());
  if (absl::Status started = (*server)->Start({&service}); !started.ok()) {
    NAS_LOG(Error) << started;
    return 1;
  }
  // Time-based checkpoints of jobs that stopped receiving pushes.
  absl::Notification stop;
  std::thread checkpointer([&] {
    while (!stop.WaitForNotificationWithTimeout(absl::Seconds(1))) (*shard)->CheckpointDue();
  });
  const int signal_number = nas::WaitForShutdownSignal();
  NAS_LOG(Info) << "signal " << signal_number << ": shutting down";
  (*server)->Shutdown(absl::Seconds(5));
  stop.Notify();
  checkpointer.join();
  absl::Status saved = (*shard)->CheckpointAll();
  if (!saved.ok()) {
    NAS_LOG(Error) << "final checkpoint: " << saved;
    return 1;
  }
  return 0;
}
