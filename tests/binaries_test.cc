// Each binary, as a real process: it starts, serves health (servers) and
// /metrics on ports picked at run time, and exits 0 on SIGTERM.
#include <signal.h>
#include <sys/wait.h>

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "common/health_client.h"
#include "common/http_client.h"
#include "common/subprocess.h"
#include "gtest/gtest.h"
#include "tests/test_util.h"

namespace nas {
namespace {

using ::nas::testing::BinaryPath;
using ::nas::testing::LogTail;
using ::nas::testing::NewTempDir;
using ::nas::testing::RunningServer;
using ::nas::testing::StartServer;

void ExpectMetricsServed(int port, const std::string& binary) {
  auto metrics = HttpGet("127.0.0.1", port, "/metrics", absl::Seconds(10));
  ASSERT_TRUE(metrics.ok()) << metrics.status();
  EXPECT_EQ(metrics->status_code, 200);
  EXPECT_NE(metrics->body.find("nas_process_cpu_seconds_total"), std::string::npos);
  EXPECT_NE(metrics->body.find(absl::StrCat("binary=\"", binary, "\"")), std::string::npos);
}

void ExpectCleanExitOnSigterm(RunningServer& server) {
  ASSERT_TRUE(server.process.Signal(SIGTERM).ok());
  auto status = server.process.Wait(absl::Seconds(20));
  ASSERT_TRUE(status.ok()) << status.status() << "\n" << LogTail(server.log_path);
  ASSERT_TRUE(WIFEXITED(*status)) << LogTail(server.log_path);
  EXPECT_EQ(WEXITSTATUS(*status), 0) << LogTail(server.log_path);
}

class ServerBinaryTest : public ::testing::TestWithParam<std::vector<std::string>> {};

TEST_P(ServerBinaryTest, ServesHealthAndMetricsAndExitsCleanlyOnSigterm) {
  const std::string binary = GetParam()[0];
  std::vector<std::string> args(GetParam().begin() + 1, GetParam().end());
  const std::string dir = NewTempDir("server");
  for (std::string& arg : args) arg = absl::StrReplaceAll(arg, {{"$DIR", dir}});
  auto server = StartServer(binary, args, dir);
  ASSERT_TRUE(server.ok()) << server.status();
  EXPECT_TRUE(CheckHealth(absl::StrCat("127.0.0.1:", server->ready.grpc_port), absl::Seconds(10))
                  .ok())
      << LogTail(server->log_path);
  ExpectMetricsServed(server->ready.metrics_port, binary.substr(binary.rfind('/') + 1));
  ExpectCleanExitOnSigterm(*server);
}

INSTANTIATE_TEST_SUITE_P(
    Servers, ServerBinaryTest,
    ::testing::Values(std::vector<std::string>{"parameter_server/nas_parameter_server",
                                               "--data_dir=$DIR/ps"},
                      std::vector<std::string>{"controller/nas_controller",
                                               "--data_dir=$DIR/controller"}));

TEST(WorkerBinaryTest, ServesMetricsAndExitsCleanlyOnSigterm) {
  const std::string dir = NewTempDir("worker");
  auto worker = StartServer("worker/nas_worker", {"--controller=127.0.0.1:1", "--device=cpu"},
                            dir, "worker_ready_file");
  ASSERT_TRUE(worker.ok()) << worker.status();
  ExpectMetricsServed(worker->ready.metrics_port, "nas_worker");
  ExpectCleanExitOnSigterm(*worker);
}

TEST(WorkerBinaryTest, RejectsUnknownDeviceWithUsageExitCode) {
  auto process = Subprocess::Start({BinaryPath("worker/nas_worker"), "--device=tpu"},
                                   NewTempDir("worker-bad") + "/log");
  ASSERT_TRUE(process.ok());
  auto status = process->Wait(absl::Seconds(30));
  ASSERT_TRUE(status.ok());
  ASSERT_TRUE(WIFEXITED(*status));
  EXPECT_EQ(WEXITSTATUS(*status), 2);
}

TEST(NasctlBinaryTest, VersionSucceedsAndUnknownCommandIsUsageError) {
  const std::string dir = NewTempDir("nasctl");
  auto version = Subprocess::Start({BinaryPath("client/nasctl"), "version"}, dir + "/v.log");
  ASSERT_TRUE(version.ok());
  auto status = version->Wait(absl::Seconds(10));
  ASSERT_TRUE(status.ok());
  EXPECT_EQ(WEXITSTATUS(*status), 0);
  EXPECT_NE(LogTail(dir + "/v.log").find("nasctl "), std::string::npos);

  auto unknown = Subprocess::Start({BinaryPath("client/nasctl"), "frobnicate"}, dir + "/u.log");
  ASSERT_TRUE(unknown.ok());
  status = unknown->Wait(absl::Seconds(10));
  ASSERT_TRUE(status.ok());
  EXPECT_EQ(WEXITSTATUS(*status), 2);
  EXPECT_NE(LogTail(dir + "/u.log").find("unknown command 'frobnicate'"), std::string::npos);
}

TEST(NasctlBinaryTest, HealthOfUnreachableControllerFailsWithOneClearLine) {
  const std::string dir = NewTempDir("nasctl-health");
  auto health = Subprocess::Start(
      {BinaryPath("client/nasctl"), "health", "--server=127.0.0.1:1", "--timeout=2s"},
      dir + "/h.log");
  ASSERT_TRUE(health.ok());
  auto status = health->Wait(absl::Seconds(20));
  ASSERT_TRUE(status.ok());
  EXPECT_EQ(WEXITSTATUS(*status), 1);
  EXPECT_NE(LogTail(dir + "/h.log").find("cannot reach controller at 127.0.0.1:1"),
            std::string::npos);
}

}  // namespace
}  // namespace nas
