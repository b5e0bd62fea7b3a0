// The parameter server as a real process, SIGKILLed while clients push:
// after a restart on the same data directory its state equals its newest
// checkpoint on disk, the version never goes back past it, and pushes go on.
#include <signal.h>

#include <atomic>
#include <thread>

#include <grpcpp/grpcpp.h>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/file_util.h"
#include "gtest/gtest.h"
#include "parameter_server/checkpoint.h"
#include "proto/parameter_server.grpc.pb.h"
#include "tests/test_util.h"

namespace nas {
namespace {

using ::nas::testing::LogTail;
using ::nas::testing::NewTempDir;
using ::nas::testing::StartServer;

v1::Tensor Tensor(const std::string& name, int n, float value) {
  v1::Tensor t;
  t.set_name(name);
  t.add_shape(n);
  for (int i = 0; i < n; ++i) t.add_values(value + 0.001f * i);
  return t;
}

TEST(PsRestartTest, KillNineUnderPushLoadRestoresTheLastCheckpoint) {
  const std::string dir = NewTempDir("ps-restart");
  const std::vector<std::string> args = {"--shard_index=0", "--num_shards=1", "--data_dir=" + dir + "/data",
                                         "--checkpoint_every_updates=7", "--checkpoint_interval=1h"};
  auto ps = StartServer("parameter_server/nas_parameter_server", args, dir);
  ASSERT_TRUE(ps.ok()) << ps.status();
  auto stub = v1::ParameterServer::NewStub(grpc::CreateChannel(
      absl::StrCat("127.0.0.1:", ps->ready.grpc_port), grpc::InsecureChannelCredentials()));
  v1::InitJobRequest init;
  init.set_job_id("job");
  init.set_num_shards(1);
  init.set_shard_index(0);
  init.mutable_optimizer()->set_kind(v1::OptimizerConfig::ADAM);
  init.mutable_optimizer()->set_learning_rate(0.01);
  for (const char* name : {"a", "b"}) {
    v1::TensorSpec* spec = init.add_layout();
    spec->set_name(name);
    spec->add_shape(64);
    *init.add_tensors() = Tensor(name, 64, 0.5f);
  }
  {
    v1::InitJobResponse response;
    grpc::ClientContext context;
    ASSERT_TRUE(stub->InitJob(&context, init, &response).ok());
  }
  std::atomic<int64_t> acked{0};
  std::atomic<bool> stop{false};
  std::vector<std::thread> pushers;
  for (int p = 0; p < 4; ++p) {
    pushers.emplace_back([&] {
      v1::PushRequest push;
      push.set_job_id("job");
      *push.add_gradients() = Tensor("a", 64, 0.1f);
      *push.add_gradients() = Tensor("b", 64, -0.2f);
      while (!stop) {
        v1::PushResponse response;
        grpc::ClientContext context;
        context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(2)));
        if (stub->Push(&context, push, &response).ok()) {
          int64_t seen = acked.load();
          while (response.version() > seen && !acked.compare_exchange_weak(seen, response.version())) {
          }
        }
      }
    });
  }
  while (acked < 50) absl::SleepFor(absl::Milliseconds(1));
  ASSERT_TRUE(ps->process.Signal(SIGKILL).ok());
  ASSERT_TRUE(ps->process.Wait(absl::Seconds(10)).ok());
  stop = true;
  for (std::thread& t : pushers) t.join();
  const int64_t last_acked = acked.load();

  auto restarted = StartServer("parameter_server/nas_parameter_server", args, dir);
  ASSERT_TRUE(restarted.ok()) << restarted.status();
  auto loaded = ps::LoadCheckpoints(dir + "/data");
  ASSERT_TRUE(loaded.ok());
  ASSERT_EQ(loaded->jobs.size(), 1u);
  const v1::ShardCheckpoint& newest = loaded->jobs[0].checkpoint;
  // A push applied (and checkpointed) just before the kill may never have been
  // acknowledged: at most one per pusher thread was in flight.
  EXPECT_LE(newest.version(), last_acked + 4) << "checkpoint holds more than the in-flight pushes";
  EXPECT_GT(newest.version(), last_acked - 8 - 4) << "at most one interval plus in-flight pushes lost";
  auto stub2 = v1::ParameterServer::NewStub(grpc::CreateChannel(
      absl::StrCat("127.0.0.1:", restarted->ready.grpc_port), grpc::InsecureChannelCredentials()));
  v1::PullRequest pull;
  pull.set_job_id("job");
  v1::PullResponse state;
  grpc::ClientContext context;
  ASSERT_TRUE(stub2->Pull(&context, pull, &state).ok()) << LogTail(restarted->log_path);
  EXPECT_EQ(state.version(), newest.version());
  ASSERT_EQ(state.tensors_size(), newest.tensors_size());
  for (int t = 0; t < state.tensors_size(); ++t) {
    EXPECT_EQ(state.tensors(t).SerializeAsString(), newest.tensors(t).SerializeAsString());
  }
  // Pushes continue from the restored version.
  v1::PushRequest push;
  push.set_job_id("job");
  *push.add_gradients() = Tensor("a", 64, 0.1f);
  *push.add_gradients() = Tensor("b", 64, 0.1f);
  v1::PushResponse response;
  grpc::ClientContext push_context;
  ASSERT_TRUE(stub2->Push(&push_context, push, &response).ok());
  EXPECT_EQ(response.version(), newest.version() + 1);
  ASSERT_TRUE(restarted->process.Signal(SIGTERM).ok());
  EXPECT_TRUE(restarted->process.Wait(absl::Seconds(20)).ok());
}

}  // namespace
}  // namespace nas
