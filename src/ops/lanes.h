// 16 independent f32 partial sums ("lanes") and the fixed reduction tree every kernel uses.
//
// This is the numeric contract behind batch invariance (matmul.h): a dot product of length n
// accumulates element c into lane c % 16 with a fused multiply-add, in increasing c, and the
// lanes are reduced as ((l0+l8)+(l4+l12)) ... in one fixed tree. The AVX-512 path (one register)
// and the portable path (an array the compiler may vectorise) perform exactly the same IEEE
// operations, so results are bit-identical across ISA paths, tile shapes and batch sizes.
// Masked tail loads read zeros; fma(0, 0, s) == s for every partial sum that can occur (a
// partial sum starting at +0 never becomes -0), so the tail matches a scalar tail exactly.
#pragma once

#include <cmath>
#include <cstdint>

#include "ops/dtype.h"
#include "util/half.h"

#if defined(__AVX512F__)
#include <immintrin.h>
#endif

namespace swift::lanes {

constexpr int kLanes = 16;

#if defined(__AVX512F__)
using Vec = __m512;
using Mask = __mmask16;
inline Vec zero() { return _mm512_setzero_ps(); }
inline Mask mask_for(int64_t left) {
  return left >= kLanes ? static_cast<Mask>(0xffff) : static_cast<Mask>((1u << left) - 1);
}
inline Vec load(const float* p, Mask m) { return _mm512_maskz_loadu_ps(m, p); }
template <DType DT>
inline Vec load_w(const void* base, int64_t idx, Mask m) {
  if constexpr (DT == DType::kF32) {
    return _mm512_maskz_loadu_ps(m, static_cast<const float*>(base) + idx);
  } else {
    // maskz_ forms with a full mask: same instructions, but GCC 12's headers implement the
    // unmasked forms with an "undefined" pass-through that trips -Wmaybe-uninitialized.
    const __m256i h = _mm256_maskz_loadu_epi16(m, static_cast<const uint16_t*>(base) + idx);
    if constexpr (DT == DType::kBF16)
      return _mm512_castsi512_ps(_mm512_maskz_slli_epi32(0xffff, _mm512_maskz_cvtepu16_epi32(0xffff, h), 16));
    else return _mm512_maskz_cvtph_ps(0xffff, h);
  }
}
inline Vec fma(Vec a, Vec b, Vec c) { return _mm512_fmadd_ps(a, b, c); }
inline Vec broadcast(float x) { return _mm512_set1_ps(x); }
inline void store(float* p, Vec v, Mask m) { _mm512_mask_storeu_ps(p, m, v); }
inline float reduce(Vec v) {
  const __m256 lo = _mm256_castpd_ps(_mm512_maskz_extractf64x4_pd(0xf, _mm512_castps_pd(v), 0));
  const __m256 hi = _mm256_castpd_ps(_mm512_maskz_extractf64x4_pd(0xf, _mm512_castps_pd(v), 1));
  const __m256 s8 = _mm256_add_ps(lo, hi);  // l + l+8
  const __m128 s4 = _mm_add_ps(_mm256_castps256_ps128(s8), _mm256_extractf128_ps(s8, 1));   // l + l+4
  const __m128 t = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));                                    // (0+2), (1+3)
  return _mm_cvtss_f32(_mm_add_ss(t, _mm_shuffle_ps(t, t, 1)));
}
#else
struct Vec {
  float v[kLanes];
};
using Mask = int;  // number of valid lanes
inline Vec zero() { return Vec{}; }
inline Mask mask_for(int64_t left) { return left >= kLanes ? kLanes : static_cast<int>(left); }
inline Vec load(const float* p, Mask m) {
  Vec r{};
  for (int l = 0; l < m; ++l) r.v[l] = p[l];
  return r;
}
template <DType DT>
inline Vec load_w(const void* base, int64_t idx, Mask m) {
  Vec r{};
  for (int l = 0; l < m; ++l) {
    if constexpr (DT == DType::kF32) r.v[l] = static_cast<const float*>(base)[idx + l];
    else if constexpr (DT == DType::kBF16) r.v[l] = bf16_to_f32(static_cast<const uint16_t*>(base)[idx + l]);
    else r.v[l] = f16_to_f32(static_cast<const uint16_t*>(base)[idx + l]);
  }
  return r;
}
inline Vec fma(Vec a, Vec b, Vec c) {
  for (int l = 0; l < kLanes; ++l) c.v[l] = std::fma(a.v[l], b.v[l], c.v[l]);
  return c;
}
inline Vec broadcast(float x) {
  Vec r;
  for (auto& e : r.v) e = x;
  return r;
}
inline void store(float* p, Vec v, Mask m) {
  for (int l = 0; l < m; ++l) p[l] = v.v[l];
}
inline float reduce(Vec a) {
  float s8[8], s4[4];
  for (int i = 0; i < 8; ++i) s8[i] = a.v[i] + a.v[i + 8];
  for (int i = 0; i < 4; ++i) s4[i] = s8[i] + s8[i + 4];
  return (s4[0] + s4[2]) + (s4[1] + s4[3]);
}
#endif

// Dot product of two f32 vectors under the lane contract.
inline float dot(const float* a, const float* b, int64_t n) {
  Vec acc = zero();
  for (int64_t c = 0; c < n; c += kLanes) {
    const Mask m = mask_for(n - c);
    acc = fma(load(a + c, m), load(b + c, m), acc);
  }
  return reduce(acc);
}

}  // namespace swift::lanes
