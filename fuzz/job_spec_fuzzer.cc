// libFuzzer target for the job-spec path `nasctl submit` and
// JobService.SubmitJob take: YAML text -> JobSpec (ParseYamlToMessage) ->
// WithDefaults -> ValidateJobSpec. Beyond "no crash", it checks that
//  * a refused document comes with INVALID_ARGUMENT and a message,
//  * what MessageToYaml prints reads back and prints the same again
//    (`nasctl ... -o yaml` output can be edited and resubmitted),
//  * a spec that validates yields architectures its own space accepts.
// Built by tools/fuzz.sh; docs/fuzzing.md.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "common/proto_yaml.h"
#include "controller/job_spec.h"
#include "search_space/search_space.h"
#include "proto/job.pb.h"

namespace {

[[noreturn]] void Fail(const std::string& what, const std::string& detail) {
  std::fprintf(stderr, "job_spec_fuzzer: %s\n%s\n", what.c_str(), detail.c_str());
  std::abort();
}

void CheckSampledArchitectures(const nas::v1::SearchSpace& space) {
  std::mt19937_64 rng(1);
  int layers = 0;
  if (space.has_macro_cnn()) layers = nas::search_space::LayersForSamples(space.macro_cnn(), 0);
  for (int i = 0; i < 2; ++i) {
    const nas::v1::Architecture a = nas::search_space::SampleUniform(space, layers, rng);
    const absl::Status valid = nas::search_space::ValidateArchitecture(space, a);
    if (!valid.ok()) Fail("a sampled architecture does not validate", valid.ToString());
    if (space.has_macro_cnn()) {
      layers = nas::search_space::LayersForSamples(space.macro_cnn(), int64_t{1} << 40);
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const absl::string_view yaml(reinterpret_cast<const char*>(data), size);
  nas::v1::JobSpec parsed;
  const absl::Status status = nas::ParseYamlToMessage(yaml, &parsed);
  if (!status.ok()) {
    if (status.code() != absl::StatusCode::kInvalidArgument || status.message().empty()) {
      Fail("a refused document must be INVALID_ARGUMENT with a message", status.ToString());
    }
    return 0;
  }

  // As JobManager::Submit does.
  nas::v1::JobSpec spec = nas::controller::WithDefaults(parsed);
  if (!spec.parallelism().has_num_shards()) spec.mutable_parallelism()->set_num_shards(1);
  const absl::Status valid = nas::controller::ValidateJobSpec(spec);
  if (!valid.ok() && (valid.code() != absl::StatusCode::kInvalidArgument || valid.message().empty())) {
    Fail("an invalid spec must be INVALID_ARGUMENT with a message", valid.ToString());
  }

  // MessageToYaml's output reads back and is stable.
  const std::string printed = nas::MessageToYaml(parsed);
  nas::v1::JobSpec reread;
  const absl::Status again = nas::ParseYamlToMessage(printed, &reread);
  if (!again.ok()) Fail("MessageToYaml's output does not read back", again.ToString() + "\n" + printed);
  const std::string reprinted = nas::MessageToYaml(reread);
  if (reprinted != printed) Fail("MessageToYaml is not stable", printed + "\n---\n" + reprinted);

  if (valid.ok()) CheckSampledArchitectures(spec.search_space());
  return 0;
}
