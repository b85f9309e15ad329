// Syntax tree of a parsed Jinja template (parser.cc builds it, interpreter.cc walks it).
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "model/jinja/value.h"

namespace swift::jinja {

struct Expr;
using ExprPtr = std::unique_ptr<Expr>;

struct Expr {
  enum class Kind {
    kLiteral,   // value
    kName,      // name
    kAttr,      // args[0].name
    kIndex,     // args[0][args[1]]
    kSlice,     // args[0][args[1]:args[2]:args[3]] (null = omitted)
    kCall,      // args[0](args[1..], kwargs)
    kFilter,    // args[0] | name(args[1..], kwargs)
    kTest,      // args[0] is [not] name(args[1..])
    kUnary,     // op args[0]: "not", "-", "+"
    kBinary,    // args[0] op args[1]
    kCond,      // args[1] if args[0] else args[2] (args[2] may be null)
    kList,      // [args...]
    kDict,      // {kwargs...}: keys are expressions too, stored in args as k0,v0,k1,v1...
  };
  Kind kind;
  int line = 0;
  Value value;
  std::string name;  // name, attribute, filter, test or operator
  bool negate = false;
  int height = 1;  // levels of this subtree (parser.cc bounds it: rendering recurses per level)
  std::vector<ExprPtr> args;
  std::vector<std::pair<std::string, ExprPtr>> kwargs;
};

struct Node;
using NodePtr = std::unique_ptr<Node>;
using Body = std::vector<NodePtr>;

struct Node {
  enum class Kind { kText, kOutput, kIf, kFor, kSet, kSetBlock, kBreak, kContinue };
  Kind kind;
  int line = 0;
  std::string text;  // kText
  ExprPtr expr;      // kOutput, kSet value, kFor iterable
  // kIf: (condition, body) per if/elif, condition null for else.
  std::vector<std::pair<ExprPtr, Body>> branches;
  // kFor: loop variables, optional `if` filter, body and `else` body.
  std::vector<std::string> targets;
  ExprPtr filter;
  Body body, else_body;
  // kSet/kSetBlock: `name` or `name.attr` (namespace attribute).
  std::string set_name, set_attr;
};

}  // namespace swift::jinja
