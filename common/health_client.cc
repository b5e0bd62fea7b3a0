#include "common/health_client.h"

#include <grpcpp/grpcpp.h>

#include "absl/strings/str_cat.h"
#include "common/grpc_status.h"
#include "proto/health.grpc.pb.h"

namespace nas {

absl::Status CheckHealth(const std::shared_ptr<grpc::Channel>& channel, absl::Duration timeout) {
  auto stub = grpc::health::v1::Health::NewStub(channel);
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + timeout));
  grpc::health::v1::HealthCheckRequest request;
  grpc::health::v1::HealthCheckResponse response;
  grpc::Status status = stub->Check(&context, request, &response);
  if (!status.ok()) return FromGrpcStatus(status, "health check");
  if (response.status() != grpc::health::v1::HealthCheckResponse::SERVING) {
    return absl::FailedPreconditionError(absl::StrCat(
        "health check: server answers ",
        grpc::health::v1::HealthCheckResponse::ServingStatus_Name(response.status())));
  }
  return absl::OkStatus();
}

absl::Status CheckHealth(const std::string& address, absl::Duration timeout) {
  return CheckHealth(grpc::CreateChannel(address, grpc::InsecureChannelCredentials()), timeout);
}

absl::Status CheckHealth(const std::string& address, const ChannelOptions& options,
                         absl::Duration timeout) {
  return CheckHealth(CreateChannel(address, options), timeout);
}

}  // namespace nas
