// A minimal blocking HTTP/1.0 GET, enough to read a process's /metrics
// (health checks of workers in `nasctl local`, and tests). Not a general client.
#ifndef NAS_COMMON_HTTP_CLIENT_H_
#define NAS_COMMON_HTTP_CLIENT_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace nas {

struct HttpResponse {
  int status_code = 0;
  std::string body;
};

// GET http://host:port/path. UNAVAILABLE when the connection fails or the
// answer does not arrive within `timeout`.
absl::StatusOr<HttpResponse> HttpGet(const std::string& host, int port, const std::string& path,
                                     absl::Duration timeout);

}  // namespace nas

#endif  // NAS_COMMON_HTTP_CLIENT_H_
