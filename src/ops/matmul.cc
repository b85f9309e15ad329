#include "ops/matmul.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "util/check.h"
#include "util/half.h"

#include "ops/bf16_amx.h"
#include "ops/bf16_dot.h"
#include "ops/lanes.h"
#include "ops/panel.h"
#include "ops/q8_dot.h"
#include "ops/quant.h"

namespace swift {

namespace {

using namespace lanes;

// Tile of R rows x T tokens: loads of each weight vector and activation vector are shared
// across the tile; every output keeps its own lane accumulator (lanes.h), so tiling does not
// change any result bit. Everything is force-inlined and fully unrolled so that the R*T
// accumulators live in registers: without it GCC 12 kept them in a stack array and stored all
// of them on every step, which halved the throughput of batched passes (issue 6 profile).
template <DType DT, int R, int T>
[[gnu::always_inline]] inline void tile_step(const void* w, int64_t row0, int64_t cols, const float* x, int64_t c,
                                             Mask m, Vec (&acc)[R * T]) {
  Vec wv[R];
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) wv[r] = load_w<DT>(w, (row0 + r) * cols + c, m);
#pragma GCC unroll 8
  for (int t = 0; t < T; ++t) {
    const Vec xv = load(x + t * cols + c, m);
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) acc[r * T + t] = fma(wv[r], xv, acc[r * T + t]);
  }
}

// w_row0: the tile's first row in `w` (differs from the output row0 when w is a dequantized
// copy of R rows, see rows_block).
template <DType DT, int R, int T>
[[gnu::always_inline]] inline void tile(const void* w, int64_t row0, int64_t cols, const float* x,
                                        int64_t n_rows_total, float* y, const float* bias, const void* prefetch,
                                        int64_t w_row0) {
  Vec acc[R * T];
#pragma GCC unroll 64
  for (int i = 0; i < R * T; ++i) acc[i] = zero();
  const int64_t main = cols / kLanes * kLanes;
  const Mask full = mask_for(kLanes);
  if (prefetch) {
    // Row blocks stream from DRAM; each is R short rows, too short for the hardware stream
    // prefetcher, and with several tokens per block the FMAs fill the out-of-order window
    // before the next block's loads issue (profile: most samples waited on weight loads). The
    // first tile of a block therefore requests a later block: per 16 columns, R*16 weights,
    // i.e. R*16*size/64 cache lines, so the whole block is covered by the end of the loop.
    // Bytes of weights per step: R rows x 16 weights (Q8_0: 17 bytes per 16 weights).
    constexpr int64_t kStepBytes = R * 16 * dtype_block_bytes(DT) / dtype_block(DT) + R;
    constexpr int64_t kLinesPerStep = std::max<int64_t>(1, (kStepBytes + 63) / 64);
    const char* p = static_cast<const char*>(prefetch);
    for (int64_t c = 0; c < main; c += kLanes) {
      for (int64_t l = 0; l < kLinesPerStep; ++l, p += 64) __builtin_prefetch(p, 0, 0);
      tile_step<DT, R, T>(w, w_row0, cols, x, c, full, acc);
    }
  } else {
    for (int64_t c = 0; c < main; c += kLanes) tile_step<DT, R, T>(w, w_row0, cols, x, c, full, acc);
  }
  if (main < cols) tile_step<DT, R, T>(w, w_row0, cols, x, main, mask_for(cols - main), acc);
  // Horizontal sums, 16 at a time where possible (lanes::reduce16: same tree, fewer uops; on
  // 256-column matrices the reductions were a quarter of the kernel's instructions).
  float out[R * T];
  int i = 0;
  for (; i + 16 <= R * T; i += 16) reduce16(acc + i, out + i);
  for (; i < R * T; ++i) out[i] = reduce(acc[i]);
#pragma GCC unroll 8
  for (int t = 0; t < T; ++t)
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) y[t * n_rows_total + row0 + r] = out[r * T + t] + (bias ? bias[row0 + r] : 0.0f);
}

#if defined(__AVX512F__)
constexpr int kRows = 4, kToks = 6;  // 24 accumulators + 4 weight vectors + 1 activation of 32 registers
#else
constexpr int kRows = 2, kToks = 3;
#endif

template <DType DT, int R, int T>
[[gnu::always_inline]] inline void tile_n(const MatView& w, int64_t row0, const float* x, int64_t t, float* y,
                                          const float* bias) {
  // Prefetch distance: kAhead row blocks (8 KiB of bf16 for 4 x 256), only by the first tile.
  constexpr int64_t kAhead = 4;
  const void* pf = nullptr;
  if (t == 0 && row0 + (kAhead + 1) * R <= w.rows)
    pf = static_cast<const char*>(w.data) + (row0 + kAhead * R) * row_bytes(DT, w.cols);
  tile<DT, R, T>(w.data, row0, w.cols, x + t * w.cols, w.rows, y + t * w.rows, bias, pf, row0);
}

// Q4_K/Q5_K rows: dequantized once into f32 (exactly ggml's values, ops/quant.h), then the f32
// tiles run over the copy for every token group. Same weights, same FMA order: results are
// bit-identical to the fused per-16-weight path, while the 6-bit scale/min decoding is paid once
// per sub-block instead of once per 16 weights and token group (Q4_K decode 131 -> 238 tokens/s
// on the demo model). Q8_0, Q4_0 and Q6_K stay fused: their per-group setup is cheap and the
// scalar copy was slower for them.
template <int R, int T>
[[gnu::always_inline]] inline void tile_deq(const float* buf, int64_t row0, int64_t cols, const float* x, int64_t t,
                                            int64_t n_rows, float* y, const float* bias) {
  tile<DType::kF32, R, T>(buf, row0, cols, x + t * cols, n_rows, y + t * n_rows, bias, nullptr, 0);
}

template <DType DT, int R>
void rows_block(const MatView& w, int64_t row0, const float* x, int64_t n_tok, float* y, const float* bias) {
  if constexpr (DT == DType::kQ4_K || DT == DType::kQ5_K) {
    thread_local std::vector<float> buf;
    if (static_cast<int64_t>(buf.size()) < R * w.cols) buf.resize(static_cast<size_t>(R * w.cols));
    const int64_t rb = row_bytes(DT, w.cols);
    for (int r = 0; r < R; ++r)
      dequantize_row(DT, static_cast<const uint8_t*>(w.data) + (row0 + r) * rb, w.cols, buf.data() + r * w.cols);
    int64_t t = 0;
    for (; t + kToks <= n_tok; t += kToks) tile_deq<R, kToks>(buf.data(), row0, w.cols, x, t, w.rows, y, bias);
    switch (n_tok - t) {
      case 1: tile_deq<R, 1>(buf.data(), row0, w.cols, x, t, w.rows, y, bias); break;
      case 2: tile_deq<R, 2>(buf.data(), row0, w.cols, x, t, w.rows, y, bias); break;
      case 3: tile_deq<R, 3>(buf.data(), row0, w.cols, x, t, w.rows, y, bias); break;
      case 4: tile_deq<R, 4>(buf.data(), row0, w.cols, x, t, w.rows, y, bias); break;
      case 5: tile_deq<R, 5>(buf.data(), row0, w.cols, x, t, w.rows, y, bias); break;
      default: break;
    }
    return;
  }
  int64_t t = 0;
  for (; t + kToks <= n_tok; t += kToks) tile_n<DT, R, kToks>(w, row0, x, t, y, bias);
  switch (n_tok - t) {
    case 1: tile_n<DT, R, 1>(w, row0, x, t, y, bias); break;
    case 2: tile_n<DT, R, 2>(w, row0, x, t, y, bias); break;
    case 3: tile_n<DT, R, 3>(w, row0, x, t, y, bias); break;
    case 4: tile_n<DT, R, 4>(w, row0, x, t, y, bias); break;
    case 5: tile_n<DT, R, 5>(w, row0, x, t, y, bias); break;
    default: break;
  }
}

template <DType DT>
void matmul_typed(const MatView& w, const float* x, int64_t n_tok, float* y, const float* bias, ThreadPool& pool) {
  const int64_t n_blocks = (w.rows + kRows - 1) / kRows;
  pool.parallel_for(n_blocks, [&](int64_t b0, int64_t b1, int) {
    for (int64_t b = b0; b < b1; ++b) {
      const int64_t row0 = b * kRows;
      if (row0 + kRows <= w.rows) {
        rows_block<DT, kRows>(w, row0, x, n_tok, y, bias);
      } else {
        for (int64_t r = row0; r < w.rows; ++r) rows_block<DT, 1>(w, r, x, n_tok, y, bias);
      }
    }
  });
}

}  // namespace

namespace {

// out[c] = element first + c * stride of a plain-typed (F32/F16/BF16) array, as f32.
void plain_to_f32(const void* data, DType t, int64_t first, int64_t stride, int64_t n, float* out) {
  if (t == DType::kF32) {
    const float* src = static_cast<const float*>(data) + first;
    for (int64_t c = 0; c < n; ++c) out[c] = src[c * stride];
  } else {
    const uint16_t* src = static_cast<const uint16_t*>(data) + first;
    if (t == DType::kBF16)
      for (int64_t c = 0; c < n; ++c) out[c] = bf16_to_f32(src[c * stride]);
    else
      for (int64_t c = 0; c < n; ++c) out[c] = f16_to_f32(src[c * stride]);
  }
}

}  // namespace

void mat_row_to_f32(const MatView& w, int64_t r, float* out) {
  const int64_t n = w.cols;
  if (w.layout == MatLayout::kPanel16)  // ops/panel.h: element (r, c) at [r / 16, c, r % 16]
    return plain_to_f32(w.data, w.dtype, r / kPanelRows * n * kPanelRows + r % kPanelRows, kPanelRows, n, out);
  if (w.layout == MatLayout::kPanel16Pairs) {  // ops/bf16_dot.h: (r, c) at [r / 16, c / 2, r % 16, c % 2]
    const int64_t base = r / kPanelRows * ((n + 1) / 2) * 2 * kPanelRows + r % kPanelRows * 2;
    for (int64_t c = 0; c < n; ++c) plain_to_f32(w.data, w.dtype, base + c / 2 * 2 * kPanelRows + c % 2, 1, 1, out + c);
    return;
  }
  if (w.layout == MatLayout::kRows8) {  // ops/q8_dot.h: the row's plain blocks gathered back
    std::vector<uint8_t> row(static_cast<size_t>(row_bytes(w.dtype, n)));
    rows8_row(w, r, row.data());
    return dequantize_row(w.dtype, row.data(), n, out);
  }
  if (dtype_block(w.dtype) == 1) return plain_to_f32(w.data, w.dtype, r * n, 1, n, out);
  // block-quantized: the reference dequantization (ops/quant.h)
  dequantize_row(w.dtype, static_cast<const uint8_t*>(w.data) + r * row_bytes(w.dtype, n), n, out);
}

void matmul(const MatView& w, const float* x, int64_t n_tok, float* y, const float* bias, ThreadPool& pool,
            NextWeights next) {
  // `next` is a prefetch hint for the panel kernels; the AMX and row kernels do without.
  if (w.layout == MatLayout::kPanel16) return matmul_panel(w, x, n_tok, y, bias, pool, next);
  if (w.layout == MatLayout::kPanel16Pairs)
    return bf16_amx_usable(w) ? matmul_bf16_amx(w, x, n_tok, y, bias, pool)
                              : matmul_bf16_dot(w, x, n_tok, y, bias, pool, next);
  SWIFT_CHECK(w.layout == MatLayout::kRows, "matmul: a {} matrix in the --math q8 interleaved layout goes to matmul_q8",
              dtype_name(w.dtype));
  SWIFT_CHECK(w.cols % dtype_block(w.dtype) == 0, "{} matrix with {} columns", dtype_name(w.dtype), w.cols);
  switch (w.dtype) {
    case DType::kF32: matmul_typed<DType::kF32>(w, x, n_tok, y, bias, pool); break;
    case DType::kF16: matmul_typed<DType::kF16>(w, x, n_tok, y, bias, pool); break;
    case DType::kBF16: matmul_typed<DType::kBF16>(w, x, n_tok, y, bias, pool); break;
    case DType::kQ8_0: matmul_typed<DType::kQ8_0>(w, x, n_tok, y, bias, pool); break;
    case DType::kQ4_0: matmul_typed<DType::kQ4_0>(w, x, n_tok, y, bias, pool); break;
    case DType::kQ4_K: matmul_typed<DType::kQ4_K>(w, x, n_tok, y, bias, pool); break;
    case DType::kQ5_K: matmul_typed<DType::kQ5_K>(w, x, n_tok, y, bias, pool); break;
    case DType::kQ6_K: matmul_typed<DType::kQ6_K>(w, x, n_tok, y, bias, pool); break;
  }
}

void matmul_rounded(const MatView& w, const uint16_t* x16, int64_t n_tok, float* y, const float* bias, ThreadPool& pool,
                    NextWeights next) {
  SWIFT_CHECK(w.layout == MatLayout::kPanel16Pairs, "matmul_rounded: a {} matrix not in the bf16 pairs layout",
              dtype_name(w.dtype));
  if (bf16_amx_usable(w)) return matmul_bf16_amx_rounded(w, x16, n_tok, y, bias, pool);
  matmul_bf16_dot_rounded(w, x16, n_tok, y, bias, pool, next);
}

bool swiglu_rounded_usable(const MatView& w, int64_t n_tok) {
  return bf16_amx_usable(w) ? bf16_amx_swiglu_usable(w) : bf16_dot_swiglu_usable(w) && n_tok >= kSwigluDotMinTokens;
}

void matmul_swiglu_rounded(const MatView& w, const uint16_t* x16, int64_t n_tok, float* g, uint16_t* g16,
                           const float* bias, ThreadPool& pool, NextWeights next) {
  // Any batch here (the kernels' own checks name a matrix they cannot run); the token bound is the caller's.
  if (bf16_amx_usable(w)) return matmul_bf16_amx_swiglu(w, x16, n_tok, g, g16, bias, pool);
  matmul_bf16_dot_swiglu(w, x16, n_tok, g, g16, bias, pool, next);
}

void matmul_reference(const MatView& w, const float* x, int64_t n_tok, float* y, const float* bias) {
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
