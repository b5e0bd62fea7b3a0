// Child processes for supervisors (`nasctl local`), cross-process tests and
// the worker's command evaluator: start a binary with arguments, its stdout
// and stderr going to a log file or to pipes, signal it (or its whole process
// group) and wait for it with a deadline.
#ifndef NAS_COMMON_SUBPROCESS_H_
#define NAS_COMMON_SUBPROCESS_H_

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace nas {

// What Subprocess::Start(SubprocessOptions) runs, and how.
struct SubprocessOptions {
  // argv[0] is a path, or a name without '/' looked up on $PATH (before the
  // fork, so a missing program is NOT_FOUND naming it).
  std::vector<std::string> argv;
  // The child's whole environment ("NAME=value"); unset: the parent's.
  std::optional<std::vector<std::string>> env;
  // The child's working directory; empty: the parent's.
  std::string working_dir;
  // The child leads a new process group, so SignalGroup reaches everything
  // it starts (unless those leave the group).
  bool process_group = false;
  // RLIMIT_AS of the child in bytes; 0: inherited.
  int64_t max_address_space = 0;
  // stdout and stderr go to two pipes read through stdout_fd()/stderr_fd()
  // (non-blocking) instead of a log file.
  bool pipe_output = false;
  // When not piped: appended to this file; empty: inherited.
  std::string log_path;
  // The child gets SIGKILL when the thread that started it exits (Linux
  // PR_SET_PDEATHSIG), e.g. when the parent dies.
  bool kill_with_parent_thread = false;
};

class Subprocess {
 public:
  static absl::StatusOr<Subprocess> Start(const SubprocessOptions& options);
  // Starts argv[0] (a path) with argv. Output goes to `log_path` (appended;
  // empty = inherit). With `new_session` the child leads its own session so a
  // terminal's Ctrl-C does not reach it (the supervisor decides).
  static absl::StatusOr<Subprocess> Start(const std::vector<std::string>& argv,
                                          const std::string& log_path, bool new_session = false);

  Subprocess(Subprocess&& other) noexcept;
  Subprocess& operator=(Subprocess&& other) noexcept;
  Subprocess(const Subprocess&) = delete;
  Subprocess& operator=(const Subprocess&) = delete;
  // Kills (SIGKILL) and reaps a child still running: tests never leak processes.
  ~Subprocess();

  pid_t pid() const { return pid_; }
  absl::Status Signal(int signal_number);
  // Signals the child's process group (process_group): the child and what it
  // started. FAILED_PRECONDITION when the child does not lead one.
  absl::Status SignalGroup(int signal_number);
  // The read ends of the output pipes (pipe_output), else -1. Owned: closed
  // by the destructor.
  int stdout_fd() const { return stdout_fd_; }
  int stderr_fd() const { return stderr_fd_; }

  // Waits until the child exits or `timeout` passes. Returns the raw wait
  // status (use WIFEXITED etc.); DEADLINE_EXCEEDED if still running.
  absl::StatusOr<int> Wait(absl::Duration timeout);
  // True while the child has not been reaped and has not exited.
  bool Running();

  // Releases ownership: the destructor will no longer kill the child.
  pid_t Release();

 private:
  explicit Subprocess(pid_t pid) : pid_(pid) {}
  static absl::StatusOr<Subprocess> StartInternal(const SubprocessOptions& options, bool new_session,
                                                  bool search_path);
  void CloseFds();

  pid_t pid_ = -1;
  bool group_ = false;
  int stdout_fd_ = -1;
  int stderr_fd_ = -1;
  bool reaped_ = false;
  int wait_status_ = 0;
};

// A process's identity that survives pid reuse: its pid and its start time
// (/proc/PID/stat field 22, clock ticks after boot). Unlike the command line,
// the start time is fixed at fork, so a child between fork and exec is already
// itself.
struct ProcessId {
  pid_t pid = 0;
  int64_t start_time = 0;
};
// The identity of the running process `pid`; NOT_FOUND if there is none.
absl::StatusOr<ProcessId> IdentifyProcess(pid_t pid);
// True while `id` runs: the pid exists, is not a zombie and started when
// recorded.
bool IsRunning(const ProcessId& id);

// Waits until `path` exists and is non-empty, or `timeout` passes; also fails
// early when `process` (optional) exits first. Returns the file's contents.
absl::StatusOr<std::string> WaitForFile(const std::string& path, absl::Duration timeout,
                                        Subprocess* process = nullptr);

}  // namespace nas

#endif  // NAS_COMMON_SUBPROCESS_H_
