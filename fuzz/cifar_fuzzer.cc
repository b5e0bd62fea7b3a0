// libFuzzer target for the CIFAR-10 binary reader (worker/dataset.h
// ParseCifar: 1 label byte + 3072 pixel bytes per record). Checks that a
// parsed set is consistent: 3 x 32 x 32 pixels and one label in 0..9 per
// image. Built by tools/fuzz.sh; docs/fuzzing.md.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "absl/status/statusor.h"
#include "worker/dataset.h"

namespace {

[[noreturn]] void Fail(const std::string& what) {
  std::fprintf(stderr, "cifar_fuzzer: %s\n", what.c_str());
  std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string bytes(reinterpret_cast<const char*>(data), size);
  const absl::StatusOr<nas::worker::ImageSet> set = nas::worker::ParseCifar(bytes, "data_batch.bin");
  if (!set.ok()) {
    if (set.status().message().empty()) Fail("error without a message");
    return 0;
  }
  if (set->count < 1 || set->channels != 3 || set->height != 32 || set->width != 32 ||
      set->pixels.size() != static_cast<size_t>(set->count) * 3 * 32 * 32 ||
      set->labels.size() != static_cast<size_t>(set->count) ||
      size != static_cast<size_t>(set->count) * 3073) {
    Fail("inconsistent ImageSet");
  }
  for (uint8_t label : set->labels) {
    if (label >= 10) Fail("label out of range accepted");
  }
  return 0;
}
