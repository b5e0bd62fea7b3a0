// libFuzzer target for the image_folder dataset's decoder (worker/image_decode.h
// DecodeImage: PNG through libpng, JPEG through libjpeg-turbo; then
// ResizeToPlanes). Input: a first byte whose low bit picks gray (0) or RGB
// (1), then the file. Checks that a decoded image has height * width *
// channels bytes within the size limits, that resizing gives channels * 7 * 5
// bytes, and that every error has a message. The libraries themselves are
// not instrumented; the target exercises our use of them (error paths,
// setjmp/longjmp, size checks before allocation).
// Built by tools/fuzz.sh; docs/fuzzing.md.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "worker/image_decode.h"

namespace {

[[noreturn]] void Fail(const std::string& what) {
  std::fprintf(stderr, "image_fuzzer: %s\n", what.c_str());
  std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const int channels = (data[0] & 1) ? 3 : 1;
  const std::string bytes(reinterpret_cast<const char*>(data) + 1, size - 1);
  const absl::StatusOr<nas::worker::DecodedImage> image = nas::worker::DecodeImage(bytes, "x.img", channels);
  if (!image.ok()) {
    if (image.status().message().empty()) Fail("error without a message");
    return 0;
  }
  if (image->channels != channels || image->height < 1 || image->width < 1 ||
      image->height > nas::worker::kMaxImageSide || image->width > nas::worker::kMaxImageSide ||
      int64_t{image->height} * image->width > nas::worker::kMaxImagePixels ||
      image->pixels.size() != static_cast<size_t>(image->height) * image->width * channels) {
    Fail("inconsistent DecodedImage");
  }
  if (nas::worker::ResizeToPlanes(*image, 7, 5).size() != static_cast<size_t>(channels) * 7 * 5) {
    Fail("resize to the wrong size");
  }
  return 0;
}
