// Issue 18, row 6: a parameter server whose data dir fills up. Its data dir is
// a 2 MiB tmpfs in a mount namespace of its own (tests/test_util.h,
// NamespacedTmpfs: it outlives a SIGKILLed server), filled and freed from
// here. With
// --checkpoint_every_updates=1 every acknowledged push must survive a SIGKILL:
// pushes are refused with RESOURCE_EXHAUSTED while the disk is full, the
// version after a restart is the last acknowledged one, and once space
// returns pushes succeed again without a restart. Fails (does not skip) where
// namespaces cannot be made.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <memory>
#include <string>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/file_util.h"
#include "common/grpc_server.h"
#include "common/subprocess.h"
#include "gtest/gtest.h"
#include "proto/parameter_server.grpc.pb.h"
#include "tests/test_util.h"

namespace nas {
namespace {

using ::nas::testing::LogTail;
using ::nas::testing::NamespacedTmpfs;
using ::nas::testing::NewTempDir;
using ::nas::testing::RunningServer;
using ::nas::testing::StartServer;

v1::Tensor Tensor(const std::string& name, int n, float value) {
  v1::Tensor t;
  t.set_name(name);
  t.add_shape(n);
  for (int i = 0; i < n; ++i) t.add_values(value + 0.001f * (i % 100));
  return t;
}

class FullDiskTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = NewTempDir("ps-full");
    data_ = dir_ + "/data";
    log_ = dir_ + "/nas_parameter_server.log";
    auto tmpfs = NamespacedTmpfs::Create(data_, "2m", dir_);
    ASSERT_TRUE(tmpfs.ok()) << tmpfs.status();
    tmpfs_ = *std::move(tmpfs);
  }

  // Starts the server inside the namespace and connects to it.
  void StartPs() {
    server_.reset();
    auto started = StartServer(
        "parameter_server/nas_parameter_server",
        {"--shard_index=0", "--num_shards=1", "--data_dir=" + data_,
         "--checkpoint_every_updates=1", "--checkpoint_interval=1h"},
        dir_, "ready_file", absl::Seconds(60), tmpfs_->Enter());
    ASSERT_TRUE(started.ok()) << started.status();
    server_ = std::make_unique<RunningServer>(*std::move(started));
    stub_ = v1::ParameterServer::NewStub(
        grpc::CreateChannel(absl::StrCat("127.0.0.1:", server_->ready.grpc_port),
                            grpc::InsecureChannelCredentials()));
  }

  grpc::Status Push(v1::PushResponse* response) {
    v1::PushRequest push;
    push.set_job_id("job");
    *push.add_gradients() = Tensor("a", 8192, 0.1f);
    *push.add_gradients() = Tensor("b", 8192, -0.2f);
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
    return stub_->Push(&context, push, response);
  }

  v1::PullResponse Pull() {
    v1::PullRequest pull;
    pull.set_job_id("job");
    v1::PullResponse state;
    grpc::ClientContext context;
    grpc::Status status = stub_->Pull(&context, pull, &state);
    EXPECT_TRUE(status.ok()) << status.error_message() << "\n" << LogTail(log_);
    return state;
  }

  void Fill() { ASSERT_TRUE(tmpfs_->Fill().ok()); }
  void Free() { ASSERT_TRUE(tmpfs_->Free().ok()); }

  // Pushes until one is acknowledged (the server retries its checkpoint with
  // a backoff of at most 5 s); returns its version.
  int64_t PushUntilAcknowledged() {
    const absl::Time deadline = absl::Now() + absl::Seconds(30);
    while (absl::Now() < deadline) {
      v1::PushResponse response;
      grpc::Status status = Push(&response);
      if (status.ok()) return response.version();
      EXPECT_EQ(status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << status.error_message();
      absl::SleepFor(absl::Milliseconds(100));
    }
    ADD_FAILURE() << "no push acknowledged within 30 s after space returned\n" << LogTail(log_);
    return -1;
  }

  void ExpectRefused() {
    v1::PushResponse response;
    grpc::Status status = Push(&response);
    ASSERT_EQ(status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED)
        << "acknowledged version " << response.version() << " on a full disk";
    EXPECT_NE(status.error_message().find(data_), std::string::npos) << status.error_message();
    EXPECT_NE(status.error_message().find("No space left on device"), std::string::npos)
        << status.error_message();
  }

  std::string dir_, data_, log_;
  std::unique_ptr<NamespacedTmpfs> tmpfs_;
  std::unique_ptr<RunningServer> server_;
  std::unique_ptr<v1::ParameterServer::Stub> stub_;
};

TEST_F(FullDiskTest, PushesAreRefusedWhileFullNoneAcknowledgedIsLostAndTheyResumeWhenSpaceReturns) {
  ASSERT_NO_FATAL_FAILURE(StartPs());
  v1::InitJobRequest init;
  init.set_job_id("job");
  init.set_num_shards(1);
  init.set_shard_index(0);
  init.mutable_optimizer()->set_kind(v1::OptimizerConfig::ADAM);
  init.mutable_optimizer()->set_learning_rate(0.01);
  for (const char* name : {"a", "b"}) {
    v1::TensorSpec* spec = init.add_layout();
    spec->set_name(name);
    spec->add_shape(8192);
    *init.add_tensors() = Tensor(name, 8192, 0.5f);
  }
  {
    v1::InitJobResponse response;
    grpc::ClientContext context;
    grpc::Status status = stub_->InitJob(&context, init, &response);
    ASSERT_TRUE(status.ok()) << status.error_message();
  }
  int64_t acknowledged = 0;
  for (int k = 0; k < 5; ++k) {
    v1::PushResponse response;
    grpc::Status status = Push(&response);
    ASSERT_TRUE(status.ok()) << status.error_message() << "\n" << LogTail(log_);
    acknowledged = response.version();
  }
  ASSERT_EQ(acknowledged, 5);

  // Full: every push is refused and none changes the served state.
  ASSERT_NO_FATAL_FAILURE(Fill());
  for (int k = 0; k < 5; ++k) ASSERT_NO_FATAL_FAILURE(ExpectRefused());
  EXPECT_EQ(Pull().version(), acknowledged);
  // Space returns: pushes are acknowledged again by the same process.
  ASSERT_NO_FATAL_FAILURE(Free());
  acknowledged = PushUntilAcknowledged();
  EXPECT_EQ(acknowledged, 6);

  // Full again, then SIGKILL: the restart serves the last acknowledged state.
  ASSERT_NO_FATAL_FAILURE(Fill());
  ASSERT_NO_FATAL_FAILURE(ExpectRefused());
  const v1::PullResponse before = Pull();
  EXPECT_EQ(before.version(), acknowledged);
  ASSERT_TRUE(server_->process.Signal(SIGKILL).ok());
  ASSERT_TRUE(server_->process.Wait(absl::Seconds(10)).ok());
  ASSERT_NO_FATAL_FAILURE(StartPs());
  const v1::PullResponse after = Pull();
  EXPECT_EQ(after.version(), acknowledged);
  EXPECT_EQ(after.SerializeAsString(), before.SerializeAsString());
  ASSERT_NO_FATAL_FAILURE(ExpectRefused());
  ASSERT_NO_FATAL_FAILURE(Free());
  EXPECT_EQ(PushUntilAcknowledged(), acknowledged + 1);

  ASSERT_TRUE(server_->process.Signal(SIGTERM).ok());
  auto exited = server_->process.Wait(absl::Seconds(20));
  ASSERT_TRUE(exited.ok()) << exited.status();
  EXPECT_TRUE(WIFEXITED(*exited) && WEXITSTATUS(*exited) == 0) << LogTail(log_);
}

}  // namespace
}  // namespace nas
