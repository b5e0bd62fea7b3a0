#include "common/subprocess.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

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
  int log_fd = -1;
  if (!log_path.empty()) {
    log_fd = ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (log_fd < 0) {
      return absl::PermissionDeniedError(absl::StrCat("cannot open log ", log_path, ": ",
                                                      std::strerror(errno)));
    }
  }
  std::vector<char*> args;
  for (const std::string& arg : argv) args.push_back(const_cast<char*>(arg.c_str()));
  args.push_back(nullptr);

  const pid_t pid = ::fork();
  if (pid < 0) {
    if (log_fd >= 0) ::close(log_fd);
    return absl::ResourceExhaustedError(absl::StrCat("fork: ", std::strerror(errno)));
  }
  if (pid == 0) {
    // Child: only async-signal-safe calls from here on.
    if (new_session) ::setsid();
    sigset_t all;
    sigemptyset(&all);
    ::sigprocmask(SIG_SETMASK, &all, nullptr);
    ::signal(SIGPIPE, SIG_DFL);
    if (log_fd >= 0) {
      ::dup2(log_fd, STDOUT_FILENO);
      ::dup2(log_fd, STDERR_FILENO);
    }
    const int null_fd = ::open("/dev/null", O_RDONLY);
    if (null_fd >= 0) ::dup2(null_fd, STDIN_FILENO);
    ::execv(args[0], args.data());
    _exit(127);
  }
  if (log_fd >= 0) ::close(log_fd);
  return Subprocess(pid);
}

Subprocess::Subprocess(Subprocess&& other) noexcept { *this = std::move(other); }

Subprocess& Subprocess::operator=(Subprocess&& other) noexcept {
  pid_ = other.pid_;
  reaped_ = other.reaped_;
  wait_status_ = other.wait_status_;
  other.pid_ = -1;
  return *this;
}

Subprocess::~Subprocess() {
  if (pid_ > 0 && !reaped_) {
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
  }
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
