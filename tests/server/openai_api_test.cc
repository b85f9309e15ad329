// Request validation of the OpenAI API layer without a server (runs under ASan/UBSan in CI):
// hostile bodies and fields must become ApiError 400s naming the field, never crashes.
#include "engine/server/openai_api.h"

#include <gtest/gtest.h>

#include <random>

#include "engine/server/http_server.h"
#include "model/chat_template.h"
#include "model/model.h"

namespace swift {
namespace {

using nlohmann::json;

// A model with a config only: completions with token ids need no weights to validate.
const Model& stub_model() {
  static Model m = [] {
    Model m;
    m.path = "stub";
    m.config.vocab_size = 100;
    m.config.max_positions = 64;
    m.config.n_layer = 4;
    return m;
  }();
  return m;
}

ApiLimits limits() {
  ApiLimits l;
  l.n_ctx = 64;
  l.vocab = 100;
  l.modes = {"ar", "hybrid"};
  l.default_mode = "hybrid";
  return l;
}

// Status and message of the ApiError a body produces (0 when accepted).
std::pair<int, std::string> outcome(const std::string& body, bool chat = false) {
  try {
    const json j = parse_body(body, limits());
    parse_request(j, chat, stub_model(), nullptr, "no template here", limits());
    return {0, ""};
  } catch (const ApiError& e) {
    return {e.status, std::string(e.what()) + " param=" + e.param + " code=" + e.code};
  }
}

TEST(OpenAiApi, AcceptsWellFormedRequests) {
  const json ok = {{"prompt", {1, 2, 3}}, {"max_tokens", 10}, {"temperature", 0.5}, {"top_p", 0.9}, {"top_k", 5},
                   {"seed", -3},         {"stream", true},    {"n", 1},             {"decode", "ar"},
                   {"user", "x"},        {"logit_bias", json::object()}};
  EXPECT_EQ(outcome(ok.dump()).first, 0) << outcome(ok.dump()).second;
  const ApiRequest r = parse_request(ok, false, stub_model(), nullptr, "", limits());
  EXPECT_EQ(r.prompt, (std::vector<int32_t>{1, 2, 3}));
  EXPECT_EQ(r.opt.max_tokens, 10);
  EXPECT_EQ(r.mode, "ar");
  EXPECT_EQ(r.task, "default");
  // Defaults: 16 tokens for completions, temperature 1 (OpenAI's), [[ids]] accepted.
  const ApiRequest d = parse_request(json{{"prompt", {{4, 5}}}}, false, stub_model(), nullptr, "", limits());
  EXPECT_EQ(d.opt.max_tokens, 16);
  EXPECT_FLOAT_EQ(d.opt.sampling.temperature, 1.0f);
  EXPECT_EQ(d.mode, "hybrid");
}

TEST(OpenAiApi, RejectsHostileBodiesWith400) {
  std::string deep = "{\"prompt\": " + std::string(10000, '[') + std::string(10000, ']') + "}";
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"", "not valid JSON"},
      {"{", "not valid JSON"},
      {"null", "must be a JSON object"},
      {deep, "nested deeper than 64"},
      {"{\"prompt\": \"\xc3\x28\"}", "not valid JSON"},
      {R"({"prompt": [1], "max_tokens": -1})", "param=max_tokens"},
      {R"({"prompt": [1], "max_tokens": 0})", "param=max_tokens"},
      {R"({"prompt": [1], "max_tokens": 1e300})", "must be an integer"},
      {R"({"prompt": [1], "max_tokens": 99999999999999999999})", "param=max_tokens"},
      {R"({"prompt": [1], "max_tokens": 64})", "context_length_exceeded"},
      {R"({"prompt": [-1]})", "outside the vocabulary"},
      {R"({"prompt": [100]})", "outside the vocabulary"},
      {R"({"prompt": [2147483648]})", "outside the vocabulary"},
      {R"({"prompt": [1.5]})", "must hold integers"},
      {R"({"prompt": []})", "'prompt' is empty"},
      {R"({"prompt": [[1], [2]]})", "several prompts"},
      {R"({"prompt": "text"})", "no tokenizer"},
      {R"({"prompt": {"a": 1}})", "param=prompt"},
      {R"({"max_tokens": 3})", "'prompt' is required"},
      {R"({"prompt": [1], "temperature": -0.1})", "param=temperature"},
      {R"({"prompt": [1], "temperature": "warm"})", "param=temperature"},
      {R"({"prompt": [1], "top_p": 0})", "param=top_p"},
      {R"({"prompt": [1], "top_p": 1.5})", "param=top_p"},
      {R"({"prompt": [1], "top_k": -2})", "param=top_k"},
      {R"({"prompt": [1], "n": 2})", "param=n"},
      {R"({"prompt": [1], "n": "1"})", "param=n"},
      {R"({"prompt": [1], "stop": [""]})", "param=stop"},
      {R"({"prompt": [1], "stop": [1]})", "param=stop"},
      {R"({"prompt": [1], "stop": "x"})", "needs a tokenizer"},
      {R"({"prompt": [1], "stream": 1})", "param=stream"},
      {R"({"prompt": [1], "stream_options": 3})", "param=stream_options"},
      {R"({"prompt": [1], "logprobs": true})", "param=logprobs"},
      {R"({"prompt": [1], "echo": true})", "param=echo"},
      {R"({"prompt": [1], "decode": "swift"})", "param=decode"},
      {R"({"prompt": [1], "model": 5})", "param=model"},
      {R"({"prompt": [1], "task": 5})", "param=task"},
  };
  for (const auto& [body, needle] : cases) {
    const auto [status, msg] = outcome(body);
    EXPECT_EQ(status, 400) << body.substr(0, 80);
    EXPECT_NE(msg.find(needle), std::string::npos) << body.substr(0, 80) << " -> " << msg;
  }
  std::vector<int> long_prompt(64, 1);
  EXPECT_NE(outcome(json{{"prompt", long_prompt}}.dump()).second.find("context_length_exceeded"), std::string::npos);
}

TEST(OpenAiApi, ChatRequestsAreValidatedBeforeTheTemplate) {
  EXPECT_NE(outcome(R"({"messages": []})", true).second.find("non-empty array"), std::string::npos);
  EXPECT_NE(outcome(R"({"messages": [1]})", true).second.find("must be an object"), std::string::npos);
  EXPECT_NE(outcome(R"({"messages": [{"content": "x"}]})", true).second.find("role must be a string"), std::string::npos);
  EXPECT_NE(outcome(R"({"messages": [{"role": "user", "content": 5}]})", true).second.find("content must be"),
            std::string::npos);
  EXPECT_NE(outcome(R"({"messages": [{"role": "user", "content": [{"type": "image_url"}]}]})", true).second.find("text parts"),
            std::string::npos);
  // Well-formed, but the model has no usable template: the reason, as a 400.
  const auto [status, msg] = outcome(R"({"messages": [{"role": "user", "content": "hi"}]})", true);
  EXPECT_EQ(status, 400);
  EXPECT_NE(msg.find("no template here"), std::string::npos);
  EXPECT_NE(msg.find("chat_template_unsupported"), std::string::npos);
}

TEST(OpenAiApi, RandomBytesNeverCrashTheParser) {
  std::mt19937_64 rng(7);
  const std::string alphabet = "{}[]\":,0123456789-.eE truefalsnl\\u\xff\xc3promptmax_tokens";
  for (int i = 0; i < 3000; ++i) {
    std::string body;
    const int n = static_cast<int>(rng() % 200);
    for (int k = 0; k < n; ++k) body += alphabet[rng() % alphabet.size()];
    const auto [status, msg] = outcome(body);
    EXPECT_TRUE(status == 0 || status == 400) << body;
  }
}

TEST(OpenAiApi, SecretsCompareInFullLength) {
  EXPECT_TRUE(secrets_equal("abc", "abc"));
  EXPECT_FALSE(secrets_equal("abc", "abd"));
  EXPECT_FALSE(secrets_equal("abc", "abcd"));
  EXPECT_FALSE(secrets_equal("", "a"));
  EXPECT_TRUE(secrets_equal("", ""));
}

}  // namespace
}  // namespace swift
