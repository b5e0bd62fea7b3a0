#include "worker/dataset_fixtures.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>

#include <jpeglib.h>
#include <png.h>
#include <zlib.h>

#include <algorithm>
#include <random>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/file_util.h"

namespace nas::worker::testing {
namespace {

std::string Little(uint64_t v, int n) {
  std::string out;
  for (int i = 0; i < n; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
  return out;
}

}  // namespace

std::string PngBytes(int height, int width, int channels, const std::vector<uint8_t>& pixels) {
  png_image image;
  std::memset(&image, 0, sizeof(image));
  image.version = PNG_IMAGE_VERSION;
  image.width = width;
  image.height = height;
  image.format = channels == 1 ? PNG_FORMAT_GRAY : PNG_FORMAT_RGB;
  png_alloc_size_t size = 0;
  png_image_write_to_memory(&image, nullptr, &size, 0, pixels.data(), 0, nullptr);
  std::string out(size, '\0');
  png_image_write_to_memory(&image, out.data(), &size, 0, pixels.data(), 0, nullptr);
  out.resize(size);
  return out;
}

std::string JpegBytes(int height, int width, int channels, const std::vector<uint8_t>& pixels) {
  jpeg_compress_struct info;
  jpeg_error_mgr error;
  info.err = jpeg_std_error(&error);
  jpeg_create_compress(&info);
  unsigned char* buffer = nullptr;
  unsigned long size = 0;
  jpeg_mem_dest(&info, &buffer, &size);
  info.image_width = width;
  info.image_height = height;
  info.input_components = channels;
  info.in_color_space = channels == 1 ? JCS_GRAYSCALE : JCS_RGB;
  jpeg_set_defaults(&info);
  jpeg_set_quality(&info, 95, TRUE);
  jpeg_start_compress(&info, TRUE);
  while (info.next_scanline < info.image_height) {
    JSAMPROW row = const_cast<JSAMPROW>(pixels.data() + size_t{info.next_scanline} * width * channels);
    jpeg_write_scanlines(&info, &row, 1);
  }
  jpeg_finish_compress(&info);
  jpeg_destroy_compress(&info);
  std::string out(reinterpret_cast<char*>(buffer), size);
  std::free(buffer);
  return out;
}

std::string NpyBytes(const std::string& descr, const std::vector<int64_t>& shape, const std::string& data) {
  std::string header = absl::StrCat("{'descr': '", descr, "', 'fortran_order': False, 'shape': (",
                                    absl::StrJoin(shape, ", "), shape.size() == 1 ? ",), }" : "), }");
  while ((10 + header.size() + 1) % 64 != 0) header.push_back(' ');
  header.push_back('\n');
  return absl::StrCat("\x93NUMPY", std::string("\x01\x00", 2), Little(header.size(), 2), header, data);
}

std::string ZipBytes(const std::vector<std::pair<std::string, std::string>>& members, bool deflated) {
  std::string out, central;
  for (const auto& [name, data] : members) {
    std::string packed = data;
    if (deflated) {
      z_stream stream{};
      deflateInit2(&stream, Z_DEFAULT_COMPRESSION, Z_DEFLATED, -MAX_WBITS, 8, Z_DEFAULT_STRATEGY);
      packed.resize(deflateBound(&stream, data.size()));
      stream.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
      stream.avail_in = data.size();
      stream.next_out = reinterpret_cast<Bytef*>(packed.data());
      stream.avail_out = packed.size();
      deflate(&stream, Z_FINISH);
      packed.resize(stream.total_out);
      deflateEnd(&stream);
    }
    const uint32_t crc = crc32(0L, reinterpret_cast<const Bytef*>(data.data()), data.size());
    const std::string common = absl::StrCat(Little(20, 2), Little(0, 2), Little(deflated ? 8 : 0, 2),
                                            Little(0, 4), Little(crc, 4), Little(packed.size(), 4),
                                            Little(data.size(), 4), Little(name.size(), 2), Little(0, 2));
    absl::StrAppend(&central, Little(0x02014b50, 4), Little(20, 2), common, Little(0, 2), Little(0, 2),
                    Little(0, 2), Little(0, 4), Little(out.size(), 4), name);
    absl::StrAppend(&out, Little(0x04034b50, 4), common, name, packed);
  }
  const size_t dir_offset = out.size();
  absl::StrAppend(&out, central, Little(0x06054b50, 4), Little(0, 2), Little(0, 2), Little(members.size(), 2),
                  Little(members.size(), 2), Little(central.size(), 4), Little(dir_offset, 4), Little(0, 2));
  return out;
}

bool WriteImageFolder(const std::string& dir, int classes, int per_class, int height, int width) {
  std::mt19937 rng(7);
  std::uniform_int_distribution<int> noise(-30, 30);
  for (int k = 0; k < classes; ++k) {
    const std::string class_dir = absl::StrCat(dir, "/c", k);
    if (!MakeDirectories(class_dir).ok()) return false;
    for (int i = 0; i < per_class; ++i) {
      std::vector<uint8_t> pixels(size_t{static_cast<size_t>(height)} * width * 3);
      for (size_t p = 0; p < pixels.size(); ++p) {
        const int base = static_cast<int>(p % 3) == k % 3 ? 200 : 40;
        pixels[p] = static_cast<uint8_t>(std::clamp(base + noise(rng), 0, 255));
      }
      const bool png = i % 2 == 0;
      const std::string path = absl::StrCat(class_dir, "/", i, png ? ".png" : ".jpg");
      if (!WriteFileAtomically(path, png ? PngBytes(height, width, 3, pixels) : JpegBytes(height, width, 3, pixels))
               .ok()) {
        return false;
      }
    }
  }
  return true;
}

}  // namespace nas::worker::testing
