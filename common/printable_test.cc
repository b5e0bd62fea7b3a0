#include "common/printable.h"

#include <string>

#include "absl/strings/str_format.h"
#include "gtest/gtest.h"

namespace nas {
namespace {

TEST(PrintableTest, LettersOfAnyScriptAndEmojiArePrintable) {
  for (const char* text : {"", "fashion-mnist run 3", "caf\xc3\xa9", "\xe6\x97\xa5\xe6\x9c\xac",
                           "\xf0\x9f\x9a\x80 rocket", "a\\eb", "tab-free: 100%"}) {
    EXPECT_TRUE(IsPrintableUtf8(text)) << text;
    EXPECT_EQ(EscapeUnprintable(text), text);
  }
}

TEST(PrintableTest, EveryC0ControlAndDelIsEscapedAndFound) {
  for (int c = 0; c < 0x20; ++c) {
    const std::string text = std::string("a") + static_cast<char>(c) + "b";
    EXPECT_EQ(FindUnprintable(text), 1u) << c;
    const std::string escaped = EscapeUnprintable(text);
    std::string expected;
    switch (c) {
      case '\t': expected = "a\\tb"; break;
      case '\n': expected = "a\\nb"; break;
      case '\r': expected = "a\\rb"; break;
      case 0x1b: expected = "a\\eb"; break;
      default: expected = absl::StrFormat("a\\x%02xb", c);
    }
    EXPECT_EQ(escaped, expected) << c;
    EXPECT_TRUE(IsPrintableUtf8(escaped)) << c;
  }
  EXPECT_EQ(EscapeUnprintable("a\x7f"), "a\\x7f");
}

TEST(PrintableTest, EveryC1ControlIsEscapedAsItsCodePoint) {
  for (int c = 0x80; c <= 0x9f; ++c) {
    const std::string text = {static_cast<char>(0xc2), static_cast<char>(c)};
    EXPECT_EQ(FindUnprintable(text), 0u) << c;
    EXPECT_EQ(EscapeUnprintable(text), absl::StrFormat("\\u%04x", c));
  }
  // U+00A0 (no-break space) is the first printable code point after them.
  EXPECT_TRUE(IsPrintableUtf8("\xc2\xa0"));
}

TEST(PrintableTest, LayoutAndBidirectionalControlsAreEscaped) {
  EXPECT_EQ(EscapeUnprintable("x\xe2\x80\xaey"), "x\\u202ey");  // RIGHT-TO-LEFT OVERRIDE
  EXPECT_EQ(EscapeUnprintable("\xe2\x80\xa8"), "\\u2028");      // LINE SEPARATOR
  EXPECT_EQ(EscapeUnprintable("\xe2\x81\xa6"), "\\u2066");      // LEFT-TO-RIGHT ISOLATE
  EXPECT_EQ(EscapeUnprintable("\xd8\x9c"), "\\u061c");          // ARABIC LETTER MARK
}

TEST(PrintableTest, MalformedUtf8IsEscapedByteByByte) {
  EXPECT_FALSE(IsValidUtf8("ab\xff"));
  EXPECT_EQ(FindInvalidUtf8("\x1b\t\xff"), 2u);
  EXPECT_EQ(FindUnprintable("ab\xff"), 2u);
  EXPECT_EQ(EscapeUnprintable("ab\xff\xfe"), "ab\\xff\\xfe");
  EXPECT_EQ(EscapeUnprintable("\xc3("), "\\xc3(");                // truncated sequence
  EXPECT_EQ(EscapeUnprintable("\xc0\x80"), "\\xc0\\x80");         // overlong NUL
  EXPECT_EQ(EscapeUnprintable("\xed\xa0\x80"), "\\xed\\xa0\\x80");  // surrogate U+D800
  EXPECT_EQ(EscapeUnprintable("\xf4\x90\x80\x80"), "\\xf4\\x90\\x80\\x80");  // > U+10FFFF
  EXPECT_EQ(EscapeUnprintable("\xe2\x82"), "\\xe2\\x82");         // cut at the end
  EXPECT_TRUE(IsValidUtf8("\x1b[2J"));  // Well-formed, though not printable.
}

TEST(PrintableTest, TheForgedRowOfIssue18ComesOutAsOneHarmlessLine) {
  const std::string name = "\x1b[2J\x1b[31mPWNED\x1b[0m\r\nfake-job   running";
  EXPECT_FALSE(IsPrintableUtf8(name));
  const std::string escaped = EscapeUnprintable(name);
  EXPECT_EQ(escaped, "\\e[2J\\e[31mPWNED\\e[0m\\r\\nfake-job   running");
  EXPECT_EQ(EscapeUnprintable(escaped), escaped);
}

}  // namespace
}  // namespace nas
