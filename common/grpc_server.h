// The gRPC server every nas-service server binary runs: the binary's own
// services plus the standard health service (grpc.health.v1), an explicit
// maximum message size, a /metrics endpoint, and a "ready file" that tells
// supervisors (nasctl local, tests) which ports were picked. Plaintext or TLS,
// optionally requiring client certificates (mutual TLS).
#ifndef NAS_COMMON_GRPC_SERVER_H_
#define NAS_COMMON_GRPC_SERVER_H_

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/metrics.h"

namespace nas {

// The server's TLS material, as PEM text (common/process.h reads it from the
// --tls_* flags). All empty: plaintext.
struct ServerTlsOptions {
  // Certificate chain and private key the server presents. Both set = TLS.
  std::string cert_chain_pem;
  std::string private_key_pem;
  // CA roots client certificates must chain to. Set: every client must
  // present a valid certificate (mutual TLS); only with a certificate and key.
  std::string client_ca_pem;

  bool enabled() const { return !cert_chain_pem.empty(); }
};

struct GrpcServerOptions {
  // Name of the binary, for logs and nas_build_info.
  std::string binary;
  // Address to bind: loopback unless told otherwise; "0.0.0.0" for every
  // interface.
  std::string host = "127.0.0.1";
  // gRPC port; 0 picks a free one.
  int port = 0;
  // Prometheus /metrics port; 0 picks a free one, -1 disables /metrics.
  int metrics_port = 0;
  // Largest request or response accepted, in bytes.
  int max_message_bytes = 64 << 20;
  // When set, written atomically once serving: "grpc_port=N\nmetrics_port=N\npid=N\n".
  std::string ready_file;
  // Plaintext unless set. /metrics stays plain HTTP either way.
  ServerTlsOptions tls;
};

class GrpcServer {
 public:
  // The metrics server starts first so services can register metrics before
  // the gRPC server exists: create it, add metrics, then Start.
  static absl::StatusOr<std::unique_ptr<GrpcServer>> Create(const GrpcServerOptions& options);
  ~GrpcServer();

  // nullptr when metrics are disabled.
  MetricsServer* metrics() { return metrics_.get(); }

  // Starts serving `services` (not owned; they must outlive the server) and
  // marks the health service SERVING. Writes the ready file.
  absl::Status Start(const std::vector<grpc::Service*>& services);

  // Marks health NOT_SERVING, stops accepting calls and waits up to `grace`
  // for calls in flight before cancelling them.
  void Shutdown(absl::Duration grace);

  int port() const { return port_; }
  int metrics_port() const { return metrics_ ? metrics_->port() : -1; }
  grpc::Server* server() { return server_.get(); }

 private:
  explicit GrpcServer(GrpcServerOptions options) : options_(std::move(options)) {}

  const GrpcServerOptions options_;
  std::unique_ptr<MetricsServer> metrics_;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
};

// The ready file's contents, parsed. Used by supervisors and tests.
struct ReadyInfo {
  int grpc_port = 0;
  int metrics_port = -1;
  int pid = 0;
};
absl::StatusOr<ReadyInfo> ParseReadyFile(const std::string& contents);

}  // namespace nas

#endif  // NAS_COMMON_GRPC_SERVER_H_
