#include "common/proto_yaml.h"

#include <yaml-cpp/yaml.h>

#include <cctype>
#include <cmath>
#include <cstdint>
#include <limits>
#include <map>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/printable.h"
#include "google/protobuf/descriptor.h"

namespace nas {
namespace {

using google::protobuf::Descriptor;
using google::protobuf::EnumDescriptor;
using google::protobuf::EnumValueDescriptor;
using google::protobuf::FieldDescriptor;
using google::protobuf::Message;
using google::protobuf::Reflection;

constexpr size_t kMaxYamlBytes = 4 << 20;
constexpr int kMaxDepth = 64;
// Problems listed in full; later ones are only counted. Every line quotes
// what it refuses or lists the message's fields, so a 4 MiB document of bad
// lines would otherwise come back as a message of a hundred megabytes.
constexpr size_t kMaxErrors = 100;
// Longest field path or problem kept in one error line: keys and scalars are
// quoted in errors and may be megabytes long.
constexpr size_t kMaxErrorText = 256;
// Work allowed per document: one unit per node visited plus its scalar's
// length. YAML aliases (*a) share a node, so a small document can name one
// long scalar or a large mapping thousands of times; without a bound 96 KB
// made 768 MB of error text and 2 GB of memory
// (fuzz/regressions/job_spec/oom-alias-of-long-scalar.yaml). A document
// without aliases costs about its size.
constexpr size_t kMaxExpandedBytes = 2 * kMaxYamlBytes;

std::string Shortened(const std::string& text) {
  if (text.size() <= kMaxErrorText) return text;
  return absl::StrCat(text.substr(0, kMaxErrorText), "...");
}

class YamlToProto {
 public:
  std::vector<std::string>& errors() { return errors_; }
  // Problems found beyond the first kMaxErrors.
  size_t dropped_errors() const { return dropped_errors_; }

  void ParseMessage(const YAML::Node& node, const std::string& path, Message* message,
                    int depth) {
    if (!Spend(node)) return;
    if (depth > kMaxDepth) {
      Error(path, node, "nested too deeply");
      return;
    }
    if (node.IsNull()) return;  // "field:" with nothing after it: leave the message empty.
    if (!node.IsMap()) {
      Error(path, node, absl::StrCat("expected a mapping of ", message->GetDescriptor()->name(),
                                     " fields, got ", KindOf(node)));
      return;
    }
    const Descriptor* descriptor = message->GetDescriptor();
    // Keys of this mapping seen so far, with where: YAML forbids a key twice
    // in one mapping, and yaml-cpp keeps both, so without this check the last
    // one would silently win (or a list would be appended to twice).
    std::map<std::string, YAML::Mark> seen;
    for (const auto& entry : node) {
      if (!Spend(entry.first)) return;
      std::string key;
      if (!entry.first.IsScalar()) {
        Error(path, entry.first, "keys must be plain names");
        continue;
      }
      key = entry.first.Scalar();
      if (const auto [first, inserted] = seen.emplace(key, entry.first.Mark()); !inserted) {
        DuplicateKey(path, key, first->second, entry.first.Mark());
        continue;
      }
      const std::string field_path = path.empty() ? key : absl::StrCat(path, ".", key);
      const FieldDescriptor* field = descriptor->FindFieldByName(key);
      if (field == nullptr) {
        if (errors_.size() >= kMaxErrors) {  // Only counted: skip listing the fields.
          ++dropped_errors_;
          continue;
        }
        std::vector<std::string> known;
        for (int i = 0; i < descriptor->field_count(); ++i) {
          known.push_back(descriptor->field(i)->name());
        }
        Error(field_path, entry.first,
              absl::StrCat("unknown field (", descriptor->name(),
                           " has: ", absl::StrJoin(known, ", "), ")"));
        continue;
      }
      if (const auto* oneof = field->containing_oneof()) {
        const Reflection* reflection = message->GetReflection();
        if (const FieldDescriptor* set = reflection->GetOneofFieldDescriptor(*message, oneof);
            set != nullptr && set != field) {
          Error(field_path, entry.first,
                absl::StrCat("only one of ", OneofNames(oneof), " may be set; '", set->name(),
                             "' is set already"));
          continue;
        }
      }
      ParseField(entry.second, field_path, message, field, depth);
    }
  }

 private:
  // Charges `node` to the document's work budget; false (after one error)
  // once the budget is spent, and from then on.
  bool Spend(const YAML::Node& node) {
    if (spent_ > kMaxExpandedBytes) return false;
    spent_ += 1 + (node.IsScalar() ? node.Scalar().size() : 0);
    if (spent_ <= kMaxExpandedBytes) return true;
    errors_.push_back(absl::StrCat("(document): expands to more than ", kMaxExpandedBytes >> 20,
                                   " MiB through aliases (*name); parsing stopped"));
    return false;
  }

  static std::string OneofNames(const google::protobuf::OneofDescriptor* oneof) {
    std::vector<std::string> names;
    for (int i = 0; i < oneof->field_count(); ++i) names.push_back(oneof->field(i)->name());
    return absl::StrJoin(names, ", ");
  }

  static std::string KindOf(const YAML::Node& node) {
    if (node.IsMap()) return "a mapping";
    if (node.IsSequence()) return "a list";
    if (node.IsNull()) return "nothing";
    return absl::StrCat("'", node.Scalar(), "'");
  }

  // "budget: duplicate key 'max_trials' at line 7 (first at line 5)"; the
  // columns too when both are on one line (a flow mapping {a: 1, a: 2}).
  void DuplicateKey(const std::string& path, const std::string& key, const YAML::Mark& first,
                    const YAML::Mark& again) {
    if (errors_.size() >= kMaxErrors) {
      ++dropped_errors_;
      return;
    }
    const auto where = [&](const YAML::Mark& mark) {
      return first.line == again.line
                 ? absl::StrCat("line ", mark.line + 1, ", column ", mark.column + 1)
                 : absl::StrCat("line ", mark.line + 1);
    };
    errors_.push_back(absl::StrCat(path.empty() ? "(document)" : Shortened(path),
                                   ": duplicate key '", Shortened(key), "' at ", where(again),
                                   " (first at ", where(first), ")"));
  }

  void Error(const std::string& path, const YAML::Node& node, const std::string& problem) {
    if (errors_.size() >= kMaxErrors) {
      ++dropped_errors_;
      return;
    }
    const YAML::Mark mark = node.Mark();
    std::string where = mark.line >= 0 ? absl::StrCat(" (line ", mark.line + 1, ")") : "";
    errors_.push_back(absl::StrCat(path.empty() ? "(document)" : Shortened(path), ": ",
                                   Shortened(problem), where));
  }

  void ParseField(const YAML::Node& node, const std::string& path, Message* message,
                  const FieldDescriptor* field, int depth) {
    const Reflection* reflection = message->GetReflection();
    if (field->is_repeated()) {
      if (node.IsNull()) return;
      if (!node.IsSequence()) {
        Error(path, node, absl::StrCat("expected a list, got ", KindOf(node)));
        return;
      }
      int index = 0;
      for (const auto& item : node) {
        if (!Spend(item)) return;
        const std::string item_path = absl::StrCat(path, "[", index++, "]");
        if (field->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE) {
          ParseMessage(item, item_path, reflection->AddMessage(message, field), depth + 1);
        } else {
          SetScalar(item, item_path, message, field, /*repeated=*/true);
        }
      }
      return;
    }
    if (field->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE) {
      ParseMessage(node, path, reflection->MutableMessage(message, field), depth + 1);
      return;
    }
    SetScalar(node, path, message, field, /*repeated=*/false);
  }

  void SetScalar(const YAML::Node& node, const std::string& path, Message* message,
                 const FieldDescriptor* field, bool repeated) {
    const Reflection* reflection = message->GetReflection();
    if (!node.IsScalar()) {
      Error(path, node, absl::StrCat("expected a single value, got ", KindOf(node)));
      return;
    }
    if (!Spend(node)) return;
    const std::string text = node.Scalar();
    switch (field->cpp_type()) {
      case FieldDescriptor::CPPTYPE_INT32:
      case FieldDescriptor::CPPTYPE_INT64: {
        int64_t value = 0;
        if (!ParseInteger(text, &value)) {
          Error(path, node, absl::StrCat("'", text, "' is not an integer"));
          return;
        }
        if (field->cpp_type() == FieldDescriptor::CPPTYPE_INT32) {
          if (value < std::numeric_limits<int32_t>::min() ||
              value > std::numeric_limits<int32_t>::max()) {
            Error(path, node, absl::StrCat(text, " does not fit in 32 bits"));
            return;
          }
          repeated ? reflection->AddInt32(message, field, static_cast<int32_t>(value))
                   : reflection->SetInt32(message, field, static_cast<int32_t>(value));
        } else {
          repeated ? reflection->AddInt64(message, field, value)
                   : reflection->SetInt64(message, field, value);
        }
        return;
      }
      case FieldDescriptor::CPPTYPE_UINT32:
      case FieldDescriptor::CPPTYPE_UINT64: {
        uint64_t value = 0;
        if (!absl::SimpleAtoi(text, &value)) {
          Error(path, node, absl::StrCat("'", text, "' is not a non-negative integer"));
          return;
        }
        if (field->cpp_type() == FieldDescriptor::CPPTYPE_UINT32) {
          if (value > std::numeric_limits<uint32_t>::max()) {
            Error(path, node, absl::StrCat(text, " does not fit in 32 bits"));
            return;
          }
          repeated ? reflection->AddUInt32(message, field, static_cast<uint32_t>(value))
                   : reflection->SetUInt32(message, field, static_cast<uint32_t>(value));
        } else {
          repeated ? reflection->AddUInt64(message, field, value)
                   : reflection->SetUInt64(message, field, value);
        }
        return;
      }
      case FieldDescriptor::CPPTYPE_DOUBLE:
      case FieldDescriptor::CPPTYPE_FLOAT: {
        double value = 0;
        if (!ParseReal(text, &value)) {
          Error(path, node, absl::StrCat("'", text, "' is not a finite number"));
          return;
        }
        if (field->cpp_type() == FieldDescriptor::CPPTYPE_DOUBLE) {
          repeated ? reflection->AddDouble(message, field, value)
                   : reflection->SetDouble(message, field, value);
        } else {
          repeated ? reflection->AddFloat(message, field, static_cast<float>(value))
                   : reflection->SetFloat(message, field, static_cast<float>(value));
        }
        return;
      }
      case FieldDescriptor::CPPTYPE_BOOL: {
        const std::string lower = absl::AsciiStrToLower(text);
        bool value;
        if (lower == "true" || lower == "yes" || lower == "on") {
          value = true;
        } else if (lower == "false" || lower == "no" || lower == "off") {
          value = false;
        } else {
          Error(path, node, absl::StrCat("'", text, "' is not true or false"));
          return;
        }
        repeated ? reflection->AddBool(message, field, value)
                 : reflection->SetBool(message, field, value);
        return;
      }
      case FieldDescriptor::CPPTYPE_STRING:
        // A proto3 string must be UTF-8: the message would not serialize
        // (nasctl printed an empty error), so say which field and byte.
        if (const size_t at = FindInvalidUtf8(text);
            field->type() == FieldDescriptor::TYPE_STRING && at != absl::string_view::npos) {
          Error(path, node,
                absl::StrCat("not valid UTF-8 (byte 0x",
                             absl::Hex(static_cast<uint8_t>(text[at]), absl::kZeroPad2),
                             " at offset ", at, "): \"", EscapeUnprintable(text), "\""));
          return;
        }
        repeated ? reflection->AddString(message, field, text)
                 : reflection->SetString(message, field, text);
        return;
      case FieldDescriptor::CPPTYPE_ENUM: {
        const EnumValueDescriptor* value = FindEnumValue(field->enum_type(), text);
        if (value == nullptr) {
          std::vector<std::string> names;
          for (int i = 0; i < field->enum_type()->value_count(); ++i) {
            if (field->enum_type()->value(i)->number() != 0) {
              names.push_back(absl::AsciiStrToLower(field->enum_type()->value(i)->name()));
            }
          }
          Error(path, node, absl::StrCat("'", text, "' is not one of: ",
                                         absl::StrJoin(names, ", ")));
          return;
        }
        repeated ? reflection->AddEnum(message, field, value)
                 : reflection->SetEnum(message, field, value);
        return;
      }
      case FieldDescriptor::CPPTYPE_MESSAGE:
        return;  // Handled by the caller.
    }
  }

  static bool ParseInteger(const std::string& text, int64_t* value) {
    if (absl::SimpleAtoi(text, value)) return true;
    // Allow "1e3"-style integers and "1_000": both are common in configs.
    std::string cleaned;
    for (char c : text) {
      if (c != '_') cleaned.push_back(c);
    }
    if (absl::SimpleAtoi(cleaned, value)) return true;
    double real = 0;
    if (absl::SimpleAtod(cleaned, &real) && std::isfinite(real) && real == std::floor(real) &&
        std::fabs(real) < 9.0e18) {
      *value = static_cast<int64_t>(real);
      return true;
    }
    return false;
  }

  static bool ParseReal(const std::string& text, double* value) {
    std::string cleaned;
    for (char c : text) {
      if (c != '_') cleaned.push_back(c);
    }
    return absl::SimpleAtod(cleaned, value) && std::isfinite(*value);
  }

  static const EnumValueDescriptor* FindEnumValue(const EnumDescriptor* type,
                                                  const std::string& text) {
    const std::string upper = absl::AsciiStrToUpper(text);
    for (int i = 0; i < type->value_count(); ++i) {
      const EnumValueDescriptor* value = type->value(i);
      if (value->name() == upper) return value;
      // Accept the name without its type prefix: "reward" for ORDER_REWARD,
      // "succeeded" for TRIAL_STATE_SUCCEEDED.
      if (value->number() != 0 && absl::EndsWith(value->name(), "_" + upper)) return value;
    }
    return nullptr;
  }

  std::vector<std::string> errors_;
  size_t dropped_errors_ = 0;
  size_t spent_ = 0;
};

void WriteYaml(const Message& message, int indent, std::ostringstream& out);

std::string QuoteIfNeeded(const std::string& text) {
  bool plain = !text.empty();
  for (char c : text) {
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.' || c == '-' ||
          c == '/' || c == '|' || c == '~' || c == '+')) {
      plain = false;
    }
  }
  // Strings that would read back as numbers, booleans or null need quotes too.
  double unused_number;
  const std::string lower = absl::AsciiStrToLower(text);
  if (plain && !absl::SimpleAtod(text, &unused_number) && lower != "true" && lower != "false" &&
      lower != "yes" && lower != "no" && lower != "null" && lower != "on" && lower != "off" &&
      text[0] != '-' && text[0] != '|') {
    return text;
  }
  // A double-quoted scalar: quotes and backslashes escaped, and every
  // unprintable character in an escape YAML reads back (\e, \n, \x1f,
  // \u202e, ...), so `-o yaml` output never carries a raw control byte.
  std::string quoted = "\"";
  for (char c : text) {
    if (c == '"' || c == '\\') quoted.push_back('\\');
    quoted.push_back(c);
  }
  quoted = EscapeUnprintable(quoted);
  quoted.push_back('"');
  return quoted;
}

std::string ScalarText(const Message& message, const FieldDescriptor* field, int index) {
  const Reflection* r = message.GetReflection();
  const bool rep = field->is_repeated();
  switch (field->cpp_type()) {
    case FieldDescriptor::CPPTYPE_INT32:
      return absl::StrCat(rep ? r->GetRepeatedInt32(message, field, index)
                              : r->GetInt32(message, field));
    case FieldDescriptor::CPPTYPE_INT64:
      return absl::StrCat(rep ? r->GetRepeatedInt64(message, field, index)
                              : r->GetInt64(message, field));
    case FieldDescriptor::CPPTYPE_UINT32:
      return absl::StrCat(rep ? r->GetRepeatedUInt32(message, field, index)
                              : r->GetUInt32(message, field));
    case FieldDescriptor::CPPTYPE_UINT64:
      return absl::StrCat(rep ? r->GetRepeatedUInt64(message, field, index)
                              : r->GetUInt64(message, field));
    case FieldDescriptor::CPPTYPE_DOUBLE:
      return absl::StrCat(rep ? r->GetRepeatedDouble(message, field, index)
                              : r->GetDouble(message, field));
    case FieldDescriptor::CPPTYPE_FLOAT:
      return absl::StrCat(rep ? r->GetRepeatedFloat(message, field, index)
                              : r->GetFloat(message, field));
    case FieldDescriptor::CPPTYPE_BOOL:
      return (rep ? r->GetRepeatedBool(message, field, index) : r->GetBool(message, field))
                 ? "true"
                 : "false";
    case FieldDescriptor::CPPTYPE_STRING:
      return QuoteIfNeeded(rep ? r->GetRepeatedString(message, field, index)
                               : r->GetString(message, field));
    case FieldDescriptor::CPPTYPE_ENUM:
      return absl::AsciiStrToLower(
          (rep ? r->GetRepeatedEnum(message, field, index) : r->GetEnum(message, field))->name());
    case FieldDescriptor::CPPTYPE_MESSAGE:
      return "";
  }
  return "";
}

void WriteYaml(const Message& message, int indent, std::ostringstream& out) {
  const Reflection* reflection = message.GetReflection();
  std::vector<const FieldDescriptor*> fields;
  reflection->ListFields(message, &fields);
  const std::string pad(indent, ' ');
  for (const FieldDescriptor* field : fields) {
    if (field->is_repeated()) {
      const int size = reflection->FieldSize(message, field);
      if (field->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE) {
        out << pad << field->name() << ":\n";
        for (int i = 0; i < size; ++i) {
          const Message& item = reflection->GetRepeatedMessage(message, field, i);
          std::ostringstream inner;
          WriteYaml(item, indent + 4, inner);
          std::string text = inner.str();
          if (text.empty()) {
            out << pad << "  - {}\n";
            continue;
          }
          // The first line of the item goes after "- ".
          out << pad << "  - " << text.substr(indent + 4);
        }
      } else {
        std::vector<std::string> items;
        for (int i = 0; i < size; ++i) items.push_back(ScalarText(message, field, i));
        out << pad << field->name() << ": [" << absl::StrJoin(items, ", ") << "]\n";
      }
    } else if (field->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE) {
      const Message& child = reflection->GetMessage(message, field);
      std::ostringstream inner;
      WriteYaml(child, indent + 2, inner);
      if (inner.str().empty()) {
        out << pad << field->name() << ": {}\n";
      } else {
        out << pad << field->name() << ":\n" << inner.str();
      }
    } else {
      out << pad << field->name() << ": " << ScalarText(message, field, 0) << "\n";
    }
  }
}

}  // namespace

absl::Status ParseYamlToMessage(absl::string_view yaml, Message* message) {
  message->Clear();
  if (yaml.size() > kMaxYamlBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("document is ", yaml.size(), " bytes; the limit is ", kMaxYamlBytes));
  }
  YAML::Node root;
  try {
    root = YAML::Load(std::string(yaml));
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("not valid YAML: ", e.what()));
  } catch (const std::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("not valid YAML: ", e.what()));
  }
  YamlToProto parser;
  try {
    parser.ParseMessage(root, "", message, 0);
  } catch (const YAML::Exception& e) {
    parser.errors().push_back(absl::StrCat("not valid YAML: ", e.what()));
  }
  if (parser.dropped_errors() > 0) {
    parser.errors().push_back(absl::StrCat("... and ", parser.dropped_errors(), " more problems"));
  }
  if (!parser.errors().empty()) {
    return absl::InvalidArgumentError(absl::StrJoin(parser.errors(), "\n"));
  }
  return absl::OkStatus();
}

std::string MessageToYaml(const Message& message) {
  std::ostringstream out;
  WriteYaml(message, 0, out);
  return out.str();
}

}  // namespace nas
