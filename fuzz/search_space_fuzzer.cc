// libFuzzer target for search_space/search_space.h: a Task (the message a
// worker receives: an architecture and its search space) in protobuf text
// format, or binary wire format when the input is not text, then
// ValidateSearchSpace, ValidateArchitecture and ArchitectureFromTokens.
// Spaces that fail ValidateSearchSpace stop there: the rest of the API is
// only ever called with spaces the controller validated at submit. Checks:
//  * errors are INVALID_ARGUMENT with a message,
//  * the architecture decoded from the input's tokens validates, and its
//    canonical string is CanonicalString of it,
//  * ValidateArchitecture accepts exactly architectures whose readable form
//    prints like the one their tokens decode to.
// Built by tools/fuzz.sh; docs/fuzzing.md.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "search_space/search_space.h"
#include "google/protobuf/io/tokenizer.h"
#include "google/protobuf/text_format.h"
#include "proto/search_space.pb.h"
#include "proto/task_service.pb.h"

namespace {

class SilentErrors : public google::protobuf::io::ErrorCollector {
 public:
  void AddError(int, int, const std::string&) override {}
  void AddWarning(int, int, const std::string&) override {}
};

[[noreturn]] void Fail(const std::string& what, const std::string& detail) {
  std::fprintf(stderr, "search_space_fuzzer: %s\n%s\n", what.c_str(), detail.c_str());
  std::abort();
}

void CheckError(const absl::Status& status, const char* what) {
  if (!status.ok() && (status.code() != absl::StatusCode::kInvalidArgument || status.message().empty())) {
    Fail(std::string(what) + ": errors must be INVALID_ARGUMENT with a message", status.ToString());
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string input(reinterpret_cast<const char*>(data), size);
  nas::v1::Task task;
  google::protobuf::TextFormat::Parser parser;
  SilentErrors errors;
  parser.RecordErrorsTo(&errors);
  if (!parser.ParseFromString(input, &task)) {
    task.Clear();
    if (!task.ParseFromArray(data, static_cast<int>(size))) return 0;
  }
  const nas::v1::SearchSpace& space = task.search_space();
  const nas::v1::Architecture& given = task.architecture();

  const absl::Status space_ok = nas::search_space::ValidateSearchSpace(space);
  CheckError(space_ok, "ValidateSearchSpace");
  if (!space_ok.ok()) return 0;

  const absl::Status given_ok = nas::search_space::ValidateArchitecture(space, given);
  CheckError(given_ok, "ValidateArchitecture");

  // Decode the input's tokens at the input's depth (macro CNN: its layer
  // count, else the schedule's first depth).
  int layers = 0;
  if (space.has_macro_cnn()) {
    layers = nas::search_space::NumLayers(given);
    if (layers < 1 || layers > nas::search_space::SpaceLimits::kMaxLayers) {
      layers = nas::search_space::LayersForSamples(space.macro_cnn(), 0);
    }
  }
  const std::vector<int> tokens(given.tokens().begin(), given.tokens().end());
  const absl::StatusOr<nas::v1::Architecture> decoded =
      nas::search_space::ArchitectureFromTokens(space, layers, tokens);
  CheckError(decoded.status(), "ArchitectureFromTokens");
  if (decoded.ok()) {
    const absl::Status decoded_ok = nas::search_space::ValidateArchitecture(space, *decoded);
    if (!decoded_ok.ok()) {
      Fail("a decoded architecture does not validate", decoded_ok.ToString() + "\n" + decoded->DebugString());
    }
    if (decoded->canonical() != nas::search_space::CanonicalString(*decoded)) {
      Fail("canonical string differs from CanonicalString", decoded->DebugString());
    }
    if (given_ok.ok() && nas::search_space::CanonicalString(given) != decoded->canonical()) {
      Fail("an accepted architecture prints unlike its tokens", given.DebugString());
    }
  }
  return 0;
}
