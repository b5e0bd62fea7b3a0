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

// Pull, Push and PushBatch, the calls of every replica round, are on gRPC's callback
// API and run where gRPC reads them (no hand-off to a server thread); their
// raw bytes are parsed here (common/raw_message.h says why). The rest is
// synchronous.
class ParameterServerServiceImpl final
    : public v1::ParameterServer::WithRawCallbackMethod_Pull<
          v1::ParameterServer::WithRawCallbackMethod_Push<
              v1::ParameterServer::WithRawCallbackMethod_PushBatch<v1::ParameterServer::Service>>> {
 public:
  // `shard` is not owned and must outlive the service. `auth` (not owned; may
  // be null = every caller is accepted) holds the controller's tokens; a call
  // without one of them is answered UNAUTHENTICATED.
  explicit ParameterServerServiceImpl(Shard* shard, const BearerTokenAuthenticator* auth = nullptr)
      : shard_(shard), auth_(auth) {}

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

 private:
  Shard* const shard_;
  const BearerTokenAuthenticator* const auth_;
  std::atomic<int64_t> push_calls_{0};
};

}  // namespace nas::ps

#endif  // NAS_PARAMETER_SERVER_SERVICE_H_
