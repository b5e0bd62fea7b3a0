// Small, careful file helpers: whole-file reads and crash-safe writes.
#ifndef NAS_COMMON_FILE_UTIL_H_
#define NAS_COMMON_FILE_UTIL_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace nas {

// Replaces `path` with `contents` so that after a crash at any moment the file
// holds either the old or the new contents, never a mix: writes a temporary
// file beside it, fsyncs it, renames it over `path` and fsyncs the directory.
absl::Status WriteFileAtomically(const std::string& path, absl::string_view contents);

absl::StatusOr<std::string> ReadFile(const std::string& path);

// Reads `path` only if it is a regular file of at most `max_bytes`, for files
// a user names (a job spec): a FIFO, a device (/dev/zero), a directory or a
// socket is FAILED_PRECONDITION naming its kind, without blocking (the file
// is opened non-blocking and checked with fstat before any read); a larger
// file, or one that grows past the cap while read, is INVALID_ARGUMENT naming
// the cap. Nothing beyond max_bytes + 1 bytes is ever held in memory.
absl::StatusOr<std::string> ReadRegularFile(const std::string& path, size_t max_bytes);

// ReadRegularFile for a path an untrusted job names, allowed only under one
// of `roots` (directories): the path must be absolute; one that is not under
// a root once "." and ".." are resolved, or whose opened file turns out to
// lie elsewhere (a symlink out of the roots), is PERMISSION_DENIED with the
// same message whether or not it exists, so nothing outside the roots can be
// probed. Errors name the path and the problem, never the file's bytes.
absl::StatusOr<std::string> ReadFileUnderRoots(const std::string& path, const std::vector<std::string>& roots,
                                               size_t max_bytes);

// The lexical part of that check ("." and ".." resolved, no file touched):
// OK or the same PERMISSION_DENIED.
absl::Status CheckUnderRoots(const std::string& path, const std::vector<std::string>& roots);

// mkdir -p. OK if it exists already.
absl::Status MakeDirectories(const std::string& path);

}  // namespace nas

#endif  // NAS_COMMON_FILE_UTIL_H_
