// YAML <-> protobuf messages by reflection, with errors that name the field.
//
// Users write job specs as YAML; ParseYamlToMessage maps a YAML document onto
// any message: mappings are messages (keys are the proto field names in
// snake_case), sequences are repeated fields, scalars are numbers, booleans,
// strings or enum value names (case-insensitive; the enum's type prefix may be
// left out: "adam" for ADAM, "reward" for ORDER_REWARD). Problems are
// collected, not just the first (up to 100, then counted), each as
// "path.to.field: problem" with the YAML line, e.g.
//   search_space.macro_cnn.filter_heights[2]: 'x' is not an integer (line 7)
// MessageToYaml writes a message back in the same form (fields that are set,
// proto field order).
#ifndef NAS_COMMON_PROTO_YAML_H_
#define NAS_COMMON_PROTO_YAML_H_

#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "google/protobuf/message.h"

namespace nas {

// Parses `yaml` into `message` (cleared first). INVALID_ARGUMENT lists every
// problem, one per line. Documents nested deeper than 64 levels, larger than
// 4 MiB, or expanding through aliases (*name) beyond 8 MiB are refused.
absl::Status ParseYamlToMessage(absl::string_view yaml, google::protobuf::Message* message);

std::string MessageToYaml(const google::protobuf::Message& message);

}  // namespace nas

#endif  // NAS_COMMON_PROTO_YAML_H_
