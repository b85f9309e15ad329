// Attention over explicit slot lists (ops/attention.h).
//
// Work unit: one query token and one KV head, with all query heads that share that KV head
// (GQA). The group's heads score the same keys while their rows are in L1 and their weighted
// sums advance together, so independent FMA chains hide the FMA latency that one head's
// sequential sum over keys would expose (the sum runs in list order for every element, which is
// what makes a token's output independent of its batch). Per head:
//   scores_j = (q . k_j) * scale          lane-contract dot products, 16 keys reduced together
//   w_j      = exp(scores_j - max)        lanes::exp, 16 at a time
//   sum      = sum_j w_j                  in double, 16 fixed partial sums, fixed tree
//   out      = (sum_j w_j v_j) * (1/sum)  keys in list order
// Every step depends only on the query and its visible keys in list order, never on the batch,
// the thread split or the other heads.
#include "ops/attention.h"

#include <algorithm>
#include <cmath>

#include "ops/lanes.h"
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
                  int64_t hd, float scale, float* scores, int64_t stride) {
  const Vec sv = broadcast(scale);
  int64_t j = 0;
  for (; j + 16 <= n; j += 16) {
    if (j + kKeysAhead + 16 <= n)
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
                         float scale, float* scores, int64_t stride) {
  constexpr int KB = 16 / G;
  static_assert(KB * G == 16);
  const Vec sv = broadcast(scale);
  int64_t j = 0;
  for (; j + KB <= n; j += KB) {
    if (j + kKeysAhead + KB <= n)
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

// out_h[d0 + 16b ...] = inv_h * sum_j w_h[j] * v[sl[j]][d], keys in list order, for H heads and
// NB blocks of 16 dimensions: H * NB independent FMA chains.
template <int H, int NB>
void weighted_sum(const float* w, int64_t w_stride, const float* v, const int32_t* sl, int64_t n, int64_t kv_stride,
                  int64_t d0, int64_t hd, const float* inv, float* out) {
  Vec acc[H][NB];
  Mask m[NB];
#pragma GCC unroll 8
  for (int b = 0; b < NB; ++b) m[b] = mask_for(hd - d0 - b * kLanes);
#pragma GCC unroll 8
  for (int h = 0; h < H; ++h)
#pragma GCC unroll 8
    for (int b = 0; b < NB; ++b) acc[h][b] = zero();
  const int64_t width = std::min<int64_t>(hd - d0, NB * kLanes);
  for (int64_t j = 0; j < n; ++j) {
    if (j + kKeysAhead < n) prefetch_row(v + static_cast<int64_t>(sl[j + kKeysAhead]) * kv_stride + d0, width);
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
    for (int b = 0; b < NB; ++b)
      store(out + h * hd + d0 + b * kLanes, fma(acc[h][b], broadcast(inv[h]), zero()), m[b]);
}

// Heads per pass so that H * NB <= 16 accumulators (NB <= 8): 4 or 2 at a time, then 1.
template <int NB>
void weighted_sums(const float* w, int64_t w_stride, const float* v, const int32_t* sl, int64_t n, int64_t kv_stride,
                   int64_t d0, int64_t hd, const float* inv, int64_t n_q, float* out) {
  int64_t h = 0;
  if constexpr (NB <= 4)
    for (; h + 4 <= n_q; h += 4) weighted_sum<4, NB>(w + h * w_stride, w_stride, v, sl, n, kv_stride, d0, hd, inv + h, out + h * hd);
  for (; h + 2 <= n_q; h += 2) weighted_sum<2, NB>(w + h * w_stride, w_stride, v, sl, n, kv_stride, d0, hd, inv + h, out + h * hd);
  for (; h < n_q; ++h) weighted_sum<1, NB>(w + h * w_stride, w_stride, v, sl, n, kv_stride, d0, hd, inv + h, out + h * hd);
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
  pool.parallel_for(a.n_tok * a.n_kv_head, [&](int64_t i0, int64_t i1, int) {
    thread_local std::vector<float> scores, inv;  // [group, max_len], [group]
    if (static_cast<int64_t>(scores.size()) < group * max_len) scores.resize(group * max_len);
    if (static_cast<int64_t>(inv.size()) < group) inv.resize(group);
    for (int64_t i = i0; i < i1; ++i) {
      // Units run head by head: a thread streams its heads' cached rows (head-major cache,
      // model/kv_cache.h) once, and the batch's other tokens find them in L2.
      const int64_t kvh = i / a.n_tok, t = i % a.n_tok;
      const float* q = a.q + t * q_stride + kvh * group * hd;  // the group's heads are adjacent
      float* out = a.out + t * q_stride + kvh * group * hd;
      const int64_t b = a.visible->offsets[t], n = a.visible->offsets[t + 1] - b;
      if (n == 0) {  // cannot happen for a well-formed mask (a token sees itself); stay defined
        std::fill_n(out, group * hd, 0.0f);
        continue;
      }
      const int32_t* sl = a.visible->slots.data() + b;
      const float* kh = a.k + kvh * head_stride;
      switch (group) {
        case 2: group_scores_shared<2>(q, kh, sl, n, kv_stride, hd, a.scale, scores.data(), max_len); break;
        case 4: group_scores_shared<4>(q, kh, sl, n, kv_stride, hd, a.scale, scores.data(), max_len); break;
        case 8: group_scores_shared<8>(q, kh, sl, n, kv_stride, hd, a.scale, scores.data(), max_len); break;
        default: group_scores(q, group, kh, sl, n, kv_stride, hd, a.scale, scores.data(), max_len); break;
      }
      for (int64_t h = 0; h < group; ++h) inv[h] = softmax_weights(scores.data() + h * max_len, n);
      const float* vbase = a.v + kvh * head_stride;
      for (int64_t d0 = 0; d0 < hd; d0 += 8 * kLanes) {
        const float* w = scores.data();
        switch (std::min<int64_t>(8, (hd - d0 + kLanes - 1) / kLanes)) {
          case 1: weighted_sums<1>(w, max_len, vbase, sl, n, kv_stride, d0, hd, inv.data(), group, out); break;
          case 2: weighted_sums<2>(w, max_len, vbase, sl, n, kv_stride, d0, hd, inv.data(), group, out); break;
          case 3: weighted_sums<3>(w, max_len, vbase, sl, n, kv_stride, d0, hd, inv.data(), group, out); break;
          case 4: weighted_sums<4>(w, max_len, vbase, sl, n, kv_stride, d0, hd, inv.data(), group, out); break;
          case 5: weighted_sums<5>(w, max_len, vbase, sl, n, kv_stride, d0, hd, inv.data(), group, out); break;
          case 6: weighted_sums<6>(w, max_len, vbase, sl, n, kv_stride, d0, hd, inv.data(), group, out); break;
          case 7: weighted_sums<7>(w, max_len, vbase, sl, n, kv_stride, d0, hd, inv.data(), group, out); break;
          default: weighted_sums<8>(w, max_len, vbase, sl, n, kv_stride, d0, hd, inv.data(), group, out); break;
        }
      }
    }
  });
}

}  // namespace swift
