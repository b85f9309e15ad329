// grow_aligned64 (util/aligned.h): a 64-byte boundary and room for n elements, for every element
// size the kernels use, whatever alignment the vector's own storage has.
#include "util/aligned.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <vector>

namespace swift {
namespace {

template <typename T>
void check_sizes() {
  std::vector<T> v;
  for (int64_t n : {0, 1, 15, 16, 17, 1000, 3, 100000, 5}) {
    T* p = grow_aligned64(v, n);
    ASSERT_EQ(reinterpret_cast<uintptr_t>(p) % 64, 0u) << "n " << n << " element size " << sizeof(T);
    ASSERT_GE(p, v.data());
    ASSERT_LE(p + n, v.data() + v.size()) << "n " << n;
    for (int64_t i = 0; i < n; ++i) p[i] = static_cast<T>(i);  // the whole range is writable (ASan checks)
  }
  // Storage that starts off a cache line (a vector's heap block is only 16-byte aligned).
  std::vector<T> w(5);
  for (int shift = 0; shift < 8; ++shift) {
    std::vector<T> other(static_cast<size_t>(shift * 3 + 1));  // perturb the allocator
    T* p = grow_aligned64(w, 40 + shift);
    ASSERT_EQ(reinterpret_cast<uintptr_t>(p) % 64, 0u);
    ASSERT_LE(p + 40 + shift, w.data() + w.size());
  }
}

TEST(GrowAligned64, SixtyFourByteBoundaryAndRoomForEveryElementSize) {
  check_sizes<uint16_t>();
  check_sizes<uint32_t>();
  check_sizes<int32_t>();
  check_sizes<float>();
}

}  // namespace
}  // namespace swift
