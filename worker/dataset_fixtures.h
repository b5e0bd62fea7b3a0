// Test fixtures for the image_folder and numpy datasets: PNG and JPEG files
// written with libpng and libjpeg-turbo, .npy bytes and .npz (zip) archives
// written by hand (members stored or deflated with zlib).
#ifndef NAS_WORKER_DATASET_FIXTURES_H_
#define NAS_WORKER_DATASET_FIXTURES_H_

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace nas::worker::testing {

// height x width x channels bytes (channel last) as a PNG or a JPEG
// (quality 95); channels 1 or 3.
std::string PngBytes(int height, int width, int channels, const std::vector<uint8_t>& pixels);
std::string JpegBytes(int height, int width, int channels, const std::vector<uint8_t>& pixels);

// A version 1.0 .npy file: `descr` as NumPy writes it ("|u1", "<f4" ...),
// `shape`, and the raw little-endian element bytes.
std::string NpyBytes(const std::string& descr, const std::vector<int64_t>& shape, const std::string& data);

// A zip archive of (name, bytes) members, deflated or stored.
std::string ZipBytes(const std::vector<std::pair<std::string, std::string>>& members, bool deflated);

// An image folder under `dir`: `classes` class directories c0, c1 ...
// of `per_class` height x width images each, solid colours per class
// (class k is mostly channel k % 3) with a little noise, alternating PNG
// and JPEG. Returns false on a write error.
bool WriteImageFolder(const std::string& dir, int classes, int per_class, int height, int width);

}  // namespace nas::worker::testing

#endif  // NAS_WORKER_DATASET_FIXTURES_H_
