#include "common/grpc_server.h"

#include <string>

#include "absl/strings/str_cat.h"
#include "common/file_util.h"
#include "common/health_client.h"
#include "common/http_client.h"
#include "gtest/gtest.h"
#include "proto/job_service.grpc.pb.h"

namespace nas {
namespace {

TEST(GrpcServerTest, ServesHealthAndMetricsOnPickedPortsAndWritesReadyFile) {
  GrpcServerOptions options;
  options.binary = "grpc_server_test";
  options.host = "127.0.0.1";
  options.ready_file = absl::StrCat(std::getenv("TEST_TMPDIR"), "/ready");
  auto server = GrpcServer::Create(options);
  ASSERT_TRUE(server.ok()) << server.status();
  // Any service will do; its methods answer UNIMPLEMENTED.
  nas::v1::JobService::Service service;
  ASSERT_TRUE((*server)->Start({&service}).ok());
  const int port = (*server)->port();
  ASSERT_GT(port, 0);
  ASSERT_GT((*server)->metrics_port(), 0);

  EXPECT_TRUE(CheckHealth(absl::StrCat("127.0.0.1:", port), absl::Seconds(5)).ok());

  auto metrics = HttpGet("127.0.0.1", (*server)->metrics_port(), "/metrics", absl::Seconds(5));
  ASSERT_TRUE(metrics.ok()) << metrics.status();
  EXPECT_EQ(metrics->status_code, 200);
  // The standard process_* names of Prometheus's client libraries.
  for (const char* name : {"process_resident_memory_bytes", "process_virtual_memory_bytes",
                           "process_cpu_seconds_total", "process_start_time_seconds",
                           "process_open_fds", "process_max_fds"}) {
    EXPECT_NE(metrics->body.find(absl::StrCat("\n", name, " ")), std::string::npos) << name;
  }
  EXPECT_NE(metrics->body.find("binary=\"grpc_server_test\""), std::string::npos);

  auto ready = ReadFile(options.ready_file);
  ASSERT_TRUE(ready.ok());
  auto info = ParseReadyFile(*ready);
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->grpc_port, port);
  EXPECT_EQ(info->metrics_port, (*server)->metrics_port());

  (*server)->Shutdown(absl::Seconds(1));
  EXPECT_FALSE(CheckHealth(absl::StrCat("127.0.0.1:", port), absl::Milliseconds(500)).ok());
}

TEST(GrpcServerTest, RejectsOutOfRangePort) {
  GrpcServerOptions options;
  options.port = 70000;
  EXPECT_EQ(GrpcServer::Create(options).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(GrpcServerTest, ParseReadyFileNeedsGrpcPort) {
  EXPECT_FALSE(ParseReadyFile("metrics_port=3\n").ok());
  EXPECT_FALSE(ParseReadyFile("grpc_port=abc\n").ok());
  auto info = ParseReadyFile("grpc_port=12\nmetrics_port=-1\npid=7\n");
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->grpc_port, 12);
  EXPECT_EQ(info->metrics_port, -1);
  EXPECT_EQ(info->pid, 7);
}

}  // namespace
}  // namespace nas
