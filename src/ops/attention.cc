// Attention over explicit slot lists (ops/attention.h).
//
// Work unit: one KV head and a chunk of up to 16 query tokens, with all query heads that share
// that KV head (GQA). The group's heads score the same keys while their rows are in L1 and their
// weighted sums advance together, so independent FMA chains hide the FMA latency that one
// head's sequential sum over keys would expose (the sum runs in list order for every element,
// which is what makes a token's output independent of its batch). The context a chunk's tokens
// share (verification: the committed slots; prefill: the earlier prompt) is taken in blocks of
// 64 keys that every token of the chunk uses while the rows are in L1, the weighted sums
// carried from block to block (the chunk's tokens together: each value row loaded feeds up to 16
// FMA chains across tokens and heads); each token's own remainder follows. Measured on a Xeon, 16
// tokens after 300: attention alone 1.29 -> 1.24 ms, the whole pass 3.04 -> 2.92 ms (medians of
// 6); one token unchanged. Per head:
//   scores_j = (q . k_j) * scale          lane-contract dot products, 16 keys reduced together
//   w_j      = exp(scores_j - max)        lanes::exp, 16 at a time
//   sum      = sum_j w_j                  in double, 16 fixed partial sums, fixed tree
//   out      = (sum_j w_j v_j) * (1/sum)  keys in list order
// Every step depends only on the query and its visible keys in list order, never on the batch,
// the thread split or the other heads.
#include "ops/attention.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <type_traits>

#include "ops/lanes.h"
#include "ops/prefetch_ahead.h"
#include "util/check.h"

namespace swift {

int64_t SlotLists::max_len() const {
  int64_t m = 0;
  for (size_t i = 0; i + 1 < offsets.size(); ++i) m = std::max(m, offsets[i + 1] - offsets[i]);
  return m;
}

namespace {

using namespace lanes;

// Cached keys and values of earlier steps come from DRAM, and a list of slots hides the pattern
// from the hardware prefetcher: they are requested this many keys ahead. Measured in isolation
// (24 layers x 330 keys, cold cache, 2 threads): 0.56 -> 0.46 ms; 1 thread 0.85 -> 0.57 ms.
constexpr int64_t kKeysAhead = 32;

inline void prefetch_row(const float* row, int64_t n_floats) {
  const char* r = reinterpret_cast<const char*>(row);
  for (int64_t b = 0; b < n_floats * 4; b += 64) __builtin_prefetch(r + b, 0, 3);
}

// Scores of the group's n_q queries (q + h * hd) against keys sl[0, n):
// scores[h * stride + j] = (q_h . k_j) * scale. Sixteen keys are in flight at a time
// (independent FMA chains) and reduced together (lanes::reduce16); the tail uses the plain dot.
// Both give reduce(dot lanes) bit for bit, so a key's score does not depend on its index.
void group_scores(const float* q, int64_t n_q, const float* k, const int32_t* sl, int64_t n, int64_t kv_stride,
                  int64_t hd, float scale, float* scores, int64_t stride, bool prefetch) {
  const Vec sv = broadcast(scale);
  int64_t j = 0;
  for (; j + 16 <= n; j += 16) {
    if (prefetch && j + kKeysAhead + 16 <= n)
      for (int i = 0; i < 16; ++i) prefetch_row(k + static_cast<int64_t>(sl[j + kKeysAhead + i]) * kv_stride, hd);
    const float* row[16];
#pragma GCC unroll 16
    for (int i = 0; i < 16; ++i) row[i] = k + static_cast<int64_t>(sl[j + i]) * kv_stride;
    for (int64_t h = 0; h < n_q; ++h) {
      const float* qh = q + h * hd;
      Vec acc[16];
#pragma GCC unroll 16
      for (int i = 0; i < 16; ++i) acc[i] = zero();
      for (int64_t c = 0; c < hd; c += kLanes) {
        const Mask m = mask_for(hd - c);
        const Vec qv = load(qh + c, m);
#pragma GCC unroll 16
        for (int i = 0; i < 16; ++i) acc[i] = fma(qv, load(row[i] + c, m), acc[i]);
      }
      float* out = scores + h * stride + j;
      reduce16(acc, out);
      store(out, mul(load(out, mask_for(16)), sv), mask_for(16));
    }
  }
  for (; j < n; ++j)
    for (int64_t h = 0; h < n_q; ++h)
      scores[h * stride + j] = dot(q + h * hd, k + static_cast<int64_t>(sl[j]) * kv_stride, hd) * scale;
}

// group_scores for G >= 2 heads sharing the KV head: blocks of 16 / G keys, each key row loaded
// once per column step and multiplied with all G queries (the loop above reloads every row once
// per head: with G = 2 it issued one load per FMA and was bound by the load ports). The same
// per-key lane chains and reduce16, so the same bits.
template <int G>
void group_scores_shared(const float* q, const float* k, const int32_t* sl, int64_t n, int64_t kv_stride, int64_t hd,
                         float scale, float* scores, int64_t stride, bool prefetch) {
  constexpr int KB = 16 / G;
  static_assert(KB * G == 16);
  const Vec sv = broadcast(scale);
  int64_t j = 0;
  for (; j + KB <= n; j += KB) {
    if (prefetch && j + kKeysAhead + KB <= n)
      for (int i = 0; i < KB; ++i) prefetch_row(k + static_cast<int64_t>(sl[j + kKeysAhead + i]) * kv_stride, hd);
    const float* row[KB];
#pragma GCC unroll 16
    for (int i = 0; i < KB; ++i) row[i] = k + static_cast<int64_t>(sl[j + i]) * kv_stride;
    Vec acc[16];  // [head][key]
#pragma GCC unroll 16
    for (int i = 0; i < 16; ++i) acc[i] = zero();
    for (int64_t c = 0; c < hd; c += kLanes) {
      const Mask m = mask_for(hd - c);
      Vec kv[KB];
#pragma GCC unroll 16
      for (int i = 0; i < KB; ++i) kv[i] = load(row[i] + c, m);
#pragma GCC unroll 8
      for (int h = 0; h < G; ++h) {
        const Vec qv = load(q + h * hd + c, m);
#pragma GCC unroll 16
        for (int i = 0; i < KB; ++i) acc[h * KB + i] = fma(qv, kv[i], acc[h * KB + i]);
      }
    }
    alignas(64) float red[16];
    reduce16(acc, red);
    const Vec sc = mul(load(red, mask_for(16)), sv);
    store(red, sc, mask_for(16));
#pragma GCC unroll 8
    for (int h = 0; h < G; ++h) std::copy_n(red + h * KB, KB, scores + h * stride + j);
  }
  for (; j < n; ++j)
    for (int64_t h = 0; h < G; ++h)
      scores[h * stride + j] = dot(q + h * hd, k + static_cast<int64_t>(sl[j]) * kv_stride, hd) * scale;
}

// Keys in lanes, for a chunk of tokens that share a context (issue 6: verification cost). The
// kernels above keep dimensions in lanes, so every score ends in a reduction across lanes: with
// 16 tokens x 2 heads per key block those reductions and their loads were ~2x the multiply-adds
// (group_scores_shared ~11% of a 16-token pass on the Zen 4 VM). Here 16 keys are transposed
// once into kt [hd][16] (dimension-major, L1) and every query of the chunk multiplies them with
// broadcast elements of its q: the lane chain of dimension class l (dimensions l, l + 16, ...)
// becomes a whole vector over the 16 keys, and reduce()'s tree (l + l+8, then + l+4, then
// (0 + 2) + (1 + 3)) becomes vector additions. Same operations in the same order on the same
// operands, so the same bits as group_scores / group_scores_shared (tested: tokens alone against
// the batch); hd must be a multiple of 16 (every LLaMA-family head: 64 or 128), else the chunk
// keeps the per-token path.
constexpr int64_t kOuterMinQueries = 8;  // tokens x heads of a chunk from which the transpose pays

// kt[d * 16 + i] = k row sl[i], dimension d, for i < n (n <= 16); zeros for i >= n.
void transpose_keys(const float* k, const int32_t* sl, int64_t n, int64_t kv_stride, int64_t hd, float* kt) {
#if defined(__AVX512F__)
  const float* row[16];
  for (int64_t i = 0; i < 16; ++i) row[i] = i < n ? k + static_cast<int64_t>(sl[i]) * kv_stride : nullptr;
  constexpr __mmask16 kAll = 0xffff;
  for (int64_t c = 0; c < hd; c += 16) {
    __m512 r[16], t[16];
#pragma GCC unroll 16
    for (int i = 0; i < 16; ++i) r[i] = row[i] != nullptr ? _mm512_loadu_ps(row[i] + c) : _mm512_setzero_ps();
    // 16 x 16 transpose: pairs, quads within 128-bit lanes, then 128-bit lanes across rows.
#pragma GCC unroll 8
    for (int i = 0; i < 8; ++i) {
      t[2 * i] = _mm512_maskz_unpacklo_ps(kAll, r[2 * i], r[2 * i + 1]);
      t[2 * i + 1] = _mm512_maskz_unpackhi_ps(kAll, r[2 * i], r[2 * i + 1]);
    }
#pragma GCC unroll 4
    for (int m = 0; m < 4; ++m) {  // r[4m + e]: rows 4m..4m+3, column 4L + e in 128-bit lane L
      r[4 * m] = _mm512_maskz_shuffle_ps(kAll, t[4 * m], t[4 * m + 2], 0x44);
      r[4 * m + 1] = _mm512_maskz_shuffle_ps(kAll, t[4 * m], t[4 * m + 2], 0xEE);
      r[4 * m + 2] = _mm512_maskz_shuffle_ps(kAll, t[4 * m + 1], t[4 * m + 3], 0x44);
      r[4 * m + 3] = _mm512_maskz_shuffle_ps(kAll, t[4 * m + 1], t[4 * m + 3], 0xEE);
    }
#pragma GCC unroll 4
    for (int e = 0; e < 4; ++e) {  // lanes L0, L2 (0x88) and L1, L3 (0xdd) of rows 0-7, then 8-15
      t[e] = _mm512_maskz_shuffle_f32x4(kAll, r[e], r[4 + e], 0x88);
      t[4 + e] = _mm512_maskz_shuffle_f32x4(kAll, r[e], r[4 + e], 0xdd);
      t[8 + e] = _mm512_maskz_shuffle_f32x4(kAll, r[8 + e], r[12 + e], 0x88);
      t[12 + e] = _mm512_maskz_shuffle_f32x4(kAll, r[8 + e], r[12 + e], 0xdd);
    }
#pragma GCC unroll 4
    for (int e = 0; e < 4; ++e) {  // column e (128-bit lane 0), 4 + e (1), 8 + e (2), 12 + e (3)
      _mm512_storeu_ps(kt + (c + e) * 16, _mm512_maskz_shuffle_f32x4(kAll, t[e], t[8 + e], 0x88));
      _mm512_storeu_ps(kt + (c + 4 + e) * 16, _mm512_maskz_shuffle_f32x4(kAll, t[4 + e], t[12 + e], 0x88));
      _mm512_storeu_ps(kt + (c + 8 + e) * 16, _mm512_maskz_shuffle_f32x4(kAll, t[e], t[8 + e], 0xdd));
      _mm512_storeu_ps(kt + (c + 12 + e) * 16, _mm512_maskz_shuffle_f32x4(kAll, t[4 + e], t[12 + e], 0xdd));
    }
  }
#else
  for (int64_t d = 0; d < hd; ++d)
    for (int64_t i = 0; i < 16; ++i) kt[d * 16 + i] = i < n ? k[static_cast<int64_t>(sl[i]) * kv_stride + d] : 0.0f;
#endif
}

// out[i][0, 16 (KB - 1) + n) = (q_i . key j) * scale for Q queries q[i] against KB blocks of 16
// transposed keys (kt + b hd 16: block b; n <= 16 valid lanes in the last). s8: scratch
// [Q][KB][8][16]. Two blocks per call (Q <= 4): each broadcast query element multiplies 32 keys,
// 16 fmas per 4 key and 8 query loads instead of per 2 and 16 (broadcasts from memory were the
// load ports' bound of one block per call).
template <int Q, int KB>
void outer_scores(const float* const* q, float* const* out, const float* kt, int64_t hd, int64_t n, float scale,
                  float* s8) {
  static_assert(Q * KB <= 8, "accumulators: 2 Q KB of 32 registers");
  for (int i = 0; i < 8; ++i) {  // dimension classes i and i + 8: s8 = lane chain i + lane chain i + 8
    Vec a[Q][KB], b[Q][KB];
#pragma GCC unroll 8
    for (int u = 0; u < Q; ++u)
#pragma GCC unroll 2
      for (int k = 0; k < KB; ++k) a[u][k] = b[u][k] = zero();
    for (int64_t c = 0; c < hd; c += kLanes) {
      Vec ka[KB], kb[KB];
#pragma GCC unroll 2
      for (int k = 0; k < KB; ++k) {
        ka[k] = load(kt + k * hd * 16 + (c + i) * 16, mask_for(16));
        kb[k] = load(kt + k * hd * 16 + (c + i + 8) * 16, mask_for(16));
      }
#pragma GCC unroll 8
      for (int u = 0; u < Q; ++u) {
        const Vec qa = broadcast(q[u][c + i]), qb = broadcast(q[u][c + i + 8]);
#pragma GCC unroll 2
        for (int k = 0; k < KB; ++k) {
          a[u][k] = fma(qa, ka[k], a[u][k]);
          b[u][k] = fma(qb, kb[k], b[u][k]);
        }
      }
    }
#pragma GCC unroll 8
    for (int u = 0; u < Q; ++u)
#pragma GCC unroll 2
      for (int k = 0; k < KB; ++k) store(s8 + ((u * KB + k) * 8 + i) * 16, add(a[u][k], b[u][k]), mask_for(16));
  }
  const Vec sv = broadcast(scale);
#pragma GCC unroll 8
  for (int u = 0; u < Q; ++u)
#pragma GCC unroll 2
    for (int k = 0; k < KB; ++k) {
      const float* p = s8 + (u * KB + k) * 8 * 16;
      Vec s4[4];
#pragma GCC unroll 4
      for (int i = 0; i < 4; ++i) s4[i] = add(load(p + i * 16, mask_for(16)), load(p + (i + 4) * 16, mask_for(16)));
      store(out[u] + k * 16, mul(add(add(s4[0], s4[2]), add(s4[1], s4[3])), sv), mask_for(k + 1 < KB ? 16 : n));
    }
}

// Scores of n_q queries (q[i], out[i]) against keys sl[0, n) of one KV head, 32 keys at a time
// (16 for a last block of at most 16). kt: scratch [2][hd][16]; s8: scratch [8][8][16].
void chunk_scores(const float* const* q, float* const* out, int64_t n_q, const float* k, const int32_t* sl, int64_t n,
                  int64_t kv_stride, int64_t hd, float scale, float* kt, float* s8, bool prefetch) {
  float* o[8];
  for (int64_t j = 0; j < n; j += 32) {
    const int64_t nk = std::min<int64_t>(32, n - j);
    if (prefetch)
      for (int64_t i = j + kKeysAhead; i < std::min(n, j + kKeysAhead + 32); ++i)
        prefetch_row(k + static_cast<int64_t>(sl[i]) * kv_stride, hd);
    transpose_keys(k, sl + j, std::min<int64_t>(nk, 16), kv_stride, hd, kt);
    if (nk > 16) {
      transpose_keys(k, sl + j + 16, nk - 16, kv_stride, hd, kt + hd * 16);
      for (int64_t u0 = 0; u0 < n_q; u0 += 4) {
        const int64_t nu = std::min<int64_t>(4, n_q - u0);
        for (int64_t u = 0; u < nu; ++u) o[u] = out[u0 + u] + j;
        switch (nu) {
          case 1: outer_scores<1, 2>(q + u0, o, kt, hd, nk - 16, scale, s8); break;
          case 2: outer_scores<2, 2>(q + u0, o, kt, hd, nk - 16, scale, s8); break;
          case 3: outer_scores<3, 2>(q + u0, o, kt, hd, nk - 16, scale, s8); break;
          default: outer_scores<4, 2>(q + u0, o, kt, hd, nk - 16, scale, s8); break;
        }
      }
      continue;
    }
    for (int64_t u0 = 0; u0 < n_q; u0 += 8) {
      const int64_t nu = std::min<int64_t>(8, n_q - u0);
      for (int64_t u = 0; u < nu; ++u) o[u] = out[u0 + u] + j;
      switch (nu) {
        case 1: outer_scores<1, 1>(q + u0, o, kt, hd, nk, scale, s8); break;
        case 2: outer_scores<2, 1>(q + u0, o, kt, hd, nk, scale, s8); break;
        case 3: outer_scores<3, 1>(q + u0, o, kt, hd, nk, scale, s8); break;
        case 4: outer_scores<4, 1>(q + u0, o, kt, hd, nk, scale, s8); break;
        case 5: outer_scores<5, 1>(q + u0, o, kt, hd, nk, scale, s8); break;
        case 6: outer_scores<6, 1>(q + u0, o, kt, hd, nk, scale, s8); break;
        case 7: outer_scores<7, 1>(q + u0, o, kt, hd, nk, scale, s8); break;
        default: outer_scores<8, 1>(q + u0, o, kt, hd, nk, scale, s8); break;
      }
    }
  }
}

// w = exp(s - max(s)) in place; returns 1 / sum(w) (double sum in 16 fixed partial sums).
float softmax_weights(float* s, int64_t n) {
  Vec mv = broadcast(-INFINITY);
  for (int64_t j = 0; j < n; j += kLanes) mv = lanes::max(mv, load_or(s + j, mask_for(n - j), -INFINITY));
  float lane_max[kLanes];
  store(lane_max, mv, mask_for(kLanes));
  float mx = lane_max[0];
  for (float x : lane_max) mx = std::max(mx, x);
  const Vec mxv = broadcast(mx);
  for (int64_t j = 0; j < n; j += kLanes) {
    const Mask m = mask_for(n - j);
    store(s + j, lanes::exp(sub(load(s + j, m), mxv)), m);
  }
  double part[kLanes] = {};
  int64_t j = 0;
  for (; j + kLanes <= n; j += kLanes)
    for (int l = 0; l < kLanes; ++l) part[l] += s[j + l];
  for (int l = 0; j < n; ++j, ++l) part[l] += s[j];
  double s8[8], s4[4];
  for (int i = 0; i < 8; ++i) s8[i] = part[i] + part[i + 8];
  for (int i = 0; i < 4; ++i) s4[i] = s8[i] + s8[i + 4];
  return static_cast<float>(1.0 / ((s4[0] + s4[2]) + (s4[1] + s4[3])));
}

// Running weighted sums acc_r[d] += w_r[j] * v[sl[j]][d] over keys sl[0, n) in list order, for H
// rows (a row: one query head of one token; the rows of a call share the key list) and NB blocks
// of 16 dimensions from d0: H * NB independent FMA chains, each value row loaded once for all H.
// A list may be summed in segments: the chains start at zero when `first` and otherwise continue
// from state[r * hd + d] (where the previous segment left them); when `last` the result
// out_r[d] = acc_r[d] * inv_r is stored instead of the state. Segmenting or grouping rows never
// changes a bit: each chain runs the same fmas in the same order.
template <int H, int NB>
void weighted_sum(const float* w, int64_t w_stride, const float* v, const int32_t* sl, int64_t n, int64_t kv_stride,
                  int64_t d0, int64_t hd, const float* inv, float* const* out, float* state, bool first, bool last,
                  bool prefetch) {
  Vec acc[H][NB];
  Mask m[NB];
#pragma GCC unroll 8
  for (int b = 0; b < NB; ++b) m[b] = mask_for(hd - d0 - b * kLanes);
#pragma GCC unroll 8
  for (int h = 0; h < H; ++h)
#pragma GCC unroll 8
    for (int b = 0; b < NB; ++b) acc[h][b] = first ? zero() : load(state + h * hd + d0 + b * kLanes, m[b]);
  const int64_t width = std::min<int64_t>(hd - d0, NB * kLanes);
  for (int64_t j = 0; j < n; ++j) {
    if (prefetch && j + kKeysAhead < n)
      prefetch_row(v + static_cast<int64_t>(sl[j + kKeysAhead]) * kv_stride + d0, width);
    const float* row = v + static_cast<int64_t>(sl[j]) * kv_stride + d0;
    Vec vv[NB];
#pragma GCC unroll 8
    for (int b = 0; b < NB; ++b) vv[b] = load(row + b * kLanes, m[b]);
#pragma GCC unroll 8
    for (int h = 0; h < H; ++h) {
      const Vec wj = broadcast(w[h * w_stride + j]);
#pragma GCC unroll 8
      for (int b = 0; b < NB; ++b) acc[h][b] = fma(wj, vv[b], acc[h][b]);
    }
  }
#pragma GCC unroll 8
  for (int h = 0; h < H; ++h)
#pragma GCC unroll 8
    for (int b = 0; b < NB; ++b) {
      if (last) store(out[h] + d0 + b * kLanes, fma(acc[h][b], broadcast(inv[h]), zero()), m[b]);
      else store(state + h * hd + d0 + b * kLanes, acc[h][b], m[b]);
    }
}

// One segment of the weighted sums of n_rows rows that share a key list: the query heads of one
// token, or of consecutive tokens of a chunk over their shared context (rows token-major, G per
// token). Rows are taken 8, 4 or 2 at a time, then 1, so that H * NB <= 16 accumulators: with
// the demo model's G = 2 and 64 dimensions one token gave 8 chains, 4 value loads and 2
// broadcasts per 8 fmas; two tokens together 16 chains and 8 loads per 16 fmas.
struct SumSegment {
  const float* w;  // [n_rows, w_stride] softmax weights; this segment's keys start at w[0]
  int64_t w_stride;
  const int32_t* sl;  // the segment's slots
  int64_t n;
  const float* inv;  // [n_rows]
  float* out;        // row r's output at out + (r / G) * out_tok_stride + (r % G) * hd
  int64_t G, out_tok_stride;
  float* state;  // [n_rows, hd]
  bool first, last, prefetch;
};

template <int NB>
void weighted_sums(const SumSegment& g, const float* v, int64_t kv_stride, int64_t d0, int64_t hd, int64_t n_rows) {
  int64_t r = 0;
  auto one = [&](auto rows) {
    constexpr int kH = decltype(rows)::value;
    float* out[kH];
    for (int i = 0; i < kH; ++i) out[i] = g.out + (r + i) / g.G * g.out_tok_stride + (r + i) % g.G * hd;
    weighted_sum<kH, NB>(g.w + r * g.w_stride, g.w_stride, v, g.sl, g.n, kv_stride, d0, hd, g.inv + r, out,
                         g.state + r * hd, g.first, g.last, g.prefetch && r == 0);
  };
  if constexpr (NB <= 2)
    for (; r + 8 <= n_rows; r += 8) one(std::integral_constant<int, 8>{});
  if constexpr (NB <= 4)
    for (; r + 4 <= n_rows; r += 4) one(std::integral_constant<int, 4>{});
  for (; r + 2 <= n_rows; r += 2) one(std::integral_constant<int, 2>{});
  for (; r < n_rows; ++r) one(std::integral_constant<int, 1>{});
}

void weighted_sums_all(const SumSegment& g, const float* v, int64_t kv_stride, int64_t hd, int64_t n_rows) {
  for (int64_t d0 = 0; d0 < hd; d0 += 8 * kLanes) {
    switch (std::min<int64_t>(8, (hd - d0 + kLanes - 1) / kLanes)) {
      case 1: weighted_sums<1>(g, v, kv_stride, d0, hd, n_rows); break;
      case 2: weighted_sums<2>(g, v, kv_stride, d0, hd, n_rows); break;
      case 3: weighted_sums<3>(g, v, kv_stride, d0, hd, n_rows); break;
      case 4: weighted_sums<4>(g, v, kv_stride, d0, hd, n_rows); break;
      case 5: weighted_sums<5>(g, v, kv_stride, d0, hd, n_rows); break;
      case 6: weighted_sums<6>(g, v, kv_stride, d0, hd, n_rows); break;
      case 7: weighted_sums<7>(g, v, kv_stride, d0, hd, n_rows); break;
      default: weighted_sums<8>(g, v, kv_stride, d0, hd, n_rows); break;
    }
  }
}

void scores_all(const float* q, int64_t group, const float* kh, const int32_t* sl, int64_t n, int64_t kv_stride,
                int64_t hd, float scale, float* scores, int64_t stride, bool prefetch) {
  switch (group) {
    case 2: group_scores_shared<2>(q, kh, sl, n, kv_stride, hd, scale, scores, stride, prefetch); break;
    case 4: group_scores_shared<4>(q, kh, sl, n, kv_stride, hd, scale, scores, stride, prefetch); break;
    case 8: group_scores_shared<8>(q, kh, sl, n, kv_stride, hd, scale, scores, stride, prefetch); break;
    default: group_scores(q, group, kh, sl, n, kv_stride, hd, scale, scores, stride, prefetch); break;
  }
}

// Tokens per work unit: enough units for every thread (KV heads x token chunks), at most
// kChunkMax, and at most what keeps the chunk's running sums within ~16 KB.
constexpr int64_t kChunkMax = 16;
// Keys per block when a chunk's tokens share a context: 64 K or V rows of 64 floats are 16 KB,
// which stay in L1 while every token of the chunk uses them.
constexpr int64_t kKeyBlock = 64;

int64_t chunk_tokens(int64_t n_tok, int64_t n_kv_head, int64_t group, int64_t hd, int threads) {
  const int64_t per_head = std::max<int64_t>(1, (threads + n_kv_head - 1) / n_kv_head);  // chunks per KV head
  int64_t c = (n_tok + per_head - 1) / per_head;
  c = std::min(c, std::max<int64_t>(1, 4096 / (group * hd)));
  return std::clamp<int64_t>(c, 1, kChunkMax);
}

}  // namespace

void attention(const AttentionArgs& a, ThreadPool& pool) {
  SWIFT_CHECK(a.n_head % a.n_kv_head == 0);
  SWIFT_CHECK(static_cast<int64_t>(a.visible->offsets.size()) == a.n_tok + 1);
  const int64_t group = a.n_head / a.n_kv_head;
  const int64_t hd = a.head_dim;
  const int64_t q_stride = a.n_head * hd;
  const int64_t kv_stride = a.kv_row_stride > 0 ? a.kv_row_stride : a.n_kv_head * hd;
  const int64_t head_stride = a.kv_head_stride > 0 ? a.kv_head_stride : hd;
  const int64_t max_len = a.visible->max_len();
  const int64_t chunk = chunk_tokens(a.n_tok, a.n_kv_head, group, hd, pool.size());
  const int64_t n_chunks = (a.n_tok + chunk - 1) / chunk;
  const SlotLists& vis = *a.visible;
  // The caller's per-head preparation (AttentionArgs::prepare): inside the head's only unit, else
  // a round of its own.
  const bool prepare_in_unit = a.prepare && n_chunks == 1;
  if (a.prepare && !prepare_in_unit)
    pool.parallel_for(a.n_kv_head, [&](int64_t h0, int64_t h1, int) {
      for (int64_t h = h0; h < h1; ++h) (*a.prepare)(h);
    });
  pool.parallel_for(n_chunks * a.n_kv_head, [&](int64_t i0, int64_t i1, int) {
    // [chunk, group, max_len] scores then weights, [chunk, group] 1/sum, [chunk, group, hd] sums
    thread_local std::vector<float> scores, inv, state;
    if (static_cast<int64_t>(scores.size()) < chunk * group * max_len) scores.resize(chunk * group * max_len);
    if (static_cast<int64_t>(inv.size()) < chunk * group) inv.resize(chunk * group);
    if (static_cast<int64_t>(state.size()) < chunk * group * hd) state.resize(chunk * group * hd);
    // chunk_scores: the chunk's queries and their score rows, transposed keys, partial sums.
    thread_local std::vector<const float*> qs;
    thread_local std::vector<float*> outs;
    thread_local std::vector<float> kt, s8;
    if (static_cast<int64_t>(qs.size()) < chunk * group) qs.resize(chunk * group), outs.resize(chunk * group);
    if (static_cast<int64_t>(kt.size()) < 2 * 16 * hd) kt.resize(2 * 16 * hd);
    if (s8.size() < 8 * 8 * 16) s8.resize(8 * 8 * 16);
    for (int64_t i = i0; i < i1; ++i) {
      // Units run head by head: a thread streams its heads' cached rows (head-major cache,
      // model/kv_cache.h) once, and the batch's other tokens find them in L1/L2.
      const int64_t kvh = i / n_chunks, t0 = i % n_chunks * chunk, t1 = std::min(a.n_tok, t0 + chunk);
      if (prepare_in_unit) (*a.prepare)(kvh);
      const float* kh = a.k + kvh * head_stride;
      const float* vh = a.v + kvh * head_stride;
      auto list = [&](int64_t t) { return vis.slots.data() + vis.offsets[t]; };
      auto len = [&](int64_t t) { return vis.offsets[t + 1] - vis.offsets[t]; };
      // In the head's first unit on this thread, the first token's keys and values up to
      // kKvBurstBytes each, requested at once (ops/prefetch_ahead.h): the loops below request rows
      // kKeysAhead keys ahead, which leaves their start and the values waiting on DRAM.
      const bool head_first = i == i0 || (i - 1) / n_chunks != kvh;
      const int64_t n_burst = head_first ? std::min<int64_t>(len(t0), kKvBurstBytes / (hd * 4)) : 0;
      for (const float* base : {kh, vh})
        for (int64_t j = 0; j < n_burst; ++j)
          prefetch_burst(base + static_cast<int64_t>(list(t0)[j]) * kv_stride, hd * 4);
      // The chunk's shared context: the longest list prefix common to all its tokens (verification:
      // the committed slots and the tree root; prefill: the earlier prompt). Its keys are taken in
      // blocks that every token uses while they are in L1; the rest of each list runs per token.
      int64_t shared = len(t0);
      for (int64_t t = t0 + 1; t < t1 && shared > 0; ++t) {
        shared = std::min(shared, len(t));
        if (std::memcmp(list(t0), list(t), static_cast<size_t>(shared) * sizeof(int32_t)) != 0)
          shared = std::mismatch(list(t0), list(t0) + shared, list(t)).first - list(t0);
      }
      const int64_t block = t1 - t0 > 1 ? kKeyBlock : std::max<int64_t>(shared, 1);
      const bool outer = hd % kLanes == 0 && (t1 - t0) * group >= kOuterMinQueries && shared > 0;
      auto q_of = [&](int64_t t) { return a.q + t * q_stride + kvh * group * hd; };  // the group's heads are adjacent
      auto sc_of = [&](int64_t t) { return scores.data() + (t - t0) * group * max_len; };
      if (outer) {  // keys in lanes, each block of 16 transposed once for all the chunk's queries
        int64_t nq = 0;
        for (int64_t t = t0; t < t1; ++t)
          for (int64_t h = 0; h < group; ++h, ++nq) qs[nq] = q_of(t) + h * hd, outs[nq] = sc_of(t) + h * max_len;
        chunk_scores(qs.data(), outs.data(), nq, kh, list(t0), shared, kv_stride, hd, a.scale, kt.data(), s8.data(),
                     true);
      } else {
        for (int64_t j0 = 0; j0 < shared; j0 += block)
          for (int64_t t = t0; t < t1; ++t)
            scores_all(q_of(t), group, kh, list(t0) + j0, std::min(block, shared - j0), kv_stride, hd, a.scale,
                       sc_of(t) + j0, max_len, t == t0);
      }
      for (int64_t t = t0; t < t1; ++t) {
        const int64_t n = len(t);
        if (n > shared)
          scores_all(q_of(t), group, kh, list(t) + shared, n - shared, kv_stride, hd, a.scale, sc_of(t) + shared,
                     max_len, true);
        for (int64_t h = 0; h < group; ++h)
          inv[(t - t0) * group + h] = n > 0 ? softmax_weights(sc_of(t) + h * max_len, n) : 0.0f;
      }
      // Tokens [ta, tb) over keys [j0, j0 + n) of their lists (rows token-major, state and inv
      // rows contiguous from token ta's).
      auto segment = [&](int64_t ta, int64_t j0, int64_t n, bool last, bool prefetch) {
        SumSegment g;
        g.w = sc_of(ta) + j0, g.w_stride = max_len, g.sl = list(ta) + j0, g.n = n;
        g.inv = inv.data() + (ta - t0) * group, g.state = state.data() + (ta - t0) * group * hd;
        g.out = a.out + ta * q_stride + kvh * group * hd, g.G = group, g.out_tok_stride = q_stride;
        g.first = j0 == 0, g.last = last, g.prefetch = prefetch;
        return g;
      };
      // The shared context's blocks, all the chunk's tokens together; a token whose list ends with
      // the block (prefill: the chunk's first) gets its result, the others their running sums.
      for (int64_t j0 = 0; j0 < shared; j0 += block) {
        const int64_t n = std::min(block, shared - j0);
        for (int64_t ta = t0; ta < t1;) {
          const bool last = j0 + n == len(ta);
          int64_t tb = ta + 1;
          while (tb < t1 && (j0 + n == len(tb)) == last) ++tb;
          weighted_sums_all(segment(ta, j0, n, last, ta == t0), vh, kv_stride, hd, (tb - ta) * group);
          ta = tb;
        }
      }
      for (int64_t t = t0; t < t1; ++t) {
        const int64_t n = len(t);
        if (n == 0) {  // cannot happen for a well-formed mask (a token sees itself); stay defined
          std::fill_n(a.out + t * q_stride + kvh * group * hd, group * hd, 0.0f);
          continue;
        }
        if (n > shared) weighted_sums_all(segment(t, shared, n - shared, true, true), vh, kv_stride, hd, group);
      }
    }
  });
}

}  // namespace swift
