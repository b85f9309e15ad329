// Jinja template parser: segments and tokens (lexer.h) -> syntax tree (ast.h).
//
// Precedence follows Jinja2's parser: or < and < not < comparison < + - < ~ < * / // % <
// unary/filters/tests < postfix.
#include "model/jinja/parser.h"

#include <algorithm>

#include "model/jinja/lexer.h"

namespace swift::jinja {

namespace {

using detail::Segment;
using detail::Token;
using detail::split_segments;
using detail::tokenize;

// ---------------------------------------------------------------- expressions

class ExprParser {
 public:
  ExprParser(std::vector<Token> toks, int line) : t_(std::move(toks)), line_(line) {}

  const Token& peek(size_t k = 0) const { return t_[std::min(p_ + k, t_.size() - 1)]; }
  bool at_end() const { return peek().kind == Token::kEnd; }
  bool is_op(const char* op, size_t k = 0) const { return peek(k).kind == Token::kOp && peek(k).text == op; }
  bool is_name(const char* n, size_t k = 0) const { return peek(k).kind == Token::kName && peek(k).text == n; }
  bool accept_op(const char* op) { return is_op(op) ? (++p_, true) : false; }
  bool accept_name(const char* n) { return is_name(n) ? (++p_, true) : false; }
  void expect_op(const char* op) {
    if (!accept_op(op)) error(fmt::format("expected '{}'", op));
  }
  std::string expect_name() {
    if (peek().kind != Token::kName) error("expected a name");
    return t_[p_++].text;
  }
  void expect_end() {
    if (!at_end()) error(fmt::format("unexpected '{}'", peek().text));
  }
  [[noreturn]] void error(const std::string& what) const {
    throw TemplateError(fmt::format("line {}: {} (at '{}')", line_, what, at_end() ? "end of tag" : peek().text));
  }

  ExprPtr make(Expr::Kind k, std::string name = {}) {
    auto e = std::make_unique<Expr>();
    e->kind = k;
    e->line = line_;
    e->name = std::move(name);
    return e;
  }
  // Every child goes through adopt(), which keeps each node's height and refuses trees taller
  // than kMaxExprHeight: rendering and freeing a tree recurse once per level, and a template from
  // a model file could otherwise chain `1+1+1+...` deep enough to overflow the stack.
  void adopt(Expr& parent, ExprPtr child) {
    if (child) grow(parent, *child);
    parent.args.push_back(std::move(child));
  }
  void adopt_kwarg(Expr& parent, std::string name, ExprPtr child) {
    grow(parent, *child);
    parent.kwargs.emplace_back(std::move(name), std::move(child));
  }
  void grow(Expr& parent, const Expr& child) {
    parent.height = std::max(parent.height, child.height + 1);
    if (parent.height > kMaxExprHeight) error(fmt::format("expression nested more than {} levels deep", kMaxExprHeight));
  }
  // Counts the parser's own recursion (parentheses, `- - x`, `not not x` nest calls without
  // adding nodes): found by the chat-template fuzzer as a stack overflow on `((((...`.
  struct NestGuard {
    explicit NestGuard(ExprParser& p) : p_(p) {
      if (++p_.nest_ > kMaxNest) p_.error(fmt::format("expression nested more than {} levels deep", kMaxNest));
    }
    ~NestGuard() { --p_.nest_; }
    NestGuard(const NestGuard&) = delete;
    NestGuard& operator=(const NestGuard&) = delete;
    ExprParser& p_;
  };

  ExprPtr binary(std::string op, ExprPtr a, ExprPtr b) {
    auto e = make(Expr::Kind::kBinary, std::move(op));
    adopt(*e, std::move(a));
    adopt(*e, std::move(b));
    return e;
  }

  ExprPtr expression() {
    NestGuard guard(*this);
    ExprPtr body = or_expr();
    if (accept_name("if")) {
      auto e = make(Expr::Kind::kCond);
      adopt(*e, or_expr());
      adopt(*e, std::move(body));
      adopt(*e, accept_name("else") ? expression() : nullptr);
      return e;
    }
    return body;
  }
  ExprPtr or_expr() {
    ExprPtr a = and_expr();
    while (accept_name("or")) a = binary("or", std::move(a), and_expr());
    return a;
  }
  ExprPtr and_expr() {
    ExprPtr a = not_expr();
    while (accept_name("and")) a = binary("and", std::move(a), not_expr());
    return a;
  }
  ExprPtr not_expr() {
    if (is_name("not") && !is_name("in", 1)) {
      ++p_;
      NestGuard guard(*this);
      auto e = make(Expr::Kind::kUnary, "not");
      adopt(*e, not_expr());
      return e;
    }
    return compare();
  }
  ExprPtr compare() {
    ExprPtr a = add();
    for (;;) {
      static const char* kCmp[] = {"==", "!=", "<=", ">=", "<", ">"};
      bool matched = false;
      for (const char* op : kCmp)
        if (accept_op(op)) {
          a = binary(op, std::move(a), add());
          matched = true;
          break;
        }
      if (matched) continue;
      if (accept_name("in")) {
        a = binary("in", std::move(a), add());
      } else if (is_name("not") && is_name("in", 1)) {
        p_ += 2;
        a = binary("not in", std::move(a), add());
      } else {
        return a;
      }
    }
  }
  ExprPtr add() {
    ExprPtr a = concat();
    for (;;) {
      if (accept_op("+")) a = binary("+", std::move(a), concat());
      else if (accept_op("-")) a = binary("-", std::move(a), concat());
      else return a;
    }
  }
  ExprPtr concat() {
    ExprPtr a = mul();
    while (accept_op("~")) a = binary("~", std::move(a), mul());
    return a;
  }
  ExprPtr mul() {
    ExprPtr a = pow();
    for (;;) {
      if (accept_op("*")) a = binary("*", std::move(a), pow());
      else if (accept_op("//")) a = binary("//", std::move(a), pow());
      else if (accept_op("/")) a = binary("/", std::move(a), pow());
      else if (accept_op("%")) a = binary("%", std::move(a), pow());
      else return a;
    }
  }
  ExprPtr pow() {
    ExprPtr a = unary();
    while (accept_op("**")) a = binary("**", std::move(a), unary());
    return a;
  }
  ExprPtr unary() {
    if (accept_op("-")) {
      NestGuard guard(*this);
      auto e = make(Expr::Kind::kUnary, "-");
      adopt(*e, unary());
      return filters(std::move(e));
    }
    if (accept_op("+")) {
      NestGuard guard(*this);
      auto e = make(Expr::Kind::kUnary, "+");
      adopt(*e, unary());
      return filters(std::move(e));
    }
    return filters(postfix(primary()));
  }
  void call_args(Expr& e) {
    // after '(' : positional and keyword arguments
    if (accept_op(")")) return;
    for (;;) {
      if (peek().kind == Token::kName && is_op("=", 1)) {
        std::string k = expect_name();
        ++p_;
        adopt_kwarg(e, std::move(k), expression());
      } else {
        if (!e.kwargs.empty()) error("positional argument after a keyword argument");
        adopt(e, expression());
      }
      if (accept_op(")")) return;
      expect_op(",");
    }
  }
  ExprPtr filters(ExprPtr a) {
    for (;;) {
      if (accept_op("|")) {
        auto f = make(Expr::Kind::kFilter, expect_name());
        adopt(*f, std::move(a));
        if (accept_op("(")) call_args(*f);
        a = std::move(f);
      } else if (accept_name("is")) {
        const bool neg = accept_name("not");
        std::string test = expect_name();
        auto t = make(Expr::Kind::kTest, test);
        t->negate = neg;
        adopt(*t, std::move(a));
        if (accept_op("(")) {
          call_args(*t);
        } else if (peek().kind == Token::kString || peek().kind == Token::kInt || peek().kind == Token::kFloat ||
                   (peek().kind == Token::kName && !is_name("and") && !is_name("or") && !is_name("else") &&
                    !is_name("if") && !is_name("in") && !is_name("not"))) {
          adopt(*t, primary());  // `x is divisibleby 3`, `x is sameas none`
        }
        a = std::move(t);
      } else {
        return a;
      }
    }
  }
  ExprPtr postfix(ExprPtr a) {
    for (;;) {
      if (accept_op(".")) {
        auto e = make(Expr::Kind::kAttr);
        if (peek().kind == Token::kInt) e->name = t_[p_++].text;
        else e->name = expect_name();
        adopt(*e, std::move(a));
        a = std::move(e);
      } else if (accept_op("[")) {
        ExprPtr lo, hi, step;
        bool slice = false;
        if (!is_op(":")) lo = expression();
        if (accept_op(":")) {
          slice = true;
          if (!is_op("]") && !is_op(":")) hi = expression();
          if (accept_op(":") && !is_op("]")) step = expression();
        }
        expect_op("]");
        auto e = make(slice ? Expr::Kind::kSlice : Expr::Kind::kIndex);
        adopt(*e, std::move(a));
        adopt(*e, std::move(lo));
        if (slice) {
          adopt(*e, std::move(hi));
          adopt(*e, std::move(step));
        }
        a = std::move(e);
      } else if (accept_op("(")) {
        auto e = make(Expr::Kind::kCall);
        adopt(*e, std::move(a));
        call_args(*e);
        a = std::move(e);
      } else {
        return a;
      }
    }
  }
  ExprPtr primary() {
    const Token& t = peek();
    if (t.kind == Token::kString) {
      auto e = make(Expr::Kind::kLiteral);
      std::string s;
      while (peek().kind == Token::kString) s += t_[p_++].text;  // adjacent literals concatenate
      e->value = Value(s);
      return e;
    }
    if (t.kind == Token::kInt || t.kind == Token::kFloat) {
      auto e = make(Expr::Kind::kLiteral);
      e->value = t_[p_++].value;
      return e;
    }
    if (t.kind == Token::kName) {
      const std::string n = t_[p_++].text;
      auto e = make(Expr::Kind::kLiteral);
      if (n == "true" || n == "True") e->value = Value(true);
      else if (n == "false" || n == "False") e->value = Value(false);
      else if (n == "none" || n == "None") e->value = Value::none();
      else e = make(Expr::Kind::kName, n);
      return e;
    }
    if (accept_op("(")) {
      ExprPtr inner = expression();
      if (is_op(",")) {  // tuple: a list for our purposes
        auto e = make(Expr::Kind::kList);
        adopt(*e, std::move(inner));
        while (accept_op(",") && !is_op(")")) adopt(*e, expression());
        expect_op(")");
        return e;
      }
      expect_op(")");
      return inner;
    }
    if (accept_op("[")) {
      auto e = make(Expr::Kind::kList);
      while (!accept_op("]")) {
        adopt(*e, expression());
        if (!is_op("]")) expect_op(",");
      }
      return e;
    }
    if (accept_op("{")) {
      auto e = make(Expr::Kind::kDict);
      while (!accept_op("}")) {
        adopt(*e, expression());
        expect_op(":");
        adopt(*e, expression());
        if (!is_op("}")) expect_op(",");
      }
      return e;
    }
    error("expected an expression");
  }

 private:
  static constexpr int kMaxExprHeight = 256;
  static constexpr int kMaxNest = 128;
  std::vector<Token> t_;
  size_t p_ = 0;
  int line_;
  int nest_ = 0;  // live NestGuards
};

// ---------------------------------------------------------------- statements

class TemplateParser {
 public:
  explicit TemplateParser(std::vector<Segment> segs) : s_(std::move(segs)) {}

  Body parse() {
    std::string end;
    Body b = body({}, &end);
    return b;
  }

 private:
  // Parses nodes until a statement whose first word is in `enders`; returns it in *ender with
  // its parser positioned after that word.
  Body body(const std::vector<std::string>& enders, std::string* ender) {
    Body out;
    while (i_ < s_.size()) {
      const Segment& seg = s_[i_++];
      if (seg.kind == Segment::kText) {
        auto n = std::make_unique<Node>();
        n->kind = Node::Kind::kText;
        n->text = seg.text;
        out.push_back(std::move(n));
        continue;
      }
      ExprParser p(tokenize(seg.text, seg.line), seg.line);
      if (seg.kind == Segment::kOutput) {
        auto n = std::make_unique<Node>();
        n->kind = Node::Kind::kOutput;
        n->line = seg.line;
        n->expr = p.expression();
        p.expect_end();
        out.push_back(std::move(n));
        continue;
      }
      const std::string word = p.expect_name();
      for (const auto& e : enders)
        if (word == e) {
          *ender = word;
          cur_ = std::make_unique<ExprParser>(std::move(p));
          return out;
        }
      out.push_back(statement(word, p, seg.line));
    }
    if (!enders.empty())
      throw TemplateError(fmt::format("unexpected end of template: missing {{% {} %}}", enders.back()));
    *ender = "";
    return out;
  }

  NodePtr statement(const std::string& word, ExprParser& p, int line) {
    // Blocks nest by recursion here and when rendering: bound them (real templates nest 2-4).
    constexpr int kMaxBlockNest = 64;
    struct Depth {
      int& d;
      explicit Depth(int& x) : d(++x) {}
      ~Depth() { --d; }
    } depth(block_nest_);
    if (block_nest_ > kMaxBlockNest)
      throw TemplateError(fmt::format("line {}: blocks nested more than {} levels deep", line, kMaxBlockNest));
    auto n = std::make_unique<Node>();
    n->line = line;
    if (word == "if") {
      n->kind = Node::Kind::kIf;
      ExprPtr cond = p.expression();
      p.expect_end();
      for (;;) {
        std::string end;
        Body b = body({"elif", "else", "endif"}, &end);
        n->branches.emplace_back(std::move(cond), std::move(b));
        if (end == "endif") {
          cur_->expect_end();
          break;
        }
        if (end == "else") {
          cur_->expect_end();
          std::string end2;
          Body eb = body({"endif"}, &end2);
          cur_->expect_end();
          n->branches.emplace_back(nullptr, std::move(eb));
          break;
        }
        cond = cur_->expression();
        cur_->expect_end();
      }
      return n;
    }
    if (word == "for") {
      n->kind = Node::Kind::kFor;
      n->targets.push_back(p.expect_name());
      while (p.accept_op(",")) n->targets.push_back(p.expect_name());
      if (!p.accept_name("in")) p.error("expected 'in' in for loop");
      n->expr = p.or_expr();
      if (p.accept_name("if")) n->filter = p.or_expr();
      if (p.accept_name("recursive")) p.error("recursive loops are not supported");
      p.expect_end();
      std::string end;
      n->body = body({"else", "endfor"}, &end);
      cur_->expect_end();
      if (end == "else") {
        n->else_body = body({"endfor"}, &end);
        cur_->expect_end();
      }
      return n;
    }
    if (word == "set") {
      n->set_name = p.expect_name();
      if (p.accept_op(".")) n->set_attr = p.expect_name();
      if (p.accept_op("=")) {
        n->kind = Node::Kind::kSet;
        n->expr = p.expression();
        p.expect_end();
        return n;
      }
      if (!n->set_attr.empty()) p.error("block set of a namespace attribute is not supported");
      p.expect_end();
      n->kind = Node::Kind::kSetBlock;
      std::string end;
      n->body = body({"endset"}, &end);
      cur_->expect_end();
      return n;
    }
    if (word == "break" || word == "continue") {
      p.expect_end();
      n->kind = word == "break" ? Node::Kind::kBreak : Node::Kind::kContinue;
      return n;
    }
    throw TemplateError(fmt::format("line {}: unsupported template tag '{{% {} %}}' (supported: if, for, set, "
                                    "break, continue, raw)", line, word));
  }

  std::vector<Segment> s_;
  size_t i_ = 0;
  std::unique_ptr<ExprParser> cur_;  // the parser of the statement that ended the last body
  int block_nest_ = 0;  // statements being parsed, outermost first
};

}  // namespace

Body parse_template(std::string_view source) { return TemplateParser(split_segments(source)).parse(); }

}  // namespace swift::jinja
