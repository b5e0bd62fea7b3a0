// Issue 18, row 8: `nasctl local` on a busy machine and with nasctl on PATH.
// Processes are tracked by pid and start time, so `local up` never takes a
// child that has not exec'd yet for a dead one; every failure path stops
// what it started; `local down` leaves no process of the cluster; and `local
// restart controller` brings the controller back on its port while a job
// runs on.
#include <dirent.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/file_util.h"
#include "common/subprocess.h"
#include "gtest/gtest.h"
#include "tests/test_util.h"

namespace nas {
namespace {

using ::nas::testing::BinaryPath;
using ::nas::testing::NewTempDir;

struct Result {
  int exit_code = -1;
  std::string output;
};

// The cluster of one test: nasctl is called by name, from PATH, as a user who
// installed it would; its data dir comes from $NAS_LOCAL_DIR. (nasctl's own
// command line then names no nas_* binary, which is what the old
// command-line check tripped over.)
class LocalCluster {
 public:
  explicit LocalCluster(const std::string& prefix)
      : dir_(NewTempDir(prefix)), data_(dir_ + "/cluster") {
    const std::string nasctl = BinaryPath("client/nasctl");
    path_dir_ = nasctl.substr(0, nasctl.rfind('/'));
  }
  ~LocalCluster() { Nasctl("local down"); }

  // With `starved`, nasctl runs on CPU 0 at real-time priority (SCHED_FIFO)
  // and its children at normal priority (reset on fork): a child it forks
  // does not run until nasctl sleeps, the worst case of a busy machine, on
  // every machine. Needs CAP_SYS_NICE; without it nasctl does not run and the
  // test fails.
  Result Nasctl(const std::string& args, absl::Duration timeout = absl::Seconds(120),
                bool starved = false) {
    const std::string log = absl::StrCat(dir_, "/cmd-", counter_++, ".log");
    Result result;
    auto process = Subprocess::Start(
        {"/bin/sh", "-c",
         absl::StrCat("PATH='", path_dir_, "':\"$PATH\" NAS_LOCAL_DIR='", data_, "' exec ",
                      starved ? "taskset -c 0 chrt --fifo --reset-on-fork 10 " : "", "nasctl ",
                      args)},
        log);
    if (!process.ok()) return result;
    auto status = process->Wait(timeout);
    if (status.ok() && WIFEXITED(*status)) result.exit_code = WEXITSTATUS(*status);
    result.output = ReadFile(log).value_or("");
    return result;
  }

  // Every process cluster.txt records: name -> pid and start time.
  std::vector<std::pair<std::string, ProcessId>> Recorded() {
    std::vector<std::pair<std::string, ProcessId>> out;
    for (absl::string_view line :
         absl::StrSplit(ReadFile(data_ + "/cluster.txt").value_or(""), '\n', absl::SkipEmpty())) {
      std::vector<std::string> fields = absl::StrSplit(line, '\t');
      ProcessId id;
      if (fields.size() >= 6 && absl::SimpleAtoi(fields[1], &id.pid) &&
          absl::SimpleAtoi(fields[2], &id.start_time)) {
        out.push_back({fields[0], id});
      }
    }
    return out;
  }

  // Processes whose command line names this cluster's data dir: every
  // process `local up` started (its flags name its data dir or ready file),
  // whether or not it was recorded anywhere.
  std::vector<std::string> Leftovers() {
    std::vector<std::string> found;
    DIR* proc = ::opendir("/proc");
    if (proc == nullptr) return {"cannot read /proc"};
    while (dirent* entry = ::readdir(proc)) {
      int pid = 0;
      if (!absl::SimpleAtoi(entry->d_name, &pid) || pid == ::getpid()) continue;
      if (!IsRunning({pid, IdentifyProcess(pid).value_or(ProcessId{}).start_time})) continue;
      std::string cmdline = ReadFile(absl::StrCat("/proc/", pid, "/cmdline")).value_or("");
      std::replace(cmdline.begin(), cmdline.end(), '\0', ' ');
      if (absl::StrContains(cmdline, data_ + "/")) found.push_back(absl::StrCat(pid, ": ", cmdline));
    }
    ::closedir(proc);
    return found;
  }

  const std::string& dir() const { return dir_; }
  const std::string& data() const { return data_; }
  const std::string& path_dir() const { return path_dir_; }

 private:
  std::string dir_, data_, path_dir_;
  int counter_ = 0;
};

// A busy loop per CPU, while it lives.
class CpuLoad {
 public:
  CpuLoad() {
    const int n = static_cast<int>(std::max(2u, std::thread::hardware_concurrency()));
    for (int i = 0; i < n; ++i) {
      auto loop = Subprocess::Start({"/bin/sh", "-c", "while :; do :; done"}, "");
      EXPECT_TRUE(loop.ok()) << loop.status();
      if (loop.ok()) loops_.push_back(*std::move(loop));
    }
  }

 private:
  std::vector<Subprocess> loops_;  // killed by their destructors
};

TEST(HostileJobsLocalTest, UpUnderCpuLoadWithNasctlOnPathSucceedsEveryTimeAndDownLeavesNothing) {
  CpuLoad load;
  LocalCluster cluster("local-load");
  for (int round = 0; round < 2; ++round) {
    SCOPED_TRACE(absl::StrCat("round ", round));
    Result up = cluster.Nasctl("local up --shards=1 --workers=1 --controller_port=0 --device=cpu",
                               absl::Seconds(120), /*starved=*/true);
    ASSERT_EQ(up.exit_code, 0) << up.output;
    std::vector<std::pair<std::string, ProcessId>> recorded = cluster.Recorded();
    ASSERT_EQ(recorded.size(), 3u);
    for (const auto& [name, id] : recorded) EXPECT_TRUE(IsRunning(id)) << name;
    Result status = cluster.Nasctl("local status");
    EXPECT_EQ(status.exit_code, 0) << status.output;

    Result down = cluster.Nasctl("local down");
    ASSERT_EQ(down.exit_code, 0) << down.output;
    for (const auto& [name, id] : recorded) {
      EXPECT_FALSE(IsRunning(id)) << name << " (pid " << id.pid << ") still runs";
    }
    EXPECT_TRUE(cluster.Leftovers().empty()) << absl::StrJoin(cluster.Leftovers(), "\n");
  }
}

TEST(HostileJobsLocalTest, AComponentThatCannotStartStopsEverythingAndSaysWhy) {
  // The controller's port is taken, so the controller exits at once.
  const int taken = ::socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(taken, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(taken, reinterpret_cast<sockaddr*>(&address), sizeof(address)), 0);
  ASSERT_EQ(::listen(taken, 1), 0);
  socklen_t length = sizeof(address);
  ASSERT_EQ(::getsockname(taken, reinterpret_cast<sockaddr*>(&address), &length), 0);
  const int port = ntohs(address.sin_port);

  CpuLoad load;
  LocalCluster cluster("local-fail");
  Result up = cluster.Nasctl(
      absl::StrCat("local up --shards=2 --workers=1 --device=cpu --controller_port=", port),
      absl::Seconds(120), /*starved=*/true);
  ::close(taken);
  EXPECT_EQ(up.exit_code, 1) << up.output;
  // Which process, how it ended and the end of its log (it names the port).
  EXPECT_NE(up.output.find("controller (pid"), std::string::npos) << up.output;
  EXPECT_NE(up.output.find("exited with status"), std::string::npos) << up.output;
  const size_t tail = up.output.find("it ends:");
  ASSERT_NE(tail, std::string::npos) << up.output;
  EXPECT_NE(up.output.find(absl::StrCat(port), tail), std::string::npos) << up.output;
  // The parameter servers it had started are stopped too.
  EXPECT_TRUE(cluster.Leftovers().empty()) << absl::StrJoin(cluster.Leftovers(), "\n");
  for (const auto& [name, id] : cluster.Recorded()) {
    EXPECT_FALSE(IsRunning(id)) << name << " (pid " << id.pid << ") still runs";
  }
  Result status = cluster.Nasctl("local status");
  EXPECT_NE(status.output.find("no local cluster"), std::string::npos) << status.output;
}

TEST(HostileJobsLocalTest, WhatAKilledLocalUpStartedIsRecordedAndDownStopsIt) {
  LocalCluster cluster("local-killed");
  const std::string log = cluster.dir() + "/up.log";
  auto up = Subprocess::Start(
      {"/bin/sh", "-c",
       absl::StrCat("PATH='", cluster.path_dir(), "':\"$PATH\" NAS_LOCAL_DIR='", cluster.data(),
                    "' exec nasctl local up --shards=2 --workers=1 --controller_port=0 "
                    "--device=cpu")},
      log);
  ASSERT_TRUE(up.ok()) << up.status();
  // SIGKILL nasctl once it has started the controller, before it is done.
  const absl::Time deadline = absl::Now() + absl::Seconds(60);
  while (cluster.Recorded().size() < 3 && up->Running() && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(5));
  }
  ASSERT_GE(cluster.Recorded().size(), 3u) << ReadFile(log).value_or("");
  ASSERT_TRUE(up->Signal(SIGKILL).ok());
  ASSERT_TRUE(up->Wait(absl::Seconds(10)).ok());
  // Everything it started runs on, recorded; `local down` stops all of it.
  const std::vector<std::pair<std::string, ProcessId>> recorded = cluster.Recorded();
  ASSERT_GE(recorded.size(), 3u);
  for (const auto& [name, id] : recorded) EXPECT_TRUE(IsRunning(id)) << name;
  Result down = cluster.Nasctl("local down");
  EXPECT_EQ(down.exit_code, 0) << down.output;
  for (const auto& [name, id] : recorded) {
    EXPECT_FALSE(IsRunning(id)) << name << " (pid " << id.pid << ") still runs";
  }
  EXPECT_TRUE(cluster.Leftovers().empty()) << absl::StrJoin(cluster.Leftovers(), "\n");
}

TEST(HostileJobsLocalTest, RestartControllerComesBackOnItsPortAndTheJobFinishes) {
  LocalCluster cluster("local-restart");
  Result up = cluster.Nasctl("local up --shards=1 --workers=1 --controller_port=0 --device=cpu");
  ASSERT_EQ(up.exit_code, 0) << up.output;
  Result address = cluster.Nasctl("local address");
  ASSERT_EQ(address.exit_code, 0) << address.output;
  const std::string server(absl::StripAsciiWhitespace(address.output));
  ProcessId before;
  for (const auto& [name, id] : cluster.Recorded()) {
    if (name == "controller") before = id;
  }
  ASSERT_GT(before.pid, 0);

  const std::string spec = cluster.dir() + "/job.yaml";
  ASSERT_TRUE(WriteFileAtomically(spec, R"(
name: survives-a-restart
search_space:
  macro_cnn: {filter_heights: [3, 5], filter_widths: [3, 5], num_filters: [24, 64],
              depth: {initial_layers: 2, max_layers: 2}}
strategy: {name: reinforce, seed: 1}
parallelism: {num_replicas: 1, children_per_replica: 2}
budget: {max_trials: 16}
evaluator: {synthetic: {duration_seconds: 0.25}}
)").ok());
  Result submit = cluster.Nasctl(absl::StrCat("submit ", spec, " --server=", server));
  ASSERT_EQ(submit.exit_code, 0) << submit.output;
  const size_t at = submit.output.find("submitted job ");
  ASSERT_NE(at, std::string::npos) << submit.output;
  const std::string job(
      absl::StripAsciiWhitespace(submit.output.substr(at + std::string("submitted job ").size())));

  // 16 tasks of 0.25 s on one worker (~10 s): still running at the restart.
  Result running = cluster.Nasctl(absl::StrCat("get ", job, " --server=", server));
  EXPECT_NE(running.output.find("running"), std::string::npos) << running.output;

  Result restart = cluster.Nasctl("local restart controller");
  ASSERT_EQ(restart.exit_code, 0) << restart.output;
  EXPECT_NE(restart.output.find(server), std::string::npos) << restart.output;
  EXPECT_FALSE(IsRunning(before)) << "the old controller still runs";
  Result again = cluster.Nasctl("local address");
  EXPECT_EQ(std::string(absl::StripAsciiWhitespace(again.output)), server);
  Result status = cluster.Nasctl("local status");
  EXPECT_EQ(status.exit_code, 0) << status.output;

  // The job runs on to the end through the restarted controller.
  Result watch = cluster.Nasctl(absl::StrCat("watch ", job, " --server=", server),
                                absl::Seconds(180));
  EXPECT_EQ(watch.exit_code, 0) << watch.output;
  Result get = cluster.Nasctl(absl::StrCat("get ", job, " --server=", server));
  EXPECT_NE(get.output.find("succeeded"), std::string::npos) << get.output;

  Result unknown = cluster.Nasctl("local restart ps-7");
  EXPECT_EQ(unknown.exit_code, 1);
  EXPECT_NE(unknown.output.find("no process 'ps-7'"), std::string::npos) << unknown.output;
}

// `local up --data_roots` reaches every worker: a table outside those roots is
// refused naming them (the worker's default roots would be named otherwise).
TEST(HostileJobsLocalTest, UpPassesDataRootsToEveryWorker) {
  LocalCluster cluster("local-roots");
  const std::string roots = cluster.dir() + "/tables";
  Result up = cluster.Nasctl(absl::StrCat("local up --shards=1 --workers=2 --controller_port=0 ",
                                          "--device=cpu --data_roots=", roots));
  ASSERT_EQ(up.exit_code, 0) << up.output;
  Result address = cluster.Nasctl("local address");
  ASSERT_EQ(address.exit_code, 0) << address.output;
  const std::string server(absl::StripAsciiWhitespace(address.output));
  const std::string spec = cluster.dir() + "/job.yaml";
  ASSERT_TRUE(WriteFileAtomically(spec, absl::StrCat(R"(
name: table-outside-the-roots
search_space:
  cell: {num_nodes: 3, operations: [none, skip_connect]}
strategy: {name: random, seed: 1}
budget: {max_trials: 4}
evaluator:
  lookup: {table_path: ")", cluster.dir(), R"(/elsewhere/table.csv"}
  max_attempts: 1
)")).ok());
  Result submit = cluster.Nasctl(absl::StrCat("submit ", spec, " --watch --server=", server),
                                 absl::Seconds(120));
  const size_t at = submit.output.find("submitted job ");
  ASSERT_NE(at, std::string::npos) << submit.output;
  const size_t start = at + std::string("submitted job ").size();
  const std::string job(submit.output.substr(start, submit.output.find('\n', start) - start));
  Result trials = cluster.Nasctl(absl::StrCat("trials ", job, " -o json --server=", server));
  ASSERT_EQ(trials.exit_code, 0) << trials.output;
  EXPECT_NE(trials.output.find(absl::StrCat("is not under the worker's --data_roots (", roots)),
            std::string::npos)
      << trials.output;
}

}  // namespace
}  // namespace nas
