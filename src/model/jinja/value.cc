#include "model/jinja/value.h"

#include <cmath>
#include <fmt/format.h>

namespace swift::jinja {

Value Value::array(Array a) {
  Value v(Kind::kArray);
  v.a_ = std::make_shared<Array>(std::move(a));
  return v;
}

Value Value::object(Object o) {
  Value v(Kind::kObject);
  v.o_ = std::make_shared<Object>(std::move(o));
  return v;
}

Value Value::function(Function f) {
  Value v(Kind::kFunction);
  v.fn_ = std::make_shared<Function>(std::move(f));
  return v;
}

Value Value::from_json(const nlohmann::json& j) {
  switch (j.type()) {
    case nlohmann::json::value_t::null: return none();
    case nlohmann::json::value_t::boolean: return Value(j.get<bool>());
    case nlohmann::json::value_t::number_integer: return Value(j.get<int64_t>());
    case nlohmann::json::value_t::number_unsigned: {
      const uint64_t u = j.get<uint64_t>();
      if (u > static_cast<uint64_t>(INT64_MAX)) return Value(static_cast<double>(u));
      return Value(static_cast<int64_t>(u));
    }
    case nlohmann::json::value_t::number_float: return Value(j.get<double>());
    case nlohmann::json::value_t::string: return Value(j.get<std::string>());
    case nlohmann::json::value_t::array: {
      Array a;
      a.reserve(j.size());
      for (const auto& e : j) a.push_back(from_json(e));
      return array(std::move(a));
    }
    case nlohmann::json::value_t::object: {
      Object o;
      for (auto it = j.begin(); it != j.end(); ++it) o.emplace_back(it.key(), from_json(it.value()));
      return object(std::move(o));
    }
    default: return Value();
  }
}

bool Value::truthy() const {
  switch (kind_) {
    case Kind::kUndefined:
    case Kind::kNone: return false;
    case Kind::kBool: return b_;
    case Kind::kInt: return i_ != 0;
    case Kind::kFloat: return f_ != 0.0;
    case Kind::kString: return !s_->empty();
    case Kind::kArray: return !a_->empty();
    case Kind::kObject: return !o_->empty();
    case Kind::kFunction: return true;
  }
  return false;
}

Value Value::get(const std::string& key) const {
  if (kind_ != Kind::kObject) return Value();
  for (const auto& [k, v] : *o_)
    if (k == key) return v;
  return Value();
}

namespace {
// Whether v is, or holds within `depth` levels, the object `target` (shared_ptr cycles would
// never be freed, and printing them would never end).
bool holds(const Value& v, const void* target, int depth) {
  if (v.kind() == Value::Kind::kObject) {
    if (&v.obj() == target) return true;
    if (depth <= 0) return true;  // too deep to tell: treat as a cycle
    for (const auto& kv : v.obj())
      if (holds(kv.second, target, depth - 1)) return true;
  } else if (v.kind() == Value::Kind::kArray) {
    if (depth <= 0) return true;
    for (const Value& e : v.arr())
      if (holds(e, target, depth - 1)) return true;
  }
  return false;
}
}  // namespace

void Value::set(const std::string& key, Value v) const {
  SWIFT_CHECK(kind_ == Kind::kObject, "set on a {}", type_name());
  if (holds(v, o_.get(), kMaxPrintDepth))
    throw TemplateError(fmt::format("cannot set '{}' to a value that contains the object itself", key));
  for (auto& [k, old] : *o_)
    if (k == key) {
      old = std::move(v);
      return;
    }
  o_->emplace_back(key, std::move(v));
}

namespace {

// Python's repr of a float: shortest round-trip digits, always with a '.' or exponent.
std::string float_repr(double f) {
  if (std::isnan(f)) return "nan";
  if (std::isinf(f)) return f > 0 ? "inf" : "-inf";
  std::string s = fmt::format("{}", f);
  if (s.find_first_of(".eEn") == std::string::npos) s += ".0";
  return s;
}

std::string quote_py(const std::string& s) {
  const bool use_double = s.find('\'') != std::string::npos && s.find('"') == std::string::npos;
  const char q = use_double ? '"' : '\'';
  std::string out(1, q);
  for (char c : s) {
    if (c == '\\') out += "\\\\";
    else if (c == q) out += std::string("\\") + q;
    else if (c == '\n') out += "\\n";
    else if (c == '\t') out += "\\t";
    else if (c == '\r') out += "\\r";
    else out += c;
  }
  return out + q;
}

void json_string(std::string& out, const std::string& s) {
  out += '"';
  for (unsigned char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      default:
        if (c < 0x20) out += fmt::format("\\u{:04x}", c);
        else out += static_cast<char>(c);
    }
  }
  out += '"';
}

}  // namespace

std::string Value::to_string() const {
  switch (kind_) {
    case Kind::kUndefined: return "";
    case Kind::kNone: return "None";
    case Kind::kBool: return b_ ? "True" : "False";
    case Kind::kInt: return std::to_string(i_);
    case Kind::kFloat: return float_repr(f_);
    case Kind::kString: return *s_;
    default: return repr();
  }
}

std::string Value::repr() const { return repr_at(0); }

namespace {
void check_print_depth(int depth, int limit) {
  if (depth > limit)
    throw TemplateError(fmt::format("cannot print a value nested more than {} levels deep (a namespace or dict that "
                                    "contains itself?)",
                                    limit));
}
}  // namespace

std::string Value::repr_at(int depth) const {
  switch (kind_) {
    case Kind::kString: return quote_py(*s_);
    case Kind::kArray: {
      check_print_depth(depth, kMaxPrintDepth);
      std::string out = "[";
      for (size_t i = 0; i < a_->size(); ++i) out += (i ? ", " : "") + (*a_)[i].repr_at(depth + 1);
      return out + "]";
    }
    case Kind::kObject: {
      check_print_depth(depth, kMaxPrintDepth);
      std::string out = "{";
      for (size_t i = 0; i < o_->size(); ++i)
        out += (i ? ", " : "") + quote_py((*o_)[i].first) + ": " + (*o_)[i].second.repr_at(depth + 1);
      return out + "}";
    }
    case Kind::kFunction: return "<function>";
    default: return to_string();
  }
}

void Value::dump_json(std::string& out, int indent, int depth) const {
  auto newline = [&](int d) {
    if (indent < 0) return;
    out += '\n';
    out.append(static_cast<size_t>(indent) * d, ' ');
  };
  switch (kind_) {
    case Kind::kUndefined:
    case Kind::kNone: out += "null"; return;
    case Kind::kBool: out += b_ ? "true" : "false"; return;
    case Kind::kInt: out += std::to_string(i_); return;
    case Kind::kFloat: out += float_repr(f_); return;
    case Kind::kString: json_string(out, *s_); return;
    case Kind::kFunction: throw TemplateError("tojson: a function cannot be serialised");
    case Kind::kArray:
      check_print_depth(depth, kMaxPrintDepth);
      out += '[';
      for (size_t i = 0; i < a_->size(); ++i) {
        if (i) out += indent < 0 ? ", " : ",";
        newline(depth + 1);
        (*a_)[i].dump_json(out, indent, depth + 1);
      }
      if (!a_->empty()) newline(depth);
      out += ']';
      return;
    case Kind::kObject:
      check_print_depth(depth, kMaxPrintDepth);
      out += '{';
      for (size_t i = 0; i < o_->size(); ++i) {
        if (i) out += indent < 0 ? ", " : ",";
        newline(depth + 1);
        json_string(out, (*o_)[i].first);
        out += ": ";
        (*o_)[i].second.dump_json(out, indent, depth + 1);
      }
      if (!o_->empty()) newline(depth);
      out += '}';
      return;
  }
}

std::string Value::to_json(int indent) const {
  std::string out;
  dump_json(out, indent, 0);
  return out;
}

const char* Value::type_name() const {
  switch (kind_) {
    case Kind::kUndefined: return "undefined";
    case Kind::kNone: return "none";
    case Kind::kBool: return "bool";
    case Kind::kInt: return "int";
    case Kind::kFloat: return "float";
    case Kind::kString: return "string";
    case Kind::kArray: return "list";
    case Kind::kObject: return "dict";
    case Kind::kFunction: return "function";
  }
  return "?";
}

bool Value::operator==(const Value& o) const {
  if (is_number() && o.is_number()) {
    if (kind_ == Kind::kInt && o.kind_ == Kind::kInt) return i_ == o.i_;
    return as_number() == o.as_number();
  }
  // Python: True == 1; keep bools apart from numbers except that case.
  if (kind_ == Kind::kBool && o.is_number()) return o == Value(static_cast<int64_t>(b_));
  if (o.kind_ == Kind::kBool && is_number()) return *this == Value(static_cast<int64_t>(o.b_));
  if (kind_ != o.kind_) return false;
  switch (kind_) {
    case Kind::kUndefined:
    case Kind::kNone: return true;
    case Kind::kBool: return b_ == o.b_;
    case Kind::kString: return *s_ == *o.s_;
    case Kind::kArray: return *a_ == *o.a_;
    case Kind::kObject: {
      if (o_->size() != o.o_->size()) return false;
      for (const auto& [k, v] : *o_)
        if (!(o.get(k) == v)) return false;
      return true;
    }
    case Kind::kFunction: return fn_ == o.fn_;
    default: return false;
  }
}

}  // namespace swift::jinja
