// The one owner of jobs: their lifecycle (submit, run, succeed, fail,
// cancel), the controller's limits, each job's budget, its replica threads,
// and its tensors' lifetime on the parameter servers. What JobService reads
// goes through this class's queries; it never hands out the store.
//
//   nasctl -> JobService -> JobManager::Submit -> Replica::RunOnce (sample)
//     -> TrialBroker::Dispatch -> TaskService -> worker -> ReportResult
//     -> TrialBroker (store) -> RoundOutcomes -> Replica (gradient)
//     -> parameter servers
//
// In-flight trials belong to the TrialBroker (trial_broker.h), which this
// class owns and listens to; a replica's round belongs to its Replica
// (replica.h). A job ends SUCCEEDED when its budget is spent and every
// replica finished its round, FAILED when a replica hits a final error or
// more than budget.max_failed_fraction of its trials fail, CANCELLED on
// Cancel. Its tensors are dropped from the parameter servers
// `weights_retention` after it ended. After a restart, Create reloads every
// job, hands unfinished trials to the broker and resumes interrupted rounds;
// a job whose stored rows cannot be read is listed FAILED with the damage,
// and the others resume. A job-state change the store refuses (a full disk)
// is stored again with backoff until it is.
#ifndef NAS_CONTROLLER_JOB_MANAGER_H_
#define NAS_CONTROLLER_JOB_MANAGER_H_

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "controller/trial_broker.h"
#include "controller/trial_store.h"
#include "controller/weights_client.h"
#include "proto/job.pb.h"
#include "proto/job_service.pb.h"

namespace prometheus {
class Registry;
}

namespace nas::controller {

class ControllerMetrics;

struct JobManagerOptions {
  // Durable record of jobs and trials. Not owned; must outlive the manager.
  TrialStore* store = nullptr;
  // Parameter servers; may be null when only strategies without parameters
  // (random) are to run. Not owned.
  WeightsClient* weights = nullptr;
  // Time source for leases, budgets and retention. Not owned.
  Clock* clock = Clock::Real();
  // Jobs that may run at once; more are refused with RESOURCE_EXHAUSTED.
  int max_running_jobs = 16;
  // How often expired leases are looked for.
  absl::Duration lease_check_interval = absl::Milliseconds(250);
  // How long an ended job's tensors stay on the parameter servers (for
  // inspection) before they are dropped.
  absl::Duration weights_retention = absl::Hours(1);
  // Backoff between retries of parameter-server calls (doubles up to max).
  absl::Duration retry_initial_backoff = absl::Milliseconds(50);
  absl::Duration retry_max_backoff = absl::Seconds(5);
  // Metrics go here when set. Not owned.
  prometheus::Registry* metrics = nullptr;
  // How long the metric series of an ended job stay (so that Prometheus
  // scrapes their last values) before they are removed.
  absl::Duration metrics_retention = absl::Minutes(2);
};

class JobManager final : private TrialListener {
 public:
  // Loads every job from the store and resumes the running ones.
  static absl::StatusOr<std::unique_ptr<JobManager>> Create(const JobManagerOptions& options);
  // Stops every replica and joins every thread; jobs stay RUNNING in the
  // store and resume on the next Create.
  ~JobManager() override;

  // The broker of this manager's trials, for TaskService. Owned here.
  TrialBroker* trials() { return broker_.get(); }

  // --- commands ---
  // Applies defaults, validates (INVALID_ARGUMENT lists every problem), then
  // (unless validate_only) stores the job and starts its replicas.
  // RESOURCE_EXHAUSTED at the running-jobs limit (checked and taken atomically).
  absl::StatusOr<v1::Job> Submit(const v1::JobSpec& spec, bool validate_only)
      ABSL_LOCKS_EXCLUDED(mu_);
  absl::StatusOr<v1::Job> Cancel(const std::string& job_id) ABSL_LOCKS_EXCLUDED(mu_);

  // --- queries (JobService reads only these) ---
  absl::StatusOr<v1::Job> GetJob(const std::string& job_id) ABSL_LOCKS_EXCLUDED(mu_);
  // Newest first.
  std::vector<v1::Job> ListJobs() ABSL_LOCKS_EXCLUDED(mu_);
  // A page of a job's trials; NOT_FOUND for an unknown job.
  absl::StatusOr<std::vector<v1::Trial>> ListTrials(const std::string& job_id,
                                                     v1::ListTrialsRequest::Order order,
                                                     v1::TrialState state, int64_t offset,
                                                     int limit, int64_t* total)
      ABSL_LOCKS_EXCLUDED(mu_);
  // One trial with its learning curve (empty id: the best); NOT_FOUND if none.
  absl::StatusOr<v1::Trial> GetTrial(const std::string& job_id, const std::string& trial_id)
      ABSL_LOCKS_EXCLUDED(mu_);
  // An attempt's stored output (0: the latest attempt with one). A known
  // trial without a stored log gets an empty one (its latest attempt,
  // complete once the trial is final); NOT_FOUND for an unknown job or trial.
  absl::StatusOr<TrialLog> GetTrialLog(const std::string& job_id, const std::string& trial_id, int attempt)
      ABSL_LOCKS_EXCLUDED(mu_);
  // Finished trials in completion order after `after_sequence`, at most `limit`.
  absl::StatusOr<std::vector<v1::Trial>> TrialsAfter(const std::string& job_id,
                                                      int64_t after_sequence, int limit)
      ABSL_LOCKS_EXCLUDED(mu_);
  // Blocks until the job changes (a trial finished, its state changed) after
  // `seen_change`, or until `deadline`. Returns the job's change counter.
  absl::StatusOr<int64_t> WaitForChange(const std::string& job_id, int64_t seen_change,
                                        absl::Time deadline) ABSL_LOCKS_EXCLUDED(mu_);
  bool IsFinished(const std::string& job_id) ABSL_LOCKS_EXCLUDED(mu_);

 private:
  class Job;

  explicit JobManager(const JobManagerOptions& options);

  // TrialListener: failure accounting and change notification.
  void OnTrialFinal(const v1::Trial& trial) override ABSL_LOCKS_EXCLUDED(mu_);

  // Creates the job's replicas and, when it is to run, opens it on the
  // broker (adopting unfinished trials after a restart) and starts them.
  absl::Status StartJob(std::unique_ptr<Job> job, bool resume) ABSL_LOCKS_EXCLUDED(mu_);
  void RunReplica(Job* job, int replica) ABSL_LOCKS_EXCLUDED(mu_);
  void OnReplicaDone(Job* job) ABSL_LOCKS_EXCLUDED(mu_);
  // A one-shot job whose search budget is spent: finds the final trials an
  // earlier process stored, or chooses and dispatches them (docs/one_shot.md),
  // and records the unfinished ones in the job's final_pending_.
  absl::Status StartFinalTrials(Job* job) ABSL_LOCKS_EXCLUDED(mu_);
  // Moves a running job to a final state (first caller wins), stores it,
  // stops its replicas and closes it on the broker. False when it had ended.
  bool EndJob(Job* job, v1::JobState state, const std::string& error) ABSL_LOCKS_EXCLUDED(mu_);
  void RunMaintenance() ABSL_LOCKS_EXCLUDED(mu_);
  // Stores job records whose last change the store refused (with backoff).
  void SaveUnsavedRecords() ABSL_LOCKS_EXCLUDED(mu_);
  // Drops the tensors of jobs that ended more than weights_retention ago.
  void DropExpiredWeights() ABSL_LOCKS_EXCLUDED(mu_);
  // Per-job gauges (best and mean reward, trials by state) from the store.
  void UpdateJobGauges() ABSL_LOCKS_EXCLUDED(mu_);
  v1::Job Snapshot(Job* job) ABSL_LOCKS_EXCLUDED(mu_);
  Job* FindJob(const std::string& job_id) ABSL_LOCKS_EXCLUDED(mu_);
  std::string NewJobId();

  const JobManagerOptions options_;
  std::unique_ptr<ControllerMetrics> metrics_;
  std::unique_ptr<TrialBroker> broker_;

  absl::Mutex mu_;
  // Every job this controller knows, by id. Entries are never removed while
  // the manager lives (replica threads hold raw pointers).
  std::map<std::string, std::unique_ptr<Job>> jobs_ ABSL_GUARDED_BY(mu_);
  // Jobs counted against max_running_jobs: running ones plus submits
  // between their check and their start.
  int running_jobs_ ABSL_GUARDED_BY(mu_) = 0;
  bool shutting_down_ ABSL_GUARDED_BY(mu_) = false;
  // The store's write failures already added to the metric (maintenance thread only).
  int64_t store_failures_counted_ = 0;
  std::thread maintenance_;
};

}  // namespace nas::controller

#endif  // NAS_CONTROLLER_JOB_MANAGER_H_
