// A blocking HTTP GET (libcurl), enough to read a process's /metrics (health
// checks of workers in `nasctl local`, and tests). Plain http:// only.
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

// GET http://host:port/path (no proxy, whatever the environment says).
// UNAVAILABLE when the connection fails or the whole answer does not arrive
// within `timeout`; DATA_LOSS when the answer is not HTTP. Any status code
// is a response (status_code says which). Thread-safe.
absl::StatusOr<HttpResponse> HttpGet(const std::string& host, int port, const std::string& path,
                                     absl::Duration timeout);

}  // namespace nas

#endif  // NAS_COMMON_HTTP_CLIENT_H_
