// nasctl's command line on CLI11: the flags every command takes (controller
// address, deadline, token, TLS), the registry of commands, how a command
// dials the controller and reports a failed call, and the bash completion
// script generated from the registered commands.
//
// A command is one function that adds itself:
//
//   void AddCancelCommand(Cli& cli) {
//     auto options = std::make_shared<CancelOptions>();
//     CLI::App* command = cli.AddCommand(cli.app(), "cancel", "stop a job",
//                                        [&cli, options] { return RunCancel(cli, *options); });
//     command->add_option("JOB", options->job, "the job")->required();
//   }
//
// and main() calls AddCancelCommand(cli). Parse errors (unknown flag, missing
// argument, bad value) exit 2 with CLI11's message naming the flag; --help
// prints the command's help and exits 0.
#ifndef NAS_CLIENT_CLI_H_
#define NAS_CLIENT_CLI_H_

#include <CLI/CLI.hpp>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/channel.h"
#include "proto/job_service.grpc.pb.h"

namespace nas::client {

// Exit codes (docs/cli.md).
inline constexpr int kOk = 0;
inline constexpr int kFailure = 1;
inline constexpr int kUsageError = 2;

// The flags every command takes, before or after the command's name.
struct GlobalOptions {
  // Controller host:port; empty: $NAS_SERVER, else localhost:7070.
  std::string server;
  // Deadline of each call.
  absl::Duration timeout = absl::Seconds(30);
  // Bearer token, from a file or given; empty: $NAS_TOKEN_FILE, $NAS_TOKEN.
  std::string token_file;
  std::string token;
  // --tls_ca (else $NAS_TLS_CA), --tls_client_cert, --tls_client_key,
  // --tls_server_name.
  TlsClientFiles tls;
};

class Cli;

// A dialed JobService stub and how to report its failed calls.
class Client {
 public:
  Client(const Cli& cli, const ChannelOptions& channel);

  // Sets the call's deadline (--timeout).
  void Prepare(grpc::ClientContext* context) const;
  v1::JobService::Stub* stub() { return stub_.get(); }
  // One clear line on stderr for a failed call, with the next step; returns
  // kFailure.
  int FailCall(const absl::Status& status) const;

 private:
  const Cli& cli_;
  const bool tls_;
  std::unique_ptr<v1::JobService::Stub> stub_;
};

class Cli {
 public:
  Cli();

  CLI::App& app() { return app_; }
  const GlobalOptions& globals() const { return globals_; }

  // Adds command `name` under `parent` (app() or another command). `run` is
  // what the command does once the whole line parsed; it returns the exit
  // code. A command with subcommands passes no `run`.
  CLI::App* AddCommand(CLI::App& parent, const std::string& name, const std::string& description,
                       std::function<int()> run = nullptr);
  // The words bash completes after `option` (-o's formats, --state's states).
  void SetCompletions(CLI::Option* option, std::vector<std::string> words);

  // Parses argv and runs the chosen command; the process's exit code.
  int Main(int argc, char** argv);

  // The controller's address: --server, else $NAS_SERVER, else localhost:7070.
  std::string ServerAddress() const;
  // How to dial the controller: TLS files and the token from --token_file,
  // --token, $NAS_TOKEN_FILE or $NAS_TOKEN, the first one set.
  // INVALID_ARGUMENT naming the flag or variable (a usage error).
  absl::StatusOr<ChannelOptions> ControllerChannelOptions() const;
  // Dials the controller and runs `command` with the client; a bad token or
  // TLS flag is a usage error (exit 2) naming it.
  int WithClient(const std::function<int(Client&)>& command) const;
  // A failed call without a Client (`nasctl health`).
  int FailCall(const absl::Status& status, bool tls) const;

  // The bash completion script (`nasctl completion bash`).
  std::string BashCompletion() const;

 private:
  CLI::App app_;
  GlobalOptions globals_;
  std::string timeout_text_ = "30s";
  // The command the line chose, set by its CLI11 callback.
  std::function<int()> chosen_;
  std::map<const CLI::Option*, std::vector<std::string>> completions_;
};

// Prints "nasctl: MESSAGE" (each line escaped: no control byte from a server
// or a user reaches the terminal) on stderr; returns kFailure.
int Fail(const std::string& message);
// The same, returning kUsageError.
int UsageFail(const std::string& message);

}  // namespace nas::client

#endif  // NAS_CLIENT_CLI_H_
