#include "client/cli.h"

#include <cstdlib>
#include <iostream>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "client/output.h"
#include "common/auth.h"
#include "common/status_macros.h"

namespace nas::client {
namespace {

// A message may quote what a server sent or what a user typed: its lines are
// kept, each escaped (EscapeForTerminal), so no control byte reaches the
// terminal from an error either.
std::string PrintableLines(const std::string& message) {
  return absl::StrJoin(
      absl::StrSplit(message, '\n'), "\n",
      [](std::string* out, absl::string_view line) { out->append(EscapeForTerminal(line)); });
}

std::string EnvOrEmpty(const char* name) {
  const char* value = std::getenv(name);
  return value != nullptr ? value : "";
}

// The innermost command the line named ("nasctl local up" -> up).
const CLI::App* Innermost(const CLI::App& app) {
  const CLI::App* current = &app;
  while (!current->get_subcommands().empty()) current = current->get_subcommands().front();
  return current;
}

std::string CommandPath(const CLI::App* app) {
  std::vector<std::string> names;
  for (; app != nullptr && app->get_parent() != nullptr; app = app->get_parent()) {
    names.insert(names.begin(), app->get_name());
  }
  return absl::StrJoin(names, " ");
}

std::vector<std::string> SubcommandNames(const CLI::App* app) {
  std::vector<std::string> names;
  for (const CLI::App* sub : app->get_subcommands([](const CLI::App*) { return true; })) {
    names.push_back(sub->get_name());
  }
  return names;
}

// Every option name `app` takes: its own and, as parsing falls through to
// them, its parents'.
std::vector<std::string> OptionNames(const CLI::App* app) {
  std::vector<std::string> names;
  for (; app != nullptr; app = app->get_parent()) {
    for (const CLI::Option* option : app->get_options()) {
      for (const std::string& name : option->get_snames()) names.push_back("-" + name);
      for (const std::string& name : option->get_lnames()) names.push_back("--" + name);
    }
  }
  return names;
}

}  // namespace

int Fail(const std::string& message) {
  std::cerr << "nasctl: " << PrintableLines(message) << "\n";
  return kFailure;
}

int UsageFail(const std::string& message) {
  std::cerr << "nasctl: " << PrintableLines(message) << "\n";
  return kUsageError;
}

Client::Client(const Cli& cli, const ChannelOptions& channel)
    : cli_(cli),
      tls_(channel.tls()),
      stub_(v1::JobService::NewStub(CreateChannel(cli.ServerAddress(), channel))) {}

void Client::Prepare(grpc::ClientContext* context) const {
  context->set_deadline(absl::ToChronoTime(absl::Now() + cli_.globals().timeout));
}

int Client::FailCall(const absl::Status& status) const { return cli_.FailCall(status, tls_); }

Cli::Cli() : app_("nasctl: submit and watch neural architecture search jobs.", "nasctl") {
  // Flags of an outer command are accepted after an inner one's name:
  // `nasctl list --server=...`, `nasctl local up --data_dir=...`.
  app_.fallthrough();
  app_.footer(
      "The flags of enclosing commands apply too: the global ones ('nasctl --help': --server, "
      "--timeout, --token_file, --token, --tls_*) and --data_dir of 'nasctl local'.\n"
      "Exit codes: 0 success, 1 failure (unreachable controller, rejected spec, unknown job), "
      "2 usage. docs/cli.md has the rest.");
  app_.add_option("--server", globals_.server,
                  "controller address host:port (default: $NAS_SERVER, else localhost:7070)")
      ->type_name("HOST:PORT");
  app_.add_option("--timeout", timeout_text_, "deadline of each call (default 30s)")
      ->type_name("DURATION")
      ->check(CLI::Validator(
          [](std::string& text) -> std::string {
            absl::Duration duration;
            if (absl::ParseDuration(text, &duration) && duration > absl::ZeroDuration()) {
              return "";
            }
            return "must be a positive duration such as 10s or 2m, not '" + text + "'";
          },
          ""));
  app_.add_option("--token_file", globals_.token_file,
                  "file holding the bearer token (default: $NAS_TOKEN_FILE)")
      ->type_name("FILE");
  app_.add_option("--token", globals_.token,
                  "the bearer token itself (default: $NAS_TOKEN); prefer --token_file")
      ->type_name("TOKEN");
  app_.add_option("--tls_ca", globals_.tls.ca,
                  "PEM CA that verifies the controller (default: $NAS_TLS_CA); set = TLS")
      ->type_name("FILE");
  app_.add_option("--tls_client_cert", globals_.tls.client_cert,
                  "PEM certificate for a controller that requires client certificates")
      ->type_name("FILE");
  app_.add_option("--tls_client_key", globals_.tls.client_key, "PEM key of --tls_client_cert")
      ->type_name("FILE");
  app_.add_option("--tls_server_name", globals_.tls.server_name,
                  "name to verify in the controller's certificate instead of the host")
      ->type_name("NAME");
}

CLI::App* Cli::AddCommand(CLI::App& parent, const std::string& name, const std::string& description,
                          std::function<int()> run) {
  CLI::App* command = parent.add_subcommand(name, description);
  if (run != nullptr) {
    command->callback([this, run = std::move(run)] { chosen_ = run; });
  }
  return command;
}

void Cli::SetCompletions(CLI::Option* option, std::vector<std::string> words) {
  completions_[option] = std::move(words);
}

int Cli::Main(int argc, char** argv) {
  try {
    app_.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    std::cout << app_.help();
    return kOk;
  } catch (const CLI::CallForAllHelp& e) {
    std::cout << app_.help("", CLI::AppFormatMode::All);
    return kOk;
  } catch (const CLI::ExtrasError& e) {
    const CLI::App* innermost = Innermost(app_);
    const std::vector<std::string> extras = app_.remaining(/*recurse=*/true);
    // A word where a command's subcommand belongs: name it as such.
    if (!SubcommandNames(innermost).empty() && !extras.empty() &&
        !absl::StartsWith(extras.front(), "-")) {
      const std::string path = CommandPath(innermost);
      return UsageFail(
          absl::StrCat("unknown command '", path.empty() ? "" : path + " ", extras.front(),
                       "'; one of: ", absl::StrJoin(SubcommandNames(innermost), ", "),
                       "\nRun 'nasctl ", path.empty() ? "" : path + " ", "--help' for usage."));
    }
    return UsageFail(absl::StrCat(e.what(), "\nRun 'nasctl ", CommandPath(innermost),
                                  CommandPath(innermost).empty() ? "" : " ", "--help' for usage."));
  } catch (const CLI::ParseError& e) {
    const std::string path = CommandPath(Innermost(app_));
    return UsageFail(absl::StrCat(e.what(), "\nRun 'nasctl ", path, path.empty() ? "" : " ",
                                  "--help' for usage."));
  }
  (void)absl::ParseDuration(timeout_text_, &globals_.timeout);  // Checked while parsing.
  if (chosen_ == nullptr) {
    const CLI::App* innermost = Innermost(app_);
    const std::string path = CommandPath(innermost);
    const std::string parent = CommandPath(innermost->get_parent());
    std::cerr << innermost->help(
        innermost == &app_ ? "" : absl::StrCat("nasctl", parent.empty() ? "" : " ", parent));
    return UsageFail(
        absl::StrCat(path.empty() ? "no command given" : path + ": no subcommand given",
                     "; one of: ", absl::StrJoin(SubcommandNames(innermost), ", ")));
  }
  return chosen_();
}

std::string Cli::ServerAddress() const {
  if (!globals_.server.empty()) return globals_.server;
  const std::string env = EnvOrEmpty("NAS_SERVER");
  return env.empty() ? "localhost:7070" : env;
}

absl::StatusOr<ChannelOptions> Cli::ControllerChannelOptions() const {
  ASSIGN_OR_RETURN(ChannelOptions options, ChannelOptionsFromTlsFiles(globals_.tls, "NAS_TLS_CA"));
  const std::string& token_file = globals_.token_file;
  const std::string& token = globals_.token;
  if (!token_file.empty() && !token.empty()) {
    return absl::InvalidArgumentError("give --token_file or --token, not both");
  }
  if (!token_file.empty()) {
    ASSIGN_OR_RETURN(options.token, ReadClientToken("--token_file", token_file));
  } else if (!token.empty()) {
    RETURN_IF_ERROR(CheckTokenSyntax("--token", token));
    options.token = token;
  } else if (const std::string env_file = EnvOrEmpty("NAS_TOKEN_FILE"); !env_file.empty()) {
    ASSIGN_OR_RETURN(options.token, ReadClientToken("$NAS_TOKEN_FILE", env_file));
  } else if (const std::string env = EnvOrEmpty("NAS_TOKEN"); !env.empty()) {
    RETURN_IF_ERROR(CheckTokenSyntax("$NAS_TOKEN", env));
    options.token = env;
  }
  return options;
}

int Cli::WithClient(const std::function<int(Client&)>& command) const {
  absl::StatusOr<ChannelOptions> channel = ControllerChannelOptions();
  if (!channel.ok()) return UsageFail(std::string(channel.status().message()));
  Client client(*this, *channel);
  return command(client);
}

int Cli::FailCall(const absl::Status& status, bool tls) const {
  const std::string server = ServerAddress();
  switch (status.code()) {
    case absl::StatusCode::kUnavailable: {
      // gRPC's text is long; the refused connection is what people need to see.
      std::string reason(status.message());
      if (absl::StrContains(reason, "Connection refused")) {
        return Fail(absl::StrCat("cannot reach controller at ", server,
                                 " (connection refused) — start one with 'nasctl local up' or "
                                 "set --server"));
      }
      const std::string lower = absl::AsciiStrToLower(reason);
      if (tls && (absl::StrContains(lower, "ssl") || absl::StrContains(lower, "handshake") ||
                  absl::StrContains(lower, "certificate") || absl::StrContains(lower, "tls"))) {
        return Fail(absl::StrCat("TLS with controller at ", server, " failed (", reason,
                                 ") — check --tls_ca, --tls_server_name and, if it requires "
                                 "client certificates, --tls_client_cert/--tls_client_key"));
      }
      return Fail(absl::StrCat(
          "cannot reach controller at ", server, " (", reason, ") — ",
          tls ? "check 'nasctl local status' or --server; if it requires client certificates, "
                "pass --tls_client_cert/--tls_client_key"
              : "start one with 'nasctl local up' or set --server; if it serves TLS, pass "
                "--tls_ca (docs/security.md)"));
    }
    case absl::StatusCode::kUnauthenticated:
      return Fail(absl::StrCat("controller at ", server, " refused the call: ", status.message()));
    case absl::StatusCode::kDeadlineExceeded:
      return Fail(absl::StrCat("controller at ", server, " did not answer within ",
                               absl::FormatDuration(globals_.timeout),
                               " — raise --timeout or check 'nasctl local status'"));
    case absl::StatusCode::kInvalidArgument:
      return Fail(
          absl::StrCat("rejected:\n  ", absl::StrReplaceAll(status.message(), {{"\n", "\n  "}})));
    default:
      if (status.message().empty()) {
        return Fail(absl::StrCat("controller at ", server, " answered ",
                                 absl::StatusCodeToString(status.code()), " with no message"));
      }
      return Fail(std::string(status.message()));
  }
}

std::string Cli::BashCompletion() const {
  // Every command path ("", "local", "local up", ...) with its subcommands
  // and options, and the words some options take.
  std::vector<const CLI::App*> apps = {&app_};
  for (size_t i = 0; i < apps.size(); ++i) {
    for (const CLI::App* sub : apps[i]->get_subcommands([](const CLI::App*) { return true; })) {
      apps.push_back(sub);
    }
  }
  std::string commands, options, values, arguments;
  for (const CLI::App* app : apps) {
    const std::string path = CommandPath(app);
    absl::StrAppend(&commands, "    \"", path, "\") echo \"",
                    absl::StrJoin(SubcommandNames(app), " "), "\" ;;\n");
    absl::StrAppend(&options, "    \"", path, "\") echo \"", absl::StrJoin(OptionNames(app), " "),
                    "\" ;;\n");
    for (const CLI::Option* option : app->get_options()) {
      auto words = completions_.find(option);
      if (words == completions_.end()) continue;
      if (!option->nonpositional()) {
        absl::StrAppend(&arguments, "    \"", path, "\") echo \"",
                        absl::StrJoin(words->second, " "), "\" ;;\n");
        continue;
      }
      std::vector<std::string> patterns;
      for (const std::string& name : option->get_snames())
        patterns.push_back("\"" + path + "|-" + name + "\"");
      for (const std::string& name : option->get_lnames())
        patterns.push_back("\"" + path + "|--" + name + "\"");
      absl::StrAppend(&values, "    ", absl::StrJoin(patterns, "|"), ") echo \"",
                      absl::StrJoin(words->second, " "), "\" ;;\n");
    }
  }
  return absl::StrCat(
      "# bash completion for nasctl (generated by `nasctl completion bash`).\n"
      "# Use: source <(nasctl completion bash), or save it as\n"
      "# /etc/bash_completion.d/nasctl.\n"
      "_nasctl_commands() {\n  case \"$1\" in\n",
      commands, "  esac\n}\n", "_nasctl_options() {\n  case \"$1\" in\n", options, "  esac\n}\n",
      "_nasctl_values() {\n  case \"$1|$2\" in\n", values, "  esac\n}\n",
      "_nasctl_arguments() {\n  case \"$1\" in\n", arguments, "  esac\n}\n",
      R"bash(_nasctl() {
  local cur="${COMP_WORDS[COMP_CWORD]}" prev="" path="" word i words
  (( COMP_CWORD > 1 )) && prev="${COMP_WORDS[COMP_CWORD-1]}"
  for (( i = 1; i < COMP_CWORD; i++ )); do
    word="${COMP_WORDS[i]}"
    if [[ " $(_nasctl_commands "$path") " == *" $word "* ]]; then
      path="${path:+$path }$word"
    fi
  done
  words="$(_nasctl_values "$path" "$prev")"
  if [[ -n "$words" ]]; then
    COMPREPLY=($(compgen -W "$words" -- "$cur"))
  elif [[ "$cur" == -* ]]; then
    COMPREPLY=($(compgen -W "$(_nasctl_options "$path")" -- "$cur"))
  else
    words="$(_nasctl_commands "$path") $(_nasctl_arguments "$path")"
    if [[ -n "${words// /}" ]]; then
      COMPREPLY=($(compgen -W "$words" -- "$cur"))
    else
      COMPREPLY=($(compgen -f -- "$cur"))
    fi
  fi
}
complete -F _nasctl nasctl
)bash");
}

}  // namespace nas::client
