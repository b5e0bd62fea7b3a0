// A cluster of real processes for cross-process tests and benchmarks: S
// parameter-server shards, the controller and W workers, each started with
// StartServer (test_util.h) on 127.0.0.1 at ports picked at run time, and a
// JobClient for the controller. Stopped (killed) when destroyed.
#ifndef NAS_TESTS_CLUSTER_H_
#define NAS_TESTS_CLUSTER_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "tests/job_client.h"
#include "tests/test_util.h"

namespace nas::testing {

struct ClusterOptions {
  // Scratch directories are named after it.
  std::string name = "cluster";
  int shards = 1;
  int workers = 0;
  // Added to each role's command line.
  std::vector<std::string> ps_flags;
  std::vector<std::string> controller_flags;
  std::vector<std::string> worker_flags;
  // Workers also get --parameter_servers naming the shards (one-shot
  // search: they pull and push the shared weights).
  bool workers_reach_parameter_servers = false;
};

class Cluster {
 public:
  // Starts the shards (each with a data_dir of its own), the controller
  // (--parameter_servers naming them) and `workers` workers (StartWorker).
  static absl::StatusOr<std::unique_ptr<Cluster>> Start(const ClusterOptions& options);

  // One more worker: --controller, --device=cpu, --worker_id=w<N>
  // (--parameter_servers if the options say so), the options'
  // worker_flags, then `flags`.
  absl::Status StartWorker(const std::vector<std::string>& flags = {});

  // The cluster's scratch directory (the controller's data is in
  // dir()/controller).
  const std::string& dir() const { return dir_; }
  // "127.0.0.1:P0,127.0.0.1:P1,...": the shards, as --parameter_servers takes them.
  const std::string& shard_list() const { return shard_list_; }
  int controller_port() const { return controller_->ready.grpc_port; }
  RunningServer& controller() { return *controller_; }
  std::vector<std::unique_ptr<RunningServer>>& shards() { return shards_; }
  std::vector<std::unique_ptr<RunningServer>>& workers() { return workers_; }
  JobClient& jobs() { return *jobs_; }

  // The tails of every process's log, for failure messages.
  std::string Logs() const;

 private:
  explicit Cluster(ClusterOptions options) : options_(std::move(options)) {}
  const ClusterOptions options_;
  std::string dir_, shard_list_;
  std::vector<std::unique_ptr<RunningServer>> shards_;
  std::unique_ptr<RunningServer> controller_;
  std::vector<std::unique_ptr<RunningServer>> workers_;
  std::unique_ptr<JobClient> jobs_;
};

}  // namespace nas::testing

#endif  // NAS_TESTS_CLUSTER_H_
