// The one way nas-service clients dial a gRPC server: plaintext or TLS (with
// an optional client certificate for mutual TLS), and a bearer token added to
// every call. Used by the controller (to its parameter servers), workers (to
// the controller) and nasctl. The --tls_ca, --tls_client_cert,
// --tls_client_key and --tls_server_name flags are defined in channel.cc; each
// binary adds its own token flag and sets ChannelOptions::token.
#ifndef NAS_COMMON_CHANNEL_H_
#define NAS_COMMON_CHANNEL_H_

#include <grpcpp/channel.h>

#include <memory>
#include <string>

#include "absl/status/statusor.h"

namespace nas {

struct ChannelOptions {
  // PEM roots that the server's certificate must chain to. Empty: plaintext
  // (no TLS). Set: TLS, and the server's name (or --tls_server_name) must
  // match its certificate.
  std::string tls_ca_pem;
  // PEM certificate chain and private key presented to the server (mutual
  // TLS). Both empty or both set; only with tls_ca_pem.
  std::string tls_client_cert_pem;
  std::string tls_client_key_pem;
  // Overrides the name checked against the server certificate (and sent as
  // SNI), e.g. "nas-controller" when dialing 127.0.0.1. Empty: the host of
  // the target.
  std::string tls_server_name;
  // Sent as "authorization: Bearer <token>" on every call; empty sends none.
  // Over plaintext the token crosses the network readable: use TLS.
  std::string token;
  // Largest message sent or received, in bytes; 0 keeps gRPC's defaults.
  int max_message_bytes = 0;

  bool tls() const { return !tls_ca_pem.empty(); }
};

// The --tls_* client flags, files read. INVALID_ARGUMENT naming the flag when
// a file is missing or not PEM, when only one of --tls_client_cert and
// --tls_client_key is given, or when client certificates or a server name are
// given without a CA. When --tls_ca is empty and `tls_ca_env` names a set
// environment variable (nasctl: "NAS_TLS_CA"), its value is the CA's path.
// The token is left empty.
absl::StatusOr<ChannelOptions> ChannelOptionsFromFlags(const std::string& tls_ca_env = "");

// The client TLS settings as a command line gives them (file paths and a
// name): what ChannelOptionsFromFlags reads from the --tls_* absl flags, for a
// binary with its own command-line parser (nasctl). Errors name the flags as
// --tls_ca, --tls_client_cert, --tls_client_key.
struct TlsClientFiles {
  std::string ca;
  std::string client_cert;
  std::string client_key;
  std::string server_name;
};
absl::StatusOr<ChannelOptions> ChannelOptionsFromTlsFiles(const TlsClientFiles& files,
                                                          const std::string& tls_ca_env = "");

// ChannelOptionsFromFlags(), plus the one token of `token_path` (read with
// ReadClientToken; errors name `token_flag`) when the path is not empty: what
// a server binary that dials another (controller, worker) needs.
absl::StatusOr<ChannelOptions> ChannelOptionsWithTokenFile(const std::string& token_flag,
                                                           const std::string& token_path);

// Checks the combination, as ChannelOptionsFromFlags does for flags.
absl::Status ValidateChannelOptions(const ChannelOptions& options);

// A channel to `target` (host:port) with `options`. Does not connect yet.
std::shared_ptr<grpc::Channel> CreateChannel(const std::string& target,
                                             const ChannelOptions& options);

// "TLS" or "plaintext", with "mutual" and the name override when set: for logs.
std::string DescribeChannelSecurity(const ChannelOptions& options);

}  // namespace nas

#endif  // NAS_COMMON_CHANNEL_H_
