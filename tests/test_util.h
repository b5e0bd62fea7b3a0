// Helpers for cross-process tests: where Bazel put our binaries, a scratch
// directory, and starting a server binary and learning its picked ports.
#ifndef NAS_TESTS_TEST_UTIL_H_
#define NAS_TESTS_TEST_UTIL_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/grpc_server.h"
#include "common/subprocess.h"

namespace nas::testing {

// Path of a binary in this workspace's runfiles, e.g. "client/nasctl".
std::string BinaryPath(const std::string& workspace_relative);

// For binaries run by hand or with `bazel run` (benchmarks): points
// BinaryPath at `runfiles` when given, else at $TEST_SRCDIR when set, else
// at `argv0`.runfiles. INVALID_ARGUMENT naming the directory when there is
// none.
absl::Status UseRunfiles(const std::string& argv0, const std::string& runfiles);

// What a command run to its end printed (stdout and stderr) and its exit
// status (-1 when it did not start, was killed or ran past its timeout).
struct CommandResult {
  int exit_code = -1;
  std::string output;
};

// Runs `argv` with its output in a log file under `dir` (cmd-N.log) and
// waits up to `timeout` for it.
CommandResult RunCommand(const std::vector<std::string>& argv, const std::string& dir, absl::Duration timeout);

// A fresh directory under $TEST_TMPDIR (unique per call).
std::string NewTempDir(const std::string& prefix);

struct RunningServer {
  Subprocess process;
  ReadyInfo ready;
  std::string log_path;
};

// Starts `binary` (workspace-relative) with `args` plus --host=127.0.0.1,
// --port=0, --metrics_port=0 and a ready file (flag named `ready_flag`),
// and waits until the ready file appears. A non-empty `wrapper` is the start
// of the command line, which runs the binary (e.g. NamespacedTmpfs::Enter()).
absl::StatusOr<RunningServer> StartServer(const std::string& binary,
                                          std::vector<std::string> args,
                                          const std::string& dir,
                                          const std::string& ready_flag = "ready_file",
                                          absl::Duration timeout = absl::Seconds(60),
                                          const std::vector<std::string>& wrapper = {});

// A small tmpfs mounted at `path` in a mount namespace of its own (unshare
// -Urm; no privileges beyond a user namespace), so a test can fill a
// server's disk: the server runs inside it (Enter() + its command line), the
// test reaches the tmpfs through View(). A holder process keeps the namespace
// (and the tmpfs's files) alive across server restarts until destruction.
class NamespacedTmpfs {
 public:
  // `size` as mount's tmpfs option ("2m"); `scratch` holds the holder's log.
  static absl::StatusOr<std::unique_ptr<NamespacedTmpfs>> Create(const std::string& path,
                                                                 const std::string& size,
                                                                 const std::string& scratch);
  // The command-line prefix that runs a program inside the namespace.
  std::vector<std::string> Enter() const;
  // `path` as this process sees it: /proc/HOLDER/root/PATH.
  std::string View() const;
  // Fills the tmpfs with a filler file until a write fails with ENOSPC.
  absl::Status Fill();
  // Deletes the filler file.
  absl::Status Free();

 private:
  NamespacedTmpfs(Subprocess holder, std::string path)
      : holder_(std::move(holder)), path_(std::move(path)) {}
  Subprocess holder_;
  std::string path_;
};

// The last `max_bytes` of a log file, for failure messages.
std::string LogTail(const std::string& path, size_t max_bytes = 4000);

}  // namespace nas::testing

#endif  // NAS_TESTS_TEST_UTIL_H_
