#include "controller/trial_broker.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/logging.h"
#include "controller/controller_metrics.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/io/zero_copy_stream_impl_lite.h"

namespace nas::controller {
namespace {

// The outcome of a trial whose task (attempt `attempt`) never ran because
// its job ended.
v1::Trial CancelledBeforeItRan(const std::string& job_id, const std::string& trial_id,
                               int attempt) {
  v1::Trial cancelled;
  cancelled.set_job_id(job_id);
  cancelled.set_trial_id(trial_id);
  cancelled.set_state(v1::TRIAL_STATE_CANCELLED);
  cancelled.set_attempts(attempt - 1);
  cancelled.set_error("the job ended before the trial ran");
  return cancelled;
}

// The outcome of cache hit `trial_id`, answered by the final outcome of the
// evaluation it reuses: the same state and metrics, no attempt of its own.
v1::Trial CacheHitOutcome(const std::string& trial_id, const v1::Trial& source) {
  v1::Trial hit;
  hit.set_job_id(source.job_id());
  hit.set_trial_id(trial_id);
  hit.set_state(source.state());
  hit.set_cached_from(source.trial_id());
  if (source.state() == v1::TRIAL_STATE_SUCCEEDED) {
    *hit.mutable_metrics() = source.metrics();
  } else {
    hit.set_error(absl::StrCat("the evaluation this sample reuses, trial ", source.trial_id(),
                               ", ended ", TrialStateName(source.state()), ": ", source.error()));
  }
  return hit;
}

// The key of a shared result.
std::string ReuseKey(const std::string& fingerprint, const std::string& canonical) {
  return absl::StrCat(fingerprint.size(), ":", fingerprint, canonical);
}

}  // namespace

std::string ReuseFingerprint(const v1::JobSpec& spec) {
  v1::JobSpec key;
  *key.mutable_search_space() = spec.search_space();
  *key.mutable_reward() = spec.reward();
  v1::EvaluatorSpec* evaluator = key.mutable_evaluator();
  *evaluator = spec.evaluator();
  evaluator->clear_max_attempts();
  evaluator->clear_lease_seconds();
  evaluator->clear_max_parameters();
  evaluator->clear_max_activation_bytes();
  evaluator->clear_reuse_results();
  std::string bytes;
  {
    google::protobuf::io::StringOutputStream stream(&bytes);
    google::protobuf::io::CodedOutputStream coded(&stream);
    coded.SetSerializationDeterministic(true);
    key.SerializeToCodedStream(&coded);
  }
  return bytes;
}

void RoundOutcomes::Add(v1::Trial trial) {
  absl::MutexLock lock(&mu_);
  outcomes_.push_back(std::move(trial));
}

void RoundOutcomes::Abandon() {
  absl::MutexLock lock(&mu_);
  abandoned_ = true;
}

absl::StatusOr<std::vector<v1::Trial>> RoundOutcomes::Wait() {
  absl::MutexLock lock(&mu_);
  auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return abandoned_ || static_cast<int>(outcomes_.size()) >= expected_;
  };
  mu_.Await(absl::Condition(&ready));
  if (abandoned_) return absl::CancelledError("round abandoned: the job is stopping");
  return std::move(outcomes_);
}

TrialBroker::TrialBroker(const TrialBrokerOptions& options)
    : options_(options), queue_(options.clock) {}

absl::StatusOr<std::unique_ptr<TrialBroker>> TrialBroker::Create(
    const TrialBrokerOptions& options) {
  if (options.store == nullptr) return absl::InvalidArgumentError("TrialBroker needs a store");
  if (options.clock == nullptr) return absl::InvalidArgumentError("TrialBroker needs a clock");
  std::unique_ptr<TrialBroker> broker(new TrialBroker(options));
  broker->lease_checks_ = std::thread([b = broker.get()] { b->RunLeaseChecks(); });
  return broker;
}

TrialBroker::~TrialBroker() { Shutdown(); }

void TrialBroker::Shutdown() {
  {
    absl::MutexLock lock(&mu_);
    shutting_down_ = true;
  }
  queue_.Shutdown();
  if (lease_checks_.joinable()) lease_checks_.join();
}

void TrialBroker::OpenJob(const std::string& job_id, const v1::JobSpec& spec) {
  absl::MutexLock lock(&mu_);
  JobTrials& job = jobs_[job_id];
  v1::Task& task = job.task_template;
  task.set_job_id(job_id);
  *task.mutable_search_space() = spec.search_space();
  *task.mutable_evaluator() = spec.evaluator();
  *task.mutable_reward() = spec.reward();
  task.set_lease_seconds(spec.evaluator().lease_seconds());
  job.shared_search = spec.evaluator().has_shared();
  if (job.shared_search) {
    job.final_template = task;
    v1::EvaluatorSpec* final_evaluator = job.final_template.mutable_evaluator();
    final_evaluator->clear_shared();
    *final_evaluator->mutable_train() = spec.evaluator().shared().final_training();
    task.mutable_shared()->set_omega_set(OmegaSetId(job_id));
    task.mutable_shared()->set_init_seed(spec.strategy().seed());
    if (spec.strategy().name() == "darts") task.mutable_shared()->set_alpha_set(job_id);
  }
  job.max_attempts = std::max(1, spec.evaluator().max_attempts());
  job.closed = false;
  job.stopping = EarlyStopping::Create(spec.early_stopping(), EvaluatorEpochs(spec.evaluator()),
                                       LowerIsBetter(spec.evaluator()));
  job.reuse_fingerprint = spec.evaluator().reuse_results() ? ReuseFingerprint(spec) : "";
}

void TrialBroker::AddSharedResults(const v1::JobSpec& spec,
                                   const std::vector<v1::Trial>& evaluated) {
  if (!spec.evaluator().reuse_results()) return;
  const std::string fingerprint = ReuseFingerprint(spec);
  absl::MutexLock lock(&mu_);
  for (const v1::Trial& t : evaluated) ShareLocked(fingerprint, t);
}

void TrialBroker::ShareLocked(const std::string& fingerprint, const v1::Trial& evaluation) {
  const std::string& canonical = evaluation.architecture().canonical();
  if (canonical.empty() || evaluation.state() != v1::TRIAL_STATE_SUCCEEDED ||
      !evaluation.cached_from().empty() || evaluation.metrics().stopped_early()) {
    return;
  }
  // The first evaluation stands.
  shared_results_.try_emplace(ReuseKey(fingerprint, canonical),
                              SharedResult{evaluation.job_id(), evaluation.trial_id(),
                                           evaluation.metrics()});
}

bool TrialBroker::ReuseLocked(JobTrials& job, InFlight& in_flight,
                              std::vector<v1::Trial>* answered) {
  const std::string& canonical = in_flight.trial.architecture().canonical();
  if (job.reuse_fingerprint.empty() || canonical.empty()) return false;
  auto shared = shared_results_.find(ReuseKey(job.reuse_fingerprint, canonical));
  // The job's own evaluations are its own cache's.
  if (shared == shared_results_.end() || shared->second.job_id == job.task_template.job_id()) {
    return false;
  }
  const SharedResult& source = shared->second;
  // A hit adopted after a restart is answered by the evaluation its row names.
  if (in_flight.inserted && (source.job_id != in_flight.trial.cached_from_job() ||
                             source.trial_id != in_flight.trial.cached_from())) {
    return false;
  }
  const std::string id = in_flight.trial.trial_id();
  in_flight.trial.set_cached_from(source.trial_id);
  in_flight.trial.set_cached_from_job(source.job_id);
  v1::Trial hit;
  hit.set_job_id(job.task_template.job_id());
  hit.set_trial_id(id);
  hit.set_state(v1::TRIAL_STATE_SUCCEEDED);
  hit.set_cached_from(source.trial_id);
  hit.set_cached_from_job(source.job_id);
  *hit.mutable_metrics() = source.metrics;
  job.trials[id] = std::move(in_flight);
  AnswerLocked(job, id, std::move(hit), answered);
  return true;
}

std::string TrialBroker::CacheKey(const JobTrials& job, const v1::Trial& trial) {
  if (job.shared_search && !trial.final_training()) return "";
  return trial.architecture().canonical();
}

v1::Task TrialBroker::MakeTask(const JobTrials& job, const InFlight& trial) {
  v1::Task task = trial.trial.final_training() ? job.final_template : job.task_template;
  const std::string& trial_id = trial.trial.trial_id();
  task.set_task_id(MakeTaskId(task.job_id(), trial_id, trial.attempt));
  task.set_trial_id(trial_id);
  *task.mutable_architecture() = trial.trial.architecture();
  task.set_attempt(trial.attempt);
  return task;
}

void TrialBroker::Enqueue(v1::Task task) {
  const std::string job_id = task.job_id(), trial_id = task.trial_id();
  const int attempt = task.attempt();
  if (queue_.Enqueue(std::move(task))) return;
  // The job was closed after the attempt was decided on.
  FinishOwn(CancelledBeforeItRan(job_id, trial_id, attempt));
}


void TrialBroker::Adopt(const std::string& job_id, std::vector<AdoptedTrial> trials,
                        std::vector<v1::Trial> evaluated) {
  // Evaluations first, so that the hits waiting on them find them in flight.
  std::stable_partition(trials.begin(), trials.end(), [](const AdoptedTrial& t) {
    return t.trial.cached_from().empty();
  });
  std::vector<v1::Task> queued;
  std::vector<std::pair<v1::Task, std::string>> running;
  std::vector<v1::Trial> answered;
  {
    absl::MutexLock lock(&mu_);
    auto job = jobs_.find(job_id);
    if (job == jobs_.end()) return;
    for (v1::Trial& t : evaluated) {
      const std::string canonical = CacheKey(job->second, t);
      if (canonical.empty()) continue;
      CacheEntry& entry = job->second.cache[canonical];
      if (entry.metrics.has_value()) continue;  // the first evaluation stands
      entry.trial_id = t.trial_id();
      entry.metrics = std::move(*t.mutable_metrics());
    }
    for (AdoptedTrial& adopted : trials) {
      const v1::Trial& t = adopted.trial;
      const bool was_running = t.state() == v1::TRIAL_STATE_RUNNING && !t.worker_id().empty() &&
                               t.attempts() >= 1;
      InFlight in_flight;
      in_flight.attempt = was_running ? t.attempts() : std::max(1, t.attempts() + 1);
      in_flight.outcomes = std::move(adopted.outcomes);
      in_flight.inserted = true;
      const std::string worker = t.worker_id();
      in_flight.trial = std::move(adopted.trial);
      if (!in_flight.trial.cached_from().empty() || !was_running) {
        std::vector<v1::Task> tasks;
        RouteLocked(job->second, std::move(in_flight), &tasks, &answered);
        for (v1::Task& task : tasks) queued.push_back(std::move(task));
        continue;
      }
      v1::Task task = MakeTask(job->second, in_flight);
      running.emplace_back(std::move(task), worker);
      const std::string id = in_flight.trial.trial_id();
      const std::string canonical = CacheKey(job->second, in_flight.trial);
      if (!canonical.empty() && !job->second.cache.contains(canonical)) {
        job->second.cache[canonical].trial_id = id;
      }
      job->second.trials[id] = std::move(in_flight);
    }
  }
  for (auto& [task, worker] : running) queue_.RestoreLease(std::move(task), worker);
  for (v1::Task& task : queued) Enqueue(std::move(task));
  for (v1::Trial& outcome : answered) FinishOwn(std::move(outcome));
}

bool TrialBroker::RouteLocked(JobTrials& job, InFlight in_flight, std::vector<v1::Task>* tasks,
                              std::vector<v1::Trial>* answered) {
  const std::string id = in_flight.trial.trial_id();
  const std::string canonical = CacheKey(job, in_flight.trial);
  const bool stored_hit = !in_flight.trial.cached_from().empty();
  auto entry = canonical.empty() ? job.cache.end() : job.cache.find(canonical);
  // Another job's result (evaluator.reuse_results): for a fresh sample its
  // own cache does not know, or a hit of another job's adopted after a
  // restart (the shared results are reloaded before any job dispatches).
  const bool other_jobs_hit = stored_hit && !in_flight.trial.cached_from_job().empty();
  if (((!stored_hit && entry == job.cache.end() && !in_flight.inserted) || other_jobs_hit) &&
      ReuseLocked(job, in_flight, answered)) {
    return true;
  }
  if (other_jobs_hit) entry = job.cache.end();  // its source is gone: it fails below
  if (!stored_hit && (entry == job.cache.end() || in_flight.inserted)) {
    // An evaluation: new to the cache, or adopted as one.
    if (!canonical.empty() && entry == job.cache.end()) job.cache[canonical].trial_id = id;
    tasks->push_back(MakeTask(job, in_flight));
    job.trials[id] = std::move(in_flight);
    return false;
  }
  if (entry == job.cache.end()) {
    // A hit adopted after a restart whose evaluation ended without a result
    // before it: it ends as that evaluation did, FAILED (or CANCELLED).
    v1::Trial failed;
    failed.set_job_id(job.task_template.job_id());
    failed.set_trial_id(id);
    failed.set_state(v1::TRIAL_STATE_FAILED);
    failed.set_cached_from(in_flight.trial.cached_from());
    failed.set_cached_from_job(in_flight.trial.cached_from_job());
    failed.set_error(
        other_jobs_hit
            ? absl::StrCat("the evaluation this sample reuses, trial ",
                           in_flight.trial.cached_from(), " of job ",
                           in_flight.trial.cached_from_job(),
                           ", is no longer a shared result after the controller restarted")
            : absl::StrCat("the evaluation this sample reuses, trial ",
                           in_flight.trial.cached_from(),
                           ", ended without a result before the controller restarted"));
    job.trials[id] = std::move(in_flight);
    AnswerLocked(job, id, std::move(failed), answered);
    return true;
  }
  CacheEntry& cached = entry->second;
  if (!stored_hit) in_flight.trial.set_cached_from(cached.trial_id);
  job.trials[id] = std::move(in_flight);
  if (cached.metrics.has_value()) {
    v1::Trial source;
    source.set_job_id(job.task_template.job_id());
    source.set_trial_id(cached.trial_id);
    source.set_state(v1::TRIAL_STATE_SUCCEEDED);
    *source.mutable_metrics() = *cached.metrics;
    AnswerLocked(job, id, CacheHitOutcome(id, source), answered);
  } else {
    cached.waiters.push_back(id);
  }
  return true;
}

void TrialBroker::AnswerLocked(JobTrials& job, const std::string& waiter, v1::Trial outcome,
                               std::vector<v1::Trial>* answered) {
  auto it = job.trials.find(waiter);
  if (it == job.trials.end()) return;
  if (it->second.inserted) {
    answered->push_back(std::move(outcome));
  } else {
    it->second.answer = std::move(outcome);
  }
}

void TrialBroker::ForgetLocked(JobTrials& job, const std::string& trial_id) {
  auto it = job.trials.find(trial_id);
  if (it == job.trials.end()) return;
  auto entry = job.cache.find(CacheKey(job, it->second.trial));
  if (entry != job.cache.end()) {
    if (entry->second.trial_id == trial_id) {
      job.cache.erase(entry);
    } else {
      std::vector<std::string>& waiters = entry->second.waiters;
      waiters.erase(std::remove(waiters.begin(), waiters.end(), trial_id), waiters.end());
    }
  }
  job.trials.erase(it);
}

void TrialBroker::CloseJob(const std::string& job_id) {
  {
    absl::MutexLock lock(&mu_);
    auto job = jobs_.find(job_id);
    if (job == jobs_.end()) return;
    job->second.closed = true;
  }
  for (const v1::Task& task : queue_.CancelJob(job_id)) {
    FinishOwn(CancelledBeforeItRan(job_id, task.trial_id(), task.attempt()));
  }
}

absl::Status TrialBroker::Dispatch(const std::string& job_id, int64_t round,
                                   std::vector<v1::Trial> trials,
                                   std::shared_ptr<RoundOutcomes> outcomes, int* cache_hits) {
  std::vector<PendingTrial> pending;
  pending.reserve(trials.size());
  std::vector<v1::Task> tasks;
  std::vector<v1::Trial> answered;
  int hits = 0;
  {
    absl::MutexLock lock(&mu_);
    auto job = jobs_.find(job_id);
    if (job == jobs_.end() || job->second.closed) {
      return absl::FailedPreconditionError(absl::StrCat("job ", job_id, " is not running"));
    }
    for (v1::Trial& trial : trials) {
      trial.set_job_id(job_id);
      trial.set_state(v1::TRIAL_STATE_QUEUED);
      const std::string id = trial.trial_id();
      InFlight in_flight;
      in_flight.trial = std::move(trial);
      in_flight.outcomes = outcomes;
      if (RouteLocked(job->second, std::move(in_flight), &tasks, &answered)) ++hits;
      pending.push_back(PendingTrial{job->second.trials[id].trial, round});
    }
  }
  if (absl::Status stored = options_.store->InsertTrials(pending); !stored.ok()) {
    absl::MutexLock lock(&mu_);
    auto job = jobs_.find(job_id);
    if (job != jobs_.end()) {
      for (const PendingTrial& p : pending) ForgetLocked(job->second, p.trial.trial_id());
    }
    return stored;
  }
  {
    // Hits answered meanwhile (or at routing) are finished now that their
    // rows exist.
    absl::MutexLock lock(&mu_);
    auto job = jobs_.find(job_id);
    if (job != jobs_.end()) {
      for (const PendingTrial& p : pending) {
        auto it = job->second.trials.find(p.trial.trial_id());
        if (it == job->second.trials.end()) continue;
        it->second.inserted = true;
        if (it->second.answer.has_value()) {
          answered.push_back(*std::move(it->second.answer));
          it->second.answer.reset();
        }
      }
    }
  }
  if (cache_hits != nullptr) *cache_hits = hits;
  for (v1::Task& task : tasks) Enqueue(std::move(task));
  for (v1::Trial& outcome : answered) FinishOwn(std::move(outcome));
  return absl::OkStatus();
}

void TrialBroker::OnLeased(const v1::Task& task, const std::string& worker_id) {
  // Not waited for: the hand-off to the worker does not need the mark durable.
  options_.store->MarkRunningAsync(task.job_id(), task.trial_id(), worker_id, task.attempt());
}

std::optional<v1::Task> TrialBroker::TryAcquire(const std::string& worker_id) {
  std::optional<v1::Task> task = queue_.TryAcquire(worker_id);
  if (task.has_value()) OnLeased(*task, worker_id);
  return task;
}

void TrialBroker::AcquireAsync(const std::string& worker_id, absl::Time deadline,
                               std::function<void(std::optional<v1::Task>)> done,
                               std::shared_ptr<std::atomic<int64_t>> waiter) {
  int64_t id = -1;
  std::optional<v1::Task> now = queue_.AcquireOrWait(
      worker_id, deadline,
      [this, worker_id, done](std::optional<v1::Task> task) {
        if (task.has_value()) OnLeased(*task, worker_id);
        done(std::move(task));
      },
      &id);
  if (now.has_value()) {
    OnLeased(*now, worker_id);
    return done(std::move(now));
  }
  if (id >= 0) waiter->store(id);
}

absl::StatusOr<HeartbeatAnswer> TrialBroker::Heartbeat(
    const std::string& task_id, const std::string& worker_id,
    const std::vector<v1::EpochResult>& epochs) {
  absl::StatusOr<TaskIdParts> parts = ParseTaskId(task_id);
  if (!parts.ok()) return parts.status();
  absl::StatusOr<Lease> lease = queue_.Heartbeat(task_id, worker_id);
  if (!lease.ok()) {
    return absl::FailedPreconditionError(
        absl::StrCat("worker ", worker_id, " holds no lease on task ", task_id,
                     " (it expired, the attempt ended, or it was never leased to this worker)"));
  }
  if (!epochs.empty()) {
    options_.store->AppendCurveAsync(parts->job_id, parts->trial_id, parts->attempt, epochs);
  }
  HeartbeatAnswer answer;
  if (lease->cancelled) {
    answer.cancel = true;
    return answer;
  }
  absl::MutexLock lock(&mu_);
  auto job = jobs_.find(parts->job_id);
  if (job == jobs_.end() || job->second.closed) {
    answer.cancel = true;
    return answer;
  }
  if (job->second.stopping == nullptr) return answer;
  auto it = job->second.trials.find(parts->trial_id);
  if (it == job->second.trials.end() || it->second.attempt != parts->attempt) return answer;
  InFlight& trial = it->second;
  if (trial.stopped) {
    answer.stop = true;  // said before; the worker may not have heard it
    return answer;
  }
  if (epochs.empty()) return answer;
  for (const v1::EpochResult& e : epochs) {
    if (e.epoch() < 1 || e.epoch() > 100000) continue;
    if (static_cast<int>(trial.curve.size()) < e.epoch()) {
      trial.curve.resize(e.epoch(), std::numeric_limits<double>::quiet_NaN());
    }
    trial.curve[e.epoch() - 1] = CurvePoint(job->second.task_template.evaluator(), e);
  }
  // The rule judges the epochs known without a gap.
  std::vector<double> known;
  for (double v : trial.curve) {
    if (std::isnan(v)) break;
    known.push_back(v);
  }
  if (!known.empty() && job->second.stopping->ShouldStop(parts->trial_id, known)) {
    trial.stopped = true;
    answer.stop = true;
    if (options_.metrics != nullptr) {
      options_.metrics->CountEarlyStop(parts->job_id);
    }
  }
  return answer;
}

absl::Status TrialBroker::AppendLog(const std::string& task_id, const std::string& worker_id,
                                    int64_t offset, std::string data, bool complete) {
  absl::StatusOr<TaskIdParts> parts = ParseTaskId(task_id);
  if (!parts.ok()) return parts.status();
  if (!queue_.IsLeasedTo(task_id, worker_id)) {
    return absl::FailedPreconditionError(
        absl::StrCat("worker ", worker_id, " holds no lease on task ", task_id));
  }
  options_.store->AppendLogAsync(parts->job_id, parts->trial_id, parts->attempt, offset, std::move(data),
                                 complete);
  return absl::OkStatus();
}

absl::StatusOr<bool> TrialBroker::CheckUnleasedReport(const TaskIdParts& parts,
                                                      const std::string& worker_id) {
  if (parts.trial_id.empty()) return absl::InvalidArgumentError("task_id: no trial id");
  absl::StatusOr<v1::Trial> stored = options_.store->GetTrial(parts.job_id, parts.trial_id);
  if (absl::IsNotFound(stored.status())) {
    return absl::NotFoundError(
        absl::StrCat("no trial ", parts.trial_id, " in job '", parts.job_id, "'"));
  }
  if (stored.ok() && IsFinal(stored->state()) &&
      stored->worker_id() == worker_id && stored->attempts() == parts.attempt) {
    return true;  // The holder's own result, reported again: a duplicate.
  }
  return absl::FailedPreconditionError(absl::StrCat(
      "worker ", worker_id, " holds no lease on task ",
      MakeTaskId(parts.job_id, parts.trial_id, parts.attempt),
      " (it expired, the attempt ended, or it was never leased to this worker); "
      "the report changes nothing"));
}

void TrialBroker::ReportAsync(const v1::ReportResultRequest& report,
                              std::function<void(absl::StatusOr<bool>)> done) {
  absl::StatusOr<TaskIdParts> parsed = ParseTaskId(report.task_id());
  if (!parsed.ok()) return done(parsed.status());
  const TaskIdParts& parts = *parsed;
  const double reward = report.metrics().reward();
  if (report.error().empty() && !std::isfinite(reward)) {
    return done(
        absl::InvalidArgumentError(absl::StrCat("metrics.reward: must be finite, got ", reward)));
  }
  if (!queue_.IsLeasedTo(report.task_id(), report.worker_id())) {
    return done(CheckUnleasedReport(parts, report.worker_id()));
  }
  // A report the store refuses (a full disk) renews the lease: the worker is
  // alive and retries it, and expiring it would only spend an attempt.
  done = [this, task_id = report.task_id(), worker_id = report.worker_id(),
          done = std::move(done)](absl::StatusOr<bool> result) {
    if (absl::IsResourceExhausted(result.status())) (void)queue_.Heartbeat(task_id, worker_id);
    done(std::move(result));
  };
  if (!report.error().empty()) {
    AttemptFailure failure;
    failure.job_id = parts.job_id;
    failure.trial_id = parts.trial_id;
    failure.worker_id = report.worker_id();
    failure.attempt = parts.attempt;
    failure.error = report.error().substr(0, 4000);
    failure.permanent = report.permanent();
    // The worker retries a report the store refused: its lease stays.
    return AttemptFailed(failure, /*keep_trying=*/false, std::move(done));
  }
  v1::Trial outcome;
  outcome.set_job_id(parts.job_id);
  outcome.set_trial_id(parts.trial_id);
  outcome.set_attempts(parts.attempt);
  outcome.set_worker_id(report.worker_id());
  outcome.set_state(v1::TRIAL_STATE_SUCCEEDED);
  *outcome.mutable_metrics() = report.metrics();
  outcome.mutable_metrics()->set_stopped_early(false);
  {
    absl::MutexLock lock(&mu_);
    auto job = jobs_.find(parts.job_id);
    if (job != jobs_.end()) {
      auto it = job->second.trials.find(parts.trial_id);
      if (it != job->second.trials.end() && it->second.attempt == parts.attempt &&
          it->second.stopped) {
        outcome.mutable_metrics()->set_stopped_early(true);
      }
    }
  }
  Finish(std::move(outcome), /*keep_trying=*/false, std::move(done));
}

void TrialBroker::AttemptFailed(const AttemptFailure& failure, bool keep_trying,
                                std::function<void(absl::StatusOr<bool>)> done) {
  v1::Trial outcome;
  outcome.set_job_id(failure.job_id);
  outcome.set_trial_id(failure.trial_id);
  outcome.set_attempts(failure.attempt);
  outcome.set_worker_id(failure.worker_id);
  outcome.set_error(failure.error);
  std::optional<v1::Task> retry;
  {
    absl::MutexLock lock(&mu_);
    auto job = jobs_.find(failure.job_id);
    if (job == jobs_.end()) return done(true);
    auto it = job->second.trials.find(failure.trial_id);
    // Already final, or an attempt that is not the live one: nothing to do.
    if (it == job->second.trials.end() || it->second.attempt != failure.attempt) {
      return done(true);
    }
    if (job->second.closed) {
      outcome.set_state(v1::TRIAL_STATE_CANCELLED);
    } else if (failure.permanent || failure.attempt >= job->second.max_attempts) {
      outcome.set_state(v1::TRIAL_STATE_FAILED);
      if (!failure.permanent) {
        outcome.set_error(
            absl::StrCat("failed ", failure.attempt, " attempts; last: ", failure.error));
      }
    } else {
      ++it->second.attempt;
      retry = MakeTask(job->second, it->second);
    }
  }
  if (!retry.has_value()) return Finish(std::move(outcome), keep_trying, std::move(done));
  queue_.CompleteTrial(failure.job_id, failure.trial_id);  // ends the failed attempt's lease
  NAS_LOG(Warning) << "trial " << failure.trial_id << " of job " << failure.job_id << " attempt "
                   << failure.attempt << " failed on " << failure.worker_id
                   << ", retrying: " << failure.error;
  Enqueue(*std::move(retry));
  done(false);
}

void TrialBroker::Finish(v1::Trial outcome, bool keep_trying,
                         std::function<void(absl::StatusOr<bool>)> done) {
  if (outcome.end_time_unix_ms() == 0) {
    outcome.set_end_time_unix_ms(absl::ToUnixMillis(options_.clock->Now()));
  }
  v1::Trial stored = outcome;
  options_.store->FinishTrialAsync(
      std::move(stored), [this, keep_trying, outcome = std::move(outcome),
                          done = std::move(done)](absl::StatusOr<bool> recorded) mutable {
        if (!recorded.ok()) {
          // NOT_FOUND: the store has no such trial; committing again cannot help.
          const bool retry = keep_trying && !absl::IsNotFound(recorded.status());
          NAS_LOG(Error) << "cannot store the outcome of trial " << outcome.trial_id() << " of job "
                         << outcome.job_id() << (retry ? " (retrying)" : "") << ": "
                         << recorded.status();
          if (retry) {
            absl::MutexLock lock(&mu_);
            if (!shutting_down_) {  // else the trial resumes from the store after a restart
              const absl::Duration backoff = options_.commit_retry_initial_backoff;
              // Real time, not the lease clock: this paces retries.
              uncommitted_.push_back(
                  UncommittedOutcome{std::move(outcome), absl::Now() + backoff, backoff, 1});
            }
          }
          return done(recorded.status());
        }
        if (*recorded) OnFinal(std::move(outcome));
        done(!*recorded);
      });
}

void TrialBroker::FinishOwn(v1::Trial outcome) {
  Finish(std::move(outcome), /*keep_trying=*/true, [](absl::StatusOr<bool>) {});
}

int64_t TrialBroker::uncommitted() {
  absl::MutexLock lock(&mu_);
  return static_cast<int64_t>(uncommitted_.size());
}

void TrialBroker::RetryCommits() {
  std::vector<UncommittedOutcome> due;
  {
    absl::MutexLock lock(&mu_);
    const absl::Time now = absl::Now();
    auto not_due = std::partition(uncommitted_.begin(), uncommitted_.end(),
                                  [now](const UncommittedOutcome& u) { return u.next_try > now; });
    due.assign(std::make_move_iterator(not_due), std::make_move_iterator(uncommitted_.end()));
    uncommitted_.erase(not_due, uncommitted_.end());
  }
  for (UncommittedOutcome& u : due) {
    // The retry keeps its own backoff: a failure puts it back, doubled.
    const v1::Trial outcome = u.outcome;
    options_.store->FinishTrialAsync(
        outcome, [this, u = std::move(u)](absl::StatusOr<bool> recorded) mutable {
          if (recorded.ok()) {
            NAS_LOG(Info) << "the outcome of trial " << u.outcome.trial_id() << " of job "
                          << u.outcome.job_id() << " is stored after " << u.tries + 1
                          << " tries";
            if (*recorded) OnFinal(std::move(u.outcome));
            return;
          }
          if (absl::IsNotFound(recorded.status())) return;
          if (u.tries % 20 == 0) {
            NAS_LOG(Error) << "still cannot store the outcome of trial " << u.outcome.trial_id()
                           << " of job " << u.outcome.job_id() << " (" << u.tries
                           << " tries): " << recorded.status();
          }
          absl::MutexLock lock(&mu_);
          if (shutting_down_) return;
          u.backoff = std::min(u.backoff * 2, options_.commit_retry_max_backoff);
          u.next_try = absl::Now() + u.backoff;
          ++u.tries;
          uncommitted_.push_back(std::move(u));
        });
  }
}

void TrialBroker::OnFinal(v1::Trial outcome) {
  std::shared_ptr<RoundOutcomes> round;
  std::vector<v1::Trial> answered;  // cache hits that waited on this evaluation
  {
    absl::MutexLock lock(&mu_);
    auto job = jobs_.find(outcome.job_id());
    if (job != jobs_.end()) {
      auto it = job->second.trials.find(outcome.trial_id());
      if (it != job->second.trials.end()) {
        const std::string canonical = CacheKey(job->second, it->second.trial);
        outcome.set_cached_from(it->second.trial.cached_from());
        outcome.set_cached_from_job(it->second.trial.cached_from_job());
        if (job->second.stopping != nullptr && outcome.cached_from().empty() &&
            outcome.state() == v1::TRIAL_STATE_SUCCEEDED) {
          std::vector<double> curve;
          for (const v1::EpochResult& e : outcome.metrics().epochs()) {
            curve.push_back(CurvePoint(job->second.task_template.evaluator(), e));
          }
          job->second.stopping->Finished(outcome.trial_id(), curve);
        }
        *outcome.mutable_architecture() = std::move(*it->second.trial.mutable_architecture());
        outcome.set_replica(it->second.trial.replica());
        outcome.set_create_time_unix_ms(it->second.trial.create_time_unix_ms());
        outcome.set_final_training(it->second.trial.final_training());
        outcome.set_one_shot_score(it->second.trial.one_shot_score());
        round = std::move(it->second.outcomes);
        job->second.trials.erase(it);
        auto entry = outcome.cached_from().empty() && !canonical.empty()
                         ? job->second.cache.find(canonical)
                         : job->second.cache.end();
        if (entry != job->second.cache.end() && entry->second.trial_id == outcome.trial_id()) {
          std::vector<std::string> waiters = std::move(entry->second.waiters);
          entry->second.waiters.clear();
          if (outcome.state() == v1::TRIAL_STATE_SUCCEEDED) {
            entry->second.metrics = outcome.metrics();
          } else {
            // A later sample of the architecture evaluates it afresh.
            job->second.cache.erase(entry);
          }
          for (const std::string& waiter : waiters) {
            AnswerLocked(job->second, waiter, CacheHitOutcome(waiter, outcome), &answered);
          }
        }
        // Committed: other jobs with reuse on may reuse it from now on.
        if (!job->second.reuse_fingerprint.empty()) {
          ShareLocked(job->second.reuse_fingerprint, outcome);
        }
      }
    }
  }
  queue_.CompleteTrial(outcome.job_id(), outcome.trial_id());
  if (options_.metrics != nullptr) {
    options_.metrics->CountTrial(outcome.job_id(), TrialStateName(outcome.state()));
    if (outcome.state() == v1::TRIAL_STATE_SUCCEEDED) {
      options_.metrics->reward.Observe(outcome.metrics().reward());
      if (!outcome.cached_from().empty()) {
        options_.metrics->CountCacheHit(outcome.job_id());
      }
    }
  }
  if (options_.listener != nullptr) options_.listener->OnTrialFinal(outcome);
  if (round != nullptr) round->Add(std::move(outcome));
  for (v1::Trial& hit : answered) FinishOwn(std::move(hit));
}

void TrialBroker::RunLeaseChecks() {
  while (true) {
    {
      absl::MutexLock lock(&mu_);
      auto stop = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return shutting_down_; };
      if (mu_.AwaitWithTimeout(absl::Condition(&stop), options_.lease_check_interval)) return;
    }
    for (Lease& lease : queue_.ExpireLeases()) {
      if (options_.metrics != nullptr) options_.metrics->leases_expired.Increment();
      AttemptFailure failure;
      failure.job_id = lease.task.job_id();
      failure.trial_id = lease.task.trial_id();
      failure.worker_id = lease.worker_id;
      failure.attempt = lease.task.attempt();
      failure.error = absl::StrCat("lease expired: worker ", lease.worker_id,
                                   " sent no heartbeat for ", lease.task.lease_seconds(), " s");
      // Nobody reports this outcome again: the broker keeps trying to store it.
      AttemptFailed(failure, /*keep_trying=*/true, [](absl::StatusOr<bool>) {});
    }
    RetryCommits();
    if (options_.metrics != nullptr) {
      options_.metrics->queue_depth.Set(static_cast<double>(queue_.queued()));
      options_.metrics->leased.Set(static_cast<double>(queue_.leased()));
      options_.metrics->workers.Set(queue_.ConnectedWorkers(absl::Minutes(1)));
    }
  }
}

}  // namespace nas::controller
