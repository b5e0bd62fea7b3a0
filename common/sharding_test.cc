#include "common/sharding.h"

#include <algorithm>
#include <random>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

namespace nas {
namespace {

TEST(ShardingTest, AssignmentIsDeterministicAndIndependentOfInputOrder) {
  std::vector<TensorSize> tensors;
  for (int i = 0; i < 40; ++i) tensors.push_back({absl::StrCat("t", i), (i * 37) % 11 + 1});
  std::vector<int> first = AssignShards(tensors, 4);
  std::vector<TensorSize> shuffled = tensors;
  std::mt19937 rng(1);
  std::shuffle(shuffled.begin(), shuffled.end(), rng);
  std::vector<int> second = AssignShards(shuffled, 4);
  for (size_t i = 0; i < shuffled.size(); ++i) {
    const size_t original = std::find_if(tensors.begin(), tensors.end(),
                                         [&](const TensorSize& t) { return t.name == shuffled[i].name; }) -
                            tensors.begin();
    EXPECT_EQ(second[i], first[original]) << shuffled[i].name;
  }
}

TEST(ShardingTest, LoadsAreBalancedBySize) {
  for (int shards : {1, 4, 20, 64}) {
    std::vector<TensorSize> tensors;
    int64_t total = 0, largest = 0;
    for (int i = 0; i < 200; ++i) {
      const int64_t n = 100 + (i * 7919) % 5000;
      tensors.push_back({absl::StrCat("w", i), n});
      total += n;
      largest = std::max(largest, n);
    }
    std::vector<int> shard = AssignShards(tensors, shards);
    std::vector<int64_t> load(shards, 0);
    for (size_t i = 0; i < tensors.size(); ++i) {
      ASSERT_GE(shard[i], 0);
      ASSERT_LT(shard[i], shards);
      load[shard[i]] += tensors[i].num_elements;
    }
    const int64_t max_load = *std::max_element(load.begin(), load.end());
    // Greedy LPT: no shard exceeds the mean by more than one tensor.
    EXPECT_LE(max_load, total / shards + largest) << shards;
  }
}

TEST(ShardingTest, LargestFirstToTheLeastLoadedShardTiesToTheLowestIndex) {
  // a(10) -> 0; b(6) -> 1; c(5) -> 1 (6 < 10); d(1) -> 0 (10 < 11); e(1) -> 0 (11 == 11, lowest
  // index), f and e tie on size and go by name.
  std::vector<int> shard = AssignShards({{"d", 1}, {"c", 5}, {"a", 10}, {"b", 6}, {"f", 1}, {"e", 1}}, 2);
  EXPECT_EQ(shard, (std::vector<int>{0, 1, 0, 1, 1, 0}));
}

TEST(ShardingTest, OneShardTakesEverything) {
  std::vector<int> shard = AssignShards({{"a", 3}, {"b", 9}}, 1);
  EXPECT_EQ(shard, (std::vector<int>{0, 0}));
}

}  // namespace
}  // namespace nas
