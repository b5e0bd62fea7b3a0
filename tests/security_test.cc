// TLS and bearer tokens across real processes. Certificates are made at test
// time with Debian's openssl CLI: a CA, a server certificate for 127.0.0.1 /
// localhost / nas-controller, a client certificate, and a second ("rogue")
// CA with its own server and client certificates that nothing trusts.
//
// Verified: a controller serving TLS with JobService and TaskService token
// files answers nasctl only with the right token and only over TLS; workers
// with a worker token complete trials over TLS while a worker holding a job
// token is refused; mutual TLS admits only clients with a certificate from
// --tls_client_ca; the controller reaches a TLS parameter server with its
// token, which nobody else has. Every wait has a deadline.
#include <sys/wait.h>

#include <string>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "common/channel.h"
#include "common/file_util.h"
#include "common/health_client.h"
#include "common/subprocess.h"
#include "gtest/gtest.h"
#include "proto/parameter_server.grpc.pb.h"
#include "tests/test_util.h"

namespace nas {
namespace {

using ::nas::testing::BinaryPath;
using ::nas::testing::LogTail;
using ::nas::testing::NewTempDir;
using ::nas::testing::RunningServer;
using ::nas::testing::StartServer;

constexpr char kJobToken[] = "job-token-5f3a9c1e";
constexpr char kWorkerToken[] = "worker-token-8b2d7e40";
constexpr char kPsToken[] = "ps-token-0c6e1f93";

struct Result {
  int exit_code = -1;
  std::string output;
};

Result RunCommand(const std::vector<std::string>& argv, const std::string& dir,
           absl::Duration timeout = absl::Seconds(60)) {
  static int counter = 0;
  const std::string log = absl::StrCat(dir, "/cmd-", counter++, ".log");
  Result result;
  auto process = Subprocess::Start(argv, log);
  if (!process.ok()) {
    result.output = std::string(process.status().message());
    return result;
  }
  auto status = process->Wait(timeout);
  if (status.ok() && WIFEXITED(*status)) result.exit_code = WEXITSTATUS(*status);
  result.output = ReadFile(log).value_or("");
  return result;
}

// Waits until the file at `path` contains `needle`, or `timeout` passes.
bool WaitForLogLine(const std::string& path, const std::string& needle, absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  while (absl::Now() < deadline) {
    if (absl::StrContains(ReadFile(path).value_or(""), needle)) return true;
    absl::SleepFor(absl::Milliseconds(50));
  }
  return false;
}

// The PKI every test uses, made once.
struct Pki {
  std::string dir;
  std::string ca, server_cert, server_key, client_cert, client_key;
  std::string rogue_ca, rogue_server_cert, rogue_server_key, rogue_client_cert, rogue_client_key;
  std::string job_tokens, worker_tokens, job_token, worker_token, ps_tokens, ps_token;
};

class SecurityTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    pki_ = new Pki;
    pki_->dir = NewTempDir("pki");
    absl::Status made = MakePki(*pki_);
    if (!made.ok()) pki_error_ = new std::string(made.ToString());
  }
  static void TearDownTestSuite() {
    delete pki_;
    pki_ = nullptr;
  }

  void SetUp() override {
    ASSERT_EQ(pki_error_, nullptr) << *pki_error_;
    dir_ = NewTempDir("security");
  }

  static absl::Status Openssl(const std::vector<std::string>& args, const std::string& dir) {
    std::vector<std::string> argv = {"/usr/bin/openssl"};
    argv.insert(argv.end(), args.begin(), args.end());
    Result result = RunCommand(argv, dir);
    if (result.exit_code != 0) {
      return absl::InternalError(
          absl::StrCat("openssl ", args[0], " failed: ", result.output));
    }
    return absl::OkStatus();
  }

  // A CA certificate and key: DIR/NAME.pem, DIR/NAME.key.
  static absl::Status MakeCa(const std::string& dir, const std::string& name) {
    return Openssl({"req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-days", "2", "-subj", "/CN=" + name, "-keyout",
                    dir + "/" + name + ".key", "-out", dir + "/" + name + ".pem", "-addext",
                    "basicConstraints=critical,CA:TRUE", "-addext",
                    "keyUsage=critical,keyCertSign,cRLSign"},
                   dir);
  }

  // A leaf certificate signed by CA `ca`: DIR/NAME.pem, DIR/NAME.key.
  static absl::Status MakeLeaf(const std::string& dir, const std::string& ca,
                               const std::string& name, const std::string& extensions) {
    const std::string ext_file = dir + "/" + name + ".ext";
    if (absl::Status s = WriteFileAtomically(ext_file, extensions); !s.ok()) return s;
    if (absl::Status s = Openssl({"req", "-new", "-newkey", "ec", "-pkeyopt",
                                  "ec_paramgen_curve:prime256v1", "-nodes", "-subj", "/CN=" + name,
                                  "-keyout", dir + "/" + name + ".key", "-out",
                                  dir + "/" + name + ".csr"},
                                 dir);
        !s.ok()) {
      return s;
    }
    static int serial = 1000;
    return Openssl({"x509", "-req", "-in", dir + "/" + name + ".csr", "-CA", dir + "/" + ca + ".pem",
                    "-CAkey", dir + "/" + ca + ".key", "-set_serial", absl::StrCat(serial++),
                    "-days", "2", "-extfile", ext_file, "-out", dir + "/" + name + ".pem"},
                   dir);
  }

  static absl::Status MakePki(Pki& pki) {
    const std::string& d = pki.dir;
    const std::string server_ext =
        "subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:nas-controller\n"
        "extendedKeyUsage=serverAuth\nkeyUsage=critical,digitalSignature\n";
    const std::string client_ext = "extendedKeyUsage=clientAuth\nkeyUsage=critical,digitalSignature\n";
    for (absl::Status s : {MakeCa(d, "ca"), MakeLeaf(d, "ca", "server", server_ext),
                           MakeLeaf(d, "ca", "client", client_ext), MakeCa(d, "rogue-ca"),
                           MakeLeaf(d, "rogue-ca", "rogue-server", server_ext),
                           MakeLeaf(d, "rogue-ca", "rogue-client", client_ext)}) {
      if (!s.ok()) return s;
    }
    pki.ca = d + "/ca.pem";
    pki.server_cert = d + "/server.pem";
    pki.server_key = d + "/server.key";
    pki.client_cert = d + "/client.pem";
    pki.client_key = d + "/client.key";
    pki.rogue_ca = d + "/rogue-ca.pem";
    pki.rogue_server_cert = d + "/rogue-server.pem";
    pki.rogue_server_key = d + "/rogue-server.key";
    pki.rogue_client_cert = d + "/rogue-client.pem";
    pki.rogue_client_key = d + "/rogue-client.key";
    pki.job_tokens = d + "/job.tokens";
    pki.worker_tokens = d + "/worker.tokens";
    pki.job_token = d + "/job.token";
    pki.worker_token = d + "/worker.token";
    pki.ps_tokens = d + "/ps.tokens";
    pki.ps_token = d + "/ps.token";
    for (const auto& [path, contents] : std::vector<std::pair<std::string, std::string>>{
             {pki.job_tokens, absl::StrCat("# nasctl users\nsomeone-else-token\n", kJobToken, "\n")},
             {pki.worker_tokens, absl::StrCat(kWorkerToken, "\n")},
             {pki.job_token, absl::StrCat(kJobToken, "\n")},
             {pki.worker_token, absl::StrCat(kWorkerToken, "\n")},
             {pki.ps_tokens, absl::StrCat("# the controller\n", kPsToken, "\n")},
             {pki.ps_token, absl::StrCat(kPsToken, "\n")}}) {
      if (absl::Status s = WriteFileAtomically(path, contents); !s.ok()) return s;
    }
    return absl::OkStatus();
  }

  // A controller serving TLS with both token files, plus `extra` flags.
  absl::StatusOr<RunningServer> StartTlsController(std::vector<std::string> extra = {}) {
    std::vector<std::string> args = {"--data_dir=" + dir_ + "/controller",
                                     "--tls_cert=" + pki_->server_cert,
                                     "--tls_key=" + pki_->server_key,
                                     "--job_tokens_file=" + pki_->job_tokens,
                                     "--worker_tokens_file=" + pki_->worker_tokens};
    args.insert(args.end(), extra.begin(), extra.end());
    return StartServer("controller/nas_controller", args, dir_);
  }

  Result Nasctl(int port, std::vector<std::string> args, absl::Duration timeout = absl::Seconds(60)) {
    std::vector<std::string> argv = {BinaryPath("client/nasctl"),
                                     absl::StrCat("--server=127.0.0.1:", port), "--timeout=20s"};
    argv.insert(argv.end(), args.begin(), args.end());
    return RunCommand(argv, dir_, timeout);
  }

  std::string WriteSpec(const std::string& name, const std::string& strategy, int max_trials) {
    const std::string path = absl::StrCat(dir_, "/", name, ".yaml");
    EXPECT_TRUE(WriteFileAtomically(path, absl::StrCat(R"(
name: )", name, R"(
search_space:
  macro_cnn: {filter_heights: [3, 5], filter_widths: [3, 5], num_filters: [24, 64],
              depth: {initial_layers: 2, max_layers: 2}}
strategy: {name: )", strategy, R"(, seed: 1}
parallelism: {num_replicas: 1, children_per_replica: 2}
budget: {max_trials: )", max_trials, R"(}
evaluator: {synthetic: {duration_seconds: 0.01}, lease_seconds: 10}
)"))
                    .ok());
    return path;
  }

  ChannelOptions TlsOptions() const {
    ChannelOptions options;
    options.tls_ca_pem = ReadFile(pki_->ca).value_or("");
    return options;
  }

  static Pki* pki_;
  static std::string* pki_error_;
  std::string dir_;
};

Pki* SecurityTest::pki_ = nullptr;
std::string* SecurityTest::pki_error_ = nullptr;

TEST_F(SecurityTest, TlsControllerServesNasctlOnlyWithTheRightTokenOverTls) {
  auto controller = StartTlsController();
  ASSERT_TRUE(controller.ok()) << controller.status();
  const int port = controller->ready.grpc_port;
  EXPECT_TRUE(absl::StrContains(LogTail(controller->log_path), "over TLS"))
      << LogTail(controller->log_path);
  const std::string spec = WriteSpec("tls-job", "random", 2);
  const std::string tls_ca = "--tls_ca=" + pki_->ca;

  // The right token over TLS: submit and list work; health needs no token.
  Result submit = Nasctl(port, {"submit", spec, tls_ca, "--token_file=" + pki_->job_token});
  ASSERT_EQ(submit.exit_code, 0) << submit.output;
  Result list = Nasctl(port, {"list", "-o", "csv", tls_ca, "--token=" + std::string(kJobToken)});
  ASSERT_EQ(list.exit_code, 0) << list.output;
  EXPECT_TRUE(absl::StrContains(list.output, ",tls-job,")) << list.output;
  Result health = Nasctl(port, {"health", tls_ca});
  EXPECT_EQ(health.exit_code, 0) << health.output;
  // The name override: the certificate also names nas-controller.
  Result renamed = Nasctl(port, {"list", tls_ca, "--tls_server_name=nas-controller",
                                 "--token_file=" + pki_->job_token});
  EXPECT_EQ(renamed.exit_code, 0) << renamed.output;

  // No token, a wrong token, and a worker's token: UNAUTHENTICATED, exit 1,
  // and the message never repeats what was sent.
  Result none = Nasctl(port, {"list", tls_ca});
  EXPECT_EQ(none.exit_code, 1) << none.output;
  EXPECT_TRUE(absl::StrContains(none.output, "refused the call: JobService requires a bearer token"))
      << none.output;
  for (const std::string& token : {std::string("wrong-token-123"), std::string(kWorkerToken)}) {
    Result wrong = Nasctl(port, {"list", tls_ca, "--token=" + token});
    EXPECT_EQ(wrong.exit_code, 1) << wrong.output;
    EXPECT_TRUE(absl::StrContains(wrong.output, "bearer token is not valid")) << wrong.output;
    EXPECT_FALSE(absl::StrContains(wrong.output, token)) << wrong.output;
  }

  // Plaintext against the TLS port fails, with the hint to pass --tls_ca.
  Result plaintext = Nasctl(port, {"list", "--token_file=" + pki_->job_token});
  EXPECT_EQ(plaintext.exit_code, 1) << plaintext.output;
  EXPECT_TRUE(absl::StrContains(plaintext.output, "pass --tls_ca")) << plaintext.output;
  EXPECT_FALSE(CheckHealth(absl::StrCat("127.0.0.1:", port), absl::Seconds(3)).ok());
  EXPECT_TRUE(
      CheckHealth(absl::StrCat("127.0.0.1:", port), TlsOptions(), absl::Seconds(10)).ok());

  // TLS verification is real: an untrusted CA or a name the certificate does
  // not hold is refused.
  Result rogue = Nasctl(port, {"list", "--tls_ca=" + pki_->rogue_ca,
                               "--token_file=" + pki_->job_token});
  EXPECT_EQ(rogue.exit_code, 1) << rogue.output;
  Result misnamed = Nasctl(port, {"list", tls_ca, "--tls_server_name=somewhere-else",
                                  "--token_file=" + pki_->job_token});
  EXPECT_EQ(misnamed.exit_code, 1) << misnamed.output;

  // Nothing secret reached the controller's log.
  const std::string log = ReadFile(controller->log_path).value_or("");
  EXPECT_TRUE(absl::StrContains(log, "JobService: rejected a call")) << log;
  for (const char* secret : {kJobToken, kWorkerToken, "wrong-token-123"}) {
    EXPECT_FALSE(absl::StrContains(log, secret)) << secret;
  }
}

TEST_F(SecurityTest, WorkerWithWorkerTokenCompletesTrialsOverTlsAndJobTokenIsRefused) {
  auto controller = StartTlsController();
  ASSERT_TRUE(controller.ok()) << controller.status();
  const int port = controller->ready.grpc_port;
  const std::string controller_flag = absl::StrCat("--controller=127.0.0.1:", port);

  // A worker holding a nasctl user's token: TaskService refuses it.
  const std::string bad_dir = NewTempDir("bad-worker");
  auto bad = StartServer("worker/nas_worker",
                         {controller_flag, "--device=cpu", "--tls_ca=" + pki_->ca,
                          "--token_file=" + pki_->job_token, "--worker_id=bad-worker"},
                         bad_dir, "worker_ready_file");
  ASSERT_TRUE(bad.ok()) << bad.status();
  EXPECT_TRUE(WaitForLogLine(bad->log_path, "controller rejected this worker", absl::Seconds(30)))
      << LogTail(bad->log_path);
  EXPECT_TRUE(absl::StrContains(ReadFile(bad->log_path).value_or(""), "UNAUTHENTICATED"))
      << LogTail(bad->log_path);
  EXPECT_TRUE(WaitForLogLine(controller->log_path, "TaskService: rejected a call",
                             absl::Seconds(10)))
      << LogTail(controller->log_path);

  // A worker with the worker token completes every trial over TLS.
  const std::string good_dir = NewTempDir("good-worker");
  auto good = StartServer("worker/nas_worker",
                          {controller_flag, "--device=cpu", "--tls_ca=" + pki_->ca,
                           "--token_file=" + pki_->worker_token, "--worker_id=good-worker"},
                          good_dir, "worker_ready_file");
  ASSERT_TRUE(good.ok()) << good.status();
  Result submit = Nasctl(port, {"submit", WriteSpec("worker-job", "random", 4), "--watch",
                                "--tls_ca=" + pki_->ca, "--token_file=" + pki_->job_token},
                         absl::Seconds(120));
  ASSERT_EQ(submit.exit_code, 0) << submit.output << LogTail(good->log_path);
  Result list = Nasctl(port, {"list", "-o", "csv", "--tls_ca=" + pki_->ca,
                              "--token_file=" + pki_->job_token});
  ASSERT_EQ(list.exit_code, 0) << list.output;
  std::vector<std::string> rows = absl::StrSplit(list.output, '\n', absl::SkipEmpty());
  ASSERT_EQ(rows.size(), 2u) << list.output;
  std::vector<std::string> cells = absl::StrSplit(rows[1], ',');
  ASSERT_GE(cells.size(), 5u) << rows[1];
  EXPECT_EQ(cells[2], "succeeded") << rows[1];
  EXPECT_EQ(cells[4], "4") << rows[1];  // trials_succeeded
  Result trials = Nasctl(port, {"trials", cells[0], "-o", "csv", "--tls_ca=" + pki_->ca,
                                "--token_file=" + pki_->job_token});
  ASSERT_EQ(trials.exit_code, 0) << trials.output;
  EXPECT_TRUE(absl::StrContains(trials.output, "good-worker")) << trials.output;
  EXPECT_FALSE(absl::StrContains(trials.output, "bad-worker")) << trials.output;
}

TEST_F(SecurityTest, MutualTlsAdmitsOnlyClientsWithACertificateFromTheClientCa) {
  auto controller = StartServer(
      "controller/nas_controller",
      {"--data_dir=" + dir_ + "/controller", "--tls_cert=" + pki_->server_cert,
       "--tls_key=" + pki_->server_key, "--tls_client_ca=" + pki_->ca},
      dir_);
  ASSERT_TRUE(controller.ok()) << controller.status();
  const int port = controller->ready.grpc_port;
  EXPECT_TRUE(absl::StrContains(LogTail(controller->log_path), "over mutual TLS"))
      << LogTail(controller->log_path);
  const std::string tls_ca = "--tls_ca=" + pki_->ca;

  Result without = Nasctl(port, {"list", tls_ca});
  EXPECT_EQ(without.exit_code, 1) << without.output;
  Result rogue = Nasctl(port, {"list", tls_ca, "--tls_client_cert=" + pki_->rogue_client_cert,
                               "--tls_client_key=" + pki_->rogue_client_key});
  EXPECT_EQ(rogue.exit_code, 1) << rogue.output;
  Result with = Nasctl(port, {"list", tls_ca, "--tls_client_cert=" + pki_->client_cert,
                              "--tls_client_key=" + pki_->client_key});
  EXPECT_EQ(with.exit_code, 0) << with.output;

  // The same through the library, health included: no certificate, no call.
  const std::string address = absl::StrCat("127.0.0.1:", port);
  EXPECT_FALSE(CheckHealth(address, TlsOptions(), absl::Seconds(5)).ok());
  ChannelOptions mutual = TlsOptions();
  mutual.tls_client_cert_pem = ReadFile(pki_->client_cert).value_or("");
  mutual.tls_client_key_pem = ReadFile(pki_->client_key).value_or("");
  EXPECT_TRUE(CheckHealth(address, mutual, absl::Seconds(10)).ok());
}

TEST_F(SecurityTest, ControllerReachesTlsParameterServerWithItsTokenAndNobodyElseDoes) {
  const std::string ps_dir = NewTempDir("ps");
  auto ps = StartServer("parameter_server/nas_parameter_server",
                        {"--data_dir=" + ps_dir + "/data", "--tls_cert=" + pki_->server_cert,
                         "--tls_key=" + pki_->server_key, "--tokens_file=" + pki_->ps_tokens},
                        ps_dir);
  ASSERT_TRUE(ps.ok()) << ps.status();
  const std::string ps_address = absl::StrCat("127.0.0.1:", ps->ready.grpc_port);
  auto controller = StartTlsController(
      {"--parameter_servers=" + ps_address, "--tls_ca=" + pki_->ca,
       "--parameter_server_token_file=" + pki_->ps_token});
  ASSERT_TRUE(controller.ok()) << controller.status();
  const int port = controller->ready.grpc_port;
  auto worker = StartServer("worker/nas_worker",
                            {absl::StrCat("--controller=127.0.0.1:", port), "--device=cpu",
                             "--tls_ca=" + pki_->ca, "--token_file=" + pki_->worker_token},
                            NewTempDir("worker"), "worker_ready_file");
  ASSERT_TRUE(worker.ok()) << worker.status();

  // REINFORCE needs the parameter server: InitJob, Pull and Push every round.
  Result submit = Nasctl(port, {"submit", WriteSpec("ps-job", "reinforce", 6), "--watch",
                                "--tls_ca=" + pki_->ca, "--token_file=" + pki_->job_token},
                         absl::Seconds(120));
  ASSERT_EQ(submit.exit_code, 0) << submit.output << LogTail(controller->log_path);
  EXPECT_TRUE(absl::StrContains(submit.output, "succeeded")) << submit.output;

  // The shard holds the job, with updates pushed over TLS with the token.
  auto shard_info = [&](const ChannelOptions& options, v1::GetShardInfoResponse* response) {
    auto stub = v1::ParameterServer::NewStub(CreateChannel(ps_address, options));
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
    return stub->GetShardInfo(&context, v1::GetShardInfoRequest(), response);
  };
  ChannelOptions with_token = TlsOptions();
  with_token.token = kPsToken;
  v1::GetShardInfoResponse info;
  grpc::Status status = shard_info(with_token, &info);
  ASSERT_TRUE(status.ok()) << status.error_message();
  ASSERT_EQ(info.jobs_size(), 1) << info.DebugString();
  EXPECT_GT(info.jobs(0).version(), 0) << info.DebugString();

  // Without the token, with the controller's JobService token, or in
  // plaintext: refused.
  ChannelOptions without_token = TlsOptions();
  EXPECT_EQ(shard_info(without_token, &info).error_code(), grpc::StatusCode::UNAUTHENTICATED);
  ChannelOptions job_token = TlsOptions();
  job_token.token = kJobToken;
  EXPECT_EQ(shard_info(job_token, &info).error_code(), grpc::StatusCode::UNAUTHENTICATED);
  ChannelOptions plaintext;
  plaintext.token = kPsToken;
  EXPECT_EQ(shard_info(plaintext, &info).error_code(), grpc::StatusCode::UNAVAILABLE);
}

TEST_F(SecurityTest, BadTlsAndTokenFlagsStopServersWithExitCode2NamingTheFlag) {
  struct Case {
    std::string binary;
    std::vector<std::string> args;
    std::string expected;
  };
  const std::string missing = dir_ + "/no-such-file.pem";
  const std::vector<Case> cases = {
      {"controller/nas_controller", {"--tls_cert=" + pki_->server_cert}, "--tls_key"},
      {"controller/nas_controller",
       {"--tls_cert=" + missing, "--tls_key=" + pki_->server_key}, "--tls_cert"},
      {"controller/nas_controller",
       {"--tls_cert=" + pki_->server_key, "--tls_key=" + pki_->server_key}, "--tls_cert"},
      {"controller/nas_controller", {"--tls_client_ca=" + pki_->ca}, "--tls_client_ca"},
      {"controller/nas_controller", {"--job_tokens_file=" + missing}, "--job_tokens_file"},
      {"controller/nas_controller", {"--parameter_server_token_file=" + pki_->job_tokens},
       "--parameter_server_token_file"},
      {"parameter_server/nas_parameter_server", {"--tokens_file=" + missing}, "--tokens_file"},
      {"parameter_server/nas_parameter_server", {"--tls_key=" + pki_->server_key}, "--tls_cert"},
      {"worker/nas_worker", {"--tls_client_cert=" + pki_->client_cert}, "--tls_client_key"},
      {"worker/nas_worker", {"--token_file=" + missing}, "--token_file"},
  };
  for (const Case& c : cases) {
    std::vector<std::string> argv = {BinaryPath(c.binary), "--data_dir=" + dir_ + "/data",
                                     "--port=0", "--metrics_port=-1"};
    if (c.binary == "worker/nas_worker") argv = {BinaryPath(c.binary), "--metrics_port=-1"};
    argv.insert(argv.end(), c.args.begin(), c.args.end());
    Result result = RunCommand(argv, dir_, absl::Seconds(30));
    EXPECT_EQ(result.exit_code, 2) << c.binary << " " << c.args[0] << "\n" << result.output;
    EXPECT_TRUE(absl::StrContains(result.output, c.expected))
        << c.binary << " " << c.args[0] << "\n" << result.output;
  }
  // nasctl: the same, as a usage error.
  Result nasctl = RunCommand({BinaryPath("client/nasctl"), "list", "--token_file=" + missing}, dir_);
  EXPECT_EQ(nasctl.exit_code, 2) << nasctl.output;
  EXPECT_TRUE(absl::StrContains(nasctl.output, "--token_file")) << nasctl.output;
}

}  // namespace
}  // namespace nas
