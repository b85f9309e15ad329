// Values of the Jinja subset that renders chat templates (jinja.h).
//
// Python semantics where templates can see them: `and`/`or` return an operand, truthiness of
// empty strings/lists/dicts is false, lists and dicts are shared by reference (a `namespace()`
// set inside a loop is visible after it), dicts keep insertion order (tojson prints keys in the
// order the request gave them, as Python's json.dumps does).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "util/check.h"

namespace swift::jinja {

// A template that cannot be parsed or rendered: the message names the line and the construct.
class TemplateError : public Error {
 public:
  explicit TemplateError(const std::string& msg) : Error(msg) {}
};

class Value;
using Array = std::vector<Value>;
using Object = std::vector<std::pair<std::string, Value>>;  // insertion order, unique keys
using Kwargs = std::vector<std::pair<std::string, Value>>;
using Function = std::function<Value(const std::vector<Value>& args, const Kwargs& kwargs)>;

class Value {
 public:
  enum class Kind { kUndefined, kNone, kBool, kInt, kFloat, kString, kArray, kObject, kFunction };

  Value() = default;  // undefined
  static Value none() { return Value(Kind::kNone); }
  Value(bool b) : kind_(Kind::kBool), b_(b) {}  // NOLINT(google-explicit-constructor)
  Value(int64_t i) : kind_(Kind::kInt), i_(i) {}  // NOLINT
  Value(int i) : kind_(Kind::kInt), i_(i) {}  // NOLINT
  Value(double f) : kind_(Kind::kFloat), f_(f) {}  // NOLINT
  Value(std::string s) : kind_(Kind::kString), s_(std::make_shared<std::string>(std::move(s))) {}  // NOLINT
  Value(const char* s) : Value(std::string(s)) {}  // NOLINT
  static Value array(Array a = {});
  static Value object(Object o = {});
  static Value function(Function f);
  static Value from_json(const nlohmann::json& j);

  Kind kind() const { return kind_; }
  bool is_undefined() const { return kind_ == Kind::kUndefined; }
  bool is_none() const { return kind_ == Kind::kNone; }
  bool is_string() const { return kind_ == Kind::kString; }
  bool is_number() const { return kind_ == Kind::kInt || kind_ == Kind::kFloat; }
  bool is_array() const { return kind_ == Kind::kArray; }
  bool is_object() const { return kind_ == Kind::kObject; }

  bool truthy() const;
  bool as_bool() const { return b_; }
  int64_t as_int() const { return i_; }
  double as_number() const { return kind_ == Kind::kInt ? static_cast<double>(i_) : f_; }
  const std::string& str() const { return *s_; }
  Array& arr() const { return *a_; }
  Object& obj() const { return *o_; }
  const Function& fn() const { return *fn_; }

  // Object lookup; undefined when absent or not an object.
  Value get(const std::string& key) const;
  void set(const std::string& key, Value v) const;  // objects only

  // Python's str(): what `{{ x }}` prints (undefined prints nothing).
  std::string to_string() const;
  // Python's repr() for lists/dicts inside str(): strings quoted with '.
  std::string repr() const;
  // json.dumps(x, ensure_ascii=False[, indent]) as transformers' tojson filter.
  std::string to_json(int indent = -1) const;
  const char* type_name() const;

  bool operator==(const Value& o) const;

 private:
  explicit Value(Kind k) : kind_(k) {}
  void dump_json(std::string& out, int indent, int depth) const;
  std::string repr_at(int depth) const;
  // Printing deeper than this throws TemplateError: a namespace or dict can be made to contain
  // itself (`{% set ns.x = ns %}`), and printing it would recurse until the stack overflows.
  static constexpr int kMaxPrintDepth = 64;

  Kind kind_ = Kind::kUndefined;
  bool b_ = false;
  int64_t i_ = 0;
  double f_ = 0;
  std::shared_ptr<std::string> s_;
  std::shared_ptr<Array> a_;
  std::shared_ptr<Object> o_;
  std::shared_ptr<Function> fn_;
};

}  // namespace swift::jinja
