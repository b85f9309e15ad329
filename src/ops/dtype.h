// Element types of weight tensors, and a typed view of a row-major weight matrix.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace swift {

// kQ8_0: llama.cpp's Q8_0 blocks of 32 weights, {f16 scale d; int8 q[32]} (34 bytes); a
// weight is d * q, exactly representable in f32 (11-bit by 8-bit significands), so kernels see
// the same f32 values a dequantize-then-f32 reference does.
// kQ4_0, kQ4_K, kQ5_K, kQ6_K: llama.cpp's 4/5/6-bit formats (layouts in ops/quant.h).
enum class DType : uint8_t { kF32, kF16, kBF16, kQ8_0, kQ4_0, kQ4_K, kQ5_K, kQ6_K };

// Weights per block and bytes per block (1 and the element size for plain types).
constexpr int64_t dtype_block(DType t) {
  switch (t) {
    case DType::kQ8_0: case DType::kQ4_0: return 32;
    case DType::kQ4_K: case DType::kQ5_K: case DType::kQ6_K: return 256;
    default: return 1;
  }
}
constexpr int64_t dtype_block_bytes(DType t) {
  switch (t) {
    case DType::kF32: return 4;
    case DType::kF16: case DType::kBF16: return 2;
    case DType::kQ8_0: return 34;
    case DType::kQ4_0: return 18;
    case DType::kQ4_K: return 144;
    case DType::kQ5_K: return 176;
    case DType::kQ6_K: return 210;
  }
  return 0;
}
// Element size of a plain (unblocked) type.
inline size_t dtype_size(DType t) { return t == DType::kF32 ? 4 : 2; }
// Bytes of one row of `cols` weights (cols must be a multiple of dtype_block).
constexpr int64_t row_bytes(DType t, int64_t cols) { return cols / dtype_block(t) * dtype_block_bytes(t); }

inline std::string_view dtype_name(DType t) {
  switch (t) {
    case DType::kF32: return "F32";
    case DType::kF16: return "F16";
    case DType::kBF16: return "BF16";
    case DType::kQ8_0: return "Q8_0";
    case DType::kQ4_0: return "Q4_0";
    case DType::kQ4_K: return "Q4_K";
    case DType::kQ5_K: return "Q5_K";
    case DType::kQ6_K: return "Q6_K";
  }
  return "?";
}

// How a matrix's elements are laid out in memory.
//   kRows:    row-major [rows, cols], as in the model file (any dtype), used in place.
//   kPanel16: F32/F16/BF16 only, packed at load by ops/panel.h: panels of 16 consecutive rows,
//             each stored column by column, [ceil(rows / 16), cols, 16], the last panel padded
//             with zero rows. One vector load yields one column of 16 rows, which the
//             outer-product kernel (ops/matmul_panel.cc) multiplies without horizontal sums.
//   kPanel16Pairs: BF16 only, for `--math bf16` (ops/bf16_dot.h): panels of 16 rows stored by
//             column pairs, [ceil(rows / 16), ceil(cols / 2), 16, 2], an odd column count padded
//             with a zero column. One vector load is the 16 x 2 operand of vdpbf16ps.
//   kRows8:   Q4_K and Q6_K only, for `--math q8` (ops/q8_dot.h): groups of 8 rows interleaved
//             per block so that a vector lane is a row, [rows / 8, cols / 256, group bytes].
enum class MatLayout : uint8_t { kRows, kPanel16, kPanel16Pairs, kRows8 };
constexpr int64_t kPanelRows = 16;
// kRows8: bytes per group of 8 rows x one block of 256 columns (ops/matmul_rows8.cc): Q4_K f16 d
// and dmin, u8 scales and mins, 4-bit weights (1,184); Q6_K f16 d, int8 scales, 4 + 2 bits per
// weight (1,680, as 8 plain blocks); 0 for other types.
constexpr int64_t rows8_group_bytes(DType t) {
  return t == DType::kQ4_K ? 8 * 2 + 8 * 2 + 64 + 64 + 1024 : t == DType::kQ6_K ? 8 * 2 + 128 + 1024 + 512 : 0;
}

// A matrix of weights: in place in a memory map (kRows) or a packed copy (kPanel16).
struct MatView {
  // kRows: [rows, cols] of dtype; kPanel16: [ceil(rows/16), cols, 16];
  // kPanel16Pairs: [ceil(rows/16), ceil(cols/2), 16, 2]; kRows8: [rows/8, cols/256, rows8_group_bytes]
  const void* data = nullptr;
  DType dtype = DType::kF32;
  int64_t rows = 0;
  int64_t cols = 0;
  MatLayout layout = MatLayout::kRows;

  size_t bytes() const {
    if (layout == MatLayout::kPanel16)
      return static_cast<size_t>((rows + kPanelRows - 1) / kPanelRows * kPanelRows * cols) * dtype_size(dtype);
    if (layout == MatLayout::kPanel16Pairs)
      return static_cast<size_t>((rows + kPanelRows - 1) / kPanelRows * kPanelRows * ((cols + 1) / 2 * 2)) * 2;
    if (layout == MatLayout::kRows8) return static_cast<size_t>(rows / 8 * (cols / 256) * rows8_group_bytes(dtype));
    return static_cast<size_t>(rows * row_bytes(dtype, cols));
  }
};

// Converts row r of w to f32 into out[0, w.cols).
void mat_row_to_f32(const MatView& w, int64_t r, float* out);

}  // namespace swift
