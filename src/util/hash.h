// FNV-1a, the 64-bit hash behind model identities (layer-cache keys): stable across runs and
// platforms, which std::hash is not.
#pragma once

#include <cstddef>
#include <cstdint>

namespace swift {

constexpr uint64_t kFnvOffset = 1469598103934665603ull;

inline uint64_t fnv1a(uint64_t h, const void* data, size_t n) {
  const auto* p = static_cast<const uint8_t*>(data);
  for (size_t i = 0; i < n; ++i) h = (h ^ p[i]) * 1099511628211ull;
  return h;
}

}  // namespace swift
