// Tasks waiting for workers, and the leases of tasks workers hold.
//
// Queues are per job and served round-robin, so concurrent jobs share the
// workers fairly. A worker long-polls AcquireOrWait; the task it gets is leased to
// it until lease_seconds after its last heartbeat. Expired leases are handed
// back by ExpireLeases (the trial broker re-queues with attempt + 1 or fails
// the trial). Pure bookkeeping: no I/O, no gRPC; thread-safe.
#ifndef NAS_CONTROLLER_TASK_QUEUE_H_
#define NAS_CONTROLLER_TASK_QUEUE_H_

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <optional>
#include <set>
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
#include "proto/task_service.pb.h"

namespace nas::controller {

// "<job_id>/<trial_id>#<attempt>": unique per attempt.
std::string MakeTaskId(const std::string& job_id, const std::string& trial_id, int attempt);
struct TaskIdParts {
  std::string job_id;
  std::string trial_id;
  int attempt = 0;
};
absl::StatusOr<TaskIdParts> ParseTaskId(const std::string& task_id);

struct Lease {
  v1::Task task;
  std::string worker_id;
  absl::Time deadline;
  // Set when the job was cancelled: the next heartbeat answers cancel.
  bool cancelled = false;
};

class TaskQueue {
 public:
  explicit TaskQueue(Clock* clock);
  ~TaskQueue();

  // How an asynchronous acquire ends: a task leased to the waiting worker,
  // or nullopt (deadline, CancelWaiter, Shutdown).
  using AcquireCallback = std::function<void(std::optional<v1::Task>)>;

  // Queues a task (task_id, job_id, trial_id, attempt and lease_seconds set).
  // Returns false, queueing nothing, when its job was cancelled (CancelJob).
  bool Enqueue(v1::Task task) ABSL_LOCKS_EXCLUDED(mu_);

  // Leases `task` to `worker_id` without queueing it: an attempt that was
  // running when the controller restarted keeps its worker. The lease lasts
  // lease_seconds from now.
  void RestoreLease(v1::Task task, const std::string& worker_id) ABSL_LOCKS_EXCLUDED(mu_);

  // Whether `worker_id` holds the lease on `task_id` now.
  bool IsLeasedTo(const std::string& task_id, const std::string& worker_id)
      ABSL_LOCKS_EXCLUDED(mu_);

  // Leases a queued task to `worker_id` and returns it; nullopt when none is
  // queued (it never waits). Also records the worker as seen.
  std::optional<v1::Task> TryAcquire(const std::string& worker_id) ABSL_LOCKS_EXCLUDED(mu_);

  // The long poll without a thread: if a task is queued, leases it to
  // `worker_id` and returns it (`done` is dropped). Otherwise registers
  // `done` and returns nullopt; `done` is then called exactly once, from
  // whichever thread ends the wait and without the queue's lock: with a task
  // leased to `worker_id` when one is enqueued (waiters are served first
  // come, first served), or with nullopt at `deadline` (real time), on
  // CancelWaiter(*waiter_id) or on Shutdown.
  std::optional<v1::Task> AcquireOrWait(const std::string& worker_id, absl::Time deadline,
                                        AcquireCallback done, int64_t* waiter_id)
      ABSL_LOCKS_EXCLUDED(mu_);
  // Ends a registered wait with nullopt; nothing if it has ended already.
  void CancelWaiter(int64_t waiter_id) ABSL_LOCKS_EXCLUDED(mu_);
  int waiting() ABSL_LOCKS_EXCLUDED(mu_);

  // Extends the lease of `task_id` held by `worker_id`. NOT_FOUND when there
  // is no such lease (expired, completed, or held by another worker). Returns
  // the lease as it is after the heartbeat (check `cancelled`).
  absl::StatusOr<Lease> Heartbeat(const std::string& task_id, const std::string& worker_id)
      ABSL_LOCKS_EXCLUDED(mu_);

  // Ends the lease of `task_id` (if any) and drops every queued or leased
  // task of the same trial (a result for the trial arrived). Returns the
  // lease that ended, if there was one.
  std::optional<Lease> CompleteTrial(const std::string& job_id, const std::string& trial_id)
      ABSL_LOCKS_EXCLUDED(mu_);

  // Removes and returns the leases whose deadline has passed.
  std::vector<Lease> ExpireLeases() ABSL_LOCKS_EXCLUDED(mu_);

  // Drops the job's queued tasks (returned), marks its leases cancelled and
  // refuses its tasks from now on.
  std::vector<v1::Task> CancelJob(const std::string& job_id) ABSL_LOCKS_EXCLUDED(mu_);

  // Ends every asynchronous wait with nullopt, and refuses new ones.
  void Shutdown() ABSL_LOCKS_EXCLUDED(mu_);

  int64_t queued() ABSL_LOCKS_EXCLUDED(mu_);
  int64_t queued(const std::string& job_id) ABSL_LOCKS_EXCLUDED(mu_);
  int64_t leased() ABSL_LOCKS_EXCLUDED(mu_);
  int64_t leased(const std::string& job_id) ABSL_LOCKS_EXCLUDED(mu_);
  // Workers that acquired (or tried to) or heartbeat within `window`.
  int ConnectedWorkers(absl::Duration window) ABSL_LOCKS_EXCLUDED(mu_);

 private:
  // Pops the next task (round-robin over jobs) and leases it to `worker_id`.
  // Requires a queued task.
  v1::Task LeaseNext(const std::string& worker_id) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Ends waits whose deadline has passed (a thread of its own).
  void ExpireWaiters() ABSL_LOCKS_EXCLUDED(mu_);

  struct Waiter {
    std::string worker_id;
    absl::Time deadline;
    AcquireCallback done;
  };
  // Removes a registered wait (and its deadline entry) and returns it.
  Waiter TakeWaiter(std::map<int64_t, Waiter>::iterator it) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  Clock* const clock_;

  absl::Mutex mu_;
  // Per-job FIFO of tasks; empty queues are erased.
  std::map<std::string, std::deque<v1::Task>> queues_ ABSL_GUARDED_BY(mu_);
  // Queued tasks per "<job_id>/<trial_id>", so completing a trial that is
  // not queued (the usual case) does not scan its job's queue.
  absl::flat_hash_map<std::string, int> queued_per_trial_ ABSL_GUARDED_BY(mu_);
  // The job served last; the next lease serves the next job after it.
  std::string last_served_job_ ABSL_GUARDED_BY(mu_);
  // By task id "<job_id>/<trial_id>#<attempt>": the attempts of a trial are
  // adjacent, so completing a trial looks at its own leases only.
  std::map<std::string, Lease> leases_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, absl::Time> workers_seen_ ABSL_GUARDED_BY(mu_);
  // Jobs whose tasks are refused (CancelJob).
  absl::flat_hash_set<std::string> cancelled_jobs_ ABSL_GUARDED_BY(mu_);
  bool shutdown_ ABSL_GUARDED_BY(mu_) = false;
  // Asynchronous waiters by id (ids grow: the first is the oldest), and
  // their deadlines for the expiry thread.
  std::map<int64_t, Waiter> waiters_ ABSL_GUARDED_BY(mu_);
  std::multimap<absl::Time, int64_t> waiter_deadlines_ ABSL_GUARDED_BY(mu_);
  int64_t next_waiter_id_ ABSL_GUARDED_BY(mu_) = 0;
  absl::CondVar expiry_cv_;
  std::thread expiry_;
};

}  // namespace nas::controller

#endif  // NAS_CONTROLLER_TASK_QUEUE_H_
