#include "worker/progress_file.h"

#include "absl/strings/str_cat.h"
#include "common/file_util.h"

namespace nas::worker {

absl::Status ProgressFile::Update(absl::Time now) {
  absl::MutexLock lock(&mu_);
  if (now - last_written_ < min_interval_) return absl::OkStatus();
  absl::Status written = WriteFileAtomically(path_, absl::StrCat(absl::ToUnixSeconds(now), "\n"));
  if (written.ok()) last_written_ = now;
  return written;
}

}  // namespace nas::worker
