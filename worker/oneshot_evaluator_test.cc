#include "worker/oneshot_evaluator.h"

#include <torch/torch.h>

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "common/flat_tensor.h"
#include "controller/weights_client.h"
#include "gtest/gtest.h"
#include "worker/image_split.h"
#include "worker/in_memory_weights.h"
#include "worker/macro_supernet.h"
#include "worker/supernet.h"

namespace nas::worker {
namespace {

using InMemoryWeights = InMemoryWeightsClient;

const std::vector<std::string> kOps = {"none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3"};
const std::vector<std::string> kChild = {"nor_conv_3x3", "nor_conv_1x1", "skip_connect",
                                         "avg_pool_3x3", "nor_conv_3x3", "nor_conv_1x1"};

std::shared_ptr<const ImageSet> Images() {
  auto set = std::make_shared<ImageSet>();
  set->count = 64;
  set->channels = 1;
  set->height = 8;
  set->width = 8;
  set->classes = 4;
  std::mt19937 rng(5);
  for (int i = 0; i < set->count; ++i) {
    const int label = i % 4;
    set->labels.push_back(static_cast<uint8_t>(label));
    // A bright quadrant per class, and noise.
    for (int y = 0; y < 8; ++y) {
      for (int x = 0; x < 8; ++x) {
        const bool bright = (y / 4) * 2 + (x / 4) == label;
        set->pixels.push_back(static_cast<uint8_t>((bright ? 160 : 40) + rng() % 60));
      }
    }
  }
  return set;
}

v1::Task Task(const std::string& job, const std::string& alpha_set = "") {
  v1::Task task;
  task.set_job_id(job);
  v1::CellSpace* space = task.mutable_search_space()->mutable_cell();
  space->set_num_nodes(4);
  for (const std::string& op : kOps) space->add_operations(op);
  space->set_cells_per_stage(1);
  space->set_initial_channels(4);
  v1::CellArchitecture* cell = task.mutable_architecture()->mutable_cell();
  cell->set_num_nodes(4);
  for (const std::string& op : kChild) cell->add_edge_operations(op);
  v1::SharedEvaluatorSpec* shared = task.mutable_evaluator()->mutable_shared();
  shared->mutable_data()->set_batch_size(8);
  shared->mutable_data()->set_validation_size(16);
  shared->set_train_steps(3);
  shared->set_reward_batches(2);
  shared->set_learning_rate(0.1);
  task.mutable_reward()->set_power(2);
  task.mutable_shared()->set_omega_set(job + ".omega");
  task.mutable_shared()->set_alpha_set(alpha_set);
  return task;
}

struct Fixture {
  std::shared_ptr<InMemoryWeights> weights = std::make_shared<InMemoryWeights>();
  std::unique_ptr<Evaluator> evaluator;
  explicit Fixture(int max_stale_retries = 8) {
    OneShotOptions options;
    options.weights = weights;
    options.max_stale_retries = max_stale_retries;
    options.load = [](const v1::TrainEvaluatorSpec&) -> absl::StatusOr<std::shared_ptr<const ImageSet>> {
      return Images();
    };
    evaluator = NewOneShotEvaluator(std::move(options));
  }
};

// A supernet of the task's space holding `tensors`.
std::shared_ptr<CellSupernetImpl> SupernetWith(const v1::Task& task, const std::map<std::string, FlatTensor>& tensors) {
  auto net = CellSupernetImpl::Create(task.search_space(), InputShape{1, 8, 8, 4});
  EXPECT_TRUE(net.ok()) << net.status();
  torch::NoGradGuard no_grad;
  for (auto& item : (*net)->named_parameters()) {
    const FlatTensor& t = tensors.at(item.key());
    item.value().copy_(torch::from_blob(const_cast<float*>(t.values.data()), t.shape, torch::kFloat));
  }
  (*net)->train();  // batch statistics, as the evaluator scores
  return *net;
}

TEST(OneShotEvaluatorTest, EnasPushesOnlyTheChildsSlicesAndRewardsValidationAccuracy) {
  Fixture f;
  const v1::Task task = Task("enas");
  std::vector<v1::EpochResult> epochs;
  EvaluationContext context;
  context.on_epoch = [&](const v1::EpochResult& e) { epochs.push_back(e); };
  absl::StatusOr<v1::TrialMetrics> metrics = f.evaluator->Evaluate(task, context);
  ASSERT_TRUE(metrics.ok()) << metrics.status();

  auto probe = CellSupernetImpl::Create(task.search_space(), InputShape{1, 8, 8, 4});
  ASSERT_TRUE(probe.ok());
  const std::vector<std::string> used = (*probe)->UsedParameters(task.architecture().cell());
  const std::set<std::string> used_set(used.begin(), used.end());
  ASSERT_EQ(f.weights->pushes().size(), 3u);
  for (const auto& push : f.weights->pushes()) {
    EXPECT_TRUE(push.sparse);
    EXPECT_EQ(push.names, used_set);
  }
  const InMemoryWeights::Set omega = f.weights->Get("enas.omega");
  EXPECT_TRUE(omega.config.sparse());
  EXPECT_EQ(omega.config.kind(), v1::OptimizerConfig::SGD);
  EXPECT_EQ(omega.config.max_staleness(), 16);
  int64_t used_count = 0;
  for (const auto& [name, t] : omega.tensors) {
    const bool changed = t.values != omega.initial.at(name).values;
    if (used_set.count(name) > 0) {
      used_count += t.NumElements();
      if (name.find(".weight") != std::string::npos) {
        EXPECT_TRUE(changed) << name;
      }
    } else {
      EXPECT_FALSE(changed) << name << " is not the child's but changed";
    }
  }
  EXPECT_EQ(metrics->parameters(), used_count);

  // The reward: accuracy of the child with the final ω on both validation
  // minibatches (the whole 16-image split), squared (reward.power 2).
  auto net = SupernetWith(task, omega.tensors);
  const ImageSplit split = SplitImages(*Images(), "enas", 16, 0);
  torch::NoGradGuard no_grad;
  int64_t correct = 0;
  for (int start : {0, 8}) {
    torch::Tensor logits = net->Forward(split.validation.images.slice(0, start, start + 8), task.architecture().cell());
    correct += logits.argmax(1).eq(split.validation.labels.slice(0, start, start + 8)).sum().item<int64_t>();
  }
  EXPECT_DOUBLE_EQ(metrics->accuracy(), correct / 16.0);
  EXPECT_DOUBLE_EQ(metrics->reward(), metrics->accuracy() * metrics->accuracy());
  ASSERT_EQ(epochs.size(), 1u);
  EXPECT_DOUBLE_EQ(epochs[0].validation_accuracy(), metrics->accuracy());
  EXPECT_EQ(metrics->shared().train_steps(), 3);
  EXPECT_EQ(metrics->shared().pushes_applied(), 3);
  EXPECT_EQ(metrics->shared().pushes_refused_stale(), 0);
  EXPECT_EQ(metrics->shared().omega_version(), 3);
  EXPECT_GT(metrics->shared().bytes_pulled(), 0);
  EXPECT_EQ(metrics->shared().bytes_pushed(), 3 * 4 * used_count);
  EXPECT_EQ(metrics->input_shape().classes(), 4);
}

// An ENAS task on a macro-CNN space: 3 layers of {1,3}x3 x {4,8} filters,
// skip connections; the child uses one choice per layer.
v1::Task MacroTask(const std::string& job) {
  v1::Task task = Task(job);
  v1::MacroCnnSpace* space = task.mutable_search_space()->mutable_macro_cnn();
  for (int h : {1, 3}) space->add_filter_heights(h);
  space->add_filter_widths(3);
  for (int f : {4, 8}) space->add_num_filters(f);
  space->set_skip_connections(true);
  space->mutable_depth()->set_initial_layers(3);
  space->mutable_depth()->set_max_layers(3);
  v1::MacroCnnArchitecture* arch = task.mutable_architecture()->mutable_macro_cnn();
  const int layers[3][3] = {{3, 3, 8}, {1, 3, 4}, {3, 3, 4}};
  for (int i = 0; i < 3; ++i) {
    v1::MacroCnnLayer* l = arch->add_layers();
    l->set_filter_height(layers[i][0]);
    l->set_filter_width(layers[i][1]);
    l->set_num_filters(layers[i][2]);
    l->set_stride(1);
    for (int j = 0; j < i; ++j) l->add_inputs(j);
  }
  return task;
}

// ω's initial values follow the task's seed (the job's strategy.seed): the
// same seed gives the same ω whatever the job, another seed another ω.
TEST(OneShotEvaluatorTest, InitialOmegaFollowsTheSeed) {
  auto initial = [](const std::string& job, int64_t seed) {
    Fixture f;
    v1::Task task = Task(job);
    task.mutable_shared()->set_init_seed(seed);
    absl::StatusOr<v1::TrialMetrics> metrics = f.evaluator->Evaluate(task, EvaluationContext());
    EXPECT_TRUE(metrics.ok()) << metrics.status();
    return f.weights->Get(job + ".omega").initial;
  };
  const std::map<std::string, FlatTensor> a = initial("job-a", 5), b = initial("job-b", 5),
                                          c = initial("job-a", 6);
  ASSERT_FALSE(a.empty());
  ASSERT_EQ(a.size(), c.size());
  bool differs = false;
  for (const auto& [name, t] : a) {
    EXPECT_EQ(t.values, b.at(name).values) << name;
    differs = differs || t.values != c.at(name).values;
  }
  EXPECT_TRUE(differs) << "seeds 5 and 6 gave the same initial ω";
}

TEST(OneShotEvaluatorTest, EnasOnAMacroSpaceTrainsTheChildThroughTheMacroSupernet) {
  Fixture f;
  const v1::Task task = MacroTask("macro");
  absl::StatusOr<v1::TrialMetrics> metrics = f.evaluator->Evaluate(task, EvaluationContext());
  ASSERT_TRUE(metrics.ok()) << metrics.status();

  auto probe = MacroSupernetImpl::Create(task.search_space(), InputShape{1, 8, 8, 4});
  ASSERT_TRUE(probe.ok()) << probe.status();
  const std::vector<std::string> used = (*probe)->UsedParameters(task.architecture().macro_cnn());
  const std::set<std::string> used_set(used.begin(), used.end());
  const InMemoryWeights::Set omega = f.weights->Get("macro.omega");
  // ω is the macro supernet's: every tensor, of which the child reads a few.
  std::set<std::string> all;
  for (const auto& item : (*probe)->named_parameters()) all.insert(item.key());
  std::set<std::string> held;
  for (const auto& [name, t] : omega.tensors) held.insert(name);
  EXPECT_EQ(held, all);
  EXPECT_LT(used_set.size(), all.size());
  ASSERT_EQ(f.weights->pushes().size(), 3u);
  for (const auto& push : f.weights->pushes()) {
    EXPECT_TRUE(push.sparse);
    EXPECT_EQ(push.names, used_set);
  }
  int64_t used_count = 0;
  for (const auto& [name, t] : omega.tensors) {
    const bool changed = t.values != omega.initial.at(name).values;
    if (used_set.count(name) > 0) {
      used_count += t.NumElements();
      if (name.find("conv.weight") != std::string::npos) {
        EXPECT_TRUE(changed) << name;
      }
    } else {
      EXPECT_FALSE(changed) << name << " is not the child's but changed";
    }
  }
  EXPECT_EQ(metrics->parameters(), used_count);

  // The reward: the child's accuracy through a macro supernet holding the
  // final ω, on both validation minibatches, squared.
  auto net = *MacroSupernetImpl::Create(task.search_space(), InputShape{1, 8, 8, 4});
  {
    torch::NoGradGuard no_grad;
    for (auto& item : net->named_parameters()) {
      const FlatTensor& t = omega.tensors.at(item.key());
      item.value().copy_(torch::from_blob(const_cast<float*>(t.values.data()), t.shape, torch::kFloat));
    }
  }
  net->train();
  const ImageSplit split = SplitImages(*Images(), "macro", 16, 0);
  torch::NoGradGuard no_grad;
  int64_t correct = 0;
  for (int start : {0, 8}) {
    torch::Tensor logits =
        net->Forward(split.validation.images.slice(0, start, start + 8), task.architecture().macro_cnn());
    correct += logits.argmax(1).eq(split.validation.labels.slice(0, start, start + 8)).sum().item<int64_t>();
  }
  EXPECT_DOUBLE_EQ(metrics->accuracy(), correct / 16.0);
  EXPECT_DOUBLE_EQ(metrics->reward(), metrics->accuracy() * metrics->accuracy());
  EXPECT_EQ(metrics->shared().pushes_applied(), 3);
  EXPECT_EQ(metrics->shared().bytes_pushed(), 3 * 4 * used_count);
}

TEST(OneShotEvaluatorTest, DartsOnAMacroSpaceAndMismatchedChildrenAreInvalid) {
  Fixture f;
  v1::Task darts = MacroTask("macro_darts");
  darts.mutable_shared()->set_alpha_set("macro_darts");
  absl::StatusOr<v1::TrialMetrics> refused = f.evaluator->Evaluate(darts, EvaluationContext());
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument) << refused.status();
  EXPECT_NE(refused.status().message().find("task.shared.alpha_set"), std::string::npos) << refused.status();
  EXPECT_TRUE(f.weights->pushes().empty());
  // A cell child on the macro space's supernet.
  v1::Task mismatched = MacroTask("macro_mismatch");
  *mismatched.mutable_architecture() = Task("x").architecture();
  absl::StatusOr<v1::TrialMetrics> wrong = f.evaluator->Evaluate(mismatched, EvaluationContext());
  EXPECT_EQ(wrong.status().code(), absl::StatusCode::kInvalidArgument) << wrong.status();
  EXPECT_NE(wrong.status().message().find("does not run on the macro_cnn space's supernet"), std::string::npos)
      << wrong.status();
}

TEST(OneShotEvaluatorTest, DartsPushesBothSetsAndAlphaLowersValidationLoss) {
  Fixture f;
  torch::manual_seed(7);
  const torch::Tensor alpha0 = 1e-3 * torch::randn({6, 5});
  FlatTensor alpha;
  alpha.name = "alpha";
  alpha.shape = {6, 5};
  alpha.values.assign(alpha0.data_ptr<float>(), alpha0.data_ptr<float>() + 30);
  v1::OptimizerConfig alpha_config;
  alpha_config.set_kind(v1::OptimizerConfig::SGD);
  alpha_config.set_learning_rate(0.5);
  ASSERT_TRUE(f.weights->InitJob("darts", {alpha}, alpha_config).ok());

  v1::Task task = Task("darts", "darts");
  task.mutable_evaluator()->mutable_shared()->set_train_steps(1);
  task.mutable_evaluator()->mutable_shared()->set_reward_batches(1);
  absl::StatusOr<v1::TrialMetrics> metrics = f.evaluator->Evaluate(task, EvaluationContext());
  ASSERT_TRUE(metrics.ok()) << metrics.status();

  const InMemoryWeights::Set omega = f.weights->Get("darts.omega");
  std::set<std::string> all;
  for (const auto& [name, t] : omega.tensors) all.insert(name);
  const auto pushes = f.weights->pushes();
  ASSERT_EQ(pushes.size(), 2u);
  EXPECT_EQ(pushes[0].set, "darts.omega");
  EXPECT_TRUE(pushes[0].sparse);
  EXPECT_EQ(pushes[0].names, all);  // the mixed network uses every operation
  EXPECT_EQ(pushes[1].set, "darts");
  EXPECT_FALSE(pushes[1].sparse);
  EXPECT_EQ(pushes[1].names, std::set<std::string>{"alpha"});

  // α's step was taken on the first validation minibatch with the initial
  // ω: the loss there is lower with the new α than with the old.
  const FlatTensor alpha1_flat = f.weights->Get("darts").tensors.at("alpha");
  const torch::Tensor alpha1 = torch::from_blob(const_cast<float*>(alpha1_flat.values.data()), {6, 5}).clone();
  ASSERT_FALSE(torch::equal(alpha0, alpha1));
  auto net = SupernetWith(task, omega.initial);
  const ImageSplit split = SplitImages(*Images(), "darts", 16, 0);
  auto loss = [&](const torch::Tensor& a) {
    return torch::cross_entropy_loss(net->ForwardMixed(split.validation.images.slice(0, 0, 8), a),
                                     split.validation.labels.slice(0, 0, 8));
  };
  // The pushed gradient (the server's SGD step / its learning rate) is the
  // validation loss's gradient at the old α.
  torch::Tensor a0 = alpha0.clone().requires_grad_(true);
  const torch::Tensor expected = torch::autograd::grad({loss(a0)}, {a0})[0];
  const torch::Tensor pushed = (alpha0 - alpha1) / alpha_config.learning_rate();
  EXPECT_TRUE(torch::allclose(pushed, expected, 1e-3, 1e-6)) << pushed << expected;
  EXPECT_GT(expected.abs().sum().item<double>(), 0);
  // So a small enough step lowers the loss.
  torch::NoGradGuard no_grad;
  EXPECT_LT(loss(alpha0 - 0.01 * pushed).item<double>(), loss(alpha0).item<double>());
  // Parameters: the argmax child's.
  absl::StatusOr<v1::CellArchitecture> argmax = net->ArgmaxCell(alpha1);
  ASSERT_TRUE(argmax.ok());
  int64_t argmax_count = 0;
  for (const std::string& name : net->UsedParameters(*argmax)) argmax_count += omega.tensors.at(name).NumElements();
  EXPECT_EQ(metrics->parameters(), argmax_count);
  EXPECT_EQ(metrics->shared().pushes_applied(), 1);
  EXPECT_EQ(metrics->shared().omega_version(), 1);
}

TEST(OneShotEvaluatorTest, StaleRefusalsArePulledAgainAndRedoneThenGiveUp) {
  Fixture f(/*max_stale_retries=*/3);
  v1::Task task = Task("stale");
  task.mutable_evaluator()->mutable_shared()->set_train_steps(2);
  f.weights->RefuseStale(2);
  absl::StatusOr<v1::TrialMetrics> metrics = f.evaluator->Evaluate(task, EvaluationContext());
  ASSERT_TRUE(metrics.ok()) << metrics.status();
  EXPECT_EQ(metrics->shared().pushes_refused_stale(), 2);
  EXPECT_EQ(metrics->shared().pushes_applied(), 2);
  EXPECT_EQ(f.weights->pushes().size(), 2u);

  // Always stale: the task gives up after 3 redone steps, retryably.
  f.weights->RefuseStale(1000);
  absl::StatusOr<v1::TrialMetrics> failed = f.evaluator->Evaluate(task, EvaluationContext());
  EXPECT_EQ(failed.status().code(), absl::StatusCode::kUnavailable) << failed.status();
  EXPECT_FALSE(IsPermanent(failed.status()));
  // The second task of the job reused the supernet: ω was created once.
  EXPECT_EQ(f.weights->init_calls(), 1);
}

TEST(OneShotEvaluatorTest, CancelStopsBeforeTheNextStep) {
  Fixture f;
  std::atomic<bool> cancelled{false};
  f.weights->AfterSparsePush([&cancelled] { cancelled = true; });
  EvaluationContext context;
  context.cancelled = &cancelled;
  absl::StatusOr<v1::TrialMetrics> metrics = f.evaluator->Evaluate(Task("cancel"), context);
  EXPECT_EQ(metrics.status().code(), absl::StatusCode::kCancelled) << metrics.status();
  EXPECT_EQ(f.weights->pushes().size(), 1u);
}

TEST(OneShotEvaluatorTest, WithoutParameterServersTasksFailForGoodNamingTheFlag) {
  OneShotOptions options;
  std::unique_ptr<Evaluator> evaluator = NewOneShotEvaluator(std::move(options));
  absl::StatusOr<v1::TrialMetrics> metrics = evaluator->Evaluate(Task("none"), EvaluationContext());
  EXPECT_TRUE(IsPermanent(metrics.status())) << metrics.status();
  EXPECT_NE(metrics.status().message().find("--parameter_servers"), std::string::npos) << metrics.status();
}

}  // namespace
}  // namespace nas::worker
