#include "ops/matmul.h"

#include <cmath>
#include <vector>

#include "util/half.h"

namespace swift {

namespace {

// Lanes of independent partial sums: wide enough for one AVX-512 register of f32 (or two AVX2
// registers), so the compiler vectorises the lane loop without reassociating anything.
constexpr int kLanes = 16;
// Tokens multiplied per pass over a converted weight row (registers: kTokBlock accumulators).
constexpr int kTokBlock = 4;

// Fixed-order reduction of the lanes; identical for every call site.
inline float reduce_lanes(const float* acc) {
  float s8[8], s4[4];
  for (int i = 0; i < 8; ++i) s8[i] = acc[i] + acc[i + 8];
  for (int i = 0; i < 4; ++i) s4[i] = s8[i] + s8[i + 4];
  return (s4[0] + s4[2]) + (s4[1] + s4[3]);
}

// Dots of one f32 row with NT token vectors. The per-token operation sequence is independent of
// NT, which is what makes the kernel batch-invariant.
template <int NT>
inline void dot_row(const float* w, const float* x, int64_t stride_x, int64_t cols, float* out) {
  float acc[NT][kLanes] = {};
  const int64_t main = cols / kLanes * kLanes;
  for (int64_t c = 0; c < main; c += kLanes) {
    for (int t = 0; t < NT; ++t) {
      const float* xt = x + t * stride_x + c;
      for (int l = 0; l < kLanes; ++l) acc[t][l] = std::fma(w[c + l], xt[l], acc[t][l]);
    }
  }
  for (int64_t c = main; c < cols; ++c) {
    for (int t = 0; t < NT; ++t) acc[t][c - main] = std::fma(w[c], x[t * stride_x + c], acc[t][c - main]);
  }
  for (int t = 0; t < NT; ++t) out[t] = reduce_lanes(acc[t]);
}

}  // namespace

void mat_row_to_f32(const MatView& w, int64_t r, float* out) {
  const int64_t n = w.cols;
  switch (w.dtype) {
    case DType::kF32: {
      const float* src = static_cast<const float*>(w.data) + r * n;
      for (int64_t i = 0; i < n; ++i) out[i] = src[i];
      break;
    }
    case DType::kBF16: {
      const uint16_t* src = static_cast<const uint16_t*>(w.data) + r * n;
      for (int64_t i = 0; i < n; ++i) out[i] = bf16_to_f32(src[i]);
      break;
    }
    case DType::kF16: {
      const uint16_t* src = static_cast<const uint16_t*>(w.data) + r * n;
#if defined(__F16C__) && defined(__FLT16_MAX__)
      const _Float16* h = reinterpret_cast<const _Float16*>(src);
      for (int64_t i = 0; i < n; ++i) out[i] = static_cast<float>(h[i]);
#else
      for (int64_t i = 0; i < n; ++i) out[i] = f16_to_f32(src[i]);
#endif
      break;
    }
  }
}

void matmul(const MatView& w, const float* x, int64_t n_tok, float* y, const float* bias,
            ThreadPool& pool) {
  const int64_t rows = w.rows, cols = w.cols;
  pool.parallel_for(rows, [&](int64_t r0, int64_t r1, int) {
    thread_local std::vector<float> row;
    if (static_cast<int64_t>(row.size()) < cols) row.resize(cols);
    float out[kTokBlock];
    for (int64_t r = r0; r < r1; ++r) {
      const float* wr;
      if (w.dtype == DType::kF32) {
        wr = static_cast<const float*>(w.data) + r * cols;
      } else {
        mat_row_to_f32(w, r, row.data());
        wr = row.data();
      }
      const float b = bias ? bias[r] : 0.0f;
      int64_t t = 0;
      for (; t + kTokBlock <= n_tok; t += kTokBlock) {
        dot_row<kTokBlock>(wr, x + t * cols, cols, cols, out);
        for (int i = 0; i < kTokBlock; ++i) y[(t + i) * rows + r] = out[i] + b;
      }
      for (; t < n_tok; ++t) {
        dot_row<1>(wr, x + t * cols, cols, cols, out);
        y[t * rows + r] = out[0] + b;
      }
    }
  });
}

void matmul_reference(const MatView& w, const float* x, int64_t n_tok, float* y,
                      const float* bias) {
  std::vector<float> row(w.cols);
  for (int64_t r = 0; r < w.rows; ++r) {
    mat_row_to_f32(w, r, row.data());
    for (int64_t t = 0; t < n_tok; ++t) {
      double s = bias ? bias[r] : 0.0;
      for (int64_t c = 0; c < w.cols; ++c) s += static_cast<double>(row[c]) * x[t * w.cols + c];
      y[t * w.rows + r] = static_cast<float>(s);
    }
  }
}

}  // namespace swift
