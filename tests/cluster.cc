#include "tests/cluster.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/file_util.h"

namespace nas::testing {

absl::StatusOr<std::unique_ptr<Cluster>> Cluster::Start(const ClusterOptions& options) {
  std::unique_ptr<Cluster> cluster(new Cluster(options));
  cluster->dir_ = NewTempDir(options.name);
  std::vector<std::string> addresses;
  for (int s = 0; s < options.shards; ++s) {
    const std::string ps_dir = absl::StrCat(cluster->dir_, "/ps", s);
    if (absl::Status made = MakeDirectories(ps_dir); !made.ok()) return made;
    std::vector<std::string> flags = {absl::StrCat("--shard_index=", s),
                                      absl::StrCat("--num_shards=", options.shards), "--data_dir=" + ps_dir};
    flags.insert(flags.end(), options.ps_flags.begin(), options.ps_flags.end());
    absl::StatusOr<RunningServer> ps =
        StartServer("parameter_server/nas_parameter_server", flags, NewTempDir(options.name + "-ps"));
    if (!ps.ok()) return ps.status();
    addresses.push_back(absl::StrCat("127.0.0.1:", ps->ready.grpc_port));
    cluster->shards_.push_back(std::make_unique<RunningServer>(*std::move(ps)));
  }
  cluster->shard_list_ = absl::StrJoin(addresses, ",");
  std::vector<std::string> flags = {"--data_dir=" + cluster->dir_ + "/controller",
                                    "--parameter_servers=" + cluster->shard_list_};
  flags.insert(flags.end(), options.controller_flags.begin(), options.controller_flags.end());
  absl::StatusOr<RunningServer> controller =
      StartServer("controller/nas_controller", flags, NewTempDir(options.name + "-controller"));
  if (!controller.ok()) return controller.status();
  cluster->controller_ = std::make_unique<RunningServer>(*std::move(controller));
  cluster->jobs_ = std::make_unique<JobClient>(cluster->controller_port());
  for (int w = 0; w < options.workers; ++w) {
    if (absl::Status started = cluster->StartWorker(); !started.ok()) return started;
  }
  return cluster;
}

absl::Status Cluster::StartWorker(const std::vector<std::string>& extra) {
  const int index = static_cast<int>(workers_.size());
  std::vector<std::string> flags = {absl::StrCat("--controller=127.0.0.1:", controller_port()), "--device=cpu",
                                    absl::StrCat("--worker_id=w", index)};
  if (options_.workers_reach_parameter_servers) flags.push_back("--parameter_servers=" + shard_list_);
  flags.insert(flags.end(), options_.worker_flags.begin(), options_.worker_flags.end());
  flags.insert(flags.end(), extra.begin(), extra.end());
  absl::StatusOr<RunningServer> worker = StartServer(
      "worker/nas_worker", flags, NewTempDir(absl::StrCat(options_.name, "-worker-", index)), "worker_ready_file");
  if (!worker.ok()) return worker.status();
  workers_.push_back(std::make_unique<RunningServer>(*std::move(worker)));
  return absl::OkStatus();
}

std::string Cluster::Logs() const {
  std::string out;
  auto add = [&](const std::string& role, const RunningServer& server) {
    absl::StrAppend(&out, "\n--- ", role, " (", server.log_path, ")\n", LogTail(server.log_path));
  };
  for (size_t s = 0; s < shards_.size(); ++s) add(absl::StrCat("shard ", s), *shards_[s]);
  if (controller_ != nullptr) add("controller", *controller_);
  for (size_t w = 0; w < workers_.size(); ++w) add(absl::StrCat("worker ", w), *workers_[w]);
  return out;
}

}  // namespace nas::testing
