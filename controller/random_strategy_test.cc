#include "controller/random_strategy.h"

#include <memory>
#include <string>
#include <vector>

#include "controller/strategy_test_jobs.h"
#include "gtest/gtest.h"
#include "search_space/search_space.h"

namespace nas::controller {
namespace {

TEST(RandomStrategyTest, SameSeedGivesSameSamples) {
  std::unique_ptr<SearchStrategy> a = NewRandomStrategy(MacroJob("random", 42), 0);
  std::unique_ptr<SearchStrategy> b = NewRandomStrategy(MacroJob("random", 42), 0);
  std::unique_ptr<SearchStrategy> c = NewRandomStrategy(MacroJob("random", 42), 1);
  ASSERT_TRUE(a && b && c);
  const std::string ca = SampledCanonicals(*a, 8);
  const std::string cb = SampledCanonicals(*b, 8);
  const std::string cc = SampledCanonicals(*c, 8);
  ASSERT_FALSE(ca.empty() || cb.empty() || cc.empty());
  EXPECT_EQ(ca, cb);
  EXPECT_NE(ca, cc) << "replicas must draw different streams";
}

// A replica resumed after a restart (rounds already stored) continues from a
// stream of its own, the same for the same stored history.
TEST(RandomStrategyTest, AResumedReplicaContinuesFromAStreamOfItsOwn) {
  const v1::JobSpec spec = MacroJob("random", 42);
  const std::string fresh = SampledCanonicals(*NewRandomStrategy(spec, 0), 8);
  const std::string resumed = SampledCanonicals(*NewRandomStrategy(spec, 0, 5), 8);
  ASSERT_FALSE(fresh.empty() || resumed.empty());
  EXPECT_NE(fresh, resumed) << "a resumed replica must not redraw its first samples";
  EXPECT_EQ(resumed, SampledCanonicals(*NewRandomStrategy(spec, 0, 5), 8));
  EXPECT_NE(resumed, SampledCanonicals(*NewRandomStrategy(spec, 0, 6), 8));
  EXPECT_NE(resumed, SampledCanonicals(*NewRandomStrategy(spec, 1, 5), 8));
  EXPECT_EQ(ReplicaSeed(42, 3, 0), ReplicaSeed(42, 3)) << "a new job keeps the plain stream";
}

TEST(RandomStrategyTest, SamplesValidArchitecturesAtTheScheduledDepth) {
  v1::JobSpec spec = MacroJob("random", 3, 4);
  v1::DepthSchedule* depth = spec.mutable_search_space()->mutable_macro_cnn()->mutable_depth();
  depth->set_layers_increment(2);
  depth->set_samples_per_increment(100);
  depth->set_max_layers(8);
  std::unique_ptr<SearchStrategy> strategy = NewRandomStrategy(spec, 0);
  for (const auto& [samples_so_far, layers] : std::vector<std::pair<int64_t, int>>{
           {0, 4}, {99, 4}, {100, 6}, {250, 8}, {100000, 8}}) {
    auto archs = strategy->Sample(5, {samples_so_far});
    ASSERT_TRUE(archs.ok()) << archs.status();
    ASSERT_EQ(archs->size(), 5u);
    for (const v1::Architecture& a : *archs) {
      EXPECT_EQ(search_space::NumLayers(a), layers) << samples_so_far;
      EXPECT_TRUE(search_space::ValidateArchitecture(spec.search_space(), a).ok()) << a.canonical();
      EXPECT_EQ(a.canonical(), search_space::CanonicalString(a));
    }
  }
}

TEST(RandomStrategyTest, HasNoParametersAndNoGradient) {
  std::unique_ptr<SearchStrategy> strategy = NewRandomStrategy(MacroJob("random", 1), 0);
  EXPECT_TRUE(strategy->InitialParameters().empty());
  EXPECT_TRUE(strategy->LoadParameters({}).ok());
  EXPECT_EQ(strategy->LoadParameters({FlatTensor{"w", {1}, {0.5f}}}).code(),
            absl::StatusCode::kInvalidArgument);
  auto archs = strategy->Sample(2, {});
  ASSERT_TRUE(archs.ok());
  auto gradient = strategy->Gradient(*archs, {1.0, 0.0});
  ASSERT_TRUE(gradient.ok());
  EXPECT_TRUE(gradient->empty());
  EXPECT_EQ(strategy->baseline(), 0);
}

}  // namespace
}  // namespace nas::controller
