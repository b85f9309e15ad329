// llama.cpp's block-quantized weight formats: reference dequantization (the exact f32 values
// every kernel must reproduce) and quantizers used by `swiftllm convert`.
//
// Block layouts (ggml-common.h):
//   Q8_0 [32]:  f16 d; int8 q[32]                          w = d * q
//   Q4_0 [32]:  f16 d; u8 qs[16] (lo nibbles: 0..15, hi: 16..31)   w = (q - 8) * d
//   Q4_K [256]: f16 d, dmin; u8 scales[12] (6-bit sc/m per 32); u8 qs[128]
//               w = (d * sc) * q - (dmin * m)
//   Q5_K [256]: as Q4_K plus u8 qh[32] (5th bit)          w = (d * sc) * (q + 16 h) - (dmin * m)
//   Q6_K [256]: u8 ql[128], qh[64]; int8 scales[16]; f16 d   w = (d * sc) * (q - 32)
// The f32 expressions are evaluated exactly as in ggml's dequantize_row_* (same operations, same
// order), so a kernel that reproduces them is bit-identical to dequantize-then-f32 matmul.
#pragma once

#include <cstdint>

#include "ops/dtype.h"

namespace swift {

// 6-bit scale and min of sub-block j of a Q4_K/Q5_K block (ggml get_scale_min_k4).
inline void q4k_scale_min(int j, const uint8_t* q, uint8_t* sc, uint8_t* m) {
  if (j < 4) {
    *sc = q[j] & 63;
    *m = q[j + 4] & 63;
  } else {
    *sc = static_cast<uint8_t>((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4));
    *m = static_cast<uint8_t>((q[j + 4] >> 4) | ((q[j - 0] >> 6) << 4));
  }
}

// The inverse: 6-bit scales sc[0..7] and mins m[0..7] into the 12 packed bytes of a Q4_K/Q5_K
// block (ggml's layout).
inline void q4k_pack_scale_min(const uint8_t sc[8], const uint8_t m[8], uint8_t out[12]) {
  for (int j = 0; j < 12; ++j) out[j] = 0;
  for (int j = 0; j < 8; ++j) {
    if (j < 4) {
      out[j] = sc[j];
      out[j + 4] = m[j];
    } else {
      out[j + 4] = static_cast<uint8_t>((sc[j] & 0xF) | ((m[j] & 0xF) << 4));
      out[j - 4] = static_cast<uint8_t>(out[j - 4] | ((sc[j] >> 4) << 6));
      out[j - 0] = static_cast<uint8_t>(out[j - 0] | ((m[j] >> 4) << 6));
    }
  }
}

// out[0, n) = the weights of a row of n (a multiple of the block) in format t.
void dequantize_row(DType t, const uint8_t* row, int64_t n, float* out);

// Encodes n floats (a multiple of the block) in format t (F16/BF16/F32 too). Q8_0 and Q4_0
// follow ggml's reference quantizers bit for bit; Q4_K, Q5_K and Q6_K use a simple per-sub-block
// min/max fit (valid blocks, less refined than llama.cpp's search).
void quantize_row(DType t, const float* x, int64_t n, uint8_t* out);

}  // namespace swift
