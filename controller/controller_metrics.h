// The controller's Prometheus metrics, registered once and shared by the
// pieces that record them: the trial broker (trials, leases, queue), the
// replicas (samples, pushes, rounds) and the job manager (per-job values).
//
// Conventions (docs/metrics.md): one metric per quantity, base units, counters
// for counts (`_total`), and `job_id` the only per-job label. A job's series
// exist from OpenJob to CloseJob: the job manager closes them a retention after
// the job ends, so a controller that ran thousands of jobs exports the series
// of the running ones (plus those ended within the retention), not of every
// job it ever ran. Recording for a job that is not open is dropped, so a late
// increment never brings back the series of a closed job. Thread-safe.
#ifndef NAS_CONTROLLER_CONTROLLER_METRICS_H_
#define NAS_CONTROLLER_CONTROLLER_METRICS_H_

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "prometheus/counter.h"
#include "prometheus/family.h"
#include "prometheus/gauge.h"
#include "prometheus/histogram.h"
#include "prometheus/registry.h"

namespace nas::controller {

class ControllerMetrics {
 public:
  explicit ControllerMetrics(prometheus::Registry& registry);

  // Process-wide series.
  prometheus::Counter& leases_expired;
  prometheus::Histogram& reward;
  prometheus::Histogram& round_seconds;
  prometheus::Gauge& queue_depth;
  prometheus::Gauge& leased;
  prometheus::Gauge& workers;
  // Trial-store writes that failed (a full disk, an I/O error); each is
  // retried by its owner.
  prometheus::Counter& store_write_failures;

  // Starts exporting `job`'s series (idempotent).
  void OpenJob(const std::string& job) ABSL_LOCKS_EXCLUDED(mu_);
  // Removes every series labelled job_id=`job` from the registry.
  void CloseJob(const std::string& job) ABSL_LOCKS_EXCLUDED(mu_);
  bool IsOpen(const std::string& job) ABSL_LOCKS_EXCLUDED(mu_);

  // nas_controller_trials_total{job_id, status}.
  void CountTrial(const std::string& job, const std::string& status) ABSL_LOCKS_EXCLUDED(mu_);
  // nas_controller_samples_total{job_id}.
  void CountSamples(const std::string& job, double n) ABSL_LOCKS_EXCLUDED(mu_);
  // nas_controller_cache_hits_total{job_id}: a sample the result cache
  // answered with a succeeded evaluation (an evaluation saved).
  void CountCacheHit(const std::string& job) ABSL_LOCKS_EXCLUDED(mu_);
  // nas_controller_early_stops_total{job_id}.
  void CountEarlyStop(const std::string& job) ABSL_LOCKS_EXCLUDED(mu_);
  // nas_controller_gradient_pushes_total{job_id, outcome}.
  void CountPush(const std::string& job, const std::string& outcome) ABSL_LOCKS_EXCLUDED(mu_);
  // nas_controller_job_baseline_reward and nas_controller_job_policy_entropy.
  void SetPolicy(const std::string& job, double baseline, double entropy)
      ABSL_LOCKS_EXCLUDED(mu_);

  // The values the job manager reads from the trial store.
  struct JobValues {
    double best_reward = 0;
    double mean_reward = 0;
    int64_t running = 0;
    int64_t queued = 0;
    // Used fraction of the job's budget (trials or wall time, the larger).
    double budget_used = 0;
    // Unix time of the job's last finished trial (or its start).
    double last_progress_unix_seconds = 0;
    // The compute ledger (totals in the store; exported as counters that
    // advance to them): worker-seconds and epochs of the job's evaluations,
    // and the epochs early stopping saved.
    double worker_seconds = 0;
    int64_t epochs_trained = 0;
    int64_t epochs_saved = 0;
  };
  void SetJobValues(const std::string& job, const JobValues& values) ABSL_LOCKS_EXCLUDED(mu_);

 private:
  // The series of one open job, to remove them on CloseJob.
  struct JobSeries {
    std::vector<std::pair<prometheus::Family<prometheus::Counter>*, prometheus::Counter*>> counters;
    std::vector<std::pair<prometheus::Family<prometheus::Gauge>*, prometheus::Gauge*>> gauges;
  };
  // The series of `job` in `family` with `labels` (plus job_id), or null when
  // the job is not open.
  prometheus::Counter* JobCounter(prometheus::Family<prometheus::Counter>& family,
                                  const std::string& job,
                                  std::map<std::string, std::string> labels)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  prometheus::Gauge* JobGauge(prometheus::Family<prometheus::Gauge>& family, const std::string& job,
                              std::map<std::string, std::string> labels = {})
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  prometheus::Family<prometheus::Counter>& trials_;
  prometheus::Family<prometheus::Counter>& samples_;
  prometheus::Family<prometheus::Counter>& pushes_;
  prometheus::Family<prometheus::Counter>& cache_hits_;
  prometheus::Family<prometheus::Counter>& early_stops_;
  prometheus::Family<prometheus::Counter>& worker_seconds_;
  prometheus::Family<prometheus::Counter>& epochs_trained_;
  prometheus::Family<prometheus::Counter>& epochs_saved_;
  prometheus::Family<prometheus::Gauge>& best_reward_;
  prometheus::Family<prometheus::Gauge>& mean_reward_;
  prometheus::Family<prometheus::Gauge>& baseline_reward_;
  prometheus::Family<prometheus::Gauge>& policy_entropy_;
  prometheus::Family<prometheus::Gauge>& job_trials_;
  prometheus::Family<prometheus::Gauge>& budget_used_;
  prometheus::Family<prometheus::Gauge>& last_progress_;

  absl::Mutex mu_;
  absl::flat_hash_map<std::string, JobSeries> jobs_ ABSL_GUARDED_BY(mu_);
};

}  // namespace nas::controller

#endif  // NAS_CONTROLLER_CONTROLLER_METRICS_H_
