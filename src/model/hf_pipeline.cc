// The tokenizer.json pipeline around the BPE model: normalizers, pre-tokenizers, decoders.
#include "model/hf_pipeline.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <utf8proc.h>

#include <algorithm>
#include <cstring>
#include <nlohmann/json.hpp>

#include "model/tokenizer.h"
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
}  // namespace

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

namespace {

using nlohmann::json;

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
    s.replacement = p.value("replacement", std::string(kMetaspaceChar));
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
    s.from = d.value("replacement", std::string(kMetaspaceChar));
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

std::string HfPipeline::normalize(std::string s) const {
  for (const auto& n : norm) {
    if (n.type == "NFC") s = utf8proc_map_str(s, UTF8PROC_COMPOSE);
    else if (n.type == "NFKC") s = utf8proc_map_str(s, static_cast<utf8proc_option_t>(UTF8PROC_COMPOSE | UTF8PROC_COMPAT));
    else if (n.type == "Lowercase") s = utf8proc_map_str(s, UTF8PROC_CASEFOLD);
    else if (n.type == "Prepend") s = s.empty() ? s : n.text + s;
    else if (n.type == "Replace") s = regex_replace(*n.re, s, n.text);
  }
  return s;
}

std::vector<std::string> HfPipeline::pre_tokenize(const std::string& s, bool first_segment) const {
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

std::string HfPipeline::decode_run(std::vector<std::string> tokens, bool first) const {
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

HfPipeline::HfPipeline() = default;
HfPipeline::~HfPipeline() = default;

void HfPipeline::parse(const nlohmann::json& j, const std::string& src) {
  parse_normalizer(j.value("normalizer", json()), norm, src);
  parse_pre(j.value("pre_tokenizer", json()), pre, src);
  parse_decoder(j.value("decoder", json()), dec, src);
}

}  // namespace swift
