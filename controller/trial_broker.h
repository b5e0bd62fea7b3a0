// The one owner of in-flight trials: from the moment a replica hands over the
// trials it sampled until each one's final outcome is in the trial store.
//
// A trial in flight has exactly one live task at a time, queued or leased to
// one worker. Workers drive it through TaskService: AcquireTask leases the
// next queued task, Heartbeat extends the lease and stores the epoch results
// (the learning curve), ReportResult ends the attempt. Only the worker that
// holds the lease may heartbeat or report; anything else is answered
// FAILED_PRECONDITION and changes nothing. An attempt that fails (reported,
// or its lease expired: an event of the broker's own lease thread) is retried
// with the next attempt number until evaluator.max_attempts, then the trial
// is FAILED. An outcome is committed to the store before it is acknowledged,
// then handed to the round that waits for it (RoundOutcomes) and to the job
// owner (TrialListener). A commit that fails (a full disk) is answered to
// the worker that reported (it retries; its lease stays), and an outcome the
// broker decided itself (a lease that expired on the last attempt, a
// cancellation, a cache hit's answer) is committed again with backoff by the
// lease thread until it is stored: no trial stays in flight without a lease
// or a commit to come.
//
// The broker also keeps each job's result cache: the canonical architectures
// the job evaluated (with the succeeded evaluation's metrics) or is
// evaluating. A dispatched sample of such an architecture is never queued
// for a worker: it is stored with Trial.cached_from naming that evaluation
// and gets its metrics at once, or when the evaluation in flight ends (its
// failure or cancellation ends the sample the same way, and a failed
// architecture leaves the cache so that a later sample evaluates it again).
//
// Across jobs (evaluator.reuse_results): the broker also keeps the shared
// results, the first succeeded, full (not stopped early) evaluation of each
// architecture by any job with reuse on, by ReuseFingerprint. A sample of a
// job with reuse on that its own cache does not know, whose architecture
// and fingerprint have a shared result from another job, is answered with
// that result's metrics at once: a cache hit with Trial.cached_from_job and
// cached_from naming the source.
#ifndef NAS_CONTROLLER_TRIAL_BROKER_H_
#define NAS_CONTROLLER_TRIAL_BROKER_H_

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
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "controller/early_stopping.h"
#include "controller/task_queue.h"
#include "controller/trial_store.h"
#include "proto/job.pb.h"
#include "proto/task_service.pb.h"

namespace nas::controller {

// The parameter-server tensor set holding a one-shot job's supernet weights ω
// (Task.shared.omega_set; docs/one_shot.md).
inline std::string OmegaSetId(const std::string& job_id) { return job_id + ".omega"; }

class ControllerMetrics;

// What must be equal for one job's evaluation to answer another's sample
// (evaluator.reuse_results), besides the canonical architecture: the search
// space, the reward (the worker computes it, and reward.last_epochs picks
// the accuracy) and the evaluator spec less max_attempts, lease_seconds,
// max_parameters, max_activation_bytes and reuse_results, which do not
// change a measurement. Bytes (deterministic serialization), compared, never
// stored. `spec` with defaults applied.
std::string ReuseFingerprint(const v1::JobSpec& spec);

// The final outcomes of the trials one replica round waits for. The broker
// adds them as they are stored; the replica waits for all of them, or until
// the job owner abandons the round (the job stops). Thread-safe.
class RoundOutcomes {
 public:
  explicit RoundOutcomes(int expected) : expected_(expected) {}

  // One trial's stored final outcome (architecture and replica filled in).
  void Add(v1::Trial trial) ABSL_LOCKS_EXCLUDED(mu_);
  // Ends the wait: Wait returns CANCELLED from now on.
  void Abandon() ABSL_LOCKS_EXCLUDED(mu_);
  // Blocks until every expected outcome has arrived (returned in arrival
  // order) or the round is abandoned (CANCELLED).
  absl::StatusOr<std::vector<v1::Trial>> Wait() ABSL_LOCKS_EXCLUDED(mu_);

 private:
  absl::Mutex mu_;
  const int expected_;
  bool abandoned_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<v1::Trial> outcomes_ ABSL_GUARDED_BY(mu_);
};

// How the job owner hears of final outcomes.
class TrialListener {
 public:
  virtual ~TrialListener() = default;
  // `trial` (of a job the broker dispatches) was stored in a final state.
  // Called once per trial, without the broker's lock, on the trial store's
  // writer thread: it must not call the store's blocking trial writes.
  virtual void OnTrialFinal(const v1::Trial& trial) = 0;
};

// An unfinished trial found in the store after a restart, and the round (if
// any) that waits for it.
struct AdoptedTrial {
  v1::Trial trial;
  std::shared_ptr<RoundOutcomes> outcomes;
};

// What a heartbeat tells the worker.
struct HeartbeatAnswer {
  // Stop: the job ended (the attempt's outcome will be CANCELLED).
  bool cancel = false;
  // Early stopping: stop training and report the epochs so far.
  bool stop = false;
};

struct TrialBrokerOptions {
  // Durable record of trials. Not owned; must outlive the broker.
  TrialStore* store = nullptr;
  // Time source for leases. Not owned.
  Clock* clock = Clock::Real();
  // Told of every final outcome. Not owned; may be null.
  TrialListener* listener = nullptr;
  // How often expired leases are looked for.
  absl::Duration lease_check_interval = absl::Milliseconds(250);
  // Metrics, when set. Not owned.
  ControllerMetrics* metrics = nullptr;
  // Backoff between commits of an outcome the store refused (doubles up to max).
  absl::Duration commit_retry_initial_backoff = absl::Milliseconds(100);
  absl::Duration commit_retry_max_backoff = absl::Seconds(2);
};

class TrialBroker {
 public:
  static absl::StatusOr<std::unique_ptr<TrialBroker>> Create(const TrialBrokerOptions& options);
  // Shutdown, then waits for nothing more: callbacks of outcomes still being
  // committed may run until the store is flushed, so flush it first.
  ~TrialBroker();

  // Stops the lease thread (no attempt ends by expiry from now on) and ends
  // every long poll. Idempotent.
  void Shutdown() ABSL_LOCKS_EXCLUDED(mu_);

  // --- the job owner ---
  // Starts dispatching a job's trials; `spec` (with defaults) fills their tasks.
  void OpenJob(const std::string& job_id, const v1::JobSpec& spec) ABSL_LOCKS_EXCLUDED(mu_);
  // Takes over a resumed job's unfinished trials before any replica runs,
  // after reloading its result cache from `evaluated` (the job's succeeded
  // evaluations, TrialStore::EvaluatedTrials, read by the owner before the
  // broker hears of the job): an attempt the store marks running keeps its
  // worker's lease (from now), a queued trial is queued with its next
  // attempt, and a cache hit waits on (or is answered by) its evaluation
  // again.
  void Adopt(const std::string& job_id, std::vector<AdoptedTrial> trials,
             std::vector<v1::Trial> evaluated) ABSL_LOCKS_EXCLUDED(mu_);
  // Makes `evaluated` (a job's succeeded evaluations, TrialStore::
  // EvaluatedTrials) shared results for other jobs when `spec` (the job's,
  // with defaults) has evaluator.reuse_results; does nothing otherwise. The
  // owner calls it for every stored job after a restart, before any job
  // dispatches; while the broker runs, evaluations are shared as they end.
  void AddSharedResults(const v1::JobSpec& spec, const std::vector<v1::Trial>& evaluated)
      ABSL_LOCKS_EXCLUDED(mu_);
  // Stops dispatching the job: queued trials are stored CANCELLED, leases
  // answer "cancel" at the next heartbeat, and attempts that end from now on
  // (other than successes) are stored CANCELLED. Does not wait for the
  // store; Flush the store to see the cancellations.
  void CloseJob(const std::string& job_id) ABSL_LOCKS_EXCLUDED(mu_);

  // --- the replicas ---
  // Stores `trials` (QUEUED, in `round`), queues the first attempts of those
  // the result cache cannot answer, and delivers each one's final outcome to
  // `outcomes`. `cache_hits` (may be null) gets how many the cache answers
  // (no worker runs them). FAILED_PRECONDITION when the job is not open
  // (closed: nothing is stored).
  absl::Status Dispatch(const std::string& job_id, int64_t round, std::vector<v1::Trial> trials,
                        std::shared_ptr<RoundOutcomes> outcomes, int* cache_hits = nullptr)
      ABSL_LOCKS_EXCLUDED(mu_);

  // --- the workers (TaskService) ---
  // A queued task leased to `worker_id`, or nullopt at once.
  std::optional<v1::Task> TryAcquire(const std::string& worker_id) ABSL_LOCKS_EXCLUDED(mu_);
  // The long poll without a thread: `done` is called exactly once, with a
  // leased task or with nullopt at `deadline`, after CancelAcquire(*waiter)
  // or at shutdown; possibly before this returns.
  void AcquireAsync(const std::string& worker_id, absl::Time deadline,
                    std::function<void(std::optional<v1::Task>)> done,
                    std::shared_ptr<std::atomic<int64_t>> waiter) ABSL_LOCKS_EXCLUDED(mu_);
  void CancelAcquire(int64_t waiter) { queue_.CancelWaiter(waiter); }
  // Extends the lease and stores `epochs` as the attempt's learning curve.
  // Answers cancel when the job ended, and stop when the job's early-stopping
  // rule stops the trial on its curve so far (once; the trial's result is
  // then marked metrics.stopped_early). FAILED_PRECONDITION when `worker_id`
  // does not hold the lease.
  absl::StatusOr<HeartbeatAnswer> Heartbeat(const std::string& task_id, const std::string& worker_id,
                                 const std::vector<v1::EpochResult>& epochs)
      ABSL_LOCKS_EXCLUDED(mu_);
  // Stores a chunk of the attempt's output (TrialStore::AppendLogAsync) for
  // the worker holding the task's lease; FAILED_PRECONDITION for anyone else.
  absl::Status AppendLog(const std::string& task_id, const std::string& worker_id, int64_t offset,
                         std::string data, bool complete) ABSL_LOCKS_EXCLUDED(mu_);
  // Ends the reporter's attempt: `done` gets whether the report was a
  // duplicate (the holder's result for a trial already final), once the
  // outcome is committed (on the store's writer thread) or at once.
  // FAILED_PRECONDITION when the reporter does not hold the lease.
  void ReportAsync(const v1::ReportResultRequest& report,
                   std::function<void(absl::StatusOr<bool>)> done) ABSL_LOCKS_EXCLUDED(mu_);

  // --- status ---
  // Outcomes waiting to be committed again (the store refused them).
  int64_t uncommitted() ABSL_LOCKS_EXCLUDED(mu_);
  int64_t queued() { return queue_.queued(); }
  int64_t leased() { return queue_.leased(); }
  // Workers that polled or heartbeated within `window`.
  int ConnectedWorkers(absl::Duration window) { return queue_.ConnectedWorkers(window); }

 private:
  // One trial in flight.
  struct InFlight {
    // As sampled: architecture, replica, create time; cached_from for a
    // cache hit, which has no task.
    v1::Trial trial;
    int attempt = 1;  // the live task's attempt number
    std::shared_ptr<RoundOutcomes> outcomes;
    // Whether its row is in the store (Dispatch inserts it after routing).
    bool inserted = false;
    // A cache hit's outcome, decided before its row was inserted: Dispatch
    // finishes it after the insert.
    std::optional<v1::Trial> answer;
    // The live attempt's validation accuracy per epoch (heartbeats), for
    // early stopping; and whether the rule stopped it.
    std::vector<double> curve;
    bool stopped = false;
  };
  // One architecture of a job's result cache.
  struct CacheEntry {
    std::string trial_id;  // the evaluation
    // Its metrics once it succeeded; unset while it is in flight.
    std::optional<v1::TrialMetrics> metrics;
    // Cache hits (trial ids) waiting for it to end.
    std::vector<std::string> waiters;
  };
  struct JobTrials {
    v1::Task task_template;  // search space, evaluator, reward, lease
    // One-shot jobs (evaluator.shared): search tasks carry Task.shared and
    // skip the result cache (ω changes, so every sample is evaluated); the
    // final trials (Trial.final_training) are trained from scratch with
    // final_template's evaluator (evaluator.shared.final_training).
    bool shared_search = false;
    v1::Task final_template;
    int max_attempts = 1;
    bool closed = false;
    // The job's early-stopping rule; null when it has none.
    std::unique_ptr<EarlyStopping> stopping;
    absl::flat_hash_map<std::string, InFlight> trials;
    // By canonical architecture.
    absl::flat_hash_map<std::string, CacheEntry> cache;
    // ReuseFingerprint of the job's spec when it has evaluator.reuse_results;
    // empty otherwise.
    std::string reuse_fingerprint;
  };
  // A shared result (evaluator.reuse_results): the evaluation and its metrics.
  struct SharedResult {
    std::string job_id, trial_id;
    v1::TrialMetrics metrics;
  };
  // How an attempt that did not succeed ends.
  struct AttemptFailure {
    std::string job_id, trial_id, worker_id;
    int attempt = 0;
    std::string error;
    bool permanent = false;
  };
  // An outcome the broker decided whose commit failed, to be tried again.
  struct UncommittedOutcome {
    v1::Trial outcome;
    absl::Time next_try;
    absl::Duration backoff;
    int tries = 0;
  };

  explicit TrialBroker(const TrialBrokerOptions& options);

  // The result cache's key of `trial`: its canonical architecture, or empty
  // (never cached) for a one-shot job's search trial.
  static std::string CacheKey(const JobTrials& job, const v1::Trial& trial);
  v1::Task MakeTask(const JobTrials& job, const InFlight& trial)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Routes a new in-flight trial through the job's result cache: a hit gets
  // trial.cached_from and either its outcome in `answered` (the evaluation
  // succeeded) or a place among the evaluation's waiters; anything else
  // becomes the cache's in-flight evaluation of its architecture (when it
  // has a canonical form) and its task goes to `tasks`. True for a hit.
  // An adopted trial (already stored) keeps its stored role: an evaluation
  // runs even when the cache knows its architecture, and a hit whose
  // evaluation ended before the restart is FAILED.
  bool RouteLocked(JobTrials& job, InFlight in_flight, std::vector<v1::Task>* tasks,
                   std::vector<v1::Trial>* answered) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Hands cache hit `waiter` its outcome: into `answered` when its row is
  // stored, else kept for Dispatch to finish after the insert.
  void AnswerLocked(JobTrials& job, const std::string& waiter, v1::Trial outcome,
                    std::vector<v1::Trial>* answered) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Answers fresh sample `in_flight` from another job's shared result when
  // the job has reuse on and one matches: sets cached_from(_job), keeps the
  // trial in flight and hands its outcome to AnswerLocked. False (nothing
  // changed) otherwise.
  bool ReuseLocked(JobTrials& job, InFlight& in_flight, std::vector<v1::Trial>* answered)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Shares `evaluation` (of a job with fingerprint `fingerprint`) when it
  // succeeded in full and its key has no shared result yet.
  void ShareLocked(const std::string& fingerprint, const v1::Trial& evaluation)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Undoes RouteLocked for a trial whose row could not be inserted.
  void ForgetLocked(JobTrials& job, const std::string& trial_id)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Queues the trial's current attempt; a job closed meanwhile cancels it.
  void Enqueue(v1::Task task) ABSL_LOCKS_EXCLUDED(mu_);
  // Marks a freshly leased task running in the store.
  void OnLeased(const v1::Task& task, const std::string& worker_id);
  // Retries the attempt's trial, or stores it FAILED (attempts spent,
  // permanent) or CANCELLED (job closed). `done(false)` once handled.
  // `keep_trying`: see Finish.
  void AttemptFailed(const AttemptFailure& failure, bool keep_trying,
                     std::function<void(absl::StatusOr<bool>)> done) ABSL_LOCKS_EXCLUDED(mu_);
  // Commits `outcome` (a final state) and then hands it on; `done` gets
  // whether it was a duplicate, or the store's error. `keep_trying`: the
  // broker decided the outcome (no worker waits to report it again), so a
  // failed commit is retried by the lease thread until it is stored.
  void Finish(v1::Trial outcome, bool keep_trying, std::function<void(absl::StatusOr<bool>)> done)
      ABSL_LOCKS_EXCLUDED(mu_);
  // Finish for the broker's own outcomes: keeps trying, nothing waits.
  void FinishOwn(v1::Trial outcome) ABSL_LOCKS_EXCLUDED(mu_);
  // Commits again the outcomes whose retry time has come.
  void RetryCommits() ABSL_LOCKS_EXCLUDED(mu_);
  // After the commit of a newly final trial.
  void OnFinal(v1::Trial outcome) ABSL_LOCKS_EXCLUDED(mu_);
  // A report from a worker that holds no lease: a duplicate of the
  // holder's own stored result, or FAILED_PRECONDITION.
  absl::StatusOr<bool> CheckUnleasedReport(const TaskIdParts& parts, const std::string& worker_id);
  void RunLeaseChecks() ABSL_LOCKS_EXCLUDED(mu_);

  const TrialBrokerOptions options_;
  TaskQueue queue_;

  // Lock order: mu_ is never held while calling the queue's methods that
  // run callbacks (Enqueue) or the store.
  absl::Mutex mu_;
  std::map<std::string, JobTrials> jobs_ ABSL_GUARDED_BY(mu_);
  bool shutting_down_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<UncommittedOutcome> uncommitted_ ABSL_GUARDED_BY(mu_);
  // By ReuseFingerprint and canonical architecture.
  absl::flat_hash_map<std::string, SharedResult> shared_results_ ABSL_GUARDED_BY(mu_);
  std::thread lease_checks_;
};

}  // namespace nas::controller

#endif  // NAS_CONTROLLER_TRIAL_BROKER_H_
