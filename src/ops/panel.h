// Panel-packed weights and their outer-product kernel (issue 6: verification cost).
//
// The row-major kernel (matmul.cc) computes dot products: lanes run along a row's columns and
// every output ends in a horizontal reduction. With the short rows of small models (256 columns
// = 16 vector steps) those reductions and per-tile set-up cost as much as the multiply-adds, so
// verifying 16 tokens cost 6.2x one token. Here lanes run along rows instead: a weight matrix is
// repacked once at load into panels of 16 rows stored column by column (MatLayout::kPanel16), a
// vector load is one column of a panel, and each column step is P panel vectors x T broadcast
// activations of fused multiply-adds into P*T register accumulators — no reductions at all.
//
// Numeric contract (batch invariance, as matmul.h requires for lossless decoding): every output
// y[t, r] = (((0 + W[r,0] x[t,0]) + W[r,1] x[t,1]) + ...) as one chain of std::fma in increasing
// column order, then + bias (or + 0). It does not depend on the token count, the tile shape, the
// position of t in the batch or the thread split. It is the order matmul_prefill uses for
// row-major weights (matmul.h), so for packed weights prefill, decode and verification round
// identically, except BF16 panels on CPUs with AMX tiles, which matmul_prefill runs as three
// bf16 products (ops/bf16_amx.h: matmul_f32_amx; prefill only, as lossless decoding allows).
#pragma once

#include <algorithm>
#include <cstdint>

#include "ops/dtype.h"
#include "ops/prefetch_ahead.h"
#include "util/thread_pool.h"

namespace swift {

// F32, F16 and BF16 can be packed (block-quantized types keep their row-major kernel).
bool panel_supported(DType t);

// Bytes of the packed copy of a rows x cols matrix of `t` (zero-padded to whole panels).
size_t panel_bytes(DType t, int64_t rows, int64_t cols);

// Packs row-major `src` (panel_supported dtype) into `dst` (panel_bytes, 64-byte aligned) and
// returns the view of the copy. The values are the same bits; only their order changes.
MatView panel_pack(const MatView& src, void* dst);

// Tile kind of a batch for the panel kernels (this and ops/bf16_dot.h): kPanelTiles2 for 1-2
// tokens (8 panels x 2 tokens), kPanelTiles4 for 3-4 (6 x 4: one pass over the weights where
// 8 x 2 needed a second one from L2 for the third token), kPanelTilesMany beyond (4-panel tiles
// whose weights stay in L1 while the token tiles reuse them).
enum PanelTiles { kPanelTiles2, kPanelTiles4, kPanelTilesMany };

// Tokens [t, n_tok) as tiles of T, then the remainder (< T tokens): tile.template operator()<W>(t0)
// for each tile [t0, t0 + W). The panel kernels' token loop (T <= 6: tiles of at most 6 tokens).
template <int T, typename Tile>
[[gnu::always_inline]] inline void for_token_tiles(int64_t t, int64_t n_tok, const Tile& tile) {
  static_assert(T >= 1 && T <= 6);
  for (; t + T <= n_tok; t += T) tile.template operator()<T>(t);
  switch (n_tok - t) {
    case 1:
      if constexpr (T > 1) tile.template operator()<1>(t);
      break;
    case 2:
      if constexpr (T > 2) tile.template operator()<2>(t);
      break;
    case 3:
      if constexpr (T > 3) tile.template operator()<3>(t);
      break;
    case 4:
      if constexpr (T > 4) tile.template operator()<4>(t);
      break;
    case 5:
      if constexpr (T > 5) tile.template operator()<5>(t);
      break;
    default:
      break;
  }
}

// Splits n_panels over the pool for a batch of n_tok and calls fn(tiles, p0, np) on disjoint
// ranges [p0, p0 + np). Work unit: a group of as many panels as the tile (8 / 6 / 4), smaller
// when a matrix has too few panels to give every thread two units (the K/V projections of small
// models: 8 panels). Each output row is computed by one call, so the split never changes a result.
template <typename F>
void panel_parallel(int64_t n_panels, int64_t n_tok, ThreadPool& pool, const F& fn) {
  const PanelTiles tiles = n_tok <= 2 ? kPanelTiles2 : n_tok <= 4 ? kPanelTiles4 : kPanelTilesMany;
  int64_t group = tiles == kPanelTiles2 ? 8 : tiles == kPanelTiles4 ? 6 : 4;
  while (group > 1 && (n_panels + group - 1) / group < 2 * pool.size()) group = group == 6 ? 4 : group / 2;
  pool.parallel_for((n_panels + group - 1) / group, [&](int64_t g0, int64_t g1, int) {
    const int64_t p0 = g0 * group;
    fn(tiles, p0, std::min(g1 * group, n_panels) - p0);
  });
}

// y[t, r] for w.layout == kPanel16 (shapes and `next` as matmul()). Called by matmul and matmul_prefill.
void matmul_panel(const MatView& w, const float* x, int64_t n_tok, float* y, const float* bias, ThreadPool& pool,
                  NextWeights next = {});

}  // namespace swift
