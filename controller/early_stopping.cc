#include "controller/early_stopping.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <set>

#include "absl/container/flat_hash_map.h"

namespace nas::controller {
namespace {

double BestOf(const std::vector<double>& curve, size_t epochs) {
  double best = 0;
  for (size_t i = 0; i < epochs && i < curve.size(); ++i) best = std::max(best, curve[i]);
  return best;
}

// Stops a trial at epoch e (>= min_epochs) when its best accuracy so far is
// below the median, over the finished trials that reached epoch e (at least
// min_trials of them), of their running average accuracy up to epoch e.
class MedianRule : public EarlyStopping {
 public:
  MedianRule(int min_epochs, int min_trials) : min_epochs_(min_epochs), min_trials_(min_trials) {}

  bool ShouldStop(const std::string&, const std::vector<double>& curve) override {
    const size_t e = curve.size();
    if (e == 0 || static_cast<int>(e) < min_epochs_) return false;
    std::vector<double> averages;
    for (const std::vector<double>& running : finished_) {
      if (running.size() >= e) averages.push_back(running[e - 1]);
    }
    if (static_cast<int>(averages.size()) < min_trials_) return false;
    const size_t mid = averages.size() / 2;
    std::nth_element(averages.begin(), averages.begin() + mid, averages.end());
    double median = averages[mid];
    if (averages.size() % 2 == 0) {
      median = (median + *std::max_element(averages.begin(), averages.begin() + mid)) / 2;
    }
    return BestOf(curve, e) < median;
  }

  void Finished(const std::string&, const std::vector<double>& curve) override {
    if (curve.empty()) return;
    std::vector<double> running(curve.size());
    double sum = 0;
    for (size_t i = 0; i < curve.size(); ++i) {
      sum += curve[i];
      running[i] = sum / static_cast<double>(i + 1);
    }
    finished_.push_back(std::move(running));
  }

 private:
  const int min_epochs_;
  const int min_trials_;
  // Running averages of the finished trials' curves.
  std::vector<std::vector<double>> finished_;
};

// Asynchronous successive halving (ASHA): rungs at min_epochs * eta^k epochs
// (below the evaluator's epochs). A trial reaching a rung is recorded there
// with its best accuracy so far, and goes on only if fewer than
// ceil(n / eta) of the n trials recorded at that rung (itself included) did
// better: the top 1/eta. The first arrivals at a rung always go on.
class SuccessiveHalving : public EarlyStopping {
 public:
  SuccessiveHalving(int min_epochs, double eta, int epochs) : eta_(eta) {
    double r = min_epochs;
    while (epochs <= 0 || static_cast<int>(std::lround(r)) < epochs) {
      const int rung = static_cast<int>(std::lround(r));
      if (rungs_.empty() || rung > rungs_.back()) rungs_.push_back(rung);
      r *= eta;
      if (r > 1e6) break;
    }
  }

  bool ShouldStop(const std::string& trial_id, const std::vector<double>& curve) override {
    bool stop = false;
    std::set<int>& recorded = recorded_[trial_id];
    for (int rung : rungs_) {
      if (rung > static_cast<int>(curve.size())) break;
      if (!recorded.insert(rung).second) continue;
      const double value = BestOf(curve, rung);
      std::vector<double>& values = at_rung_[rung];
      values.push_back(value);
      const int64_t better = std::count_if(values.begin(), values.end(),
                                           [value](double v) { return v > value; });
      const double keep = std::ceil(static_cast<double>(values.size()) / eta_);
      if (static_cast<double>(better) >= keep) stop = true;
      if (stop) break;
    }
    return stop;
  }

  void Finished(const std::string& trial_id, const std::vector<double>&) override {
    recorded_.erase(trial_id);
  }

  const std::vector<int>& rungs() const { return rungs_; }

 private:
  const double eta_;
  std::vector<int> rungs_;
  std::map<int, std::vector<double>> at_rung_;
  absl::flat_hash_map<std::string, std::set<int>> recorded_;
};

}  // namespace

std::unique_ptr<EarlyStopping> EarlyStopping::Create(const v1::EarlyStoppingSpec& spec,
                                                     int epochs) {
  if (spec.rule() == "median") {
    return std::make_unique<MedianRule>(std::max(1, spec.min_epochs()),
                                        std::max(1, spec.min_trials()));
  }
  if (spec.rule() == "successive_halving") {
    return std::make_unique<SuccessiveHalving>(std::max(1, spec.min_epochs()),
                                               spec.eta() > 1 ? spec.eta() : 3.0, epochs);
  }
  return nullptr;
}

int EvaluatorEpochs(const v1::EvaluatorSpec& evaluator) {
  if (evaluator.has_train()) return evaluator.train().epochs();
  if (evaluator.has_synthetic()) return std::max(1, evaluator.synthetic().epochs());
  if (evaluator.has_command()) return evaluator.command().epochs();
  return 0;
}

}  // namespace nas::controller
