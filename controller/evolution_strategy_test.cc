#include "controller/evolution_strategy.h"

#include <memory>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "controller/strategy_test_jobs.h"
#include "gtest/gtest.h"
#include "search_space/search_space.h"

namespace nas::controller {
namespace {

v1::JobSpec EvolutionJob(int64_t seed, int population, int tournament) {
  v1::JobSpec spec = MacroJob("evolution", seed, 4);
  spec.mutable_strategy()->set_population_size(population);
  spec.mutable_strategy()->set_tournament_size(tournament);
  return spec;
}

// A cell space with one edge and three operations: three architectures.
v1::JobSpec TinyCellJob(int64_t seed) {
  v1::JobSpec spec = EvolutionJob(seed, 1, 1);
  spec.mutable_search_space()->clear_macro_cnn();
  v1::CellSpace* cell = spec.mutable_search_space()->mutable_cell();
  cell->set_num_nodes(2);
  for (const char* op : {"a", "b", "c"}) cell->add_operations(op);
  return spec;
}

int TokenDistance(const v1::Architecture& a, const v1::Architecture& b) {
  if (a.tokens_size() != b.tokens_size()) return 1 << 20;
  int d = 0;
  for (int t = 0; t < a.tokens_size(); ++t) d += a.tokens(t) != b.tokens(t) ? 1 : 0;
  return d;
}

TEST(EvolutionStrategyTest, TournamentPicksTheBestOfItsDistinctDraw) {
  const std::vector<double> rewards = {0.3, 0.9, 0.1, 0.5, 0.7, 0.2, 0.8, 0.4, 0.6, 0.05};
  std::mt19937_64 rng(4);
  int global_best_wins = 0;
  for (int i = 0; i < 300; ++i) {
    std::vector<int> drawn;
    const int winner = TournamentWinner(rewards, 3, rng, &drawn);
    ASSERT_EQ(drawn.size(), 3u);
    EXPECT_EQ(std::set<int>(drawn.begin(), drawn.end()).size(), 3u) << "drawn with replacement";
    double best = -1;
    for (int d : drawn) best = std::max(best, rewards[d]);
    EXPECT_EQ(rewards[winner], best);
    EXPECT_NE(std::find(drawn.begin(), drawn.end(), winner), drawn.end());
    global_best_wins += winner == 1 ? 1 : 0;
  }
  // Drawn 3 of 10: the overall best takes part in about 30% of tournaments.
  EXPECT_GT(global_best_wins, 50);
  EXPECT_LT(global_best_wins, 150);
  // A tournament at least as large as the population takes everyone; ties go to the oldest.
  EXPECT_EQ(TournamentWinner(rewards, 64, rng), 1);
  EXPECT_EQ(TournamentWinner({0.5, 0.7, 0.7}, 3, rng), 1);
}

TEST(EvolutionStrategyTest, AgingRemovesTheOldestMemberAndIgnoresRepeats) {
  const v1::JobSpec spec = EvolutionJob(1, 3, 2);
  EvolutionPopulation population(spec);
  std::mt19937_64 rng(1);
  std::vector<Observation> history;
  for (int i = 0; i < 5; ++i) {
    history.push_back({search_space::SampleUniform(spec.search_space(), 4, rng), 0.1 * i});
  }
  population.Add({history[0], history[1], history[2]});
  population.Add({history[3]});
  population.Add({history[1]});  // reported again: not a new member
  population.Add({history[4]});
  std::vector<Observation> members = population.Members();
  ASSERT_EQ(members.size(), 3u);
  EXPECT_EQ(members[0].architecture.canonical(), history[2].architecture.canonical());
  EXPECT_EQ(members[1].architecture.canonical(), history[3].architecture.canonical());
  EXPECT_EQ(members[2].architecture.canonical(), history[4].architecture.canonical());
  // Restore after a restart: the same history gives the same population.
  EvolutionPopulation restored(spec);
  restored.Restore(history);
  std::vector<Observation> again = restored.Members();
  ASSERT_EQ(again.size(), 3u);
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(again[i].architecture.canonical(), members[i].architecture.canonical());
  }
}

// The first population_size samples are random; after that every child is
// one decision away from a member of the population.
TEST(EvolutionStrategyTest, RandomInitialPopulationThenMutationsOfMembers) {
  const v1::JobSpec spec = EvolutionJob(7, 8, 3);
  std::unique_ptr<SearchStrategy> strategy = NewEvolutionStrategy(spec, 0, nullptr);
  std::vector<Observation> finished;
  std::set<std::string> seen;
  for (int i = 0; i < 40; ++i) {
    SampleContext context;
    context.samples_so_far = i;
    absl::StatusOr<std::vector<v1::Architecture>> child = strategy->Sample(1, context);
    ASSERT_TRUE(child.ok()) << child.status();
    const v1::Architecture& a = child->front();
    EXPECT_TRUE(search_space::ValidateArchitecture(spec.search_space(), a).ok());
    EXPECT_TRUE(seen.insert(a.canonical()).second) << "proposed twice: " << a.canonical();
    if (i >= 8) {
      int nearest = 1 << 20;
      for (const Observation& o : finished) {
        nearest = std::min(nearest, TokenDistance(o.architecture, a));
      }
      EXPECT_EQ(nearest, 1) << "child " << i << " is no mutation of a finished child";
    }
    // Reward: the number of 7-high filters, so evolution has something to climb.
    double reward = 0;
    for (const auto& layer : a.macro_cnn().layers()) reward += layer.filter_height() == 7 ? 1 : 0;
    finished.push_back({a, reward});
    strategy->Observe({finished.back()});
  }
  EXPECT_TRUE(strategy->InitialParameters().empty());
}

TEST(EvolutionStrategyTest, AMutationThatWasEvaluatedAlreadyIsMutatedAgain) {
  // Three architectures: after the parent and one child, the only new child
  // left is the third; a single unchecked mutation would repeat the first
  // child half of the time.
  for (int64_t seed = 0; seed < 20; ++seed) {
    const v1::JobSpec spec = TinyCellJob(seed);
    EvolutionPopulation population(spec);
    std::mt19937_64 rng(seed);
    absl::StatusOr<v1::Architecture> parent = population.Propose(0, 0, rng);
    ASSERT_TRUE(parent.ok());
    population.Add({{*parent, 1.0}});
    absl::StatusOr<v1::Architecture> first = population.Propose(1, 0, rng);
    absl::StatusOr<v1::Architecture> second = population.Propose(2, 0, rng);
    ASSERT_TRUE(first.ok() && second.ok());
    std::set<std::string> all = {parent->canonical(), first->canonical(), second->canonical()};
    EXPECT_EQ(all.size(), 3u) << "seed " << seed;
  }
}

TEST(EvolutionStrategyTest, SameSeedAndCompletionOrderGiveTheSameChildren) {
  auto run = [](int64_t seed) {
    const v1::JobSpec spec = EvolutionJob(seed, 4, 2);
    std::shared_ptr<JobStrategyState> population = NewEvolutionPopulation(spec);
    std::unique_ptr<SearchStrategy> loop0 = NewEvolutionStrategy(spec, 0, population);
    std::unique_ptr<SearchStrategy> loop1 = NewEvolutionStrategy(spec, 1, population);
    std::string out;
    for (int i = 0; i < 30; ++i) {
      SearchStrategy& loop = i % 2 == 0 ? *loop0 : *loop1;
      SampleContext context;
      context.samples_so_far = i;
      const v1::Architecture a = loop.Sample(1, context).value().front();
      out += a.canonical() + "\n";
      loop.Observe({{a, static_cast<double>(a.canonical().size() % 7)}});
    }
    return out;
  };
  EXPECT_EQ(run(3), run(3));
  EXPECT_NE(run(3), run(4));
}

}  // namespace
}  // namespace nas::controller
