// HttpGet against one-shot HTTP servers on 127.0.0.1 (a port picked at run
// time) that answer with a fixed text, or never.
#include "common/http_client.h"

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string>
#include <thread>

#include "absl/synchronization/notification.h"
#include "gtest/gtest.h"

namespace nas {
namespace {

// Accepts one connection, reads the request head, writes `answer` (unless
// `hang`, then waits for `release`) and closes.
class OneShotServer {
 public:
  explicit OneShotServer(std::string answer, bool hang = false)
      : answer_(std::move(answer)), hang_(hang) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(::bind(fd_, reinterpret_cast<sockaddr*>(&address), sizeof(address)), 0);
    EXPECT_EQ(::listen(fd_, 1), 0);
    socklen_t length = sizeof(address);
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&address), &length);
    port_ = ntohs(address.sin_port);
    thread_ = std::thread([this] { Serve(); });
  }
  ~OneShotServer() {
    release_.Notify();
    thread_.join();
    ::close(fd_);
  }
  int port() const { return port_; }
  const std::string& request() const { return request_; }  // after the GET returned

 private:
  void Serve() {
    const int client = ::accept(fd_, nullptr, nullptr);
    if (client < 0) return;
    char buffer[4096];
    while (request_.find("\r\n\r\n") == std::string::npos) {
      const ssize_t n = ::recv(client, buffer, sizeof(buffer), 0);
      if (n <= 0) break;
      request_.append(buffer, static_cast<size_t>(n));
    }
    if (hang_) release_.WaitForNotification();
    if (!hang_) (void)::send(client, answer_.data(), answer_.size(), MSG_NOSIGNAL);
    ::close(client);
  }

  const std::string answer_;
  const bool hang_;
  int fd_ = -1;
  int port_ = 0;
  std::string request_;
  absl::Notification release_;
  std::thread thread_;
};

TEST(HttpGetTest, ReadsStatusAndBody) {
  OneShotServer server("HTTP/1.1 404 Not Found\r\nContent-Length: 7\r\n\r\nmissing");
  absl::StatusOr<HttpResponse> response =
      HttpGet("127.0.0.1", server.port(), "/nothing?x=1", absl::Seconds(10));
  ASSERT_TRUE(response.ok()) << response.status();
  EXPECT_EQ(response->status_code, 404);
  EXPECT_EQ(response->body, "missing");
  EXPECT_EQ(server.request().rfind("GET /nothing?x=1 HTTP/1.", 0), 0u) << server.request();
}

// An HTTP/1.1 server may send its body in chunks; the body comes back whole
// (the hand-written HTTP/1.0 reader returned the chunk sizes inside it).
TEST(HttpGetTest, DecodesAChunkedBody) {
  OneShotServer server(
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
      "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n");
  absl::StatusOr<HttpResponse> response =
      HttpGet("127.0.0.1", server.port(), "/metrics", absl::Seconds(10));
  ASSERT_TRUE(response.ok()) << response.status();
  EXPECT_EQ(response->status_code, 200);
  EXPECT_EQ(response->body, "hello world");
}

TEST(HttpGetTest, AServerThatNeverAnswersTimesOut) {
  OneShotServer server("", /*hang=*/true);
  absl::StatusOr<HttpResponse> response =
      HttpGet("127.0.0.1", server.port(), "/metrics", absl::Milliseconds(300));
  EXPECT_TRUE(absl::IsUnavailable(response.status())) << response.status();
}

TEST(HttpGetTest, NothingListeningIsUnavailable) {
  int port;
  {
    OneShotServer server("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
    port = server.port();
    ASSERT_TRUE(HttpGet("127.0.0.1", port, "/", absl::Seconds(10)).ok());
  }
  absl::StatusOr<HttpResponse> response = HttpGet("127.0.0.1", port, "/", absl::Seconds(5));
  EXPECT_TRUE(absl::IsUnavailable(response.status())) << response.status();
}

TEST(HttpGetTest, AnAnswerThatIsNotHttpIsDataLoss) {
  OneShotServer server("SSH-2.0-OpenSSH_9.2\r\n\r\n");
  absl::StatusOr<HttpResponse> response =
      HttpGet("127.0.0.1", server.port(), "/", absl::Seconds(10));
  EXPECT_TRUE(absl::IsDataLoss(response.status())) << response.status();
}

}  // namespace
}  // namespace nas
