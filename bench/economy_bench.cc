// Early stopping against no stopping on simulated learning curves: the best
// final accuracy found for the simulated compute (epochs) spent.
//
// Each seed draws a stream of children with structured, noisy curves that
// cross each other (a slow starter can finish best): final accuracy
// a ~ 0.55 + 0.4 * Beta-like draw, time constant k in [0.7, 8] epochs, the
// better children slower on average, and
//   accuracy(e) = a * (1 - exp(-e / k)) + N(0, noise),
// clamped to [0, 1]. `workers` simulated workers train the children in
// order, one epoch per time step, asynchronously; after each epoch the
// controller's own rule (controller/early_stopping.h) decides, as it does on
// a heartbeat. Without stopping, `trials` children are trained in full (the
// reference: its epochs are the reference compute). Each rule runs on the
// same stream with at most `budget_fraction` of the reference epochs; its
// best is the best final accuracy among the children it trained in full.
//
// Goal (issue 19): a stopping rule reaches the no-stopping result (the mean
// over seeds of the best final accuracy) with at most 50 % of the epochs.
//
// Then the result cache, through the real service: a nas_parameter_server,
// the nas_controller and --reinforce_workers nas_worker processes on
// 127.0.0.1 with the lookup evaluator, on a table written by
// tools/make_lookup_table (the default structured NAS-Bench-201-style table,
// with learning curves of --reinforce_epochs epochs, replayed at time_scale
// 0: the worker-seconds are the table's simulated seconds). One REINFORCE job per seed (--reinforce_seeds,
// all submitted at once) with the example's settings (learning rate 0.01,
// K = 2, m = 4) and --reinforce_samples samples; from each job's trials:
// samples, evaluations (worker runs), cache hits, distinct architectures,
// the worker-seconds spent on repeats (worker runs of an architecture the
// job had already run) and the worker-seconds the cache saved (what each
// cache hit's evaluation cost). Goal: 0 worker-seconds on repeats, every
// job SUCCEEDED, and the job's ledger (worker_seconds, cache_hits) agreeing
// with its trials.
// Prints `name value unit` lines; exits 1 naming the figure that misses.
#include <sys/stat.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <map>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/file_util.h"
#include "common/subprocess.h"
#include "controller/early_stopping.h"
#include "tests/cluster.h"

ABSL_FLAG(int, seeds, 20, "Seeds (independent streams of children).");
ABSL_FLAG(int, trials, 500, "Children trained in full without stopping (the reference).");
ABSL_FLAG(int, epochs, 20, "Epochs of a full training.");
ABSL_FLAG(int, workers, 8, "Simulated workers training children at once.");
ABSL_FLAG(double, noise, 0.01, "Standard deviation of each epoch's accuracy noise.");
ABSL_FLAG(int, median_min_epochs, 2, "median: early_stopping.min_epochs.");
ABSL_FLAG(int, median_min_trials, 5, "median: early_stopping.min_trials.");
ABSL_FLAG(int, asha_min_epochs, 2, "successive_halving: early_stopping.min_epochs.");
ABSL_FLAG(double, asha_eta, 3, "successive_halving: early_stopping.eta.");
ABSL_FLAG(double, budget_fraction, 0.5,
          "Epochs a stopping rule may spend, as a fraction of the reference's.");
ABSL_FLAG(int, reinforce_seeds, 20,
          "REINFORCE jobs (seeds 1000, 1001, ...) run through the service for the result cache's "
          "figures; 0 skips them.");
ABSL_FLAG(int, reinforce_samples, 500, "budget.max_samples (and max_trials) of each REINFORCE job.");
ABSL_FLAG(int, reinforce_epochs, 10, "Epochs of the lookup table's learning curves.");
ABSL_FLAG(int, reinforce_workers, 3, "nas_worker processes.");
ABSL_FLAG(std::string, runfiles, "",
          "Runfiles directory holding the binaries (default: $TEST_SRCDIR, else <argv[0]>.runfiles).");

namespace nas::bench {
namespace {

struct Child {
  std::vector<double> curve;  // accuracy per epoch
};

// The stream of children of one seed.
class Stream {
 public:
  Stream(uint64_t seed, int epochs, double noise) : rng_(seed), epochs_(epochs), noise_(noise) {}
  Child Next() {
    std::uniform_real_distribution<double> u(0, 1);
    // Final accuracy: most children mediocre, a few good (the max of two
    // uniforms squared skews it).
    const double q = std::pow(std::max(u(rng_), u(rng_)), 3);
    const double final_accuracy = 0.55 + 0.4 * q;
    // Better children learn more slowly on average: curves cross.
    const double k = 0.7 + 7.3 * std::clamp(0.5 * q + 0.5 * u(rng_), 0.0, 1.0);
    std::normal_distribution<double> n(0, noise_);
    Child child;
    for (int e = 1; e <= epochs_; ++e) {
      const double clean = final_accuracy * (1 - std::exp(-e / k));
      child.curve.push_back(std::clamp(clean + n(rng_), 0.0, 1.0));
    }
    return child;
  }

 private:
  std::mt19937_64 rng_;
  const int epochs_;
  const double noise_;
};

struct Result {
  double best = 0;          // best final accuracy among children trained in full
  int64_t epochs = 0;       // epochs spent
  int64_t started = 0;      // children started
  int64_t stopped = 0;      // children stopped early
};

// Runs the stream on `workers` until `max_full` children finished in full
// (no rule) or `max_epochs` epochs are spent.
Result Simulate(uint64_t seed, const v1::EarlyStoppingSpec& rule_spec, int64_t max_full,
                int64_t max_epochs) {
  const int epochs = absl::GetFlag(FLAGS_epochs);
  Stream stream(seed, epochs, absl::GetFlag(FLAGS_noise));
  std::unique_ptr<controller::EarlyStopping> rule =
      controller::EarlyStopping::Create(rule_spec, epochs);
  struct Running {
    std::string id;
    Child child;
    int done = 0;
  };
  std::vector<Running> running;
  Result result;
  int64_t full = 0;
  auto start_one = [&] {
    running.push_back({absl::StrCat("c", result.started++), stream.Next(), 0});
  };
  const int workers = absl::GetFlag(FLAGS_workers);
  while (true) {
    const bool may_start = (max_full <= 0 || full + static_cast<int64_t>(running.size()) < max_full) &&
                           result.epochs < max_epochs;
    while (may_start && static_cast<int>(running.size()) < workers) {
      start_one();
      if (max_full > 0 && full + static_cast<int64_t>(running.size()) >= max_full) break;
    }
    if (running.empty()) break;
    // One time step: every running child trains one epoch.
    std::vector<Running> next;
    for (Running& r : running) {
      if (result.epochs >= max_epochs) break;  // the budget ends mid-step
      ++r.done;
      ++result.epochs;
      std::vector<double> so_far(r.child.curve.begin(), r.child.curve.begin() + r.done);
      if (r.done == epochs) {
        ++full;
        result.best = std::max(result.best, r.child.curve.back());
        if (rule) rule->Finished(r.id, so_far);
        continue;
      }
      if (rule && rule->ShouldStop(r.id, so_far)) {
        ++result.stopped;
        rule->Finished(r.id, so_far);
        continue;
      }
      next.push_back(std::move(r));
    }
    if (result.epochs >= max_epochs) break;
    running = std::move(next);
  }
  return result;
}

// One REINFORCE job's figures, from its trials.
struct CacheFigures {
  int64_t samples = 0;
  int64_t evaluations = 0;   // worker runs (trials without cached_from)
  int64_t cache_hits = 0;    // trials with cached_from
  int64_t distinct = 0;      // architectures
  int64_t repeats = 0;       // worker runs of an architecture the job had already run
  double repeat_worker_seconds = 0;
  double worker_seconds = 0;        // of every worker run
  double saved_worker_seconds = 0;  // what the cache hits' evaluations cost
};

CacheFigures Figures(const std::vector<v1::Trial>& trials) {
  CacheFigures f;
  std::map<std::string, const v1::Trial*> by_id;
  for (const v1::Trial& t : trials) by_id[t.trial_id()] = &t;
  std::set<std::string> architectures, evaluated;
  for (const v1::Trial& t : trials) {
    ++f.samples;
    const std::string& canonical = t.architecture().canonical();
    architectures.insert(canonical);
    if (!t.cached_from().empty()) {
      ++f.cache_hits;
      auto source = by_id.find(t.cached_from());
      if (source != by_id.end()) f.saved_worker_seconds += source->second->metrics().train_seconds();
      continue;
    }
    ++f.evaluations;
    f.worker_seconds += t.metrics().train_seconds();
    if (!evaluated.insert(canonical).second) {
      ++f.repeats;
      f.repeat_worker_seconds += t.metrics().train_seconds();
    }
  }
  f.distinct = static_cast<int64_t>(architectures.size());
  return f;
}

// Starts the service, runs the REINFORCE jobs and prints their figures;
// appends a line to `missed` for each goal missed.
void RunReinforce(std::vector<std::string>* missed) {
  const int seeds = absl::GetFlag(FLAGS_reinforce_seeds);
  const int samples = absl::GetFlag(FLAGS_reinforce_samples);
  const std::string dir = testing::NewTempDir("economy-bench");
  auto fail = [&](const std::string& what) { missed->push_back(what); };
  // The table, with learning curves, where the workers may read it.
  const std::string table = dir + "/table.csv";
  {
    absl::StatusOr<Subprocess> writer = Subprocess::Start(
        {testing::BinaryPath("tools/make_lookup_table"), "--out=" + table,
         absl::StrCat("--curve_epochs=", absl::GetFlag(FLAGS_reinforce_epochs))},
        dir + "/make_lookup_table.log");
    absl::StatusOr<int> status =
        writer.ok() ? writer->Wait(absl::Minutes(2)) : absl::StatusOr<int>(writer.status());
    if (!status.ok() || !WIFEXITED(*status) || WEXITSTATUS(*status) != 0) {
      return fail(absl::StrCat("reinforce: make_lookup_table failed: ",
                               testing::LogTail(dir + "/make_lookup_table.log")));
    }
  }
  testing::ClusterOptions options;
  options.name = "economy-bench";
  options.workers = absl::GetFlag(FLAGS_reinforce_workers);
  options.ps_flags = {"--log_level=warning"};
  options.controller_flags = {"--sync_every_commit=false", absl::StrCat("--max_running_jobs=", seeds),
                              "--log_level=warning"};
  options.worker_flags = {"--data_roots=" + dir, "--log_level=warning"};
  absl::StatusOr<std::unique_ptr<testing::Cluster>> cluster = testing::Cluster::Start(options);
  if (!cluster.ok()) return fail(absl::StrCat("reinforce: ", cluster.status().message()));
  testing::JobClient& jobs = (*cluster)->jobs();
  const absl::Time start = absl::Now();
  std::vector<std::string> ids;
  for (int s = 0; s < seeds; ++s) {
    std::string id;
    grpc::Status submitted = jobs.Submit(absl::StrCat(R"(
name: economy-reinforce-)", 1000 + s, R"(
search_space:
  cell: {num_nodes: 4, operations: [none, skip_connect, nor_conv_1x1, nor_conv_3x3, avg_pool_3x3]}
strategy: {name: reinforce, seed: )", 1000 + s, R"(}
controller: {learning_rate: 0.01}
parallelism: {num_replicas: 2, children_per_replica: 4}
budget: {max_trials: )", samples, ", max_samples: ", samples, R"(}
evaluator: {lookup: {table_path: )", table, R"(, time_scale: 0}}
)"), &id);
    if (!submitted.ok()) {
      return fail(absl::StrCat("reinforce: submit: ", submitted.error_message()));
    }
    ids.push_back(id);
  }
  CacheFigures sum;
  int64_t hits_min = INT64_MAX, hits_max = 0;
  for (const std::string& id : ids) {
    const v1::Job job = jobs.WaitForEnd(id, absl::Minutes(10));
    if (job.state() != v1::JOB_STATE_SUCCEEDED) {
      fail(absl::StrCat("reinforce: job ", id, " ended ", v1::JobState_Name(job.state()), " ",
                        job.error(), "\n", (*cluster)->Logs()));
      continue;
    }
    std::vector<v1::Trial> trials;
    if (grpc::Status listed = jobs.Trials(id, &trials); !listed.ok()) {
      fail(absl::StrCat("reinforce: trials of ", id, ": ", listed.error_message()));
      continue;
    }
    const CacheFigures f = Figures(trials);
    if (f.samples != job.samples() || f.cache_hits != job.cache_hits() ||
        std::abs(f.worker_seconds - job.worker_seconds()) > 1e-6 * (1 + f.worker_seconds)) {
      fail(absl::StrFormat(
          "reinforce: job %s's ledger disagrees with its trials: samples %d/%d, cache hits "
          "%d/%d, worker-seconds %.1f/%.1f",
          id, job.samples(), f.samples, job.cache_hits(), f.cache_hits, job.worker_seconds(),
          f.worker_seconds));
    }
    sum.samples += f.samples;
    sum.evaluations += f.evaluations;
    sum.cache_hits += f.cache_hits;
    sum.distinct += f.distinct;
    sum.repeats += f.repeats;
    sum.repeat_worker_seconds += f.repeat_worker_seconds;
    sum.worker_seconds += f.worker_seconds;
    sum.saved_worker_seconds += f.saved_worker_seconds;
    hits_min = std::min(hits_min, f.cache_hits);
    hits_max = std::max(hits_max, f.cache_hits);
  }
  const double n = static_cast<double>(ids.size());
  std::printf("reinforce_jobs %d jobs (%d samples each, %.0f s)\n", seeds, samples,
              absl::ToDoubleSeconds(absl::Now() - start));
  std::printf("reinforce_samples %.1f samples/job\n", sum.samples / n);
  std::printf("reinforce_evaluations %.1f worker runs/job\n", sum.evaluations / n);
  std::printf("reinforce_cache_hits %.1f hits/job (%.1f %% of samples; min %lld, max %lld)\n",
              sum.cache_hits / n, sum.samples > 0 ? 100.0 * sum.cache_hits / sum.samples : 0.0,
              static_cast<long long>(hits_min == INT64_MAX ? 0 : hits_min),
              static_cast<long long>(hits_max));
  std::printf("reinforce_distinct_architectures %.1f architectures/job\n", sum.distinct / n);
  std::printf("reinforce_worker_seconds %.0f worker-seconds/job (simulated)\n",
              sum.worker_seconds / n);
  std::printf("reinforce_worker_seconds_saved %.0f worker-seconds/job (the cache hits' evaluations)\n",
              sum.saved_worker_seconds / n);
  std::printf("reinforce_repeat_evaluations %lld worker runs\n",
              static_cast<long long>(sum.repeats));
  std::printf("reinforce_repeat_worker_seconds %.1f worker-seconds\n", sum.repeat_worker_seconds);
  if (sum.repeat_worker_seconds > 0 || sum.repeats > 0) {
    fail(absl::StrFormat("reinforce_repeat_worker_seconds %.1f (%lld repeated worker runs): goal 0",
                         sum.repeat_worker_seconds, static_cast<long long>(sum.repeats)));
  }
}

}  // namespace
}  // namespace nas::bench

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  using nas::bench::Result;
  using nas::bench::Simulate;
  const int seeds = absl::GetFlag(FLAGS_seeds);
  const int trials = absl::GetFlag(FLAGS_trials);
  const int epochs = absl::GetFlag(FLAGS_epochs);
  const double fraction = absl::GetFlag(FLAGS_budget_fraction);
  if (seeds < 1 || trials < 1 || epochs < 2 || absl::GetFlag(FLAGS_workers) < 1 ||
      !(fraction > 0 && fraction <= 1) || absl::GetFlag(FLAGS_reinforce_seeds) < 0 ||
      absl::GetFlag(FLAGS_reinforce_samples) < 1 || absl::GetFlag(FLAGS_reinforce_epochs) < 1 ||
      absl::GetFlag(FLAGS_reinforce_workers) < 1) {
    std::fprintf(stderr, "economy_bench: --seeds, --trials, --workers >= 1, --epochs >= 2, "
                         "--budget_fraction in (0, 1], --reinforce_seeds >= 0, "
                         "--reinforce_samples, --reinforce_epochs, --reinforce_workers >= 1\n");
    return 2;
  }
  if (absl::GetFlag(FLAGS_reinforce_seeds) > 0) {
    // test_util starts the binaries from $TEST_SRCDIR (a runfiles tree).
    if (absl::Status s = nas::testing::UseRunfiles(argv[0], absl::GetFlag(FLAGS_runfiles)); !s.ok()) {
      std::fprintf(stderr, "%s\n", std::string(s.message()).c_str());
      return 2;
    }
  }
  struct Rule {
    std::string name;
    nas::v1::EarlyStoppingSpec spec;
  };
  std::vector<Rule> rules(2);
  rules[0].name = "median";
  rules[0].spec.set_rule("median");
  rules[0].spec.set_min_epochs(absl::GetFlag(FLAGS_median_min_epochs));
  rules[0].spec.set_min_trials(absl::GetFlag(FLAGS_median_min_trials));
  rules[1].name = "successive_halving";
  rules[1].spec.set_rule("successive_halving");
  rules[1].spec.set_min_epochs(absl::GetFlag(FLAGS_asha_min_epochs));
  rules[1].spec.set_eta(absl::GetFlag(FLAGS_asha_eta));

  double reference_best = 0;
  int64_t reference_epochs = 0;
  for (int s = 0; s < seeds; ++s) {
    const Result r = Simulate(1000 + s, nas::v1::EarlyStoppingSpec(), trials, INT64_MAX);
    reference_best += r.best / seeds;
    reference_epochs += r.epochs;
  }
  const int64_t budget = static_cast<int64_t>(fraction * reference_epochs / seeds);
  std::printf("none_best_final_accuracy %.4f accuracy\n", reference_best);
  std::printf("none_epochs %.0f epochs/seed\n", static_cast<double>(reference_epochs) / seeds);
  std::vector<std::string> missed;
  bool any_reached = false;
  for (const Rule& rule : rules) {
    double best = 0, spent = 0, started = 0, stopped = 0;
    for (int s = 0; s < seeds; ++s) {
      const Result r = Simulate(1000 + s, rule.spec, 0, budget);
      best += r.best / seeds;
      spent += static_cast<double>(r.epochs) / seeds;
      started += static_cast<double>(r.started) / seeds;
      stopped += static_cast<double>(r.stopped) / seeds;
    }
    std::printf("%s_best_final_accuracy %.4f accuracy\n", rule.name.c_str(), best);
    std::printf("%s_epochs %.0f epochs/seed (%.0f %% of none)\n", rule.name.c_str(), spent,
                100.0 * spent * seeds / reference_epochs);
    std::printf("%s_children %.0f started/seed, %.0f stopped early\n", rule.name.c_str(), started,
                stopped);
    if (best >= reference_best) any_reached = true;
  }
  if (!any_reached) {
    missed.push_back(absl::StrFormat(
        "no stopping rule reached none_best_final_accuracy %.4f with %.0f %% of its epochs",
        reference_best, 100 * fraction));
  }
  if (absl::GetFlag(FLAGS_reinforce_seeds) > 0) nas::bench::RunReinforce(&missed);
  for (const std::string& m : missed) std::printf("GOAL MISSED: %s\n", m.c_str());
  if (!missed.empty()) return 1;
  std::printf("all goals met\n");
  return 0;
}
