#include "controller/strategy_registry.h"

#include <memory>
#include <string>
#include <vector>

#include "controller/strategy_test_jobs.h"
#include "gtest/gtest.h"

namespace nas::controller {
namespace {

TEST(StrategyRegistryTest, NamesAreSortedAndComplete) {
  EXPECT_EQ(StrategyNames(), (std::vector<std::string>{"random", "reinforce"}));
}

TEST(StrategyRegistryTest, TraitsSayWhichStrategiesNeedParameterServers) {
  absl::StatusOr<StrategyTraits> random = LookupStrategy("random");
  absl::StatusOr<StrategyTraits> reinforce = LookupStrategy("reinforce");
  ASSERT_TRUE(random.ok() && reinforce.ok());
  EXPECT_FALSE(random->needs_parameter_servers);
  EXPECT_TRUE(reinforce->needs_parameter_servers);
}

TEST(StrategyRegistryTest, AnUnknownNameIsInvalidArgumentListingTheKnownOnes) {
  for (const std::string name : {"evolution", "", "Reinforce"}) {
    absl::StatusOr<StrategyTraits> traits = LookupStrategy(name);
    EXPECT_EQ(traits.status().code(), absl::StatusCode::kInvalidArgument) << name;
    EXPECT_EQ(traits.status().message(),
              "strategy.name: unknown strategy '" + name + "' (known: random, reinforce)");
    v1::JobSpec spec = MacroJob("random", 1);
    spec.mutable_strategy()->set_name(name);
    absl::StatusOr<std::unique_ptr<SearchStrategy>> created = CreateStrategy(spec, 0);
    EXPECT_EQ(created.status(), traits.status()) << name;
  }
}

TEST(StrategyRegistryTest, EveryStrategyIsCreatedAndAgreesWithItsTraits) {
  for (const std::string& name : StrategyNames()) {
    absl::StatusOr<std::unique_ptr<SearchStrategy>> created = CreateStrategy(MacroJob(name, 1), 0);
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
