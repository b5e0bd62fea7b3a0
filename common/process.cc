#include "common/process.h"

#include <cstdio>
#include <cstdlib>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/synchronization/mutex.h"
#include "common/logging.h"
#include "common/signals.h"

ABSL_FLAG(std::string, log_level, "info", "Minimum log level: info, warning or error.");
ABSL_FLAG(std::string, host, "0.0.0.0", "Address to bind gRPC and /metrics to.");
ABSL_FLAG(int, port, -1,
          "gRPC port; 0 picks a free one (see --ready_file). -1 = the binary's default.");
ABSL_FLAG(int, metrics_port, 0,
          "Prometheus /metrics port; 0 picks a free one, -1 disables /metrics.");
ABSL_FLAG(std::string, ready_file, "",
          "If set, written once serving: grpc_port=, metrics_port=, pid= lines.");
ABSL_FLAG(int, max_message_bytes, 64 << 20, "Largest gRPC message accepted or sent, in bytes.");

namespace nas {

std::vector<std::string> InitProcess(int argc, char** argv, const char* usage,
                                     bool block_signals) {
  // Before any thread exists, so every thread inherits the blocked signals.
  if (block_signals) BlockShutdownSignals();
  // Debian's abseil is built without NDEBUG, which turns on lock-order
  // (deadlock) graphs on every Mutex acquisition: a few percent of the
  // controller's CPU under load. Unit tests keep it; ThreadSanitizer runs in CI.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  absl::SetProgramUsageMessage(usage);
  std::vector<char*> positional = absl::ParseCommandLine(argc, argv);
  LogLevel level;
  if (!ParseLogLevel(absl::GetFlag(FLAGS_log_level).c_str(), &level)) {
    std::fprintf(stderr, "--log_level must be info, warning or error, not '%s'\n",
                 absl::GetFlag(FLAGS_log_level).c_str());
    std::exit(2);
  }
  SetMinLogLevel(level);
  return std::vector<std::string>(positional.begin(), positional.end());
}

GrpcServerOptions ServerOptionsFromFlags(const std::string& binary) {
  GrpcServerOptions options;
  options.binary = binary;
  options.host = absl::GetFlag(FLAGS_host);
  options.port = absl::GetFlag(FLAGS_port);
  options.metrics_port = absl::GetFlag(FLAGS_metrics_port);
  options.ready_file = absl::GetFlag(FLAGS_ready_file);
  options.max_message_bytes = absl::GetFlag(FLAGS_max_message_bytes);
  return options;
}

int MetricsPortFlag() { return absl::GetFlag(FLAGS_metrics_port); }
std::string HostFlag() { return absl::GetFlag(FLAGS_host); }

}  // namespace nas
