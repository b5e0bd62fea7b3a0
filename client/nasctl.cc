// nasctl: the command-line client users live in.
#include <cstdio>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "common/health_client.h"
#include "common/process.h"

ABSL_FLAG(std::string, server, "", "Controller address (default $NAS_SERVER or localhost:7070).");
ABSL_FLAG(absl::Duration, timeout, absl::Seconds(10), "Deadline of each call.");

namespace {

constexpr char kVersion[] = "0.1.0";
constexpr char kUsage[] =
    "nasctl COMMAND [flags]\n"
    "commands:\n"
    "  version            print the version\n"
    "  health             check that the controller answers\n";

std::string ServerAddress() {
  std::string server = absl::GetFlag(FLAGS_server);
  if (server.empty()) {
    const char* env = std::getenv("NAS_SERVER");
    server = env != nullptr && *env != '\0' ? env : "localhost:7070";
  }
  return server;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args = nas::InitProcess(argc, argv, kUsage);
  if (args.size() < 2) {
    std::fprintf(stderr, "%s", kUsage);
    return 2;
  }
  const std::string& command = args[1];
  if (command == "version") {
    std::printf("nasctl %s\n", kVersion);
    return 0;
  }
  if (command == "health") {
    const std::string server = ServerAddress();
    absl::Status status = nas::CheckHealth(server, absl::GetFlag(FLAGS_timeout));
    if (!status.ok()) {
      std::fprintf(stderr, "cannot reach controller at %s (%s)\n", server.c_str(),
                   std::string(status.message()).c_str());
      return 1;
    }
    std::printf("controller at %s is serving\n", server.c_str());
    return 0;
  }
  std::fprintf(stderr, "nasctl: unknown command '%s'\n%s", command.c_str(), kUsage);
  return 2;
}
