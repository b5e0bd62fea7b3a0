// Request parsing for gRPC callback methods registered as raw (ByteBuffer in,
// ByteBuffer out). gRPC 1.51's typed callback handlers answer a request that
// does not parse (for example a proto3 string that is not UTF-8) with
// UNIMPLEMENTED, which points the caller the wrong way; the synchronous
// handlers answer INTERNAL "failed to parse". Parsing in the service keeps
// every method's answer the same.
#ifndef NAS_COMMON_RAW_MESSAGE_H_
#define NAS_COMMON_RAW_MESSAGE_H_

#include <grpcpp/grpcpp.h>

#include "absl/strings/str_cat.h"

namespace nas {

// Parses `raw` into `message`; INTERNAL naming the message type if it does not parse.
template <typename Message>
grpc::Status ParseRawRequest(const grpc::ByteBuffer& raw, Message* message) {
  grpc::ByteBuffer copy(raw);  // Deserialize consumes its buffer; the slices are shared
  grpc::Status parsed = grpc::SerializationTraits<Message>::Deserialize(&copy, message);
  if (parsed.ok()) return parsed;
  return grpc::Status(grpc::StatusCode::INTERNAL,
                      absl::StrCat("failed to parse the ", Message::descriptor()->full_name(),
                                   " request (strings must be UTF-8): ", parsed.error_message()));
}

// Serializes `message` into `raw` (the response of a raw method).
template <typename Message>
grpc::Status SerializeRawResponse(const Message& message, grpc::ByteBuffer* raw) {
  bool own_buffer = false;
  return grpc::SerializationTraits<Message>::Serialize(message, raw, &own_buffer);
}

}  // namespace nas

#endif  // NAS_COMMON_RAW_MESSAGE_H_
