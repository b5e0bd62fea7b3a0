// One of a job's K replicas. Each round (RunOnce) it reserves up to m trials
// of the job's budget, samples them from θ, hands them to the trial broker,
// waits on its RoundOutcomes for their final outcomes and pushes the gradient
// of those that succeeded to the parameter servers. Replicas never wait for
// each other. The loop policy (a thread calling RunOnce until it returns
// false) belongs to the job owner; the round's state belongs to the replica.
#ifndef NAS_CONTROLLER_REPLICA_H_
#define NAS_CONTROLLER_REPLICA_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "controller/trial_broker.h"
#include "controller/trial_store.h"
#include "controller/weights_client.h"
#include "proto/job.pb.h"

namespace nas::controller {

class JobStrategyState;
class SearchStrategy;
class ControllerMetrics;

// What a replica needs from the job it belongs to; the job owner implements
// it. Thread-safe.
class ReplicaJob {
 public:
  virtual ~ReplicaJob() = default;
  virtual const std::string& id() const = 0;
  // With defaults applied; constant.
  virtual const v1::JobSpec& spec() const = 0;
  // Whether θ on the parameter servers may have moved from its initial
  // value before this process started the job (a resumed job with a
  // succeeded trial): then the shards must still hold it.
  virtual bool weights_may_have_moved() const = 0;
  // Reserves up to `wanted` samples of the budget, each with an evaluation
  // (budget.max_samples and budget.max_trials): returns how many (0 when
  // either is spent or the job is stopping), the index of the first trial id
  // and the number of samples the job had drawn before them.
  virtual int ReserveTrials(int wanted, int64_t* first_index, int64_t* samples_before) = 0;
  // `n` of the reserved samples were cache hits: their evaluations go back
  // to budget.max_trials.
  virtual void ReturnEvaluations(int n) = 0;
  // Ends the job as FAILED with `status` (the first failure wins).
  virtual void Fail(const absl::Status& status) = 0;
  // A round ended: the strategy's baseline and entropy, and whether it pushed.
  virtual void RoundDone(double baseline, double entropy, bool pushed) = 0;
  // Waits `duration`, or less when the job stops; true when it is stopping.
  virtual bool SleepUnlessStopping(absl::Duration duration) = 0;
  // The baseline stored with the job (restored after a restart).
  virtual double stored_baseline() const = 0;
  // The state the job's replicas share (evolution's population); null when
  // its strategy has none. Constant.
  virtual std::shared_ptr<JobStrategyState> strategy_state() const = 0;
};

struct ReplicaOptions {
  TrialBroker* broker = nullptr;  // not owned
  // Parameter servers; null when the controller has none. Not owned.
  WeightsClient* weights = nullptr;
  // Read at start to resume an interrupted round. Not owned.
  TrialStore* store = nullptr;
  Clock* clock = Clock::Real();
  // Backoff between retries of parameter-server calls (doubles up to max).
  absl::Duration retry_initial_backoff = absl::Milliseconds(50);
  absl::Duration retry_max_backoff = absl::Seconds(5);
  ControllerMetrics* metrics = nullptr;  // may be null
};

class Replica {
 public:
  Replica(ReplicaJob* job, int index, const ReplicaOptions& options);
  ~Replica();

  // On a resumed job, before any replica runs: `last_round` is the highest
  // round this replica stored (-1: none). Loads that round if the restart
  // interrupted it and returns its unfinished trials, for the broker to
  // adopt with this replica's RoundOutcomes; the next RunOnce finishes it.
  // Start then seeds the strategy's random stream from the rounds stored
  // (ReplicaSeed), so the replica does not redraw its earlier samples.
  absl::StatusOr<std::vector<AdoptedTrial>> LoadInterruptedRound(int64_t last_round)
      ABSL_LOCKS_EXCLUDED(mu_);

  // Creates the strategy and places θ on the parameter servers (or checks
  // they still hold it, on a resumed job). False when the job failed.
  bool Start();

  // One round. False when the replica is done: budget spent, job stopping
  // or failed.
  bool RunOnce() ABSL_LOCKS_EXCLUDED(mu_);

  // Wakes the replica from its wait: the job is stopping.
  void Abandon() ABSL_LOCKS_EXCLUDED(mu_);

 private:
  // Retries `call` with backoff until OK, a final error or the job stops
  // (CANCELLED).
  absl::Status Retry(const std::string& what, const std::function<absl::Status()>& call);
  // Pulls θ into the strategy; on a shard that lost the job (NOT_FOUND)
  // re-initialises it from the last θ this replica holds. Errors other than
  // CANCELLED have failed the job.
  absl::Status Pull();
  // Places `theta` (any order) on every shard that does not hold the job.
  absl::Status InitShards(const std::vector<FlatTensor>& theta);
  // Loads `pulled` into the strategy and keeps it as the last θ.
  absl::Status Load(PulledWeights pulled);
  // Learns from the round's outcomes: the gradient of those that succeeded.
  // False when the replica must end.
  bool Learn(const std::vector<v1::Trial>& outcomes);
  // Samples n architectures and dispatches them as this round's trials.
  bool Sample(int n, int64_t first_index, int64_t samples_before) ABSL_LOCKS_EXCLUDED(mu_);

  ReplicaJob* const job_;
  const int index_;
  const ReplicaOptions options_;
  std::unique_ptr<SearchStrategy> strategy_;
  // Children sampled per round (the spec's m, or 1: strategy_registry.h LayoutOf).
  const int children_per_round_;
  bool learns_ = false;
  int64_t round_ = 0;
  // Rounds this replica had stored when this process took it over (0 for a
  // new job): where its random stream continues (ReplicaSeed).
  int64_t rounds_before_ = 0;
  // The shard versions of θ this round sampled from (unset: the round was
  // sampled by an earlier process, and is scored under the current θ).
  std::optional<std::vector<int64_t>> sampled_versions_;
  // θ as the shards returned it with the last accepted push: the next round
  // samples from it instead of pulling again.
  std::optional<PulledWeights> after_push_;
  // The θ last loaded into the strategy: what a shard that lost the job is
  // re-initialised from. Empty before the first pull.
  std::vector<FlatTensor> last_theta_;
  // Tensor names in InitialParameters() order: the job's layout, which a
  // shard compares in order.
  std::vector<std::string> layout_;

  absl::Mutex mu_;
  // The round waiting for outcomes (or about to); null between rounds.
  std::shared_ptr<RoundOutcomes> round_outcomes_ ABSL_GUARDED_BY(mu_);
  bool abandoned_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace nas::controller

#endif  // NAS_CONTROLLER_REPLICA_H_
