// The lane contract (ops/lanes.h) on AArch64 NEON. Included by ops/lanes.h only.

#pragma once

#if !defined(SWIFT_LANES_PATH_HEADER)
#error "include ops/lanes.h, which includes the path for the target's instruction set"
#endif

namespace swift::lanes {

constexpr int kVecRegisters = 8;  // 32 128-bit registers, four per Vec

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

}  // namespace swift::lanes
