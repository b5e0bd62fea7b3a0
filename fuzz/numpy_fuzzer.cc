// libFuzzer target for the numpy dataset's readers (worker/npy.h ParseNpy,
// ReadNpzMembers; worker/dataset.h ParseNumpy). Input: a first byte that
// picks the path (even: the rest is an .npz archive whose images/labels or
// x_train/y_train members go to ParseNumpy; odd: a 4-byte big-endian length
// L, L bytes of images.npy, then labels.npy). Checks that a parsed set is
// consistent: count * channels * height * width pixels, count labels, each
// below `classes`, classes <= 256; that an .npz member is never larger than
// the cap; and that every error has a message.
// Built by tools/fuzz.sh; docs/fuzzing.md.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "worker/dataset.h"
#include "worker/npy.h"

namespace {

[[noreturn]] void Fail(const std::string& what) {
  std::fprintf(stderr, "numpy_fuzzer: %s\n", what.c_str());
  std::abort();
}

void Check(const std::string& images, const std::string& labels) {
  const absl::StatusOr<nas::worker::ImageSet> set =
      nas::worker::ParseNumpy(images, labels, "images.npy", "labels.npy");
  if (!set.ok()) {
    if (set.status().message().empty()) Fail("error without a message");
    return;
  }
  if (set->count < 1 || set->channels < 1 || set->height < 1 || set->width < 1 ||
      set->pixels.size() != static_cast<size_t>(set->count) * set->channels * set->height * set->width ||
      set->labels.size() != static_cast<size_t>(set->count) || set->classes < 1 ||
      set->classes > nas::worker::kMaxClasses) {
    Fail("inconsistent ImageSet");
  }
  for (uint8_t label : set->labels) {
    if (label >= set->classes) Fail("label not below classes");
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const std::string input(reinterpret_cast<const char*>(data) + 1, size - 1);
  if (data[0] % 2 == 0) {
    constexpr size_t kCap = 1 << 20;
    const auto members = nas::worker::ReadNpzMembers(input, "data.npz", kCap);
    if (!members.ok()) {
      if (members.status().message().empty()) Fail("npz error without a message");
      return 0;
    }
    for (const auto& [name, bytes] : *members) {
      if (bytes.size() > kCap) Fail("npz member over the cap");
    }
    for (const auto& [x, y] : {std::pair<const char*, const char*>{"images", "labels"}, {"x_train", "y_train"}}) {
      if (members->count(x) && members->count(y)) Check(members->at(x), members->at(y));
    }
    return 0;
  }
  if (input.size() < 4) return 0;
  size_t images_size = (size_t{static_cast<uint8_t>(input[0])} << 24) |
                       (size_t{static_cast<uint8_t>(input[1])} << 16) |
                       (size_t{static_cast<uint8_t>(input[2])} << 8) | static_cast<uint8_t>(input[3]);
  if (images_size > input.size() - 4) images_size = input.size() - 4;
  Check(input.substr(4, images_size), input.substr(4 + images_size));
  return 0;
}
