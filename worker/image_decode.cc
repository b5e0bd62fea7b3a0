#include "worker/image_decode.h"

// jpeglib.h needs size_t and FILE declared first.
#include <csetjmp>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include <jpeglib.h>
#include <png.h>

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"

namespace nas::worker {
namespace {

absl::Status CheckSize(int64_t height, int64_t width, const std::string& name) {
  if (height < 1 || width < 1 || height > kMaxImageSide || width > kMaxImageSide ||
      height * width > kMaxImagePixels) {
    return absl::InvalidArgumentError(absl::StrCat(name, ": a ", width, "x", height,
                                                   " image is too large (at most ", kMaxImageSide,
                                                   " pixels a side and ", kMaxImagePixels, " in all)"));
  }
  return absl::OkStatus();
}

absl::StatusOr<DecodedImage> DecodePng(const std::string& bytes, const std::string& name, int channels) {
  png_image image;
  std::memset(&image, 0, sizeof(image));
  image.version = PNG_IMAGE_VERSION;
  if (!png_image_begin_read_from_memory(&image, bytes.data(), bytes.size())) {
    const std::string message = image.message;
    png_image_free(&image);
    return absl::InvalidArgumentError(absl::StrCat(name, ": unreadable PNG: ", message));
  }
  if (absl::Status s = CheckSize(image.height, image.width, name); !s.ok()) {
    png_image_free(&image);
    return s;
  }
  image.format = channels == 1 ? PNG_FORMAT_GRAY : PNG_FORMAT_RGB;
  DecodedImage out;
  out.channels = channels;
  out.height = static_cast<int>(image.height);
  out.width = static_cast<int>(image.width);
  out.pixels.resize(PNG_IMAGE_SIZE(image));
  if (!png_image_finish_read(&image, /*background=*/nullptr, out.pixels.data(), /*row_stride=*/0,
                             /*colormap=*/nullptr)) {
    const std::string message = image.message;
    png_image_free(&image);
    return absl::InvalidArgumentError(absl::StrCat(name, ": unreadable PNG: ", message));
  }
  png_image_free(&image);
  return out;
}

// libjpeg reports fatal errors through error_exit, which must not return:
// it long-jumps back to DecodeJpegC, which holds no C++ objects.
struct JpegError {
  jpeg_error_mgr manager;
  std::jmp_buf jump;
  char message[JMSG_LENGTH_MAX];
};

void JpegErrorExit(j_common_ptr info) {
  JpegError* error = reinterpret_cast<JpegError*>(info->err);
  (*info->err->format_message)(info, error->message);
  std::longjmp(error->jump, 1);
}

void JpegIgnoreMessage(j_common_ptr, int) {}

// Returns 0 and a malloc'ed *pixels on success; otherwise 1 with *message
// set (2: the header's size is over the limits, *height and *width set).
int DecodeJpegC(const unsigned char* data, unsigned long size, int channels, unsigned char** pixels,
                int* height, int* width, char* message) {
  jpeg_decompress_struct info;
  JpegError error;
  unsigned char* volatile buffer = nullptr;
  info.err = jpeg_std_error(&error.manager);
  error.manager.error_exit = JpegErrorExit;
  error.manager.emit_message = JpegIgnoreMessage;
  if (setjmp(error.jump)) {
    std::strcpy(message, error.message);
    jpeg_destroy_decompress(&info);
    std::free(buffer);
    return 1;
  }
  jpeg_create_decompress(&info);
  jpeg_mem_src(&info, data, size);
  jpeg_read_header(&info, TRUE);
  *height = static_cast<int>(info.image_height);
  *width = static_cast<int>(info.image_width);
  if (info.image_height < 1 || info.image_width < 1 || info.image_height > kMaxImageSide ||
      info.image_width > kMaxImageSide ||
      int64_t{info.image_height} * info.image_width > kMaxImagePixels) {
    jpeg_destroy_decompress(&info);
    return 2;
  }
  info.out_color_space = channels == 1 ? JCS_GRAYSCALE : JCS_RGB;
  jpeg_start_decompress(&info);
  const size_t stride = size_t{info.output_width} * info.output_components;
  buffer = static_cast<unsigned char*>(std::malloc(stride * info.output_height));
  if (buffer == nullptr) {
    std::strcpy(message, "out of memory");
    jpeg_destroy_decompress(&info);
    return 1;
  }
  while (info.output_scanline < info.output_height) {
    JSAMPROW row = buffer + stride * info.output_scanline;
    jpeg_read_scanlines(&info, &row, 1);
  }
  jpeg_finish_decompress(&info);
  jpeg_destroy_decompress(&info);
  *pixels = buffer;
  return 0;
}

absl::StatusOr<DecodedImage> DecodeJpeg(const std::string& bytes, const std::string& name, int channels) {
  unsigned char* pixels = nullptr;
  int height = 0, width = 0;
  char message[JMSG_LENGTH_MAX] = {0};
  const int rc = DecodeJpegC(reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size(), channels,
                             &pixels, &height, &width, message);
  if (rc == 2) return CheckSize(height, width, name);
  if (rc != 0) return absl::InvalidArgumentError(absl::StrCat(name, ": unreadable JPEG: ", message));
  DecodedImage out;
  out.channels = channels;
  out.height = height;
  out.width = width;
  out.pixels.assign(pixels, pixels + size_t{static_cast<size_t>(height)} * width * channels);
  std::free(pixels);
  return out;
}

}  // namespace

absl::StatusOr<DecodedImage> DecodeImage(const std::string& bytes, const std::string& name, int channels) {
  if (channels != 1 && channels != 3) {
    return absl::InvalidArgumentError(absl::StrCat("cannot decode to ", channels, " channels (1 or 3)"));
  }
  if (bytes.size() >= 8 && bytes.compare(0, 8, "\x89PNG\r\n\x1a\n") == 0) {
    return DecodePng(bytes, name, channels);
  }
  if (bytes.size() >= 3 && bytes.compare(0, 3, "\xff\xd8\xff") == 0) return DecodeJpeg(bytes, name, channels);
  return absl::InvalidArgumentError(
      absl::StrCat(name, ": not a PNG or JPEG image (its first bytes are neither signature)"));
}

std::vector<uint8_t> ResizeToPlanes(const DecodedImage& image, int height, int width) {
  const int c = image.channels;
  std::vector<uint8_t> out(size_t{static_cast<size_t>(c)} * height * width);
  const double sy = static_cast<double>(image.height) / height;
  const double sx = static_cast<double>(image.width) / width;
  for (int y = 0; y < height; ++y) {
    const double fy = std::clamp((y + 0.5) * sy - 0.5, 0.0, image.height - 1.0);
    const int y0 = static_cast<int>(fy);
    const int y1 = std::min(y0 + 1, image.height - 1);
    const double wy = fy - y0;
    for (int x = 0; x < width; ++x) {
      const double fx = std::clamp((x + 0.5) * sx - 0.5, 0.0, image.width - 1.0);
      const int x0 = static_cast<int>(fx);
      const int x1 = std::min(x0 + 1, image.width - 1);
      const double wx = fx - x0;
      for (int k = 0; k < c; ++k) {
        auto at = [&](int yy, int xx) {
          return static_cast<double>(image.pixels[(size_t{static_cast<size_t>(yy)} * image.width + xx) * c + k]);
        };
        const double v = (1 - wy) * ((1 - wx) * at(y0, x0) + wx * at(y0, x1)) +
                         wy * ((1 - wx) * at(y1, x0) + wx * at(y1, x1));
        out[(size_t{static_cast<size_t>(k)} * height + y) * width + x] =
            static_cast<uint8_t>(std::lround(std::clamp(v, 0.0, 255.0)));
      }
    }
  }
  return out;
}

}  // namespace nas::worker
