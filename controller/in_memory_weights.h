// A WeightsClient that keeps one job's tensors in memory and applies plain
// SGD: for controller tests that need learning without parameter servers.
#ifndef NAS_CONTROLLER_IN_MEMORY_WEIGHTS_H_
#define NAS_CONTROLLER_IN_MEMORY_WEIGHTS_H_

#include <map>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "controller/weights_client.h"

namespace nas::controller {

class InMemoryWeights : public WeightsClient {
 public:
  explicit InMemoryWeights(int num_shards = 1) : num_shards_(num_shards) {}

  int num_shards() const override { return num_shards_; }

  absl::Status InitJob(const std::string& job_id, const std::vector<FlatTensor>& initial,
                       const v1::OptimizerConfig& optimizer) override {
    absl::MutexLock lock(&mu_);
    Job& job = jobs_[job_id];
    if (job.tensors.empty()) {
      job.tensors = initial;
      job.learning_rate = optimizer.learning_rate();
    }
    return absl::OkStatus();
  }

  absl::StatusOr<PulledWeights> Pull(const std::string& job_id) override {
    absl::MutexLock lock(&mu_);
    auto it = jobs_.find(job_id);
    if (it == jobs_.end()) return absl::NotFoundError(absl::StrCat("no job ", job_id));
    PulledWeights pulled;
    pulled.tensors = it->second.tensors;
    pulled.versions.assign(num_shards_, it->second.version);
    return pulled;
  }

  absl::Status Push(const std::string& job_id, int replica_id,
                    const std::vector<int64_t>& base_versions,
                    const std::vector<FlatTensor>& gradients) override {
    (void)replica_id;
    (void)base_versions;
    absl::MutexLock lock(&mu_);
    auto it = jobs_.find(job_id);
    if (it == jobs_.end()) return absl::NotFoundError(absl::StrCat("no job ", job_id));
    Job& job = it->second;
    for (const FlatTensor& g : gradients) {
      for (FlatTensor& t : job.tensors) {
        if (t.name != g.name) continue;
        if (t.values.size() != g.values.size()) {
          return absl::InvalidArgumentError(absl::StrCat("shape of ", g.name));
        }
        for (size_t i = 0; i < t.values.size(); ++i) {
          t.values[i] -= static_cast<float>(job.learning_rate) * g.values[i];
        }
      }
    }
    ++job.version;
    ++pushes_;
    return absl::OkStatus();
  }

  int64_t pushes() {
    absl::MutexLock lock(&mu_);
    return pushes_;
  }

 private:
  struct Job {
    std::vector<FlatTensor> tensors;
    double learning_rate = 0;
    int64_t version = 0;
  };
  const int num_shards_;
  absl::Mutex mu_;
  std::map<std::string, Job> jobs_ ABSL_GUARDED_BY(mu_);
  int64_t pushes_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace nas::controller

#endif  // NAS_CONTROLLER_IN_MEMORY_WEIGHTS_H_
