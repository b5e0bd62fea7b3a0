#include "controller/trial_store.h"

#include <sqlite3.h>

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <limits>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/string_view.h"
#include "absl/time/clock.h"
#include "common/file_util.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "google/protobuf/util/json_util.h"

namespace nas::controller {
namespace {

// Version 1 gained the curves and trial_logs tables without a new number: adding a table
// keeps the file readable by controllers that do not know it (they ignore
// it), and CREATE TABLE IF NOT EXISTS adds it to a database made before it.
// Likewise trials.cached_from: a column with a default, which Open adds to a
// database made before it (kAddedColumns); older controllers ignore it.
constexpr int kSchemaVersion = 1;

// Columns added to a table after its CREATE TABLE first shipped: Open adds
// each one a database lacks, with ALTER TABLE.
struct AddedColumn {
  const char* table;
  const char* column;
  const char* definition;
};
constexpr AddedColumn kAddedColumns[] = {
    {"trials", "cached_from", "TEXT NOT NULL DEFAULT ''"},
    {"trials", "worker_seconds", "REAL NOT NULL DEFAULT 0"},
    {"trials", "epochs_trained", "INTEGER NOT NULL DEFAULT 0"},
    {"trials", "stopped_early", "INTEGER NOT NULL DEFAULT 0"},
    {"trials", "cached_from_job", "TEXT NOT NULL DEFAULT ''"},
    {"trials", "final_training", "INTEGER NOT NULL DEFAULT 0"},
    {"trials", "one_shot_score", "REAL NOT NULL DEFAULT 0"},
    // A language model's curve (dataset ptb): NULL in older rows.
    {"curves", "train_perplexity", "REAL"},
    {"curves", "validation_perplexity", "REAL"},
};

constexpr char kSchema[] = R"sql(
CREATE TABLE IF NOT EXISTS jobs (
  job_id          TEXT PRIMARY KEY,
  name            TEXT NOT NULL,
  state           TEXT NOT NULL,
  spec_json       TEXT NOT NULL,
  error           TEXT NOT NULL DEFAULT '',
  create_time_ms  INTEGER NOT NULL,
  start_time_ms   INTEGER NOT NULL DEFAULT 0,
  end_time_ms     INTEGER NOT NULL DEFAULT 0,
  baseline        REAL NOT NULL DEFAULT 0,
  next_sequence   INTEGER NOT NULL DEFAULT 1
);
CREATE TABLE IF NOT EXISTS trials (
  job_id            TEXT NOT NULL REFERENCES jobs(job_id),
  trial_id          TEXT NOT NULL,
  replica           INTEGER NOT NULL,
  round             INTEGER NOT NULL,
  state             TEXT NOT NULL,
  canonical         TEXT NOT NULL,
  architecture_json TEXT NOT NULL,
  reward            REAL,
  accuracy          REAL,
  parameters        INTEGER,
  flops             INTEGER,
  metrics_json      TEXT,
  attempts          INTEGER NOT NULL DEFAULT 0,
  worker_id         TEXT NOT NULL DEFAULT '',
  error             TEXT NOT NULL DEFAULT '',
  create_time_ms    INTEGER NOT NULL,
  end_time_ms       INTEGER NOT NULL DEFAULT 0,
  sequence          INTEGER,
  cached_from       TEXT NOT NULL DEFAULT '',
  worker_seconds    REAL NOT NULL DEFAULT 0,
  epochs_trained    INTEGER NOT NULL DEFAULT 0,
  stopped_early     INTEGER NOT NULL DEFAULT 0,
  cached_from_job   TEXT NOT NULL DEFAULT '',
  final_training    INTEGER NOT NULL DEFAULT 0,
  one_shot_score    REAL NOT NULL DEFAULT 0,
  PRIMARY KEY (job_id, trial_id)
);
CREATE INDEX IF NOT EXISTS trials_by_reward ON trials(job_id, state, reward DESC);
CREATE INDEX IF NOT EXISTS trials_by_sequence ON trials(job_id, sequence);
CREATE INDEX IF NOT EXISTS trials_by_round ON trials(job_id, replica, round);
CREATE TABLE IF NOT EXISTS curves (
  job_id              TEXT NOT NULL,
  trial_id            TEXT NOT NULL,
  attempt             INTEGER NOT NULL,
  epoch               INTEGER NOT NULL,
  train_loss          REAL,
  train_accuracy      REAL,
  validation_accuracy REAL,
  seconds             REAL,
  PRIMARY KEY (job_id, trial_id, attempt, epoch),
  FOREIGN KEY (job_id, trial_id) REFERENCES trials(job_id, trial_id)
);
CREATE TABLE IF NOT EXISTS trial_logs (
  job_id       TEXT NOT NULL,
  trial_id     TEXT NOT NULL,
  attempt      INTEGER NOT NULL,
  first_offset INTEGER NOT NULL,
  data         BLOB NOT NULL,
  complete     INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (job_id, trial_id, attempt),
  FOREIGN KEY (job_id, trial_id) REFERENCES trials(job_id, trial_id)
);
)sql";

}  // namespace

// Statements prepared once per connection (SQLite's parse and plan are most of
// a small statement's cost) and finalized with it.
class StatementCache {
 public:
  explicit StatementCache(sqlite3* db) : db_(db) {}
  ~StatementCache() {
    for (auto& [sql, stmt] : statements_) sqlite3_finalize(stmt);
  }
  sqlite3* db() const { return db_; }
  // The statement for `sql`, or nullptr with `*status` set to SQLite's error.
  sqlite3_stmt* Get(absl::string_view sql, int* status) {
    auto it = statements_.find(sql);
    if (it != statements_.end()) {
      *status = SQLITE_OK;
      return it->second;
    }
    sqlite3_stmt* stmt = nullptr;
    *status = sqlite3_prepare_v3(db_, sql.data(), static_cast<int>(sql.size()),
                                 SQLITE_PREPARE_PERSISTENT, &stmt, nullptr);
    if (*status != SQLITE_OK) {
      sqlite3_finalize(stmt);
      return nullptr;
    }
    statements_.emplace(std::string(sql), stmt);
    return stmt;
  }

 private:
  sqlite3* const db_;
  absl::flat_hash_map<std::string, sqlite3_stmt*> statements_;
};

namespace {

// A prepared statement borrowed from the store's cache for one use: reset and
// its bindings cleared when it goes out of scope, so the next use starts fresh.
class Statement {
 public:
  Statement(StatementCache* cache, absl::string_view sql) : db_(cache->db()) {
    stmt_ = cache->Get(sql, &status_);
  }
  ~Statement() {
    if (stmt_ != nullptr) {
      sqlite3_reset(stmt_);
      sqlite3_clear_bindings(stmt_);
    }
  }
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;

  absl::Status prepared() const {
    if (status_ == SQLITE_OK) return absl::OkStatus();
    return absl::InternalError(absl::StrCat("sqlite prepare: ", sqlite3_errmsg(db_)));
  }
  Statement& Bind(int index, const std::string& text) {
    sqlite3_bind_text(stmt_, index, text.data(), static_cast<int>(text.size()),
                      SQLITE_TRANSIENT);
    return *this;
  }
  Statement& Bind(int index, int64_t value) {
    sqlite3_bind_int64(stmt_, index, value);
    return *this;
  }
  Statement& Bind(int index, int value) { return Bind(index, static_cast<int64_t>(value)); }
  Statement& Bind(int index, double value) {
    sqlite3_bind_double(stmt_, index, value);
    return *this;
  }
  // NaN as NULL: SQLite would store NULL for it anyway; see Real.
  Statement& BindReal(int index, double value) {
    return std::isnan(value) ? BindNull(index) : Bind(index, value);
  }
  Statement& BindBlob(int index, const std::string& bytes) {
    sqlite3_bind_blob(stmt_, index, bytes.data(), static_cast<int>(bytes.size()), SQLITE_TRANSIENT);
    return *this;
  }
  std::string Blob(int column) {
    const void* bytes = sqlite3_column_blob(stmt_, column);
    return bytes == nullptr ? std::string()
                            : std::string(static_cast<const char*>(bytes), sqlite3_column_bytes(stmt_, column));
  }
  Statement& BindNull(int index) {
    sqlite3_bind_null(stmt_, index);
    return *this;
  }
  // SQLITE_ROW -> true, SQLITE_DONE -> false, else error.
  absl::StatusOr<bool> Step() {
    const int rc = sqlite3_step(stmt_);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    if (rc == SQLITE_CONSTRAINT) {
      return absl::AlreadyExistsError(absl::StrCat("sqlite: ", sqlite3_errmsg(db_)));
    }
    // A full disk, or a file the system cannot write: the store's write
    // paths name the file (TrialStore::WriteFailed).
    if (rc == SQLITE_FULL || (rc & 0xff) == SQLITE_IOERR) {
      return absl::ResourceExhaustedError(absl::StrCat("sqlite: ", sqlite3_errmsg(db_)));
    }
    if (rc == SQLITE_CORRUPT || rc == SQLITE_NOTADB) {
      return absl::DataLossError(absl::StrCat("sqlite: ", sqlite3_errmsg(db_)));
    }
    return absl::InternalError(absl::StrCat("sqlite: ", sqlite3_errmsg(db_)));
  }
  absl::Status Run() {
    absl::StatusOr<bool> row = Step();
    return row.ok() ? absl::OkStatus() : row.status();
  }
  std::string Text(int column) {
    const unsigned char* text = sqlite3_column_text(stmt_, column);
    return text == nullptr ? std::string()
                           : std::string(reinterpret_cast<const char*>(text),
                                         sqlite3_column_bytes(stmt_, column));
  }
  int64_t Int(int column) { return sqlite3_column_int64(stmt_, column); }
  double Real(int column) { return sqlite3_column_double(stmt_, column); }
  // NULL as NaN (BindReal's inverse).
  double RealOrNan(int column) {
    return IsNull(column) ? std::numeric_limits<double>::quiet_NaN() : Real(column);
  }
  bool IsNull(int column) { return sqlite3_column_type(stmt_, column) == SQLITE_NULL; }

 private:
  sqlite3* db_;
  sqlite3_stmt* stmt_ = nullptr;
  int status_;
};

std::string ToJson(const google::protobuf::Message& message) {
  std::string json;
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  (void)google::protobuf::util::MessageToJsonString(message, &json, options);
  return json;
}

absl::Status FromJson(const std::string& json, google::protobuf::Message* message) {
  google::protobuf::util::JsonParseOptions options;
  options.ignore_unknown_fields = true;
  auto status = google::protobuf::util::JsonStringToMessage(json, message, options);
  if (!status.ok()) {
    return absl::DataLossError(absl::StrCat("stored ", message->GetTypeName(),
                                            " is not valid JSON: ", status.ToString()));
  }
  return absl::OkStatus();
}

v1::JobState JobStateFromName(const std::string& name) {
  v1::JobState state;
  if (v1::JobState_Parse("JOB_STATE_" + absl::AsciiStrToUpper(name), &state)) return state;
  return v1::JOB_STATE_UNSPECIFIED;
}

v1::TrialState TrialStateFromName(const std::string& name) {
  v1::TrialState state;
  if (v1::TrialState_Parse("TRIAL_STATE_" + absl::AsciiStrToUpper(name), &state)) return state;
  return v1::TRIAL_STATE_UNSPECIFIED;
}

constexpr char kTrialColumns[] =
    "trial_id, job_id, replica, state, architecture_json, metrics_json, attempts, worker_id, "
    "error, create_time_ms, end_time_ms, sequence, round, cached_from, cached_from_job, final_training, "
    "one_shot_score";

absl::StatusOr<v1::Trial> ReadTrial(Statement& row) {
  v1::Trial trial;
  trial.set_trial_id(row.Text(0));
  trial.set_job_id(row.Text(1));
  trial.set_replica(static_cast<int32_t>(row.Int(2)));
  trial.set_state(TrialStateFromName(row.Text(3)));
  RETURN_IF_ERROR(FromJson(row.Text(4), trial.mutable_architecture()));
  if (!row.IsNull(5)) RETURN_IF_ERROR(FromJson(row.Text(5), trial.mutable_metrics()));
  trial.set_attempts(static_cast<int32_t>(row.Int(6)));
  trial.set_worker_id(row.Text(7));
  trial.set_error(row.Text(8));
  trial.set_create_time_unix_ms(row.Int(9));
  trial.set_end_time_unix_ms(row.Int(10));
  if (!row.IsNull(11)) trial.set_sequence(row.Int(11));
  trial.set_cached_from(row.Text(13));
  trial.set_cached_from_job(row.Text(14));
  trial.set_final_training(row.Int(15) != 0);
  trial.set_one_shot_score(row.Real(16));
  return trial;
}

// Every remaining row of `select` (kTrialColumns) as a trial.
absl::StatusOr<std::vector<v1::Trial>> ReadTrials(Statement& select) {
  std::vector<v1::Trial> trials;
  while (true) {
    ASSIGN_OR_RETURN(bool row, select.Step());
    if (!row) break;
    ASSIGN_OR_RETURN(v1::Trial trial, ReadTrial(select));
    trials.push_back(std::move(trial));
  }
  return trials;
}

// FinishTrial's argument check (both forms).
absl::Status CheckFinal(const v1::Trial& trial) {
  if (IsFinal(trial.state())) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat("FinishTrial needs a final state, not ", TrialStateName(trial.state())));
}

}  // namespace

bool IsFinal(v1::TrialState state) {
  return state == v1::TRIAL_STATE_SUCCEEDED || state == v1::TRIAL_STATE_FAILED ||
         state == v1::TRIAL_STATE_CANCELLED;
}

std::string ArchitectureJson(const v1::Architecture& a) {
  // Only text JSON leaves as it is; the printer decides how to escape the rest.
  const bool plain = std::all_of(a.canonical().begin(), a.canonical().end(), [](char c) {
    return absl::ascii_isalnum(c) ||
           absl::string_view(":/[],|x~+-_.() ").find(c) != absl::string_view::npos;
  });
  if (!a.has_macro_cnn() || !plain) return ToJson(a);
  std::string out = "{";
  if (a.tokens_size() > 0)
    absl::StrAppend(&out, "\"tokens\":[", absl::StrJoin(a.tokens(), ","), "],");
  if (!a.canonical().empty()) absl::StrAppend(&out, "\"canonical\":\"", a.canonical(), "\",");
  out += "\"macro_cnn\":{";
  if (a.macro_cnn().layers_size() > 0) out += "\"layers\":[";
  for (int i = 0; i < a.macro_cnn().layers_size(); ++i) {
    const v1::MacroCnnLayer& l = a.macro_cnn().layers(i);
    if (i > 0) out += ',';
    const size_t open = out.size();
    out += '{';
    auto number = [&](const char* name, int32_t v) {
      if (v != 0) absl::StrAppend(&out, out.size() > open + 1 ? "," : "", "\"", name, "\":", v);
    };
    number("filter_height", l.filter_height());
    number("filter_width", l.filter_width());
    number("num_filters", l.num_filters());
    number("stride", l.stride());
    if (l.inputs_size() > 0) {
      absl::StrAppend(&out, out.size() > open + 1 ? "," : "", "\"inputs\":[",
                      absl::StrJoin(l.inputs(), ","), "]");
    }
    out += '}';
  }
  if (a.macro_cnn().layers_size() > 0) out += ']';
  out += "}}";
  return out;
}

std::string JobStateName(v1::JobState state) {
  std::string name = v1::JobState_Name(state);
  return absl::AsciiStrToLower(name.substr(std::string("JOB_STATE_").size()));
}

std::string TrialStateName(v1::TrialState state) {
  std::string name = v1::TrialState_Name(state);
  return absl::AsciiStrToLower(name.substr(std::string("TRIAL_STATE_").size()));
}

absl::StatusOr<std::unique_ptr<TrialStore>> TrialStore::Open(const TrialStoreOptions& options) {
  if (options.path.empty()) return absl::InvalidArgumentError("trial store path is empty");
  const size_t slash = options.path.rfind('/');
  if (slash != std::string::npos && slash > 0) {
    RETURN_IF_ERROR(MakeDirectories(options.path.substr(0, slash)));
  }
  sqlite3* db = nullptr;
  if (sqlite3_open_v2(options.path.c_str(), &db,
                      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX,
                      options.vfs.empty() ? nullptr : options.vfs.c_str()) != SQLITE_OK) {
    std::string message = db != nullptr ? sqlite3_errmsg(db) : "out of memory";
    sqlite3_close(db);
    return absl::UnavailableError(
        absl::StrCat("cannot open trial store ", options.path, ": ", message));
  }
  sqlite3_busy_timeout(db, 5000);
  std::unique_ptr<TrialStore> store(new TrialStore(db, options.path));
  absl::MutexLock lock(&store->mu_);
  // What to do about a file too damaged to open.
  auto too_damaged = [&options](absl::string_view what) {
    return absl::DataLossError(absl::StrCat(
        "trial store ", options.path, " is too damaged to open (", what,
        "). Stop the controller, move the file and its -wal/-shm files aside, copy the newest "
        "backup (--backup_dir) to ",
        options.path, " and start the controller again; docs/trial_store.md, \"Restoring\""));
  };
  if (absl::Status wal = store->Exec("PRAGMA journal_mode=WAL"); !wal.ok()) {
    return too_damaged(wal.message());
  }
  RETURN_IF_ERROR(store->Exec(options.sync_every_commit ? "PRAGMA synchronous=FULL"
                                                        : "PRAGMA synchronous=NORMAL"));
  RETURN_IF_ERROR(store->Exec("PRAGMA foreign_keys=ON"));
  {
    Statement version(store->statements_.get(), "PRAGMA user_version");
    RETURN_IF_ERROR(version.prepared());
    ASSIGN_OR_RETURN(bool row, version.Step());
    const int64_t found = row ? version.Int(0) : 0;
    if (found > kSchemaVersion) {
      return absl::FailedPreconditionError(absl::StrCat(
          "trial store ", options.path, " has schema version ", found,
          " but this controller knows only up to ", kSchemaVersion, "; use a newer controller"));
    }
  }
  // Also checks that the file is a database at all.
  absl::Status schema = store->Exec(kSchema);
  if (!schema.ok()) return too_damaged(schema.message());
  {
    // quick_check, not integrity_check: both read every page, but
    // integrity_check also matches every index entry against its row, which
    // cost 2-3x as much (10k trials: 120 vs 224 ms; 100k: 0.6 vs 1.8 s). A
    // job's rows are read in full before it resumes (CheckJob) anyway.
    const absl::Time start = absl::Now();
    Statement check(store->statements_.get(), "PRAGMA quick_check(20)");
    RETURN_IF_ERROR(check.prepared());
    std::vector<std::string> problems;
    while (true) {
      // The check stops at the first row it cannot decode (its NOT NULL
      // pass reads every row); the schema was read, so the store opens.
      absl::StatusOr<bool> row = check.Step();
      if (!row.ok()) {
        problems.push_back(absl::StrCat("the check stopped: ", row.status().message()));
        break;
      }
      if (!*row) break;
      problems.push_back(check.Text(0));
    }
    store->integrity_report_ = problems.empty() ? "ok" : absl::StrJoin(problems, "; ");
    const int64_t ms = absl::ToInt64Milliseconds(absl::Now() - start);
    if (store->integrity_report_ == "ok") {
      NAS_LOG(Info) << "trial store " << options.path << ": quick_check ok (" << ms << " ms)";
    } else {
      NAS_LOG(Error) << "trial store " << options.path << ": quick_check found damage (" << ms
                     << " ms): " << store->integrity_report_
                     << ". Jobs whose rows are damaged are listed FAILED; the others run. "
                        "To recover them, restore a backup (docs/trial_store.md, \"Restoring\")";
    }
  }
  RETURN_IF_ERROR(store->AddMissingColumnsLocked());
  RETURN_IF_ERROR(store->Exec(absl::StrCat("PRAGMA user_version=", kSchemaVersion).c_str()));
  TrialStore* raw = store.get();
  store->writer_ = std::thread([raw] { raw->WriteLoop(); });
  return store;
}

TrialStore::TrialStore(sqlite3* db, std::string path)
    : path_(std::move(path)), db_(db), statements_(std::make_unique<StatementCache>(db)) {}

absl::Status TrialStore::WriteFailed(absl::Status status) {
  ++write_failures_;
  if (!absl::IsResourceExhausted(status)) return status;
  const size_t slash = path_.rfind('/');
  const std::string dir = slash == std::string::npos ? "." : path_.substr(0, slash);
  return absl::ResourceExhaustedError(absl::StrCat(
      "trial store ", path_, " cannot write (", status.message(), "): is the disk of ", dir,
      " full? Nothing of this write was stored; reads go on, and the write can be retried once "
      "there is space"));
}

TrialStore::~TrialStore() {
  if (writer_.joinable()) {
    {
      absl::MutexLock lock(&queue_mu_);
      stopping_ = true;
      queued_.Signal();
    }
    writer_.join();  // after it wrote everything queued
  }
  absl::MutexLock lock(&mu_);
  statements_.reset();
  sqlite3_close(db_);
}

absl::Status TrialStore::Exec(const char* sql) {
  char* error = nullptr;
  if (sqlite3_exec(db_, sql, nullptr, nullptr, &error) != SQLITE_OK) {
    std::string message = error != nullptr ? error : "unknown error";
    sqlite3_free(error);
    return absl::InternalError(absl::StrCat("sqlite: ", message));
  }
  return absl::OkStatus();
}

absl::Status TrialStore::ExecCached(const char* sql) {
  Statement statement(statements_.get(), sql);
  RETURN_IF_ERROR(statement.prepared());
  return statement.Run();
}

absl::Status TrialStore::CreateJob(const v1::Job& job) {
  absl::MutexLock lock(&mu_);
  Statement insert(statements_.get(),
                   "INSERT INTO jobs (job_id, name, state, spec_json, error, create_time_ms, "
                   "start_time_ms, end_time_ms, baseline) VALUES (?,?,?,?,?,?,?,?,?)");
  RETURN_IF_ERROR(insert.prepared());
  insert.Bind(1, job.job_id())
      .Bind(2, job.spec().name())
      .Bind(3, JobStateName(job.state()))
      .Bind(4, ToJson(job.spec()))
      .Bind(5, job.error())
      .Bind(6, job.create_time_unix_ms())
      .Bind(7, job.start_time_unix_ms())
      .Bind(8, job.end_time_unix_ms())
      .Bind(9, job.baseline());
  absl::Status status = insert.Run();
  if (absl::IsAlreadyExists(status)) {
    return absl::AlreadyExistsError(absl::StrCat("job ", job.job_id(), " exists already"));
  }
  return status.ok() ? status : WriteFailed(status);
}

absl::Status TrialStore::UpdateJob(const v1::Job& job) {
  absl::MutexLock lock(&mu_);
  Statement update(statements_.get(),
                   "UPDATE jobs SET state=?, error=?, start_time_ms=?, end_time_ms=?, baseline=? "
                   "WHERE job_id=?");
  RETURN_IF_ERROR(update.prepared());
  update.Bind(1, JobStateName(job.state()))
      .Bind(2, job.error())
      .Bind(3, job.start_time_unix_ms())
      .Bind(4, job.end_time_unix_ms())
      .Bind(5, job.baseline())
      .Bind(6, job.job_id());
  if (absl::Status status = update.Run(); !status.ok()) return WriteFailed(status);
  if (sqlite3_changes(db_) == 0) return absl::NotFoundError(absl::StrCat("job ", job.job_id()));
  return absl::OkStatus();
}

absl::StatusOr<std::vector<v1::Job>> TrialStore::LoadJobs() {
  absl::MutexLock lock(&mu_);
  // The ids first (through the primary-key index), then each row on its
  // own: a damaged row costs its job, not the others.
  std::vector<std::string> ids;
  {
    Statement select(statements_.get(), "SELECT job_id FROM jobs ORDER BY job_id");
    RETURN_IF_ERROR(select.prepared());
    while (true) {
      absl::StatusOr<bool> row = select.Step();
      if (!row.ok()) {
        if (ids.empty()) return row.status();
        NAS_LOG(Error) << "trial store " << path_ << ": the list of jobs is damaged after job "
                       << ids.back() << " (" << row.status()
                       << "); jobs listed after it are not loaded";
        break;
      }
      if (!*row) break;
      ids.push_back(select.Text(0));
    }
  }
  std::vector<v1::Job> jobs;
  for (const std::string& id : ids) {
    Statement select(statements_.get(),
                     "SELECT job_id, state, spec_json, error, create_time_ms, start_time_ms, "
                     "end_time_ms, baseline FROM jobs WHERE job_id=?");
    RETURN_IF_ERROR(select.prepared());
    select.Bind(1, id);
    v1::Job job;
    job.set_job_id(id);
    absl::Status loaded = [&]() -> absl::Status {
      ASSIGN_OR_RETURN(bool row, select.Step());
      if (!row) return absl::DataLossError("its row is missing from the jobs table");
      job.set_state(JobStateFromName(select.Text(1)));
      RETURN_IF_ERROR(FromJson(select.Text(2), job.mutable_spec()));
      job.set_error(select.Text(3));
      job.set_create_time_unix_ms(select.Int(4));
      job.set_start_time_unix_ms(select.Int(5));
      job.set_end_time_unix_ms(select.Int(6));
      job.set_baseline(select.Real(7));
      return absl::OkStatus();
    }();
    if (!loaded.ok()) {
      job.set_state(v1::JOB_STATE_FAILED);
      job.set_error(absl::StrCat("cannot load job ", id, ": its record in the trial store ", path_,
                                 " is damaged (", loaded.message(),
                                 "); restore a backup to recover it (docs/trial_store.md)"));
    }
    jobs.push_back(std::move(job));
  }
  std::stable_sort(jobs.begin(), jobs.end(), [](const v1::Job& a, const v1::Job& b) {
    return a.create_time_unix_ms() < b.create_time_unix_ms();
  });
  return jobs;
}

absl::Status TrialStore::CheckJob(const std::string& job_id) {
  absl::MutexLock lock(&mu_);
  int64_t rows = 0;
  {
    Statement select(statements_.get(),
                     absl::StrCat("SELECT ", kTrialColumns, " FROM trials WHERE job_id=?"));
    RETURN_IF_ERROR(select.prepared());
    select.Bind(1, job_id);
    while (true) {
      absl::StatusOr<bool> row = select.Step();
      if (!row.ok()) {
        return absl::DataLossError(absl::StrCat("its trials in ", path_, " are damaged after ",
                                                rows, " readable rows: ", row.status().message()));
      }
      if (!*row) break;
      ++rows;
      absl::StatusOr<v1::Trial> trial = ReadTrial(select);
      if (!trial.ok()) {
        return absl::DataLossError(absl::StrCat("trial ", select.Text(0), " in ", path_,
                                                " is damaged: ", trial.status().message()));
      }
    }
  }
  Statement curves(statements_.get(), "SELECT COUNT(*), SUM(length(trial_id)) FROM curves "
                                      "WHERE job_id=?");
  RETURN_IF_ERROR(curves.prepared());
  curves.Bind(1, job_id);
  if (absl::StatusOr<bool> row = curves.Step(); !row.ok()) {
    return absl::DataLossError(absl::StrCat("its learning curves in ", path_,
                                            " are damaged: ", row.status().message()));
  }
  return absl::OkStatus();
}

absl::Status TrialStore::Backup(const std::string& path) {
  std::remove(path.c_str());
  sqlite3* dest = nullptr;
  if (sqlite3_open_v2(path.c_str(), &dest, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE,
                      nullptr) != SQLITE_OK) {
    std::string message = dest != nullptr ? sqlite3_errmsg(dest) : "out of memory";
    sqlite3_close(dest);
    return absl::UnavailableError(absl::StrCat("cannot create backup ", path, ": ", message));
  }
  absl::Status status;
  sqlite3_backup* backup;
  {
    absl::MutexLock lock(&mu_);
    backup = sqlite3_backup_init(dest, "main", db_, "main");
  }
  if (backup == nullptr) {
    status = absl::InternalError(absl::StrCat("backup of ", path_, ": ", sqlite3_errmsg(dest)));
  } else {
    // 1,024 pages (4 MiB) a step, the store's lock released between steps so
    // that writes go on; SQLite copies into the backup what this connection
    // changes meanwhile, so it is consistent as of its last step.
    int rc;
    do {
      absl::MutexLock lock(&mu_);
      rc = sqlite3_backup_step(backup, 1024);
    } while (rc == SQLITE_OK || rc == SQLITE_BUSY || rc == SQLITE_LOCKED);
    {
      absl::MutexLock lock(&mu_);
      sqlite3_backup_finish(backup);
    }
    if (rc != SQLITE_DONE) {
      status = absl::ResourceExhaustedError(
          absl::StrCat("backup of ", path_, " to ", path, " failed: ", sqlite3_errstr(rc)));
    }
  }
  if (sqlite3_close(dest) != SQLITE_OK && status.ok()) {
    status = absl::InternalError(absl::StrCat("cannot close backup ", path));
  }
  if (status.ok()) {
    // The copy is durable before it is renamed into place.
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0 || ::fsync(fd) != 0) {
      status = absl::ResourceExhaustedError(absl::StrCat("cannot fsync backup ", path));
    }
    if (fd >= 0) ::close(fd);
  }
  if (!status.ok()) std::remove(path.c_str());
  return status;
}

absl::Status TrialStore::InsertTrials(const std::vector<PendingTrial>& trials) {
  QueuedWrite write;
  write.insert = &trials;
  Submit(&write);
  return write.result.status();
}

absl::Status TrialStore::InsertLocked(const std::vector<PendingTrial>& trials) {
  for (const PendingTrial& pending : trials) {
    const v1::Trial& trial = pending.trial;
    Statement insert(statements_.get(),
                     "INSERT INTO trials (job_id, trial_id, replica, round, state, canonical, "
                     "architecture_json, attempts, create_time_ms, cached_from, "
                     "cached_from_job, final_training, one_shot_score) "
                     "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)");
    RETURN_IF_ERROR(insert.prepared());
    insert.Bind(1, trial.job_id())
        .Bind(2, trial.trial_id())
        .Bind(3, trial.replica())
        .Bind(4, pending.round)
        .Bind(5, TrialStateName(v1::TRIAL_STATE_QUEUED))
        .Bind(6, trial.architecture().canonical())
        .Bind(7, ArchitectureJson(trial.architecture()))
        .Bind(8, trial.attempts())
        .Bind(9, trial.create_time_unix_ms())
        .Bind(10, trial.cached_from())
        .Bind(11, trial.cached_from_job())
        .Bind(12, int64_t{trial.final_training() ? 1 : 0})
        .Bind(13, trial.one_shot_score());
    RETURN_IF_ERROR(insert.Run());
  }
  return absl::OkStatus();
}

absl::StatusOr<bool> TrialStore::FinishTrial(const v1::Trial& trial) {
  RETURN_IF_ERROR(CheckFinal(trial));
  QueuedWrite write;
  write.finish = trial;
  write.has_finish = true;
  Submit(&write);
  return write.result;
}

void TrialStore::FinishTrialAsync(v1::Trial trial, std::function<void(absl::StatusOr<bool>)> done) {
  if (absl::Status valid = CheckFinal(trial); !valid.ok()) return done(valid);
  auto write = std::make_unique<QueuedWrite>();
  write->finish = std::move(trial);
  write->has_finish = true;
  write->callback = std::move(done);
  SubmitAsync(std::move(write));
}

absl::Status TrialStore::MarkRunning(const std::string& job_id, const std::string& trial_id,
                                     const std::string& worker_id, int attempt) {
  QueuedWrite write;
  write.job_id = job_id;
  write.trial_id = trial_id;
  write.worker_id = worker_id;
  write.attempt = attempt;
  Submit(&write);
  return write.result.status();
}

void TrialStore::MarkRunningAsync(std::string job_id, std::string trial_id, std::string worker_id,
                                  int attempt) {
  auto write = std::make_unique<QueuedWrite>();
  write->job_id = std::move(job_id);
  write->trial_id = std::move(trial_id);
  write->worker_id = std::move(worker_id);
  write->attempt = attempt;
  SubmitAsync(std::move(write));
}

void TrialStore::AppendCurveAsync(std::string job_id, std::string trial_id, int attempt,
                                  std::vector<v1::EpochResult> epochs) {
  if (epochs.empty()) return;  // nothing to store
  auto write = std::make_unique<QueuedWrite>();
  write->job_id = std::move(job_id);
  write->trial_id = std::move(trial_id);
  write->attempt = attempt;
  write->curve = std::move(epochs);
  write->has_curve = true;
  SubmitAsync(std::move(write));
}

void TrialStore::AppendLogAsync(std::string job_id, std::string trial_id, int attempt, int64_t offset,
                                std::string data, bool complete) {
  if (data.empty() && !complete) return;  // nothing to store
  auto write = std::make_unique<QueuedWrite>();
  write->job_id = std::move(job_id);
  write->trial_id = std::move(trial_id);
  write->attempt = attempt;
  write->has_log = true;
  write->log_offset = offset;
  write->log_data = std::move(data);
  write->log_complete = complete;
  SubmitAsync(std::move(write));
}

absl::Status TrialStore::AppendLogLocked(const QueuedWrite& write) {
  if (write.attempt < 1 || write.log_offset < 0) {
    return absl::InvalidArgumentError("a log needs an attempt >= 1 and an offset >= 0");
  }
  int64_t first = write.log_offset;
  std::string data;
  bool complete = false;
  {
    Statement select(statements_.get(),
                     "SELECT first_offset, data, complete FROM trial_logs "
                     "WHERE job_id=? AND trial_id=? AND attempt=?");
    RETURN_IF_ERROR(select.prepared());
    select.Bind(1, write.job_id).Bind(2, write.trial_id).Bind(3, write.attempt);
    ASSIGN_OR_RETURN(bool row, select.Step());
    if (row) {
      first = select.Int(0);
      data = select.Blob(1);
      complete = select.Int(2) != 0;
    }
  }
  const int64_t end = first + static_cast<int64_t>(data.size());
  if (write.log_offset > end) {
    // A gap: the worker dropped output. The log starts again here.
    first = write.log_offset;
    data = write.log_data;
  } else if (write.log_offset + static_cast<int64_t>(write.log_data.size()) > end) {
    data.append(write.log_data, static_cast<size_t>(end - write.log_offset), std::string::npos);
  }
  if (static_cast<int64_t>(data.size()) > kMaxLogBytes) {
    const int64_t drop = static_cast<int64_t>(data.size()) - kMaxLogBytes;
    data.erase(0, static_cast<size_t>(drop));
    first += drop;
  }
  Statement upsert(statements_.get(),
                   "INSERT OR REPLACE INTO trial_logs (job_id, trial_id, attempt, first_offset, data, "
                   "complete) VALUES (?,?,?,?,?,?)");
  RETURN_IF_ERROR(upsert.prepared());
  upsert.Bind(1, write.job_id)
      .Bind(2, write.trial_id)
      .Bind(3, write.attempt)
      .Bind(4, first)
      .BindBlob(5, data)
      .Bind(6, (complete || write.log_complete) ? 1 : 0);
  return upsert.Run();  // an unknown trial fails its foreign key
}

absl::StatusOr<TrialLog> TrialStore::GetTrialLog(const std::string& job_id, const std::string& trial_id,
                                                 int attempt) {
  absl::MutexLock lock(&mu_);
  Statement select(statements_.get(),
                   "SELECT attempt, first_offset, data, complete FROM trial_logs "
                   "WHERE job_id=?1 AND trial_id=?2 AND attempt = CASE WHEN ?3 > 0 THEN ?3 ELSE "
                   "(SELECT MAX(attempt) FROM trial_logs WHERE job_id=?1 AND trial_id=?2) END");
  RETURN_IF_ERROR(select.prepared());
  select.Bind(1, job_id).Bind(2, trial_id).Bind(3, attempt);
  ASSIGN_OR_RETURN(bool row, select.Step());
  if (!row) {
    return absl::NotFoundError(absl::StrCat("no log stored for trial '", trial_id, "' of job '", job_id, "'",
                                            attempt > 0 ? absl::StrCat(" attempt ", attempt) : ""));
  }
  TrialLog log;
  log.attempt = static_cast<int>(select.Int(0));
  log.first_offset = select.Int(1);
  log.data = select.Blob(2);
  log.complete = select.Int(3) != 0;
  return log;
}

absl::Status TrialStore::AppendCurveLocked(const QueuedWrite& write) {
  for (const v1::EpochResult& epoch : write.curve) {
    if (epoch.epoch() < 1) {
      return absl::InvalidArgumentError(absl::StrCat("epoch must be >= 1, got ", epoch.epoch()));
    }
  }
  for (const v1::EpochResult& epoch : write.curve) {
    Statement upsert(statements_.get(),
                     "INSERT OR REPLACE INTO curves (job_id, trial_id, attempt, epoch, "
                     "train_loss, train_accuracy, validation_accuracy, seconds, "
                     "train_perplexity, validation_perplexity) "
                     "VALUES (?,?,?,?,?,?,?,?,?,?)");
    RETURN_IF_ERROR(upsert.prepared());
    upsert.Bind(1, write.job_id)
        .Bind(2, write.trial_id)
        .Bind(3, write.attempt)
        .Bind(4, epoch.epoch())
        .BindReal(5, epoch.train_loss())
        .BindReal(6, epoch.train_accuracy())
        .BindReal(7, epoch.validation_accuracy())
        .BindReal(8, epoch.seconds())
        .BindReal(9, epoch.train_perplexity())
        .BindReal(10, epoch.validation_perplexity());
    RETURN_IF_ERROR(upsert.Run());  // an unknown trial fails its foreign key
  }
  return absl::OkStatus();
}

void TrialStore::Submit(QueuedWrite* write) {
  if (std::this_thread::get_id() == writer_.get_id()) {
    // A callback of an asynchronous write waiting for its own thread.
    write->result = absl::FailedPreconditionError(
        "trial store: a blocking write from the writer thread would wait forever");
    return;
  }
  {
    absl::MutexLock lock(&queue_mu_);
    if (stopping_) {
      write->result = absl::UnavailableError("trial store is closing");
      return;
    }
    queue_.push_back(write);
    if (writer_idle_) queued_.Signal();
  }
  write->committed.WaitForNotification();
}

void TrialStore::SubmitAsync(std::unique_ptr<QueuedWrite> write) {
  write->async = true;
  {
    absl::MutexLock lock(&queue_mu_);
    if (!stopping_) {
      queue_.push_back(write.release());
      if (writer_idle_) queued_.Signal();
      return;
    }
  }
  if (write->callback) write->callback(absl::UnavailableError("trial store is closing"));
}

void TrialStore::WriteLoop() {
  std::vector<QueuedWrite*> batch;
  while (true) {
    {
      absl::MutexLock lock(&queue_mu_);
      while (queue_.empty() && !stopping_) {
        writer_idle_ = true;
        queued_.Wait(&queue_mu_);
        writer_idle_ = false;
      }
      if (queue_.empty()) return;  // stopping, and everything is written
      batch.swap(queue_);
    }
    {
      absl::MutexLock lock(&mu_);
      ApplyWrites(batch);
    }
    // Callbacks first, so that a blocking write (Flush) returns only after
    // the callbacks of every write queued before it have run.
    for (QueuedWrite*& write : batch) {
      if (!write->async) continue;
      std::unique_ptr<QueuedWrite> owned(write);
      write = nullptr;
      if (owned->callback) owned->callback(std::move(owned->result));
    }
    for (QueuedWrite* write : batch) {
      if (write != nullptr) write->committed.Notify();  // its caller owns it from here on
    }
    batch.clear();
  }
}

absl::Status TrialStore::Flush() {
  QueuedWrite write;  // no data: commits nothing of its own
  Submit(&write);
  return write.result.status();
}

void TrialStore::ApplyWrites(const std::vector<QueuedWrite*>& batch) {
  absl::Status failed = ExecCached("BEGIN IMMEDIATE");
  for (size_t i = 0; failed.ok() && i < batch.size(); ++i) {
    QueuedWrite* write = batch[i];
    if (write->insert != nullptr) {
      // All or none of this call's trials, without undoing the batch's other
      // writes (a duplicate id fails only its own call).
      failed = ExecCached("SAVEPOINT insert_trials");
      if (!failed.ok()) break;
      absl::Status inserted = InsertLocked(*write->insert);
      if (!inserted.ok()) failed = ExecCached("ROLLBACK TO insert_trials");
      if (failed.ok()) failed = ExecCached("RELEASE insert_trials");
      write->result = inserted.ok() ? absl::StatusOr<bool>(true) : inserted;
      continue;
    }
    if (write->has_finish) {
      write->result = FinishLocked(write->finish);
      // NOT_FOUND changed nothing; anything else is SQLite failing.
      if (!write->result.ok() && !absl::IsNotFound(write->result.status())) {
        failed = write->result.status();
      }
      continue;
    }
    if (write->has_curve) {
      // Progress, not a result: a curve that cannot be stored is dropped
      // whole without undoing the batch's other writes. Only SQLite failing
      // to roll back to the savepoint fails the batch.
      failed = ExecCached("SAVEPOINT append_curve");
      if (!failed.ok()) break;
      absl::Status stored = AppendCurveLocked(*write);
      if (!stored.ok()) failed = ExecCached("ROLLBACK TO append_curve");
      if (failed.ok()) failed = ExecCached("RELEASE append_curve");
      write->result = stored.ok() ? absl::StatusOr<bool>(true) : stored;
      continue;
    }
    if (write->has_log) {
      // Output, like a curve: one that cannot be stored is dropped alone.
      failed = ExecCached("SAVEPOINT append_log");
      if (!failed.ok()) break;
      absl::Status stored = AppendLogLocked(*write);
      if (!stored.ok()) failed = ExecCached("ROLLBACK TO append_log");
      if (failed.ok()) failed = ExecCached("RELEASE append_log");
      write->result = stored.ok() ? absl::StatusOr<bool>(true) : stored;
      continue;
    }
    if (write->job_id.empty()) {  // Flush
      write->result = true;
      continue;
    }
    Statement update(statements_.get(),
                     "UPDATE trials SET state='running', worker_id=?, attempts=? "
                     "WHERE job_id=? AND trial_id=? AND state IN ('queued', 'running')");
    failed = update.prepared();
    if (!failed.ok()) break;
    update.Bind(1, write->worker_id)
        .Bind(2, write->attempt)
        .Bind(3, write->job_id)
        .Bind(4, write->trial_id);
    failed = update.Run();
    write->result = true;
  }
  if (failed.ok()) failed = ExecCached("COMMIT");
  if (failed.ok()) return;
  (void)ExecCached("ROLLBACK");
  failed = WriteFailed(failed);
  for (QueuedWrite* write : batch) write->result = failed;
}

absl::StatusOr<bool> TrialStore::FinishLocked(const v1::Trial& trial) {
  int64_t sequence = 0;
  {
    Statement current(statements_.get(),
                      "SELECT t.state, j.next_sequence FROM trials t JOIN jobs j "
                      "ON t.job_id = j.job_id WHERE t.job_id=? AND t.trial_id=?");
    RETURN_IF_ERROR(current.prepared());
    current.Bind(1, trial.job_id()).Bind(2, trial.trial_id());
    ASSIGN_OR_RETURN(bool row, current.Step());
    if (!row) {
      return absl::NotFoundError(
          absl::StrCat("trial ", trial.trial_id(), " of job ", trial.job_id()));
    }
    if (IsFinal(TrialStateFromName(current.Text(0)))) return false;  // a duplicate report
    sequence = current.Int(1);
  }
  Statement update(statements_.get(),
                   "UPDATE trials SET state=?, reward=?, accuracy=?, parameters=?, flops=?, "
                   "metrics_json=?, attempts=?, worker_id=?, error=?, end_time_ms=?, sequence=?, "
                   "worker_seconds=?, epochs_trained=?, stopped_early=? "
                   "WHERE job_id=? AND trial_id=?");
  RETURN_IF_ERROR(update.prepared());
  update.Bind(1, TrialStateName(trial.state()));
  if (trial.state() == v1::TRIAL_STATE_SUCCEEDED) {
    update.Bind(2, trial.metrics().reward())
        .Bind(3, trial.metrics().accuracy())
        .Bind(4, trial.metrics().parameters())
        .Bind(5, trial.metrics().flops())
        .Bind(6, ToJson(trial.metrics()));
  } else {
    update.BindNull(2).BindNull(3).BindNull(4).BindNull(5).BindNull(6);
  }
  update.Bind(7, trial.attempts())
      .Bind(8, trial.worker_id())
      .Bind(9, trial.error())
      .Bind(10, trial.end_time_unix_ms())
      .Bind(11, sequence);
  // The ledger: what a worker spent on it (a cache hit spent nothing).
  const bool evaluated =
      trial.state() == v1::TRIAL_STATE_SUCCEEDED && trial.cached_from().empty();
  update.Bind(12, evaluated ? trial.metrics().train_seconds() : 0.0)
      .Bind(13, evaluated ? trial.metrics().epochs_size() : 0)
      .Bind(14, evaluated && trial.metrics().stopped_early() ? 1 : 0)
      .Bind(15, trial.job_id())
      .Bind(16, trial.trial_id());
  RETURN_IF_ERROR(update.Run());
  Statement bump(statements_.get(),
                 "UPDATE jobs SET next_sequence = next_sequence + 1 WHERE job_id=?");
  RETURN_IF_ERROR(bump.prepared());
  bump.Bind(1, trial.job_id());
  RETURN_IF_ERROR(bump.Run());
  return true;
}

absl::StatusOr<std::vector<PendingTrial>> TrialStore::UnfinishedTrials(const std::string& job_id) {
  absl::MutexLock lock(&mu_);
  Statement select(statements_.get(),
                   absl::StrCat("SELECT ", kTrialColumns,
                                " FROM trials WHERE job_id=? AND state IN ('queued', "
                                "'running') ORDER BY create_time_ms, trial_id"));
  RETURN_IF_ERROR(select.prepared());
  select.Bind(1, job_id);
  std::vector<PendingTrial> trials;
  while (true) {
    ASSIGN_OR_RETURN(bool row, select.Step());
    if (!row) break;
    ASSIGN_OR_RETURN(v1::Trial trial, ReadTrial(select));
    trials.push_back(PendingTrial{std::move(trial), select.Int(12)});
  }
  return trials;
}

absl::StatusOr<std::vector<v1::Trial>> TrialStore::EvaluatedTrials(const std::string& job_id) {
  absl::MutexLock lock(&mu_);
  Statement select(statements_.get(),
                   absl::StrCat("SELECT ", kTrialColumns,
                                " FROM trials WHERE job_id=? AND state='succeeded' AND "
                                "cached_from='' ORDER BY sequence"));
  RETURN_IF_ERROR(select.prepared());
  select.Bind(1, job_id);
  return ReadTrials(select);
}

absl::Status TrialStore::AddMissingColumnsLocked() {
  for (const AddedColumn& added : kAddedColumns) {
    bool present = false;
    {
      Statement columns(statements_.get(), absl::StrCat("PRAGMA table_info(", added.table, ")"));
      RETURN_IF_ERROR(columns.prepared());
      while (true) {
        ASSIGN_OR_RETURN(bool row, columns.Step());
        if (!row) break;
        if (columns.Text(1) == added.column) present = true;
      }
    }
    if (present) continue;
    RETURN_IF_ERROR(Exec(absl::StrCat("ALTER TABLE ", added.table, " ADD COLUMN ", added.column,
                                      " ", added.definition)
                             .c_str()));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<v1::Trial>> TrialStore::RoundTrials(const std::string& job_id,
                                                                int replica, int64_t round) {
  absl::MutexLock lock(&mu_);
  Statement select(statements_.get(),
                   absl::StrCat("SELECT ", kTrialColumns,
                                " FROM trials WHERE job_id=? AND replica=? AND round=? "
                                "ORDER BY trial_id"));
  RETURN_IF_ERROR(select.prepared());
  select.Bind(1, job_id).Bind(2, replica).Bind(3, round);
  return ReadTrials(select);
}

absl::StatusOr<std::vector<int64_t>> TrialStore::LastRounds(const std::string& job_id,
                                                             int num_replicas) {
  absl::MutexLock lock(&mu_);
  std::vector<int64_t> rounds(num_replicas, -1);
  Statement select(statements_.get(),
                   "SELECT replica, MAX(round) FROM trials WHERE job_id=? GROUP BY replica");
  RETURN_IF_ERROR(select.prepared());
  select.Bind(1, job_id);
  while (true) {
    ASSIGN_OR_RETURN(bool row, select.Step());
    if (!row) break;
    const int64_t replica = select.Int(0);
    if (replica >= 0 && replica < num_replicas) rounds[replica] = select.Int(1);
  }
  return rounds;
}

absl::StatusOr<TrialStore::TrialCounts> TrialStore::CountTrials(const std::string& job_id) {
  absl::MutexLock lock(&mu_);
  TrialCounts counts;
  {
    Statement select(
        statements_.get(),
        "SELECT state, COUNT(*), "
        "AVG(CASE WHEN final_training THEN NULL ELSE reward END), "
        "SUM(cached_from != ''), SUM(worker_seconds), SUM(epochs_trained), "
        "SUM(stopped_early), SUM(CASE WHEN stopped_early THEN epochs_trained ELSE 0 END), "
        "SUM(final_training) FROM trials WHERE job_id=? GROUP BY state");
    RETURN_IF_ERROR(select.prepared());
    select.Bind(1, job_id);
    while (true) {
      ASSIGN_OR_RETURN(bool row, select.Step());
      if (!row) break;
      const v1::TrialState state = TrialStateFromName(select.Text(0));
      const int64_t n = select.Int(1);
      counts.cache_hits += select.Int(3);
      counts.worker_seconds += select.Real(4);
      counts.epochs_trained += select.Int(5);
      counts.trials_stopped += select.Int(6);
      counts.stopped_epochs += select.Int(7);
      if (state != v1::TRIAL_STATE_QUEUED && state != v1::TRIAL_STATE_RUNNING) {
        counts.final_finished += select.Int(8);
      }
      switch (state) {
        case v1::TRIAL_STATE_QUEUED: counts.queued = n; break;
        case v1::TRIAL_STATE_RUNNING: counts.running = n; break;
        case v1::TRIAL_STATE_SUCCEEDED:
          counts.succeeded = n;
          counts.mean_reward = select.Real(2);
          break;
        case v1::TRIAL_STATE_FAILED: counts.failed = n; break;
        case v1::TRIAL_STATE_CANCELLED: counts.cancelled = n; break;
        default: break;
      }
    }
  }
  Statement best(statements_.get(),
                 "SELECT trial_id, reward, canonical FROM trials WHERE job_id=? AND "
                 "state='succeeded' ORDER BY final_training DESC, reward DESC, sequence ASC LIMIT 1");
  RETURN_IF_ERROR(best.prepared());
  best.Bind(1, job_id);
  ASSIGN_OR_RETURN(bool row, best.Step());
  if (row) {
    counts.best_trial_id = best.Text(0);
    counts.best_reward = best.Real(1);
    counts.best_canonical = best.Text(2);
  }
  return counts;
}

absl::StatusOr<std::vector<v1::Trial>> TrialStore::ListTrials(
    const std::string& job_id, v1::ListTrialsRequest::Order order, v1::TrialState state,
    int64_t offset, int limit, int64_t* total) {
  absl::MutexLock lock(&mu_);
  const bool filter = state != v1::TRIAL_STATE_UNSPECIFIED;
  const std::string where =
      absl::StrCat(" FROM trials WHERE job_id=?", filter ? " AND state=?" : "");
  {
    Statement count(statements_.get(), absl::StrCat("SELECT COUNT(*)", where));
    RETURN_IF_ERROR(count.prepared());
    count.Bind(1, job_id);
    if (filter) count.Bind(2, TrialStateName(state));
    ASSIGN_OR_RETURN(bool row, count.Step());
    *total = row ? count.Int(0) : 0;
  }
  const char* order_by =
      order == v1::ListTrialsRequest::ORDER_TIME
          ? " ORDER BY sequence IS NULL, sequence ASC, create_time_ms ASC, trial_id ASC"
          : " ORDER BY final_training DESC, reward IS NULL, reward DESC, sequence ASC, trial_id ASC";
  Statement select(statements_.get(),
                   absl::StrCat("SELECT ", kTrialColumns, where, order_by, " LIMIT ? OFFSET ?"));
  RETURN_IF_ERROR(select.prepared());
  int index = 1;
  select.Bind(index++, job_id);
  if (filter) select.Bind(index++, TrialStateName(state));
  select.Bind(index++, limit);
  select.Bind(index++, offset);
  return ReadTrials(select);
}

absl::StatusOr<v1::Trial> TrialStore::GetTrial(const std::string& job_id,
                                               const std::string& trial_id) {
  absl::MutexLock lock(&mu_);
  const std::string sql =
      trial_id.empty()
          ? absl::StrCat("SELECT ", kTrialColumns,
                         " FROM trials WHERE job_id=? AND state='succeeded' "
                         "ORDER BY final_training DESC, reward DESC, sequence ASC LIMIT 1")
          : absl::StrCat("SELECT ", kTrialColumns, " FROM trials WHERE job_id=? AND trial_id=?");
  Statement select(statements_.get(), sql);
  RETURN_IF_ERROR(select.prepared());
  select.Bind(1, job_id);
  if (!trial_id.empty()) select.Bind(2, trial_id);
  ASSIGN_OR_RETURN(bool row, select.Step());
  if (!row) {
    return absl::NotFoundError(trial_id.empty()
                                   ? absl::StrCat("job ", job_id, " has no succeeded trial yet")
                                   : absl::StrCat("no trial ", trial_id, " in job ", job_id));
  }
  ASSIGN_OR_RETURN(v1::Trial trial, ReadTrial(select));
  RETURN_IF_ERROR(ReadCurveLocked(&trial));
  return trial;
}

absl::Status TrialStore::ReadCurveLocked(v1::Trial* trial) {
  Statement select(statements_.get(),
                   "SELECT attempt, epoch, train_loss, train_accuracy, validation_accuracy, "
                   "seconds, train_perplexity, validation_perplexity FROM curves WHERE job_id=?1 "
                   "AND trial_id=?2 AND attempt = "
                   "(SELECT MAX(attempt) FROM curves WHERE job_id=?1 AND trial_id=?2) "
                   "ORDER BY epoch");
  RETURN_IF_ERROR(select.prepared());
  select.Bind(1, trial->job_id()).Bind(2, trial->trial_id());
  int64_t attempt = 0;
  while (true) {
    ASSIGN_OR_RETURN(bool row, select.Step());
    if (!row) break;
    attempt = select.Int(0);
    v1::EpochResult* epoch = trial->add_curve();
    epoch->set_epoch(static_cast<int32_t>(select.Int(1)));
    epoch->set_train_loss(select.RealOrNan(2));
    epoch->set_train_accuracy(select.RealOrNan(3));
    epoch->set_validation_accuracy(select.RealOrNan(4));
    epoch->set_seconds(select.RealOrNan(5));
    epoch->set_train_perplexity(select.RealOrNan(6));
    epoch->set_validation_perplexity(select.RealOrNan(7));
  }
  // The final metrics are the curve of the attempt that reported them
  // (Trial.attempts); they count when no rows are stored or the rows are of
  // an earlier attempt.
  const bool metrics_later = trial->curve_size() == 0 || trial->attempts() > attempt;
  if (metrics_later && trial->metrics().epochs_size() > 0) {
    *trial->mutable_curve() = trial->metrics().epochs();
    std::stable_sort(trial->mutable_curve()->begin(), trial->mutable_curve()->end(),
                     [](const v1::EpochResult& a, const v1::EpochResult& b) {
                       return a.epoch() < b.epoch();
                     });
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<v1::Trial>> TrialStore::TrialsAfter(const std::string& job_id,
                                                                int64_t after_sequence,
                                                                int limit) {
  absl::MutexLock lock(&mu_);
  Statement select(statements_.get(), absl::StrCat("SELECT ", kTrialColumns,
                                                   " FROM trials WHERE job_id=? AND sequence > ? "
                                                   "ORDER BY sequence LIMIT ?"));
  RETURN_IF_ERROR(select.prepared());
  select.Bind(1, job_id).Bind(2, after_sequence).Bind(3, limit);
  return ReadTrials(select);
}

absl::StatusOr<std::unique_ptr<TrialStoreBackups>> TrialStoreBackups::Start(
    const TrialStoreBackupOptions& options) {
  if (options.store == nullptr) return absl::InvalidArgumentError("backups need a store");
  if (options.dir.empty()) return absl::InvalidArgumentError("--backup_dir is empty");
  if (options.interval <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("--backup_interval must be positive");
  }
  if (options.keep < 1) return absl::InvalidArgumentError("--backup_keep must be at least 1");
  RETURN_IF_ERROR(MakeDirectories(options.dir));
  std::unique_ptr<TrialStoreBackups> backups(new TrialStoreBackups(options));
  backups->thread_ = std::thread([b = backups.get()] { b->Run(); });
  return backups;
}

TrialStoreBackups::~TrialStoreBackups() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  if (thread_.joinable()) thread_.join();
}

absl::StatusOr<std::string> TrialStoreBackups::BackupNow() {
  absl::MutexLock lock(&mu_);  // one backup at a time
  int64_t second = absl::ToUnixSeconds(absl::Now());
  if (second <= last_second_) second = last_second_ + 1;
  last_second_ = second;
  const std::string name =
      absl::FormatTime("trials-%Y%m%d-%H%M%S.db", absl::FromUnixSeconds(second), absl::UTCTimeZone());
  const std::string final_path = absl::StrCat(options_.dir, "/", name);
  const std::string temp_path = absl::StrCat(options_.dir, "/.", name, ".tmp");
  RETURN_IF_ERROR(options_.store->Backup(temp_path));
  if (std::rename(temp_path.c_str(), final_path.c_str()) != 0) {
    std::remove(temp_path.c_str());
    return absl::InternalError(absl::StrCat("cannot rename ", temp_path, " to ", final_path));
  }
  // The newest `keep` stay; the names sort by time.
  std::vector<std::string> kept;
  std::error_code error;
  for (const auto& entry : std::filesystem::directory_iterator(options_.dir, error)) {
    const std::string file = entry.path().filename().string();
    if (absl::StartsWith(file, "trials-") && absl::EndsWith(file, ".db")) kept.push_back(file);
  }
  std::sort(kept.begin(), kept.end());
  for (size_t i = 0; i + options_.keep < kept.size(); ++i) {
    std::remove(absl::StrCat(options_.dir, "/", kept[i]).c_str());
  }
  return final_path;
}

void TrialStoreBackups::Run() {
  while (true) {
    {
      absl::MutexLock lock(&mu_);
      auto stop = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return stopping_; };
      if (mu_.AwaitWithTimeout(absl::Condition(&stop), options_.interval)) return;
    }
    absl::StatusOr<std::string> written = BackupNow();
    if (written.ok()) {
      NAS_LOG(Info) << "trial store backed up to " << *written;
    } else {
      NAS_LOG(Error) << "trial store backup failed (the next one is tried in "
                     << absl::FormatDuration(options_.interval) << "): " << written.status();
    }
  }
}

}  // namespace nas::controller
