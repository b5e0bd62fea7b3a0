#include "controller/task_queue.h"

#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace nas::controller {

std::string MakeTaskId(const std::string& job_id, const std::string& trial_id, int attempt) {
  return absl::StrCat(job_id, "/", trial_id, "#", attempt);
}

absl::StatusOr<TaskIdParts> ParseTaskId(const std::string& task_id) {
  const size_t slash = task_id.find('/');
  const size_t hash = task_id.rfind('#');
  TaskIdParts parts;
  if (slash == std::string::npos || hash == std::string::npos || hash < slash || slash == 0 ||
      hash == slash + 1 || !absl::SimpleAtoi(task_id.substr(hash + 1), &parts.attempt) ||
      parts.attempt < 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "task_id '", task_id.substr(0, 200), "' is not of the form <job_id>/<trial_id>#<attempt>"));
  }
  parts.job_id = task_id.substr(0, slash);
  parts.trial_id = task_id.substr(slash + 1, hash - slash - 1);
  return parts;
}

namespace {

std::string TrialKey(const std::string& job_id, const std::string& trial_id) {
  return absl::StrCat(job_id, "/", trial_id);
}

}  // namespace

TaskQueue::TaskQueue(Clock* clock) : clock_(clock) {
  expiry_ = std::thread([this] { ExpireWaiters(); });
}

TaskQueue::~TaskQueue() {
  Shutdown();
  if (expiry_.joinable()) expiry_.join();
}

bool TaskQueue::Enqueue(v1::Task task) {
  AcquireCallback done;
  std::optional<v1::Task> leased;
  {
    absl::MutexLock lock(&mu_);
    if (cancelled_jobs_.contains(task.job_id())) return false;
    ++queued_per_trial_[TrialKey(task.job_id(), task.trial_id())];
    const std::string job = task.job_id();
    queues_[job].push_back(std::move(task));
    if (waiters_.empty()) return true;
    // The oldest waiter gets the next task (round-robin over jobs as ever).
    Waiter waiter = TakeWaiter(waiters_.begin());
    leased = LeaseNext(waiter.worker_id);
    done = std::move(waiter.done);
  }
  done(std::move(leased));
  return true;
}

void TaskQueue::RestoreLease(v1::Task task, const std::string& worker_id) {
  absl::MutexLock lock(&mu_);
  Lease lease;
  lease.deadline = clock_->Now() + absl::Seconds(task.lease_seconds());
  lease.worker_id = worker_id;
  const std::string id = task.task_id();
  lease.task = std::move(task);
  leases_[id] = std::move(lease);
}

bool TaskQueue::IsLeasedTo(const std::string& task_id, const std::string& worker_id) {
  absl::MutexLock lock(&mu_);
  auto it = leases_.find(task_id);
  return it != leases_.end() && it->second.worker_id == worker_id;
}

std::optional<v1::Task> TaskQueue::TryAcquire(const std::string& worker_id) {
  absl::MutexLock lock(&mu_);
  workers_seen_[worker_id] = clock_->Now();
  if (shutdown_ || queues_.empty()) return std::nullopt;
  return LeaseNext(worker_id);
}

std::optional<v1::Task> TaskQueue::AcquireOrWait(const std::string& worker_id,
                                                 absl::Time deadline, AcquireCallback done,
                                                 int64_t* waiter_id) {
  {
    absl::MutexLock lock(&mu_);
    workers_seen_[worker_id] = clock_->Now();
    if (!shutdown_ && !queues_.empty()) return LeaseNext(worker_id);
    if (!shutdown_ && deadline > absl::Now()) {
      const int64_t id = next_waiter_id_++;
      if (waiter_id != nullptr) *waiter_id = id;
      waiters_[id] = Waiter{worker_id, deadline, std::move(done)};
      const bool earliest = waiter_deadlines_.empty() || deadline < waiter_deadlines_.begin()->first;
      waiter_deadlines_.emplace(deadline, id);
      if (earliest) expiry_cv_.Signal();
      return std::nullopt;
    }
  }
  done(std::nullopt);  // shutting down, or the deadline has passed
  return std::nullopt;
}

void TaskQueue::CancelWaiter(int64_t waiter_id) {
  AcquireCallback done;
  {
    absl::MutexLock lock(&mu_);
    auto it = waiters_.find(waiter_id);
    if (it == waiters_.end()) return;
    done = TakeWaiter(it).done;
  }
  done(std::nullopt);
}

TaskQueue::Waiter TaskQueue::TakeWaiter(std::map<int64_t, Waiter>::iterator it) {
  auto range = waiter_deadlines_.equal_range(it->second.deadline);
  for (auto d = range.first; d != range.second; ++d) {
    if (d->second == it->first) {
      waiter_deadlines_.erase(d);
      break;
    }
  }
  Waiter waiter = std::move(it->second);
  waiters_.erase(it);
  return waiter;
}

int TaskQueue::waiting() {
  absl::MutexLock lock(&mu_);
  return static_cast<int>(waiters_.size());
}

void TaskQueue::ExpireWaiters() {
  absl::MutexLock lock(&mu_);
  while (true) {
    std::vector<AcquireCallback> expired;
    const absl::Time now = absl::Now();
    while (!waiter_deadlines_.empty() &&
           (shutdown_ || waiter_deadlines_.begin()->first <= now)) {
      expired.push_back(TakeWaiter(waiters_.find(waiter_deadlines_.begin()->second)).done);
    }
    if (!expired.empty()) {
      mu_.Unlock();
      for (AcquireCallback& done : expired) done(std::nullopt);
      mu_.Lock();
      continue;
    }
    if (shutdown_) return;
    const absl::Time wake = waiter_deadlines_.empty() ? absl::InfiniteFuture()
                                                      : waiter_deadlines_.begin()->first;
    expiry_cv_.WaitWithDeadline(&mu_, wake);
  }
}

v1::Task TaskQueue::LeaseNext(const std::string& worker_id) {
  // Round-robin over jobs: the first job after the one served last.
  auto it = queues_.upper_bound(last_served_job_);
  if (it == queues_.end()) it = queues_.begin();
  v1::Task task = std::move(it->second.front());
  it->second.pop_front();
  auto count = queued_per_trial_.find(TrialKey(task.job_id(), task.trial_id()));
  if (count != queued_per_trial_.end() && --count->second <= 0) queued_per_trial_.erase(count);
  last_served_job_ = it->first;
  if (it->second.empty()) queues_.erase(it);
  Lease lease;
  lease.task = task;
  lease.worker_id = worker_id;
  lease.deadline = clock_->Now() + absl::Seconds(task.lease_seconds());
  leases_[task.task_id()] = std::move(lease);
  return task;
}

absl::StatusOr<Lease> TaskQueue::Heartbeat(const std::string& task_id,
                                           const std::string& worker_id) {
  absl::MutexLock lock(&mu_);
  workers_seen_[worker_id] = clock_->Now();
  auto it = leases_.find(task_id);
  if (it == leases_.end() || it->second.worker_id != worker_id) {
    return absl::NotFoundError(absl::StrCat("no lease on task ", task_id, " for worker ",
                                            worker_id, " (expired or finished)"));
  }
  it->second.deadline = clock_->Now() + absl::Seconds(it->second.task.lease_seconds());
  return it->second;
}

std::optional<Lease> TaskQueue::CompleteTrial(const std::string& job_id,
                                              const std::string& trial_id) {
  absl::MutexLock lock(&mu_);
  std::optional<Lease> ended;
  const std::string key = TrialKey(job_id, trial_id);
  const std::string prefix = key + "#";
  for (auto it = leases_.lower_bound(prefix);
       it != leases_.end() && absl::StartsWith(it->first, prefix);) {
    if (it->second.task.job_id() == job_id && it->second.task.trial_id() == trial_id) {
      if (!ended.has_value()) ended = it->second;
      leases_.erase(it++);
    } else {
      ++it;
    }
  }
  auto count = queued_per_trial_.find(key);
  if (count == queued_per_trial_.end()) return ended;
  queued_per_trial_.erase(count);
  auto queue = queues_.find(job_id);
  if (queue != queues_.end()) {
    std::deque<v1::Task>& tasks = queue->second;
    for (auto it = tasks.begin(); it != tasks.end();) {
      it = it->trial_id() == trial_id ? tasks.erase(it) : it + 1;
    }
    if (tasks.empty()) queues_.erase(queue);
  }
  return ended;
}

std::vector<Lease> TaskQueue::ExpireLeases() {
  absl::MutexLock lock(&mu_);
  const absl::Time now = clock_->Now();
  std::vector<Lease> expired;
  for (auto it = leases_.begin(); it != leases_.end();) {
    if (it->second.deadline <= now) {
      expired.push_back(std::move(it->second));
      leases_.erase(it++);
    } else {
      ++it;
    }
  }
  return expired;
}

std::vector<v1::Task> TaskQueue::CancelJob(const std::string& job_id) {
  absl::MutexLock lock(&mu_);
  std::vector<v1::Task> dropped;
  cancelled_jobs_.insert(job_id);
  auto queue = queues_.find(job_id);
  if (queue != queues_.end()) {
    dropped.assign(queue->second.begin(), queue->second.end());
    queues_.erase(queue);
    for (const v1::Task& task : dropped) queued_per_trial_.erase(TrialKey(task.job_id(), task.trial_id()));
  }
  for (auto& [id, lease] : leases_) {
    if (lease.task.job_id() == job_id) lease.cancelled = true;
  }
  return dropped;
}

void TaskQueue::Shutdown() {
  absl::MutexLock lock(&mu_);
  shutdown_ = true;
  expiry_cv_.SignalAll();
}

int64_t TaskQueue::queued() {
  absl::MutexLock lock(&mu_);
  int64_t n = 0;
  for (const auto& [job, tasks] : queues_) n += static_cast<int64_t>(tasks.size());
  return n;
}

int64_t TaskQueue::queued(const std::string& job_id) {
  absl::MutexLock lock(&mu_);
  auto it = queues_.find(job_id);
  return it == queues_.end() ? 0 : static_cast<int64_t>(it->second.size());
}

int64_t TaskQueue::leased() {
  absl::MutexLock lock(&mu_);
  return static_cast<int64_t>(leases_.size());
}

int64_t TaskQueue::leased(const std::string& job_id) {
  absl::MutexLock lock(&mu_);
  int64_t n = 0;
  for (const auto& [id, lease] : leases_) n += lease.task.job_id() == job_id ? 1 : 0;
  return n;
}

int TaskQueue::ConnectedWorkers(absl::Duration window) {
  absl::MutexLock lock(&mu_);
  const absl::Time since = clock_->Now() - window;
  int n = 0;
  for (const auto& [worker, seen] : workers_seen_) n += seen >= since ? 1 : 0;
  return n;
}

}  // namespace nas::controller
