#include "controller/ps_weights_client.h"

#include <grpcpp/grpcpp.h>

#include <map>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "common/grpc_status.h"
#include "common/sharding.h"
#include "proto/parameter_server.grpc.pb.h"

namespace nas::controller {
namespace {

class PsWeightsClient : public WeightsClient {
 public:
  PsWeightsClient(std::vector<std::string> addresses, absl::Duration timeout,
                  const ChannelOptions& channel)
      : addresses_(std::move(addresses)), timeout_(timeout) {
    for (const std::string& address : addresses_) {
      stubs_.push_back(v1::ParameterServer::NewStub(CreateChannel(address, channel)));
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
    // ForEachShard returns only after every call's callback has run.
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
    absl::Status status = ForEachShard("Push", [&](size_t s, grpc::ClientContext* context,
                                                   std::function<void(grpc::Status)> done) {
      stubs_[s]->async()->Push(context, &requests[s], &responses[s], std::move(done));
    });
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
  absl::Status ForEachShard(
      const std::string& what,
      const std::function<void(size_t, grpc::ClientContext*, std::function<void(grpc::Status)>)>& call) {
    const size_t n = stubs_.size();
    std::vector<grpc::ClientContext> contexts(n);
    absl::Mutex mu;
    size_t pending = n;
    absl::Status first_error;
    const auto deadline = absl::ToChronoTime(absl::Now() + timeout_);
    for (size_t s = 0; s < n; ++s) {
      contexts[s].set_deadline(deadline);
      call(s, &contexts[s], [&, s](grpc::Status status) {
        absl::MutexLock lock(&mu);
        if (!status.ok() && first_error.ok()) {
          first_error = FromGrpcStatus(
              status, absl::StrCat(what, " on parameter server shard ", s, " at ", addresses_[s]));
        }
        --pending;
      });
    }
    absl::MutexLock lock(&mu);
    mu.Await(absl::Condition(+[](size_t* p) { return *p == 0; }, &pending));
    return first_error;
  }

  const std::vector<std::string> addresses_;
  const absl::Duration timeout_;
  std::vector<std::unique_ptr<v1::ParameterServer::Stub>> stubs_;
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
