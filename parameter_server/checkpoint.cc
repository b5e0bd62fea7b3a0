#include "parameter_server/checkpoint.h"

#include <dirent.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cstring>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/file_util.h"
#include "common/status_macros.h"

namespace nas::ps {
namespace {

constexpr char kMagic[] = "NASCKPT1";
constexpr size_t kHeader = 8 + 8 + 4;

std::vector<std::string> ListDir(const std::string& dir) {
  std::vector<std::string> names;
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) return names;
  while (dirent* entry = ::readdir(d)) {
    const std::string name = entry->d_name;
    if (name != "." && name != "..") names.push_back(name);
  }
  ::closedir(d);
  std::sort(names.begin(), names.end());
  return names;
}

// Checkpoint files of a job, newest first.
std::vector<std::string> CheckpointFiles(const std::string& job_dir) {
  std::vector<std::string> files;
  for (const std::string& name : ListDir(job_dir)) {
    if (absl::StartsWith(name, "ckpt-") && absl::EndsWith(name, ".bin")) files.push_back(name);
  }
  std::reverse(files.begin(), files.end());
  return files;
}

}  // namespace

std::string EncodeCheckpoint(const v1::ShardCheckpoint& checkpoint) {
  const std::string payload = checkpoint.SerializeAsString();
  std::string out(kMagic, 8);
  const uint64_t length = payload.size();
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>((length >> (8 * i)) & 0xff));
  const uint32_t crc = static_cast<uint32_t>(
      ::crc32(0L, reinterpret_cast<const Bytef*>(payload.data()), static_cast<uInt>(payload.size())));
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>((crc >> (8 * i)) & 0xff));
  return out + payload;
}

absl::StatusOr<v1::ShardCheckpoint> DecodeCheckpoint(const std::string& bytes) {
  if (bytes.size() < kHeader || std::memcmp(bytes.data(), kMagic, 8) != 0) {
    return absl::DataLossError("not a checkpoint (bad magic or too short)");
  }
  uint64_t length = 0;
  for (int i = 0; i < 8; ++i) length |= static_cast<uint64_t>(static_cast<uint8_t>(bytes[8 + i])) << (8 * i);
  uint32_t crc = 0;
  for (int i = 0; i < 4; ++i) crc |= static_cast<uint32_t>(static_cast<uint8_t>(bytes[16 + i])) << (8 * i);
  if (bytes.size() - kHeader != length) {
    return absl::DataLossError(absl::StrCat("torn checkpoint: header says ", length,
                                            " payload bytes, file has ", bytes.size() - kHeader));
  }
  const uint32_t actual = static_cast<uint32_t>(
      ::crc32(0L, reinterpret_cast<const Bytef*>(bytes.data() + kHeader), static_cast<uInt>(length)));
  if (actual != crc) return absl::DataLossError("checkpoint checksum mismatch");
  v1::ShardCheckpoint checkpoint;
  if (!checkpoint.ParseFromArray(bytes.data() + kHeader, static_cast<int>(length))) {
    return absl::DataLossError("checkpoint payload does not parse");
  }
  return checkpoint;
}

absl::Status WriteCheckpoint(const std::string& dir, const v1::ShardCheckpoint& checkpoint,
                             int keep) {
  const std::string job_dir = absl::StrCat(dir, "/", checkpoint.job_id());
  RETURN_IF_ERROR(MakeDirectories(job_dir));
  const std::string path = absl::StrFormat("%s/ckpt-%020d.bin", job_dir, checkpoint.version());
  RETURN_IF_ERROR(WriteFileAtomically(path, EncodeCheckpoint(checkpoint)));
  std::vector<std::string> files = CheckpointFiles(job_dir);
  for (size_t i = static_cast<size_t>(std::max(keep, 1)); i < files.size(); ++i) {
    ::unlink(absl::StrCat(job_dir, "/", files[i]).c_str());
  }
  return absl::OkStatus();
}

absl::StatusOr<LoadedJobs> LoadCheckpoints(const std::string& dir) {
  LoadedJobs loaded;
  for (const std::string& job : ListDir(dir)) {
    const std::string job_dir = absl::StrCat(dir, "/", job);
    for (const std::string& name : ListDir(job_dir)) {
      if (absl::StartsWith(name, "ckpt-") && absl::StrContains(name, ".bin.tmp.")) {
        const std::string path = absl::StrCat(job_dir, "/", name);
        if (::unlink(path.c_str()) == 0) loaded.removed.push_back(path);
      }
    }
    std::vector<std::string> files = CheckpointFiles(job_dir);
    if (files.empty()) continue;
    LoadedCheckpoint found;
    bool ok = false;
    for (const std::string& file : files) {
      const std::string path = absl::StrCat(job_dir, "/", file);
      absl::StatusOr<std::string> bytes = ReadFile(path);
      absl::StatusOr<v1::ShardCheckpoint> checkpoint =
          bytes.ok() ? DecodeCheckpoint(*bytes) : absl::StatusOr<v1::ShardCheckpoint>(bytes.status());
      if (checkpoint.ok() && checkpoint->job_id() == job) {
        found.checkpoint = *std::move(checkpoint);
        ok = true;
        break;
      }
      found.skipped.push_back(absl::StrCat(
          path, ": ", checkpoint.ok() ? "belongs to another job" : checkpoint.status().message()));
    }
    if (ok) {
      loaded.jobs.push_back(std::move(found));
    } else {
      loaded.broken.insert(loaded.broken.end(), found.skipped.begin(), found.skipped.end());
    }
  }
  return loaded;
}

absl::Status DeleteCheckpoints(const std::string& dir, const std::string& job_id) {
  const std::string job_dir = absl::StrCat(dir, "/", job_id);
  for (const std::string& name : ListDir(job_dir)) {
    ::unlink(absl::StrCat(job_dir, "/", name).c_str());
  }
  ::rmdir(job_dir.c_str());
  return absl::OkStatus();
}

}  // namespace nas::ps
