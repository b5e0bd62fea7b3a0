#include "worker/dataset.h"

#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <climits>
#include <cmath>
#include <cstring>
#include <map>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/mutex.h"
#include "common/file_util.h"
#include "worker/image_decode.h"
#include "worker/npy.h"

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

namespace {

// The largest decoded dataset (count x channels x height x width bytes).
constexpr uint64_t kMaxPixelBytes = uint64_t{2} << 30;
// The largest single image file of an image folder.
constexpr size_t kMaxImageFileBytes = size_t{64} << 20;

constexpr char kDataDir[] = "evaluator.train.data_dir";

// The entries of a directory (no "." or ".."; hidden names skipped), sorted,
// with whether each is a directory (following symlinks).
struct Entry {
  std::string name;
  bool directory = false;
};
absl::StatusOr<std::vector<Entry>> ListDirectory(const std::string& dir) {
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat(kDataDir, ": cannot list ", dir, ": ", std::strerror(errno)));
  }
  std::vector<Entry> entries;
  while (dirent* e = ::readdir(d)) {
    if (e->d_name[0] == '.') continue;
    Entry entry{e->d_name};
    struct stat st;
    entry.directory = ::stat((dir + "/" + entry.name).c_str(), &st) == 0 && S_ISDIR(st.st_mode);
    entries.push_back(std::move(entry));
  }
  ::closedir(d);
  std::sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) { return a.name < b.name; });
  return entries;
}

bool IsImageName(const std::string& name) {
  const std::string lower = absl::AsciiStrToLower(name);
  return absl::EndsWith(lower, ".png") || absl::EndsWith(lower, ".jpg") || absl::EndsWith(lower, ".jpeg");
}

// A directory the job names: lexically under a root, then (symlinks
// resolved) still under one, then existing. Nothing outside the roots is
// probed or listed.
absl::StatusOr<std::string> CheckDataDirectory(const std::string& dir, const std::vector<std::string>& roots) {
  if (dir.empty()) return absl::InvalidArgumentError(absl::StrCat(kDataDir, ": must name the dataset's directory"));
  if (absl::Status s = CheckUnderRoots(dir, roots); !s.ok()) return s;
  char resolved[PATH_MAX];
  if (::realpath(dir.c_str(), resolved) == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat(kDataDir, ": ", dir, ": ", std::strerror(errno)));
  }
  if (absl::Status s = CheckUnderRoots(resolved, roots); !s.ok()) return s;
  struct stat st;
  if (::stat(resolved, &st) != 0 || !S_ISDIR(st.st_mode)) {
    return absl::InvalidArgumentError(absl::StrCat(kDataDir, ": ", dir, " is not a directory"));
  }
  return std::string(resolved);
}

}  // namespace

absl::StatusOr<ImageSet> LoadImageFolder(const std::string& dir, const ImageFolderOptions& options,
                                         const std::vector<std::string>& roots) {
  if (options.channels != 1 && options.channels != 3) {
    return absl::InvalidArgumentError("evaluator.train.color: must be gray or rgb");
  }
  if ((options.height == 0) != (options.width == 0) || options.height < 0 || options.width < 0) {
    return absl::InvalidArgumentError(
        "evaluator.train.image_height, image_width: set both (> 0) or neither");
  }
  absl::StatusOr<std::string> base = CheckDataDirectory(dir, roots);
  if (!base.ok()) return base.status();
  absl::StatusOr<std::vector<Entry>> top = ListDirectory(*base);
  if (!top.ok()) return top.status();
  ImageSet set;
  set.channels = options.channels;
  set.height = options.height;
  set.width = options.width;
  std::string first_file;  // the image that fixed the size when not resizing
  for (const Entry& class_entry : *top) {
    if (!class_entry.directory) continue;  // a README beside the classes
    const std::string class_dir = *base + "/" + class_entry.name;
    if (set.class_names.size() == kMaxClasses) {
      return absl::InvalidArgumentError(
          absl::StrCat(kDataDir, ": ", dir, " has more than ", kMaxClasses, " class directories"));
    }
    const int label = static_cast<int>(set.class_names.size());
    set.class_names.push_back(class_entry.name);
    absl::StatusOr<std::vector<Entry>> files = ListDirectory(class_dir);
    if (!files.ok()) return files.status();
    int images = 0;
    for (const Entry& file : *files) {
      if (file.directory || !IsImageName(file.name)) continue;
      const std::string path = class_dir + "/" + file.name;
      absl::StatusOr<std::string> bytes = ReadFileUnderRoots(path, roots, kMaxImageFileBytes);
      if (!bytes.ok()) return bytes.status();
      absl::StatusOr<DecodedImage> image = DecodeImage(*bytes, path, options.channels);
      if (!image.ok()) return image.status();
      if (set.height == 0) {
        set.height = image->height;
        set.width = image->width;
        first_file = path;
      }
      if (options.height == 0 && (image->height != set.height || image->width != set.width)) {
        return absl::InvalidArgumentError(absl::StrCat(
            path, ": is ", image->width, "x", image->height, " but ", first_file, " is ", set.width, "x",
            set.height, " (set evaluator.train.image_height and image_width to resize them all)"));
      }
      if ((uint64_t{static_cast<uint64_t>(set.count)} + 1) * set.channels * set.height * set.width >
          kMaxPixelBytes) {
        return absl::ResourceExhaustedError(
            absl::StrCat(kDataDir, ": ", dir, " holds more than 2 GiB of pixels at the requested size"));
      }
      std::vector<uint8_t> planes = ResizeToPlanes(*image, set.height, set.width);
      set.pixels.insert(set.pixels.end(), planes.begin(), planes.end());
      set.labels.push_back(static_cast<uint8_t>(label));
      ++set.count;
      ++images;
    }
    if (images == 0) {
      return absl::InvalidArgumentError(absl::StrCat(kDataDir, ": class '", class_entry.name, "' (", class_dir,
                                                     ") has no .png, .jpg or .jpeg images"));
    }
  }
  if (set.class_names.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(kDataDir, ": ", dir, " has no class subdirectories (expected ",
                                                   dir, "/<class>/*.png|*.jpg|*.jpeg)"));
  }
  set.classes = static_cast<int>(set.class_names.size());
  return set;
}

absl::StatusOr<ImageSet> ParseNumpy(const std::string& images_npy, const std::string& labels_npy,
                                    const std::string& images_name, const std::string& labels_name) {
  absl::StatusOr<NpyArray> images = ParseNpy(images_npy, images_name);
  if (!images.ok()) return images.status();
  absl::StatusOr<NpyArray> labels = ParseNpy(labels_npy, labels_name);
  if (!labels.ok()) return labels.status();
  auto shape_text = [](const std::vector<int64_t>& shape) {
    return absl::StrCat("(", absl::StrJoin(shape, ", "), shape.size() == 1 ? ",)" : ")");
  };
  if (images->descr != "|u1" && images->descr != "<f4") {
    return absl::InvalidArgumentError(absl::StrCat(images_name, ": images of dtype '", images->descr,
                                                   "' are not supported (uint8 0..255 or float32 0..1)"));
  }
  const std::vector<int64_t>& shape = images->shape;
  if ((shape.size() != 3 && shape.size() != 4) || shape[0] < 1 || shape[1] < 1 || shape[2] < 1 ||
      (shape.size() == 4 && (shape[3] < 1 || shape[3] > 64)) || shape[1] > 4096 || shape[2] > 4096) {
    return absl::InvalidArgumentError(absl::StrCat(
        images_name, ": images of shape ", shape_text(shape),
        " (need N x H x W or N x H x W x C, N >= 1, sides up to 4096, C up to 64)"));
  }
  ImageSet set;
  set.count = static_cast<int>(shape[0]);
  set.height = static_cast<int>(shape[1]);
  set.width = static_cast<int>(shape[2]);
  set.channels = shape.size() == 4 ? static_cast<int>(shape[3]) : 1;
  const int item = NpyItemSize(labels->descr);
  const bool integer = labels->descr != "<f2" && labels->descr != "<f4" && labels->descr != "<f8" &&
                       labels->descr != "|b1";
  if (!integer) {
    return absl::InvalidArgumentError(absl::StrCat(labels_name, ": labels of dtype '", labels->descr,
                                                   "' are not supported (an integer dtype)"));
  }
  if (labels->shape.empty() || labels->shape.size() > 2 ||
      (labels->shape.size() == 2 && labels->shape[1] != 1)) {
    return absl::InvalidArgumentError(
        absl::StrCat(labels_name, ": labels of shape ", shape_text(labels->shape), " (need N or N x 1)"));
  }
  if (labels->shape[0] != shape[0]) {
    return absl::InvalidArgumentError(absl::StrCat(labels_name, ": ", labels->shape[0], " labels for ",
                                                   images_name, "'s ", shape[0], " images"));
  }
  const bool is_signed = labels->descr[1] == 'i';
  int max_label = 0;
  for (int i = 0; i < set.count; ++i) {
    int64_t v = 0;
    const char* p = labels->data.data() + int64_t{i} * item;
    uint64_t raw = 0;
    for (int b = item - 1; b >= 0; --b) raw = (raw << 8) | static_cast<uint8_t>(p[b]);
    if (is_signed && item < 8 && (raw >> (item * 8 - 1)) & 1) raw |= ~uint64_t{0} << (item * 8);
    v = static_cast<int64_t>(raw);
    if (v < 0 || v >= kMaxClasses || (!is_signed && raw >= kMaxClasses)) {
      return absl::InvalidArgumentError(absl::StrCat(labels_name, ": label ", i, " is ",
                                                     is_signed ? absl::StrCat(v) : absl::StrCat(raw),
                                                     ", not in 0..", kMaxClasses - 1));
    }
    max_label = std::max(max_label, static_cast<int>(v));
    set.labels.push_back(static_cast<uint8_t>(v));
  }
  set.classes = max_label + 1;
  // Channel-last to channel-major.
  const int64_t plane = int64_t{set.height} * set.width;
  const int64_t per_image = plane * set.channels;
  if (static_cast<uint64_t>(per_image) * set.count > kMaxPixelBytes) {
    return absl::ResourceExhaustedError(absl::StrCat(images_name, ": more than 2 GiB of pixels"));
  }
  set.pixels.resize(per_image * set.count);
  const bool floats = images->descr == "<f4";
  for (int64_t i = 0; i < set.count; ++i) {
    for (int64_t p = 0; p < plane; ++p) {
      for (int c = 0; c < set.channels; ++c) {
        const int64_t src = i * per_image + p * set.channels + c;
        uint8_t value;
        if (floats) {
          float f;
          std::memcpy(&f, images->data.data() + src * 4, 4);
          if (!(f >= 0.f && f <= 1.f)) {
            return absl::InvalidArgumentError(absl::StrCat(images_name, ": image ", i, " has the value ", f,
                                                           " (float32 images must be in 0..1)"));
          }
          value = static_cast<uint8_t>(std::lround(f * 255.f));
        } else {
          value = static_cast<uint8_t>(images->data[src]);
        }
        set.pixels[i * per_image + c * plane + p] = value;
      }
    }
  }
  return set;
}

absl::StatusOr<ImageSet> LoadNumpy(const std::string& path, const std::vector<std::string>& roots) {
  if (path.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(kDataDir, ": must name a directory with images.npy and labels.npy, or an .npz file"));
  }
  if (absl::EndsWith(path, ".npz")) {
    absl::StatusOr<std::string> bytes = ReadFileUnderRoots(path, roots, kMaxDatasetFileBytes);
    if (!bytes.ok()) return bytes.status();
    absl::StatusOr<std::map<std::string, std::string>> members = ReadNpzMembers(*bytes, path, kMaxFileBytes);
    if (!members.ok()) return members.status();
    for (const auto& [x, y] : {std::pair<std::string, std::string>{"images", "labels"}, {"x_train", "y_train"}}) {
      auto images = members->find(x);
      auto labels = members->find(y);
      if (images != members->end() && labels != members->end()) {
        return ParseNumpy(images->second, labels->second, path + ":" + x, path + ":" + y);
      }
    }
    std::vector<std::string> names;
    for (const auto& [name, unused] : *members) names.push_back(name);
    return absl::InvalidArgumentError(absl::StrCat(path, ": holds [", absl::StrJoin(names, ", "),
                                                   "], not images and labels or x_train and y_train"));
  }
  absl::StatusOr<std::string> base = CheckDataDirectory(path, roots);
  if (!base.ok()) return base.status();
  absl::StatusOr<std::string> images = ReadFileUnderRoots(*base + "/images.npy", roots, kMaxDatasetFileBytes);
  if (!images.ok()) return images.status();
  absl::StatusOr<std::string> labels = ReadFileUnderRoots(*base + "/labels.npy", roots, kMaxDatasetFileBytes);
  if (!labels.ok()) return labels.status();
  return ParseNumpy(*images, *labels, *base + "/images.npy", *base + "/labels.npy");
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

namespace {

enum class Split { kTrain, kTest };

// Both splits, loaded once per process and cached.
absl::StatusOr<std::shared_ptr<const ImageSet>> LoadSplit(const std::string& dataset, const std::string& dir,
                                                          const std::vector<std::string>& roots,
                                                          const ImageFolderOptions& folder, Split split) {
  static absl::Mutex mu(absl::kConstInit);
  static auto* cache ABSL_PT_GUARDED_BY(mu) = new std::map<std::string, std::shared_ptr<const ImageSet>>();
  const bool test = split == Split::kTest;
  if (test && dataset != "fashion_mnist" && dataset != "mnist" && dataset != "cifar10") {
    return absl::InvalidArgumentError(absl::StrCat("evaluator.train.test_accuracy: dataset '", dataset,
                                                   "' has no test split (fashion_mnist, mnist and cifar10 have)"));
  }
  const std::string key = absl::StrCat(
      test ? "test|" : "train|",
      dataset == "image_folder"
          ? absl::StrCat(dataset, "|", dir, "|", folder.height, "x", folder.width, "x", folder.channels)
          : dataset + "|" + dir);
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
    const std::string prefix = base + (test ? "/t10k" : "/train");
    set = LoadIdx(WithGz(prefix + "-images-idx3-ubyte"), WithGz(prefix + "-labels-idx1-ubyte"), roots);
  } else if (dataset == "cifar10") {
    std::vector<std::string> paths;
    if (test) {
      paths.push_back(dir + "/test_batch.bin");
    } else {
      for (int i = 1; i <= 5; ++i) paths.push_back(absl::StrCat(dir, "/data_batch_", i, ".bin"));
    }
    set = LoadCifar(paths, roots);
  } else if (dataset == "image_folder") {
    set = LoadImageFolder(dir, folder, roots);
  } else if (dataset == "numpy") {
    set = LoadNumpy(dir, roots);
  } else {
    return absl::InvalidArgumentError(absl::StrCat("unknown dataset '", dataset, "'"));
  }
  if (!set.ok()) return set.status();
  auto shared = std::make_shared<const ImageSet>(*std::move(set));
  (*cache)[key] = shared;
  return shared;
}

}  // namespace

absl::StatusOr<std::shared_ptr<const ImageSet>> LoadTrainingSet(const std::string& dataset,
                                                                const std::string& dir,
                                                                const std::vector<std::string>& roots,
                                                                const ImageFolderOptions& folder) {
  return LoadSplit(dataset, dir, roots, folder, Split::kTrain);
}

absl::StatusOr<std::shared_ptr<const ImageSet>> LoadTestSet(const std::string& dataset, const std::string& dir,
                                                            const std::vector<std::string>& roots) {
  return LoadSplit(dataset, dir, roots, ImageFolderOptions(), Split::kTest);
}

}  // namespace nas::worker
