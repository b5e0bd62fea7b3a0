#include "controller/ps_weights_client.h"

#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <functional>
#include <map>
#include <memory>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "common/grpc_status.h"
#include "common/sharding.h"
#include "proto/parameter_server.grpc.pb.h"

namespace nas::controller {
namespace {

// Waits for one callback per shard; the first error wins, named with the
// method and the shard.
class ShardGather {
 public:
  ShardGather(const char* what, const std::vector<std::string>& addresses)
      : what_(what), addresses_(addresses), pending_(addresses.size()) {}

  std::function<void(grpc::Status)> Done(size_t shard) {
    return [this, shard](grpc::Status status) {
      absl::MutexLock lock(&mu_);
      if (!status.ok() && first_error_.ok()) {
        first_error_ = FromGrpcStatus(status, absl::StrCat(what_, " on parameter server shard ",
                                                           shard, " at ", addresses_[shard]));
      }
      --pending_;
    };
  }

  absl::Status Wait() ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    mu_.Await(absl::Condition(
        +[](size_t* p) { return *p == 0; }, &pending_));
    return first_error_;
  }

 private:
  const char* const what_;
  const std::vector<std::string>& addresses_;
  absl::Mutex mu_;
  size_t pending_ ABSL_GUARDED_BY(mu_);
  absl::Status first_error_ ABSL_GUARDED_BY(mu_);
};

// One shard's pushes from every replica of this controller. One PushBatch
// call is in flight at a time; the pushes that arrive meanwhile go out
// together in the next. Idle, a push leaves at once (no waiting to fill a
// batch); under load the calls per round fall to a few per shard, where one
// unary call per push cost the shard about 100 us of CPU each. Each push
// keeps its own outcome, so to a replica this is Push.
class ShardPusher {
 public:
  explicit ShardPusher(v1::ParameterServer::Stub* stub) : stub_(stub) {}

  ~ShardPusher() {
    absl::MutexLock lock(&mu_);
    mu_.Await(absl::Condition(
        +[](bool* b) { return !*b; }, &in_flight_));
  }

  // `request` and `response` must stay alive until `done` runs; `request` is
  // borrowed (its contents travel in the batch) and handed back as it was.
  void Push(v1::PushRequest* request, v1::PushResponse* response, absl::Time deadline,
            std::function<void(grpc::Status)> done) ABSL_LOCKS_EXCLUDED(mu_) {
    {
      absl::MutexLock lock(&mu_);
      queue_.push_back({request, response, deadline, std::move(done)});
      if (in_flight_) return;
      in_flight_ = true;
      batch_.swap(queue_);
    }
    Send();
  }

 private:
  struct Pending {
    v1::PushRequest* request;
    v1::PushResponse* response;
    absl::Time deadline;
    std::function<void(grpc::Status)> done;
  };

  // Sends batch_ (only the thread that set in_flight_ or took the queue gets here).
  void Send() ABSL_LOCKS_EXCLUDED(mu_) {
    absl::Time deadline = absl::InfiniteFuture();
    for (Pending& p : batch_) {
      request_.add_pushes()->Swap(p.request);
      deadline = std::min(deadline, p.deadline);
    }
    context_ = std::make_unique<grpc::ClientContext>();
    context_->set_deadline(absl::ToChronoTime(deadline));
    stub_->async()->PushBatch(context_.get(), &request_, &response_,
                              [this](grpc::Status status) { Finished(std::move(status)); });
  }

  void Finished(grpc::Status status) ABSL_LOCKS_EXCLUDED(mu_) {
    std::vector<std::pair<std::function<void(grpc::Status)>, grpc::Status>> results;
    results.reserve(batch_.size());
    for (size_t i = 0; i < batch_.size(); ++i) {
      Pending& p = batch_[i];
      p.request->Swap(request_.mutable_pushes(static_cast<int>(i)));
      grpc::Status result = status;
      if (status.ok() && static_cast<int>(i) >= response_.outcomes_size()) {
        result = grpc::Status(grpc::StatusCode::INTERNAL,
                              absl::StrCat("PushBatch answered ", response_.outcomes_size(),
                                           " outcomes for ", batch_.size(), " pushes"));
      } else if (status.ok()) {
        v1::PushOutcome* outcome = response_.mutable_outcomes(static_cast<int>(i));
        if (outcome->code() == 0) {
          p.response->Swap(outcome->mutable_response());
        } else {
          const int code = outcome->code();
          result = grpc::Status(code > 0 && code <= grpc::StatusCode::UNAUTHENTICATED
                                    ? static_cast<grpc::StatusCode>(code)
                                    : grpc::StatusCode::UNKNOWN,
                                outcome->message());
        }
      }
      results.emplace_back(std::move(p.done), std::move(result));
    }
    batch_.clear();
    request_.Clear();  // keeps the cleared pushes' capacity for the next batch
    response_.Clear();
    context_.reset();
    bool more;
    {
      absl::MutexLock lock(&mu_);
      more = !queue_.empty();
      if (more) {
        batch_.swap(queue_);
      } else {
        in_flight_ = false;
      }
    }
    if (more) Send();
    // Last: a replica told its push is done may go on and, at shutdown, the
    // client be destroyed; nothing above may run after that.
    for (auto& [done, result] : results) done(std::move(result));
  }

  v1::ParameterServer::Stub* const stub_;
  absl::Mutex mu_;
  std::vector<Pending> queue_ ABSL_GUARDED_BY(mu_);
  bool in_flight_ ABSL_GUARDED_BY(mu_) = false;
  // The call in flight; touched only by whoever sends or finishes it.
  std::vector<Pending> batch_;
  std::unique_ptr<grpc::ClientContext> context_;
  v1::PushBatchRequest request_;
  v1::PushBatchResponse response_;
};

class PsWeightsClient : public WeightsClient {
 public:
  PsWeightsClient(std::vector<std::string> addresses, absl::Duration timeout,
                  const ChannelOptions& channel)
      : addresses_(std::move(addresses)), timeout_(timeout) {
    for (const std::string& address : addresses_) {
      stubs_.push_back(v1::ParameterServer::NewStub(CreateChannel(address, channel)));
      pushers_.push_back(std::make_unique<ShardPusher>(stubs_.back().get()));
    }
  }

  int num_shards() const override { return static_cast<int>(stubs_.size()); }

  absl::Status InitJob(const std::string& job_id, const std::vector<FlatTensor>& initial,
                       const v1::OptimizerConfig& optimizer) override {
    const std::vector<int> owner = Owners(initial);
    std::vector<v1::InitJobRequest> requests(stubs_.size());
    for (size_t s = 0; s < stubs_.size(); ++s) {
      requests[s].set_job_id(job_id);
      requests[s].set_num_shards(num_shards());
      requests[s].set_shard_index(static_cast<int>(s));
      *requests[s].mutable_optimizer() = optimizer;
      for (const FlatTensor& t : initial) {
        v1::TensorSpec* spec = requests[s].add_layout();
        spec->set_name(t.name);
        spec->mutable_shape()->Assign(t.shape.begin(), t.shape.end());
      }
    }
    for (size_t i = 0; i < initial.size(); ++i) ToProto(initial[i], requests[owner[i]].add_tensors());
    std::vector<v1::InitJobResponse> responses(stubs_.size());
    return ForEachShard("InitJob", [&](size_t s, grpc::ClientContext* context,
                                       std::function<void(grpc::Status)> done) {
      stubs_[s]->async()->InitJob(context, &requests[s], &responses[s], std::move(done));
    });
  }

  absl::Status DropJob(const std::string& job_id) override {
    v1::DropJobRequest request;
    request.set_job_id(job_id);
    std::vector<v1::DropJobResponse> responses(stubs_.size());
    return ForEachShard("DropJob", [&](size_t s, grpc::ClientContext* context,
                                       std::function<void(grpc::Status)> done) {
      stubs_[s]->async()->DropJob(context, &request, &responses[s],
                                  [done = std::move(done)](grpc::Status status) {
                                    // Not there (any more) is what was asked for.
                                    done(status.error_code() == grpc::StatusCode::NOT_FOUND
                                             ? grpc::Status::OK
                                             : status);
                                  });
    });
  }

  // Interface placeholders until the sparse calls land (issue 21, h25a).
  absl::StatusOr<PulledWeights> PullSome(const std::string&, const std::vector<std::string>&) override {
    return absl::UnimplementedError("PullSome: sparse tensor sets are not implemented yet");
  }
  absl::StatusOr<SparsePushResult> PushSparse(const std::string&, const std::vector<int64_t>&,
                                              const std::vector<FlatTensor>&) override {
    return absl::UnimplementedError("PushSparse: sparse tensor sets are not implemented yet");
  }

  absl::StatusOr<PulledWeights> Pull(const std::string& job_id) override {
    v1::PullRequest request;
    request.set_job_id(job_id);
    std::vector<v1::PullResponse> responses(stubs_.size());
    absl::Status status = ForEachShard("Pull", [&](size_t s, grpc::ClientContext* context,
                                                   std::function<void(grpc::Status)> done) {
      stubs_[s]->async()->Pull(context, &request, &responses[s], std::move(done));
    });
    if (!status.ok()) return status;
    return Collect(responses);
  }

  absl::Status Push(const std::string& job_id, int replica_id, const std::vector<int64_t>& base_versions,
                    const std::vector<FlatTensor>& gradients, PulledWeights* updated) override {
    if (base_versions.size() != stubs_.size()) {
      return absl::InvalidArgumentError("Push needs one base version per shard");
    }
    const std::vector<int> owner = Owners(gradients);
    // The calling thread's messages from its previous push, cleared: cleared
    // messages keep their fields' capacity, so a replica's pushes after its
    // first build and parse their protos without allocating. Safe to reuse:
    // Wait returns only after every shard's outcome has come back.
    thread_local std::vector<v1::PushRequest> requests;
    thread_local std::vector<v1::PushResponse> responses;
    requests.resize(stubs_.size());
    responses.resize(stubs_.size());
    for (size_t s = 0; s < stubs_.size(); ++s) {
      requests[s].Clear();
      responses[s].Clear();
      requests[s].set_job_id(job_id);
      requests[s].set_replica_id(replica_id);
      requests[s].set_base_version(base_versions[s]);
      requests[s].set_return_parameters(updated != nullptr);
    }
    for (size_t i = 0; i < gradients.size(); ++i) {
      ToProto(gradients[i], requests[owner[i]].add_gradients());
    }
    const absl::Time deadline = absl::Now() + timeout_;
    ShardGather gather("Push", addresses_);
    for (size_t s = 0; s < stubs_.size(); ++s) {
      pushers_[s]->Push(&requests[s], &responses[s], deadline, gather.Done(s));
    }
    absl::Status status = gather.Wait();
    if (!status.ok() || updated == nullptr) return status;
    absl::StatusOr<PulledWeights> after = Collect(responses);
    if (!after.ok()) return after.status();
    *updated = *std::move(after);
    return absl::OkStatus();
  }

 private:
  // Every shard's version and tensors, from Pull responses or from Push
  // responses that returned the parameters.
  template <typename Response>
  static absl::StatusOr<PulledWeights> Collect(const std::vector<Response>& responses) {
    PulledWeights weights;
    for (const Response& response : responses) {
      weights.versions.push_back(response.version());
      for (const v1::Tensor& t : response.tensors()) {
        absl::StatusOr<FlatTensor> flat = FromProto(t);
        if (!flat.ok()) return flat.status();
        weights.tensors.push_back(*std::move(flat));
      }
    }
    return weights;
  }

  std::vector<int> Owners(const std::vector<FlatTensor>& tensors) const {
    std::vector<TensorSize> sizes;
    for (const FlatTensor& t : tensors) sizes.push_back({t.name, t.NumElements()});
    return AssignShards(sizes, num_shards());
  }

  // Issues one call per shard at once and waits for all; the first error wins.
  absl::Status ForEachShard(const char* what,
                            const std::function<void(size_t, grpc::ClientContext*,
                                                     std::function<void(grpc::Status)>)>& call) {
    std::vector<grpc::ClientContext> contexts(stubs_.size());
    ShardGather gather(what, addresses_);
    const auto deadline = absl::ToChronoTime(absl::Now() + timeout_);
    for (size_t s = 0; s < stubs_.size(); ++s) {
      contexts[s].set_deadline(deadline);
      call(s, &contexts[s], gather.Done(s));
    }
    return gather.Wait();
  }

  const std::vector<std::string> addresses_;
  const absl::Duration timeout_;
  std::vector<std::unique_ptr<v1::ParameterServer::Stub>> stubs_;
  // After stubs_: destroyed first (each waits for its call in flight).
  std::vector<std::unique_ptr<ShardPusher>> pushers_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<WeightsClient>> CreatePsWeightsClient(
    const std::vector<std::string>& addresses, absl::Duration timeout, int max_message_bytes,
    const ChannelOptions& channel) {
  if (addresses.empty() || addresses.size() > 64) {
    return absl::InvalidArgumentError("--parameter_servers must list 1..64 shard addresses");
  }
  for (const std::string& address : addresses) {
    if (address.find(':') == std::string::npos) {
      return absl::InvalidArgumentError(
          absl::StrCat("--parameter_servers: '", address, "' is not host:port"));
    }
  }
  if (absl::Status valid = ValidateChannelOptions(channel); !valid.ok()) return valid;
  ChannelOptions options = channel;
  options.max_message_bytes = max_message_bytes;
  return std::unique_ptr<WeightsClient>(new PsWeightsClient(addresses, timeout, options));
}

}  // namespace nas::controller
