// Reading the PEM files behind the --tls_* flags. Every error names the flag
// (or environment variable) the path came from, so a misconfigured process
// says which setting to fix. Used by the server scaffold (common/process.h)
// and the client channels (common/channel.h).
#ifndef NAS_COMMON_TLS_H_
#define NAS_COMMON_TLS_H_

#include <string>

#include "absl/status/statusor.h"

namespace nas {

// What a PEM file must hold: a quick check that the right file was named
// (a key given as a certificate, an empty file), not a full X.509 parse.
enum class PemKind {
  kCertificate,  // "-----BEGIN CERTIFICATE-----": a chain or CA roots.
  kPrivateKey,   // "-----BEGIN ... PRIVATE KEY-----".
};

// Reads `path`, the value of `flag` (e.g. "--tls_cert"). INVALID_ARGUMENT
// naming `flag` when the file is missing, unreadable, empty or not a PEM
// `kind`; the message never quotes the file's contents.
absl::StatusOr<std::string> ReadPemFile(const std::string& flag, const std::string& path,
                                        PemKind kind);

}  // namespace nas

#endif  // NAS_COMMON_TLS_H_
