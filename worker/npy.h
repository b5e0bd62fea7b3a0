// Reads NumPy arrays: .npy files (format versions 1-3, little-endian, C
// order) and .npz archives of them (zip members stored or deflated, read
// with zlib). For the numpy dataset (worker/dataset.h); no LibTorch.
#ifndef NAS_WORKER_NPY_H_
#define NAS_WORKER_NPY_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace nas::worker {

struct NpyArray {
  // The header's dtype descriptor as written, e.g. "|u1", "<f4", "<i8".
  std::string descr;
  std::vector<int64_t> shape;
  // The elements' bytes, product(shape) * item size of them.
  std::string data;
};

// Parses one .npy file. Fortran order, big-endian or object arrays, a
// malformed header, or data shorter or longer than the shape are
// INVALID_ARGUMENT naming `name` and the problem.
absl::StatusOr<NpyArray> ParseNpy(std::string bytes, const std::string& name);

// The item size of a descriptor NumPy writes for a numeric dtype ("|u1" 1,
// "<f4" 4 ...); 0 for anything else.
int NpyItemSize(const std::string& descr);

// The members of an .npz (zip) archive, keyed by name without ".npy"; each
// unpacked member is at most `max_member_bytes`. A truncated or corrupt
// archive, an encrypted member or a compression other than stored/deflate is
// INVALID_ARGUMENT naming `name`.
absl::StatusOr<std::map<std::string, std::string>> ReadNpzMembers(const std::string& bytes,
                                                                   const std::string& name,
                                                                   size_t max_member_bytes);

}  // namespace nas::worker

#endif  // NAS_WORKER_NPY_H_
