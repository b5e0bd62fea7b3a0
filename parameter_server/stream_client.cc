#include "parameter_server/stream_client.h"

#include <limits>
#include <memory>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/grpc_status.h"
#include "parameter_server/tensor_pieces.h"

namespace nas::ps {
namespace {

void SetDeadline(grpc::ClientContext* context, absl::Duration timeout) {
  context->set_deadline(absl::ToChronoTime(absl::Now() + timeout));
}

// Writes `header` (whose tensors `field` names are left out) and the pieces
// of those tensors, then waits for the answer.
// `tensors` may be `header`'s own: they are taken out of it first.
template <typename Chunk, typename Header>
absl::Status WriteChunks(std::unique_ptr<grpc::ClientWriterInterface<Chunk>> writer, Header header,
                         Tensors tensors, Tensors* (Header::*field)(), int64_t chunk_values,
                         const char* call) {
  Chunk chunk;
  (header.*field)()->Clear();
  *chunk.mutable_header() = std::move(header);
  bool first = true;
  SplitIntoPieces(&tensors, chunk_values == 0 ? kDefaultChunkValues : chunk_values,
                  [&](Pieces* pieces) {
                    if (!first) chunk.clear_header();
                    first = false;
                    chunk.mutable_pieces()->Swap(pieces);
                    return writer->Write(chunk);
                  });
  // A failed Write means the call is over; Finish says why.
  writer->WritesDone();
  return FromGrpcStatus(writer->Finish(), call);
}

v1::InitJobRequest WithoutTensors(const v1::InitJobRequest& request) {
  v1::InitJobRequest header;
  header.set_job_id(request.job_id());
  header.set_num_shards(request.num_shards());
  header.set_shard_index(request.shard_index());
  *header.mutable_layout() = request.layout();
  *header.mutable_optimizer() = request.optimizer();
  return header;
}

}  // namespace

absl::StatusOr<v1::PullResponse> PullStreamed(v1::ParameterServer::StubInterface& stub,
                                              const v1::PullRequest& request, int64_t chunk_values,
                                              absl::Duration timeout) {
  grpc::ClientContext context;
  SetDeadline(&context, timeout);
  v1::PullStreamRequest stream_request;
  *stream_request.mutable_pull() = request;
  stream_request.set_chunk_values(chunk_values);
  std::unique_ptr<grpc::ClientReaderInterface<v1::PullChunk>> reader =
      stub.PullStream(&context, stream_request);
  // The server sends what it holds; its own bound applied when it was pushed.
  TensorAssembler assembler(std::numeric_limits<int64_t>::max());
  v1::PullResponse response;
  v1::PullChunk chunk;
  absl::Status assembled;
  bool first = true;
  while (reader->Read(&chunk)) {
    if (!assembled.ok()) continue;  // drain, then report
    if (first) {
      response.set_version(chunk.version());
      response.set_not_modified(chunk.not_modified());
      first = false;
    } else if (chunk.version() != response.version()) {
      assembled = absl::InternalError(absl::StrCat("PullStream: chunks of versions ",
                                                   response.version(), " and ", chunk.version()));
      context.TryCancel();
      continue;
    }
    assembled = assembler.AddAll(chunk.mutable_pieces());
    if (!assembled.ok()) context.TryCancel();
  }
  const grpc::Status finished = reader->Finish();
  if (!assembled.ok()) {
    return absl::Status(assembled.code(), absl::StrCat("PullStream: ", assembled.message()));
  }
  if (absl::Status s = FromGrpcStatus(finished, "PullStream"); !s.ok()) return s;
  if (first) return absl::InternalError("PullStream: the server answered no chunk");
  if (absl::Status s = assembler.Finish(response.mutable_tensors()); !s.ok()) {
    return absl::Status(s.code(), absl::StrCat("PullStream: ", s.message()));
  }
  return response;
}

absl::StatusOr<v1::PushResponse> PushStreamed(v1::ParameterServer::StubInterface& stub,
                                              v1::PushRequest request, int64_t chunk_values,
                                              absl::Duration timeout) {
  grpc::ClientContext context;
  SetDeadline(&context, timeout);
  v1::PushResponse response;
  Tensors gradients;
  gradients.Swap(request.mutable_gradients());
  absl::Status s = WriteChunks<v1::PushChunk, v1::PushRequest>(
      stub.PushStream(&context, &response), std::move(request), std::move(gradients),
      &v1::PushRequest::mutable_gradients, chunk_values, "PushStream");
  if (!s.ok()) return s;
  return response;
}

absl::StatusOr<v1::InitJobResponse> InitJobStreamed(v1::ParameterServer::StubInterface& stub,
                                                    const v1::InitJobRequest& request,
                                                    int64_t chunk_values, absl::Duration timeout) {
  grpc::ClientContext context;
  SetDeadline(&context, timeout);
  v1::InitJobResponse response;
  absl::Status s = WriteChunks<v1::InitJobChunk, v1::InitJobRequest>(
      stub.InitJobStream(&context, &response), WithoutTensors(request), request.tensors(),
      &v1::InitJobRequest::mutable_tensors, chunk_values, "InitJobStream");
  if (!s.ok()) return s;
  return response;
}

}  // namespace nas::ps
