// Attention over explicit slot lists against a naive dense implementation, including GQA,
// a tree-shaped mask and non-contiguous slots.
#include "ops/attention.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

#include "test_util.h"

namespace swift {

// (head_dim, slots): head dims with and without a 16-lane tail and beyond 8 blocks (weighted
// sums run 8 blocks at a time), lists shorter and longer than the 16-key score groups.
class AttentionShapes : public ::testing::TestWithParam<std::pair<int64_t, int64_t>> {};

TEST_P(AttentionShapes, MatchesNaiveWithTreeMaskAndGqa) {
  const int64_t n_head = 6, n_kv = 2, hd = GetParam().first, n_slots = GetParam().second, n_tok = 5;
  auto q = test::random_floats(n_tok * n_head * hd, 1);
  auto k = test::random_floats(n_slots * n_kv * hd, 2);
  auto v = test::random_floats(n_slots * n_kv * hd, 3);
  // Query i sees a prefix of 7 slots and an arbitrary subset of slots 10..22.
  SlotLists vis;
  vis.offsets.push_back(0);
  for (int64_t i = 0; i < n_tok; ++i) {
    for (int32_t s = 0; s < 7; ++s) vis.slots.push_back(s);
    for (int32_t s = 10; s < n_slots; s += 1 + static_cast<int32_t>(i)) vis.slots.push_back(s);
    vis.offsets.push_back(static_cast<int64_t>(vis.slots.size()));
  }
  std::vector<float> out(n_tok * n_head * hd);
  AttentionArgs a;
  a.q = q.data(), a.k = k.data(), a.v = v.data(), a.n_tok = n_tok, a.n_head = n_head, a.n_kv_head = n_kv;
  a.head_dim = hd, a.scale = 1.0f / std::sqrt(static_cast<float>(hd)), a.visible = &vis, a.out = out.data();
  ThreadPool pool(2);
  attention(a, pool);
  for (int64_t t = 0; t < n_tok; ++t)
    for (int64_t h = 0; h < n_head; ++h) {
      const int64_t kvh = h / (n_head / n_kv);
      std::vector<double> s;
      for (int64_t j = vis.offsets[t]; j < vis.offsets[t + 1]; ++j) {
        double d = 0;
        for (int64_t e = 0; e < hd; ++e) d += q[(t * n_head + h) * hd + e] * k[(vis.slots[j] * n_kv + kvh) * hd + e];
        s.push_back(d * a.scale);
      }
      double mx = -1e300, sum = 0;
      for (double x : s) mx = std::max(mx, x);
      for (double& x : s) sum += (x = std::exp(x - mx));
      for (int64_t e = 0; e < hd; ++e) {
        double o = 0;
        for (size_t j = 0; j < s.size(); ++j) o += s[j] / sum * v[(vis.slots[vis.offsets[t] + j] * n_kv + kvh) * hd + e];
        EXPECT_NEAR(out[(t * n_head + h) * hd + e], o, 1e-5) << t << " " << h << " " << e;
      }
    }
}

INSTANTIATE_TEST_SUITE_P(Shapes, AttentionShapes,
                         ::testing::Values(std::pair<int64_t, int64_t>{10, 23}, std::pair<int64_t, int64_t>{64, 61},
                                           std::pair<int64_t, int64_t>{80, 40}, std::pair<int64_t, int64_t>{136, 90},
                                           std::pair<int64_t, int64_t>{128, 16}));

TEST(Attention, OutputDependsOnlyOnVisibleKeysInOrder) {
  // Same visible keys in the same order at different slots and batch positions give the same
  // bits: this is what makes tree verification equal to plain decoding.
  const int64_t n_head = 4, n_kv = 2, hd = 8;
  auto q = test::random_floats(n_head * hd, 5);
  auto kv_rows = test::random_floats(9 * n_kv * hd, 6);
  std::vector<float> k1(20 * n_kv * hd, 0.f), k2(k1.size(), 0.f);
  // Layout 1: keys in slots 0..8. Layout 2: keys in slots 3,4,5,10,11,12,17,18,19.
  const int32_t l2[] = {3, 4, 5, 10, 11, 12, 17, 18, 19};
  for (int r = 0; r < 9; ++r) {
    std::memcpy(&k1[r * n_kv * hd], &kv_rows[r * n_kv * hd], n_kv * hd * 4);
    std::memcpy(&k2[l2[r] * n_kv * hd], &kv_rows[r * n_kv * hd], n_kv * hd * 4);
  }
  SlotLists v1{{0, 9}, {0, 1, 2, 3, 4, 5, 6, 7, 8}}, v2{{0, 9}, {3, 4, 5, 10, 11, 12, 17, 18, 19}};
  std::vector<float> o1(n_head * hd), o2(n_head * hd);
  ThreadPool pool(1);
  AttentionArgs a;
  a.q = q.data(), a.n_tok = 1, a.n_head = n_head, a.n_kv_head = n_kv, a.head_dim = hd, a.scale = 0.3f;
  a.k = a.v = k1.data(), a.visible = &v1, a.out = o1.data();
  attention(a, pool);
  a.k = a.v = k2.data(), a.visible = &v2, a.out = o2.data();
  attention(a, pool);
  EXPECT_EQ(0, std::memcmp(o1.data(), o2.data(), o1.size() * 4));
}

}  // namespace swift
