// BF16 dot-product panel kernel: contract and layout in ops/bf16_dot.h.
//
// Tiles as in the f32 panel kernel (ops/matmul_panel.cc): P panels x T tokens of register
// accumulators; each column-pair step loads P panel vectors (16 rows x 2 columns of bf16) and
// issues P x T vdpbf16ps against broadcast activation pairs. 1-2 tokens: 8 x 2; 3-4: 6 x 4;
// more: 4 x 6 (24 accumulators; the f32 kernel's 4 x 4 re-read each panel vector once per 4
// tokens, here once per 6). The tile shape never changes a result.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "ops/bf16_dot.h"
#include "ops/elementwise.h"
#include "ops/panel.h"
#include "ops/prefetch_ahead.h"
#include "util/aligned.h"
#include "util/check.h"
#include "util/half.h"

#if defined(__AVX512BF16__) && defined(__AVX512F__)
#include <immintrin.h>
#define SWIFT_BF16_DOT_NATIVE 1
#endif

namespace swift {

namespace {

int64_t n_pairs(int64_t cols) { return (cols + 1) / 2; }
int64_t n_panels(int64_t rows) { return (rows + kPanelRows - 1) / kPanelRows; }

float f32_bits(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

// vdpbf16ps's denormal handling: inputs and results with a zero exponent become signed zero.
float flush(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return (u & 0x7f800000u) == 0 ? f32_bits(u & 0x80000000u) : f;
}

// Element (r, c) of a kPanel16Pairs matrix (0 for the padding column).
uint16_t pairs_at(const MatView& w, int64_t r, int64_t c) {
  const auto* p = static_cast<const uint16_t*>(w.data);
  return p[((r / kPanelRows * n_pairs(w.cols) + c / 2) * kPanelRows + r % kPanelRows) * 2 + c % 2];
}

#if defined(SWIFT_BF16_DOT_NATIVE)
// The SwiGLU outputs of matmul_bf16_dot_swiglu (w = [gate | up], 2 I rows, I = 16 n_gate).
struct SwigluDot {
  int64_t n_gate;  // panels per half
  float* g;        // [n_tok, I] or null
  uint16_t* g16;   // [n_tok, I] bf16
};

struct DotArgs {
  const uint16_t* w;  // [n_panels, pairs, 16, 2]
  int64_t rows, cols, pairs;
  const uint32_t* x;  // [n_tok, pairs] bf16 pairs (low half: even column)
  float* y;           // [n_tok, rows] (unused with swiglu)
  const float* bias;
  NextWeights next;  // prefetched by each thread after its share (ops/prefetch_ahead.h)
  const SwigluDot* swiglu = nullptr;
};

// Panel p's weights ([pairs, 16, 2] bf16); panel_at(a, n_panels) is the end of the matrix.
const uint16_t* panel_at(const DotArgs& a, int64_t p) { return a.w + p * a.pairs * 2 * kPanelRows; }

// Panels [p0, p0 + P) x tokens [t0, t0 + T).
template <int P, int T>
[[gnu::always_inline]] inline void dot_tile(const DotArgs& a, int64_t p0, int64_t t0, PrefetchAhead& pf) {
  __m512 acc[P * T];
#pragma GCC unroll 32
  for (int i = 0; i < P * T; ++i) acc[i] = _mm512_setzero_ps();
  const int64_t pairs = a.pairs;
  const uint32_t* xt = a.x + t0 * pairs;
  const uint16_t* w0 = panel_at(a, p0);
  for (int64_t j = 0; j < pairs; ++j) {
    __m512bh wv[P];
#pragma GCC unroll 8
    for (int p = 0; p < P; ++p)
      wv[p] = reinterpret_cast<__m512bh>(_mm512_load_si512(w0 + (p * pairs + j) * 2 * kPanelRows));
    pf.step();
#pragma GCC unroll 8
    for (int t = 0; t < T; ++t) {
      const __m512bh xb = reinterpret_cast<__m512bh>(_mm512_set1_epi32(static_cast<int>(xt[t * pairs + j])));
#pragma GCC unroll 8
      for (int p = 0; p < P; ++p) acc[p * T + t] = _mm512_dpbf16_ps(acc[p * T + t], wv[p], xb);
    }
  }
#pragma GCC unroll 8
  for (int p = 0; p < P; ++p) {
    const int64_t row0 = (p0 + p) * kPanelRows;
    const int64_t live = std::min<int64_t>(a.rows - row0, kPanelRows);  // >= 1: panels exist only for rows
    const __mmask16 m = live >= kPanelRows ? static_cast<__mmask16>(0xffff) : static_cast<__mmask16>((1u << live) - 1);
    const __m512 b = a.bias ? _mm512_maskz_loadu_ps(m, a.bias + row0) : _mm512_setzero_ps();
#pragma GCC unroll 8
    for (int t = 0; t < T; ++t)
      _mm512_mask_storeu_ps(a.y + (t0 + t) * a.rows + row0, m, _mm512_add_ps(acc[p * T + t], b));
  }
}

// All tokens for panels [p0, p0 + P), as ceil(n_tok / T) tiles.
template <int P, int T>
void dot_tokens(const DotArgs& a, int64_t p0, int64_t n_tok, PrefetchAhead& pf) {
  pf.begin_group(panel_at(a, p0), panel_at(a, p0 + P), (n_tok + T - 1) / T * a.pairs);
  for_token_tiles<T>(
      0, n_tok, [&]<int W>(int64_t t0) __attribute__((always_inline)) { dot_tile<P, W>(a, p0, t0, pf); });
}

template <int T, int PMAX>
void dot_range(const DotArgs& a, int64_t p0, int64_t np, int64_t n_tok) {
  static_assert(PMAX * T + PMAX + 1 <= 32, "accumulators + weights + broadcast must fit 32 registers");
  PrefetchAhead pf(panel_at(a, p0 + np), a.next, p0, p0 + np, n_panels(a.rows));  // this range's weights
  if constexpr (PMAX > 4)
    for (; np >= PMAX; p0 += PMAX, np -= PMAX) dot_tokens<PMAX, T>(a, p0, n_tok, pf);
  for (; np >= 4; p0 += 4, np -= 4) dot_tokens<4, T>(a, p0, n_tok, pf);
  for (; np >= 2; p0 += 2, np -= 2) dot_tokens<2, T>(a, p0, n_tok, pf);
  for (; np >= 1; p0 += 1, np -= 1) dot_tokens<1, T>(a, p0, n_tok, pf);
  pf.hand_over_to_idle();
}

// SwiGLU tiles: gate panels [g0, g0 + PG) and the matching up panels (n_gate further on) x tokens
// [t0, t0 + T), as dot_tile with P = 2 PG; then per token and gate panel g = silu(gate) * up in
// registers with silu_mul_bf16's arithmetic (silu_mul_bf16_lanes) on the very floats the product
// stores (acc + bias), so the bits of the product followed by silu_mul_bf16 over whole rows.
template <int PG, int T>
[[gnu::always_inline]] inline void swiglu_tile(const DotArgs& a, int64_t g0, int64_t t0, PrefetchAheadTwin& pf) {
  const SwigluDot& sw = *a.swiglu;
  __m512 acc[2 * PG * T];
#pragma GCC unroll 32
  for (int i = 0; i < 2 * PG * T; ++i) acc[i] = _mm512_setzero_ps();
  const int64_t pairs = a.pairs;
  const uint32_t* xt = a.x + t0 * pairs;
  const uint16_t* wg = panel_at(a, g0);
  const uint16_t* wu = panel_at(a, g0 + sw.n_gate);
  for (int64_t j = 0; j < pairs; ++j) {
    __m512bh wv[2 * PG];
#pragma GCC unroll 8
    for (int p = 0; p < PG; ++p) {
      wv[p] = reinterpret_cast<__m512bh>(_mm512_load_si512(wg + (p * pairs + j) * 2 * kPanelRows));
      wv[PG + p] = reinterpret_cast<__m512bh>(_mm512_load_si512(wu + (p * pairs + j) * 2 * kPanelRows));
    }
    pf.step();
#pragma GCC unroll 8
    for (int t = 0; t < T; ++t) {
      const __m512bh xb = reinterpret_cast<__m512bh>(_mm512_set1_epi32(static_cast<int>(xt[t * pairs + j])));
#pragma GCC unroll 8
      for (int p = 0; p < 2 * PG; ++p) acc[p * T + t] = _mm512_dpbf16_ps(acc[p * T + t], wv[p], xb);
    }
  }
  const int64_t inter = sw.n_gate * kPanelRows;
#pragma GCC unroll 8
  for (int p = 0; p < PG; ++p) {
    const int64_t row0 = (g0 + p) * kPanelRows;
    const __m512 bg = a.bias ? _mm512_loadu_ps(a.bias + row0) : _mm512_setzero_ps();
    const __m512 bu = a.bias ? _mm512_loadu_ps(a.bias + inter + row0) : _mm512_setzero_ps();
    for (int t = 0; t < T; ++t) {
      const __m512 v = silu_mul_bf16_lanes(_mm512_add_ps(acc[p * T + t], bg), _mm512_add_ps(acc[(PG + p) * T + t], bu));
      const int64_t at = (t0 + t) * inter + row0;
      if (sw.g) _mm512_storeu_ps(sw.g + at, v);
      const __m256bh h = _mm512_cvtneps_pbh(v);  // round to nearest even, as silu_mul_bf16 stores
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(sw.g16 + at), reinterpret_cast<const __m256i&>(h));
    }
  }
}

// All tokens for gate panels [g0, g0 + PG) and their up panels.
template <int PG, int T>
void swiglu_tokens(const DotArgs& a, int64_t g0, int64_t n_tok, PrefetchAheadTwin& pf) {
  pf.begin_group(panel_at(a, g0), panel_at(a, g0 + PG), (n_tok + T - 1) / T * a.pairs);
  for_token_tiles<T>(
      0, n_tok, [&]<int W>(int64_t t0) __attribute__((always_inline)) { swiglu_tile<PG, W>(a, g0, t0, pf); });
}

// Gate panels [g0, g0 + ng) with their up panels: the prefetch window runs over the gate share
// with the up share as its twin, then on into the next product's share.
template <int T, int PGMAX>
void swiglu_range(const DotArgs& a, int64_t g0, int64_t ng, int64_t n_tok) {
  static_assert(2 * PGMAX * T + 2 * PGMAX + 1 <= 32, "accumulators + weights + broadcast must fit 32 registers");
  const int64_t n_gate = a.swiglu->n_gate;
  PrefetchAheadTwin pf(panel_at(a, g0 + ng), a.next, g0, g0 + ng, n_gate);
  pf.set_twin(reinterpret_cast<uintptr_t>(panel_at(a, n_gate)) - reinterpret_cast<uintptr_t>(panel_at(a, 0)));
  if constexpr (PGMAX > 2)
    for (; ng >= PGMAX; g0 += PGMAX, ng -= PGMAX) swiglu_tokens<PGMAX, T>(a, g0, n_tok, pf);
  for (; ng >= 2; g0 += 2, ng -= 2) swiglu_tokens<2, T>(a, g0, n_tok, pf);
  for (; ng >= 1; g0 += 1, ng -= 1) swiglu_tokens<1, T>(a, g0, n_tok, pf);
  pf.hand_over_to_idle();
}
#endif

}  // namespace

bool bf16_dot_native() {
#if defined(SWIFT_BF16_DOT_NATIVE)
  return true;
#else
  return false;
#endif
}

uint16_t bf16_round(float x) {
  uint32_t u;
  std::memcpy(&u, &x, 4);
  if (std::isnan(x)) return static_cast<uint16_t>((u >> 16) | 0x40);  // quiet NaN, as the instruction
  if ((u & 0x7f800000u) == 0) u &= 0x80000000u;                       // denormal -> signed zero
  return static_cast<uint16_t>((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

void bf16_round_rows_into(const float* x, int64_t n_tok, int64_t cols, uint16_t* out) {
  const int64_t width = 2 * n_pairs(cols);
  for (int64_t t = 0; t < n_tok; ++t) {
    const float* xr = x + t * cols;
    uint16_t* o = out + t * width;
    int64_t c = 0;
#if defined(SWIFT_BF16_DOT_NATIVE)
    for (; c + 16 <= cols; c += 16) {
      const __m256bh h = _mm512_cvtneps_pbh(_mm512_loadu_ps(xr + c));
      std::memcpy(o + c, &h, 32);
    }
#endif
    for (; c < cols; ++c) o[c] = bf16_round(xr[c]);
    if (cols % 2) o[cols] = 0;
  }
}

const uint16_t* bf16_round_rows(const float* x, int64_t n_tok, int64_t cols) {
  // The buffer belongs to the calling thread and only grows: no allocation per token in steady
  // state. Stored as pairs: the dot-product kernel broadcasts one 32-bit pair at a time.
  // 64-byte aligned: the AMX kernel loads its rows as tiles (util/aligned.h).
  thread_local std::vector<uint32_t> buf;
  const int64_t width = 2 * n_pairs(cols);
  auto* out = reinterpret_cast<uint16_t*>(grow_aligned64(buf, n_tok * width / 2));
  bf16_round_rows_into(x, n_tok, cols, out);
  return out;
}

float bf16_dot_step(float s, uint16_t w0, uint16_t x0, uint16_t w1, uint16_t x1) {
  const float a1 = flush(bf16_to_f32(w1)), b1 = flush(bf16_to_f32(x1));
  const float a0 = flush(bf16_to_f32(w0)), b0 = flush(bf16_to_f32(x0));
  s = flush(std::fma(a1, b1, s));
  return flush(std::fma(a0, b0, s));
}

size_t pairs_panel_bytes(int64_t rows, int64_t cols) {
  SWIFT_CHECK(rows >= 0 && cols >= 0);
  return MatView{nullptr, DType::kBF16, rows, cols, MatLayout::kPanel16Pairs}.bytes();
}

MatView pairs_panel_pack(const MatView& src, void* dst) {
  SWIFT_CHECK(src.layout == MatLayout::kRows && src.dtype == DType::kBF16, "{} matrix cannot be pair-packed",
              dtype_name(src.dtype));
  SWIFT_CHECK(reinterpret_cast<uintptr_t>(dst) % 64 == 0);
  const auto* in = static_cast<const uint16_t*>(src.data);
  auto* out = static_cast<uint16_t*>(dst);
  const int64_t pairs = n_pairs(src.cols);
  // Panel by panel, sequentially in the output (the 16 source rows are 16 sequential streams).
  for (int64_t p = 0; p < n_panels(src.rows); ++p)
    for (int64_t j = 0; j < pairs; ++j)
      for (int64_t l = 0; l < kPanelRows; ++l)
        for (int64_t e = 0; e < 2; ++e) {
          const int64_t r = p * kPanelRows + l, c = 2 * j + e;
          *out++ = r < src.rows && c < src.cols ? in[r * src.cols + c] : uint16_t{0};
        }
  return MatView{dst, DType::kBF16, src.rows, src.cols, MatLayout::kPanel16Pairs};
}

void matmul_bf16_dot(const MatView& w, const float* x, int64_t n_tok, float* y, const float* bias, ThreadPool& pool,
                     NextWeights next) {
  SWIFT_CHECK(w.layout == MatLayout::kPanel16Pairs && w.dtype == DType::kBF16);
  if (n_tok <= 0 || w.rows == 0) return;
#if defined(SWIFT_BF16_DOT_NATIVE)
  matmul_bf16_dot_rounded(w, bf16_round_rows(x, n_tok, w.cols), n_tok, y, bias, pool, next);
#else
  // Without AVX-512 BF16 (the CLI refuses the mode there): the scalar contract, for tests.
  (void)pool, (void)next;
  matmul_bf16_dot_reference(w, x, n_tok, y, bias);
#endif
}

void matmul_bf16_dot_rounded(const MatView& w, const uint16_t* x16, int64_t n_tok, float* y, const float* bias,
                             ThreadPool& pool, NextWeights next) {
  SWIFT_CHECK(w.layout == MatLayout::kPanel16Pairs && w.dtype == DType::kBF16);
  SWIFT_CHECK(reinterpret_cast<uintptr_t>(x16) % 4 == 0, "bf16 activation rows must be 4-byte aligned (pairs)");
  if (n_tok <= 0 || w.rows == 0) return;
#if defined(SWIFT_BF16_DOT_NATIVE)
  const DotArgs a{static_cast<const uint16_t*>(w.data),   w.rows, w.cols, n_pairs(w.cols),
                  reinterpret_cast<const uint32_t*>(x16), y,      bias,   next};
  panel_parallel(n_panels(w.rows), n_tok, pool, [&](PanelTiles tiles, int64_t p0, int64_t np) {
    if (tiles == kPanelTiles2) dot_range<2, 8>(a, p0, np, n_tok);
    else if (tiles == kPanelTiles4) dot_range<4, 6>(a, p0, np, n_tok);
    else dot_range<6, 4>(a, p0, np, n_tok);
  });
#else
  (void)w, (void)x16, (void)n_tok, (void)y, (void)bias, (void)pool, (void)next;
  SWIFT_CHECK(false, "matmul_bf16_dot_rounded needs AVX-512 BF16 (bf16_dot_native)");
#endif
}

bool bf16_dot_swiglu_usable(const MatView& w) {
  return bf16_dot_native() && w.layout == MatLayout::kPanel16Pairs && w.dtype == DType::kBF16 &&
         w.rows % (2 * kPanelRows) == 0;
}

void matmul_bf16_dot_swiglu(const MatView& w, const uint16_t* x16, int64_t n_tok, float* g, uint16_t* g16,
                            const float* bias, ThreadPool& pool, NextWeights next) {
  SWIFT_CHECK(bf16_dot_swiglu_usable(w), "bf16 dot SwiGLU kernel called for a {}x{} matrix it cannot run", w.rows,
              w.cols);
  SWIFT_CHECK(reinterpret_cast<uintptr_t>(x16) % 4 == 0, "bf16 activation rows must be 4-byte aligned (pairs)");
  if (n_tok <= 0) return;
#if defined(SWIFT_BF16_DOT_NATIVE)
  const SwigluDot sw{w.rows / 2 / kPanelRows, g, g16};
  DotArgs a{static_cast<const uint16_t*>(w.data),   w.rows,  w.cols, n_pairs(w.cols),
            reinterpret_cast<const uint32_t*>(x16), nullptr, bias,   next};
  a.swiglu = &sw;
  // Units: gate panels (each with its up panel), grouped like the product's panels.
  panel_parallel(sw.n_gate, n_tok, pool, [&](PanelTiles tiles, int64_t g0, int64_t ng) {
    if (tiles == kPanelTiles2)
      swiglu_range<2, 4>(a, g0, ng, n_tok);
    else if (tiles == kPanelTiles4)
      swiglu_range<4, 3>(a, g0, ng, n_tok);
    else
      swiglu_range<6, 2>(a, g0, ng, n_tok);
  });
#else
  (void)x16, (void)g, (void)g16, (void)bias, (void)pool, (void)next;
#endif
}

void matmul_bf16_dot_reference(const MatView& w, const float* x, int64_t n_tok, float* y, const float* bias) {
  SWIFT_CHECK(w.dtype == DType::kBF16 && (w.layout == MatLayout::kPanel16Pairs || w.layout == MatLayout::kRows));
  const int64_t pairs = n_pairs(w.cols);
  for (int64_t r = 0; r < w.rows; ++r)
    for (int64_t t = 0; t < n_tok; ++t) {
      auto weight = [&](int64_t c) -> uint16_t {
        if (c >= w.cols) return 0;
        return w.layout == MatLayout::kRows ? static_cast<const uint16_t*>(w.data)[r * w.cols + c] : pairs_at(w, r, c);
      };
      auto act = [&](int64_t c) -> uint16_t { return c < w.cols ? bf16_round(x[t * w.cols + c]) : uint16_t{0}; };
      float s = 0.0f;
      for (int64_t j = 0; j < pairs; ++j)
        s = bf16_dot_step(s, weight(2 * j), act(2 * j), weight(2 * j + 1), act(2 * j + 1));
      y[t * w.rows + r] = s + (bias ? bias[r] : 0.0f);
    }
}

}  // namespace swift
