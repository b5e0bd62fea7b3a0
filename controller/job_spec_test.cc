#include "controller/job_spec.h"

#include <string>

#include "common/file_util.h"
#include "common/proto_yaml.h"
#include "gtest/gtest.h"

namespace nas::controller {
namespace {

v1::JobSpec Parse(const std::string& yaml) {
  v1::JobSpec spec;
  absl::Status status = ParseYamlToMessage(yaml, &spec);
  EXPECT_TRUE(status.ok()) << status;
  return spec;
}

constexpr char kMinimal[] = R"(
search_space:
  cell: {num_nodes: 4, operations: [none, skip_connect, nor_conv_3x3]}
budget: {max_trials: 10}
evaluator: {synthetic: {}}
)";

TEST(JobSpecTest, DefaultsFillThePapersControllerAndTheRewardFormula) {
  v1::JobSpec spec = WithDefaults(Parse(kMinimal));
  EXPECT_EQ(spec.strategy().name(), "reinforce");
  EXPECT_EQ(spec.controller().lstm_layers(), 2);
  EXPECT_EQ(spec.controller().lstm_units(), 35);
  EXPECT_DOUBLE_EQ(spec.controller().init_range(), 0.08);
  // The small-budget settings (docs/benchmarks.md).
  EXPECT_DOUBLE_EQ(spec.controller().learning_rate(), 0.01);
  EXPECT_DOUBLE_EQ(spec.controller().tanh_constant(), 1.5);
  EXPECT_DOUBLE_EQ(spec.controller().entropy_weight(), 0.01);
  EXPECT_DOUBLE_EQ(spec.controller().baseline_decay(), 0.8);
  EXPECT_DOUBLE_EQ(spec.controller().temperature(), 1);
  EXPECT_EQ(spec.controller().optimizer(), "adam");
  EXPECT_EQ(spec.reward().last_epochs(), 5);
  EXPECT_DOUBLE_EQ(spec.reward().power(), 3);
  EXPECT_EQ(spec.parallelism().num_replicas(), 1);
  EXPECT_FALSE(spec.parallelism().has_num_shards());
  EXPECT_EQ(spec.evaluator().max_attempts(), 3);
  EXPECT_TRUE(ValidateJobSpec(spec).ok()) << ValidateJobSpec(spec);
}

TEST(JobSpecTest, DefaultsFillTheCellsTrainingShapeAndTheTrainEvaluator) {
  v1::JobSpec spec = WithDefaults(Parse(R"(
search_space:
  cell: {num_nodes: 4, operations: [none, nor_conv_3x3]}
budget: {max_trials: 10}
evaluator: {train: {dataset: fashion_mnist, epochs: 2, batch_size: 64}}
)"));
  EXPECT_EQ(spec.search_space().cell().cells_per_stage(), 1);
  EXPECT_EQ(spec.search_space().cell().initial_channels(), 16);
  const v1::TrainEvaluatorSpec& train = spec.evaluator().train();
  EXPECT_EQ(train.batch_size(), 64);
  EXPECT_EQ(train.validation_size(), 5000);
  EXPECT_DOUBLE_EQ(train.learning_rate(), 0.1);
  EXPECT_DOUBLE_EQ(train.momentum(), 0.9);
  EXPECT_DOUBLE_EQ(train.weight_decay(), 1e-4);
  EXPECT_EQ(train.lr_schedule(), "cosine");
  EXPECT_TRUE(ValidateJobSpec(spec).ok()) << ValidateJobSpec(spec);
}

TEST(JobSpecTest, ExplicitZeroReplicasIsAnErrorNotADefault) {
  v1::JobSpec spec = Parse(std::string(kMinimal) + "parallelism: {num_replicas: 0}\n");
  absl::Status status = ValidateJobSpec(WithDefaults(spec));
  EXPECT_NE(status.message().find("parallelism.num_replicas: must be between 1 and 1000, got 0"),
            absl::string_view::npos)
      << status;
}

TEST(JobSpecTest, EveryProblemIsListedOnItsOwnLine) {
  v1::JobSpec spec = Parse(R"(
search_space:
  macro_cnn: {filter_heights: [], filter_widths: [3], num_filters: [8], depth: {initial_layers: 2, max_layers: 2}}
strategy: {name: annealing}
budget: {}
evaluator: {train: {dataset: imagenet, epochs: -1}}
reward: {power: -1}
)");
  absl::Status status = ValidateJobSpec(WithDefaults(spec));
  ASSERT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  const std::string message(status.message());
  for (const char* line :
       {"search_space.macro_cnn.filter_heights: must not be empty", "strategy.name: unknown",
        "budget: set max_trials", "evaluator.train.dataset: unknown dataset 'imagenet'",
        "evaluator.train.epochs: must be between 1 and 1000, got -1",
        "reward.power: must be in (0, 100]"}) {
    EXPECT_NE(message.find(line), std::string::npos) << line << "\n" << message;
  }
}

// The paper's settings stay expressible: an explicit 0 turns the logit
// squashing and the entropy bonus off instead of taking the defaults.
TEST(JobSpecTest, AnExplicitZeroKeepsTanhAndTheEntropyBonusOff) {
  v1::JobSpec spec = WithDefaults(
      Parse(std::string(kMinimal) + "controller: {tanh_constant: 0, entropy_weight: 0}\n"));
  EXPECT_EQ(spec.controller().tanh_constant(), 0);
  EXPECT_EQ(spec.controller().entropy_weight(), 0);
  EXPECT_TRUE(ValidateJobSpec(spec).ok()) << ValidateJobSpec(spec);
}

TEST(JobSpecTest, AStrategyNameIsCheckedAgainstTheRegistry) {
  for (const char* name : {"random", "reinforce", "evolution"}) {
    v1::JobSpec spec = Parse(kMinimal);
    spec.mutable_strategy()->set_name(name);
    spec = WithDefaults(spec);
    EXPECT_TRUE(ValidateJobSpec(spec).ok()) << name << ": " << ValidateJobSpec(spec);
  }
  v1::JobSpec spec = WithDefaults(Parse(kMinimal));
  spec.mutable_strategy()->set_name("evolve");
  const absl::Status status = ValidateJobSpec(spec);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(status.message(),
            "strategy.name: unknown strategy 'evolve' (known: darts, evolution, random, reinforce)");
}

TEST(JobSpecTest, EvolutionGetsItsDefaultsAndItsFieldsAreCheckedAndRefusedElsewhere) {
  v1::JobSpec evolution = WithDefaults(Parse(std::string(kMinimal) + "strategy: {name: evolution}\n"));
  EXPECT_EQ(evolution.strategy().population_size(), 64);
  EXPECT_EQ(evolution.strategy().tournament_size(), 16);
  EXPECT_TRUE(ValidateJobSpec(evolution).ok()) << ValidateJobSpec(evolution);
  evolution.mutable_strategy()->set_population_size(1);
  evolution.mutable_strategy()->set_tournament_size(5);
  evolution.mutable_parallelism()->set_num_replicas(100);
  evolution.mutable_parallelism()->set_children_per_replica(20);
  std::string message(ValidateJobSpec(evolution).message());
  for (const char* line :
       {"strategy.population_size: must be between 2 and 100000, got 1",
        "strategy.tournament_size: must be between 1 and strategy.population_size (1), got 5",
        "parallelism: num_replicas x children_per_replica is 2000; strategy evolution keeps that "
        "many children in flight, at most 1024"}) {
    EXPECT_NE(message.find(line), std::string::npos) << line << "\n" << message;
  }
  // The other strategies have no population: setting its fields is refused.
  v1::JobSpec spec =
      WithDefaults(Parse(std::string(kMinimal) + "strategy: {population_size: 50, tournament_size: 10}\n"));
  const absl::Status status = ValidateJobSpec(spec);
  ASSERT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  message = std::string(status.message());
  for (const char* line :
       {"strategy.population_size: only strategy evolution has a population; must be unset",
        "strategy.tournament_size: only strategy evolution has tournaments; must be unset"}) {
    EXPECT_NE(message.find(line), std::string::npos) << line << "\n" << message;
  }
  spec.mutable_strategy()->clear_population_size();
  spec.mutable_strategy()->clear_tournament_size();
  EXPECT_TRUE(ValidateJobSpec(spec).ok()) << ValidateJobSpec(spec);
}

TEST(JobSpecTest, BundledExamplesAreValid) {
  // The examples directory is checked by the end-to-end tests too; here the
  // minimal spec with every evaluator kind validates.
  for (const char* evaluator : {"synthetic: {}", "lookup: {table_path: t.csv}",
                                "train: {dataset: fashion_mnist, epochs: 1}",
                                "command: {argv: [python3, train.py], epochs: 2}"}) {
    v1::JobSpec spec = Parse(std::string("search_space:\n  cell: {num_nodes: 3, operations: [none, skip_connect]}\n"
                                         "budget: {max_wall_seconds: 60}\nevaluator: {") +
                             evaluator + "}\n");
    EXPECT_TRUE(ValidateJobSpec(WithDefaults(spec)).ok()) << evaluator;
  }
}

TEST(JobSpecTest, ASpecWhoseLargestChildCannotFitIsRefusedWithItsSize) {
  // Issue 18 row 1: 16 nodes, 32 cells per stage, 256 channels, trained.
  v1::JobSpec spec = WithDefaults(Parse(R"(
search_space:
  cell: {num_nodes: 16, operations: [none, nor_conv_3x3], cells_per_stage: 32, initial_channels: 256}
budget: {max_trials: 10}
evaluator: {train: {dataset: fashion_mnist, epochs: 1}}
)"));
  EXPECT_EQ(spec.evaluator().max_parameters(), 50'000'000);
  EXPECT_EQ(spec.evaluator().max_activation_bytes(), int64_t{16} << 30);
  absl::Status status = ValidateJobSpec(spec);
  ASSERT_TRUE(absl::IsInvalidArgument(status));
  const std::string message(status.message());
  // 32 cells x 120 edges x (9c^2 + 2c) at c = 256, 512, 1024 is 47,577,169,920;
  // stem 2,816, reductions 3,672,064 + 14,684,160, norm + classifier 12,298.
  EXPECT_NE(message.find("evaluator.max_parameters: the search space's largest child has 47595541258 "),
            std::string::npos)
      << message;
  EXPECT_NE(message.find("over the limit of 50000000"), std::string::npos) << message;
  EXPECT_NE(message.find("evaluator.max_activation_bytes: the search space's largest child needs about "),
            std::string::npos)
      << message;
  // The maximal macro CNN: 64 layers of 1024 15x15 filters, skip connections.
  spec = WithDefaults(Parse(R"(
search_space:
  macro_cnn:
    filter_heights: [15]
    filter_widths: [15]
    num_filters: [1024]
    skip_connections: true
    depth: {initial_layers: 64, max_layers: 64}
budget: {max_trials: 10}
evaluator: {train: {dataset: cifar10, data_dir: /data, epochs: 1, batch_size: 4096}}
)"));
  status = ValidateJobSpec(spec);
  EXPECT_NE(status.message().find("evaluator.max_parameters: the search space's largest child has "),
            std::string::npos)
      << status;
  // Raising the limits is the way out (within their own bounds).
  spec.mutable_evaluator()->set_max_parameters(int64_t{20'000'000'000});
  EXPECT_NE(ValidateJobSpec(spec).message().find("evaluator.max_parameters: must be between 1 and 10000000000"),
            std::string::npos);
  // The paper's space fits the defaults; a tight limit on it does not.
  spec = WithDefaults(Parse(R"(
search_space:
  macro_cnn:
    filter_heights: [1, 3, 5, 7]
    filter_widths: [1, 3, 5, 7]
    num_filters: [24, 36, 48, 64]
    strides: [1, 2, 3]
    skip_connections: true
    depth: {initial_layers: 6, layers_increment: 2, samples_per_increment: 1600, max_layers: 15}
budget: {max_trials: 10}
evaluator: {train: {dataset: cifar10, data_dir: /data, epochs: 1, batch_size: 128}}
)"));
  EXPECT_TRUE(ValidateJobSpec(spec).ok()) << ValidateJobSpec(spec);
  spec.mutable_evaluator()->set_max_activation_bytes(int64_t{1} << 30);
  EXPECT_NE(ValidateJobSpec(spec).message().find(
                "evaluator.max_activation_bytes: the search space's largest child needs about "),
            std::string::npos);
  // Other evaluators build nothing: the limits are not filled in or checked.
  EXPECT_FALSE(WithDefaults(Parse(kMinimal)).evaluator().has_train());
  EXPECT_EQ(WithDefaults(Parse(kMinimal)).evaluator().max_parameters(), 0);
}

constexpr char kPtb[] = R"(
search_space:
  recurrent_cell:
    base: 8
    combinations: [add, elem_mult]
    activations: [identity, tanh, sigmoid, relu]
    cell_inject: true
budget: {max_trials: 10}
evaluator:
  train:
    dataset: ptb
    data_dir: /data/ptb
    epochs: 2
    language_model: {embedding_size: 64, hidden_size: 64, tie_weights: true}
)";

TEST(JobSpecTest, RecurrentCellsTrainOnPtbWithTheLanguageModelsDefaultsAndSize) {
  const v1::JobSpec spec = WithDefaults(Parse(kPtb));
  EXPECT_TRUE(ValidateJobSpec(spec).ok()) << ValidateJobSpec(spec);
  EXPECT_EQ(spec.evaluator().train().language_model().bptt_steps(), 35);
  EXPECT_DOUBLE_EQ(spec.evaluator().train().learning_rate(), 20);
  EXPECT_DOUBLE_EQ(spec.reward().perplexity_constant(), 6400);
  // Every child has the same parameter count: V*E + E*8H + 8H + H*8H + V
  // (tied) = 640,000 + 32,768 + 512 + 32,768 + 10,000 = 716,048.
  v1::JobSpec tight = spec;
  tight.mutable_evaluator()->set_max_parameters(716047);
  EXPECT_NE(ValidateJobSpec(tight).message().find(
                "evaluator.max_parameters: the search space's largest child has 716048 parameters"),
            std::string::npos)
      << ValidateJobSpec(tight);
  tight.mutable_evaluator()->set_max_parameters(716048);
  EXPECT_TRUE(ValidateJobSpec(tight).ok()) << ValidateJobSpec(tight);
}

TEST(JobSpecTest, LanguageModelFieldsAreCheckedWithTheirPaths) {
  v1::JobSpec spec = WithDefaults(Parse(kPtb));
  v1::TrainEvaluatorSpec* t = spec.mutable_evaluator()->mutable_train();
  t->mutable_language_model()->set_hidden_size(32);
  t->mutable_language_model()->set_bptt_steps(-1);
  t->mutable_language_model()->set_dropout(1);
  t->mutable_language_model()->set_train_tokens(5);
  t->set_data_dir("");
  std::string message(ValidateJobSpec(spec).message());
  for (const char* expected :
       {"evaluator.train.language_model.tie_weights: needs embedding_size (64) == hidden_size (32)",
        "evaluator.train.language_model.bptt_steps: must be between 1 and 10000",
        "evaluator.train.language_model.dropout: must be in [0, 1), got 1",
        "evaluator.train.language_model.train_tokens: must be 0 (all) or at least 2 x batch_size (40)",
        "evaluator.train.data_dir: must name the directory with ptb.train.txt"}) {
    EXPECT_NE(message.find(expected), std::string::npos) << expected << "\n" << message;
  }
  // ptb needs a recurrent space, and a recurrent space needs ptb.
  spec = WithDefaults(Parse(kPtb));
  spec.mutable_search_space()->mutable_cell()->set_num_nodes(3);
  spec.mutable_search_space()->mutable_cell()->add_operations("none");
  message = std::string(ValidateJobSpec(spec).message());
  EXPECT_NE(message.find("evaluator.train.dataset: ptb trains language models: the search space must be "
                         "recurrent_cell"),
            std::string::npos)
      << message;
  spec = WithDefaults(Parse(kPtb));
  spec.mutable_evaluator()->mutable_train()->set_dataset("cifar10");
  message = std::string(ValidateJobSpec(spec).message());
  EXPECT_NE(message.find("evaluator.train.dataset: a recurrent_cell space trains language models on ptb, not "
                         "'cifar10'"),
            std::string::npos)
      << message;
  EXPECT_NE(message.find("evaluator.train.language_model: is for dataset ptb only"), std::string::npos) << message;
}

TEST(JobSpecTest, NamesWithControlCharactersAreRefusedWithTheBytesEscaped) {
  v1::JobSpec spec = Parse(kMinimal);
  spec.set_name("\x1b[2J\x1b[31mPWNED\x1b[0m\r\nfake-job   running");
  absl::Status status = ValidateJobSpec(WithDefaults(spec));
  ASSERT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(status.message(),
            "name: must be printable UTF-8 (no control characters); got "
            "\"\\e[2J\\e[31mPWNED\\e[0m\\r\\nfake-job   running\"");
  for (const char* bad : {"tab\there", "del\x7f", "csi\xc2\x9b", "rtl\xe2\x80\xae", "bad\xff"}) {
    spec.set_name(bad);
    EXPECT_NE(ValidateJobSpec(WithDefaults(spec)).message().find("name: must be printable UTF-8"),
              absl::string_view::npos)
        << bad;
  }
  spec.set_name("r\xc3\xa9seau \xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x9a\x80");  // réseau 日本 🚀
  EXPECT_TRUE(ValidateJobSpec(WithDefaults(spec)).ok()) << ValidateJobSpec(WithDefaults(spec));
}

TEST(JobSpecTest, EveryStringOfTheSpecMustBePrintableNotJustTheName) {
  v1::JobSpec spec = Parse(std::string(kMinimal) + "name: ok\n");
  spec.mutable_evaluator()->mutable_lookup()->set_table_path("/tmp/t.csv\x1b]0;title\x07");
  spec.mutable_search_space()->mutable_cell()->set_operations(1, "skip\x1b[Kconnect");
  const std::string message(ValidateJobSpec(WithDefaults(spec)).message());
  EXPECT_NE(message.find("evaluator.lookup.table_path: must be printable UTF-8 (no control "
                         "characters); got \"/tmp/t.csv\\e]0;title\\x07\""),
            std::string::npos)
      << message;
  EXPECT_NE(message.find("search_space.cell.operations[1]: must be printable UTF-8"),
            std::string::npos)
      << message;
  EXPECT_EQ(message.find('\x1b'), std::string::npos) << "the message itself holds no ESC";
}

TEST(JobSpecTest, UnknownCellOperationsAreRefusedWithTheKnownList) {
  v1::JobSpec spec = Parse(R"(
search_space:
  cell: {num_nodes: 4, operations: [none, conv_9x9, skip_connect]}
budget: {max_trials: 10}
evaluator: {synthetic: {}}
)");
  absl::Status status = ValidateJobSpec(WithDefaults(spec));
  EXPECT_EQ(status.message(),
            "search_space.cell.operations: unknown 'conv_9x9' (known: none, skip_connect, "
            "nor_conv_1x1, nor_conv_3x3, avg_pool_3x3)");
}

constexpr char kNoBudget[] = R"(
search_space:
  cell: {num_nodes: 4, operations: [none, skip_connect, nor_conv_3x3]}
evaluator: {synthetic: {}}
)";

TEST(JobSpecTest, MaxSamplesDefaultsToTenPerEvaluationAndMayNotBeBelowMaxTrials) {
  EXPECT_EQ(WithDefaults(Parse(kMinimal)).budget().max_samples(), 100);
  v1::JobSpec set = WithDefaults(Parse(std::string(kNoBudget) + "budget: {max_trials: 10, max_samples: 15}\n"));
  EXPECT_EQ(set.budget().max_samples(), 15);
  EXPECT_TRUE(ValidateJobSpec(set).ok()) << ValidateJobSpec(set);
  v1::JobSpec wall = WithDefaults(Parse(std::string(kNoBudget) + "budget: {max_wall_seconds: 60}\n"));
  EXPECT_EQ(wall.budget().max_samples(), 0) << "no evaluation limit: no sample limit either";
  const absl::Status below = ValidateJobSpec(
      WithDefaults(Parse(std::string(kNoBudget) + "budget: {max_trials: 10, max_samples: 5}\n")));
  EXPECT_EQ(below.message(),
            "budget.max_samples: 5 is below budget.max_trials (10): every evaluation is a sample");
  v1::JobSpec alone = WithDefaults(Parse(std::string(kNoBudget) + "budget: {max_samples: 50}\n"));
  EXPECT_TRUE(ValidateJobSpec(alone).ok()) << "max_samples alone ends a job";
}

TEST(JobSpecTest, EarlyStoppingGetsDefaultsAndBadFieldsAreNamed) {
  const std::string base = R"(
search_space:
  cell: {num_nodes: 4, operations: [none, skip_connect, nor_conv_3x3]}
budget: {max_trials: 10}
evaluator: {synthetic: {epochs: 6}}
)";
  v1::JobSpec median = WithDefaults(Parse(base + "early_stopping: {rule: median}\n"));
  EXPECT_EQ(median.early_stopping().min_epochs(), 1);
  EXPECT_EQ(median.early_stopping().min_trials(), 5);
  EXPECT_TRUE(ValidateJobSpec(median).ok()) << ValidateJobSpec(median);
  v1::JobSpec asha = WithDefaults(Parse(base + "early_stopping: {rule: successive_halving, min_epochs: 2}\n"));
  EXPECT_DOUBLE_EQ(asha.early_stopping().eta(), 3.0);
  EXPECT_TRUE(ValidateJobSpec(asha).ok()) << ValidateJobSpec(asha);
  struct Case {
    std::string yaml, problem;
  };
  for (const Case& c : std::vector<Case>{
           {"early_stopping: {rule: hyperband}",
            "early_stopping.rule: unknown rule 'hyperband' (known: median, successive_halving)"},
           {"early_stopping: {rule: median, min_epochs: 6}",
            "early_stopping.min_epochs: 6 is not below the evaluator's epochs (6): no trial could be stopped"},
           {"early_stopping: {rule: median, min_epochs: 9}",
            "early_stopping.min_epochs: 9 is not below the evaluator's epochs (6)"},
           {"early_stopping: {rule: successive_halving, eta: 1}",
            "early_stopping.eta: must be in (1, 100], got 1"},
           {"early_stopping: {rule: successive_halving, eta: 0.5}",
            "early_stopping.eta: must be in (1, 100], got 0.5"},
           {"early_stopping: {rule: median, min_trials: -1}",
            "early_stopping.min_trials: must be between 1 and 1000000, got -1"},
           {"early_stopping: {eta: 2}", "early_stopping.rule: must be set"},
       }) {
    const absl::Status status = ValidateJobSpec(WithDefaults(Parse(base + c.yaml + "\n")));
    EXPECT_NE(status.message().find(c.problem), std::string::npos) << c.yaml << "\n" << status;
  }
}

TEST(JobSpecTest, LookupTimeScaleIsRangeCheckedAndEarlyStoppingMayUseALookupTable) {
  const std::string base = R"(
search_space:
  cell: {num_nodes: 4, operations: [none, skip_connect, nor_conv_3x3]}
budget: {max_trials: 10}
early_stopping: {rule: successive_halving, min_epochs: 4}
)";
  v1::JobSpec ok = WithDefaults(Parse(base + "evaluator: {lookup: {table_path: t.csv, time_scale: 0.01}}\n"));
  EXPECT_TRUE(ValidateJobSpec(ok).ok()) << ValidateJobSpec(ok);
  const absl::Status bad = ValidateJobSpec(
      WithDefaults(Parse(base + "evaluator: {lookup: {table_path: t.csv, time_scale: -1}}\n")));
  EXPECT_EQ(bad.message(), "evaluator.lookup.time_scale: must be between 0 and 1000, got -1");
}

TEST(JobSpecTest, ImageFolderAndNumpyDatasetsAreAcceptedAndTheirBadFieldsAreNamed) {
  const std::string base = R"(
search_space:
  cell: {num_nodes: 3, operations: [none, nor_conv_3x3]}
budget: {max_trials: 10}
)";
  auto problems = [&](const std::string& train) {
    return std::string(ValidateJobSpec(WithDefaults(Parse(base + "evaluator: {train: {" + train + "}}\n"))).message());
  };
  EXPECT_EQ(problems("dataset: image_folder, data_dir: /data/flowers, image_height: 64, image_width: 48, "
                     "color: gray, epochs: 1"),
            "");
  EXPECT_EQ(problems("dataset: image_folder, data_dir: /data/flowers, epochs: 1"), "");
  EXPECT_EQ(problems("dataset: numpy, data_dir: /data/arrays.npz, epochs: 1"), "");
  EXPECT_NE(problems("dataset: image_folder, epochs: 1").find("evaluator.train.data_dir: must name the directory "
                                                              "of class subdirectories"),
            std::string::npos);
  EXPECT_NE(problems("dataset: numpy, epochs: 1").find("evaluator.train.data_dir: must name a directory with "
                                                       "images.npy and labels.npy, or an .npz file"),
            std::string::npos);
  EXPECT_NE(problems("dataset: image_folder, data_dir: /d, image_height: 32, epochs: 1")
                .find("evaluator.train.image_width: set image_height and image_width together"),
            std::string::npos);
  EXPECT_NE(problems("dataset: image_folder, data_dir: /d, image_height: -1, image_width: 5000, epochs: 1")
                .find("evaluator.train.image_height: must be between 0 and 4096, got -1"),
            std::string::npos);
  EXPECT_NE(problems("dataset: image_folder, data_dir: /d, image_height: 8, image_width: 5000, epochs: 1")
                .find("evaluator.train.image_width: must be between 0 and 4096, got 5000"),
            std::string::npos);
  EXPECT_NE(problems("dataset: image_folder, data_dir: /d, color: cmyk, epochs: 1")
                .find("evaluator.train.color: must be rgb or gray, not 'cmyk'"),
            std::string::npos);
  const std::string numpy_size = problems("dataset: numpy, data_dir: /d, image_height: 8, color: rgb, epochs: 1");
  EXPECT_NE(numpy_size.find("evaluator.train.image_height: is for dataset image_folder only (numpy takes its "
                            "image size from its files)"),
            std::string::npos)
      << numpy_size;
  EXPECT_NE(numpy_size.find("evaluator.train.color: is for dataset image_folder only"), std::string::npos);
  // The test split exists for the packaged datasets only.
  EXPECT_EQ(problems("dataset: fashion_mnist, epochs: 1, test_accuracy: true"), "");
  EXPECT_NE(problems("dataset: numpy, data_dir: /d, epochs: 1, test_accuracy: true")
                .find("evaluator.train.test_accuracy: dataset 'numpy' has no test split"),
            std::string::npos);
  EXPECT_NE(problems("dataset: imagenet, data_dir: /d, epochs: 1")
                .find("(known: fashion_mnist, mnist, cifar10, image_folder, numpy, ptb)"),
            std::string::npos);
  // The folder's size and colour are known at submit: a child too large for
  // them is refused here (the class count only the worker learns).
  const std::string big = ValidateJobSpec(WithDefaults(Parse(R"(
search_space:
  macro_cnn: {filter_heights: [7], filter_widths: [7], num_filters: [512], depth: {initial_layers: 12, max_layers: 12}}
budget: {max_trials: 10}
evaluator:
  max_activation_bytes: 1073741824
  train: {dataset: image_folder, data_dir: /d, image_height: 512, image_width: 512, epochs: 1}
)"))).ToString();
  EXPECT_NE(big.find("evaluator.max_activation_bytes: the search space's largest child needs about"),
            std::string::npos)
      << big;
}

TEST(JobSpecTest, CommandEvaluatorGetsDefaultsAndEveryBadFieldIsNamed) {
  const std::string base = R"(
search_space:
  cell: {num_nodes: 4, operations: [none, skip_connect, nor_conv_3x3]}
budget: {max_trials: 10}
early_stopping: {rule: median, min_epochs: 1}
)";
  v1::JobSpec ok = WithDefaults(Parse(
      base + "evaluator: {command: {argv: [python3, t.py], env: [{name: A_B, value: x}], epochs: 3}}\n"));
  EXPECT_TRUE(ValidateJobSpec(ok).ok()) << ValidateJobSpec(ok);
  EXPECT_EQ(ok.evaluator().command().max_output_bytes(), int64_t{64} << 20);
  EXPECT_EQ(ok.evaluator().command().grace_seconds(), 10.0);

  const absl::Status bad = ValidateJobSpec(WithDefaults(Parse(base + R"(evaluator:
  command:
    env: [{name: NAS_TRIAL_ID, value: x}, {name: 1x, value: y}, {name: OK, value: a}, {name: OK, value: b}]
    timeout_seconds: -1
    max_memory_bytes: -5
    max_output_bytes: -1
    grace_seconds: 4000
)")));
  EXPECT_EQ(bad.message(),
            "evaluator.command.argv: must not be empty: the program to run and its arguments\n"
            "evaluator.command.env[0].name: 'NAS_TRIAL_ID': NAS_* variables are set by the worker\n"
            "evaluator.command.env[1].name: '1x' is not a variable name (letters, digits, _)\n"
            "evaluator.command.env[3].name: 'OK' is set twice\n"
            "evaluator.command.timeout_seconds: must be in [0, 2592000] (0 = none), got -1\n"
            "evaluator.command.max_memory_bytes: must not be negative (0 = none), got -5\n"
            "evaluator.command.max_output_bytes: must not be negative, got -1\n"
            "evaluator.command.epochs: must be between 1 and 1000, got 0\n"
            "evaluator.command.grace_seconds: must be in [0, 3600], got 4000");
  const absl::Status no_program = ValidateJobSpec(
      WithDefaults(Parse(base + "evaluator: {command: {argv: [''], epochs: 2}}\n")));
  EXPECT_EQ(std::string(no_program.message()), "evaluator.command.argv[0]: must name the program");
}


// One-shot search (evaluator.shared, issue 21).
constexpr char kEnas[] = R"(
search_space:
  cell: {num_nodes: 4, operations: [none, skip_connect, nor_conv_1x1, nor_conv_3x3, avg_pool_3x3]}
budget: {max_trials: 100}
evaluator: {shared: {data: {dataset: fashion_mnist, batch_size: 64}, final_training: {epochs: 3}}}
)";

TEST(JobSpecTest, SharedEvaluatorDefaultsAreTheProtosAndFinalTrainingTakesTheData) {
  v1::JobSpec spec = WithDefaults(Parse(kEnas));
  const v1::SharedEvaluatorSpec& s = spec.evaluator().shared();
  EXPECT_EQ(s.train_steps(), 10);
  EXPECT_EQ(s.reward_batches(), 1);
  EXPECT_EQ(s.optimizer(), "sgd");
  EXPECT_DOUBLE_EQ(s.learning_rate(), 0.05);
  EXPECT_DOUBLE_EQ(s.momentum(), 0.9);
  EXPECT_EQ(s.max_staleness(), 16);
  EXPECT_EQ(s.final_top_k(), 1);
  EXPECT_EQ(s.max_supernet_bytes(), int64_t{4} << 30);
  EXPECT_EQ(s.data().batch_size(), 64);
  EXPECT_EQ(s.final_training().dataset(), "fashion_mnist");
  EXPECT_EQ(s.final_training().epochs(), 3);
  EXPECT_EQ(spec.evaluator().max_parameters(), 50'000'000);
  EXPECT_TRUE(ValidateJobSpec(spec).ok()) << ValidateJobSpec(spec);
  // Adam's learning rate, no momentum; explicit zeros that mean "off" stay.
  v1::JobSpec adam = WithDefaults(Parse(R"(
search_space:
  cell: {num_nodes: 4, operations: [none, nor_conv_3x3]}
budget: {max_trials: 10}
evaluator: {shared: {optimizer: adam, final_top_k: 0, data: {dataset: fashion_mnist}}}
)"));
  EXPECT_DOUBLE_EQ(adam.evaluator().shared().learning_rate(), 0.001);
  EXPECT_FALSE(adam.evaluator().shared().has_momentum());
  EXPECT_EQ(adam.evaluator().shared().final_top_k(), 0);
  EXPECT_TRUE(ValidateJobSpec(adam).ok()) << ValidateJobSpec(adam);
}

TEST(JobSpecTest, SharedEvaluatorFieldsAreCheckedWithTheirPaths) {
  const std::string base = R"(
search_space:
  cell: {num_nodes: 4, operations: [none, skip_connect, nor_conv_3x3]}
budget: {max_trials: 10}
)";
  struct Case {
    std::string yaml, problem;
  };
  for (const Case& c : std::vector<Case>{
           {"evaluator: {shared: {data: {dataset: fashion_mnist}}}",
            "evaluator.shared.final_training.epochs: must be between 1 and 1000, got 0"},
           {"evaluator: {shared: {data: {dataset: ptb, data_dir: /d}}}",
            "evaluator.shared.data.dataset: one-shot search trains a supernet of image classifiers: not ptb"},
           {"evaluator: {shared: {data: {dataset: imagenet}}}",
            "evaluator.shared.data.dataset: unknown dataset 'imagenet'"},
           {"evaluator: {shared: {data: {dataset: cifar10}}}",
            "evaluator.shared.data.data_dir: must name the directory with CIFAR-10's"},
           {"evaluator: {shared: {data: {dataset: fashion_mnist}, train_steps: 10001}}",
            "evaluator.shared.train_steps: must be between 1 and 10000, got 10001"},
           {"evaluator: {shared: {data: {dataset: fashion_mnist}, reward_batches: -1}}",
            "evaluator.shared.reward_batches: must be between 1 and 1000, got -1"},
           {"evaluator: {shared: {data: {dataset: fashion_mnist}, optimizer: rmsprop}}",
            "evaluator.shared.optimizer: must be sgd or adam, not 'rmsprop'"},
           {"evaluator: {shared: {data: {dataset: fashion_mnist}, learning_rate: -0.1}}",
            "evaluator.shared.learning_rate: must be in (0, 10], got -0.1"},
           {"evaluator: {shared: {data: {dataset: fashion_mnist}, momentum: 1}}",
            "evaluator.shared.momentum: must be in [0, 1), got 1"},
           {"evaluator: {shared: {data: {dataset: fashion_mnist}, optimizer: adam, momentum: 0.5}}",
            "evaluator.shared.momentum: is for optimizer sgd only"},
           {"evaluator: {shared: {data: {dataset: fashion_mnist}, max_staleness: 0}}",
            "evaluator.shared.max_staleness: must be at least 1, got 0"},
           {"evaluator: {shared: {data: {dataset: fashion_mnist}, final_top_k: 101}}",
            "evaluator.shared.final_top_k: must be between 0 and 100, got 101"},
           {"evaluator: {shared: {data: {dataset: fashion_mnist}, final_training: {epochs: -1}}}",
            "evaluator.shared.final_training.epochs: must be between 1 and 1000, got -1"},
           {"evaluator: {shared: {data: {dataset: fashion_mnist}, final_training: {lr_schedule: linear}}}",
            "evaluator.shared.final_training.lr_schedule: must be cosine or step, not 'linear'"},
           {"evaluator: {shared: {data: {dataset: fashion_mnist}}, reuse_results: true}",
            "evaluator.reuse_results: one-shot rewards depend on the job's shared weights"},
           {"evaluator: {shared: {data: {dataset: fashion_mnist}}}\nearly_stopping: {rule: median}",
            "early_stopping.rule: one-shot search tasks are not trained epoch by epoch"},
       }) {
    const absl::Status status = ValidateJobSpec(WithDefaults(Parse(base + c.yaml + "\n")));
    EXPECT_NE(status.message().find(c.problem), std::string::npos) << c.yaml << "\n" << status;
  }
}

TEST(JobSpecTest, SharedEvaluatorTakesACellOrForEnasAMacroSpace) {
  const std::string macro_space = R"(
search_space:
  macro_cnn: {filter_heights: [3], filter_widths: [3], num_filters: [8], depth: {initial_layers: 2, max_layers: 2}}
budget: {max_trials: 10}
evaluator: {shared: {data: {dataset: fashion_mnist}, final_training: {epochs: 1}}}
)";
  absl::Status enas = ValidateJobSpec(WithDefaults(Parse(macro_space + "strategy: {name: reinforce}\n")));
  EXPECT_TRUE(enas.ok()) << enas;
  absl::Status darts = ValidateJobSpec(WithDefaults(Parse(macro_space + "strategy: {name: darts}\n")));
  EXPECT_NE(darts.message().find("strategy.name: darts needs a cell search space"), std::string::npos) << darts;
  absl::Status recurrent = ValidateJobSpec(WithDefaults(Parse(R"(
search_space:
  recurrent_cell: {base: 2, combinations: [add], activations: [tanh]}
budget: {max_trials: 10}
evaluator: {shared: {data: {dataset: fashion_mnist}}}
)")));
  EXPECT_NE(recurrent.message().find("search_space: a recurrent_cell space has no supernet"), std::string::npos)
      << recurrent;
}

TEST(JobSpecTest, ASupernetOverTheLimitsIsRefusedWithItsEstimate) {
  // 16 nodes, 120 edges x 2 convolutions x 8 cells per stage at 64..256
  // channels: hundreds of millions of parameters.
  const std::string big = R"(
search_space:
  cell: {num_nodes: 16, operations: [none, nor_conv_1x1, nor_conv_3x3], cells_per_stage: 8, initial_channels: 64}
budget: {max_trials: 10}
evaluator: {shared: {data: {dataset: fashion_mnist, batch_size: 64}}, max_parameters: 10000000000}
)";
  absl::Status status = ValidateJobSpec(WithDefaults(Parse(big)));
  EXPECT_NE(status.message().find("evaluator.shared.max_supernet_bytes: the supernet ("), std::string::npos)
      << status;
  EXPECT_NE(status.message().find("parameters, "), std::string::npos) << status;
  EXPECT_NE(status.message().find("over the limit of 4.0 GiB"), std::string::npos) << status;
  // The parameter limit of the evaluator applies too.
  absl::Status limited = ValidateJobSpec(WithDefaults(Parse(R"(
search_space:
  cell: {num_nodes: 4, operations: [none, nor_conv_3x3], initial_channels: 16}
budget: {max_trials: 10}
evaluator: {shared: {data: {dataset: fashion_mnist}}, max_parameters: 1000}
)")));
  EXPECT_NE(limited.message().find("evaluator.max_parameters: the supernet has "), std::string::npos) << limited;
  // A macro_cnn space's supernet is estimated too (EstimateMacroSupernetSize).
  absl::Status macro = ValidateJobSpec(WithDefaults(Parse(R"(
search_space:
  macro_cnn: {filter_heights: [3], filter_widths: [3], num_filters: [8], depth: {initial_layers: 2, max_layers: 2}}
budget: {max_trials: 10}
evaluator: {shared: {data: {dataset: fashion_mnist}, final_training: {epochs: 1}}, max_parameters: 100}
)")));
  // 2 layers: 8 x (1 + 8i) x 9 weights + 16 norm each, classifier 16 x 10 + 10.
  const int64_t macro_parameters = 8 * 1 * 9 + 16 + 8 * 9 * 9 + 16 + 16 * 10 + 10;
  EXPECT_NE(macro.message().find("evaluator.max_parameters: the supernet has " + std::to_string(macro_parameters) +
                                 " parameters"),
            std::string::npos)
      << macro;
  // DARTS runs every operation at once: a limit the ENAS supernet fits refuses it.
  const std::string mid = R"(
search_space:
  cell: {num_nodes: 4, operations: [none, skip_connect, nor_conv_1x1, nor_conv_3x3, avg_pool_3x3]}
budget: {max_trials: 10}
evaluator: {shared: {data: {dataset: fashion_mnist, batch_size: 256}, max_supernet_bytes: 1500000000, final_top_k: 0}}
)";
  EXPECT_TRUE(ValidateJobSpec(WithDefaults(Parse(mid))).ok()) << ValidateJobSpec(WithDefaults(Parse(mid)));
  absl::Status darts = ValidateJobSpec(WithDefaults(Parse(mid + "strategy: {name: darts}\n")));
  EXPECT_NE(darts.message().find("every operation running"), std::string::npos) << darts;
}

TEST(JobSpecTest, DartsNeedsTheSharedEvaluatorACellSpaceAndOneFinalArchitecture) {
  v1::JobSpec ok = WithDefaults(Parse(std::string(kEnas) + "strategy: {name: darts}\n"));
  EXPECT_TRUE(ValidateJobSpec(ok).ok()) << ValidateJobSpec(ok);
  EXPECT_DOUBLE_EQ(ok.controller().learning_rate(), 3e-4);
  EXPECT_EQ(ok.controller().optimizer(), "adam");
  absl::Status trained = ValidateJobSpec(WithDefaults(Parse(R"(
search_space:
  cell: {num_nodes: 4, operations: [none, nor_conv_3x3]}
budget: {max_trials: 10}
strategy: {name: darts}
evaluator: {train: {dataset: fashion_mnist}}
)")));
  EXPECT_NE(trained.message().find("strategy.name: darts trains α with ω on a supernet: it needs evaluator.shared"),
            std::string::npos)
      << trained;
  absl::Status macro = ValidateJobSpec(WithDefaults(Parse(R"(
search_space:
  macro_cnn: {filter_heights: [3], filter_widths: [3], num_filters: [8], depth: {initial_layers: 2}}
budget: {max_trials: 10}
strategy: {name: darts}
evaluator: {shared: {data: {dataset: fashion_mnist}}}
)")));
  EXPECT_NE(macro.message().find("strategy.name: darts needs a cell search space"), std::string::npos) << macro;
  absl::Status top3 = ValidateJobSpec(WithDefaults(Parse(
      R"(
search_space:
  cell: {num_nodes: 4, operations: [none, nor_conv_3x3]}
budget: {max_trials: 10}
strategy: {name: darts}
evaluator: {shared: {data: {dataset: fashion_mnist}, final_top_k: 3, final_training: {epochs: 1}}}
)")));
  EXPECT_NE(top3.message().find("evaluator.shared.final_top_k: DARTS ends with one architecture"), std::string::npos)
      << top3;
}

TEST(JobSpecTest, TheOneShotExamplesAreValid) {
  for (const char* path : {"examples/fashion_mnist_enas.yaml", "examples/fashion_mnist_darts.yaml"}) {
    absl::StatusOr<std::string> yaml = ReadFile(path);
    ASSERT_TRUE(yaml.ok()) << yaml.status();
    v1::JobSpec spec = Parse(*yaml);
    EXPECT_TRUE(spec.evaluator().has_shared()) << path;
    const absl::Status status = ValidateJobSpec(WithDefaults(spec));
    EXPECT_TRUE(status.ok()) << path << ": " << status;
  }
}

}  // namespace
}  // namespace nas::controller
