#include "common/http_client.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"

namespace nas {
namespace {

// Closes the socket on every path out.
class Socket {
 public:
  explicit Socket(int fd) : fd_(fd) {}
  ~Socket() {
    if (fd_ >= 0) ::close(fd_);
  }
  int fd() const { return fd_; }

 private:
  int fd_;
};

int RemainingMillis(absl::Time deadline) {
  const int64_t ms = absl::ToInt64Milliseconds(deadline - absl::Now());
  return ms < 0 ? 0 : static_cast<int>(ms);
}

}  // namespace

absl::StatusOr<HttpResponse> HttpGet(const std::string& host, int port, const std::string& path,
                                     absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  const std::string where = absl::StrCat("http://", host, ":", port, path);
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* resolved = nullptr;
  const std::string port_text = absl::StrCat(port);
  if (::getaddrinfo(host.c_str(), port_text.c_str(), &hints, &resolved) != 0 ||
      resolved == nullptr) {
    return absl::UnavailableError(absl::StrCat("cannot resolve ", host));
  }
  Socket socket(::socket(resolved->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (socket.fd() < 0) {
    ::freeaddrinfo(resolved);
    return absl::UnavailableError(absl::StrCat("socket: ", std::strerror(errno)));
  }
  int rc = ::connect(socket.fd(), resolved->ai_addr, resolved->ai_addrlen);
  ::freeaddrinfo(resolved);
  if (rc != 0 && errno != EINPROGRESS) {
    return absl::UnavailableError(absl::StrCat("GET ", where, ": ", std::strerror(errno)));
  }
  pollfd pfd{socket.fd(), POLLOUT, 0};
  if (::poll(&pfd, 1, RemainingMillis(deadline)) != 1) {
    return absl::UnavailableError(absl::StrCat("GET ", where, ": connect timed out"));
  }
  int error = 0;
  socklen_t len = sizeof(error);
  ::getsockopt(socket.fd(), SOL_SOCKET, SO_ERROR, &error, &len);
  if (error != 0) {
    return absl::UnavailableError(absl::StrCat("GET ", where, ": ", std::strerror(error)));
  }
  const std::string request =
      absl::StrCat("GET ", path, " HTTP/1.0\r\nHost: ", host, "\r\nConnection: close\r\n\r\n");
  size_t sent = 0;
  while (sent < request.size()) {
    pfd = {socket.fd(), POLLOUT, 0};
    if (::poll(&pfd, 1, RemainingMillis(deadline)) != 1) {
      return absl::UnavailableError(absl::StrCat("GET ", where, ": send timed out"));
    }
    const ssize_t n = ::send(socket.fd(), request.data() + sent, request.size() - sent,
                             MSG_NOSIGNAL);
    if (n < 0 && errno != EAGAIN && errno != EINTR) {
      return absl::UnavailableError(absl::StrCat("GET ", where, ": ", std::strerror(errno)));
    }
    if (n > 0) sent += static_cast<size_t>(n);
  }
  std::string raw;
  char buffer[1 << 14];
  while (true) {
    pfd = {socket.fd(), POLLIN, 0};
    if (::poll(&pfd, 1, RemainingMillis(deadline)) != 1) {
      return absl::UnavailableError(absl::StrCat("GET ", where, ": answer timed out"));
    }
    const ssize_t n = ::recv(socket.fd(), buffer, sizeof(buffer), 0);
    if (n == 0) break;
    if (n < 0) {
      if (errno == EAGAIN || errno == EINTR) continue;
      return absl::UnavailableError(absl::StrCat("GET ", where, ": ", std::strerror(errno)));
    }
    raw.append(buffer, static_cast<size_t>(n));
  }
  const size_t header_end = raw.find("\r\n\r\n");
  if (header_end == std::string::npos) {
    return absl::DataLossError(absl::StrCat("GET ", where, ": malformed HTTP answer"));
  }
  std::vector<std::string> status_line =
      absl::StrSplit(raw.substr(0, raw.find("\r\n")), ' ');
  HttpResponse response;
  if (status_line.size() < 2 || !absl::SimpleAtoi(status_line[1], &response.status_code)) {
    return absl::DataLossError(absl::StrCat("GET ", where, ": malformed status line"));
  }
  response.body = raw.substr(header_end + 4);
  return response;
}

}  // namespace nas
