#include "worker/image_split.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <numeric>
#include <random>
#include <vector>

namespace nas::worker {
namespace {

ImageTensors ToTensors(const ImageSet& set, const std::vector<int>& indices, const std::vector<float>& mean,
                       const std::vector<float>& stddev) {
  const int64_t per_image = int64_t{set.channels} * set.height * set.width;
  const int64_t plane = int64_t{set.height} * set.width;
  torch::Tensor images = torch::empty({static_cast<int64_t>(indices.size()), set.channels, set.height, set.width});
  torch::Tensor labels = torch::empty({static_cast<int64_t>(indices.size())}, torch::kLong);
  float* out = images.data_ptr<float>();
  int64_t* label_out = labels.data_ptr<int64_t>();
  for (size_t k = 0; k < indices.size(); ++k) {
    const uint8_t* src = set.pixels.data() + int64_t{indices[k]} * per_image;
    for (int64_t p = 0; p < per_image; ++p) {
      const int c = static_cast<int>(p / plane);
      out[k * per_image + p] = (src[p] / 255.f - mean[c]) / stddev[c];
    }
    label_out[k] = set.labels[indices[k]];
  }
  return {images, labels};
}

}  // namespace

ImageSplit SplitImages(const ImageSet& set, const std::string& job_id, int validation, int train_size) {
  std::vector<int> order(set.count);
  std::iota(order.begin(), order.end(), 0);
  std::mt19937_64 rng(std::hash<std::string>()(job_id));
  std::shuffle(order.begin(), order.end(), rng);
  std::vector<int> val_idx(order.begin(), order.begin() + validation);
  int train_count = set.count - validation;
  if (train_size > 0) train_count = std::min(train_count, train_size);
  std::vector<int> train_idx(order.begin() + validation, order.begin() + validation + train_count);
  // Per-channel mean and standard deviation of the training images.
  std::vector<float> mean(set.channels, 0), stddev(set.channels, 0);
  const int64_t plane = int64_t{set.height} * set.width;
  std::vector<double> sum(set.channels, 0), sq(set.channels, 0);
  for (int i : train_idx) {
    const uint8_t* img = set.pixels.data() + int64_t{i} * set.channels * plane;
    for (int c = 0; c < set.channels; ++c) {
      for (int64_t p = 0; p < plane; ++p) {
        const double v = img[c * plane + p] / 255.0;
        sum[c] += v;
        sq[c] += v * v;
      }
    }
  }
  const double n = static_cast<double>(train_idx.size()) * plane;
  for (int c = 0; c < set.channels; ++c) {
    mean[c] = static_cast<float>(sum[c] / n);
    stddev[c] = static_cast<float>(std::sqrt(std::max(1e-8, sq[c] / n - mean[c] * mean[c])));
  }
  return {ToTensors(set, train_idx, mean, stddev), ToTensors(set, val_idx, mean, stddev), mean, stddev};
}

ImageTensors NormaliseLike(const ImageSet& set, const ImageSplit& split) {
  std::vector<int> all(set.count);
  std::iota(all.begin(), all.end(), 0);
  return ToTensors(set, all, split.mean, split.stddev);
}

}  // namespace nas::worker
