// The ParameterServer gRPC service: a thin adapter over Shard.
#ifndef NAS_PARAMETER_SERVER_SERVICE_H_
#define NAS_PARAMETER_SERVER_SERVICE_H_

#include <atomic>
#include <cstdint>

#include "common/auth.h"
#include "parameter_server/shard.h"
#include "proto/parameter_server.grpc.pb.h"

namespace nas::ps {

// The most pushes one PushBatch call may hold (a controller has one call in
// flight per shard, so this bounds what K replicas can queue behind it).
inline constexpr int kMaxPushesPerBatch = 1024;

// The most float values one PushStream or InitJobStream may carry (1 GiB):
// what the server will buffer for one call before it applies it.
inline constexpr int64_t kDefaultMaxStreamValues = int64_t{256} << 20;

// Pull, Push and PushBatch, the calls of every replica round, are on gRPC's callback
// API and run where gRPC reads them (no hand-off to a server thread); their
// raw bytes are parsed here (common/raw_message.h says why). The rest is
// synchronous, the streaming calls for tensor sets larger than one message
// (PullStream, PushStream, InitJobStream) included: they take their
// requests apart and put them together (tensor_pieces.h) around the same
// Shard calls as the unary ones.
class ParameterServerServiceImpl final
    : public v1::ParameterServer::WithRawCallbackMethod_Pull<
          v1::ParameterServer::WithRawCallbackMethod_Push<
              v1::ParameterServer::WithRawCallbackMethod_PushBatch<v1::ParameterServer::Service>>> {
 public:
  // `shard` is not owned and must outlive the service. `auth` (not owned; may
  // be null = every caller is accepted) holds the controller's tokens; a call
  // without one of them is answered UNAUTHENTICATED.
  // A PushStream or InitJobStream whose tensors declare more than
  // `max_stream_values` values is refused (INVALID_ARGUMENT).
  explicit ParameterServerServiceImpl(Shard* shard, const BearerTokenAuthenticator* auth = nullptr,
                                      int64_t max_stream_values = kDefaultMaxStreamValues)
      : shard_(shard), auth_(auth), max_stream_values_(max_stream_values) {}

  grpc::Status InitJob(grpc::ServerContext* context, const v1::InitJobRequest* request,
                       v1::InitJobResponse* response) override;
  grpc::Status DropJob(grpc::ServerContext* context, const v1::DropJobRequest* request,
                       v1::DropJobResponse* response) override;
  grpc::ServerUnaryReactor* Pull(grpc::CallbackServerContext* context,
                                 const grpc::ByteBuffer* request,
                                 grpc::ByteBuffer* response) override;
  grpc::ServerUnaryReactor* Push(grpc::CallbackServerContext* context,
                                 const grpc::ByteBuffer* request,
                                 grpc::ByteBuffer* response) override;
  grpc::ServerUnaryReactor* PushBatch(grpc::CallbackServerContext* context,
                                      const grpc::ByteBuffer* request,
                                      grpc::ByteBuffer* response) override;
  grpc::Status GetShardInfo(grpc::ServerContext* context, const v1::GetShardInfoRequest* request,
                            v1::GetShardInfoResponse* response) override;
  grpc::Status PullStream(grpc::ServerContext* context, const v1::PullStreamRequest* request,
                          grpc::ServerWriter<v1::PullChunk>* writer) override;
  grpc::Status PushStream(grpc::ServerContext* context, grpc::ServerReader<v1::PushChunk>* reader,
                          v1::PushResponse* response) override;
  grpc::Status InitJobStream(grpc::ServerContext* context,
                             grpc::ServerReader<v1::InitJobChunk>* reader,
                             v1::InitJobResponse* response) override;

 private:
  Shard* const shard_;
  const BearerTokenAuthenticator* const auth_;
  const int64_t max_stream_values_;
  std::atomic<int64_t> push_calls_{0};
};

}  // namespace nas::ps

#endif  // NAS_PARAMETER_SERVER_SERVICE_H_
