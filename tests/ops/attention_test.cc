// Attention over explicit slot lists against a naive dense implementation, including GQA,
// a tree-shaped mask and non-contiguous slots.
#include "ops/attention.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

#include "ops/lanes.h"
#include "test_util.h"

#include <algorithm>
#include <cstdio>

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

TEST(Attention, HeadMajorCacheLayoutGivesTheSameBits) {
  // The KV cache stores each head's rows contiguously (model/kv_cache.h); the kernel reads it
  // through kv_row_stride / kv_head_stride. Same keys, other layout: same bits.
  const int64_t n_head = 6, n_kv = 3, hd = 40, n_slots = 37, n_tok = 4;
  auto q = test::random_floats(n_tok * n_head * hd, 11);
  auto k = test::random_floats(n_slots * n_kv * hd, 12);  // [slot, head, hd]
  auto v = test::random_floats(n_slots * n_kv * hd, 13);
  std::vector<float> kh(k.size()), vh(v.size());  // [head, slot, hd]
  for (int64_t s = 0; s < n_slots; ++s)
    for (int64_t h = 0; h < n_kv; ++h)
      for (int64_t e = 0; e < hd; ++e) {
        kh[(h * n_slots + s) * hd + e] = k[(s * n_kv + h) * hd + e];
        vh[(h * n_slots + s) * hd + e] = v[(s * n_kv + h) * hd + e];
      }
  SlotLists vis;
  vis.offsets.push_back(0);
  for (int64_t i = 0; i < n_tok; ++i) {
    for (int32_t s = 0; s < n_slots; s += 1 + static_cast<int32_t>(i)) vis.slots.push_back(s);
    vis.offsets.push_back(static_cast<int64_t>(vis.slots.size()));
  }
  std::vector<float> o1(n_tok * n_head * hd), o2(o1.size());
  ThreadPool pool(2);
  AttentionArgs a;
  a.q = q.data(), a.n_tok = n_tok, a.n_head = n_head, a.n_kv_head = n_kv, a.head_dim = hd, a.scale = 0.2f;
  a.visible = &vis;
  a.k = k.data(), a.v = v.data(), a.out = o1.data();
  attention(a, pool);
  a.k = kh.data(), a.v = vh.data(), a.kv_row_stride = hd, a.kv_head_stride = n_slots * hd, a.out = o2.data();
  attention(a, pool);
  EXPECT_EQ(0, std::memcmp(o1.data(), o2.data(), o1.size() * 4));
}

}  // namespace swift

namespace swift {

TEST(SoftmaxExp, WithinTwoUlpOfStdExpAndSameBitsOnEveryPath) {
  // lanes::exp (ops/lanes.h) replaces std::exp in attention's softmax and in SiLU. Every input
  // in [-87.3, 88.3] on a fine grid (plus the edges) must be within 2 ulp of std::exp, the vector path
  // must equal the scalar path bit for bit (also in masked tails), and inputs below the f32
  // normal range give 0.
  std::vector<float> xs;
  for (float x = 88.3f; x > -87.3f; x -= 0.0007f) xs.push_back(x);
  for (float x : {-0.0f, 0.0f, -1e-30f, 1e-30f, -1e-7f, -0.34657359f, 0.34657359f, -0.6931472f, -1.0f, 1.0f, -50.5f,
                  -87.33f, 88.37f})
    xs.push_back(x);
  int64_t worst = 0;
  for (size_t i = 0; i < xs.size(); i += lanes::kLanes) {
    const int64_t n = std::min<int64_t>(lanes::kLanes, static_cast<int64_t>(xs.size() - i));
    float out[lanes::kLanes];
    const lanes::Mask m = lanes::mask_for(n);
    lanes::store(out, lanes::exp(lanes::load(xs.data() + i, m)), m);
    for (int64_t l = 0; l < n; ++l) {
      const float x = xs[i + l], got = out[l], scalar = lanes::exp_scalar(x), want = std::exp(x);
      ASSERT_EQ(0, std::memcmp(&got, &scalar, 4)) << "x=" << x;
      int32_t a, b;
      std::memcpy(&a, &got, 4);
      std::memcpy(&b, &want, 4);
      worst = std::max<int64_t>(worst, std::abs(static_cast<int64_t>(a) - b));
      ASSERT_LE(std::abs(static_cast<int64_t>(a) - b), 2) << "x=" << x << " got " << got << " std::exp " << want;
    }
  }
  std::printf("[ exp ] worst difference from std::exp: %lld ulp over %zu inputs\n",
              static_cast<long long>(worst), xs.size());
  EXPECT_EQ(lanes::exp_scalar(-88.0f), 0.0f);
  EXPECT_EQ(lanes::exp_scalar(-1000.0f), 0.0f);
  EXPECT_EQ(lanes::exp_scalar(0.0f), 1.0f);
  EXPECT_EQ(lanes::exp_scalar(89.0f), INFINITY);
  EXPECT_TRUE(std::isnan(lanes::exp_scalar(NAN)));
  float special[lanes::kLanes] = {NAN, INFINITY, -INFINITY, 100.0f, -100.0f, 0.0f}, out[lanes::kLanes];
  lanes::store(out, lanes::exp(lanes::load(special, lanes::mask_for(6))), lanes::mask_for(6));
  for (int i = 0; i < 6; ++i) {
    const float s = lanes::exp_scalar(special[i]);
    EXPECT_TRUE(std::memcmp(&out[i], &s, 4) == 0 || (std::isnan(out[i]) && std::isnan(s))) << special[i];
  }
  EXPECT_EQ(out[1], INFINITY);
  EXPECT_EQ(out[2], 0.0f);
}

}  // namespace swift

namespace swift {

TEST(Attention, TokensSharingAContextGiveTheSameBitsAsAlone) {
  // Verification and prefill batches: every token's output must be bit-identical to computing
  // it alone, with a shared context shorter and longer than the 16-key score groups and the
  // 64-key blocks a chunk of tokens shares (or none), tree-shaped tails, head dims with and
  // without a 16-lane tail (64 and 128: a chunk of 8+ queries scores its shared context with
  // keys in lanes, transposed 16 at a time, two such blocks per call while 17+ keys are left;
  // 136: per token), one or two KV heads (chunks of up
  // to 16 tokens, or fewer so every thread has work), on 1-3 threads. Causal lists (a prompt's
  // prefill) make a chunk's first token end its list with the shared context while the others go
  // on: the weighted sums of a shared block run the chunk's tokens together (up to 8 rows of
  // query heads for head dims up to 32, 4 up to 64, 2 beyond), with mixed ends; identical lists
  // (kSame: every token sees the context and the batch's first slot) end together.
  enum Mask { kTree, kCausal, kSame };
  struct Case {
    int64_t hd, n_kv, n_tok;
    int threads;
    Mask mask = kTree;
  };
  for (Case c : {Case{64, 2, 9, 2}, Case{136, 2, 9, 2}, Case{128, 2, 6, 2}, Case{128, 1, 3, 1}, Case{64, 2, 20, 2},
                 Case{64, 1, 20, 3}, Case{64, 2, 35, 1}, Case{64, 2, 37, 2, kCausal}, Case{32, 1, 21, 2, kCausal},
                 Case{24, 2, 19, 1, kCausal}, Case{128, 1, 18, 2, kCausal}, Case{80, 2, 17, 3, kCausal},
                 Case{64, 2, 20, 2, kSame}, Case{32, 1, 19, 1, kSame}, Case{128, 1, 9, 2, kSame}}) {
    for (int32_t prefix : {0, 5, 37, 150, 300}) {
      const int64_t hd = c.hd, n_head = 4, n_kv = c.n_kv, n_tok = c.n_tok, n_slots = prefix + n_tok + 3;
      auto q = test::random_floats(n_tok * n_head * hd, 31);
      auto k = test::random_floats(n_slots * n_kv * hd, 32);
      auto v = test::random_floats(n_slots * n_kv * hd, 33);
      SlotLists vis;
      vis.offsets.push_back(0);
      for (int64_t i = 0; i < n_tok; ++i) {
        for (int32_t s = 0; s < prefix; ++s) vis.slots.push_back(s);
        for (int64_t j = 0; j <= i; ++j)  // kTree: every other batch token skipped by odd tokens
          if (c.mask == kSame ? j == 0 : c.mask == kCausal || i % 2 == 0 || j % 2 == 1 || j == i)
            vis.slots.push_back(static_cast<int32_t>(prefix + j));
        vis.offsets.push_back(static_cast<int64_t>(vis.slots.size()));
      }
      AttentionArgs a;
      a.q = q.data(), a.k = k.data(), a.v = v.data(), a.n_tok = n_tok, a.n_head = n_head, a.n_kv_head = n_kv;
      a.head_dim = hd, a.scale = 0.125f, a.visible = &vis;
      std::vector<float> batch(n_tok * n_head * hd);
      a.out = batch.data();
      ThreadPool pool(c.threads);
      attention(a, pool);
      for (int64_t i = 0; i < n_tok; ++i) {
        SlotLists one;
        one.offsets = {0, vis.offsets[i + 1] - vis.offsets[i]};
        one.slots.assign(vis.slots.begin() + vis.offsets[i], vis.slots.begin() + vis.offsets[i + 1]);
        std::vector<float> alone(n_head * hd);
        AttentionArgs b = a;
        b.q = q.data() + i * n_head * hd, b.n_tok = 1, b.visible = &one, b.out = alone.data();
        attention(b, pool);
        EXPECT_EQ(0, std::memcmp(alone.data(), batch.data() + i * n_head * hd, alone.size() * sizeof(float)))
            << "hd " << hd << " kv heads " << n_kv << " tokens " << n_tok << " threads " << c.threads << " prefix "
            << prefix << " mask " << c.mask << " token " << i;
      }
    }
  }
}

TEST(Attention, HeadsSharingAKvHeadGiveTheSameBitsAsEachHeadAlone) {
  // GQA groups of 2, 4 and 8 score blocks of 16 / G keys against all of the group's queries at
  // once; each head must get exactly the bits it gets as the only head of its KV head (the
  // per-head path), for lists with and without a partial key block and a 16-lane tail.
  ThreadPool pool(2);
  for (int64_t group : {2, 4, 8})
    for (int64_t hd : {64, 40})
      for (int64_t n_slots : {3, 37, 130}) {
        const int64_t n_tok = 3;
        auto q = test::random_floats(n_tok * group * hd, 41);
        auto k = test::random_floats(n_slots * hd, 42);
        auto v = test::random_floats(n_slots * hd, 43);
        SlotLists vis;
        vis.offsets.push_back(0);
        for (int64_t i = 0; i < n_tok; ++i) {
          for (int32_t s = 0; s < n_slots - i; ++s) vis.slots.push_back(s);
          vis.offsets.push_back(static_cast<int64_t>(vis.slots.size()));
        }
        AttentionArgs a;
        a.k = k.data(), a.v = v.data(), a.n_tok = n_tok, a.head_dim = hd, a.scale = 0.125f, a.visible = &vis;
        a.q = q.data(), a.n_head = group, a.n_kv_head = 1;
        std::vector<float> shared(n_tok * group * hd), alone(hd * n_tok);
        a.out = shared.data();
        attention(a, pool);
        for (int64_t h = 0; h < group; ++h) {
          std::vector<float> qh(n_tok * hd);
          for (int64_t t = 0; t < n_tok; ++t) std::copy_n(q.data() + (t * group + h) * hd, hd, qh.data() + t * hd);
          AttentionArgs b = a;
          b.q = qh.data(), b.n_head = 1, b.out = alone.data();
          attention(b, pool);
          for (int64_t t = 0; t < n_tok; ++t)
            ASSERT_EQ(0, std::memcmp(alone.data() + t * hd, shared.data() + (t * group + h) * hd, hd * sizeof(float)))
                << "group " << group << " hd " << hd << " slots " << n_slots << " head " << h << " token " << t;
        }
      }
}

}  // namespace swift
