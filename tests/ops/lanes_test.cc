// The batched horizontal reduction must equal the scalar reduction tree bit for bit: kernels
// mix the two (16 sums at a time, the rest one by one) and batch invariance rests on it.
#include "ops/lanes.h"

#include <gtest/gtest.h>

#include <cstring>
#include <random>

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

}  // namespace swift::lanes
