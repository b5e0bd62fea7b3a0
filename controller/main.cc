// nas_controller: the front door. Serves JobService (nasctl) and TaskService
// (workers) and runs each job's K replica loops against the parameter servers.
// main() only wires flags to objects.
#include <memory>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/strings/str_split.h"
#include "common/auth.h"
#include "common/channel.h"
#include "common/grpc_server.h"
#include "common/logging.h"
#include "common/process.h"
#include "common/signals.h"
#include "controller/job_manager.h"
#include "controller/ps_weights_client.h"
#include "controller/services.h"
#include "controller/trial_store.h"

ABSL_FLAG(std::string, data_dir, "", "Directory of the trial store (created if missing). Required.");
ABSL_FLAG(std::string, parameter_servers, "",
          "Comma-separated host:port of every parameter-server shard, in shard order. Empty: "
          "only parameter-free strategies (random) can run.");
ABSL_FLAG(int, max_running_jobs, 16, "Jobs that may run at once.");
ABSL_FLAG(absl::Duration, weights_retention, absl::Hours(1),
          "How long an ended job's controller weights stay on the parameter servers (for "
          "inspection) before the controller drops them.");
ABSL_FLAG(bool, sync_every_commit, true,
          "fsync the trial store on every commit (results survive power loss once "
          "acknowledged); false survives process crashes only, and is faster.");
ABSL_FLAG(absl::Duration, parameter_server_timeout, absl::Seconds(10),
          "Deadline of each call to a parameter server.");
ABSL_FLAG(std::string, job_tokens_file, "",
          "File of bearer tokens (one per line, '#' comments) that may call JobService "
          "(nasctl users). Empty: JobService is open to anyone who reaches the port.");
ABSL_FLAG(std::string, worker_tokens_file, "",
          "File of bearer tokens that may call TaskService (workers). Empty: TaskService is "
          "open to anyone who reaches the port.");
ABSL_FLAG(std::string, parameter_server_token_file, "",
          "File holding the one bearer token this controller presents to the parameter servers "
          "(their --tokens_file). Empty: none is sent.");

ABSL_FLAG(std::string, backup_dir, "",
          "Directory for scheduled online backups of the trial store (SQLite's backup API; "
          "docs/trial_store.md has the restore procedure). Empty: no backups.");
ABSL_FLAG(absl::Duration, backup_interval, absl::Hours(1),
          "Time between backups of the trial store (with --backup_dir).");
ABSL_FLAG(int, backup_keep, 24, "Backups kept in --backup_dir; older ones are removed.");

namespace {
constexpr int kDefaultPort = 7070;

// The authenticator of `service` from the token file named by `flag`, or
// null (with a warning) when `path` is empty and the service stays open.
absl::StatusOr<std::unique_ptr<nas::BearerTokenAuthenticator>> AuthenticatorFromFlag(
    const std::string& flag, const std::string& path, const std::string& service,
    const std::string& hint) {
  if (path.empty()) {
    NAS_LOG(Warning) << service << " is unauthenticated: anyone who reaches the gRPC port may "
                     << "call it (set " << flag << "; docs/security.md)";
    return std::unique_ptr<nas::BearerTokenAuthenticator>();
  }
  auto auth = nas::BearerTokenAuthenticator::FromFile(flag, path, service, hint);
  if (!auth.ok()) return auth.status();
  NAS_LOG(Info) << service << " requires a bearer token: " << (*auth)->num_tokens()
                << " token(s) from " << flag;
  return auth;
}
}  // namespace

int main(int argc, char** argv) {
  nas::InitProcess(argc, argv,
                   "nas_controller --data_dir=DIR --parameter_servers=HOST:PORT,... "
                   "[--port=7070] [--metrics_port=0]");
  nas::GrpcServerOptions options = nas::ServerOptionsFromFlags("nas_controller");
  if (options.port < 0) options.port = kDefaultPort;
  const std::string data_dir = absl::GetFlag(FLAGS_data_dir);
  if (data_dir.empty()) {
    NAS_LOG(Error) << "--data_dir is required (the trial store lives there)";
    return 2;
  }

  auto job_auth = AuthenticatorFromFlag("--job_tokens_file", absl::GetFlag(FLAGS_job_tokens_file),
                                        "JobService", "nasctl: --token_file, --token or $NAS_TOKEN");
  auto task_auth =
      AuthenticatorFromFlag("--worker_tokens_file", absl::GetFlag(FLAGS_worker_tokens_file),
                            "TaskService", "nas_worker: --token_file");
  for (const auto* auth : {&job_auth, &task_auth}) {
    if (!auth->ok()) {
      NAS_LOG(Error) << auth->status().message();
      return 2;
    }
  }
  absl::StatusOr<nas::ChannelOptions> ps_channel = nas::ChannelOptionsWithTokenFile(
      "--parameter_server_token_file", absl::GetFlag(FLAGS_parameter_server_token_file));
  if (!ps_channel.ok()) {
    NAS_LOG(Error) << ps_channel.status().message();
    return 2;
  }

  auto server = nas::GrpcServer::Create(options);
  if (!server.ok()) {
    NAS_LOG(Error) << server.status();
    return 1;
  }

  nas::controller::TrialStoreOptions store_options;
  store_options.path = data_dir + "/trials.db";
  store_options.sync_every_commit = absl::GetFlag(FLAGS_sync_every_commit);
  auto store = nas::controller::TrialStore::Open(store_options);
  if (!store.ok()) {
    // A damaged file says which and how to restore it (DATA_LOSS).
    NAS_LOG(Error) << store.status().message();
    return 1;
  }
  std::unique_ptr<nas::controller::TrialStoreBackups> backups;
  if (const std::string backup_dir = absl::GetFlag(FLAGS_backup_dir); !backup_dir.empty()) {
    nas::controller::TrialStoreBackupOptions backup_options;
    backup_options.store = store->get();
    backup_options.dir = backup_dir;
    backup_options.interval = absl::GetFlag(FLAGS_backup_interval);
    backup_options.keep = absl::GetFlag(FLAGS_backup_keep);
    auto started = nas::controller::TrialStoreBackups::Start(backup_options);
    if (!started.ok()) {
      NAS_LOG(Error) << started.status().message();
      return 2;
    }
    backups = std::move(started).value();
    NAS_LOG(Info) << "trial store backups to " << backup_dir << " every "
                  << absl::FormatDuration(backup_options.interval) << ", the newest "
                  << backup_options.keep << " kept";
  }

  std::unique_ptr<nas::controller::WeightsClient> weights;
  const std::string shards = absl::GetFlag(FLAGS_parameter_servers);
  if (!shards.empty()) {
    std::vector<std::string> addresses = absl::StrSplit(shards, ',', absl::SkipEmpty());
    auto client = nas::controller::CreatePsWeightsClient(
        addresses, absl::GetFlag(FLAGS_parameter_server_timeout), options.max_message_bytes,
        *ps_channel);
    if (!client.ok()) {
      NAS_LOG(Error) << client.status();
      return 2;
    }
    weights = std::move(client).value();
    NAS_LOG(Info) << addresses.size() << " parameter server(s) over "
                  << nas::DescribeChannelSecurity(*ps_channel)
                  << (ps_channel->token.empty() ? ", no bearer token" : ", with a bearer token");
  }

  nas::controller::JobManagerOptions manager_options;
  manager_options.store = store->get();
  manager_options.weights = weights.get();
  manager_options.max_running_jobs = absl::GetFlag(FLAGS_max_running_jobs);
  manager_options.weights_retention = absl::GetFlag(FLAGS_weights_retention);
  if ((*server)->metrics() != nullptr) manager_options.metrics = &(*server)->metrics()->registry();
  auto manager = nas::controller::JobManager::Create(manager_options);
  if (!manager.ok()) {
    NAS_LOG(Error) << manager.status();
    return 1;
  }

  nas::controller::JobServiceImpl job_service(manager->get(), job_auth->get());
  nas::controller::TaskServiceImpl task_service((*manager)->trials(), task_auth->get());
  if (absl::Status started = (*server)->Start({&job_service, &task_service}); !started.ok()) {
    NAS_LOG(Error) << started;
    return 1;
  }
  const int signal_number = nas::WaitForShutdownSignal();
  NAS_LOG(Info) << "signal " << signal_number << ": shutting down";
  // Stop taking calls first (open watches end), then stop the replicas; jobs
  // stay running in the store and resume on the next start.
  (*server)->Shutdown(absl::Seconds(5));
  manager->reset();
  backups.reset();
  return 0;
}
