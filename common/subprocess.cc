#include "common/subprocess.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "common/file_util.h"

namespace nas {
namespace {

// How often waits look again. Waiting is always for a condition with a
// deadline, never a fixed sleep.
constexpr absl::Duration kPollInterval = absl::Milliseconds(20);

// /proc/PID/stat: "pid (comm) state ppid ..."; comm may hold spaces and
// parentheses, so the fields are counted from the last ')'.
struct ProcStat {
  char state = '?';
  int64_t start_time = 0;
};
absl::StatusOr<ProcStat> ReadProcStat(pid_t pid) {
  if (pid <= 0) return absl::InvalidArgumentError(absl::StrCat("no process ", pid));
  absl::StatusOr<std::string> stat = ReadFile(absl::StrCat("/proc/", pid, "/stat"));
  if (!stat.ok()) return absl::NotFoundError(absl::StrCat("no process ", pid));
  const size_t close = stat->rfind(')');
  if (close == std::string::npos) return absl::InternalError(absl::StrCat("/proc/", pid, "/stat"));
  std::vector<absl::string_view> fields =
      absl::StrSplit(absl::string_view(*stat).substr(close + 1), ' ', absl::SkipEmpty());
  // fields[0] is field 3 (state); field 22 (starttime) is fields[19].
  ProcStat out;
  if (fields.size() < 20 || !absl::SimpleAtoi(fields[19], &out.start_time)) {
    return absl::InternalError(absl::StrCat("/proc/", pid, "/stat: unexpected format"));
  }
  out.state = fields[0].empty() ? '?' : fields[0][0];
  return out;
}

}  // namespace

absl::StatusOr<ProcessId> IdentifyProcess(pid_t pid) {
  absl::StatusOr<ProcStat> stat = ReadProcStat(pid);
  if (!stat.ok()) return stat.status();
  return ProcessId{pid, stat->start_time};
}

bool IsRunning(const ProcessId& id) {
  absl::StatusOr<ProcStat> stat = ReadProcStat(id.pid);
  // Zombies (exited, not yet reaped) and dead processes are not running.
  return stat.ok() && stat->state != 'Z' && stat->state != 'X' && stat->start_time == id.start_time;
}

absl::StatusOr<Subprocess> Subprocess::Start(const std::vector<std::string>& argv,
                                             const std::string& log_path, bool new_session) {
  if (argv.empty()) return absl::InvalidArgumentError("empty command line");
  if (::access(argv[0].c_str(), X_OK) != 0) {
    return absl::NotFoundError(absl::StrCat("cannot execute ", argv[0], ": ",
                                            std::strerror(errno)));
  }
  SubprocessOptions options;
  options.argv = argv;
  options.log_path = log_path;
  // argv[0] is a path here, relative to the working directory even without a '/'.
  return StartInternal(options, new_session, /*search_path=*/false);
}

absl::StatusOr<Subprocess> Subprocess::Start(const SubprocessOptions& options) {
  return StartInternal(options, /*new_session=*/false, /*search_path=*/true);
}

absl::StatusOr<Subprocess> Subprocess::StartInternal(const SubprocessOptions& options,
                                                     bool new_session, bool search_path) {
  if (options.argv.empty() || options.argv[0].empty()) {
    return absl::InvalidArgumentError("empty command line");
  }
  // Resolved here: after fork only async-signal-safe calls are allowed.
  std::string program = options.argv[0];
  if (search_path && program.find('/') == std::string::npos) {
    const char* path_env = std::getenv("PATH");
    std::string found;
    for (absl::string_view dir : absl::StrSplit(path_env != nullptr ? path_env : "/usr/bin:/bin", ':')) {
      const std::string candidate = absl::StrCat(dir.empty() ? "." : dir, "/", program);
      if (::access(candidate.c_str(), X_OK) == 0) {
        found = candidate;
        break;
      }
    }
    if (found.empty()) {
      return absl::NotFoundError(absl::StrCat("cannot execute ", program, ": not found on PATH (",
                                              path_env != nullptr ? path_env : "", ")"));
    }
    program = found;
  } else if (::access(program.c_str(), X_OK) != 0) {
    return absl::NotFoundError(absl::StrCat("cannot execute ", program, ": ", std::strerror(errno)));
  }
  if (!options.working_dir.empty() && ::access(options.working_dir.c_str(), X_OK) != 0) {
    return absl::NotFoundError(absl::StrCat("working directory ", options.working_dir, ": ",
                                            std::strerror(errno)));
  }
  int log_fd = -1;
  int out_pipe[2] = {-1, -1};
  int err_pipe[2] = {-1, -1};
  auto close_all = [&] {
    for (int fd : {log_fd, out_pipe[0], out_pipe[1], err_pipe[0], err_pipe[1]}) {
      if (fd >= 0) ::close(fd);
    }
  };
  if (options.pipe_output) {
    if (::pipe2(out_pipe, O_CLOEXEC) != 0 || ::pipe2(err_pipe, O_CLOEXEC) != 0) {
      const int error = errno;
      close_all();
      return absl::ResourceExhaustedError(absl::StrCat("pipe: ", std::strerror(error)));
    }
  } else if (!options.log_path.empty()) {
    log_fd = ::open(options.log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (log_fd < 0) {
      return absl::PermissionDeniedError(absl::StrCat("cannot open log ", options.log_path, ": ",
                                                      std::strerror(errno)));
    }
  }
  std::vector<char*> args;
  for (const std::string& arg : options.argv) args.push_back(const_cast<char*>(arg.c_str()));
  args.push_back(nullptr);
  std::vector<char*> env;
  if (options.env.has_value()) {
    for (const std::string& entry : *options.env) env.push_back(const_cast<char*>(entry.c_str()));
    env.push_back(nullptr);
  }
  const pid_t parent = ::getpid();

  const pid_t pid = ::fork();
  if (pid < 0) {
    const int error = errno;
    close_all();
    return absl::ResourceExhaustedError(absl::StrCat("fork: ", std::strerror(error)));
  }
  if (pid == 0) {
    // Child: only async-signal-safe calls from here on.
    if (new_session) ::setsid();
    if (options.process_group) ::setpgid(0, 0);
    if (options.kill_with_parent_thread) {
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (::getppid() != parent) _exit(127);  // the parent died already
    }
    sigset_t all;
    sigemptyset(&all);
    ::sigprocmask(SIG_SETMASK, &all, nullptr);
    ::signal(SIGPIPE, SIG_DFL);
    if (log_fd >= 0) {
      ::dup2(log_fd, STDOUT_FILENO);
      ::dup2(log_fd, STDERR_FILENO);
    }
    if (out_pipe[1] >= 0) {
      ::dup2(out_pipe[1], STDOUT_FILENO);
      ::dup2(err_pipe[1], STDERR_FILENO);
    }
    const int null_fd = ::open("/dev/null", O_RDONLY);
    if (null_fd >= 0) ::dup2(null_fd, STDIN_FILENO);
    if (options.max_address_space > 0) {
      struct rlimit limit;
      limit.rlim_cur = limit.rlim_max = static_cast<rlim_t>(options.max_address_space);
      ::setrlimit(RLIMIT_AS, &limit);
    }
    if (!options.working_dir.empty() && ::chdir(options.working_dir.c_str()) != 0) _exit(127);
    if (options.env.has_value()) {
      ::execve(program.c_str(), args.data(), env.data());
    } else {
      ::execv(program.c_str(), args.data());
    }
    _exit(127);
  }
  if (options.process_group) ::setpgid(pid, pid);  // also here: no race with SignalGroup
  Subprocess process(pid);
  process.group_ = options.process_group;
  if (log_fd >= 0) ::close(log_fd);
  if (options.pipe_output) {
    ::close(out_pipe[1]);
    ::close(err_pipe[1]);
    process.stdout_fd_ = out_pipe[0];
    process.stderr_fd_ = err_pipe[0];
    for (int fd : {out_pipe[0], err_pipe[0]}) ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
  }
  return process;
}

Subprocess::Subprocess(Subprocess&& other) noexcept { *this = std::move(other); }

Subprocess& Subprocess::operator=(Subprocess&& other) noexcept {
  if (this == &other) return *this;
  CloseFds();
  pid_ = other.pid_;
  group_ = other.group_;
  reaped_ = other.reaped_;
  wait_status_ = other.wait_status_;
  stdout_fd_ = other.stdout_fd_;
  stderr_fd_ = other.stderr_fd_;
  other.pid_ = -1;
  other.stdout_fd_ = other.stderr_fd_ = -1;
  return *this;
}

void Subprocess::CloseFds() {
  for (int* fd : {&stdout_fd_, &stderr_fd_}) {
    if (*fd >= 0) ::close(*fd);
    *fd = -1;
  }
}

Subprocess::~Subprocess() {
  if (pid_ > 0 && !reaped_) {
    ::kill(group_ ? -pid_ : pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
  }
  CloseFds();
}

absl::Status Subprocess::SignalGroup(int signal_number) {
  if (pid_ <= 0 || !group_) return absl::FailedPreconditionError("process leads no process group");
  // Also after the leader was reaped: what it started may still run.
  if (::kill(-pid_, signal_number) != 0 && errno != ESRCH) {
    return absl::InternalError(absl::StrCat("kill(-", pid_, "): ", std::strerror(errno)));
  }
  return absl::OkStatus();
}

absl::Status Subprocess::Signal(int signal_number) {
  if (pid_ <= 0 || reaped_) return absl::FailedPreconditionError("process is not running");
  if (::kill(pid_, signal_number) != 0) {
    return absl::InternalError(absl::StrCat("kill(", pid_, "): ", std::strerror(errno)));
  }
  return absl::OkStatus();
}

bool Subprocess::Running() {
  if (pid_ <= 0 || reaped_) return false;
  int status = 0;
  const pid_t r = ::waitpid(pid_, &status, WNOHANG);
  if (r == pid_) {
    reaped_ = true;
    wait_status_ = status;
    return false;
  }
  return r == 0;
}

absl::StatusOr<int> Subprocess::Wait(absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  while (Running()) {
    if (absl::Now() >= deadline) {
      return absl::DeadlineExceededError(
          absl::StrCat("process ", pid_, " still running after ", absl::FormatDuration(timeout)));
    }
    absl::SleepFor(kPollInterval);
  }
  if (!reaped_) return absl::FailedPreconditionError("process was never started or released");
  return wait_status_;
}

pid_t Subprocess::Release() {
  const pid_t pid = pid_;
  pid_ = -1;
  return pid;
}

absl::StatusOr<std::string> WaitForFile(const std::string& path, absl::Duration timeout,
                                        Subprocess* process) {
  const absl::Time deadline = absl::Now() + timeout;
  while (true) {
    absl::StatusOr<std::string> contents = ReadFile(path);
    if (contents.ok() && !contents->empty()) return contents;
    if (process != nullptr && !process->Running()) {
      return absl::AbortedError(absl::StrCat("process exited before writing ", path));
    }
    if (absl::Now() >= deadline) {
      return absl::DeadlineExceededError(absl::StrCat(path, " did not appear within ",
                                                      absl::FormatDuration(timeout)));
    }
    absl::SleepFor(kPollInterval);
  }
}

}  // namespace nas
