// Malformed safetensors files must give a clear swift::Error, never a crash (CI runs these
// under AddressSanitizer and UBSan).
#include "model/safetensors.h"

#include <gtest/gtest.h>

#include "model/config.h"
#include "model/st_builder.h"
#include "model/weights.h"
#include "util/check.h"

namespace swift {

namespace {

using test::st_image;

// Expects parsing to throw swift::Error whose message contains `needle`.
void expect_rejected(const std::vector<uint8_t>& img, const std::string& needle) {
  try {
    SafetensorsFile f(img.data(), img.size(), "test.safetensors");
    FAIL() << "accepted; expected an error containing '" << needle << "'";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << "message: " << e.what();
  }
}

std::string one(const std::string& dtype, const std::string& shape, const std::string& offsets) {
  return R"({"w": {"dtype": ")" + dtype + R"(", "shape": )" + shape + R"(, "data_offsets": )" + offsets + "}}";
}

}  // namespace

TEST(Safetensors, ParsesValidFile) {
  auto img = test::st_build({{"a", {2, 3}, {1, 2, 3, 4, 5, 6}}, {"b", {1}, {7}}});
  SafetensorsFile f(img.data(), img.size(), "ok");
  ASSERT_EQ(f.tensors().size(), 2u);
  const StTensor* a = f.find("a");
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(a->shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(a->n_bytes, 24u);
  float v;
  std::memcpy(&v, f.find("b")->data, 4);
  EXPECT_EQ(v, 7.0f);
}

TEST(Safetensors, RejectsTruncatedLengthField) { expect_rejected({1, 2, 3}, "truncated"); }

TEST(Safetensors, RejectsHeaderLengthPastEnd) {
  auto img = st_image(one("F32", "[1]", "[0, 4]"), {0, 0, 0, 0});
  img[0] = 0xff;  // header length now far beyond the file
  img[5] = 0x01;
  expect_rejected(img, "past the end");
}

TEST(Safetensors, RejectsHeaderThatIsNotJson) { expect_rejected(st_image("{not json", {}), "not valid JSON"); }

TEST(Safetensors, RejectsOffsetsOutOfRange) {
  expect_rejected(st_image(one("F32", "[2]", "[0, 8]"), {0, 0, 0, 0}), "out of range");
}

TEST(Safetensors, RejectsReversedOffsets) {
  expect_rejected(st_image(one("F32", "[0]", "[4, 0]"), {0, 0, 0, 0}), "reversed");
}

TEST(Safetensors, RejectsOverlappingTensors) {
  const std::string h = R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                            "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}})";
  expect_rejected(st_image(h, std::vector<uint8_t>(12)), "overlap");
}

TEST(Safetensors, RejectsShapeTimesDtypeOverflow) {
  expect_rejected(st_image(one("F32", "[4294967296, 4294967296]", "[0, 4]"), {0, 0, 0, 0}), "overflow");
  expect_rejected(st_image(one("F64", "[2147483648, 2147483648]", "[0, 4]"), {0, 0, 0, 0}), "overflow");
}

TEST(Safetensors, RejectsSizeMismatch) {
  expect_rejected(st_image(one("F32", "[3]", "[0, 8]"), std::vector<uint8_t>(8)), "needs 12 bytes");
}

TEST(Safetensors, RejectsUnknownDtype) {
  expect_rejected(st_image(one("Q4_X", "[1]", "[0, 4]"), {0, 0, 0, 0}), "unknown dtype 'Q4_X'");
}

TEST(Safetensors, RejectsNegativeOrNonIntegerDims) {
  expect_rejected(st_image(one("F32", "[-1]", "[0, 4]"), {0, 0, 0, 0}), "not a non-negative integer");
  expect_rejected(st_image(one("F32", "[1.5]", "[0, 4]"), {0, 0, 0, 0}), "not a non-negative integer");
}

TEST(Safetensors, RejectsMissingFields) {
  expect_rejected(st_image(R"({"w": {"shape": [1], "data_offsets": [0, 4]}})", {0, 0, 0, 0}), "dtype");
  expect_rejected(st_image(R"({"w": {"dtype": "F32", "shape": [1]}})", {0, 0, 0, 0}), "data_offsets");
  expect_rejected(st_image(R"({"w": 3})", {}), "must be an object");
  expect_rejected(st_image(R"([1, 2])", {}), "JSON object");
}

TEST(Safetensors, EveryTruncationOfAValidFileIsRejected) {
  auto img = test::st_build({{"a", {2, 3}, {1, 2, 3, 4, 5, 6}}, {"b", {4}, {1, 2, 3, 4}}});
  for (size_t n = 0; n < img.size(); ++n) {
    std::vector<uint8_t> cut(img.begin(), img.begin() + n);
    EXPECT_THROW(SafetensorsFile(cut.data(), cut.size(), "cut"), Error) << "prefix of " << n << " bytes";
  }
}

TEST(Safetensors, RejectsNonWeightDtypeWhenUsedAsWeight) {
  auto img = st_image(one("I64", "[1]", "[0, 8]"), std::vector<uint8_t>(8));
  SafetensorsFile f(img.data(), img.size(), "x");
  try {
    weight_dtype(*f.find("w"), "x");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("I64"), std::string::npos);
  }
}

// --- binding tensors to a config: missing tensor, wrong shape ---

namespace {

nlohmann::json tiny_config() {
  return {{"architectures", {"LlamaForCausalLM"}}, {"vocab_size", 4}, {"hidden_size", 4},
          {"intermediate_size", 6}, {"num_hidden_layers", 1}, {"num_attention_heads", 2},
          {"num_key_value_heads", 1}, {"max_position_embeddings", 16}, {"tie_word_embeddings", true}};
}

std::vector<test::StEntry> tiny_tensors() {
  auto t = [](std::string n, std::vector<int64_t> s) {
    int64_t c = 1;
    for (auto d : s) c *= d;
    return test::StEntry{std::move(n), s, std::vector<float>(c, 0.5f)};
  };
  const std::string p = "model.layers.0.";
  return {t("model.embed_tokens.weight", {4, 4}), t("model.norm.weight", {4}),
          t(p + "self_attn.q_proj.weight", {4, 4}), t(p + "self_attn.k_proj.weight", {2, 4}),
          t(p + "self_attn.v_proj.weight", {2, 4}), t(p + "self_attn.o_proj.weight", {4, 4}),
          t(p + "mlp.gate_proj.weight", {6, 4}),    t(p + "mlp.up_proj.weight", {6, 4}),
          t(p + "mlp.down_proj.weight", {4, 6}),    t(p + "input_layernorm.weight", {4}),
          t(p + "post_attention_layernorm.weight", {4})};
}

void expect_bind_error(const std::vector<test::StEntry>& entries, const std::string& needle) {
  auto img = test::st_build(entries);
  std::vector<std::unique_ptr<SafetensorsFile>> files;
  files.push_back(std::make_unique<SafetensorsFile>(img.data(), img.size(), "m.safetensors"));
  const ModelConfig cfg = parse_model_config(tiny_config(), "config.json");
  try {
    bind_weights(std::move(files), cfg);
    FAIL() << "expected error containing " << needle;
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
}

}  // namespace

TEST(Weights, BindsCompleteTinyModel) {
  auto img = test::st_build(tiny_tensors());
  std::vector<std::unique_ptr<SafetensorsFile>> files;
  files.push_back(std::make_unique<SafetensorsFile>(img.data(), img.size(), "m.safetensors"));
  ModelWeights w = bind_weights(std::move(files), parse_model_config(tiny_config(), "config.json"));
  EXPECT_EQ(w.layers.size(), 1u);
  EXPECT_EQ(w.lm_head.data, w.embed.data);  // tied
}

TEST(Weights, RejectsMissingTensor) {
  auto e = tiny_tensors();
  e.erase(e.begin() + 6);  // gate_proj
  expect_bind_error(e, "missing tensor 'model.layers.0.mlp.gate_proj.weight'");
}

TEST(Weights, RejectsWrongShape) {
  auto e = tiny_tensors();
  e[3].shape = {4, 2};  // k_proj transposed
  expect_bind_error(e, "has shape [4, 2] but the config implies [2, 4]");
}

}  // namespace swift
