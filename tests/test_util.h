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

// A fresh directory under $TEST_TMPDIR (unique per call).
std::string NewTempDir(const std::string& prefix);

struct RunningServer {
  Subprocess process;
  ReadyInfo ready;
  std::string log_path;
};

// Starts `binary` (workspace-relative) with `args` plus --host=127.0.0.1,
// --port=0, --metrics_port=0 and a ready file (flag named `ready_flag`),
// and waits until the ready file appears.
absl::StatusOr<RunningServer> StartServer(const std::string& binary,
                                          std::vector<std::string> args,
                                          const std::string& dir,
                                          const std::string& ready_flag = "ready_file",
                                          absl::Duration timeout = absl::Seconds(60));

// The last `max_bytes` of a log file, for failure messages.
std::string LogTail(const std::string& path, size_t max_bytes = 4000);

}  // namespace nas::testing

#endif  // NAS_TESTS_TEST_UTIL_H_
