// 64-byte-aligned room in a growable std::vector, for per-thread scratch that AMX tile loads and
// stores read and write.
//
// Why: std::vector's storage is only 16-byte aligned here (glibc malloc), so every 64-byte tile
// row could straddle two cache lines. Measured on the Xeon these figures come from: a
// TDPBF16PS whose operand tiles come from such rows ran at ~17 ns instead of ~8 (a loop of tile
// loads and products over L1- and L2-resident buffers, the same loop with aligned buffers).
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace swift {

// Room for n elements of v from a 64-byte boundary: v grows as needed (never shrinks), so the
// pointer stays valid until a later call asks for more. Scratch only: a call that grows v does
// not keep the old contents at the returned position.
template <typename T>
T* grow_aligned64(std::vector<T>& v, int64_t n) {
  static_assert(64 % sizeof(T) == 0, "elements must tile a cache line");
  constexpr int64_t kPad = 64 / static_cast<int64_t>(sizeof(T));
  if (static_cast<int64_t>(v.size()) < n + kPad) v.resize(static_cast<std::size_t>(n + kPad));
  const uintptr_t at = reinterpret_cast<uintptr_t>(v.data());
  return v.data() + (64 - at % 64) % 64 / sizeof(T);
}

}  // namespace swift
