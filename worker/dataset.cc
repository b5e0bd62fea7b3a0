#include "worker/dataset.h"

#include <unistd.h>
#include <zlib.h>

#include <map>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "common/file_util.h"

namespace nas::worker {
namespace {

constexpr size_t kMaxFileBytes = size_t{2} << 30;

uint32_t BigEndian32(const std::string& bytes, size_t offset) {
  return (static_cast<uint32_t>(static_cast<uint8_t>(bytes[offset])) << 24) |
         (static_cast<uint32_t>(static_cast<uint8_t>(bytes[offset + 1])) << 16) |
         (static_cast<uint32_t>(static_cast<uint8_t>(bytes[offset + 2])) << 8) |
         static_cast<uint32_t>(static_cast<uint8_t>(bytes[offset + 3]));
}

// The largest dataset file read (CIFAR-10's batches are 30 MiB each).
constexpr size_t kMaxDatasetFileBytes = size_t{1} << 30;

bool Exists(const std::string& path) { return ::access(path.c_str(), R_OK) == 0; }

}  // namespace

std::string WithGz(const std::string& path) {
  if (Exists(path)) return path;
  if (Exists(path + ".gz")) return path + ".gz";
  return path;
}

absl::StatusOr<std::string> ReadMaybeGzipped(const std::string& path, const std::vector<std::string>& roots) {
  absl::StatusOr<std::string> raw = ReadFileUnderRoots(path, roots, kMaxDatasetFileBytes);
  if (!raw.ok()) return raw.status();
  if (raw->size() < 2 || static_cast<uint8_t>((*raw)[0]) != 0x1f ||
      static_cast<uint8_t>((*raw)[1]) != 0x8b) {
    return raw;
  }
  z_stream stream{};
  if (inflateInit2(&stream, 16 + MAX_WBITS) != Z_OK) {
    return absl::InternalError(absl::StrCat(path, ": cannot start gunzip"));
  }
  std::string out;
  stream.next_in = reinterpret_cast<Bytef*>(raw->data());
  stream.avail_in = static_cast<uInt>(raw->size());
  char buffer[1 << 16];
  int rc = Z_OK;
  while (rc != Z_STREAM_END) {
    stream.next_out = reinterpret_cast<Bytef*>(buffer);
    stream.avail_out = sizeof(buffer);
    rc = inflate(&stream, Z_NO_FLUSH);
    if (rc != Z_OK && rc != Z_STREAM_END) {
      inflateEnd(&stream);
      return absl::DataLossError(absl::StrCat(path, ": corrupt or truncated gzip data"));
    }
    out.append(buffer, sizeof(buffer) - stream.avail_out);
    if (out.size() > kMaxFileBytes) {
      inflateEnd(&stream);
      return absl::ResourceExhaustedError(absl::StrCat(path, ": larger than 2 GiB unpacked"));
    }
    if (rc == Z_OK && stream.avail_in == 0 && stream.avail_out != 0) {
      inflateEnd(&stream);
      return absl::DataLossError(absl::StrCat(path, ": gzip data ends early (truncated file)"));
    }
  }
  inflateEnd(&stream);
  return out;
}

absl::StatusOr<ImageSet> ParseIdx(const std::string& images, const std::string& labels,
                                  const std::string& images_name, const std::string& labels_name) {
  if (images.size() < 16 || BigEndian32(images, 0) != 0x00000803) {
    return absl::DataLossError(
        absl::StrCat(images_name, ": not an IDX image file (needs magic 0x00000803 and a 16-byte header)"));
  }
  if (labels.size() < 8 || BigEndian32(labels, 0) != 0x00000801) {
    return absl::DataLossError(
        absl::StrCat(labels_name, ": not an IDX label file (needs magic 0x00000801 and an 8-byte header)"));
  }
  ImageSet set;
  const uint64_t n = BigEndian32(images, 4);
  const uint64_t h = BigEndian32(images, 8);
  const uint64_t w = BigEndian32(images, 12);
  if (h == 0 || w == 0 || h > 4096 || w > 4096 || n > 100'000'000) {
    return absl::DataLossError(absl::StrCat(images_name, ": implausible dimensions in the header"));
  }
  if (images.size() - 16 != n * h * w) {
    return absl::DataLossError(absl::StrCat(images_name, ": the header's image count and size do not match the ",
                                            images.size(), "-byte file (truncated?)"));
  }
  if (BigEndian32(labels, 4) != n || labels.size() - 8 != n) {
    return absl::DataLossError(absl::StrCat(labels_name, ": has ", labels.size() - 8,
                                            " labels, not its header's count or ", images_name, "'s ", n,
                                            " images"));
  }
  set.count = static_cast<int>(n);
  set.channels = 1;
  set.height = static_cast<int>(h);
  set.width = static_cast<int>(w);
  set.pixels.assign(images.begin() + 16, images.end());
  set.labels.assign(labels.begin() + 8, labels.end());
  for (size_t i = 0; i < set.labels.size(); ++i) {
    if (set.labels[i] >= 10) {
      return absl::DataLossError(absl::StrCat(labels_name, ": the label of image ", i, " is not in 0..9"));
    }
  }
  return set;
}

absl::StatusOr<ImageSet> LoadIdx(const std::string& images_path, const std::string& labels_path,
                                 const std::vector<std::string>& roots) {
  absl::StatusOr<std::string> images = ReadMaybeGzipped(images_path, roots);
  if (!images.ok()) return images.status();
  absl::StatusOr<std::string> labels = ReadMaybeGzipped(labels_path, roots);
  if (!labels.ok()) return labels.status();
  return ParseIdx(*images, *labels, images_path, labels_path);
}

absl::StatusOr<ImageSet> ParseCifar(const std::string& bytes, const std::string& name) {
  constexpr size_t kRecord = 1 + 3 * 32 * 32;
  if (bytes.empty() || bytes.size() % kRecord != 0) {
    return absl::DataLossError(absl::StrCat(name, ": ", bytes.size(),
                                            " bytes is not a whole number of 3073-byte CIFAR-10 records "
                                            "(truncated or not CIFAR-10 binary)"));
  }
  ImageSet set;
  set.count = static_cast<int>(bytes.size() / kRecord);
  set.channels = 3;
  set.height = 32;
  set.width = 32;
  set.pixels.reserve(set.count * (kRecord - 1));
  for (int i = 0; i < set.count; ++i) {
    const uint8_t label = static_cast<uint8_t>(bytes[i * kRecord]);
    if (label >= 10) {
      return absl::DataLossError(absl::StrCat(name, ": record ", i, " has a label not in 0..9"));
    }
    set.labels.push_back(label);
    set.pixels.insert(set.pixels.end(), bytes.begin() + i * kRecord + 1,
                      bytes.begin() + (i + 1) * kRecord);
  }
  return set;
}

absl::StatusOr<ImageSet> LoadCifar(const std::vector<std::string>& paths, const std::vector<std::string>& roots) {
  ImageSet all;
  for (const std::string& path : paths) {
    absl::StatusOr<std::string> bytes = ReadFileUnderRoots(path, roots, kMaxDatasetFileBytes);
    if (!bytes.ok()) return bytes.status();
    absl::StatusOr<ImageSet> part = ParseCifar(*bytes, path);
    if (!part.ok()) return part.status();
    all.channels = 3;
    all.height = 32;
    all.width = 32;
    all.count += part->count;
    all.pixels.insert(all.pixels.end(), part->pixels.begin(), part->pixels.end());
    all.labels.insert(all.labels.end(), part->labels.begin(), part->labels.end());
  }
  return all;
}

absl::StatusOr<std::shared_ptr<const ImageSet>> LoadTrainingSet(const std::string& dataset,
                                                                const std::string& dir,
                                                                const std::vector<std::string>& roots) {
  static absl::Mutex mu(absl::kConstInit);
  static auto* cache ABSL_PT_GUARDED_BY(mu) = new std::map<std::string, std::shared_ptr<const ImageSet>>();
  const std::string key = dataset + "|" + dir;
  absl::MutexLock lock(&mu);
  auto it = cache->find(key);
  if (it != cache->end()) return it->second;
  absl::StatusOr<ImageSet> set;
  if (dataset == "fashion_mnist" || dataset == "mnist") {
    std::string base = dir;
    if (base.empty()) {
      if (dataset == "mnist") {
        return absl::InvalidArgumentError("evaluator.train.data_dir: must name the MNIST directory");
      }
      base = "/usr/share/datasets/fashion-mnist";
    }
    // Checked before WithGz looks for files, so nothing outside is probed.
    if (absl::Status s = CheckUnderRoots(base, roots); !s.ok()) return s;
    set = LoadIdx(WithGz(base + "/train-images-idx3-ubyte"), WithGz(base + "/train-labels-idx1-ubyte"), roots);
  } else if (dataset == "cifar10") {
    std::vector<std::string> paths;
    for (int i = 1; i <= 5; ++i) paths.push_back(absl::StrCat(dir, "/data_batch_", i, ".bin"));
    set = LoadCifar(paths, roots);
  } else {
    return absl::InvalidArgumentError(absl::StrCat("unknown dataset '", dataset, "'"));
  }
  if (!set.ok()) return set.status();
  auto shared = std::make_shared<const ImageSet>(*std::move(set));
  (*cache)[key] = shared;
  return shared;
}

}  // namespace nas::worker
