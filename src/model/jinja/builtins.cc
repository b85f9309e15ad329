// Python's str and dict methods and int arithmetic for the Jinja interpreter (builtins.h).
#include "model/jinja/builtins.h"

#include <cctype>

namespace swift::jinja::detail {

[[noreturn]] void err(int line, const std::string& what) { throw TemplateError(fmt::format("line {}: {}", line, what)); }

std::string strip_chars(const std::string& s, const std::string& chars, bool left, bool right) {
  size_t a = 0, b = s.size();
  auto in = [&](char c) { return chars.find(c) != std::string::npos; };
  if (left)
    while (a < b && in(s[a])) ++a;
  if (right)
    while (b > a && in(s[b - 1])) --b;
  return s.substr(a, b - a);
}

std::string upper(std::string s) {
  for (char& c : s) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return s;
}
std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}
std::string title(std::string s) {
  bool start = true;
  for (char& c : s) {
    const bool alpha = std::isalpha(static_cast<unsigned char>(c));
    c = static_cast<char>(start ? std::toupper(static_cast<unsigned char>(c)) : std::tolower(static_cast<unsigned char>(c)));
    start = !alpha;
  }
  return s;
}
std::string replace_all(const std::string& s, const std::string& from, const std::string& to, int64_t count) {
  if (from.empty()) return s;
  std::string out;
  size_t pos = 0;
  for (int64_t n = 0; count < 0 || n < count; ++n) {
    const size_t at = s.find(from, pos);
    if (at == std::string::npos) break;
    out.append(s, pos, at - pos);
    out += to;
    pos = at + from.size();
  }
  return out + s.substr(pos);
}

// Integer arithmetic on template values. Python's ints are unbounded; ours are int64, so a result
// that does not fit is an error naming the operation rather than signed-overflow UB (found by the
// chat-template fuzzer: `9223372036854775807 ** 2`).
int64_t int_arith(IntOp op, int64_t a, int64_t b, int line, std::string_view what) {
  int64_t r = 0;
  const bool overflow = op == IntOp::kAdd   ? __builtin_add_overflow(a, b, &r)
                        : op == IntOp::kSub ? __builtin_sub_overflow(a, b, &r)
                                            : __builtin_mul_overflow(a, b, &r);
  if (overflow) throw TemplateError(fmt::format("line {}: integer overflow in {}", line, what));
  return r;
}
int64_t int_pow(int64_t base, int64_t exp, int line) {
  int64_t r = 1;
  while (exp > 0) {
    if (exp & 1) r = int_arith(IntOp::kMul, r, base, line, "**");
    exp >>= 1;
    // Squaring past int64 with bits left means the result would be past it too.
    if (exp > 0) base = int_arith(IntOp::kMul, base, base, line, "**");
  }
  return r;
}
// Next loop index of range() and slices; false once it would leave int64 (the loop is over then).
bool step_index(int64_t& i, int64_t step) { return !__builtin_add_overflow(i, step, &i); }

Value string_method(const std::string& s, const std::string& m, const std::vector<Value>& a, int line) {
  auto str_arg = [&](size_t i) -> std::string {
    if (i >= a.size() || !a[i].is_string()) err(line, fmt::format("str.{}() needs a string argument", m));
    return a[i].str();
  };
  const std::string chars = !a.empty() && a[0].is_string() ? a[0].str() : kSpaces;
  if (m == "strip") return Value(strip_chars(s, chars, true, true));
  if (m == "lstrip") return Value(strip_chars(s, chars, true, false));
  if (m == "rstrip") return Value(strip_chars(s, chars, false, true));
  if (m == "upper") return Value(upper(s));
  if (m == "lower") return Value(lower(s));
  if (m == "title") return Value(title(s));
  if (m == "capitalize") return Value(s.empty() ? s : upper(s.substr(0, 1)) + lower(s.substr(1)));
  if (m == "startswith") return Value(s.rfind(str_arg(0), 0) == 0);
  if (m == "endswith") {
    const std::string x = str_arg(0);
    return Value(s.size() >= x.size() && s.compare(s.size() - x.size(), x.size(), x) == 0);
  }
  if (m == "replace")
    return Value(replace_all(s, str_arg(0), str_arg(1), a.size() > 2 && a[2].kind() == Value::Kind::kInt ? a[2].as_int() : -1));
  if (m == "split") {
    Array out;
    if (a.empty() || a[0].is_none()) {
      size_t i = 0;
      while (i < s.size()) {
        while (i < s.size() && kSpaces.find(s[i]) != std::string::npos) ++i;
        size_t j = i;
        while (j < s.size() && kSpaces.find(s[j]) == std::string::npos) ++j;
        if (j > i) out.emplace_back(s.substr(i, j - i));
        i = j;
      }
    } else {
      const std::string sep = str_arg(0);
      if (sep.empty()) err(line, "str.split(): empty separator");
      size_t pos = 0;
      for (size_t at; (at = s.find(sep, pos)) != std::string::npos; pos = at + sep.size()) out.emplace_back(s.substr(pos, at - pos));
      out.emplace_back(s.substr(pos));
    }
    return Value::array(std::move(out));
  }
  if (m == "join") {
    if (a.empty() || !a[0].is_array()) err(line, "str.join() needs a list");
    std::string out;
    for (size_t i = 0; i < a[0].arr().size(); ++i) out += (i ? s : "") + a[0].arr()[i].to_string();
    return Value(out);
  }
  if (m == "find") return Value(static_cast<int64_t>(s.find(str_arg(0)) == std::string::npos ? -1 : s.find(str_arg(0))));
  if (m == "count") {
    const std::string x = str_arg(0);
    int64_t n = 0;
    if (!x.empty())
      for (size_t p = s.find(x); p != std::string::npos; p = s.find(x, p + x.size())) ++n;
    return Value(n);
  }
  err(line, fmt::format("unsupported string method '{}'", m));
}

Value dict_method(const Value& d, const std::string& m, const std::vector<Value>& a, int line) {
  if (m == "items" || m == "keys" || m == "values") {
    Array out;
    for (const auto& [k, v] : d.obj()) {
      if (m == "items") out.push_back(Value::array({Value(k), v}));
      else out.push_back(m == "keys" ? Value(k) : v);
    }
    return Value::array(std::move(out));
  }
  if (m == "get") {
    if (a.empty() || !a[0].is_string()) err(line, "dict.get() needs a string key");
    const Value v = d.get(a[0].str());
    if (v.is_undefined()) return a.size() > 1 ? a[1] : Value::none();
    return v;
  }
  err(line, fmt::format("unsupported dict method '{}'", m));
}

}  // namespace swift::jinja::detail
