// Bearer-token authentication of gRPC calls: the token files operators write,
// the server-side check, and the client-side token every call carries.
//
// A caller sends "authorization: Bearer <token>" metadata on every call
// (common/channel.h adds it). A service built with a BearerTokenAuthenticator
// answers UNAUTHENTICATED to calls without one of its tokens; the check runs at
// the top of every method of the service (C++ server interceptors cannot end
// a call, and AuthMetadataProcessor needs TLS), so the gRPC health service and
// /metrics stay open. Tokens are compared in constant time and never appear in
// messages or logs.
#ifndef NAS_COMMON_AUTH_H_
#define NAS_COMMON_AUTH_H_

#include <grpcpp/server_context.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace nas {

// The metadata key and scheme a token travels in.
inline constexpr char kAuthorizationMetadataKey[] = "authorization";
inline constexpr char kBearerPrefix[] = "Bearer ";

// A token file: one token per line; blank lines and lines starting with '#'
// are ignored, surrounding whitespace is trimmed. A token is 1..4096 printable
// ASCII characters without spaces (it travels in an HTTP/2 header).
// INVALID_ARGUMENT naming `flag` and the line when a token is malformed or the
// file holds none; messages never quote a token.
absl::StatusOr<std::vector<std::string>> ParseTokenFile(const std::string& flag,
                                                        absl::string_view contents);
absl::StatusOr<std::vector<std::string>> ReadTokenFile(const std::string& flag,
                                                       const std::string& path);

// The one token a client presents, read from a token file that must hold
// exactly one.
absl::StatusOr<std::string> ReadClientToken(const std::string& flag, const std::string& path);

// INVALID_ARGUMENT naming `flag` when `token` (given on a command line or in
// an environment variable) is not a well-formed token.
absl::Status CheckTokenSyntax(const std::string& flag, absl::string_view token);

// True when the two strings are equal. Runs in time that depends only on the
// length of `expected` (the secret), never on where the first difference is.
bool ConstantTimeEquals(absl::string_view presented, absl::string_view expected);

// Which tokens may call one service. Thread-safe; immutable after creation
// apart from its log rate limiter.
class BearerTokenAuthenticator {
 public:
  // `service` names the protected service in messages ("JobService"); `hint`
  // tells a rejected caller where its token goes ("nasctl: --token_file,
  // --token or $NAS_TOKEN").
  static absl::StatusOr<std::unique_ptr<BearerTokenAuthenticator>> FromFile(
      const std::string& flag, const std::string& path, std::string service, std::string hint);
  BearerTokenAuthenticator(std::vector<std::string> tokens, std::string service, std::string hint);

  // OK when `authorization` (the metadata's value; nullopt when absent) is
  // "Bearer <t>" (the scheme in any case) with t one of the tokens;
  // UNAUTHENTICATED otherwise, with a message that names the service and the
  // hint but never echoes what was sent.
  absl::Status Check(std::optional<absl::string_view> authorization) const;

  // Check on a call's metadata, converted for the RPC edge. Rejections are
  // logged with the peer's address, at most one line per second.
  grpc::Status Authenticate(const grpc::ServerContextBase& context) const ABSL_LOCKS_EXCLUDED(log_mu_);

  const std::string& service() const { return service_; }
  size_t num_tokens() const { return tokens_.size(); }

 private:
  const std::vector<std::string> tokens_;
  const std::string service_;
  const std::string hint_;

  mutable absl::Mutex log_mu_;
  mutable absl::Time last_log_ ABSL_GUARDED_BY(log_mu_) = absl::InfinitePast();
  mutable int64_t unlogged_rejections_ ABSL_GUARDED_BY(log_mu_) = 0;
};

// `authenticator->Authenticate(context)`, or OK when `authenticator` is null
// (the service is open). What every protected service method calls first.
grpc::Status Authenticate(const BearerTokenAuthenticator* authenticator,
                          const grpc::ServerContextBase& context);

}  // namespace nas

#endif  // NAS_COMMON_AUTH_H_
