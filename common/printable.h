// Printable text: what the service accepts in the strings it stores and shows
// (job names, search-space choices, paths in a spec), and how a string is made
// safe to show when it is not, so that no byte of it can drive a terminal:
// move the cursor, clear the screen, forge a line, reorder what follows.
//
// "Printable UTF-8" is well-formed UTF-8 (no overlong forms, surrogates or
// code points above U+10FFFF) without the code points that control a
// terminal's or an editor's layout:
//   C0 controls U+0000..U+001F (tab, newline and carriage return included),
//   DEL U+007F, C1 controls U+0080..U+009F (U+009B is a one-byte CSI),
//   the line and paragraph separators U+2028 and U+2029, and the
//   bidirectional controls U+061C, U+200E, U+200F, U+202A..U+202E and
//   U+2066..U+2069 ("Trojan Source").
// Everything else, letters of any script and emoji included, is printable.
#ifndef NAS_COMMON_PRINTABLE_H_
#define NAS_COMMON_PRINTABLE_H_

#include <cstddef>
#include <string>

#include "absl/strings/string_view.h"

namespace nas {

// Offset of the first byte of `text` that is not part of well-formed UTF-8;
// absl::string_view::npos when there is none (control characters are
// well-formed).
size_t FindInvalidUtf8(absl::string_view text);

inline bool IsValidUtf8(absl::string_view text) {
  return FindInvalidUtf8(text) == absl::string_view::npos;
}

// Offset of the first byte of `text` that starts an unprintable code point or
// a malformed UTF-8 sequence; absl::string_view::npos when there is none.
size_t FindUnprintable(absl::string_view text);

inline bool IsPrintableUtf8(absl::string_view text) {
  return FindUnprintable(text) == absl::string_view::npos;
}

// `text` with every unprintable code point escaped: \t \n \r and \e (ESC) by
// name, the other C0 controls and DEL as \xNN, the C1 controls and the
// layout controls above as \uNNNN, and each byte of a malformed sequence as
// \xNN. Printable text comes back unchanged; the result is always printable,
// so escaping twice changes nothing. Backslashes are left alone (a literal
// "\e" in a name reads the same as an escaped ESC; only bytes are defused).
std::string EscapeUnprintable(absl::string_view text);

}  // namespace nas

#endif  // NAS_COMMON_PRINTABLE_H_
