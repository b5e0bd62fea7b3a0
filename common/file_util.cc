#include "common/file_util.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <limits.h>
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace nas {
namespace {

absl::Status ErrnoError(absl::string_view what, const std::string& path) {
  const int err = errno;
  std::string message = absl::StrCat(what, " ", path, ": ", std::strerror(err));
  if (err == ENOENT) return absl::NotFoundError(message);
  if (err == EACCES || err == EPERM) return absl::PermissionDeniedError(message);
  if (err == ENOSPC) return absl::ResourceExhaustedError(message);
  return absl::InternalError(message);
}

std::string Dirname(const std::string& path) {
  const size_t slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

}  // namespace

absl::Status WriteFileAtomically(const std::string& path, absl::string_view contents) {
  const std::string tmp = absl::StrCat(path, ".tmp.", ::getpid());
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return ErrnoError("cannot create", tmp);
  size_t written = 0;
  while (written < contents.size()) {
    const ssize_t n = ::write(fd, contents.data() + written, contents.size() - written);
    if (n < 0) {
      if (errno == EINTR) continue;
      absl::Status status = ErrnoError("cannot write", tmp);
      ::close(fd);
      ::unlink(tmp.c_str());
      return status;
    }
    written += static_cast<size_t>(n);
  }
  if (::fsync(fd) != 0) {
    absl::Status status = ErrnoError("cannot fsync", tmp);
    ::close(fd);
    ::unlink(tmp.c_str());
    return status;
  }
  ::close(fd);
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    absl::Status status = ErrnoError("cannot rename into", path);
    ::unlink(tmp.c_str());
    return status;
  }
  const std::string dir = Dirname(path);
  const int dir_fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir_fd >= 0) {
    ::fsync(dir_fd);
    ::close(dir_fd);
  }
  return absl::OkStatus();
}

namespace {

// Reads `fd` (then closes it) to its end, or to `max_bytes` + 1 bytes.
absl::StatusOr<std::string> ReadAndClose(int fd, const std::string& path, size_t max_bytes) {
  std::string contents;
  char buffer[1 << 16];
  while (contents.size() <= max_bytes) {
    const size_t want = std::min(sizeof(buffer), max_bytes - contents.size() + 1);
    const ssize_t n = ::read(fd, buffer, want);
    if (n < 0) {
      if (errno == EINTR) continue;
      absl::Status status = ErrnoError("cannot read", path);
      ::close(fd);
      return status;
    }
    if (n == 0) break;
    contents.append(buffer, static_cast<size_t>(n));
  }
  ::close(fd);
  return contents;
}

}  // namespace

absl::StatusOr<std::string> ReadFile(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return ErrnoError("cannot open", path);
  return ReadAndClose(fd, path, std::numeric_limits<size_t>::max() - 1);
}

namespace {

const char* KindOf(mode_t mode) {
  if (S_ISDIR(mode)) return "a directory";
  if (S_ISFIFO(mode)) return "a FIFO";
  if (S_ISCHR(mode)) return "a character device";
  if (S_ISBLK(mode)) return "a block device";
  if (S_ISSOCK(mode)) return "a socket";
  return "not a regular file";
}

std::string Size(size_t bytes) {
  if (bytes >= (1 << 20) && bytes % (1 << 20) == 0) return absl::StrCat(bytes >> 20, " MiB");
  if (bytes >= (1 << 10) && bytes % (1 << 10) == 0) return absl::StrCat(bytes >> 10, " KiB");
  return absl::StrCat(bytes, " bytes");
}

}  // namespace

namespace {

// Reads an opened file if it is a regular file of at most max_bytes; closes fd.
absl::StatusOr<std::string> ReadOpenedRegularFile(int fd, const std::string& path, size_t max_bytes) {
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    absl::Status status = ErrnoError("cannot stat", path);
    ::close(fd);
    return status;
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    return absl::FailedPreconditionError(
        absl::StrCat(path, " is ", KindOf(st.st_mode), "; only regular files are read"));
  }
  const auto too_large = [&](const std::string& size) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, " is ", size, "; the limit is ", Size(max_bytes)));
  };
  if (static_cast<uint64_t>(st.st_size) > max_bytes) {
    ::close(fd);
    return too_large(absl::StrCat(st.st_size, " bytes"));
  }
  absl::StatusOr<std::string> read = ReadAndClose(fd, path, max_bytes);
  if (!read.ok()) return read.status();
  std::string contents = *std::move(read);
  if (contents.size() > max_bytes) {
    return too_large(absl::StrCat("more than ", Size(max_bytes), " (it grew while read)"));
  }
  return contents;
}

// O_NONBLOCK: opening a FIFO without a writer would otherwise wait forever.
int OpenNonBlocking(const std::string& path) {
  return ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
}

// "/a/./b/../c" -> "/a/c"; empty for a relative path.
std::string Normalize(const std::string& path) {
  if (path.empty() || path[0] != '/') return "";
  std::vector<std::string> parts;
  size_t start = 1;
  while (start <= path.size()) {
    size_t slash = path.find('/', start);
    if (slash == std::string::npos) slash = path.size();
    const std::string part = path.substr(start, slash - start);
    if (part == "..") {
      if (!parts.empty()) parts.pop_back();
    } else if (!part.empty() && part != ".") {
      parts.push_back(part);
    }
    start = slash + 1;
  }
  std::string out;
  for (const std::string& part : parts) absl::StrAppend(&out, "/", part);
  return out.empty() ? "/" : out;
}

bool Under(const std::string& path, const std::string& root) {
  if (root.empty() || path.empty()) return false;
  if (root == "/") return true;
  return path == root || (path.size() > root.size() && path.compare(0, root.size(), root) == 0 &&
                          path[root.size()] == '/');
}

absl::Status OutsideRoots(const std::string& path, const std::vector<std::string>& roots) {
  return absl::PermissionDeniedError(absl::StrCat(path, " is not under the worker's --data_roots (",
                                                  absl::StrJoin(roots, ","), ")"));
}

}  // namespace

absl::StatusOr<std::string> ReadRegularFile(const std::string& path, size_t max_bytes) {
  const int fd = OpenNonBlocking(path);
  if (fd < 0) return ErrnoError("cannot open", path);
  return ReadOpenedRegularFile(fd, path, max_bytes);
}

absl::Status CheckUnderRoots(const std::string& path, const std::vector<std::string>& roots) {
  const std::string normal = Normalize(path);
  for (const std::string& root : roots) {
    if (Under(normal, Normalize(root))) return absl::OkStatus();
  }
  return OutsideRoots(path, roots);
}

absl::StatusOr<std::string> ReadFileUnderRoots(const std::string& path, const std::vector<std::string>& roots,
                                               size_t max_bytes) {
  if (absl::Status s = CheckUnderRoots(path, roots); !s.ok()) return s;
  const int fd = OpenNonBlocking(path);
  if (fd < 0) return ErrnoError("cannot open", path);
  // Where the opened file really is: a symlink under a root may lead out.
  char real[4096];
  const ssize_t n = ::readlink(absl::StrCat("/proc/self/fd/", fd).c_str(), real, sizeof(real) - 1);
  bool inside = false;
  if (n > 0) {
    const std::string opened(real, static_cast<size_t>(n));
    for (const std::string& root : roots) {
      char resolved[PATH_MAX];
      if (::realpath(root.c_str(), resolved) != nullptr && Under(opened, resolved)) inside = true;
    }
  }
  if (!inside) {
    ::close(fd);
    return OutsideRoots(path, roots);
  }
  return ReadOpenedRegularFile(fd, path, max_bytes);
}

absl::Status MakeDirectories(const std::string& path) {
  if (path.empty()) return absl::InvalidArgumentError("empty directory path");
  std::string partial;
  size_t start = 0;
  while (start <= path.size()) {
    size_t slash = path.find('/', start);
    if (slash == std::string::npos) slash = path.size();
    partial = path.substr(0, slash);
    if (!partial.empty() && ::mkdir(partial.c_str(), 0755) != 0 && errno != EEXIST) {
      return ErrnoError("cannot create directory", partial);
    }
    start = slash + 1;
  }
  struct stat st;
  if (::stat(path.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    return absl::FailedPreconditionError(absl::StrCat(path, " exists and is not a directory"));
  }
  return absl::OkStatus();
}

}  // namespace nas
