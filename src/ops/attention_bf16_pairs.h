// The pair layout of bf16 attention's operands (ops/attention_bf16.cc: the AMX tiles' B operands,
// and vdpbf16ps's: a 64-byte row is 16 keys x one dimension pair, or 16 dimensions x one key
// pair), which the KV cache's bf16 copy also uses (ops/attention.h: kv_bf16_store), and the
// packing of keys and values into it, from f32 rows or from that copy.
//
// Keys: K^T per 16 slots (or keys of a list) and 32 dimensions, one tile [16 dimension pairs][16
// keys][2] (the scores' B operand). Values: per 32 keys and 16 dimensions, one tile [16 key
// pairs][16 dimensions][2] (the sums' B operand). Invariant: packing a key or value from its f32
// row or from the copy it was stored into gives the same bits (both round to nearest even once),
// so a cache may keep the copy only (model/kv_cache.h: enable_bf16_only) and attention does not
// change (tests/ops/attention_bf16_test.cc).
#pragma once

#include <cmath>
#include <cstdint>

// Builds that compile the bf16 attention kernel (ops/attention_bf16.cc) and this packing:
// AVX-512 with its BF16 instructions (vcvtne2ps2bf16 rounds; vdpbf16ps multiplies where there are
// no AMX tiles). AMX builds have them too.
#if defined(__AVX512BF16__) && defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__)
#define SWIFT_BF16_ATTENTION 1
#endif

#if defined(SWIFT_BF16_ATTENTION)
#include <immintrin.h>

#include "ops/lanes.h"
#endif

namespace swift::bf16_pairs {

constexpr int kTile = 16;   // rows of a tile; keys per key tile
constexpr int kBlock = 32;  // keys per value block (one tile instruction's k dimension)

// Index of (slot, dimension d) in the pair layout of keys: per 16 slots hd / 32 tiles [16 dimension
// pairs][16 slots][2].
inline int64_t k_pair_index(int64_t slot, int64_t d, int64_t hd) {
  return ((slot / kTile * (hd / 32) + d / 32) * kTile + d % 32 / 2) * 32 + slot % kTile * 2 + d % 2;
}

// Index of (slot, dimension d) in the pair layout of values: per 32 slots hd / 16 tiles [16 slot
// pairs][16 dimensions][2].
inline int64_t v_pair_index(int64_t slot, int64_t d, int64_t hd) {
  return ((slot / kBlock * (hd / kTile) + d / kTile) * kTile + slot % kBlock / 2) * 32 + d % kTile * 2 + slot % 2;
}

// Where attention reads one KV head's keys and values by slot: f32 rows (k, v, `stride` floats
// apart), or, with k == null, the cache's bf16 copy (k16, v16) only. hd is a multiple of 64.
struct KvSource {
  const float* k = nullptr;
  const float* v = nullptr;
  int64_t stride = 0;
  const uint16_t* k16 = nullptr;
  const uint16_t* v16 = nullptr;

  // K^T of keys sl[0, n) in pair layout: [ceil(n / 16)][hd / 32][16][16][2]; keys past n zero.
  void pack_keys(const int32_t* sl, int64_t n, int64_t hd, uint16_t* dst) const;
  // V of keys sl[0, n) in pair layout: [ceil(n / 32)][hd / 16][16][16][2]; keys past n zero.
  void pack_values(const int32_t* sl, int64_t n, int64_t hd, uint16_t* dst) const;
  // Values of sl[0, n) rounded to bf16 and widened back to f32 ([n][hd]): what the tiles multiply.
  void value_rows(const int32_t* sl, int64_t n, int64_t hd, float* dst) const;
};

#if defined(SWIFT_BF16_ATTENTION)
// Maximum of a row's n raw scores (n >= 1; exact in any order), for the softmax of both AMX
// attention kernels (ops/attention_bf16.cc, ops/attention_f32_amx.cc): two lane chains, then a
// butterfly over 256-, 128-, 64- and 32-bit halves (maskz forms: GCC 12 warns on
// _mm512_reduce_max_ps's unmasked ones). Run for all rows of a row tile before their softmax:
// independent rows side by side overlap their dependent chains, where a row's maximum just
// before its own exp pass left that latency exposed (softmax phase of a 16-token unit after 300
// tokens 10.1-10.7K -> 9.4-9.9K TSC cycles, three paired runs, Xeon).
inline float row_max(const float* s, int64_t n) {
  constexpr __mmask16 kAll = 0xffff;
  __m512 mv0 = _mm512_set1_ps(-INFINITY), mv1 = mv0;
  int64_t j = 0;
  for (; j + 32 <= n; j += 32) {
    mv0 = _mm512_maskz_max_ps(kAll, mv0, _mm512_loadu_ps(s + j));
    mv1 = _mm512_maskz_max_ps(kAll, mv1, _mm512_loadu_ps(s + j + 16));
  }
  for (; j < n; j += 16) mv0 = _mm512_maskz_max_ps(kAll, mv0, _mm512_mask_loadu_ps(mv0, lanes::mask_for(n - j), s + j));
  __m512 m = _mm512_maskz_max_ps(kAll, mv0, mv1);
  m = _mm512_maskz_max_ps(kAll, m, _mm512_maskz_shuffle_f32x4(kAll, m, m, 0x4E));
  m = _mm512_maskz_max_ps(kAll, m, _mm512_maskz_shuffle_f32x4(kAll, m, m, 0xB1));
  m = _mm512_maskz_max_ps(kAll, m, _mm512_maskz_permute_ps(kAll, m, 0x4E));
  m = _mm512_maskz_max_ps(kAll, m, _mm512_maskz_permute_ps(kAll, m, 0xB1));
  return _mm512_cvtss_f32(m);
}
#endif

}  // namespace swift::bf16_pairs
