// Our SentencePiece encoder/decoder against Debian's libsentencepiece (the reference
// implementation, test-only dependency) on the real LLaMA-2 tokenizer.model and the demo model's:
// zero mismatches in ids and decoded text over more than 5,000 strings.
#include <gtest/gtest.h>
#include <sentencepiece_processor.h>

#include <fmt/format.h>

#include <fstream>
#include <random>

#include "model/spm_tokenizer.h"
#include "test_util.h"
#include "util/check.h"

namespace swift {

namespace {

std::vector<std::string> prompt_texts() {
  std::vector<std::string> out;
  for (const char* f : {"code.jsonl", "docs.jsonl"}) {
    std::ifstream in(test::data_path(f));
    std::string line;
    while (std::getline(in, line)) out.push_back(nlohmann::json::parse(line)["text"].get<std::string>());
  }
  return out;
}

void append_utf8(std::string& s, uint32_t cp) {
  if (cp < 0x80) {
    s += static_cast<char>(cp);
  } else if (cp < 0x800) {
    s += static_cast<char>(0xC0 | (cp >> 6));
    s += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    s += static_cast<char>(0xE0 | (cp >> 12));
    s += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    s += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    s += static_cast<char>(0xF0 | (cp >> 18));
    s += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    s += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    s += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

// The corpus: benchmark prompts, their line and paragraph slices, and hand-made hard cases.
std::vector<std::string> corpus() {
  std::vector<std::string> out;
  const auto texts = prompt_texts();
  for (const auto& t : texts) {
    out.push_back(t);
    size_t start = 0;
    while (start < t.size()) {  // lines
      size_t end = t.find('\n', start);
      if (end == std::string::npos) end = t.size();
      out.push_back(t.substr(start, end - start));
      out.push_back(t.substr(start, end - start + 1));
      start = end + 1;
    }
    for (size_t p = 0, q; p < t.size(); p = q + 2) {  // paragraphs
      q = t.find("\n\n", p);
      if (q == std::string::npos) q = t.size();
      out.push_back(t.substr(p, q - p));
    }
    for (size_t p = 0; p < t.size(); p += 97) {  // fixed-size slices, cut at character boundaries
      size_t b = p, e = std::min(t.size(), p + 160);
      while (b < t.size() && (static_cast<unsigned char>(t[b]) & 0xC0) == 0x80) ++b;
      while (e < t.size() && (static_cast<unsigned char>(t[e]) & 0xC0) == 0x80) ++e;
      if (b < e) out.push_back(t.substr(b, e - b));
    }
  }
  const char* fixed[] = {"", " ", "  ", "   leading", "trailing   ", "a  b   c", "\t", "\t\tx", "\n", "\n\n\n", " \n ",
                         "\r\n", "0", "12", "123", "1234567890", "3.14159 -42 +7 1e-9 0x1F", "über naïve café résumé",
                         "日本語のテキスト", "中文分词测试", "한국어 텍스트", "Привет, мир!", "مرحبا بالعالم",
                         "🙂🙃 emoji 👍🏽 family 👨‍👩‍👧", "a\u00a0b\u2009c", "x\u200by", "e\u0301 combining",
                         "<s>", "</s>", "<unk>", "<0x41>", "▁", "▁▁x", "ĠĠ", "ａｂｃ full width", "\x7f\x01ctrl",
                         "    def foo(x):\n        return x ** 2\n", "if (a && b) { c++; }", "https://example.com/a?b=c&d=e#f"};
  for (const char* f : fixed) out.push_back(f);
  for (int n = 1; n <= 40; ++n) {
    out.push_back(std::string(n, ' '));
    out.push_back(std::string(n, '\n'));
    out.push_back(fmt::format("x{}y", std::string(n, ' ')));
    out.push_back(std::string(n, '7'));
  }
  // Random valid UTF-8: ASCII-heavy mixes with every plane, combining marks and emoji.
  std::mt19937_64 rng(2024);
  const std::pair<uint32_t, uint32_t> ranges[] = {{0x20, 0x7E},     {0x09, 0x0A},     {0xA0, 0x24F},   {0x300, 0x36F},
                                                   {0x370, 0x3FF},   {0x400, 0x4FF},   {0x590, 0x6FF},  {0x900, 0x97F},
                                                   {0x3040, 0x30FF}, {0x4E00, 0x9FFF}, {0xAC00, 0xD7A3}, {0xE000, 0xF8FF},
                                                   {0xFF00, 0xFFEF}, {0x1F300, 0x1FAFF}, {0x10000, 0x1FFFF}, {0x20000, 0x2A6DF}};
  for (int i = 0; i < 3000; ++i) {
    std::string s;
    const int len = 1 + static_cast<int>(rng() % 40);
    for (int j = 0; j < len; ++j) {
      const auto& r = ranges[rng() % 3 == 0 ? rng() % std::size(ranges) : 0];
      append_utf8(s, r.first + static_cast<uint32_t>(rng() % (r.second - r.first + 1)));
    }
    out.push_back(s);
  }
  return out;
}

void compare_with_oracle(const std::string& model_path) {
  sentencepiece::SentencePieceProcessor sp;
  ASSERT_TRUE(sp.Load(model_path).ok());
  SpmTokenizer ours(load_spm_model(model_path));
  const auto strings = corpus();
  ASSERT_GE(strings.size(), 5000u);
  int id_mismatch = 0, text_mismatch = 0;
  for (const auto& s : strings) {
    std::vector<int> want;
    ASSERT_TRUE(sp.Encode(s, &want).ok());
    const auto got = ours.encode(s);
    if (std::vector<int>(got.begin(), got.end()) != want) {
      if (++id_mismatch <= 5) ADD_FAILURE() << "ids differ for " << nlohmann::json(s).dump();
    }
    std::string want_text;
    ASSERT_TRUE(sp.Decode(want, &want_text).ok());
    if (ours.decode(std::vector<int32_t>(want.begin(), want.end())) != want_text) {
      if (++text_mismatch <= 5) ADD_FAILURE() << "decoded text differs for " << nlohmann::json(s).dump();
    }
  }
  // Decoding arbitrary id sequences (byte pieces that split characters, control ids) as well.
  std::mt19937_64 rng(7);
  for (int i = 0; i < 2000; ++i) {
    std::vector<int> ids;
    for (int j = 0; j < 12; ++j) ids.push_back(static_cast<int>(rng() % (j % 3 == 0 ? 300 : sp.GetPieceSize())));
    std::string want_text;
    ASSERT_TRUE(sp.Decode(ids, &want_text).ok());
    if (ours.decode(std::vector<int32_t>(ids.begin(), ids.end())) != want_text && ++text_mismatch <= 5)
      ADD_FAILURE() << "decode of random ids differs: " << nlohmann::json(ids).dump();
  }
  std::printf("[ %s ] %zu strings + 2000 id sequences: %d id mismatches, %d text mismatches\n", model_path.c_str(),
              strings.size(), id_mismatch, text_mismatch);
  EXPECT_EQ(id_mismatch, 0);
  EXPECT_EQ(text_mismatch, 0);
}

}  // namespace

TEST(SpmOracle, Llama2TokenizerIdenticalToLibsentencepiece) { compare_with_oracle(test::data_path("tokenizers/llama2.model")); }

TEST(SpmOracle, DemoModelTokenizerIdenticalToLibsentencepiece) {
  compare_with_oracle(test::model_path("swift-mini-24L/tokenizer.model"));
}

TEST(SpmTokenizer, InvalidUtf8IsRejectedWithTheOffset) {
  SpmTokenizer t(load_spm_model(test::data_path("tokenizers/llama2.model")));
  for (const char* bad : {"ab\xff", "\xed\xa0\x80 surrogate", "\xc0\xaf overlong", "trunc\xe2\x82"}) {
    try {
      t.encode(bad);
      ADD_FAILURE() << "accepted invalid UTF-8";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("not valid UTF-8"), std::string::npos) << e.what();
    }
  }
}

TEST(SpmTokenizer, StreamingNeverPrintsBrokenUtf8) {
  SpmTokenizer t(load_spm_model(test::data_path("tokenizers/llama2.model")));
  const std::string text = "naïve 🙂 日本語 done";
  const auto ids = t.encode(text);
  StreamDecoder sd(t);
  std::string out;
  for (int32_t id : ids) {
    const std::string piece = sd.push(id);
    EXPECT_EQ(utf8_first_invalid(piece), -1) << "broken UTF-8 emitted";
    out += piece;
  }
  out += sd.flush();
  EXPECT_EQ(out, t.decode(ids));
  EXPECT_EQ(out, text);
}

}  // namespace swift
