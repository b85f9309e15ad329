// Jinja interpreter: walks the syntax tree of parser.cc with Python semantics (value.h).
//
// Scopes: the template's globals, then one scope per for-loop body (so a `set` inside a loop
// does not leak out, as in Jinja2 — which is why templates use namespace()).
#include <algorithm>
#include <cmath>
#include <limits>
#include <optional>
#include <unordered_map>

#include "model/jinja/builtins.h"
#include "model/jinja/jinja.h"
#include "model/jinja/parser.h"

namespace swift::jinja {

namespace {

using namespace detail;  // builtins.h

int64_t py_index(int64_t i, int64_t n) { return i < 0 ? i + n : i; }

class Interp {
 public:
  Interp(const Object& globals, const RenderLimits& lim) : lim_(lim) {
    scopes_.emplace_back();
    auto& g = scopes_.back();
    g["raise_exception"] = Value::function([](const std::vector<Value>& a, const Kwargs&) -> Value {
      throw TemplateError("the chat template refused the messages: " + (a.empty() ? std::string() : a[0].to_string()));
    });
    g["range"] = Value::function([this](const std::vector<Value>& a, const Kwargs&) {
      int64_t lo = 0, hi = 0, step = 1;
      for (const auto& v : a)
        if (v.kind() != Value::Kind::kInt) throw TemplateError("range() takes integers");
      if (a.size() == 1) hi = a[0].as_int();
      else if (a.size() >= 2) lo = a[0].as_int(), hi = a[1].as_int();
      if (a.size() == 3) step = a[2].as_int();
      if (a.empty() || a.size() > 3 || step == 0) throw TemplateError("range() takes 1-3 integers, step != 0");
      Array out;
      for (int64_t i = lo; step > 0 ? i < hi : i > hi;) {
        tick(0);
        out.emplace_back(i);
        if (!step_index(i, step)) break;
      }
      return Value::array(std::move(out));
    });
    auto make_ns = [](const std::vector<Value>& a, const Kwargs& kw) {
      if (!a.empty()) throw TemplateError("namespace() takes keyword arguments only");
      return Value::object(Object(kw.begin(), kw.end()));
    };
    g["namespace"] = Value::function(make_ns);
    g["dict"] = Value::function(make_ns);
    for (const auto& [k, v] : globals) g[k] = v;
  }

  void run(const Body& body) {
    if (exec(body) != Flow::kNormal) err(0, "break/continue outside a loop");
  }
  std::string& out() { return out_; }

 private:
  enum class Flow { kNormal, kBreak, kContinue };

  void tick(int line) {
    if (++iterations_ > lim_.max_iterations)
      err(line, fmt::format("the template ran more than {} loop iterations", lim_.max_iterations));
  }
  void emit(const std::string& s, int line) {
    if (out_.size() + s.size() > lim_.max_output)
      err(line, fmt::format("the rendered text exceeds {} bytes", lim_.max_output));
    out_ += s;
  }

  Value lookup(const std::string& name) const {
    for (auto it = scopes_.rbegin(); it != scopes_.rend(); ++it) {
      auto f = it->find(name);
      if (f != it->end()) return f->second;
    }
    return Value();
  }

  Flow exec(const Body& body) {
    for (const auto& n : body) {
      const Flow f = exec(*n);
      if (f != Flow::kNormal) return f;
    }
    return Flow::kNormal;
  }

  Flow exec(const Node& n) {
    switch (n.kind) {
      case Node::Kind::kText: emit(n.text, n.line); return Flow::kNormal;
      case Node::Kind::kOutput: emit(eval(*n.expr).to_string(), n.line); return Flow::kNormal;
      case Node::Kind::kIf:
        for (const auto& [cond, body] : n.branches)
          if (!cond || eval(*cond).truthy()) return exec(body);
        return Flow::kNormal;
      case Node::Kind::kSet:
      case Node::Kind::kSetBlock: {
        Value v;
        if (n.kind == Node::Kind::kSet) {
          v = eval(*n.expr);
        } else {
          std::string saved;
          saved.swap(out_);
          exec(n.body);
          v = Value(out_);
          out_ = std::move(saved);
        }
        if (!n.set_attr.empty()) {
          const Value ns = lookup(n.set_name);
          if (!ns.is_object()) err(n.line, fmt::format("'{}' is not a namespace", n.set_name));
          ns.set(n.set_attr, v);
        } else {
          scopes_.back()[n.set_name] = v;
        }
        return Flow::kNormal;
      }
      case Node::Kind::kBreak: return Flow::kBreak;
      case Node::Kind::kContinue: return Flow::kContinue;
      case Node::Kind::kFor: return exec_for(n);
    }
    return Flow::kNormal;
  }

  Flow exec_for(const Node& n) {
    const Value seq = eval(*n.expr);
    std::vector<Value> items;
    if (seq.is_array()) {
      items = seq.arr();
    } else if (seq.is_object()) {
      for (const auto& [k, v] : seq.obj()) items.emplace_back(k);
    } else if (seq.is_string()) {
      for (char c : seq.str()) items.emplace_back(std::string(1, c));
    } else if (!seq.is_undefined() && !seq.is_none()) {
      err(n.line, fmt::format("cannot loop over a {}", seq.type_name()));
    } else if (seq.is_none()) {
      err(n.line, "cannot loop over none");
    }
    auto bind = [&](const Value& item) {
      auto& scope = scopes_.back();
      if (n.targets.size() == 1) {
        scope[n.targets[0]] = item;
        return;
      }
      if (!item.is_array() || item.arr().size() != n.targets.size())
        err(n.line, fmt::format("cannot unpack a {} into {} loop variables", item.type_name(), n.targets.size()));
      for (size_t i = 0; i < n.targets.size(); ++i) scope[n.targets[i]] = item.arr()[i];
    };
    if (n.filter) {  // `for x in xs if cond`: the filter sees the item, and loop.* counts survivors
      std::vector<Value> kept;
      for (const auto& it : items) {
        tick(n.line);
        scopes_.emplace_back();
        bind(it);
        const bool keep = eval(*n.filter).truthy();
        scopes_.pop_back();
        if (keep) kept.push_back(it);
      }
      items.swap(kept);
    }
    if (items.empty()) {
      scopes_.emplace_back();
      exec(n.else_body);
      scopes_.pop_back();
      return Flow::kNormal;
    }
    const int64_t len = static_cast<int64_t>(items.size());
    for (int64_t i = 0; i < len; ++i) {
      tick(n.line);
      scopes_.emplace_back();
      bind(items[i]);
      Object loop = {{"index", Value(i + 1)},      {"index0", Value(i)},
                     {"first", Value(i == 0)},     {"last", Value(i == len - 1)},
                     {"length", Value(len)},       {"revindex", Value(len - i)},
                     {"revindex0", Value(len - i - 1)},
                     {"previtem", i > 0 ? items[i - 1] : Value()},
                     {"nextitem", i + 1 < len ? items[i + 1] : Value()}};
      scopes_.back()["loop"] = Value::object(std::move(loop));
      const Flow f = exec(n.body);
      scopes_.pop_back();
      if (f == Flow::kBreak) break;
    }
    return Flow::kNormal;
  }

  Value eval(const Expr& e) {
    switch (e.kind) {
      case Expr::Kind::kLiteral: return e.value;
      case Expr::Kind::kName: return lookup(e.name);
      case Expr::Kind::kAttr: {
        const Value obj = eval(*e.args[0]);
        return attr(obj, e.name);
      }
      case Expr::Kind::kIndex: {
        const Value obj = eval(*e.args[0]);
        const Value key = eval(*e.args[1]);
        return index(obj, key, e.line);
      }
      case Expr::Kind::kSlice: return slice(e);
      case Expr::Kind::kCall: return call(e);
      case Expr::Kind::kFilter: return filter(e);
      case Expr::Kind::kTest: return Value(test(e) != e.negate);
      case Expr::Kind::kUnary: {
        const Value v = eval(*e.args[0]);
        if (e.name == "not") return Value(!v.truthy());
        if (!v.is_number()) err(e.line, fmt::format("unary {} on a {}", e.name, v.type_name()));
        if (e.name == "+") return v;
        if (v.kind() != Value::Kind::kInt) return Value(-v.as_number());
        return Value(int_arith(IntOp::kSub, 0, v.as_int(), e.line, "unary -"));
      }
      case Expr::Kind::kBinary: return binary(e);
      case Expr::Kind::kCond:
        if (eval(*e.args[0]).truthy()) return eval(*e.args[1]);
        return e.args[2] ? eval(*e.args[2]) : Value();
      case Expr::Kind::kList: {
        Array a;
        for (const auto& x : e.args) a.push_back(eval(*x));
        return Value::array(std::move(a));
      }
      case Expr::Kind::kDict: {
        Value d = Value::object();
        for (size_t i = 0; i + 1 < e.args.size(); i += 2) {
          const Value k = eval(*e.args[i]);
          if (!k.is_string()) err(e.line, "dict keys must be strings");
          d.set(k.str(), eval(*e.args[i + 1]));
        }
        return d;
      }
    }
    return Value();
  }

  Value attr(const Value& obj, const std::string& name) {
    if (obj.is_object()) return obj.get(name);
    if (obj.is_array() && !name.empty() && std::isdigit(static_cast<unsigned char>(name[0])))
      return index(obj, Value(static_cast<int64_t>(std::stoll(name))), 0);
    return Value();  // methods are resolved in call(); other attributes are undefined
  }

  Value index(const Value& obj, const Value& key, int line) {
    if (obj.is_object()) {
      if (!key.is_string()) return Value();
      return obj.get(key.str());
    }
    if (obj.is_array() || obj.is_string()) {
      if (key.kind() != Value::Kind::kInt) err(line, fmt::format("index of a {} must be an integer", obj.type_name()));
      const int64_t n = obj.is_array() ? static_cast<int64_t>(obj.arr().size()) : static_cast<int64_t>(obj.str().size());
      const int64_t i = py_index(key.as_int(), n);
      if (i < 0 || i >= n) return Value();
      return obj.is_array() ? obj.arr()[i] : Value(std::string(1, obj.str()[i]));
    }
    if (obj.is_undefined()) return Value();
    err(line, fmt::format("cannot index a {}", obj.type_name()));
  }

  Value slice(const Expr& e) {
    const Value obj = eval(*e.args[0]);
    auto bound = [&](const ExprPtr& x) -> std::optional<int64_t> {
      if (!x) return std::nullopt;
      const Value v = eval(*x);
      if (v.is_none()) return std::nullopt;
      if (v.kind() != Value::Kind::kInt) err(e.line, "slice bounds must be integers");
      return v.as_int();
    };
    const auto lo = bound(e.args[1]), hi = bound(e.args[2]), st = bound(e.args[3]);
    const int64_t step = st.value_or(1);
    if (step == 0) err(e.line, "slice step cannot be zero");
    if (!obj.is_array() && !obj.is_string()) err(e.line, fmt::format("cannot slice a {}", obj.type_name()));
    const int64_t n = obj.is_array() ? static_cast<int64_t>(obj.arr().size()) : static_cast<int64_t>(obj.str().size());
    auto clamp = [&](std::optional<int64_t> v, int64_t dflt) {
      if (!v) return dflt;
      int64_t i = py_index(*v, n);
      if (step > 0) return std::clamp<int64_t>(i, 0, n);
      return std::clamp<int64_t>(i, -1, n - 1);
    };
    const int64_t a = clamp(lo, step > 0 ? 0 : n - 1), b = clamp(hi, step > 0 ? n : -1);
    Array out;
    std::string s;
    for (int64_t i = a; step > 0 ? i < b : i > b;) {
      if (obj.is_array()) out.push_back(obj.arr()[i]);
      else s += obj.str()[i];
      if (!step_index(i, step)) break;
    }
    return obj.is_array() ? Value::array(std::move(out)) : Value(s);
  }

  std::vector<Value> eval_args(const Expr& e, size_t from) {
    std::vector<Value> a;
    for (size_t i = from; i < e.args.size(); ++i) a.push_back(eval(*e.args[i]));
    return a;
  }
  Kwargs eval_kwargs(const Expr& e) {
    Kwargs k;
    for (const auto& [name, x] : e.kwargs) k.emplace_back(name, eval(*x));
    return k;
  }

  Value call(const Expr& e) {
    const Expr& callee = *e.args[0];
    std::vector<Value> args = eval_args(e, 1);
    Kwargs kw = eval_kwargs(e);
    if (callee.kind == Expr::Kind::kAttr) {
      const Value obj = eval(*callee.args[0]);
      if (obj.is_string()) return string_method(obj.str(), callee.name, args, e.line);
      if (obj.is_object()) {
        const Value member = obj.get(callee.name);
        if (member.kind() == Value::Kind::kFunction) return member.fn()(args, kw);
        return dict_method(obj, callee.name, args, e.line);
      }
      err(e.line, fmt::format("{} has no method '{}'", obj.type_name(), callee.name));
    }
    const Value f = eval(callee);
    if (f.kind() != Value::Kind::kFunction)
      err(e.line, fmt::format("'{}' is not a function (it is {})", callee.name, f.type_name()));
    return f.fn()(args, kw);
  }

  static int64_t length(const Value& v, int line) {
    if (v.is_string()) return static_cast<int64_t>(v.str().size());
    if (v.is_array()) return static_cast<int64_t>(v.arr().size());
    if (v.is_object()) return static_cast<int64_t>(v.obj().size());
    err(line, fmt::format("a {} has no length", v.type_name()));
  }

  Value filter(const Expr& e) {
    const Value x = eval(*e.args[0]);
    const std::vector<Value> a = eval_args(e, 1);
    const Kwargs kw = eval_kwargs(e);
    const std::string& f = e.name;
    auto kwarg = [&](const char* name, size_t pos) -> Value {
      for (const auto& [k, v] : kw)
        if (k == name) return v;
      return pos < a.size() ? a[pos] : Value();
    };
    auto need_string = [&]() -> const std::string& {
      if (!x.is_string()) err(e.line, fmt::format("filter '{}' needs a string, got {}", f, x.type_name()));
      return x.str();
    };
    if (f == "trim") {
      const Value c = kwarg("chars", 0);
      return Value(strip_chars(need_string(), c.is_string() ? c.str() : kSpaces, true, true));
    }
    if (f == "length" || f == "count") return Value(length(x, e.line));
    if (f == "upper") return Value(upper(need_string()));
    if (f == "lower") return Value(lower(need_string()));
    if (f == "title") return Value(title(need_string()));
    if (f == "capitalize") return string_method(need_string(), "capitalize", {}, e.line);
    if (f == "string") return Value(x.to_string());
    if (f == "safe" || f == "e" || f == "escape") {
      if (f == "safe") return x;
      err(e.line, "the 'escape' filter is not supported (chat templates render without autoescape)");
    }
    if (f == "tojson") {
      const Value ind = kwarg("indent", 0);
      // The indent is repeated per nesting level before the output limit can see it: bound it here
      // (chat templates use 2 or 4) so `tojson(indent=10**9)` cannot allocate gigabytes.
      constexpr int64_t kMaxIndent = 64;
      if (ind.kind() == Value::Kind::kInt && (ind.as_int() < 0 || ind.as_int() > kMaxIndent))
        err(e.line, fmt::format("tojson indent {} is outside 0..{}", ind.as_int(), kMaxIndent));
      return Value(x.to_json(ind.kind() == Value::Kind::kInt ? static_cast<int>(ind.as_int()) : -1));
    }
    if (f == "int") {
      if (x.kind() == Value::Kind::kInt) return x;
      if (x.is_number()) {
        // Python's int() truncates; NaN, inf and values past int64 have no int64 to truncate to.
        const double d = x.as_number();
        if (!(d > -9223372036854775808.0 && d < 9223372036854775808.0))
          err(e.line, fmt::format("int() of {} does not fit a 64-bit integer", d));
        return Value(static_cast<int64_t>(d));
      }
      if (x.is_string()) {
        try {
          return Value(static_cast<int64_t>(std::stoll(x.str())));
        } catch (...) {
          return Value(int64_t{0});
        }
      }
      return Value(int64_t{0});
    }
    if (f == "float") return Value(x.is_number() ? x.as_number() : 0.0);
    if (f == "abs") {
      if (!x.is_number()) err(e.line, "abs needs a number");
      if (x.kind() != Value::Kind::kInt) return Value(std::fabs(x.as_number()));
      int64_t r = x.as_int();
      if (r < 0) r = int_arith(IntOp::kSub, 0, r, e.line, "abs");
      return Value(r);
    }
    if (f == "default" || f == "d") {
      const bool boolean = kwarg("boolean", 1).truthy();
      if (x.is_undefined() || (boolean && !x.truthy())) return a.empty() ? Value("") : a[0];
      return x;
    }
    if (f == "first" || f == "last") {
      if (x.is_array()) {
        if (x.arr().empty()) return Value();
        return f == "first" ? x.arr().front() : x.arr().back();
      }
      if (x.is_string()) return x.str().empty() ? Value() : Value(std::string(1, f == "first" ? x.str().front() : x.str().back()));
      err(e.line, fmt::format("filter '{}' needs a list", f));
    }
    if (f == "join") {
      const Value sep = kwarg("d", 0);
      if (!x.is_array()) err(e.line, "join needs a list");
      std::string out;
      const std::string s = sep.is_string() ? sep.str() : "";
      for (size_t i = 0; i < x.arr().size(); ++i) out += (i ? s : "") + x.arr()[i].to_string();
      return Value(out);
    }
    if (f == "replace") {
      if (a.size() < 2 || !a[0].is_string() || !a[1].is_string()) err(e.line, "replace needs two strings");
      return Value(replace_all(need_string(), a[0].str(), a[1].str(), a.size() > 2 ? a[2].as_int() : -1));
    }
    if (f == "list") {
      if (x.is_array()) return Value::array(x.arr());
      if (x.is_string()) {
        Array out;
        for (char c : x.str()) out.emplace_back(std::string(1, c));
        return Value::array(std::move(out));
      }
      if (x.is_object()) return dict_method(x, "keys", {}, e.line);
      err(e.line, fmt::format("cannot make a list of a {}", x.type_name()));
    }
    if (f == "reverse") {
      if (x.is_string()) return Value(std::string(x.str().rbegin(), x.str().rend()));
      if (!x.is_array()) err(e.line, "reverse needs a list or string");
      Array r(x.arr().rbegin(), x.arr().rend());
      return Value::array(std::move(r));
    }
    if (f == "items") return x.is_object() ? dict_method(x, "items", {}, e.line) : Value::array();
    if (f == "selectattr" || f == "rejectattr") {
      if (!x.is_array()) err(e.line, fmt::format("{} needs a list", f));
      if (a.empty() || !a[0].is_string()) err(e.line, fmt::format("{} needs an attribute name", f));
      Array out;
      for (const auto& item : x.arr()) {
        const Value v = attr(item, a[0].str());
        bool ok;
        if (a.size() == 1) ok = v.truthy();
        else if (!a[1].is_string()) err(e.line, "the test of selectattr must be a name");
        else ok = named_test(a[1].str(), v, std::vector<Value>(a.begin() + 2, a.end()), e.line);
        if (ok == (f == "selectattr")) out.push_back(item);
      }
      return Value::array(std::move(out));
    }
    if (f == "map") {
      const Value at = kwarg("attribute", 99);
      if (!x.is_array() || !at.is_string()) err(e.line, "map is supported as map(attribute='name') over a list");
      Array out;
      for (const auto& item : x.arr()) out.push_back(attr(item, at.str()));
      return Value::array(std::move(out));
    }
    err(e.line, fmt::format("unsupported filter '{}'", f));
  }

  bool test(const Expr& e) {
    const Value x = eval(*e.args[0]);
    return named_test(e.name, x, eval_args(e, 1), e.line);
  }

  bool named_test(const std::string& t, const Value& x, const std::vector<Value>& a, int line) {
    using K = Value::Kind;
    if (t == "defined") return !x.is_undefined();
    if (t == "undefined") return x.is_undefined();
    if (t == "none") return x.is_none();
    if (t == "string") return x.is_string();
    if (t == "number") return x.is_number();
    if (t == "integer") return x.kind() == K::kInt;
    if (t == "float") return x.kind() == K::kFloat;
    if (t == "boolean") return x.kind() == K::kBool;
    if (t == "true") return x.kind() == K::kBool && x.as_bool();
    if (t == "false") return x.kind() == K::kBool && !x.as_bool();
    if (t == "mapping") return x.is_object();
    if (t == "sequence" || t == "iterable") return x.is_array() || x.is_string() || (t == "iterable" && x.is_object());
    if (t == "callable") return x.kind() == K::kFunction;
    if (t == "odd" || t == "even") {
      if (x.kind() != K::kInt) err(line, fmt::format("'{}' test needs an integer", t));
      return (x.as_int() % 2 != 0) == (t == "odd");
    }
    if (t == "divisibleby") {
      if (x.kind() != K::kInt || a.empty() || a[0].kind() != K::kInt || a[0].as_int() == 0)
        err(line, "divisibleby needs integers (non-zero divisor)");
      return x.as_int() % a[0].as_int() == 0;
    }
    if (t == "equalto" || t == "eq" || t == "==" || t == "sameas") {
      if (a.empty()) err(line, fmt::format("'{}' test needs an argument", t));
      return x == a[0];
    }
    if (t == "ne" || t == "!=") return a.empty() ? true : !(x == a[0]);
    if (t == "in") {
      if (a.empty()) err(line, "'in' test needs an argument");
      return contains(a[0], x, line);
    }
    if (t == "lower" || t == "upper") return x.is_string() && x.str() == (t == "lower" ? lower(x.str()) : upper(x.str()));
    err(line, fmt::format("unsupported test '{}'", t));
  }

  bool contains(const Value& hay, const Value& needle, int line) {
    if (hay.is_string()) {
      if (!needle.is_string()) err(line, "'in <string>' needs a string on the left");
      return hay.str().find(needle.str()) != std::string::npos;
    }
    if (hay.is_array()) return std::find(hay.arr().begin(), hay.arr().end(), needle) != hay.arr().end();
    if (hay.is_object()) return needle.is_string() && !hay.get(needle.str()).is_undefined();
    if (hay.is_undefined()) return false;
    err(line, fmt::format("'in' needs a string, list or dict on the right, got {}", hay.type_name()));
  }

  Value binary(const Expr& e) {
    const std::string& op = e.name;
    if (op == "and") {
      Value a = eval(*e.args[0]);
      return a.truthy() ? eval(*e.args[1]) : a;
    }
    if (op == "or") {
      Value a = eval(*e.args[0]);
      return a.truthy() ? a : eval(*e.args[1]);
    }
    const Value a = eval(*e.args[0]), b = eval(*e.args[1]);
    if (op == "==") return Value(a == b);
    if (op == "!=") return Value(!(a == b));
    if (op == "in") return Value(contains(b, a, e.line));
    if (op == "not in") return Value(!contains(b, a, e.line));
    if (op == "~") return Value(a.to_string() + b.to_string());
    if (op == "<" || op == ">" || op == "<=" || op == ">=") {
      int c;
      if (a.is_number() && b.is_number()) c = a.as_number() < b.as_number() ? -1 : a.as_number() > b.as_number() ? 1 : 0;
      else if (a.is_string() && b.is_string()) c = a.str().compare(b.str());
      else err(e.line, fmt::format("cannot compare {} with {}", a.type_name(), b.type_name()));
      if (op == "<") return Value(c < 0);
      if (op == ">") return Value(c > 0);
      if (op == "<=") return Value(c <= 0);
      return Value(c >= 0);
    }
    if (op == "+") {
      if (a.is_string() && b.is_string()) {
        if (a.str().size() + b.str().size() > lim_.max_output) err(e.line, "string too long");
        return Value(a.str() + b.str());
      }
      if (a.is_array() && b.is_array()) {
        Array r = a.arr();
        r.insert(r.end(), b.arr().begin(), b.arr().end());
        return Value::array(std::move(r));
      }
    }
    if (op == "*" && a.is_string() && b.kind() == Value::Kind::kInt) {
      // Divide instead of multiplying: size * count can wrap around uint64 and pass a product test.
      if (b.as_int() < 0 || (b.as_int() > 0 && a.str().size() > lim_.max_output / static_cast<uint64_t>(b.as_int())))
        err(e.line, "string repeat too long");
      std::string r;
      for (int64_t i = 0; i < b.as_int(); ++i) r += a.str();
      return Value(r);
    }
    if (!a.is_number() || !b.is_number())
      err(e.line, fmt::format("unsupported operand types for {}: {} and {}", op, a.type_name(), b.type_name()));
    const bool ints = a.kind() == Value::Kind::kInt && b.kind() == Value::Kind::kInt;
    const double x = a.as_number(), y = b.as_number();
    if (op == "+") return ints ? Value(int_arith(IntOp::kAdd, a.as_int(), b.as_int(), e.line, op)) : Value(x + y);
    if (op == "-") return ints ? Value(int_arith(IntOp::kSub, a.as_int(), b.as_int(), e.line, op)) : Value(x - y);
    if (op == "*") return ints ? Value(int_arith(IntOp::kMul, a.as_int(), b.as_int(), e.line, op)) : Value(x * y);
    if (y == 0 && (op == "/" || op == "//" || op == "%")) err(e.line, "division by zero");
    // INT64_MIN // -1 is the one integer quotient that does not fit (and INT64_MIN % -1 traps on x86).
    if (ints && (op == "//" || op == "%") && a.as_int() == std::numeric_limits<int64_t>::min() && b.as_int() == -1) {
      if (op == "%") return Value(int64_t{0});
      err(e.line, fmt::format("integer overflow in {}", op));
    }
    if (op == "/") return Value(x / y);
    if (op == "//") {
      if (ints) {
        const int64_t q = a.as_int() / b.as_int();
        return Value((a.as_int() % b.as_int() != 0 && ((a.as_int() < 0) != (b.as_int() < 0))) ? q - 1 : q);
      }
      return Value(std::floor(x / y));
    }
    if (op == "%") {
      if (ints) {
        const int64_t r = a.as_int() % b.as_int();
        return Value(r != 0 && ((r < 0) != (b.as_int() < 0)) ? r + b.as_int() : r);
      }
      return Value(x - y * std::floor(x / y));
    }
    if (op == "**") return ints && b.as_int() >= 0 ? Value(int_pow(a.as_int(), b.as_int(), e.line)) : Value(std::pow(x, y));
    err(e.line, fmt::format("unsupported operator {}", op));
  }

  const RenderLimits& lim_;
  std::vector<std::unordered_map<std::string, Value>> scopes_;
  std::string out_;
  int64_t iterations_ = 0;
};

}  // namespace

Template::Template(std::string_view source) : body_(std::make_shared<const Body>(parse_template(source))) {}

std::string Template::render(const Object& globals, const RenderLimits& limits) const {
  Interp in(globals, limits);
  in.run(*body_);
  return std::move(in.out());
}

}  // namespace swift::jinja
