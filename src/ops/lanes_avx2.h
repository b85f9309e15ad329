// The lane contract (ops/lanes.h) on AVX2 with FMA and F16C. Included by ops/lanes.h only.

#pragma once

#if !defined(SWIFT_LANES_PATH_HEADER)
#error "include ops/lanes.h, which includes the path for the target's instruction set"
#endif

namespace swift::lanes {

constexpr int kVecRegisters = 8;  // 16 ymm registers, two per Vec

// AVX2 (x86-64-v3, the portable build's variant for CPUs without AVX-512): 16 lanes as two
// 8-float halves, lanes 0-7 and 8-15. Every operation is the same IEEE operation per lane as in
// the other paths (vfmadd for std::fma, the same reduction tree, exp's steps one by one), so
// the results are the same bits; exp2 (bf16 math only, which needs AVX-512 BF16) goes lane by
// lane through the scalar form. Q8_0/Q4_0/Q6_K weights convert 16 at a time as in the AVX-512
// path: lane by lane (the portable path, whole Q4_0/Q6_K blocks dequantized per weight) the
// f32-math check of the demo model's GGUF files ran over 7 minutes instead of 17 s.
struct Vec {
  __m256 lo, hi;
};
using Mask = int;  // number of valid lanes, 0..16
inline Vec zero() { return {_mm256_setzero_ps(), _mm256_setzero_ps()}; }
inline Mask mask_for(int64_t left) { return left >= kLanes ? kLanes : static_cast<int>(left < 0 ? 0 : left); }
// All-ones in the lanes [0, n) of one half (n clamped to 0..8).
inline __m256i half_mask(int n) {
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}
inline Vec load(const float* p, Mask m) {
  if (m >= kLanes) return {_mm256_loadu_ps(p), _mm256_loadu_ps(p + 8)};
  return {_mm256_maskload_ps(p, half_mask(m)), _mm256_maskload_ps(p + 8, half_mask(m - 8))};
}
template <DType DT>
inline Vec load_w(const void* base, int64_t idx, Mask m) {
  if constexpr (DT == DType::kF32) {
    return load(static_cast<const float*>(base) + idx, m);
  } else if constexpr (DT == DType::kBF16 || DT == DType::kF16) {
    const uint16_t* src = static_cast<const uint16_t*>(base) + idx;
    __m256i h;
    if (m >= kLanes) {
      h = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(src));
    } else {
      alignas(32) uint16_t tmp[kLanes] = {};
      std::memcpy(tmp, src, static_cast<size_t>(m) * 2);
      h = _mm256_load_si256(reinterpret_cast<const __m256i*>(tmp));
    }
    const __m128i h0 = _mm256_castsi256_si128(h), h1 = _mm256_extracti128_si256(h, 1);
    if constexpr (DT == DType::kBF16)
      return {_mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h0), 16)),
              _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h1), 16))};
    else
      return {_mm256_cvtph_ps(h0), _mm256_cvtph_ps(h1)};
  } else if constexpr (DT != DType::kQ4_0 && DT != DType::kQ6_K && DT != DType::kQ8_0) {
    alignas(32) float tmp[kLanes] = {};
    for (int l = 0; l < m; ++l) tmp[l] = weight_at<DT>(base, idx + l);
    return {_mm256_load_ps(tmp), _mm256_load_ps(tmp + 8)};
  } else {
    // The AVX-512 path's arithmetic on two halves (same values), lanes from m on zeroed after.
    Quant16 u;
    if constexpr (DT == DType::kQ8_0) {  // idx is a multiple of 16: half of a block
      const uint8_t* blk = static_cast<const uint8_t*>(base) + idx / 32 * 34;
      uint16_t dh;
      std::memcpy(&dh, blk, 2);
      u = {_mm_loadu_si128(reinterpret_cast<const __m128i*>(blk + 2 + idx % 32)), f16_to_f32(dh), 0};
    } else {
      u = quant16<DT>(base, idx);
    }
    auto widen = [&](__m128i bytes) {  // 8 quants -> f32 lanes, as the AVX-512 path
      const __m256i v = DT == DType::kQ8_0 ? _mm256_cvtepi8_epi32(bytes) : _mm256_cvtepu8_epi32(bytes);
      return _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_sub_epi32(v, _mm256_set1_epi32(u.offset))),
                           _mm256_set1_ps(u.scale));
    };
    Vec r{widen(u.q), widen(_mm_srli_si128(u.q, 8))};
    if (m < kLanes) {
      r.lo = _mm256_and_ps(r.lo, _mm256_castsi256_ps(half_mask(m)));
      r.hi = _mm256_and_ps(r.hi, _mm256_castsi256_ps(half_mask(m - 8)));
    }
    return r;
  }
}
inline Vec fma(Vec a, Vec b, Vec c) { return {_mm256_fmadd_ps(a.lo, b.lo, c.lo), _mm256_fmadd_ps(a.hi, b.hi, c.hi)}; }
inline Vec add(Vec a, Vec b) { return {_mm256_add_ps(a.lo, b.lo), _mm256_add_ps(a.hi, b.hi)}; }
inline Vec sub(Vec a, Vec b) { return {_mm256_sub_ps(a.lo, b.lo), _mm256_sub_ps(a.hi, b.hi)}; }
inline Vec mul(Vec a, Vec b) { return {_mm256_mul_ps(a.lo, b.lo), _mm256_mul_ps(a.hi, b.hi)}; }
inline Vec div(Vec a, Vec b) { return {_mm256_div_ps(a.lo, b.lo), _mm256_div_ps(a.hi, b.hi)}; }
// vmaxps: b when either is NaN or both are zero, as the other paths.
inline Vec max(Vec a, Vec b) { return {_mm256_max_ps(a.lo, b.lo), _mm256_max_ps(a.hi, b.hi)}; }
// Masked lanes read `fill` instead of zero.
inline Vec load_or(const float* p, Mask m, float fill) {
  const Vec v = load(p, m);
  const __m256 f = _mm256_set1_ps(fill);
  return {_mm256_blendv_ps(f, v.lo, _mm256_castsi256_ps(half_mask(m))),
          _mm256_blendv_ps(f, v.hi, _mm256_castsi256_ps(half_mask(m - 8)))};
}
inline Vec broadcast(float x) { return {_mm256_set1_ps(x), _mm256_set1_ps(x)}; }
inline void store(float* p, Vec v, Mask m) {
  if (m >= kLanes) {
    _mm256_storeu_ps(p, v.lo);
    _mm256_storeu_ps(p + 8, v.hi);
    return;
  }
  _mm256_maskstore_ps(p, half_mask(m), v.lo);
  _mm256_maskstore_ps(p + 8, half_mask(m - 8), v.hi);
}
inline float reduce(Vec v) {
  const __m256 s8 = _mm256_add_ps(v.lo, v.hi);                                             // l + l+8
  const __m128 s4 = _mm_add_ps(_mm256_castps256_ps128(s8), _mm256_extractf128_ps(s8, 1));  // l + l+4
  const __m128 t = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));                                  // (0+2), (1+3)
  return _mm_cvtss_f32(_mm_add_ss(t, _mm_shuffle_ps(t, t, 1)));
}
// e^x of 8 lanes, exp_scalar's steps.
inline __m256 exp_half(__m256 x) {
  const __m256 lo = _mm256_set1_ps(kExpMin), hi = _mm256_set1_ps(kExpMax);
  const __m256 keep = _mm256_cmp_ps(x, lo, _CMP_GE_OQ);  // false for NaN and tiny x
  const __m256 big = _mm256_cmp_ps(x, hi, _CMP_GT_OQ);
  const __m256 nan = _mm256_cmp_ps(x, x, _CMP_UNORD_Q);
  const __m256 xc = _mm256_min_ps(_mm256_max_ps(x, lo), hi);
  const __m256 fx = _mm256_floor_ps(_mm256_fmadd_ps(xc, _mm256_set1_ps(kLog2e), _mm256_set1_ps(0.5f)));
  __m256 r = _mm256_fmadd_ps(fx, _mm256_set1_ps(-kLn2Hi), xc);
  r = _mm256_fmadd_ps(fx, _mm256_set1_ps(-kLn2Lo), r);
  const __m256 z = _mm256_mul_ps(r, r);
  __m256 p = _mm256_set1_ps(kExpP[0]);
  for (int i = 1; i < 6; ++i) p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(kExpP[i]));
  const __m256 y = _mm256_add_ps(_mm256_fmadd_ps(p, z, r), _mm256_set1_ps(1.0f));
  const __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvttps_epi32(fx), _mm256_set1_epi32(127)), 23);
  __m256 out = _mm256_and_ps(_mm256_mul_ps(y, _mm256_castsi256_ps(e)), keep);  // +0 where not kept
  out = _mm256_blendv_ps(out, _mm256_set1_ps(INFINITY), big);
  return _mm256_blendv_ps(out, x, nan);
}
inline Vec exp(Vec x) { return {exp_half(x.lo), exp_half(x.hi)}; }

}  // namespace swift::lanes
