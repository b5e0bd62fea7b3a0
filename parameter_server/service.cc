#include "parameter_server/service.h"

#include "absl/strings/str_cat.h"
#include "common/grpc_status.h"
#include "common/raw_message.h"

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

namespace {

// One raw callback call answered at once: parse, authenticate, run, reply.
template <typename Request, typename Response, typename Run>
grpc::ServerUnaryReactor* Answer(grpc::CallbackServerContext* context,
                                 const BearerTokenAuthenticator* auth,
                                 const grpc::ByteBuffer* raw_request,
                                 grpc::ByteBuffer* raw_response, Run run) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  Request request;
  grpc::Status status = ParseRawRequest(*raw_request, &request);
  if (status.ok()) status = Authenticate(auth, *context);
  if (status.ok()) {
    absl::StatusOr<Response> response = run(request);
    status = response.ok() ? SerializeRawResponse(*response, raw_response)
                           : ToGrpcStatus(response.status());
  }
  reactor->Finish(status);
  return reactor;
}

}  // namespace

grpc::ServerUnaryReactor* ParameterServerServiceImpl::Pull(grpc::CallbackServerContext* context,
                                                           const grpc::ByteBuffer* request,
                                                           grpc::ByteBuffer* response) {
  return Answer<v1::PullRequest, v1::PullResponse>(
      context, auth_, request, response,
      [this](const v1::PullRequest& r) { return shard_->Pull(r); });
}

grpc::ServerUnaryReactor* ParameterServerServiceImpl::Push(grpc::CallbackServerContext* context,
                                                           const grpc::ByteBuffer* request,
                                                           grpc::ByteBuffer* response) {
  push_calls_.fetch_add(1, std::memory_order_relaxed);
  return Answer<v1::PushRequest, v1::PushResponse>(
      context, auth_, request, response,
      [this](const v1::PushRequest& r) { return shard_->Push(r); });
}

grpc::ServerUnaryReactor* ParameterServerServiceImpl::PushBatch(
    grpc::CallbackServerContext* context, const grpc::ByteBuffer* request,
    grpc::ByteBuffer* response) {
  push_calls_.fetch_add(1, std::memory_order_relaxed);
  return Answer<v1::PushBatchRequest, v1::PushBatchResponse>(
      context, auth_, request, response,
      [this](const v1::PushBatchRequest& r) -> absl::StatusOr<v1::PushBatchResponse> {
        if (r.pushes_size() < 1 || r.pushes_size() > kMaxPushesPerBatch) {
          return absl::InvalidArgumentError(absl::StrCat(
              "PushBatch holds ", r.pushes_size(), " pushes; 1..", kMaxPushesPerBatch, " allowed"));
        }
        v1::PushBatchResponse out;
        for (const v1::PushRequest& push : r.pushes()) {
          v1::PushOutcome* outcome = out.add_outcomes();
          absl::StatusOr<v1::PushResponse> result = shard_->Push(push);
          if (result.ok()) {
            outcome->mutable_response()->Swap(&*result);
          } else {
            outcome->set_code(static_cast<int>(result.status().code()));
            outcome->set_message(std::string(result.status().message()));
          }
        }
        return out;
      });
}

grpc::Status ParameterServerServiceImpl::GetShardInfo(grpc::ServerContext* context,
                                                      const v1::GetShardInfoRequest*,
                                                      v1::GetShardInfoResponse* response) {
  if (grpc::Status s = Authenticate(auth_, *context); !s.ok()) return s;
  *response = shard_->Info();
  response->set_push_calls(push_calls_.load(std::memory_order_relaxed));
  return grpc::Status::OK;
}

}  // namespace nas::ps
