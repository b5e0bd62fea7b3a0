// nasctl: the command-line client users live in. Submit jobs, watch them,
// list, inspect and export their trials, and run a whole cluster locally.
//
// Exit codes: 0 success, 1 failure (including a rejected job spec), 2 usage.
#include <unistd.h>

#include <cstdio>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "absl/flags/flag.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "client/export.h"
#include "client/local_cluster.h"
#include "client/logs_command.h"
#include "client/output.h"
#include "client/watch_view.h"
#include "common/auth.h"
#include "common/channel.h"
#include "common/file_util.h"
#include "common/grpc_status.h"
#include "common/health_client.h"
#include "common/process.h"
#include "common/status_macros.h"
#include "common/proto_yaml.h"
#include "proto/job_service.grpc.pb.h"

ABSL_FLAG(std::string, server, "",
          "Controller address host:port (default: $NAS_SERVER, else localhost:7070).");
ABSL_FLAG(absl::Duration, timeout, absl::Seconds(30), "Deadline of each call (e.g. 10s).");
ABSL_FLAG(std::string, token_file, "",
          "File holding the bearer token for the controller's JobService (default: "
          "$NAS_TOKEN_FILE).");
ABSL_FLAG(std::string, token, "",
          "The bearer token itself (default: $NAS_TOKEN). Prefer --token_file: other users of "
          "the machine can read command lines.");
ABSL_FLAG(std::string, o, "table", "Output format of data: table, json, yaml or csv.");
ABSL_FLAG(bool, watch, false, "submit: watch the job until it ends.");
ABSL_FLAG(bool, validate_only, false, "submit: only check the spec; create nothing.");
ABSL_FLAG(int, top, 0, "trials: only the N best (0 = all).");
ABSL_FLAG(std::string, state, "", "trials: only this state (succeeded, failed, ...).");
ABSL_FLAG(std::string, order, "reward", "trials: reward (best first) or time.");
ABSL_FLAG(std::string, trial, "", "export: the trial to export (default: the best).");
ABSL_FLAG(std::string, out, "", "export: output directory (default: ./<job>-<trial>).");
ABSL_FLAG(int, attempt, 0, "logs: the attempt (default: the latest).");
ABSL_FLAG(bool, follow, false, "logs: keep printing until the attempt ends.");
ABSL_FLAG(std::string, data_dir, "",
          "local: data directory (default: $NAS_LOCAL_DIR, else ~/.nas-service/local).");
ABSL_FLAG(std::string, bin_dir, "", "local: directory of the nas_* binaries (default: beside nasctl).");
ABSL_FLAG(int, shards, 1, "local up: parameter-server shards S.");
ABSL_FLAG(int, workers, 2, "local up: workers W.");
ABSL_FLAG(int, controller_port, 7070, "local up: the controller's port (0 = any free port).");
ABSL_FLAG(int, worker_threads, 1, "local up: LibTorch threads per worker.");
ABSL_FLAG(std::string, device, "auto", "local up: worker device (auto, cpu, cuda).");
ABSL_FLAG(std::string, data_roots, "",
          "local up: the workers' --data_roots, comma-separated directories job specs may name "
          "tables and datasets in (empty: the worker's default).");

namespace nas::client {
namespace {

constexpr char kVersion[] = "0.2.0";
constexpr char kUsage[] =
    "nasctl: submit and watch neural architecture search jobs.\n\n"
    "usage: nasctl COMMAND [ARGS] [flags]\n\n"
    "commands:\n"
    "  submit FILE.yaml [--watch] [--validate_only]   submit a job spec\n"
    "  list                                           list jobs\n"
    "  get JOB                                        show one job\n"
    "  watch JOB                                      live view until the job ends\n"
    "  trials JOB [--top N] [--state S] [--order reward|time]\n"
    "  trial JOB TRIAL                                one trial and its learning curve\n"
    "  export JOB [--trial ID] [--out DIR]            architecture JSON, summary, PyTorch module\n"
    "  logs JOB TRIAL [--attempt N] [--follow]        a trial's output (command evaluator)\n"
    "  cancel JOB                                     stop a job, keep its results\n"
    "  local up|down|status|address|prometheus-config a whole cluster on this machine\n"
    "  local restart COMPONENT                        restart one process (controller, ps-0, ...)\n"
    "  health                                         is the controller serving?\n"
    "  version\n\n"
    "global flags: --server HOST:PORT (or $NAS_SERVER), --timeout 30s, -o table|json|yaml|csv\n"
    "security:     --token_file F (or $NAS_TOKEN_FILE), --token T (or $NAS_TOKEN),\n"
    "              --tls_ca CA.pem (or $NAS_TLS_CA), --tls_server_name NAME,\n"
    "              --tls_client_cert C.pem --tls_client_key K.pem (docs/security.md)\n";

// Largest job spec `nasctl submit` reads (the controller takes up to 4 MiB of
// YAML; a real spec is a few KiB).
constexpr size_t kMaxSpecFileBytes = 1 << 20;

constexpr int kOk = 0;
constexpr int kFailure = 1;
constexpr int kUsageError = 2;

// A message may quote what a server sent or what a user typed: its lines are
// kept, each escaped (EscapeForTerminal), so no control byte reaches the
// terminal from an error either.
std::string PrintableLines(const std::string& message) {
  return absl::StrJoin(absl::StrSplit(message, '\n'), "\n",
                       [](std::string* out, absl::string_view line) {
                         out->append(EscapeForTerminal(line));
                       });
}

int Usage(const std::string& problem) {
  std::cerr << "nasctl: " << PrintableLines(problem) << "\n\n" << kUsage;
  return kUsageError;
}

int Fail(const std::string& message) {
  std::cerr << "nasctl: " << PrintableLines(message) << "\n";
  return kFailure;
}

std::string ServerAddress() {
  std::string server = absl::GetFlag(FLAGS_server);
  if (server.empty()) {
    const char* env = std::getenv("NAS_SERVER");
    server = env != nullptr && *env != '\0' ? env : "localhost:7070";
  }
  return server;
}

std::string EnvOrEmpty(const char* name) {
  const char* value = std::getenv(name);
  return value != nullptr ? value : "";
}

// How to dial the controller: the --tls_* flags ($NAS_TLS_CA for the CA) and
// the bearer token from --token_file, --token, $NAS_TOKEN_FILE or $NAS_TOKEN,
// the first one set. Errors name the flag or variable.
absl::StatusOr<ChannelOptions> ControllerChannelOptions() {
  ASSIGN_OR_RETURN(ChannelOptions options, ChannelOptionsFromFlags("NAS_TLS_CA"));
  const std::string token_file = absl::GetFlag(FLAGS_token_file);
  const std::string token = absl::GetFlag(FLAGS_token);
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

// One clear line for a failed call, with the next step where there is one.
// `tls` says whether the call went over TLS, for the hints.
int FailCall(const absl::Status& status, bool tls) {
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
                               absl::FormatDuration(absl::GetFlag(FLAGS_timeout)),
                               " — raise --timeout or check 'nasctl local status'"));
    case absl::StatusCode::kInvalidArgument:
      return Fail(absl::StrCat("rejected:\n  ", absl::StrReplaceAll(status.message(),
                                                                    {{"\n", "\n  "}})));
    default:
      if (status.message().empty()) {
        return Fail(absl::StrCat("controller at ", server, " answered ",
                                 absl::StatusCodeToString(status.code()), " with no message"));
      }
      return Fail(std::string(status.message()));
  }
}

class Client {
 public:
  // Every call on the channel carries `options.token` when set.
  explicit Client(const ChannelOptions& options)
      : tls_(options.tls()),
        stub_(v1::JobService::NewStub(CreateChannel(ServerAddress(), options))) {}

  void Prepare(grpc::ClientContext* context) {
    context->set_deadline(absl::ToChronoTime(absl::Now() + absl::GetFlag(FLAGS_timeout)));
  }
  v1::JobService::Stub* stub() { return stub_.get(); }
  int FailCall(const absl::Status& status) const { return client::FailCall(status, tls_); }

 private:
  const bool tls_;
  std::unique_ptr<v1::JobService::Stub> stub_;
};

absl::StatusOr<OutputFormat> Format() { return ParseOutputFormat(absl::GetFlag(FLAGS_o)); }

int Watch(Client& client, const std::string& job_id);

int Submit(Client& client, const std::vector<std::string>& args) {
  if (args.size() != 1) return Usage("submit takes one FILE.yaml");
  // A regular file of at most kMaxSpecFileBytes: never blocks on a FIFO or
  // reads a device or a huge file into memory.
  absl::StatusOr<std::string> yaml = ReadRegularFile(args[0], kMaxSpecFileBytes);
  if (!yaml.ok()) return Fail(std::string(yaml.status().message()));
  v1::SubmitJobRequest request;
  absl::Status parsed = ParseYamlToMessage(*yaml, request.mutable_spec());
  if (!parsed.ok()) {
    return Fail(absl::StrCat(args[0], " is not a valid job spec:\n  ",
                             absl::StrReplaceAll(parsed.message(), {{"\n", "\n  "}})));
  }
  request.set_validate_only(absl::GetFlag(FLAGS_validate_only));
  v1::SubmitJobResponse response;
  grpc::ClientContext context;
  client.Prepare(&context);
  absl::Status status = FromGrpcStatus(client.stub()->SubmitJob(&context, request, &response));
  if (!status.ok()) return client.FailCall(status);
  if (request.validate_only()) {
    std::cout << args[0] << ": valid\n";
    return kOk;
  }
  absl::StatusOr<OutputFormat> format = Format();
  if (!format.ok()) return Usage(std::string(format.status().message()));
  if (*format == OutputFormat::kTable) {
    std::cout << "submitted job " << EscapeForTerminal(response.job().job_id()) << "\n";
  } else {
    std::cout << FormatJob(response.job(), *format);
  }
  if (absl::GetFlag(FLAGS_watch)) return Watch(client, response.job().job_id());
  return kOk;
}

int List(Client& client) {
  absl::StatusOr<OutputFormat> format = Format();
  if (!format.ok()) return Usage(std::string(format.status().message()));
  std::vector<v1::Job> jobs;
  std::string token;
  do {
    v1::ListJobsRequest request;
    request.set_page_token(token);
    v1::ListJobsResponse response;
    grpc::ClientContext context;
    client.Prepare(&context);
    absl::Status status = FromGrpcStatus(client.stub()->ListJobs(&context, request, &response));
    if (!status.ok()) return client.FailCall(status);
    jobs.insert(jobs.end(), response.jobs().begin(), response.jobs().end());
    token = response.next_page_token();
  } while (!token.empty());
  std::cout << FormatJobs(jobs, *format);
  return kOk;
}

absl::StatusOr<v1::Job> FetchJob(Client& client, const std::string& job_id) {
  v1::GetJobRequest request;
  request.set_job_id(job_id);
  v1::Job job;
  grpc::ClientContext context;
  client.Prepare(&context);
  RETURN_IF_ERROR(FromGrpcStatus(client.stub()->GetJob(&context, request, &job)));
  return job;
}

int Get(Client& client, const std::vector<std::string>& args) {
  if (args.size() != 1) return Usage("get takes one JOB id");
  absl::StatusOr<OutputFormat> format = Format();
  if (!format.ok()) return Usage(std::string(format.status().message()));
  absl::StatusOr<v1::Job> job = FetchJob(client, args[0]);
  if (!job.ok()) return client.FailCall(job.status());
  std::cout << FormatJob(*job, *format);
  return kOk;
}

int Watch(Client& client, const std::string& job_id) {
  v1::WatchJobRequest request;
  request.set_job_id(job_id);
  request.set_status_interval_seconds(1);
  grpc::ClientContext context;  // No deadline: a watch lasts as long as the job.
  std::unique_ptr<grpc::ClientReader<v1::WatchJobEvent>> reader =
      client.stub()->WatchJob(&context, request);
  WatchView view(std::cout, ::isatty(STDOUT_FILENO) == 1);
  v1::WatchJobEvent event;
  while (reader->Read(&event)) {
    if (event.has_trial()) view.OnTrial(event.trial());
    if (event.has_status()) view.OnStatus(event.status());
  }
  absl::Status status = FromGrpcStatus(reader->Finish());
  if (!status.ok()) return client.FailCall(status);
  view.Finish();
  const v1::JobState final_state = view.last_status().state();
  return final_state == v1::JOB_STATE_FAILED ? kFailure : kOk;
}

int Trials(Client& client, const std::vector<std::string>& args) {
  if (args.size() != 1) return Usage("trials takes one JOB id");
  absl::StatusOr<OutputFormat> format = Format();
  if (!format.ok()) return Usage(std::string(format.status().message()));
  v1::ListTrialsRequest base;
  base.set_job_id(args[0]);
  const std::string order = absl::GetFlag(FLAGS_order);
  if (order == "reward") {
    base.set_order(v1::ListTrialsRequest::ORDER_REWARD);
  } else if (order == "time") {
    base.set_order(v1::ListTrialsRequest::ORDER_TIME);
  } else {
    return Usage(absl::StrCat("--order must be reward or time, not '", order, "'"));
  }
  if (const std::string state = absl::GetFlag(FLAGS_state); !state.empty()) {
    v1::TrialState parsed;
    if (!v1::TrialState_Parse("TRIAL_STATE_" + absl::AsciiStrToUpper(state), &parsed)) {
      return Usage(absl::StrCat("--state must be queued, running, succeeded, failed or "
                                "cancelled, not '", state, "'"));
    }
    base.set_state(parsed);
  }
  const int top = absl::GetFlag(FLAGS_top);
  if (top < 0) return Usage("--top must be >= 0");
  std::vector<v1::Trial> trials;
  std::string token;
  do {
    v1::ListTrialsRequest request = base;
    request.set_page_token(token);
    request.set_page_size(top > 0 ? std::min(top, 1000) : 1000);
    v1::ListTrialsResponse response;
    grpc::ClientContext context;
    client.Prepare(&context);
    absl::Status status = FromGrpcStatus(client.stub()->ListTrials(&context, request, &response));
    if (!status.ok()) return client.FailCall(status);
    trials.insert(trials.end(), response.trials().begin(), response.trials().end());
    token = response.next_page_token();
  } while (!token.empty() && (top == 0 || static_cast<int>(trials.size()) < top));
  if (top > 0 && static_cast<int>(trials.size()) > top) trials.resize(top);
  std::cout << FormatTrials(trials, *format);
  return kOk;
}

int Trial(Client& client, const std::vector<std::string>& args) {
  if (args.size() != 2) return Usage("trial takes a JOB id and a TRIAL id");
  if (args[1].empty()) return Usage("trial: the TRIAL id is empty");
  absl::StatusOr<OutputFormat> format = Format();
  if (!format.ok()) return Usage(std::string(format.status().message()));
  v1::GetTrialRequest request;
  request.set_job_id(args[0]);
  request.set_trial_id(args[1]);
  v1::Trial trial;
  grpc::ClientContext context;
  client.Prepare(&context);
  absl::Status status = FromGrpcStatus(client.stub()->GetTrial(&context, request, &trial));
  if (!status.ok()) return client.FailCall(status);
  std::cout << FormatTrial(trial, *format);
  return kOk;
}

int Export(Client& client, const std::vector<std::string>& args) {
  if (args.size() != 1) return Usage("export takes one JOB id");
  absl::StatusOr<v1::Job> job = FetchJob(client, args[0]);
  if (!job.ok()) return client.FailCall(job.status());
  v1::GetTrialRequest request;
  request.set_job_id(args[0]);
  request.set_trial_id(absl::GetFlag(FLAGS_trial));
  v1::Trial trial;
  grpc::ClientContext context;
  client.Prepare(&context);
  absl::Status status = FromGrpcStatus(client.stub()->GetTrial(&context, request, &trial));
  if (!status.ok()) return client.FailCall(status);
  std::string out = absl::GetFlag(FLAGS_out);
  if (out.empty()) out = absl::StrCat(args[0], "-", trial.trial_id());
  absl::StatusOr<std::vector<std::string>> written = ExportTrial(*job, trial, out);
  if (!written.ok()) return Fail(std::string(written.status().message()));
  std::cout << "exported trial " << EscapeForTerminal(trial.trial_id()) << " (reward "
            << absl::StrFormat("%.4f", trial.metrics().reward()) << ") of job "
            << EscapeForTerminal(args[0]) << ":\n";
  for (const std::string& path : *written) std::cout << "  " << EscapeForTerminal(path) << "\n";
  return kOk;
}

int Cancel(Client& client, const std::vector<std::string>& args) {
  if (args.size() != 1) return Usage("cancel takes one JOB id");
  v1::CancelJobRequest request;
  request.set_job_id(args[0]);
  v1::Job job;
  grpc::ClientContext context;
  client.Prepare(&context);
  absl::Status status = FromGrpcStatus(client.stub()->CancelJob(&context, request, &job));
  if (!status.ok()) return client.FailCall(status);
  std::cout << "cancelled job " << EscapeForTerminal(job.job_id()) << " (" << job.trials_succeeded()
            << " trials succeeded; results kept)\n";
  return kOk;
}

int Local(const std::vector<std::string>& args) {
  if (args.size() == 2 && args[0] == "restart") {
    std::string data_dir = absl::GetFlag(FLAGS_data_dir);
    if (data_dir.empty()) data_dir = DefaultLocalDataDir();
    absl::StatusOr<LocalProcess> p =
        LocalRestart(data_dir, args[1], absl::Seconds(30), absl::Seconds(120));
    if (!p.ok()) return Fail(std::string(p.status().message()));
    std::cout << "restarted " << p->name << " (pid " << p->pid << ")";
    if (p->grpc_port > 0) std::cout << " on 127.0.0.1:" << p->grpc_port;
    std::cout << "\n";
    return kOk;
  }
  if (args.size() != 1) {
    return Usage("local takes one of: up, down, status, address, prometheus-config, "
                 "restart COMPONENT");
  }
  std::string data_dir = absl::GetFlag(FLAGS_data_dir);
  if (data_dir.empty()) data_dir = DefaultLocalDataDir();
  const std::string& action = args[0];
  if (action == "up") {
    LocalClusterOptions options;
    options.data_dir = data_dir;
    options.bin_dir = absl::GetFlag(FLAGS_bin_dir).empty() ? DefaultBinDir()
                                                           : absl::GetFlag(FLAGS_bin_dir);
    options.num_shards = absl::GetFlag(FLAGS_shards);
    options.num_workers = absl::GetFlag(FLAGS_workers);
    options.controller_port = absl::GetFlag(FLAGS_controller_port);
    options.worker_threads = absl::GetFlag(FLAGS_worker_threads);
    options.device = absl::GetFlag(FLAGS_device);
    options.data_roots = absl::GetFlag(FLAGS_data_roots);
    absl::StatusOr<std::vector<LocalProcess>> processes = LocalUp(options);
    if (!processes.ok()) return Fail(std::string(processes.status().message()));
    std::string controller;
    for (const LocalProcess& p : *processes) {
      if (p.name == "controller") controller = absl::StrCat("127.0.0.1:", p.grpc_port);
    }
    std::cout << "local cluster up: " << options.num_shards << " parameter server(s), controller at "
              << controller << ", " << options.num_workers << " worker(s)\n"
              << "  data and logs: " << data_dir << "\n";
    if (controller != "127.0.0.1:7070") {
      std::cout << "  export NAS_SERVER=" << controller << "\n";
    }
    return kOk;
  }
  if (action == "down") {
    absl::Status status = LocalDown(data_dir, absl::Seconds(30));
    if (!status.ok()) return Fail(std::string(status.message()));
    std::cout << "local cluster down\n";
    return kOk;
  }
  if (action == "status") {
    absl::StatusOr<std::vector<LocalProcess>> processes = LocalStatus(data_dir);
    if (!processes.ok()) return Fail(std::string(processes.status().message()));
    if (processes->empty()) {
      std::cout << "no local cluster runs from " << data_dir << "\n";
      return kOk;
    }
    bool all_ok = true;
    std::cout << absl::StrFormat("%-12s %-8s %-9s %-8s %-8s %s\n", "PROCESS", "PID", "STATE",
                                 "GRPC", "METRICS", "LOG");
    for (const LocalProcess& p : *processes) {
      const std::string state = !p.alive ? "DEAD" : (p.healthy ? "healthy" : "unhealthy");
      all_ok = all_ok && p.alive && p.healthy;
      std::cout << absl::StrFormat("%-12s %-8d %-9s %-8s %-8d %s\n", p.name, p.pid, state,
                                   p.grpc_port > 0 ? absl::StrCat(p.grpc_port) : "-",
                                   p.metrics_port, p.log_path);
    }
    return all_ok ? kOk : kFailure;
  }
  if (action == "address") {
    absl::StatusOr<std::string> address = LocalControllerAddress(data_dir);
    if (!address.ok()) return Fail(std::string(address.status().message()));
    std::cout << *address << "\n";
    return kOk;
  }
  if (action == "prometheus-config") {
    absl::StatusOr<std::string> config = PrometheusScrapeConfig(data_dir);
    if (!config.ok()) return Fail(std::string(config.status().message()));
    std::cout << *config;
    return kOk;
  }
  return Usage(absl::StrCat("unknown local action '", action, "'"));
}

int Run(const std::vector<std::string>& positional) {
  if (positional.size() < 2) return Usage("no command given");
  const std::string& command = positional[1];
  const std::vector<std::string> args(positional.begin() + 2, positional.end());
  if (absl::StatusOr<OutputFormat> format = Format(); !format.ok()) {
    return Usage(std::string(format.status().message()));
  }
  if (command == "version") {
    std::cout << "nasctl " << kVersion << "\n";
    return kOk;
  }
  if (command == "local") return Local(args);
  absl::StatusOr<ChannelOptions> channel = ControllerChannelOptions();
  if (!channel.ok()) {
    std::cerr << "nasctl: " << channel.status().message() << "\n";
    return kUsageError;
  }
  if (command == "health") {
    absl::Status status = CheckHealth(ServerAddress(), *channel, absl::GetFlag(FLAGS_timeout));
    if (!status.ok()) return FailCall(status, channel->tls());
    std::cout << "controller at " << ServerAddress() << " is serving\n";
    return kOk;
  }
  Client client(*channel);
  if (command == "submit") return Submit(client, args);
  if (command == "list") return List(client);
  if (command == "get") return Get(client, args);
  if (command == "watch") {
    if (args.size() != 1) return Usage("watch takes one JOB id");
    return Watch(client, args[0]);
  }
  if (command == "trials") return Trials(client, args);
  if (command == "trial") return Trial(client, args);
  if (command == "export") return Export(client, args);
  if (command == "cancel") return Cancel(client, args);
  if (command == "logs") {
    if (args.size() != 2 || args[1].empty()) return Usage("logs takes a JOB id and a TRIAL id");
    LogsOptions options{args[0], args[1], absl::GetFlag(FLAGS_attempt), absl::GetFlag(FLAGS_follow)};
    options.call_timeout = absl::GetFlag(FLAGS_timeout);
    absl::Status status = RunLogs(options, client.stub(), std::cout);
    return status.ok() ? kOk : client.FailCall(status);
  }
  return Usage(absl::StrCat("unknown command '", command, "'"));
}

}  // namespace
}  // namespace nas::client

int main(int argc, char** argv) {
  std::vector<std::string> positional = nas::InitProcess(argc, argv, nas::client::kUsage,
                                                          /*block_signals=*/false);
  return nas::client::Run(positional);
}
