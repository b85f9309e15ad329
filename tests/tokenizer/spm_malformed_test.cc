// Malformed tokenizer.model files: clear errors, never a crash (CI runs these under ASan/UBSan).
#include <gtest/gtest.h>

#include "model/spm_tokenizer.h"
#include "util/check.h"

namespace swift {

namespace {

// Minimal protobuf writer for ModelProto.
struct Pb {
  std::string out;
  void varint(uint64_t v) {
    while (v >= 0x80) out += static_cast<char>((v & 0x7f) | 0x80), v >>= 7;
    out += static_cast<char>(v);
  }
  void key(int field, int wt) { varint((static_cast<uint64_t>(field) << 3) | wt); }
  void bytes(int field, const std::string& s) {
    key(field, 2);
    varint(s.size());
    out += s;
  }
  void f32(int field, float f) {
    key(field, 5);
    char b[4];
    std::memcpy(b, &f, 4);
    out.append(b, 4);
  }
  void u(int field, uint64_t v) {
    key(field, 0);
    varint(v);
  }
};

std::string piece(const std::string& text, float score, int type) {
  Pb p;
  p.bytes(1, text);
  p.f32(2, score);
  p.u(3, type);
  return p.out;
}

struct Spec {
  std::vector<std::tuple<std::string, float, int>> pieces = {
      {"<unk>", 0, 2}, {"<s>", 0, 3}, {"</s>", 0, 3}, {"\xE2\x96\x81", -1, 1}, {"a", -2, 1}, {"b", -3, 1}, {"ab", -1.5f, 1}};
  int model_type = 2;
  int64_t bos = 1, eos = 2;
  std::string charsmap;
};

std::string build(const Spec& s) {
  Pb m;
  for (auto& [t, sc, ty] : s.pieces) m.bytes(1, piece(t, sc, ty));
  Pb trainer;
  trainer.u(3, s.model_type);
  trainer.u(41, static_cast<uint64_t>(s.bos));
  trainer.u(42, static_cast<uint64_t>(s.eos));
  m.bytes(2, trainer.out);
  Pb norm;
  norm.bytes(1, "identity");
  if (!s.charsmap.empty()) norm.bytes(2, s.charsmap);
  norm.u(4, 0);
  m.bytes(3, norm.out);
  return m.out;
}

std::string error_of(const std::string& bytes) {
  try {
    SpmTokenizer t(parse_spm_model(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), "tokenizer.model"));
    return "";
  } catch (const Error& e) {
    return e.what();
  }
}

}  // namespace

TEST(SpmMalformed, ValidTinyModelEncodes) {
  const std::string bytes = build(Spec{});
  SpmTokenizer t(parse_spm_model(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), "tiny"));
  EXPECT_EQ(t.encode("ab"), (std::vector<int32_t>{3, 6}));
}

TEST(SpmMalformed, EachDefectGivesAClearError) {
  Spec dup;
  dup.pieces.push_back({"a", -5, 1});
  EXPECT_NE(error_of(build(dup)).find("piece 'a' (id 7) is defined twice"), std::string::npos) << error_of(build(dup));
  Spec bos;
  bos.bos = 99;
  EXPECT_NE(error_of(build(bos)).find("special token id 99 is outside the vocabulary of 7"), std::string::npos);
  Spec bad_byte;
  bad_byte.pieces.push_back({"<0xZZ>", 0, 6});
  EXPECT_NE(error_of(build(bad_byte)).find("expected <0xNN>"), std::string::npos) << error_of(build(bad_byte));
  Spec unigram;
  unigram.model_type = 1;
  EXPECT_NE(error_of(build(unigram)).find("only BPE"), std::string::npos);
  Spec nfkc;
  nfkc.charsmap = "\x01\x02\x03";
  EXPECT_NE(error_of(build(nfkc)).find("precompiled character map"), std::string::npos);
  Spec bad_type;
  bad_type.pieces.push_back({"q", 0, 9});
  EXPECT_NE(error_of(build(bad_type)).find("unknown type 9"), std::string::npos);
  EXPECT_NE(error_of("").find("no pieces"), std::string::npos);
  EXPECT_NE(error_of("\x0a\xff\xff\xff\xff\x0f").find("runs past the end"), std::string::npos);
  EXPECT_NE(error_of("\x08\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff").find("varint longer"), std::string::npos);
  EXPECT_NE(error_of("\x0b").find("wire type"), std::string::npos);  // group start
}

TEST(SpmMalformed, EveryTruncationIsHandled) {
  const std::string bytes = build(Spec{});
  int errors = 0;
  for (size_t n = 0; n < bytes.size(); ++n) {
    const std::string e = error_of(bytes.substr(0, n));
    errors += !e.empty();
    if (!e.empty()) {
      EXPECT_NE(e.find("tokenizer.model"), std::string::npos) << e;
    }
  }
  EXPECT_GT(errors, static_cast<int>(bytes.size()) / 2);  // most cuts are detected; none crash
}

}  // namespace swift
