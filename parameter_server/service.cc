#include "parameter_server/service.h"

#include "absl/strings/str_cat.h"
#include "common/grpc_status.h"
#include "common/raw_message.h"
#include "parameter_server/tensor_pieces.h"

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

namespace {

// Reads a stream of Chunk messages: the first one's header, every one's
// pieces assembled into the header's `*tensors` field. INVALID_ARGUMENT for
// an empty stream, a header that carries tensors itself, or bad pieces.
template <typename Chunk, typename Header>
absl::StatusOr<Header> ReadChunks(grpc::ServerReader<Chunk>* reader, int64_t max_values,
                                  google::protobuf::RepeatedPtrField<v1::Tensor>* (Header::*field)(),
                                  int (Header::*field_size)() const) {
  Chunk chunk;
  if (!reader->Read(&chunk)) {
    return absl::InvalidArgumentError(
        absl::StrCat("the ", Chunk::descriptor()->name(), " stream is empty"));
  }
  Header header = std::move(*chunk.mutable_header());
  if ((header.*field_size)() != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the first ", Chunk::descriptor()->name(),
        "'s header carries its tensors itself: stream them as pieces"));
  }
  TensorAssembler assembler(max_values);
  do {
    if (absl::Status s = assembler.AddAll(chunk.mutable_pieces()); !s.ok()) return s;
  } while (reader->Read(&chunk));
  if (absl::Status s = assembler.Finish((header.*field)()); !s.ok()) return s;
  return header;
}

}  // namespace

grpc::Status ParameterServerServiceImpl::PullStream(grpc::ServerContext* context,
                                                    const v1::PullStreamRequest* request,
                                                    grpc::ServerWriter<v1::PullChunk>* writer) {
  if (grpc::Status s = Authenticate(auth_, *context); !s.ok()) return s;
  if (request->chunk_values() < 0 || request->chunk_values() > kMaxChunkValues) {
    return ToGrpcStatus(absl::InvalidArgumentError(absl::StrCat(
        "chunk_values ", request->chunk_values(), " is not in 0..", kMaxChunkValues)));
  }
  absl::StatusOr<v1::PullResponse> pulled = shard_->Pull(request->pull());
  if (!pulled.ok()) return ToGrpcStatus(pulled.status());
  const int64_t chunk_values =
      request->chunk_values() == 0 ? kDefaultChunkValues : request->chunk_values();
  v1::PullChunk chunk;
  chunk.set_version(pulled->version());
  chunk.set_not_modified(pulled->not_modified());
  const bool sent = SplitIntoPieces(pulled->mutable_tensors(), chunk_values, [&](Pieces* pieces) {
    chunk.mutable_pieces()->Swap(pieces);
    return writer->Write(chunk);
  });
  if (!sent) return grpc::Status(grpc::StatusCode::CANCELLED, "the client stopped reading");
  return grpc::Status::OK;
}

grpc::Status ParameterServerServiceImpl::PushStream(grpc::ServerContext* context,
                                                    grpc::ServerReader<v1::PushChunk>* reader,
                                                    v1::PushResponse* response) {
  if (grpc::Status s = Authenticate(auth_, *context); !s.ok()) return s;
  push_calls_.fetch_add(1, std::memory_order_relaxed);
  absl::StatusOr<v1::PushRequest> push = ReadChunks<v1::PushChunk, v1::PushRequest>(
      reader, max_stream_values_, &v1::PushRequest::mutable_gradients,
      &v1::PushRequest::gradients_size);
  if (!push.ok()) return ToGrpcStatus(push.status());
  if (push->return_parameters()) {
    return ToGrpcStatus(absl::InvalidArgumentError(
        "PushStream does not return parameters (they may exceed one message): call PullStream"));
  }
  return Reply(shard_->Push(*push), response);
}

grpc::Status ParameterServerServiceImpl::InitJobStream(grpc::ServerContext* context,
                                                       grpc::ServerReader<v1::InitJobChunk>* reader,
                                                       v1::InitJobResponse* response) {
  if (grpc::Status s = Authenticate(auth_, *context); !s.ok()) return s;
  absl::StatusOr<v1::InitJobRequest> init = ReadChunks<v1::InitJobChunk, v1::InitJobRequest>(
      reader, max_stream_values_, &v1::InitJobRequest::mutable_tensors,
      &v1::InitJobRequest::tensors_size);
  if (!init.ok()) return ToGrpcStatus(init.status());
  return Reply(shard_->InitJob(*init), response);
}

}  // namespace nas::ps
