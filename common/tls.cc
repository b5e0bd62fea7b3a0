#include "common/tls.h"

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/file_util.h"

namespace nas {

absl::StatusOr<std::string> ReadPemFile(const std::string& flag, const std::string& path,
                                        PemKind kind) {
  absl::StatusOr<std::string> contents = ReadFile(path);
  if (!contents.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat(flag, ": ", contents.status().message()));
  }
  const bool matches = kind == PemKind::kCertificate
                           ? absl::StrContains(*contents, "-----BEGIN CERTIFICATE-----")
                           : absl::StrContains(*contents, "PRIVATE KEY-----");
  if (!matches) {
    return absl::InvalidArgumentError(absl::StrCat(
        flag, ": '", path, "' is not a PEM ",
        kind == PemKind::kCertificate ? "certificate (no '-----BEGIN CERTIFICATE-----')"
                                      : "private key (no '-----BEGIN ... PRIVATE KEY-----')"));
  }
  return contents;
}

}  // namespace nas
