// Small, careful file helpers: whole-file reads and crash-safe writes.
#ifndef NAS_COMMON_FILE_UTIL_H_
#define NAS_COMMON_FILE_UTIL_H_

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace nas {

// Replaces `path` with `contents` so that after a crash at any moment the file
// holds either the old or the new contents, never a mix: writes a temporary
// file beside it, fsyncs it, renames it over `path` and fsyncs the directory.
absl::Status WriteFileAtomically(const std::string& path, absl::string_view contents);

absl::StatusOr<std::string> ReadFile(const std::string& path);

// mkdir -p. OK if it exists already.
absl::Status MakeDirectories(const std::string& path);

}  // namespace nas

#endif  // NAS_COMMON_FILE_UTIL_H_
