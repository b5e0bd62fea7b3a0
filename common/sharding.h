// Which parameter-server shard holds which controller tensor.
//
// The rule (shared by the controller and every shard, so they always agree):
// sort the tensors by size, largest first, ties by name; then give each, in
// that order, to the shard holding the fewest elements so far, ties to the
// lowest shard index. Deterministic, balanced by size (greedy LPT), and it
// depends only on the names and sizes of the job's whole layout.
#ifndef NAS_COMMON_SHARDING_H_
#define NAS_COMMON_SHARDING_H_

#include <cstdint>
#include <string>
#include <vector>

namespace nas {

struct TensorSize {
  std::string name;
  int64_t num_elements = 0;
};

// The shard index of each tensor, in the order given. num_shards >= 1.
std::vector<int> AssignShards(const std::vector<TensorSize>& tensors, int num_shards);

}  // namespace nas

#endif  // NAS_COMMON_SHARDING_H_
