// Child processes for supervisors (`nasctl local`) and cross-process tests:
// start a binary with arguments, its stdout and stderr going to a log file,
// signal it and wait for it with a deadline.
#ifndef NAS_COMMON_SUBPROCESS_H_
#define NAS_COMMON_SUBPROCESS_H_

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace nas {

class Subprocess {
 public:
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

  // Waits until the child exits or `timeout` passes. Returns the raw wait
  // status (use WIFEXITED etc.); DEADLINE_EXCEEDED if still running.
  absl::StatusOr<int> Wait(absl::Duration timeout);
  // True while the child has not been reaped and has not exited.
  bool Running();

  // Releases ownership: the destructor will no longer kill the child.
  pid_t Release();

 private:
  explicit Subprocess(pid_t pid) : pid_(pid) {}

  pid_t pid_ = -1;
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
