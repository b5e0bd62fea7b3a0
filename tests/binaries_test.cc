// Each binary, as a real process: it starts, serves health (servers) and
// /metrics on ports picked at run time, and exits 0 on SIGTERM.
#include <signal.h>
#include <sys/wait.h>

#include <fstream>
#include <set>
#include <sstream>
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
  EXPECT_NE(metrics->body.find("process_cpu_seconds_total"), std::string::npos);
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

// Issue 18, row 11: a server started without --host listens on loopback only
// (gRPC and /metrics); --host=0.0.0.0, as the Kubernetes manifests pass it,
// opens every interface and still warns that gRPC is plaintext.

// The local addresses, as /proc/net/tcp{,6} spell them ("0100007F" is
// 127.0.0.1, "00000000" 0.0.0.0), of the TCP sockets listening on `port`.
std::set<std::string> ListeningAddresses(int port) {
  std::set<std::string> addresses;
  for (const char* table : {"/proc/net/tcp", "/proc/net/tcp6"}) {
    std::ifstream in(table);
    std::string line;
    std::getline(in, line);  // header
    while (std::getline(in, line)) {
      std::istringstream fields(line);
      std::string slot, local, remote, state;
      fields >> slot >> local >> remote >> state;
      const size_t colon = local.find(':');
      if (colon == std::string::npos || state != "0A") continue;  // 0A: LISTEN
      if (std::stoi(local.substr(colon + 1), nullptr, 16) == port) {
        addresses.insert(local.substr(0, colon));
      }
    }
  }
  return addresses;
}

struct BindCase {
  std::string binary;
  std::vector<std::string> args;
  std::string ready_flag;
  friend void PrintTo(const BindCase& c, std::ostream* os) { *os << c.binary; }
};

class BindAddressTest : public ::testing::TestWithParam<BindCase> {
 protected:
  // Starts the binary with `host_args` (no --host unless given) and returns
  // it once its ready file names its ports.
  absl::StatusOr<RunningServer> Start(const std::vector<std::string>& host_args) {
    const BindCase& c = GetParam();
    const std::string dir = NewTempDir("bind");
    const std::string ready = dir + "/ready";
    const std::string log = dir + "/log";
    std::vector<std::string> argv = {BinaryPath(c.binary), "--metrics_port=0",
                                     absl::StrCat("--", c.ready_flag, "=", ready)};
    if (c.ready_flag == "ready_file") argv.push_back("--port=0");
    for (const std::string& arg : c.args) argv.push_back(absl::StrReplaceAll(arg, {{"$DIR", dir}}));
    argv.insert(argv.end(), host_args.begin(), host_args.end());
    auto process = Subprocess::Start(argv, log);
    if (!process.ok()) return process.status();
    auto contents = WaitForFile(ready, absl::Seconds(60), &*process);
    if (!contents.ok()) return absl::Status(contents.status().code(), LogTail(log));
    auto info = ParseReadyFile(*contents);
    if (!info.ok()) return info.status();
    return RunningServer{std::move(process).value(), *info, log};
  }
};

TEST_P(BindAddressTest, WithoutHostItListensOnLoopbackOnly) {
  auto server = Start({});
  ASSERT_TRUE(server.ok()) << server.status();
  // 127.0.0.1, also as gRPC binds it (IPv4-mapped ::ffff:127.0.0.1), or ::1.
  const std::set<std::string> loopback = {"0100007F", "0000000000000000FFFF00000100007F",
                                          "00000000000000000000000001000000"};
  for (int port : {server->ready.grpc_port, server->ready.metrics_port}) {
    if (port <= 0) continue;
    const std::set<std::string> addresses = ListeningAddresses(port);
    EXPECT_FALSE(addresses.empty()) << "port " << port;
    for (const std::string& a : addresses) {
      EXPECT_EQ(loopback.count(a), 1u) << "port " << port << " listens on " << a << "\n"
                                       << LogTail(server->log_path);
    }
  }
  ExpectCleanExitOnSigterm(*server);
}

TEST_P(BindAddressTest, HostZeroListensOnEveryInterfaceAndWarnsAboutPlaintext) {
  auto server = Start({"--host=0.0.0.0"});
  ASSERT_TRUE(server.ok()) << server.status();
  // A wildcard address: 0.0.0.0, or [::] when gRPC binds both families.
  const auto is_wildcard = [](const std::set<std::string>& addresses) {
    if (addresses.empty()) return false;
    for (const std::string& a : addresses) {
      if (a.find_first_not_of('0') != std::string::npos) return false;
    }
    return true;
  };
  for (int port : {server->ready.grpc_port, server->ready.metrics_port}) {
    if (port <= 0) continue;
    EXPECT_TRUE(is_wildcard(ListeningAddresses(port)))
        << "port " << port << ": " << *ListeningAddresses(port).begin() << "\n"
        << LogTail(server->log_path);
  }
  ExpectCleanExitOnSigterm(*server);
  if (server->ready.grpc_port > 0) {
    EXPECT_NE(LogTail(server->log_path, 1 << 20).find("gRPC is plaintext"), std::string::npos)
        << LogTail(server->log_path);
  }
}

INSTANTIATE_TEST_SUITE_P(
    Binaries, BindAddressTest,
    ::testing::Values(
        BindCase{"parameter_server/nas_parameter_server", {"--data_dir=$DIR/ps"}, "ready_file"},
        BindCase{"controller/nas_controller", {"--data_dir=$DIR/controller"}, "ready_file"},
        // The worker serves only /metrics.
        BindCase{"worker/nas_worker", {"--controller=127.0.0.1:1", "--device=cpu"},
                 "worker_ready_file"}),
    [](const ::testing::TestParamInfo<BindCase>& info) {
      const std::string& b = info.param.binary;
      return b.substr(b.rfind('/') + 1);
    });

}  // namespace
}  // namespace nas
