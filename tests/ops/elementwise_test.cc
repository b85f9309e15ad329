// Row-wise kernels against scalar references (ops/elementwise.h).
#include "ops/elementwise.h"

#include "ops/lanes.h"
#include "ops/rope.h"
#include "util/half.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

namespace swift {
namespace {

// The loop greedy decoding used before the vector kernel; argmax_first must return its answer.
int64_t argmax_reference(const float* x, int64_t n) {
  int64_t best = 0;
  for (int64_t i = 1; i < n; ++i)
    if (x[i] > x[best]) best = i;
  return best;
}

TEST(Argmax, MatchesTheScalarLoopOnOddSizesWithTiesAnywhere) {
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> u(-30.0f, 30.0f);
  for (int64_t n : {1, 2, 15, 16, 17, 63, 64, 65, 127, 129, 255, 1000, 7999, 8000, 8001, 32003}) {
    for (int trial = 0; trial < 20; ++trial) {
      std::vector<float> x(n);
      for (float& v : x) v = u(rng);
      if (trial % 3 == 1 && n > 1) {  // tie for the maximum: the first one must win
        const int64_t a = rng() % n, b = rng() % n;
        x[a] = x[b] = 40.0f;
      }
      if (trial % 3 == 2) x[n - 1] = 50.0f;  // maximum in the masked tail
      if (trial == 5) x[0] = 60.0f;          // maximum first
      ASSERT_EQ(argmax_first(x.data(), n), argmax_reference(x.data(), n)) << "n " << n << " trial " << trial;
    }
  }
}

TEST(Argmax, NonFiniteValuesFollowTheScalarRule) {
  const float nan = std::numeric_limits<float>::quiet_NaN(), inf = std::numeric_limits<float>::infinity();
  std::vector<float> x(100, -inf);
  EXPECT_EQ(argmax_first(x.data(), 100), 0);  // all equal: the first
  x[70] = 1.0f;
  x[20] = nan;  // NaN never wins after a number
  x[90] = nan;
  EXPECT_EQ(argmax_first(x.data(), 100), argmax_reference(x.data(), 100));
  EXPECT_EQ(argmax_first(x.data(), 100), 70);
  x[0] = nan;  // ... but a NaN first stays (x[i] > NaN is false)
  EXPECT_EQ(argmax_first(x.data(), 100), 0);
  std::vector<float> z = {-0.0f, 0.0f, -1.0f, 0.0f};  // equal zeros: the first
  EXPECT_EQ(argmax_first(z.data(), 4), argmax_reference(z.data(), 4));
  std::vector<float> p = {-5.0f, inf, 3.0f, inf};
  EXPECT_EQ(argmax_first(p.data(), 4), 1);
}

// The fused bf16 outputs must be their f32 values rounded to nearest even, bit for bit (rmsnorm's:
// the plain kernel's; the SwiGLU gate's: its formula with lanes::exp2_scalar), on odd widths
// (masked tails, the zero pad column) and with or without the f32 rows.
TEST(RowKernelsBf16, EqualThePlainKernelsRounded) {
  std::mt19937 rng(11);
  std::normal_distribution<float> nd(0.0f, 3.0f);
  for (int64_t n : {1, 2, 15, 16, 17, 33, 255, 256, 257, 768, 769}) {
    const int64_t rows = 3, w16 = (n + 1) / 2 * 2;
    std::vector<float> x(rows * n), w(n), u(rows * n);
    for (float& v : x) v = nd(rng);
    for (float& v : w) v = nd(rng);
    for (float& v : u) v = nd(rng);
    x[0] = 90.0f, u[n - 1] = -95.0f;  // SiLU past the exp clamps
    std::vector<float> ref(rows * n), y(rows * n);
    rmsnorm(x.data(), w.data(), rows, n, 1e-5f, ref.data());
    for (const bool with_f32 : {true, false}) {
      std::vector<uint16_t> y16(rows * w16, 0xFFFF);
      std::fill(y.begin(), y.end(), -1.0f);
      rmsnorm_bf16(x.data(), w.data(), rows, n, 1e-5f, with_f32 ? y.data() : nullptr, y16.data());
      for (int64_t r = 0; r < rows; ++r) {
        for (int64_t i = 0; i < n; ++i) {
          ASSERT_EQ(y16[r * w16 + i], f32_to_bf16(ref[r * n + i])) << "rmsnorm n " << n << " row " << r << " i " << i;
          if (with_f32) {
            ASSERT_EQ(std::memcmp(&y[r * n + i], &ref[r * n + i], 4), 0) << "rmsnorm f32 n " << n;
          }
        }
        if (n % 2) {
          EXPECT_EQ(y16[r * w16 + n], 0) << "pad column, n " << n;
        }
      }
      if (!with_f32) {
        EXPECT_EQ(y[0], -1.0f) << "f32 rows written though not asked for";
      }
    }
    // silu_mul_bf16: its formula written out with the scalar exp2 (the same IEEE operations).
    std::vector<float> sref(n), s(n, -1.0f);
    std::vector<uint16_t> s16(w16, 0xFFFF);
    for (int64_t i = 0; i < n; ++i) sref[i] = (x[i] / (1.0f + lanes::exp2_scalar(x[i] * -lanes::kLog2e))) * u[i];
    silu_mul_bf16(x.data(), u.data(), n, s.data(), s16.data());
    for (int64_t i = 0; i < n; ++i) {
      ASSERT_EQ(std::memcmp(&s[i], &sref[i], 4), 0) << "silu f32 n " << n << " i " << i;
      ASSERT_EQ(s16[i], f32_to_bf16(sref[i])) << "silu n " << n << " i " << i;
    }
    if (n % 2) {
      EXPECT_EQ(s16[n], 0);
    }
    std::fill(s16.begin(), s16.end(), 0xFFFF);
    silu_mul_bf16(x.data(), u.data(), n, nullptr, s16.data());
    for (int64_t i = 0; i < n; ++i) ASSERT_EQ(s16[i], f32_to_bf16(sref[i])) << "silu (bf16 only) n " << n;
  }
}

// lanes::exp2 (softmax weights and SiLU of --math bf16): the vector path equals the scalar one bit
// for bit, and both are within 2e-7 relative of std::exp2 over the normal range; below it the
// result is a correctly rounded denormal or 0, and the clamps hold at both ends.
TEST(Exp2, WithinTwoTenMillionthsOfStdExp2AndSameBitsOnEveryPath) {
  std::vector<float> ts;
  for (float t = 130.0f; t > -160.0f; t -= 0.00077f) ts.push_back(t);
  for (float t : {-0.0f, 0.0f, 0.5f, -0.5f, 1e-30f, -1e-30f, 126.0f, 125.999f, -126.0f, -149.0f, -149.5f, -150.0f,
                  -151.0f, 1000.0f, -1000.0f})
    ts.push_back(t);
  double worst = 0;
  for (size_t i = 0; i < ts.size(); i += lanes::kLanes) {
    const int64_t n = std::min<int64_t>(lanes::kLanes, static_cast<int64_t>(ts.size() - i));
    const lanes::Mask m = lanes::mask_for(n);
    float out[lanes::kLanes], out_np[lanes::kLanes];
    lanes::store(out, lanes::exp2(lanes::load(ts.data() + i, m)), m);
    lanes::store(out_np, lanes::exp2<true>(lanes::load(ts.data() + i, m)), m);
    for (int64_t l = 0; l < n; ++l) {
      const float t = ts[i + l], scalar = lanes::exp2_scalar(t);
      ASSERT_EQ(0, std::memcmp(&out[l], &scalar, 4)) << "t=" << t;
      if (t <= 0.0f) {  // the variant without the upper clamp agrees where it applies
        ASSERT_EQ(0, std::memcmp(&out_np[l], &scalar, 4)) << "t=" << t;
        const float np = lanes::exp2_scalar(t, true);
        ASSERT_EQ(0, std::memcmp(&np, &scalar, 4)) << "t=" << t;
      }
      const double want = std::exp2(static_cast<double>(std::clamp(t, lanes::kExp2Min, lanes::kExp2Max)));
      if (t >= -126.0f) {
        const double rel = std::fabs(out[l] - want) / want;
        worst = std::max(worst, rel);
        ASSERT_LE(rel, 2e-7) << "t=" << t << " got " << out[l] << " want " << want;
      } else {  // denormal results: within one step of the smallest denormal (2^-149)
        ASSERT_LE(std::fabs(out[l] - want), std::ldexp(1.0, -149)) << "t=" << t;
      }
    }
  }
  std::printf("[ exp2 ] worst relative difference from std::exp2: %.3g over %zu inputs\n", worst, ts.size());
  EXPECT_EQ(lanes::exp2_scalar(-150.0f), 0.0f);
  EXPECT_EQ(lanes::exp2_scalar(-1000.0f), 0.0f);
  EXPECT_EQ(lanes::exp2_scalar(0.0f), 1.0f);
  EXPECT_EQ(lanes::exp2_scalar(10.0f), 1024.0f);
  EXPECT_EQ(lanes::exp2_scalar(1000.0f), std::ldexp(1.0f, 126));  // clamped: 1 + 2^t stays finite
}

// silu_mul_bf16's SiLU against the exact one (double): within 1e-6 relative for |g| < 16 (where
// the activations of a trained model live) and 5e-6 down to g = -87 (the rounding of -g log2 e
// in f32 grows with |g|), and it keeps its sign and the zero crossing.
TEST(SiluBf16, CloseToTheExactSiluOverTheWholeRange) {
  std::vector<float> g;
  for (float v = -87.0f; v < 88.0f; v += 0.00091f) g.push_back(v);
  for (float v : {0.0f, -0.0f, 1e-20f, -1e-20f, 1e-3f, -1e-3f}) g.push_back(v);
  std::vector<float> ones(g.size(), 1.0f), out(g.size());
  std::vector<uint16_t> out16(g.size() + 1);
  silu_mul_bf16(g.data(), ones.data(), static_cast<int64_t>(g.size()), out.data(), out16.data());
  double worst_small = 0, worst = 0;
  for (size_t i = 0; i < g.size(); ++i) {
    const double exact = g[i] / (1.0 + std::exp(-static_cast<double>(g[i])));
    if (exact == 0.0) {
      ASSERT_EQ(out[i], 0.0f) << "g=" << g[i];
      continue;
    }
    const double rel = std::fabs(out[i] - exact) / std::fabs(exact);
    if (std::fabs(g[i]) < 16.0f) worst_small = std::max(worst_small, rel);
    worst = std::max(worst, rel);
    ASSERT_LE(rel, std::fabs(g[i]) < 16.0f ? 1e-6 : 5e-6) << "g=" << g[i] << " got " << out[i] << " exact " << exact;
  }
  std::printf("[ silu ] worst relative difference from the exact SiLU: %.3g for |g| < 16, %.3g over [-87, 88]\n",
              worst_small, worst);
}

// Rotary read from strided rows (the Q or K part of fused Q|K|V rows) equals copying the rows
// out and rotating in place, bit for bit.
TEST(Rope, EqualsTheScalarFormulaBitForBit) {
  // The AVX-512 body (16 pairs per step) and the scalar tail against the formula written out:
  // v[i] = x1 c - x2 s, v[i + half] = x2 c + x1 s, each product rounded (no fma). Head dims with
  // half = 16, 32, 64 (vector only), 8 and 40 and 50 (tail only, vector then tail).
  std::mt19937 rng(11);
  std::normal_distribution<float> nd(0.0f, 3.0f);
  for (int64_t hd : {32, 64, 128, 16, 80, 100}) {
    const int64_t n_tok = 3, n_heads = 2, half = hd / 2;
    const std::vector<int32_t> pos = {0, 17, 1000};
    RopeParams p;
    p.rotary_dim = hd;
    RopeTable table;
    rope_table(pos.data(), n_tok, rope_inv_freq(p, 1024), table);
    std::vector<float> x(n_tok * n_heads * hd);
    for (float& v : x) v = nd(rng);
    std::vector<float> want(x.size()), got = x;
    for (int64_t t = 0; t < n_tok; ++t)
      for (int64_t h = 0; h < n_heads; ++h)
        for (int64_t i = 0; i < half; ++i) {
          const float* r = &x[(t * n_heads + h) * hd];
          const volatile float c = table.cos[t * half + i], sn = table.sin[t * half + i];
          const volatile float a = r[i] * c, b = r[i + half] * sn, d = r[i + half] * c, e = r[i] * sn;
          want[(t * n_heads + h) * hd + i] = a - b;
          want[(t * n_heads + h) * hd + i + half] = d + e;
        }
    rope_apply(got.data(), n_tok, n_heads, hd, table);
    ASSERT_EQ(0, std::memcmp(want.data(), got.data(), want.size() * sizeof(float))) << "head dim " << hd;
  }
}

TEST(Rope, FromStridedRowsEqualsCopyThenInPlace) {
  std::mt19937 rng(5);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  const int64_t n_tok = 5, n_heads = 3, hd = 64, stride = n_heads * hd + 77;
  RopeTable table;
  const std::vector<int32_t> pos = {0, 1, 7, 300, 1023};
  std::vector<float> src(n_tok * stride);
  for (float& v : src) v = nd(rng);
  std::vector<float> ref(n_tok * n_heads * hd), out(ref.size());
  for (int64_t t = 0; t < n_tok; ++t)
    std::copy_n(src.begin() + t * stride, n_heads * hd, ref.begin() + t * n_heads * hd);
  RopeParams p;
  p.rotary_dim = hd;
  rope_table(pos.data(), n_tok, rope_inv_freq(p, 1024), table);
  rope_apply(ref.data(), n_tok, n_heads, hd, table);
  rope_apply_to(src.data(), stride, out.data(), n_heads * hd, n_tok, n_heads, hd, table);
  ASSERT_EQ(std::memcmp(ref.data(), out.data(), ref.size() * 4), 0);
  EXPECT_NE(std::memcmp(ref.data() + n_heads * hd, src.data() + stride, n_heads * hd * 4), 0) << "nothing rotated";
  // Head 1 alone into rows of another stride (attention's per-KV-head preparation): the same
  // values, and nothing else of the destination written.
  const int64_t dst_stride = 2 * hd + 5;
  std::vector<float> one(n_tok * dst_stride, -7.0f);
  rope_apply_to(src.data() + hd, stride, one.data() + 3, dst_stride, n_tok, 1, hd, table);
  for (int64_t t = 0; t < n_tok; ++t) {
    ASSERT_EQ(std::memcmp(ref.data() + (t * n_heads + 1) * hd, one.data() + t * dst_stride + 3, hd * 4), 0) << t;
    for (int64_t c = 0; c < dst_stride; ++c) {
      if (c < 3 || c >= 3 + hd) {
        ASSERT_EQ(one[t * dst_stride + c], -7.0f) << t << " " << c;
      }
    }
  }
}

}  // namespace
}  // namespace swift
