#include "common/channel.h"

#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>
#include <grpcpp/support/channel_arguments.h>
#include <grpcpp/support/client_interceptor.h>

#include <cstdlib>
#include <utility>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "common/auth.h"
#include "common/tls.h"

ABSL_FLAG(std::string, tls_ca, "",
          "PEM file of the CA roots that verify the servers this process dials; set = TLS, "
          "empty = plaintext.");
ABSL_FLAG(std::string, tls_client_cert, "",
          "PEM certificate chain this process presents to servers that require client "
          "certificates (mutual TLS); with --tls_client_key and --tls_ca.");
ABSL_FLAG(std::string, tls_client_key, "", "PEM private key of --tls_client_cert.");
ABSL_FLAG(std::string, tls_server_name, "",
          "Name to verify in the server certificates instead of the dialed host (e.g. when "
          "dialing an IP address); with --tls_ca.");

namespace nas {
namespace {

// Adds the bearer token to every call's initial metadata, so no call site
// has to remember it. Works on plaintext channels too, where gRPC refuses
// call credentials.
class BearerTokenInterceptor final : public grpc::experimental::Interceptor {
 public:
  explicit BearerTokenInterceptor(const std::string* header) : header_(header) {}

  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    if (methods->QueryInterceptionHookPoint(
            grpc::experimental::InterceptionHookPoints::PRE_SEND_INITIAL_METADATA)) {
      methods->GetSendInitialMetadata()->emplace(kAuthorizationMetadataKey, *header_);
    }
    methods->Proceed();
  }

 private:
  const std::string* const header_;  // Owned by the factory, which the channel keeps.
};

class BearerTokenInterceptorFactory final
    : public grpc::experimental::ClientInterceptorFactoryInterface {
 public:
  explicit BearerTokenInterceptorFactory(const std::string& token)
      : header_(absl::StrCat(kBearerPrefix, token)) {}

  grpc::experimental::Interceptor* CreateClientInterceptor(
      grpc::experimental::ClientRpcInfo*) override {
    return new BearerTokenInterceptor(&header_);
  }

 private:
  const std::string header_;
};

}  // namespace

absl::Status ValidateChannelOptions(const ChannelOptions& options) {
  if (options.tls_client_cert_pem.empty() != options.tls_client_key_pem.empty()) {
    return absl::InvalidArgumentError(
        "--tls_client_cert and --tls_client_key: give both (mutual TLS) or neither");
  }
  if (!options.tls() && !options.tls_client_cert_pem.empty()) {
    return absl::InvalidArgumentError(
        "--tls_client_cert: needs --tls_ca (client certificates are only sent over TLS)");
  }
  if (!options.tls() && !options.tls_server_name.empty()) {
    return absl::InvalidArgumentError("--tls_server_name: needs --tls_ca");
  }
  if (!options.token.empty()) {
    if (absl::Status syntax = CheckTokenSyntax("token", options.token); !syntax.ok()) {
      return syntax;
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<ChannelOptions> ChannelOptionsFromFlags(const std::string& tls_ca_env) {
  TlsClientFiles files;
  files.ca = absl::GetFlag(FLAGS_tls_ca);
  files.client_cert = absl::GetFlag(FLAGS_tls_client_cert);
  files.client_key = absl::GetFlag(FLAGS_tls_client_key);
  files.server_name = absl::GetFlag(FLAGS_tls_server_name);
  return ChannelOptionsFromTlsFiles(files, tls_ca_env);
}

absl::StatusOr<ChannelOptions> ChannelOptionsFromTlsFiles(const TlsClientFiles& files,
                                                          const std::string& tls_ca_env) {
  ChannelOptions options;
  std::string ca_source = "--tls_ca";
  std::string ca_path = files.ca;
  if (ca_path.empty() && !tls_ca_env.empty()) {
    const char* env = std::getenv(tls_ca_env.c_str());
    if (env != nullptr && *env != '\0') {
      ca_source = absl::StrCat("$", tls_ca_env);
      ca_path = env;
    }
  }
  if (!ca_path.empty()) {
    absl::StatusOr<std::string> pem = ReadPemFile(ca_source, ca_path, PemKind::kCertificate);
    if (!pem.ok()) return pem.status();
    options.tls_ca_pem = *std::move(pem);
  }
  const std::string& cert_path = files.client_cert;
  const std::string& key_path = files.client_key;
  if (cert_path.empty() != key_path.empty()) {
    return absl::InvalidArgumentError(
        "--tls_client_cert and --tls_client_key: give both (mutual TLS) or neither");
  }
  if (!cert_path.empty()) {
    absl::StatusOr<std::string> cert =
        ReadPemFile("--tls_client_cert", cert_path, PemKind::kCertificate);
    if (!cert.ok()) return cert.status();
    absl::StatusOr<std::string> key = ReadPemFile("--tls_client_key", key_path, PemKind::kPrivateKey);
    if (!key.ok()) return key.status();
    options.tls_client_cert_pem = *std::move(cert);
    options.tls_client_key_pem = *std::move(key);
  }
  options.tls_server_name = files.server_name;
  if (absl::Status valid = ValidateChannelOptions(options); !valid.ok()) return valid;
  return options;
}

absl::StatusOr<ChannelOptions> ChannelOptionsWithTokenFile(const std::string& token_flag,
                                                           const std::string& token_path) {
  absl::StatusOr<ChannelOptions> options = ChannelOptionsFromFlags();
  if (!options.ok() || token_path.empty()) return options;
  absl::StatusOr<std::string> token = ReadClientToken(token_flag, token_path);
  if (!token.ok()) return token.status();
  options->token = *std::move(token);
  return options;
}

std::shared_ptr<grpc::Channel> CreateChannel(const std::string& target,
                                             const ChannelOptions& options) {
  grpc::ChannelArguments args;
  if (options.max_message_bytes > 0) {
    args.SetMaxReceiveMessageSize(options.max_message_bytes);
    args.SetMaxSendMessageSize(options.max_message_bytes);
  }
  std::shared_ptr<grpc::ChannelCredentials> credentials;
  if (options.tls()) {
    grpc::SslCredentialsOptions ssl;
    ssl.pem_root_certs = options.tls_ca_pem;
    ssl.pem_cert_chain = options.tls_client_cert_pem;
    ssl.pem_private_key = options.tls_client_key_pem;
    credentials = grpc::SslCredentials(ssl);
    if (!options.tls_server_name.empty()) args.SetSslTargetNameOverride(options.tls_server_name);
  } else {
    credentials = grpc::InsecureChannelCredentials();
  }
  if (options.token.empty()) return grpc::CreateCustomChannel(target, credentials, args);
  std::vector<std::unique_ptr<grpc::experimental::ClientInterceptorFactoryInterface>> interceptors;
  interceptors.push_back(std::make_unique<BearerTokenInterceptorFactory>(options.token));
  return grpc::experimental::CreateCustomChannelWithInterceptors(target, credentials, args,
                                                                 std::move(interceptors));
}

std::string DescribeChannelSecurity(const ChannelOptions& options) {
  if (!options.tls()) return "plaintext";
  std::string description = options.tls_client_cert_pem.empty() ? "TLS" : "mutual TLS";
  if (!options.tls_server_name.empty()) {
    absl::StrAppend(&description, " (server name ", options.tls_server_name, ")");
  }
  return description;
}

}  // namespace nas
