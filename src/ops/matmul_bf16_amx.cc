// AMX-BF16 kernel for kPanel16Pairs matrices: contract and layout in ops/bf16_amx.h.
//
// Tiles (8 registers of 16 rows x 64 bytes): up to 16 tokens, result tiles 0-3 hold one token
// tile x 4 panels (block1: per 32-column step 1 activation load and 4 weight loads for 4
// TDPBF16PS); 17+ tokens, 2 token tiles x 2 panels (block2: A0/A1 and B0/B1, 4 loads for 4
// TDPBF16PS, each weight tile used twice). Either way a block reads its weights once. Token tiles
// shorter than 16 rows (the batch's remainder, or a single decoded token) are configured with
// fewer rows; the weights' tile is always full.
//
// Cost (measured on a 2-core Xeon VM, warm in L2): a TDPBF16PS ~4.9 ns whatever its rows, a
// 1 KB tile load ~9 ns, so weight streaming bounds the kernel. LDTILECFG runs only when a
// thread's tile shape changes: at most twice per call (full token pairs, then the remainder);
// a decoding loop reuses one shape.
//
// The SwiGLU variant (matmul_bf16_amx_swiglu) runs the same tile blocks over gate panels and
// their up panels (tiles1/tiles2 take panel indices) and applies SiLU to the result tiles in L1.
#include <algorithm>
#include <cstring>
#include <vector>

#include "ops/bf16_amx.h"
#include "ops/bf16_dot.h"
#include "ops/bf16_parts.h"
#include "ops/elementwise.h"
#include "util/aligned.h"
#include "util/check.h"

#if defined(SWIFT_BF16_AMX)
#include <immintrin.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif

namespace swift {

namespace {

#if defined(SWIFT_BF16_AMX)
constexpr int kArchReqXcompPerm = 0x1023;  // arch_prctl: request an XSAVE feature for this process
constexpr int kXfeatureXtiledata = 18;     // the AMX tile data state

// Tile register numbers. GCC's tile intrinsics paste their argument into the assembly text, so
// the instructions below spell them as literals: C00 = 0, C01 = 1, C10 = 2, C11 = 3 (token tile
// x panel), A0 = 4, A1 = 5 (token tiles), B0 = 6, B1 = 7 (panels).
enum : int { kC00 = 0, kC01 = 1, kC10 = 2, kC11 = 3, kA0 = 4, kA1 = 5, kB0 = 6, kB1 = 7 };

// Stores result tile `tile` (0..3) with the given row stride in bytes.
void tile_store(int tile, void* dst, int64_t stride) {
  switch (tile) {
    case kC00:
      _tile_stored(0, dst, stride);
      break;
    case kC01:
      _tile_stored(1, dst, stride);
      break;
    case kC10:
      _tile_stored(2, dst, stride);
      break;
    default:
      _tile_stored(3, dst, stride);
      break;
  }
}

// Configures the tiles for token tiles of r0 and r1 rows (a no-op when this thread's tiles already
// have that shape). r1 > 0: 2 x 2 result tiles (C00, C01 of r0 rows; C10, C11 of r1). r1 = 0 (at
// most 16 tokens): result tiles 0-3 are four panels of one token tile (block1).
void configure(int r0, int r1) {
  AmxTileConfig c;
  auto set = [&](int tile, int rows) {
    c.rows[tile] = static_cast<uint8_t>(rows);
    c.colsb[tile] = rows > 0 ? 64 : 0;
  };
  set(kC00, r0);
  set(kC01, r0);
  set(kA0, r0);
  set(kC10, r1 > 0 ? r1 : r0);
  set(kC11, r1 > 0 ? r1 : r0);
  set(kA1, r1);
  set(kB0, 16);
  set(kB1, 16);
  amx_load_config(r0 * 32 + r1, c);
}

// Tiles of split3_range: C0, C1 (r0 token rows x 16 outputs), A = 4, 5, 2 (the three planes'
// r0 rows), B = 6, 7 (weights).
void configure_split3(int r0) {
  AmxTileConfig c;
  for (int t : {0, 1, 2, 4, 5}) c.rows[t] = static_cast<uint8_t>(r0), c.colsb[t] = 64;
  for (int t : {6, 7}) c.rows[t] = 16, c.colsb[t] = 64;
  amx_load_config(1000 + r0, c);  // keys 1001-1016 (configure()'s, r0 * 32 + r1, stay under 529)
}

struct AmxArgs {
  const uint16_t* w;  // [n_panels, pairs, 16, 2]
  int64_t rows, pairs;
  const uint16_t* x;  // [n_tok, 2 * pairs] bf16
  float* y;           // [n_tok, rows]
  const float* bias;
};

// Writes result tile `tile` (n_rows tokens from t0, panel p) into y, adding the bias.
void store(const AmxArgs& a, int tile, int64_t t0, int n_rows, int64_t p) {
  const int64_t row0 = p * kPanelRows;
  const int64_t live = std::min<int64_t>(a.rows - row0, kPanelRows);
  float* out = a.y + t0 * a.rows + row0;
  if (live == kPanelRows) {
    tile_store(tile, out, a.rows * static_cast<int64_t>(sizeof(float)));
  } else {  // the last panel of a matrix whose rows are not a multiple of 16: only the live columns
    alignas(64) float tmp[kPanelRows * kPanelRows];
    tile_store(tile, tmp, kPanelRows * static_cast<int64_t>(sizeof(float)));
    for (int t = 0; t < n_rows; ++t) std::memcpy(out + t * a.rows, tmp + t * kPanelRows, live * sizeof(float));
  }
  if (a.bias)
    for (int t = 0; t < n_rows; ++t)
      for (int64_t r = 0; r < live; ++r) out[t * a.rows + r] += a.bias[row0 + r];
}

// Two token tiles (17+ tokens) at t0 and t0 + 16 against panels pan[0, NP), NP <= 2: results in
// C00, C01 (first token tile) and C10, C11 (second), left in the tile registers.
template <int NP>
void tiles2(const AmxArgs& a, const int64_t* pan, int64_t t0) {
  // GCC's tile-load macro declares no memory input: make every store to the operands visible.
  asm volatile("" : : : "memory");
  _tile_zero(0);
  _tile_zero(2);
  if constexpr (NP == 2) {
    _tile_zero(1);
    _tile_zero(3);
  }
  const int64_t x_stride = 2 * a.pairs * static_cast<int64_t>(sizeof(uint16_t));
  const int64_t panel = a.pairs * 2 * kPanelRows;  // elements per panel
  const uint16_t* x0 = a.x + t0 * 2 * a.pairs;
  const uint16_t* w0 = a.w + pan[0] * panel;
  const uint16_t* w1 = a.w + pan[NP - 1] * panel;
  for (int64_t j = 0; j < a.pairs; j += 16) {  // 16 pairs = 32 columns per step
    _tile_loadd(4, x0 + 2 * j, x_stride);
    _tile_loadd(6, w0 + j * 2 * kPanelRows, 64);
    _tile_dpbf16ps(0, 4, 6);
    _tile_loadd(5, x0 + kPanelRows * 2 * a.pairs + 2 * j, x_stride);
    _tile_dpbf16ps(2, 5, 6);
    if constexpr (NP == 2) {
      _tile_loadd(7, w1 + j * 2 * kPanelRows, 64);
      _tile_dpbf16ps(1, 4, 7);
      _tile_dpbf16ps(3, 5, 7);
    }
  }
}

// Panels [p, p + NP) x token tiles at t0 (r0 rows) and t0 + 16 (r1 rows), stored into y.
template <int NP>
void block2(const AmxArgs& a, int64_t p, int64_t t0, int r0, int r1) {
  const int64_t pan[2] = {p, p + NP - 1};
  tiles2<NP>(a, pan, t0);
  store(a, kC00, t0, r0, p);
  store(a, kC10, t0 + kPanelRows, r1, p);
  if constexpr (NP == 2) {
    store(a, kC01, t0, r0, p + 1);
    store(a, kC11, t0 + kPanelRows, r1, p + 1);
  }
}

// One token tile at t0 against panels pan[0, NP), NP <= 4, into result tiles 0..NP-1. Each step
// loads the activations once for NP panels (a 16-token tile is as many bytes as a weight tile:
// sharing it over 4 panels instead of 2 saves a fifth of the loads), weight tiles alternating
// between B0 and B1.
template <int NP>
void tiles1(const AmxArgs& a, const int64_t* pan, int64_t t0) {
  asm volatile("" : : : "memory");  // as in tiles2()
  _tile_zero(0);
  if constexpr (NP >= 2) _tile_zero(1);
  if constexpr (NP >= 3) _tile_zero(2);
  if constexpr (NP >= 4) _tile_zero(3);
  const int64_t x_stride = 2 * a.pairs * static_cast<int64_t>(sizeof(uint16_t));
  const int64_t panel = a.pairs * 2 * kPanelRows;  // elements per panel
  const uint16_t* x0 = a.x + t0 * 2 * a.pairs;
  const uint16_t* w[4];
  for (int k = 0; k < NP; ++k) w[k] = a.w + pan[k] * panel;
  for (int64_t j = 0; j < a.pairs; j += 16) {
    const int64_t off = j * 2 * kPanelRows;
    _tile_loadd(4, x0 + 2 * j, x_stride);
    _tile_loadd(6, w[0] + off, 64);
    _tile_dpbf16ps(0, 4, 6);
    if constexpr (NP >= 2) {
      _tile_loadd(7, w[1] + off, 64);
      _tile_dpbf16ps(1, 4, 7);
    }
    if constexpr (NP >= 3) {
      _tile_loadd(6, w[2] + off, 64);
      _tile_dpbf16ps(2, 4, 6);
    }
    if constexpr (NP >= 4) {
      _tile_loadd(7, w[3] + off, 64);
      _tile_dpbf16ps(3, 4, 7);
    }
  }
}

// Panels [p, p + NP) x one token tile (r0 <= 16 rows at t0), stored into y.
template <int NP>
void block1(const AmxArgs& a, int64_t p, int64_t t0, int r0) {
  const int64_t pan[4] = {p, p + 1, p + 2, p + 3};
  tiles1<NP>(a, pan, t0);
  store(a, 0, t0, r0, p);
  if constexpr (NP >= 2) store(a, 1, t0, r0, p + 1);
  if constexpr (NP >= 3) store(a, 2, t0, r0, p + 2);
  if constexpr (NP >= 4) store(a, 3, t0, r0, p + 3);
}

// Panels [p0, p1) for all tokens: token pairs outer (one tile shape per pair; the thread's
// panels stay in L2 between pairs), panel pairs inner.
void amx_range(const AmxArgs& a, int64_t p0, int64_t p1, int64_t n_tok) {
  for (int64_t t0 = 0; t0 < n_tok; t0 += 2 * kPanelRows) {
    const int r0 = static_cast<int>(std::min<int64_t>(kPanelRows, n_tok - t0));
    const int r1 = static_cast<int>(std::clamp<int64_t>(n_tok - t0 - kPanelRows, 0, kPanelRows));
    configure(r0, r1);
    int64_t p = p0;
    if (r1 > 0) {
      for (; p + 2 <= p1; p += 2) block2<2>(a, p, t0, r0, r1);
      if (p < p1) block2<1>(a, p, t0, r0, r1);
    } else {  // one token tile: the whole batch (<= 16 tokens) or the remainder after pairs
      for (; p + 4 <= p1; p += 4) block1<4>(a, p, t0, r0);
      switch (p1 - p) {
        case 3:
          block1<3>(a, p, t0, r0);
          break;
        case 2:
          block1<2>(a, p, t0, r0);
          break;
        case 1:
          block1<1>(a, p, t0, r0);
          break;
        default:
          break;
      }
    }
  }
}

// SwiGLU outputs (matmul_bf16_amx_swiglu): I gate columns, then I up columns in a.y's place.
struct SwigluOut {
  int64_t inter;    // I
  float* g;         // [n_tok, I] or null
  uint16_t* g16;    // [n_tok, I]
  const float* bias;  // [2 I] or null
};

// Rows [0, n_rows) of gate and up tiles in L1 (gate[t * 32 + c], up likewise, c < width) plus
// bias, through silu_mul_bf16 into the outputs at token t0 and column c0: the same operations as
// store() then silu_mul_bf16 over whole rows, so the same bits.
void swiglu_rows(const SwigluOut& o, float* gate, float* up, int n_rows, int width, int64_t t0, int64_t c0) {
  for (int t = 0; t < n_rows; ++t) {
    float* gr = gate + t * 32;
    float* ur = up + t * 32;
    if (o.bias)
      for (int c = 0; c < width; ++c) gr[c] += o.bias[c0 + c], ur[c] += o.bias[o.inter + c0 + c];
    const int64_t at = (t0 + t) * o.inter + c0;
    silu_mul_bf16(gr, ur, width, o.g ? o.g + at : nullptr, o.g16 + at);
  }
}

// Gate panels [q0, q1) and their up panels for all tokens (the work split of amx_range; P gate
// panels, up panel of gate panel q is P + q).
void amx_swiglu_range(const AmxArgs& a, const SwigluOut& o, int64_t q0, int64_t q1, int64_t n_tok) {
  const int64_t P = o.inter / kPanelRows;
  alignas(64) float gate[kPanelRows * 32], up[kPanelRows * 32];
  constexpr int64_t kStride = 32 * sizeof(float);  // two panels' tiles side by side per row
  for (int64_t t0 = 0; t0 < n_tok; t0 += 2 * kPanelRows) {
    const int r0 = static_cast<int>(std::min<int64_t>(kPanelRows, n_tok - t0));
    const int r1 = static_cast<int>(std::clamp<int64_t>(n_tok - t0 - kPanelRows, 0, kPanelRows));
    configure(r0, r1);
    if (r1 > 0) {  // two token tiles, one gate panel (and its up panel) at a time
      for (int64_t q = q0; q < q1; ++q) {
        const int64_t pan[2] = {q, P + q};
        tiles2<2>(a, pan, t0);
        _tile_stored(0, gate, kStride);
        _tile_stored(1, up, kStride);
        swiglu_rows(o, gate, up, r0, kPanelRows, t0, q * kPanelRows);
        _tile_stored(2, gate, kStride);
        _tile_stored(3, up, kStride);
        swiglu_rows(o, gate, up, r1, kPanelRows, t0 + kPanelRows, q * kPanelRows);
      }
    } else {  // one token tile: two gate panels and their up panels per block
      int64_t q = q0;
      for (; q + 2 <= q1; q += 2) {
        const int64_t pan[4] = {q, q + 1, P + q, P + q + 1};
        tiles1<4>(a, pan, t0);
        _tile_stored(0, gate, kStride);
        _tile_stored(1, gate + kPanelRows, kStride);
        _tile_stored(2, up, kStride);
        _tile_stored(3, up + kPanelRows, kStride);
        swiglu_rows(o, gate, up, r0, 2 * kPanelRows, t0, q * kPanelRows);
      }
      if (q < q1) {
        const int64_t pan[2] = {q, P + q};
        tiles1<2>(a, pan, t0);
        _tile_stored(0, gate, kStride);
        _tile_stored(1, up, kStride);
        swiglu_rows(o, gate, up, r0, kPanelRows, t0, q * kPanelRows);
      }
    }
  }
}

// --- f32-accurate products of BF16, F16 and F32 panels (matmul_f32_amx, bf16_amx.h) ---

// x [n_tok, cols] f32 -> three bf16 planes [3][n_tok][width] (width = cols rounded up to 32, pad
// columns zero), the parts of ops/bf16_parts.h.
void split3_rows(const float* x, int64_t t0, int64_t t1, int64_t cols, int64_t width, int64_t plane, uint16_t* out) {
  for (int64_t t = t0; t < t1; ++t) {
    const float* xr = x + t * cols;
    uint16_t* o1 = out + t * width;
    for (int64_t c = 0; c < width; c += 16) {
      const __mmask16 m = static_cast<__mmask16>(c + 16 <= cols ? 0xffff : c < cols ? (1u << (cols - c)) - 1 : 0);
      bf16_parts::store3(_mm512_maskz_loadu_ps(m, xr + c), o1 + c, plane);
    }
  }
}

// Panel p of a kPanel16 BF16 matrix ([cols][16 rows]) in the pair layout the tile unit reads
// ([width / 2][16 rows][2], zero pairs past cols): one vpermw per two columns.
void panel_to_pairs(const uint16_t* panel, int64_t cols, int64_t width, uint16_t* out) {
  const __m512i order = _mm512_set_epi16(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8, 23, 7, 22, 6, 21,
                                         5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
  for (int64_t c = 0; c < width; c += 2) {
    const __mmask32 m = c + 2 <= cols ? 0xffffffffu : c < cols ? 0xffffu : 0u;
    const __m512i two = _mm512_maskz_loadu_epi16(m, panel + c * kPanelRows);  // columns c, c + 1
    _mm512_storeu_si512(out + c * kPanelRows, _mm512_maskz_permutexvar_epi16(0xffffffffu, order, two));
  }
}

// Panel p of a kPanel16 F32 or F16 matrix ([cols][16 rows]) as WP bf16 parts in the pair layout,
// planes `plane` elements apart: w = w1 + w2 (+ w3) exactly, each part rounded to nearest even
// from what the ones before it left (F16's 11-bit significands need two parts, F32's 24 three).
template <DType DT, int WP>
void panel_to_parts(const void* panel, int64_t cols, int64_t width, uint16_t* out, int64_t plane) {
  const __m512i order = _mm512_set_epi16(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8, 23, 7, 22, 6, 21,
                                         5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
  auto column = [&](int64_t c) {  // the 16 rows of column c as f32 (zero past cols)
    if (c >= cols) return _mm512_setzero_ps();
    if constexpr (DT == DType::kF32)
      return _mm512_loadu_ps(static_cast<const float*>(panel) + c * kPanelRows);
    else
      return _mm512_maskz_cvtph_ps(  // the maskz forms: GCC 12 warns on the plain ones
          0xffff,
          _mm256_loadu_si256(reinterpret_cast<const __m256i*>(static_cast<const uint16_t*>(panel) + c * kPanelRows)));
  };
  for (int64_t c = 0; c < width; c += 2) {
    __m512 v0 = column(c), v1 = column(c + 1);
    for (int k = 0; k < WP; ++k) {
      const __m256bh h0 = _mm512_cvtneps_pbh(v0), h1 = _mm512_cvtneps_pbh(v1);
      const __m512i lo =
          _mm512_maskz_inserti64x4(0xff, _mm512_setzero_si512(), reinterpret_cast<const __m256i&>(h0), 0);
      const __m512i two = _mm512_maskz_inserti64x4(0xff, lo, reinterpret_cast<const __m256i&>(h1), 1);
      _mm512_storeu_si512(out + k * plane + c * kPanelRows, _mm512_maskz_permutexvar_epi16(0xffffffffu, order, two));
      v0 = _mm512_sub_ps(v0, bf16_parts::widen(h0));
      v1 = _mm512_sub_ps(v1, bf16_parts::widen(h1));
    }
  }
}

// One token tile at t0 (its rows as configured) against NP <= 2 repacked panels of WP weight
// parts each (b[k] + j plane: part j of panel k), columns [c0, c1): per 32-column step the three
// activation planes' tiles (A1 = 5 holds plane 1, tile 2 is free with one token tile: plane 2)
// and, per weight part j, two weight tiles and the products of x_i w_j with i + j <= 2 (BF16
// weights, exact in bf16: one part, three products per panel; F16 two parts, five; F32 three,
// six), into C0, C1, which start from zero (acc null) or from the 16 x 16 f32 tiles at acc (row
// stride 64 bytes). Consecutive products alternate between the two accumulators.
template <int NP, int WP>
void tiles_split3(const uint16_t* x3, int64_t plane, int64_t width, const uint16_t* const* b, int64_t w_plane,
                  int64_t t0, int64_t c0, int64_t c1, const float* acc) {
  asm volatile("" : : : "memory");  // as in tiles2()
  if (acc) {
    _tile_loadd(0, acc, 64);
    if constexpr (NP == 2) _tile_loadd(1, acc + kPanelRows * kPanelRows, 64);
  } else {
    _tile_zero(0);
    if constexpr (NP == 2) _tile_zero(1);
  }
  const int64_t x_stride = width * static_cast<int64_t>(sizeof(uint16_t));
  const uint16_t* x0 = x3 + t0 * width;
  for (int64_t c = c0; c < c1; c += 32) {
    _tile_loadd(6, b[0] + c * kPanelRows, 64);
    if constexpr (NP == 2) _tile_loadd(7, b[1] + c * kPanelRows, 64);
    _tile_loadd(4, x0 + c, x_stride);
    _tile_loadd(5, x0 + plane + c, x_stride);
    _tile_loadd(2, x0 + 2 * plane + c, x_stride);
    _tile_dpbf16ps(0, 4, 6);
    if constexpr (NP == 2) _tile_dpbf16ps(1, 4, 7);
    _tile_dpbf16ps(0, 5, 6);
    if constexpr (NP == 2) _tile_dpbf16ps(1, 5, 7);
    _tile_dpbf16ps(0, 2, 6);
    if constexpr (NP == 2) _tile_dpbf16ps(1, 2, 7);
    if constexpr (WP >= 2) {  // x1 w2, x2 w2
      _tile_loadd(6, b[0] + w_plane + c * kPanelRows, 64);
      if constexpr (NP == 2) _tile_loadd(7, b[1] + w_plane + c * kPanelRows, 64);
      _tile_dpbf16ps(0, 4, 6);
      if constexpr (NP == 2) _tile_dpbf16ps(1, 4, 7);
      _tile_dpbf16ps(0, 5, 6);
      if constexpr (NP == 2) _tile_dpbf16ps(1, 5, 7);
    }
    if constexpr (WP >= 3) {  // x1 w3
      _tile_loadd(6, b[0] + 2 * w_plane + c * kPanelRows, 64);
      if constexpr (NP == 2) _tile_loadd(7, b[1] + 2 * w_plane + c * kPanelRows, 64);
      _tile_dpbf16ps(0, 4, 6);
      if constexpr (NP == 2) _tile_dpbf16ps(1, 4, 7);
    }
  }
}

// Panels [p0, p1) of the kPanel16 matrix for all tokens, a chunk of panels at a time: the chunk
// repacked into this thread's buffer (16 BF16 panels of 256 columns: 128 KB, in L2; the thread's
// whole share of a gate|up matrix would be 0.4 MB; F16 and F32 panels take two and three parts,
// so fewer per chunk), then every token tile against it, kSplit3Cols columns at a time (the
// tile's three planes of them, 24 KB, stay in L1 while the panels stream; the accumulators wait
// in a 16 KB buffer between column ranges, exact f32 tiles, so every output sums its products in
// the same order either way). Measured (one thread, 250 tokens): 1536 x 256, chunks of 16 panels
// ~390-400 us, of 2-4 (weights in L1, activations from L2) ~445-465 us; 256 x 768 (the demo
// model's down projection) 336-346 -> 290-306 us with column ranges.
constexpr int64_t kSplit3Cols = 256;

template <DType DT, int WP>
void split3_range(const MatView& w, const uint16_t* x3, int64_t plane, int64_t width, int64_t n_tok, float* y,
                  const float* bias, int64_t p0, int64_t p1) {
  constexpr int64_t kChunk = WP == 1 ? 16 : WP == 2 ? 8 : 6;  // panels per chunk (even: pairs)
  thread_local std::vector<uint16_t> buffer;                  // [kChunk][WP][width / 2][16][2], grown on demand
  thread_local std::vector<float> acc_buffer;                 // [kChunk][16][16] accumulators between column ranges
  const int64_t per_part = width * kPanelRows, per_panel = WP * per_part;
  uint16_t* pairs = grow_aligned64(buffer, kChunk * per_panel);
  float* acc = grow_aligned64(acc_buffer, kChunk * kPanelRows * kPanelRows);
  const AmxArgs a{nullptr, w.rows, width / 2, nullptr, y, bias};
  for (int64_t q0 = p0; q0 < p1; q0 += kChunk) {
    const int64_t q1 = std::min(p1, q0 + kChunk);
    for (int64_t p = q0; p < q1; ++p) {
      uint16_t* dst = pairs + (p - q0) * per_panel;
      if constexpr (DT == DType::kBF16)
        panel_to_pairs(static_cast<const uint16_t*>(w.data) + p * w.cols * kPanelRows, w.cols, width, dst);
      else
        panel_to_parts<DT, WP>(static_cast<const char*>(w.data) + p * w.cols * kPanelRows * dtype_size(DT), w.cols,
                               width, dst, per_part);
    }
    for (int64_t t0 = 0; t0 < n_tok; t0 += kPanelRows) {
      const int r0 = static_cast<int>(std::min<int64_t>(kPanelRows, n_tok - t0));
      configure_split3(r0);
      for (int64_t c0 = 0; c0 < width; c0 += kSplit3Cols) {
        const int64_t c1 = std::min(width, c0 + kSplit3Cols);
        const bool last = c1 == width;
        for (int64_t p = q0; p < q1; p += 2) {
          const uint16_t* b[2] = {pairs + (p - q0) * per_panel, pairs + (p + 1 - q0) * per_panel};
          float* pa = acc + (p - q0) * kPanelRows * kPanelRows;  // this pair's two accumulator tiles
          const float* from = c0 > 0 ? pa : nullptr;
          const bool two = p + 1 < q1;
          if (two)
            tiles_split3<2, WP>(x3, plane, width, b, per_part, t0, c0, c1, from);
          else
            tiles_split3<1, WP>(x3, plane, width, b, per_part, t0, c0, c1, from);
          if (!last) {
            _tile_stored(0, pa, 64);
            if (two) _tile_stored(1, pa + kPanelRows * kPanelRows, 64);
            continue;
          }
          store(a, kC00, t0, r0, p);
          if (two) store(a, kC01, t0, r0, p + 1);
        }
      }
    }
  }
}
#endif

}  // namespace

bool bf16_amx_available() {
#if defined(SWIFT_BF16_AMX)
  static const bool granted = syscall(SYS_arch_prctl, kArchReqXcompPerm, kXfeatureXtiledata) == 0;
  return granted;
#else
  return false;
#endif
}

void amx_load_config(int key, [[maybe_unused]] const AmxTileConfig& c) {
  thread_local int loaded = -1;
  if (key == loaded) return;
#if defined(SWIFT_BF16_AMX)
  // Not _tile_loadconfig: GCC 12's macro gives the asm only the first 8 bytes of the operand as
  // input, so the compiler may drop the stores of the row and column counts as dead.
  asm volatile("ldtilecfg %0" : : "m"(c));
#else
  SWIFT_CHECK(false, "AMX tile configuration in a build without AMX");
#endif
  loaded = key;
}

bool bf16_amx_usable(const MatView& w) {
  return w.layout == MatLayout::kPanel16Pairs && w.dtype == DType::kBF16 && w.cols % 32 == 0 && bf16_amx_available();
}

void matmul_bf16_amx(const MatView& w, const float* x, int64_t n_tok, float* y, const float* bias, ThreadPool& pool) {
  if (n_tok <= 0 || w.rows == 0) return;
  matmul_bf16_amx_rounded(w, bf16_round_rows(x, n_tok, w.cols), n_tok, y, bias, pool);
}

void matmul_bf16_amx_rounded(const MatView& w, const uint16_t* x16, int64_t n_tok, float* y, const float* bias,
                             ThreadPool& pool) {
  SWIFT_CHECK(bf16_amx_usable(w), "AMX kernel called for a {}x{} matrix it cannot run", w.rows, w.cols);
  if (n_tok <= 0 || w.rows == 0) return;
#if defined(SWIFT_BF16_AMX)
  const AmxArgs a{static_cast<const uint16_t*>(w.data), w.rows, w.cols / 2, x16, y, bias};
  // Work unit: a pair of panels (the block's width), so each output is computed by one thread.
  // The pair of units at each cut goes to whichever thread gets there first
  // (ThreadPool::parallel_for_balanced): with fixed halves the calling thread waited 1-4K cycles
  // at the end of these products in a 16-token pass (2-core Xeon); sharing one unit per side
  // took the 16-token pass from 1.662 to 1.620 ms (means of five alternated medians), one-token
  // passes unchanged. Sharing two was no better; the SwiGLU product and the f32 panel kernels
  // measured no gain (the latter lost 1-4% on one-token passes) and keep fixed halves.
  constexpr int64_t kSharedUnits = 1;
  const int64_t n_panels = (w.rows + kPanelRows - 1) / kPanelRows;
  pool.parallel_for_balanced((n_panels + 1) / 2, kSharedUnits, [&](int64_t u0, int64_t u1, int) {
    amx_range(a, 2 * u0, std::min(2 * u1, n_panels), n_tok);
  });
#else
  (void)x16, (void)y, (void)bias, (void)pool;
#endif
}

bool bf16_amx_swiglu_usable(const MatView& w) {
  return bf16_amx_usable(w) && w.rows % (2 * kPanelRows) == 0;
}

void matmul_bf16_amx_swiglu(const MatView& w, const uint16_t* x16, int64_t n_tok, float* g, uint16_t* g16,
                            const float* bias, ThreadPool& pool) {
  SWIFT_CHECK(bf16_amx_swiglu_usable(w), "AMX SwiGLU kernel called for a {}x{} matrix it cannot run", w.rows, w.cols);
  if (n_tok <= 0) return;
#if defined(SWIFT_BF16_AMX)
  const AmxArgs a{static_cast<const uint16_t*>(w.data), w.rows, w.cols / 2, x16, nullptr, nullptr};
  const SwigluOut o{w.rows / 2, g, g16, bias};
  // Work unit: two gate panels with their up panels (one block), each output by one thread.
  const int64_t n_gate = w.rows / 2 / kPanelRows;
  pool.parallel_for((n_gate + 1) / 2, [&](int64_t u0, int64_t u1, int) {
    amx_swiglu_range(a, o, 2 * u0, std::min(2 * u1, n_gate), n_tok);
  });
#else
  (void)x16, (void)g, (void)g16, (void)bias, (void)pool;
#endif
}

bool f32_amx_usable(const MatView& w) {
  return w.layout == MatLayout::kPanel16 &&
         (w.dtype == DType::kBF16 || w.dtype == DType::kF16 || w.dtype == DType::kF32) && bf16_amx_available();
}

void matmul_f32_amx(const MatView& w, const float* x, int64_t n_tok, float* y, const float* bias, ThreadPool& pool) {
  SWIFT_CHECK(f32_amx_usable(w), "f32 AMX kernel called for a {}x{} {} matrix it cannot run", w.rows, w.cols,
              dtype_name(w.dtype));
  if (n_tok <= 0 || w.rows == 0) return;
#if defined(SWIFT_BF16_AMX)
  // At most kSplit3Tokens tokens per pass over the weights: the three planes of a longer prompt
  // would take 6 bytes per activation (~270 MB for 4,096 tokens of an 11,008-wide LLaMA-7B
  // row) in a buffer the calling thread keeps; per chunk they stay under 34 MB there. A token's
  // outputs do not depend on its chunk. (256-token chunks cost a 442-token prefill of the demo
  // model ~2.5%: the weights repacked twice, a short second pass.)
  constexpr int64_t kSplit3Tokens = 512;
  const int64_t width = (w.cols + 31) / 32 * 32, n_panels = (w.rows + kPanelRows - 1) / kPanelRows;
  thread_local std::vector<uint16_t> x3;  // the calling thread's; the pool's rounds read it
  for (int64_t c0 = 0; c0 < n_tok; c0 += kSplit3Tokens) {
    const int64_t n = std::min(kSplit3Tokens, n_tok - c0), plane = n * width;
    const float* xc = x + c0 * w.cols;
    float* yc = y + c0 * w.rows;
    uint16_t* xs = grow_aligned64(x3, 3 * plane);
    pool.parallel_for(n, [&](int64_t t0, int64_t t1, int) { split3_rows(xc, t0, t1, w.cols, width, plane, xs); });
    // Work unit: a pair of panels, repacked once and run against every token of the chunk.
    pool.parallel_for((n_panels + 1) / 2, [&](int64_t u0, int64_t u1, int) {
      const int64_t p0 = 2 * u0, p1 = std::min(2 * u1, n_panels);
      switch (w.dtype) {
        case DType::kBF16:
          split3_range<DType::kBF16, 1>(w, xs, plane, width, n, yc, bias, p0, p1);
          break;
        case DType::kF16:
          split3_range<DType::kF16, 2>(w, xs, plane, width, n, yc, bias, p0, p1);
          break;
        default:
          split3_range<DType::kF32, 3>(w, xs, plane, width, n, yc, bias, p0, p1);
          break;
      }
    });
  }
#else
  (void)x, (void)y, (void)bias, (void)pool;
#endif
}

}  // namespace swift
