// The lane contract (ops/lanes.h) in plain C++ (an array of 16 floats the compiler may vectorise):
// the path of builds without AVX2 or NEON, and the definition the SIMD paths must equal. Included
// by ops/lanes.h only.
#pragma once

#if !defined(SWIFT_LANES_PATH_HEADER)
#error "include ops/lanes.h, which includes the path for the target's instruction set"
#endif

namespace swift::lanes {

// Counted as AVX-512 (the compiler decides what the arrays become).
constexpr int kVecRegisters = 32;

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

}  // namespace swift::lanes
