// Exact splits of f32 values into bf16 parts for the f32-accurate AMX kernels (ops/bf16_amx.h:
// matmul_f32_amx; ops/attention_f32_amx.cc): x = x1 + x2 + x3 with x1 = bf16(x),
// x2 = bf16(x - x1), x3 = bf16(x - x1 - x2), each rounded to nearest even and each difference
// exact in f32 (three 8-bit significands hold f32's 24). One definition, so the kernels that
// split activations, weights, queries, keys, values and softmax weights make the same parts.
#pragma once

#include <cstdint>

#if defined(__AVX512BF16__) && defined(__AVX512F__) && defined(__AVX512BW__)
#include <immintrin.h>

namespace swift::bf16_parts {

// bf16 -> f32: the 16 bits on top of a zero half (the maskz forms: GCC 12 warns of an
// uninitialized source in the plain ones).
inline __m512 widen(__m256bh h) {
  constexpr __mmask16 kAll = 0xffff;
  return _mm512_castsi512_ps(
      _mm512_maskz_slli_epi32(kAll, _mm512_maskz_cvtepu16_epi32(kAll, reinterpret_cast<const __m256i&>(h)), 16));
}

// The three parts of 16 values, stored at o, o + plane and o + 2 plane (elements).
inline void store3(__m512 v, uint16_t* o, int64_t plane) {
  const __m256bh h1 = _mm512_cvtneps_pbh(v);
  const __m512 r1 = _mm512_sub_ps(v, widen(h1));
  const __m256bh h2 = _mm512_cvtneps_pbh(r1);
  const __m256bh h3 = _mm512_cvtneps_pbh(_mm512_sub_ps(r1, widen(h2)));
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(o), reinterpret_cast<const __m256i&>(h1));
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(o + plane), reinterpret_cast<const __m256i&>(h2));
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(o + 2 * plane), reinterpret_cast<const __m256i&>(h3));
}

}  // namespace swift::bf16_parts

#endif
