#include "controller/controller_metrics.h"

#include <algorithm>

namespace nas::controller {
namespace {

prometheus::Family<prometheus::Gauge>& JobGaugeFamily(prometheus::Registry& registry,
                                                      const std::string& name,
                                                      const std::string& help) {
  return prometheus::BuildGauge().Name(name).Help(help).Register(registry);
}

template <typename Metric>
void Remember(std::vector<std::pair<prometheus::Family<Metric>*, Metric*>>& series,
              prometheus::Family<Metric>& family, Metric& metric) {
  const std::pair<prometheus::Family<Metric>*, Metric*> entry{&family, &metric};
  if (std::find(series.begin(), series.end(), entry) == series.end()) series.push_back(entry);
}

// Advances `counter` to `total` (a total read from the store; never back).
void AdvanceTo(prometheus::Counter& counter, double total) {
  if (total > counter.Value()) counter.Increment(total - counter.Value());
}

}  // namespace

ControllerMetrics::ControllerMetrics(prometheus::Registry& registry)
    : leases_expired(prometheus::BuildCounter()
                         .Name("nas_controller_leases_expired_total")
                         .Help("Task leases that expired without a result.")
                         .Register(registry)
                         .Add({})),
      reward(prometheus::BuildHistogram()
                 .Name("nas_controller_reward")
                 .Help("Rewards of succeeded trials.")
                 .Register(registry)
                 .Add({}, prometheus::Histogram::BucketBoundaries{0.01, 0.05, 0.1, 0.2, 0.3, 0.4,
                                                                  0.5, 0.6, 0.7, 0.8, 0.9, 0.95,
                                                                  1.0})),
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
                  .Add({})),
      store_write_failures(prometheus::BuildCounter()
                               .Name("nas_controller_store_write_failures_total")
                               .Help("Trial-store writes that failed (disk full, I/O error); "
                                     "their owners retry them.")
                               .Register(registry)
                               .Add({})),
      trials_(prometheus::BuildCounter()
                  .Name("nas_controller_trials_total")
                  .Help("Trials that reached a final state, by job and status.")
                  .Register(registry)),
      samples_(prometheus::BuildCounter()
                   .Name("nas_controller_samples_total")
                   .Help("Architectures sampled, by job.")
                   .Register(registry)),
      pushes_(prometheus::BuildCounter()
                  .Name("nas_controller_gradient_pushes_total")
                  .Help("Gradients pushed to the parameter servers, by job and outcome.")
                  .Register(registry)),
      cache_hits_(prometheus::BuildCounter()
                      .Name("nas_controller_cache_hits_total")
                      .Help("Samples answered by the job's result cache (succeeded without a "
                            "worker run: evaluations saved), by job.")
                      .Register(registry)),
      early_stops_(prometheus::BuildCounter()
                       .Name("nas_controller_early_stops_total")
                       .Help("Trials the job's early-stopping rule stopped, by job.")
                       .Register(registry)),
      worker_seconds_(prometheus::BuildCounter()
                          .Name("nas_controller_job_worker_seconds_total")
                          .Help("Worker-seconds a job's evaluations took (the compute ledger).")
                          .Register(registry)),
      epochs_trained_(prometheus::BuildCounter()
                          .Name("nas_controller_job_epochs_trained_total")
                          .Help("Epochs a job's evaluations trained.")
                          .Register(registry)),
      epochs_saved_(prometheus::BuildCounter()
                        .Name("nas_controller_job_epochs_saved_total")
                        .Help("Epochs early stopping saved a job (its stopped trials' "
                              "untrained epochs).")
                        .Register(registry)),
      best_reward_(JobGaugeFamily(registry, "nas_controller_job_best_reward",
                                  "Best reward of a job's succeeded trials.")),
      mean_reward_(JobGaugeFamily(registry, "nas_controller_job_mean_reward",
                                  "Mean reward of a job's succeeded trials.")),
      baseline_reward_(JobGaugeFamily(registry, "nas_controller_job_baseline_reward",
                                      "REINFORCE baseline (moving average of rewards) of a job's "
                                      "last round.")),
      policy_entropy_(JobGaugeFamily(registry, "nas_controller_job_policy_entropy",
                                     "Entropy of a job's sampling policy in its last round, in "
                                     "nats.")),
      job_trials_(JobGaugeFamily(registry, "nas_controller_job_trials",
                                 "A job's trials not yet final, by state (running, queued).")),
      budget_used_(JobGaugeFamily(registry, "nas_controller_job_budget_used_ratio",
                                  "Fraction of a job's budget used: finished trials over "
                                  "max_trials or elapsed over max_wall_seconds, the larger.")),
      last_progress_(JobGaugeFamily(registry, "nas_controller_job_last_progress_timestamp_seconds",
                                    "Unix time of a job's last final trial (its start before "
                                    "the first).")) {}

void ControllerMetrics::OpenJob(const std::string& job) {
  absl::MutexLock lock(&mu_);
  jobs_.try_emplace(job);
}

void ControllerMetrics::CloseJob(const std::string& job) {
  absl::MutexLock lock(&mu_);
  auto it = jobs_.find(job);
  if (it == jobs_.end()) return;
  for (auto& [family, counter] : it->second.counters) family->Remove(counter);
  for (auto& [family, gauge] : it->second.gauges) family->Remove(gauge);
  jobs_.erase(it);
}

bool ControllerMetrics::IsOpen(const std::string& job) {
  absl::MutexLock lock(&mu_);
  return jobs_.contains(job);
}

prometheus::Counter* ControllerMetrics::JobCounter(prometheus::Family<prometheus::Counter>& family,
                                                   const std::string& job,
                                                   std::map<std::string, std::string> labels) {
  auto it = jobs_.find(job);
  if (it == jobs_.end()) return nullptr;
  labels["job_id"] = job;
  prometheus::Counter& counter = family.Add(labels);
  Remember(it->second.counters, family, counter);
  return &counter;
}

prometheus::Gauge* ControllerMetrics::JobGauge(prometheus::Family<prometheus::Gauge>& family,
                                               const std::string& job,
                                               std::map<std::string, std::string> labels) {
  auto it = jobs_.find(job);
  if (it == jobs_.end()) return nullptr;
  labels["job_id"] = job;
  prometheus::Gauge& gauge = family.Add(labels);
  Remember(it->second.gauges, family, gauge);
  return &gauge;
}

void ControllerMetrics::CountTrial(const std::string& job, const std::string& status) {
  absl::MutexLock lock(&mu_);
  if (prometheus::Counter* c = JobCounter(trials_, job, {{"status", status}})) c->Increment();
}

void ControllerMetrics::CountSamples(const std::string& job, double n) {
  absl::MutexLock lock(&mu_);
  if (prometheus::Counter* c = JobCounter(samples_, job, {})) c->Increment(n);
}

void ControllerMetrics::CountCacheHit(const std::string& job) {
  absl::MutexLock lock(&mu_);
  if (prometheus::Counter* c = JobCounter(cache_hits_, job, {})) c->Increment();
}

void ControllerMetrics::CountEarlyStop(const std::string& job) {
  absl::MutexLock lock(&mu_);
  if (prometheus::Counter* c = JobCounter(early_stops_, job, {})) c->Increment();
}

void ControllerMetrics::CountPush(const std::string& job, const std::string& outcome) {
  absl::MutexLock lock(&mu_);
  if (prometheus::Counter* c = JobCounter(pushes_, job, {{"outcome", outcome}})) c->Increment();
}

void ControllerMetrics::SetPolicy(const std::string& job, double baseline, double entropy) {
  absl::MutexLock lock(&mu_);
  if (prometheus::Gauge* g = JobGauge(baseline_reward_, job)) g->Set(baseline);
  if (prometheus::Gauge* g = JobGauge(policy_entropy_, job)) g->Set(entropy);
}

void ControllerMetrics::SetJobValues(const std::string& job, const JobValues& values) {
  absl::MutexLock lock(&mu_);
  if (!jobs_.contains(job)) return;
  JobGauge(best_reward_, job)->Set(values.best_reward);
  JobGauge(mean_reward_, job)->Set(values.mean_reward);
  JobGauge(job_trials_, job, {{"state", "running"}})->Set(static_cast<double>(values.running));
  JobGauge(job_trials_, job, {{"state", "queued"}})->Set(static_cast<double>(values.queued));
  JobGauge(budget_used_, job)->Set(values.budget_used);
  JobGauge(last_progress_, job)->Set(values.last_progress_unix_seconds);
  AdvanceTo(*JobCounter(worker_seconds_, job, {}), values.worker_seconds);
  AdvanceTo(*JobCounter(epochs_trained_, job, {}), static_cast<double>(values.epochs_trained));
  AdvanceTo(*JobCounter(epochs_saved_, job, {}), static_cast<double>(values.epochs_saved));
}

}  // namespace nas::controller
