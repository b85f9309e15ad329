#include "ops/attention_bf16_pairs.h"

#include <algorithm>

#include "ops/attention.h"
#include "ops/lanes.h"
#include "util/check.h"

#if defined(SWIFT_BF16_ATTENTION)
#include <immintrin.h>
#endif

namespace swift {

#if defined(SWIFT_BF16_ATTENTION)

namespace bf16_pairs {

namespace {

// Scatters one row of hd floats, as bf16 pairs (dimensions 2i, 2i + 1 in 32-bit element i), into
// column `col` of pair-layout tiles [hd / 32][16 pairs][16 columns][2] at d32 (as 32-bit pairs:
// [hd / 32][16][16]): key column of K^T, the B operand of the scores.
inline void scatter_pairs(const float* row, int64_t hd, uint32_t* d32, int col) {
  const __m512i stride = _mm512_mullo_epi32(_mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0),
                                            _mm512_set1_epi32(kTile));
  for (int64_t s = 0; s < hd / 32; ++s) {
    const __m512bh b = _mm512_cvtne2ps_pbh(_mm512_loadu_ps(row + s * 32 + 16), _mm512_loadu_ps(row + s * 32));
    _mm512_i32scatter_epi32(d32 + s * kTile * kTile + col, stride, reinterpret_cast<const __m512i&>(b), 4);
  }
}

// 16 x 16 transpose of floats in registers (unpack, 64-bit unpack, two 128-bit shuffles).
void transpose16(__m512 r[16]) {
  __m512 t[16];
  for (int i = 0; i < 8; ++i) {
    t[2 * i] = _mm512_maskz_unpacklo_ps(0xffff, r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm512_maskz_unpackhi_ps(0xffff, r[2 * i], r[2 * i + 1]);
  }
  for (int i = 0; i < 4; ++i) {
    const __m512d a = _mm512_castps_pd(t[4 * i]), b = _mm512_castps_pd(t[4 * i + 1]);
    const __m512d c = _mm512_castps_pd(t[4 * i + 2]), d = _mm512_castps_pd(t[4 * i + 3]);
    r[4 * i] = _mm512_castpd_ps(_mm512_maskz_unpacklo_pd(0xff, a, c));
    r[4 * i + 1] = _mm512_castpd_ps(_mm512_maskz_unpackhi_pd(0xff, a, c));
    r[4 * i + 2] = _mm512_castpd_ps(_mm512_maskz_unpacklo_pd(0xff, b, d));
    r[4 * i + 3] = _mm512_castpd_ps(_mm512_maskz_unpackhi_pd(0xff, b, d));
  }
  // r[4i + e]: rows 4i..4i+3 of elements e, 4 + e, 8 + e, 12 + e (one per 128-bit lane).
  for (int e = 0; e < 4; ++e) {
    t[e] = _mm512_maskz_shuffle_f32x4(0xffff, r[e], r[4 + e], 0x88);      // rows 0-7: elements e, 8 + e
    t[4 + e] = _mm512_maskz_shuffle_f32x4(0xffff, r[e], r[4 + e], 0xdd);  // rows 0-7: elements 4 + e, 12 + e
    t[8 + e] = _mm512_maskz_shuffle_f32x4(0xffff, r[8 + e], r[12 + e], 0x88);
    t[12 + e] = _mm512_maskz_shuffle_f32x4(0xffff, r[8 + e], r[12 + e], 0xdd);
  }
  for (int e = 0; e < 4; ++e) {
    r[e] = _mm512_maskz_shuffle_f32x4(0xffff, t[e], t[8 + e], 0x88);            // element e
    r[8 + e] = _mm512_maskz_shuffle_f32x4(0xffff, t[e], t[8 + e], 0xdd);        // element 8 + e
    r[4 + e] = _mm512_maskz_shuffle_f32x4(0xffff, t[4 + e], t[12 + e], 0x88);   // element 4 + e
    r[12 + e] = _mm512_maskz_shuffle_f32x4(0xffff, t[4 + e], t[12 + e], 0xdd);  // element 12 + e
  }
}

// K^T of keys sl[0, n) in pair layout, per 16 keys hd / 32 tiles [16 dim pairs][16 keys][2]
// (k_pair_index; the cache's bf16 copy has the same layout): [ceil(n / 16)][hd / 32][16][16][2].
// Keys past n are zero. Per 16 keys and 32 dimensions: the keys' bf16 pairs as 16 x 16 32-bit
// elements, transposed in registers (a scatter per key and step was ~2x slower).
void pack_keys_rows(const float* k, int64_t kv_stride, const int32_t* sl, int64_t n, int64_t hd, uint16_t* dst) {
  uint32_t* d32 = reinterpret_cast<uint32_t*>(dst);
  for (int64_t i0 = 0; i0 < n; i0 += kTile) {
    const int64_t cnt = std::min<int64_t>(kTile, n - i0);
    for (int64_t s = 0; s < hd / 32; ++s) {
      __m512 r[kTile];
      for (int64_t i = 0; i < kTile; ++i) {
        if (i >= cnt) {
          r[i] = _mm512_setzero_ps();
          continue;
        }
        const float* row = k + static_cast<int64_t>(sl[i0 + i]) * kv_stride + s * 32;
        const __m512bh b = _mm512_cvtne2ps_pbh(_mm512_loadu_ps(row + 16), _mm512_loadu_ps(row));
        r[i] = reinterpret_cast<const __m512&>(b);
      }
      transpose16(r);
      uint32_t* tile = d32 + (i0 / kTile * (hd / 32) + s) * kTile * kTile;
      for (int j = 0; j < kTile; ++j) _mm512_storeu_ps(reinterpret_cast<float*>(tile + j * kTile), r[j]);
    }
  }
}

// V rows of keys sl[0, n) in pair layout: per block of 32 keys and 16 dimensions one tile
// [16 key pairs][16 dims][2], blocks [ceil(n / 32)][hd / 16]; keys past n are zero.
void pack_values_rows(const float* v, int64_t kv_stride, const int32_t* sl, int64_t n, int64_t hd, uint16_t* dst) {
  // Interleaves [a0..a15 | b0..b15] into [a0 b0 a1 b1 ...].
  alignas(64) static const uint16_t kInterleave[32] = {0, 16, 1, 17, 2,  18, 3,  19, 4,  20, 5,  21, 6,  22, 7,  23,
                                                       8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31};
  const __m512i idx = _mm512_load_si512(kInterleave);
  const int64_t n_dt = hd / kTile;
  for (int64_t b = 0; b * kBlock < n; ++b)
    for (int r = 0; r < kTile; ++r) {
      const int64_t ka = b * kBlock + 2 * r, kb = ka + 1;
      if (ka >= n) {  // the rest of the last block: zero keys
        for (int64_t dt = 0; dt < n_dt; ++dt)
          _mm512_storeu_si512(dst + ((b * n_dt + dt) * kTile + r) * 32, _mm512_setzero_si512());
        continue;
      }
      const float* ra = v + static_cast<int64_t>(sl[ka]) * kv_stride;
      const float* rb = kb < n ? v + static_cast<int64_t>(sl[kb]) * kv_stride : nullptr;
      for (int64_t dt = 0; dt < n_dt; ++dt) {
        const __m512 xa = _mm512_loadu_ps(ra + dt * kTile);
        const __m512 xb = rb ? _mm512_loadu_ps(rb + dt * kTile) : _mm512_setzero_ps();
        const __m512bh ab = _mm512_cvtne2ps_pbh(xb, xa);
        const __m512i pairs = _mm512_permutexvar_epi16(idx, reinterpret_cast<const __m512i&>(ab));
        _mm512_storeu_si512(dst + ((b * n_dt + dt) * kTile + r) * 32, pairs);
      }
    }
}

// Rows sl[0, n) of v (hd floats each) rounded to bf16 and widened back to f32: the operands of
// partial_block(), equal to what the tiles multiply.
void round_value_rows(const float* v, int64_t kv_stride, const int32_t* sl, int64_t n, int64_t hd, float* dst) {
  for (int64_t i = 0; i < n; ++i) {
    const float* r = v + static_cast<int64_t>(sl[i]) * kv_stride;
    for (int64_t d = 0; d < hd; d += 16) {
      const __m256bh h = _mm512_cvtneps_pbh(_mm512_loadu_ps(r + d));
      // maskz forms: GCC 12 warns that the unmasked ones read an uninitialised pass-through.
      const __m512i w =
          _mm512_maskz_slli_epi32(0xffff, _mm512_maskz_cvtepu16_epi32(0xffff, reinterpret_cast<const __m256i&>(h)), 16);
      _mm512_storeu_ps(dst + i * hd + d, _mm512_castsi512_ps(w));
    }
  }
}

// The same tiles as pack_keys_rows, gathered from the cache's bf16 copy of keys (k_pair_index) instead
// of converted from f32 rows: the copy holds each key rounded to nearest even, as
// pack_keys_rows rounds it, so both give the same bits (tested). Used when the cache keeps only the copy
// (model/kv_cache.h: enable_bf16_only). Per 16 keys and 32 dimensions, one 16-lane gather per
// dimension pair (tile row): lane c reads key c's pair from its slot's tile column.
void pack_keys_copy(const uint16_t* k16, const int32_t* sl, int64_t n, int64_t hd, uint16_t* dst) {
  const int* src = reinterpret_cast<const int*>(k16);
  uint32_t* d32 = reinterpret_cast<uint32_t*>(dst);
  const int64_t steps = hd / 32;
  for (int64_t i0 = 0; i0 < n; i0 += kTile) {
    const __mmask16 live = lanes::mask_for(n - i0);
    const __m512i slots = _mm512_maskz_loadu_epi32(live, sl + i0);
    // 32-bit index of (slot, dimension pair 0): tile (slot / 16, step 0), row 0, column slot % 16.
    const __m512i base = _mm512_add_epi32(
        _mm512_mullo_epi32(_mm512_maskz_srli_epi32(0xffff, slots, 4), _mm512_set1_epi32(static_cast<int>(steps * 256))),
        _mm512_and_si512(slots, _mm512_set1_epi32(kTile - 1)));
    for (int64_t s = 0; s < steps; ++s) {
      uint32_t* tile = d32 + (i0 / kTile * steps + s) * kTile * kTile;
      for (int r = 0; r < kTile; ++r) {
        const __m512i idx = _mm512_add_epi32(base, _mm512_set1_epi32(static_cast<int>(s * 256 + r * kTile)));
        _mm512_storeu_si512(tile + r * kTile, _mm512_mask_i32gather_epi32(_mm512_setzero_si512(), live, idx, src, 4));
      }
    }
  }
}

// One slot's 16 values of dimensions [16 dt, 16 dt + 16) from the bf16 copy (v_pair_index), each
// in the high half of a 32-bit lane (so, as floats, the bf16 values widened): the row of the
// copy's value tile interleaves the slot with its pair partner.
inline __m512i copy_values_high(const uint16_t* v16, int64_t slot, int64_t dt, int64_t hd) {
  const __m512i row = _mm512_loadu_si512(v16 + ((slot / kBlock * (hd / kTile) + dt) * kTile + slot % kBlock / 2) * 32);
  // maskz shifts: GCC 12 warns that the unmasked ones read an uninitialised pass-through.
  return slot % 2 ? _mm512_and_si512(row, _mm512_set1_epi32(static_cast<int>(0xffff0000u)))
                  : _mm512_maskz_slli_epi32(0xffff, row, 16);
}

// The same blocks as pack_values_rows, from the bf16 copy of values (same bits, as pack_keys_copy).
void pack_values_copy(const uint16_t* v16, const int32_t* sl, int64_t n, int64_t hd, uint16_t* dst) {
  const int64_t n_dt = hd / kTile;
  for (int64_t b = 0; b * kBlock < n; ++b)
    for (int r = 0; r < kTile; ++r) {
      const int64_t ka = b * kBlock + 2 * r, kb = ka + 1;
      for (int64_t dt = 0; dt < n_dt; ++dt) {
        __m512i pairs = _mm512_setzero_si512();  // keys past n: zero
        if (ka < n) pairs = _mm512_maskz_srli_epi32(0xffff, copy_values_high(v16, sl[ka], dt, hd), 16);
        if (kb < n) pairs = _mm512_or_si512(pairs, copy_values_high(v16, sl[kb], dt, hd));
        _mm512_storeu_si512(dst + ((b * n_dt + dt) * kTile + r) * 32, pairs);
      }
    }
}

// round_value_rows() from the bf16 copy of values (the same floats).
void copy_value_rows(const uint16_t* v16, const int32_t* sl, int64_t n, int64_t hd, float* dst) {
  for (int64_t i = 0; i < n; ++i)
    for (int64_t dt = 0; dt < hd / kTile; ++dt)
      _mm512_storeu_si512(dst + i * hd + dt * kTile, copy_values_high(v16, sl[i], dt, hd));
}

}  // namespace

void KvSource::pack_keys(const int32_t* sl, int64_t n, int64_t hd, uint16_t* dst) const {
  if (k)
    pack_keys_rows(k, stride, sl, n, hd, dst);
  else
    pack_keys_copy(k16, sl, n, hd, dst);
}

void KvSource::pack_values(const int32_t* sl, int64_t n, int64_t hd, uint16_t* dst) const {
  if (k)
    pack_values_rows(v, stride, sl, n, hd, dst);
  else
    pack_values_copy(v16, sl, n, hd, dst);
}

void KvSource::value_rows(const int32_t* sl, int64_t n, int64_t hd, float* dst) const {
  if (k)
    round_value_rows(v, stride, sl, n, hd, dst);
  else
    copy_value_rows(v16, sl, n, hd, dst);
}

}  // namespace bf16_pairs

using bf16_pairs::k_pair_index;
using bf16_pairs::kTile;
using bf16_pairs::scatter_pairs;
using bf16_pairs::v_pair_index;

void kv_bf16_store(const float* k_row, const float* v_row, int64_t hd, int64_t slot, uint16_t* k16, uint16_t* v16) {
  SWIFT_CHECK(hd % 64 == 0 && hd <= 512, "head dim {}", hd);
  scatter_pairs(k_row, hd, reinterpret_cast<uint32_t*>(k16 + k_pair_index(slot, 0, hd)), 0);
  // Value d of this slot goes to lane 2 (d % 16) + slot % 2 of row slot % 32 / 2 of tile d / 16:
  // spread 16 values to every other lane and store those lanes only.
  alignas(64) static const uint16_t kSpread[32] = {0, 0, 1, 1, 2,  2,  3,  3,  4,  4,  5,  5,  6,  6,  7,  7,
                                                   8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13, 14, 14, 15, 15};
  const __m512i idx = _mm512_load_si512(kSpread);
  const __mmask32 lanes = slot % 2 ? 0xAAAAAAAAu : 0x55555555u;
  for (int64_t dt = 0; dt < hd / kTile; ++dt) {
    const __m256bh h = _mm512_cvtneps_pbh(_mm512_loadu_ps(v_row + dt * kTile));
    const __m512i spread = _mm512_permutexvar_epi16(idx, _mm512_castsi256_si512(reinterpret_cast<const __m256i&>(h)));
    _mm512_mask_storeu_epi16(v16 + v_pair_index(slot, dt * kTile, hd) - slot % 2, lanes, spread);
  }
}

void kv_bf16_move(int64_t from, int64_t to, int64_t hd, uint16_t* k16, uint16_t* v16) {
  for (int64_t d = 0; d < hd; ++d) {
    k16[k_pair_index(to, d, hd)] = k16[k_pair_index(from, d, hd)];
    v16[v_pair_index(to, d, hd)] = v16[v_pair_index(from, d, hd)];
  }
}

#else

void kv_bf16_store(const float*, const float*, int64_t hd, int64_t, uint16_t*, uint16_t*) {
  SWIFT_CHECK(false, "bf16 KV copy in a build without AVX-512 BF16 (head dim {})", hd);
}

void kv_bf16_move(int64_t, int64_t, int64_t hd, uint16_t*, uint16_t*) {
  SWIFT_CHECK(false, "bf16 KV copy in a build without AVX-512 BF16 (head dim {})", hd);
}

#endif

}  // namespace swift
