// Benchmark: architectures sampled per second by the REINFORCE controller,
// m = 8 per batch, on the paper's 12-layer CNN space (strides and skip
// connections), one core. Goal: >= 500/s. Prints `name value unit` lines,
// for the plain-C++ policy the controller runs and, for comparison, the
// LibTorch reference module it is tested against.
#include <torch/torch.h>

#include <random>

#include <cstdio>

#include "absl/time/clock.h"
#include "controller/job_spec.h"
#include "controller/lstm_policy.h"
#include "controller/strategy.h"

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
  for (int i = 0; i < 5; ++i) (void)(*strategy)->Sample(kBatch, {});
  int sampled = 0;
  const absl::Time start = absl::Now();
  while (absl::Now() - start < absl::Seconds(3)) {
    auto archs = (*strategy)->Sample(kBatch, {});
    if (!archs.ok()) return 1;
    sampled += kBatch;
  }
  const double seconds = absl::ToDoubleSeconds(absl::Now() - start);
  const double per_second = sampled / seconds;
  // Gradient cost for the same batch, repeated: after the first call the
  // kept traces are used up, so this is teacher-forced recompute + backward.
  auto archs = (*strategy)->Sample(kBatch, {});
  std::vector<double> rewards(kBatch, 0.5);
  int gradients = 0;
  const absl::Time grad_start = absl::Now();
  while (absl::Now() - grad_start < absl::Seconds(2)) {
    if (!(*strategy)->Gradient(*archs, rewards).ok()) return 1;
    ++gradients;
  }
  const double grad_seconds = absl::ToDoubleSeconds(absl::Now() - grad_start) / gradients;
  // A replica's policy work per round: sample m, then the gradient of those
  // m, which reuses the traces kept from sampling (no forward recompute).
  int rounds = 0;
  const absl::Time round_start = absl::Now();
  while (absl::Now() - round_start < absl::Seconds(2)) {
    auto round_archs = (*strategy)->Sample(kBatch, {});
    if (!round_archs.ok() || !(*strategy)->Gradient(*round_archs, rewards).ok()) return 1;
    ++rounds;
  }
  const double round_seconds = absl::ToDoubleSeconds(absl::Now() - round_start) / rounds;
  std::printf("controller_samples_per_second %.1f architectures/s (goal 500, ratio %.2f)\n",
              per_second, per_second / 500);
  std::printf("controller_gradient_seconds_m8 %.6f s (teacher-forced recompute + backward)\n",
              grad_seconds);
  std::printf(
      "controller_round_seconds_m8 %.6f s (sample 8, then their gradient from kept traces)\n",
      round_seconds);

  // The LibTorch reference: the same batch sampled and differentiated.
  nas::controller::LstmPolicy reference(spec.search_space(), spec.controller(), 1);
  std::mt19937_64 rng(1);
  int reference_sampled = 0;
  const absl::Time ref_start = absl::Now();
  while (absl::Now() - ref_start < absl::Seconds(3)) {
    torch::NoGradGuard no_grad;
    (void)reference->Run(kBatch, 12, nullptr, &rng);
    reference_sampled += kBatch;
  }
  const double ref_per_second = reference_sampled / absl::ToDoubleSeconds(absl::Now() - ref_start);
  std::vector<std::vector<int>> tokens;
  for (const auto& a : *archs) tokens.emplace_back(a.tokens().begin(), a.tokens().end());
  int ref_gradients = 0;
  const absl::Time ref_grad_start = absl::Now();
  while (absl::Now() - ref_grad_start < absl::Seconds(2)) {
    reference->zero_grad();
    reference->Run(kBatch, 12, &tokens, nullptr).log_prob.sum().backward();
    ++ref_gradients;
  }
  const double ref_grad_seconds =
      absl::ToDoubleSeconds(absl::Now() - ref_grad_start) / ref_gradients;
  std::printf("libtorch_reference_samples_per_second %.1f architectures/s\n", ref_per_second);
  std::printf("libtorch_reference_gradient_seconds_m8 %.6f s\n", ref_grad_seconds);
  std::printf("speedup_sampling %.1f x\n", per_second / ref_per_second);
  std::printf("speedup_gradient %.1f x\n", ref_grad_seconds / grad_seconds);
  return 0;
}
