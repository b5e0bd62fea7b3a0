#include "controller/replica.h"

#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "controller/controller_metrics.h"
#include "controller/strategy.h"
#include "controller/strategy_registry.h"

namespace nas::controller {
namespace {

// Parameter-server and trial-store (a full disk) errors worth retrying.
// NOT_FOUND is not one: a shard restores its checkpoints before it serves,
// so a job it does not know is lost, not late.
bool IsRetryable(const absl::Status& status) {
  return absl::IsUnavailable(status) || absl::IsDeadlineExceeded(status) ||
         absl::IsAborted(status) || absl::IsResourceExhausted(status);
}

std::string TrialId(int64_t index) { return absl::StrFormat("t%06d", index); }

v1::OptimizerConfig OptimizerFor(const v1::JobSpec& spec) {
  v1::OptimizerConfig optimizer;
  optimizer.set_kind(spec.controller().optimizer() == "sgd" ? v1::OptimizerConfig::SGD
                                                            : v1::OptimizerConfig::ADAM);
  optimizer.set_learning_rate(spec.controller().learning_rate());
  optimizer.set_gradients_per_update(spec.parallelism().gradients_per_update());
  return optimizer;
}

}  // namespace

Replica::Replica(ReplicaJob* job, int index, const ReplicaOptions& options)
    : job_(job),
      index_(index),
      options_(options),
      children_per_round_(LayoutOf(job->spec()).children_per_round) {}

Replica::~Replica() = default;

absl::StatusOr<std::vector<AdoptedTrial>> Replica::LoadInterruptedRound(int64_t last_round) {
  round_ = last_round + 1;
  rounds_before_ = last_round + 1;
  if (last_round < 0) return std::vector<AdoptedTrial>();
  absl::StatusOr<std::vector<v1::Trial>> trials =
      options_.store->RoundTrials(job_->id(), index_, last_round);
  if (!trials.ok()) return trials.status();
  std::vector<AdoptedTrial> unfinished;
  auto outcomes = std::make_shared<RoundOutcomes>(static_cast<int>(trials->size()));
  for (v1::Trial& trial : *trials) {
    if (IsFinal(trial.state())) {
      outcomes->Add(std::move(trial));
    } else {
      unfinished.push_back(AdoptedTrial{std::move(trial), outcomes});
    }
  }
  if (unfinished.empty()) return unfinished;
  round_ = last_round;
  absl::MutexLock lock(&mu_);
  round_outcomes_ = std::move(outcomes);
  return unfinished;
}

absl::Status Replica::Retry(const std::string& what, const std::function<absl::Status()>& call) {
  absl::Duration backoff = options_.retry_initial_backoff;
  for (int attempt = 1;; ++attempt) {
    absl::Status status = call();
    if (status.ok() || !IsRetryable(status)) return status;
    if (attempt == 1 || attempt % 20 == 0) {
      NAS_LOG(Warning) << "job " << job_->id() << ": " << what << " failed (attempt " << attempt
                       << "), retrying: " << status;
    }
    if (job_->SleepUnlessStopping(backoff)) {
      return absl::CancelledError(absl::StrCat(what, ": job stopping"));
    }
    backoff = std::min(backoff * 2, options_.retry_max_backoff);
  }
}

absl::Status Replica::InitShards(const std::vector<FlatTensor>& theta) {
  absl::flat_hash_map<std::string, const FlatTensor*> by_name;
  for (const FlatTensor& t : theta) by_name[t.name] = &t;
  std::vector<FlatTensor> ordered;
  ordered.reserve(layout_.size());
  for (const std::string& name : layout_) {
    auto it = by_name.find(name);
    if (it == by_name.end()) {
      absl::Status missing = absl::InternalError(absl::StrCat("θ lacks tensor ", name));
      job_->Fail(missing);
      return missing;
    }
    ordered.push_back(*it->second);
  }
  absl::Status init = Retry("InitJob on the parameter servers", [&] {
    return options_.weights->InitJob(job_->id(), ordered, OptimizerFor(job_->spec()));
  });
  if (!init.ok() && !absl::IsCancelled(init)) job_->Fail(init);
  return init;
}

absl::Status Replica::Load(PulledWeights pulled) {
  absl::Status loaded = strategy_->LoadParameters(pulled.tensors);
  if (!loaded.ok()) {
    job_->Fail(loaded);
    return loaded;
  }
  sampled_versions_ = std::move(pulled.versions);
  last_theta_ = std::move(pulled.tensors);
  return absl::OkStatus();
}

absl::Status Replica::Pull() {
  absl::StatusOr<PulledWeights> pulled;
  for (bool reinitialised = false;; reinitialised = true) {
    absl::Status status = Retry("Pull", [&] {
      pulled = options_.weights->Pull(job_->id());
      return pulled.status();
    });
    if (status.ok()) break;
    if (absl::IsNotFound(status) && !last_theta_.empty() && !reinitialised) {
      NAS_LOG(Warning) << "job " << job_->id() << " replica " << index_ << ": " << status
                       << "; re-initialising that shard from the θ this replica last pulled";
      RETURN_IF_ERROR(InitShards(last_theta_));
      continue;
    }
    if (absl::IsNotFound(status)) {
      status = absl::FailedPreconditionError(absl::StrCat(
          status.message(),
          ": the shard has lost the job's controller weights and this controller holds no copy "
          "(it restarted since they last changed); the job cannot go on without starting from "
          "fresh random weights: resubmit it"));
    }
    if (!absl::IsCancelled(status)) job_->Fail(status);
    return status;
  }
  return Load(*std::move(pulled));
}

bool Replica::Start() {
  // A resumed replica continues from a stream of its own: the plain one
  // would redraw its first rounds' samples (cache hits that waste samples).
  absl::StatusOr<std::unique_ptr<SearchStrategy>> created =
      CreateStrategy(job_->spec(), index_, job_->strategy_state(), rounds_before_);
  if (!created.ok()) {
    job_->Fail(created.status());
    return false;
  }
  strategy_ = std::move(created).value();
  strategy_->set_baseline(job_->stored_baseline());
  const std::vector<FlatTensor> initial = strategy_->InitialParameters();
  learns_ = !initial.empty();
  if (!learns_) return true;
  for (const FlatTensor& t : initial) layout_.push_back(t.name);
  if (options_.weights == nullptr) {
    job_->Fail(absl::FailedPreconditionError("strategy needs parameter servers"));
    return false;
  }
  // θ may have moved on under an earlier process: never replace it with
  // fresh random weights; the shards must still hold it.
  if (job_->weights_may_have_moved()) return Pull().ok();
  return InitShards(initial).ok();
}

bool Replica::Sample(int n, int64_t first_index, int64_t samples_before) {
  if (learns_) {
    if (after_push_.has_value()) {
      PulledWeights latest = *std::move(after_push_);
      after_push_.reset();
      if (!Load(std::move(latest)).ok()) return false;
    } else if (!Pull().ok()) {
      return false;
    }
  }
  SampleContext context;
  context.samples_so_far = samples_before;
  absl::StatusOr<std::vector<v1::Architecture>> sampled = strategy_->Sample(n, context);
  if (!sampled.ok()) {
    job_->Fail(sampled.status());
    return false;
  }
  std::vector<v1::Trial> trials(n);
  const int64_t now_ms = absl::ToUnixMillis(options_.clock->Now());
  for (int i = 0; i < n; ++i) {
    trials[i].set_trial_id(TrialId(first_index + i));
    trials[i].set_replica(index_);
    *trials[i].mutable_architecture() = std::move((*sampled)[i]);
    trials[i].set_create_time_unix_ms(now_ms);
  }
  auto outcomes = std::make_shared<RoundOutcomes>(n);
  {
    absl::MutexLock lock(&mu_);
    if (abandoned_) return false;
    round_outcomes_ = outcomes;
  }
  // A store that cannot write (RESOURCE_EXHAUSTED: a full disk) stored none
  // of them (and the cache forgot them): the same trials are dispatched again
  // once it can.
  int cache_hits = 0;
  absl::Status dispatched = Retry("store the sampled trials", [&] {
    return options_.broker->Dispatch(job_->id(), round_, trials, outcomes, &cache_hits);
  });
  if (!dispatched.ok()) {
    // FAILED_PRECONDITION: the job stopped meanwhile (CANCELLED: while waiting).
    if (!absl::IsFailedPrecondition(dispatched) && !absl::IsCancelled(dispatched)) {
      job_->Fail(dispatched);
    }
    return false;
  }
  if (cache_hits > 0) job_->ReturnEvaluations(cache_hits);
  if (options_.metrics != nullptr) {
    options_.metrics->CountSamples(job_->id(), n);
  }
  return true;
}

bool Replica::RunOnce() {
  const absl::Time round_start = absl::Now();
  std::shared_ptr<RoundOutcomes> outcomes;
  {
    absl::MutexLock lock(&mu_);
    outcomes = round_outcomes_;  // a round interrupted by a restart
  }
  if (outcomes == nullptr) {
    int64_t first_index = 0, samples_before = 0;
    const int n = job_->ReserveTrials(children_per_round_, &first_index, &samples_before);
    if (n == 0 || !Sample(n, first_index, samples_before)) return false;
    absl::MutexLock lock(&mu_);
    outcomes = round_outcomes_;
  }
  absl::StatusOr<std::vector<v1::Trial>> done = outcomes->Wait();
  {
    absl::MutexLock lock(&mu_);
    round_outcomes_.reset();
  }
  if (!done.ok() || !Learn(*done)) return false;
  if (options_.metrics != nullptr) {
    options_.metrics->round_seconds.Observe(absl::ToDoubleSeconds(absl::Now() - round_start));
  }
  ++round_;
  return true;
}

bool Replica::Learn(const std::vector<v1::Trial>& outcomes) {
  std::vector<v1::Architecture> architectures;
  std::vector<double> rewards;
  std::vector<Observation> observations;
  for (const v1::Trial& t : outcomes) {
    if (t.state() != v1::TRIAL_STATE_SUCCEEDED) continue;
    architectures.push_back(t.architecture());
    rewards.push_back(t.metrics().reward());
    observations.push_back({t.architecture(), t.metrics().reward()});
  }
  strategy_->Observe(observations);
  bool pushed = false;
  if (learns_ && !architectures.empty()) {
    // A round resumed after a restart was sampled by an earlier process:
    // its θ is gone, so it is scored under the current one.
    if (!sampled_versions_.has_value() && !Pull().ok()) return false;
    absl::StatusOr<std::vector<FlatTensor>> gradient =
        strategy_->Gradient(architectures, rewards);
    if (!gradient.ok()) {
      job_->Fail(gradient.status());
      return false;
    }
    if (gradient->empty()) {
      // The workers train these parameters (darts): nothing to push; the
      // next round pulls what they pushed.
      sampled_versions_.reset();
      job_->RoundDone(strategy_->baseline(), strategy_->last_entropy(), false);
      return true;
    }
    absl::Status status = Retry("Push", [&] {
      PulledWeights updated;
      absl::Status s = options_.weights->Push(job_->id(), index_, *sampled_versions_, *gradient,
                                              &updated);
      if (s.ok()) after_push_ = std::move(updated);
      return s;
    });
    if (options_.metrics != nullptr) {
      options_.metrics->CountPush(job_->id(), status.ok() ? "ok" : "error");
    }
    if (absl::IsCancelled(status)) return false;
    if (absl::IsNotFound(status)) {
      NAS_LOG(Warning) << "job " << job_->id() << " replica " << index_ << ": " << status
                       << "; this round's gradient is dropped and that shard re-initialised from "
                          "the θ this replica last pulled";
      if (!InitShards(last_theta_).ok()) return false;
    } else if (!status.ok()) {
      // A rejected gradient (e.g. non-finite) is dropped, never applied.
      NAS_LOG(Error) << "job " << job_->id() << " replica " << index_
                     << ": gradient rejected: " << status;
    }
    pushed = status.ok();
  }
  sampled_versions_.reset();
  job_->RoundDone(strategy_->baseline(), strategy_->last_entropy(), pushed);
  return true;
}

void Replica::Abandon() {
  absl::MutexLock lock(&mu_);
  abandoned_ = true;
  if (round_outcomes_ != nullptr) round_outcomes_->Abandon();
}

}  // namespace nas::controller
