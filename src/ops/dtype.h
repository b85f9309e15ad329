// Element types of weight tensors, and a typed view of a row-major weight matrix.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace swift {

enum class DType : uint8_t { kF32, kF16, kBF16 };

inline size_t dtype_size(DType t) { return t == DType::kF32 ? 4 : 2; }

inline std::string_view dtype_name(DType t) {
  switch (t) {
    case DType::kF32: return "F32";
    case DType::kF16: return "F16";
    case DType::kBF16: return "BF16";
  }
  return "?";
}

// A row-major matrix of weights used in place (usually inside a memory map).
struct MatView {
  const void* data = nullptr;  // [rows, cols] of dtype
  DType dtype = DType::kF32;
  int64_t rows = 0;
  int64_t cols = 0;

  size_t bytes() const { return static_cast<size_t>(rows * cols) * dtype_size(dtype); }
};

// Converts row r of w to f32 into out[0, w.cols).
void mat_row_to_f32(const MatView& w, int64_t r, float* out);

}  // namespace swift
