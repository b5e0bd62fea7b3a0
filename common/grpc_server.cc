#include "common/grpc_server.h"

#include <unistd.h>

#include <grpcpp/health_check_service_interface.h>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/file_util.h"
#include "common/logging.h"

namespace nas {

absl::StatusOr<std::unique_ptr<GrpcServer>> GrpcServer::Create(
    const GrpcServerOptions& options) {
  if (options.port < 0 || options.port > 65535) {
    return absl::InvalidArgumentError(absl::StrCat("--port ", options.port, " is not in 0..65535"));
  }
  if (options.max_message_bytes <= 0) {
    return absl::InvalidArgumentError("max message size must be positive");
  }
  if (options.tls.cert_chain_pem.empty() != options.tls.private_key_pem.empty()) {
    return absl::InvalidArgumentError("--tls_cert and --tls_key: give both (TLS) or neither");
  }
  if (!options.tls.enabled() && !options.tls.client_ca_pem.empty()) {
    return absl::InvalidArgumentError(
        "--tls_client_ca: needs --tls_cert and --tls_key (client certificates are only "
        "checked over TLS)");
  }
  std::unique_ptr<GrpcServer> server(new GrpcServer(options));
  if (options.metrics_port >= 0) {
    MetricsServerOptions metrics_options;
    metrics_options.host = options.host;
    metrics_options.port = options.metrics_port;
    metrics_options.binary = options.binary;
    auto metrics = MetricsServer::Create(metrics_options);
    if (!metrics.ok()) return metrics.status();
    server->metrics_ = std::move(metrics).value();
  }
  return server;
}

GrpcServer::~GrpcServer() {
  if (server_ != nullptr) Shutdown(absl::ZeroDuration());
}

namespace {

std::shared_ptr<grpc::ServerCredentials> ServerCredentials(const ServerTlsOptions& tls) {
  if (!tls.enabled()) return grpc::InsecureServerCredentials();
  grpc::SslServerCredentialsOptions ssl(
      tls.client_ca_pem.empty() ? GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE
                                : GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
  ssl.pem_root_certs = tls.client_ca_pem;
  ssl.pem_key_cert_pairs.push_back({tls.private_key_pem, tls.cert_chain_pem});
  return grpc::SslServerCredentials(ssl);
}

std::string DescribeSecurity(const ServerTlsOptions& tls) {
  if (!tls.enabled()) return "plaintext (no --tls_cert/--tls_key)";
  if (tls.client_ca_pem.empty()) return "TLS";
  return "mutual TLS (client certificates required, --tls_client_ca)";
}

}  // namespace

absl::Status GrpcServer::Start(const std::vector<grpc::Service*>& services) {
  grpc::EnableDefaultHealthCheckService(true);
  grpc::ServerBuilder builder;
  const std::string address = absl::StrCat(options_.host, ":", options_.port);
  builder.AddListeningPort(address, ServerCredentials(options_.tls), &port_);
  builder.SetMaxReceiveMessageSize(options_.max_message_bytes);
  builder.SetMaxSendMessageSize(options_.max_message_bytes);
  // The synchronous server ends a thread whenever more than MAX_POLLERS are
  // idle and starts one whenever fewer than MIN_POLLERS are. The defaults
  // (1, 2) create and destroy a thread per call when many calls block (the
  // controller's long-poll AcquireTask): keep a pool of idle threads instead.
  builder.SetSyncServerOption(grpc::ServerBuilder::SyncServerOption::MIN_POLLERS, 2);
  builder.SetSyncServerOption(grpc::ServerBuilder::SyncServerOption::MAX_POLLERS, 256);
  for (grpc::Service* service : services) builder.RegisterService(service);
  server_ = builder.BuildAndStart();
  if (server_ == nullptr || port_ == 0) {
    server_.reset();
    return absl::UnavailableError(absl::StrCat(
        "cannot serve gRPC on ", address,
        options_.tls.enabled()
            ? " (port in use, address not local, or a --tls_cert/--tls_key gRPC cannot use: "
              "a key that does not match the certificate?)"
            : " (port in use or address not local?)"));
  }
  if (auto* health = server_->GetHealthCheckService()) health->SetServingStatus(true);
  NAS_LOG(Info) << options_.binary << " serving gRPC on " << options_.host << ":" << port_
                << " over " << DescribeSecurity(options_.tls) << ", /metrics on port "
                << metrics_port();
  const bool loopback = options_.host == "127.0.0.1" || options_.host == "localhost" ||
                        options_.host == "::1" || options_.host == "[::1]";
  if (!options_.tls.enabled() && !loopback) {
    NAS_LOG(Warning) << options_.binary
                     << ": gRPC is plaintext: calls and bearer tokens cross the network "
                        "unencrypted (set --tls_cert and --tls_key; docs/security.md)";
  }
  if (!options_.ready_file.empty()) {
    const std::string contents = absl::StrCat("grpc_port=", port_, "\nmetrics_port=",
                                              metrics_port(), "\npid=", ::getpid(), "\n");
    absl::Status written = WriteFileAtomically(options_.ready_file, contents);
    if (!written.ok()) return written;
  }
  return absl::OkStatus();
}

void GrpcServer::Shutdown(absl::Duration grace) {
  if (server_ == nullptr) return;
  if (auto* health = server_->GetHealthCheckService()) health->SetServingStatus(false);
  server_->Shutdown(absl::ToChronoTime(absl::Now() + grace));
  server_->Wait();
  server_.reset();
}

absl::StatusOr<ReadyInfo> ParseReadyFile(const std::string& contents) {
  ReadyInfo info;
  bool has_grpc = false;
  for (absl::string_view line : absl::StrSplit(contents, '\n', absl::SkipEmpty())) {
    std::pair<std::string, std::string> kv = absl::StrSplit(line, absl::MaxSplits('=', 1));
    int value = 0;
    if (!absl::SimpleAtoi(kv.second, &value)) {
      return absl::DataLossError(absl::StrCat("ready file line '", line, "' has no number"));
    }
    if (kv.first == "grpc_port") {
      info.grpc_port = value;
      has_grpc = true;
    } else if (kv.first == "metrics_port") {
      info.metrics_port = value;
    } else if (kv.first == "pid") {
      info.pid = value;
    }
  }
  if (!has_grpc) return absl::DataLossError("ready file has no grpc_port");
  return info;
}

}  // namespace nas
