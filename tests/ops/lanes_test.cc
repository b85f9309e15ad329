// The lane contract (ops/lanes.h) on whichever ISA path this build compiles (AVX-512, AVX2,
// NEON, portable C++): every operation must give the bits of the contract written out in plain
// scalar code here, so that every path gives the same bits. (The kernels' own tests compare them
// with references built from these same operations, which a path that changed, say, the
// reduction tree would pass: a NEON reduce in another order passed them all.) And the batched
// horizontal reduction must equal the scalar reduction tree bit for bit: kernels mix the two (16
// sums at a time, the rest one by one) and batch invariance rests on it.
#include "ops/lanes.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "ops/quant.h"

namespace swift::lanes {

TEST(Lanes, Reduce16EqualsReduceBitForBit) {
  std::mt19937 rng(7);
  // Mixed magnitudes and signs make every association order give different bits.
  std::uniform_real_distribution<float> mant(-1.0f, 1.0f);
  std::uniform_int_distribution<int> expo(-20, 20);
  for (int trial = 0; trial < 200; ++trial) {
    alignas(64) float raw[16][16];
    for (auto& row : raw)
      for (float& x : row) x = std::ldexp(mant(rng), expo(rng));
    Vec v[16];
    for (int k = 0; k < 16; ++k) v[k] = load(raw[k], mask_for(16));
    float got[16];
    reduce16(v, got);
    for (int k = 0; k < 16; ++k) {
      const float want = reduce(v[k]);
      ASSERT_EQ(0, std::memcmp(&got[k], &want, sizeof(float))) << "trial " << trial << " vector " << k;
    }
  }
}

namespace {

bool same_bits(float a, float b) { return std::memcmp(&a, &b, sizeof(float)) == 0; }

// The contract's reduction tree: lane l + lane l+8, then + lane l+4, then (0+2) + (1+3).
float contract_reduce(const float* l) {
  float s8[8], s4[4];
  for (int i = 0; i < 8; ++i) s8[i] = l[i] + l[i + 8];
  for (int i = 0; i < 4; ++i) s4[i] = s8[i] + s8[i + 4];
  return (s4[0] + s4[2]) + (s4[1] + s4[3]);
}

std::vector<float> lanes_of(Vec v) {
  std::vector<float> out(kLanes);
  store(out.data(), v, mask_for(kLanes));
  return out;
}

// Values of mixed magnitudes and signs, so that any other association order gives other bits.
std::vector<float> mixed(std::mt19937& rng, int n) {
  std::uniform_real_distribution<float> mant(-1.0f, 1.0f);
  std::uniform_int_distribution<int> expo(-20, 20);
  std::vector<float> v(static_cast<size_t>(n));
  for (float& x : v) x = std::ldexp(mant(rng), expo(rng));
  return v;
}

}  // namespace

TEST(Lanes, EveryOperationGivesTheScalarContractsBits) {
  std::mt19937 rng(11);
  const float nan = std::numeric_limits<float>::quiet_NaN();
  for (int trial = 0; trial < 50; ++trial) {
    std::vector<float> a = mixed(rng, kLanes), b = mixed(rng, kLanes), c = mixed(rng, kLanes);
    if (trial == 0)  // max's rule on NaN and signed zeros: b unless a > b
      a[0] = nan, a[1] = 1.0f, b[1] = nan, a[2] = -0.0f, b[2] = 0.0f, a[3] = 0.0f, b[3] = -0.0f;
    const Vec va = load(a.data(), mask_for(kLanes)), vb = load(b.data(), mask_for(kLanes)),
              vc = load(c.data(), mask_for(kLanes));
    const std::vector<float> f = lanes_of(fma(va, vb, vc)), ad = lanes_of(add(va, vb)), sb = lanes_of(sub(va, vb)),
                             ml = lanes_of(mul(va, vb)), dv = lanes_of(div(va, vb)), mx = lanes_of(max(va, vb)),
                             bc = lanes_of(broadcast(c[5]));
    for (int l = 0; l < kLanes; ++l) {
      ASSERT_TRUE(same_bits(f[l], std::fma(a[l], b[l], c[l]))) << "fma, lane " << l;
      ASSERT_TRUE(same_bits(ad[l], a[l] + b[l])) << "add, lane " << l;
      ASSERT_TRUE(same_bits(sb[l], a[l] - b[l])) << "sub, lane " << l;
      ASSERT_TRUE(same_bits(ml[l], a[l] * b[l])) << "mul, lane " << l;
      ASSERT_TRUE(same_bits(dv[l], a[l] / b[l])) << "div, lane " << l;
      ASSERT_TRUE(same_bits(mx[l], a[l] > b[l] ? a[l] : b[l])) << "max, lane " << l << ": " << a[l] << ", " << b[l];
      ASSERT_TRUE(same_bits(bc[l], c[5])) << "broadcast, lane " << l;
    }
    if (trial > 0) {
      ASSERT_TRUE(same_bits(reduce(va), contract_reduce(a.data()))) << "reduce, trial " << trial;
    }
  }
}

TEST(Lanes, MaskedLoadsAndStoresTouchOnlyTheirLanes) {
  std::mt19937 rng(12);
  const std::vector<float> src = mixed(rng, kLanes);
  for (int m = 0; m <= kLanes; ++m) {
    const Mask mask = mask_for(m);
    const std::vector<float> got = lanes_of(load(src.data(), mask)),
                             got_or = lanes_of(load_or(src.data(), mask, -7.5f));
    std::vector<float> dst(kLanes + 1, 99.0f);
    store(dst.data(), load(src.data(), mask_for(kLanes)), mask);
    for (int l = 0; l < kLanes; ++l) {
      ASSERT_TRUE(same_bits(got[l], l < m ? src[l] : 0.0f)) << "load, " << m << " lanes, lane " << l;
      ASSERT_TRUE(same_bits(got_or[l], l < m ? src[l] : -7.5f)) << "load_or, " << m << " lanes, lane " << l;
      ASSERT_TRUE(same_bits(dst[l], l < m ? src[l] : 99.0f)) << "store, " << m << " lanes, lane " << l;
    }
    ASSERT_EQ(dst[kLanes], 99.0f);
  }
  EXPECT_EQ(mask_for(100), mask_for(kLanes));
}

TEST(Lanes, DotAccumulatesColumnCInLaneCMod16ThenReducesByTheTree) {
  std::mt19937 rng(13);
  for (int n : {1, 5, 15, 16, 17, 31, 33, 64, 67, 130}) {
    const std::vector<float> a = mixed(rng, n), b = mixed(rng, n);
    float acc[kLanes] = {};
    for (int c = 0; c < n; ++c) acc[c % kLanes] = std::fma(a[c], b[c], acc[c % kLanes]);
    ASSERT_TRUE(same_bits(dot(a.data(), b.data(), n), contract_reduce(acc))) << "n=" << n;
  }
}

// load_w<DT> gives the reference dequantization (weight_at, which for Q4_0 and Q6_K runs
// dequantize_row on the whole block), in whole and masked 16s, at every 16 of two blocks.
template <DType DT>
void expect_weight_loads_match_the_reference(std::mt19937& rng) {
  const int64_t n = 2 * std::max<int64_t>(dtype_block(DT), 32);
  const std::vector<float> x = mixed(rng, static_cast<int>(n));
  std::vector<uint8_t> row(static_cast<size_t>(row_bytes(DT, n)));
  quantize_row(DT, x.data(), n, row.data());
  for (int64_t idx = 0; idx < n; idx += kLanes)
    for (int m : {kLanes, 9, 1}) {
      const std::vector<float> got = lanes_of(load_w<DT>(row.data(), idx, mask_for(m)));
      for (int l = 0; l < kLanes; ++l) {
        const float want = l < m ? weight_at<DT>(row.data(), idx + l) : 0.0f;
        ASSERT_TRUE(same_bits(got[l], want))
            << dtype_name(DT) << " weight " << idx + l << " (" << m << " lanes): " << got[l] << " vs " << want;
      }
    }
}

TEST(Lanes, WeightLoadsGiveTheReferenceDequantizationOfEveryType) {
  std::mt19937 rng(14);
  expect_weight_loads_match_the_reference<DType::kF32>(rng);
  expect_weight_loads_match_the_reference<DType::kBF16>(rng);
  expect_weight_loads_match_the_reference<DType::kF16>(rng);
  expect_weight_loads_match_the_reference<DType::kQ8_0>(rng);
  expect_weight_loads_match_the_reference<DType::kQ4_0>(rng);
  expect_weight_loads_match_the_reference<DType::kQ6_K>(rng);
}

}  // namespace swift::lanes
