// libFuzzer target for the IDX reader (worker/dataset.h ParseIdx, and
// ReadMaybeGzipped for gzipped files). Input: a 4-byte big-endian length L,
// then L bytes of the image file, then the label file (bytes past the end of
// the input are simply missing). A part that starts with the gzip magic goes
// through ReadMaybeGzipped via a temporary file (it only takes paths), as
// LoadIdx does with train-images-idx3-ubyte.gz. Checks that a parsed set is
// consistent: count * height * width pixels, count labels, all < 10.
// Built by tools/fuzz.sh; docs/fuzzing.md.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "absl/status/statusor.h"
#include "worker/dataset.h"

namespace {

[[noreturn]] void Fail(const std::string& what) {
  std::fprintf(stderr, "idx_fuzzer: %s\n", what.c_str());
  std::abort();
}

// The bytes LoadIdx would see for a file holding `raw`.
absl::StatusOr<std::string> AsLoaded(const std::string& raw, const char* role) {
  if (raw.size() < 2 || static_cast<uint8_t>(raw[0]) != 0x1f || static_cast<uint8_t>(raw[1]) != 0x8b) {
    return raw;
  }
  const std::string path = "/tmp/nas-idx-fuzzer-" + std::to_string(::getpid()) + "-" + role;
  FILE* f = std::fopen(path.c_str(), "wb");
  if (f == nullptr || std::fwrite(raw.data(), 1, raw.size(), f) != raw.size() || std::fclose(f) != 0) {
    Fail("cannot write " + path);
  }
  absl::StatusOr<std::string> out = nas::worker::ReadMaybeGzipped(path);
  ::unlink(path.c_str());
  if (!out.ok() && out.status().message().empty()) Fail("gunzip error without a message");
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 4) return 0;
  size_t images_size = (size_t{data[0]} << 24) | (size_t{data[1]} << 16) | (size_t{data[2]} << 8) | data[3];
  if (images_size > size - 4) images_size = size - 4;
  const char* bytes = reinterpret_cast<const char*>(data) + 4;
  absl::StatusOr<std::string> images = AsLoaded(std::string(bytes, images_size), "images");
  absl::StatusOr<std::string> labels =
      AsLoaded(std::string(bytes + images_size, size - 4 - images_size), "labels");
  if (!images.ok() || !labels.ok()) return 0;
  const absl::StatusOr<nas::worker::ImageSet> set =
      nas::worker::ParseIdx(*images, *labels, "images.idx", "labels.idx");
  if (!set.ok()) {
    if (set.status().message().empty()) Fail("error without a message");
    return 0;
  }
  if (set->count < 0 || set->channels != 1 || set->height < 1 || set->width < 1 ||
      set->pixels.size() != static_cast<size_t>(set->count) * set->height * set->width ||
      set->labels.size() != static_cast<size_t>(set->count)) {
    Fail("inconsistent ImageSet");
  }
  for (uint8_t label : set->labels) {
    if (label >= 10) Fail("label out of range accepted");
  }
  return 0;
}
