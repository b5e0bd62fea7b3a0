#include "common/auth.h"

#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "common/file_util.h"
#include "common/grpc_status.h"
#include "common/logging.h"

namespace nas {
namespace {

constexpr size_t kMaxTokenLength = 4096;

// Why `token` is not a well-formed token, or "" when it is one.
std::string TokenSyntaxProblem(absl::string_view token) {
  if (token.empty()) return "empty token";
  if (token.size() > kMaxTokenLength) {
    return absl::StrCat("token longer than ", kMaxTokenLength, " characters");
  }
  for (char c : token) {
    // Printable ASCII without the space: what an HTTP/2 header value carries
    // unchanged.
    if (c <= ' ' || c > '~') return "token has a space or a non-printable character";
  }
  return "";
}

}  // namespace

absl::StatusOr<std::vector<std::string>> ParseTokenFile(const std::string& flag,
                                                        absl::string_view contents) {
  std::vector<std::string> tokens;
  int line_number = 0;
  for (absl::string_view line : absl::StrSplit(contents, '\n')) {
    ++line_number;
    line = absl::StripAsciiWhitespace(line);
    if (line.empty() || line[0] == '#') continue;
    if (std::string problem = TokenSyntaxProblem(line); !problem.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat(flag, ": line ", line_number, ": ", problem));
    }
    tokens.emplace_back(line);
  }
  if (tokens.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(flag, ": holds no token (one per line; '#' starts a comment)"));
  }
  return tokens;
}

absl::StatusOr<std::vector<std::string>> ReadTokenFile(const std::string& flag,
                                                       const std::string& path) {
  absl::StatusOr<std::string> contents = ReadFile(path);
  if (!contents.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(flag, ": ", contents.status().message()));
  }
  absl::StatusOr<std::vector<std::string>> tokens = ParseTokenFile(flag, *contents);
  if (!tokens.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat(tokens.status().message(), " (file '", path, "')"));
  }
  return tokens;
}

absl::StatusOr<std::string> ReadClientToken(const std::string& flag, const std::string& path) {
  absl::StatusOr<std::vector<std::string>> tokens = ReadTokenFile(flag, path);
  if (!tokens.ok()) return tokens.status();
  if (tokens->size() != 1) {
    return absl::InvalidArgumentError(absl::StrCat(flag, ": '", path, "' holds ", tokens->size(),
                                                   " tokens; a client presents exactly one"));
  }
  return std::move(tokens->front());
}

absl::Status CheckTokenSyntax(const std::string& flag, absl::string_view token) {
  if (std::string problem = TokenSyntaxProblem(token); !problem.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(flag, ": ", problem));
  }
  return absl::OkStatus();
}

bool ConstantTimeEquals(absl::string_view presented, absl::string_view expected) {
  // Every byte of `expected` is visited whatever `presented` holds; a length
  // mismatch is folded into the same accumulator instead of returning early.
  volatile unsigned char difference = presented.size() == expected.size() ? 0 : 1;
  for (size_t i = 0; i < expected.size(); ++i) {
    const unsigned char p = i < presented.size() ? static_cast<unsigned char>(presented[i]) : 0;
    difference = difference | (p ^ static_cast<unsigned char>(expected[i]));
  }
  return difference == 0;
}

absl::StatusOr<std::unique_ptr<BearerTokenAuthenticator>> BearerTokenAuthenticator::FromFile(
    const std::string& flag, const std::string& path, std::string service, std::string hint) {
  absl::StatusOr<std::vector<std::string>> tokens = ReadTokenFile(flag, path);
  if (!tokens.ok()) return tokens.status();
  return std::make_unique<BearerTokenAuthenticator>(*std::move(tokens), std::move(service),
                                                    std::move(hint));
}

BearerTokenAuthenticator::BearerTokenAuthenticator(std::vector<std::string> tokens,
                                                   std::string service, std::string hint)
    : tokens_(std::move(tokens)), service_(std::move(service)), hint_(std::move(hint)) {}

absl::Status BearerTokenAuthenticator::Check(
    std::optional<absl::string_view> authorization) const {
  if (!authorization.has_value()) {
    return absl::UnauthenticatedError(absl::StrCat(
        service_, " requires a bearer token ('", kAuthorizationMetadataKey, ": ", kBearerPrefix,
        "<token>' metadata) and the call has none; ", hint_));
  }
  const size_t prefix_length = sizeof(kBearerPrefix) - 1;
  if (authorization->size() < prefix_length ||
      !absl::EqualsIgnoreCase(authorization->substr(0, prefix_length), kBearerPrefix)) {
    return absl::UnauthenticatedError(absl::StrCat(
        service_, ": the call's '", kAuthorizationMetadataKey, "' metadata is not '",
        kBearerPrefix, "<token>'; ", hint_));
  }
  const absl::string_view presented = authorization->substr(prefix_length);
  // Compare against every token, without stopping at a match, so the time
  // taken does not tell which token (or whether any) matched.
  bool accepted = false;
  for (const std::string& token : tokens_) {
    accepted = ConstantTimeEquals(presented, token) | accepted;
  }
  if (!accepted) {
    return absl::UnauthenticatedError(
        absl::StrCat(service_, ": the bearer token is not valid for this service; ", hint_));
  }
  return absl::OkStatus();
}

grpc::Status BearerTokenAuthenticator::Authenticate(const grpc::ServerContextBase& context) const {
  std::optional<absl::string_view> authorization;
  const auto& metadata = context.client_metadata();
  if (auto it = metadata.find(kAuthorizationMetadataKey); it != metadata.end()) {
    authorization = absl::string_view(it->second.data(), it->second.size());
  }
  absl::Status status = Check(authorization);
  if (status.ok()) return grpc::Status::OK;
  int64_t suppressed = 0;
  {
    absl::MutexLock lock(&log_mu_);
    const absl::Time now = absl::Now();
    if (now - last_log_ < absl::Seconds(1)) {
      ++unlogged_rejections_;
      return ToGrpcStatus(status);
    }
    last_log_ = now;
    suppressed = unlogged_rejections_;
    unlogged_rejections_ = 0;
  }
  NAS_LOG(Warning) << service_ << ": rejected a call from " << context.peer() << " ("
                   << (authorization.has_value() ? "invalid bearer token" : "no bearer token")
                   << ")"
                   << (suppressed > 0 ? absl::StrCat("; ", suppressed,
                                                     " more rejected since the last such line")
                                      : std::string());
  return ToGrpcStatus(status);
}

grpc::Status Authenticate(const BearerTokenAuthenticator* authenticator,
                          const grpc::ServerContextBase& context) {
  if (authenticator == nullptr) return grpc::Status::OK;
  return authenticator->Authenticate(context);
}

}  // namespace nas
