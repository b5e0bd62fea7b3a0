// The image_folder and numpy datasets (worker/dataset.h): fixtures written
// in the test (libpng, libjpeg-turbo, hand-made .npy and .npz bytes), and
// an error naming the field or file for each kind of bad input.
#include <zlib.h>

#include <cstdlib>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "common/file_util.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "worker/dataset.h"
#include "worker/dataset_fixtures.h"
#include "worker/image_decode.h"
#include "worker/npy.h"

namespace nas::worker {
namespace {

using ::testing::HasSubstr;
using testing::JpegBytes;
using testing::NpyBytes;
using testing::PngBytes;
using testing::WriteImageFolder;
using testing::ZipBytes;

// A fresh directory under TEST_TMPDIR.
std::string NewDir(const std::string& name) {
  const std::string dir = absl::StrCat(std::getenv("TEST_TMPDIR"), "/", name);
  EXPECT_TRUE(MakeDirectories(dir).ok());
  return dir;
}

std::vector<std::string> Roots() { return {std::getenv("TEST_TMPDIR")}; }

void Write(const std::string& path, const std::string& bytes) { ASSERT_TRUE(WriteFileAtomically(path, bytes).ok()); }

std::vector<uint8_t> Solid(int height, int width, int channels, std::vector<uint8_t> colour) {
  std::vector<uint8_t> pixels;
  for (int i = 0; i < height * width; ++i) pixels.insert(pixels.end(), colour.begin(), colour.begin() + channels);
  return pixels;
}

TEST(ImageFolderTest, ThreeRgbClassesOfPngAndJpegAreDecodedResizedAndLabelledBySortedName) {
  const std::string dir = NewDir("folder3");
  ASSERT_TRUE(WriteImageFolder(dir, 3, 4, 12, 10));
  Write(dir + "/README.txt", "not a class");
  auto set = LoadImageFolder(dir, {8, 6, 3}, Roots());
  ASSERT_TRUE(set.ok()) << set.status();
  EXPECT_EQ(set->count, 12);
  EXPECT_EQ(set->classes, 3);
  EXPECT_EQ(set->class_names, (std::vector<std::string>{"c0", "c1", "c2"}));
  EXPECT_EQ(set->channels, 3);
  EXPECT_EQ(set->height, 8);
  EXPECT_EQ(set->width, 6);
  ASSERT_EQ(set->pixels.size(), 12u * 3 * 8 * 6);
  EXPECT_EQ(set->labels, (std::vector<uint8_t>{0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2}));
  // Class k is bright in channel k: image 5 (class 1) has green > red, blue.
  const uint8_t* image = set->pixels.data() + 5 * 3 * 8 * 6;
  const int plane = 8 * 6;
  EXPECT_GT(image[plane + 20], image[20] + 80);
  EXPECT_GT(image[plane + 20], image[2 * plane + 20] + 80);
}

TEST(ImageFolderTest, GrayConvertsColourAndKeepsTheImagesOwnSizeWhenNoneIsSet) {
  const std::string dir = NewDir("gray");
  ASSERT_TRUE(MakeDirectories(dir + "/a").ok() && MakeDirectories(dir + "/b").ok());
  Write(dir + "/a/x.PNG", PngBytes(5, 7, 3, Solid(5, 7, 3, {255, 255, 255})));
  Write(dir + "/b/y.jpeg", JpegBytes(5, 7, 1, Solid(5, 7, 1, {0})));
  auto set = LoadImageFolder(dir, {0, 0, 1}, Roots());
  ASSERT_TRUE(set.ok()) << set.status();
  EXPECT_EQ(set->channels, 1);
  EXPECT_EQ(set->height, 5);
  EXPECT_EQ(set->width, 7);
  EXPECT_EQ(set->pixels[0], 255);
  EXPECT_LE(set->pixels[35], 3);
}

TEST(ImageFolderTest, MixedSizesAreAnErrorNamingTheFileUnlessResized) {
  const std::string dir = NewDir("mixed");
  ASSERT_TRUE(MakeDirectories(dir + "/a").ok() && MakeDirectories(dir + "/b").ok());
  Write(dir + "/a/1.png", PngBytes(4, 4, 3, Solid(4, 4, 3, {1, 2, 3})));
  Write(dir + "/b/2.png", PngBytes(6, 4, 3, Solid(6, 4, 3, {1, 2, 3})));
  auto set = LoadImageFolder(dir, {0, 0, 3}, Roots());
  EXPECT_THAT(set.status().message(), HasSubstr("b/2.png: is 4x6 but"));
  EXPECT_THAT(set.status().message(), HasSubstr("image_height and image_width"));
  auto resized = LoadImageFolder(dir, {4, 4, 3}, Roots());
  ASSERT_TRUE(resized.ok()) << resized.status();
  EXPECT_EQ(resized->pixels[3 * 16 + 16 + 5], 2);  // image 1, green plane, resized
}

TEST(ImageFolderTest, EachBadInputIsAnErrorNamingTheFieldOrFile) {
  const std::string missing = std::string(std::getenv("TEST_TMPDIR")) + "/no-such-dir";
  auto status = LoadImageFolder(missing, {8, 8, 3}, Roots()).status();
  EXPECT_THAT(status.message(), HasSubstr("evaluator.train.data_dir: " + missing));

  const std::string no_classes = NewDir("no-classes");
  Write(no_classes + "/x.png", PngBytes(2, 2, 1, {1, 2, 3, 4}));
  EXPECT_THAT(LoadImageFolder(no_classes, {8, 8, 3}, Roots()).status().message(),
              HasSubstr("evaluator.train.data_dir: " + no_classes + " has no class subdirectories"));

  const std::string empty = NewDir("empty-class");
  ASSERT_TRUE(MakeDirectories(empty + "/cat").ok() && MakeDirectories(empty + "/dog").ok());
  Write(empty + "/cat/1.png", PngBytes(2, 2, 1, {1, 2, 3, 4}));
  Write(empty + "/dog/notes.txt", "no images here");
  EXPECT_THAT(LoadImageFolder(empty, {8, 8, 3}, Roots()).status().message(),
              HasSubstr("evaluator.train.data_dir: class 'dog'"));

  const std::string garbage = NewDir("garbage");
  ASSERT_TRUE(MakeDirectories(garbage + "/a").ok());
  Write(garbage + "/a/1.png", "this is text");
  EXPECT_THAT(LoadImageFolder(garbage, {8, 8, 3}, Roots()).status().message(),
              HasSubstr(garbage + "/a/1.png: not a PNG or JPEG image"));
  const std::string png = PngBytes(8, 8, 3, Solid(8, 8, 3, {9, 9, 9}));
  Write(garbage + "/a/1.png", png.substr(0, png.size() / 2));
  EXPECT_THAT(LoadImageFolder(garbage, {8, 8, 3}, Roots()).status().message(),
              HasSubstr(garbage + "/a/1.png: unreadable PNG"));
  const std::string jpeg = JpegBytes(8, 8, 3, Solid(8, 8, 3, {9, 9, 9}));
  Write(garbage + "/a/1.png", "");
  Write(garbage + "/a/2.jpg", jpeg.substr(0, 40));
  auto truncated = LoadImageFolder(garbage, {8, 8, 3}, Roots());
  EXPECT_FALSE(truncated.ok());
  EXPECT_THAT(truncated.status().message(), HasSubstr(garbage + "/a/1.png: not a PNG or JPEG"));
  Write(garbage + "/a/1.png", png);
  EXPECT_THAT(LoadImageFolder(garbage, {8, 8, 3}, Roots()).status().message(),
              HasSubstr(garbage + "/a/2.jpg: unreadable JPEG"));

  // Outside --data_roots: refused before anything is listed.
  auto outside = LoadImageFolder(no_classes, {8, 8, 3}, {"/nonexistent-root"});
  EXPECT_TRUE(absl::IsPermissionDenied(outside.status())) << outside.status();
}

TEST(ImageFolderTest, AnImageWhoseHeaderClaimsAHugeSizeIsRefusedBeforeDecoding) {
  std::string png = PngBytes(2, 2, 1, {1, 2, 3, 4});
  // IHDR width and height (bytes 16..23) to 20000 x 20000, and the chunk's
  // CRC (over type and data, bytes 12..28) to match.
  const char big[] = {0, 0, 0x4e, 0x20};
  std::memcpy(png.data() + 16, big, 4);
  std::memcpy(png.data() + 20, big, 4);
  const uint32_t crc = crc32(0L, reinterpret_cast<const Bytef*>(png.data() + 12), 17);
  const char crc_bytes[] = {static_cast<char>(crc >> 24), static_cast<char>(crc >> 16),
                            static_cast<char>(crc >> 8), static_cast<char>(crc)};
  std::memcpy(png.data() + 29, crc_bytes, 4);
  auto image = DecodeImage(png, "huge.png", 3);
  EXPECT_THAT(image.status().message(), HasSubstr("huge.png: a 20000x20000 image is too large"));
}

std::string Bytes(const std::vector<uint8_t>& v) { return std::string(v.begin(), v.end()); }

template <typename T>
std::string Raw(const std::vector<T>& v) {
  return std::string(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(T));
}

TEST(NumpyTest, ImagesNpyAndLabelsNpyInADirectoryBecomeChannelMajorWithClassesFromTheLabels) {
  const std::string dir = NewDir("npy");
  std::vector<uint8_t> pixels(2 * 2 * 3 * 3);
  for (size_t i = 0; i < pixels.size(); ++i) pixels[i] = static_cast<uint8_t>(i);
  Write(dir + "/images.npy", NpyBytes("|u1", {2, 2, 3, 3}, Bytes(pixels)));
  Write(dir + "/labels.npy", NpyBytes("<i8", {2}, Raw(std::vector<int64_t>{4, 1})));
  auto set = LoadNumpy(dir, Roots());
  ASSERT_TRUE(set.ok()) << set.status();
  EXPECT_EQ(set->count, 2);
  EXPECT_EQ(set->channels, 3);
  EXPECT_EQ(set->height, 2);
  EXPECT_EQ(set->width, 3);
  EXPECT_EQ(set->classes, 5);
  EXPECT_EQ(set->labels, (std::vector<uint8_t>{4, 1}));
  // Image 0's green plane: HWC elements 1, 4, 7 ...
  EXPECT_EQ(set->pixels[6], 1);
  EXPECT_EQ(set->pixels[7], 4);
  EXPECT_EQ(set->pixels[18 + 12], 18 + 2);  // image 1, blue plane, pixel 0
}

TEST(NumpyTest, Float32GrayImagesInAStoredOrDeflatedNpzAreScaledTo255) {
  const std::string dir = NewDir("npz");
  const std::string images = NpyBytes("<f4", {3, 2, 2}, Raw(std::vector<float>(12, 0.5f)));
  const std::string labels = NpyBytes("|u1", {3}, Bytes({0, 1, 1}));
  for (bool deflate : {false, true}) {
    for (const auto& [x, y] : {std::pair<std::string, std::string>{"x_train", "y_train"}, {"images", "labels"}}) {
      const std::string path = absl::StrCat(dir, "/", x, deflate ? "-z" : "", ".npz");
      Write(path, ZipBytes({{x + ".npy", images}, {y + ".npy", labels}, {"x_test.npy", images}}, deflate));
      auto set = LoadNumpy(path, Roots());
      ASSERT_TRUE(set.ok()) << path << ": " << set.status();
      EXPECT_EQ(set->channels, 1);
      EXPECT_EQ(set->classes, 2);
      EXPECT_EQ(set->pixels[11], 128);
    }
  }
}

TEST(NumpyTest, EachBadArrayIsAnErrorNamingTheFileAndTheProblem) {
  const std::string ok_images = NpyBytes("|u1", {2, 2, 2}, std::string(8, '\1'));
  const std::string ok_labels = NpyBytes("<i4", {2}, Raw(std::vector<int32_t>{0, 1}));
  auto problem = [](const std::string& images, const std::string& labels) {
    return std::string(ParseNumpy(images, labels, "i.npy", "l.npy").status().message());
  };
  ASSERT_EQ(problem(ok_images, ok_labels), "");
  EXPECT_THAT(problem(NpyBytes("<f8", {2, 2, 2}, std::string(64, '\0')), ok_labels),
              HasSubstr("i.npy: images of dtype '<f8' are not supported"));
  EXPECT_THAT(problem(NpyBytes(">f4", {2, 2, 2}, std::string(32, '\0')), ok_labels),
              HasSubstr("i.npy: dtype '>f4' is not supported"));
  EXPECT_THAT(problem(ok_images, NpyBytes("<f4", {2}, Raw(std::vector<float>{0, 1}))),
              HasSubstr("l.npy: labels of dtype '<f4' are not supported"));
  EXPECT_THAT(problem(ok_images, NpyBytes("<i4", {3}, Raw(std::vector<int32_t>{0, 1, 1}))),
              HasSubstr("l.npy: 3 labels for i.npy's 2 images"));
  EXPECT_THAT(problem(NpyBytes("|u1", {8}, std::string(8, '\1')), ok_labels),
              HasSubstr("i.npy: images of shape (8,)"));
  EXPECT_THAT(problem(ok_images, NpyBytes("<i4", {2}, Raw(std::vector<int32_t>{0, -1}))),
              HasSubstr("l.npy: label 1 is -1, not in 0..255"));
  EXPECT_THAT(problem(NpyBytes("<f4", {1, 1, 2}, Raw(std::vector<float>{0.5f, 3.f})),
                      NpyBytes("|u1", {1}, "\1")),
              HasSubstr("i.npy: image 0 has the value 3"));
  EXPECT_THAT(problem(ok_images.substr(0, ok_images.size() - 1), ok_labels),
              HasSubstr("i.npy: the shape and dtype need 8 bytes of data, the file has 7"));
  EXPECT_THAT(problem("PK\3\4", ok_labels), HasSubstr("i.npy: not a .npy file"));
  std::string fortran = ok_images;
  fortran.replace(fortran.find("False"), 5, "True ");
  EXPECT_THAT(problem(fortran, ok_labels), HasSubstr("i.npy: Fortran-order arrays are not supported"));

  const std::string dir = NewDir("bad-npz");
  Write(dir + "/other.npz", ZipBytes({{"a.npy", ok_images}, {"b.npy", ok_labels}}, true));
  EXPECT_THAT(LoadNumpy(dir + "/other.npz", Roots()).status().message(),
              HasSubstr("other.npz: holds [a, b], not images and labels or x_train and y_train"));
  std::string corrupt = ZipBytes({{"images.npy", ok_images}, {"labels.npy", ok_labels}}, false);
  corrupt[40] ^= 0x55;  // a byte of the first member's data
  Write(dir + "/corrupt.npz", corrupt);
  EXPECT_THAT(LoadNumpy(dir + "/corrupt.npz", Roots()).status().message(), HasSubstr("CRC mismatch"));
  Write(dir + "/cut.npz", corrupt.substr(0, 30));
  EXPECT_THAT(LoadNumpy(dir + "/cut.npz", Roots()).status().message(), HasSubstr("cut.npz: not an .npz"));
  EXPECT_THAT(LoadNumpy(dir, Roots()).status().message(), HasSubstr(dir + "/images.npy"));
  EXPECT_THAT(LoadNumpy("", Roots()).status().message(), HasSubstr("evaluator.train.data_dir: must name"));
  EXPECT_TRUE(absl::IsPermissionDenied(LoadNumpy(dir + "/other.npz", {"/nonexistent-root"}).status()));
}

TEST(NumpyTest, AnNpzMemberClaimingMoreThanDeflateCanProduceIsRefusedBeforeAllocating) {
  std::string zip = ZipBytes({{"images.npy", std::string(4096, 'a')}}, true);
  // The central directory entry's uncompressed size (offset 24) to 1 GiB.
  const size_t central = static_cast<uint8_t>(zip[zip.size() - 6]) |
                         static_cast<size_t>(static_cast<uint8_t>(zip[zip.size() - 5])) << 8;
  const char gib[] = {0, 0, 0, 0x40};
  std::memcpy(zip.data() + central + 24, gib, 4);
  auto members = ReadNpzMembers(zip, "bomb.npz", size_t{2} << 30);
  EXPECT_THAT(members.status().message(), HasSubstr("bomb.npz: member images.npy claims 1073741824 bytes"));
}

TEST(NumpyTest, LoadTrainingSetReadsBothNewDatasetsAndCachesPerFolderSize) {
  const std::string dir = NewDir("cached");
  ASSERT_TRUE(WriteImageFolder(dir, 2, 2, 6, 6));
  auto a = LoadTrainingSet("image_folder", dir, Roots(), {4, 4, 3});
  auto b = LoadTrainingSet("image_folder", dir, Roots(), {5, 5, 1});
  ASSERT_TRUE(a.ok() && b.ok()) << a.status() << b.status();
  EXPECT_EQ((*a)->height, 4);
  EXPECT_EQ((*b)->height, 5);
  EXPECT_EQ((*b)->channels, 1);
  const std::string npy = NewDir("cached-npy");
  Write(npy + "/images.npy", NpyBytes("|u1", {2, 2, 2}, std::string(8, '\1')));
  Write(npy + "/labels.npy", NpyBytes("|u1", {2}, Bytes({0, 2})));
  auto n = LoadTrainingSet("numpy", npy, Roots());
  ASSERT_TRUE(n.ok()) << n.status();
  EXPECT_EQ((*n)->classes, 3);
}

}  // namespace
}  // namespace nas::worker
