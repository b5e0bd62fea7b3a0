// Decodes PNG (libpng) and JPEG (libjpeg-turbo) images from memory, converted
// to gray or RGB as they are decoded, and resizes them (bilinear). For the
// image_folder dataset (worker/dataset.h); no LibTorch.
#ifndef NAS_WORKER_IMAGE_DECODE_H_
#define NAS_WORKER_IMAGE_DECODE_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace nas::worker {

// The largest image decoded: a side of at most kMaxImageSide pixels and at
// most kMaxImagePixels in all (checked from the header, before any pixel
// memory is allocated).
inline constexpr int kMaxImageSide = 16384;
inline constexpr int64_t kMaxImagePixels = int64_t{64} << 20;

// height x width x channels bytes, interleaved (row-major, channel last).
struct DecodedImage {
  int channels = 0;
  int height = 0;
  int width = 0;
  std::vector<uint8_t> pixels;
};

// Decodes a PNG or JPEG (told apart by their signatures) to `channels` 1
// (gray) or 3 (RGB); alpha is composited onto black. A file that is neither,
// or is corrupt, or too large, is INVALID_ARGUMENT naming `name` and the
// problem.
absl::StatusOr<DecodedImage> DecodeImage(const std::string& bytes, const std::string& name, int channels);

// The image resized to height x width (bilinear, pixel centres aligned; the
// same size copies), channel-major: channels x height x width bytes.
std::vector<uint8_t> ResizeToPlanes(const DecodedImage& image, int height, int width);

}  // namespace nas::worker

#endif  // NAS_WORKER_IMAGE_DECODE_H_
