#include "worker/npy.h"

#include <zlib.h>

#include <cctype>
#include <limits>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace nas::worker {
namespace {

uint64_t Little(const std::string& bytes, size_t offset, int n) {
  uint64_t v = 0;
  for (int i = n - 1; i >= 0; --i) v = (v << 8) | static_cast<uint8_t>(bytes[offset + i]);
  return v;
}

// The text after 'key': in a NumPy header dict, or npos.
size_t ValueAfter(const std::string& header, const std::string& key) {
  for (const char quote : {'\'', '"'}) {
    const std::string quoted = absl::StrCat(std::string(1, quote), key, std::string(1, quote));
    size_t at = header.find(quoted);
    if (at == std::string::npos) continue;
    at = header.find(':', at + quoted.size());
    if (at == std::string::npos) return at;
    ++at;
    while (at < header.size() && std::isspace(static_cast<unsigned char>(header[at]))) ++at;
    return at;
  }
  return std::string::npos;
}

absl::Status Bad(const std::string& name, const std::string& problem) {
  return absl::InvalidArgumentError(absl::StrCat(name, ": ", problem));
}

}  // namespace

int NpyItemSize(const std::string& descr) {
  static const std::map<std::string, int>* sizes = new std::map<std::string, int>{
      {"|u1", 1}, {"|i1", 1}, {"|b1", 1}, {"<u2", 2}, {"<i2", 2}, {"<f2", 2}, {"<u4", 4},
      {"<i4", 4}, {"<f4", 4}, {"<u8", 8}, {"<i8", 8}, {"<f8", 8}};
  auto it = sizes->find(descr);
  return it == sizes->end() ? 0 : it->second;
}

absl::StatusOr<NpyArray> ParseNpy(std::string bytes, const std::string& name) {
  if (bytes.size() < 10 || bytes.compare(0, 6, "\x93NUMPY") != 0) {
    return Bad(name, "not a .npy file (no \\x93NUMPY signature)");
  }
  const int major = static_cast<uint8_t>(bytes[6]);
  size_t header_start = 0, header_len = 0;
  if (major == 1) {
    header_start = 10;
    header_len = Little(bytes, 8, 2);
  } else if (major == 2 || major == 3) {
    if (bytes.size() < 12) return Bad(name, "truncated .npy header");
    header_start = 12;
    header_len = Little(bytes, 8, 4);
  } else {
    return Bad(name, absl::StrCat(".npy format version ", major, " is not supported (1, 2 or 3)"));
  }
  if (header_len > 1 << 20 || header_start + header_len > bytes.size()) {
    return Bad(name, "truncated .npy header");
  }
  const std::string header = bytes.substr(header_start, header_len);
  NpyArray array;
  size_t at = ValueAfter(header, "descr");
  if (at == std::string::npos || at >= header.size() || (header[at] != '\'' && header[at] != '"')) {
    return Bad(name, "the .npy header has no 'descr'");
  }
  const size_t end = header.find(header[at], at + 1);
  if (end == std::string::npos) return Bad(name, "the .npy header's 'descr' is not a string");
  array.descr = header.substr(at + 1, end - at - 1);
  if (array.descr == "<u1" || array.descr == "=u1") array.descr = "|u1";
  if (array.descr == "<i1" || array.descr == "=i1") array.descr = "|i1";
  at = ValueAfter(header, "fortran_order");
  if (at == std::string::npos) return Bad(name, "the .npy header has no 'fortran_order'");
  if (header.compare(at, 4, "True") == 0) {
    return Bad(name, "Fortran-order arrays are not supported (save with numpy.ascontiguousarray)");
  }
  at = ValueAfter(header, "shape");
  if (at == std::string::npos || header[at] != '(') return Bad(name, "the .npy header has no 'shape' tuple");
  const size_t close = header.find(')', at);
  if (close == std::string::npos) return Bad(name, "the .npy header's 'shape' is not a tuple");
  uint64_t elements = 1;
  for (absl::string_view part : absl::StrSplit(header.substr(at + 1, close - at - 1), ',')) {
    part = absl::StripAsciiWhitespace(part);
    if (part.empty()) continue;
    int64_t dim = 0;
    if (!absl::SimpleAtoi(part, &dim) || dim < 0 || dim > (int64_t{1} << 40)) {
      return Bad(name, absl::StrCat("the .npy header's shape has a bad dimension '", part, "'"));
    }
    array.shape.push_back(dim);
    elements *= static_cast<uint64_t>(dim);
    if (elements > (uint64_t{1} << 40)) return Bad(name, "the .npy shape is implausibly large");
  }
  const int item = NpyItemSize(array.descr);
  if (item == 0) {
    return Bad(name, absl::StrCat("dtype '", array.descr,
                                  "' is not supported (little-endian numeric dtypes only)"));
  }
  const size_t data_start = header_start + header_len;
  const uint64_t want = elements * item;
  if (bytes.size() - data_start != want) {
    return Bad(name, absl::StrCat("the shape and dtype need ", want, " bytes of data, the file has ",
                                  bytes.size() - data_start, " (truncated?)"));
  }
  bytes.erase(0, data_start);
  array.data = std::move(bytes);
  return array;
}

absl::StatusOr<std::map<std::string, std::string>> ReadNpzMembers(const std::string& bytes,
                                                                   const std::string& name,
                                                                   size_t max_member_bytes) {
  // The end of central directory record: 22 bytes plus a comment of at most 64 KiB.
  constexpr uint32_t kEnd = 0x06054b50, kCentral = 0x02014b50, kLocal = 0x04034b50;
  if (bytes.size() < 22) return Bad(name, "not an .npz (zip) archive: too short");
  size_t eocd = std::string::npos;
  const size_t lowest = bytes.size() > 22 + 65535 ? bytes.size() - 22 - 65535 : 0;
  for (size_t i = bytes.size() - 22 + 1; i-- > lowest;) {
    if (Little(bytes, i, 4) == kEnd) {
      eocd = i;
      break;
    }
  }
  if (eocd == std::string::npos) return Bad(name, "not an .npz (zip) archive: no end of central directory");
  const uint64_t entries = Little(bytes, eocd + 10, 2);
  const uint64_t dir_size = Little(bytes, eocd + 12, 4);
  uint64_t offset = Little(bytes, eocd + 16, 4);
  if (entries == 0xffff || offset == 0xffffffff) {
    return Bad(name, "zip64 archives (over 4 GiB) are not supported");
  }
  if (offset + dir_size > eocd) return Bad(name, "corrupt zip: the central directory lies outside the file");
  std::map<std::string, std::string> members;
  for (uint64_t e = 0; e < entries; ++e) {
    if (offset + 46 > eocd || Little(bytes, offset, 4) != kCentral) {
      return Bad(name, "corrupt zip: a bad central directory entry");
    }
    const int flags = static_cast<int>(Little(bytes, offset + 8, 2));
    const int method = static_cast<int>(Little(bytes, offset + 10, 2));
    const uint32_t crc = static_cast<uint32_t>(Little(bytes, offset + 16, 4));
    uint64_t packed = Little(bytes, offset + 20, 4);
    uint64_t size = Little(bytes, offset + 24, 4);
    const uint64_t name_len = Little(bytes, offset + 28, 2);
    const uint64_t extra_len = Little(bytes, offset + 30, 2);
    const uint64_t comment_len = Little(bytes, offset + 32, 2);
    uint64_t local = Little(bytes, offset + 42, 4);
    if (offset + 46 + name_len + extra_len + comment_len > eocd) {
      return Bad(name, "corrupt zip: a central directory entry runs past its end");
    }
    std::string member = bytes.substr(offset + 46, name_len);
    // Zip64 sizes and offset, in that order, for the fields that are 0xffffffff.
    for (uint64_t x = offset + 46 + name_len; x + 4 <= offset + 46 + name_len + extra_len;) {
      const uint64_t id = Little(bytes, x, 2), len = Little(bytes, x + 2, 2);
      if (x + 4 + len > offset + 46 + name_len + extra_len) break;
      if (id == 1) {
        uint64_t p = x + 4;
        auto next = [&](uint64_t& field) {
          if (field == 0xffffffff && p + 8 <= x + 4 + len) {
            field = Little(bytes, p, 8);
            p += 8;
          }
        };
        next(size);
        next(packed);
        next(local);
      }
      x += 4 + len;
    }
    offset += 46 + name_len + extra_len + comment_len;
    if (flags & 1) return Bad(name, absl::StrCat("member ", member, " is encrypted"));
    if (method != 0 && method != 8) {
      return Bad(name, absl::StrCat("member ", member, " uses compression method ", method,
                                    " (only stored and deflate are supported)"));
    }
    if (size > max_member_bytes) {
      return Bad(name, absl::StrCat("member ", member, " unpacks to ", size, " bytes, over the limit of ",
                                    max_member_bytes));
    }
    // `local` may be any 64-bit value (a zip64 field): compare without adding to it.
    if (local > bytes.size() || bytes.size() - local < 30 || Little(bytes, local, 4) != kLocal) {
      return Bad(name, absl::StrCat("corrupt zip: member ", member, "'s local header is missing"));
    }
    const uint64_t data = local + 30 + Little(bytes, local + 26, 2) + Little(bytes, local + 28, 2);
    if (data > bytes.size() || packed > bytes.size() - data) {
      return Bad(name, absl::StrCat("member ", member, " is truncated"));
    }
    // Deflate expands at most about 1032:1: a member claiming more is corrupt,
    // refused before its claimed size is allocated.
    if (size > packed * 1032 + 1024) {
      return Bad(name, absl::StrCat("member ", member, " claims ", size, " bytes from ", packed,
                                    " packed ones (corrupt archive)"));
    }
    std::string out;
    if (method == 0) {
      if (packed != size) return Bad(name, absl::StrCat("member ", member, ": stored sizes disagree"));
      out = bytes.substr(data, size);
    } else {
      out.resize(size);
      z_stream stream{};
      if (inflateInit2(&stream, -MAX_WBITS) != Z_OK) return absl::InternalError("cannot start inflate");
      stream.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(bytes.data() + data));
      stream.avail_in = static_cast<uInt>(packed);
      stream.next_out = reinterpret_cast<Bytef*>(out.data());
      stream.avail_out = static_cast<uInt>(size);
      const int rc = inflate(&stream, Z_FINISH);
      const uint64_t produced = stream.total_out;
      inflateEnd(&stream);
      if (rc != Z_STREAM_END || produced != size) {
        return Bad(name, absl::StrCat("member ", member, ": corrupt or truncated deflate data"));
      }
    }
    if (crc32(0L, reinterpret_cast<const Bytef*>(out.data()), static_cast<uInt>(out.size())) != crc) {
      return Bad(name, absl::StrCat("member ", member, ": CRC mismatch (corrupt archive)"));
    }
    if (absl::EndsWith(member, ".npy")) member.resize(member.size() - 4);
    members[member] = std::move(out);
  }
  return members;
}

}  // namespace nas::worker
