#include "common/sharding.h"

#include <algorithm>
#include <numeric>

namespace nas {

std::vector<int> AssignShards(const std::vector<TensorSize>& tensors, int num_shards) {
  std::vector<size_t> order(tensors.size());
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    if (tensors[a].num_elements != tensors[b].num_elements) {
      return tensors[a].num_elements > tensors[b].num_elements;
    }
    return tensors[a].name < tensors[b].name;
  });
  std::vector<int64_t> load(std::max(1, num_shards), 0);
  std::vector<int> shard(tensors.size(), 0);
  for (size_t index : order) {
    const int least = static_cast<int>(std::min_element(load.begin(), load.end()) - load.begin());
    shard[index] = least;
    load[least] += tensors[index].num_elements;
  }
  return shard;
}

}  // namespace nas
