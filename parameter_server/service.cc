#include "parameter_server/service.h"

#include "common/grpc_status.h"

namespace nas::ps {
namespace {

template <typename T>
grpc::Status Reply(absl::StatusOr<T> result, T* response) {
  if (!result.ok()) return ToGrpcStatus(result.status());
  *response = *std::move(result);
  return grpc::Status::OK;
}

}  // namespace

grpc::Status ParameterServerServiceImpl::InitJob(grpc::ServerContext* context, const v1::InitJobRequest* request,
                                                 v1::InitJobResponse* response) {
  if (grpc::Status s = Authenticate(auth_, *context); !s.ok()) return s;
  return Reply(shard_->InitJob(*request), response);
}

grpc::Status ParameterServerServiceImpl::DropJob(grpc::ServerContext* context, const v1::DropJobRequest* request,
                                                 v1::DropJobResponse*) {
  if (grpc::Status s = Authenticate(auth_, *context); !s.ok()) return s;
  return ToGrpcStatus(shard_->DropJob(request->job_id()));
}

grpc::Status ParameterServerServiceImpl::Pull(grpc::ServerContext* context, const v1::PullRequest* request,
                                              v1::PullResponse* response) {
  if (grpc::Status s = Authenticate(auth_, *context); !s.ok()) return s;
  return Reply(shard_->Pull(*request), response);
}

grpc::Status ParameterServerServiceImpl::Push(grpc::ServerContext* context, const v1::PushRequest* request,
                                              v1::PushResponse* response) {
  if (grpc::Status s = Authenticate(auth_, *context); !s.ok()) return s;
  return Reply(shard_->Push(*request), response);
}

grpc::Status ParameterServerServiceImpl::GetShardInfo(grpc::ServerContext* context,
                                                      const v1::GetShardInfoRequest*,
                                                      v1::GetShardInfoResponse* response) {
  if (grpc::Status s = Authenticate(auth_, *context); !s.ok()) return s;
  *response = shard_->Info();
  return grpc::Status::OK;
}

}  // namespace nas::ps
