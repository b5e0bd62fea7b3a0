// Chooses the LibTorch device a worker trains on. Kept free of torch headers
// so callers that only need the name do not pay for them.
#ifndef NAS_WORKER_DEVICE_H_
#define NAS_WORKER_DEVICE_H_

#include <string>

#include "absl/status/statusor.h"

namespace nas::worker {

// `requested` is "auto" (CUDA when torch::cuda::is_available(), else CPU),
// "cpu" or "cuda" / "cuda:N" (an error if CUDA is not available). Returns
// the device string LibTorch understands ("cpu", "cuda:0").
absl::StatusOr<std::string> ResolveDevice(const std::string& requested);

// Sets LibTorch's intra-op threads (CPU training) and one inter-op thread,
// once per process, at start; 0 keeps the defaults.
void SetTorchThreads(int threads);

// Sets LibTorch's intra-op threads for the calling thread; 0 keeps the
// default. LibTorch's CPU kernels parallelise with OpenMP, whose thread
// count is a per-thread setting: SetTorchThreads on the main thread does not
// reach a thread started later, which would run with one OpenMP thread per
// core (2 workers on 2 cores: 4 busy threads). Call it first on every
// thread that trains.
void UseTorchThreadsOnThisThread(int threads);

}  // namespace nas::worker

#endif  // NAS_WORKER_DEVICE_H_
