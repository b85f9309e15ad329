#include "model/config.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "util/check.h"

namespace swift {

namespace {

nlohmann::json base() {
  return {{"architectures", {"LlamaForCausalLM"}}, {"vocab_size", 100}, {"hidden_size", 64},
          {"intermediate_size", 128}, {"num_hidden_layers", 2}, {"num_attention_heads", 4},
          {"num_key_value_heads", 2}, {"max_position_embeddings", 256}, {"rope_theta", 10000.0}};
}

void expect_error(const nlohmann::json& j, const std::string& needle) {
  try {
    parse_model_config(j, "config.json");
    FAIL() << "accepted; expected error containing " << needle;
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
}

}  // namespace

TEST(Config, ParsesOldStyleRopeScaling) {
  auto j = base();
  j["rope_scaling"] = {{"type", "linear"}, {"factor", 2.0}};
  const ModelConfig c = parse_model_config(j, "config.json");
  EXPECT_EQ(c.rope.type, "linear");
  EXPECT_EQ(c.rope.factor, 2.0);
  EXPECT_EQ(c.head_dim, 16);
}

TEST(Config, ParsesNewStyleRopeParameters) {
  auto j = base();
  j.erase("rope_theta");
  j["rope_parameters"] = {{"rope_type", "llama3"}, {"rope_theta", 500000.0}, {"factor", 8.0},
                          {"low_freq_factor", 1.0}, {"high_freq_factor", 4.0},
                          {"original_max_position_embeddings", 64}};
  const ModelConfig c = parse_model_config(j, "config.json");
  EXPECT_EQ(c.rope.type, "llama3");
  EXPECT_EQ(c.rope.theta, 500000.0);
  EXPECT_EQ(c.rope.original_max_positions, 64);
}

TEST(Config, MistralSlidingWindowOnAllLayers) {
  auto j = base();
  j["architectures"] = {"MistralForCausalLM"};
  j["sliding_window"] = 16;
  const ModelConfig c = parse_model_config(j, "config.json");
  EXPECT_EQ(c.sliding_window, (std::vector<int64_t>{16, 16}));
}

TEST(Config, Qwen2SlidingOnlyWhenEnabled) {
  auto j = base();
  j["architectures"] = {"Qwen2ForCausalLM"};
  j["sliding_window"] = 32;
  j["use_sliding_window"] = false;
  EXPECT_EQ(parse_model_config(j, "c").sliding_window, (std::vector<int64_t>{0, 0}));
  j["use_sliding_window"] = true;
  j["max_window_layers"] = 1;
  EXPECT_EQ(parse_model_config(j, "c").sliding_window, (std::vector<int64_t>{0, 32}));
  EXPECT_TRUE(parse_model_config(j, "c").qkv_bias);
}

TEST(Config, RejectsUnsupportedThings) {
  auto j = base();
  j["architectures"] = {"GPT2LMHeadModel"};
  expect_error(j, "unsupported architecture 'GPT2LMHeadModel'");
  j = base();
  j["rope_scaling"] = {{"rope_type", "yarn"}, {"factor", 4.0}};
  expect_error(j, "unsupported rope type 'yarn'");
  j = base();
  j["hidden_act"] = "gelu";
  expect_error(j, "unsupported hidden_act 'gelu'");
}

TEST(Config, RejectsZeroAndAbsurdSizes) {
  for (const char* key : {"vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size"}) {
    auto j = base();
    j[key] = 0;
    expect_error(j, std::string("'") + key + "' = 0 is out of range");
    j[key] = 1000000000000LL;
    expect_error(j, std::string("'") + key + "' = 1000000000000 is out of range");
  }
  auto j = base();
  j["num_key_value_heads"] = 3;
  expect_error(j, "not a multiple");
  j = base();
  j["vocab_size"] = "100";
  expect_error(j, "must be an integer");
  j = base();
  j.erase("hidden_size");
  expect_error(j, "missing 'hidden_size'");
}

}  // namespace swift
