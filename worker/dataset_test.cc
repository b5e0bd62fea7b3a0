#include "worker/dataset.h"

#include <zlib.h>

#include <cstdlib>

#include "absl/strings/str_cat.h"
#include "common/file_util.h"
#include "gtest/gtest.h"

namespace nas::worker {
namespace {

std::string Dir() { return std::getenv("TEST_TMPDIR"); }

std::string BigEndian(uint32_t v) {
  return std::string({static_cast<char>(v >> 24), static_cast<char>(v >> 16), static_cast<char>(v >> 8),
                      static_cast<char>(v)});
}

std::string IdxImages(int n, int h, int w) {
  std::string out = BigEndian(0x803) + BigEndian(n) + BigEndian(h) + BigEndian(w);
  for (int i = 0; i < n * h * w; ++i) out.push_back(static_cast<char>(i % 251));
  return out;
}

std::string IdxLabels(int n) {
  std::string out = BigEndian(0x801) + BigEndian(n);
  for (int i = 0; i < n; ++i) out.push_back(static_cast<char>(i % 10));
  return out;
}

std::string Gzip(const std::string& data) {
  const std::string path = Dir() + "/tmp.gz";
  gzFile f = gzopen(path.c_str(), "wb");
  gzwrite(f, data.data(), static_cast<unsigned>(data.size()));
  gzclose(f);
  return *ReadFile(path);
}

TEST(DatasetTest, IdxRoundTripsRawAndGzipped) {
  for (bool gz : {false, true}) {
    const std::string images = Dir() + (gz ? "/img.gz" : "/img");
    const std::string labels = Dir() + (gz ? "/lab.gz" : "/lab");
    ASSERT_TRUE(WriteFileAtomically(images, gz ? Gzip(IdxImages(7, 4, 3)) : IdxImages(7, 4, 3)).ok());
    ASSERT_TRUE(WriteFileAtomically(labels, gz ? Gzip(IdxLabels(7)) : IdxLabels(7)).ok());
    auto set = LoadIdx(images, labels);
    ASSERT_TRUE(set.ok()) << set.status();
    EXPECT_EQ(set->count, 7);
    EXPECT_EQ(set->height, 4);
    EXPECT_EQ(set->width, 3);
    EXPECT_EQ(set->pixels[13], 13);
    EXPECT_EQ(set->labels[6], 6);
  }
}

TEST(DatasetTest, TruncatedOrMalformedIdxFilesGiveErrorsNamingTheFile) {
  const std::string images = IdxImages(5, 2, 2);
  const std::string labels = IdxLabels(5);
  auto truncated = ParseIdx(images.substr(0, images.size() - 1), labels, "a.idx", "b.idx");
  EXPECT_EQ(truncated.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_NE(truncated.status().message().find("a.idx"), absl::string_view::npos);
  EXPECT_FALSE(ParseIdx("garbage", labels, "a", "b").ok());
  EXPECT_FALSE(ParseIdx(images, labels.substr(0, 9), "a", "b").ok());
  EXPECT_FALSE(ParseIdx(images, IdxLabels(4), "a", "b").ok());
  const std::string gz = Dir() + "/torn.gz";
  const std::string packed = Gzip(images);
  ASSERT_TRUE(WriteFileAtomically(gz, packed.substr(0, packed.size() / 2)).ok());
  auto torn = ReadMaybeGzipped(gz);
  EXPECT_EQ(torn.status().code(), absl::StatusCode::kDataLoss) << torn.status();
  EXPECT_EQ(LoadIdx(Dir() + "/missing", Dir() + "/missing2").status().code(), absl::StatusCode::kNotFound);
}

TEST(DatasetTest, CifarReaderRoundTripsAGeneratedFileInTheExactFormat) {
  std::string bytes;
  for (int i = 0; i < 3; ++i) {
    bytes.push_back(static_cast<char>(i + 2));
    for (int p = 0; p < 3072; ++p) bytes.push_back(static_cast<char>((p + i) % 256));
  }
  const std::string path = Dir() + "/data_batch_1.bin";
  ASSERT_TRUE(WriteFileAtomically(path, bytes).ok());
  auto set = LoadCifar({path});
  ASSERT_TRUE(set.ok()) << set.status();
  EXPECT_EQ(set->count, 3);
  EXPECT_EQ(set->channels, 3);
  EXPECT_EQ(set->labels, (std::vector<uint8_t>{2, 3, 4}));
  EXPECT_EQ(set->pixels[3072 + 1024], (1024 + 1) % 256);  // image 1, green plane
  auto truncated = ParseCifar(bytes.substr(0, bytes.size() - 5), "short.bin");
  EXPECT_EQ(truncated.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_NE(truncated.status().message().find("short.bin"), absl::string_view::npos);
  bytes[0] = 77;
  EXPECT_FALSE(ParseCifar(bytes, "bad-label.bin").ok());
}

TEST(DatasetTest, DebianFashionMnistLoadsAndIsCached) {
  auto first = LoadTrainingSet("fashion_mnist", "", {"/usr/share/datasets"});
  ASSERT_TRUE(first.ok()) << first.status() << " (tools/setup.sh installs dataset-fashion-mnist)";
  EXPECT_EQ((*first)->count, 60000);
  EXPECT_EQ((*first)->height, 28);
  auto second = LoadTrainingSet("fashion_mnist", "", {"/usr/share/datasets"});
  ASSERT_TRUE(second.ok());
  EXPECT_EQ(first->get(), second->get());
}

}  // namespace
}  // namespace nas::worker
