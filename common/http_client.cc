#include "common/http_client.h"

#include <curl/curl.h>

#include <algorithm>
#include <cstdint>
#include <memory>

#include "absl/base/call_once.h"
#include "absl/strings/str_cat.h"

namespace nas {
namespace {

struct CurlDeleter {
  void operator()(CURL* curl) const { curl_easy_cleanup(curl); }
};

size_t AppendBody(char* data, size_t size, size_t count, void* body) {
  static_cast<std::string*>(body)->append(data, size * count);
  return size * count;
}

}  // namespace

absl::StatusOr<HttpResponse> HttpGet(const std::string& host, int port, const std::string& path,
                                     absl::Duration timeout) {
  // curl_global_init is not thread-safe; curl_easy_init would call it lazily.
  static absl::once_flag init;
  absl::call_once(init, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
  const std::string bracketed = host.find(':') != std::string::npos ? absl::StrCat("[", host, "]") : host;
  const std::string url = absl::StrCat("http://", bracketed, ":", port, path);
  std::unique_ptr<CURL, CurlDeleter> curl(curl_easy_init());
  if (curl == nullptr) return absl::InternalError("curl_easy_init failed");
  HttpResponse response;
  char error[CURL_ERROR_SIZE] = {0};
  CURL* c = curl.get();
  curl_easy_setopt(c, CURLOPT_URL, url.c_str());
  curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http");
  curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
  // No SIGALRM for timeouts: the callers are multi-threaded.
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_TIMEOUT_MS,
                   static_cast<long>(std::max<int64_t>(1, absl::ToInt64Milliseconds(timeout))));
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, &AppendBody);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &response.body);
  curl_easy_setopt(c, CURLOPT_ERRORBUFFER, error);
  const CURLcode code = curl_easy_perform(c);
  if (code != CURLE_OK) {
    const std::string message =
        absl::StrCat("GET ", url, ": ", error[0] != '\0' ? error : curl_easy_strerror(code));
    if (code == CURLE_WEIRD_SERVER_REPLY || code == CURLE_UNSUPPORTED_PROTOCOL ||
        code == CURLE_BAD_CONTENT_ENCODING) {
      return absl::DataLossError(message);
    }
    return absl::UnavailableError(message);
  }
  long status = 0;
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
  response.status_code = static_cast<int>(status);
  return response;
}

}  // namespace nas
