// tokenizer.json BPE against Hugging Face tokenizers 0.23 outputs, and malformed files.
#include "model/hf_tokenizer.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "model/spm_tokenizer.h"
#include "test_util.h"
#include "util/check.h"

namespace swift {

TEST(HfTokenizer, Llama3StyleByteLevelBpeMatchesAllReferenceCases) {
  auto tok = load_hf_tokenizer(test::data_path("tokenizers/llama3-style/tokenizer.json"));
  const auto ref = test::load_json(test::data_path("tokenizers/llama3-style/reference.json"));
  int n = 0, id_bad = 0, text_bad = 0;
  for (const auto& c : ref["cases"]) {
    const std::string text = c["text"].get<std::string>();
    const auto want = c["ids"].get<std::vector<int32_t>>();
    const auto got = tok->encode(text);
    if (got != want) {
      ++id_bad;
      ADD_FAILURE() << "ids differ for " << c["text"].dump() << ": got " << nlohmann::json(got).dump() << " want "
                    << c["ids"].dump();
    }
    if (tok->decode(want) != c["decoded"].get<std::string>()) {
      ++text_bad;
      ADD_FAILURE() << "decode differs for " << c["text"].dump() << ": got " << nlohmann::json(tok->decode(want)).dump();
    }
    ++n;
  }
  std::printf("[ llama3-style ] %d cases: %d id mismatches, %d text mismatches\n", n, id_bad, text_bad);
  EXPECT_EQ(n, 119);
}

namespace {

// A LLaMA-2-style tokenizer.json built from the SentencePiece vocabulary: Prepend + Replace
// normalizers, byte_fallback BPE, Replace/ByteFallback/Fuse/Strip decoders (what
// transformers' converter writes for LLaMA-2 and Mistral). Merges follow piece scores.
nlohmann::json llama2_style_json(const SpmVocab& v) {
  nlohmann::json vocab = nlohmann::json::object();
  for (size_t i = 0; i < v.pieces.size(); ++i) vocab[v.pieces[i]] = i;
  // Merges: every normal piece that splits into two known pieces, ranked by the piece's score.
  std::vector<std::tuple<float, std::string, std::string>> merges;
  for (size_t i = 0; i < v.pieces.size(); ++i) {
    if (v.types[i] != PieceType::kNormal) continue;
    const std::string& p = v.pieces[i];
    for (size_t k = 1; k < p.size(); ++k) {
      if ((static_cast<unsigned char>(p[k]) & 0xC0) == 0x80) continue;
      const std::string a = p.substr(0, k), b = p.substr(k);
      if (vocab.contains(a) && vocab.contains(b)) merges.emplace_back(-v.scores[i], a, b);
    }
  }
  std::stable_sort(merges.begin(), merges.end(), [](const auto& x, const auto& y) { return std::get<0>(x) < std::get<0>(y); });
  nlohmann::json mj = nlohmann::json::array();
  for (auto& [s, a, b] : merges) mj.push_back({a, b});
  return {{"version", "1.0"},
          {"added_tokens",
           {{{"id", 0}, {"content", "<unk>"}, {"special", true}},
            {{"id", 1}, {"content", "<s>"}, {"special", true}},
            {{"id", 2}, {"content", "</s>"}, {"special", true}}}},
          {"normalizer",
           {{"type", "Sequence"},
            {"normalizers",
             {{{"type", "Prepend"}, {"prepend", "\xE2\x96\x81"}},
              {{"type", "Replace"}, {"pattern", {{"String", " "}}}, {"content", "\xE2\x96\x81"}}}}}},
          {"pre_tokenizer", nullptr},
          {"post_processor",
           {{"type", "TemplateProcessing"},
            {"single", {{{"SpecialToken", {{"id", "<s>"}, {"type_id", 0}}}}, {{"Sequence", {{"id", "A"}, {"type_id", 0}}}}}}}},
          {"decoder",
           {{"type", "Sequence"},
            {"decoders",
             {{{"type", "Replace"}, {"pattern", {{"String", "\xE2\x96\x81"}}}, {"content", " "}},
              {{"type", "ByteFallback"}},
              {{"type", "Fuse"}},
              {{"type", "Strip"}, {"content", " "}, {"start", 1}, {"stop", 0}}}}}},
          {"model",
           {{"type", "BPE"}, {"unk_token", "<unk>"}, {"fuse_unk", true}, {"byte_fallback", true}, {"vocab", vocab}, {"merges", mj}}}};
}

void expect_refused(nlohmann::json j, const std::string& needle) {
  try {
    HfTokenizer t(j, "tokenizer.json");
    ADD_FAILURE() << "accepted; expected an error containing " << needle;
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
}

nlohmann::json tiny() {
  return {{"model",
           {{"type", "BPE"},
            {"vocab", {{"a", 0}, {"b", 1}, {"ab", 2}, {"<0x41>", 3}}},
            {"merges", nlohmann::json::array({nlohmann::json::array({"a", "b"})})}}},
          {"added_tokens", nlohmann::json::array()}};
}

}  // namespace

TEST(HfTokenizer, SentencePieceStyleJsonAgreesWithSentencePieceOnPrompts) {
  // The same vocabulary through both paths: our tokenizer.json pipeline (normalizers, byte
  // fallback, decoders) must give the SentencePiece ids and text on real prompts.
  const SpmVocab v = load_spm_model(test::model_path("swift-mini-24L/tokenizer.model"));
  SpmTokenizer spm(v);
  HfTokenizer hf(llama2_style_json(v), "llama2-style");
  EXPECT_TRUE(hf.add_bos);
  EXPECT_EQ(hf.bos_id, 1);
  int checked = 0;
  for (const char* f : {"code.jsonl", "docs.jsonl"}) {
    std::ifstream in(test::data_path(f));
    std::string line;
    while (std::getline(in, line)) {
      const std::string text = nlohmann::json::parse(line)["text"].get<std::string>();
      const auto ids = spm.encode(text);
      EXPECT_EQ(hf.encode(text), ids) << f;
      EXPECT_EQ(hf.decode(ids), spm.decode(ids)) << f;
      ++checked;
    }
  }
  for (const std::string s : {"naïve 🙂 日本語", "  two spaces", "x\ty\n"}) {
    EXPECT_EQ(hf.encode(s), spm.encode(s)) << s;
    EXPECT_EQ(hf.decode(spm.encode(s)), spm.decode(spm.encode(s))) << s;
  }
  EXPECT_EQ(checked, 32);
}

TEST(HfTokenizer, MetaspacePreTokenizerVariantAgreesWithSentencePiece) {
  // The other form transformers writes for LLaMA/Mistral: no normalizer, a Metaspace
  // pre-tokenizer (prepend_scheme "first", no split) and a Metaspace decoder.
  const SpmVocab v = load_spm_model(test::model_path("swift-mini-24L/tokenizer.model"));
  SpmTokenizer spm(v);
  auto j = llama2_style_json(v);
  j["normalizer"] = nullptr;
  j["pre_tokenizer"] = {{"type", "Metaspace"}, {"replacement", "\xE2\x96\x81"}, {"prepend_scheme", "first"}, {"split", false}};
  j["decoder"] = {{"type", "Sequence"},
                  {"decoders",
                   {{{"type", "ByteFallback"}},
                    {{"type", "Metaspace"}, {"replacement", "\xE2\x96\x81"}, {"prepend_scheme", "first"}}}}};
  HfTokenizer hf(j, "metaspace");
  for (const std::string s : {"def f(x):\n    return x", "Hello world", "naïve 🙂 日本語", "a  b"}) {
    EXPECT_EQ(hf.encode(s), spm.encode(s)) << s;
    EXPECT_EQ(hf.decode(spm.encode(s)), spm.decode(spm.encode(s))) << s;
  }
}

TEST(HfTokenizer, RefusesMalformedFiles) {
  auto j = tiny();
  j["model"]["merges"] = nlohmann::json::array({nlohmann::json::array({"a", "zz"})});
  expect_refused(j, "refers to a token that is not in the vocabulary");
  j = tiny();
  j["model"]["vocab"]["dup"] = 0;
  expect_refused(j, "id 0 is used by both");
  j = tiny();
  j["model"]["type"] = "WordPiece";
  expect_refused(j, "tokenizer model 'WordPiece' is not supported");
  j = tiny();
  j["pre_tokenizer"] = {{"type", "Whitespace"}};
  expect_refused(j, "pre_tokenizer type 'Whitespace' is not supported");
  j = tiny();
  j["normalizer"] = {{"type", "BertNormalizer"}};
  expect_refused(j, "normalizer type 'BertNormalizer' is not supported");
  j = tiny();
  j["pre_tokenizer"] = {{"type", "Split"}, {"pattern", {{"Regex", "(unclosed"}}}, {"behavior", "Isolated"}};
  expect_refused(j, "cannot compile pattern");
  j = tiny();
  j["added_tokens"] = nlohmann::json::array({{{"id", 1}, {"content", "<x>"}, {"special", true}}});
  expect_refused(j, "reuses id 1");
  j = tiny();
  j["model"]["vocab"]["big"] = 1 << 30;
  expect_refused(j, "invalid id");
  expect_refused(nlohmann::json::array(), "missing 'model'");
}

TEST(HfTokenizer, InvalidUtf8IsRejected) {
  auto tok = load_hf_tokenizer(test::data_path("tokenizers/llama3-style/tokenizer.json"));
  EXPECT_THROW(tok->encode("abc\xff"), Error);
  EXPECT_THROW(tok->encode("\xed\xa0\x80"), Error);
}

}  // namespace swift
