#include "tests/test_util.h"

#include <unistd.h>

#include <atomic>
#include <cstdlib>

#include "absl/strings/str_cat.h"
#include "common/file_util.h"

namespace nas::testing {

std::string BinaryPath(const std::string& workspace_relative) {
  const char* srcdir = std::getenv("TEST_SRCDIR");
  const char* workspace = std::getenv("TEST_WORKSPACE");
  return absl::StrCat(srcdir != nullptr ? srcdir : ".", "/",
                      workspace != nullptr ? workspace : "nas_service", "/", workspace_relative);
}

std::string NewTempDir(const std::string& prefix) {
  static std::atomic<int> counter{0};
  const char* tmp = std::getenv("TEST_TMPDIR");
  // The pid keeps runs that share a TEST_TMPDIR (benchmarks run by hand) apart.
  std::string dir =
      absl::StrCat(tmp != nullptr ? tmp : "/tmp", "/", prefix, "-", ::getpid(), "-", counter++);
  (void)MakeDirectories(dir);
  return dir;
}

absl::StatusOr<RunningServer> StartServer(const std::string& binary,
                                          std::vector<std::string> args, const std::string& dir,
                                          const std::string& ready_flag, absl::Duration timeout) {
  const std::string name = binary.substr(binary.rfind('/') + 1);
  const std::string ready_path = absl::StrCat(dir, "/", name, ".ready");
  const std::string log_path = absl::StrCat(dir, "/", name, ".log");
  std::remove(ready_path.c_str());
  std::vector<std::string> argv = {BinaryPath(binary), "--host=127.0.0.1", "--metrics_port=0",
                                   absl::StrCat("--", ready_flag, "=", ready_path)};
  if (ready_flag == "ready_file") argv.push_back("--port=0");
  argv.insert(argv.end(), args.begin(), args.end());
  auto process = Subprocess::Start(argv, log_path);
  if (!process.ok()) return process.status();
  auto contents = WaitForFile(ready_path, timeout, &*process);
  if (!contents.ok()) {
    return absl::Status(contents.status().code(),
                        absl::StrCat(contents.status().message(), "\n", LogTail(log_path)));
  }
  auto ready = ParseReadyFile(*contents);
  if (!ready.ok()) return ready.status();
  return RunningServer{std::move(process).value(), *ready, log_path};
}

std::string LogTail(const std::string& path, size_t max_bytes) {
  auto contents = ReadFile(path);
  if (!contents.ok()) return absl::StrCat("(no log: ", contents.status().message(), ")");
  if (contents->size() <= max_bytes) return *contents;
  return contents->substr(contents->size() - max_bytes);
}

}  // namespace nas::testing
