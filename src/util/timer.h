// Wall-clock timing for stats and benchmarks.
#pragma once

#include <chrono>

namespace swift {

inline double now_ms() {
  using namespace std::chrono;
  return duration<double, std::milli>(steady_clock::now().time_since_epoch()).count();
}

}  // namespace swift
