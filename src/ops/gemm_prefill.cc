// Prompt-prefill GEMM (ops/matmul.h: matmul_prefill).
//
// Packed weights (F32/F16/BF16 panels as the model loads them, BF16 pair panels for --math bf16)
// go to the f32-accurate AMX kernel where the CPU has tiles (ops/bf16_amx.h: matmul_f32_amx),
// else straight to matmul(), whose f32 panel kernel already sums in this order; what follows serves
// row-major matrices (block-quantized types,
// views built in place). Their matmul() is a dot-product kernel: lanes run along the columns and every output ends with
// a horizontal reduction. That is what makes it batch-invariant, but with the short rows of small models (256 columns =
// 16 vector steps) the reductions and per-tile set-up cost as much as the multiply-adds, and long prompts ran at ~40
// GFLOP/s. Here lanes run along the rows instead (outer products): a block of 32 rows is converted once per call into
// an f32 panel laid out column by column, and each step multiplies two 16-row panel vectors with 12 broadcast
// activations into 24 register accumulators — no reductions at all. Each output is still one
// sequential sum over the columns, so the result does not depend on the thread split or on the
// batch size either; it differs from matmul() only in rounding (the sum order), which is why it
// is used for prompt prefill alone (every decoding mode prefills the same way, so lossless
// decoding is unaffected).
#include <algorithm>
#include <vector>

#include "ops/bf16_amx.h"
#include "ops/lanes.h"
#include "ops/matmul.h"
#include "util/check.h"

namespace swift {

namespace {

using namespace lanes;

constexpr int64_t kPrefillPanelRows = 2 * kLanes;  // 32 rows per panel: two vectors
constexpr int kMaxTok = 12;                 // tokens per register tile (24 accumulators)

// Panel of rows [row0, row0 + 32) (zero rows past the end): panel[c * 32 + r] = W[row0 + r, c].
void pack_panel(const MatView& w, int64_t row0, std::vector<float>& row, std::vector<float>& panel) {
  const int64_t cols = w.cols;
  panel.assign(static_cast<size_t>(cols * kPrefillPanelRows), 0.0f);
  row.resize(static_cast<size_t>(cols));
  for (int64_t r = 0; r < kPrefillPanelRows && row0 + r < w.rows; ++r) {
    mat_row_to_f32(w, row0 + r, row.data());
    for (int64_t c = 0; c < cols; ++c) panel[static_cast<size_t>(c * kPrefillPanelRows + r)] = row[static_cast<size_t>(c)];
  }
}

template <int T>
[[gnu::always_inline]] inline void panel_tile(const float* panel, int64_t cols, const float* x, int64_t t0,
                                              float* y, int64_t rows, int64_t row0, const float* bias) {
  Vec acc0[T], acc1[T];
#pragma GCC unroll 16
  for (int t = 0; t < T; ++t) acc0[t] = acc1[t] = zero();
  const Mask full = mask_for(kLanes);
  const float* xt = x + t0 * cols;
  for (int64_t c = 0; c < cols; ++c) {
    const Vec w0 = load(panel + c * kPrefillPanelRows, full);
    const Vec w1 = load(panel + c * kPrefillPanelRows + kLanes, full);
#pragma GCC unroll 16
    for (int t = 0; t < T; ++t) {
      const Vec xb = broadcast(xt[t * cols + c]);
      acc0[t] = fma(w0, xb, acc0[t]);
      acc1[t] = fma(w1, xb, acc1[t]);
    }
  }
  const int64_t left = rows - row0;  // >= 1
  const bool two = left > kLanes;
  const Mask m0 = mask_for(std::min<int64_t>(left, kLanes)), m1 = two ? mask_for(left - kLanes) : m0;
  Vec b0 = zero(), b1 = zero();
  if (bias) {
    b0 = load(bias + row0, m0);
    if (two) b1 = load(bias + row0 + kLanes, m1);
  }
#pragma GCC unroll 16
  for (int t = 0; t < T; ++t) {
    float* yt = y + (t0 + t) * rows + row0;
    store(yt, lanes::add(acc0[t], b0), m0);
    if (two) store(yt + kLanes, lanes::add(acc1[t], b1), m1);
  }
}

void panel_rows(const float* panel, int64_t cols, const float* x, int64_t n_tok, float* y, int64_t rows,
                int64_t row0, const float* bias) {
  int64_t t = 0;
  for (; t + kMaxTok <= n_tok; t += kMaxTok) panel_tile<kMaxTok>(panel, cols, x, t, y, rows, row0, bias);
  for (; t + 4 <= n_tok; t += 4) panel_tile<4>(panel, cols, x, t, y, rows, row0, bias);
  for (; t < n_tok; ++t) panel_tile<1>(panel, cols, x, t, y, rows, row0, bias);
}

}  // namespace

void matmul_prefill(const MatView& w, const float* x, int64_t n_tok, float* y, const float* bias, ThreadPool& pool) {
  SWIFT_CHECK(n_tok >= 1);
  // BF16, F16 and F32 panels with AMX: three to six bf16 products per step, f32-accurate (ops/bf16_amx.h).
  if (f32_amx_usable(w)) return matmul_f32_amx(w, x, n_tok, y, bias, pool);
  // Other packed weights: matmul()'s kernels already read them without per-call packing (the f32
  // panel kernel sums in this order; the bf16 ones have their own contracts).
  if (w.layout != MatLayout::kRows) return matmul(w, x, n_tok, y, bias, pool);
  const int64_t n_panels = (w.rows + kPrefillPanelRows - 1) / kPrefillPanelRows;
  pool.parallel_for(n_panels, [&](int64_t begin, int64_t end, int) {
    thread_local std::vector<float> row, panel;
    for (int64_t p = begin; p < end; ++p) {
      pack_panel(w, p * kPrefillPanelRows, row, panel);
      panel_rows(panel.data(), w.cols, x, n_tok, y, w.rows, p * kPrefillPanelRows, bias);
    }
  });
}

void matmul_prefill_reference_order(const MatView& w, const float* x, int64_t n_tok, float* y, const float* bias) {
  // The same sum order in scalar code (tests: the kernel must match it bit for bit).
  std::vector<float> row(static_cast<size_t>(w.cols));
  for (int64_t r = 0; r < w.rows; ++r) {
    mat_row_to_f32(w, r, row.data());
    for (int64_t t = 0; t < n_tok; ++t) {
      float acc = 0.0f;
      for (int64_t c = 0; c < w.cols; ++c) acc = std::fma(row[static_cast<size_t>(c)], x[t * w.cols + c], acc);
      y[t * w.rows + r] = acc + (bias ? bias[r] : 0.0f);
    }
  }
}

}  // namespace swift
