// Tokenizers read from GGUF metadata: a byte-level BPE tokenizer (Llama-3 style) written as
// tokenizer.ggml.model = gpt2 with tokenizer.ggml.pre = llama-bpe must encode and decode every
// reference string exactly as the original tokenizer.json (Hugging Face tokenizers' output).
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "model/gguf.h"
#include "model/gguf_model.h"
#include "model/gguf_writer.h"
#include "test_util.h"
#include "util/check.h"

namespace swift {

namespace {

std::vector<uint8_t> bpe_gguf(const nlohmann::json& tj, const std::string& pre, int32_t bad_bos = -1) {
  const auto& vocab = tj["model"]["vocab"];
  std::vector<std::string> tokens(vocab.size());
  for (auto it = vocab.begin(); it != vocab.end(); ++it) tokens.at(it.value().get<size_t>()) = it.key();
  std::vector<int32_t> types(tokens.size(), 1);
  for (const auto& a : tj["added_tokens"]) {
    const size_t id = a["id"].get<size_t>();
    if (id >= tokens.size()) tokens.resize(id + 1), types.resize(id + 1, 1);
    tokens[id] = a["content"].get<std::string>();
    types[id] = a["special"].get<bool>() ? 3 : 4;
  }
  std::vector<std::string> merges;
  for (const auto& m : tj["model"]["merges"])
    merges.push_back(m.is_string() ? m.get<std::string>() : m[0].get<std::string>() + " " + m[1].get<std::string>());
  GgufWriter w;
  w.set_string("tokenizer.ggml.model", "gpt2");
  w.set_string("tokenizer.ggml.pre", pre);
  w.set_strings("tokenizer.ggml.tokens", tokens);
  w.set_i32s("tokenizer.ggml.token_type", types);
  w.set_strings("tokenizer.ggml.merges", merges);
  w.set_u32("tokenizer.ggml.bos_token_id", bad_bos >= 0 ? static_cast<uint32_t>(bad_bos) : 0);
  w.set_bool("tokenizer.ggml.add_bos_token", false);
  return w.to_bytes();
}

}  // namespace

TEST(GgufTokenizer, ByteLevelBpeMatchesTheTokenizerJson) {
  const auto tj = test::load_json(test::data_path("tokenizers/llama3-style/tokenizer.json"));
  const auto ref = test::load_json(test::data_path("tokenizers/llama3-style/reference.json"));
  const auto bytes = bpe_gguf(tj, "llama-bpe");
  const auto g = GgufFile::parse(bytes.data(), bytes.size(), "bpe.gguf");
  const auto tok = gguf_tokenizer(*g, 1 << 20);
  int n = 0;
  for (const auto& c : ref["cases"]) {
    const std::string text = c["text"].get<std::string>();
    const auto ids = c["ids"].get<std::vector<int32_t>>();
    ASSERT_EQ(tok->encode(text), ids) << text;
    EXPECT_EQ(tok->decode(ids), c["decoded"].get<std::string>()) << text;
    ++n;
  }
  EXPECT_GT(n, 50);
}

TEST(GgufTokenizer, BadMetadataIsRefusedByName) {
  const auto tj = test::load_json(test::data_path("tokenizers/llama3-style/tokenizer.json"));
  {
    const auto bytes = bpe_gguf(tj, "mystery-pre");
    const auto g = GgufFile::parse(bytes.data(), bytes.size(), "bpe.gguf");
    try {
      gguf_tokenizer(*g, 1 << 20);
      ADD_FAILURE() << "unknown pre-tokenizer accepted";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("tokenizer.ggml.pre 'mystery-pre' is not supported"), std::string::npos);
    }
  }
  {
    const auto bytes = bpe_gguf(tj, "llama-bpe", 1 << 20);
    const auto g = GgufFile::parse(bytes.data(), bytes.size(), "bpe.gguf");
    try {
      gguf_tokenizer(*g, 1 << 21);
      ADD_FAILURE() << "bos id past the vocabulary accepted";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("tokenizer.ggml.bos_token_id = 1048576 is outside"), std::string::npos)
          << e.what();
    }
  }
  {
    const auto bytes = bpe_gguf(tj, "llama-bpe");
    const auto g = GgufFile::parse(bytes.data(), bytes.size(), "bpe.gguf");
    EXPECT_THROW(gguf_tokenizer(*g, 100), Error);  // more tokens than the model's vocabulary
  }
}

}  // namespace swift
