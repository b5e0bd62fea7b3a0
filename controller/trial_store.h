// The controller's durable record: jobs and every trial, in an embedded SQLite
// database (WAL mode) under the controller's --data_dir. A trial's result is
// committed before the caller acknowledges it. People can read the database
// with the sqlite3 shell; docs/trial_store.md documents the schema.
//
// Failing disks: a write SQLite cannot do because the disk is full or the
// file cannot be written (SQLITE_FULL, SQLITE_IOERR) fails with
// RESOURCE_EXHAUSTED naming the store's file; nothing of it is stored, reads
// go on, and the caller (the owner of what was written) retries. Open runs
// PRAGMA quick_check and keeps its report (integrity_report); CheckJob reads
// every stored row of one job, so a job whose rows are damaged is found
// before it resumes. Backup writes an online copy (SQLite's backup API).
//
// Thread-safe: one connection, serialized by a mutex. Trial writes
// group-commit: the store's writer thread puts every InsertTrials /
// FinishTrial / MarkRunning / AppendCurveAsync queued since its last
// transaction into one transaction. The blocking calls return once the
// transaction holding their write has committed; FinishTrialAsync calls back
// after that commit, and MarkRunningAsync and AppendCurveAsync do not wait at
// all. Statements are prepared once per connection.
#ifndef NAS_CONTROLLER_TRIAL_STORE_H_
#define NAS_CONTROLLER_TRIAL_STORE_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "proto/job.pb.h"
#include "proto/job_service.pb.h"

struct sqlite3;

namespace nas::controller {

class StatementCache;

struct TrialStoreOptions {
  // Database file; created (with its directory) if missing.
  std::string path;
  // SQLite's synchronous setting: true = FULL (every commit fsynced: a result
  // survives power loss once acknowledged), false = NORMAL (survives a crash
  // of the process, may lose the last commits on power loss; faster).
  bool sync_every_commit = true;
  // SQLite VFS by name; empty: the default. Tests use one that fails writes
  // as a full disk does (full_disk_vfs.h).
  std::string vfs;
};

// One trial row as the replica loops need it after a restart.
struct PendingTrial {
  v1::Trial trial;
  // Replica round the trial belongs to (its gradient batch).
  int64_t round = 0;
};

// One attempt's stored output (the command evaluator's stdout and stderr).
struct TrialLog {
  int attempt = 0;
  // Where `data` starts in the attempt's output: the bytes before it were
  // dropped (the store keeps the last TrialStore::kMaxLogBytes).
  int64_t first_offset = 0;
  std::string data;
  // The worker sent the attempt's last chunk.
  bool complete = false;
};

class TrialStore {
 public:
  // The most of one attempt's output a store keeps (the last bytes).
  static constexpr int64_t kMaxLogBytes = int64_t{1} << 20;

  // DATA_LOSS naming the file and the restore procedure when it is too
  // damaged to open (not a database, unreadable schema).
  static absl::StatusOr<std::unique_ptr<TrialStore>> Open(const TrialStoreOptions& options);
  ~TrialStore();

  const std::string& path() const { return path_; }
  // PRAGMA quick_check's report at Open: "ok", or the damage it found.
  const std::string& integrity_report() const { return integrity_report_; }
  // Writes (of any kind) that failed on an SQLite error since Open.
  int64_t write_failures() const { return write_failures_.load(); }

  // Reads every stored trial row and curve row of a job (through the
  // primary-key index): an error names what of the job is damaged.
  absl::Status CheckJob(const std::string& job_id) ABSL_LOCKS_EXCLUDED(mu_);

  // Copies the whole database, consistent as of one moment, to `path` (a
  // new file; replaced if it exists) with SQLite's online backup API, a few
  // MiB at a time: writes go on between the steps.
  absl::Status Backup(const std::string& path) ABSL_LOCKS_EXCLUDED(mu_);


  TrialStore(const TrialStore&) = delete;
  TrialStore& operator=(const TrialStore&) = delete;

  // Jobs. CreateJob fails with ALREADY_EXISTS for a known id.
  absl::Status CreateJob(const v1::Job& job) ABSL_LOCKS_EXCLUDED(mu_);
  // Stores state, error, times, samples and baseline (the spec never changes).
  absl::Status UpdateJob(const v1::Job& job) ABSL_LOCKS_EXCLUDED(mu_);
  // Every job, oldest first, with its spec and the stored fields (counters
  // are not filled in; see CountTrials). A job whose row cannot be read (a
  // damaged page, a spec that does not parse) comes back FAILED with an error
  // naming it and the damage (its stored row is left as it is).
  absl::StatusOr<std::vector<v1::Job>> LoadJobs() ABSL_LOCKS_EXCLUDED(mu_);

  // Adds sampled trials (state QUEUED), all or none.
  absl::Status InsertTrials(const std::vector<PendingTrial>& trials) ABSL_LOCKS_EXCLUDED(mu_);

  // Records the final outcome of a trial (SUCCEEDED with metrics, or FAILED /
  // CANCELLED with error) and gives it the job's next completion sequence
  // number. Returns false, changing nothing, when the trial already has a
  // final outcome (a duplicate report). NOT_FOUND for an unknown trial.
  absl::StatusOr<bool> FinishTrial(const v1::Trial& trial) ABSL_LOCKS_EXCLUDED(mu_);

  // FinishTrial without waiting: `done` gets the same result, on the store's
  // writer thread, after the transaction holding the write has committed (or
  // failed). `done` must not call the blocking writes (InsertTrials,
  // FinishTrial, MarkRunning): they would wait for the thread running it.
  void FinishTrialAsync(v1::Trial trial, std::function<void(absl::StatusOr<bool>)> done)
      ABSL_LOCKS_EXCLUDED(queue_mu_, mu_);

  // Marks a trial RUNNING on `worker_id` with its attempt number (a trial
  // that already has a final outcome is left alone).
  absl::Status MarkRunning(const std::string& job_id, const std::string& trial_id,
                           const std::string& worker_id, int attempt) ABSL_LOCKS_EXCLUDED(mu_);
  // MarkRunning queued for the next group commit, without waiting for it (the
  // mark is informational: a restart re-queues QUEUED and RUNNING trials
  // alike). Safe on the writer thread.
  void MarkRunningAsync(std::string job_id, std::string trial_id, std::string worker_id,
                        int attempt) ABSL_LOCKS_EXCLUDED(queue_mu_, mu_);

  // Stores epoch results of one attempt of a trial (a heartbeat's), replacing
  // epochs already stored for that attempt. Queued for the next group commit
  // without waiting (like MarkRunningAsync): a curve point is progress, not a
  // result; losing the last ones in a crash is acceptable. Safe on the writer thread.
  //
  // Never fails the other writes of its batch: a curve that cannot be stored
  // (an unknown trial, an epoch < 1) is dropped whole, in its own savepoint.
  // A NaN (a diverged loss) is stored as NULL and read back as NaN.
  void AppendCurveAsync(std::string job_id, std::string trial_id, int attempt,
                        std::vector<v1::EpochResult> epochs) ABSL_LOCKS_EXCLUDED(queue_mu_, mu_);

  // Appends a chunk of an attempt's output starting at `offset` of it (see
  // v1::AppendTrialLogRequest): bytes already stored are skipped, a chunk
  // after a gap starts the log again, and only the last kMaxLogBytes are
  // kept. `complete` marks the attempt's output as ended. Queued for the
  // next group commit without waiting, like AppendCurveAsync (a log that
  // cannot be stored, e.g. of an unknown trial, is dropped alone).
  void AppendLogAsync(std::string job_id, std::string trial_id, int attempt, int64_t offset,
                      std::string data, bool complete) ABSL_LOCKS_EXCLUDED(queue_mu_, mu_);
  // The stored output of `attempt` (0: the highest attempt that has one).
  // NOT_FOUND when none is stored.
  absl::StatusOr<TrialLog> GetTrialLog(const std::string& job_id, const std::string& trial_id,
                                       int attempt) ABSL_LOCKS_EXCLUDED(mu_);

  // Returns once every write queued before it has committed and the
  // callbacks of the asynchronous ones have returned.
  absl::Status Flush() ABSL_LOCKS_EXCLUDED(queue_mu_, mu_);

  // Trials of a job not yet finished (QUEUED or RUNNING), with their rounds.
  absl::StatusOr<std::vector<PendingTrial>> UnfinishedTrials(const std::string& job_id)
      ABSL_LOCKS_EXCLUDED(mu_);

  // The job's succeeded trials that a worker evaluated (not cache hits), in
  // completion order: what the broker's result cache holds after a restart.
  absl::StatusOr<std::vector<v1::Trial>> EvaluatedTrials(const std::string& job_id)
      ABSL_LOCKS_EXCLUDED(mu_);

  // Finished trials of (job, replica, round): used to resume a round after a restart.
  absl::StatusOr<std::vector<v1::Trial>> RoundTrials(const std::string& job_id, int replica,
                                                      int64_t round) ABSL_LOCKS_EXCLUDED(mu_);

  // The highest round each replica of a job has stored (-1 if none).
  absl::StatusOr<std::vector<int64_t>> LastRounds(const std::string& job_id, int num_replicas)
      ABSL_LOCKS_EXCLUDED(mu_);

  struct TrialCounts {
    int64_t queued = 0, running = 0, succeeded = 0, failed = 0, cancelled = 0;
    // Trials answered (or waiting to be answered) by the result cache, in
    // any state: samples no worker ran.
    int64_t cache_hits = 0;
    // The compute ledger over succeeded evaluations (not cache hits): the
    // workers' train_seconds and epochs, the trials stopped early and the
    // epochs those trained.
    double worker_seconds = 0;
    int64_t epochs_trained = 0, trials_stopped = 0, stopped_epochs = 0;
    double best_reward = 0;
    // The best succeeded trial: a final one (Trial.final_training) when any
    // succeeded, since one-shot rewards and final accuracies do not compare.
    std::string best_trial_id;
    std::string best_canonical;
    // Over the search's succeeded trials: one-shot rewards and the final
    // trials' accuracies (Trial.final_training) do not average together.
    double mean_reward = 0;
    // Final trials (Trial.final_training) that ended, in any state: they
    // come after the search's budget and do not count against it.
    int64_t final_finished = 0;
  };
  absl::StatusOr<TrialCounts> CountTrials(const std::string& job_id) ABSL_LOCKS_EXCLUDED(mu_);

  // A page of a job's trials. `offset` comes from the caller's page token.
  absl::StatusOr<std::vector<v1::Trial>> ListTrials(const std::string& job_id,
                                                     v1::ListTrialsRequest::Order order,
                                                     v1::TrialState state, int64_t offset,
                                                     int limit, int64_t* total)
      ABSL_LOCKS_EXCLUDED(mu_);

  // One trial; an empty trial_id means the best succeeded trial. NOT_FOUND if
  // none. Trial.curve is the latest attempt's learning curve: the stored
  // curve rows of the highest attempt that has any, or the final metrics'
  // epochs when they belong to a later attempt (Trial.attempts) or no rows
  // are stored (a trial finished before curves were stored, or by workers
  // that sent no epochs in heartbeats). Rows win over metrics of the same
  // attempt. The list reads (ListTrials, TrialsAfter) leave it empty.
  absl::StatusOr<v1::Trial> GetTrial(const std::string& job_id, const std::string& trial_id)
      ABSL_LOCKS_EXCLUDED(mu_);

  // Finished trials in completion order with sequence > after_sequence (for
  // WatchJob), at most `limit`.
  absl::StatusOr<std::vector<v1::Trial>> TrialsAfter(const std::string& job_id,
                                                      int64_t after_sequence, int limit)
      ABSL_LOCKS_EXCLUDED(mu_);

 private:
  // One InsertTrials, FinishTrial, AppendCurveAsync, AppendLogAsync or MarkRunning waiting
  // for its group commit. A blocking call's write lives on its caller's
  // stack; an asynchronous one is owned by the queue and deleted after its
  // callback.
  struct QueuedWrite {
    const std::vector<PendingTrial>* insert = nullptr;  // InsertTrials
    v1::Trial finish;                                   // FinishTrial if has_finish
    bool has_finish = false;
    std::vector<v1::EpochResult> curve;  // AppendCurveAsync if has_curve
    bool has_curve = false;
    bool has_log = false;  // AppendLogAsync: offset, bytes, complete
    int64_t log_offset = 0;
    std::string log_data;
    bool log_complete = false;
    std::string job_id, trial_id, worker_id;  // else MarkRunning (and the curve's trial)
    int attempt = 0;
    absl::StatusOr<bool> result = false;
    // Asynchronous writes: called after the commit (may be empty: a mark).
    std::function<void(absl::StatusOr<bool>)> callback;
    bool async = false;
    // Blocking writes: notified after the commit; the caller owns the write
    // again from then on.
    absl::Notification committed;
  };

  TrialStore(sqlite3* db, std::string path);

  // `status` of a failed write: counted, and a disk-full or I/O error
  // (RESOURCE_EXHAUSTED from the statement) reworded to name the file.
  absl::Status WriteFailed(absl::Status status);

  absl::Status Exec(const char* sql) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Adds the kAddedColumns a database made by an older controller lacks.
  absl::Status AddMissingColumnsLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // One statement through the statement cache (transaction control).
  absl::Status ExecCached(const char* sql) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Queues a blocking `write` and returns once a committed (or failed)
  // transaction holds it.
  void Submit(QueuedWrite* write) ABSL_LOCKS_EXCLUDED(queue_mu_, mu_);
  // Queues an asynchronous write (the queue takes ownership).
  void SubmitAsync(std::unique_ptr<QueuedWrite> write) ABSL_LOCKS_EXCLUDED(queue_mu_, mu_);
  // The writer thread: one transaction per batch of queued writes, until
  // the destructor stops it with an empty queue.
  void WriteLoop() ABSL_LOCKS_EXCLUDED(queue_mu_, mu_);
  // Applies `batch` in one transaction; on an SQLite error every write in it
  // fails with that error and nothing is stored.
  void ApplyWrites(const std::vector<QueuedWrite*>& batch) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::StatusOr<bool> FinishLocked(const v1::Trial& trial) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status InsertLocked(const std::vector<PendingTrial>& trials)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Merges the chunk of an AppendLogAsync write into its attempt's row.
  absl::Status AppendLogLocked(const QueuedWrite& write) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Upserts the epochs of an AppendCurveAsync write.
  absl::Status AppendCurveLocked(const QueuedWrite& write) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Fills trial->curve (see GetTrial).
  absl::Status ReadCurveLocked(v1::Trial* trial) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // Lock order: queue_mu_ is never held while taking mu_ (declared on mu_,
  // checked by clang's -Wthread-safety-beta).
  absl::Mutex queue_mu_;
  std::vector<QueuedWrite*> queue_ ABSL_GUARDED_BY(queue_mu_);
  absl::CondVar queued_;  // signalled when the idle writer has work or must stop
  bool writer_idle_ ABSL_GUARDED_BY(queue_mu_) = false;
  bool stopping_ ABSL_GUARDED_BY(queue_mu_) = false;
  std::thread writer_;

  const std::string path_;
  std::string integrity_report_;  // set by Open, constant after
  std::atomic<int64_t> write_failures_{0};

  absl::Mutex mu_ ABSL_ACQUIRED_BEFORE(queue_mu_);
  sqlite3* db_ ABSL_GUARDED_BY(mu_);
  std::unique_ptr<StatementCache> statements_ ABSL_GUARDED_BY(mu_);
};

// Scheduled online backups of a trial store: every `interval`, a Backup to
// `dir`/trials-YYYYMMDD-HHMMSS.db (written as a temp file, fsynced, then
// renamed), keeping the newest `keep` of them. docs/trial_store.md has the
// restore procedure.
struct TrialStoreBackupOptions {
  TrialStore* store = nullptr;  // not owned
  std::string dir;
  absl::Duration interval = absl::Hours(1);
  int keep = 24;
};

class TrialStoreBackups {
 public:
  // Starts the backup thread; the first backup is taken after one interval.
  static absl::StatusOr<std::unique_ptr<TrialStoreBackups>> Start(
      const TrialStoreBackupOptions& options);
  // Stops the thread (a backup in progress finishes first).
  ~TrialStoreBackups();

  // One backup now, then the oldest beyond `keep` removed. The new file's path.
  absl::StatusOr<std::string> BackupNow() ABSL_LOCKS_EXCLUDED(mu_);

 private:
  explicit TrialStoreBackups(const TrialStoreBackupOptions& options) : options_(options) {}
  void Run() ABSL_LOCKS_EXCLUDED(mu_);

  const TrialStoreBackupOptions options_;
  absl::Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  int64_t last_second_ ABSL_GUARDED_BY(mu_) = 0;  // names stay unique
  std::thread thread_;
};

// Job and trial state names as stored in the database ("running", "succeeded").
std::string JobStateName(v1::JobState state);
std::string TrialStateName(v1::TrialState state);
// Whether a trial in `state` is done: succeeded, failed or cancelled.
bool IsFinal(v1::TrialState state);

// An architecture as the store writes it: the JSON protobuf's printer gives
// (field names as in the .proto, default values left out). The macro-CNN form,
// which the control plane stores for every trial, is written directly; the
// printer, reflection-driven, cost 2.5 % of the controller's CPU at the paper's
// configuration. Other forms go through the printer.
std::string ArchitectureJson(const v1::Architecture& architecture);

}  // namespace nas::controller

#endif  // NAS_CONTROLLER_TRIAL_STORE_H_
