// 16 independent f32 partial sums ("lanes") and the fixed reduction tree every kernel uses.
//
// This is the numeric contract behind batch invariance (matmul.h): a dot product of length n
// accumulates element c into lane c % 16 with a fused multiply-add, in increasing c, and the
// lanes are reduced as ((l0+l8)+(l4+l12)) ... in one fixed tree. The AVX-512 path (one register,
// ops/lanes_avx512.h), the AVX2 path (two 8-float registers: the portable build's x86-64-v3
// variant, util/cpu_features.h; ops/lanes_avx2.h), the NEON path (four 4-float registers: AArch64;
// ops/lanes_neon.h) and the portable path (an array the compiler may vectorise;
// ops/lanes_portable.h) perform exactly the same IEEE operations, so results are bit-identical
// across ISA paths, tile shapes and batch sizes (tests/ops/lanes_test.cc pins each path to the
// contract written out in scalar code). This file holds what the paths share and picks one.
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

}  // namespace swift::lanes

// One path per instruction set, each the whole per-lane part of the contract (Vec, Mask, zero,
// load, load_w, fma, add, sub, mul, div, max, load_or, broadcast, store, reduce, exp; exp2 on
// AVX-512) and kVecRegisters, how many Vecs fit the register file (for sizing kernel tiles:
// matmul_panel.cc), in its own file.
#define SWIFT_LANES_PATH_HEADER 1
#if defined(__AVX512F__)
#include "ops/lanes_avx512.h"
#elif defined(SWIFT_LANES_X86)
#include "ops/lanes_avx2.h"
#elif defined(SWIFT_LANES_NEON)
#include "ops/lanes_neon.h"
#else
#include "ops/lanes_portable.h"
#endif
#undef SWIFT_LANES_PATH_HEADER

namespace swift::lanes {

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
