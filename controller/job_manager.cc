#include "controller/job_manager.h"

#include <algorithm>
#include <atomic>
#include <map>
#include <set>
#include <random>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "controller/controller_metrics.h"
#include "controller/darts_strategy.h"
#include "controller/early_stopping.h"
#include "controller/job_spec.h"
#include "controller/replica.h"
#include "controller/strategy.h"
#include "controller/strategy_registry.h"

namespace nas::controller {
namespace {

// Trials that must have finished before budget.max_failed_fraction is judged.
constexpr int64_t kMinTrialsForFailedFraction = 10;

int64_t UnixMillis(absl::Time t) { return absl::ToUnixMillis(t); }

bool IsTerminal(v1::JobState state) {
  return state == v1::JOB_STATE_SUCCEEDED || state == v1::JOB_STATE_CANCELLED ||
         state == v1::JOB_STATE_FAILED;
}

int64_t TrialIndex(const std::string& trial_id) {
  int64_t index = -1;
  if (trial_id.size() > 1 && trial_id[0] == 't') {
    (void)absl::SimpleAtoi(trial_id.substr(1), &index);
  }
  return index;
}

// The compute ledger of a job from its trial counts.
void SetLedger(const TrialStore::TrialCounts& counts, const v1::JobSpec& spec, v1::Job* job) {
  job->set_worker_seconds(counts.worker_seconds);
  job->set_epochs_trained(counts.epochs_trained);
  job->set_trials_stopped(counts.trials_stopped);
  job->set_epochs_saved(std::max<int64_t>(
      0, counts.trials_stopped * EvaluatorEpochs(spec.evaluator()) - counts.stopped_epochs));
}

bool NeedsParameterServers(const v1::JobSpec& spec) {
  absl::StatusOr<StrategyTraits> traits = LookupStrategy(spec.strategy().name());
  return traits.ok() && traits->needs_parameter_servers;
}

// A job's succeeded trials in completion order (what a JobStrategyState is
// rebuilt from after a restart).
absl::StatusOr<std::vector<Observation>> SucceededTrials(TrialStore& store,
                                                         const std::string& job_id) {
  constexpr int kPage = 1000;
  std::vector<Observation> out;
  for (int64_t after = 0;;) {
    ASSIGN_OR_RETURN(std::vector<v1::Trial> page, store.TrialsAfter(job_id, after, kPage));
    for (v1::Trial& t : page) {
      after = std::max(after, t.sequence());
      if (t.state() != v1::TRIAL_STATE_SUCCEEDED) continue;
      out.push_back({std::move(*t.mutable_architecture()), t.metrics().reward()});
    }
    if (static_cast<int>(page.size()) < kPage) return out;
  }
}

// Every trial of a job: the finished ones in completion order, then the
// unfinished ones.
absl::StatusOr<std::vector<v1::Trial>> AllTrials(TrialStore& store, const std::string& job_id) {
  constexpr int kPage = 1000;
  std::vector<v1::Trial> out;
  for (int64_t after = 0;;) {
    ASSIGN_OR_RETURN(std::vector<v1::Trial> page, store.TrialsAfter(job_id, after, kPage));
    for (v1::Trial& t : page) {
      after = std::max(after, t.sequence());
      out.push_back(std::move(t));
    }
    if (static_cast<int>(page.size()) < kPage) break;
  }
  ASSIGN_OR_RETURN(std::vector<PendingTrial> unfinished, store.UnfinishedTrials(job_id));
  for (PendingTrial& p : unfinished) out.push_back(std::move(p.trial));
  return out;
}

// ENAS, random and evolution one-shot jobs: the `k` distinct architectures
// with the best one-shot reward among the later half (in completion order)
// of the succeeded search trials, where ω had trained longest; each with
// that reward as its one_shot_score. docs/one_shot.md.
std::vector<v1::Trial> BestOneShotArchitectures(const std::vector<v1::Trial>& trials, int k) {
  std::vector<const v1::Trial*> search;
  for (const v1::Trial& t : trials) {
    if (!t.final_training() && t.state() == v1::TRIAL_STATE_SUCCEEDED) search.push_back(&t);
  }
  std::map<std::string, const v1::Trial*> best;  // by canonical
  for (size_t i = search.size() / 2; i < search.size(); ++i) {
    const v1::Trial* t = search[i];
    auto [it, inserted] = best.emplace(t->architecture().canonical(), t);
    if (!inserted && t->metrics().reward() > it->second->metrics().reward()) it->second = t;
  }
  std::vector<const v1::Trial*> ranked;
  for (const auto& [canonical, t] : best) ranked.push_back(t);
  std::stable_sort(ranked.begin(), ranked.end(), [](const v1::Trial* a, const v1::Trial* b) {
    return a->metrics().reward() > b->metrics().reward();
  });
  std::vector<v1::Trial> out;
  for (size_t i = 0; i < ranked.size() && static_cast<int>(i) < k; ++i) {
    v1::Trial final_trial;
    *final_trial.mutable_architecture() = ranked[i]->architecture();
    final_trial.set_one_shot_score(ranked[i]->metrics().reward());
    out.push_back(std::move(final_trial));
  }
  return out;
}

}  // namespace

// One job: its spec, its record and counters, and its replicas.
class JobManager::Job final : public ReplicaJob {
 public:
  Job(JobManager* manager, v1::Job record)
      : manager_(manager), id_(record.job_id()), spec_(record.spec()),
        stored_baseline_(record.baseline()), record_(std::move(record)) {}

  // --- ReplicaJob ---
  const std::string& id() const override { return id_; }
  const v1::JobSpec& spec() const override { return spec_; }
  bool weights_may_have_moved() const override { return weights_may_have_moved_; }
  double stored_baseline() const override { return stored_baseline_; }
  std::shared_ptr<JobStrategyState> strategy_state() const override { return strategy_state_; }

  int ReserveTrials(int wanted, int64_t* first_index, int64_t* samples_before) override
      ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    if (stopping_) return 0;
    const v1::BudgetSpec& budget = spec_.budget();
    if (budget.max_wall_seconds() > 0 &&
        manager_->options_.clock->Now() - absl::FromUnixMillis(record_.start_time_unix_ms()) >=
            absl::Seconds(budget.max_wall_seconds())) {
      return 0;
    }
    int64_t n = wanted;
    if (budget.max_trials() > 0) n = std::min<int64_t>(n, budget.max_trials() - evaluations_);
    if (budget.max_samples() > 0) n = std::min<int64_t>(n, budget.max_samples() - samples_);
    if (n <= 0) return 0;
    *first_index = next_index_;
    *samples_before = samples_;
    next_index_ += n;
    samples_ += n;
    evaluations_ += n;
    return static_cast<int>(n);
  }

  void ReturnEvaluations(int n) override ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    evaluations_ -= n;
  }

  void Fail(const absl::Status& status) override {
    manager_->EndJob(this, v1::JOB_STATE_FAILED, std::string(status.ToString()));
  }

  void RoundDone(double baseline, double entropy, bool pushed) override ABSL_LOCKS_EXCLUDED(mu_) {
    {
      absl::MutexLock lock(&mu_);
      record_.set_baseline(baseline);
      if (pushed) ++gradient_pushes_;
      ++change_;
    }
    if (ControllerMetrics* m = manager_->metrics_.get()) m->SetPolicy(id_, baseline, entropy);
  }

  // The reason to fail the job for its failed trials (more than
  // budget.max_failed_fraction of them, judged once `min_finished` trials
  // finished), or empty.
  std::string TooManyFailures(int64_t min_finished) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    const int64_t finished = trials_succeeded_ + trials_failed_;
    const double limit = spec_.budget().max_failed_fraction();
    if (finished == 0 || finished < min_finished ||
        static_cast<double>(trials_failed_) <= limit * static_cast<double>(finished)) {
      return "";
    }
    return absl::StrCat(trials_failed_, " of the ", finished,
                        " trials finished failed (more than budget.max_failed_fraction = ", limit,
                        " of them); the last failure, trial ", last_trial_error_);
  }

  bool SleepUnlessStopping(absl::Duration duration) override ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    auto stop = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return stopping_; };
    return mu_.AwaitWithTimeout(absl::Condition(&stop), duration);
  }

  JobManager* const manager_;
  const std::string id_;
  const v1::JobSpec spec_;
  const double stored_baseline_;
  // Set by StartJob before any replica runs; constant after.
  bool weights_may_have_moved_ = false;
  std::shared_ptr<JobStrategyState> strategy_state_;
  std::vector<std::unique_ptr<Replica>> replicas_;
  // Replica threads; joined by ~JobManager.
  std::vector<std::thread> threads_;

  absl::Mutex mu_ ABSL_ACQUIRED_AFTER(manager_->mu_);
  v1::Job record_ ABSL_GUARDED_BY(mu_);  // state, error, times, baseline
  int64_t samples_ ABSL_GUARDED_BY(mu_) = 0;     // trials sampled (the depth schedule's clock)
  // Samples reserved as evaluations (worker runs) for budget.max_trials:
  // samples less the cache hits among them.
  int64_t evaluations_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t next_index_ ABSL_GUARDED_BY(mu_) = 0;  // index of the next trial id
  int replicas_running_ ABSL_GUARDED_BY(mu_) = 0;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  int64_t change_ ABSL_GUARDED_BY(mu_) = 0;  // bumped on every finished trial and state change
  int64_t gradient_pushes_ ABSL_GUARDED_BY(mu_) = 0;
  // Finished trials for budget.max_failed_fraction (cancelled ones do not count).
  int64_t trials_succeeded_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t trials_failed_ ABSL_GUARDED_BY(mu_) = 0;
  std::string last_trial_error_ ABSL_GUARDED_BY(mu_);
  // Start of the job (in this process) or its last final trial.
  absl::Time last_progress_ ABSL_GUARDED_BY(mu_);
  // The ended job's tensors were dropped from the parameter servers.
  bool weights_dropped_ ABSL_GUARDED_BY(mu_) = false;
  // One-shot jobs' final phase (StartFinalTrials): set once the search
  // budget is spent; while `final_setup_` the final trials are being looked
  // up or created, and those that finish meanwhile go to `final_done_`;
  // after it, `final_pending_` holds the final trials not finished yet, and
  // the job succeeds when it empties.
  bool final_phase_ ABSL_GUARDED_BY(mu_) = false;
  bool final_setup_ ABSL_GUARDED_BY(mu_) = false;
  std::set<std::string> final_pending_ ABSL_GUARDED_BY(mu_);
  std::set<std::string> final_done_ ABSL_GUARDED_BY(mu_);
  // record_'s last change is not in the store yet (the store refused it: a
  // full disk); the maintenance thread stores it again at next_save_.
  bool record_unsaved_ ABSL_GUARDED_BY(mu_) = false;
  absl::Time next_save_ ABSL_GUARDED_BY(mu_);
  absl::Duration save_backoff_ ABSL_GUARDED_BY(mu_);
};

JobManager::JobManager(const JobManagerOptions& options) : options_(options) {
  if (options.metrics != nullptr) metrics_ = std::make_unique<ControllerMetrics>(*options.metrics);
}

absl::StatusOr<std::unique_ptr<JobManager>> JobManager::Create(const JobManagerOptions& options) {
  if (options.store == nullptr) return absl::InvalidArgumentError("JobManager needs a store");
  if (options.clock == nullptr) return absl::InvalidArgumentError("JobManager needs a clock");
  std::unique_ptr<JobManager> manager(new JobManager(options));
  TrialBrokerOptions broker_options;
  broker_options.store = options.store;
  broker_options.clock = options.clock;
  broker_options.listener = manager.get();
  broker_options.lease_check_interval = options.lease_check_interval;
  broker_options.metrics = manager->metrics_.get();
  ASSIGN_OR_RETURN(manager->broker_, TrialBroker::Create(broker_options));
  ASSIGN_OR_RETURN(std::vector<v1::Job> records, options.store->LoadJobs());
  // Results shared across jobs (evaluator.reuse_results), ended jobs' too,
  // before any job dispatches (oldest job first: its evaluations stand).
  std::vector<const v1::Job*> sharing;
  for (const v1::Job& record : records) {
    if (record.has_spec() && record.spec().evaluator().reuse_results()) sharing.push_back(&record);
  }
  std::sort(sharing.begin(), sharing.end(), [](const v1::Job* a, const v1::Job* b) {
    return a->create_time_unix_ms() < b->create_time_unix_ms();
  });
  for (const v1::Job* record : sharing) {
    absl::StatusOr<std::vector<v1::Trial>> evaluated =
        options.store->EvaluatedTrials(record->job_id());
    if (!evaluated.ok()) {
      // A job whose rows cannot be read shares nothing; StartJob says why.
      NAS_LOG(Warning) << "job " << record->job_id()
                       << ": its results are not shared with other jobs: " << evaluated.status();
      continue;
    }
    manager->broker_->AddSharedResults(record->spec(), *evaluated);
  }
  for (v1::Job& record : records) {
    const std::string id = record.job_id();
    if (record.state() == v1::JOB_STATE_FAILED && !record.has_spec()) {
      // Its row is damaged (LoadJobs said how): listed, never run.
      NAS_LOG(Error) << record.error();
      (void)manager->StartJob(std::make_unique<Job>(manager.get(), std::move(record)), false);
      continue;
    }
    const bool resume = !IsTerminal(record.state());
    v1::Job failed = record;
    absl::Status started =
        manager->StartJob(std::make_unique<Job>(manager.get(), std::move(record)), resume);
    if (started.ok()) continue;
    // Its stored trials cannot be read: the job stays listed, FAILED with
    // the damage; the other jobs resume.
    failed.set_state(v1::JOB_STATE_FAILED);
    failed.set_error(absl::StrCat("cannot resume job ", id, ": ", started.message(),
                                  "; the other jobs are unaffected. Restore a backup of the "
                                  "trial store to recover it (docs/trial_store.md, \"Restoring\")"));
    failed.set_end_time_unix_ms(UnixMillis(options.clock->Now()));
    NAS_LOG(Error) << failed.error();
    // Stored if the jobs table still takes writes; the job is FAILED either way.
    if (absl::Status stored = options.store->UpdateJob(failed); !stored.ok()) {
      NAS_LOG(Error) << "job " << id << ": cannot store its FAILED state: " << stored;
    }
    (void)manager->StartJob(std::make_unique<Job>(manager.get(), std::move(failed)), false);
  }
  manager->maintenance_ = std::thread([m = manager.get()] { m->RunMaintenance(); });
  return manager;
}

JobManager::~JobManager() {
  std::vector<Job*> jobs;
  {
    absl::MutexLock lock(&mu_);
    shutting_down_ = true;
    for (auto& [id, job] : jobs_) jobs.push_back(job.get());
  }
  for (Job* job : jobs) {
    {
      absl::MutexLock lock(&job->mu_);
      job->stopping_ = true;
    }
    for (auto& replica : job->replicas_) replica->Abandon();
  }
  broker_->Shutdown();
  if (maintenance_.joinable()) maintenance_.join();
  std::vector<std::thread> threads;
  {
    absl::MutexLock lock(&mu_);
    for (auto& [id, job] : jobs_) {
      for (std::thread& t : job->threads_) threads.push_back(std::move(t));
      job->threads_.clear();
    }
  }
  for (std::thread& t : threads) t.join();
  // Outcomes still being committed call back into the broker and this manager.
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
  const bool learns = NeedsParameterServers(spec);
  if (learns && options_.weights == nullptr) {
    return absl::FailedPreconditionError(absl::StrCat(
        "strategy.name: ", spec.strategy().name(),
        " needs parameter servers, and this controller has none (start it with "
        "--parameter_servers)"));
  }
  if (spec.evaluator().has_shared() && options_.weights == nullptr) {
    return absl::FailedPreconditionError(
        "evaluator.shared: one-shot search keeps the supernet's weights on the parameter servers, and "
        "this controller has none (start it with --parameter_servers)");
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
    // The slot is taken here, under the same lock as the check.
    absl::MutexLock lock(&mu_);
    if (running_jobs_ >= options_.max_running_jobs) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "the controller already runs ", running_jobs_,
          " jobs (its limit, --max_running_jobs); cancel one or wait"));
    }
    ++running_jobs_;
  }
  record.set_state(v1::JOB_STATE_RUNNING);
  record.set_start_time_unix_ms(record.create_time_unix_ms());
  absl::Status stored = options_.store->CreateJob(record);
  if (!stored.ok()) {
    absl::MutexLock lock(&mu_);
    --running_jobs_;
    return stored;
  }
  const std::string id = record.job_id();
  RETURN_IF_ERROR(StartJob(std::make_unique<Job>(this, std::move(record)), /*resume=*/false));
  NAS_LOG(Info) << "job " << id << " (" << spec.name() << ") started: strategy "
                << spec.strategy().name() << ", S=" << spec.parallelism().num_shards()
                << " K=" << spec.parallelism().num_replicas()
                << " m=" << spec.parallelism().children_per_replica();
  return GetJob(id);
}

absl::Status JobManager::StartJob(std::unique_ptr<Job> job, bool resume) {
  Job* raw = job.get();
  bool run;
  {
    absl::MutexLock lock(&raw->mu_);
    run = !IsTerminal(raw->record_.state());
  }
  if (run) {
    ReplicaOptions replica_options;
    replica_options.broker = broker_.get();
    replica_options.weights = options_.weights;
    replica_options.store = options_.store;
    replica_options.clock = options_.clock;
    replica_options.retry_initial_backoff = options_.retry_initial_backoff;
    replica_options.retry_max_backoff = options_.retry_max_backoff;
    replica_options.metrics = metrics_.get();
    ASSIGN_OR_RETURN(raw->strategy_state_, CreateJobStrategyState(raw->spec_));
    const int replicas = LayoutOf(raw->spec_).loops;
    for (int r = 0; r < replicas; ++r) {
      raw->replicas_.push_back(std::make_unique<Replica>(raw, r, replica_options));
    }
    absl::MutexLock lock(&raw->mu_);
    raw->last_progress_ = options_.clock->Now();
  }
  std::vector<AdoptedTrial> adopted;
  std::vector<v1::Trial> evaluated;  // the result cache's succeeded evaluations
  if (run && resume) {
    // Every read a resume needs comes before the broker hears of the job:
    // a job whose rows are damaged fails here without a trace elsewhere.
    TrialStore* store = options_.store;
    RETURN_IF_ERROR(store->CheckJob(raw->id_));
    ASSIGN_OR_RETURN(TrialStore::TrialCounts counts, store->CountTrials(raw->id_));
    ASSIGN_OR_RETURN(std::vector<int64_t> last_rounds,
                     store->LastRounds(raw->id_, static_cast<int>(raw->replicas_.size())));
    absl::flat_hash_map<std::string, std::shared_ptr<RoundOutcomes>> waiting;
    for (size_t r = 0; r < raw->replicas_.size(); ++r) {
      ASSIGN_OR_RETURN(std::vector<AdoptedTrial> round,
                       raw->replicas_[r]->LoadInterruptedRound(last_rounds[r]));
      for (AdoptedTrial& t : round) waiting[t.trial.trial_id()] = std::move(t.outcomes);
    }
    ASSIGN_OR_RETURN(std::vector<PendingTrial> unfinished, store->UnfinishedTrials(raw->id_));
    ASSIGN_OR_RETURN(evaluated, store->EvaluatedTrials(raw->id_));
    const int64_t samples =
        counts.queued + counts.running + counts.succeeded + counts.failed + counts.cancelled;
    int64_t max_index = -1;
    for (PendingTrial& p : unfinished) {
      max_index = std::max(max_index, TrialIndex(p.trial.trial_id()));
      auto round = waiting.find(p.trial.trial_id());
      std::shared_ptr<RoundOutcomes> outcomes =
          round == waiting.end() ? nullptr : std::move(round->second);
      adopted.push_back(AdoptedTrial{std::move(p.trial), std::move(outcomes)});
    }
    {
      absl::MutexLock lock(&raw->mu_);
      raw->samples_ = samples;
      raw->evaluations_ = samples - counts.cache_hits;
      // Trial ids must never repeat: continue after the highest index stored.
      raw->next_index_ = std::max(samples, max_index + 1);
      raw->trials_succeeded_ = counts.succeeded;
      raw->trials_failed_ = counts.failed;
    }
    raw->weights_may_have_moved_ = counts.succeeded > 0;
    if (raw->strategy_state_ != nullptr) {
      ASSIGN_OR_RETURN(std::vector<Observation> history, SucceededTrials(*store, raw->id_));
      raw->strategy_state_->Restore(history);
    }
    NAS_LOG(Info) << "job " << raw->id_ << " resumed: " << samples << " trials sampled, "
                  << adopted.size() << " unfinished taken over";
  }
  if (run) {
    broker_->OpenJob(raw->id_, raw->spec_);
    if (metrics_) metrics_->OpenJob(raw->id_);
  }
  if (run && resume) broker_->Adopt(raw->id_, std::move(adopted), std::move(evaluated));
  absl::MutexLock lock(&mu_);
  if (run) {
    if (resume) ++running_jobs_;
    {
      absl::MutexLock job_lock(&raw->mu_);
      raw->replicas_running_ = static_cast<int>(raw->replicas_.size());
    }
    for (size_t r = 0; r < raw->replicas_.size(); ++r) {
      raw->threads_.emplace_back([this, raw, r] { RunReplica(raw, static_cast<int>(r)); });
    }
  }
  jobs_[raw->id_] = std::move(job);
  return absl::OkStatus();
}

void JobManager::RunReplica(Job* job, int replica) {
  Replica* r = job->replicas_[replica].get();
  if (r->Start()) {
    while (r->RunOnce()) {
    }
  }
  OnReplicaDone(job);
}

void JobManager::OnReplicaDone(Job* job) {
  std::string failure;
  bool final_phase = false;
  {
    absl::MutexLock lock(&job->mu_);
    if (--job->replicas_running_ > 0) return;
    // At the end of the budget the fraction is judged on however many
    // trials finished: a job whose every trial failed did not succeed.
    failure = job->TooManyFailures(1);
    final_phase = failure.empty() && !job->stopping_ && job->spec_.evaluator().has_shared() &&
                  job->spec_.evaluator().shared().final_top_k() > 0;
    if (final_phase) {
      job->final_phase_ = true;
      job->final_setup_ = true;
    }
  }
  if (final_phase) {
    absl::Status started = StartFinalTrials(job);
    if (!started.ok()) {
      EndJob(job, v1::JOB_STATE_FAILED,
             absl::StrCat("cannot start the final trials: ", started.ToString()));
      return;
    }
    absl::MutexLock lock(&job->mu_);
    job->final_setup_ = false;
    for (const std::string& id : job->final_done_) job->final_pending_.erase(id);
    if (!job->final_pending_.empty()) {
      NAS_LOG(Info) << "job " << job->id_ << " spent its search budget; " << job->final_pending_.size()
                    << " final trials to train";
      return;
    }
  }
  if (!failure.empty()) {
    EndJob(job, v1::JOB_STATE_FAILED, failure);
  } else if (EndJob(job, v1::JOB_STATE_SUCCEEDED, "")) {
    NAS_LOG(Info) << "job " << job->id_ << " finished its budget";
  }
}

absl::Status JobManager::StartFinalTrials(Job* job) {
  // Final trials stored by an earlier process (a restart during the final
  // phase) are the job's: the broker adopted the unfinished ones.
  ASSIGN_OR_RETURN(std::vector<v1::Trial> trials, AllTrials(*options_.store, job->id_));
  std::vector<std::string> pending;
  bool any_final = false;
  for (const v1::Trial& t : trials) {
    if (!t.final_training()) continue;
    any_final = true;
    if (!IsFinal(t.state())) pending.push_back(t.trial_id());
  }
  if (!any_final) {
    const int k = job->spec_.evaluator().shared().final_top_k();
    std::vector<v1::Trial> finals;
    if (job->spec_.strategy().name() == "darts") {
      // The argmax of the latest α.
      if (options_.weights == nullptr) {
        return absl::FailedPreconditionError("darts needs parameter servers");
      }
      ASSIGN_OR_RETURN(PulledWeights alpha, options_.weights->Pull(job->id_));
      for (const FlatTensor& t : alpha.tensors) {
        if (t.name != kDartsAlpha) continue;
        double score = 0;
        ASSIGN_OR_RETURN(v1::Architecture argmax, DartsArgmax(job->spec_.search_space(), t, &score));
        v1::Trial final_trial;
        *final_trial.mutable_architecture() = std::move(argmax);
        final_trial.set_one_shot_score(score);
        finals.push_back(std::move(final_trial));
      }
    } else {
      finals = BestOneShotArchitectures(trials, k);
    }
    if (finals.empty()) return absl::OkStatus();  // nothing succeeded to train
    const int64_t now_ms = UnixMillis(options_.clock->Now());
    {
      absl::MutexLock lock(&job->mu_);
      for (v1::Trial& t : finals) {
        t.set_trial_id(absl::StrFormat("t%06d", job->next_index_++));
        t.set_replica(-1);  // no replica's round: RoundTrials never sees it
        t.set_final_training(true);
        t.set_create_time_unix_ms(now_ms);
        ++job->samples_;
      }
    }
    for (const v1::Trial& t : finals) pending.push_back(t.trial_id());
    RETURN_IF_ERROR(broker_->Dispatch(job->id_, 0, std::move(finals), nullptr));
  }
  absl::MutexLock lock(&job->mu_);
  job->final_pending_.insert(pending.begin(), pending.end());
  return absl::OkStatus();
}

bool JobManager::EndJob(Job* job, v1::JobState state, const std::string& error) {
  {
    absl::MutexLock lock(&mu_);
    if (shutting_down_) return false;  // jobs stay running, to resume
  }
  v1::Job record;
  {
    absl::MutexLock lock(&job->mu_);
    if (IsTerminal(job->record_.state())) return false;
    job->record_.set_state(state);
    job->record_.set_error(error);
    job->record_.set_end_time_unix_ms(UnixMillis(options_.clock->Now()));
    job->stopping_ = true;
    ++job->change_;
    record = job->record_;
  }
  {
    absl::MutexLock lock(&mu_);
    --running_jobs_;
  }
  for (auto& replica : job->replicas_) replica->Abandon();
  if (state == v1::JOB_STATE_FAILED) NAS_LOG(Error) << "job " << job->id_ << " failed: " << error;
  absl::Status stored = options_.store->UpdateJob(record);
  if (!stored.ok()) {
    // Not dropped: the maintenance thread stores it once the store can.
    NAS_LOG(Error) << "job " << job->id_ << ": cannot store its end yet (retrying): " << stored;
    absl::MutexLock lock(&job->mu_);
    job->record_unsaved_ = true;
    job->save_backoff_ = options_.retry_initial_backoff;
    job->next_save_ = options_.clock->Now() + job->save_backoff_;
  }
  broker_->CloseJob(job->id_);
  return true;
}

void JobManager::SaveUnsavedRecords() {
  std::vector<Job*> jobs;
  {
    absl::MutexLock lock(&mu_);
    for (auto& [id, job] : jobs_) jobs.push_back(job.get());
  }
  const absl::Time now = options_.clock->Now();
  for (Job* job : jobs) {
    v1::Job record;
    {
      absl::MutexLock lock(&job->mu_);
      if (!job->record_unsaved_ || job->next_save_ > now) continue;
      record = job->record_;
    }
    absl::Status stored = options_.store->UpdateJob(record);
    absl::MutexLock lock(&job->mu_);
    if (stored.ok()) {
      job->record_unsaved_ = false;
      NAS_LOG(Info) << "job " << job->id_ << ": its " << JobStateName(record.state())
                    << " state is stored";
      continue;
    }
    job->save_backoff_ = std::min(job->save_backoff_ * 2, options_.retry_max_backoff);
    job->next_save_ = now + job->save_backoff_;
  }
}

void JobManager::OnTrialFinal(const v1::Trial& trial) {
  Job* job = FindJob(trial.job_id());
  if (job == nullptr) return;
  std::string failure;
  bool final_trials_done = false;
  {
    absl::MutexLock lock(&job->mu_);
    ++job->change_;
    job->last_progress_ = options_.clock->Now();
    if (trial.final_training() && job->final_phase_) {
      if (job->final_setup_) {
        job->final_done_.insert(trial.trial_id());
      } else if (job->final_pending_.erase(trial.trial_id()) > 0 && job->final_pending_.empty()) {
        final_trials_done = true;
      }
    }
    // The failed fraction is judged on evaluations: a cache hit repeats one.
    if (trial.cached_from().empty()) {
      if (trial.state() == v1::TRIAL_STATE_SUCCEEDED) ++job->trials_succeeded_;
      if (trial.state() == v1::TRIAL_STATE_FAILED && !job->stopping_) {
        ++job->trials_failed_;
        job->last_trial_error_ = absl::StrCat(trial.trial_id(), ": ", trial.error());
        failure = job->TooManyFailures(kMinTrialsForFailedFraction);
      }
    }
    if (final_trials_done && failure.empty()) failure = job->TooManyFailures(1);
  }
  if (!failure.empty()) {
    EndJob(job, v1::JOB_STATE_FAILED, failure);
  } else if (final_trials_done && EndJob(job, v1::JOB_STATE_SUCCEEDED, "")) {
    NAS_LOG(Info) << "job " << job->id_ << " finished its final trials";
  }
}


absl::StatusOr<v1::Job> JobManager::Cancel(const std::string& job_id) {
  Job* job = FindJob(job_id);
  if (job == nullptr) return absl::NotFoundError(absl::StrCat("no job '", job_id, "'"));
  if (!EndJob(job, v1::JOB_STATE_CANCELLED, "")) {
    absl::MutexLock lock(&job->mu_);
    return absl::FailedPreconditionError(absl::StrCat(
        "job ", job_id, " has ended already (", JobStateName(job->record_.state()), ")"));
  }
  // The trials the broker cancelled are committed before the answer.
  absl::Status flushed = options_.store->Flush();
  bool unsaved;
  {
    absl::MutexLock lock(&job->mu_);
    unsaved = job->record_unsaved_;
  }
  if (!flushed.ok() || unsaved) {
    // The job is cancelled here; the store catches up once it can write.
    return absl::ResourceExhaustedError(absl::StrCat(
        "job ", job_id, " is cancelled, but the trial store cannot store that yet (",
        flushed.ok() ? absl::StrCat("storing its end in ", options_.store->path(),
                                    " failed; see the controller's log")
                     : std::string(flushed.message()),
        "); it is stored as soon as there is space (a controller restart before then resumes "
        "the job)"));
  }
  NAS_LOG(Info) << "job " << job_id << " cancelled";
  return Snapshot(job);
}

JobManager::Job* JobManager::FindJob(const std::string& job_id) {
  absl::MutexLock lock(&mu_);
  auto it = jobs_.find(job_id);
  return it == jobs_.end() ? nullptr : it->second.get();
}

v1::Job JobManager::Snapshot(Job* job) {
  v1::Job out;
  {
    absl::MutexLock lock(&job->mu_);
    out = job->record_;
    out.set_samples(job->samples_);
    out.set_gradient_pushes(job->gradient_pushes_);
  }
  absl::StatusOr<TrialStore::TrialCounts> counts = options_.store->CountTrials(job->id_);
  if (counts.ok()) {
    out.set_trials_succeeded(counts->succeeded);
    out.set_trials_failed(counts->failed + counts->cancelled);
    out.set_trials_running(counts->running);
    out.set_trials_queued(counts->queued);
    out.set_best_reward(counts->best_reward);
    out.set_best_trial_id(counts->best_trial_id);
    out.set_best_canonical(counts->best_canonical);
    out.set_mean_reward(counts->mean_reward);
    out.set_cache_hits(counts->cache_hits);
    SetLedger(*counts, job->spec_, &out);
  }
  out.set_connected_workers(broker_->ConnectedWorkers(absl::Minutes(1)));
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

absl::StatusOr<std::vector<v1::Trial>> JobManager::ListTrials(const std::string& job_id,
                                                               v1::ListTrialsRequest::Order order,
                                                               v1::TrialState state,
                                                               int64_t offset, int limit,
                                                               int64_t* total) {
  if (FindJob(job_id) == nullptr) return absl::NotFoundError(absl::StrCat("no job '", job_id, "'"));
  return options_.store->ListTrials(job_id, order, state, offset, limit, total);
}

absl::StatusOr<v1::Trial> JobManager::GetTrial(const std::string& job_id,
                                               const std::string& trial_id) {
  if (FindJob(job_id) == nullptr) return absl::NotFoundError(absl::StrCat("no job '", job_id, "'"));
  return options_.store->GetTrial(job_id, trial_id);
}

absl::StatusOr<TrialLog> JobManager::GetTrialLog(const std::string& job_id, const std::string& trial_id,
                                                 int attempt) {
  if (FindJob(job_id) == nullptr) return absl::NotFoundError(absl::StrCat("no job '", job_id, "'"));
  absl::StatusOr<v1::Trial> trial = options_.store->GetTrial(job_id, trial_id);
  if (!trial.ok()) return trial.status();
  absl::StatusOr<TrialLog> log = options_.store->GetTrialLog(job_id, trial_id, attempt);
  if (log.ok()) {
    // An attempt that ended without its last chunk (its worker died, the
    // lease went to another attempt) will get no more.
    if (IsFinal(trial->state()) || log->attempt < trial->attempts()) log->complete = true;
    return log;
  }
  if (!absl::IsNotFound(log.status())) return log;
  // Nothing stored: the built-in evaluators write no log, or none came yet.
  TrialLog empty;
  empty.attempt = attempt > 0 ? attempt : trial->attempts();
  empty.complete = IsFinal(trial->state()) || (attempt > 0 && attempt < trial->attempts());
  return empty;
}

absl::StatusOr<std::vector<v1::Trial>> JobManager::TrialsAfter(const std::string& job_id,
                                                                int64_t after_sequence,
                                                                int limit) {
  if (FindJob(job_id) == nullptr) return absl::NotFoundError(absl::StrCat("no job '", job_id, "'"));
  return options_.store->TrialsAfter(job_id, after_sequence, limit);
}

absl::StatusOr<int64_t> JobManager::WaitForChange(const std::string& job_id, int64_t seen_change,
                                                  absl::Time deadline) {
  Job* job = FindJob(job_id);
  if (job == nullptr) return absl::NotFoundError(absl::StrCat("no job '", job_id, "'"));
  absl::MutexLock lock(&job->mu_);
  auto changed = [job, seen_change]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(job->mu_) {
    return job->change_ > seen_change;
  };
  job->mu_.AwaitWithDeadline(absl::Condition(&changed), deadline);
  return job->change_;
}

bool JobManager::IsFinished(const std::string& job_id) {
  Job* job = FindJob(job_id);
  if (job == nullptr) return true;
  absl::MutexLock lock(&job->mu_);
  return IsTerminal(job->record_.state());
}

void JobManager::DropExpiredWeights() {
  if (options_.weights == nullptr) return;
  std::vector<Job*> jobs;
  {
    absl::MutexLock lock(&mu_);
    for (auto& [id, job] : jobs_) jobs.push_back(job.get());
  }
  const absl::Time now = options_.clock->Now();
  for (Job* job : jobs) {
    {
      absl::MutexLock lock(&job->mu_);
      if (job->weights_dropped_ || !IsTerminal(job->record_.state()) ||
          absl::FromUnixMillis(job->record_.end_time_unix_ms()) + options_.weights_retention >
              now) {
        continue;
      }
    }
    // The strategy's tensors under the job id, and a one-shot job's ω (the
    // workers created it; absent if none ran a search task).
    std::vector<std::string> sets;
    if (NeedsParameterServers(job->spec_)) sets.push_back(job->id_);
    if (job->spec_.evaluator().has_shared()) sets.push_back(OmegaSetId(job->id_));
    absl::Status dropped = absl::OkStatus();
    for (const std::string& set : sets) {
      absl::Status status = options_.weights->DropJob(set);
      if (!status.ok() && !absl::IsNotFound(status)) dropped = status;
    }
    if (!dropped.ok()) {
      NAS_LOG(Warning) << "job " << job->id_ << ": cannot drop its tensors yet: " << dropped;
      continue;
    }
    NAS_LOG(Info) << "job " << job->id_ << ": tensors dropped from the parameter servers";
    absl::MutexLock lock(&job->mu_);
    job->weights_dropped_ = true;
  }
}

void JobManager::UpdateJobGauges() {
  if (!metrics_) return;
  std::vector<Job*> jobs;
  {
    absl::MutexLock lock(&mu_);
    for (const auto& [id, job] : jobs_) jobs.push_back(job.get());
  }
  const absl::Time now = options_.clock->Now();
  for (Job* job : jobs) {
    if (!metrics_->IsOpen(job->id_)) continue;
    absl::Time last_progress;
    absl::Time start;
    {
      absl::MutexLock lock(&job->mu_);
      if (IsTerminal(job->record_.state())) {
        // Ended: its series stay for the retention (Prometheus scrapes the
        // last values), then go.
        if (absl::FromUnixMillis(job->record_.end_time_unix_ms()) + options_.metrics_retention <=
            now) {
          metrics_->CloseJob(job->id_);
        }
        continue;
      }
      last_progress = job->last_progress_;
      start = absl::FromUnixMillis(job->record_.start_time_unix_ms());
    }
    absl::StatusOr<TrialStore::TrialCounts> counts = options_.store->CountTrials(job->id_);
    if (!counts.ok()) continue;
    ControllerMetrics::JobValues values;
    values.best_reward = counts->best_reward;
    values.mean_reward = counts->mean_reward;
    values.running = counts->running;
    values.queued = counts->queued;
    const v1::BudgetSpec& budget = job->spec_.budget();
    // max_trials counts evaluations (worker runs), max_samples every sample;
    // a one-shot job's final trials count against neither.
    const int64_t finished =
        counts->succeeded + counts->failed + counts->cancelled - counts->final_finished;
    if (budget.max_trials() > 0) {
      values.budget_used = static_cast<double>(std::max<int64_t>(0, finished - counts->cache_hits)) /
                           static_cast<double>(budget.max_trials());
    }
    if (budget.max_samples() > 0) {
      values.budget_used = std::max(values.budget_used, static_cast<double>(finished) /
                                                            static_cast<double>(budget.max_samples()));
    }
    if (budget.max_wall_seconds() > 0) {
      values.budget_used = std::max(values.budget_used, absl::ToDoubleSeconds(now - start) /
                                                            static_cast<double>(budget.max_wall_seconds()));
    }
    values.last_progress_unix_seconds = absl::ToDoubleSeconds(last_progress - absl::UnixEpoch());
    v1::Job ledger;
    SetLedger(*counts, job->spec_, &ledger);
    values.worker_seconds = ledger.worker_seconds();
    values.epochs_trained = ledger.epochs_trained();
    values.epochs_saved = ledger.epochs_saved();
    metrics_->SetJobValues(job->id_, values);
  }
}

void JobManager::RunMaintenance() {
  absl::Time next_gauges = absl::InfinitePast();
  absl::Time next_drop = absl::InfinitePast();
  while (true) {
    {
      absl::MutexLock lock(&mu_);
      auto stop = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return shutting_down_; };
      if (mu_.AwaitWithTimeout(absl::Condition(&stop), absl::Milliseconds(250))) return;
    }
    const absl::Time now = absl::Now();
    SaveUnsavedRecords();
    if (metrics_) {
      const int64_t failures = options_.store->write_failures();
      if (failures > store_failures_counted_) {
        metrics_->store_write_failures.Increment(
            static_cast<double>(failures - store_failures_counted_));
        store_failures_counted_ = failures;
      }
    }
    if (now >= next_drop) {
      DropExpiredWeights();
      next_drop = now + absl::Seconds(1);
    }
    if (metrics_ && now >= next_gauges) {
      UpdateJobGauges();
      next_gauges = now + absl::Seconds(2);
    }
  }
}

}  // namespace nas::controller
