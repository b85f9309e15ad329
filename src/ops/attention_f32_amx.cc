// f32-accurate attention on AMX tiles for `--math f32` prompt prefill (ops/attention.h:
// attention_f32_amx).
//
// Why (issue 6: prefill at 10x the decode rate): with the prefill's matrix products on the tile
// unit (ops/bf16_amx.h: matmul_f32_amx), the f32 attention kernel (ops/attention.cc) was ~26% of a
// 442-token `--math f32` prefill of swift-mini-24L on the 2-core Xeon (perf: scores 12%, weighted
// sums 7%, softmax and the rest 7%), at ~35-40% of the FMA pipes' peak. One TDPBF16PS does 8,192
// multiply-adds in ~4.9 ns; six of them per tile (below) still do ~2.7x what the f32 pipes can.
//
// Numbers: every f32 operand x is split exactly into three bf16 parts, x = x1 + x2 + x3 (round
// to nearest even each time, as matmul_f32_amx splits its activations: three 8-bit significands
// hold f32's 24 bits; |x2| <= 2^-9 |x|, |x3| <= 2^-18 |x|). Of the nine part products of a b,
// the six with i + j <= 4 are summed on the tiles (a1 b1, a1 b2, a1 b3, a2 b1, a2 b2, a3 b1);
// the three left out are under ~2^-26 |a b| together, below f32's own rounding of a product.
// Part products are exact in f32; the tile unit sums them into f32 accumulators. So:
//   scores  s_j = q . k_j                    q, k_j in parts: 6 tile products per 32 dimensions
//   softmax w_j = 2^(s_j c - max c)          c = scale log2(e), lanes::exp2 (relative error
//           sum = sum_j w_j                  < 2e-7), f32 sums in 16 lanes, on AVX-512
//   out         = (sum_j w_j v_j) / sum      w_j, v_j in parts: 6 tile products per 32 keys
// The error is of the f32 kernel's class (tests/ops/attention_f32_amx_test.cc: within 2e-6 of
// the exact result in units of max |v|, both kernels measured at up to ~6e-7; leaving out one
// part product fails it). Parts under ~2^-133 (bf16 denormals, which the tile unit reads as
// zero) are lost: a key or weight that small cannot move an f32 result.
//
// Not batch-invariant (the reason it is for prefill only, as matmul_prefill: every decoding mode
// prefills the same way, so lossless decoding does not depend on it): a query's sums run over
// the key tiles of its unit, which the other tokens of its block decide (the extra keys get
// weight 0), and its partial sums' order is the tile unit's, not attention()'s.
//
// Shape: the slot lists must be nested (SlotLists::nested: each token's list a prefix of the
// next one's, a causal batch), so that one packing of the longest list serves every token. Per
// call, two pool rounds: (1) per KV head, the caller's preparation (rotary, cache stores), then
// its keys and values packed in the three parts' pair layouts (ops/attention_bf16_pairs.h);
// (2) per KV head and block of 16 tokens (a tile's rows), the query heads' row tiles in pairs
// (2 x 2 accumulator tiles: part_products): scores on tiles, softmax, sums on tiles. The packed
// parts take 12 bytes per key and dimension of a KV head; heads run in groups (both rounds per
// group) that keep them under 32 MB.
//
// Measured on the 2-core Xeon (442 tokens, 4 query and 2 KV heads of 64 dimensions: one layer of
// swift-mini-24L): 0.70 ms against 1.47 ms for attention() on one thread, 0.39 against 0.75 ms on
// two; per call on one thread (TSC kcycles) query parts 120, scores 445, softmax 694, sums 537.
// A 442-token `--math f32` prefill: 50.7 -> 43.0 ms (medians of 30, three alternations).
#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>
#include <vector>

#include "ops/attention.h"
#include "ops/attention_bf16_pairs.h"
#include "ops/bf16_amx.h"
#include "ops/bf16_parts.h"
#include "ops/lanes.h"
#include "util/aligned.h"
#include "util/check.h"

#if defined(SWIFT_BF16_AMX)
#include <immintrin.h>
#endif

namespace swift {

bool attention_f32_amx_usable(const AttentionArgs& a) {
  return bf16_amx_available() && a.k != nullptr && a.v != nullptr && a.visible != nullptr && a.visible->nested &&
         a.n_kv_head > 0 && a.n_head % a.n_kv_head == 0 && a.head_dim > 0 && a.head_dim % 64 == 0;
}

#if defined(SWIFT_BF16_AMX)

namespace {

using bf16_pairs::kBlock;            // keys per value block
using bf16_pairs::kTile;             // rows of a tile; keys per key tile
using bf16_pairs::row_max;           // the bf16 kernel's (ops/attention_bf16_pairs.h)
constexpr int kConfigKey = 1 << 21;  // amx_load_config: matmul < 1024 (and 1001-1016), attention_bf16 1 << 20 on
constexpr int kParts = 3;

inline __mmask16 mask16(int64_t n) { return n >= 16 ? __mmask16{0xffff} : static_cast<__mmask16>((1u << n) - 1); }

int64_t round_up(int64_t x, int64_t m) { return (x + m - 1) / m * m; }

// All eight tiles 16 rows x 64 bytes: C = 0..3 (accumulators, 2 row tiles x 2 column tiles),
// A = 4, 5 (a part of the two row tiles: query rows or weights), B = 6, 7 (a part of the two
// column tiles: keys or values).
void configure() {
  AmxTileConfig c;
  for (int t = 0; t < 8; ++t) {
    c.rows[t] = kTile;
    c.colsb[t] = 64;
  }
  amx_load_config(kConfigKey, c);
}

// x[0, n) -> its three bf16 parts at o, o + plane, o + 2 plane (ops/bf16_parts.h). n a multiple of 16.
void split3(const float* x, int64_t n, uint16_t* o, int64_t plane) {
  for (int64_t c = 0; c < n; c += 16) bf16_parts::store3(_mm512_loadu_ps(x + c), o + c, plane);
}

// The residuals x - x1 and x - x1 - x2 of n rows of hd floats (rows `stride` apart, listed by
// sl), as dense rows r1, r2 [n][hd]: packing x, r1 and r2 (each rounded once to bf16 by the
// packer) gives the three parts.
void residual_rows(const float* x, int64_t stride, const int32_t* sl, int64_t n, int64_t hd, float* r1, float* r2) {
  for (int64_t j = 0; j < n; ++j) {
    const float* row = x + static_cast<int64_t>(sl[j]) * stride;
    for (int64_t c = 0; c < hd; c += 16) {
      const __m512 v = _mm512_loadu_ps(row + c);
      const __m512 a = _mm512_sub_ps(v, bf16_parts::widen(_mm512_cvtneps_pbh(v)));
      _mm512_storeu_ps(r1 + j * hd + c, a);
      _mm512_storeu_ps(r2 + j * hd + c, _mm512_sub_ps(a, bf16_parts::widen(_mm512_cvtneps_pbh(a))));
    }
  }
}

// One block of the 2 x 2 register blocking: C[2 r + c] += sum over the six part pairs (i, j) of
// A_i(r) B_j(c), for row tiles r < nr and column tiles c < nc (1 or 2 each). a(r, i) is the A
// tile of row tile r, part i, with row stride `a_stride` bytes; b(c, j) the B tile of column
// tile c, part j. Per part i the two A tiles are loaded once, per pair the two B tiles once:
// each B tile serves both row tiles and each A tile both column tiles. Why: the key and value
// parts of a 442-token prompt (~340 KB per KV head) come from L2, and at one B load per tile
// product the loads, not the products, set the pace (measured: the same loop with its B tiles
// from L1 ran the scores ~1.6x faster). Consecutive products go to different accumulators (a
// product's latency is several times its issue interval).
template <typename AFn, typename BFn>
inline void part_products(int nr, int nc, const AFn& a, int64_t a_stride, const BFn& b) {
  for (int i = 0; i < kParts; ++i) {
    _tile_loadd(4, a(0, i), a_stride);
    if (nr > 1) _tile_loadd(5, a(1, i), a_stride);
    for (int j = 0; i + j < kParts; ++j) {
      _tile_loadd(6, b(0, j), 64);
      if (nc > 1) _tile_loadd(7, b(1, j), 64);
      _tile_dpbf16ps(0, 4, 6);
      if (nc > 1) _tile_dpbf16ps(1, 4, 7);
      if (nr > 1) _tile_dpbf16ps(2, 5, 6);
      if (nr > 1 && nc > 1) _tile_dpbf16ps(3, 5, 7);
    }
  }
}

void zero_acc() {
  _tile_zero(0);
  _tile_zero(1);
  _tile_zero(2);
  _tile_zero(3);
}

// C[2 r + c] to dst[r] + c * 16 (rows `stride_bytes` apart) for r < nr, c < nc.
void store_acc(int nr, int nc, float* const* dst, int64_t stride_bytes) {
  _tile_stored(0, dst[0], stride_bytes);
  if (nc > 1) _tile_stored(1, dst[0] + kTile, stride_bytes);
  if (nr > 1) _tile_stored(2, dst[1], stride_bytes);
  if (nr > 1 && nc > 1) _tile_stored(3, dst[1] + kTile, stride_bytes);
}

// Softmax weights of one query row: raw scores s[0, n) (n >= 1) -> w_j = e^(scale (s_j - max))
// as 2^(s_j c - max c), c = scale log2(e) (one fma: lanes::exp2, relative error < 2e-7), written
// straight as three bf16 parts p, p + plane, p + 2 plane [0, w_len), zeros past n; returns
// 1 / sum_j w_j (16 f32 lanes, lanes::reduce). scale > 0, so the maximum of the raw scores is
// the scaled one's.
float softmax_parts(const float* s, int64_t n, int64_t w_len, float scale, uint16_t* p, int64_t plane) {
  const __m512 c = _mm512_set1_ps(scale * lanes::kLog2e);
  const __m512 mc = _mm512_mul_ps(_mm512_set1_ps(row_max(s, n)), c);
  __m512 sum = _mm512_setzero_ps();
  for (int64_t j = 0; j < w_len; j += 16) {
    const __mmask16 m = j < n ? mask16(n - j) : __mmask16{0};
    const __m512 w = _mm512_maskz_mov_ps(m, lanes::exp2<true>(_mm512_fmsub_ps(_mm512_maskz_loadu_ps(m, s + j), c, mc)));
    sum = _mm512_add_ps(sum, w);
    bf16_parts::store3(w, p + j, plane);
  }
  return 1.0f / lanes::reduce(sum);
}

// One KV head's keys and values in parts: keys [3][ceil(n / 16)][hd / 32][16][16][2], values
// [3][ceil(n / 32)][hd / 16][16][16][2] (attention_bf16_pairs.h's layouts, keys past n zero).
struct PackedHead {
  uint16_t* k;
  uint16_t* v;
  int64_t k_plane, v_plane;  // elements per part
};

// A tile's worth of query rows: tokens [t0, t0 + rows) of query head qh.
struct RowTile {
  int64_t t0 = 0, rows = 0, qh = 0;
};

// Per-thread scratch of the units (64-byte aligned: tile rows).
struct UnitScratch {
  std::vector<uint16_t> q;     // [2][3][16][hd] the query rows' parts, per row tile of a pair
  std::vector<float> s;        // [2][16][n_pad] raw scores
  std::vector<uint16_t> p;     // [2][3][16][n_pad] the weights' parts
  std::vector<float> acc;      // [2][16][hd]
  std::vector<float> r1, r2;   // [n_keys][hd] residual rows of the packing
  std::vector<RowTile> tiles;  // a unit's row tiles
};

// Both rounds for KV heads [g0, g1), their packed parts at `packed` (per head: keys, then values).
void run_heads(const AttentionArgs& a, int64_t g0, int64_t g1, const int32_t* keys, int64_t n_keys, int64_t n_pad,
               const int32_t* iota, uint16_t* packed, ThreadPool& pool) {
  const SlotLists& vis = *a.visible;
  const int64_t G = a.n_head / a.n_kv_head, hd = a.head_dim;
  const int64_t q_stride = a.n_head * hd;
  const int64_t kv_stride = a.kv_row_stride > 0 ? a.kv_row_stride : a.n_kv_head * hd;
  const int64_t head_stride = a.kv_head_stride > 0 ? a.kv_head_stride : hd;
  auto len = [&](int64_t t) { return vis.offsets[t + 1] - vis.offsets[t]; };
  const int64_t k_plane = n_pad * hd, v_plane = n_pad * hd;
  auto head = [&](int64_t h) {
    uint16_t* base = packed + (h - g0) * kParts * (k_plane + v_plane);
    return PackedHead{base, base + kParts * k_plane, k_plane, v_plane};
  };

  // (1) Per KV head: the caller's preparation, then the three parts of its keys and values.
  pool.parallel_for(g1 - g0, [&](int64_t i0, int64_t i1, int) {
    thread_local UnitScratch w;
    float* r1 = grow_aligned64(w.r1, n_keys * hd);
    float* r2 = grow_aligned64(w.r2, n_keys * hd);
    for (int64_t h = g0 + i0; h < g0 + i1; ++h) {
      if (a.prepare) (*a.prepare)(h);
      const PackedHead ph = head(h);
      const float* kh = a.k + h * head_stride;
      const float* vh = a.v + h * head_stride;
      residual_rows(kh, kv_stride, keys, n_keys, hd, r1, r2);
      bf16_pairs::KvSource{kh, nullptr, kv_stride}.pack_keys(keys, n_keys, hd, ph.k);
      bf16_pairs::KvSource{r1, nullptr, hd}.pack_keys(iota, n_keys, hd, ph.k + k_plane);
      bf16_pairs::KvSource{r2, nullptr, hd}.pack_keys(iota, n_keys, hd, ph.k + 2 * k_plane);
      residual_rows(vh, kv_stride, keys, n_keys, hd, r1, r2);
      bf16_pairs::KvSource{vh, vh, kv_stride}.pack_values(keys, n_keys, hd, ph.v);
      bf16_pairs::KvSource{r1, r1, hd}.pack_values(iota, n_keys, hd, ph.v + v_plane);
      bf16_pairs::KvSource{r2, r2, hd}.pack_values(iota, n_keys, hd, ph.v + 2 * v_plane);
    }
  });

  // (2) Units: a KV head and a group of token blocks (16 tokens each: a tile's rows); its row
  // tiles are the group's blocks x the head's G query heads, run in pairs (part_products). A
  // group is one block, or two where G is odd (so that the row tiles pair up). Groups are dealt
  // from both ends of the batch (a late block has the most keys), so the two halves of the
  // units cost about the same.
  const int64_t n_blocks = (a.n_tok + kTile - 1) / kTile;
  const int64_t per_group = G % 2 == 1 ? 2 : 1;
  const int64_t n_groups = (n_blocks + per_group - 1) / per_group;
  const int64_t n_units = n_groups * (g1 - g0);
  const int64_t steps = hd / 32;
  pool.parallel_for_balanced(n_units, std::min<int64_t>(n_units / 2, 2), [&](int64_t u0, int64_t u1, int) {
    thread_local UnitScratch w;
    configure();
    const int64_t q_plane = kTile * hd, p_plane = kTile * n_pad;
    uint16_t* qp = grow_aligned64(w.q, 2 * kParts * q_plane);
    float* sp = grow_aligned64(w.s, 2 * p_plane);
    uint16_t* pp = grow_aligned64(w.p, 2 * kParts * p_plane);
    float* acc = grow_aligned64(w.acc, 2 * q_plane);
    float inv[2][kTile];
    std::vector<RowTile>& tiles = w.tiles;
    for (int64_t u = u0; u < u1; ++u) {
      const int64_t og = u / (g1 - g0), kvh = g0 + u % (g1 - g0);
      const int64_t grp = og % 2 == 0 ? og / 2 : n_groups - 1 - og / 2;
      const PackedHead ph = head(kvh);
      tiles.clear();
      for (int64_t b = grp * per_group; b < std::min(n_blocks, (grp + 1) * per_group); ++b)
        for (int64_t g = 0; g < G; ++g)
          tiles.push_back({b * kTile, std::min<int64_t>(kTile, a.n_tok - b * kTile), kvh * G + g});
      for (size_t pr = 0; pr < tiles.size(); pr += 2) {
        const int nr = pr + 1 < tiles.size() ? 2 : 1;
        const RowTile* rt = &tiles[pr];
        // The pair's keys: up to its longest list (nested lists: its last token's).
        int64_t n_u = 0;
        for (int r = 0; r < nr; ++r) n_u = std::max(n_u, len(rt[r].t0 + rt[r].rows - 1));
        const int64_t n_kt = (n_u + kTile - 1) / kTile, n_vb = (n_u + kBlock - 1) / kBlock;
        // Query parts; rows past the batch zero.
        for (int r = 0; r < nr; ++r)
          for (int64_t i = 0; i < kTile; ++i) {
            uint16_t* dst = qp + r * kParts * q_plane + i * hd;
            if (i < rt[r].rows) {
              split3(a.q + (rt[r].t0 + i) * q_stride + rt[r].qh * hd, hd, dst, q_plane);
            } else {
              for (int k = 0; k < kParts; ++k) std::memset(dst + k * q_plane, 0, hd * 2);
            }
          }
        // Raw scores: two key tiles at a time, 32 dimensions per step.
        float* const s_rows[2] = {sp, sp + p_plane};
        for (int64_t c0 = 0; c0 < n_kt; c0 += 2) {
          const int nc = c0 + 1 < n_kt ? 2 : 1;
          zero_acc();
          for (int64_t st = 0; st < steps; ++st)
            part_products(
                nr, nc, [&](int r, int i) { return qp + (r * kParts + i) * q_plane + st * 32; }, hd * 2,
                [&](int c, int j) { return ph.k + j * ph.k_plane + ((c0 + c) * steps + st) * kTile * 32; });
          float* const dst[2] = {s_rows[0] + c0 * kTile, s_rows[1] + c0 * kTile};
          store_acc(nr, nc, dst, n_pad * 4);
        }
        // Softmax per row over its own list; weights past it zero up to the pair's value blocks.
        for (int r = 0; r < nr; ++r)
          for (int64_t i = 0; i < kTile; ++i) {
            const int64_t lr = i < rt[r].rows ? len(rt[r].t0 + i) : 0;
            uint16_t* p_row = pp + r * kParts * p_plane + i * n_pad;
            if (lr > 0) {
              inv[r][i] = softmax_parts(s_rows[r] + i * n_pad, lr, n_vb * kBlock, a.scale, p_row, p_plane);
            } else {  // no visible key (or no token): zeros
              inv[r][i] = 0.0f;
              for (int k = 0; k < kParts; ++k) std::memset(p_row + k * p_plane, 0, n_vb * kBlock * 2);
            }
          }
        // Sums: two 16-dimension tiles at a time, 32 keys per step.
        for (int64_t d0 = 0; d0 < hd / kTile; d0 += 2) {
          zero_acc();
          for (int64_t vb = 0; vb < n_vb; ++vb)
            part_products(
                nr, 2, [&](int r, int i) { return pp + (r * kParts + i) * p_plane + vb * kBlock; }, n_pad * 2,
                [&](int c, int j) { return ph.v + j * ph.v_plane + (vb * (hd / kTile) + d0 + c) * kTile * 32; });
          float* const dst[2] = {acc + d0 * kTile, acc + q_plane + d0 * kTile};
          store_acc(nr, 2, dst, hd * 4);
        }
        for (int r = 0; r < nr; ++r)
          for (int64_t i = 0; i < rt[r].rows; ++i) {
            float* o = a.out + (rt[r].t0 + i) * q_stride + rt[r].qh * hd;
            const float* ar = acc + r * q_plane + i * hd;
            const __m512 iv = _mm512_set1_ps(inv[r][i]);
            for (int64_t d = 0; d < hd; d += 16) _mm512_storeu_ps(o + d, _mm512_mul_ps(_mm512_loadu_ps(ar + d), iv));
          }
      }
    }
  });
}

}  // namespace

void attention_f32_amx(const AttentionArgs& a, ThreadPool& pool) {
  SWIFT_CHECK(attention_f32_amx_usable(a), "f32 AMX attention called for {} heads, {} KV heads, head dim {}{}",
              a.n_head, a.n_kv_head, a.head_dim,
              a.visible && !a.visible->nested ? " and lists that are not nested" : "");
  const SlotLists& vis = *a.visible;
  SWIFT_CHECK(static_cast<int64_t>(vis.offsets.size()) == a.n_tok + 1);
  SWIFT_CHECK(a.scale > 0, "attention scale {}", a.scale);
  if (a.n_tok <= 0) return;
  const int64_t hd = a.head_dim;
  auto len = [&](int64_t t) { return vis.offsets[t + 1] - vis.offsets[t]; };
  // Nested lists: the last list holds every other as its prefix. Checked in O(n_tok) where it is
  // cheap to: lengths never fall, and each list starts and ends where the last one has those keys.
  const int32_t* keys = vis.slots.data() + vis.offsets[a.n_tok - 1];
  const int64_t n_keys = len(a.n_tok - 1);
  for (int64_t t = 0; t < a.n_tok; ++t) {
    const int64_t n = len(t);
    SWIFT_CHECK(t == 0 || n >= len(t - 1), "nested lists shrink at token {}", t);
    SWIFT_CHECK(n == 0 || (vis.slots[vis.offsets[t]] == keys[0] && vis.slots[vis.offsets[t] + n - 1] == keys[n - 1]),
                "the slot list of token {} is not a prefix of the last token's", t);
  }
  const int64_t n_pad = round_up(std::max<int64_t>(n_keys, 1), kBlock);
  // The packed parts, shared by both rounds and owned by the calling thread (a concurrent call
  // from another thread has its own): 12 bytes per key and dimension of a KV head, so the heads
  // run in groups that keep them under kPackedBytes (a 4,096-token context of LLaMA-2-7B's 32 KV
  // heads of 128 dimensions would take ~200 MB at once; per group of 5 heads ~31 MB).
  constexpr int64_t kPackedBytes = int64_t{32} << 20;
  thread_local std::vector<uint16_t> packed_store;
  thread_local std::vector<int32_t> iota_store;
  const int64_t k_plane = n_pad * hd, v_plane = n_pad * hd;
  const int64_t per_head = kParts * (k_plane + v_plane);  // elements
  const int64_t group_heads = std::clamp<int64_t>(kPackedBytes / (per_head * 2), 1, a.n_kv_head);
  uint16_t* packed = grow_aligned64(packed_store, group_heads * per_head);
  if (static_cast<int64_t>(iota_store.size()) < n_keys) {
    iota_store.resize(static_cast<size_t>(n_keys));
    std::iota(iota_store.begin(), iota_store.end(), 0);
  }
  const int32_t* iota = iota_store.data();
  for (int64_t g0 = 0; g0 < a.n_kv_head; g0 += group_heads) {
    const int64_t g1 = std::min(a.n_kv_head, g0 + group_heads);
    run_heads(a, g0, g1, keys, n_keys, n_pad, iota, packed, pool);
  }
}

#else

void attention_f32_amx(const AttentionArgs& a, ThreadPool&) {
  SWIFT_CHECK(false, "f32 AMX attention in a build without AMX ({} tokens)", a.n_tok);
}

#endif

}  // namespace swift
