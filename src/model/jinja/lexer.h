// Jinja lexing: template text -> segments (text, {{ }}, {% %}) with whitespace control applied,
// and the tokens of one tag's expression (parser.cc builds the tree from them).
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "model/jinja/value.h"

namespace swift::jinja::detail {

struct Segment {
  enum Kind { kText, kOutput, kStatement } kind;
  std::string text;
  int line;
};

struct Token {
  enum Kind { kName, kString, kInt, kFloat, kOp, kEnd } kind;
  std::string text;
  Value value;
};

// Whitespace follows transformers' apply_chat_template environment (trim_blocks and
// lstrip_blocks on), plus the explicit `-` markers; comments dropped, {% raw %} copied.
std::vector<Segment> split_segments(std::string_view src);
// Tokens of one tag body (line: for error messages); ends with a kEnd token.
std::vector<Token> tokenize(const std::string& s, int line);

}  // namespace swift::jinja::detail
