// PsWeightsClient against real parameter-server shards (Shard + its gRPC
// service) on 127.0.0.1: concurrent pushes are coalesced into PushBatch calls
// without losing, repeating or mixing up any of them.
#include "controller/ps_weights_client.h"

#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <limits>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "common/sharding.h"
#include "gtest/gtest.h"
#include "parameter_server/in_process_shards.h"
#include "parameter_server/service.h"
#include "proto/parameter_server.grpc.pb.h"

namespace nas::controller {
namespace {

constexpr int kShards = 2;

// Four tensors of zeros; the sharding rule spreads them over both shards.
std::vector<FlatTensor> Zeros() {
  return {{"a", {4}, std::vector<float>(4, 0)},
          {"b", {3}, std::vector<float>(3, 0)},
          {"c", {2, 2}, std::vector<float>(4, 0)},
          {"d", {5}, std::vector<float>(5, 0)}};
}

std::vector<FlatTensor> Filled(float value) {
  std::vector<FlatTensor> tensors = Zeros();
  for (FlatTensor& t : tensors) std::fill(t.values.begin(), t.values.end(), value);
  return tensors;
}

class PsWeightsClientTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ps_ = ps::InProcessShards::Start(kShards).value();
    for (const std::string& address : ps_->addresses) {
      stubs_.push_back(v1::ParameterServer::NewStub(
          grpc::CreateChannel(address, grpc::InsecureChannelCredentials())));
    }
    client_ = CreatePsWeightsClient(ps_->addresses, absl::Seconds(10), 64 << 20).value();
    v1::OptimizerConfig sgd;
    sgd.set_kind(v1::OptimizerConfig::SGD);
    sgd.set_learning_rate(1.0);
    ASSERT_TRUE(client_->InitJob("job", Zeros(), sgd).ok());
  }

  v1::GetShardInfoResponse Info(int shard) {
    grpc::ClientContext context;
    v1::GetShardInfoRequest request;
    v1::GetShardInfoResponse response;
    EXPECT_TRUE(stubs_[shard]->GetShardInfo(&context, request, &response).ok());
    return response;
  }

  std::unique_ptr<ps::InProcessShards> ps_;
  std::vector<std::unique_ptr<v1::ParameterServer::Stub>> stubs_;
  std::unique_ptr<WeightsClient> client_;
};

TEST_F(PsWeightsClientTest, ConcurrentPushesAreEachAppliedOnceAndAnsweredToTheirOwnReplica) {
  constexpr int kReplicas = 16, kRounds = 40;
  std::vector<std::thread> replicas;
  std::vector<std::string> failures(kReplicas);
  for (int r = 0; r < kReplicas; ++r) {
    replicas.emplace_back([&, r] {
      std::vector<int64_t> base(kShards, 0), last(kShards, 0);
      for (int round = 0; round < kRounds; ++round) {
        PulledWeights updated;
        // Replica r always pushes r + 1: with SGD at learning rate 1 every
        // weight ends at minus the sum of all pushes, whatever the order.
        absl::Status status =
            client_->Push("job", r, base, Filled(static_cast<float>(r + 1)), &updated);
        if (!status.ok()) {
          failures[r] = status.ToString();
          return;
        }
        if (updated.versions.size() != kShards || updated.tensors.size() != Zeros().size()) {
          failures[r] = absl::StrCat("round ", round, ": ", updated.versions.size(), " versions, ",
                                     updated.tensors.size(), " tensors");
          return;
        }
        for (int s = 0; s < kShards; ++s) {
          // This replica's pushes are applied in its order: each answer is
          // newer than the one before.
          if (updated.versions[s] <= last[s]) {
            failures[r] = absl::StrCat("round ", round, " shard ", s, ": version ",
                                       updated.versions[s], " after ", last[s]);
            return;
          }
          last[s] = updated.versions[s];
        }
        base = updated.versions;
      }
    });
  }
  for (std::thread& t : replicas) t.join();
  for (int r = 0; r < kReplicas; ++r) EXPECT_EQ(failures[r], "") << "replica " << r;

  const int64_t pushes = int64_t{kReplicas} * kRounds;
  float expected = 0;
  for (int r = 0; r < kReplicas; ++r) expected -= static_cast<float>((r + 1) * kRounds);
  absl::StatusOr<PulledWeights> weights = client_->Pull("job");
  ASSERT_TRUE(weights.ok()) << weights.status();
  ASSERT_EQ(weights->tensors.size(), Zeros().size());
  for (const FlatTensor& t : weights->tensors) {
    for (float v : t.values) ASSERT_EQ(v, expected) << t.name;
  }
  for (int s = 0; s < kShards; ++s) {
    const v1::GetShardInfoResponse info = Info(s);
    ASSERT_EQ(info.jobs_size(), 1);
    EXPECT_EQ(info.jobs(0).pushes(), pushes) << "shard " << s;
    EXPECT_EQ(weights->versions[s], pushes) << "shard " << s;
    EXPECT_GE(info.push_calls(), 1);
    EXPECT_LE(info.push_calls(), pushes);
    std::printf("shard %d: %lld pushes in %lld calls\n", s, static_cast<long long>(pushes),
                static_cast<long long>(info.push_calls()));
  }
}

TEST_F(PsWeightsClientTest, ABadPushFailsItsOwnReplicaOnly) {
  // Good and bad replicas push at once, so their pushes share batches: each
  // must get its own outcome.
  constexpr int kPairs = 6, kRounds = 30;
  std::atomic<int> good_ok{0}, bad_invalid{0};
  struct LastError {
    absl::Mutex mu;
    std::string message ABSL_GUARDED_BY(mu);
  } bad;
  std::vector<std::thread> replicas;
  for (int p = 0; p < kPairs; ++p) {
    replicas.emplace_back([&, p] {
      std::vector<int64_t> base(kShards, 0);
      for (int i = 0; i < kRounds; ++i)
        good_ok += client_->Push("job", 2 * p, base, Filled(1)).ok();
    });
    replicas.emplace_back([&, p] {
      std::vector<int64_t> base(kShards, 0);
      for (int i = 0; i < kRounds; ++i) {
        const absl::Status status =
            client_->Push("job", 2 * p + 1, base, Filled(std::numeric_limits<float>::quiet_NaN()));
        if (status.code() == absl::StatusCode::kInvalidArgument) ++bad_invalid;
        absl::MutexLock lock(&bad.mu);
        bad.message = std::string(status.message());
      }
    });
  }
  for (std::thread& t : replicas) t.join();
  EXPECT_EQ(good_ok.load(), kPairs * kRounds);
  EXPECT_EQ(bad_invalid.load(), kPairs * kRounds);
  {
    absl::MutexLock lock(&bad.mu);
    EXPECT_NE(bad.message.find("parameter server shard"), std::string::npos) << bad.message;
  }
  absl::StatusOr<PulledWeights> weights = client_->Pull("job");
  ASSERT_TRUE(weights.ok());
  for (const FlatTensor& t : weights->tensors) {
    for (float v : t.values) ASSERT_EQ(v, -static_cast<float>(kPairs * kRounds)) << t.name;
  }
  std::printf("%d pushes in %lld calls to shard 0\n", 2 * kPairs * kRounds,
              static_cast<long long>(Info(0).push_calls()));
}

TEST_F(PsWeightsClientTest, PushBatchAnswersEachPushInOrderAndRejectsEmptyOrHugeBatches) {
  // Shard 0's slice of a push, from what the client placed there.
  absl::StatusOr<PulledWeights> before = client_->Pull("job");
  ASSERT_TRUE(before.ok());
  v1::PullRequest pull;
  pull.set_job_id("job");
  v1::PullResponse shard0;
  {
    grpc::ClientContext context;
    ASSERT_TRUE(stubs_[0]->Pull(&context, pull, &shard0).ok());
  }
  ASSERT_GT(shard0.tensors_size(), 0);
  auto push = [&](float value) {
    v1::PushRequest r;
    r.set_job_id("job");
    for (const v1::Tensor& t : shard0.tensors()) {
      v1::Tensor* g = r.add_gradients();
      g->set_name(t.name());
      *g->mutable_shape() = t.shape();
      for (int i = 0; i < t.values_size(); ++i) g->add_values(value);
    }
    return r;
  };
  v1::PushBatchRequest batch;
  *batch.add_pushes() = push(1);
  *batch.add_pushes() = push(std::numeric_limits<float>::infinity());
  *batch.add_pushes() = push(2);
  batch.add_pushes()->set_job_id("no-such-job");
  batch.mutable_pushes(2)->set_return_parameters(true);
  v1::PushBatchResponse response;
  {
    grpc::ClientContext context;
    const grpc::Status status = stubs_[0]->PushBatch(&context, batch, &response);
    ASSERT_TRUE(status.ok()) << status.error_message();
  }
  ASSERT_EQ(response.outcomes_size(), 4);
  EXPECT_EQ(response.outcomes(0).code(), 0);
  EXPECT_EQ(response.outcomes(0).response().version(), 1);
  EXPECT_EQ(response.outcomes(1).code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(response.outcomes(1).message(), "");
  EXPECT_EQ(response.outcomes(2).code(), 0);
  EXPECT_EQ(response.outcomes(2).response().version(), 2);
  ASSERT_GT(response.outcomes(2).response().tensors_size(), 0);
  EXPECT_EQ(response.outcomes(2).response().tensors(0).values(0), -3.0f);
  EXPECT_EQ(response.outcomes(3).code(), grpc::StatusCode::NOT_FOUND);

  for (int n : {0, ps::kMaxPushesPerBatch + 1}) {
    v1::PushBatchRequest wrong;
    for (int i = 0; i < n; ++i) *wrong.add_pushes() = push(1);
    grpc::ClientContext context;
    v1::PushBatchResponse out;
    const grpc::Status status = stubs_[0]->PushBatch(&context, wrong, &out);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << n << " pushes";
    EXPECT_NE(status.error_message().find("1..1024"), std::string::npos) << status.error_message();
  }
  // Neither rejected batch changed the shard.
  EXPECT_EQ(Info(0).jobs(0).version(), 2);
}

TEST_F(PsWeightsClientTest, AShardThatIsDownFailsThePushNamingTheShard) {
  ps_->servers[1]->Shutdown(absl::Seconds(1));
  std::vector<int64_t> base(kShards, 0);
  const absl::Status status = client_->Push("job", 0, base, Filled(1));
  EXPECT_TRUE(status.code() == absl::StatusCode::kUnavailable ||
              status.code() == absl::StatusCode::kDeadlineExceeded)
      << status;
  EXPECT_NE(status.message().find("shard 1"), std::string::npos) << status;
  // The other shard took its part, and its pusher is free for the next push.
  EXPECT_EQ(ps_->shards[0]->Info().jobs(0).pushes(), 1);
  EXPECT_EQ(client_->Push("job", 0, base, Filled(1)).code(), status.code());
  EXPECT_EQ(ps_->shards[0]->Info().jobs(0).pushes(), 2);
}


// ---- Sparse sets (one-shot ω): PullSome and PushSparse.

// `n` tensors "w0".."w{n-1}" of `size` values each, tensor i filled with i.
std::vector<FlatTensor> Omega(int n, int64_t size) {
  std::vector<FlatTensor> tensors;
  for (int i = 0; i < n; ++i) {
    tensors.push_back({absl::StrCat("w", i), {size}, std::vector<float>(size, static_cast<float>(i))});
  }
  return tensors;
}

v1::OptimizerConfig SparseSgd(int64_t max_staleness) {
  v1::OptimizerConfig sgd;
  sgd.set_kind(v1::OptimizerConfig::SGD);
  sgd.set_learning_rate(1.0);
  sgd.set_sparse(true);
  sgd.set_max_staleness(max_staleness);
  return sgd;
}

// Gradients of ones for `names` (each `size` values).
std::vector<FlatTensor> Ones(const std::vector<std::string>& names, int64_t size) {
  std::vector<FlatTensor> gradients;
  for (const std::string& name : names) gradients.push_back({name, {size}, std::vector<float>(size, 1)});
  return gradients;
}

std::map<std::string, std::vector<float>> ByName(const PulledWeights& weights) {
  std::map<std::string, std::vector<float>> out;
  for (const FlatTensor& t : weights.tensors) out[t.name] = t.values;
  return out;
}

// Which shard holds each of Omega(n, size)'s tensors.
std::vector<int> OmegaOwners(int n, int64_t size) {
  std::vector<TensorSize> sizes;
  for (int i = 0; i < n; ++i) sizes.push_back({absl::StrCat("w", i), size});
  return AssignShards(sizes, kShards);
}

TEST_F(PsWeightsClientTest, SparsePullAndPushTouchOnlyTheirTensorsAndStalePushesAreCounted) {
  constexpr int kN = 6;
  constexpr int64_t kSize = 5;
  ASSERT_TRUE(client_->InitJob("omega", Omega(kN, kSize), SparseSgd(/*max_staleness=*/1)).ok());
  const std::vector<int> owner = OmegaOwners(kN, kSize);
  // Two tensors on different shards, and one shard asked for nothing.
  std::string on0, on1;
  for (int i = 0; i < kN; ++i) (owner[i] == 0 ? on0 : on1) = absl::StrCat("w", i);
  ASSERT_FALSE(on0.empty() || on1.empty());

  absl::StatusOr<PulledWeights> one = client_->PullSome("omega", {on1});
  ASSERT_TRUE(one.ok()) << one.status();
  ASSERT_EQ(one->tensors.size(), 1u);
  EXPECT_EQ(one->tensors[0].name, on1);
  EXPECT_EQ(one->tensors[0].values, Omega(kN, kSize)[std::stoi(on1.substr(1))].values);
  EXPECT_EQ(one->versions, (std::vector<int64_t>{-1, 0}));

  absl::StatusOr<SparsePushResult> pushed =
      client_->PushSparse("omega", {0, 0}, Ones({on0, on1}, kSize));
  ASSERT_TRUE(pushed.ok()) << pushed.status();
  EXPECT_EQ(pushed->shards_applied, 2);
  EXPECT_EQ(pushed->shards_refused_stale, 0);
  EXPECT_EQ(pushed->versions, (std::vector<int64_t>{1, 1}));
  EXPECT_EQ(pushed->bytes, 2 * kSize * 4);
  // Only the pushed tensors moved (SGD, learning rate 1: minus one each).
  absl::StatusOr<PulledWeights> all = client_->PullSome("omega", {});
  ASSERT_TRUE(all.ok()) << all.status();
  auto values = ByName(*all);
  ASSERT_EQ(values.size(), static_cast<size_t>(kN));
  for (int i = 0; i < kN; ++i) {
    const std::string name = absl::StrCat("w", i);
    const float expected = static_cast<float>(i) - (name == on0 || name == on1 ? 1.f : 0.f);
    EXPECT_EQ(values[name], std::vector<float>(kSize, expected)) << name;
  }

  // Only shard 0 gets this one: staleness 1, within the bound.
  pushed = client_->PushSparse("omega", {0, 0}, Ones({on0}, kSize));
  ASSERT_TRUE(pushed.ok()) << pushed.status();
  EXPECT_EQ(pushed->versions, (std::vector<int64_t>{2, -1}));
  EXPECT_EQ(pushed->max_staleness, 1);
  // From version 0 again: shard 0 is 2 versions ahead (refused as stale),
  // shard 1 only 1 (applied).
  pushed = client_->PushSparse("omega", {0, 0}, Ones({on0, on1}, kSize));
  ASSERT_TRUE(pushed.ok()) << pushed.status();
  EXPECT_EQ(pushed->shards_refused_stale, 1);
  EXPECT_EQ(pushed->shards_applied, 1);
  EXPECT_EQ(pushed->versions, (std::vector<int64_t>{-1, 2}));
  values = ByName(client_->PullSome("omega", {on0}).value());
  EXPECT_EQ(values[on0], std::vector<float>(kSize, std::stof(on0.substr(1)) - 2)) << "refused push applied";

  EXPECT_EQ(client_->PullSome("omega", {"nope"}).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(client_->PushSparse("omega", {0, 0}, Ones({"nope"}, kSize)).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(client_->PushSparse("omega", {0}, Ones({on0}, kSize)).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(PsWeightsClientTest, AClientThatDidNotCreateTheSetLearnsWhereItsTensorsAre) {
  constexpr int kN = 5;
  constexpr int64_t kSize = 3;
  ASSERT_TRUE(client_->InitJob("omega", Omega(kN, kSize), SparseSgd(0)).ok());
  auto other = CreatePsWeightsClient(ps_->addresses, absl::Seconds(10), 64 << 20).value();
  absl::StatusOr<SparsePushResult> pushed = other->PushSparse("omega", {0, 0}, Ones({"w3"}, kSize));
  ASSERT_TRUE(pushed.ok()) << pushed.status();
  EXPECT_EQ(pushed->shards_applied, 1);
  auto third = CreatePsWeightsClient(ps_->addresses, absl::Seconds(10), 64 << 20).value();
  absl::StatusOr<PulledWeights> some = third->PullSome("omega", {"w3", "w0"});
  ASSERT_TRUE(some.ok()) << some.status();
  auto values = ByName(*some);
  ASSERT_EQ(values.size(), 2u);
  EXPECT_EQ(values["w3"], std::vector<float>(kSize, 2.f));
  EXPECT_EQ(values["w0"], std::vector<float>(kSize, 0.f));
}

TEST(PsWeightsClientLargeTest, ASetLargerThanOneMessageIsCreatedPulledAndPushedSparselyInPieces) {
  constexpr int kLimit = 256 << 10;  // servers' and client's message limit
  constexpr int kN = 8;
  constexpr int64_t kSize = 40000;  // 160 KB a tensor, ~640 KB a shard
  auto ps = ps::InProcessShards::Start(kShards, kLimit).value();
  auto client = CreatePsWeightsClient(ps->addresses, absl::Seconds(30), kLimit).value();
  const absl::Status init = client->InitJob("omega", Omega(kN, kSize), SparseSgd(0));
  ASSERT_TRUE(init.ok()) << init;
  const std::vector<int> owner = OmegaOwners(kN, kSize);
  // Three tensors of each shard: 480 KB a shard, over the limit both ways.
  std::vector<std::string> names;
  int per_shard[kShards] = {0, 0};
  for (int i = 0; i < kN; ++i) {
    if (per_shard[owner[i]]++ < 3) names.push_back(absl::StrCat("w", i));
  }
  ASSERT_EQ(names.size(), 6u);
  absl::StatusOr<PulledWeights> pulled = client->PullSome("omega", names);
  ASSERT_TRUE(pulled.ok()) << pulled.status();
  auto values = ByName(*pulled);
  ASSERT_EQ(values.size(), names.size());
  for (const std::string& name : names) {
    EXPECT_EQ(values[name], std::vector<float>(kSize, std::stof(name.substr(1)))) << name;
  }
  absl::StatusOr<SparsePushResult> pushed =
      client->PushSparse("omega", pulled->versions, Ones(names, kSize));
  ASSERT_TRUE(pushed.ok()) << pushed.status();
  EXPECT_EQ(pushed->shards_applied, 2);
  EXPECT_EQ(pushed->versions, (std::vector<int64_t>{1, 1}));
  // A client that did not create the set learns its layout from a streamed
  // pull of the whole set (2.5 MB), and sees the push on exactly `names`.
  auto other = CreatePsWeightsClient(ps->addresses, absl::Seconds(30), kLimit).value();
  absl::StatusOr<PulledWeights> all = other->PullSome("omega", {});
  ASSERT_TRUE(all.ok()) << all.status();
  values = ByName(*all);
  ASSERT_EQ(values.size(), static_cast<size_t>(kN));
  for (int i = 0; i < kN; ++i) {
    const std::string name = absl::StrCat("w", i);
    const bool was_pushed = std::find(names.begin(), names.end(), name) != names.end();
    EXPECT_EQ(values[name], std::vector<float>(kSize, i - (was_pushed ? 1.f : 0.f))) << name;
  }
  // One small tensor still goes unary and works.
  EXPECT_TRUE(other->PullSome("omega", {"w1"}).ok());
}

TEST_F(PsWeightsClientTest, AClientWithoutAMessageLimitStreamsWhatExceedsGrpcsDefault) {
  // No max_message_bytes: the channel receives gRPC's default 4 MiB, so a
  // 6 MB pull from one shard must be streamed (the servers send 64 MiB).
  auto client = CreatePsWeightsClient(ps_->addresses, absl::Seconds(30), 0).value();
  constexpr int64_t kSize = 750000;  // 3 MB a tensor
  ASSERT_TRUE(client->InitJob("big", Omega(4, kSize), SparseSgd(0)).ok());
  absl::StatusOr<PulledWeights> all = client->PullSome("big", {});
  ASSERT_TRUE(all.ok()) << all.status();
  EXPECT_EQ(ByName(*all).size(), 4u);
  absl::StatusOr<PulledWeights> two = client->PullSome("big", {"w0", "w3", "w1", "w2"});
  ASSERT_TRUE(two.ok()) << two.status();
  EXPECT_EQ(ByName(*two)["w3"], std::vector<float>(kSize, 3.f));
}

}  // namespace
}  // namespace nas::controller
