#include "common/auth.h"

#include <grpcpp/grpcpp.h>

#include <string>

#include "absl/strings/str_cat.h"
#include "common/channel.h"
#include "common/grpc_server.h"
#include "gtest/gtest.h"
#include "proto/parameter_server.grpc.pb.h"

namespace nas {
namespace {

TEST(ParseTokenFileTest, SkipsCommentsAndBlankLinesAndTrimsWhitespace) {
  auto tokens = ParseTokenFile("--job_tokens_file", "# users\n\n  alice-token  \r\n#bob\nbob-2\n");
  ASSERT_TRUE(tokens.ok()) << tokens.status();
  EXPECT_EQ(*tokens, (std::vector<std::string>{"alice-token", "bob-2"}));
}

TEST(ParseTokenFileTest, RejectsAFileWithoutTokensNamingTheFlag) {
  auto tokens = ParseTokenFile("--worker_tokens_file", "# nothing here\n\n");
  ASSERT_FALSE(tokens.ok());
  EXPECT_NE(tokens.status().message().find("--worker_tokens_file"), std::string::npos);
}

TEST(ParseTokenFileTest, RejectsATokenWithASpaceWithoutQuotingIt) {
  auto tokens = ParseTokenFile("--tokens_file", "good\nsecret part\n");
  ASSERT_FALSE(tokens.ok());
  EXPECT_NE(tokens.status().message().find("line 2"), std::string::npos) << tokens.status();
  EXPECT_EQ(tokens.status().message().find("secret"), std::string::npos) << tokens.status();
}

TEST(ConstantTimeEqualsTest, ComparesWholeStrings) {
  EXPECT_TRUE(ConstantTimeEquals("abc", "abc"));
  EXPECT_FALSE(ConstantTimeEquals("abd", "abc"));
  EXPECT_FALSE(ConstantTimeEquals("ab", "abc"));
  EXPECT_FALSE(ConstantTimeEquals("abcd", "abc"));
  EXPECT_FALSE(ConstantTimeEquals("", "abc"));
  EXPECT_TRUE(ConstantTimeEquals("", ""));
  EXPECT_FALSE(ConstantTimeEquals(std::string("ab\0", 3), "ab"));
}

TEST(BearerTokenAuthenticatorTest, AcceptsOnlyItsTokensAndNeverEchoesWhatWasSent) {
  BearerTokenAuthenticator auth({"t0ken-one", "t0ken-two"}, "JobService", "pass --token");
  EXPECT_TRUE(auth.Check("Bearer t0ken-one").ok());
  EXPECT_TRUE(auth.Check("bearer t0ken-two").ok());
  for (const char* bad : {"Bearer wrong-guess", "Bearer t0ken-on", "Bearer ", "Basic t0ken-one",
                          "t0ken-one", "Bearer t0ken-one "}) {
    absl::Status status = auth.Check(bad);
    EXPECT_TRUE(absl::IsUnauthenticated(status)) << bad << ": " << status;
    EXPECT_EQ(status.message().find("wrong-guess"), std::string::npos) << status;
    EXPECT_EQ(status.message().find("t0ken"), std::string::npos) << status;
    EXPECT_NE(status.message().find("JobService"), std::string::npos) << status;
    EXPECT_NE(status.message().find("pass --token"), std::string::npos) << status;
  }
  absl::Status missing = auth.Check(std::nullopt);
  EXPECT_TRUE(absl::IsUnauthenticated(missing));
  EXPECT_NE(missing.message().find("has none"), std::string::npos) << missing;
}

// GetShardInfo guarded by an authenticator: enough of a service to see the
// token travel from CreateChannel's interceptor to the server's check.
class GuardedService final : public v1::ParameterServer::Service {
 public:
  explicit GuardedService(const BearerTokenAuthenticator* auth) : auth_(auth) {}
  grpc::Status GetShardInfo(grpc::ServerContext* context, const v1::GetShardInfoRequest*,
                            v1::GetShardInfoResponse* response) override {
    if (grpc::Status s = Authenticate(auth_, *context); !s.ok()) return s;
    response->set_shard_index(7);
    return grpc::Status::OK;
  }

 private:
  const BearerTokenAuthenticator* const auth_;
};

grpc::Status CallGetShardInfo(int port, const ChannelOptions& options) {
  auto stub = v1::ParameterServer::NewStub(CreateChannel(absl::StrCat("127.0.0.1:", port), options));
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
  v1::GetShardInfoResponse response;
  grpc::Status status = stub->GetShardInfo(&context, v1::GetShardInfoRequest(), &response);
  if (status.ok()) {
    EXPECT_EQ(response.shard_index(), 7);
  }
  return status;
}

TEST(ChannelTokenTest, EveryCallOnAChannelCarriesItsTokenOverPlaintext) {
  BearerTokenAuthenticator auth({"channel-token"}, "ParameterServer", "pass --token_file");
  GuardedService service(&auth);
  GrpcServerOptions server_options;
  server_options.binary = "auth_test";
  server_options.host = "127.0.0.1";
  server_options.metrics_port = -1;
  auto server = GrpcServer::Create(server_options);
  ASSERT_TRUE(server.ok()) << server.status();
  ASSERT_TRUE((*server)->Start({&service}).ok());
  const int port = (*server)->port();

  ChannelOptions with_token;
  with_token.token = "channel-token";
  EXPECT_TRUE(CallGetShardInfo(port, with_token).ok());
  EXPECT_TRUE(CallGetShardInfo(port, with_token).ok());  // A second call on a new stub.

  ChannelOptions wrong_token;
  wrong_token.token = "other-token";
  EXPECT_EQ(CallGetShardInfo(port, wrong_token).error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(CallGetShardInfo(port, ChannelOptions()).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
}

TEST(ChannelOptionsTest, ClientCertificateNeedsKeyAndCa) {
  ChannelOptions options;
  options.tls_client_cert_pem = "-----BEGIN CERTIFICATE-----";
  EXPECT_FALSE(ValidateChannelOptions(options).ok());
  options.tls_client_key_pem = "-----BEGIN PRIVATE KEY-----";
  EXPECT_FALSE(ValidateChannelOptions(options).ok());  // No CA.
  options.tls_ca_pem = "-----BEGIN CERTIFICATE-----";
  EXPECT_TRUE(ValidateChannelOptions(options).ok());
  ChannelOptions name_only;
  name_only.tls_server_name = "nas-controller";
  EXPECT_FALSE(ValidateChannelOptions(name_only).ok());
}

TEST(GrpcServerTlsTest, RefusesCertificateWithoutKeyAndClientCaWithoutTls) {
  GrpcServerOptions options;
  options.metrics_port = -1;
  options.tls.cert_chain_pem = "-----BEGIN CERTIFICATE-----";
  EXPECT_EQ(GrpcServer::Create(options).status().code(), absl::StatusCode::kInvalidArgument);
  GrpcServerOptions ca_only;
  ca_only.metrics_port = -1;
  ca_only.tls.client_ca_pem = "-----BEGIN CERTIFICATE-----";
  EXPECT_EQ(GrpcServer::Create(ca_only).status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace nas
