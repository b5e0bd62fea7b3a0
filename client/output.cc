#include "client/output.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <functional>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/printable.h"
#include "search_space/child_size.h"
#include "google/protobuf/descriptor.h"

namespace nas::client {
namespace {

using google::protobuf::Descriptor;
using google::protobuf::EnumValueDescriptor;
using google::protobuf::FieldDescriptor;
using google::protobuf::Message;
using google::protobuf::Reflection;

// ---------------------------------------------------------------------------
// JSON and YAML: a message becomes a tree of values (one walk over its
// fields), which two writers print. Enums get their one spelling here.

struct Value {
  enum class Kind { kString, kInteger, kFloat, kBool, kList, kMap };
  Kind kind = Kind::kString;
  std::string text;                                   // kString: the string; kInteger: its digits.
  double number = 0;                                  // kFloat.
  bool flag = false;                                  // kBool.
  std::vector<Value> items;                           // kList.
  std::vector<std::pair<std::string, Value>> fields;  // kMap, in field order.
};

// "JobState" -> "JOB_STATE_".
std::string EnumPrefix(const std::string& type_name) {
  std::string prefix;
  for (size_t i = 0; i < type_name.size(); ++i) {
    const char c = type_name[i];
    if (absl::ascii_isupper(c) && i > 0) prefix.push_back('_');
    prefix.push_back(absl::ascii_toupper(c));
  }
  return prefix + "_";
}

// The one spelling of an enum value: its name without the type's prefix, in
// lower case. common/proto_yaml reads it back.
std::string EnumSpelling(const EnumValueDescriptor* value) {
  absl::string_view name = value->name();
  absl::ConsumePrefix(&name, EnumPrefix(value->type()->name()));
  return absl::AsciiStrToLower(name);
}

// The shortest text that reads back as exactly `value`.
std::string ShortestDouble(double value, int max_digits) {
  for (int digits = max_digits - 2; digits < max_digits; ++digits) {
    std::string text = absl::StrFormat("%.*g", digits, value);
    if (std::strtod(text.c_str(), nullptr) == value) return text;
  }
  return absl::StrFormat("%.*g", max_digits, value);
}

Value MessageValue(const Message& message);

Value FloatValue(double number) {
  Value v;
  v.kind = Value::Kind::kFloat;
  v.number = number;
  return v;
}

Value StringValue(std::string text) {
  Value v;
  v.text = std::move(text);
  return v;
}

Value IntegerValue(std::string digits) {
  Value v;
  v.kind = Value::Kind::kInteger;
  v.text = std::move(digits);
  return v;
}

// One value of `field` (element `index` of a repeated field, -1 otherwise).
Value FieldValue(const Message& message, const FieldDescriptor* field, int index) {
  const Reflection* r = message.GetReflection();
  const bool rep = index >= 0;
  switch (field->cpp_type()) {
    case FieldDescriptor::CPPTYPE_INT32:
      return IntegerValue(absl::StrCat(rep ? r->GetRepeatedInt32(message, field, index)
                                           : r->GetInt32(message, field)));
    case FieldDescriptor::CPPTYPE_INT64:
      return IntegerValue(absl::StrCat(rep ? r->GetRepeatedInt64(message, field, index)
                                           : r->GetInt64(message, field)));
    case FieldDescriptor::CPPTYPE_UINT32:
      return IntegerValue(absl::StrCat(rep ? r->GetRepeatedUInt32(message, field, index)
                                           : r->GetUInt32(message, field)));
    case FieldDescriptor::CPPTYPE_UINT64:
      return IntegerValue(absl::StrCat(rep ? r->GetRepeatedUInt64(message, field, index)
                                           : r->GetUInt64(message, field)));
    case FieldDescriptor::CPPTYPE_DOUBLE:
      return FloatValue(rep ? r->GetRepeatedDouble(message, field, index)
                            : r->GetDouble(message, field));
    case FieldDescriptor::CPPTYPE_FLOAT: {
      // Printed with float precision: 0.1f as 0.1, not 0.100000001490116.
      const float f =
          rep ? r->GetRepeatedFloat(message, field, index) : r->GetFloat(message, field);
      double d = f;
      if (std::isfinite(f)) d = std::strtod(ShortestDouble(f, 9).c_str(), nullptr);
      return FloatValue(d);
    }
    case FieldDescriptor::CPPTYPE_BOOL: {
      Value v;
      v.kind = Value::Kind::kBool;
      v.flag = rep ? r->GetRepeatedBool(message, field, index) : r->GetBool(message, field);
      return v;
    }
    case FieldDescriptor::CPPTYPE_ENUM: {
      const int number =
          rep ? r->GetRepeatedEnumValue(message, field, index) : r->GetEnumValue(message, field);
      const EnumValueDescriptor* value = field->enum_type()->FindValueByNumber(number);
      return value != nullptr ? StringValue(EnumSpelling(value))
                              : IntegerValue(absl::StrCat(number));
    }
    case FieldDescriptor::CPPTYPE_STRING: {
      std::string text =
          rep ? r->GetRepeatedString(message, field, index) : r->GetString(message, field);
      if (field->type() == FieldDescriptor::TYPE_BYTES) text = absl::Base64Escape(text);
      return StringValue(std::move(text));
    }
    case FieldDescriptor::CPPTYPE_MESSAGE:
      return MessageValue(rep ? r->GetRepeatedMessage(message, field, index)
                              : r->GetMessage(message, field));
  }
  return Value();
}

// Every field, as protobuf's JSON printer with always_print_primitive_fields:
// scalars and lists always, messages and fields with presence when set.
Value MessageValue(const Message& message) {
  Value out;
  out.kind = Value::Kind::kMap;
  const Descriptor* descriptor = message.GetDescriptor();
  const Reflection* r = message.GetReflection();
  for (int i = 0; i < descriptor->field_count(); ++i) {
    const FieldDescriptor* field = descriptor->field(i);
    Value value;
    if (field->is_map()) {
      value.kind = Value::Kind::kMap;
      const FieldDescriptor* key = field->message_type()->map_key();
      const FieldDescriptor* val = field->message_type()->map_value();
      for (int j = 0; j < r->FieldSize(message, field); ++j) {
        const Message& entry = r->GetRepeatedMessage(message, field, j);
        Value k = FieldValue(entry, key, -1);
        value.fields.emplace_back(
            k.kind == Value::Kind::kBool ? (k.flag ? "true" : "false") : k.text,
            FieldValue(entry, val, -1));
      }
      std::sort(value.fields.begin(), value.fields.end(),
                [](const auto& a, const auto& b) { return a.first < b.first; });
    } else if (field->is_repeated()) {
      value.kind = Value::Kind::kList;
      for (int j = 0; j < r->FieldSize(message, field); ++j) {
        value.items.push_back(FieldValue(message, field, j));
      }
    } else {
      if (field->has_presence() && !r->HasField(message, field)) continue;
      value = FieldValue(message, field, -1);
    }
    out.fields.emplace_back(field->name(), std::move(value));
  }
  return out;
}

// A JSON string literal. Printable UTF-8 stays as it is; what
// EscapeForTerminal would escape becomes \uNNNN (a malformed byte U+FFFD:
// JSON holds text, not bytes).
void AppendJsonString(absl::string_view text, std::string* out) {
  out->push_back('"');
  while (!text.empty()) {
    const size_t bad = FindUnprintable(text);
    for (char c : text.substr(0, bad)) {
      if (c == '"' || c == '\\') out->push_back('\\');
      out->push_back(c);
    }
    if (bad == absl::string_view::npos) break;
    text.remove_prefix(bad);
    if (FindInvalidUtf8(text) == 0) {
      absl::StrAppend(out, "\\ufffd");
      text.remove_prefix(1);
      continue;
    }
    const unsigned char lead = static_cast<unsigned char>(text[0]);
    const int length = lead < 0x80 ? 1 : lead < 0xe0 ? 2 : lead < 0xf0 ? 3 : 4;
    uint32_t code = length == 1 ? lead : lead & (0x7f >> length);
    for (int i = 1; i < length; ++i) code = (code << 6) | (text[i] & 0x3f);
    absl::StrAppend(out, absl::StrFormat("\\u%04x", code));  // Every unprintable is in the BMP.
    text.remove_prefix(length);
  }
  out->push_back('"');
}

// A list of numbers, strings or booleans: printed on one line.
bool IsScalarList(const Value& value) {
  return std::all_of(value.items.begin(), value.items.end(), [](const Value& item) {
    return item.kind != Value::Kind::kList && item.kind != Value::Kind::kMap;
  });
}

void AppendJson(const Value& value, int indent, std::string* out) {
  const std::string pad(indent + 2, ' ');
  switch (value.kind) {
    case Value::Kind::kString:
      return AppendJsonString(value.text, out);
    case Value::Kind::kInteger:
      return absl::StrAppend(out, value.text);
    case Value::Kind::kBool:
      return absl::StrAppend(out, value.flag ? "true" : "false");
    case Value::Kind::kFloat:
      if (std::isnan(value.number)) return absl::StrAppend(out, "\"NaN\"");
      if (std::isinf(value.number)) {
        return absl::StrAppend(out, value.number > 0 ? "\"Infinity\"" : "\"-Infinity\"");
      }
      return absl::StrAppend(out, ShortestDouble(value.number, 17));
    case Value::Kind::kList:
      if (value.items.empty()) return absl::StrAppend(out, "[]");
      if (IsScalarList(value)) {
        absl::StrAppend(out, "[");
        for (size_t i = 0; i < value.items.size(); ++i) {
          if (i > 0) absl::StrAppend(out, ", ");
          AppendJson(value.items[i], indent, out);
        }
        return absl::StrAppend(out, "]");
      }
      absl::StrAppend(out, "[\n");
      for (size_t i = 0; i < value.items.size(); ++i) {
        absl::StrAppend(out, pad);
        AppendJson(value.items[i], indent + 2, out);
        absl::StrAppend(out, i + 1 < value.items.size() ? ",\n" : "\n");
      }
      return absl::StrAppend(out, std::string(indent, ' '), "]");
    case Value::Kind::kMap:
      if (value.fields.empty()) return absl::StrAppend(out, "{}");
      absl::StrAppend(out, "{\n");
      for (size_t i = 0; i < value.fields.size(); ++i) {
        absl::StrAppend(out, pad);
        AppendJsonString(value.fields[i].first, out);
        absl::StrAppend(out, ": ");
        AppendJson(value.fields[i].second, indent + 2, out);
        absl::StrAppend(out, i + 1 < value.fields.size() ? ",\n" : "\n");
      }
      return absl::StrAppend(out, std::string(indent, ' '), "}");
  }
}

// A string YAML reads back as that string when written plain: starts with a
// letter, holds only letters, digits and "-_./", and is none of YAML 1.1's
// booleans or null. Anything else is double-quoted.
bool IsPlainYamlString(absl::string_view text) {
  if (text.empty() || !absl::ascii_isalpha(text[0])) return false;
  for (char c : text) {
    if (!absl::ascii_isalnum(c) && c != '-' && c != '_' && c != '.' && c != '/') return false;
  }
  const std::string lower = absl::AsciiStrToLower(text);
  for (const char* word : {"y", "n", "yes", "no", "true", "false", "on", "off", "null"}) {
    if (lower == word) return false;
  }
  return true;
}

void EmitYamlString(const std::string& text, YAML::Emitter& out) {
  if (IsPlainYamlString(text)) {
    out << text;
  } else if (IsPrintableUtf8(text)) {
    out << YAML::DoubleQuoted << text;
  } else {
    // yaml-cpp escapes C0 controls by itself; with EscapeNonAscii also DEL,
    // C1 and layout controls (and, in this string only, other non-ASCII).
    out << YAML::EscapeNonAscii << YAML::DoubleQuoted << text << YAML::EmitNonAscii;
  }
}

void EmitYaml(const Value& value, YAML::Emitter& out) {
  switch (value.kind) {
    case Value::Kind::kString:
      return EmitYamlString(value.text, out);
    case Value::Kind::kInteger:
      out << value.text;
      return;
    case Value::Kind::kBool:
      out << (value.flag ? "true" : "false");
      return;
    case Value::Kind::kFloat:
      if (std::isnan(value.number)) {
        out << ".nan";
      } else if (std::isinf(value.number)) {
        out << (value.number > 0 ? ".inf" : "-.inf");
      } else {
        out << ShortestDouble(value.number, 17);
      }
      return;
    case Value::Kind::kList:
      if (value.items.empty() || IsScalarList(value)) out << YAML::Flow;
      out << YAML::BeginSeq;
      for (const Value& item : value.items) EmitYaml(item, out);
      out << YAML::EndSeq;
      return;
    case Value::Kind::kMap:
      if (value.fields.empty()) {
        out << YAML::Flow << YAML::BeginMap << YAML::EndMap;
        return;
      }
      out << YAML::BeginMap;
      for (const auto& [key, field] : value.fields) {
        out << YAML::Key;
        EmitYamlString(key, out);
        out << YAML::Value;
        EmitYaml(field, out);
      }
      out << YAML::EndMap;
      return;
  }
}

std::string Yaml(const Value& value) {
  YAML::Emitter out;
  EmitYaml(value, out);
  return absl::StrCat(out.c_str(), "\n");
}

std::string Json(const Value& value) {
  std::string out;
  AppendJson(value, 0, &out);
  return out + "\n";
}

template <typename T>
Value ListValue(const std::vector<T>& items) {
  Value list;
  list.kind = Value::Kind::kList;
  for (const T& item : items) list.items.push_back(MessageValue(item));
  return list;
}

// ---------------------------------------------------------------------------
// Tables and CSV: one list of columns per kind of item.

std::string CsvField(const std::string& raw) {
  const std::string text = EscapeForTerminal(raw);  // No newline or CR is left to quote.
  if (text.find_first_of(",\"") == std::string::npos) return text;
  std::string quoted = "\"";
  for (char c : text) {
    if (c == '"') quoted.push_back('"');
    quoted.push_back(c);
  }
  quoted.push_back('"');
  return quoted;
}

// Cells are escaped here, before their widths are measured.
std::string Table(const std::vector<std::string>& header,
                  std::vector<std::vector<std::string>> rows, bool with_header = true) {
  for (auto& row : rows) {
    for (std::string& cell : row) cell = EscapeForTerminal(cell);
  }
  std::vector<size_t> widths(header.size(), 0);
  for (size_t i = 0; i < header.size() && with_header; ++i) widths[i] = header[i].size();
  for (const auto& row : rows) {
    for (size_t i = 0; i < row.size() && i < widths.size(); ++i) {
      widths[i] = std::max(widths[i], row[i].size());
    }
  }
  auto line = [&](const std::vector<std::string>& cells) {
    std::string out;
    for (size_t i = 0; i < cells.size(); ++i) {
      if (i + 1 == cells.size()) {
        absl::StrAppend(&out, cells[i]);
      } else {
        absl::StrAppend(&out, cells[i], std::string(widths[i] - cells[i].size() + 2, ' '));
      }
    }
    // No trailing blanks when the last cells are empty.
    return std::string(absl::StripTrailingAsciiWhitespace(out)) + "\n";
  };
  std::string out = with_header ? line(header) : "";
  for (const auto& row : rows) out += line(row);
  return out;
}

std::string Reward(double reward) { return absl::StrFormat("%.4f", reward); }

// A language model's curve carries perplexities where a classifier's carries
// accuracies.
std::vector<std::string> CurveRow(const v1::EpochResult& e, bool language_model) {
  if (language_model) {
    return {absl::StrCat(e.epoch()), absl::StrFormat("%.4f", e.train_loss()),
            FormatPerplexity(e.train_perplexity()), FormatPerplexity(e.validation_perplexity()),
            absl::StrFormat("%.2f", e.seconds())};
  }
  return {absl::StrCat(e.epoch()), absl::StrFormat("%.4f", e.train_loss()),
          absl::StrFormat("%.4f", e.train_accuracy()),
          absl::StrFormat("%.4f", e.validation_accuracy()), absl::StrFormat("%.2f", e.seconds())};
}

std::string Time(int64_t unix_ms) {
  if (unix_ms == 0) return "-";
  return absl::FormatTime("%Y-%m-%d %H:%M:%S", absl::FromUnixMillis(unix_ms),
                          absl::LocalTimeZone());
}

// Seconds from `start_ms` to `end_ms`; negative (unknown) unless both are set.
double Seconds(int64_t start_ms, int64_t end_ms) {
  if (start_ms == 0 || end_ms == 0) return -1;
  return static_cast<double>(end_ms - start_ms) / 1000.0;
}

std::string SecondsCell(double seconds) {
  return seconds < 0 ? "" : absl::StrFormat("%.3f", seconds);
}

double JobDuration(const v1::Job& job) {
  return Seconds(
      job.start_time_unix_ms() != 0 ? job.start_time_unix_ms() : job.create_time_unix_ms(),
      job.end_time_unix_ms());
}

double TrialDuration(const v1::Trial& t) {
  return Seconds(t.create_time_unix_ms(), t.end_time_unix_ms());
}

// A column of a list: its CSV and --sort-by name, its table header, its cell
// and, for numeric columns, the number it sorts by. `csv` overrides the cell
// in CSV where it differs (durations in seconds there).
template <typename T>
struct Column {
  const char* name;
  const char* header;
  std::function<std::string(const T&)> cell;
  std::function<double(const T&)> number = nullptr;
  std::function<std::string(const T&)> csv = nullptr;
};

const std::vector<Column<v1::Job>>& JobColumns() {
  using J = v1::Job;
  static const auto* columns = new std::vector<Column<J>>{
      {"job_id", "JOB", [](const J& j) { return j.job_id(); }},
      {"name", "NAME", [](const J& j) { return j.spec().name(); }},
      {"state", "STATE", [](const J& j) { return ShortState(j.state()); }},
      {"strategy", "STRATEGY", [](const J& j) { return j.spec().strategy().name(); }},
      {"trials_succeeded", "OK", [](const J& j) { return absl::StrCat(j.trials_succeeded()); },
       [](const J& j) { return static_cast<double>(j.trials_succeeded()); }},
      {"trials_failed", "FAILED", [](const J& j) { return absl::StrCat(j.trials_failed()); },
       [](const J& j) { return static_cast<double>(j.trials_failed()); }},
      {"trials_running", "RUNNING", [](const J& j) { return absl::StrCat(j.trials_running()); },
       [](const J& j) { return static_cast<double>(j.trials_running()); }},
      {"trials_queued", "QUEUED", [](const J& j) { return absl::StrCat(j.trials_queued()); },
       [](const J& j) { return static_cast<double>(j.trials_queued()); }},
      {"best_reward", "BEST", [](const J& j) { return Reward(j.best_reward()); },
       [](const J& j) { return j.best_reward(); }},
      {"best_trial_id", "BEST TRIAL", [](const J& j) { return j.best_trial_id(); }},
      {"created", "CREATED", [](const J& j) { return Time(j.create_time_unix_ms()); },
       [](const J& j) { return static_cast<double>(j.create_time_unix_ms()); }},
      {"ended", "ENDED", [](const J& j) { return Time(j.end_time_unix_ms()); },
       [](const J& j) { return static_cast<double>(j.end_time_unix_ms()); }},
      {"duration_seconds", "DURATION", [](const J& j) { return FormatDuration(JobDuration(j)); },
       [](const J& j) { return JobDuration(j); },
       [](const J& j) { return SecondsCell(JobDuration(j)); }},
      {"samples", "SAMPLES", [](const J& j) { return absl::StrCat(j.samples()); },
       [](const J& j) { return static_cast<double>(j.samples()); }},
      {"cache_hits", "CACHE HITS", [](const J& j) { return absl::StrCat(j.cache_hits()); },
       [](const J& j) { return static_cast<double>(j.cache_hits()); }},
      {"connected_workers", "WORKERS",
       [](const J& j) { return absl::StrCat(j.connected_workers()); },
       [](const J& j) { return static_cast<double>(j.connected_workers()); }},
      {"error", "ERROR", [](const J& j) { return j.error(); }},
  };
  return *columns;
}

// What the table and the wide table show, in order, by column name.
const std::vector<std::string> kJobTable = {
    "job_id",           "name",          "state",          "strategy",
    "trials_succeeded", "trials_failed", "trials_running", "trials_queued",
    "best_reward",      "best_trial_id", "created",        "duration_seconds"};
const std::vector<std::string> kJobWide = {"job_id",
                                           "name",
                                           "state",
                                           "strategy",
                                           "trials_succeeded",
                                           "trials_failed",
                                           "trials_running",
                                           "trials_queued",
                                           "samples",
                                           "cache_hits",
                                           "connected_workers",
                                           "best_reward",
                                           "best_trial_id",
                                           "created",
                                           "ended",
                                           "duration_seconds",
                                           "error"};

// A failed trial's table cell shows its error instead of its architecture.
std::string ArchitectureOrError(const v1::Trial& t) {
  return t.state() == v1::TRIAL_STATE_FAILED ? EscapeForTerminal(t.error()).substr(0, 60)
                                             : t.architecture().canonical();
}

const std::vector<Column<v1::Trial>>& TrialColumns() {
  using T = v1::Trial;
  static const auto* columns = new std::vector<Column<T>>{
      {"trial_id", "TRIAL", [](const T& t) { return t.trial_id(); }},
      {"state", "STATE", [](const T& t) { return ShortState(t.state()); }},
      {"reward", "REWARD", [](const T& t) { return Reward(t.metrics().reward()); },
       [](const T& t) { return t.metrics().reward(); }},
      {"accuracy", "ACCURACY",
       [](const T& t) { return absl::StrFormat("%.4f", t.metrics().accuracy()); },
       [](const T& t) { return t.metrics().accuracy(); }},
      {"parameters", "PARAMS", [](const T& t) { return absl::StrCat(t.metrics().parameters()); },
       [](const T& t) { return static_cast<double>(t.metrics().parameters()); }},
      {"flops", "FLOPS", [](const T& t) { return absl::StrCat(t.metrics().flops()); },
       [](const T& t) { return static_cast<double>(t.metrics().flops()); }},
      {"latency_seconds", "LATENCY S",
       [](const T& t) { return absl::StrFormat("%.6f", t.metrics().latency_seconds()); },
       [](const T& t) { return t.metrics().latency_seconds(); }},
      {"train_seconds", "TRAIN S",
       [](const T& t) { return absl::StrFormat("%.2f", t.metrics().train_seconds()); },
       [](const T& t) { return t.metrics().train_seconds(); }},
      {"attempts", "ATTEMPTS", [](const T& t) { return absl::StrCat(t.attempts()); },
       [](const T& t) { return static_cast<double>(t.attempts()); }},
      {"worker_id", "WORKER", [](const T& t) { return t.worker_id(); }},
      {"canonical", "ARCHITECTURE", ArchitectureOrError, nullptr,
       [](const T& t) { return t.architecture().canonical(); }},
      {"error", "ERROR", [](const T& t) { return t.error(); }},
      {"cached_from", "CACHED FROM", [](const T& t) { return CacheSource(t); }},
      {"sequence", "SEQ",
       [](const T& t) { return t.sequence() > 0 ? absl::StrCat(t.sequence()) : "-"; },
       [](const T& t) { return static_cast<double>(t.sequence()); },
       [](const T& t) { return t.sequence() > 0 ? absl::StrCat(t.sequence()) : ""; }},
      {"created", "CREATED", [](const T& t) { return Time(t.create_time_unix_ms()); },
       [](const T& t) { return static_cast<double>(t.create_time_unix_ms()); }},
      {"ended", "ENDED", [](const T& t) { return Time(t.end_time_unix_ms()); },
       [](const T& t) { return static_cast<double>(t.end_time_unix_ms()); }},
      {"duration_seconds", "DURATION", [](const T& t) { return FormatDuration(TrialDuration(t)); },
       [](const T& t) { return TrialDuration(t); },
       [](const T& t) { return SecondsCell(TrialDuration(t)); }},
      // One-shot jobs' final trials (trained from scratch; docs/one_shot.md).
      {"final", "FINAL",
       [](const T& t) { return std::string(t.final_training() ? "final" : "-"); }, nullptr,
       [](const T& t) { return std::string(t.final_training() ? "true" : "false"); }},
      {"one_shot_score", "ONE-SHOT",
       [](const T& t) { return t.final_training() ? Reward(t.one_shot_score()) : std::string("-"); },
       [](const T& t) { return t.one_shot_score(); },
       [](const T& t) { return t.final_training() ? Reward(t.one_shot_score()) : std::string(""); }},
      // Last, so that the columns before it keep their places in CSV.
      // CSV: empty where not measured (a classifier, a trial not ended).
      {"perplexity", "PERPLEXITY",
       [](const T& t) { return FormatPerplexity(t.metrics().perplexity()); },
       [](const T& t) { return t.metrics().perplexity(); },
       [](const T& t) {
         const std::string cell = FormatPerplexity(t.metrics().perplexity());
         return cell == "-" ? "" : cell;
       }},
  };
  return *columns;
}

const std::vector<std::string> kTrialTable = {
    "trial_id",   "sequence",   "state",         "final",    "reward",           "accuracy",
    "parameters", "train_seconds", "attempts", "duration_seconds", "canonical"};
const std::vector<std::string> kTrialWide = {
    "trial_id",   "sequence",    "state",           "final",         "one_shot_score",
    "reward",     "accuracy",
    "parameters", "flops",       "latency_seconds", "train_seconds", "attempts",
    "worker_id",  "cached_from", "created",         "ended",         "duration_seconds",
    "canonical"};

// A language model's list shows its perplexity where a classifier's shows
// accuracy.
std::vector<std::string> PerplexityForAccuracy(std::vector<std::string> names) {
  std::replace(names.begin(), names.end(), std::string("accuracy"), std::string("perplexity"));
  return names;
}

template <typename T>
const Column<T>* FindColumn(const std::vector<Column<T>>& columns, absl::string_view name) {
  for (const Column<T>& c : columns) {
    if (c.name == name) return &c;
  }
  return nullptr;
}

template <typename T>
std::string FormatList(const std::vector<T>& items, const ListOptions& options,
                       const std::vector<Column<T>>& columns, const std::vector<std::string>& table,
                       const std::vector<std::string>& wide,
                       const std::function<std::string(const T&)>& id) {
  switch (options.format) {
    case OutputFormat::kJson:
      return Json(ListValue(items));
    case OutputFormat::kYaml:
      return Yaml(ListValue(items));
    case OutputFormat::kName: {
      std::string out;
      for (const T& item : items) absl::StrAppend(&out, EscapeForTerminal(id(item)), "\n");
      return out;
    }
    case OutputFormat::kCsv: {
      std::string out;
      if (!options.no_headers) {
        std::vector<std::string> header;
        for (const Column<T>& c : columns) header.push_back(c.name);
        out = absl::StrJoin(header, ",") + "\n";
      }
      for (const T& item : items) {
        std::vector<std::string> row;
        for (const Column<T>& c : columns)
          row.push_back(CsvField(c.csv ? c.csv(item) : c.cell(item)));
        out += absl::StrJoin(row, ",") + "\n";
      }
      return out;
    }
    case OutputFormat::kTable:
    case OutputFormat::kWide: {
      std::vector<const Column<T>*> shown;
      for (const std::string& name : options.format == OutputFormat::kWide ? wide : table) {
        shown.push_back(FindColumn(columns, name));
      }
      std::vector<std::string> header;
      for (const Column<T>* c : shown) header.push_back(c->header);
      std::vector<std::vector<std::string>> rows;
      for (const T& item : items) {
        std::vector<std::string> row;
        for (const Column<T>* c : shown) row.push_back(c->cell(item));
        rows.push_back(std::move(row));
      }
      return Table(header, std::move(rows), !options.no_headers);
    }
  }
  return "";
}

template <typename T>
absl::Status SortBy(const std::string& field, const std::vector<Column<T>>& columns,
                    std::vector<T>* items) {
  absl::string_view name = field;
  const bool descending = absl::ConsumePrefix(&name, "-");
  const Column<T>* column = FindColumn(columns, name);
  if (column == nullptr) {
    std::vector<std::string> names;
    for (const Column<T>& c : columns) names.push_back(c.name);
    return absl::InvalidArgumentError(absl::StrCat("--sort-by: unknown field '", field,
                                                   "'; one of ", absl::StrJoin(names, ", "),
                                                   " (a leading '-' sorts descending)"));
  }
  auto less = [column](const T& a, const T& b) {
    if (column->number) return column->number(a) < column->number(b);
    return column->cell(a) < column->cell(b);
  };
  if (descending) {
    std::stable_sort(items->begin(), items->end(),
                     [&less](const T& a, const T& b) { return less(b, a); });
  } else {
    std::stable_sort(items->begin(), items->end(), less);
  }
  return absl::OkStatus();
}

template <typename T>
std::vector<std::string> Names(const std::vector<Column<T>>& columns) {
  std::vector<std::string> names;
  for (const Column<T>& c : columns) names.push_back(c.name);
  return names;
}

std::vector<std::string> StateNames(const google::protobuf::EnumDescriptor* type) {
  std::vector<std::string> names;
  for (int i = 0; i < type->value_count(); ++i) {
    if (type->value(i)->number() != 0) names.push_back(EnumSpelling(type->value(i)));
  }
  return names;
}

template <typename Enum>
absl::StatusOr<std::vector<Enum>> ParseStates(absl::string_view list,
                                              const google::protobuf::EnumDescriptor* type,
                                              absl::string_view kind) {
  std::vector<Enum> states;
  for (absl::string_view word : absl::StrSplit(list, ',')) {
    const std::string lower = absl::AsciiStrToLower(absl::StripAsciiWhitespace(word));
    const EnumValueDescriptor* found = nullptr;
    for (int i = 0; i < type->value_count(); ++i) {
      if (type->value(i)->number() != 0 && EnumSpelling(type->value(i)) == lower) {
        found = type->value(i);
      }
    }
    if (found == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat(
          "unknown ", kind, " state '", word, "'; one of ", absl::StrJoin(StateNames(type), ", ")));
    }
    states.push_back(static_cast<Enum>(found->number()));
  }
  return states;
}

}  // namespace

const char* const kCurveCsvColumns[] = {
    "epoch", "train_loss", "train_accuracy", "validation_accuracy", "seconds", nullptr};
const char* const kLanguageModelCurveCsvColumns[] = {
    "epoch", "train_loss", "train_perplexity", "validation_perplexity", "seconds", nullptr};

bool IsLanguageModel(const v1::Trial& trial) {
  return trial.architecture().has_recurrent_cell() || trial.metrics().perplexity() > 0;
}

std::string FormatPerplexity(double perplexity) {
  if (std::isnan(perplexity) || perplexity <= 0) return "-";
  if (std::isinf(perplexity)) return "inf";
  return absl::StrFormat("%.2f", perplexity);
}

std::string EscapeForTerminal(absl::string_view text) { return EscapeUnprintable(text); }

const std::vector<std::string>& OutputFormatNames() {
  static const auto* names =
      new std::vector<std::string>{"table", "wide", "name", "json", "yaml", "csv"};
  return *names;
}

absl::StatusOr<OutputFormat> ParseOutputFormat(const std::string& text) {
  const std::string lower = absl::AsciiStrToLower(text);
  if (lower == "table") return OutputFormat::kTable;
  if (lower == "wide") return OutputFormat::kWide;
  if (lower == "name") return OutputFormat::kName;
  if (lower == "json") return OutputFormat::kJson;
  if (lower == "yaml") return OutputFormat::kYaml;
  if (lower == "csv") return OutputFormat::kCsv;
  return absl::InvalidArgumentError(absl::StrCat(
      "-o must be one of ", absl::StrJoin(OutputFormatNames(), ", "), ", not '", text, "'"));
}

std::string MessageJson(const Message& message) { return Json(MessageValue(message)); }
std::string MessageYaml(const Message& message) { return Yaml(MessageValue(message)); }

std::string CacheSource(const v1::Trial& trial) {
  if (trial.cached_from().empty() || trial.cached_from_job().empty()) return trial.cached_from();
  return absl::StrCat(trial.cached_from_job(), "/", trial.cached_from());
}

std::string ShortState(v1::JobState state) {
  const EnumValueDescriptor* value = v1::JobState_descriptor()->FindValueByNumber(state);
  return value != nullptr ? EnumSpelling(value) : absl::StrCat(static_cast<int>(state));
}

std::string ShortState(v1::TrialState state) {
  const EnumValueDescriptor* value = v1::TrialState_descriptor()->FindValueByNumber(state);
  return value != nullptr ? EnumSpelling(value) : absl::StrCat(static_cast<int>(state));
}

std::vector<std::string> JobStateNames() { return StateNames(v1::JobState_descriptor()); }
std::vector<std::string> TrialStateNames() { return StateNames(v1::TrialState_descriptor()); }

absl::StatusOr<std::vector<v1::JobState>> ParseJobStates(absl::string_view list) {
  return ParseStates<v1::JobState>(list, v1::JobState_descriptor(), "job");
}

absl::StatusOr<std::vector<v1::TrialState>> ParseTrialStates(absl::string_view list) {
  return ParseStates<v1::TrialState>(list, v1::TrialState_descriptor(), "trial");
}

std::string FormatDuration(double seconds) {
  if (!(seconds >= 0) || seconds > 1e9) return "-";
  const int64_t s = static_cast<int64_t>(seconds + 0.5);
  if (s < 60) return absl::StrCat(s, "s");
  if (s < 3600) return absl::StrFormat("%dm%02ds", s / 60, s % 60);
  return absl::StrFormat("%dh%02dm", s / 3600, (s % 3600) / 60);
}

const std::vector<std::string>& JobFields() {
  static const auto* names = new std::vector<std::string>(Names(JobColumns()));
  return *names;
}

const std::vector<std::string>& TrialFields() {
  static const auto* names = new std::vector<std::string>(Names(TrialColumns()));
  return *names;
}

absl::Status SortJobs(const std::string& field, std::vector<v1::Job>* jobs) {
  return SortBy(field, JobColumns(), jobs);
}

absl::Status SortTrials(const std::string& field, std::vector<v1::Trial>* trials) {
  return SortBy(field, TrialColumns(), trials);
}

std::string FormatJobs(const std::vector<v1::Job>& jobs, const ListOptions& options) {
  return FormatList<v1::Job>(jobs, options, JobColumns(), kJobTable, kJobWide,
                             [](const v1::Job& j) { return j.job_id(); });
}

std::string FormatTrials(const std::vector<v1::Trial>& trials, const ListOptions& options) {
  const bool language_models = std::any_of(trials.begin(), trials.end(), IsLanguageModel);
  static const auto* lm_table = new std::vector<std::string>(PerplexityForAccuracy(kTrialTable));
  static const auto* lm_wide = new std::vector<std::string>(PerplexityForAccuracy(kTrialWide));
  return FormatList<v1::Trial>(
      trials, options, TrialColumns(), language_models ? *lm_table : kTrialTable,
      language_models ? *lm_wide : kTrialWide, [](const v1::Trial& t) { return t.trial_id(); });
}

std::string FormatJob(const v1::Job& job, OutputFormat format) {
  switch (format) {
    case OutputFormat::kJson:
      return MessageJson(job);
    case OutputFormat::kYaml:
      return MessageYaml(job);
    case OutputFormat::kCsv:
    case OutputFormat::kName:
      return FormatJobs({job}, ListOptions{format});
    case OutputFormat::kTable:
    case OutputFormat::kWide:
      break;
  }
  const double end_ms = job.end_time_unix_ms() != 0
                            ? static_cast<double>(job.end_time_unix_ms())
                            : static_cast<double>(absl::ToUnixMillis(absl::Now()));
  const double elapsed =
      job.start_time_unix_ms() == 0 ? 0 : (end_ms - job.start_time_unix_ms()) / 1000.0;
  std::string out;
  auto row = [&](const std::string& key, const std::string& value) {
    absl::StrAppend(&out, absl::StrFormat("%-18s %s\n", key + ":", EscapeForTerminal(value)));
  };
  row("job", job.job_id());
  row("name", job.spec().name());
  row("state", ShortState(job.state()));
  if (!job.error().empty()) row("error", job.error());
  row("strategy", job.spec().strategy().name());
  row("parallelism", absl::StrCat("S=", job.spec().parallelism().num_shards(),
                                  " K=", job.spec().parallelism().num_replicas(),
                                  " m=", job.spec().parallelism().children_per_replica()));
  row("budget", absl::StrCat(job.spec().budget().max_trials(), " evaluations, ",
                             job.spec().budget().max_samples(), " samples",
                             job.spec().budget().max_wall_seconds() > 0
                                 ? absl::StrCat(", ", job.spec().budget().max_wall_seconds(), " s")
                                 : ""));
  row("trials",
      absl::StrCat(job.trials_succeeded(), " succeeded, ", job.trials_failed(), " failed, ",
                   job.trials_running(), " running, ", job.trials_queued(), " queued"));
  row("samples", absl::StrCat(job.samples()));
  row("cache hits", absl::StrCat(job.cache_hits(),
                                 " (evaluations saved: samples answered from "
                                 "the job's earlier evaluations)"));
  row("compute", absl::StrFormat("%.1f worker-seconds, %d epochs trained", job.worker_seconds(),
                                 job.epochs_trained()));
  row("stopped early",
      absl::StrCat(job.trials_stopped(), " trials (", job.epochs_saved(), " epochs saved)"));
  row("best reward", absl::StrCat(Reward(job.best_reward()), "  (", job.best_trial_id(), ")"));
  row("best architecture", job.best_canonical());
  row("mean reward", Reward(job.mean_reward()));
  row("baseline", Reward(job.baseline()));
  row("gradient pushes", absl::StrCat(job.gradient_pushes()));
  row("workers", absl::StrCat(job.connected_workers()));
  row("created", Time(job.create_time_unix_ms()));
  row("ended", Time(job.end_time_unix_ms()));
  row("elapsed", FormatDuration(elapsed));
  return out;
}

std::string FormatArchitecture(const v1::Architecture& arch) {
  std::string out;
  if (arch.has_macro_cnn()) {
    absl::StrAppend(&out, "layer  filter  filters  stride  inputs\n");
    for (int i = 0; i < arch.macro_cnn().layers_size(); ++i) {
      const v1::MacroCnnLayer& layer = arch.macro_cnn().layers(i);
      std::string inputs = layer.inputs().empty() ? "image" : absl::StrJoin(layer.inputs(), ",");
      absl::StrAppend(
          &out, absl::StrFormat("%5d  %dx%-4d  %7d  %6d  %s\n", i, layer.filter_height(),
                                layer.filter_width(), layer.num_filters(), layer.stride(), inputs));
    }
  } else if (arch.has_cell()) {
    absl::StrAppend(&out, "edge    operation\n");
    int edge = 0;
    for (int i = 1; i < arch.cell().num_nodes(); ++i) {
      for (int j = 0; j < i && edge < arch.cell().edge_operations_size(); ++j, ++edge) {
        absl::StrAppend(&out,
                        absl::StrFormat("%d <- %d  %s\n", i, j,
                                        EscapeForTerminal(arch.cell().edge_operations(edge))));
      }
    }
  } else if (arch.has_recurrent_cell()) {
    const v1::RecurrentCellArchitecture& cell = arch.recurrent_cell();
    absl::StrAppend(&out, "node  combination  activation\n");
    for (int i = 0; i < cell.nodes_size(); ++i) {
      absl::StrAppend(&out, absl::StrFormat("%4d  %-11s  %s\n", i,
                                            EscapeForTerminal(cell.nodes(i).combination()),
                                            EscapeForTerminal(cell.nodes(i).activation())));
    }
    if (cell.cell_inject_node() >= 0) {
      absl::StrAppend(&out, absl::StrFormat("c_{t-1} joins node %d (%s, %s); c_t is node %d\n",
                                            cell.cell_inject_node(),
                                            EscapeForTerminal(cell.cell_inject_combination()),
                                            EscapeForTerminal(cell.cell_inject_activation()),
                                            cell.cell_output_node()));
    }
  }
  return out;
}

std::string FormatTrial(const v1::Trial& trial, OutputFormat format) {
  switch (format) {
    case OutputFormat::kJson:
      return MessageJson(trial);
    case OutputFormat::kYaml:
      return MessageYaml(trial);
    case OutputFormat::kName:
      return EscapeForTerminal(trial.trial_id()) + "\n";
    case OutputFormat::kCsv: {
      const char* const* columns =
          IsLanguageModel(trial) ? kLanguageModelCurveCsvColumns : kCurveCsvColumns;
      std::vector<std::string> header;
      for (int i = 0; columns[i] != nullptr; ++i) header.push_back(columns[i]);
      std::string out = absl::StrJoin(header, ",") + "\n";
      for (const v1::EpochResult& e : trial.curve()) {
        out += absl::StrJoin(CurveRow(e, IsLanguageModel(trial)), ",") + "\n";
      }
      return out;
    }
    case OutputFormat::kTable:
    case OutputFormat::kWide:
      break;
  }
  const bool ended = trial.end_time_unix_ms() != 0;
  const int64_t end_ms = ended ? trial.end_time_unix_ms() : absl::ToUnixMillis(absl::Now());
  const double duration =
      trial.create_time_unix_ms() == 0 ? -1 : (end_ms - trial.create_time_unix_ms()) / 1000.0;
  const bool succeeded = trial.state() == v1::TRIAL_STATE_SUCCEEDED;
  const v1::TrialMetrics& m = trial.metrics();
  std::string out;
  auto row = [&](const std::string& key, const std::string& value) {
    absl::StrAppend(&out, absl::StrFormat("%-18s %s\n", key + ":", EscapeForTerminal(value)));
  };
  row("trial", trial.trial_id());
  row("job", trial.job_id());
  row("sequence", trial.sequence() > 0 ? absl::StrCat(trial.sequence()) : "-");
  row("state", ShortState(trial.state()));
  if (!trial.error().empty()) row("error", trial.error());
  row("attempts", absl::StrCat(trial.attempts()));
  row("worker", trial.worker_id().empty() ? "-" : trial.worker_id());
  if (!trial.cached_from().empty()) row("cache hit of", CacheSource(trial));
  if (trial.final_training()) {
    // One-shot jobs (docs/one_shot.md): trained from scratch; its reward is
    // not comparable with the search trials' one-shot rewards.
    row("final trial",
        absl::StrCat("trained from scratch; one-shot score ", Reward(trial.one_shot_score())));
  }
  row("replica", trial.replica() < 0 ? "-" : absl::StrCat(trial.replica()));
  row("reward", succeeded ? Reward(m.reward()) : "-");
  // A language model: its validation perplexity, and FLOPs and latency per
  // token (the worker measures one token of one sequence, not an image).
  const bool language_model = IsLanguageModel(trial);
  if (language_model) {
    row("perplexity", succeeded ? FormatPerplexity(m.perplexity()) : "-");
  } else {
    row("accuracy", succeeded ? absl::StrFormat("%.4f", m.accuracy()) : "-");
    if (succeeded && m.test_accuracy() > 0) {
      row("test accuracy", absl::StrFormat("%.4f", m.test_accuracy()));
    }
  }
  if (succeeded) {
    row("parameters", absl::StrCat(m.parameters()));
    row("flops", absl::StrCat(m.flops(), language_model ? " per token" : ""));
    row("latency",
        absl::StrFormat("%.6f s%s", m.latency_seconds(), language_model ? " per token" : ""));
    row("training",
        absl::StrFormat("%.1f s on %s", m.train_seconds(), m.device().empty() ? "?" : m.device()));
  }
  if (m.has_shared()) {
    // A one-shot search task: what it did with the shared weights.
    const v1::SharedStats& s = m.shared();
    row("shared weights", absl::StrFormat("version %d, %d steps, %d pushes applied, %d refused as stale",
                                          s.omega_version(), s.train_steps(), s.pushes_applied(),
                                          s.pushes_refused_stale()));
    row("staleness", absl::StrCat("at most ", s.max_staleness(), " versions behind"));
    row("weights traffic", absl::StrCat(search_space::FormatBytes(s.bytes_pulled()), " pulled, ",
                                  search_space::FormatBytes(s.bytes_pushed()), " pushed"));
  }
  row("created", Time(trial.create_time_unix_ms()));
  row("ended", Time(trial.end_time_unix_ms()));
  row("duration", absl::StrCat(FormatDuration(duration), ended || duration < 0 ? "" : " so far"));
  row("architecture", trial.architecture().canonical());
  if (std::string readable = FormatArchitecture(trial.architecture()); !readable.empty()) {
    absl::StrAppend(&out, "\n", readable);
  }
  absl::StrAppend(&out, "\n");
  if (trial.curve().empty()) {
    absl::StrAppend(&out, "no learning curve stored (no epoch reported yet)\n");
    return out;
  }
  std::vector<std::vector<std::string>> rows;
  for (const v1::EpochResult& e : trial.curve()) rows.push_back(CurveRow(e, language_model));
  absl::StrAppend(
      &out, Table(language_model ? std::vector<std::string>{"EPOCH", "TRAIN LOSS", "TRAIN PPL",
                                                            "VAL PPL", "SECONDS"}
                                 : std::vector<std::string>{"EPOCH", "TRAIN LOSS", "TRAIN ACC",
                                                            "VAL ACC", "SECONDS"},
                  rows));
  return out;
}

}  // namespace nas::client
