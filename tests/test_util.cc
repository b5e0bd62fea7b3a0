#include "tests/test_util.h"

#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <fcntl.h>
#include <linux/magic.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <cerrno>

#include <atomic>
#include <cstdlib>

#include "absl/strings/str_cat.h"
#include "common/file_util.h"
#include "common/status_macros.h"

namespace nas::testing {

std::string BinaryPath(const std::string& workspace_relative) {
  const char* srcdir = std::getenv("TEST_SRCDIR");
  const char* workspace = std::getenv("TEST_WORKSPACE");
  return absl::StrCat(srcdir != nullptr ? srcdir : ".", "/",
                      workspace != nullptr ? workspace : "nas_service", "/", workspace_relative);
}

absl::Status UseRunfiles(const std::string& argv0, const std::string& runfiles) {
  if (!runfiles.empty()) {
    setenv("TEST_SRCDIR", runfiles.c_str(), 1);
    return absl::OkStatus();
  }
  if (std::getenv("TEST_SRCDIR") != nullptr) return absl::OkStatus();
  const std::string beside = absl::StrCat(argv0, ".runfiles");
  struct stat st;
  if (stat(beside.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    return absl::InvalidArgumentError(
        absl::StrCat("no runfiles at ", beside, ": pass --runfiles or set TEST_SRCDIR"));
  }
  setenv("TEST_SRCDIR", beside.c_str(), 1);
  return absl::OkStatus();
}

CommandResult RunCommand(const std::vector<std::string>& argv, const std::string& dir, absl::Duration timeout) {
  static std::atomic<int> counter{0};
  const std::string log = absl::StrCat(dir, "/cmd-", counter++, ".log");
  CommandResult result;
  absl::StatusOr<Subprocess> process = Subprocess::Start(argv, log);
  if (!process.ok()) return result;
  absl::StatusOr<int> status = process->Wait(timeout);
  if (status.ok() && WIFEXITED(*status)) result.exit_code = WEXITSTATUS(*status);
  result.output = ReadFile(log).value_or("");
  return result;
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
                                          const std::string& ready_flag, absl::Duration timeout,
                                          const std::vector<std::string>& wrapper) {
  const std::string name = binary.substr(binary.rfind('/') + 1);
  const std::string ready_path = absl::StrCat(dir, "/", name, ".ready");
  const std::string log_path = absl::StrCat(dir, "/", name, ".log");
  std::remove(ready_path.c_str());
  std::vector<std::string> argv = wrapper;
  for (std::string arg : {BinaryPath(binary), std::string("--host=127.0.0.1"),
                          std::string("--metrics_port=0"),
                          absl::StrCat("--", ready_flag, "=", ready_path)}) {
    argv.push_back(std::move(arg));
  }
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

absl::StatusOr<std::unique_ptr<NamespacedTmpfs>> NamespacedTmpfs::Create(
    const std::string& path, const std::string& size, const std::string& scratch) {
  RETURN_IF_ERROR(MakeDirectories(path));
  const std::string marker = absl::StrCat(scratch, "/tmpfs-", ::getpid(), "-", ::rand(), ".up");
  const std::string log = marker + ".log";
  ASSIGN_OR_RETURN(Subprocess holder,
                   Subprocess::Start({"/usr/bin/unshare", "-Urm", "/bin/sh", "-c",
                                      "mount -t tmpfs -o size=\"$1\" tmpfs \"$0\" && "
                                      "echo up > \"$2\" && exec sleep 3600",
                                      path, size, marker},
                                     log));
  absl::StatusOr<std::string> up = WaitForFile(marker, absl::Seconds(20), &holder);
  if (!up.ok()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "cannot mount a tmpfs in a mount namespace of its own (unshare -Urm): ", up.status().message(),
        "\n", LogTail(log)));
  }
  std::unique_ptr<NamespacedTmpfs> tmpfs(new NamespacedTmpfs(std::move(holder), path));
  struct statfs fs;
  if (::statfs(tmpfs->View().c_str(), &fs) != 0 || fs.f_type != TMPFS_MAGIC) {
    return absl::FailedPreconditionError(absl::StrCat(tmpfs->View(), " is not the namespace's tmpfs"));
  }
  return tmpfs;
}

std::vector<std::string> NamespacedTmpfs::Enter() const {
  return {"/usr/bin/nsenter", "-t", absl::StrCat(holder_.pid()), "-U", "-m",
          "--preserve-credentials"};
}

std::string NamespacedTmpfs::View() const {
  return absl::StrCat("/proc/", holder_.pid(), "/root", path_);
}

absl::Status NamespacedTmpfs::Fill() {
  const std::string filler = View() + "/filler";
  const int fd = ::open(filler.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) return absl::InternalError(absl::StrCat("cannot create ", filler));
  const std::string chunk(16384, 'x');
  while (::write(fd, chunk.data(), chunk.size()) >= 0) {
  }
  const int err = errno;
  ::close(fd);
  if (err != ENOSPC) return absl::InternalError(absl::StrCat("filling ", filler, ": errno ", err));
  return absl::OkStatus();
}

absl::Status NamespacedTmpfs::Free() {
  const std::string filler = View() + "/filler";
  if (::unlink(filler.c_str()) != 0) return absl::InternalError(absl::StrCat("cannot delete ", filler));
  return absl::OkStatus();
}

std::string LogTail(const std::string& path, size_t max_bytes) {
  auto contents = ReadFile(path);
  if (!contents.ok()) return absl::StrCat("(no log: ", contents.status().message(), ")");
  if (contents->size() <= max_bytes) return *contents;
  return contents->substr(contents->size() - max_bytes);
}

}  // namespace nas::testing
