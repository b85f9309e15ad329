// Jinja lexer (lexer.h).
#include "model/jinja/lexer.h"

#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <cstring>

namespace swift::jinja::detail {

namespace {

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

int line_at(std::string_view s, size_t pos) {
  int line = 1;
  for (size_t i = 0; i < pos && i < s.size(); ++i) line += s[i] == '\n';
  return line;
}

// Finds the closer of a tag that starts at `from`, skipping string literals.
size_t find_close(std::string_view src, size_t from, std::string_view close) {
  char quote = 0;
  for (size_t i = from; i + close.size() <= src.size(); ++i) {
    const char c = src[i];
    if (quote) {
      if (c == '\\') ++i;
      else if (c == quote) quote = 0;
      continue;
    }
    if (c == '\'' || c == '"') quote = c;
    else if (src.compare(i, close.size(), close) == 0) return i;
  }
  return std::string_view::npos;
}

}  // namespace

std::vector<Segment> split_segments(std::string_view src) {
  std::vector<Segment> out;
  std::string text;
  bool strip_next = false;  // `-%}` / `-}}` / trim_blocks: strip the start of the next text
  bool trim_newline = false;
  size_t pos = 0;
  // strip_right: `{%-` drops all whitespace before the tag; lstrip: how many spaces/tabs before a
  // block tag sit at the start of their source line (lstrip_blocks drops them).
  auto flush_text = [&](bool strip_right, size_t lstrip) {
    if (strip_right) {
      while (!text.empty() && is_space(text.back())) text.pop_back();
    } else {
      while (lstrip > 0 && !text.empty() && (text.back() == ' ' || text.back() == '\t')) {
        text.pop_back();
        --lstrip;
      }
    }
    if (!text.empty()) out.push_back({Segment::kText, text, 0});
    text.clear();
  };
  while (pos < src.size()) {
    const size_t open = src.find('{', pos);
    size_t tag = std::string_view::npos;
    for (size_t at = open; at != std::string_view::npos && at + 1 < src.size(); at = src.find('{', at + 1)) {
      const char c = src[at + 1];
      if (c == '{' || c == '%' || c == '#') {
        tag = at;
        break;
      }
    }
    std::string_view chunk = src.substr(pos, (tag == std::string_view::npos ? src.size() : tag) - pos);
    size_t skip = 0;
    if (strip_next) {
      while (skip < chunk.size() && is_space(chunk[skip])) ++skip;
    } else if (trim_newline) {
      if (chunk.substr(0, 1) == "\n") skip = 1;
      else if (chunk.substr(0, 2) == "\r\n") skip = 2;
    }
    text.append(chunk.substr(skip));
    strip_next = trim_newline = false;
    if (tag == std::string_view::npos) break;
    const char kind = src[tag + 1];
    const bool minus_left = tag + 2 < src.size() && src[tag + 2] == '-';
    const bool plus_left = tag + 2 < src.size() && src[tag + 2] == '+';
    const std::string_view close = kind == '{' ? "}}" : kind == '%' ? "%}" : "#}";
    const size_t body_from = tag + 2 + (minus_left || plus_left);
    const size_t end = kind == '#' ? src.find(close, body_from) : find_close(src, body_from, close);
    if (end == std::string_view::npos)
      throw TemplateError(fmt::format("line {}: unclosed '{{{}' tag", line_at(src, tag), kind));
    const bool minus_right = end > body_from && src[end - 1] == '-';
    size_t lstrip = 0;
    if (kind != '{' && !plus_left) {
      size_t j = tag;
      while (j > 0 && (src[j - 1] == ' ' || src[j - 1] == '\t')) --j;
      if (j == 0 || src[j - 1] == '\n') lstrip = tag - j;
    }
    flush_text(minus_left, lstrip);
    std::string body(src.substr(body_from, end - body_from - (minus_right ? 1 : 0)));
    const int line = line_at(src, tag);
    pos = end + 2;
    if (kind == '#') {
      strip_next = minus_right;
      trim_newline = !minus_right;
      continue;
    }
    // {% raw %} ... {% endraw %}: copy verbatim.
    size_t b = 0;
    while (b < body.size() && is_space(body[b])) ++b;
    if (kind == '%' && body.compare(b, 3, "raw") == 0 && body.find_first_not_of(" \t\r\n", b + 3) == std::string::npos) {
      const size_t endraw = src.find("endraw", pos);
      const size_t raw_end = endraw == std::string_view::npos ? endraw : src.rfind("{%", endraw);
      if (raw_end == std::string_view::npos || raw_end < pos)
        throw TemplateError(fmt::format("line {}: {{% raw %}} without {{% endraw %}}", line));
      std::string_view raw = src.substr(pos, raw_end - pos);
      if (!minus_right && raw.substr(0, 1) == "\n") raw.remove_prefix(1);
      text.append(raw);
      const size_t close_raw = src.find("%}", endraw);
      if (close_raw == std::string_view::npos) throw TemplateError(fmt::format("line {}: unclosed endraw", line));
      if (src[raw_end + 2] == '-') {
        while (!text.empty() && is_space(text.back())) text.pop_back();
      }
      const bool endraw_minus = src[close_raw - 1] == '-';
      pos = close_raw + 2;
      strip_next = endraw_minus;
      trim_newline = !endraw_minus;
      continue;
    }
    out.push_back({kind == '{' ? Segment::kOutput : Segment::kStatement, std::move(body), line});
    strip_next = minus_right;
    trim_newline = kind == '%' && !minus_right;
  }
  flush_text(false, 0);
  return out;
}

// ---------------------------------------------------------------- expression tokens


std::vector<Token> tokenize(const std::string& s, int line) {
  std::vector<Token> out;
  size_t i = 0;
  static const char* kOps[] = {"//", "**", "==", "!=", "<=", ">=", "(", ")", "[", "]", "{", "}", ".", ",", ":",
                               "|", "~", "+", "-", "*", "/", "%", "<", ">", "="};
  while (i < s.size()) {
    const char c = s[i];
    if (is_space(c)) {
      ++i;
      continue;
    }
    if (std::isalpha(static_cast<unsigned char>(c)) || c == '_') {
      size_t j = i;
      while (j < s.size() && (std::isalnum(static_cast<unsigned char>(s[j])) || s[j] == '_')) ++j;
      out.push_back({Token::kName, s.substr(i, j - i), {}});
      i = j;
      continue;
    }
    if (std::isdigit(static_cast<unsigned char>(c))) {
      size_t j = i;
      while (j < s.size() && (std::isdigit(static_cast<unsigned char>(s[j])) || s[j] == '_')) ++j;
      bool is_float = false;
      if (j + 1 < s.size() && s[j] == '.' && std::isdigit(static_cast<unsigned char>(s[j + 1]))) {
        is_float = true;
        ++j;
        while (j < s.size() && std::isdigit(static_cast<unsigned char>(s[j]))) ++j;
      }
      std::string num;
      for (size_t k = i; k < j; ++k)
        if (s[k] != '_') num += s[k];
      if (is_float) {
        out.push_back({Token::kFloat, num, Value(std::stod(num))});
      } else {
        errno = 0;
        const long long v = std::strtoll(num.c_str(), nullptr, 10);
        if (errno == ERANGE) throw TemplateError(fmt::format("line {}: integer literal {} is too large", line, num));
        out.push_back({Token::kInt, num, Value(static_cast<int64_t>(v))});
      }
      i = j;
      continue;
    }
    if (c == '\'' || c == '"') {
      std::string v;
      size_t j = i + 1;
      for (; j < s.size() && s[j] != c; ++j) {
        if (s[j] == '\\' && j + 1 < s.size()) {
          const char e = s[++j];
          switch (e) {
            case 'n': v += '\n'; break;
            case 't': v += '\t'; break;
            case 'r': v += '\r'; break;
            case '\\': v += '\\'; break;
            case '\'': v += '\''; break;
            case '"': v += '"'; break;
            default: v += '\\'; v += e;
          }
        } else {
          v += s[j];
        }
      }
      if (j >= s.size()) throw TemplateError(fmt::format("line {}: unterminated string literal", line));
      out.push_back({Token::kString, v, Value(v)});
      i = j + 1;
      continue;
    }
    bool found = false;
    for (const char* op : kOps) {
      const size_t n = std::strlen(op);
      if (s.compare(i, n, op) == 0) {
        out.push_back({Token::kOp, op, {}});
        i += n;
        found = true;
        break;
      }
    }
    if (!found) throw TemplateError(fmt::format("line {}: unexpected character '{}'", line, c));
  }
  out.push_back({Token::kEnd, "", {}});
  return out;
}

}  // namespace swift::jinja::detail
