// Error handling for the whole engine.
//
// Two kinds of failure, kept apart on purpose (DEVELOPERS.md "Errors"):
//  * bad input (corrupt file, missing tensor, bad request) -> throw swift::Error with a message
//    that names the thing and the numbers; caught once at the CLI/server edge.
//  * broken invariants (a bug in our code) -> SWIFT_CHECK, always on, also in release builds.
// Library code never calls exit().
#pragma once

#include <fmt/format.h>

#include <stdexcept>
#include <string>

namespace swift {

// Bad input from the outside world. The message is shown to the user as is.
class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& msg) : std::runtime_error(msg) {}
};

template <typename... Args>
[[noreturn]] void fail(fmt::format_string<Args...> f, Args&&... args) {
  throw Error(fmt::format(f, std::forward<Args>(args)...));
}

// An internal invariant failed. Thrown (not abort) so that a server can log it and drop the
// request, but it is a different type so tests can tell bugs from bad input.
class InternalError : public std::logic_error {
 public:
  explicit InternalError(const std::string& msg) : std::logic_error(msg) {}
};

[[noreturn]] void check_failed(const char* expr, const char* file, int line, const std::string& msg);

}  // namespace swift

#define SWIFT_CHECK(cond, ...)                                                              \
  do {                                                                                     \
    if (!(cond)) ::swift::check_failed(#cond, __FILE__, __LINE__, ::fmt::format("" __VA_ARGS__)); \
  } while (0)
