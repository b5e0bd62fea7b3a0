#include "worker/device.h"

#include <torch/torch.h>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace nas::worker {

absl::StatusOr<std::string> ResolveDevice(const std::string& requested) {
  const bool cuda = torch::cuda::is_available();
  if (requested == "auto") return cuda ? std::string("cuda:0") : std::string("cpu");
  if (requested == "cpu") return requested;
  if (requested == "cuda" || absl::StartsWith(requested, "cuda:")) {
    if (!cuda) {
      return absl::FailedPreconditionError(
          absl::StrCat("--device=", requested,
                       " but LibTorch sees no CUDA device (CPU-only build or no GPU); use "
                       "--device=auto or --device=cpu"));
    }
    return requested == "cuda" ? std::string("cuda:0") : requested;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("--device must be auto, cpu, cuda or cuda:N, not '", requested, "'"));
}

void SetTorchThreads(int threads) {
  if (threads > 0) {
    torch::set_num_threads(threads);
    torch::set_num_interop_threads(1);
  }
}

void UseTorchThreadsOnThisThread(int threads) {
  if (threads > 0) torch::set_num_threads(threads);
}

}  // namespace nas::worker
