// Image datasets for child training, parsed without LibTorch: IDX files
// (MNIST, Fashion-MNIST; raw or gzipped), CIFAR-10 binary batches, an image
// folder (DIR/<class>/*.png|*.jpg|*.jpeg) and NumPy arrays (.npy/.npz). A
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
  // Labels are in 0..classes-1: 10 for the IDX and CIFAR-10 sets, from the
  // data for the others.
  int classes = 10;
  std::vector<uint8_t> pixels;
  std::vector<uint8_t> labels;
  // image_folder: the class directories' names, label i = class_names[i].
  std::vector<std::string> class_names;
};

// The most classes a dataset may have (labels are bytes).
inline constexpr int kMaxClasses = 256;

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

// The image_folder dataset: every subdirectory of `dir` (sorted by name,
// hidden ones skipped) is a class, its *.png, *.jpg and *.jpeg files (any
// case) its images, decoded to `channels` 1 (gray) or 3 (RGB) and resized
// to height x width; height = width = 0 keeps the images' own size, which
// must then be the same for all. Errors name evaluator.train.data_dir for a
// missing directory, no classes or an empty class, and the file for an
// unreadable or (unresized) odd-sized image.
struct ImageFolderOptions {
  int height = 0;
  int width = 0;
  int channels = 3;
};
absl::StatusOr<ImageSet> LoadImageFolder(const std::string& dir, const ImageFolderOptions& options,
                                         const std::vector<std::string>& roots = {"/"});

// The numpy dataset from parsed .npy files: images N x H x W (one channel)
// or N x H x W x C, uint8 (0..255) or float32 (0..1); labels N (or N x 1) of
// an integer dtype in 0..kMaxClasses-1; classes = the largest label + 1.
// Errors name the file and the problem (dtype, shape, count mismatch, value).
absl::StatusOr<ImageSet> ParseNumpy(const std::string& images_npy, const std::string& labels_npy,
                                    const std::string& images_name, const std::string& labels_name);
// `path` is a directory holding images.npy and labels.npy, or an .npz file
// holding images and labels, or x_train and y_train.
absl::StatusOr<ImageSet> LoadNumpy(const std::string& path, const std::vector<std::string>& roots = {"/"});

// The training set of a named dataset: "fashion_mnist" and "mnist" read
// DIR/train-images-idx3-ubyte[.gz] and DIR/train-labels-idx1-ubyte[.gz];
// "cifar10" reads DIR/data_batch_1.bin .. data_batch_5.bin; "image_folder"
// LoadImageFolder(DIR, folder) and "numpy" LoadNumpy(DIR). An empty dir is
// the dataset's default (/usr/share/datasets/fashion-mnist for
// fashion_mnist). Read only under `roots` (the worker's --data_roots); loaded
// once per process and cached.
absl::StatusOr<std::shared_ptr<const ImageSet>> LoadTrainingSet(const std::string& dataset,
                                                                const std::string& dir,
                                                                const std::vector<std::string>& roots,
                                                                const ImageFolderOptions& folder = {});

// The test split of fashion_mnist / mnist (DIR/t10k-images-idx3-ubyte[.gz]
// and its labels) or cifar10 (DIR/test_batch.bin), which training never
// sees (evaluator.train.test_accuracy); INVALID_ARGUMENT for datasets without
// one. Cached like the training set.
absl::StatusOr<std::shared_ptr<const ImageSet>> LoadTestSet(const std::string& dataset, const std::string& dir,
                                                            const std::vector<std::string>& roots);

}  // namespace nas::worker

#endif  // NAS_WORKER_DATASET_H_
