#include "controller/job_spec.h"

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/printable.h"
#include "controller/early_stopping.h"
#include "controller/evolution_strategy.h"
#include "controller/strategy_registry.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/message.h"
#include "search_space/child_size.h"
#include "search_space/defaults.h"
#include "search_space/search_space.h"

namespace nas::controller {
namespace {

// Collects "path: problem" lines.
class Problems {
 public:
  void Add(const std::string& path, const std::string& problem) {
    lines_.push_back(absl::StrCat(path, ": ", problem));
  }
  template <typename T>
  void Range(const std::string& path, T value, T low, T high) {
    if (!(value >= low && value <= high)) {
      Add(path, absl::StrCat("must be between ", low, " and ", high, ", got ", value));
    }
  }
  void Finite(const std::string& path, double value) {
    if (!std::isfinite(value)) Add(path, "must be a finite number");
  }
  void AddAll(const absl::Status& status) {
    if (status.ok()) return;
    for (absl::string_view line : absl::StrSplit(status.message(), '\n')) {
      if (!line.empty()) lines_.emplace_back(line);
    }
  }
  // Lines quote what they refuse; their control characters are escaped so
  // the message itself is printable wherever it is shown.
  absl::Status ToStatus() const {
    if (lines_.empty()) return absl::OkStatus();
    return absl::InvalidArgumentError(
        absl::StrJoin(lines_, "\n", [](std::string* out, const std::string& line) {
          out->append(EscapeUnprintable(line));
        }));
  }

 private:
  std::vector<std::string> lines_;
};

// Sets `field` of `message` to `value` when it holds its zero value.
#define NAS_DEFAULT(message, field, value)                          \
  do {                                                              \
    if ((message).field() == decltype((message).field()){}) {       \
      (message).set_##field(value);                                 \
    }                                                               \
  } while (0)

// The paper's controller (2 x 35 LSTM, U(-0.08, 0.08), Adam) with settings
// for small budgets, chosen by measurement (docs/benchmarks.md, "Choosing
// the REINFORCE defaults"): Adam 0.01, logits squashed to 1.5·tanh, entropy
// bonus 0.01, baseline decay 0.8. The paper's 6e-4 without them behaves like
// random search for the first few hundred evaluations; examples/*paper*.yaml
// keeps the paper's values.
v1::ControllerSpec ControllerDefaults(v1::ControllerSpec c) {
  NAS_DEFAULT(c, lstm_layers, 2);
  NAS_DEFAULT(c, lstm_units, 35);
  NAS_DEFAULT(c, init_range, 0.08);
  NAS_DEFAULT(c, temperature, 1.0);
  NAS_DEFAULT(c, baseline_decay, 0.8);
  NAS_DEFAULT(c, learning_rate, 0.01);
  NAS_DEFAULT(c, optimizer, "adam");
  // Explicit 0 (off) is kept: these two are `optional`.
  if (!c.has_tanh_constant()) c.set_tanh_constant(1.5);
  if (!c.has_entropy_weight()) c.set_entropy_weight(0.01);
  return c;
}

void ValidateController(const v1::ControllerSpec& c, Problems& p) {
  p.Range("controller.lstm_layers", c.lstm_layers(), 1, JobLimits::kMaxLstmLayers);
  p.Range("controller.lstm_units", c.lstm_units(), 1, JobLimits::kMaxLstmUnits);
  p.Finite("controller.init_range", c.init_range());
  if (!(c.init_range() > 0 && c.init_range() <= 1)) {
    p.Add("controller.init_range", absl::StrCat("must be in (0, 1], got ", c.init_range()));
  }
  if (!(c.temperature() > 0 && c.temperature() <= 100)) {
    p.Add("controller.temperature", absl::StrCat("must be in (0, 100], got ", c.temperature()));
  }
  if (!(c.tanh_constant() >= 0 && c.tanh_constant() <= 100)) {
    p.Add("controller.tanh_constant",
          absl::StrCat("must be in [0, 100] (0 = off), got ", c.tanh_constant()));
  }
  if (!(c.entropy_weight() >= 0 && c.entropy_weight() <= 10)) {
    p.Add("controller.entropy_weight", absl::StrCat("must be in [0, 10], got ", c.entropy_weight()));
  }
  if (!(c.baseline_decay() >= 0 && c.baseline_decay() < 1)) {
    p.Add("controller.baseline_decay", absl::StrCat("must be in [0, 1), got ", c.baseline_decay()));
  }
  if (!(c.grad_clip_norm() >= 0 && std::isfinite(c.grad_clip_norm()))) {
    p.Add("controller.grad_clip_norm", "must be >= 0 (0 = off)");
  }
  if (!(c.learning_rate() > 0 && c.learning_rate() <= 10)) {
    p.Add("controller.learning_rate", absl::StrCat("must be in (0, 10], got ", c.learning_rate()));
  }
  if (c.optimizer() != "adam" && c.optimizer() != "sgd") {
    p.Add("controller.optimizer", absl::StrCat("must be adam or sgd, not '", c.optimizer(), "'"));
  }
}

// The limits on a trained child, and the largest child of the space against
// them (search_space/child_size.h): a spec some of whose children no worker
// would build is refused here rather than failing trial by trial.
void ValidateChildSize(const v1::JobSpec& spec, const v1::TrainEvaluatorSpec& train, Problems& p) {
  const v1::EvaluatorSpec& e = spec.evaluator();
  if (train.batch_size() < 1 || train.batch_size() > JobLimits::kMaxBatchSize ||
      !search_space::ValidateSearchSpace(spec.search_space()).ok()) {
    return;  // reported above
  }
  absl::StatusOr<search_space::ChildSize> largest;
  if (train.dataset() == "ptb") {
    const v1::LanguageModelSpec& lm = train.language_model();
    if (!spec.search_space().has_recurrent_cell()) return;  // reported above
    const search_space::LanguageModelShape shape{search_space::kPtbVocabulary, lm.embedding_size(), lm.hidden_size(),
                                                 lm.tie_weights(), lm.bptt_steps()};
    largest = search_space::LargestRecurrentChildSize(spec.search_space(), shape, train.batch_size());
  } else {
    absl::StatusOr<search_space::ImageShape> shape = search_space::DatasetImageShape(train.dataset());
    if (train.dataset() == "image_folder" && train.image_height() > 0 && train.image_width() > 0) {
      // The size and colour are the spec's; the class count is known only to
      // the worker, which checks the child again with it: 2 (the fewest) here.
      shape = search_space::ImageShape{train.color() == "gray" ? 1 : 3, train.image_height(),
                                       train.image_width(), 2};
    }
    // numpy, and image_folder at the images' own size: the shape comes from
    // the data, and only the worker checks the child.
    if (!shape.ok() || spec.search_space().has_recurrent_cell()) return;  // reported above
    largest = search_space::LargestChildSize(spec.search_space(), *shape, train.batch_size());
  }
  if (!largest.ok()) return;
  if (largest->parameters > e.max_parameters()) {
    p.Add("evaluator.max_parameters",
          absl::StrCat("the search space's largest child has ", largest->parameters,
                       " parameters, over the limit of ", e.max_parameters(),
                       " (shrink the space or raise the limit)"));
  }
  if (largest->activation_bytes > e.max_activation_bytes()) {
    p.Add("evaluator.max_activation_bytes",
          absl::StrCat("the search space's largest child needs about ",
                       search_space::FormatBytes(largest->activation_bytes), " (", largest->activation_bytes,
                       " bytes) of activations per batch of ", train.batch_size(), ", over the limit of ",
                       search_space::FormatBytes(e.max_activation_bytes()),
                       " (shrink the space or the batch, or raise the limit)"));
  }
}

// An environment variable's name: a C identifier, not one of the NAS_*
// names the worker sets itself.
bool ValidEnvName(const std::string& name) {
  if (name.empty() || absl::ascii_isdigit(static_cast<unsigned char>(name[0]))) return false;
  for (char c : name) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '_') return false;
  }
  return true;
}

void ValidateCommand(const v1::CommandEvaluatorSpec& c, Problems& p) {
  const std::string path = "evaluator.command";
  if (c.argv().empty()) {
    p.Add(path + ".argv", "must not be empty: the program to run and its arguments");
  }
  for (int i = 0; i < c.argv_size(); ++i) {
    if (i == 0 && c.argv(i).empty()) p.Add(absl::StrCat(path, ".argv[0]"), "must name the program");
    if (c.argv(i).find('\0') != std::string::npos) {
      p.Add(absl::StrCat(path, ".argv[", i, "]"), "must not contain a NUL character");
    }
  }
  std::vector<std::string> names;
  for (int i = 0; i < c.env_size(); ++i) {
    const std::string& name = c.env(i).name();
    const std::string at = absl::StrCat(path, ".env[", i, "]");
    if (!ValidEnvName(name)) {
      p.Add(at + ".name", absl::StrCat("'", name, "' is not a variable name (letters, digits, _)"));
    } else if (absl::StartsWith(name, "NAS_")) {
      p.Add(at + ".name", absl::StrCat("'", name, "': NAS_* variables are set by the worker"));
    } else if (std::find(names.begin(), names.end(), name) != names.end()) {
      p.Add(at + ".name", absl::StrCat("'", name, "' is set twice"));
    }
    names.push_back(name);
    if (c.env(i).value().find('\0') != std::string::npos) {
      p.Add(at + ".value", "must not contain a NUL character");
    }
  }
  if (!(c.timeout_seconds() >= 0 && c.timeout_seconds() <= 30 * 86400)) {
    p.Add(path + ".timeout_seconds", absl::StrCat("must be in [0, 2592000] (0 = none), got ", c.timeout_seconds()));
  }
  if (c.max_memory_bytes() < 0) {
    p.Add(path + ".max_memory_bytes", absl::StrCat("must not be negative (0 = none), got ", c.max_memory_bytes()));
  }
  if (c.max_output_bytes() < 0) {
    p.Add(path + ".max_output_bytes", absl::StrCat("must not be negative, got ", c.max_output_bytes()));
  }
  p.Range(path + ".epochs", c.epochs(), 1, JobLimits::kMaxEpochs);
  if (!(c.grace_seconds() >= 0 && c.grace_seconds() <= 3600)) {
    p.Add(path + ".grace_seconds", absl::StrCat("must be in [0, 3600], got ", c.grace_seconds()));
  }
}

// A train evaluator spec at `path` ("evaluator.train", or the one-shot
// evaluator's data and final_training), its child-size check included.
// `data_only`: the one-shot evaluator's data, whose training fields (epochs,
// learning_rate, momentum, weight_decay, lr_schedule) are not used.
void ValidateTrain(const v1::JobSpec& spec, const v1::TrainEvaluatorSpec& t, const std::string& path,
                   bool check_child_size, bool data_only, Problems& p) {
  const bool ptb = t.dataset() == "ptb";
  if (t.dataset().empty()) {
    p.Add(path + ".dataset", "must be set: fashion_mnist, mnist, cifar10, image_folder, numpy or ptb");
  } else if (t.dataset() != "fashion_mnist" && t.dataset() != "mnist" && t.dataset() != "cifar10" &&
             t.dataset() != "image_folder" && t.dataset() != "numpy" && !ptb) {
    p.Add(path + ".dataset",
          absl::StrCat("unknown dataset '", t.dataset(),
                       "' (known: fashion_mnist, mnist, cifar10, image_folder, numpy, ptb)"));
  }
  if (t.dataset() == "cifar10" && t.data_dir().empty()) {
    p.Add(path + ".data_dir",
          "must name the directory with CIFAR-10's data_batch_*.bin (no default location)");
  }
  if (ptb && t.data_dir().empty()) {
    p.Add(path + ".data_dir",
          "must name the directory with ptb.train.txt, ptb.valid.txt and ptb.test.txt (no default location)");
  }
  if (ptb && spec.search_space().space_case() != v1::SearchSpace::kRecurrentCell &&
      spec.search_space().space_case() != v1::SearchSpace::SPACE_NOT_SET) {
    p.Add(path + ".dataset", "ptb trains language models: the search space must be recurrent_cell");
  }
  if (!ptb && !t.dataset().empty() && spec.search_space().has_recurrent_cell()) {
    p.Add(path + ".dataset",
          absl::StrCat("a recurrent_cell space trains language models on ptb, not '", t.dataset(), "'"));
  }
  if (!ptb && t.has_language_model()) {
    p.Add(path + ".language_model", "is for dataset ptb only");
  }
  if (t.test_accuracy() && t.dataset() != "fashion_mnist" && t.dataset() != "mnist" && t.dataset() != "cifar10") {
    p.Add(path + ".test_accuracy",
          absl::StrCat("dataset '", t.dataset(), "' has no test split (fashion_mnist, mnist and cifar10 have)"));
  }
  if (t.dataset() == "image_folder" && t.data_dir().empty()) {
    p.Add(path + ".data_dir", "must name the directory of class subdirectories (DIR/<class>/*.png)");
  }
  if (t.dataset() == "numpy" && t.data_dir().empty()) {
    p.Add(path + ".data_dir",
          "must name a directory with images.npy and labels.npy, or an .npz file");
  }
  if (t.dataset() == "image_folder") {
    p.Range(path + ".image_height", t.image_height(), 0, JobLimits::kMaxImageSide);
    p.Range(path + ".image_width", t.image_width(), 0, JobLimits::kMaxImageSide);
    if ((t.image_height() == 0) != (t.image_width() == 0)) {
      p.Add(t.image_height() == 0 ? path + ".image_height" : path + ".image_width",
            "set image_height and image_width together (or neither, to keep the images' own size)");
    }
    if (!t.color().empty() && t.color() != "rgb" && t.color() != "gray") {
      p.Add(path + ".color", absl::StrCat("must be rgb or gray, not '", t.color(), "'"));
    }
  } else {
    // The other datasets' files fix their size and colour.
    const std::string why = absl::StrCat("is for dataset image_folder only (", t.dataset(),
                                         " takes its image size from its files)");
    if (t.image_height() != 0) p.Add(path + ".image_height", why);
    if (t.image_width() != 0) p.Add(path + ".image_width", why);
    if (!t.color().empty()) p.Add(path + ".color", why);
  }
  if (!data_only) p.Range(path + ".epochs", t.epochs(), 1, JobLimits::kMaxEpochs);
  p.Range(path + ".batch_size", t.batch_size(), 1, JobLimits::kMaxBatchSize);
  if (ptb) {
    const v1::LanguageModelSpec& lm = t.language_model();
    p.Range(path + ".language_model.embedding_size", lm.embedding_size(), 1,
            search_space::kMaxRecurrentSize);
    p.Range(path + ".language_model.hidden_size", lm.hidden_size(), 1, search_space::kMaxRecurrentSize);
    p.Range(path + ".language_model.bptt_steps", lm.bptt_steps(), 1, search_space::kMaxBpttSteps);
    p.Range(path + ".language_model.eval_batch_size", lm.eval_batch_size(), 1,
            JobLimits::kMaxBatchSize);
    p.Range(path + ".language_model.train_tokens", lm.train_tokens(), 0, 100'000'000);
    p.Range(path + ".language_model.valid_tokens", lm.valid_tokens(), 0, 100'000'000);
    if (!(lm.dropout() >= 0 && lm.dropout() < 1)) {
      p.Add(path + ".language_model.dropout", absl::StrCat("must be in [0, 1), got ", lm.dropout()));
    }
    if (!(lm.grad_clip() > 0 && lm.grad_clip() <= 1000)) {
      p.Add(path + ".language_model.grad_clip", absl::StrCat("must be in (0, 1000], got ", lm.grad_clip()));
    }
    if (lm.tie_weights() && lm.embedding_size() != lm.hidden_size()) {
      p.Add(path + ".language_model.tie_weights",
            absl::StrCat("needs embedding_size (", lm.embedding_size(), ") == hidden_size (", lm.hidden_size(),
                         ")"));
    }
    // A slice shorter than two rows of batch_size (eval_batch_size)
    // sequences gives nothing to train on (measure).
    if (lm.train_tokens() > 0 && lm.train_tokens() < 2 * t.batch_size()) {
      p.Add(path + ".language_model.train_tokens",
            absl::StrCat("must be 0 (all) or at least 2 x batch_size (", 2 * t.batch_size(), ")"));
    }
    if (lm.valid_tokens() > 0 && lm.valid_tokens() < 2 * lm.eval_batch_size()) {
      p.Add(path + ".language_model.valid_tokens",
            absl::StrCat("must be 0 (all) or at least 2 x eval_batch_size (", 2 * lm.eval_batch_size(), ")"));
    }
    if (!(t.learning_rate() > 0 && t.learning_rate() <= 100)) {
      p.Add(path + ".learning_rate", absl::StrCat("must be in (0, 100], got ", t.learning_rate()));
    }
  } else {
    p.Range(path + ".train_size", t.train_size(), 0, 10'000'000);
    p.Range(path + ".validation_size", t.validation_size(), 1, 10'000'000);
    if (!data_only && !(t.learning_rate() > 0 && t.learning_rate() <= 10)) {
      p.Add(path + ".learning_rate", absl::StrCat("must be in (0, 10], got ", t.learning_rate()));
    }
  }
  if (!data_only) {
    if (!(t.momentum() >= 0 && t.momentum() < 1)) {
      p.Add(path + ".momentum", absl::StrCat("must be in [0, 1), got ", t.momentum()));
    }
    if (!(t.weight_decay() >= 0 && t.weight_decay() < 1)) {
      p.Add(path + ".weight_decay", absl::StrCat("must be in [0, 1), got ", t.weight_decay()));
    }
    if (t.lr_schedule() != "cosine" && t.lr_schedule() != "step") {
      p.Add(path + ".lr_schedule",
            absl::StrCat("must be cosine or step, not '", t.lr_schedule(), "'"));
    }
  }
  if (check_child_size) ValidateChildSize(spec, t, p);
}

// The limits a trained child (and a one-shot supernet) is checked against.
void ValidateLimits(const v1::EvaluatorSpec& e, Problems& p) {
  p.Range<int64_t>("evaluator.max_parameters", e.max_parameters(), 1, JobLimits::kMaxParameters);
  p.Range<int64_t>("evaluator.max_activation_bytes", e.max_activation_bytes(), int64_t{1} << 20,
                   JobLimits::kMaxActivationBytes);
}

// The one-shot evaluator (docs/one_shot.md): its fields, the space (cell or,
// for ENAS, macro_cnn: the supernets workers build) and the supernet's
// estimated size.
void ValidateShared(const v1::JobSpec& spec, Problems& p) {
  const v1::EvaluatorSpec& e = spec.evaluator();
  const v1::SharedEvaluatorSpec& s = e.shared();
  const std::string path = "evaluator.shared";
  const v1::TrainEvaluatorSpec& data = s.data();
  if (spec.search_space().has_recurrent_cell()) {
    p.Add("search_space", "a recurrent_cell space has no supernet: one-shot search takes a cell space");
  } else if (data.dataset() == "ptb") {
    p.Add(path + ".data.dataset", "one-shot search trains a supernet of image classifiers: not ptb");
  } else {
    ValidateTrain(spec, data, path + ".data", /*check_child_size=*/false, /*data_only=*/true, p);
  }
  p.Range(path + ".train_steps", s.train_steps(), 1, 10000);
  p.Range(path + ".reward_batches", s.reward_batches(), 1, 1000);
  const bool sgd = s.optimizer() == "sgd";
  if (!sgd && s.optimizer() != "adam") {
    p.Add(path + ".optimizer", absl::StrCat("must be sgd or adam, not '", s.optimizer(), "'"));
  }
  if (!(s.learning_rate() > 0 && s.learning_rate() <= 10)) {
    p.Add(path + ".learning_rate", absl::StrCat("must be in (0, 10], got ", s.learning_rate()));
  }
  if (!sgd && s.has_momentum()) {
    p.Add(path + ".momentum", "is for optimizer sgd only");
  } else if (!(s.momentum() >= 0 && s.momentum() < 1)) {
    p.Add(path + ".momentum", absl::StrCat("must be in [0, 1), got ", s.momentum()));
  }
  if (s.max_staleness() < 1) {
    p.Add(path + ".max_staleness", absl::StrCat("must be at least 1, got ", s.max_staleness()));
  }
  p.Range(path + ".final_top_k", s.final_top_k(), 0, 100);
  if (spec.strategy().name() == "darts" && s.final_top_k() > 1) {
    p.Add(path + ".final_top_k",
          absl::StrCat("DARTS ends with one architecture, the argmax of α: at most 1, got ", s.final_top_k()));
  }
  if (s.final_top_k() > 0) {
    ValidateTrain(spec, s.final_training(), path + ".final_training", /*check_child_size=*/true,
                  /*data_only=*/false, p);
  }
  p.Range<int64_t>(path + ".max_supernet_bytes", s.max_supernet_bytes(), int64_t{1} << 20,
                   JobLimits::kMaxSupernetBytes);
  if (e.reuse_results()) {
    p.Add("evaluator.reuse_results", "one-shot rewards depend on the job's shared weights: must be unset");
  }
  if (!spec.early_stopping().rule().empty()) {
    p.Add("early_stopping.rule",
          "one-shot search tasks are not trained epoch by epoch: must be unset with evaluator.shared");
  }
  // The supernet's size, when the data fixes the image shape (darts on a
  // macro space is refused under strategy.name).
  const bool darts = spec.strategy().name() == "darts";
  if (spec.search_space().has_recurrent_cell() || (darts && !spec.search_space().has_cell()) ||
      data.batch_size() < 1 || data.batch_size() > JobLimits::kMaxBatchSize ||
      !search_space::ValidateSearchSpace(spec.search_space()).ok()) {
    return;  // reported above
  }
  absl::StatusOr<search_space::ImageShape> shape = search_space::DatasetImageShape(data.dataset());
  if (data.dataset() == "image_folder" && data.image_height() > 0 && data.image_width() > 0) {
    shape = search_space::ImageShape{data.color() == "gray" ? 1 : 3, data.image_height(), data.image_width(), 2};
  }
  if (!shape.ok()) return;  // numpy, image_folder at its own size: the worker checks
  absl::StatusOr<search_space::ChildSize> size =
      search_space::EstimateSupernetSize(spec.search_space(), *shape, data.batch_size(), darts);
  if (!size.ok()) return;
  // Weights and their gradients, plus the optimizer's state (momentum: one
  // copy; Adam: two), plus one batch's activations.
  const int64_t copies = 2 + (sgd ? (s.momentum() > 0 ? 1 : 0) : 2);
  const int64_t memory = size->parameters * 4 * copies + size->activation_bytes;
  const std::string what = absl::StrCat("the supernet (", size->ToString(), darts ? ", every operation running" : "",
                                        ") needs about ", search_space::FormatBytes(memory), " (", memory,
                                        " bytes) with ", s.optimizer(), "'s state");
  if (memory > s.max_supernet_bytes()) {
    p.Add(path + ".max_supernet_bytes",
          absl::StrCat(what, ", over the limit of ", search_space::FormatBytes(s.max_supernet_bytes()),
                       " (shrink the space or the batch, or raise the limit)"));
  }
  if (size->parameters > e.max_parameters()) {
    p.Add("evaluator.max_parameters", absl::StrCat("the supernet has ", size->parameters,
                                                   " parameters, over the limit of ", e.max_parameters()));
  }
  if (size->activation_bytes > e.max_activation_bytes()) {
    p.Add("evaluator.max_activation_bytes",
          absl::StrCat("the supernet needs about ", search_space::FormatBytes(size->activation_bytes),
                       " of activations per batch of ", data.batch_size(), ", over the limit of ",
                       search_space::FormatBytes(e.max_activation_bytes())));
  }
}

void ValidateEvaluator(const v1::JobSpec& spec, Problems& p) {
  const v1::EvaluatorSpec& e = spec.evaluator();
  p.Range("evaluator.max_attempts", e.max_attempts(), 1, JobLimits::kMaxAttempts);
  if (!(e.lease_seconds() >= 1 && e.lease_seconds() <= 86400)) {
    p.Add("evaluator.lease_seconds", absl::StrCat("must be in [1, 86400], got ", e.lease_seconds()));
  }
  switch (e.kind_case()) {
    case v1::EvaluatorSpec::kTrain:
      ValidateLimits(e, p);
      ValidateTrain(spec, e.train(), "evaluator.train", /*check_child_size=*/true, /*data_only=*/false, p);
      break;
    case v1::EvaluatorSpec::kLookup:
      if (e.lookup().table_path().empty()) {
        p.Add("evaluator.lookup.table_path", "must name the CSV table of architectures");
      }
      p.Range<double>("evaluator.lookup.time_scale", e.lookup().time_scale(), 0.0, 1000.0);
      break;
    case v1::EvaluatorSpec::kSynthetic: {
      const v1::SyntheticEvaluatorSpec& s = e.synthetic();
      if (!(s.duration_seconds() >= 0 && s.duration_seconds() <= 86400)) {
        p.Add("evaluator.synthetic.duration_seconds",
              absl::StrCat("must be in [0, 86400], got ", s.duration_seconds()));
      }
      p.Range("evaluator.synthetic.epochs", s.epochs(), 0, JobLimits::kMaxEpochs);
      if (!(s.failure_probability() >= 0 && s.failure_probability() < 1)) {
        p.Add("evaluator.synthetic.failure_probability",
              absl::StrCat("must be in [0, 1), got ", s.failure_probability()));
      }
      break;
    }
    case v1::EvaluatorSpec::kCommand:
      ValidateCommand(e.command(), p);
      break;
    case v1::EvaluatorSpec::kShared:
      ValidateLimits(e, p);
      ValidateShared(spec, p);
      break;
    case v1::EvaluatorSpec::KIND_NOT_SET:
      p.Add("evaluator", "one of train, lookup, synthetic, command or shared must be set");
      break;
  }
}

void ValidateReward(const v1::RewardSpec& r, Problems& p) {
  p.Range("reward.last_epochs", r.last_epochs(), 1, JobLimits::kMaxEpochs);
  if (!(r.power() > 0 && r.power() <= 100)) {
    p.Add("reward.power", absl::StrCat("must be in (0, 100], got ", r.power()));
  }
  const std::string& metric = r.objective_metric();
  if (metric.empty()) return;
  if (metric != "parameters" && metric != "flops" && metric != "latency_seconds") {
    p.Add("reward.objective_metric",
          absl::StrCat("must be parameters, flops or latency_seconds, not '", metric, "'"));
  }
  if (!(r.objective_target() > 0 && std::isfinite(r.objective_target()))) {
    p.Add("reward.objective_target", "must be > 0 when objective_metric is set");
  }
  if (!(std::fabs(r.objective_weight()) <= 10)) {
    p.Add("reward.objective_weight", "must be in [-10, 10]");
  }
}

// Every string of the spec (its name, paths, search-space choices, ...) must
// be printable UTF-8 (common/printable.h): the controller stores them and
// nasctl, logs and exports show them, so a control sequence in a name could
// clear a terminal or forge a row. Walks the message by reflection, so a
// string field added later is covered too. The refused text is quoted with
// its control characters escaped and cut to 64 bytes.
void ValidatePrintableStrings(const google::protobuf::Message& message, const std::string& path,
                              Problems& p) {
  using google::protobuf::FieldDescriptor;
  const google::protobuf::Reflection* reflection = message.GetReflection();
  std::vector<const FieldDescriptor*> fields;
  reflection->ListFields(message, &fields);
  for (const FieldDescriptor* field : fields) {
    const std::string field_path = path.empty() ? field->name() : absl::StrCat(path, ".", field->name());
    const int count = field->is_repeated() ? reflection->FieldSize(message, field) : 1;
    for (int i = 0; i < count; ++i) {
      const std::string item_path =
          field->is_repeated() ? absl::StrCat(field_path, "[", i, "]") : field_path;
      if (field->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE) {
        ValidatePrintableStrings(field->is_repeated()
                                     ? reflection->GetRepeatedMessage(message, field, i)
                                     : reflection->GetMessage(message, field),
                                 item_path, p);
      } else if (field->type() == FieldDescriptor::TYPE_STRING) {
        const std::string text = field->is_repeated()
                                     ? reflection->GetRepeatedString(message, field, i)
                                     : reflection->GetString(message, field);
        if (IsPrintableUtf8(text)) continue;
        const size_t kMaxQuoted = 64;
        p.Add(item_path,
              absl::StrCat("must be printable UTF-8 (no control characters); got \"",
                           EscapeUnprintable(absl::string_view(text).substr(0, kMaxQuoted)),
                           text.size() > kMaxQuoted ? "...\"" : "\""));
      }
    }
  }
}

// The one-shot evaluator's defaults (proto/job.proto's comments):
// final_training's dataset (and where its files are) is data's.
v1::SharedEvaluatorSpec SharedDefaults(v1::SharedEvaluatorSpec s) {
  NAS_DEFAULT(s, train_steps, 10);
  NAS_DEFAULT(s, reward_batches, 1);
  NAS_DEFAULT(s, optimizer, "sgd");
  const bool sgd = s.optimizer() == "sgd";
  NAS_DEFAULT(s, learning_rate, sgd ? 0.05 : 0.001);
  if (sgd && !s.has_momentum()) s.set_momentum(0.9);
  if (!s.has_max_staleness()) s.set_max_staleness(16);
  if (!s.has_final_top_k()) s.set_final_top_k(1);
  NAS_DEFAULT(s, max_supernet_bytes, JobLimits::kDefaultMaxSupernetBytes);
  v1::TrainEvaluatorSpec* final_training = s.mutable_final_training();
  if (final_training->dataset().empty()) {
    final_training->set_dataset(s.data().dataset());
    if (final_training->data_dir().empty()) final_training->set_data_dir(s.data().data_dir());
    if (final_training->image_height() == 0) final_training->set_image_height(s.data().image_height());
    if (final_training->image_width() == 0) final_training->set_image_width(s.data().image_width());
    if (final_training->color().empty()) final_training->set_color(s.data().color());
  }
  *s.mutable_data() = search_space::WithTrainDefaults(s.data());
  *final_training = search_space::WithTrainDefaults(*final_training);
  return s;
}

}  // namespace

v1::JobSpec WithDefaults(const v1::JobSpec& input) {
  v1::JobSpec spec = input;
  NAS_DEFAULT(*spec.mutable_strategy(), name, "reinforce");
  // DARTS' α learns with Adam at 3e-4 (the paper's), not REINFORCE's 0.01.
  if (spec.strategy().name() == "darts") NAS_DEFAULT(*spec.mutable_controller(), learning_rate, 3e-4);
  if (spec.strategy().name() == "evolution") {
    NAS_DEFAULT(*spec.mutable_strategy(), population_size, kDefaultPopulationSize);
    NAS_DEFAULT(*spec.mutable_strategy(), tournament_size, kDefaultTournamentSize);
  }
  v1::ParallelismSpec* par = spec.mutable_parallelism();
  // num_shards stays unset: the controller fills in its own shard count.
  if (!par->has_num_replicas()) par->set_num_replicas(1);
  if (!par->has_children_per_replica()) par->set_children_per_replica(1);
  if (!par->has_gradients_per_update()) par->set_gradients_per_update(1);
  v1::ControllerSpec* c = spec.mutable_controller();
  *c = ControllerDefaults(*c);
  v1::EvaluatorSpec* e = spec.mutable_evaluator();
  v1::BudgetSpec* budget = spec.mutable_budget();
  if (!budget->has_max_failed_fraction()) budget->set_max_failed_fraction(0.5);
  // Out of range max_trials is left for validation to name.
  if (budget->max_samples() == 0 && budget->max_trials() > 0 &&
      budget->max_trials() <= JobLimits::kMaxTrials) {
    budget->set_max_samples(JobLimits::kDefaultSamplesPerTrial * budget->max_trials());
  }
  NAS_DEFAULT(*e, max_attempts, 3);
  NAS_DEFAULT(*e, lease_seconds, 60.0);
  if (e->has_command()) {
    NAS_DEFAULT(*e->mutable_command(), max_output_bytes, int64_t{64} << 20);
    NAS_DEFAULT(*e->mutable_command(), grace_seconds, 10.0);
  }
  if (e->has_train()) {
    *e->mutable_train() = search_space::WithTrainDefaults(e->train());
    *e = search_space::WithEvaluatorLimitDefaults(*e);
  }
  if (e->has_shared()) {
    *e->mutable_shared() = SharedDefaults(e->shared());
    *e = search_space::WithEvaluatorLimitDefaults(*e);
  }
  if (spec.has_search_space()) {
    *spec.mutable_search_space() = search_space::WithSearchSpaceDefaults(spec.search_space());
  }
  *spec.mutable_reward() = search_space::WithRewardDefaults(spec.reward());
  if (!spec.early_stopping().rule().empty()) {
    v1::EarlyStoppingSpec* stopping = spec.mutable_early_stopping();
    NAS_DEFAULT(*stopping, min_epochs, 1);
    if (stopping->rule() == "median") NAS_DEFAULT(*stopping, min_trials, 5);
    if (stopping->rule() == "successive_halving") NAS_DEFAULT(*stopping, eta, 3.0);
  }
  return spec;
}

namespace {

void ValidateEarlyStopping(const v1::JobSpec& spec, Problems& p) {
  const v1::EarlyStoppingSpec& s = spec.early_stopping();
  if (s.rule().empty()) {
    if (s.min_epochs() != 0 || s.min_trials() != 0 || s.eta() != 0) {
      p.Add("early_stopping.rule", "must be set when other early_stopping fields are");
    }
    return;
  }
  if (s.rule() != "median" && s.rule() != "successive_halving") {
    p.Add("early_stopping.rule", absl::StrCat("unknown rule '", s.rule(),
                                              "' (known: median, successive_halving)"));
    return;
  }
  const int epochs = EvaluatorEpochs(spec.evaluator());
  if (s.min_epochs() < 1) {
    p.Add("early_stopping.min_epochs", absl::StrCat("must be at least 1, got ", s.min_epochs()));
  } else if (epochs > 0 && s.min_epochs() >= epochs) {
    p.Add("early_stopping.min_epochs",
          absl::StrCat(s.min_epochs(), " is not below the evaluator's epochs (", epochs,
                       "): no trial could be stopped"));
  }
  if (s.rule() == "median") {
    p.Range("early_stopping.min_trials", s.min_trials(), 1, 1'000'000);
    if (s.eta() != 0) p.Add("early_stopping.eta", "only successive_halving has η");
  } else {
    if (!(s.eta() > 1 && s.eta() <= 100)) {
      p.Add("early_stopping.eta", absl::StrCat("must be in (1, 100], got ", s.eta()));
    }
    if (s.min_trials() != 0) {
      p.Add("early_stopping.min_trials", "only the median rule has min_trials");
    }
  }
}

}  // namespace

absl::Status ValidateJobSpec(const v1::JobSpec& spec) {
  Problems p;
  if (spec.name().size() > JobLimits::kMaxNameLength) {
    p.Add("name", absl::StrCat("must be at most ", JobLimits::kMaxNameLength, " characters"));
  }
  ValidatePrintableStrings(spec, "", p);
  if (spec.search_space().space_case() == v1::SearchSpace::SPACE_NOT_SET) {
    p.Add("search_space", "one of macro_cnn, cell or recurrent_cell must be set");
  } else {
    p.AddAll(search_space::ValidateSearchSpace(spec.search_space()));
  }
  p.AddAll(LookupStrategy(spec.strategy().name()).status());
  const v1::StrategySpec& strategy = spec.strategy();
  if (strategy.name() == "darts" && !spec.evaluator().has_shared()) {
    p.Add("strategy.name", "darts trains α with ω on a supernet: it needs evaluator.shared");
  }
  if (strategy.name() == "darts" && spec.search_space().space_case() != v1::SearchSpace::kCell &&
      spec.search_space().space_case() != v1::SearchSpace::SPACE_NOT_SET) {
    p.Add("strategy.name",
          "darts needs a cell search space (its mixed supernet; a macro_cnn supernet runs one sampled child at a "
          "time)");
  }
  if (strategy.name() == "evolution") {
    p.Range("strategy.population_size", strategy.population_size(), 2,
            JobLimits::kMaxPopulationSize);
    if (!(strategy.tournament_size() >= 1 && strategy.tournament_size() <= strategy.population_size())) {
      p.Add("strategy.tournament_size",
            absl::StrCat("must be between 1 and strategy.population_size (",
                         strategy.population_size(), "), got ", strategy.tournament_size()));
    }
    // Evolution runs one loop per child in flight (controller/strategy_registry.h).
    const int64_t in_flight = static_cast<int64_t>(spec.parallelism().num_replicas()) *
                              spec.parallelism().children_per_replica();
    if (in_flight > JobLimits::kMaxEvolutionInFlight) {
      p.Add("parallelism",
            absl::StrCat("num_replicas x children_per_replica is ", in_flight,
                         "; strategy evolution keeps that many children in flight, at most ",
                         JobLimits::kMaxEvolutionInFlight));
    }
  } else {
    // Only evolution reads them: refused rather than silently ignored, so a
    // spec never seems to configure something.
    if (strategy.population_size() != 0) {
      p.Add("strategy.population_size", "only strategy evolution has a population; must be unset");
    }
    if (strategy.tournament_size() != 0) {
      p.Add("strategy.tournament_size", "only strategy evolution has tournaments; must be unset");
    }
  }
  const v1::ParallelismSpec& par = spec.parallelism();
  if (par.has_num_shards()) {
    p.Range("parallelism.num_shards", par.num_shards(), 1, JobLimits::kMaxShards);
  }
  p.Range("parallelism.num_replicas", par.num_replicas(), 1, JobLimits::kMaxReplicas);
  p.Range("parallelism.children_per_replica", par.children_per_replica(), 1,
          JobLimits::kMaxChildrenPerReplica);
  p.Range("parallelism.gradients_per_update", par.gradients_per_update(), 1,
          JobLimits::kMaxGradientsPerUpdate);
  ValidateController(spec.controller(), p);
  const v1::BudgetSpec& b = spec.budget();
  if (b.max_trials() == 0 && b.max_samples() == 0 && b.max_wall_seconds() == 0) {
    p.Add("budget", "set max_trials, max_samples and/or max_wall_seconds (a job needs an end)");
  }
  p.Range<int64_t>("budget.max_trials", b.max_trials(), 0, JobLimits::kMaxTrials);
  p.Range<int64_t>("budget.max_samples", b.max_samples(), 0, JobLimits::kMaxSamples);
  if (b.max_samples() > 0 && b.max_samples() < b.max_trials()) {
    p.Add("budget.max_samples",
          absl::StrCat(b.max_samples(), " is below budget.max_trials (", b.max_trials(),
                       "): every evaluation is a sample"));
  }
  p.Range<int64_t>("budget.max_wall_seconds", b.max_wall_seconds(), 0, 365LL * 86400);
  p.Range<double>("budget.max_failed_fraction", b.max_failed_fraction(), 0.0, 1.0);
  ValidateEvaluator(spec, p);
  ValidateReward(spec.reward(), p);
  ValidateEarlyStopping(spec, p);
  return p.ToStatus();
}

}  // namespace nas::controller
