// Benchmark: architectures sampled per second by the REINFORCE controller,
// m = 8 per batch, on the paper's 12-layer CNN space (strides and skip
// connections), one core. Prints `name value unit` lines, for the plain-C++
// policy the controller runs and, for comparison, the LibTorch reference
// module it is tested against. Goals (docs/benchmarks.md): >= 500
// architectures/s sampled; a round (sample 8, then their gradient) and a
// teacher-forced gradient of 8 within 16 ms each (>= 500 architectures/s with
// their gradients); the plain-C++ policy at least as fast as the LibTorch
// reference in both. Exits 1 naming each figure that misses its goal, or when
// a measurement (the reference's included) fails or is not a positive number.
//   bazel run //bench:sample_bench
#include <torch/torch.h>

#include <cmath>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "controller/job_spec.h"
#include "controller/lstm_policy.h"
#include "controller/strategy_registry.h"

namespace {

constexpr double kSamplesPerSecondGoal = 500;
constexpr double kRoundSecondsGoal = 0.016;  // 8 architectures and their gradient
constexpr double kSpeedupGoal = 1.0;         // against the LibTorch reference

// Appends to `missed` unless `value` is a positive finite number.
bool Measured(const char* name, double value, std::vector<std::string>* missed) {
  if (std::isfinite(value) && value > 0) return true;
  missed->push_back(absl::StrFormat("%s %g is not a measurement", name, value));
  return false;
}

// A measurement that cannot go on: no figure, exit 1.
int Fail(const char* what, const absl::Status& status) {
  std::fprintf(stderr, "%s failed: %s\n", what, std::string(status.message()).c_str());
  return 1;
}

}  // namespace

int main() {
  torch::set_num_threads(1);
  nas::v1::JobSpec spec;
  nas::v1::MacroCnnSpace* m = spec.mutable_search_space()->mutable_macro_cnn();
  for (int v : {1, 3, 5, 7}) m->add_filter_heights(v);
  for (int v : {1, 3, 5, 7}) m->add_filter_widths(v);
  for (int v : {24, 36, 48, 64}) m->add_num_filters(v);
  for (int v : {1, 2, 3}) m->add_strides(v);
  m->set_skip_connections(true);
  m->mutable_depth()->set_initial_layers(12);
  m->mutable_depth()->set_max_layers(12);
  spec.mutable_strategy()->set_name("reinforce");
  spec.mutable_budget()->set_max_trials(1);
  spec.mutable_evaluator()->mutable_synthetic();
  spec.mutable_parallelism()->set_children_per_replica(8);
  spec = nas::controller::WithDefaults(spec);
  auto strategy = nas::controller::CreateStrategy(spec, 0);
  if (!strategy.ok()) {
    std::fprintf(stderr, "%s\n", std::string(strategy.status().message()).c_str());
    return 1;
  }
  constexpr int kBatch = 8;
  for (int i = 0; i < 5; ++i) {
    if (auto warm = (*strategy)->Sample(kBatch, {}); !warm.ok()) {
      return Fail("Sample", warm.status());
    }
  }
  int sampled = 0;
  const absl::Time start = absl::Now();
  while (absl::Now() - start < absl::Seconds(3)) {
    auto archs = (*strategy)->Sample(kBatch, {});
    if (!archs.ok()) return Fail("Sample", archs.status());
    sampled += kBatch;
  }
  const double seconds = absl::ToDoubleSeconds(absl::Now() - start);
  const double per_second = sampled / seconds;
  // Gradient cost for the same batch, repeated: after the first call the
  // kept traces are used up, so this is teacher-forced recompute + backward.
  auto archs = (*strategy)->Sample(kBatch, {});
  if (!archs.ok()) return Fail("Sample", archs.status());
  std::vector<double> rewards(kBatch, 0.5);
  int gradients = 0;
  const absl::Time grad_start = absl::Now();
  while (absl::Now() - grad_start < absl::Seconds(2)) {
    if (auto g = (*strategy)->Gradient(*archs, rewards); !g.ok()) return Fail("Gradient", g.status());
    ++gradients;
  }
  const double grad_seconds = absl::ToDoubleSeconds(absl::Now() - grad_start) / gradients;
  // A replica's policy work per round: sample m, then the gradient of those
  // m, which reuses the traces kept from sampling (no forward recompute).
  int rounds = 0;
  const absl::Time round_start = absl::Now();
  while (absl::Now() - round_start < absl::Seconds(2)) {
    auto round_archs = (*strategy)->Sample(kBatch, {});
    if (!round_archs.ok()) return Fail("Sample", round_archs.status());
    if (auto g = (*strategy)->Gradient(*round_archs, rewards); !g.ok()) {
      return Fail("Gradient", g.status());
    }
    ++rounds;
  }
  const double round_seconds = absl::ToDoubleSeconds(absl::Now() - round_start) / rounds;
  std::printf("controller_samples_per_second %.1f architectures/s (goal >= %.0f, ratio %.2f)\n",
              per_second, kSamplesPerSecondGoal, per_second / kSamplesPerSecondGoal);
  std::printf(
      "controller_gradient_seconds_m8 %.6f s (teacher-forced recompute + backward; goal <= %.3f)\n",
      grad_seconds, kRoundSecondsGoal);
  std::printf(
      "controller_round_seconds_m8 %.6f s (sample 8, then their gradient from kept traces; "
      "goal <= %.3f)\n",
      round_seconds, kRoundSecondsGoal);
  std::fflush(stdout);

  // The LibTorch reference: the same batch sampled and differentiated.
  nas::controller::LstmPolicy reference(spec.search_space(), spec.controller(), 1);
  std::mt19937_64 rng(1);
  int reference_sampled = 0;
  const absl::Time ref_start = absl::Now();
  // LibTorch reports errors by exception; a reference that throws has no
  // figure, and the benchmark fails below.
  std::string reference_error;
  try {
    while (absl::Now() - ref_start < absl::Seconds(3)) {
      torch::NoGradGuard no_grad;
      (void)reference->Run(kBatch, 12, nullptr, &rng);
      reference_sampled += kBatch;
    }
  } catch (const std::exception& e) {
    reference_error = e.what();
    reference_sampled = 0;
  }
  const double ref_per_second = reference_sampled / absl::ToDoubleSeconds(absl::Now() - ref_start);
  std::vector<std::vector<int>> tokens;
  for (const auto& a : *archs) tokens.emplace_back(a.tokens().begin(), a.tokens().end());
  int ref_gradients = 0;
  const absl::Time ref_grad_start = absl::Now();
  try {
    while (reference_error.empty() && absl::Now() - ref_grad_start < absl::Seconds(2)) {
      reference->zero_grad();
      reference->Run(kBatch, 12, &tokens, nullptr).log_prob.sum().backward();
      ++ref_gradients;
    }
  } catch (const std::exception& e) {
    reference_error = e.what();
    ref_gradients = 0;
  }
  // 0 gradients gives inf seconds, which the check below rejects.
  const double ref_grad_seconds =
      absl::ToDoubleSeconds(absl::Now() - ref_grad_start) / ref_gradients;
  const double speedup_sampling = per_second / ref_per_second;
  const double speedup_gradient = ref_grad_seconds / grad_seconds;
  std::printf("libtorch_reference_samples_per_second %.1f architectures/s\n", ref_per_second);
  std::printf("libtorch_reference_gradient_seconds_m8 %.6f s\n", ref_grad_seconds);
  std::printf("speedup_sampling %.1f x (goal >= %.1f)\n", speedup_sampling, kSpeedupGoal);
  std::printf("speedup_gradient %.1f x (goal >= %.1f)\n", speedup_gradient, kSpeedupGoal);

  std::vector<std::string> missed;
  if (!reference_error.empty()) {
    missed.push_back("the LibTorch reference threw: " + reference_error);
  }
  if (Measured("controller_samples_per_second", per_second, &missed) &&
      per_second < kSamplesPerSecondGoal) {
    missed.push_back(absl::StrFormat("controller_samples_per_second %.1f misses its goal >= %.0f",
                                     per_second, kSamplesPerSecondGoal));
  }
  if (Measured("controller_gradient_seconds_m8", grad_seconds, &missed) &&
      grad_seconds > kRoundSecondsGoal) {
    missed.push_back(absl::StrFormat("controller_gradient_seconds_m8 %.6f misses its goal <= %.3f",
                                     grad_seconds, kRoundSecondsGoal));
  }
  if (Measured("controller_round_seconds_m8", round_seconds, &missed) &&
      round_seconds > kRoundSecondsGoal) {
    missed.push_back(absl::StrFormat("controller_round_seconds_m8 %.6f misses its goal <= %.3f",
                                     round_seconds, kRoundSecondsGoal));
  }
  if (Measured("libtorch_reference_samples_per_second", ref_per_second, &missed) &&
      Measured("speedup_sampling", speedup_sampling, &missed) &&
      speedup_sampling < kSpeedupGoal) {
    missed.push_back(absl::StrFormat("speedup_sampling %.2f misses its goal >= %.1f",
                                     speedup_sampling, kSpeedupGoal));
  }
  if (Measured("libtorch_reference_gradient_seconds_m8", ref_grad_seconds, &missed) &&
      Measured("speedup_gradient", speedup_gradient, &missed) &&
      speedup_gradient < kSpeedupGoal) {
    missed.push_back(absl::StrFormat("speedup_gradient %.2f misses its goal >= %.1f",
                                     speedup_gradient, kSpeedupGoal));
  }
  for (const std::string& m : missed) std::printf("MISSED %s\n", m.c_str());
  if (!missed.empty()) return 1;
  std::printf("all goals met\n");
  return 0;
}
