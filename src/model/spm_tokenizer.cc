#include "model/spm_tokenizer.h"

#include <algorithm>
#include <cstring>
#include <queue>

#include "model/protobuf_reader.h"
#include "util/check.h"
#include "util/mapped_file.h"

namespace swift {

namespace {

constexpr std::string_view kSpace = "\xE2\x96\x81";  // U+2581 LOWER ONE EIGHTH BLOCK
constexpr size_t kMaxPieces = 1 << 22;

// Length of the UTF-8 character starting at s[i] (valid input assumed).
size_t utf8_len(unsigned char c) {
  if (c < 0x80) return 1;
  if ((c >> 5) == 0x6) return 2;
  if ((c >> 4) == 0xE) return 3;
  return 4;
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

void parse_piece(ProtoReader r, SpmVocab& v) {
  std::string piece;
  float score = 0.0f;
  uint64_t type = 1;
  uint32_t f, wt;
  while (r.next(&f, &wt)) {
    if (f == 1 && wt == 2) piece = std::string(r.bytes());
    else if (f == 2 && wt == 5) {
      const uint32_t bits = r.fixed32();
      std::memcpy(&score, &bits, 4);
    } else if (f == 3 && wt == 0) type = r.varint();
    else r.skip(wt);
  }
  if (type < 1 || type > 6) fail("piece {} ('{}') has unknown type {}", v.pieces.size(), piece, type);
  v.pieces.push_back(std::move(piece));
  v.scores.push_back(score);
  v.types.push_back(static_cast<PieceType>(type));
}

}  // namespace

int64_t utf8_first_invalid(std::string_view s) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const size_t n = s.size();
  size_t i = 0;
  while (i < n) {
    const unsigned char c = p[i];
    if (c < 0x80) { ++i; continue; }
    size_t len;
    uint32_t cp;
    if (c >= 0xC2 && c <= 0xDF) len = 2, cp = c & 0x1F;
    else if (c >= 0xE0 && c <= 0xEF) len = 3, cp = c & 0x0F;
    else if (c >= 0xF0 && c <= 0xF4) len = 4, cp = c & 0x07;
    else return static_cast<int64_t>(i);
    if (i + len > n) return static_cast<int64_t>(i);
    for (size_t k = 1; k < len; ++k) {
      if ((p[i + k] & 0xC0) != 0x80) return static_cast<int64_t>(i);
      cp = (cp << 6) | (p[i + k] & 0x3F);
    }
    if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)) || (cp >= 0xD800 && cp <= 0xDFFF))
      return static_cast<int64_t>(i);
    i += len;
  }
  return -1;
}

SpmVocab parse_spm_model(const uint8_t* data, size_t size, const std::string& what) {
  SpmVocab v;
  ProtoReader r(data, size, what);
  uint32_t f, wt;
  int64_t model_type = 1;  // UNIGRAM is the proto default
  std::string charsmap, normalizer_name;
  while (r.next(&f, &wt)) {
    if (f == 1 && wt == 2) {
      if (v.pieces.size() >= kMaxPieces) fail("{}: more than {} pieces", what, kMaxPieces);
      parse_piece(r.sub(), v);
    } else if (f == 2 && wt == 2) {  // TrainerSpec
      ProtoReader t = r.sub();
      while (t.next(&f, &wt)) {
        if (f == 3 && wt == 0) model_type = static_cast<int64_t>(t.varint());
        else if (f == 35 && wt == 0) v.byte_fallback = t.varint() != 0;
        else if (f == 24 && wt == 0) v.treat_whitespace_as_suffix = t.varint() != 0;
        else if (f == 40 && wt == 0) v.unk_id = static_cast<int32_t>(t.varint());
        else if (f == 41 && wt == 0) v.bos_id = static_cast<int32_t>(t.varint());
        else if (f == 42 && wt == 0) v.eos_id = static_cast<int32_t>(t.varint());
        else if (f == 43 && wt == 0) v.pad_id = static_cast<int32_t>(t.varint());
        else if (f == 44 && wt == 2) v.unk_surface = std::string(t.bytes());
        else t.skip(wt);
      }
    } else if (f == 3 && wt == 2) {  // NormalizerSpec
      ProtoReader n = r.sub();
      while (n.next(&f, &wt)) {
        if (f == 1 && wt == 2) normalizer_name = std::string(n.bytes());
        else if (f == 2 && wt == 2) charsmap = std::string(n.bytes());
        else if (f == 3 && wt == 0) v.add_dummy_prefix = n.varint() != 0;
        else if (f == 4 && wt == 0) v.remove_extra_whitespaces = n.varint() != 0;
        else if (f == 5 && wt == 0) v.escape_whitespaces = n.varint() != 0;
        else n.skip(wt);
      }
    } else {
      r.skip(wt);
    }
  }
  if (v.pieces.empty()) fail("{}: no pieces (not a sentencepiece model, or truncated)", what);
  if (model_type != 2)
    fail("{}: sentencepiece model type {} is not supported (only BPE, type 2)", what, model_type);
  if (!charsmap.empty())
    fail("{}: normalizer '{}' uses a precompiled character map, which is not supported (only identity)", what,
         normalizer_name);
  const int64_t nv = static_cast<int64_t>(v.pieces.size());
  if (v.unk_id < 0 || v.unk_id >= nv) fail("{}: unk_id {} is outside the vocabulary of {} pieces", what, v.unk_id, nv);
  for (int32_t* id : {&v.bos_id, &v.eos_id, &v.pad_id})
    if (*id >= nv) fail("{}: special token id {} is outside the vocabulary of {} pieces", what, *id, nv);
  return v;
}

SpmVocab load_spm_model(const std::string& path) {
  MappedFile f(path);
  return parse_spm_model(f.data(), f.size(), path);
}

SpmTokenizer::SpmTokenizer(SpmVocab vocab) : v_(std::move(vocab)) {
  std::fill(std::begin(byte_ids_), std::end(byte_ids_), -1);
  for (int32_t i = 0; i < static_cast<int32_t>(v_.pieces.size()); ++i) {
    const std::string& p = v_.pieces[i];
    const PieceType t = v_.types[i];
    const bool normal = t == PieceType::kNormal || t == PieceType::kUserDefined || t == PieceType::kUnused;
    auto& map = normal ? piece_ids_ : reserved_ids_;
    if (!map.emplace(p, i).second) fail("tokenizer: piece '{}' (id {}) is defined twice", p, i);
    if (t == PieceType::kUserDefined) user_defined_.push_back(p);
    if (t == PieceType::kByte) {
      if (p.size() != 6 || p.compare(0, 3, "<0x") != 0 || p[5] != '>' || hex_value(p[3]) < 0 || hex_value(p[4]) < 0)
        fail("tokenizer: byte piece {} is '{}', expected <0xNN> with hex digits", i, p);
      byte_ids_[hex_value(p[3]) * 16 + hex_value(p[4])] = i;
    }
  }
  if (v_.byte_fallback)
    for (int b = 0; b < 256; ++b)
      if (byte_ids_[b] < 0) fail("tokenizer: byte_fallback is on but byte piece <0x{:02X}> is missing", b);
  std::sort(user_defined_.begin(), user_defined_.end(), [](const auto& a, const auto& b) { return a.size() > b.size(); });
  bos_id = v_.bos_id;
  eos_id = v_.eos_id;
}

std::string SpmTokenizer::piece(int32_t id) const {
  if (id < 0 || id >= vocab_size()) fail("token id {} is outside the vocabulary [0, {})", id, vocab_size());
  return v_.pieces[id];
}

std::string SpmTokenizer::normalize(std::string_view text) const {
  // Identity normalization plus sentencepiece's whitespace handling (normalizer.cc).
  std::string s;
  s.reserve(text.size() + 8);
  if (v_.remove_extra_whitespaces) {
    bool prev_space = true;  // strips leading spaces
    for (char c : text) {
      if (c == ' ') {
        if (!prev_space) s.push_back(c);
        prev_space = true;
      } else {
        s.push_back(c);
        prev_space = false;
      }
    }
    while (!s.empty() && s.back() == ' ') s.pop_back();
  } else {
    s.assign(text);
  }
  if (s.empty()) return s;
  std::string out;
  out.reserve(s.size() * 2 + 3);
  if (v_.add_dummy_prefix && !v_.treat_whitespace_as_suffix) out += v_.escape_whitespaces ? kSpace : " ";
  for (char c : s) {
    if (c == ' ' && v_.escape_whitespaces) out += kSpace;
    else out.push_back(c);
  }
  if (v_.add_dummy_prefix && v_.treat_whitespace_as_suffix) out += v_.escape_whitespaces ? kSpace : " ";
  return out;
}

std::vector<int32_t> SpmTokenizer::encode(std::string_view text) const {
  const int64_t bad = utf8_first_invalid(text);
  if (bad >= 0) fail("input is not valid UTF-8 (byte {} = 0x{:02X})", bad, static_cast<unsigned char>(text[bad]));
  const std::string norm = normalize(text);
  if (norm.empty()) return {};

  struct Symbol {
    int32_t prev, next;
    uint32_t begin, len;
    bool freeze;
  };
  std::vector<Symbol> sym;
  for (size_t i = 0; i < norm.size();) {
    size_t len = 0;
    bool freeze = false;
    for (const auto& u : user_defined_)
      if (norm.compare(i, u.size(), u) == 0) {
        len = u.size();
        freeze = true;
        break;
      }
    if (len == 0) len = std::min(utf8_len(static_cast<unsigned char>(norm[i])), norm.size() - i);
    const int32_t idx = static_cast<int32_t>(sym.size());
    sym.push_back({idx - 1, i + len < norm.size() ? idx + 1 : -1, static_cast<uint32_t>(i), static_cast<uint32_t>(len), freeze});
    i += len;
  }

  struct Pair {
    float score;
    int32_t left, right;
    uint32_t size;
  };
  auto worse = [](const Pair& a, const Pair& b) { return a.score < b.score || (a.score == b.score && a.left > b.left); };
  std::priority_queue<Pair, std::vector<Pair>, decltype(worse)> agenda(worse);
  std::string key;
  auto maybe_add = [&](int32_t l, int32_t r) {
    if (l < 0 || r < 0 || sym[l].freeze || sym[r].freeze) return;
    key.assign(norm, sym[l].begin, sym[l].len + sym[r].len);
    auto it = piece_ids_.find(key);
    if (it == piece_ids_.end()) return;
    agenda.push({v_.scores[it->second], l, r, sym[l].len + sym[r].len});
  };
  for (int32_t i = 1; i < static_cast<int32_t>(sym.size()); ++i) maybe_add(i - 1, i);
  while (!agenda.empty()) {
    const Pair top = agenda.top();
    agenda.pop();
    Symbol& l = sym[top.left];
    Symbol& r = sym[top.right];
    if (l.len == 0 || r.len == 0 || l.len + r.len != top.size) continue;  // stale entry
    l.len += r.len;
    l.next = r.next;
    if (r.next >= 0) sym[r.next].prev = top.left;
    r.len = 0;
    maybe_add(l.prev, top.left);
    maybe_add(top.left, l.next);
  }

  std::vector<int32_t> ids;
  bool prev_unk = false;
  for (int32_t i = 0; i >= 0 && i < static_cast<int32_t>(sym.size()); i = sym[i].next) {
    key.assign(norm, sym[i].begin, sym[i].len);
    int32_t id = -1;
    if (auto it = reserved_ids_.find(key); it != reserved_ids_.end()) id = it->second;
    else if (auto it2 = piece_ids_.find(key); it2 != piece_ids_.end()) id = it2->second;
    if (id >= 0 && v_.types[id] == PieceType::kUnused) id = -1;  // unused pieces never surface
    if (id < 0 || id == v_.unk_id) {
      if (v_.byte_fallback) {
        for (unsigned char c : key) ids.push_back(byte_ids_[c]);
        prev_unk = false;
      } else {
        if (!prev_unk) ids.push_back(v_.unk_id);
        prev_unk = true;
      }
      continue;
    }
    ids.push_back(id);
    prev_unk = false;
  }
  return ids;
}

std::string SpmTokenizer::decode(const std::vector<int32_t>& ids) const {
  std::string out;
  std::string bytes;  // pending byte pieces
  bool bos_ws = true;  // the leading dummy-prefix space is dropped once, at the start
  auto flush_bytes = [&]() {
    if (bytes.empty()) return;
    // Valid sequences pass through; each invalid byte becomes U+FFFD (as sentencepiece does).
    size_t i = 0;
    while (i < bytes.size()) {
      const int64_t bad = utf8_first_invalid(std::string_view(bytes).substr(i));
      if (bad < 0) {
        out.append(bytes, i, std::string::npos);
        break;
      }
      out.append(bytes, i, bad);
      out += "\xEF\xBF\xBD";
      i += bad + 1;
    }
    bytes.clear();
    bos_ws = false;
  };
  for (int32_t id : ids) {
    if (id < 0 || id >= vocab_size()) fail("token id {} is outside the vocabulary [0, {})", id, vocab_size());
    const PieceType t = v_.types[id];
    if (t == PieceType::kByte) {
      const std::string& p = v_.pieces[id];
      bytes.push_back(static_cast<char>(hex_value(p[3]) * 16 + hex_value(p[4])));
      continue;
    }
    flush_bytes();
    if (t == PieceType::kControl) continue;
    if (t == PieceType::kUnknown) {
      out += v_.unk_surface;
      bos_ws = false;
      continue;
    }
    std::string_view p = v_.pieces[id];
    if (bos_ws && (v_.add_dummy_prefix || v_.remove_extra_whitespaces) && p.substr(0, kSpace.size()) == kSpace)
      p.remove_prefix(kSpace.size());
    for (size_t i = 0; i < p.size();) {
      if (p.compare(i, kSpace.size(), kSpace) == 0) {
        out.push_back(' ');
        i += kSpace.size();
      } else {
        out.push_back(p[i++]);
      }
    }
    bos_ws = false;
  }
  flush_bytes();
  return out;
}

}  // namespace swift
