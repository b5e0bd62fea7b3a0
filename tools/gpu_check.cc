// The worker's GPU path, checked on one machine: LibTorch sees CUDA, the
// worker's --device resolution picks it, and the worker's training code
// (TrainOnImages, the code nas_worker runs for a train task) trains a child
// network for a few hundred steps on cuda:0 with falling loss, then the same
// evaluation on the CPU for comparison. tools/gpu_check.sh builds it on a GPU
// machine against that machine's LibTorch; --expect_cuda=false is the CPU dry
// run (CUDA must then be absent and --device=cuda refused).
//
// Prints `name value unit` figures and one line per failed check; exits 1 when
// any check fails, 0 when all pass. The data is synthetic (a bright square whose
// size is the class, on noise), so nothing needs to be carried.
#include <torch/torch.h>
#include <torch/version.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "proto/job.pb.h"
#include "proto/task_service.pb.h"
#include "worker/dataset.h"
#include "worker/device.h"
#include "worker/evaluator.h"
#include "worker/train_evaluator.h"

ABSL_FLAG(bool, expect_cuda, true,
          "Whether CUDA must be available (false: the CPU dry run, which trains on the CPU only).");
ABSL_FLAG(int, train_images, 4096, "Training images (steps per epoch = train_images / batch_size).");
ABSL_FLAG(int, epochs, 8, "Epochs per device.");
ABSL_FLAG(int, batch_size, 64, "Images per step.");
ABSL_FLAG(double, learning_rate, 0.05,
          "SGD learning rate (0 = the train evaluator's default; 1e-9 must fail the loss check).");
ABSL_FLAG(double, min_accuracy, 0.5, "Validation accuracy each device must reach (chance is 0.1).");
ABSL_FLAG(int, threads, 0, "LibTorch CPU threads; 0 = LibTorch's default.");

namespace {

constexpr int kSide = 28;
constexpr int kValidationImages = 512;

// Class k: a bright square of side 3 + 2k pixels at a random place, on
// uniform noise. The child pools each map globally, so the class is in how
// much of the image is bright, not where.
nas::worker::ImageSet SyntheticImages(int count, uint32_t seed) {
  nas::worker::ImageSet set;
  set.count = count;
  set.channels = 1;
  set.height = kSide;
  set.width = kSide;
  set.pixels.resize(static_cast<size_t>(count) * kSide * kSide);
  set.labels.resize(count);
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> noise(0, 80), label(0, 9);
  for (int i = 0; i < count; ++i) {
    const int k = label(rng);
    set.labels[i] = static_cast<uint8_t>(k);
    uint8_t* image = set.pixels.data() + static_cast<size_t>(i) * kSide * kSide;
    for (int p = 0; p < kSide * kSide; ++p) image[p] = static_cast<uint8_t>(noise(rng));
    const int side = 3 + 2 * k;
    std::uniform_int_distribution<int> place(0, kSide - side);
    const int top = place(rng);
    const int left = place(rng);
    for (int y = top; y < top + side; ++y) {
      for (int x = left; x < left + side; ++x) image[y * kSide + x] = 255;
    }
  }
  return set;
}

nas::v1::Task CheckTask() {
  nas::v1::Task task;
  task.set_job_id("gpu-check");
  task.set_trial_id("t0");
  nas::v1::MacroCnnArchitecture* arch = task.mutable_architecture()->mutable_macro_cnn();
  const int filters[] = {32, 64, 64};
  const int strides[] = {1, 2, 2};
  for (int i = 0; i < 3; ++i) {
    nas::v1::MacroCnnLayer* layer = arch->add_layers();
    layer->set_filter_height(3);
    layer->set_filter_width(3);
    layer->set_num_filters(filters[i]);
    layer->set_stride(strides[i]);
    if (i > 0) layer->add_inputs(i - 1);
  }
  nas::v1::TrainEvaluatorSpec* spec = task.mutable_evaluator()->mutable_train();
  spec->set_epochs(absl::GetFlag(FLAGS_epochs));
  spec->set_batch_size(absl::GetFlag(FLAGS_batch_size));
  spec->set_validation_size(kValidationImages);
  spec->set_learning_rate(absl::GetFlag(FLAGS_learning_rate));
  task.mutable_reward()->set_last_epochs(1);
  return task;
}

class Checks {
 public:
  void Figure(const std::string& name, double value, const std::string& unit) {
    std::printf("%s %.6g %s\n", name.c_str(), value, unit.c_str());
    std::fflush(stdout);
  }
  // Records a check; a failed one prints `FAIL name: detail`.
  bool Expect(bool ok, const std::string& name, const std::string& detail) {
    ++checks_;
    if (!ok) {
      ++failed_;
      std::fprintf(stderr, "FAIL %s: %s\n", name.c_str(), detail.c_str());
    }
    return ok;
  }
  int Finish() const {
    if (failed_ > 0) {
      std::fprintf(stderr, "gpu_check: %d of %d checks failed\n", failed_, checks_);
      return 1;
    }
    std::printf("gpu_check: all %d checks passed\n", checks_);
    return 0;
  }

 private:
  int checks_ = 0;
  int failed_ = 0;
};

void ExpectResolves(Checks& checks, const std::string& requested, const std::string& want) {
  absl::StatusOr<std::string> got = nas::worker::ResolveDevice(requested);
  checks.Expect(got.ok() && *got == want, absl::StrCat("device_", requested),
                absl::StrCat("--device=", requested, " resolved to ",
                             got.ok() ? *got : got.status().ToString(), ", want ", want));
}

void ExpectRefused(Checks& checks, const std::string& requested, absl::StatusCode code) {
  absl::StatusOr<std::string> got = nas::worker::ResolveDevice(requested);
  checks.Expect(!got.ok() && got.status().code() == code, absl::StrCat("device_", requested),
                absl::StrCat("--device=", requested, " gave ", got.ok() ? *got : got.status().ToString(),
                             ", want the error ", absl::StatusCodeToString(code)));
}

// Trains the check's child on `device`; returns the validation accuracy
// (negative when training failed).
double TrainOn(Checks& checks, const std::string& device, const nas::worker::ImageSet& images,
               double* images_per_second) {
  const std::string prefix = device.rfind("cuda", 0) == 0 ? "cuda" : "cpu";
  absl::StatusOr<nas::v1::TrialMetrics> metrics =
      nas::worker::TrainOnImages(CheckTask(), images, device, nas::worker::EvaluationContext{});
  if (!checks.Expect(metrics.ok(), prefix + "_train", metrics.status().ToString())) return -1;
  const int epochs = metrics->epochs_size();
  const int steps_per_epoch = (images.count - kValidationImages + absl::GetFlag(FLAGS_batch_size) - 1) /
                              absl::GetFlag(FLAGS_batch_size);
  const double first = metrics->epochs(0).train_loss();
  const double last = metrics->epochs(epochs - 1).train_loss();
  *images_per_second = static_cast<double>(images.count - kValidationImages) * epochs /
                       std::max(1e-9, metrics->train_seconds());
  checks.Figure(prefix + "_steps", static_cast<double>(steps_per_epoch) * epochs, "steps");
  for (const nas::v1::EpochResult& epoch : metrics->epochs()) {
    checks.Figure(absl::StrCat(prefix, "_epoch", epoch.epoch(), "_train_loss"), epoch.train_loss(), "nats");
  }
  checks.Figure(prefix + "_validation_accuracy", metrics->accuracy(), "fraction");
  checks.Figure(prefix + "_train_seconds", metrics->train_seconds(), "s");
  checks.Figure(prefix + "_images_per_second", *images_per_second, "images/s");
  checks.Figure(prefix + "_latency_seconds", metrics->latency_seconds(), "s");
  checks.Expect(metrics->device() == device, prefix + "_device",
                absl::StrCat("trained on '", metrics->device(), "', asked for '", device, "'"));
  checks.Expect(std::isfinite(last) && last < 0.7 * first, prefix + "_loss_falls",
                absl::StrCat("train loss ", first, " in epoch 1, ", last, " in epoch ", epochs,
                             " (want below 0.7 x the first)"));
  checks.Expect(metrics->accuracy() >= absl::GetFlag(FLAGS_min_accuracy), prefix + "_accuracy",
                absl::StrCat("validation accuracy ", metrics->accuracy(), " < ",
                             absl::GetFlag(FLAGS_min_accuracy)));
  return metrics->accuracy();
}

}  // namespace

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  nas::worker::SetTorchThreads(absl::GetFlag(FLAGS_threads));
  const bool expect_cuda = absl::GetFlag(FLAGS_expect_cuda);
  Checks checks;
  std::printf("# LibTorch %d.%d.%d, %s\n", TORCH_VERSION_MAJOR, TORCH_VERSION_MINOR, TORCH_VERSION_PATCH,
              expect_cuda ? "CUDA run" : "CPU dry run (--expect_cuda=false)");
  const bool cuda = torch::cuda::is_available();
  checks.Figure("libtorch_version_major", TORCH_VERSION_MAJOR, "major");
  checks.Figure("libtorch_version_minor", TORCH_VERSION_MINOR, "minor");
  checks.Figure("cuda_available", cuda ? 1 : 0, "bool");
  checks.Figure("cuda_devices", static_cast<double>(torch::cuda::device_count()), "devices");
  checks.Expect(cuda == expect_cuda, "cuda_available",
                absl::StrCat("torch::cuda::is_available() is ", cuda ? "true" : "false", ", expected ",
                             expect_cuda ? "true" : "false"));

  // The worker's --device resolution (worker/main.cc calls ResolveDevice).
  ExpectResolves(checks, "cpu", "cpu");
  ExpectRefused(checks, "tpu", absl::StatusCode::kInvalidArgument);
  if (expect_cuda) {
    ExpectResolves(checks, "auto", "cuda:0");
    ExpectResolves(checks, "cuda", "cuda:0");
    ExpectResolves(checks, "cuda:0", "cuda:0");
  } else {
    ExpectResolves(checks, "auto", "cpu");
    ExpectRefused(checks, "cuda", absl::StatusCode::kFailedPrecondition);
  }

  const nas::worker::ImageSet images =
      SyntheticImages(absl::GetFlag(FLAGS_train_images) + kValidationImages, 20261130);
  double cpu_rate = 0;
  if (expect_cuda && cuda) {
    double cuda_rate = 0;
    const double cuda_accuracy = TrainOn(checks, "cuda:0", images, &cuda_rate);
    const double cpu_accuracy = TrainOn(checks, "cpu", images, &cpu_rate);
    if (cuda_accuracy >= 0 && cpu_accuracy >= 0) {
      checks.Figure("cuda_over_cpu_speedup", cuda_rate / std::max(1e-9, cpu_rate), "x");
      checks.Figure("cuda_minus_cpu_accuracy", cuda_accuracy - cpu_accuracy, "fraction");
      checks.Expect(std::abs(cuda_accuracy - cpu_accuracy) <= 0.1, "cuda_cpu_agree",
                    absl::StrCat("validation accuracy ", cuda_accuracy, " on CUDA, ", cpu_accuracy,
                                 " on the CPU (want within 0.1)"));
    }
  } else {
    TrainOn(checks, "cpu", images, &cpu_rate);
  }
  return checks.Finish();
}
