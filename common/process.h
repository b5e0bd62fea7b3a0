// What every nas-service main() does first: parse absl flags (with a usage
// line), apply --log_level, and block SIGTERM/SIGINT so the main thread can
// wait for them (common/signals.h). Also maps the shared server flags
// (--host, --port, --metrics_port, --ready_file, --max_message_bytes,
// --tls_cert, --tls_key, --tls_client_ca) to GrpcServerOptions; the flags are
// defined in process.cc, which reads them.
#ifndef NAS_COMMON_PROCESS_H_
#define NAS_COMMON_PROCESS_H_

#include <string>
#include <vector>

#include "common/grpc_server.h"

namespace nas {

// Returns the positional arguments (argv[0] first). Exits with status 2 and a
// message on unknown flags or a bad --log_level. Servers block SIGTERM/SIGINT
// for WaitForShutdownSignal; a CLI passes block_signals = false so Ctrl-C
// simply ends it.
std::vector<std::string> InitProcess(int argc, char** argv, const char* usage,
                                     bool block_signals = true);

// The shared server flags for `binary`, TLS files read. A --port of -1 is
// left for the binary to replace with its default. Exits with status 2 and a
// message naming the flag when a TLS file is missing, unreadable or not PEM,
// or when only one of --tls_cert and --tls_key is given.
GrpcServerOptions ServerOptionsFromFlags(const std::string& binary);

// --metrics_port alone, for binaries that are not gRPC servers (the worker).
int MetricsPortFlag();
std::string HostFlag();
// --max_message_bytes, for a binary's client channels (the worker's to the
// parameter servers).
int MaxMessageBytesFlag();

}  // namespace nas

#endif  // NAS_COMMON_PROCESS_H_
