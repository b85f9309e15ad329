// Row-wise kernels against scalar references (ops/elementwise.h).
#include "ops/elementwise.h"

#include <gtest/gtest.h>

#include <cmath>
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

}  // namespace
}  // namespace swift
