// Attention in bf16 for `--math bf16` (ops/attention.h: attention_bf16): on AMX tiles where the
// CPU has them, else with AVX-512 BF16's vdpbf16ps on the same operands (Products below).
//
// Why: with the matrix products on AMX (ops/bf16_amx.h), f32 attention was the largest cost of a
// verification pass: 16 tokens after 300 cost 1.1-1.2 ms of a ~2.6 ms pass on the 2-core Xeon
// this was measured on, bound by multiply-adds and lane reductions. The tile unit does a
// 16 x 32 x 16 product per instruction. Without AMX (AMD Zen 4, issue 6), f32 attention was
// again the largest part of a 16-token `--math bf16` pass (~200K of ~450K TSC cycles per layer,
// 16 tokens after 300, 2-core EPYC); vdpbf16ps does 32 multiply-adds per instruction where an
// f32 fma does 16, over half the bytes, and the pair layout needs no lane reductions:
// 16 tokens ~200K -> ~115K cycles per layer, one token ~37K -> ~28K (the slower thread of the
// round, three alternated runs each), and the bf16-only cache halves what a decode step reads
// from the KV cache.
//
// Numbers: q, the cached keys and values and the softmax weights are rounded to bf16 (round to
// nearest even, as the activations of the matrix products); scores, softmax and sums stay f32.
// Per work unit (a KV head and a chunk of tokens, as in attention.cc), query rows are
// (token, head) pairs of the group sharing the KV head, taken in row tiles of whole tokens (16 / G
// tokens, up to 16 rows), each through all three steps before the next:
//   scores   = Q K^T    A = up to 16 query rows x 32 dims (q rows as bf16), B = K^T in pair
//                       layout (16 dim pairs x 16 keys, the list's keys in order; the cache's
//                       bf16 copy is kept in this layout): result tiles are query rows x keys,
//                       stored straight into the score rows (raw; the softmax applies the scale);
//   softmax  per query row over its list (softmax_to_bf16, f32), weights rounded to bf16;
//   out      = P V      A = query rows x 32 keys, B = V in pair layout (16 key pairs x 16 dims),
//                       accumulated over the list's whole blocks of 32 keys in list order; the
//                       last, partial block (n % 32 keys) on AVX-512, one f32 fma per key in list
//                       order (partial_block); then x 1/sum.
// Keys are packed by their index in the query's list (key j: score tile column j % 16, value
// block j / 32; a partial score tile padded with zero keys), so every tile instruction sees the
// same operands at the same positions whether the token is alone or in a batch, and so does the
// partial block's fma chain. The context the chunk's tokens share (verification: committed
// slots; prefill: the earlier prompt) is packed once (or read from the cache's bf16 copy; a cache
// that keeps only the copy has every other key and value gathered from it, same bits) and
// multiplied for all the tile's rows at once; the keys past it are scored for all rows at once
// too (each slot once; a score does not depend on where its key sits), and each token's own
// whole value blocks follow on a tile of its rows alone, then its partial block. A row's result
// thus depends on its position in a tile only through the hardware's per-element computation,
// which is a fixed function of that element's operands (the matrix kernel's contract,
// ops/bf16_amx.h; tested here for rows and columns by tokens alone vs in batches,
// tests/ops/attention_bf16_test.cc). Tiles are configured with the row tile's rows (a lone
// token's 1-2 rows load and store no more than that). The pair layout and the packing of keys and
// values into it (from f32 rows or the cache's bf16 copy) are in ops/attention_bf16_pairs.h.
//
// Measured on the Xeon (24 layers, 16 tokens after 200, 2 threads): ~310 us against ~790 us for
// the f32 kernel; one token after 200: ~75 us against ~100 us. The partial block on AVX-512
// (instead of a tile pass that loads and stores four 16-row accumulator tiles and packs a value
// block per token) took 16 tokens after 300 from ~450 to ~400 us (a slower phase of the VM).
// Scores as Q K^T (no 16 x 16 transpose per score tile, which the earlier K Q^T form needed to
// turn key rows into query rows): that step 10.6-10.9K -> 7.9-8.3K cycles per unit (16 tokens
// after 300, G = 2, TSC counters), the unit as a whole within the VM's noise.
#include <algorithm>
#include <atomic>
#include <climits>
#include <cmath>
#include <cstring>
#include <type_traits>
#include <vector>

#include "ops/attention.h"
#include "ops/attention_bf16_pairs.h"
#include "ops/bf16_amx.h"
#include "ops/bf16_dot.h"
#include "ops/lanes.h"
#include "ops/prefetch_ahead.h"
#include "util/aligned.h"
#include "util/check.h"
#include "util/half.h"

#if defined(SWIFT_BF16_ATTENTION)
#include <immintrin.h>
#endif

namespace swift {

bool attention_bf16_native() {
#if defined(SWIFT_BF16_ATTENTION)
  return true;
#else
  return false;
#endif
}

namespace {
std::atomic<bool> g_dot_products{false};  // attention_bf16_use_dot_for_test
}  // namespace

void attention_bf16_use_dot_for_test(bool on) { g_dot_products.store(on); }

bool attention_bf16_usable(int64_t n_head, int64_t n_kv_head, int64_t head_dim) {
  return attention_bf16_native() && n_kv_head > 0 && n_head % n_kv_head == 0 && n_head / n_kv_head <= 16 &&
         head_dim > 0 && head_dim % 64 == 0 && head_dim <= 512;
}

#if defined(SWIFT_BF16_ATTENTION)

namespace {

using bf16_pairs::kBlock;  // keys per value block
using bf16_pairs::kTile;   // rows of a tile; keys per score tile; query rows per tile
using bf16_pairs::row_max;
constexpr int kConfigKey = 1 << 20;

int64_t round_up(int64_t x, int64_t m) { return (x + m - 1) / m * m; }

// One row of hd floats as bf16 (round to nearest even), the conversion of every packed operand.
inline void convert_row(const float* row, int64_t hd, uint16_t* dst) {
  for (int64_t c = 0; c < hd; c += 32) {
    const __m512bh b = _mm512_cvtne2ps_pbh(_mm512_loadu_ps(row + c + 16), _mm512_loadu_ps(row + c));
    _mm512_storeu_si512(dst + c, reinterpret_cast<const __m512i&>(b));
  }
}

#if defined(SWIFT_BF16_AMX)

// Tiles of 64 bytes a row. Scores: C = 0..3 (query rows x four key tiles), A = 4 (query rows),
// B = 6, 7 (keys). Sums: C = 0..3 (query rows x 64 dimensions), A = 4 (weights), B = 6 (values).
// C and A have the row tile's `rows` query rows (1..16: a lone token's 1-2 rows load and store
// no more), B always 16 (dimension pairs or key pairs).
void configure(int rows) {
  AmxTileConfig c;
  for (int t = 0; t < 8; ++t) {
    c.rows[t] = static_cast<uint8_t>(t < 6 ? rows : kTile);
    c.colsb[t] = 64;
  }
  amx_load_config(kConfigKey + rows, c);
}

// Raw scores of the row tile's query rows (q16: bf16 rows, row stride hd) against packed keys
// [0, n) (pair layout, ceil(n / 16) key tiles of kt): scores[r * stride + j] = q_r . k_j, stored
// straight from the tiles (C = query rows x 16 keys; the scale is applied by the softmax). The
// last key tile's 16 columns are all written (its padding keys score 0): stride must cover
// round_up(n, 16). Four key tiles at a time in C0..C3, the query tile reloaded per step from L1.
void score_tiles(const uint16_t* q16, const uint16_t* kt, int64_t n, int64_t hd, float* scores, int64_t stride) {
  asm volatile("" : : : "memory");  // the tile-load macro declares no memory input
  const int64_t q_bytes = hd * 2, s_bytes = stride * 4, tile = kTile * 32;  // elements per key tile step
  const int64_t n_tiles = (n + kTile - 1) / kTile, steps = hd / 32;
  for (int64_t g0 = 0; g0 < n_tiles; g0 += 4) {
    const int ng = static_cast<int>(std::min<int64_t>(4, n_tiles - g0));
    const uint16_t* k0 = kt + g0 * steps * tile;
    _tile_zero(0);
    _tile_zero(1);
    _tile_zero(2);
    _tile_zero(3);
    for (int64_t s = 0; s < steps; ++s) {  // one 32-dimension step: the query tile, then ng key tiles
      _tile_loadd(4, q16 + s * 32, q_bytes);
      _tile_loadd(6, k0 + s * tile, 64);
      _tile_dpbf16ps(0, 4, 6);
      if (ng > 1) {
        _tile_loadd(7, k0 + (steps + s) * tile, 64);
        _tile_dpbf16ps(1, 4, 7);
      }
      if (ng > 2) {
        _tile_loadd(6, k0 + (2 * steps + s) * tile, 64);
        _tile_dpbf16ps(2, 4, 6);
      }
      if (ng > 3) {
        _tile_loadd(7, k0 + (3 * steps + s) * tile, 64);
        _tile_dpbf16ps(3, 4, 7);
      }
    }
    float* out = scores + g0 * kTile;
    _tile_stored(0, out, s_bytes);
    if (ng > 1) _tile_stored(1, out + kTile, s_bytes);
    if (ng > 2) _tile_stored(2, out + 2 * kTile, s_bytes);
    if (ng > 3) _tile_stored(3, out + 3 * kTile, s_bytes);
  }
}

// Runs value blocks [0, n_blocks) of vp (pair layout, hd / 16 tiles each) against weight rows
// p (bf16, row stride p_stride elements, block b at column 32 b), 64 dimensions at a time, into
// the 16 x hd sums at acc (f32, row stride hd): from zero when `first`, else continuing.
void sum_blocks(const uint16_t* p, int64_t p_stride, const uint16_t* vp, int64_t n_blocks, int64_t hd, float* acc,
                bool first) {
  if (!first && n_blocks == 0) return;
  asm volatile("" : : : "memory");
  const int64_t n_dt = hd / kTile, acc_stride = hd * 4;
  for (int64_t d0 = 0; d0 < n_dt; d0 += 4) {
    float* a0 = acc + d0 * kTile;
    if (first) {
      _tile_zero(0);
      _tile_zero(1);
      _tile_zero(2);
      _tile_zero(3);
    } else {
      _tile_loadd(0, a0, acc_stride);
      _tile_loadd(1, a0 + kTile, acc_stride);
      _tile_loadd(2, a0 + 2 * kTile, acc_stride);
      _tile_loadd(3, a0 + 3 * kTile, acc_stride);
    }
    for (int64_t b = 0; b < n_blocks; ++b) {
      const uint16_t* vb = vp + (b * n_dt + d0) * kTile * 32;
      _tile_loadd(4, p + b * kBlock, p_stride * 2);
      _tile_loadd(6, vb, 64);
      _tile_dpbf16ps(0, 4, 6);
      _tile_loadd(6, vb + kTile * 32, 64);
      _tile_dpbf16ps(1, 4, 6);
      _tile_loadd(6, vb + 2 * kTile * 32, 64);
      _tile_dpbf16ps(2, 4, 6);
      _tile_loadd(6, vb + 3 * kTile * 32, 64);
      _tile_dpbf16ps(3, 4, 6);
    }
    _tile_stored(0, a0, acc_stride);
    _tile_stored(1, a0 + kTile, acc_stride);
    _tile_stored(2, a0 + 2 * kTile, acc_stride);
    _tile_stored(3, a0 + 3 * kTile, acc_stride);
  }
}

#endif  // SWIFT_BF16_AMX

// The same two products with AVX-512 BF16 (vdpbf16ps: 16 lanes, each adding the products of one
// pair of bf16 values, exact in f32), for CPUs without AMX tiles (AMD Zen 4/5, Intel Cooper
// Lake). The pair layout is already what the instruction wants: one 64-byte row of a key tile is
// 16 keys x one dimension pair, of a value tile 16 dimensions x one key pair, so a query's or a
// weight row's pair is broadcast against it and the lanes are keys (scores) or dimensions (sums):
// no horizontal sums. Each output element is one chain of vdpbf16ps over its pairs in order
// (scores: dimension pairs; sums: blocks, then key pairs), whatever rows or tiles run beside it,
// so a token's result does not depend on its batch (not the AMX tiles' bits: a machine runs one
// or the other, bf16_amx_available). Rows and key tiles are grouped so that up to 16
// accumulators are in flight (the instruction's latency is several cycles).
inline __m512bh pair_at(const uint16_t* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return reinterpret_cast<__m512bh>(_mm512_set1_epi32(v));
}
inline __m512bh load_pairs(const uint16_t* p) { return reinterpret_cast<__m512bh>(_mm512_loadu_si512(p)); }

// f(std::integral_constant<int, R>{}) for the runtime row count r in [1, kMax]: the kernels below
// are templated on their rows (accumulators in registers).
template <int kMax, int R = 1, typename F>
void with_rows(int64_t r, const F& f) {
  if constexpr (R < kMax)
    if (r > R) return with_rows<kMax, R + 1>(r, f);
  f(std::integral_constant<int, R>{});
}

// R query rows against KT key tiles from k0 (tile t at k0 + t * steps * 512 elements).
template <int R, int KT>
void score_group_dp(const uint16_t* q16, int64_t hd, const uint16_t* k0, int64_t steps, float* out, int64_t stride) {
  __m512 acc[R][KT];
  for (int r = 0; r < R; ++r)
    for (int t = 0; t < KT; ++t) acc[r][t] = _mm512_setzero_ps();
  for (int64_t s = 0; s < steps; ++s)
    for (int pp = 0; pp < kTile; ++pp) {
      __m512bh kv[KT];
      for (int t = 0; t < KT; ++t) kv[t] = load_pairs(k0 + (t * steps + s) * kTile * 32 + pp * 32);
      for (int r = 0; r < R; ++r) {
        const __m512bh qb = pair_at(q16 + r * hd + s * 32 + 2 * pp);
        for (int t = 0; t < KT; ++t) acc[r][t] = _mm512_dpbf16_ps(acc[r][t], qb, kv[t]);
      }
    }
  for (int r = 0; r < R; ++r)
    for (int t = 0; t < KT; ++t) _mm512_storeu_ps(out + r * stride + t * kTile, acc[r][t]);
}

template <int R>
void score_rows_dp(const uint16_t* q16, const uint16_t* kt, int64_t n_tiles, int64_t hd, float* scores,
                   int64_t stride) {
  constexpr int KT = R >= 5 ? 2 : R >= 3 ? 4 : 8;
  const int64_t steps = hd / 32, tile = steps * kTile * 32;
  int64_t g = 0;
  for (; g + KT <= n_tiles; g += KT) score_group_dp<R, KT>(q16, hd, kt + g * tile, steps, scores + g * kTile, stride);
  for (; g < n_tiles; ++g) score_group_dp<R, 1>(q16, hd, kt + g * tile, steps, scores + g * kTile, stride);
}

// score_tiles' contract for `rows` query rows, on AVX-512 BF16.
void score_tiles_dp(const uint16_t* q16, const uint16_t* kt, int64_t n, int64_t hd, float* scores, int64_t stride,
                    int64_t rows) {
  const int64_t n_tiles = (n + kTile - 1) / kTile;
  for (int64_t r0 = 0; r0 < rows; r0 += 8)
    with_rows<8>(std::min<int64_t>(8, rows - r0), [&](auto r) {
      score_rows_dp<decltype(r)::value>(q16 + r0 * hd, kt, n_tiles, hd, scores + r0 * stride, stride);
    });
}

// R rows of sums, 64 dimensions at a time (four accumulators a row), over value blocks in order.
template <int R>
void sum_rows_dp(const uint16_t* p, int64_t p_stride, const uint16_t* vp, int64_t n_blocks, int64_t hd, float* acc,
                 bool first) {
  const int64_t n_dt = hd / kTile;
  for (int64_t d0 = 0; d0 < n_dt; d0 += 4) {
    __m512 a[R][4];
    for (int r = 0; r < R; ++r)
      for (int i = 0; i < 4; ++i)
        a[r][i] = first ? _mm512_setzero_ps() : _mm512_loadu_ps(acc + r * hd + (d0 + i) * kTile);
    for (int64_t b = 0; b < n_blocks; ++b) {
      const uint16_t* vb = vp + (b * n_dt + d0) * kTile * 32;
      for (int kp = 0; kp < kTile; ++kp) {
        __m512bh v[4];
        for (int i = 0; i < 4; ++i) v[i] = load_pairs(vb + i * kTile * 32 + kp * 32);
        for (int r = 0; r < R; ++r) {
          const __m512bh w = pair_at(p + r * p_stride + b * kBlock + 2 * kp);
          for (int i = 0; i < 4; ++i) a[r][i] = _mm512_dpbf16_ps(a[r][i], w, v[i]);
        }
      }
    }
    for (int r = 0; r < R; ++r)
      for (int i = 0; i < 4; ++i) _mm512_storeu_ps(acc + r * hd + (d0 + i) * kTile, a[r][i]);
  }
}

// sum_blocks' contract for `rows` rows, on AVX-512 BF16.
void sum_blocks_dp(const uint16_t* p, int64_t p_stride, const uint16_t* vp, int64_t n_blocks, int64_t hd, float* acc,
                   bool first, int64_t rows) {
  if (!first && n_blocks == 0) return;
  for (int64_t r0 = 0; r0 < rows; r0 += 4)
    with_rows<4>(std::min<int64_t>(4, rows - r0), [&](auto r) {
      sum_rows_dp<decltype(r)::value>(p + r0 * p_stride, p_stride, vp, n_blocks, hd, acc + r0 * hd, first);
    });
}

// The products of one row tile of `rows` rows: on the tiles where AMX is available, else with
// vdpbf16ps. set_rows configures the tiles for a row tile (a no-op without them).
struct Products {
  bool tiles = false;
  void set_rows(int64_t rows) const {
#if defined(SWIFT_BF16_AMX)
    if (tiles) configure(static_cast<int>(rows));
#else
    (void)rows;
#endif
  }
  void scores(const uint16_t* q16, const uint16_t* kt, int64_t n, int64_t hd, float* out, int64_t stride,
              int64_t rows) const {
#if defined(SWIFT_BF16_AMX)
    if (tiles) return score_tiles(q16, kt, n, hd, out, stride);
#endif
    score_tiles_dp(q16, kt, n, hd, out, stride, rows);
  }
  void sums(const uint16_t* p, int64_t p_stride, const uint16_t* vp, int64_t n_blocks, int64_t hd, float* acc,
            bool first, int64_t rows) const {
#if defined(SWIFT_BF16_AMX)
    if (tiles) return sum_blocks(p, p_stride, vp, n_blocks, hd, acc, first);
#endif
    sum_blocks_dp(p, p_stride, vp, n_blocks, hd, acc, first, rows);
  }
};

// Softmax weights of R rows (1 or 2) of n raw scores each, maxima mx (row_max), straight to bf16:
// w_j = 2^(s_j c - max c) (lanes::exp2), c = scale log2(e) (one fma per 16 keys:
// e^(scale (s_j - max))), into p[r][0, n) rounded to
// nearest even, zeros on to the next multiple of 32 (the value block's width); inv[r] = 1 / sum_j
// w_j with the f32 weights summed in 16 lanes (key j into lane j % 16, keys in order, two sums for
// keys j % 32 < 16 and >= 16) and the lanes reduced in a fixed tree. Two passes over the scores
// instead of the f32 kernel's four (max, exp, double sum, then rounding): the softmax was a
// quarter of this kernel's time. Whole 32-key steps run unmasked; the last, partial one masked.
// A row's operations do not depend on R: two rows (a token's query heads, same n) interleave
// their exp chains (~9% faster than one row at a time, 32 rows x 316 keys warm), same bits.
template <int R>
void softmax_to_bf16(const float* const* s, int64_t n, float scale, const float* mx, uint16_t* const* p, float* inv) {
  __m512 mc[R], sum0[R], sum1[R];
  const __m512 c = _mm512_set1_ps(scale * lanes::kLog2e);
  for (int r = 0; r < R; ++r) {
    mc[r] = _mm512_mul_ps(_mm512_set1_ps(mx[r]), c);
    sum0[r] = sum1[r] = _mm512_setzero_ps();
  }
  int64_t j = 0;
  auto step = [&](int r, __m512 w0, __m512 w1) {
    sum0[r] = _mm512_add_ps(sum0[r], w0);
    sum1[r] = _mm512_add_ps(sum1[r], w1);
    const __m512bh b = _mm512_cvtne2ps_pbh(w1, w0);
    _mm512_storeu_si512(p[r] + j, reinterpret_cast<const __m512i&>(b));
  };
  for (; j + 32 <= n; j += 32)
    for (int r = 0; r < R; ++r)
      step(r, lanes::exp2<true>(_mm512_fmsub_ps(_mm512_loadu_ps(s[r] + j), c, mc[r])),
           lanes::exp2<true>(_mm512_fmsub_ps(_mm512_loadu_ps(s[r] + j + 16), c, mc[r])));
  if (j < n) {
    const __mmask16 m0 = lanes::mask_for(n - j), m1 = lanes::mask_for(std::max<int64_t>(n - j - 16, 0));
    for (int r = 0; r < R; ++r)
      step(r,
           _mm512_maskz_mov_ps(m0, lanes::exp2<true>(_mm512_fmsub_ps(_mm512_maskz_loadu_ps(m0, s[r] + j), c, mc[r]))),
           _mm512_maskz_mov_ps(m1,
                               lanes::exp2<true>(_mm512_fmsub_ps(_mm512_maskz_loadu_ps(m1, s[r] + j + 16), c, mc[r]))));
  }
  for (int r = 0; r < R; ++r) inv[r] = 1.0f / lanes::reduce(_mm512_add_ps(sum0[r], sum1[r]));
}

// The last, partial value block of one query row (keys [nf, n) of its list, n - nf < 32) on
// AVX-512 instead of a tile pass: acc[d] = fma(w_j, v_j[d], acc[d]) for j = nf, nf + 1, ... in
// list order, w_j the row's bf16 weight and v_j the key's bf16 value (both exact in f32). Then
// out = acc * inv (and its bf16 copy). A token alone and in any batch runs this with the same
// operands in the same order, as the tiles before it. Why: a tile pass for a handful of keys
// loads and stores four whole 16-row accumulator tiles and packs a value block per token; in a
// 16-token verification pass that was a quarter of the attention kernel's time.
void partial_block(const uint16_t* p_row, const float* vals, const int32_t* idx, int64_t nf, int64_t n, int64_t hd,
                   const float* acc, float inv, float* out, uint16_t* out16) {
  for (int64_t d0 = 0; d0 < hd; d0 += 64) {
    __m512 a0 = _mm512_loadu_ps(acc + d0), a1 = _mm512_loadu_ps(acc + d0 + 16);
    __m512 a2 = _mm512_loadu_ps(acc + d0 + 32), a3 = _mm512_loadu_ps(acc + d0 + 48);
    for (int64_t j = nf; j < n; ++j) {
      const __m512 w = _mm512_set1_ps(bf16_to_f32(p_row[j]));
      const float* vr = vals + idx[j - nf] * hd + d0;
      a0 = _mm512_fmadd_ps(w, _mm512_loadu_ps(vr), a0);
      a1 = _mm512_fmadd_ps(w, _mm512_loadu_ps(vr + 16), a1);
      a2 = _mm512_fmadd_ps(w, _mm512_loadu_ps(vr + 32), a2);
      a3 = _mm512_fmadd_ps(w, _mm512_loadu_ps(vr + 48), a3);
    }
    const __m512 s = _mm512_set1_ps(inv);
    a0 = _mm512_mul_ps(a0, s), a1 = _mm512_mul_ps(a1, s), a2 = _mm512_mul_ps(a2, s), a3 = _mm512_mul_ps(a3, s);
    _mm512_storeu_ps(out + d0, a0);
    _mm512_storeu_ps(out + d0 + 16, a1);
    _mm512_storeu_ps(out + d0 + 32, a2);
    _mm512_storeu_ps(out + d0 + 48, a3);
    if (out16) {
      const __m512bh b01 = _mm512_cvtne2ps_pbh(a1, a0), b23 = _mm512_cvtne2ps_pbh(a3, a2);
      _mm512_storeu_si512(out16 + d0, reinterpret_cast<const __m512i&>(b01));
      _mm512_storeu_si512(out16 + d0 + 32, reinterpret_cast<const __m512i&>(b23));
    }
  }
}

// First index where lists a and b differ within [0, n) (n when equal), 16 entries per compare.
int64_t common_prefix(const int32_t* a, const int32_t* b, int64_t n) {
  int64_t j = 0;
  for (; j + 16 <= n; j += 16) {
    const __mmask16 ne = _mm512_cmpneq_epi32_mask(_mm512_loadu_si512(a + j), _mm512_loadu_si512(b + j));
    if (ne) return j + __builtin_ctz(ne);
  }
  while (j < n && a[j] == b[j]) ++j;
  return j;
}

// First index j < n where l[j] != j (n when l runs 0, 1, ..., n - 1).
int64_t identity_prefix(const int32_t* l, int64_t n) {
  __m512i iota = _mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0);
  int64_t j = 0;
  for (; j + 16 <= n; j += 16) {
    const __mmask16 ne = _mm512_cmpneq_epi32_mask(_mm512_loadu_si512(l + j), iota);
    if (ne) return j + __builtin_ctz(ne);
    iota = _mm512_add_epi32(iota, _mm512_set1_epi32(16));
  }
  while (j < n && l[j] == j) ++j;
  return j;
}

// Per-thread buffers, grown on demand (never on the per-token path once warm).
struct Scratch {
  std::vector<uint16_t> k_shared, v_shared, k_own, v_own, q16;
  std::vector<float> v_union;                    // [n_union, hd]: the own keys' values rounded to bf16, as f32
  std::vector<int32_t> union_slots, slot_index;  // the chunk's own keys; slot -> index among them
  std::vector<int32_t> own_index;    // [16 / G, max_len - shared]: a row tile's tokens' own keys as union indices
  std::vector<uint32_t> slot_stamp;  // slot_index[s] is current when slot_stamp[s] == stamp
  uint32_t stamp = 0;
  std::vector<float> union_scores;  // [16, round_up(n_union, 16)] raw: a row tile's
  std::vector<float> scores, acc;   // a row tile's: [16, l_pad] raw scores, f32; [16, hd] f32 sums
  std::vector<uint16_t> p;          // [16, l_pad] bf16 weights
  std::vector<float> inv;           // [16]
};

// Room for n elements, 64-byte aligned: the tiles load and store these rows (util/aligned.h).
template <typename T>
T* sized(std::vector<T>& v, int64_t n) {
  return grow_aligned64(v, n);
}

}  // namespace

void attention_bf16(const AttentionArgs& a, ThreadPool& pool) {
  SWIFT_CHECK(attention_bf16_usable(a.n_head, a.n_kv_head, a.head_dim),
              "bf16 attention called for {} heads, {} KV heads, head dim {}", a.n_head, a.n_kv_head, a.head_dim);
  SWIFT_CHECK(static_cast<int64_t>(a.visible->offsets.size()) == a.n_tok + 1);
  if (a.n_tok <= 0) return;
  const int64_t G = a.n_head / a.n_kv_head, hd = a.head_dim;
  const int64_t q_stride = a.n_head * hd;
  const int64_t kv_stride = a.kv_row_stride > 0 ? a.kv_row_stride : a.n_kv_head * hd;
  const int64_t head_stride = a.kv_head_stride > 0 ? a.kv_head_stride : hd;
  // No f32 rows (a cache that keeps only the bf16 copy): every key and value comes from the copy.
  const bool copy_only = a.k == nullptr;
  SWIFT_CHECK(!copy_only || (a.v == nullptr && a.k16 && a.v16 && a.kv16_head_stride / 2 < INT32_MAX),
              "bf16 attention without f32 rows needs the bf16 copy (head stride {})", a.kv16_head_stride);
  const int64_t max_len = a.visible->max_len();
  const int64_t l_pad = round_up(std::max<int64_t>(max_len, 1), kBlock);
  // Tokens per unit: enough units for every thread, at most 16 tokens (a unit's rows then fill
  // whole tiles for G = 1, 2, 4, 8, 16).
  const int64_t per_head = std::max<int64_t>(1, (pool.size() + a.n_kv_head - 1) / a.n_kv_head);
  const int64_t chunk = std::clamp<int64_t>((a.n_tok + per_head - 1) / per_head, 1, 16);
  const int64_t n_chunks = (a.n_tok + chunk - 1) / chunk;
  const SlotLists& vis = *a.visible;
  // The caller's per-head preparation: inside the head's only unit, else a round of its own.
  const bool prepare_in_unit = a.prepare && n_chunks == 1;
  if (a.prepare && !prepare_in_unit)
    pool.parallel_for(a.n_kv_head, [&](int64_t h0, int64_t h1, int) {
      for (int64_t h = h0; h < h1; ++h) (*a.prepare)(h);
    });
  const Products mm{bf16_amx_available() && !g_dot_products.load(std::memory_order_relaxed)};
  pool.parallel_for(n_chunks * a.n_kv_head, [&](int64_t i0, int64_t i1, int) {
    thread_local Scratch w;
    for (int64_t i = i0; i < i1; ++i) {
      const int64_t kvh = i / n_chunks, t0 = i % n_chunks * chunk, t1 = std::min(a.n_tok, t0 + chunk);
      const int64_t rows = (t1 - t0) * G;
      if (prepare_in_unit) (*a.prepare)(kvh);
      auto list = [&](int64_t t) { return vis.slots.data() + vis.offsets[t]; };
      auto len = [&](int64_t t) { return vis.offsets[t + 1] - vis.offsets[t]; };
      auto q_row = [&](int64_t r) { return a.q + (t0 + r / G) * q_stride + (kvh * G + r % G) * hd; };
      // Shared context: the longest list prefix common to the chunk's tokens, in whole value blocks.
      int64_t shared = len(t0);
      for (int64_t t = t0 + 1; t < t1 && shared > 0; ++t)
        shared = common_prefix(list(t0), list(t), std::min(shared, len(t)));
      shared = shared / kBlock * kBlock;
      // Of it, the part listed as slots 0, 1, 2, ... is read from the bf16 copy when there is one.
      const int64_t m = a.k16 ? identity_prefix(list(t0), shared) / kBlock * kBlock : 0;
      const uint16_t* k_copy = a.k16 ? a.k16 + kvh * a.kv16_head_stride : nullptr;
      const uint16_t* v_copy = a.v16 ? a.v16 + kvh * a.kv16_head_stride : nullptr;
      // The head's first unit on this thread: its keys and values in the copy, requested at once
      // (ops/prefetch_ahead.h); the head's later units find them in cache.
      if (m > 0 && (i == i0 || (i - 1) / n_chunks != kvh)) {
        prefetch_burst(k_copy, std::min(m * hd * 2, kKvBurstBytes));
        prefetch_burst(v_copy, std::min(m * hd * 2, kKvBurstBytes));
      }
      // Every other key and value: packed from the f32 rows, or from the copy when there are none.
      bf16_pairs::KvSource src;
      if (copy_only)
        src.k16 = k_copy, src.v16 = v_copy;
      else
        src.k = a.k + kvh * head_stride, src.v = a.v + kvh * head_stride, src.stride = kv_stride;
      // One row tile's buffers (rows of the tile's tokens from 0).
      float* scores = sized(w.scores, kTile * l_pad);
      uint16_t* p = sized(w.p, kTile * l_pad);
      float* acc = sized(w.acc, kTile * hd);
      float* inv = sized(w.inv, kTile);
      uint16_t* q16 = sized(w.q16, kTile * hd);
      uint16_t* ks = sized(w.k_shared, std::max<int64_t>(shared - m, 1) * hd);
      uint16_t* vs = sized(w.v_shared, std::max<int64_t>(shared - m, 1) * hd);
      src.pack_keys(list(t0) + m, shared - m, hd, ks);
      src.pack_values(list(t0) + m, shared - m, hd, vs);
      // The chunk's own keys (list entries past the shared part), each slot once: their scores are
      // computed for every row at once and each token picks its own (a key's score does not depend
      // on its tile position). For a verification tree: the committed tail and the tree's slots.
      if (++w.stamp == 0) {  // after 2^32 units: forget every mark rather than trust a wrapped one
        std::fill(w.slot_stamp.begin(), w.slot_stamp.end(), 0u);
        w.stamp = 1;
      }
      const uint32_t stamp = w.stamp;
      int64_t n_union = 0;
      int32_t* uslots = sized(w.union_slots, rows / G * (max_len - shared) + 1);
      for (int64_t t = t0; t < t1; ++t)  // entries a token shares with the one before are marked
        for (int64_t j = t > t0 ? std::max(shared, common_prefix(list(t - 1), list(t), std::min(len(t - 1), len(t))))
                                : shared;
             j < len(t); ++j) {
          const int32_t slot = list(t)[j];
          if (slot >= static_cast<int32_t>(w.slot_stamp.size())) {
            w.slot_stamp.resize(slot + 1, 0);
            w.slot_index.resize(slot + 1, 0);
          }
          if (w.slot_stamp[slot] == stamp) continue;
          w.slot_stamp[slot] = stamp;
          w.slot_index[slot] = static_cast<int32_t>(n_union);
          uslots[n_union++] = slot;
        }
      const int64_t u_pad = round_up(std::max<int64_t>(n_union, 1), kTile);
      uint16_t* ku = sized(w.k_own, u_pad * hd);
      float* uscores = sized(w.union_scores, kTile * u_pad);
      src.pack_keys(uslots, n_union, hd, ku);
      float* vu = sized(w.v_union, std::max<int64_t>(n_union, 1) * hd);
      src.value_rows(uslots, n_union, hd, vu);
      // Row tiles of whole tokens (16 / G tokens, up to 16 query rows), each taken through scores,
      // softmax and sums before the next: its scores (16 x l_pad f32) and weights stay in L1
      // between the phases (scoring all rows first spilled them to L2; ~10% of this kernel).
      const int64_t tile_tok = kTile / G, own_max = max_len - shared;
      int32_t* own_index = sized(w.own_index, tile_tok * own_max + 1);
      for (int64_t ta = t0; ta < t1; ta += tile_tok) {
        const int64_t tb = std::min(t1, ta + tile_tok), tr = (tb - ta) * G;  // tokens, rows
        const int64_t r_base = (ta - t0) * G;
        for (int64_t r = 0; r < tr; ++r) convert_row(q_row(r_base + r), hd, q16 + r * hd);
        // Scores over the shared context and the own keys.
        mm.set_rows(tr);
        if (m > 0) mm.scores(q16, k_copy, m, hd, scores, l_pad, tr);
        if (shared > m) mm.scores(q16, ks, shared - m, hd, scores + m, l_pad, tr);
        if (n_union > 0) mm.scores(q16, ku, n_union, hd, uscores, u_pad, tr);
        // Each token's own scores in its list order (gathered by union index), then its softmax
        // weights as bf16 rows of p.
        for (int64_t t = ta; t < tb; ++t) {
          const int64_t n = len(t), r0 = (t - ta) * G, own = std::max<int64_t>(n - shared, 0);
          int32_t* oi = own_index + (t - ta) * own_max;
          for (int64_t j = 0; j < own; ++j) oi[j] = w.slot_index[list(t)[shared + j]];
          for (int64_t h = 0; h < G; ++h) {
            float* sr = scores + (r0 + h) * l_pad;
            const float* us = uscores + (r0 + h) * u_pad;
            for (int64_t j = 0; j < own; j += 16) {
              const __mmask16 mk = lanes::mask_for(own - j);
              const __m512i ix = _mm512_maskz_loadu_epi32(mk, oi + j);
              _mm512_mask_storeu_ps(sr + shared + j, mk, _mm512_mask_i32gather_ps(_mm512_setzero_ps(), mk, ix, us, 4));
            }
          }
        }
        float mx[kTile];
        for (int64_t r = 0; r < tr; ++r) {
          const int64_t n = len(ta + r / G);
          mx[r] = n > 0 ? row_max(scores + r * l_pad, n) : 0.0f;
        }
        for (int64_t t = ta; t < tb; ++t) {
          const int64_t n = len(t), r0 = (t - ta) * G;
          for (int64_t h = 0; h < G; h += 2) {         // the token's rows two at a time (same n)
            const int64_t h2 = h + 1 < G ? h + 1 : h;  // an odd G's last row runs alone
            const float* sr[2] = {scores + (r0 + h) * l_pad, scores + (r0 + h2) * l_pad};
            uint16_t* pr[2] = {p + (r0 + h) * l_pad, p + (r0 + h2) * l_pad};
            const float m2[2] = {mx[r0 + h], mx[r0 + h2]};
            if (n == 0)
              std::fill_n(inv + r0 + h, std::min<int64_t>(2, G - h), 0.0f);
            else if (h + 1 < G)
              softmax_to_bf16<2>(sr, n, a.scale, m2, pr, inv + r0 + h);
            else
              softmax_to_bf16<1>(sr, n, a.scale, m2, pr, inv + r0 + h);
          }
        }
        // Weighted sums over the shared blocks for the tile's rows, then each token's own whole
        // blocks (on tiles of its G rows alone) and its partial block. The partial block's keys
        // are all past the shared part, so they are in the union (its values rounded once in vu).
        mm.sums(p, l_pad, v_copy, m / kBlock, hd, acc, true, tr);
        mm.sums(p + m, l_pad, vs, (shared - m) / kBlock, hd, acc, false, tr);
        for (int64_t t = ta; t < tb; ++t) {
          const int64_t n = len(t), r0 = (t - ta) * G, nf = n / kBlock * kBlock;
          if (nf > shared) {  // whole own blocks
            uint16_t* vo = sized(w.v_own, (nf - shared) * hd);
            src.pack_values(list(t) + shared, nf - shared, hd, vo);
            mm.set_rows(G);
            mm.sums(p + r0 * l_pad + shared, l_pad, vo, (nf - shared) / kBlock, hd, acc + r0 * hd, false, G);
          }
          const int32_t* pidx = own_index + (t - ta) * own_max + (nf - shared);  // keys [nf, n)
          for (int64_t h = 0; h < G; ++h) {
            const int64_t off = t * q_stride + (kvh * G + h) * hd;
            if (n == 0) {
              std::fill_n(a.out + off, hd, 0.0f);
              if (a.out16) std::fill_n(a.out16 + off, hd, uint16_t{0});
              continue;
            }
            partial_block(p + (r0 + h) * l_pad, vu, pidx, nf, n, hd, acc + (r0 + h) * hd, inv[r0 + h], a.out + off,
                          a.out16 ? a.out16 + off : nullptr);
          }
        }
      }
    }
  });
}

#else

void attention_bf16(const AttentionArgs& a, ThreadPool&) {
  SWIFT_CHECK(false, "bf16 attention called in a build without AVX-512 BF16 ({} heads)", a.n_head);
}

#endif

}  // namespace swift
