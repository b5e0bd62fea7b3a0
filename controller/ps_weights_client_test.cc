// PsWeightsClient against real parameter-server shards (Shard + its gRPC
// service) on 127.0.0.1: concurrent pushes are coalesced into PushBatch calls
// without losing, repeating or mixing up any of them.
#include "controller/ps_weights_client.h"

#include <grpcpp/grpcpp.h>

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

}  // namespace
}  // namespace nas::controller
