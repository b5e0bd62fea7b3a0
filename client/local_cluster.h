// `nasctl local up|down|status`: a whole nas-service cluster as child
// processes on 127.0.0.1 — S parameter servers, the controller and W workers —
// with one data directory and a log file per process. The processes outlive
// the nasctl call that started them; DATA_DIR/cluster.txt records each one by
// its pid and start time (never by its command line, which is nasctl's until
// the child has exec'd), with the command line it was started with.
#ifndef NAS_CLIENT_LOCAL_CLUSTER_H_
#define NAS_CLIENT_LOCAL_CLUSTER_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace nas::client {

struct LocalClusterOptions {
  // Holds every process's data, ready file and log, and cluster.txt.
  std::string data_dir;
  // Directory with the binaries: either the Bazel layout (bazel-bin, with
  // controller/nas_controller ...) or one flat directory.
  std::string bin_dir;
  // Parameter-server shards (S) and workers (W).
  int num_shards = 1;
  int num_workers = 2;
  // The controller's gRPC port; 0 picks a free one.
  int controller_port = 7070;
  // LibTorch threads per worker (0 = LibTorch's default) and device.
  int worker_threads = 1;
  std::string device = "auto";
  // The workers' --data_roots (comma-separated; empty keeps the worker's
  // default): the only directories job specs may name tables and datasets in.
  std::string data_roots;
  // How long to wait for every process to become healthy.
  absl::Duration ready_timeout = absl::Seconds(120);
};

struct LocalProcess {
  std::string name;  // "ps-0", "controller", "worker-1"
  int pid = 0;
  // /proc/PID/stat's start time: the pid names this process only while it
  // matches (common/subprocess.h, ProcessId).
  int64_t start_time = 0;
  std::string log_path;
  std::string ready_path;
  // The command line it was started with (without the ready-file flag).
  std::vector<std::string> argv;
  // Filled by LocalStatus.
  bool alive = false;
  bool healthy = false;
  int grpc_port = 0;
  int metrics_port = -1;
};

// Starts the cluster and waits until every process is healthy. Fails (and
// stops everything it started) if one dies — the error shows its exit status
// and the end of its log — or does not become healthy in time, or if a
// cluster already runs from data_dir. Each process is recorded in the state
// file right after its fork, so `LocalDown` finds it even if this call is
// killed.
absl::StatusOr<std::vector<LocalProcess>> LocalUp(const LocalClusterOptions& options);

// Stops every process gracefully (SIGTERM, then SIGKILL after `grace`), workers
// first, and checks none is left. OK if nothing runs.
absl::Status LocalDown(const std::string& data_dir, absl::Duration grace);

// Stops the recorded process `name` ("controller", "ps-0", "worker-1", as
// LocalStatus names them) if it runs and starts it again with its previous
// command line, ports and data directory; waits until it is healthy (and
// stops it again if it does not become so).
absl::StatusOr<LocalProcess> LocalRestart(const std::string& data_dir, const std::string& name,
                                          absl::Duration grace, absl::Duration ready_timeout);

// The recorded processes and whether each is alive and healthy.
absl::StatusOr<std::vector<LocalProcess>> LocalStatus(const std::string& data_dir);

// The default data directory: $NAS_LOCAL_DIR, else $HOME/.nas-service/local.
std::string DefaultLocalDataDir();
// The directory of the running nasctl's sibling binaries.
std::string DefaultBinDir();

// The controller address of a running local cluster ("127.0.0.1:7070").
absl::StatusOr<std::string> LocalControllerAddress(const std::string& data_dir);

// A Prometheus scrape config (YAML) for every process of a running cluster.
absl::StatusOr<std::string> PrometheusScrapeConfig(const std::string& data_dir);

}  // namespace nas::client

#endif  // NAS_CLIENT_LOCAL_CLUSTER_H_
