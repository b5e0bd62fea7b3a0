#include "client/local_cluster.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "common/file_util.h"
#include "common/grpc_server.h"
#include "common/health_client.h"
#include "common/http_client.h"
#include "common/status_macros.h"
#include "common/subprocess.h"

namespace nas::client {
namespace {

constexpr char kStateFile[] = "cluster.txt";
constexpr absl::Duration kPoll = absl::Milliseconds(50);

std::string StatePath(const std::string& data_dir) { return data_dir + "/" + kStateFile; }

// Alive and the very process we started: same pid and same start time, so
// neither pid reuse nor a child that has not exec'd yet is mistaken.
bool IsOurs(const LocalProcess& process) {
  return IsRunning(ProcessId{process.pid, process.start_time});
}

// One line per process, tab-separated: name, pid, start time, log, ready
// file, then the command line.
absl::Status WriteState(const std::string& data_dir, const std::vector<LocalProcess>& processes) {
  std::string text = "# nasctl local: name pid start_time log ready argv... (tab-separated)\n";
  for (const LocalProcess& p : processes) {
    absl::StrAppend(&text, p.name, "\t", p.pid, "\t", p.start_time, "\t", p.log_path, "\t",
                    p.ready_path, "\t", absl::StrJoin(p.argv, "\t"), "\n");
  }
  return WriteFileAtomically(StatePath(data_dir), text);
}

absl::StatusOr<std::vector<LocalProcess>> ReadState(const std::string& data_dir) {
  ASSIGN_OR_RETURN(std::string text, ReadFile(StatePath(data_dir)));
  std::vector<LocalProcess> processes;
  for (absl::string_view line : absl::StrSplit(text, '\n', absl::SkipEmpty())) {
    if (absl::StartsWith(line, "#")) continue;
    std::vector<std::string> fields = absl::StrSplit(line, '\t');
    LocalProcess p;
    if (fields.size() < 6 || !absl::SimpleAtoi(fields[1], &p.pid) ||
        !absl::SimpleAtoi(fields[2], &p.start_time)) {
      return absl::DataLossError(absl::StrCat(StatePath(data_dir), ": malformed line '", line,
                                              "' (an older nasctl's?); stop its processes by hand "
                                              "and remove the file"));
    }
    p.name = fields[0];
    p.log_path = fields[3];
    p.ready_path = fields[4];
    p.argv.assign(fields.begin() + 5, fields.end());
    processes.push_back(std::move(p));
  }
  return processes;
}

std::string FindBinary(const std::string& bin_dir, const std::string& role,
                       const std::string& name) {
  const std::string bazel_layout = absl::StrCat(bin_dir, "/", role, "/", name);
  if (::access(bazel_layout.c_str(), X_OK) == 0) return bazel_layout;
  return absl::StrCat(bin_dir, "/", name);
}

void Fill(LocalProcess& p) {
  p.alive = IsOurs(p);
  absl::StatusOr<std::string> ready = ReadFile(p.ready_path);
  if (ready.ok()) {
    absl::StatusOr<ReadyInfo> info = ParseReadyFile(*ready);
    if (info.ok()) {
      p.grpc_port = info->grpc_port;
      p.metrics_port = info->metrics_port;
    }
  }
  if (!p.alive) return;
  if (p.grpc_port > 0) {
    p.healthy =
        CheckHealth(absl::StrCat("127.0.0.1:", p.grpc_port), absl::Seconds(2)).ok();
  } else if (p.metrics_port > 0) {
    absl::StatusOr<HttpResponse> response =
        HttpGet("127.0.0.1", p.metrics_port, "/metrics", absl::Seconds(2));
    p.healthy = response.ok() && response->status_code == 200;
  }
}

// The flag naming a process's ready file.
std::string ReadyFlag(const std::string& name) {
  return absl::StartsWith(name, "worker") ? "worker_ready_file" : "ready_file";
}

// Starts one process; it outlives nasctl. Its identity is taken while it is
// still our unreaped child, so the pid cannot have been reused.
absl::StatusOr<LocalProcess> Launch(const std::string& name, const std::vector<std::string>& argv,
                                    const std::string& data_dir) {
  LocalProcess p;
  p.name = name;
  p.argv = argv;
  p.log_path = absl::StrCat(data_dir, "/logs/", name, ".log");
  p.ready_path = absl::StrCat(data_dir, "/run/", name, ".ready");
  std::remove(p.ready_path.c_str());
  std::vector<std::string> full = argv;
  full.push_back(absl::StrCat("--", ReadyFlag(name), "=", p.ready_path));
  ASSIGN_OR_RETURN(Subprocess process,
                   Subprocess::Start(full, p.log_path, /*new_session=*/true));
  ASSIGN_OR_RETURN(ProcessId id, IdentifyProcess(process.pid()));
  p.pid = process.Release();
  p.start_time = id.start_time;
  return p;
}

// How a child of this nasctl that is no longer running ended ("exited with
// status 1", "was killed by signal 9"); just "exited" when it cannot tell.
std::string ExitText(int pid) {
  int status = 0;
  if (::waitpid(pid, &status, WNOHANG) != pid) return "exited";
  if (WIFEXITED(status)) return absl::StrCat("exited with status ", WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return absl::StrCat("was killed by signal ", WTERMSIG(status));
  return "exited";
}

absl::Status WaitHealthy(std::vector<LocalProcess>& processes, size_t from, absl::Time deadline) {
  for (size_t i = from; i < processes.size(); ++i) {
    LocalProcess& p = processes[i];
    while (true) {
      Fill(p);
      if (p.healthy) break;
      if (!p.alive) {
        std::string tail = ReadFile(p.log_path).value_or("");
        if (tail.size() > 600) tail = tail.substr(tail.size() - 600);
        return absl::AbortedError(absl::StrCat(p.name, " (pid ", p.pid, ") ", ExitText(p.pid),
                                               " during start; see ", p.log_path, "; it ends:\n",
                                               tail));
      }
      if (absl::Now() > deadline) {
        return absl::DeadlineExceededError(
            absl::StrCat(p.name, " did not become healthy in time; see ", p.log_path));
      }
      absl::SleepFor(kPoll);
    }
  }
  return absl::OkStatus();
}

void StopAll(std::vector<LocalProcess>& processes, absl::Duration grace) {
  // Workers first, then the controller, then the parameter servers: each group
  // may still need the next one while it shuts down.
  const char* order[] = {"worker", "controller", "ps"};
  for (const char* prefix : order) {
    std::vector<LocalProcess*> group;
    for (LocalProcess& p : processes) {
      if (absl::StartsWith(p.name, prefix) && IsOurs(p)) group.push_back(&p);
    }
    for (LocalProcess* p : group) ::kill(p->pid, SIGTERM);
    const absl::Time deadline = absl::Now() + grace;
    for (LocalProcess* p : group) {
      while (IsOurs(*p) && absl::Now() < deadline) absl::SleepFor(kPoll);
      if (IsOurs(*p)) ::kill(p->pid, SIGKILL);
    }
    // SIGKILL is not instant: wait until the kernel has ended them (their
    // ports are free again).
    const absl::Time killed = absl::Now() + absl::Seconds(10);
    for (LocalProcess* p : group) {
      while (IsOurs(*p) && absl::Now() < killed) absl::SleepFor(kPoll);
    }
  }
}

}  // namespace

std::string DefaultLocalDataDir() {
  if (const char* dir = std::getenv("NAS_LOCAL_DIR"); dir != nullptr && *dir != '\0') return dir;
  const char* home = std::getenv("HOME");
  return absl::StrCat(home != nullptr ? home : "/tmp", "/.nas-service/local");
}

std::string DefaultBinDir() {
  char buffer[4096];
  const ssize_t n = ::readlink("/proc/self/exe", buffer, sizeof(buffer) - 1);
  if (n <= 0) return ".";
  std::string exe(buffer, static_cast<size_t>(n));
  std::string dir = exe.substr(0, exe.rfind('/'));
  // Bazel layout: bazel-bin/client/nasctl -> bazel-bin.
  if (absl::EndsWith(dir, "/client")) {
    const std::string parent = dir.substr(0, dir.rfind('/'));
    if (::access((parent + "/controller/nas_controller").c_str(), X_OK) == 0) return parent;
  }
  return dir;
}

absl::StatusOr<std::vector<LocalProcess>> LocalUp(const LocalClusterOptions& options) {
  if (options.num_shards < 1 || options.num_shards > 64) {
    return absl::InvalidArgumentError("--shards must be 1..64");
  }
  if (options.num_workers < 0 || options.num_workers > 256) {
    return absl::InvalidArgumentError("--workers must be 0..256");
  }
  RETURN_IF_ERROR(MakeDirectories(options.data_dir + "/logs"));
  RETURN_IF_ERROR(MakeDirectories(options.data_dir + "/run"));
  if (absl::StatusOr<std::vector<LocalProcess>> existing = ReadState(options.data_dir);
      existing.ok()) {
    for (LocalProcess& p : *existing) {
      if (IsOurs(p)) {
        return absl::AlreadyExistsError(absl::StrCat(
            "a local cluster already runs from ", options.data_dir, " (", p.name, " is pid ",
            p.pid, "); see 'nasctl local status' or stop it with 'nasctl local down'"));
      }
    }
  }
  const std::string ps_bin = FindBinary(options.bin_dir, "parameter_server", "nas_parameter_server");
  const std::string controller_bin = FindBinary(options.bin_dir, "controller", "nas_controller");
  const std::string worker_bin = FindBinary(options.bin_dir, "worker", "nas_worker");
  for (const std::string& bin : {ps_bin, controller_bin, worker_bin}) {
    if (::access(bin.c_str(), X_OK) != 0) {
      return absl::NotFoundError(absl::StrCat("cannot find ", bin,
                                              "; build the binaries (bazel build //...) or pass "
                                              "--bin_dir"));
    }
  }
  const absl::Time deadline = absl::Now() + options.ready_timeout;
  std::vector<LocalProcess> processes;
  auto fail = [&](absl::Status status) {
    StopAll(processes, absl::Seconds(10));
    // Whatever could not be stopped stays recorded for `local down`.
    std::vector<LocalProcess> left;
    for (const LocalProcess& p : processes) {
      if (IsOurs(p)) left.push_back(p);
    }
    (void)WriteState(options.data_dir, left);
    return status;
  };
  // Each process is in the state file before the next is started.
  auto start = [&](const std::string& name, const std::vector<std::string>& argv) {
    absl::StatusOr<LocalProcess> p = Launch(name, argv, options.data_dir);
    if (!p.ok()) return p.status();
    processes.push_back(*std::move(p));
    return WriteState(options.data_dir, processes);
  };
  const std::vector<std::string> common = {"--host=127.0.0.1", "--metrics_port=0"};
  for (int i = 0; i < options.num_shards; ++i) {
    std::vector<std::string> argv = {ps_bin, absl::StrCat("--shard_index=", i),
                                     absl::StrCat("--num_shards=", options.num_shards),
                                     absl::StrCat("--data_dir=", options.data_dir, "/ps-", i),
                                     "--port=0"};
    argv.insert(argv.end(), common.begin(), common.end());
    if (absl::Status s = start(absl::StrCat("ps-", i), argv); !s.ok()) return fail(s);
  }
  if (absl::Status s = WaitHealthy(processes, 0, deadline); !s.ok()) return fail(s);

  std::vector<std::string> shard_addresses;
  for (const LocalProcess& p : processes) {
    shard_addresses.push_back(absl::StrCat("127.0.0.1:", p.grpc_port));
  }
  std::vector<std::string> controller_argv = {
      controller_bin, absl::StrCat("--data_dir=", options.data_dir, "/controller"),
      absl::StrCat("--parameter_servers=", absl::StrJoin(shard_addresses, ",")),
      absl::StrCat("--port=", options.controller_port)};
  controller_argv.insert(controller_argv.end(), common.begin(), common.end());
  if (absl::Status s = start("controller", controller_argv); !s.ok()) return fail(s);
  if (absl::Status s = WaitHealthy(processes, processes.size() - 1, deadline); !s.ok()) {
    return fail(s);
  }
  const std::string controller_address =
      absl::StrCat("127.0.0.1:", processes.back().grpc_port);

  const size_t first_worker = processes.size();
  for (int i = 0; i < options.num_workers; ++i) {
    std::vector<std::string> argv = {worker_bin, absl::StrCat("--controller=", controller_address),
                                     absl::StrCat("--threads=", options.worker_threads),
                                     absl::StrCat("--device=", options.device),
                                     absl::StrCat("--worker_id=local-worker-", i),
                                     // One-shot search tasks share ω through the shards.
                                     absl::StrCat("--parameter_servers=", absl::StrJoin(shard_addresses, ","))};
    if (!options.data_roots.empty()) {
      argv.push_back(absl::StrCat("--data_roots=", options.data_roots));
    }
    argv.insert(argv.end(), common.begin(), common.end());
    if (absl::Status s = start(absl::StrCat("worker-", i), argv); !s.ok()) return fail(s);
  }
  if (absl::Status s = WaitHealthy(processes, first_worker, deadline); !s.ok()) return fail(s);
  return processes;
}

absl::Status LocalDown(const std::string& data_dir, absl::Duration grace) {
  absl::StatusOr<std::vector<LocalProcess>> processes = ReadState(data_dir);
  if (absl::IsNotFound(processes.status())) return absl::OkStatus();
  if (!processes.ok()) return processes.status();
  StopAll(*processes, grace);
  std::vector<std::string> left;
  for (const LocalProcess& p : *processes) {
    if (IsOurs(p)) left.push_back(absl::StrCat(p.name, " (pid ", p.pid, ")"));
  }
  if (!left.empty()) {
    return absl::InternalError(absl::StrCat("still running: ", absl::StrJoin(left, ", ")));
  }
  return WriteState(data_dir, {});
}

absl::StatusOr<LocalProcess> LocalRestart(const std::string& data_dir, const std::string& name,
                                          absl::Duration grace, absl::Duration ready_timeout) {
  absl::StatusOr<std::vector<LocalProcess>> processes = ReadState(data_dir);
  if (absl::IsNotFound(processes.status()) || (processes.ok() && processes->empty())) {
    return absl::NotFoundError(absl::StrCat("no local cluster runs from ", data_dir,
                                            "; start one with 'nasctl local up'"));
  }
  if (!processes.ok()) return processes.status();
  auto it = std::find_if(processes->begin(), processes->end(),
                         [&](const LocalProcess& p) { return p.name == name; });
  if (it == processes->end()) {
    std::vector<std::string> names;
    for (const LocalProcess& p : *processes) names.push_back(p.name);
    return absl::NotFoundError(absl::StrCat("no process '", name, "' in the local cluster; it has ",
                                            absl::StrJoin(names, ", ")));
  }
  // Its ports, from the ready file it wrote when it started.
  Fill(*it);
  const int grpc_port = it->grpc_port;
  const int metrics_port = it->metrics_port;
  std::vector<LocalProcess> one = {*it};
  StopAll(one, grace);
  if (IsOurs(*it)) {
    return absl::InternalError(absl::StrCat(name, " (pid ", it->pid, ") did not stop"));
  }
  std::vector<std::string> argv;
  for (const std::string& arg : it->argv) {
    if (!absl::StartsWith(arg, "--port=") && !absl::StartsWith(arg, "--metrics_port=")) {
      argv.push_back(arg);
    }
  }
  if (grpc_port > 0) argv.push_back(absl::StrCat("--port=", grpc_port));
  argv.push_back(absl::StrCat("--metrics_port=", std::max(metrics_port, 0)));
  ASSIGN_OR_RETURN(*it, Launch(name, argv, data_dir));
  RETURN_IF_ERROR(WriteState(data_dir, *processes));
  std::vector<LocalProcess> restarted = {*it};
  if (absl::Status s = WaitHealthy(restarted, 0, absl::Now() + ready_timeout); !s.ok()) {
    StopAll(restarted, grace);
    return s;
  }
  return restarted[0];
}

absl::StatusOr<std::vector<LocalProcess>> LocalStatus(const std::string& data_dir) {
  absl::StatusOr<std::vector<LocalProcess>> processes = ReadState(data_dir);
  if (absl::IsNotFound(processes.status())) return std::vector<LocalProcess>{};
  if (!processes.ok()) return processes.status();
  for (LocalProcess& p : *processes) Fill(p);
  return processes;
}

absl::StatusOr<std::string> LocalControllerAddress(const std::string& data_dir) {
  ASSIGN_OR_RETURN(std::vector<LocalProcess> processes, LocalStatus(data_dir));
  for (const LocalProcess& p : processes) {
    if (p.name == "controller" && p.grpc_port > 0) return absl::StrCat("127.0.0.1:", p.grpc_port);
  }
  return absl::NotFoundError(absl::StrCat("no local cluster runs from ", data_dir));
}

absl::StatusOr<std::string> PrometheusScrapeConfig(const std::string& data_dir) {
  ASSIGN_OR_RETURN(std::vector<LocalProcess> processes, LocalStatus(data_dir));
  if (processes.empty()) {
    return absl::NotFoundError(absl::StrCat("no local cluster runs from ", data_dir,
                                            "; start one with 'nasctl local up'"));
  }
  std::string out =
      "# Prometheus scrape config for the nas-service local cluster (nasctl local "
      "prometheus-config).\nglobal:\n  scrape_interval: 5s\n  evaluation_interval: 5s\n"
      "scrape_configs:\n";
  const char* roles[][2] = {{"ps-", "nas_parameter_server"},
                            {"controller", "nas_controller"},
                            {"worker-", "nas_worker"}};
  for (const auto& role : roles) {
    std::vector<std::string> targets;
    for (const LocalProcess& p : processes) {
      if (absl::StartsWith(p.name, role[0]) && p.metrics_port > 0) {
        targets.push_back(absl::StrCat("'127.0.0.1:", p.metrics_port, "'"));
      }
    }
    if (targets.empty()) continue;
    absl::StrAppend(&out, "  - job_name: ", role[1], "\n    static_configs:\n      - targets: [",
                    absl::StrJoin(targets, ", "), "]\n");
  }
  return out;
}

}  // namespace nas::client
