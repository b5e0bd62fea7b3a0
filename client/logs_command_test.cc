// `nasctl logs` against an in-process JobService on 127.0.0.1 that serves a
// scripted log growing call by call.
#include "client/logs_command.h"

#include <grpcpp/grpcpp.h>

#include <sstream>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "common/grpc_server.h"
#include "gtest/gtest.h"

namespace nas::client {
namespace {

// Serves `log` (attempt 2) growing by one chunk per call; complete with the
// last chunk. The first `dropped` bytes are no longer kept.
class FakeJobService final : public v1::JobService::Service {
 public:
  FakeJobService(std::vector<std::string> chunks, int64_t dropped) : chunks_(std::move(chunks)), dropped_(dropped) {}
  grpc::Status GetTrialLogs(grpc::ServerContext*, const v1::GetTrialLogsRequest* request,
                            v1::GetTrialLogsResponse* response) override {
    absl::MutexLock lock(&mu_);
    requests_.push_back(*request);
    std::string log;
    for (size_t i = 0; i <= served_ && i < chunks_.size(); ++i) log += chunks_[i];
    const int64_t end = static_cast<int64_t>(log.size());
    const int64_t from = std::min(end, std::max(request->offset(), dropped_));
    response->set_data(log.substr(from));
    response->set_offset(from);
    response->set_next_offset(end);
    response->set_first_offset(dropped_);
    response->set_attempt(2);
    response->set_complete(served_ + 1 >= chunks_.size());
    ++served_;
    return grpc::Status::OK;
  }
  std::vector<v1::GetTrialLogsRequest> requests() {
    absl::MutexLock lock(&mu_);
    return requests_;
  }

 private:
  const std::vector<std::string> chunks_;
  const int64_t dropped_;
  absl::Mutex mu_;
  size_t served_ ABSL_GUARDED_BY(mu_) = 0;
  std::vector<v1::GetTrialLogsRequest> requests_ ABSL_GUARDED_BY(mu_);
};

std::string RunAgainst(FakeJobService& service, bool follow) {
  GrpcServerOptions server_options;
  server_options.host = "127.0.0.1";
  server_options.metrics_port = -1;
  std::unique_ptr<GrpcServer> server = GrpcServer::Create(server_options).value();
  EXPECT_TRUE(server->Start({&service}).ok());
  auto stub = v1::JobService::NewStub(
      grpc::CreateChannel(absl::StrCat("127.0.0.1:", server->port()), grpc::InsecureChannelCredentials()));
  LogsOptions options;
  options.job_id = "job-1";
  options.trial_id = "t-3";
  options.follow = follow;
  options.poll_interval = absl::Milliseconds(1);
  std::ostringstream out;
  absl::Status status = RunLogs(options, stub.get(), out);
  EXPECT_TRUE(status.ok()) << status;
  server->Shutdown(absl::Seconds(1));
  return out.str();
}

TEST(LogsCommandTest, FollowPrintsEachLineOnceEscapedUntilTheLogIsComplete) {
  FakeJobService service({"epoch 1\npart", "ial \x1b[2Jline\n", "{\"accuracy\": 0.9}"}, 0);
  EXPECT_EQ(RunAgainst(service, /*follow=*/true),
            "# trial t-3, attempt 2\nepoch 1\npartial \\e[2Jline\n{\"accuracy\": 0.9}\n");
  const std::vector<v1::GetTrialLogsRequest> requests = service.requests();
  ASSERT_EQ(requests.size(), 3u);
  EXPECT_EQ(requests[0].attempt(), 0) << "the latest attempt first";
  EXPECT_EQ(requests[1].attempt(), 2) << "then that attempt, even if a retry starts";
  EXPECT_EQ(requests[1].offset(), 12);
  EXPECT_EQ(requests[2].offset(), 12 + 13);
}

TEST(LogsCommandTest, WithoutFollowOneCallAndDroppedBytesAreNoted) {
  FakeJobService service({"0123456789abc\nlast line\n", "more"}, 5);
  EXPECT_EQ(RunAgainst(service, /*follow=*/false),
            "# trial t-3, attempt 2\n[5 earlier bytes are no longer kept]\n56789abc\nlast line\n");
  EXPECT_EQ(service.requests().size(), 1u);
}

}  // namespace
}  // namespace nas::client
