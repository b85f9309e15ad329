// Outer-product kernel over panel-packed weights (ops/panel.h).
//
// Tiles: P panels (16 rows each) x T tokens, P*T accumulators in registers. One token or two
// (plain decoding, short drafts) use P = 8 so that 8+ independent FMA chains hide the FMA
// latency while the weights stream from memory; three or four (small verification trees) use
// 6 x 4, one pass over the weights (8 x 2 + 8 x 1 read them twice: a 3-token pass cost as much
// as a 4-token one; 6 x 4 took 0.1-0.27 ms off 3- and 4-token passes); longer batches use 4
// panels x 4 tokens, whose 4 x cols x 16 weights stay in L1 while the token tiles reuse them,
// except that F16/BF16 weights take 4 x 6 tiles: converted per tile for 5-11 tokens, and from
// 12 tokens on over an f32 copy of the four panels (panel_tokens). The tile shape never
// changes a result (ops/panel.h, numeric contract).
//
// Measured on this 2-core AVX-512 machine, swift-mini-24L BF16, 2 threads (three alternating
// runs each, `generate` of 256 tokens after the 200-token case-0 prompt): decode 352-449 ->
// 541-599 tokens/s, prefill 287-374 -> 158-162 ms. With a cold cache the one-token pass over all
// matrices streams at ~38 GB/s, ~90% of this machine's two-thread read bandwidth (42 GB/s).
#include <algorithm>
#include <vector>

#include "ops/lanes.h"
#include "ops/matmul.h"
#include "ops/panel.h"
#include "ops/prefetch_ahead.h"
#include "util/aligned.h"
#include "util/check.h"

namespace swift {

using namespace lanes;
static_assert(kPanelRows == kLanes, "one panel column is one vector");

bool panel_supported(DType t) { return t == DType::kF32 || t == DType::kF16 || t == DType::kBF16; }

size_t panel_bytes(DType t, int64_t rows, int64_t cols) {
  SWIFT_CHECK(panel_supported(t) && rows >= 0 && cols >= 0);
  return MatView{nullptr, t, rows, cols, MatLayout::kPanel16}.bytes();
}

namespace {

// out panel p = the 16 rows [16p, 16p + 16) transposed; zero rows past the end. Written panel
// by panel, sequentially (the source rows are 16 sequential streams).
template <typename E>
void pack_typed(const E* in, int64_t rows, int64_t cols, E* out) {
  const int64_t n_panels = (rows + kPanelRows - 1) / kPanelRows;
  for (int64_t p = 0; p < n_panels; ++p) {
    const int64_t live = std::min<int64_t>(kPanelRows, rows - p * kPanelRows);
    const E* src = in + p * kPanelRows * cols;
    E* dst = out + p * cols * kPanelRows;
    for (int64_t c = 0; c < cols; ++c) {
      E* col = dst + c * kPanelRows;
      for (int64_t l = 0; l < live; ++l) col[l] = src[l * cols + c];
      for (int64_t l = live; l < kPanelRows; ++l) col[l] = E{};
    }
  }
}

}  // namespace

MatView panel_pack(const MatView& src, void* dst) {
  SWIFT_CHECK(src.layout == MatLayout::kRows && panel_supported(src.dtype), "{} matrix cannot be panel-packed",
              dtype_name(src.dtype));
  SWIFT_CHECK(reinterpret_cast<uintptr_t>(dst) % 64 == 0);
  if (src.dtype == DType::kF32)
    pack_typed(static_cast<const uint32_t*>(src.data), src.rows, src.cols, static_cast<uint32_t*>(dst));
  else pack_typed(static_cast<const uint16_t*>(src.data), src.rows, src.cols, static_cast<uint16_t*>(dst));
  return MatView{dst, src.dtype, src.rows, src.cols, MatLayout::kPanel16};
}

namespace {

struct PanelArgs {
  const void* w;  // [n_panels, cols, 16]
  int64_t rows, cols;
  const float* x;  // [n_tok, cols]
  float* y;        // [n_tok, rows]
  const float* bias;
  NextWeights next;  // prefetched by each thread after its share (ops/prefetch_ahead.h)
};

// Panel p's weights ([cols, 16] of DT); panel_at<DT>(a, n_panels) is the end of the matrix.
template <DType DT>
const char* panel_at(const PanelArgs& a, int64_t p) {
  return static_cast<const char*>(a.w) + p * a.cols * kPanelRows * dtype_block_bytes(DT);
}

// Panels [p0, p0 + P) x tokens [t0, t0 + T). wf null: the weights from the panels; else their
// f32 copy [cols][P][16] (panel_tokens), the same values. wf_out: where to write that
// copy of the weights this tile reads from the panels.
template <DType DT, int P, int T>
[[gnu::always_inline]] inline void panel_tile(const PanelArgs& a, int64_t p0, int64_t t0, PrefetchAhead& pf,
                                              const float* wf = nullptr, float* wf_out = nullptr) {
  Vec acc[P * T];
#pragma GCC unroll 32
  for (int i = 0; i < P * T; ++i) acc[i] = zero();
  const Mask full = mask_for(kLanes);
  const int64_t cols = a.cols;
  const float* xt = a.x + t0 * cols;
  for (int64_t c = 0; c < cols; ++c) {
    Vec wv[P];
#pragma GCC unroll 8
    for (int p = 0; p < P; ++p)
      wv[p] =
          wf ? load(wf + (c * P + p) * kPanelRows, full) : load_w<DT>(a.w, ((p0 + p) * cols + c) * kPanelRows, full);
    pf.step();
    if (wf_out)
#pragma GCC unroll 8
      for (int p = 0; p < P; ++p) store(wf_out + (c * P + p) * kPanelRows, wv[p], full);
#pragma GCC unroll 8
    for (int t = 0; t < T; ++t) {
      const Vec xb = broadcast(xt[t * cols + c]);
#pragma GCC unroll 8
      for (int p = 0; p < P; ++p) acc[p * T + t] = fma(wv[p], xb, acc[p * T + t]);
    }
  }
#pragma GCC unroll 8
  for (int p = 0; p < P; ++p) {
    const int64_t row0 = (p0 + p) * kPanelRows;
    const Mask m = mask_for(std::min<int64_t>(a.rows - row0, kLanes));  // >= 1 row: panels exist only for rows
    const Vec b = a.bias ? load(a.bias + row0, m) : zero();
#pragma GCC unroll 8
    for (int t = 0; t < T; ++t) store(a.y + (t0 + t) * a.rows + row0, lanes::add(acc[p * T + t], b), m);
  }
}

// Tiles of 6 tokens over an f32 copy of the P panels' weights (panel_tokens), for batches of
// 12+ tokens of F16/BF16 weights. Why: converting a 16-bit weight vector to f32 takes two uops
// on the ports that also run the fmas (a zero-extension and a shift), so 4 x 4 tiles that convert every
// weight vector again for each token tile issued 16 fmas and 8 conversion uops per column,
// ~65% of the fma peak: the bound of the f32 16-token pass on the 2-core Xeon (its matrix
// products ~2.4 ms, as 24 fmas per 16 cycles per core predicts). The first 6-token tile converts
// the weights as they stream in and also stores them as f32 in the thread's buffer (the four
// panels of a 768-column matrix: 192 KB, in L2); the later tiles read that copy: 24 fmas and no
// conversions per column. Converting in a pass of its own before the first tile lost more than
// it saved (the stream from memory then overlapped no fmas: 2.38 -> 2.58-2.84 ms for the
// products of a 16-token pass); this way 2.34-2.40 -> 2.11-2.22 ms. Prefill takes this kernel
// for F16 weights and, on CPUs without AMX, for BF16 (ops/matmul.h): F16 warm prefill of the demo
// model 5.1-5.2K -> 6.2-6.8K tokens/s here. Same weights, same fma chain per output: the same
// bits (ops/panel.h).
constexpr int kWideTok = 6;
// From two whole tiles on: with 7-11 tokens the converting tile and a short remainder over the
// copy cost more than 4 x 4 tiles (8 tokens: 2.21-2.25 -> 2.34-2.40 ms per pass, `bench
// --verify-cost`); 12 tokens 3.08-3.13 -> 2.87-2.94, 16 3.96-3.98 -> 3.65-3.66, 64 14.9-15.0 ->
// 12.6-12.8 ms.
constexpr int kWideMin = 2 * kWideTok;

// Tokens [t, n_tok) of panels [p0, p0 + P): tiles of T, then the remainder (< T tokens), the
// weights from their f32 copy wf or (null) from the panels.
template <DType DT, int P, int T>
void panel_tiles(const PanelArgs& a, int64_t p0, int64_t t, int64_t n_tok, PrefetchAhead& pf, const float* wf) {
  for_token_tiles<T>(
      t, n_tok, [&]<int W>(int64_t t0) __attribute__((always_inline)) { panel_tile<DT, P, W>(a, p0, t0, pf, wf); });
}

// All tokens for panels [p0, p0 + P). 6-token tiles (F16/BF16 weights, 5+ tokens) run from
// kWideMin tokens on over the f32 copy the first tile writes (see kWideTok);
// below that straight from the panels: each tile still converts the weights, but 6 tokens as one
// tile instead of 4 + 2 (9-11 as two instead of three) issue half (two thirds) of the
// conversions: a 6-token pass 1.91-1.96 -> 1.59-1.71 ms (`bench --verify-cost`, three
// alternations on the Xeon), 8 tokens unchanged.
template <DType DT, int P, int T>
void panel_tokens(const PanelArgs& a, int64_t p0, int64_t n_tok, PrefetchAhead& pf) {
  pf.begin_group(panel_at<DT>(a, p0), panel_at<DT>(a, p0 + P), (n_tok + T - 1) / T * a.cols);
  if constexpr (T == kWideTok) {
    if (n_tok >= kWideMin) {
      thread_local std::vector<float> buffer;
      float* wf = grow_aligned64(buffer, a.cols * P * kPanelRows);
      panel_tile<DT, P, T>(a, p0, 0, pf, nullptr, wf);  // the first tile widens what it streams in
      return panel_tiles<DT, P, T>(a, p0, T, n_tok, pf, wf);
    }
  }
  panel_tiles<DT, P, T>(a, p0, 0, n_tok, pf, nullptr);
}

// Registers: a Vec is one of 32 zmm registers with AVX-512; two of 16 ymm with AVX2, four of 32
// with NEON (ops/lanes.h): 8 Vecs either way, so NEON takes the AVX2 shapes below.
using lanes::kVecRegisters;
// Panels per tile by token-tile width: with AVX-512 8 for T <= 2 (16 accumulators + 8 weight
// vectors), 6 for T = 4 (24 + 6; F32 batches of 5+ tokens take 4 x 4), 4 for T = 6 (24 + 4);
// with AVX2 P x T accumulators and P weights must fit 8 Vecs: 2 x 2, 1 x 4, 1 x 6. The AVX-512
// shapes spilled under AVX2: on the Zen 4 VM (x86-64-v3 build, `bench --verify-cost`, two
// alternations) 2-token passes took 2.2-2.5 -> 2.0-2.2 ms, 16 tokens 10.5-12.6 -> 8.4-9.1, 32
// tokens 20.3-27.7 -> 15.2-16.0; one token unchanged (1.6-2.0 ms).
constexpr int panels_for(int t) {
  if (kVecRegisters == 32) return t <= 2 ? 8 : t == 4 ? 6 : 4;
  return t <= 2 ? 2 : 1;
}

// With 8 Vec registers (AVX2, NEON), one token (plain decoding) takes wider tiles than 2 x 2:
// with T = 1 the weights are used once, as the fma's memory operand, so 6 x 1 needs 12 of the 16
// ymm registers for accumulators and streams 6 panels per column step instead of 2 (fewer
// instructions per byte of weights). NEON's fmla takes no memory operand: 24 of its 32 registers
// for accumulators, 4 for the weights in flight, 1 for the token's broadcast value.
// x86-64-v3 build on the Zen 4 VM, `bench --verify-cost`, three alternations: one-token passes
// 2.12-2.22 -> 1.85-1.90 ms (medians), decoding 440-460 -> 508-526 tokens/s; 4 x 1 and 8 x 1
// measured the same as 6 x 1 within the noise.
constexpr int kOneTokenPanelsNarrow = 6;

// Panels [p0, p0 + np) in chunks of PMAX, then 4, 2, 1 (those below PMAX).
template <DType DT, int T, int PMAX = panels_for(T)>
void panel_range(const PanelArgs& a, int64_t p0, int64_t np, int64_t n_tok) {
  static_assert(kVecRegisters < 32 || PMAX * T + PMAX + 1 <= 32,
                "accumulators + weights + broadcast must fit 32 registers");
  PrefetchAhead pf(panel_at<DT>(a, p0 + np), a.next, p0, p0 + np,  // this range's weights
                   (a.rows + kPanelRows - 1) / kPanelRows);
  if constexpr (PMAX > 4)
    for (; np >= PMAX; p0 += PMAX, np -= PMAX) panel_tokens<DT, PMAX, T>(a, p0, n_tok, pf);
  if constexpr (PMAX >= 4)
    for (; np >= 4; p0 += 4, np -= 4) panel_tokens<DT, 4, T>(a, p0, n_tok, pf);
  if constexpr (PMAX >= 2)
    for (; np >= 2; p0 += 2, np -= 2) panel_tokens<DT, 2, T>(a, p0, n_tok, pf);
  for (; np >= 1; p0 += 1, np -= 1) panel_tokens<DT, 1, T>(a, p0, n_tok, pf);
  pf.hand_over_to_idle();
}

template <DType DT>
void matmul_panel_typed(const PanelArgs& a, int64_t n_tok, ThreadPool& pool) {
  panel_parallel((a.rows + kPanelRows - 1) / kPanelRows, n_tok, pool, [&](PanelTiles tiles, int64_t p0, int64_t np) {
    if constexpr (kVecRegisters < 32)
      if (n_tok == 1) return panel_range<DT, 1, kOneTokenPanelsNarrow>(a, p0, np, n_tok);
    if (tiles == kPanelTiles2)
      panel_range<DT, 2>(a, p0, np, n_tok);
    else if (tiles == kPanelTiles4)
      panel_range<DT, 4>(a, p0, np, n_tok);
    else if constexpr (DT == DType::kF32)
      panel_range<DT, 4, kVecRegisters == 32 ? 4 : 1>(a, p0, np, n_tok);  // 4 x 4: nothing to convert
    else
      panel_range<DT, kWideTok>(a, p0, np, n_tok);
  });
}

}  // namespace

void matmul_panel(const MatView& w, const float* x, int64_t n_tok, float* y, const float* bias, ThreadPool& pool,
                  NextWeights next) {
  SWIFT_CHECK(w.layout == MatLayout::kPanel16 && panel_supported(w.dtype));
  if (n_tok <= 0 || w.rows == 0) return;
  const PanelArgs a{w.data, w.rows, w.cols, x, y, bias, next};
  switch (w.dtype) {
    case DType::kF32: matmul_panel_typed<DType::kF32>(a, n_tok, pool); break;
    case DType::kF16: matmul_panel_typed<DType::kF16>(a, n_tok, pool); break;
    case DType::kBF16: matmul_panel_typed<DType::kBF16>(a, n_tok, pool); break;
    default: SWIFT_CHECK(false, "unreachable");
  }
}

}  // namespace swift
