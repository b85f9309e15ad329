// The lane contract (ops/lanes.h) on AVX-512: a Vec is one zmm register, a Mask a 16-bit lane mask;
// weights of every type convert 16 at a time. Included by ops/lanes.h only, after the parts
// every path shares (kLanes, the scalar exp forms, weight_at, quant16).
#pragma once

#if !defined(SWIFT_LANES_PATH_HEADER)
#error "include ops/lanes.h, which includes the path for the target's instruction set"
#endif

namespace swift::lanes {

constexpr int kVecRegisters = 32;  // 32 zmm registers, one Vec each

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
  } else if constexpr (DT == DType::kQ4_0 || DT == DType::kQ6_K) {
    const Quant16 u = quant16<DT>(base, idx);
    const __m512i q =
        _mm512_maskz_sub_epi32(0xffff, _mm512_maskz_cvtepu8_epi32(0xffff, u.q), _mm512_set1_epi32(u.offset));
    return _mm512_maskz_mul_ps(m, _mm512_maskz_cvtepi32_ps(0xffff, q), _mm512_set1_ps(u.scale));
  } else if constexpr (DT == DType::kQ8_0) {
    // idx is a multiple of 16 (rows are whole blocks): the first or second half of a block.
    const uint8_t* blk = static_cast<const uint8_t*>(base) + idx / 32 * 34;
    uint16_t dh;
    std::memcpy(&dh, blk, 2);
    const __m128i q8 = _mm_maskz_loadu_epi8(m, blk + 2 + idx % 32);
    const __m512 q = _mm512_maskz_cvtepi32_ps(0xffff, _mm512_maskz_cvtepi8_epi32(0xffff, q8));
    return _mm512_maskz_mul_ps(0xffff, q, _mm512_set1_ps(f16_to_f32(dh)));
  } else {
    // maskz_ forms with a full mask: same instructions, but GCC 12's headers implement the
    // unmasked forms with an "undefined" pass-through that trips -Wmaybe-uninitialized.
    const __m256i h = _mm256_maskz_loadu_epi16(m, static_cast<const uint16_t*>(base) + idx);
    if constexpr (DT == DType::kBF16)
      return _mm512_castsi512_ps(_mm512_maskz_slli_epi32(0xffff, _mm512_maskz_cvtepu16_epi32(0xffff, h), 16));
    else
      return _mm512_maskz_cvtph_ps(0xffff, h);
  }
}
inline Vec fma(Vec a, Vec b, Vec c) { return _mm512_fmadd_ps(a, b, c); }
inline Vec add(Vec a, Vec b) { return _mm512_add_ps(a, b); }
inline Vec sub(Vec a, Vec b) { return _mm512_sub_ps(a, b); }
inline Vec mul(Vec a, Vec b) { return _mm512_mul_ps(a, b); }
inline Vec max(Vec a, Vec b) { return _mm512_maskz_max_ps(0xffff, a, b); }
// Masked lanes read `fill` instead of zero.
inline Vec load_or(const float* p, Mask m, float fill) { return _mm512_mask_loadu_ps(_mm512_set1_ps(fill), m, p); }
inline Vec div(Vec a, Vec b) { return _mm512_div_ps(a, b); }
inline Vec broadcast(float x) { return _mm512_set1_ps(x); }
inline void store(float* p, Vec v, Mask m) { _mm512_mask_storeu_ps(p, m, v); }
inline float reduce(Vec v) {
  const __m256 lo = _mm256_castpd_ps(_mm512_maskz_extractf64x4_pd(0xf, _mm512_castps_pd(v), 0));
  const __m256 hi = _mm256_castpd_ps(_mm512_maskz_extractf64x4_pd(0xf, _mm512_castps_pd(v), 1));
  const __m256 s8 = _mm256_add_ps(lo, hi);                                                 // l + l+8
  const __m128 s4 = _mm_add_ps(_mm256_castps256_ps128(s8), _mm256_extractf128_ps(s8, 1));  // l + l+4
  const __m128 t = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));                                  // (0+2), (1+3)
  return _mm_cvtss_f32(_mm_add_ss(t, _mm_shuffle_ps(t, t, 1)));
}

// e^x, see exp_scalar.
inline Vec exp(Vec x) {
  // maskz_ forms with a full mask throughout (see load_w: GCC 12's unmasked forms warn).
  constexpr __mmask16 kAll = 0xffff;
  const __m512 lo = _mm512_set1_ps(kExpMin), hi = _mm512_set1_ps(kExpMax);
  const __mmask16 keep = _mm512_cmp_ps_mask(x, lo, _CMP_GE_OQ);  // false for NaN and tiny x
  const __mmask16 big = _mm512_cmp_ps_mask(x, hi, _CMP_GT_OQ);
  const __mmask16 nan = _mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q);
  const __m512 xc = _mm512_maskz_min_ps(kAll, _mm512_maskz_max_ps(kAll, x, lo), hi);
  const __m512 fx = _mm512_maskz_roundscale_ps(kAll, _mm512_fmadd_ps(xc, _mm512_set1_ps(kLog2e), _mm512_set1_ps(0.5f)),
                                               _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fmadd_ps(fx, _mm512_set1_ps(-kLn2Hi), xc);
  r = _mm512_fmadd_ps(fx, _mm512_set1_ps(-kLn2Lo), r);
  const __m512 z = _mm512_mul_ps(r, r);
  __m512 p = _mm512_set1_ps(kExpP[0]);
  for (int i = 1; i < 6; ++i) p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(kExpP[i]));
  const __m512 y = _mm512_add_ps(_mm512_fmadd_ps(p, z, r), _mm512_set1_ps(1.0f));
  const __m512i n = _mm512_maskz_add_epi32(kAll, _mm512_maskz_cvttps_epi32(kAll, fx), _mm512_set1_epi32(127));
  const __m512i e = _mm512_maskz_slli_epi32(kAll, n, 23);
  __m512 out = _mm512_maskz_mul_ps(keep, y, _mm512_castsi512_ps(e));
  out = _mm512_mask_mov_ps(out, big, _mm512_set1_ps(INFINITY));
  return _mm512_mask_mov_ps(out, nan, x);
}
// 2^t, see exp2_scalar (NaN lanes give 0 here: vmaxps returns the bound for them).
template <bool kNonPositive = false>
inline Vec exp2(Vec t) {
  constexpr __mmask16 kAll = 0xffff;
  t = _mm512_maskz_max_ps(kAll, t, _mm512_set1_ps(kExp2Min));
  if constexpr (!kNonPositive) t = _mm512_maskz_min_ps(kAll, t, _mm512_set1_ps(kExp2Max));
  const __m512 n = _mm512_maskz_roundscale_ps(kAll, t, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  const __m512 r = _mm512_sub_ps(t, n);
  __m512 p = _mm512_set1_ps(kExp2P[0]);
  for (int i = 1; i < 6; ++i) p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(kExp2P[i]));
  return _mm512_maskz_scalef_ps(kAll, _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f)), n);
}

}  // namespace swift::lanes
