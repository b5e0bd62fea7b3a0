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
// Prints `name value unit` lines; exits 1 naming the figure that misses.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <deque>
#include <random>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "controller/early_stopping.h"

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
      !(fraction > 0 && fraction <= 1)) {
    std::fprintf(stderr, "economy_bench: --seeds, --trials, --workers >= 1, --epochs >= 2, "
                         "--budget_fraction in (0, 1]\n");
    return 2;
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
  for (const std::string& m : missed) std::printf("GOAL MISSED: %s\n", m.c_str());
  if (!missed.empty()) return 1;
  std::printf("all goals met\n");
  return 0;
}
