#include "controller/job_manager.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <random>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/notification.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "controller/job_spec.h"
#include "controller/strategy_registry.h"
#include "prometheus/counter.h"
#include "prometheus/family.h"
#include "prometheus/gauge.h"
#include "prometheus/histogram.h"
#include "prometheus/registry.h"

namespace nas::controller {
namespace {

int64_t UnixMillis(absl::Time t) { return absl::ToUnixMillis(t); }

bool IsTerminal(v1::JobState state) {
  return state == v1::JOB_STATE_SUCCEEDED || state == v1::JOB_STATE_CANCELLED ||
         state == v1::JOB_STATE_FAILED;
}

bool IsRetryable(const absl::Status& status) {
  return absl::IsUnavailable(status) || absl::IsDeadlineExceeded(status) ||
         absl::IsAborted(status) || absl::IsResourceExhausted(status) ||
         absl::IsNotFound(status);  // a restarted shard that has not restored the job yet
}

std::string TrialId(int64_t index) { return absl::StrFormat("t%06d", index); }

int64_t TrialIndex(const std::string& trial_id) {
  int64_t index = -1;
  if (trial_id.size() > 1 && trial_id[0] == 't') {
    (void)absl::SimpleAtoi(trial_id.substr(1), &index);
  }
  return index;
}

v1::OptimizerConfig OptimizerFor(const v1::JobSpec& spec) {
  v1::OptimizerConfig optimizer;
  optimizer.set_kind(spec.controller().optimizer() == "sgd" ? v1::OptimizerConfig::SGD
                                                            : v1::OptimizerConfig::ADAM);
  optimizer.set_learning_rate(spec.controller().learning_rate());
  optimizer.set_gradients_per_update(spec.parallelism().gradients_per_update());
  return optimizer;
}

// Runs an asynchronous call that answers through a callback, and waits for
// the answer (the blocking forms of FinishAsync and ReportResultAsync).
absl::StatusOr<bool> WaitFor(
    const std::function<void(std::function<void(absl::StatusOr<bool>)>)>& start) {
  absl::Notification answered;
  absl::StatusOr<bool> result;
  start([&](absl::StatusOr<bool> answer) {
    result = std::move(answer);
    answered.Notify();
  });
  answered.WaitForNotification();
  return result;
}

}  // namespace

struct JobManager::Metrics {
  explicit Metrics(prometheus::Registry& registry)
      : trials(prometheus::BuildCounter()
                   .Name("nas_controller_trials_total")
                   .Help("Trials that reached a final state, by job and status.")
                   .Register(registry)),
        samples(prometheus::BuildCounter()
                    .Name("nas_controller_samples_total")
                    .Help("Architectures sampled, by job.")
                    .Register(registry)),
        leases_expired(prometheus::BuildCounter()
                           .Name("nas_controller_leases_expired_total")
                           .Help("Task leases that expired without a result.")
                           .Register(registry)
                           .Add({})),
        pushes(prometheus::BuildCounter()
                   .Name("nas_controller_gradient_pushes_total")
                   .Help("Gradients pushed to the parameter servers, by job and outcome.")
                   .Register(registry)),
        reward(prometheus::BuildHistogram()
                   .Name("nas_controller_reward")
                   .Help("Rewards of succeeded trials.")
                   .Register(registry)),
        job_gauges(prometheus::BuildGauge()
                       .Name("nas_controller_job")
                       .Help("Per-job values: best_reward, mean_reward, baseline, entropy, "
                             "trials_running, trials_queued.")
                       .Register(registry)),
        round_seconds(prometheus::BuildHistogram()
                          .Name("nas_controller_replica_round_seconds")
                          .Help("Duration of one replica round (pull, sample, evaluate, push).")
                          .Register(registry)
                          .Add({}, prometheus::Histogram::BucketBoundaries{
                                       0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 1800, 7200})),
        queue_depth(prometheus::BuildGauge()
                        .Name("nas_controller_queue_depth")
                        .Help("Tasks waiting for a worker.")
                        .Register(registry)
                        .Add({})),
        leased(prometheus::BuildGauge()
                   .Name("nas_controller_tasks_leased")
                   .Help("Tasks currently leased to workers.")
                   .Register(registry)
                   .Add({})),
        workers(prometheus::BuildGauge()
                    .Name("nas_controller_connected_workers")
                    .Help("Workers that polled or heartbeated in the last minute.")
                    .Register(registry)
                    .Add({})) {}

  prometheus::Family<prometheus::Counter>& trials;
  prometheus::Family<prometheus::Counter>& samples;
  prometheus::Counter& leases_expired;
  prometheus::Family<prometheus::Counter>& pushes;
  prometheus::Family<prometheus::Histogram>& reward;
  prometheus::Family<prometheus::Gauge>& job_gauges;
  prometheus::Histogram& round_seconds;
  prometheus::Gauge& queue_depth;
  prometheus::Gauge& leased;
  prometheus::Gauge& workers;

  prometheus::Gauge& JobGauge(const std::string& job, const std::string& name) {
    return job_gauges.Add({{"job_id", job}, {"value", name}});
  }
};

// Everything about one job. Fields are guarded by JobManager::mu_ unless
// marked constant.
struct JobManager::Job {
  // Constant after StartJob.
  std::string id;
  v1::JobSpec spec;
  int num_replicas = 1;

  // Guarded by JobManager::mu_.
  v1::Job record;  // state, error, times, baseline
  int64_t samples = 0;     // trials sampled so far (the depth schedule's clock)
  int64_t next_index = 0;  // index of the next trial id
  int replicas_running = 0;
  bool stopping = false;
  int64_t change = 0;  // bumped on every finished trial and state change
  int64_t gradient_pushes = 0;
  double entropy = 0;
  // Unfinished trials by id (for re-queueing attempts).
  absl::flat_hash_map<std::string, v1::Trial> inflight;
  // Finished trials a replica still waits for.
  absl::flat_hash_map<std::string, v1::Trial> finished;
  // Per replica: the round to resume after a restart and its trials.
  std::vector<int64_t> next_round;
  std::vector<std::vector<v1::Trial>> resume_trials;
  std::vector<std::thread> threads;
  // Per replica: signalled when the last trial its round waits for finishes
  // or the job stops, so a finished trial wakes at most the replica that
  // waits for it, and only once per round.
  std::vector<std::unique_ptr<absl::CondVar>> round_cv;
  // Per replica: trials of the round it waits for not finished yet (0 when
  // not waiting).
  std::vector<int> round_unfinished;

  // Sets `stopping` and wakes every replica. Requires JobManager::mu_.
  void Stop() {
    stopping = true;
    for (auto& cv : round_cv) cv->SignalAll();
  }
};

JobManager::JobManager(const JobManagerOptions& options)
    : options_(options), queue_(options.clock) {
  if (options.metrics != nullptr) metrics_ = std::make_unique<Metrics>(*options.metrics);
}

absl::StatusOr<std::unique_ptr<JobManager>> JobManager::Create(const JobManagerOptions& options) {
  if (options.store == nullptr) return absl::InvalidArgumentError("JobManager needs a store");
  if (options.clock == nullptr) return absl::InvalidArgumentError("JobManager needs a clock");
  std::unique_ptr<JobManager> manager(new JobManager(options));
  ASSIGN_OR_RETURN(std::vector<v1::Job> records, options.store->LoadJobs());
  for (v1::Job& record : records) {
    auto job = std::make_unique<Job>();
    job->id = record.job_id();
    job->spec = record.spec();
    job->num_replicas = job->spec.parallelism().num_replicas();
    const bool resume = !IsTerminal(record.state());
    job->record = std::move(record);
    absl::Status started = manager->StartJob(std::move(job), resume);
    if (!started.ok()) NAS_LOG(Error) << "cannot resume job: " << started;
  }
  manager->maintenance_ = std::thread([m = manager.get()] { m->RunMaintenance(); });
  return manager;
}

JobManager::~JobManager() {
  {
    absl::MutexLock lock(&mu_);
    shutting_down_ = true;
    for (auto& [id, job] : jobs_) job->Stop();
  }
  queue_.Shutdown();
  if (maintenance_.joinable()) maintenance_.join();
  std::vector<std::thread> threads;
  {
    absl::MutexLock lock(&mu_);
    for (auto& [id, job] : jobs_) {
      for (std::thread& t : job->threads) threads.push_back(std::move(t));
      job->threads.clear();
    }
  }
  for (std::thread& t : threads) t.join();
  // Results still being committed call back into this manager.
  (void)options_.store->Flush();
}

std::string JobManager::NewJobId() {
  static std::atomic<uint32_t> counter{0};
  std::random_device device;
  const uint32_t salt = device() ^ (counter.fetch_add(1) * 2654435761u);
  return absl::StrCat(
      "j-", absl::FormatTime("%Y%m%d-%H%M%S", options_.clock->Now(), absl::UTCTimeZone()), "-",
      absl::StrFormat("%04x", salt & 0xffff));
}

absl::StatusOr<v1::Job> JobManager::Submit(const v1::JobSpec& input, bool validate_only) {
  v1::JobSpec spec = WithDefaults(input);
  if (!spec.parallelism().has_num_shards()) {
    spec.mutable_parallelism()->set_num_shards(
        options_.weights != nullptr ? options_.weights->num_shards() : 1);
  }
  RETURN_IF_ERROR(ValidateJobSpec(spec));
  const bool learns = spec.strategy().name() == "reinforce";
  if (learns && options_.weights == nullptr) {
    return absl::FailedPreconditionError(
        "strategy.name: reinforce needs parameter servers, and this controller has none "
        "(start it with --parameter_servers)");
  }
  if (learns && spec.parallelism().num_shards() != options_.weights->num_shards()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "parallelism.num_shards: ", spec.parallelism().num_shards(), " but the controller has ",
        options_.weights->num_shards(), " parameter server shards (leave it unset to use them all)"));
  }
  // Catch problems creating the strategy (e.g. a space too large) at submit.
  ASSIGN_OR_RETURN(std::unique_ptr<SearchStrategy> probe, CreateStrategy(spec, 0));
  (void)probe;
  v1::Job record;
  record.set_job_id(validate_only ? "" : NewJobId());
  *record.mutable_spec() = spec;
  record.set_state(v1::JOB_STATE_PENDING);
  record.set_create_time_unix_ms(UnixMillis(options_.clock->Now()));
  if (validate_only) return record;
  {
    absl::MutexLock lock(&mu_);
    int running = 0;
    for (const auto& [id, job] : jobs_) running += IsTerminal(job->record.state()) ? 0 : 1;
    if (running >= options_.max_running_jobs) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "the controller already runs ", running, " jobs (its limit, --max_running_jobs); "
          "cancel one or wait"));
    }
  }
  record.set_state(v1::JOB_STATE_RUNNING);
  record.set_start_time_unix_ms(record.create_time_unix_ms());
  RETURN_IF_ERROR(options_.store->CreateJob(record));
  auto job = std::make_unique<Job>();
  job->id = record.job_id();
  job->spec = spec;
  job->num_replicas = spec.parallelism().num_replicas();
  job->record = record;
  const std::string id = job->id;
  RETURN_IF_ERROR(StartJob(std::move(job), /*resume=*/false));
  NAS_LOG(Info) << "job " << id << " (" << spec.name() << ") started: strategy "
                << spec.strategy().name() << ", S=" << spec.parallelism().num_shards()
                << " K=" << spec.parallelism().num_replicas()
                << " m=" << spec.parallelism().children_per_replica();
  return GetJob(id);
}

absl::Status JobManager::StartJob(std::unique_ptr<Job> job, bool resume) {
  Job* raw = job.get();
  raw->next_round.assign(raw->num_replicas, 0);
  for (int r = 0; r < raw->num_replicas; ++r) raw->round_cv.push_back(std::make_unique<absl::CondVar>());
  raw->round_unfinished.assign(raw->num_replicas, 0);
  raw->resume_trials.assign(raw->num_replicas, {});
  if (resume) {
    TrialStore* store = options_.store;
    ASSIGN_OR_RETURN(TrialStore::TrialCounts counts, store->CountTrials(raw->id));
    ASSIGN_OR_RETURN(std::vector<PendingTrial> unfinished, store->UnfinishedTrials(raw->id));
    ASSIGN_OR_RETURN(std::vector<int64_t> last_rounds,
                     store->LastRounds(raw->id, raw->num_replicas));
    raw->samples = counts.queued + counts.running + counts.succeeded + counts.failed +
                   counts.cancelled;
    int64_t max_index = -1;
    for (int r = 0; r < raw->num_replicas; ++r) {
      const int64_t last = last_rounds[r];
      raw->next_round[r] = last + 1;
      if (last < 0) continue;
      ASSIGN_OR_RETURN(std::vector<v1::Trial> round, store->RoundTrials(raw->id, r, last));
      bool unfinished_in_round = false;
      for (const v1::Trial& t : round) {
        max_index = std::max(max_index, TrialIndex(t.trial_id()));
        if (t.state() == v1::TRIAL_STATE_QUEUED || t.state() == v1::TRIAL_STATE_RUNNING) {
          unfinished_in_round = true;
        }
      }
      if (unfinished_in_round) {
        raw->next_round[r] = last;
        raw->resume_trials[r] = std::move(round);
      }
    }
    for (const PendingTrial& p : unfinished) {
      max_index = std::max(max_index, TrialIndex(p.trial.trial_id()));
    }
    // Trial ids must never repeat: continue after the highest index stored.
    raw->next_index = std::max(raw->samples, max_index + 1);
    {
      absl::MutexLock lock(&mu_);
      for (const PendingTrial& p : unfinished) raw->inflight[p.trial.trial_id()] = p.trial;
    }
    for (const PendingTrial& p : unfinished) {
      EnqueueAttempt(raw, p.trial, std::max(1, p.trial.attempts() + 1));
    }
    NAS_LOG(Info) << "job " << raw->id << " resumed: " << raw->samples << " trials sampled, "
                  << unfinished.size() << " re-queued";
  }
  absl::MutexLock lock(&mu_);
  const bool run = resume || !IsTerminal(raw->record.state());
  if (run && !IsTerminal(raw->record.state())) {
    raw->replicas_running = raw->num_replicas;
    for (int r = 0; r < raw->num_replicas; ++r) {
      raw->threads.emplace_back([this, raw, r] { RunReplica(raw, r); });
    }
  }
  jobs_[raw->id] = std::move(job);
  return absl::OkStatus();
}

JobManager::Job* JobManager::FindJob(const std::string& job_id) {
  absl::MutexLock lock(&mu_);
  auto it = jobs_.find(job_id);
  return it == jobs_.end() ? nullptr : it->second.get();
}

v1::Job JobManager::Snapshot(Job* job) {
  v1::Job out;
  int64_t pushes = 0;
  {
    absl::MutexLock lock(&mu_);
    out = job->record;
    out.set_samples(job->samples);
    pushes = job->gradient_pushes;
  }
  out.set_gradient_pushes(pushes);
  absl::StatusOr<TrialStore::TrialCounts> counts = options_.store->CountTrials(job->id);
  if (counts.ok()) {
    out.set_trials_succeeded(counts->succeeded);
    out.set_trials_failed(counts->failed + counts->cancelled);
    out.set_trials_running(counts->running);
    out.set_trials_queued(counts->queued);
    out.set_best_reward(counts->best_reward);
    out.set_best_trial_id(counts->best_trial_id);
    out.set_best_canonical(counts->best_canonical);
    out.set_mean_reward(counts->mean_reward);
  }
  out.set_connected_workers(queue_.ConnectedWorkers(absl::Minutes(1)));
  return out;
}

absl::StatusOr<v1::Job> JobManager::GetJob(const std::string& job_id) {
  Job* job = FindJob(job_id);
  if (job == nullptr) return absl::NotFoundError(absl::StrCat("no job '", job_id, "'"));
  return Snapshot(job);
}

std::vector<v1::Job> JobManager::ListJobs() {
  std::vector<Job*> jobs;
  {
    absl::MutexLock lock(&mu_);
    for (auto& [id, job] : jobs_) jobs.push_back(job.get());
  }
  std::vector<v1::Job> out;
  for (Job* job : jobs) out.push_back(Snapshot(job));
  std::sort(out.begin(), out.end(), [](const v1::Job& a, const v1::Job& b) {
    return a.create_time_unix_ms() != b.create_time_unix_ms()
               ? a.create_time_unix_ms() > b.create_time_unix_ms()
               : a.job_id() > b.job_id();
  });
  return out;
}

absl::StatusOr<v1::Job> JobManager::Cancel(const std::string& job_id) {
  Job* job = FindJob(job_id);
  if (job == nullptr) return absl::NotFoundError(absl::StrCat("no job '", job_id, "'"));
  v1::Job record;
  {
    absl::MutexLock lock(&mu_);
    if (IsTerminal(job->record.state())) {
      return absl::FailedPreconditionError(
          absl::StrCat("job ", job_id, " has ended already (",
                       JobStateName(job->record.state()), ")"));
    }
    job->Stop();
    job->record.set_state(v1::JOB_STATE_CANCELLED);
    job->record.set_end_time_unix_ms(UnixMillis(options_.clock->Now()));
    ++job->change;
    record = job->record;
  }
  RETURN_IF_ERROR(options_.store->UpdateJob(record));
  for (const v1::Task& task : queue_.CancelJob(job_id)) {
    v1::Trial trial;
    trial.set_job_id(job_id);
    trial.set_trial_id(task.trial_id());
    trial.set_state(v1::TRIAL_STATE_CANCELLED);
    trial.set_attempts(task.attempt() - 1);
    trial.set_error("job cancelled before the trial ran");
    (void)Finish(job, trial);
  }
  NAS_LOG(Info) << "job " << job_id << " cancelled";
  return Snapshot(job);
}

absl::StatusOr<int64_t> JobManager::WaitForChange(const std::string& job_id, int64_t seen_change,
                                                  absl::Time deadline) {
  Job* job = FindJob(job_id);
  if (job == nullptr) return absl::NotFoundError(absl::StrCat("no job '", job_id, "'"));
  absl::MutexLock lock(&mu_);
  auto changed = [job, seen_change, this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return job->change > seen_change || shutting_down_;
  };
  mu_.AwaitWithDeadline(absl::Condition(&changed), deadline);
  return job->change;
}

bool JobManager::IsFinished(const std::string& job_id) {
  absl::MutexLock lock(&mu_);
  auto it = jobs_.find(job_id);
  return it == jobs_.end() || IsTerminal(it->second->record.state());
}

void JobManager::EnqueueAttempt(Job* job, const v1::Trial& trial, int attempt) {
  v1::Task task;
  task.set_task_id(MakeTaskId(job->id, trial.trial_id(), attempt));
  task.set_job_id(job->id);
  task.set_trial_id(trial.trial_id());
  *task.mutable_architecture() = trial.architecture();
  *task.mutable_search_space() = job->spec.search_space();
  *task.mutable_evaluator() = job->spec.evaluator();
  *task.mutable_reward() = job->spec.reward();
  task.set_attempt(attempt);
  task.set_lease_seconds(job->spec.evaluator().lease_seconds());
  queue_.Enqueue(std::move(task));
}

int JobManager::ReserveTrials(Job* job, int wanted, int64_t* first_index,
                              int64_t* samples_before) {
  absl::MutexLock lock(&mu_);
  if (job->stopping) return 0;
  const v1::BudgetSpec& budget = job->spec.budget();
  if (budget.max_wall_seconds() > 0 &&
      options_.clock->Now() - absl::FromUnixMillis(job->record.start_time_unix_ms()) >=
          absl::Seconds(budget.max_wall_seconds())) {
    return 0;
  }
  int64_t n = wanted;
  if (budget.max_trials() > 0) n = std::min<int64_t>(n, budget.max_trials() - job->samples);
  if (n <= 0) return 0;
  *first_index = job->next_index;
  *samples_before = job->samples;
  job->next_index += n;
  job->samples += n;
  return static_cast<int>(n);
}

absl::Status JobManager::Retry(Job* job, const std::string& what,
                               const std::function<absl::Status()>& call) {
  absl::Duration backoff = options_.retry_initial_backoff;
  for (int attempt = 1;; ++attempt) {
    absl::Status status = call();
    if (status.ok() || !IsRetryable(status)) return status;
    if (attempt == 1 || attempt % 20 == 0) {
      NAS_LOG(Warning) << "job " << job->id << ": " << what << " failed (attempt " << attempt
                       << "), retrying: " << status;
    }
    absl::MutexLock lock(&mu_);
    auto stop = [job]() { return job->stopping; };
    if (mu_.AwaitWithTimeout(absl::Condition(&stop), backoff)) {
      return absl::CancelledError(absl::StrCat(what, ": job stopping"));
    }
    backoff = std::min(backoff * 2, options_.retry_max_backoff);
  }
}

absl::StatusOr<std::vector<int64_t>> JobManager::PullInto(Job* job, SearchStrategy* strategy) {
  absl::StatusOr<PulledWeights> pulled;
  absl::Status pull = Retry(job, "Pull", [&] {
    pulled = options_.weights->Pull(job->id);
    return pulled.status();
  });
  if (!pull.ok()) {
    if (!absl::IsCancelled(pull)) FailJob(job, pull);
    return pull;
  }
  absl::Status loaded = strategy->LoadParameters(pulled->tensors);
  if (!loaded.ok()) {
    FailJob(job, loaded);
    return loaded;
  }
  return pulled->versions;
}

void JobManager::RunReplica(Job* job, int replica) {
  absl::StatusOr<std::unique_ptr<SearchStrategy>> created = CreateStrategy(job->spec, replica);
  if (!created.ok()) {
    FailJob(job, created.status());
    OnReplicaDone(job);
    return;
  }
  std::unique_ptr<SearchStrategy> strategy = std::move(created).value();
  const std::vector<FlatTensor> initial = strategy->InitialParameters();
  const bool learns = !initial.empty();
  WeightsClient* weights = options_.weights;
  if (learns && weights == nullptr) {
    FailJob(job, absl::FailedPreconditionError("strategy needs parameter servers"));
    OnReplicaDone(job);
    return;
  }
  int64_t round;
  std::vector<v1::Trial> trials;
  {
    absl::MutexLock lock(&mu_);
    round = job->next_round[replica];
    trials = std::move(job->resume_trials[replica]);
    strategy->set_baseline(job->record.baseline());
  }
  if (learns) {
    absl::Status init = Retry(job, "InitJob on the parameter servers", [&] {
      return weights->InitJob(job->id, initial, OptimizerFor(job->spec));
    });
    if (!init.ok()) {
      if (!absl::IsCancelled(init)) FailJob(job, init);
      OnReplicaDone(job);
      return;
    }
  }
  const int m = job->spec.parallelism().children_per_replica();
  // θ as the shards returned it with the last accepted push: the next round
  // samples from it instead of pulling again.
  std::optional<PulledWeights> after_push;
  while (true) {
    const absl::Time round_start = absl::Now();
    // The shard versions of the θ this round sampled with: the gradient is
    // that of the policy the architectures came from (on-policy REINFORCE),
    // and the servers measure staleness against these versions.
    std::optional<std::vector<int64_t>> sampled_versions;
    if (trials.empty()) {
      int64_t first_index = 0, samples_before = 0;
      const int n = ReserveTrials(job, m, &first_index, &samples_before);
      if (n == 0) break;
      if (learns && after_push.has_value()) {
        absl::Status loaded = strategy->LoadParameters(after_push->tensors);
        if (!loaded.ok()) {
          FailJob(job, loaded);
          break;
        }
        sampled_versions = std::move(after_push->versions);
        after_push.reset();
      } else if (learns) {
        absl::StatusOr<std::vector<int64_t>> versions = PullInto(job, strategy.get());
        if (!versions.ok()) break;
        sampled_versions = *std::move(versions);
      }
      SampleContext context;
      context.samples_so_far = samples_before;
      absl::StatusOr<std::vector<v1::Architecture>> sampled = strategy->Sample(n, context);
      if (!sampled.ok()) {
        FailJob(job, sampled.status());
        break;
      }
      std::vector<PendingTrial> pending;
      const int64_t now_ms = UnixMillis(options_.clock->Now());
      for (int i = 0; i < n; ++i) {
        PendingTrial p;
        p.round = round;
        p.trial.set_job_id(job->id);
        p.trial.set_trial_id(TrialId(first_index + i));
        p.trial.set_replica(replica);
        *p.trial.mutable_architecture() = std::move((*sampled)[i]);
        p.trial.set_state(v1::TRIAL_STATE_QUEUED);
        p.trial.set_create_time_unix_ms(now_ms);
        pending.push_back(std::move(p));
      }
      absl::Status stored = options_.store->InsertTrials(pending);
      if (!stored.ok()) {
        FailJob(job, stored);
        break;
      }
      if (metrics_) metrics_->samples.Add({{"job_id", job->id}}).Increment(n);
      {
        absl::MutexLock lock(&mu_);
        job->entropy = strategy->last_entropy();
        for (const PendingTrial& p : pending) {
          job->inflight[p.trial.trial_id()] = p.trial;
          trials.push_back(p.trial);
        }
      }
      for (const PendingTrial& p : pending) EnqueueAttempt(job, p.trial, 1);
    }

    // Wait for every trial of the round to finish.
    std::vector<v1::Trial> done;
    {
      absl::MutexLock lock(&mu_);
      auto unfinished = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        int n = 0;
        for (const v1::Trial& t : trials) {
          if (!IsFinal(t.state()) && !job->finished.contains(t.trial_id())) ++n;
        }
        return n;
      };
      // Woken by Finish when the last of them finishes; the timeout only
      // bounds the wait should a trial finish without a known replica (resumed).
      while (!job->stopping) {
        const int n = unfinished();
        if (n == 0) break;
        job->round_unfinished[replica] = n;
        job->round_cv[replica]->WaitWithTimeout(&mu_, absl::Seconds(1));
      }
      job->round_unfinished[replica] = 0;
      if (job->stopping) break;
      for (const v1::Trial& t : trials) {
        auto it = job->finished.find(t.trial_id());
        if (it != job->finished.end()) {
          done.push_back(std::move(it->second));
          job->finished.erase(it);
        } else {
          done.push_back(t);  // Finished before a restart.
        }
      }
    }
    trials.clear();

    std::vector<v1::Architecture> architectures;
    std::vector<double> rewards;
    std::vector<Observation> observations;
    for (const v1::Trial& t : done) {
      if (t.state() != v1::TRIAL_STATE_SUCCEEDED) continue;
      architectures.push_back(t.architecture());
      rewards.push_back(t.metrics().reward());
      observations.push_back({t.architecture(), t.metrics().reward()});
    }
    strategy->Observe(observations);
    if (learns && !architectures.empty()) {
      // A round resumed after a restart was sampled by an earlier process:
      // its θ is gone, so it is scored under the current one.
      if (!sampled_versions.has_value()) {
        absl::StatusOr<std::vector<int64_t>> pulled = PullInto(job, strategy.get());
        if (!pulled.ok()) break;
        sampled_versions = *std::move(pulled);
      }
      const std::vector<int64_t>* versions = &*sampled_versions;
      absl::StatusOr<std::vector<FlatTensor>> gradient = strategy->Gradient(architectures, rewards);
      if (!gradient.ok()) {
        FailJob(job, gradient.status());
        break;
      }
      absl::Status pushed = Retry(job, "Push", [&] {
        PulledWeights updated;
        absl::Status status = weights->Push(job->id, replica, *versions, *gradient, &updated);
        if (status.ok()) after_push = std::move(updated);
        return status;
      });
      if (metrics_) {
        metrics_->pushes.Add({{"job_id", job->id}, {"outcome", pushed.ok() ? "ok" : "error"}})
            .Increment();
      }
      if (!pushed.ok() && absl::IsCancelled(pushed)) break;
      if (!pushed.ok()) {
        // A rejected gradient (e.g. non-finite) is dropped, never applied.
        NAS_LOG(Error) << "job " << job->id << " replica " << replica
                       << ": gradient rejected: " << pushed;
      }
    }
    {
      absl::MutexLock lock(&mu_);
      job->record.set_baseline(strategy->baseline());
      if (learns && !architectures.empty()) ++job->gradient_pushes;
      ++job->change;
    }
    if (metrics_) {
      metrics_->round_seconds.Observe(absl::ToDoubleSeconds(absl::Now() - round_start));
      metrics_->JobGauge(job->id, "baseline").Set(strategy->baseline());
      metrics_->JobGauge(job->id, "entropy").Set(strategy->last_entropy());
    }
    ++round;
  }
  OnReplicaDone(job);
}

void JobManager::OnReplicaDone(Job* job) {
  v1::Job record;
  {
    absl::MutexLock lock(&mu_);
    if (--job->replicas_running > 0 || shutting_down_) return;
    if (IsTerminal(job->record.state())) return;
    job->record.set_state(v1::JOB_STATE_SUCCEEDED);
    job->record.set_end_time_unix_ms(UnixMillis(options_.clock->Now()));
    job->Stop();
    ++job->change;
    record = job->record;
  }
  absl::Status stored = options_.store->UpdateJob(record);
  if (!stored.ok()) NAS_LOG(Error) << "job " << job->id << ": cannot store end: " << stored;
  NAS_LOG(Info) << "job " << job->id << " finished its budget";
}

void JobManager::FailJob(Job* job, const absl::Status& status) {
  v1::Job record;
  {
    absl::MutexLock lock(&mu_);
    if (IsTerminal(job->record.state()) || shutting_down_) return;
    job->record.set_state(v1::JOB_STATE_FAILED);
    job->record.set_error(std::string(status.ToString()));
    job->record.set_end_time_unix_ms(UnixMillis(options_.clock->Now()));
    job->Stop();
    ++job->change;
    record = job->record;
  }
  NAS_LOG(Error) << "job " << job->id << " failed: " << status;
  (void)options_.store->UpdateJob(record);
  queue_.CancelJob(job->id);
}

absl::StatusOr<bool> JobManager::Finish(Job* job, v1::Trial trial) {
  return WaitFor([&](std::function<void(absl::StatusOr<bool>)> done) {
    FinishAsync(job, std::move(trial), std::move(done));
  });
}

void JobManager::FinishAsync(Job* job, v1::Trial trial,
                             std::function<void(absl::StatusOr<bool>)> done) {
  trial.set_end_time_unix_ms(UnixMillis(options_.clock->Now()));
  v1::Trial stored = trial;
  options_.store->FinishTrialAsync(std::move(stored),
                                   [this, job, trial = std::move(trial),
                                    done = std::move(done)](absl::StatusOr<bool> recorded) mutable {
                                     if (!recorded.ok()) return done(recorded.status());
                                     queue_.CompleteTrial(job->id, trial.trial_id());
                                     if (*recorded) OnFinished(job, std::move(trial));
                                     done(*recorded);
                                   });
}

void JobManager::OnFinished(Job* job, v1::Trial trial) {
  const v1::TrialState state = trial.state();
  const double reward = trial.metrics().reward();
  {
    absl::MutexLock lock(&mu_);
    auto it = job->inflight.find(trial.trial_id());
    if (it != job->inflight.end()) {
      *trial.mutable_architecture() = it->second.architecture();
      trial.set_replica(it->second.replica());
      job->inflight.erase(it);
    }
    const int replica = trial.replica();
    job->finished[trial.trial_id()] = std::move(trial);
    ++job->change;
    if (replica >= 0 && replica < static_cast<int>(job->round_cv.size())) {
      int& left = job->round_unfinished[replica];
      if (left > 0 && --left == 0) job->round_cv[replica]->Signal();
    }
  }
  if (metrics_) {
    metrics_->trials.Add({{"job_id", job->id}, {"status", TrialStateName(state)}}).Increment();
    if (state == v1::TRIAL_STATE_SUCCEEDED) {
      metrics_->reward
          .Add({}, prometheus::Histogram::BucketBoundaries{0.01, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6,
                                                           0.7, 0.8, 0.9, 0.95, 1.0})
          .Observe(reward);
    }
  }
}

void JobManager::AcquireTaskAsync(const std::string& worker_id, absl::Time deadline,
                                  std::function<void(std::optional<v1::Task>)> done,
                                  std::shared_ptr<std::atomic<int64_t>> waiter) {
  while (true) {
    int64_t id = -1;
    std::optional<v1::Task> now = queue_.AcquireOrWait(
        worker_id, deadline,
        [this, worker_id, deadline, done, waiter](std::optional<v1::Task> task) {
          if (!task.has_value()) return done(std::nullopt);
          if (ClaimTask(*task, worker_id)) return done(std::move(task));
          AcquireTaskAsync(worker_id, deadline, done, waiter);  // stale: wait again
        },
        &id);
    if (!now.has_value()) {
      if (id >= 0) waiter->store(id);
      return;
    }
    if (ClaimTask(*now, worker_id)) return done(std::move(now));
  }
}

bool JobManager::ClaimTask(const v1::Task& task, const std::string& worker_id) {
  Job* job = FindJob(task.job_id());
  bool live = false;
  if (job != nullptr) {
    absl::MutexLock lock(&mu_);
    live = !job->stopping && job->inflight.contains(task.trial_id());
  }
  if (!live) {
    // A stale task (the trial finished or the job stopped meanwhile).
    queue_.CompleteTrial(task.job_id(), task.trial_id());
    return false;
  }
  // Not waited for: the hand-off to the worker does not need the mark durable.
  options_.store->MarkRunningAsync(task.job_id(), task.trial_id(), worker_id, task.attempt());
  return true;
}

std::optional<v1::Task> JobManager::TryAcquireTask(const std::string& worker_id) {
  while (true) {
    std::optional<v1::Task> task = queue_.TryAcquire(worker_id);
    if (!task.has_value() || ClaimTask(*task, worker_id)) return task;
  }
}

absl::StatusOr<bool> JobManager::Heartbeat(const std::string& task_id,
                                           const std::string& worker_id,
                                           const std::vector<v1::EpochResult>& epochs) {
  (void)epochs;
  ASSIGN_OR_RETURN(TaskIdParts parts, ParseTaskId(task_id));
  ASSIGN_OR_RETURN(Lease lease, queue_.Heartbeat(task_id, worker_id));
  if (lease.cancelled) return true;
  Job* job = FindJob(parts.job_id);
  if (job == nullptr) return true;
  absl::MutexLock lock(&mu_);
  return job->stopping;
}

absl::StatusOr<bool> JobManager::ReportResult(const v1::ReportResultRequest& report) {
  return WaitFor([&](std::function<void(absl::StatusOr<bool>)> done) {
    ReportResultAsync(report, std::move(done));
  });
}

void JobManager::ReportResultAsync(const v1::ReportResultRequest& report,
                                   std::function<void(absl::StatusOr<bool>)> done) {
  absl::StatusOr<TaskIdParts> parsed = ParseTaskId(report.task_id());
  if (!parsed.ok()) return done(parsed.status());
  const TaskIdParts& parts = *parsed;
  Job* job = FindJob(parts.job_id);
  if (job == nullptr) return done(absl::NotFoundError(absl::StrCat("no job '", parts.job_id, "'")));
  v1::Trial trial;
  trial.set_job_id(parts.job_id);
  trial.set_trial_id(parts.trial_id);
  trial.set_attempts(parts.attempt);
  trial.set_worker_id(report.worker_id());
  // A recorded outcome answers "not a duplicate".
  auto finish = [this, job, &trial, &done] {
    FinishAsync(job, std::move(trial), [done = std::move(done)](absl::StatusOr<bool> recorded) {
      if (!recorded.ok()) return done(recorded.status());
      done(!*recorded);
    });
  };
  const bool success = report.error().empty();
  if (success) {
    const double reward = report.metrics().reward();
    if (!std::isfinite(reward)) {
      return done(
          absl::InvalidArgumentError(absl::StrCat("metrics.reward: must be finite, got ", reward)));
    }
    trial.set_state(v1::TRIAL_STATE_SUCCEEDED);
    *trial.mutable_metrics() = report.metrics();
    return finish();
  }
  // A failure: retry while attempts remain, unless permanent or the job stopped.
  bool stopping;
  std::optional<v1::Trial> inflight;
  {
    absl::MutexLock lock(&mu_);
    stopping = job->stopping;
    auto it = job->inflight.find(parts.trial_id);
    if (it != job->inflight.end()) inflight = it->second;
  }
  if (!inflight.has_value()) return done(true);  // Already finished: a duplicate.
  trial.set_error(report.error().substr(0, 4000));
  if (stopping) {
    trial.set_state(v1::TRIAL_STATE_CANCELLED);
  } else if (report.permanent() || parts.attempt >= job->spec.evaluator().max_attempts()) {
    trial.set_state(v1::TRIAL_STATE_FAILED);
    if (!report.permanent()) {
      trial.set_error(absl::StrCat("failed ", parts.attempt, " attempts; last: ", trial.error()));
    }
  } else {
    queue_.CompleteTrial(parts.job_id, parts.trial_id);
    EnqueueAttempt(job, *inflight, parts.attempt + 1);
    NAS_LOG(Warning) << "trial " << parts.trial_id << " of job " << parts.job_id
                     << " attempt " << parts.attempt << " failed on " << report.worker_id()
                     << ", retrying: " << report.error();
    return done(false);
  }
  finish();
}

void JobManager::UpdateJobGauges() {
  if (!metrics_) return;
  std::vector<std::string> ids;
  {
    absl::MutexLock lock(&mu_);
    for (const auto& [id, job] : jobs_) ids.push_back(id);
  }
  for (const std::string& id : ids) {
    absl::StatusOr<TrialStore::TrialCounts> counts = options_.store->CountTrials(id);
    if (!counts.ok()) continue;
    metrics_->JobGauge(id, "best_reward").Set(counts->best_reward);
    metrics_->JobGauge(id, "mean_reward").Set(counts->mean_reward);
    metrics_->JobGauge(id, "trials_succeeded").Set(static_cast<double>(counts->succeeded));
    metrics_->JobGauge(id, "trials_failed")
        .Set(static_cast<double>(counts->failed + counts->cancelled));
    metrics_->JobGauge(id, "trials_running").Set(static_cast<double>(counts->running));
    metrics_->JobGauge(id, "trials_queued").Set(static_cast<double>(counts->queued));
  }
}

void JobManager::RunMaintenance() {
  absl::Time next_gauges = absl::InfinitePast();
  while (true) {
    {
      absl::MutexLock lock(&mu_);
      auto stop = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return shutting_down_; };
      if (mu_.AwaitWithTimeout(absl::Condition(&stop), options_.lease_check_interval)) return;
    }
    for (Lease& lease : queue_.ExpireLeases()) {
      if (metrics_) metrics_->leases_expired.Increment();
      Job* job = FindJob(lease.task.job_id());
      if (job == nullptr) continue;
      v1::ReportResultRequest failure;
      failure.set_task_id(lease.task.task_id());
      failure.set_worker_id(lease.worker_id);
      failure.set_error(absl::StrCat("lease expired: worker ", lease.worker_id, " sent no heartbeat for ",
                                     lease.task.lease_seconds(), " s"));
      absl::StatusOr<bool> handled = ReportResult(failure);
      if (!handled.ok()) NAS_LOG(Error) << "expired lease: " << handled.status();
    }
    if (metrics_) {
      metrics_->queue_depth.Set(static_cast<double>(queue_.queued()));
      metrics_->leased.Set(static_cast<double>(queue_.leased()));
      metrics_->workers.Set(queue_.ConnectedWorkers(absl::Minutes(1)));
      if (absl::Now() >= next_gauges) {
        UpdateJobGauges();
        next_gauges = absl::Now() + absl::Seconds(2);
      }
    }
  }
}

}  // namespace nas::controller
