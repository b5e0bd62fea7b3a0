// Tensor sets larger than one gRPC message: the piece format (tensor_pieces.h)
// and the streaming calls through real in-process shards.
#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "parameter_server/in_process_shards.h"
#include "parameter_server/stream_client.h"
#include "parameter_server/tensor_pieces.h"
#include "proto/parameter_server.grpc.pb.h"

namespace nas::ps {
namespace {

v1::Tensor MakeTensor(const std::string& name, std::vector<int64_t> shape, float first) {
  v1::Tensor t;
  t.set_name(name);
  int64_t n = 1;
  for (int64_t d : shape) {
    t.add_shape(d);
    n *= d;
  }
  for (int64_t i = 0; i < n; ++i) t.add_values(first + static_cast<float>(i));
  return t;
}

v1::TensorPiece Piece(const std::string& name, std::vector<int64_t> shape, int64_t offset,
                      int values) {
  v1::TensorPiece p;
  p.set_name(name);
  for (int64_t d : shape) p.add_shape(d);
  p.set_offset(offset);
  for (int i = 0; i < values; ++i) p.add_values(1.0f);
  return p;
}

TEST(TensorPiecesTest, SplitAndAssembleRoundTrip) {
  Tensors tensors;
  *tensors.Add() = MakeTensor("a", {5}, 0);
  *tensors.Add() = MakeTensor("empty", {0, 3}, 0);
  *tensors.Add() = MakeTensor("b", {2, 2}, 100);
  *tensors.Add() = MakeTensor("c", {2}, 200);
  // Copying, and taking the values (chunks of 5 hold "a" and "b" whole).
  for (bool take : {false, true}) {
    for (int64_t chunk_values : {3, 5}) {
      SCOPED_TRACE(testing::Message() << "take " << take << ", chunk " << chunk_values);
      Tensors source = tensors;
      TensorAssembler assembler(1000);
      int chunks = 0;
      auto emit = [&](Pieces* pieces) {
        int64_t values = 0;
        for (const v1::TensorPiece& p : *pieces) values += p.values_size();
        EXPECT_LE(values, chunk_values);
        ++chunks;
        return (take ? assembler.AddAll(pieces) : assembler.AddAll(*pieces)).ok();
      };
      ASSERT_TRUE(take ? SplitIntoPieces(&source, chunk_values, emit)
                       : SplitIntoPieces(source, chunk_values, emit));
      EXPECT_EQ(chunks, (11 + chunk_values - 1) / chunk_values);
      Tensors out;
      ASSERT_TRUE(assembler.Finish(&out).ok());
      ASSERT_EQ(out.size(), tensors.size());
      for (int i = 0; i < out.size(); ++i) {
        EXPECT_EQ(out[i].SerializeAsString(), tensors[i].SerializeAsString()) << out[i].name();
      }
    }
  }
}

TEST(TensorPiecesTest, EmptySetIsOneEmptyChunk) {
  int chunks = 0;
  ASSERT_TRUE(SplitIntoPieces(Tensors(), 4, [&](Pieces* pieces) {
    EXPECT_TRUE(pieces->empty());
    return ++chunks > 0;
  }));
  EXPECT_EQ(chunks, 1);
}

TEST(TensorPiecesTest, RefusesBrokenStreams) {
  auto error = [](std::vector<v1::TensorPiece> pieces, int64_t max_values = 100) {
    TensorAssembler assembler(max_values);
    for (const v1::TensorPiece& p : pieces) {
      if (absl::Status s = assembler.Add(p); !s.ok()) return s;
    }
    Tensors out;
    return assembler.Finish(&out);
  };
  auto expect = [](const absl::Status& s, const std::string& part) {
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
    EXPECT_NE(s.message().find(part), std::string::npos) << s;
  };
  expect(error({Piece("w", {4}, 0, 2), Piece("w", {4}, 3, 1)}), "offset 3 where 2");
  expect(error({Piece("w", {4}, 0, 2), Piece("w", {4}, 1, 1)}), "offset 1 where 2");
  expect(error({Piece("w", {4}, 1, 2)}), "starts at offset 1");
  expect(error({Piece("w", {4}, 0, 2)}), "'w' ended after 2 of its 4");
  expect(error({Piece("w", {4}, 0, 2), Piece("v", {1}, 0, 1)}), "'w' ended after 2");
  expect(error({Piece("w", {1}, 0, 1), Piece("v", {1}, 0, 1), Piece("w", {1}, 0, 1)}),
         "'w' appears twice");
  expect(error({Piece("w", {4}, 0, 2), Piece("w", {2, 2}, 2, 2)}), "changes shape");
  expect(error({Piece("w", {4}, 0, 5)}), "values past its 4");
  expect(error({Piece("w", {-1}, 0, 0)}), "negative dimension");
  expect(error({Piece("w", {8}, 0, 8), Piece("v", {3}, 0, 3)}, 10), "past its limit of 10");
  expect(error({Piece("w", {int64_t{1} << 40, int64_t{1} << 40}, 0, 0)}), "past its limit");
  EXPECT_TRUE(error({Piece("w", {4}, 0, 2), Piece("w", {4}, 2, 2)}).ok());
}

// A job of two 300k-value tensors (2.4 MB) on a shard whose messages are
// limited to 1 MiB, as a 64 MB tensor set is on the default 64 MiB limit.
class StreamThroughShardTest : public ::testing::Test {
 protected:
  static constexpr int kLimit = 1 << 20;
  static constexpr int64_t kChunk = 64 << 10;  // values: 256 KiB per message

  void SetUp() override {
    shards_ = InProcessShards::Start(1, kLimit).value();
    grpc::ChannelArguments args;
    args.SetMaxReceiveMessageSize(kLimit);
    args.SetMaxSendMessageSize(kLimit);
    stub_ = v1::ParameterServer::NewStub(
        grpc::CreateCustomChannel(shards_->addresses[0], grpc::InsecureChannelCredentials(), args));
    init_.set_job_id("big");
    init_.set_num_shards(1);
    init_.set_shard_index(0);
    init_.mutable_optimizer()->set_kind(v1::OptimizerConfig::SGD);
    init_.mutable_optimizer()->set_learning_rate(0.5);
    for (const char* name : {"omega.a", "omega.b"}) {
      v1::Tensor t = MakeTensor(name, {300, 1000}, 0);
      v1::TensorSpec* spec = init_.add_layout();
      spec->set_name(name);
      *spec->mutable_shape() = t.shape();
      *init_.add_tensors() = std::move(t);
    }
  }

  v1::PushRequest Gradients(float value) const {
    v1::PushRequest push;
    push.set_job_id("big");
    for (const v1::Tensor& t : init_.tensors()) {
      v1::Tensor* g = push.add_gradients();
      g->set_name(t.name());
      *g->mutable_shape() = t.shape();
      g->mutable_values()->Resize(t.values_size(), value);
    }
    return push;
  }

  std::unique_ptr<InProcessShards> shards_;
  std::unique_ptr<v1::ParameterServer::Stub> stub_;
  v1::InitJobRequest init_;
  const absl::Duration timeout_ = absl::Seconds(30);
};

TEST_F(StreamThroughShardTest, UnaryCallsExceedTheLimitStreamedOnesWork) {
  {
    grpc::ClientContext context;
    v1::InitJobResponse response;
    EXPECT_EQ(stub_->InitJob(&context, init_, &response).error_code(),
              grpc::StatusCode::RESOURCE_EXHAUSTED);
  }
  absl::StatusOr<v1::InitJobResponse> created = InitJobStreamed(*stub_, init_, kChunk, timeout_);
  ASSERT_TRUE(created.ok()) << created.status();
  EXPECT_TRUE(created->created());
  {
    grpc::ClientContext context;
    v1::PullRequest pull;
    pull.set_job_id("big");
    v1::PullResponse response;
    EXPECT_EQ(stub_->Pull(&context, pull, &response).error_code(),
              grpc::StatusCode::RESOURCE_EXHAUSTED);
  }

  v1::PullRequest pull;
  pull.set_job_id("big");
  absl::StatusOr<v1::PullResponse> pulled = PullStreamed(*stub_, pull, kChunk, timeout_);
  ASSERT_TRUE(pulled.ok()) << pulled.status();
  EXPECT_EQ(pulled->version(), 0);
  ASSERT_EQ(pulled->tensors_size(), 2);
  for (int i = 0; i < 2; ++i) {
    EXPECT_EQ(pulled->tensors(i).SerializeAsString(), init_.tensors(i).SerializeAsString());
  }

  absl::StatusOr<v1::PushResponse> pushed = PushStreamed(*stub_, Gradients(2.0f), kChunk, timeout_);
  ASSERT_TRUE(pushed.ok()) << pushed.status();
  EXPECT_TRUE(pushed->applied());
  EXPECT_EQ(pushed->version(), 1);

  pulled = PullStreamed(*stub_, pull, 0, timeout_);  // the default chunk (4 MiB) exceeds 1 MiB
  EXPECT_EQ(pulled.status().code(), absl::StatusCode::kResourceExhausted) << pulled.status();
  pulled = PullStreamed(*stub_, pull, kChunk, timeout_);
  ASSERT_TRUE(pulled.ok()) << pulled.status();
  EXPECT_EQ(pulled->version(), 1);
  for (int i = 0; i < 2; ++i) {
    const v1::Tensor& t = pulled->tensors(i);
    ASSERT_EQ(t.values_size(), 300000);
    for (int j = 0; j < t.values_size(); j += 997) {
      ASSERT_FLOAT_EQ(t.values(j), static_cast<float>(j) - 1.0f) << t.name() << "[" << j << "]";
    }
    ASSERT_FLOAT_EQ(t.values(299999), 299999.0f - 1.0f);
  }

  pull.set_if_newer_than_version(1);
  pulled = PullStreamed(*stub_, pull, kChunk, timeout_);
  ASSERT_TRUE(pulled.ok()) << pulled.status();
  EXPECT_TRUE(pulled->not_modified());
  EXPECT_EQ(pulled->tensors_size(), 0);
}

TEST_F(StreamThroughShardTest, BadStreamsAreRefusedAndChangeNothing) {
  ASSERT_TRUE(InitJobStreamed(*stub_, init_, kChunk, timeout_).ok());

  // A gradient of the wrong shape: the shard's own check, as for Push.
  v1::PushRequest wrong = Gradients(1.0f);
  wrong.mutable_gradients(1)->mutable_shape()->Set(0, 299);
  wrong.mutable_gradients(1)->mutable_values()->Truncate(299000);
  EXPECT_EQ(PushStreamed(*stub_, wrong, kChunk, timeout_).status().code(),
            absl::StatusCode::kInvalidArgument);

  // Pieces out of order, written by hand.
  {
    grpc::ClientContext context;
    v1::PushResponse response;
    auto writer = stub_->PushStream(&context, &response);
    v1::PushChunk chunk;
    chunk.mutable_header()->set_job_id("big");
    *chunk.add_pieces() = Piece("omega.a", {300, 1000}, 0, 10);
    *chunk.add_pieces() = Piece("omega.a", {300, 1000}, 20, 10);
    ASSERT_TRUE(writer->Write(chunk));
    writer->WritesDone();
    grpc::Status s = writer->Finish();
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_NE(s.error_message().find("offset 20 where 10"), std::string::npos) << s.error_message();
  }

  v1::PushRequest returning = Gradients(1.0f);
  returning.set_return_parameters(true);
  absl::StatusOr<v1::PushResponse> refused = PushStreamed(*stub_, returning, kChunk, timeout_);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(refused.status().message().find("PullStream"), std::string::npos) << refused.status();

  v1::PullRequest pull;
  pull.set_job_id("big");
  absl::StatusOr<v1::PullResponse> pulled = PullStreamed(*stub_, pull, kChunk, timeout_);
  ASSERT_TRUE(pulled.ok()) << pulled.status();
  EXPECT_EQ(pulled->version(), 0);
  for (int i = 0; i < 2; ++i) {
    EXPECT_EQ(pulled->tensors(i).SerializeAsString(), init_.tensors(i).SerializeAsString());
  }

  pull.set_job_id("unknown");
  EXPECT_EQ(PullStreamed(*stub_, pull, kChunk, timeout_).status().code(),
            absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace nas::ps
