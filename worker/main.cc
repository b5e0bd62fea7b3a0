// nas_worker: acquires child architectures from the controller, trains them
// with LibTorch (CUDA when available) and reports their rewards. main() only
// wires flags to objects.
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <memory>
#include <thread>

#include <grpcpp/grpcpp.h>

#include "absl/flags/flag.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/synchronization/notification.h"
#include "absl/strings/str_cat.h"
#include "common/channel.h"
#include "common/file_util.h"
#include "common/logging.h"
#include "common/metrics.h"
#include "common/process.h"
#include "common/signals.h"
#include "controller/ps_weights_client.h"
#include "worker/device.h"
#include "worker/progress_file.h"
#include "worker/worker_loop.h"

ABSL_FLAG(std::string, controller, "localhost:7070", "Controller address host:port.");
ABSL_FLAG(std::string, device, "auto", "auto (CUDA when available), cpu, cuda or cuda:N.");
ABSL_FLAG(int, threads, 0, "LibTorch CPU threads; 0 = LibTorch's default.");
ABSL_FLAG(std::string, worker_id, "", "Name reported to the controller (default: hostname-pid).");
ABSL_FLAG(std::string, worker_ready_file, "",
          "If set, written once running: grpc_port=0, metrics_port=, pid= lines.");
ABSL_FLAG(absl::Duration, heartbeat_interval, absl::Seconds(2),
          "Heartbeats go out at least this often while a task runs.");
ABSL_FLAG(int64_t, max_child_bytes, 0,
          "Ceiling on what training one child takes (activations of a batch plus 16 bytes per "
          "parameter, worked out before it is built); a child over it fails for good with its size. "
          "0 = three quarters of the memory this worker may use (RAM or its cgroup's limit); -1 = none.");
ABSL_FLAG(std::string, data_roots, "/usr/share/datasets,/data",
          "Comma-separated directories under which lookup tables and datasets named by job specs are "
          "read (regular files only); anything else is refused.");
ABSL_FLAG(absl::Duration, evaluator_stall_timeout, absl::Minutes(10),
          "An evaluation showing no progress (no batch, no epoch) for this long is abandoned and "
          "reported failed, so a stuck evaluator cannot hold a task.");
ABSL_FLAG(absl::Duration, cancel_grace, absl::Seconds(5),
          "After a cancel (or SIGTERM) an evaluation gets this long to stop before it is abandoned.");
ABSL_FLAG(absl::Duration, shutdown_grace, absl::Seconds(20),
          "On SIGTERM the worker exits within this long even if a stuck evaluation thread or a call "
          "to the controller does not return (keep it under the orchestrator's grace period).");
ABSL_FLAG(std::string, token_file, "",
          "File holding the one bearer token this worker presents to the controller (one of "
          "its --worker_tokens_file). Empty: none is sent.");

ABSL_FLAG(bool, allow_command_evaluator, false,
          "Let job specs with an evaluator.command run their command on this worker (as this "
          "worker's user, docs/command_evaluator.md). Off: such trials fail permanently with an "
          "error naming this flag.");
ABSL_FLAG(std::string, command_work_dir, "",
          "Directory under which each command-evaluator attempt gets its working directory; empty: "
          "$TMPDIR/nas-worker-trials.");
ABSL_FLAG(bool, keep_command_dirs, false,
          "Keep each command-evaluator attempt's working directory (and its output/) instead of "
          "removing it when the attempt ends.");
ABSL_FLAG(std::string, progress_file, "",
          "If set, holds the Unix time of this worker's last progress (a poll of the "
          "controller or a finished epoch), rewritten at most every 10 s: the Kubernetes "
          "liveness probe restarts a worker whose trainer stopped making progress.");
ABSL_FLAG(std::string, parameter_servers, "",
          "Comma-separated host:port of every parameter-server shard, in shard order (the "
          "controller's --parameter_servers). One-shot search tasks (evaluator.shared) pull and "
          "push their supernet's weights there; empty: such tasks fail for good naming this flag.");
ABSL_FLAG(absl::Duration, parameter_server_timeout, absl::Seconds(30),
          "Deadline of each call to a parameter server.");
ABSL_FLAG(std::string, parameter_server_token_file, "",
          "File holding the one bearer token this worker presents to the parameter servers "
          "(their --tokens_file). Empty: none is sent.");
ABSL_FLAG(std::string, parameter_server_tls_server_name, "",
          "Name to verify in the parameter servers' certificates (with --tls_ca); empty: "
          "--tls_server_name.");
namespace {

// Three quarters of what this process may use: physical memory, or its
// cgroup's limit (v2 memory.max, v1 memory.limit_in_bytes) when lower.
int64_t DefaultMaxChildBytes() {
  int64_t limit = static_cast<int64_t>(::sysconf(_SC_PHYS_PAGES)) * ::sysconf(_SC_PAGE_SIZE);
  for (const char* path : {"/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"}) {
    absl::StatusOr<std::string> text = nas::ReadRegularFile(path, 64);
    int64_t value = 0;
    if (text.ok() && absl::SimpleAtoi(absl::StripAsciiWhitespace(*text), &value) && value > 0) {
      limit = std::min(limit, value);
    }
  }
  return limit / 4 * 3;
}

}  // namespace

int main(int argc, char** argv) {
  nas::InitProcess(argc, argv,
                   "nas_worker --controller=HOST:PORT [--device=auto|cpu|cuda] [--threads=N] "
                   "[--metrics_port=0]");
  auto device = nas::worker::ResolveDevice(absl::GetFlag(FLAGS_device));
  if (!device.ok()) {
    NAS_LOG(Error) << device.status();
    return 2;
  }
  absl::StatusOr<nas::ChannelOptions> channel =
      nas::ChannelOptionsWithTokenFile("--token_file", absl::GetFlag(FLAGS_token_file));
  if (!channel.ok()) {
    NAS_LOG(Error) << channel.status().message();
    return 2;
  }
  nas::worker::SetTorchThreads(absl::GetFlag(FLAGS_threads));
  std::shared_ptr<nas::controller::WeightsClient> parameter_servers;
  if (const std::string shards = absl::GetFlag(FLAGS_parameter_servers); !shards.empty()) {
    absl::StatusOr<nas::ChannelOptions> ps_channel = nas::ChannelOptionsWithTokenFile(
        "--parameter_server_token_file", absl::GetFlag(FLAGS_parameter_server_token_file));
    if (!ps_channel.ok()) {
      NAS_LOG(Error) << ps_channel.status().message();
      return 2;
    }
    if (const std::string name = absl::GetFlag(FLAGS_parameter_server_tls_server_name); !name.empty()) {
      ps_channel->tls_server_name = name;
    }
    if (absl::Status valid = nas::ValidateChannelOptions(*ps_channel); !valid.ok()) {
      NAS_LOG(Error) << "--parameter_server_tls_server_name: " << valid.message();
      return 2;
    }
    std::vector<std::string> addresses = absl::StrSplit(shards, ',', absl::SkipEmpty());
    auto client = nas::controller::CreatePsWeightsClient(
        addresses, absl::GetFlag(FLAGS_parameter_server_timeout),
        nas::MaxMessageBytesFlag(), *ps_channel);
    if (!client.ok()) {
      NAS_LOG(Error) << "--parameter_servers: " << client.status();
      return 2;
    }
    parameter_servers = std::move(client).value();
    NAS_LOG(Info) << addresses.size() << " parameter server(s) for one-shot search over "
                  << nas::DescribeChannelSecurity(*ps_channel)
                  << (ps_channel->token.empty() ? ", no bearer token" : ", with a bearer token");
  }

  std::unique_ptr<nas::MetricsServer> metrics;
  if (nas::MetricsPortFlag() >= 0) {
    nas::MetricsServerOptions metrics_options;
    metrics_options.host = nas::HostFlag();
    metrics_options.port = nas::MetricsPortFlag();
    metrics_options.binary = "nas_worker";
    auto created = nas::MetricsServer::Create(metrics_options);
    if (!created.ok()) {
      NAS_LOG(Error) << created.status();
      return 1;
    }
    metrics = std::move(created).value();
  }
  std::string worker_id = absl::GetFlag(FLAGS_worker_id);
  if (worker_id.empty()) {
    char host[256] = {0};
    ::gethostname(host, sizeof(host) - 1);
    worker_id = absl::StrCat(host, "-", ::getpid());
  }
  nas::worker::WorkerLoopOptions options;
  options.worker_id = worker_id;
  options.evaluator.device = *device;
  const int64_t max_child_bytes = absl::GetFlag(FLAGS_max_child_bytes);
  options.evaluator.max_child_bytes = max_child_bytes == 0 ? DefaultMaxChildBytes() : std::max<int64_t>(0, max_child_bytes);
  options.evaluator.data_roots = absl::StrSplit(absl::GetFlag(FLAGS_data_roots), ',', absl::SkipEmpty());
  options.evaluator.allow_command = absl::GetFlag(FLAGS_allow_command_evaluator);
  options.evaluator.command_work_dir = absl::GetFlag(FLAGS_command_work_dir);
  options.evaluator.keep_command_dirs = absl::GetFlag(FLAGS_keep_command_dirs);
  options.evaluator.parameter_servers = parameter_servers;
  options.stall_timeout = absl::GetFlag(FLAGS_evaluator_stall_timeout);
  options.cancel_grace = absl::GetFlag(FLAGS_cancel_grace);
  const int threads = absl::GetFlag(FLAGS_threads);
  options.on_evaluation_thread = [threads] { nas::worker::UseTorchThreadsOnThisThread(threads); };
  options.heartbeat_interval = absl::GetFlag(FLAGS_heartbeat_interval);
  if (metrics) options.metrics = &metrics->registry();
  std::unique_ptr<nas::worker::ProgressFile> progress;
  if (const std::string path = absl::GetFlag(FLAGS_progress_file); !path.empty()) {
    progress = std::make_unique<nas::worker::ProgressFile>(path, absl::Seconds(10));
    // Written once before the loop, so that the probe finds it at start.
    if (absl::Status written = progress->Update(absl::Now()); !written.ok()) {
      NAS_LOG(Error) << "--progress_file: " << written;
      return 1;
    }
    options.on_progress = [&progress] {
      if (absl::Status written = progress->Update(absl::Now()); !written.ok()) {
        NAS_LOG(Warning) << "--progress_file: " << written;
      }
    };
  }
  std::shared_ptr<nas::v1::TaskService::StubInterface> stub =
      nas::v1::TaskService::NewStub(nas::CreateChannel(absl::GetFlag(FLAGS_controller), *channel));
  nas::worker::WorkerLoop loop(options, stub);

  NAS_LOG(Info) << "nas_worker " << worker_id << " on " << *device << ", children up to "
                << (options.evaluator.max_child_bytes > 0 ? absl::StrCat(options.evaluator.max_child_bytes >> 20, " MiB")
                                                          : std::string("any size"))
                << ", data under " << absl::StrJoin(options.evaluator.data_roots, ",")
                << (options.evaluator.allow_command ? ", command evaluator allowed" : "") << ", controller "
                << absl::GetFlag(FLAGS_controller) << " over "
                << nas::DescribeChannelSecurity(*channel)
                << (channel->token.empty() ? "" : " with a bearer token") << ", /metrics on port "
                << (metrics ? metrics->port() : -1);
  if (const std::string ready = absl::GetFlag(FLAGS_worker_ready_file); !ready.empty()) {
    absl::Status written = nas::WriteFileAtomically(
        ready, absl::StrCat("grpc_port=0\nmetrics_port=", metrics ? metrics->port() : -1,
                            "\npid=", ::getpid(), "\n"));
    if (!written.ok()) {
      NAS_LOG(Error) << written;
      return 1;
    }
  }
  absl::Notification stopped;
  std::thread runner([&loop, &stopped] {
    loop.Run();
    stopped.Notify();
  });
  const int signal_number = nas::WaitForShutdownSignal();
  NAS_LOG(Info) << "signal " << signal_number << ": stopping (a running task is handed back)";
  loop.Stop();
  // The loop abandons an evaluation that ignores the cancel after
  // --cancel_grace; this bounds everything else (a hung call, a bug).
  const bool clean = stopped.WaitForNotificationWithTimeout(absl::GetFlag(FLAGS_shutdown_grace));
  if (!clean || loop.abandoned() > 0) {
    // A stuck thread cannot be joined, and static destructors must not run
    // under it: leave at once.
    NAS_LOG(Warning) << "exiting without joining "
                     << (clean ? absl::StrCat(loop.abandoned(), " stuck evaluation thread(s)")
                               : absl::StrCat("the worker loop (not stopped within --shutdown_grace ",
                                              absl::FormatDuration(absl::GetFlag(FLAGS_shutdown_grace)), ")"));
    std::fflush(nullptr);
    ::_exit(0);
  }
  runner.join();
  return 0;
}
