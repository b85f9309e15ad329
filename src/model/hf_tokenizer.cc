#include "model/hf_tokenizer.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <utf8proc.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <queue>
#include <sstream>

#include "util/check.h"

namespace swift {

namespace {

using nlohmann::json;

// GPT-2's reversible byte <-> printable character map (bytes_to_unicode in tokenizers).
struct ByteMap {
  std::string byte_to_char[256];             // UTF-8 of the char for each byte
  std::unordered_map<uint32_t, uint8_t> rev;  // code point -> byte
  ByteMap() {
    int n = 0;
    for (int b = 0; b < 256; ++b) {
      const bool keep = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
      const uint32_t cp = keep ? static_cast<uint32_t>(b) : static_cast<uint32_t>(256 + n++);
      utf8proc_uint8_t buf[4];
      const auto len = utf8proc_encode_char(static_cast<utf8proc_int32_t>(cp), buf);
      byte_to_char[b].assign(reinterpret_cast<char*>(buf), len);
      rev[cp] = static_cast<uint8_t>(b);
    }
  }
};
const ByteMap& byte_map() {
  static const ByteMap m;
  return m;
}

// Code points of a valid UTF-8 string with their byte offsets.
std::vector<std::pair<uint32_t, size_t>> code_points(std::string_view s) {
  std::vector<std::pair<uint32_t, size_t>> out;
  size_t i = 0;
  while (i < s.size()) {
    utf8proc_int32_t cp;
    const auto n = utf8proc_iterate(reinterpret_cast<const utf8proc_uint8_t*>(s.data() + i), s.size() - i, &cp);
    if (n <= 0) break;  // input was validated before
    out.push_back({static_cast<uint32_t>(cp), i});
    i += n;
  }
  return out;
}

std::string replace_all(std::string s, const std::string& from, const std::string& to) {
  if (from.empty()) return s;
  std::string out;
  size_t i = 0;
  for (size_t at; (at = s.find(from, i)) != std::string::npos; i = at + from.size()) out.append(s, i, at - i).append(to);
  return out.append(s, i, std::string::npos);
}

// A compiled PCRE2 pattern (UTF + Unicode properties, JIT when available).
class Regex {
 public:
  Regex(const std::string& pattern, bool literal, const std::string& where) {
    int err = 0;
    PCRE2_SIZE off = 0;
    code_ = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                          literal ? (PCRE2_UTF | PCRE2_LITERAL) : (PCRE2_UTF | PCRE2_UCP), &err, &off, nullptr);
    if (!code_) {
      PCRE2_UCHAR msg[256];
      pcre2_get_error_message(err, msg, sizeof(msg));
      fail("{}: cannot compile pattern {} at offset {}: {}", where, json(pattern).dump(), off, reinterpret_cast<char*>(msg));
    }
    pcre2_jit_compile(code_, PCRE2_JIT_COMPLETE);  // optional speed-up; falls back to the interpreter
    data_ = pcre2_match_data_create_from_pattern(code_, nullptr);
  }
  ~Regex() {
    pcre2_match_data_free(data_);
    pcre2_code_free(code_);
  }
  Regex(const Regex&) = delete;
  Regex& operator=(const Regex&) = delete;

  // Non-overlapping matches [begin, end) in s (empty matches skipped, as tokenizers does).
  std::vector<std::pair<size_t, size_t>> find_all(std::string_view s) const {
    std::vector<std::pair<size_t, size_t>> out;
    size_t start = 0;
    while (start <= s.size()) {
      // The text was validated as UTF-8 once (encode); without NO_UTF_CHECK PCRE2 would re-check
      // the whole subject on every call, making a long text quadratic.
      const int rc = pcre2_match(code_, reinterpret_cast<PCRE2_SPTR>(s.data()), s.size(), start, PCRE2_NO_UTF_CHECK,
                                 data_, nullptr);
      if (rc < 0) break;
      const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(data_);
      if (ov[1] == ov[0]) {  // empty match: advance one character
        size_t next = ov[0] + 1;
        while (next < s.size() && (static_cast<unsigned char>(s[next]) & 0xC0) == 0x80) ++next;
        start = next;
        continue;
      }
      out.push_back({ov[0], ov[1]});
      start = ov[1];
    }
    return out;
  }

 private:
  pcre2_code* code_ = nullptr;
  pcre2_match_data* data_ = nullptr;  // one tokenizer is used by one thread at a time
};

enum class SplitBehavior { kIsolated, kRemoved, kMergedWithPrevious, kMergedWithNext, kContiguous };

// Splits s by the regex matches according to `behavior` (tokenizers' SplitDelimiterBehavior).
std::vector<std::string> split_by(const Regex& re, const std::string& s, SplitBehavior b, bool invert) {
  struct Span {
    size_t b, e;
    bool match;
  };
  std::vector<Span> spans;
  size_t prev = 0;
  for (auto [mb, me] : re.find_all(s)) {
    if (mb > prev) spans.push_back({prev, mb, false});
    spans.push_back({mb, me, true});
    prev = me;
  }
  if (prev < s.size()) spans.push_back({prev, s.size(), false});
  if (invert)
    for (auto& sp : spans) sp.match = !sp.match;
  std::vector<std::string> out;
  switch (b) {
    case SplitBehavior::kIsolated:
      for (auto& sp : spans) out.push_back(s.substr(sp.b, sp.e - sp.b));
      break;
    case SplitBehavior::kRemoved:
      for (auto& sp : spans)
        if (!sp.match) out.push_back(s.substr(sp.b, sp.e - sp.b));
      break;
    case SplitBehavior::kMergedWithPrevious: {
      for (auto& sp : spans) {
        if (sp.match && !out.empty()) out.back() += s.substr(sp.b, sp.e - sp.b);
        else out.push_back(s.substr(sp.b, sp.e - sp.b));
      }
      break;
    }
    case SplitBehavior::kMergedWithNext: {
      bool pending = false;
      for (auto& sp : spans) {
        if (pending) out.back() += s.substr(sp.b, sp.e - sp.b);
        else out.push_back(s.substr(sp.b, sp.e - sp.b));
        pending = sp.match;
      }
      break;
    }
    case SplitBehavior::kContiguous: {
      bool prev_match = false;
      for (auto& sp : spans) {
        if (sp.match && prev_match) out.back() += s.substr(sp.b, sp.e - sp.b);
        else out.push_back(s.substr(sp.b, sp.e - sp.b));
        prev_match = sp.match;
      }
      break;
    }
  }
  return out;
}

const char* kGpt2Pattern = R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";
const char* kMetaspace = "\xE2\x96\x81";

std::string str_field(const json& j, const char* key, const std::string& where) {
  if (!j.contains(key) || !j[key].is_string()) fail("{}: missing string '{}'", where, key);
  return j[key].get<std::string>();
}

// A pattern object {"String": s} or {"Regex": r}.
std::unique_ptr<Regex> pattern(const json& p, const std::string& where) {
  if (p.is_object() && p.contains("String") && p["String"].is_string())
    return std::make_unique<Regex>(p["String"].get<std::string>(), true, where);
  if (p.is_object() && p.contains("Regex") && p["Regex"].is_string())
    return std::make_unique<Regex>(p["Regex"].get<std::string>(), false, where);
  fail("{}: pattern must be {{\"String\": ...}} or {{\"Regex\": ...}}", where);
}

}  // namespace

struct NormStep {
  std::string type;  // NFC, NFKC, Lowercase, Prepend, Replace
  std::string text;  // Prepend text, Replace content
  std::unique_ptr<Regex> re;
};

struct PreStep {
  std::string type;  // Split, ByteLevel, Metaspace, Digits
  std::unique_ptr<Regex> re;
  SplitBehavior behavior = SplitBehavior::kIsolated;
  bool invert = false;
  bool add_prefix_space = false;
  std::string replacement = kMetaspace;
  std::string prepend_scheme = "always";
  bool split = true;
};

struct DecStep {
  std::string type;  // ByteLevel, Metaspace, Replace, ByteFallback, Fuse, Strip
  std::string from, to;
  std::unique_ptr<Regex> re;
  int start = 0, stop = 0;
  bool prefix_space = true;
};

struct AddedToken {
  std::string content;
  int32_t id;
  bool special, lstrip, rstrip;
};

struct HfTokenizer::Impl {
  std::vector<NormStep> norm;
  std::vector<PreStep> pre;
  std::vector<DecStep> dec;
  std::vector<AddedToken> added;  // longest content first
  std::vector<uint8_t> is_added;  // [vocab] 1 for added tokens (decoded verbatim)
  std::string source;

  std::string normalize(std::string s) const;
  std::vector<std::string> pre_tokenize(const std::string& s, bool first_segment) const;
  std::string decode_run(std::vector<std::string> tokens, bool first) const;
};

namespace {

void parse_normalizer(const json& n, std::vector<NormStep>& out, const std::string& src) {
  if (n.is_null()) return;
  const std::string type = str_field(n, "type", src + ": normalizer");
  const std::string where = src + ": normalizer " + type;
  if (type == "Sequence") {
    for (const auto& s : n.value("normalizers", json::array())) parse_normalizer(s, out, src);
  } else if (type == "NFC" || type == "NFKC" || type == "Lowercase") {
    out.push_back({type, "", nullptr});
  } else if (type == "Prepend") {
    out.push_back({type, str_field(n, "prepend", where), nullptr});
  } else if (type == "Replace") {
    out.push_back({type, str_field(n, "content", where), pattern(n.value("pattern", json()), where)});
  } else {
    fail("{}: normalizer type '{}' is not supported (NFC, NFKC, Lowercase, Prepend, Replace, Sequence)", src, type);
  }
}

SplitBehavior behavior_of(const std::string& b, const std::string& where) {
  if (b == "Isolated") return SplitBehavior::kIsolated;
  if (b == "Removed") return SplitBehavior::kRemoved;
  if (b == "MergedWithPrevious") return SplitBehavior::kMergedWithPrevious;
  if (b == "MergedWithNext") return SplitBehavior::kMergedWithNext;
  if (b == "Contiguous") return SplitBehavior::kContiguous;
  fail("{}: unknown split behavior '{}'", where, b);
}

void parse_pre(const json& p, std::vector<PreStep>& out, const std::string& src) {
  if (p.is_null()) return;
  const std::string type = str_field(p, "type", src + ": pre_tokenizer");
  const std::string where = src + ": pre_tokenizer " + type;
  PreStep s;
  s.type = type;
  if (type == "Sequence") {
    for (const auto& x : p.value("pretokenizers", json::array())) parse_pre(x, out, src);
    return;
  } else if (type == "Split") {
    s.re = pattern(p.value("pattern", json()), where);
    s.behavior = behavior_of(p.value("behavior", "Isolated"), where);
    s.invert = p.value("invert", false);
  } else if (type == "ByteLevel") {
    s.add_prefix_space = p.value("add_prefix_space", true);
    if (p.value("use_regex", true)) s.re = std::make_unique<Regex>(kGpt2Pattern, false, where);
  } else if (type == "Metaspace") {
    s.replacement = p.value("replacement", std::string(kMetaspace));
    s.prepend_scheme = p.contains("prepend_scheme") ? p.value("prepend_scheme", "always")
                                                    : (p.value("add_prefix_space", true) ? "always" : "never");
    s.split = p.value("split", true);
    if (s.prepend_scheme != "always" && s.prepend_scheme != "first" && s.prepend_scheme != "never")
      fail("{}: unknown prepend_scheme '{}'", where, s.prepend_scheme);
  } else if (type == "Digits") {
    s.re = std::make_unique<Regex>(p.value("individual_digits", false) ? "\\p{Nd}" : "\\p{Nd}+", false, where);
  } else {
    fail("{}: pre_tokenizer type '{}' is not supported (Split, ByteLevel, Metaspace, Digits, Sequence)", src, type);
  }
  out.push_back(std::move(s));
}

void parse_decoder(const json& d, std::vector<DecStep>& out, const std::string& src) {
  if (d.is_null()) return;
  const std::string type = str_field(d, "type", src + ": decoder");
  const std::string where = src + ": decoder " + type;
  DecStep s;
  s.type = type;
  if (type == "Sequence") {
    for (const auto& x : d.value("decoders", json::array())) parse_decoder(x, out, src);
    return;
  } else if (type == "ByteLevel" || type == "ByteFallback" || type == "Fuse") {
  } else if (type == "Metaspace") {
    s.from = d.value("replacement", std::string(kMetaspace));
    s.prefix_space = d.contains("prepend_scheme") ? d.value("prepend_scheme", "always") != "never"
                                                  : d.value("add_prefix_space", true);
  } else if (type == "Replace") {
    s.to = str_field(d, "content", where);
    s.re = pattern(d.value("pattern", json()), where);
  } else if (type == "Strip") {
    s.from = str_field(d, "content", where);
    s.start = d.value("start", 0);
    s.stop = d.value("stop", 0);
  } else {
    fail("{}: decoder type '{}' is not supported (ByteLevel, Metaspace, Replace, ByteFallback, Fuse, Strip, Sequence)",
         src, type);
  }
  out.push_back(std::move(s));
}

std::string regex_replace(const Regex& re, const std::string& s, const std::string& to) {
  std::string out;
  size_t prev = 0;
  for (auto [b, e] : re.find_all(s)) out.append(s, prev, b - prev).append(to), prev = e;
  return out.append(s, prev, std::string::npos);
}

std::string utf8proc_map_str(const std::string& s, utf8proc_option_t opts) {
  utf8proc_uint8_t* dst = nullptr;
  const auto n = utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(s.data()), static_cast<utf8proc_ssize_t>(s.size()),
                              &dst, static_cast<utf8proc_option_t>(opts | UTF8PROC_STABLE));
  if (n < 0) fail("Unicode normalization failed: {}", utf8proc_errmsg(n));
  std::string out(reinterpret_cast<char*>(dst), static_cast<size_t>(n));
  std::free(dst);
  return out;
}

// Lossy UTF-8 decoding like Rust's String::from_utf8_lossy: each maximal invalid prefix -> U+FFFD.
std::string lossy_utf8(const std::string& bytes) {
  std::string out;
  size_t i = 0;
  while (i < bytes.size()) {
    const int64_t bad = utf8_first_invalid(std::string_view(bytes).substr(i));
    if (bad < 0) return out.append(bytes, i, std::string::npos);
    out.append(bytes, i, bad);
    i += bad;
    // Skip the longest prefix of a valid sequence start (Rust drops a truncated sequence as one).
    size_t len = 1;
    const unsigned char c = bytes[i];
    const size_t need = c >= 0xF0 && c <= 0xF4 ? 4 : c >= 0xE0 && c <= 0xEF ? 3 : c >= 0xC2 && c <= 0xDF ? 2 : 1;
    while (len < need && i + len < bytes.size() && (static_cast<unsigned char>(bytes[i + len]) & 0xC0) == 0x80) ++len;
    if (need > 1 && len > 1) {
      // Validate the second byte ranges Rust checks (E0 A0.., ED ..9F, F0 90.., F4 ..8F).
      const unsigned char c1 = bytes[i + 1];
      const bool ok2 = (c == 0xE0 ? c1 >= 0xA0 : c == 0xED ? c1 <= 0x9F : c == 0xF0 ? c1 >= 0x90 : c == 0xF4 ? c1 <= 0x8F : true);
      if (!ok2) len = 1;
    }
    out += "\xEF\xBF\xBD";
    i += len;
  }
  return out;
}

}  // namespace

std::string HfTokenizer::Impl::normalize(std::string s) const {
  for (const auto& n : norm) {
    if (n.type == "NFC") s = utf8proc_map_str(s, UTF8PROC_COMPOSE);
    else if (n.type == "NFKC") s = utf8proc_map_str(s, static_cast<utf8proc_option_t>(UTF8PROC_COMPOSE | UTF8PROC_COMPAT));
    else if (n.type == "Lowercase") s = utf8proc_map_str(s, UTF8PROC_CASEFOLD);
    else if (n.type == "Prepend") s = s.empty() ? s : n.text + s;
    else if (n.type == "Replace") s = regex_replace(*n.re, s, n.text);
  }
  return s;
}

std::vector<std::string> HfTokenizer::Impl::pre_tokenize(const std::string& s, bool first_segment) const {
  std::vector<std::string> pieces{s};
  for (const auto& p : pre) {
    std::vector<std::string> next;
    for (size_t k = 0; k < pieces.size(); ++k) {
      std::string piece = pieces[k];
      if (p.type == "Split" || p.type == "Digits") {
        for (auto& x : split_by(*p.re, piece, p.type == "Digits" ? SplitBehavior::kIsolated : p.behavior, p.invert))
          next.push_back(std::move(x));
      } else if (p.type == "ByteLevel") {
        if (p.add_prefix_space && (piece.empty() || piece[0] != ' ')) piece = " " + piece;
        std::vector<std::string> parts = p.re ? split_by(*p.re, piece, SplitBehavior::kIsolated, false)
                                              : std::vector<std::string>{piece};
        for (const auto& part : parts) {
          std::string mapped;
          for (unsigned char c : part) mapped += byte_map().byte_to_char[c];
          next.push_back(std::move(mapped));
        }
      } else if (p.type == "Metaspace") {
        piece = replace_all(piece, " ", p.replacement);
        const bool prepend = p.prepend_scheme == "always" || (p.prepend_scheme == "first" && first_segment && k == 0);
        if (prepend && piece.compare(0, p.replacement.size(), p.replacement) != 0) piece = p.replacement + piece;
        if (p.split) {
          // MergedWithNext on the replacement character: "▁a▁b" -> "▁a", "▁b".
          size_t start = 0;
          for (size_t at = piece.find(p.replacement, 1); at != std::string::npos; at = piece.find(p.replacement, at + 1)) {
            next.push_back(piece.substr(start, at - start));
            start = at;
          }
          next.push_back(piece.substr(start));
        } else {
          next.push_back(piece);
        }
      }
    }
    pieces.clear();
    for (auto& x : next)
      if (!x.empty()) pieces.push_back(std::move(x));
  }
  return pieces;
}

std::string HfTokenizer::Impl::decode_run(std::vector<std::string> tokens, bool first) const {
  for (const auto& d : dec) {
    if (d.type == "Replace") {
      for (auto& t : tokens) t = regex_replace(*d.re, t, d.to);
    } else if (d.type == "ByteFallback") {
      std::vector<std::string> out;
      std::string bytes;
      int n_bytes = 0;
      auto flush = [&] {
        if (!n_bytes) return;
        if (utf8_first_invalid(bytes) < 0) out.push_back(bytes);
        else for (int i = 0; i < n_bytes; ++i) out.push_back("\xEF\xBF\xBD");
        bytes.clear();
        n_bytes = 0;
      };
      for (auto& t : tokens) {
        const bool is_byte = t.size() == 6 && t.compare(0, 3, "<0x") == 0 && t[5] == '>' &&
                             std::isxdigit(static_cast<unsigned char>(t[3])) && std::isxdigit(static_cast<unsigned char>(t[4]));
        if (is_byte) {
          bytes.push_back(static_cast<char>(std::stoi(t.substr(3, 2), nullptr, 16)));
          ++n_bytes;
        } else {
          flush();
          out.push_back(t);
        }
      }
      flush();
      tokens = std::move(out);
    } else if (d.type == "Fuse") {
      std::string all;
      for (auto& t : tokens) all += t;
      tokens = {all};
    } else if (d.type == "Strip") {
      for (auto& t : tokens) {
        for (int i = 0; i < d.start && t.compare(0, d.from.size(), d.from) == 0; ++i) t.erase(0, d.from.size());
        for (int i = 0; i < d.stop && t.size() >= d.from.size() && t.compare(t.size() - d.from.size(), d.from.size(), d.from) == 0; ++i)
          t.erase(t.size() - d.from.size());
      }
    } else if (d.type == "Metaspace") {
      for (size_t i = 0; i < tokens.size(); ++i) {
        tokens[i] = replace_all(tokens[i], d.from, " ");
        if (i == 0 && first && d.prefix_space && !tokens[i].empty() && tokens[i][0] == ' ') tokens[i].erase(0, 1);
      }
    } else if (d.type == "ByteLevel") {
      // Each token maps char by char back to bytes; a token with a char outside the map keeps
      // its own UTF-8 bytes (tokenizers' ByteLevel::decode_chain).
      std::string bytes;
      for (auto& t : tokens) {
        std::string tb;
        bool mapped = true;
        for (auto [cp, off] : code_points(t)) {
          auto it = byte_map().rev.find(cp);
          if (it == byte_map().rev.end()) {
            mapped = false;
            break;
          }
          tb.push_back(static_cast<char>(it->second));
        }
        bytes += mapped ? tb : t;
      }
      tokens = {lossy_utf8(bytes)};
    }
  }
  std::string out;
  for (auto& t : tokens) out += t;
  return out;
}

HfTokenizer::HfTokenizer(const json& j, const std::string& src) : impl_(std::make_unique<Impl>()) {
  impl_->source = src;
  std::fill(std::begin(byte_ids_), std::end(byte_ids_), -1);
  if (!j.is_object() || !j.contains("model") || !j["model"].is_object()) fail("{}: missing 'model' object", src);
  const json& m = j["model"];
  const std::string type = m.value("type", "BPE");
  if (type != "BPE") fail("{}: tokenizer model '{}' is not supported (only BPE)", src, type);
  for (const char* k : {"continuing_subword_prefix", "end_of_word_suffix"})
    if (m.contains(k) && !m[k].is_null() && m[k] != "") fail("{}: BPE option '{}' is not supported", src, k);
  if (m.contains("dropout") && m["dropout"].is_number() && m["dropout"].get<double>() > 0)
    fail("{}: BPE dropout is not supported for inference", src);
  if (!m.contains("vocab") || !m["vocab"].is_object()) fail("{}: model.vocab must be an object", src);
  int64_t max_id = -1;
  for (auto it = m["vocab"].begin(); it != m["vocab"].end(); ++it) {
    if (!it.value().is_number_integer() || it.value().get<int64_t>() < 0 || it.value().get<int64_t>() >= (1 << 24))
      fail("{}: vocab entry {} has an invalid id {}", src, json(it.key()).dump(), it.value().dump());
    max_id = std::max<int64_t>(max_id, it.value().get<int64_t>());
  }
  if (j.contains("added_tokens") && !j["added_tokens"].is_array()) fail("{}: added_tokens must be an array", src);
  const json& added_json = j.contains("added_tokens") ? j["added_tokens"] : json::array();
  for (const auto& a : added_json)
    if (a.is_object() && a.contains("id") && a["id"].is_number_integer())
      max_id = std::max<int64_t>(max_id, a["id"].get<int64_t>());
  if (max_id >= (1 << 24)) fail("{}: token ids up to {} are too large", src, max_id);
  id_to_token_.resize(max_id + 1);
  std::vector<uint8_t> filled(max_id + 1, 0);
  for (auto it = m["vocab"].begin(); it != m["vocab"].end(); ++it) {
    const int32_t id = it.value().get<int32_t>();
    if (filled[id]) fail("{}: id {} is used by both {} and {}", src, id, json(id_to_token_[id]).dump(), json(it.key()).dump());
    filled[id] = 1;
    id_to_token_[id] = it.key();
    vocab_[it.key()] = id;
  }
  ignore_merges_ = m.value("ignore_merges", false);
  byte_fallback_ = m.value("byte_fallback", false);
  fuse_unk_ = m.value("fuse_unk", false);
  if (m.contains("unk_token") && m["unk_token"].is_string()) {
    auto it = vocab_.find(m["unk_token"].get<std::string>());
    if (it == vocab_.end()) fail("{}: unk_token {} is not in the vocabulary", src, m["unk_token"].dump());
    unk_id_ = it->second;
  }
  if (byte_fallback_)
    for (int b = 0; b < 256; ++b) {
      auto it = vocab_.find(fmt::format("<0x{:02X}>", b));
      if (it != vocab_.end()) byte_ids_[b] = it->second;
    }
  if (m.contains("merges") && !m["merges"].is_array()) fail("{}: model.merges must be an array", src);
  const json& merges = m.contains("merges") ? m["merges"] : json::array();
  for (size_t r = 0; r < merges.size(); ++r) {
    std::string a, b;
    const json& e = merges[r];
    if (e.is_string()) {  // older format: "a b"
      const std::string s = e.get<std::string>();
      const size_t sp = s.find(' ', 1);
      if (sp == std::string::npos) fail("{}: merge {} {} is not two tokens", src, r, e.dump());
      a = s.substr(0, sp), b = s.substr(sp + 1);
    } else if (e.is_array() && e.size() == 2 && e[0].is_string() && e[1].is_string()) {
      a = e[0].get<std::string>(), b = e[1].get<std::string>();
    } else {
      fail("{}: merge {} {} is not a pair of tokens", src, r, e.dump());
    }
    auto ia = vocab_.find(a), ib = vocab_.find(b), iab = vocab_.find(a + b);
    if (ia == vocab_.end() || ib == vocab_.end() || iab == vocab_.end())
      fail("{}: merge {} ({} + {}) refers to a token that is not in the vocabulary", src, r, json(a).dump(), json(b).dump());
    const uint64_t key = (static_cast<uint64_t>(ia->second) << 32) | static_cast<uint32_t>(ib->second);
    merges_.emplace(key, std::make_pair(static_cast<int32_t>(r), iab->second));
  }
  impl_->is_added.assign(id_to_token_.size(), 0);
  for (const auto& a : added_json) {
    if (!a.is_object() || !a.contains("id") || !a["id"].is_number_integer() || !a.contains("content") || !a["content"].is_string())
      fail("{}: added_tokens entries need an integer 'id' and a string 'content'", src);
    AddedToken t{a["content"].get<std::string>(), a["id"].get<int32_t>(), a.value("special", false),
                 a.value("lstrip", false), a.value("rstrip", false)};
    if (t.id < 0) fail("{}: added token {} has negative id {}", src, json(t.content).dump(), t.id);
    if (t.content.empty()) fail("{}: added token {} has empty content", src, t.id);
    if (a.value("single_word", false)) fail("{}: added token {} uses single_word, which is not supported", src, json(t.content).dump());
    if (!id_to_token_[t.id].empty() && id_to_token_[t.id] != t.content)
      fail("{}: added token {} reuses id {} of {}", src, json(t.content).dump(), t.id, json(id_to_token_[t.id]).dump());
    id_to_token_[t.id] = t.content;
    vocab_[t.content] = t.id;
    impl_->is_added[t.id] = 1;
    impl_->added.push_back(t);
  }
  std::stable_sort(impl_->added.begin(), impl_->added.end(),
                   [](const AddedToken& x, const AddedToken& y) { return x.content.size() > y.content.size(); });
  parse_normalizer(j.value("normalizer", json()), impl_->norm, src);
  parse_pre(j.value("pre_tokenizer", json()), impl_->pre, src);
  parse_decoder(j.value("decoder", json()), impl_->dec, src);
  add_bos = add_eos = false;
  const json pp = j.value("post_processor", json());
  if (!pp.is_null()) {
    const std::string pt = pp.value("type", "");
    const json* tp = nullptr;
    if (pt == "TemplateProcessing") tp = &pp;
    else if (pt == "Sequence")
      for (const auto& x : pp.value("processors", json::array()))
        if (x.value("type", "") == "TemplateProcessing") tp = &x;
    if (tp) {
      const json single = tp->value("single", json::array());
      auto special_id = [&](const json& item) -> int32_t {
        const std::string name = item["SpecialToken"].value("id", "");
        auto it = vocab_.find(name);
        if (it == vocab_.end()) fail("{}: post_processor names unknown special token {}", src, json(name).dump());
        return it->second;
      };
      if (!single.empty() && single.front().contains("SpecialToken")) add_bos = true, bos_id = special_id(single.front());
      if (single.size() > 1 && single.back().contains("SpecialToken")) add_eos = true, eos_id = special_id(single.back());
    } else if (pt != "ByteLevel") {
      fail("{}: post_processor type '{}' is not supported (TemplateProcessing, ByteLevel, Sequence)", src, pt);
    }
  }
}

HfTokenizer::~HfTokenizer() = default;

std::string HfTokenizer::piece(int32_t id) const {
  if (id < 0 || id >= vocab_size()) fail("token id {} is outside the vocabulary [0, {})", id, vocab_size());
  return id_to_token_[id];
}

int32_t HfTokenizer::token_id(const std::string& s) const {
  auto it = vocab_.find(s);
  return it == vocab_.end() ? -1 : it->second;
}

void HfTokenizer::encode_word(const std::string& word, std::vector<int32_t>& out) const {
  if (ignore_merges_) {
    const int32_t id = token_id(word);
    if (id >= 0) {
      out.push_back(id);
      return;
    }
  }
  struct Sym {
    int32_t id, prev, next;
  };
  std::vector<Sym> syms;
  for (auto [cp, off] : code_points(word)) {
    (void)off;
    utf8proc_uint8_t buf[4];
    const auto n = utf8proc_encode_char(static_cast<utf8proc_int32_t>(cp), buf);
    const std::string ch(reinterpret_cast<char*>(buf), n);
    const int32_t id = token_id(ch);
    auto push = [&](int32_t x) {
      const int32_t i = static_cast<int32_t>(syms.size());
      syms.push_back({x, i - 1, i + 1});
    };
    if (id >= 0) {
      push(id);
    } else if (byte_fallback_ && std::all_of(ch.begin(), ch.end(), [&](char c) { return byte_ids_[static_cast<unsigned char>(c)] >= 0; })) {
      for (unsigned char c : ch) push(byte_ids_[c]);
    } else if (unk_id_ >= 0) {
      if (fuse_unk_ && !syms.empty() && syms.back().id == unk_id_) continue;
      push(unk_id_);
    } else {
      fail("{}: character {} has no token and the tokenizer has no unk_token or byte fallback", impl_->source, json(ch).dump());
    }
  }
  if (syms.empty()) return;
  syms.back().next = -1;
  struct Cand {
    int32_t rank, left, merged, right_id;
  };
  auto worse = [](const Cand& a, const Cand& b) { return a.rank > b.rank || (a.rank == b.rank && a.left > b.left); };
  std::priority_queue<Cand, std::vector<Cand>, decltype(worse)> q(worse);
  auto consider = [&](int32_t l) {
    if (l < 0 || syms[l].next < 0) return;
    const int32_t r = syms[l].next;
    auto it = merges_.find((static_cast<uint64_t>(syms[l].id) << 32) | static_cast<uint32_t>(syms[r].id));
    if (it != merges_.end()) q.push({it->second.first, l, it->second.second, syms[r].id});
  };
  for (int32_t i = 0; i + 1 < static_cast<int32_t>(syms.size()); ++i) consider(i);
  while (!q.empty()) {
    const Cand c = q.top();
    q.pop();
    Sym& l = syms[c.left];
    if (l.id < 0 || l.next < 0 || syms[l.next].id != c.right_id) continue;  // stale
    auto it = merges_.find((static_cast<uint64_t>(l.id) << 32) | static_cast<uint32_t>(c.right_id));
    if (it == merges_.end() || it->second.second != c.merged) continue;
    const int32_t r = l.next;
    l.id = c.merged;
    l.next = syms[r].next;
    if (l.next >= 0) syms[l.next].prev = c.left;
    syms[r].id = -1;
    consider(l.prev);
    consider(c.left);
  }
  for (int32_t i = 0; i >= 0; i = syms[i].next) out.push_back(syms[i].id);
}

std::vector<int32_t> HfTokenizer::encode(std::string_view text) const {
  const int64_t bad = utf8_first_invalid(text);
  if (bad >= 0) fail("input is not valid UTF-8 (byte {} = 0x{:02X})", bad, static_cast<unsigned char>(text[bad]));
  std::vector<int32_t> ids;
  // Added tokens are found first (leftmost, longest), with lstrip/rstrip eating whitespace.
  std::string rest(text);
  bool first = true;
  size_t pos = 0;
  auto encode_segment = [&](const std::string& seg) {
    if (seg.empty()) return;
    const std::string norm = impl_->normalize(seg);
    for (const auto& w : impl_->pre_tokenize(norm, first)) encode_word(w, ids);
    first = false;
  };
  std::string pending;
  while (pos < rest.size()) {
    const AddedToken* hit = nullptr;
    for (const auto& a : impl_->added)
      if (rest.compare(pos, a.content.size(), a.content) == 0) {
        hit = &a;
        break;
      }
    if (!hit) {
      pending += rest[pos++];
      continue;
    }
    if (hit->lstrip)
      while (!pending.empty() && std::isspace(static_cast<unsigned char>(pending.back()))) pending.pop_back();
    encode_segment(pending);
    pending.clear();
    ids.push_back(hit->id);
    first = false;
    pos += hit->content.size();
    if (hit->rstrip)
      while (pos < rest.size() && std::isspace(static_cast<unsigned char>(rest[pos]))) ++pos;
  }
  encode_segment(pending);
  return ids;
}

std::string HfTokenizer::decode(const std::vector<int32_t>& ids) const {
  std::string out;
  std::vector<std::string> run;
  bool first = true;
  auto flush = [&] {
    if (run.empty()) return;
    out += impl_->decode_run(std::move(run), first);
    run.clear();
    first = false;
  };
  for (int32_t id : ids) {
    if (id < 0 || id >= vocab_size()) fail("token id {} is outside the vocabulary [0, {})", id, vocab_size());
    if (impl_->is_added[id]) {  // added tokens are emitted as written, not through the decoder
      flush();
      out += id_to_token_[id];
      first = false;
      continue;
    }
    run.push_back(id_to_token_[id]);
  }
  flush();
  return out;
}

std::unique_ptr<Tokenizer> load_hf_tokenizer(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("cannot open '{}'", path);
  std::stringstream ss;
  ss << in.rdbuf();
  json j = json::parse(ss.str(), nullptr, false);
  if (j.is_discarded()) fail("{}: not valid JSON", path);
  return std::make_unique<HfTokenizer>(j, path);
}

}  // namespace swift
