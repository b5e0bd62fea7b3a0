// Image datasets for child training, parsed without LibTorch: IDX files
// (MNIST, Fashion-MNIST; raw or gzipped) and CIFAR-10 binary batches. A
// missing, truncated or malformed file is an error naming the file and the
// problem, never a crash.
#ifndef NAS_WORKER_DATASET_H_
#define NAS_WORKER_DATASET_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace nas::worker {

// N images of C x H x W bytes (channel-major within an image) and N labels.
struct ImageSet {
  int count = 0;
  int channels = 0;
  int height = 0;
  int width = 0;
  int classes = 10;
  std::vector<uint8_t> pixels;
  std::vector<uint8_t> labels;
};

// Reads a whole file, gunzipping it when it starts with the gzip magic. Files
// are read only under `roots`, regular files of at most 1 GiB
// (common/file_util.h ReadFileUnderRoots; {"/"} allows any path); errors
// name the file and the problem, never its bytes.
absl::StatusOr<std::string> ReadMaybeGzipped(const std::string& path,
                                             const std::vector<std::string>& roots = {"/"});

// path, or path + ".gz" if only that exists (check the directory against the
// roots first: this probes the file system).
std::string WithGz(const std::string& path);

// Parses an IDX image file (magic 0x00000803) and label file (0x00000801).
absl::StatusOr<ImageSet> ParseIdx(const std::string& images, const std::string& labels,
                                  const std::string& images_name, const std::string& labels_name);
absl::StatusOr<ImageSet> LoadIdx(const std::string& images_path, const std::string& labels_path,
                                 const std::vector<std::string>& roots = {"/"});

// Parses CIFAR-10 binary records: 1 label byte + 3072 pixel bytes each.
absl::StatusOr<ImageSet> ParseCifar(const std::string& bytes, const std::string& name);
absl::StatusOr<ImageSet> LoadCifar(const std::vector<std::string>& paths,
                                   const std::vector<std::string>& roots = {"/"});

// The training set of a named dataset: "fashion_mnist" and "mnist" read
// DIR/train-images-idx3-ubyte[.gz] and DIR/train-labels-idx1-ubyte[.gz];
// "cifar10" reads DIR/data_batch_1.bin .. data_batch_5.bin. An empty dir is
// the dataset's default (/usr/share/datasets/fashion-mnist for
// fashion_mnist). Read only under `roots` (the worker's --data_roots); loaded
// once per process and cached.
absl::StatusOr<std::shared_ptr<const ImageSet>> LoadTrainingSet(const std::string& dataset,
                                                                const std::string& dir,
                                                                const std::vector<std::string>& roots);

}  // namespace nas::worker

#endif  // NAS_WORKER_DATASET_H_
