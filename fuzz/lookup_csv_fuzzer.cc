// libFuzzer target for the lookup evaluator's CSV reader
// (worker/lookup_evaluator.h ParseLookupTable). Checks that errors carry a
// message and that every accepted row has an accuracy in [0, 1].
// Built by tools/fuzz.sh; docs/fuzzing.md.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "worker/lookup_evaluator.h"

namespace {

[[noreturn]] void Fail(const std::string& what) {
  std::fprintf(stderr, "lookup_csv_fuzzer: %s\n", what.c_str());
  std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string csv(reinterpret_cast<const char*>(data), size);
  const auto table = nas::worker::ParseLookupTable(csv, "table.csv");
  if (!table.ok()) {
    if (table.status().message().empty()) Fail("error without a message");
    return 0;
  }
  for (const auto& [arch, row] : *table) {
    if (!(row.accuracy >= 0 && row.accuracy <= 1)) Fail("accuracy outside [0, 1] accepted for " + arch);
  }
  return 0;
}
