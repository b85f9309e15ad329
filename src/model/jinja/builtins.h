// Python semantics the Jinja interpreter (interpreter.cc) calls: str and dict methods, the string
// helpers behind the matching filters, and int64 arithmetic that refuses overflow (Python's ints
// are unbounded; a result past int64 is a TemplateError naming the operation, never wrapped).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "model/jinja/value.h"

namespace swift::jinja::detail {

// TemplateError "line N: what".
[[noreturn]] void err(int line, const std::string& what);

inline const std::string kSpaces = " \t\n\r\f\v";  // Python's str.strip() default
std::string strip_chars(const std::string& s, const std::string& chars, bool left, bool right);
std::string upper(std::string s);
std::string lower(std::string s);
std::string title(std::string s);
std::string replace_all(const std::string& s, const std::string& from, const std::string& to, int64_t count);

enum class IntOp { kAdd, kSub, kMul };
int64_t int_arith(IntOp op, int64_t a, int64_t b, int line, std::string_view what);
int64_t int_pow(int64_t base, int64_t exp, int line);  // exp >= 0
// i += step for range() and slices; false where that would leave int64 (the loop is over).
bool step_index(int64_t& i, int64_t step);

// s.m(*a) and d.m(*a) for the supported methods; anything else is a TemplateError.
Value string_method(const std::string& s, const std::string& m, const std::vector<Value>& a, int line);
Value dict_method(const Value& d, const std::string& m, const std::vector<Value>& a, int line);

}  // namespace swift::jinja::detail
