#include "common/subprocess.h"

#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <string>

#include "absl/strings/numbers.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "common/file_util.h"
#include "gtest/gtest.h"

namespace nas {
namespace {

// Everything readable from `fd` until EOF (the child closed it), or what
// arrived before `timeout`.
std::string ReadAll(int fd, absl::Duration timeout = absl::Seconds(20)) {
  std::string out;
  const absl::Time deadline = absl::Now() + timeout;
  while (absl::Now() < deadline) {
    pollfd p{fd, POLLIN, 0};
    ::poll(&p, 1, 100);
    char buffer[4096];
    const ssize_t n = ::read(fd, buffer, sizeof(buffer));
    if (n == 0) break;
    if (n > 0) out.append(buffer, n);
  }
  return out;
}

std::string TempDir() {
  std::string pattern =
      std::string(absl::StripSuffix(::testing::TempDir(), "/")) + "/subprocess_test_XXXXXX";
  EXPECT_NE(::mkdtemp(pattern.data()), nullptr);
  return pattern;
}

TEST(SubprocessTest, PipesEnvironmentWorkingDirectoryAndPathLookup) {
  const std::string dir = TempDir();
  SubprocessOptions options;
  // "sh" has no '/': found on PATH.
  options.argv = {"sh", "-c", "echo out:$GREETING:$(pwd); echo err >&2; exit 3"};
  options.env = std::vector<std::string>{"GREETING=hello", "PATH=/usr/bin:/bin"};
  options.working_dir = dir;
  options.pipe_output = true;
  absl::StatusOr<Subprocess> process = Subprocess::Start(options);
  ASSERT_TRUE(process.ok()) << process.status();
  EXPECT_EQ(ReadAll(process->stdout_fd()), "out:hello:" + dir + "\n");
  EXPECT_EQ(ReadAll(process->stderr_fd()), "err\n");
  absl::StatusOr<int> status = process->Wait(absl::Seconds(20));
  ASSERT_TRUE(status.ok()) << status.status();
  EXPECT_TRUE(WIFEXITED(*status));
  EXPECT_EQ(WEXITSTATUS(*status), 3);
}

TEST(SubprocessTest, AMissingProgramIsNotFoundNamingIt) {
  SubprocessOptions options;
  options.argv = {"no-such-program-h22a"};
  absl::StatusOr<Subprocess> process = Subprocess::Start(options);
  ASSERT_EQ(process.status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(process.status().message().find("no-such-program-h22a: not found on PATH"), std::string::npos)
      << process.status();
}

TEST(SubprocessTest, SignalGroupReachesWhatTheChildStarted) {
  const std::string dir = TempDir();
  SubprocessOptions options;
  // The shell starts a grandchild, writes its pid and waits for it.
  options.argv = {"/bin/sh", "-c", "sleep 300 & echo $! > " + dir + "/grandchild; wait"};
  options.process_group = true;
  absl::StatusOr<Subprocess> process = Subprocess::Start(options);
  ASSERT_TRUE(process.ok()) << process.status();
  absl::StatusOr<std::string> text = WaitForFile(dir + "/grandchild", absl::Seconds(20), &*process);
  ASSERT_TRUE(text.ok()) << text.status();
  int grandchild = 0;
  ASSERT_TRUE(absl::SimpleAtoi(absl::StripAsciiWhitespace(*text), &grandchild));
  absl::StatusOr<ProcessId> id = IdentifyProcess(grandchild);
  ASSERT_TRUE(id.ok()) << id.status();
  ASSERT_TRUE(process->SignalGroup(SIGTERM).ok());
  ASSERT_TRUE(process->Wait(absl::Seconds(20)).ok());
  // The grandchild is not our child: poll its state with a deadline.
  const absl::Time deadline = absl::Now() + absl::Seconds(20);
  while (IsRunning(*id) && absl::Now() < deadline) absl::SleepFor(absl::Milliseconds(20));
  EXPECT_FALSE(IsRunning(*id)) << "the grandchild outlived the group's SIGTERM";
}

TEST(SubprocessTest, MaxAddressSpaceLimitsTheChild) {
  SubprocessOptions options;
  // The shell reports its own limit (in KiB).
  options.argv = {"/bin/sh", "-c", "ulimit -v"};
  options.max_address_space = int64_t{64} << 20;
  options.pipe_output = true;
  absl::StatusOr<Subprocess> process = Subprocess::Start(options);
  ASSERT_TRUE(process.ok()) << process.status();
  EXPECT_EQ(ReadAll(process->stdout_fd()), "65536\n");  // KiB
  ASSERT_TRUE(process->Wait(absl::Seconds(20)).ok());
}

}  // namespace
}  // namespace nas
