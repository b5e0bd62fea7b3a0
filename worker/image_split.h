// The train/validation split of an image set as the train evaluator and the
// one-shot evaluator use it: one held-out validation split per job, the
// images normalised per channel with the training images' statistics.
#ifndef NAS_WORKER_IMAGE_SPLIT_H_
#define NAS_WORKER_IMAGE_SPLIT_H_

#include <torch/torch.h>

#include <string>
#include <vector>

#include "worker/dataset.h"

namespace nas::worker {

// Images [n, c, h, w] (float, normalised), labels [n] (long), on the CPU.
struct ImageTensors {
  torch::Tensor images;
  torch::Tensor labels;
};

struct ImageSplit {
  ImageTensors train;
  ImageTensors validation;
  // The training images' per-channel statistics both were normalised with.
  std::vector<float> mean, stddev;
};

// The first `validation` images of a shuffle seeded by `job_id` (every trial
// and worker of a job sees the same split) are the validation split, the
// next ones (at most train_size; 0 = all the rest) the training split. The
// caller checks 1 <= validation < set.count.
ImageSplit SplitImages(const ImageSet& set, const std::string& job_id, int validation, int train_size);

// Every image of `set` (a test split) normalised with `split`'s statistics.
ImageTensors NormaliseLike(const ImageSet& set, const ImageSplit& split);

}  // namespace nas::worker

#endif  // NAS_WORKER_IMAGE_SPLIT_H_
