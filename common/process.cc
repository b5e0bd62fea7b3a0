#include "common/process.h"

#include <cstdio>
#include <cstdlib>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "common/logging.h"
#include "common/signals.h"
#include "common/tls.h"

ABSL_FLAG(std::string, log_level, "info", "Minimum log level: info, warning or error.");
ABSL_FLAG(std::string, host, "127.0.0.1",
          "Address to bind gRPC and /metrics to. The default serves this machine only; "
          "0.0.0.0 serves every interface (the Kubernetes manifests pass it).");
ABSL_FLAG(int, port, -1,
          "gRPC port; 0 picks a free one (see --ready_file). -1 = the binary's default.");
ABSL_FLAG(int, metrics_port, 0,
          "Prometheus /metrics port; 0 picks a free one, -1 disables /metrics.");
ABSL_FLAG(std::string, ready_file, "",
          "If set, written once serving: grpc_port=, metrics_port=, pid= lines.");
ABSL_FLAG(int, max_message_bytes, 64 << 20, "Largest gRPC message accepted or sent, in bytes.");
ABSL_FLAG(std::string, tls_cert, "",
          "PEM certificate chain the gRPC server presents; with --tls_key it serves TLS, "
          "without both it serves plaintext.");
ABSL_FLAG(std::string, tls_key, "", "PEM private key of --tls_cert.");
ABSL_FLAG(std::string, tls_client_ca, "",
          "PEM CA roots: when set, every gRPC client must present a certificate signed by "
          "them (mutual TLS). Needs --tls_cert and --tls_key.");

namespace nas {
namespace {

[[noreturn]] void ExitWithFlagError(const absl::Status& status) {
  std::fprintf(stderr, "%s\n", std::string(status.message()).c_str());
  std::exit(2);
}

absl::StatusOr<ServerTlsOptions> ServerTlsFromFlags() {
  ServerTlsOptions tls;
  const std::string cert = absl::GetFlag(FLAGS_tls_cert);
  const std::string key = absl::GetFlag(FLAGS_tls_key);
  const std::string client_ca = absl::GetFlag(FLAGS_tls_client_ca);
  if (cert.empty() != key.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        cert.empty() ? "--tls_key is set but --tls_cert is not"
                     : "--tls_cert is set but --tls_key is not",
        ": give both to serve TLS, or neither for plaintext"));
  }
  if (cert.empty()) {
    if (!client_ca.empty()) {
      return absl::InvalidArgumentError(
          "--tls_client_ca: needs --tls_cert and --tls_key (client certificates are only "
          "checked over TLS)");
    }
    return tls;
  }
  absl::StatusOr<std::string> cert_pem = ReadPemFile("--tls_cert", cert, PemKind::kCertificate);
  if (!cert_pem.ok()) return cert_pem.status();
  absl::StatusOr<std::string> key_pem = ReadPemFile("--tls_key", key, PemKind::kPrivateKey);
  if (!key_pem.ok()) return key_pem.status();
  tls.cert_chain_pem = *std::move(cert_pem);
  tls.private_key_pem = *std::move(key_pem);
  if (!client_ca.empty()) {
    absl::StatusOr<std::string> ca_pem =
        ReadPemFile("--tls_client_ca", client_ca, PemKind::kCertificate);
    if (!ca_pem.ok()) return ca_pem.status();
    tls.client_ca_pem = *std::move(ca_pem);
  }
  return tls;
}

}  // namespace

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
  absl::StatusOr<ServerTlsOptions> tls = ServerTlsFromFlags();
  if (!tls.ok()) ExitWithFlagError(tls.status());
  options.tls = *std::move(tls);
  return options;
}

int MaxMessageBytesFlag() { return absl::GetFlag(FLAGS_max_message_bytes); }

int MetricsPortFlag() { return absl::GetFlag(FLAGS_metrics_port); }
std::string HostFlag() { return absl::GetFlag(FLAGS_host); }

}  // namespace nas
