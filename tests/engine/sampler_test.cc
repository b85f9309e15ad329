#include "engine/sampler.h"

#include <gtest/gtest.h>

#include <cmath>

#include "util/check.h"

namespace swift {

TEST(Sampler, GreedyIsArgmaxLowestIndexOnTies) {
  const float l[] = {1.0f, 3.0f, 3.0f, -2.0f};
  EXPECT_EQ(argmax(l, 4), 1);
  Sampler s(SamplingParams{});
  std::vector<int32_t> h;
  EXPECT_EQ(s.pick(l, 4, h), 1);
}

TEST(Sampler, RepetitionPenaltyLikeTransformers) {
  float l[] = {2.0f, -2.0f, 1.0f};
  const int32_t hist[] = {0, 1, 1};
  apply_repetition_penalty(l, 3, hist, 2.0f);
  EXPECT_FLOAT_EQ(l[0], 1.0f);   // positive: divided
  EXPECT_FLOAT_EQ(l[1], -4.0f);  // negative: multiplied, once despite two occurrences
  EXPECT_FLOAT_EQ(l[2], 1.0f);
}

TEST(Sampler, TopKTopPMinPFilter) {
  const float l[] = {3.0f, 2.0f, 1.0f, 0.0f, -1.0f};
  std::vector<float> p;
  SamplingParams sp;
  sp.temperature = 1.0f;
  sp.top_k = 2;
  sampling_distribution(l, 5, sp, p);
  EXPECT_GT(p[0], 0);
  EXPECT_GT(p[1], 0);
  EXPECT_EQ(p[2], 0);
  EXPECT_NEAR(p[0] + p[1], 1.0, 1e-6);
  EXPECT_NEAR(p[0] / p[1], std::exp(1.0), 1e-4);

  sp.top_k = 0;
  sp.top_p = 0.7f;  // softmax probs: .636 .234 .086 .032 .012 -> keep the top two (.636 < .7)
  sampling_distribution(l, 5, sp, p);
  EXPECT_GT(p[1], 0);
  EXPECT_EQ(p[2], 0);

  sp.top_p = 1.0f;
  sp.min_p = 0.1f;  // threshold .0636: keeps .636 .234 .086
  sampling_distribution(l, 5, sp, p);
  EXPECT_GT(p[2], 0);
  EXPECT_EQ(p[3], 0);
}

TEST(Sampler, SeededSamplingIsReproducibleAndFollowsDistribution) {
  const float l[] = {0.0f, std::log(3.0f)};  // p = 1/4, 3/4
  SamplingParams sp;
  sp.temperature = 1.0f;
  sp.seed = 123;
  Sampler a(sp), b(sp);
  std::vector<int32_t> h;
  int ones = 0;
  for (int i = 0; i < 20000; ++i) {
    const int32_t x = a.pick(l, 2, h);
    EXPECT_EQ(x, b.pick(l, 2, h));
    ones += x;
  }
  EXPECT_NEAR(ones / 20000.0, 0.75, 0.015);  // ~5 sigma
}

TEST(Sampler, ValidatesParameters) {
  SamplingParams sp;
  sp.top_p = 0.0f;
  EXPECT_THROW(sp.validate(), Error);
  sp = SamplingParams{};
  sp.temperature = -1.0f;
  EXPECT_THROW(sp.validate(), Error);
}

}  // namespace swift
