// Chaos: a local cluster (S = 2 parameter servers, the controller, W = 4
// workers; a REINFORCE job with K = 4, m = 2 and a synthetic evaluator of
// 0.2 s per task) while a random process (a worker, a parameter server or
// the controller, a third each) is SIGKILLed every 0.3-0.8 s and
// restarted on the same port and data directory, as Kubernetes would, at
// least 20 times. Two more faults hit the parameter servers, whose data
// dirs are small tmpfs mounts in mount namespaces of their own:
//   * disk full: one shard's data dir is filled up until it has refused
//     pushes (its checkpoints fail) and 6 more kills have passed, then freed;
//   * lost shard data: one shard is killed, its data dir wiped, and it
//     restarts empty; the controller re-initialises it from the θ it last
//     pulled (controller/replica.cc).
// Then:
//   * the job finishes its whole budget;
//   * every trial a worker got an OK ReportResult for is in the trial store
//     exactly once, succeeded, and the store holds no trial twice;
//   * no parameter-server version went back past the checkpoint on disk at
//     the kill;
//   * the final controller weights are finite;
//   * no process is left behind.
// The random seed is printed; NAS_CHAOS_SEED=<n> replays a run's schedule.
#include <dirent.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "common/file_util.h"
#include "gtest/gtest.h"
#include "parameter_server/checkpoint.h"
#include "proto/job_service.grpc.pb.h"
#include "proto/parameter_server.grpc.pb.h"
#include "tests/test_util.h"

namespace nas {
namespace {

using ::nas::testing::LogTail;
using ::nas::testing::NamespacedTmpfs;
using ::nas::testing::NewTempDir;
using ::nas::testing::RunningServer;
using ::nas::testing::StartServer;

constexpr int kShards = 2;
constexpr int kWorkers = 4;
constexpr int kMinKills = 20;
constexpr int kBudget = 400;
// The kill after which the disk-full fault starts, the number of kills it
// lasts at least, and the first kill after which a shard loses its data.
constexpr int kDiskFullAt = 3;
constexpr int kDiskFullKills = 6;
constexpr int kLoseDataFrom = 12;
constexpr char kRefusing[] = "pushes are refused until a checkpoint succeeds";

// A port nobody listens on right now (the kernel's pick for port 0).
int FreePort() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof(addr);
  int port = 0;
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0 &&
      getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
    port = ntohs(addr.sin_port);
  }
  close(fd);
  return port;
}

// One process of the cluster: how to (re)start it, and the running one.
struct Member {
  std::string name, binary, dir, ready_flag;
  std::vector<std::string> args;
  // Runs the binary (in a shard's mount namespace); empty for the others.
  std::vector<std::string> wrapper;
  std::optional<RunningServer> running;
  int restarts = 0;

  absl::Status Start() {
    running.reset();
    auto started = StartServer(binary, args, dir, ready_flag, absl::Seconds(60), wrapper);
    if (!started.ok()) return started.status();
    running.emplace(std::move(started).value());
    return absl::OkStatus();
  }
};

class ChaosTest : public ::testing::Test {
 protected:
  std::shared_ptr<grpc::Channel> Channel(int port) {
    return grpc::CreateChannel(absl::StrCat("127.0.0.1:", port), grpc::InsecureChannelCredentials());
  }

  // GetJob through whichever controller is up; nullopt while it is away.
  std::optional<v1::Job> GetJob(const std::string& job_id) {
    auto stub = v1::JobService::NewStub(Channel(controller_port_));
    v1::GetJobRequest request;
    request.set_job_id(job_id);
    v1::Job job;
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(5)));
    if (!stub->GetJob(&context, request, &job).ok()) return std::nullopt;
    return job;
  }

  // The newest checkpointed version of the job on a shard's disk (-1: none).
  int64_t CheckpointVersion(int shard, const std::string& job_id) {
    auto loaded = ps::LoadCheckpoints(ps_disks_[shard]->View());
    if (!loaded.ok()) return -1;
    for (const ps::LoadedCheckpoint& job : loaded->jobs) {
      if (job.checkpoint.job_id() == job_id) return job.checkpoint.version();
    }
    return -1;
  }

  absl::StatusOr<v1::PullResponse> Pull(int shard, const std::string& job_id) {
    auto stub = v1::ParameterServer::NewStub(Channel(ps_ports_[shard]));
    v1::PullRequest request;
    request.set_job_id(job_id);
    v1::PullResponse response;
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(5)));
    grpc::Status status = stub->Pull(&context, request, &response);
    if (!status.ok()) {
      return absl::Status(static_cast<absl::StatusCode>(status.error_code()),
                          status.error_message());
    }
    return response;
  }

  int controller_port_ = 0;
  std::vector<int> ps_ports_;
  std::vector<std::string> ps_data_;
  std::vector<std::unique_ptr<NamespacedTmpfs>> ps_disks_;
};

TEST_F(ChaosTest, RandomKillNineAndRestartLosesNoResult) {
  const std::string base = NewTempDir("chaos");
  const char* seed_env = std::getenv("NAS_CHAOS_SEED");
  const uint32_t seed =
      seed_env != nullptr ? static_cast<uint32_t>(std::atoi(seed_env)) : std::random_device{}();
  std::printf("chaos seed %u (replay with NAS_CHAOS_SEED=%u)\n", seed, seed);
  std::mt19937 rng(seed);

  std::vector<Member> members;
  std::vector<std::string> ps_addresses;
  for (int i = 0; i < kShards; ++i) {
    const int port = FreePort();
    ASSERT_GT(port, 0);
    ps_ports_.push_back(port);
    ps_data_.push_back(absl::StrCat(base, "/ps", i, "/data"));
    ps_addresses.push_back(absl::StrCat("127.0.0.1:", port));
    auto disk = NamespacedTmpfs::Create(ps_data_.back(), "16m", base);
    ASSERT_TRUE(disk.ok()) << disk.status();
    ps_disks_.push_back(*std::move(disk));
    Member m;
    m.name = absl::StrCat("parameter server ", i);
    m.binary = "parameter_server/nas_parameter_server";
    m.dir = absl::StrCat(base, "/ps", i);
    m.ready_flag = "ready_file";
    m.args = {absl::StrCat("--shard_index=", i), absl::StrCat("--num_shards=", kShards),
              "--data_dir=" + ps_data_.back(), "--checkpoint_every_updates=5",
              "--checkpoint_interval=1s", absl::StrCat("--port=", port)};
    m.wrapper = ps_disks_.back()->Enter();
    members.push_back(std::move(m));
  }
  controller_port_ = FreePort();
  ASSERT_GT(controller_port_, 0);
  {
    Member m;
    m.name = "controller";
    m.binary = "controller/nas_controller";
    m.dir = base + "/controller";
    m.ready_flag = "ready_file";
    m.args = {"--data_dir=" + base + "/controller/data",
              "--parameter_servers=" + absl::StrJoin(ps_addresses, ","),
              "--parameter_server_timeout=2s", absl::StrCat("--port=", controller_port_)};
    members.push_back(std::move(m));
  }
  for (int w = 0; w < kWorkers; ++w) {
    Member m;
    m.name = absl::StrCat("worker ", w);
    m.binary = "worker/nas_worker";
    m.dir = absl::StrCat(base, "/worker", w);
    m.ready_flag = "worker_ready_file";
    m.args = {absl::StrCat("--controller=127.0.0.1:", controller_port_), "--device=cpu",
              "--threads=1", absl::StrCat("--worker_id=chaos-worker-", w)};
    members.push_back(std::move(m));
  }
  for (Member& m : members) {
    ASSERT_TRUE(MakeDirectories(m.dir).ok());
    absl::Status started = m.Start();
    ASSERT_TRUE(started.ok()) << m.name << ": " << started;
  }

  auto jobs = v1::JobService::NewStub(Channel(controller_port_));
  v1::SubmitJobRequest submit;
  submit.set_spec_yaml(absl::StrCat(R"(
name: chaos
search_space:
  cell: {num_nodes: 4, operations: [none, skip_connect, nor_conv_1x1, nor_conv_3x3, avg_pool_3x3]}
strategy: {name: reinforce, seed: 7}
controller: {learning_rate: 0.0001}
parallelism: {num_replicas: 4, children_per_replica: 2}
budget: {max_trials: )", kBudget, ", max_samples: ", kBudget, R"(}
evaluator:
  synthetic: {duration_seconds: 0.2, epochs: 2}
  lease_seconds: 2
  max_attempts: 20
)"));
  v1::SubmitJobResponse submitted;
  {
    grpc::ClientContext context;
    grpc::Status status = jobs->SubmitJob(&context, submit, &submitted);
    ASSERT_TRUE(status.ok()) << status.error_message();
  }
  const std::string job_id = submitted.job().job_id();

  // The chaos: kill, restart, check the parameter servers' versions.
  std::map<std::string, int> kills_by_member;
  int kills = 0;
  // A third of the kills each hit a worker, a parameter server, the controller.
  auto pick = [&] {
    switch (std::uniform_int_distribution<int>(0, 2)(rng)) {
      case 0: return std::uniform_int_distribution<int>(0, kShards - 1)(rng);
      case 1: return kShards;
      default: return kShards + 1 + std::uniform_int_distribution<int>(0, kWorkers - 1)(rng);
    }
  };
  std::uniform_int_distribution<int> pause_ms(300, 800);
  const absl::Time chaos_deadline = absl::Now() + absl::Minutes(3);
  bool finished_early = false;
  // The disk-full fault: which shard (-1: none yet), and the kill count from
  // which it may end (once that shard has refused pushes).
  int full_shard = -1;
  int full_until = 0;
  bool disk_freed = false;
  int lost_shard = -1;
  int last_victim = -1, victim_before = -1;
  auto refused_pushes = [&](int shard) {
    return absl::StrContains(ReadFile(members[shard].running->log_path).value_or(""), kRefusing);
  };
  while ((kills < kMinKills || lost_shard < 0) && absl::Now() < chaos_deadline) {
    absl::SleepFor(absl::Milliseconds(pause_ms(rng)));  // pacing of the faults, not a wait
    std::optional<v1::Job> job = GetJob(job_id);
    if (job.has_value() && job->state() == v1::JOB_STATE_SUCCEEDED) {
      finished_early = true;
      break;
    }
    if (full_shard < 0 && kills >= kDiskFullAt) {
      full_shard = std::uniform_int_distribution<int>(0, kShards - 1)(rng);
      full_until = kills + kDiskFullKills;
      ASSERT_TRUE(ps_disks_[full_shard]->Fill().ok());
      std::printf("disk of parameter server %d full after kill %d\n", full_shard, kills);
    }
    if (full_shard >= 0 && !disk_freed && kills >= full_until && refused_pushes(full_shard)) {
      ASSERT_TRUE(ps_disks_[full_shard]->Free().ok());
      disk_freed = true;
      std::printf("disk of parameter server %d freed after kill %d\n", full_shard, kills);
    }
    // A shard loses its data once its disk is fine and the controller has
    // run for two kills (its replicas hold the θ they last pulled; a
    // controller without it cannot re-initialise a shard: replica.cc).
    const bool lose_data = lost_shard < 0 && disk_freed && kills >= kLoseDataFrom &&
                           last_victim != kShards && victim_before != kShards;
    const int victim = lose_data ? std::uniform_int_distribution<int>(0, kShards - 1)(rng) : pick();
    victim_before = last_victim;
    last_victim = victim;
    Member& m = members[victim];
    const int shard = victim < kShards ? victim : -1;
    const int64_t on_disk = shard >= 0 && !lose_data ? CheckpointVersion(shard, job_id) : -1;
    ASSERT_TRUE(m.running->process.Signal(SIGKILL).ok()) << m.name;
    ASSERT_TRUE(m.running->process.Wait(absl::Seconds(10)).ok()) << m.name;
    if (lose_data) {
      lost_shard = shard;
      ASSERT_TRUE(ps::DeleteCheckpoints(ps_disks_[shard]->View(), job_id).ok());
      ASSERT_EQ(CheckpointVersion(shard, job_id), -1);
      std::printf("parameter server %d lost its data at kill %d\n", shard, kills);
    }
    ++kills;
    ++kills_by_member[m.name];
    ++m.restarts;
    absl::Status restarted = m.Start();
    ASSERT_TRUE(restarted.ok()) << m.name << " restart " << m.restarts << ": " << restarted;
    if (shard >= 0 && on_disk >= 0) {
      // The restarted shard serves the checkpoint (or newer, once pushes land).
      absl::StatusOr<v1::PullResponse> state = Pull(shard, job_id);
      ASSERT_TRUE(state.ok()) << m.name << ": " << state.status() << "\n"
                              << LogTail(m.running->log_path);
      EXPECT_GE(state->version(), on_disk)
          << m.name << " went back past its checkpoint (restart " << m.restarts << ")";
    }
    if (lose_data) {
      // No fault until the controller has re-initialised the shard.
      const absl::Time deadline = absl::Now() + absl::Seconds(30);
      while (!Pull(shard, job_id).ok() && absl::Now() < deadline) absl::SleepFor(absl::Milliseconds(50));
      ASSERT_TRUE(Pull(shard, job_id).ok()) << m.name << " was not re-initialised after losing its data";
    }
  }
  ASSERT_GE(full_shard, 0) << "no disk-full fault: chaos ended after " << kills << " kills";
  if (!disk_freed) {
    // The chaos ended first: free the disk once the shard has refused pushes.
    const absl::Time deadline = absl::Now() + absl::Seconds(30);
    while (!refused_pushes(full_shard) && absl::Now() < deadline) absl::SleepFor(absl::Milliseconds(50));
    ASSERT_TRUE(ps_disks_[full_shard]->Free().ok());
  }
  EXPECT_TRUE(absl::StrContains(ReadFile(members[full_shard].running->log_path).value_or(""),
                                kRefusing))
      << "the full disk never made parameter server " << full_shard << " refuse pushes";
  EXPECT_GE(lost_shard, 0) << "no lost-shard-data fault";
  ASSERT_FALSE(finished_early) << "the job finished after only " << kills
                               << " kills: raise kBudget";
  ASSERT_GE(kills, kMinKills) << "chaos ran out of time";
  std::string schedule;
  for (const auto& [name, n] : kills_by_member) absl::StrAppend(&schedule, name, ": ", n, "  ");
  std::printf("kills %d: %s\n", kills, schedule.c_str());

  // The job finishes its budget once the faults stop.
  std::optional<v1::Job> final_job;
  const absl::Time finish_deadline = absl::Now() + absl::Minutes(4);
  while (absl::Now() < finish_deadline) {
    final_job = GetJob(job_id);
    if (final_job.has_value() && final_job->state() != v1::JOB_STATE_RUNNING &&
        final_job->state() != v1::JOB_STATE_PENDING) {
      break;
    }
    auto stub = v1::JobService::NewStub(Channel(controller_port_));
    v1::WatchJobRequest watch;
    watch.set_job_id(job_id);
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(5)));
    auto stream = stub->WatchJob(&context, watch);
    v1::WatchJobEvent event;
    while (stream->Read(&event)) {  // returns when the job ends or the deadline passes
    }
  }
  ASSERT_TRUE(final_job.has_value());
  ASSERT_EQ(final_job->state(), v1::JOB_STATE_SUCCEEDED) << final_job->error();
  EXPECT_EQ(final_job->trials_succeeded() + final_job->trials_failed(), kBudget);

  // Every trial in the store, through the user's API; none listed twice.
  std::map<std::string, v1::Trial> stored;
  std::string token;
  int listed = 0;
  do {
    v1::ListTrialsRequest request;
    request.set_job_id(job_id);
    request.set_order(v1::ListTrialsRequest::ORDER_TIME);
    request.set_page_size(1000);
    request.set_page_token(token);
    v1::ListTrialsResponse response;
    grpc::ClientContext context;
    ASSERT_TRUE(jobs->ListTrials(&context, request, &response).ok());
    for (const v1::Trial& t : response.trials()) {
      ++listed;
      EXPECT_TRUE(stored.emplace(t.trial_id(), t).second) << "trial " << t.trial_id() << " twice";
    }
    token = response.next_page_token();
  } while (!token.empty());
  EXPECT_EQ(listed, kBudget);
  int succeeded = 0;
  for (const auto& [id, t] : stored) succeeded += t.state() == v1::TRIAL_STATE_SUCCEEDED;
  EXPECT_EQ(succeeded, final_job->trials_succeeded());

  // Every OK report the workers logged is a succeeded trial in the store.
  std::set<std::string> accepted;
  for (int w = 0; w < kWorkers; ++w) {
    auto log = ReadFile(absl::StrCat(base, "/worker", w, "/nas_worker.log"));
    ASSERT_TRUE(log.ok());
    for (absl::string_view line : absl::StrSplit(*log, '\n')) {
      const size_t at = line.find("] task ");
      if (at == absl::string_view::npos || !absl::StrContains(line, ": report accepted")) continue;
      absl::string_view task = line.substr(at + 7);
      task = task.substr(0, task.find(':'));
      // <job_id>/<trial_id>#<attempt>
      const size_t slash = task.find('/'), hash = task.rfind('#');
      ASSERT_NE(slash, absl::string_view::npos) << line;
      ASSERT_NE(hash, absl::string_view::npos) << line;
      EXPECT_EQ(task.substr(0, slash), job_id);
      accepted.insert(std::string(task.substr(slash + 1, hash - slash - 1)));
    }
  }
  // Cache hits (repeats: a restarted controller's replicas draw their seeded
  // samples again) had no worker run.
  size_t hits = 0;
  for (const auto& [id, t] : stored) hits += t.cached_from().empty() ? 0 : 1;
  EXPECT_GT(accepted.size(), (kBudget - hits) / 2u) << hits << " cache hits";
  for (const std::string& trial_id : accepted) {
    auto it = stored.find(trial_id);
    ASSERT_NE(it, stored.end()) << "reported trial " << trial_id << " lost";
    EXPECT_EQ(it->second.state(), v1::TRIAL_STATE_SUCCEEDED) << trial_id;
  }
  std::printf("trials %d, reports accepted for %zu distinct trials, controller restarts %d\n",
              listed, accepted.size(), members[kShards].restarts);

  // Final weights: finite, and past every restored checkpoint.
  for (int s = 0; s < kShards; ++s) {
    // Every shard holds the job at its end (its tensors are dropped only
    // after the controller's --weights_retention).
    absl::StatusOr<v1::PullResponse> state = Pull(s, job_id);
    ASSERT_TRUE(state.ok()) << "shard " << s << ": " << state.status();
    EXPECT_GT(state->version(), 0);
    for (const v1::Tensor& t : state->tensors()) {
      for (float v : t.values()) ASSERT_TRUE(std::isfinite(v)) << t.name();
    }
  }

  // Everything stops on SIGTERM; nothing of this cluster is left running.
  std::vector<pid_t> pids;
  for (Member& m : members) {
    pids.push_back(m.running->process.pid());
    ASSERT_TRUE(m.running->process.Signal(SIGTERM).ok());
  }
  for (Member& m : members) {
    auto status = m.running->process.Wait(absl::Seconds(30));
    ASSERT_TRUE(status.ok()) << m.name << " did not stop on SIGTERM";
    EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0) << m.name << ": " << *status;
  }
  int leftovers = 0;
  if (DIR* proc = opendir("/proc")) {
    while (dirent* entry = readdir(proc)) {
      auto cmdline = ReadFile(absl::StrCat("/proc/", entry->d_name, "/cmdline"));
      if (cmdline.ok() && absl::StrContains(*cmdline, base)) ++leftovers;
    }
    closedir(proc);
  }
  EXPECT_EQ(leftovers, 0) << "processes of the chaos cluster still running";
}

}  // namespace
}  // namespace nas
