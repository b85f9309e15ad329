// Wall-clock timing for stats and benchmarks.
#pragma once

#include <chrono>
#include <cstdint>

namespace swift {

inline double now_ms() {
  using namespace std::chrono;
  return duration<double, std::milli>(steady_clock::now().time_since_epoch()).count();
}

// The same clock in whole nanoseconds (for integer bookkeeping, e.g. the thread pool's windows).
inline int64_t now_ns() {
  using namespace std::chrono;
  return duration_cast<nanoseconds>(steady_clock::now().time_since_epoch()).count();
}

}  // namespace swift
