#include "common/printable.h"

#include <cstdint>

#include "absl/strings/str_format.h"

namespace nas {
namespace {

// Decodes the code point starting at text[i]: its value and its length in
// bytes. False for a malformed sequence (then *length is 1: the bad byte).
bool DecodeUtf8(absl::string_view text, size_t i, uint32_t* code_point, size_t* length) {
  const auto byte = [&](size_t k) { return static_cast<uint8_t>(text[k]); };
  const uint8_t lead = byte(i);
  *length = 1;
  if (lead < 0x80) {
    *code_point = lead;
    return true;
  }
  size_t size;
  uint32_t value;
  uint32_t min;
  if ((lead & 0xE0) == 0xC0) {
    size = 2, value = lead & 0x1F, min = 0x80;
  } else if ((lead & 0xF0) == 0xE0) {
    size = 3, value = lead & 0x0F, min = 0x800;
  } else if ((lead & 0xF8) == 0xF0) {
    size = 4, value = lead & 0x07, min = 0x10000;
  } else {
    return false;  // A continuation byte or 0xF8..0xFF where a sequence must start.
  }
  if (i + size > text.size()) return false;
  for (size_t k = 1; k < size; ++k) {
    if ((byte(i + k) & 0xC0) != 0x80) return false;
    value = (value << 6) | (byte(i + k) & 0x3F);
  }
  if (value < min || value > 0x10FFFF || (value >= 0xD800 && value <= 0xDFFF)) return false;
  *code_point = value;
  *length = size;
  return true;
}

bool IsLayoutControl(uint32_t c) {
  return c < 0x20 || c == 0x7F || (c >= 0x80 && c <= 0x9F) || c == 0x2028 || c == 0x2029 ||
         c == 0x061C || c == 0x200E || c == 0x200F || (c >= 0x202A && c <= 0x202E) ||
         (c >= 0x2066 && c <= 0x2069);
}

}  // namespace

size_t FindInvalidUtf8(absl::string_view text) {
  uint32_t code_point;
  size_t length;
  for (size_t i = 0; i < text.size(); i += length) {
    if (!DecodeUtf8(text, i, &code_point, &length)) return i;
  }
  return absl::string_view::npos;
}

size_t FindUnprintable(absl::string_view text) {
  uint32_t code_point;
  size_t length;
  for (size_t i = 0; i < text.size(); i += length) {
    if (!DecodeUtf8(text, i, &code_point, &length) || IsLayoutControl(code_point)) return i;
  }
  return absl::string_view::npos;
}

std::string EscapeUnprintable(absl::string_view text) {
  std::string out;
  out.reserve(text.size());
  uint32_t code_point;
  size_t length;
  for (size_t i = 0; i < text.size(); i += length) {
    if (!DecodeUtf8(text, i, &code_point, &length)) {
      absl::StrAppendFormat(&out, "\\x%02x", static_cast<uint8_t>(text[i]));
      continue;
    }
    if (!IsLayoutControl(code_point)) {
      out.append(text.data() + i, length);
      continue;
    }
    switch (code_point) {
      case '\t': out += "\\t"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case 0x1B: out += "\\e"; break;
      default:
        if (code_point <= 0x7F) {
          absl::StrAppendFormat(&out, "\\x%02x", code_point);
        } else {
          absl::StrAppendFormat(&out, "\\u%04x", code_point);
        }
    }
  }
  return out;
}

}  // namespace nas
