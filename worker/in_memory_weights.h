#ifndef NAS_WORKER_IN_MEMORY_WEIGHTS_H_
#define NAS_WORKER_IN_MEMORY_WEIGHTS_H_

#include <functional>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "common/flat_tensor.h"
#include "controller/weights_client.h"

namespace nas::worker {

// A WeightsClient test double (unit tests, bench/supernet_bench): one shard in
// memory applying plain SGD with each set's learning rate (momentum, Adam
// and the staleness bound are ignored; RefuseStale makes the next n sparse
// pushes come back refused as stale). Records every applied push.
class InMemoryWeightsClient : public controller::WeightsClient {
 public:
  struct Set {
    std::map<std::string, FlatTensor> tensors;
    std::map<std::string, FlatTensor> initial;
    v1::OptimizerConfig config;
    int64_t version = 0;
  };
  struct PushRecord {
    std::string set;
    std::set<std::string> names;
    bool sparse = false;
  };

  int num_shards() const override { return 1; }
  absl::Status InitJob(const std::string& job_id, const std::vector<FlatTensor>& initial,
                       const v1::OptimizerConfig& optimizer) override {
    absl::MutexLock lock(&mu_);
    ++init_calls_;
    if (sets_.count(job_id) > 0) return absl::OkStatus();
    Set& set = sets_[job_id];
    for (const FlatTensor& t : initial) set.tensors[t.name] = t;
    set.initial = set.tensors;
    set.config = optimizer;
    return absl::OkStatus();
  }
  absl::Status DropJob(const std::string& job_id) override {
    absl::MutexLock lock(&mu_);
    sets_.erase(job_id);
    return absl::OkStatus();
  }
  absl::StatusOr<controller::PulledWeights> Pull(const std::string& job_id) override { return PullSome(job_id, {}); }
  absl::StatusOr<controller::PulledWeights> PullSome(const std::string& job_id, const std::vector<std::string>& names) override {
    absl::MutexLock lock(&mu_);
    ++pulls_;
    auto it = sets_.find(job_id);
    if (it == sets_.end()) return absl::NotFoundError(job_id);
    controller::PulledWeights pulled;
    pulled.versions = {it->second.version};
    if (names.empty()) {
      for (const auto& [name, t] : it->second.tensors) pulled.tensors.push_back(t);
    } else {
      for (const std::string& name : names) {
        auto t = it->second.tensors.find(name);
        if (t == it->second.tensors.end()) return absl::InvalidArgumentError(name);
        pulled.tensors.push_back(t->second);
      }
    }
    return pulled;
  }
  absl::Status Push(const std::string& job_id, int, const std::vector<int64_t>&,
                    const std::vector<FlatTensor>& gradients, controller::PulledWeights*) override {
    absl::MutexLock lock(&mu_);
    return Apply(job_id, gradients, false);
  }
  absl::StatusOr<controller::SparsePushResult> PushSparse(const std::string& job_id, const std::vector<int64_t>& base,
                                              const std::vector<FlatTensor>& gradients) override {
    std::function<void()> hook;
    controller::SparsePushResult result;
    {
      absl::MutexLock lock(&mu_);
      result.bytes = 0;
      for (const FlatTensor& g : gradients) result.bytes += 4 * static_cast<int64_t>(g.values.size());
      if (refuse_stale_ > 0) {
        --refuse_stale_;
        result.versions = {sets_[job_id].version};
        result.shards_refused_stale = 1;
        return result;
      }
      if (absl::Status s = Apply(job_id, gradients, true); !s.ok()) return s;
      result.versions = {sets_[job_id].version};
      result.shards_applied = 1;
      result.max_staleness = sets_[job_id].version - 1 - base.at(0);
      hook = after_sparse_push_;
    }
    if (hook) hook();
    return result;
  }

  void RefuseStale(int n) {
    absl::MutexLock lock(&mu_);
    refuse_stale_ = n;
  }
  void AfterSparsePush(std::function<void()> hook) {
    absl::MutexLock lock(&mu_);
    after_sparse_push_ = std::move(hook);
  }
  Set Get(const std::string& job_id) {
    absl::MutexLock lock(&mu_);
    return sets_.at(job_id);
  }
  std::vector<PushRecord> pushes() {
    absl::MutexLock lock(&mu_);
    return pushes_;
  }
  int init_calls() {
    absl::MutexLock lock(&mu_);
    return init_calls_;
  }

 private:
  absl::Status Apply(const std::string& job_id, const std::vector<FlatTensor>& gradients, bool sparse)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    auto it = sets_.find(job_id);
    if (it == sets_.end()) return absl::NotFoundError(job_id);
    PushRecord record{job_id, {}, sparse};
    for (const FlatTensor& g : gradients) {
      FlatTensor& t = it->second.tensors.at(g.name);
      if (t.values.size() != g.values.size()) return absl::InvalidArgumentError(g.name);
      for (size_t i = 0; i < g.values.size(); ++i) {
        t.values[i] -= static_cast<float>(it->second.config.learning_rate()) * g.values[i];
      }
      record.names.insert(g.name);
    }
    ++it->second.version;
    pushes_.push_back(std::move(record));
    return absl::OkStatus();
  }

  absl::Mutex mu_;
  std::map<std::string, Set> sets_ ABSL_GUARDED_BY(mu_);
  std::vector<PushRecord> pushes_ ABSL_GUARDED_BY(mu_);
  int refuse_stale_ ABSL_GUARDED_BY(mu_) = 0;
  int init_calls_ ABSL_GUARDED_BY(mu_) = 0;
  int pulls_ ABSL_GUARDED_BY(mu_) = 0;
  std::function<void()> after_sparse_push_ ABSL_GUARDED_BY(mu_);
};

}  // namespace nas::worker

#endif  // NAS_WORKER_IN_MEMORY_WEIGHTS_H_
