#include "controller/strategy_registry.h"

#include <memory>
#include <string>
#include <vector>

#include "controller/strategy_test_jobs.h"
#include "gtest/gtest.h"

namespace nas::controller {
namespace {

TEST(StrategyRegistryTest, NamesAreSortedAndComplete) {
  EXPECT_EQ(StrategyNames(), (std::vector<std::string>{"darts", "evolution", "random", "reinforce"}));
}

TEST(StrategyRegistryTest, TraitsSayWhichStrategiesNeedParameterServers) {
  absl::StatusOr<StrategyTraits> random = LookupStrategy("random");
  absl::StatusOr<StrategyTraits> reinforce = LookupStrategy("reinforce");
  ASSERT_TRUE(random.ok() && reinforce.ok());
  EXPECT_FALSE(random->needs_parameter_servers);
  EXPECT_TRUE(reinforce->needs_parameter_servers);
}

TEST(StrategyRegistryTest, AnUnknownNameIsInvalidArgumentListingTheKnownOnes) {
  for (const std::string name : {"evolve", "", "Reinforce"}) {
    absl::StatusOr<StrategyTraits> traits = LookupStrategy(name);
    EXPECT_EQ(traits.status().code(), absl::StatusCode::kInvalidArgument) << name;
    EXPECT_EQ(traits.status().message(),
              "strategy.name: unknown strategy '" + name + "' (known: darts, evolution, random, reinforce)");
    v1::JobSpec spec = MacroJob("random", 1);
    spec.mutable_strategy()->set_name(name);
    absl::StatusOr<std::unique_ptr<SearchStrategy>> created = CreateStrategy(spec, 0);
    EXPECT_EQ(created.status(), traits.status()) << name;
  }
}

// darts runs on a one-shot job's cell supernet; the others on the macro space.
v1::JobSpec JobFor(const std::string& name) {
  if (name != "darts") return MacroJob(name, 1);
  v1::JobSpec spec;
  v1::CellSpace* cell = spec.mutable_search_space()->mutable_cell();
  cell->set_num_nodes(4);
  for (const char* op : {"none", "skip_connect", "nor_conv_3x3"}) cell->add_operations(op);
  spec.mutable_strategy()->set_name(name);
  spec.mutable_budget()->set_max_trials(1);
  spec.mutable_evaluator()->mutable_shared()->mutable_data()->set_dataset("fashion_mnist");
  return WithDefaults(spec);
}

TEST(StrategyRegistryTest, EveryStrategyIsCreatedAndAgreesWithItsTraits) {
  for (const std::string& name : StrategyNames()) {
    absl::StatusOr<std::unique_ptr<SearchStrategy>> created = CreateStrategy(JobFor(name), 0);
    ASSERT_TRUE(created.ok()) << name << ": " << created.status();
    auto archs = (*created)->Sample(3, {});
    ASSERT_TRUE(archs.ok()) << name << ": " << archs.status();
    EXPECT_EQ(archs->size(), 3u) << name;
    // The controller skips pull and push exactly when a strategy has no
    // parameters; the traits must say so before the strategy exists.
    EXPECT_EQ(LookupStrategy(name)->needs_parameter_servers,
              !(*created)->InitialParameters().empty())
        << name;
  }
}

// Evolution runs K·m loops of one child, sharing one population per job;
// the others run K loops of m and share nothing.
TEST(StrategyRegistryTest, LayoutAndSharedStateFollowTheTraits) {
  for (const std::string& name : StrategyNames()) {
    v1::JobSpec spec = JobFor(name);
    spec.mutable_parallelism()->set_num_replicas(3);
    spec.mutable_parallelism()->set_children_per_replica(4);
    const ReplicaLayout layout = LayoutOf(spec);
    absl::StatusOr<std::shared_ptr<JobStrategyState>> state = CreateJobStrategyState(spec);
    ASSERT_TRUE(state.ok()) << name;
    if (name == "evolution") {
      EXPECT_TRUE(LookupStrategy(name)->one_child_per_round);
      EXPECT_EQ(layout.loops, 12);
      EXPECT_EQ(layout.children_per_round, 1);
      EXPECT_NE(*state, nullptr);
    } else {
      EXPECT_FALSE(LookupStrategy(name)->one_child_per_round) << name;
      EXPECT_EQ(layout.loops, 3) << name;
      EXPECT_EQ(layout.children_per_round, 4) << name;
      EXPECT_EQ(*state, nullptr) << name;
    }
  }
}

TEST(StrategyRegistryTest, AnInvalidSearchSpaceIsRefusedBeforeCreating) {
  v1::JobSpec spec = MacroJob("random", 1);
  spec.mutable_search_space()->mutable_macro_cnn()->clear_filter_heights();
  absl::StatusOr<std::unique_ptr<SearchStrategy>> created = CreateStrategy(spec, 0);
  EXPECT_EQ(created.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(created.status().message().find("search_space.macro_cnn.filter_heights"),
            std::string::npos)
      << created.status();
}

}  // namespace
}  // namespace nas::controller
