// 16 independent f32 partial sums ("lanes") and the fixed reduction tree every kernel uses.
//
// This is the numeric contract behind batch invariance (matmul.h): a dot product of length n
// accumulates element c into lane c % 16 with a fused multiply-add, in increasing c, and the
// lanes are reduced as ((l0+l8)+(l4+l12)) ... in one fixed tree. The AVX-512 path (one register),
// the AVX2 path (two 8-float registers: the portable build's x86-64-v3 variant, util/cpu_features.h),
// the NEON path (four 4-float registers: AArch64) and the portable path (an array the compiler
// may vectorise) perform exactly the same IEEE operations, so results are bit-identical across
// ISA paths, tile shapes and batch sizes.
// Masked tail loads read zeros; fma(0, 0, s) == s for every partial sum that can occur (a
// partial sum starting at +0 never becomes -0), so the tail matches a scalar tail exactly.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

#include "ops/dtype.h"
#include "ops/quant.h"
#include "util/half.h"

#if defined(__AVX512F__) || (defined(__AVX2__) && defined(__FMA__) && defined(__F16C__))
#include <immintrin.h>
#define SWIFT_LANES_X86 1
#elif defined(__aarch64__) && defined(__ARM_NEON)
#include <arm_neon.h>
#define SWIFT_LANES_NEON 1
#endif

namespace swift::lanes {

constexpr int kLanes = 16;

// How many Vecs fit the register file, for sizing kernel tiles (matmul_panel.cc): 32 zmm
// registers hold 32 with AVX-512; 16 ymm hold 8 with AVX2; 32 128-bit registers hold 8 with NEON.
// The portable path counts as AVX-512 (the compiler decides what its arrays become).
#if !defined(__AVX512F__) && \
    ((defined(__AVX2__) && defined(__FMA__) && defined(__F16C__)) || (defined(__aarch64__) && defined(__ARM_NEON)))
constexpr int kVecRegisters = 8;
#else
constexpr int kVecRegisters = 32;
#endif

// exp(x) = e^x for softmax weights and SiLU: Cephes' expf (x = n ln2 + r with ln2 split in two,
// degree-5 polynomial for e^r on [-ln2/2, ln2/2], then scaled by 2^n), within 1 ulp of std::exp
// (tests/ops/attention_test.cc). Below kExpMin the result is 0 where std::exp gives a denormal
// under 1.2e-38, which neither a softmax sum nor 1 + e^x can notice; above kExpMax it is +inf,
// as std::exp; NaN stays NaN. Both ISA paths perform the same IEEE operations, so results are
// bit-identical across paths, batch sizes and thread splits. A scalar std::exp per key was half
// the time of attention over a few hundred keys.
constexpr float kExpMin = -87.33654f, kExpMax = 88.3762626647949f;
constexpr float kLog2e = 1.44269504088896341f;
constexpr float kLn2Hi = 0.693359375f, kLn2Lo = -2.12194440e-4f;
constexpr float kExpP[6] = {1.9875691500e-4f, 1.3981999507e-3f, 8.3334519073e-3f,
                            4.1665795894e-2f, 1.6666665459e-1f, 5.0000001201e-1f};

// 2^t to f32 accuracy for the bf16 math's softmax weights and SiLU, whose results are rounded to
// bf16 (relative 2^-9) right after: t = n + r with n = t rounded to nearest and |r| <= 1/2,
// 2^r = 1 + r P(r) with Cephes' exp2f polynomial (relative error < 2e-7 against std::exp2,
// tests/ops/elementwise_test.cc), scaled by 2^n (vscalefps; ldexp in the portable path, the
// same correctly rounded result). t is clamped to [kExp2Min, kExp2Max] first (below, 2^t is 0;
// above, 2^126 keeps 1 + 2^t finite); kNonPositive skips the upper clamp for callers whose t
// is never above 0 (softmax: scores minus their maximum). ~10 instructions per 16 lanes against
// exp's ~25: the SiLU of a 16-token verification pass's SwiGLU went 0.50 -> 0.27 ns per element
// (warm, 32-wide rows as the AMX SwiGLU epilogue calls it, Xeon).
constexpr float kExp2Min = -150.0f, kExp2Max = 126.0f;
constexpr float kExp2P[6] = {1.535336188319500e-4f, 1.339887440266574e-3f, 9.618437357674640e-3f,
                             5.550332471162809e-2f, 2.402264791363012e-1f, 6.931472028550421e-1f};

// The scalar form of exp2 (the portable path, and the reference the AVX-512 path must equal).
inline float exp2_scalar(float t, bool non_positive = false) {
  if (std::isnan(t)) return t;
  t = t > kExp2Min ? t : kExp2Min;
  if (!non_positive) t = t < kExp2Max ? t : kExp2Max;
  const float n = std::nearbyint(t), r = t - n;
  float p = kExp2P[0];
  for (int i = 1; i < 6; ++i) p = std::fma(p, r, kExp2P[i]);
  return std::ldexp(std::fma(p, r, 1.0f), static_cast<int>(n));
}

// The scalar form of exp: the portable path, and the reference the AVX-512 path must equal bit
// for bit (tests/ops/attention_test.cc).
inline float exp_scalar(float x) {
  if (std::isnan(x)) return x;
  if (x > kExpMax) return INFINITY;
  const bool keep = x >= kExpMin;
  const float xc = keep ? x : kExpMin;
  const float fx = std::floor(std::fma(xc, kLog2e, 0.5f));
  float r = std::fma(fx, -kLn2Hi, xc);
  r = std::fma(fx, -kLn2Lo, r);
  const float z = r * r;
  float p = kExpP[0];
  for (int i = 1; i < 6; ++i) p = std::fma(p, r, kExpP[i]);
  const float y = std::fma(p, z, r) + 1.0f;
  const uint32_t bits = static_cast<uint32_t>(static_cast<int32_t>(fx) + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, 4);
  return keep ? y * scale : 0.0f;
}

// Weight idx of a row of DT as f32, one at a time: the portable and AVX2 paths' loader (the
// AVX-512 path converts 16 at once, to the same values).
template <DType DT>
inline float weight_at(const void* base, int64_t idx) {
  if constexpr (DT == DType::kQ4_0 || DT == DType::kQ6_K) {
    // The reference dequantization of the whole block (slow, exact).
    const int64_t blk = dtype_block(DT);
    float tmp[256];
    dequantize_row(DT, static_cast<const uint8_t*>(base) + idx / blk * dtype_block_bytes(DT), blk, tmp);
    return tmp[idx % blk];
  } else if constexpr (DT == DType::kQ8_0) {
    const uint8_t* blk = static_cast<const uint8_t*>(base) + idx / 32 * 34;
    uint16_t dh;
    std::memcpy(&dh, blk, 2);
    return static_cast<float>(static_cast<int8_t>(blk[2 + idx % 32])) * f16_to_f32(dh);
  } else if constexpr (DT == DType::kF32) {
    return static_cast<const float*>(base)[idx];
  } else if constexpr (DT == DType::kBF16) {
    return bf16_to_f32(static_cast<const uint16_t*>(base)[idx]);
  } else {
    return f16_to_f32(static_cast<const uint16_t*>(base)[idx]);
  }
}

#if defined(SWIFT_LANES_X86) || defined(SWIFT_LANES_NEON)
// 16 bytes in one register, and the few byte operations the quant unpacking below needs.
#if defined(SWIFT_LANES_X86)
using Bytes16 = __m128i;
inline Bytes16 bytes_load(const uint8_t* p) { return _mm_loadu_si128(reinterpret_cast<const __m128i*>(p)); }
inline Bytes16 bytes_and(Bytes16 b, uint8_t m) { return _mm_and_si128(b, _mm_set1_epi8(static_cast<char>(m))); }
inline Bytes16 bytes_shr(Bytes16 b, int s) {  // per byte, bits shifted in from the next byte masked off
  return _mm_and_si128(_mm_srl_epi16(b, _mm_cvtsi32_si128(s)), _mm_set1_epi8(static_cast<char>(0xFF >> s)));
}
inline Bytes16 bytes_or_shl4(Bytes16 lo, Bytes16 hi) { return _mm_or_si128(lo, _mm_slli_epi16(hi, 4)); }  // hi < 16
#else
using Bytes16 = uint8x16_t;
inline Bytes16 bytes_load(const uint8_t* p) { return vld1q_u8(p); }
inline Bytes16 bytes_and(Bytes16 b, uint8_t m) { return vandq_u8(b, vdupq_n_u8(m)); }
inline Bytes16 bytes_shr(Bytes16 b, int s) { return vshlq_u8(b, vdupq_n_s8(static_cast<int8_t>(-s))); }
inline Bytes16 bytes_or_shl4(Bytes16 lo, Bytes16 hi) { return vorrq_u8(lo, vshlq_n_u8(hi, 4)); }
#endif

// The 16 quants of Q4_0 or Q6_K weights [idx, idx + 16) (idx a multiple of 16: rows are whole
// blocks) as unsigned bytes, and what makes weights of them: (q - offset) * scale, exactly the
// reference dequantization's values. Every SIMD path's loader widens them.
struct Quant16 {
  Bytes16 q;
  float scale;
  int offset;
};
template <DType DT>
inline Quant16 quant16(const void* base, int64_t idx) {
  static_assert(DT == DType::kQ4_0 || DT == DType::kQ6_K);
  uint16_t dh;
  if constexpr (DT == DType::kQ4_0) {
    const uint8_t* blk = static_cast<const uint8_t*>(base) + idx / 32 * 18;
    std::memcpy(&dh, blk, 2);
    const Bytes16 b = bytes_load(blk + 2);
    return {idx % 32 ? bytes_shr(b, 4) : bytes_and(b, 0x0F), f16_to_f32(dh), 8};
  } else {
    const uint8_t* blk = static_cast<const uint8_t*>(base) + idx / 256 * 210;
    const int64_t w = idx % 256, h = w / 128, r = w % 128, quarter = r / 32, l0 = r % 32;
    std::memcpy(&dh, blk + 208, 2);
    const int8_t sc = static_cast<int8_t>(blk[192 + 8 * h + l0 / 16 + 2 * quarter]);
    const Bytes16 ql = bytes_load(blk + 64 * h + (quarter % 2) * 32 + l0);
    const Bytes16 qh = bytes_load(blk + 128 + 32 * h + l0);
    const Bytes16 lo = quarter >= 2 ? bytes_shr(ql, 4) : bytes_and(ql, 0x0F);
    const Bytes16 hi = bytes_and(bytes_shr(qh, static_cast<int>(2 * quarter)), 3);
    return {bytes_or_shl4(lo, hi), f16_to_f32(dh) * static_cast<float>(sc), 32};
  }
}
#endif

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
    else return _mm512_maskz_cvtph_ps(0xffff, h);
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
  const __m256 s8 = _mm256_add_ps(lo, hi);  // l + l+8
  const __m128 s4 = _mm_add_ps(_mm256_castps256_ps128(s8), _mm256_extractf128_ps(s8, 1));   // l + l+4
  const __m128 t = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));                                    // (0+2), (1+3)
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
#elif defined(__AVX2__) && defined(__FMA__) && defined(__F16C__)
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
#elif defined(SWIFT_LANES_NEON)
// NEON (AArch64): 16 lanes as four 4-float quarters, lanes 0-3, 4-7, 8-11, 12-15. As in the AVX2
// path every operation is the same IEEE operation per lane as in the other paths (fmla for
// std::fma, the same reduction tree, exp's steps one by one; AArch64 Linux runs with denormals
// kept, FPCR.FZ = 0), so the results are the same bits; max is vmaxps's rule (b unless a > b),
// not fmax's (NaN wins). exp2 (bf16 math only, which needs AVX-512 BF16) goes lane by lane.
// Tails (a row's last partial 16) go through a small buffer: rows are whole 16s except at the
// end, so it is off the hot path.
struct Vec {
  float32x4_t q[4];
};
using Mask = int;  // number of valid lanes, 0..16
template <typename F>
inline Vec each(F f) {  // {f(0), f(1), f(2), f(3)}
  return {{f(0), f(1), f(2), f(3)}};
}
inline Vec zero() {
  return each([](int) { return vdupq_n_f32(0.0f); });
}
inline Mask mask_for(int64_t left) { return left >= kLanes ? kLanes : static_cast<int>(left < 0 ? 0 : left); }
inline Vec load(const float* p, Mask m) {
  if (m >= kLanes) return each([p](int i) { return vld1q_f32(p + 4 * i); });
  alignas(16) float tmp[kLanes] = {};
  std::memcpy(tmp, p, static_cast<size_t>(m) * 4);
  return each([&tmp](int i) { return vld1q_f32(tmp + 4 * i); });
}
// Quarters i of 16 widened integers as f32: (v - offset) * scale.
inline float32x4_t quarter_of(int32x4_t v, int offset, float scale) {
  return vmulq_n_f32(vcvtq_f32_s32(vsubq_s32(v, vdupq_n_s32(offset))), scale);
}
template <DType DT>
inline Vec load_w(const void* base, int64_t idx, Mask m) {
  if constexpr (DT == DType::kF32) {
    return load(static_cast<const float*>(base) + idx, m);
  } else if constexpr (DT == DType::kBF16 || DT == DType::kF16) {
    const uint16_t* src = static_cast<const uint16_t*>(base) + idx;
    alignas(16) uint16_t tmp[kLanes] = {};
    if (m < kLanes) {
      std::memcpy(tmp, src, static_cast<size_t>(m) * 2);
      src = tmp;
    }
    const uint16x8_t h0 = vld1q_u16(src), h1 = vld1q_u16(src + 8);
    if constexpr (DT == DType::kBF16)  // bf16 is the top half of an f32
      return {{vreinterpretq_f32_u32(vshll_n_u16(vget_low_u16(h0), 16)),
               vreinterpretq_f32_u32(vshll_n_u16(vget_high_u16(h0), 16)),
               vreinterpretq_f32_u32(vshll_n_u16(vget_low_u16(h1), 16)),
               vreinterpretq_f32_u32(vshll_n_u16(vget_high_u16(h1), 16))}};
    else
      return {{vcvt_f32_f16(vreinterpret_f16_u16(vget_low_u16(h0))),
               vcvt_f32_f16(vreinterpret_f16_u16(vget_high_u16(h0))),
               vcvt_f32_f16(vreinterpret_f16_u16(vget_low_u16(h1))),
               vcvt_f32_f16(vreinterpret_f16_u16(vget_high_u16(h1)))}};
  } else if constexpr (DT != DType::kQ4_0 && DT != DType::kQ6_K && DT != DType::kQ8_0) {
    alignas(16) float tmp[kLanes] = {};
    for (int l = 0; l < m; ++l) tmp[l] = weight_at<DT>(base, idx + l);
    return load(tmp, kLanes);
  } else {
    // The AVX-512 path's arithmetic on four quarters (same values), lanes from m on zeroed after.
    int32x4_t w[4];
    float scale;
    int offset;
    if constexpr (DT == DType::kQ8_0) {  // idx is a multiple of 16: half of a block
      const uint8_t* blk = static_cast<const uint8_t*>(base) + idx / 32 * 34;
      uint16_t dh;
      std::memcpy(&dh, blk, 2);
      const int8x16_t q = vld1q_s8(reinterpret_cast<const int8_t*>(blk + 2 + idx % 32));
      const int16x8_t q0 = vmovl_s8(vget_low_s8(q)), q1 = vmovl_s8(vget_high_s8(q));
      w[0] = vmovl_s16(vget_low_s16(q0)), w[1] = vmovl_s16(vget_high_s16(q0));
      w[2] = vmovl_s16(vget_low_s16(q1)), w[3] = vmovl_s16(vget_high_s16(q1));
      scale = f16_to_f32(dh), offset = 0;
    } else {
      const Quant16 u = quant16<DT>(base, idx);
      const uint16x8_t q0 = vmovl_u8(vget_low_u8(u.q)), q1 = vmovl_u8(vget_high_u8(u.q));
      w[0] = vreinterpretq_s32_u32(vmovl_u16(vget_low_u16(q0)));
      w[1] = vreinterpretq_s32_u32(vmovl_u16(vget_high_u16(q0)));
      w[2] = vreinterpretq_s32_u32(vmovl_u16(vget_low_u16(q1)));
      w[3] = vreinterpretq_s32_u32(vmovl_u16(vget_high_u16(q1)));
      scale = u.scale, offset = u.offset;
    }
    return each([&](int i) {
      const float32x4_t v = quarter_of(w[i], offset, scale);
      if (m >= kLanes) return v;
      const int32x4_t lane = vaddq_s32(int32x4_t{0, 1, 2, 3}, vdupq_n_s32(4 * i));
      return vreinterpretq_f32_u32(vandq_u32(vreinterpretq_u32_f32(v), vcltq_s32(lane, vdupq_n_s32(m))));
    });
  }
}
inline Vec fma(Vec a, Vec b, Vec c) {
  return each([&](int i) { return vfmaq_f32(c.q[i], a.q[i], b.q[i]); });
}
inline Vec add(Vec a, Vec b) {
  return each([&](int i) { return vaddq_f32(a.q[i], b.q[i]); });
}
inline Vec sub(Vec a, Vec b) {
  return each([&](int i) { return vsubq_f32(a.q[i], b.q[i]); });
}
inline Vec mul(Vec a, Vec b) {
  return each([&](int i) { return vmulq_f32(a.q[i], b.q[i]); });
}
inline Vec div(Vec a, Vec b) {
  return each([&](int i) { return vdivq_f32(a.q[i], b.q[i]); });
}
// vmaxps's rule: a where a > b, else b (b when either is NaN or both are zero).
inline Vec max(Vec a, Vec b) {
  return each([&](int i) { return vbslq_f32(vcgtq_f32(a.q[i], b.q[i]), a.q[i], b.q[i]); });
}
// Masked lanes read `fill` instead of zero.
inline Vec load_or(const float* p, Mask m, float fill) {
  if (m >= kLanes) return load(p, m);
  alignas(16) float tmp[kLanes];
  for (int l = 0; l < kLanes; ++l) tmp[l] = l < m ? p[l] : fill;
  return load(tmp, kLanes);
}
inline Vec broadcast(float x) {
  return each([x](int) { return vdupq_n_f32(x); });
}
inline void store(float* p, Vec v, Mask m) {
  if (m >= kLanes) {
    for (int i = 0; i < 4; ++i) vst1q_f32(p + 4 * i, v.q[i]);
    return;
  }
  alignas(16) float tmp[kLanes];
  for (int i = 0; i < 4; ++i) vst1q_f32(tmp + 4 * i, v.q[i]);
  std::memcpy(p, tmp, static_cast<size_t>(m) * 4);
}
inline float reduce(Vec v) {
  const float32x4_t s4 = vaddq_f32(vaddq_f32(v.q[0], v.q[2]), vaddq_f32(v.q[1], v.q[3]));  // (l + l+8) + (l+4 + l+12)
  const float32x4_t t = vaddq_f32(s4, vextq_f32(s4, s4, 2));                               // (0+2), (1+3)
  return vgetq_lane_f32(t, 0) + vgetq_lane_f32(t, 1);
}
// e^x of 4 lanes, exp_scalar's steps.
inline float32x4_t exp_quarter(float32x4_t x) {
  const float32x4_t lo = vdupq_n_f32(kExpMin), hi = vdupq_n_f32(kExpMax);
  const uint32x4_t keep = vcgeq_f32(x, lo);  // false for NaN and tiny x
  const uint32x4_t big = vcgtq_f32(x, hi);
  const uint32x4_t nan = vmvnq_u32(vceqq_f32(x, x));
  const float32x4_t xc = vminq_f32(vmaxq_f32(x, lo), hi);  // NaN lanes: replaced by x at the end
  const float32x4_t fx = vrndmq_f32(vfmaq_f32(vdupq_n_f32(0.5f), xc, vdupq_n_f32(kLog2e)));
  float32x4_t r = vfmaq_f32(xc, fx, vdupq_n_f32(-kLn2Hi));
  r = vfmaq_f32(r, fx, vdupq_n_f32(-kLn2Lo));
  const float32x4_t z = vmulq_f32(r, r);
  float32x4_t p = vdupq_n_f32(kExpP[0]);
  for (int i = 1; i < 6; ++i) p = vfmaq_f32(vdupq_n_f32(kExpP[i]), p, r);
  const float32x4_t y = vaddq_f32(vfmaq_f32(r, p, z), vdupq_n_f32(1.0f));
  const int32x4_t e = vshlq_n_s32(vaddq_s32(vcvtq_s32_f32(fx), vdupq_n_s32(127)), 23);
  const float32x4_t scaled = vmulq_f32(y, vreinterpretq_f32_s32(e));
  float32x4_t out = vreinterpretq_f32_u32(vandq_u32(vreinterpretq_u32_f32(scaled), keep));  // +0 where not kept
  out = vbslq_f32(big, vdupq_n_f32(INFINITY), out);
  return vbslq_f32(nan, x, out);
}
inline Vec exp(Vec x) {
  return each([&](int i) { return exp_quarter(x.q[i]); });
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
  for (int l = 0; l < m; ++l) r.v[l] = weight_at<DT>(base, idx + l);
  return r;
}
inline Vec fma(Vec a, Vec b, Vec c) {
  for (int l = 0; l < kLanes; ++l) c.v[l] = std::fma(a.v[l], b.v[l], c.v[l]);
  return c;
}
inline Vec add(Vec a, Vec b) {
  for (int l = 0; l < kLanes; ++l) a.v[l] += b.v[l];
  return a;
}
inline Vec sub(Vec a, Vec b) {
  for (int l = 0; l < kLanes; ++l) a.v[l] -= b.v[l];
  return a;
}
inline Vec mul(Vec a, Vec b) {
  for (int l = 0; l < kLanes; ++l) a.v[l] *= b.v[l];
  return a;
}
inline Vec max(Vec a, Vec b) {  // vmaxps: b when either is NaN or both are zero
  for (int l = 0; l < kLanes; ++l) a.v[l] = a.v[l] > b.v[l] ? a.v[l] : b.v[l];
  return a;
}
inline Vec load_or(const float* p, Mask m, float fill) {
  Vec r;
  for (int l = 0; l < kLanes; ++l) r.v[l] = l < m ? p[l] : fill;
  return r;
}
inline Vec div(Vec a, Vec b) {
  for (int l = 0; l < kLanes; ++l) a.v[l] /= b.v[l];
  return a;
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
inline Vec exp(Vec a) {
  for (float& x : a.v) x = exp_scalar(x);
  return a;
}
#endif

#if !defined(__AVX512F__)
// 2^t lane by lane through the scalar form, on every path but AVX-512's (only bf16 math uses
// exp2, and it needs AVX-512 BF16; the Exp2 test still checks these paths). NaN lanes give 0, as
// the AVX-512 path's clamp makes them.
template <bool kNonPositive = false>
inline Vec exp2(Vec a) {
  alignas(64) float t[kLanes];
  store(t, a, mask_for(kLanes));
  for (float& x : t) x = std::isnan(x) ? 0.0f : exp2_scalar(x, kNonPositive);
  return load(t, mask_for(kLanes));
}
#endif

// reduce() of 16 vectors at once: out[k] = reduce(v[k]) bit for bit. The AVX-512 path runs the
// same halving tree (lane i + lane i+8, then i+4, i+2, i+1) on 16 vectors in parallel with
// shuffles; IEEE addition is commutative, so each sum is exactly the scalar tree's. Used where
// many short dot products are reduced (attention scores): 4 shuffles + 1 add per 2 vectors
// instead of ~6 dependent instructions per vector.
inline void reduce16(const Vec* v, float* out) {
#if defined(__AVX512F__)
  __m512 p[8], q[4], r[2];
  for (int j = 0; j < 8; ++j)  // [key 2j lanes 0-7 | key 2j+1 lanes 0-7] + [... lanes 8-15]
    p[j] = _mm512_add_ps(_mm512_maskz_shuffle_f32x4(0xffff, v[2 * j], v[2 * j + 1], _MM_SHUFFLE(1, 0, 1, 0)),
                         _mm512_maskz_shuffle_f32x4(0xffff, v[2 * j], v[2 * j + 1], _MM_SHUFFLE(3, 2, 3, 2)));
  for (int m = 0; m < 4; ++m)  // quarters: keys 4m..4m+3, 4 lanes each (i + i+4)
    q[m] = _mm512_add_ps(_mm512_maskz_shuffle_f32x4(0xffff, p[2 * m], p[2 * m + 1], _MM_SHUFFLE(2, 0, 2, 0)),
                         _mm512_maskz_shuffle_f32x4(0xffff, p[2 * m], p[2 * m + 1], _MM_SHUFFLE(3, 1, 3, 1)));
  for (int n = 0; n < 2; ++n)  // 128-bit lane j: [key 8n+j: 2 lanes, key 8n+4+j: 2 lanes] (i + i+2)
    r[n] = _mm512_add_ps(_mm512_maskz_shuffle_ps(0xffff, q[2 * n], q[2 * n + 1], _MM_SHUFFLE(1, 0, 1, 0)),
                         _mm512_maskz_shuffle_ps(0xffff, q[2 * n], q[2 * n + 1], _MM_SHUFFLE(3, 2, 3, 2)));
  // element 4j+i: key j + 4i (i + i+1)
  const __m512 s = _mm512_add_ps(_mm512_maskz_shuffle_ps(0xffff, r[0], r[1], _MM_SHUFFLE(2, 0, 2, 0)),
                                 _mm512_maskz_shuffle_ps(0xffff, r[0], r[1], _MM_SHUFFLE(3, 1, 3, 1)));
  const __m512i order = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
  _mm512_storeu_ps(out, _mm512_maskz_permutexvar_ps(0xffff, order, s));
#else
  for (int k = 0; k < 16; ++k) out[k] = reduce(v[k]);
#endif
}

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
