#include "controller/ps_weights_client.h"

#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <thread>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "common/grpc_status.h"
#include "common/sharding.h"
#include "parameter_server/stream_client.h"
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

// What a message carries besides the tensors' values (names, shapes, tags,
// the request's own fields), generously: a call whose values come within
// this of the message limit is streamed.
constexpr int64_t kMessageOverhead = 64 << 10;
constexpr int64_t kTensorOverhead = 300;

// What a channel without max_message_bytes receives (gRPC's default).
constexpr int kGrpcDefaultReceiveBytes = 4 << 20;

// Bytes of `n` tensors of `values` floats in all, as one message.
int64_t MessageBytes(int64_t values, int64_t n) {
  return values * int64_t{sizeof(float)} + n * kTensorOverhead + kMessageOverhead;
}

class PsWeightsClient : public WeightsClient {
 public:
  PsWeightsClient(std::vector<std::string> addresses, absl::Duration timeout,
                  const ChannelOptions& channel)
      : addresses_(std::move(addresses)),
        timeout_(timeout),
        max_message_bytes_(channel.max_message_bytes > 0 ? channel.max_message_bytes
                                                         : kGrpcDefaultReceiveBytes),
        // A piece's values in at most half a message (4 MiB at most).
        chunk_values_(std::clamp<int64_t>(max_message_bytes_ / 2 / int64_t{sizeof(float)}, 1,
                                          int64_t{1} << 20)) {
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
    std::vector<int64_t> values(stubs_.size(), 0);
    for (size_t i = 0; i < initial.size(); ++i) {
      ToProto(initial[i], requests[owner[i]].add_tensors());
      values[owner[i]] += initial[i].NumElements();
    }
    bool stream = false;
    for (size_t s = 0; s < stubs_.size(); ++s) {
      stream |= TooLarge(values[s], requests[s].tensors_size() + requests[s].layout_size());
    }
    absl::Status status;
    if (!stream) {
      std::vector<v1::InitJobResponse> responses(stubs_.size());
      status = ForEachShard("InitJob", [&](size_t s, grpc::ClientContext* context,
                                           std::function<void(grpc::Status)> done) {
        stubs_[s]->async()->InitJob(context, &requests[s], &responses[s], std::move(done));
      });
    } else {
      // A set larger than one message (one-shot ω): the shards whose part
      // does not fit get it streamed.
      std::vector<size_t> all(stubs_.size());
      for (size_t s = 0; s < all.size(); ++s) all[s] = s;
      status = RunOnShards("InitJob", all, [&](size_t s) -> absl::Status {
        if (TooLarge(values[s], requests[s].tensors_size() + requests[s].layout_size())) {
          return ps::InitJobStreamed(*stubs_[s], requests[s], chunk_values_, timeout_).status();
        }
        grpc::ClientContext context;
        context.set_deadline(absl::ToChronoTime(absl::Now() + timeout_));
        v1::InitJobResponse response;
        return FromGrpcStatus(stubs_[s]->InitJob(&context, requests[s], &response));
      });
    }
    if (!status.ok()) return status;
    // Where each tensor is, for PullSome and PushSparse.
    auto layout = std::make_shared<Layout>();
    for (size_t i = 0; i < initial.size(); ++i) {
      layout->emplace(initial[i].name, Placement{owner[i], initial[i].NumElements()});
    }
    absl::MutexLock lock(&layouts_mu_);
    layouts_[job_id] = std::move(layout);
    return absl::OkStatus();
  }

  absl::Status DropJob(const std::string& job_id) override {
    {
      absl::MutexLock lock(&layouts_mu_);
      layouts_.erase(job_id);
    }
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

  absl::StatusOr<PulledWeights> PullSome(const std::string& job_id,
                                         const std::vector<std::string>& names) override {
    std::shared_ptr<const Layout> layout = KnownLayout(job_id);
    if (layout == nullptr) {
      // Not created through this client: learn where each tensor is from a
      // pull of the whole set (what a first step needs anyway).
      absl::StatusOr<PulledWeights> all = PullEveryShard(job_id, nullptr);
      if (!all.ok() || names.empty()) return all;
      return Select(*std::move(all), names, job_id);
    }
    if (names.empty()) return PullEveryShard(job_id, layout.get());
    std::vector<v1::PullRequest> requests(stubs_.size());
    std::vector<int64_t> values(stubs_.size(), 0);
    for (const std::string& name : std::set<std::string>(names.begin(), names.end())) {
      auto it = layout->find(name);
      if (it == layout->end()) {
        return absl::InvalidArgumentError(
            absl::StrCat("PullSome: tensor '", name, "' is not in the set ", job_id));
      }
      requests[it->second.shard].add_names(name);
      values[it->second.shard] += it->second.values;
    }
    std::vector<size_t> asked;
    for (size_t s = 0; s < stubs_.size(); ++s) {
      requests[s].set_job_id(job_id);
      if (requests[s].names_size() > 0) asked.push_back(s);
    }
    std::vector<int64_t> counts(stubs_.size(), 0);
    for (size_t s = 0; s < stubs_.size(); ++s) counts[s] = requests[s].names_size();
    return PullShards("PullSome", asked, requests, values, counts);
  }

  absl::StatusOr<SparsePushResult> PushSparse(const std::string& job_id,
                                              const std::vector<int64_t>& base_versions,
                                              const std::vector<FlatTensor>& gradients) override {
    if (base_versions.size() != stubs_.size()) {
      return absl::InvalidArgumentError(absl::StrCat("PushSparse needs one base version per shard (",
                                                     stubs_.size(), "), got ", base_versions.size()));
    }
    std::shared_ptr<const Layout> layout = KnownLayout(job_id);
    if (layout == nullptr) {
      absl::StatusOr<PulledWeights> all = PullEveryShard(job_id, nullptr);
      if (!all.ok()) return all.status();
      layout = KnownLayout(job_id);
      if (layout == nullptr) return absl::InternalError("PushSparse: the set's layout was not learnt");
    }
    std::vector<v1::PushRequest> requests(stubs_.size());
    std::vector<int64_t> values(stubs_.size(), 0);
    SparsePushResult result;
    result.versions.assign(stubs_.size(), -1);
    for (const FlatTensor& g : gradients) {
      auto it = layout->find(g.name);
      if (it == layout->end()) {
        return absl::InvalidArgumentError(
            absl::StrCat("PushSparse: tensor '", g.name, "' is not in the set ", job_id));
      }
      ToProto(g, requests[it->second.shard].add_gradients());
      values[it->second.shard] += g.NumElements();
      result.bytes += g.NumElements() * int64_t{sizeof(float)};
    }
    std::vector<size_t> sent;
    for (size_t s = 0; s < stubs_.size(); ++s) {
      requests[s].set_job_id(job_id);
      requests[s].set_base_version(base_versions[s]);
      requests[s].set_sparse(true);
      if (requests[s].gradients_size() > 0) sent.push_back(s);
    }
    std::vector<v1::PushResponse> responses(stubs_.size());
    std::vector<bool> stale(stubs_.size(), false);
    absl::Status status = RunOnShards("PushSparse", sent, [&](size_t s) -> absl::Status {
      absl::Status pushed;
      if (TooLarge(values[s], requests[s].gradients_size())) {
        absl::StatusOr<v1::PushResponse> response =
            ps::PushStreamed(*stubs_[s], std::move(requests[s]), chunk_values_, timeout_);
        if (response.ok()) responses[s] = *std::move(response);
        pushed = response.status();
      } else {
        grpc::ClientContext context;
        context.set_deadline(absl::ToChronoTime(absl::Now() + timeout_));
        pushed = FromGrpcStatus(stubs_[s]->Push(&context, requests[s], &responses[s]));
      }
      // Too stale for the set's bound: the caller pulls again.
      if (pushed.code() == absl::StatusCode::kAborted) {
        stale[s] = true;
        return absl::OkStatus();
      }
      return pushed;
    });
    if (!status.ok()) return status;
    for (size_t s : sent) {
      if (stale[s]) {
        ++result.shards_refused_stale;
        continue;
      }
      ++result.shards_applied;
      result.versions[s] = responses[s].version();
      result.max_staleness = std::max(result.max_staleness, responses[s].staleness());
    }
    return result;
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
  // Where a tensor of a set is: its shard and its number of values.
  struct Placement {
    int shard = 0;
    int64_t values = 0;
  };
  using Layout = std::map<std::string, Placement>;

  // Whether a message with `values` floats in `tensors` tensors exceeds the
  // message limit.
  bool TooLarge(int64_t values, int64_t tensors) const {
    return MessageBytes(values, tensors) > max_message_bytes_;
  }

  std::shared_ptr<const Layout> KnownLayout(const std::string& job_id) ABSL_LOCKS_EXCLUDED(layouts_mu_) {
    absl::MutexLock lock(&layouts_mu_);
    auto it = layouts_.find(job_id);
    return it == layouts_.end() ? nullptr : it->second;
  }

  // The whole set from every shard. Without `layout` (the sizes are not
  // known), the shards stream it, and where each tensor is is learnt.
  absl::StatusOr<PulledWeights> PullEveryShard(const std::string& job_id, const Layout* layout)
      ABSL_LOCKS_EXCLUDED(layouts_mu_) {
    std::vector<v1::PullRequest> requests(stubs_.size());
    std::vector<int64_t> values(stubs_.size(), layout == nullptr ? -1 : 0);
    std::vector<size_t> all;
    for (size_t s = 0; s < stubs_.size(); ++s) {
      requests[s].set_job_id(job_id);
      all.push_back(s);
    }
    std::vector<int64_t> counts(stubs_.size(), 0);
    if (layout != nullptr) {
      for (const auto& [name, placement] : *layout) {
        values[placement.shard] += placement.values;
        ++counts[placement.shard];
      }
    }
    std::vector<std::vector<std::string>> held;
    absl::StatusOr<PulledWeights> pulled = PullShards("PullSome", all, requests, values, counts, &held);
    if (!pulled.ok() || layout != nullptr) return pulled;
    auto learnt = std::make_shared<Layout>();
    for (size_t s = 0; s < held.size(); ++s) {
      for (const std::string& name : held[s]) learnt->emplace(name, Placement{static_cast<int>(s), 0});
    }
    for (const FlatTensor& t : pulled->tensors) (*learnt)[t.name].values = t.NumElements();
    absl::MutexLock lock(&layouts_mu_);
    layouts_.emplace(job_id, std::move(learnt));
    return pulled;
  }

  // Only `names` of a whole set (INVALID_ARGUMENT for one it lacks); the
  // versions of shards none of them came from become -1.
  static absl::StatusOr<PulledWeights> Select(PulledWeights all, const std::vector<std::string>& names,
                                              const std::string& job_id) {
    const std::set<std::string> wanted(names.begin(), names.end());
    PulledWeights some;
    some.versions = std::move(all.versions);
    for (FlatTensor& t : all.tensors) {
      if (wanted.count(t.name)) some.tensors.push_back(std::move(t));
    }
    if (some.tensors.size() != wanted.size()) {
      std::set<std::string> found;
      for (const FlatTensor& t : some.tensors) found.insert(t.name);
      for (const std::string& name : wanted) {
        if (!found.count(name)) {
          return absl::InvalidArgumentError(
              absl::StrCat("PullSome: tensor '", name, "' is not in the set ", job_id));
        }
      }
    }
    return some;
  }

  // Pulls requests[s] from each shard in `shards` at once, streamed where
  // values[s] floats in counts[s] tensors (values[s] -1: unknown) may not fit
  // in one message. `held`, when given, gets each shard's tensor names.
  absl::StatusOr<PulledWeights> PullShards(const char* what, const std::vector<size_t>& shards,
                                           const std::vector<v1::PullRequest>& requests,
                                           const std::vector<int64_t>& values,
                                           const std::vector<int64_t>& counts,
                                           std::vector<std::vector<std::string>>* held = nullptr) {
    std::vector<v1::PullResponse> responses(stubs_.size());
    absl::Status status = RunOnShards(what, shards, [&](size_t s) -> absl::Status {
      if (values[s] < 0 || TooLarge(values[s], counts[s])) {
        absl::StatusOr<v1::PullResponse> response =
            ps::PullStreamed(*stubs_[s], requests[s], chunk_values_, timeout_);
        if (response.ok()) responses[s] = *std::move(response);
        return response.status();
      }
      grpc::ClientContext context;
      context.set_deadline(absl::ToChronoTime(absl::Now() + timeout_));
      return FromGrpcStatus(stubs_[s]->Pull(&context, requests[s], &responses[s]));
    });
    if (!status.ok()) return status;
    PulledWeights weights;
    weights.versions.assign(stubs_.size(), -1);
    if (held != nullptr) held->assign(stubs_.size(), {});
    for (size_t s : shards) {
      weights.versions[s] = responses[s].version();
      for (const v1::Tensor& t : responses[s].tensors()) {
        absl::StatusOr<FlatTensor> flat = FromProto(t);
        if (!flat.ok()) return flat.status();
        if (held != nullptr) (*held)[s].push_back(t.name());
        weights.tensors.push_back(*std::move(flat));
      }
    }
    return weights;
  }

  // Runs call(s) for every shard in `shards` at once (threads for all but
  // the last, which runs here) and waits for all; the first error wins,
  // named with the method and the shard.
  absl::Status RunOnShards(const char* what, const std::vector<size_t>& shards,
                           const std::function<absl::Status(size_t)>& call) {
    std::vector<absl::Status> statuses(shards.size());
    std::vector<std::thread> threads;
    for (size_t i = 0; i + 1 < shards.size(); ++i) {
      threads.emplace_back([&, i] { statuses[i] = call(shards[i]); });
    }
    if (!shards.empty()) statuses.back() = call(shards.back());
    for (std::thread& t : threads) t.join();
    for (size_t i = 0; i < shards.size(); ++i) {
      if (!statuses[i].ok()) {
        return absl::Status(statuses[i].code(),
                            absl::StrCat(what, " on parameter server shard ", shards[i], " at ",
                                         addresses_[shards[i]], ": ", statuses[i].message()));
      }
    }
    return absl::OkStatus();
  }

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
  const int64_t max_message_bytes_;
  const int64_t chunk_values_;
  // Where each tensor of a set this client created (InitJob) or pulled whole
  // is; dropped with the set.
  absl::Mutex layouts_mu_;
  std::map<std::string, std::shared_ptr<const Layout>> layouts_ ABSL_GUARDED_BY(layouts_mu_);
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
