#include "common/proto_yaml.h"

#include <string>

#include "gtest/gtest.h"
#include "proto/job.pb.h"
#include "proto/job_service.pb.h"

namespace nas {
namespace {

TEST(ProtoYamlTest, ParsesNestedMessagesListsOneofsAndScalars) {
  v1::JobSpec spec;
  absl::Status status = ParseYamlToMessage(R"(
name: quick
search_space:
  macro_cnn:
    filter_heights: [1, 3, 5, 7]
    num_filters:
      - 24
      - 36
    skip_connections: yes
    depth: {initial_layers: 6, max_layers: 12, samples_per_increment: 1_600}
budget:
  max_trials: 1e3
controller:
  learning_rate: 6e-4
evaluator:
  synthetic: {duration_seconds: 0.5}
)",
                                           &spec);
  ASSERT_TRUE(status.ok()) << status;
  EXPECT_EQ(spec.name(), "quick");
  ASSERT_TRUE(spec.search_space().has_macro_cnn());
  EXPECT_EQ(spec.search_space().macro_cnn().filter_heights_size(), 4);
  EXPECT_EQ(spec.search_space().macro_cnn().filter_heights(3), 7);
  EXPECT_EQ(spec.search_space().macro_cnn().num_filters(1), 36);
  EXPECT_TRUE(spec.search_space().macro_cnn().skip_connections());
  EXPECT_EQ(spec.search_space().macro_cnn().depth().samples_per_increment(), 1600);
  EXPECT_EQ(spec.budget().max_trials(), 1000);
  EXPECT_DOUBLE_EQ(spec.controller().learning_rate(), 6e-4);
  EXPECT_DOUBLE_EQ(spec.evaluator().synthetic().duration_seconds(), 0.5);
}

TEST(ProtoYamlTest, ReportsEveryProblemWithItsFieldPathAndLine) {
  v1::JobSpec spec;
  absl::Status status = ParseYamlToMessage(R"(name: x
serch_space: {}
search_space:
  macro_cnn:
    filter_heights: [1, x]
budget:
  max_trials: -3.5
evaluator:
  synthetic: {}
  lookup: {table_path: a.csv}
)",
                                           &spec);
  ASSERT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  const std::string message(status.message());
  EXPECT_NE(message.find("serch_space: unknown field"), std::string::npos) << message;
  EXPECT_NE(message.find("(line 2)"), std::string::npos) << message;
  EXPECT_NE(message.find("search_space.macro_cnn.filter_heights[1]: 'x' is not an integer"),
            std::string::npos)
      << message;
  EXPECT_NE(message.find("budget.max_trials: '-3.5' is not an integer"), std::string::npos)
      << message;
  EXPECT_NE(message.find("evaluator.lookup: only one of"), std::string::npos) << message;
}

TEST(ProtoYamlTest, EnumsAcceptShortLowercaseNames) {
  v1::ListTrialsRequest request;
  ASSERT_TRUE(ParseYamlToMessage("order: reward\nstate: succeeded\n", &request).ok());
  EXPECT_EQ(request.order(), v1::ListTrialsRequest::ORDER_REWARD);
  EXPECT_EQ(request.state(), v1::TRIAL_STATE_SUCCEEDED);
  absl::Status bad = ParseYamlToMessage("order: sideways\n", &request);
  EXPECT_NE(std::string(bad.message()).find("'sideways' is not one of: order_reward, order_time"),
            std::string::npos)
      << bad;
}

TEST(ProtoYamlTest, RejectsMalformedYamlAndNonMappingDocuments) {
  v1::JobSpec spec;
  EXPECT_EQ(ParseYamlToMessage("name: [unclosed", &spec).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ParseYamlToMessage("- just\n- a list\n", &spec).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ParseYamlToMessage("budget: 5\n", &spec).code(), absl::StatusCode::kInvalidArgument);
}

TEST(ProtoYamlTest, MessageToYamlRoundTrips) {
  v1::JobSpec spec;
  spec.set_name("round trip: \"quoted\"");
  spec.mutable_search_space()->mutable_cell()->set_num_nodes(4);
  spec.mutable_search_space()->mutable_cell()->add_operations("none");
  spec.mutable_search_space()->mutable_cell()->add_operations("nor_conv_3x3");
  spec.mutable_budget()->set_max_trials(50);
  spec.mutable_evaluator()->mutable_synthetic();
  spec.mutable_controller()->set_optimizer("true");
  const std::string yaml = MessageToYaml(spec);
  v1::JobSpec parsed;
  absl::Status status = ParseYamlToMessage(yaml, &parsed);
  ASSERT_TRUE(status.ok()) << status << "\n" << yaml;
  EXPECT_EQ(parsed.DebugString(), spec.DebugString()) << yaml;
}

// Found with the fuzz target (fuzz/regressions/job_spec): YAML aliases let a
// small document name one long scalar thousands of times.
TEST(ProtoYamlTest, AliasExpansionBeyondTheBudgetIsRefused) {
  std::string yaml = "name: &long " + std::string(64 << 10, 'x') +
                     "\nsearch_space: {cell: {operations: [";
  for (int i = 0; i < 200; ++i) yaml += "*long, ";
  yaml += "*long]}}\n";
  ASSERT_LT(yaml.size(), 100u << 10);
  v1::JobSpec spec;
  absl::Status status = ParseYamlToMessage(yaml, &spec);
  EXPECT_FALSE(status.ok());
  EXPECT_NE(status.message().find("expands"), absl::string_view::npos);
  EXPECT_LT(status.message().size(), 64u << 10);
}

TEST(ProtoYamlTest, ErrorListIsCappedAndLongTextShortened) {
  std::string yaml;
  for (int i = 0; i < 500; ++i) yaml += "bogus_" + std::to_string(i) + std::string(1000, 'k') + ": 1\n";
  v1::JobSpec spec;
  absl::Status status = ParseYamlToMessage(yaml, &spec);
  EXPECT_FALSE(status.ok());
  EXPECT_NE(status.message().find("more problems"), absl::string_view::npos);
  EXPECT_LT(status.message().size(), 200u << 10);
}

TEST(ProtoYamlTest, DuplicateKeysAreRefusedWithBothLinesAtEveryLevel) {
  v1::JobSpec spec;
  absl::Status status = ParseYamlToMessage(R"(name: first
search_space:
  cell: {num_nodes: 4, operations: [none], num_nodes: 5}
budget:
  max_trials: 10
  max_wall_seconds: 60
  max_trials: 20
evaluator:
  synthetic: {}
name: second
)",
                                           &spec);
  ASSERT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  const std::string message(status.message());
  EXPECT_NE(message.find("budget: duplicate key 'max_trials' at line 7 (first at line 5)"),
            std::string::npos)
      << message;
  EXPECT_NE(message.find("(document): duplicate key 'name' at line 10 (first at line 1)"),
            std::string::npos)
      << message;
  EXPECT_NE(message.find("search_space.cell: duplicate key 'num_nodes' at line 3, column 44 "
                         "(first at line 3, column 10)"),
            std::string::npos)
      << message;
}

TEST(ProtoYamlTest, DuplicateListKeysAreRefusedRatherThanAppended) {
  v1::JobSpec spec;
  absl::Status status = ParseYamlToMessage(
      "search_space:\n  macro_cnn:\n    num_filters: [24]\n    num_filters: [36]\n", &spec);
  ASSERT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(status.message().find(
                "search_space.macro_cnn: duplicate key 'num_filters' at line 4 (first at line 3)"),
            std::string::npos)
      << status;
}

TEST(ProtoYamlTest, NonUtf8StringsAreRefusedNamingTheFieldAndByte) {
  v1::JobSpec spec;
  absl::Status status = ParseYamlToMessage("name: ab\xff\xfe" "cd\n", &spec);
  ASSERT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(status.message(),
            "name: not valid UTF-8 (byte 0xff at offset 2): \"ab\\xff\\xfecd\" (line 1)");
  // Control characters are well-formed UTF-8: the parser keeps them (the job
  // spec's validation decides what a name may hold).
  ASSERT_TRUE(ParseYamlToMessage("name: \"a\\e[2Jb\"\n", &spec).ok());
  EXPECT_EQ(spec.name(), "a\x1b[2Jb");
}

TEST(ProtoYamlTest, PrintedYamlEscapesEveryControlCharacterAndReadsBack) {
  v1::JobSpec spec;
  std::string name = "\x1b[2J\x1b[31mPWNED\x1b[0m\r\nfake-job\t\"q\" \\ \xc2\x9b x\xe2\x80\xae";
  for (char c = 1; c < 0x20; ++c) name.push_back(c);
  name.push_back('\x7f');
  spec.set_name(name);
  spec.mutable_search_space()->mutable_cell()->add_operations("op\x1b");
  const std::string printed = MessageToYaml(spec);
  for (char c : printed) {
    if (c == '\n') continue;
    EXPECT_FALSE(static_cast<unsigned char>(c) < 0x20 || c == 0x7f)
        << "raw control byte " << static_cast<int>(c) << " in\n" << printed;
  }
  EXPECT_EQ(printed.find("\xc2\x9b"), std::string::npos) << printed;
  EXPECT_EQ(printed.find("\xe2\x80\xae"), std::string::npos) << printed;
  EXPECT_NE(printed.find("name: \"\\e[2J\\e[31mPWNED\\e[0m\\r\\nfake-job\\t\\\"q\\\" \\\\ \\u009b"),
            std::string::npos)
      << printed;
  v1::JobSpec reread;
  ASSERT_TRUE(ParseYamlToMessage(printed, &reread).ok()) << printed;
  EXPECT_EQ(reread.name(), name);
  EXPECT_EQ(reread.search_space().cell().operations(0), "op\x1b");
}

}  // namespace
}  // namespace nas
