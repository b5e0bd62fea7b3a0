// The search itself: jobs, their K asynchronous replica loops, and the task
// lifecycle workers drive (acquire, heartbeat, report). Domain code only: the
// gRPC services (job_service.h, task_service.h) are thin adapters over it.
//
// A replica round: reserve up to m trials of the budget, pull θ from the
// parameter servers, sample m architectures, store them (QUEUED) and queue
// their tasks, wait for every one to finish, then push the REINFORCE gradient
// of those that succeeded. Replicas never wait for each other. Results are
// committed to the trial store before a report is acknowledged; after a
// restart, Create reloads running jobs, re-queues unfinished trials and each
// replica resumes its interrupted round.
#ifndef NAS_CONTROLLER_JOB_MANAGER_H_
#define NAS_CONTROLLER_JOB_MANAGER_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "controller/task_queue.h"
#include "controller/trial_store.h"
#include "controller/weights_client.h"
#include "proto/job.pb.h"
#include "proto/task_service.pb.h"

namespace prometheus {
class Registry;
}

namespace nas::controller {

class SearchStrategy;

struct JobManagerOptions {
  // Durable record of jobs and trials. Not owned; must outlive the manager.
  TrialStore* store = nullptr;
  // Parameter servers; may be null when only parameter-free strategies
  // (random, evolution) are to run. Not owned.
  WeightsClient* weights = nullptr;
  // Time source for leases and budgets. Not owned.
  Clock* clock = Clock::Real();
  // Jobs that may run at once; more are refused with RESOURCE_EXHAUSTED.
  int max_running_jobs = 16;
  // How often expired leases are looked for.
  absl::Duration lease_check_interval = absl::Milliseconds(250);
  // Backoff between retries of parameter-server calls (doubles up to max).
  absl::Duration retry_initial_backoff = absl::Milliseconds(50);
  absl::Duration retry_max_backoff = absl::Seconds(5);
  // Metrics go here when set. Not owned.
  prometheus::Registry* metrics = nullptr;
};

class JobManager {
 public:
  // Loads every job from the store and resumes the running ones.
  static absl::StatusOr<std::unique_ptr<JobManager>> Create(const JobManagerOptions& options);
  // Stops every replica and joins every thread; jobs stay RUNNING in the store
  // and resume on the next Create.
  ~JobManager();

  // --- JobService ---
  // Applies defaults, validates (INVALID_ARGUMENT lists every problem), then
  // (unless validate_only) stores the job and starts its replicas.
  absl::StatusOr<v1::Job> Submit(const v1::JobSpec& spec, bool validate_only)
      ABSL_LOCKS_EXCLUDED(mu_);
  absl::StatusOr<v1::Job> GetJob(const std::string& job_id) ABSL_LOCKS_EXCLUDED(mu_);
  // Newest first.
  std::vector<v1::Job> ListJobs() ABSL_LOCKS_EXCLUDED(mu_);
  absl::StatusOr<v1::Job> Cancel(const std::string& job_id) ABSL_LOCKS_EXCLUDED(mu_);
  // Blocks until the job changes (a trial finished, its state changed) after
  // `seen_change`, or until `deadline`. Returns the job's change counter.
  absl::StatusOr<int64_t> WaitForChange(const std::string& job_id, int64_t seen_change,
                                        absl::Time deadline) ABSL_LOCKS_EXCLUDED(mu_);
  bool IsFinished(const std::string& job_id) ABSL_LOCKS_EXCLUDED(mu_);

  // --- TaskService ---
  // A queued task for `worker_id` (marked running), or nullopt at once.
  std::optional<v1::Task> TryAcquireTask(const std::string& worker_id) ABSL_LOCKS_EXCLUDED(mu_);
  // The long poll, without holding a thread: `done` is called exactly
  // once, with a task (marked running) or with nullopt at `deadline`, after
  // CancelAcquire, or at shutdown; possibly before this returns. The id of
  // the current wait is kept in *waiter (for CancelAcquire).
  void AcquireTaskAsync(const std::string& worker_id, absl::Time deadline,
                        std::function<void(std::optional<v1::Task>)> done,
                        std::shared_ptr<std::atomic<int64_t>> waiter) ABSL_LOCKS_EXCLUDED(mu_);
  void CancelAcquire(int64_t waiter) { queue_.CancelWaiter(waiter); }
  // Extends the lease. Returns "cancel" (true) when the job was cancelled or
  // finished; NOT_FOUND when the worker holds no lease on the task.
  absl::StatusOr<bool> Heartbeat(const std::string& task_id, const std::string& worker_id,
                                 const std::vector<v1::EpochResult>& epochs)
      ABSL_LOCKS_EXCLUDED(mu_);
  // Records a result (durably, before returning) or a failure. Returns true
  // when the trial already had a result (a duplicate, ignored).
  absl::StatusOr<bool> ReportResult(const v1::ReportResultRequest& report)
      ABSL_LOCKS_EXCLUDED(mu_);
  // ReportResult without holding the caller's thread: `done` gets the same
  // answer, possibly before this returns, otherwise on the trial store's
  // writer thread once the result is committed. `done` must not block on
  // the trial store.
  void ReportResultAsync(const v1::ReportResultRequest& report,
                         std::function<void(absl::StatusOr<bool>)> done) ABSL_LOCKS_EXCLUDED(mu_);

  TrialStore* store() { return options_.store; }

 private:
  struct Metrics;
  struct Job;

  explicit JobManager(const JobManagerOptions& options);

  absl::Status StartJob(std::unique_ptr<Job> job, bool resume) ABSL_LOCKS_EXCLUDED(mu_);
  void RunReplica(Job* job, int replica) ABSL_LOCKS_EXCLUDED(mu_);
  // Pulls θ from every shard (retrying while they are away) into `strategy`
  // and returns the shard versions. On error the job has been failed (or is
  // stopping) and the replica should end.
  absl::StatusOr<std::vector<int64_t>> PullInto(Job* job, SearchStrategy* strategy)
      ABSL_LOCKS_EXCLUDED(mu_);
  void RunMaintenance() ABSL_LOCKS_EXCLUDED(mu_);
  // Per-job gauges (best and mean reward, trials by state) from the store.
  void UpdateJobGauges() ABSL_LOCKS_EXCLUDED(mu_);
  // Reserves up to `wanted` trials of the job's budget; 0 when it is spent or
  // the job is stopping. Sets *first_index and *samples_before.
  int ReserveTrials(Job* job, int wanted, int64_t* first_index, int64_t* samples_before)
      ABSL_LOCKS_EXCLUDED(mu_);
  // Retries `call` with backoff until OK, a final error, or the job stops.
  absl::Status Retry(Job* job, const std::string& what,
                     const std::function<absl::Status()>& call) ABSL_LOCKS_EXCLUDED(mu_);
  void EnqueueAttempt(Job* job, const v1::Trial& trial, int attempt);
  // Whether a task just leased from the queue is still wanted: if so marks
  // its trial running; if not (the trial finished or the job stopped) drops
  // it from the queue's books.
  bool ClaimTask(const v1::Task& task, const std::string& worker_id) ABSL_LOCKS_EXCLUDED(mu_);
  // Stores a final outcome and wakes the replica waiting for it. Returns
  // whether it was recorded (false: the trial already had one).
  absl::StatusOr<bool> Finish(Job* job, v1::Trial trial) ABSL_LOCKS_EXCLUDED(mu_);
  // Finish without waiting: `done` runs after the commit, on the trial
  // store's writer thread (or at once on a bad trial).
  void FinishAsync(Job* job, v1::Trial trial, std::function<void(absl::StatusOr<bool>)> done)
      ABSL_LOCKS_EXCLUDED(mu_);
  // After a newly recorded outcome: hands the trial to its replica.
  void OnFinished(Job* job, v1::Trial trial) ABSL_LOCKS_EXCLUDED(mu_);
  void OnReplicaDone(Job* job) ABSL_LOCKS_EXCLUDED(mu_);
  void FailJob(Job* job, const absl::Status& status) ABSL_LOCKS_EXCLUDED(mu_);
  v1::Job Snapshot(Job* job) ABSL_LOCKS_EXCLUDED(mu_);
  Job* FindJob(const std::string& job_id) ABSL_LOCKS_EXCLUDED(mu_);
  std::string NewJobId();

  const JobManagerOptions options_;
  TaskQueue queue_;
  std::unique_ptr<Metrics> metrics_;

  absl::Mutex mu_;
  // Every job this controller knows, by id. Entries are never removed while
  // the manager lives (replica threads hold raw pointers).
  std::map<std::string, std::unique_ptr<Job>> jobs_ ABSL_GUARDED_BY(mu_);
  bool shutting_down_ ABSL_GUARDED_BY(mu_) = false;
  std::thread maintenance_;
};

}  // namespace nas::controller

#endif  // NAS_CONTROLLER_JOB_MANAGER_H_
