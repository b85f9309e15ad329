#include "ops/elementwise.h"

#include <cmath>

#include "ops/lanes.h"
#include "util/half.h"

namespace swift {

namespace {

// 1 / sqrt(mean(x^2) + eps) of one row, as HF computes it in f32 from the mean.
float rms_inv(const float* xr, int64_t n, float eps) {
  // Squares are exact in double and their sum is good to ~1e-16, so the f32 mean is the same
  // for practically any order; 16 partial sums (element i into i % 16, then a fixed tree) let
  // the compiler vectorise what one serial double chain made latency-bound (~0.3 us per
  // 256-wide row: 7% of a 16-token verification pass).
  double part[16] = {};
  int64_t i = 0;
  for (; i + 16 <= n; i += 16)
    for (int l = 0; l < 16; ++l) part[l] += static_cast<double>(xr[i + l]) * xr[i + l];
  for (int l = 0; i < n; ++i, ++l) part[l] += static_cast<double>(xr[i]) * xr[i];
  for (int w = 8; w >= 1; w /= 2)
    for (int l = 0; l < w; ++l) part[l] += part[l + w];
  const double ss = part[0];
  return 1.0f / std::sqrt(static_cast<float>(ss / static_cast<double>(n)) + eps);
}

// silu(g) * u of 16 lanes (SiLU as x / (1 + e^-x), lanes::exp; see silu_mul).
inline lanes::Vec silu_lanes(lanes::Vec gv, lanes::Vec uv) {
  using namespace lanes;
  return mul(div(gv, add(broadcast(1.0f), lanes::exp(sub(zero(), gv)))), uv);
}

// Stores the first `live` (<= 16) of 16 lanes as bf16, round to nearest even.
inline void store_bf16(uint16_t* dst, lanes::Vec v, int64_t live) {
#if defined(__AVX512BF16__) && defined(__AVX512F__)
  const __m256bh h = _mm512_cvtneps_pbh(v);
  _mm256_mask_storeu_epi16(dst, lanes::mask_for(live), reinterpret_cast<const __m256i&>(h));
#else
  float tmp[lanes::kLanes];
  lanes::store(tmp, v, lanes::mask_for(lanes::kLanes));
  for (int64_t l = 0; l < live && l < lanes::kLanes; ++l) dst[l] = f32_to_bf16(tmp[l]);
#endif
}

}  // namespace

void rmsnorm(const float* x, const float* w, int64_t n_rows, int64_t n, float eps, float* y) {
  for (int64_t r = 0; r < n_rows; ++r) {
    const float* xr = x + r * n;
    float* yr = y + r * n;
    const float inv = rms_inv(xr, n, eps);
    for (int64_t i = 0; i < n; ++i) yr[i] = w[i] * (xr[i] * inv);
  }
}

void rmsnorm_bf16(const float* x, const float* w, int64_t n_rows, int64_t n, float eps, float* y, uint16_t* y16) {
  using namespace lanes;
  const int64_t w16 = (n + 1) / 2 * 2;
  for (int64_t r = 0; r < n_rows; ++r) {
    const float* xr = x + r * n;
    const Vec inv = broadcast(rms_inv(xr, n, eps));
    for (int64_t i = 0; i < n; i += kLanes) {
      const Mask m = mask_for(n - i);
      const Vec v = mul(load(w + i, m), mul(load(xr + i, m), inv));
      if (y) store(y + r * n + i, v, m);
      store_bf16(y16 + r * w16 + i, v, n - i);
    }
    if (n % 2) y16[r * w16 + n] = 0;
  }
}

void silu_mul_bf16(const float* g, const float* u, int64_t n, float* out, uint16_t* out16) {
  using namespace lanes;
  for (int64_t i = 0; i < n; i += kLanes) {
    const Mask m = mask_for(n - i);
    const Vec v = silu_mul_bf16_lanes(load(g + i, m), load(u + i, m));  // e^-g as 2^(-g log2 e)
    if (out) store(out + i, v, m);
    store_bf16(out16 + i, v, n - i);
  }
  if (n % 2) out16[n] = 0;
}

void silu_mul(const float* g, const float* u, int64_t n, float* out) {
  // (g / (1 + e^-g)) * u, 16 at a time with lanes::exp (a scalar std::exp per element was ~4% of
  // a verification pass); element-wise, so batch size and position never change a result.
  using namespace lanes;
  for (int64_t i = 0; i < n; i += kLanes) {
    const Mask m = mask_for(n - i);
    store(out + i, silu_lanes(load(g + i, m), load(u + i, m)), m);
  }
}

void add_inplace(float* x, const float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) x[i] += y[i];
}

void softmax(float* x, int64_t n) {
  float mx = x[0];
  for (int64_t i = 1; i < n; ++i) mx = x[i] > mx ? x[i] : mx;
  double sum = 0.0;
  for (int64_t i = 0; i < n; ++i) {
    x[i] = std::exp(x[i] - mx);
    sum += x[i];
  }
  const float inv = static_cast<float>(1.0 / sum);
  for (int64_t i = 0; i < n; ++i) x[i] *= inv;
}

int64_t argmax_first(const float* x, int64_t n) {
  using namespace lanes;
  if (n <= 1 || std::isnan(x[0])) return 0;
  // vmaxps(v, m) is m when v is NaN: starting from x[0] (not NaN), NaNs never enter the maximum.
  // Masked-off tail lanes read x[0], which cannot change it. Four chains hide the max latency.
  const Vec first = broadcast(x[0]);
  Vec m[4] = {first, first, first, first};
  int64_t i = 0;
  for (; i + 4 * kLanes <= n; i += 4 * kLanes)
    for (int k = 0; k < 4; ++k) m[k] = lanes::max(load(x + i + k * kLanes, mask_for(kLanes)), m[k]);
  for (; i < n; i += kLanes) m[0] = lanes::max(load_or(x + i, mask_for(n - i), x[0]), m[0]);
  float lane[kLanes];
  store(lane, lanes::max(lanes::max(m[0], m[1]), lanes::max(m[2], m[3])), mask_for(kLanes));
  float best = lane[0];
  for (float v : lane) best = v > best ? v : best;
  // The first element equal to the maximum (== also matches -0 against +0, as the scalar loop
  // keeps the first of equal zeros). Blocks of 64 are tested without branches, then scanned.
  constexpr int64_t kBlock = 64;
  for (int64_t b = 0; b < n; b += kBlock) {
    const int64_t e = b + kBlock < n ? b + kBlock : n;
    bool any = false;
    for (int64_t j = b; j < e; ++j) any |= x[j] == best;
    if (!any) continue;
    for (int64_t j = b; j < e; ++j)
      if (x[j] == best) return j;
  }
  return 0;  // unreachable: the maximum is one of the elements
}

}  // namespace swift
