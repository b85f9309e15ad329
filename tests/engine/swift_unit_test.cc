// SWIFT building blocks without a model: tree batches and masks, path acceptance, KV
// compaction, the GP/UCB suggestion, the layer search, the layer cache.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "engine/swift/gaussian_process.h"
#include "engine/swift/layer_cache.h"
#include "engine/swift/layer_search.h"
#include "engine/swift/plan_store.h"
#include "engine/swift/token_tree.h"
#include "engine/swift/tree_acceptance.h"
#include "model/kv_cache.h"
#include "ops/attention.h"
#include "util/check.h"

namespace swift {

namespace {

// root(10) -> a(11, spine) -> c(13, spine) -> d(14, spine)
//          -> b(12)           -> e(15)
TokenTree sample_tree() {
  TokenTree t;
  t.reset(10);
  const int32_t a = t.add(0, 11, true);
  t.add(0, 12, false);
  const int32_t c = t.add(a, 13, true);
  t.add(a, 15, false);
  t.add(c, 14, true);
  return t;
}

}  // namespace

TEST(TokenTree, VerifyBatchSeesContextAndAncestorsOnly) {
  const TokenTree t = sample_tree();
  const ForwardBatch b = t.verify_batch(100);
  ASSERT_EQ(b.tokens, (std::vector<int32_t>{10, 11, 12, 13, 15, 14}));
  EXPECT_EQ(b.positions, (std::vector<int32_t>{100, 101, 101, 102, 102, 103}));
  EXPECT_EQ(b.slots, (std::vector<int32_t>{100, 101, 102, 103, 104, 105}));
  EXPECT_EQ(b.n_prefix, 100);
  const int n = 6;
  // Rows: which batch nodes each node sees (itself and its ancestors).
  const std::vector<std::vector<int>> want = {{0}, {0, 1}, {0, 2}, {0, 1, 3}, {0, 1, 4}, {0, 1, 3, 5}};
  for (int i = 0; i < n; ++i)
    for (int j = 0; j < n; ++j) {
      const bool vis = std::find(want[i].begin(), want[i].end(), j) != want[i].end();
      EXPECT_EQ(b.mask[i * n + j] != 0, vis) << i << "," << j;
    }
  EXPECT_EQ(b.logit_rows.size(), 6u);
}

TEST(TokenTree, GreedyAcceptanceFollowsTargetThroughSiblings) {
  const TokenTree t = sample_tree();
  // Target says: after root 11, after a 15 (a sibling leaf), after e 99.
  auto a1 = accept_greedy(t, [](int32_t node) { return node == 0 ? 11 : node == 1 ? 15 : 99; });
  EXPECT_EQ(a1.path, (std::vector<int32_t>{1, 4}));
  EXPECT_EQ(a1.bonus, 99);
  // Full spine accepted, bonus after the last node.
  auto a2 = accept_greedy(t, [](int32_t node) { return node == 0 ? 11 : node == 1 ? 13 : node == 3 ? 14 : 7; });
  EXPECT_EQ(a2.path, (std::vector<int32_t>{1, 3, 5}));
  EXPECT_EQ(a2.bonus, 7);
  // Nothing accepted: the bonus is the target's own token.
  auto a3 = accept_greedy(t, [](int32_t) { return 42; });
  EXPECT_TRUE(a3.path.empty());
  EXPECT_EQ(a3.bonus, 42);
}

TEST(TokenTree, CompactionMovesOnlyAcceptedNodes) {
  ModelConfig cfg;
  cfg.n_layer = 2;
  cfg.n_kv_head = 1;
  cfg.head_dim = 2;
  KvCache cache(cfg, 16);
  for (int l = 0; l < 2; ++l)
    for (int s = 0; s < 16; ++s) {
      cache.k(l)[s * 2] = 100.0f * l + s;
      cache.v(l)[s * 2] = -100.0f * l - s;
      cache.set_slot_pos(s, s);
    }
  const TokenTree t = sample_tree();
  // Accept a (node 1, slot 5+1) then e (node 4, slot 5+4): e moves to slot 5+2.
  TokenTree::compact(cache, 5, {1, 4}, t.nodes());
  for (int l = 0; l < 2; ++l) {
    EXPECT_EQ(cache.k(l)[6 * 2], 100.0f * l + 6);  // node 1 already in place
    EXPECT_EQ(cache.k(l)[7 * 2], 100.0f * l + 9);  // node 4 moved from slot 9
    EXPECT_EQ(cache.v(l)[7 * 2], -100.0f * l - 9);
    EXPECT_EQ(cache.k(l)[4 * 2], 100.0f * l + 4);  // committed slots untouched
  }
}

TEST(KvCache, StoreAndMoveKeepEachHeadsRowsContiguous) {
  // Layout [n_layer, n_kv_head, n_slots, head_dim] (kv_cache.h): store() scatters a token's
  // heads into their head blocks, move_slot() moves every head of every layer.
  ModelConfig cfg;
  cfg.n_layer = 2;
  cfg.n_kv_head = 3;
  cfg.head_dim = 4;
  const int64_t n_slots = 10, kvd = 12;
  KvCache cache(cfg, n_slots);
  ASSERT_EQ(cache.head_stride(), n_slots * 4);
  std::vector<float> k(kvd), v(kvd);
  for (int l = 0; l < 2; ++l)
    for (int s = 0; s < n_slots; ++s) {
      for (int e = 0; e < kvd; ++e) k[e] = 1000.0f * l + 100.0f * s + e, v[e] = -k[e];
      cache.store(l, s, k.data(), v.data());
    }
  auto at = [&](float* base, int h, int s, int e) { return base[h * cache.head_stride() + s * 4 + e]; };
  for (int l = 0; l < 2; ++l)
    for (int h = 0; h < 3; ++h)
      for (int s = 0; s < n_slots; ++s)
        for (int e = 0; e < 4; ++e) {
          ASSERT_EQ(at(cache.k(l), h, s, e), 1000.0f * l + 100.0f * s + h * 4 + e);
          ASSERT_EQ(at(cache.v(l), h, s, e), -(1000.0f * l + 100.0f * s + h * 4 + e));
        }
  cache.set_slot_pos(7, 42);
  cache.move_slot(7, 2);
  EXPECT_EQ(cache.slot_pos(2), 42);
  for (int l = 0; l < 2; ++l)
    for (int h = 0; h < 3; ++h)
      for (int e = 0; e < 4; ++e) {
        EXPECT_EQ(at(cache.k(l), h, 2, e), 1000.0f * l + 700.0f + h * 4 + e);
        EXPECT_EQ(at(cache.v(l), h, 2, e), -(1000.0f * l + 700.0f + h * 4 + e));
        EXPECT_EQ(at(cache.k(l), h, 3, e), 1000.0f * l + 300.0f + h * 4 + e);  // neighbours untouched
      }
}

TEST(KvCache, Bf16OnlyHoldsWhatTheCopyOfTheRowsWouldAndNoF32Rows) {
  if (!attention_bf16_native()) GTEST_SKIP() << "no AVX-512 BF16 in this build";
  // enable_bf16_only (bf16 attention): slots stored before are converted, later stores and moves
  // write the bf16 copy, the f32 rows are gone (an error to ask for, not a stale read).
  ModelConfig cfg;
  cfg.n_layer = 2;
  cfg.n_kv_head = 2;
  cfg.head_dim = 64;
  cfg.n_head = 4;
  const int64_t n_slots = 40, hd = 64, kvd = 128, n16 = 64;  // slots rounded up to 32
  auto row = [&](int l, int s, int which) {
    std::vector<float> r(kvd);
    for (int e = 0; e < kvd; ++e) r[e] = std::sin(1.0f + 0.37f * e + 5.1f * s + 11.3f * l + 17.0f * which) * (1 + s);
    return r;
  };
  KvCache cache(cfg, n_slots);
  const uint64_t f32_bytes = cache.bytes();
  for (int l = 0; l < 2; ++l)
    for (int s = 0; s < 10; ++s) cache.store(l, s, row(l, s, 0).data(), row(l, s, 1).data());
  for (int s = 0; s < 10; ++s) cache.set_slot_pos(s, s);
  cache.enable_bf16_only();
  EXPECT_TRUE(cache.bf16_only());
  EXPECT_EQ(cache.bytes(), f32_bytes / 2 * n16 / n_slots);  // bf16, slots rounded up to 32
  EXPECT_THROW(cache.k(0), InternalError);
  EXPECT_THROW(cache.v(1), InternalError);
  for (int l = 0; l < 2; ++l)
    for (int s = 10; s < 30; ++s) cache.store(l, s, row(l, s, 0).data(), row(l, s, 1).data());
  cache.set_slot_pos(25, 99);
  cache.move_slot(25, 31);  // an accepted tree node compacted
  EXPECT_EQ(cache.slot_pos(31), 99);
  // What kv_bf16_store of the same rows writes into a copy of its own, slot 31 holding slot 25's.
  for (int l = 0; l < 2; ++l) {
    std::vector<uint16_t> k16(2 * n16 * hd, 0), v16(2 * n16 * hd, 0);
    for (int s : {0, 5, 9, 10, 24, 29, 31})  // converted, stored after, moved
      for (int h = 0; h < 2; ++h) {
        const int src = s == 31 ? 25 : s;
        kv_bf16_store(row(l, src, 0).data() + h * hd, row(l, src, 1).data() + h * hd, hd, s, &k16[h * n16 * hd],
                      &v16[h * n16 * hd]);
      }
    // Every element the reference wrote (nonzero there: those slots' places in the layout) must be
    // in the cache's copy at the same index.
    int compared = 0;
    for (size_t i = 0; i < k16.size(); ++i) {
      if (k16[i] != 0) {
        ++compared;
        EXPECT_EQ(cache.k16(l)[i], k16[i]) << "layer " << l << " key element " << i;
      }
      if (v16[i] != 0) {
        EXPECT_EQ(cache.v16(l)[i], v16[i]) << "layer " << l << " value element " << i;
      }
    }
    EXPECT_GT(compared, 7 * 2 * hd / 2) << "layer " << l;
  }
}

TEST(GaussianProcess, InterpolatesAndUcbFindsTheBestSet) {
  // f(x) = x0 + x1 + x2 over 3-hot vectors of length 10: the best set is {0, 1, 2}.
  std::mt19937_64 rng(1);
  const int64_t D = 10, k = 3;
  std::vector<std::vector<int>> sets;
  Eigen::MatrixXd X(40, D);
  Eigen::VectorXd y(40);
  std::vector<int> idx(D);
  for (int i = 0; i < 40; ++i) {
    std::iota(idx.begin(), idx.end(), 0);
    std::shuffle(idx.begin(), idx.end(), rng);
    X.row(i).setZero();
    for (int j = 0; j < k; ++j) X(i, idx[j]) = 1.0;
    y(i) = X(i, 0) + X(i, 1) + X(i, 2);
  }
  GaussianProcess gp(1e-2);
  gp.fit(X, y);
  for (int i = 0; i < 40; ++i) {
    double m, s;
    gp.predict(X.row(i).transpose(), &m, &s);
    EXPECT_NEAR(m, y(i), 0.15) << i;
  }
  const Eigen::VectorXd sug = ucb_suggest(gp, D, k, /*kappa=*/0.1, 2000, rng);
  std::vector<int64_t> order(D);
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return sug(a) > sug(b); });
  std::vector<int64_t> top(order.begin(), order.begin() + k);
  std::sort(top.begin(), top.end());
  EXPECT_EQ(top, (std::vector<int64_t>{0, 1, 2}));
}

TEST(LayerSearch, EncodesPlansAndHonoursStoppingRules) {
  LayerSearchParams p;
  p.max_iter = 30;
  p.max_tolerance = 1000;
  p.max_score = 2.0;  // scores here reach 1.0; only max_iter may stop this search
  p.bayes_interval = 5;
  LayerSearch s(12, p);
  EXPECT_EQ(s.dim(), 20);
  const SkipPlan eo = LayerSearch::every_other_layer(12);
  EXPECT_EQ(plan_layers(eo.skip_attn), (std::vector<int64_t>{1, 3, 5, 7, 9}));
  EXPECT_EQ(s.decode(s.encode(eo)).skip_mlp, eo.skip_mlp);
  std::set<std::vector<uint8_t>> seen;
  while (!s.done()) {
    SkipPlan c = s.propose();
    EXPECT_EQ(c.n_skipped(), 9);  // int(20 * 0.45)
    EXPECT_EQ(c.skip_attn[0] + c.skip_attn[11] + c.skip_mlp[0] + c.skip_mlp[11], 0) << "first/last layer skipped";
    EXPECT_TRUE(seen.insert(s.encode(c)).second) << "duplicate proposal";
    // Score: how many of layers 1..4 have their MLP skipped.
    s.observe(c, (c.skip_mlp[1] + c.skip_mlp[2] + c.skip_mlp[3] + c.skip_mlp[4]) / 4.0);
  }
  EXPECT_EQ(s.proposals(), 30);
  LayerSearchParams q;
  q.max_score = 0.5;
  LayerSearch t(12, q);
  t.observe(t.propose(), 0.6);
  EXPECT_TRUE(t.done());
  LayerSearchParams r;
  r.max_tolerance = 3;
  LayerSearch u(12, r);
  u.observe(u.propose(), 0.3);
  for (int i = 0; i < 3; ++i) u.observe(u.propose(), 0.1);
  EXPECT_TRUE(u.done());
  EXPECT_EQ(u.best_score(), 0.3);
}

TEST(LayerCache, StoresAndLooksUpByModelAndTask) {
  const std::string path = (std::filesystem::temp_directory_path() / ("swift_lc_" + std::to_string(::getpid()) + ".json")).string();
  std::filesystem::remove(path);
  EXPECT_FALSE(layer_cache_lookup(path, 7, "code", 12));
  const SkipPlan p = plan_from_layers({1, 3}, {2}, 12, "test");
  layer_cache_store(path, 7, "code", {p, 0.8, "matchness"});
  layer_cache_store(path, 7, "docs", {plan_from_layers({4}, {}, 12, "test"), 0.5, "matchness"});
  layer_cache_store(path, 7, "code", {plan_from_layers({5}, {6}, 12, "test"), 0.9, "matchness"});  // replaces
  auto hit = layer_cache_lookup(path, 7, "code", 12);
  ASSERT_TRUE(hit);
  EXPECT_EQ(plan_layers(hit->plan.skip_attn), (std::vector<int64_t>{5}));
  EXPECT_EQ(hit->score, 0.9);
  EXPECT_FALSE(layer_cache_lookup(path, 8, "code", 12));  // other model
  std::ofstream(path) << "{\"entries\": 3}";
  EXPECT_THROW(layer_cache_lookup(path, 7, "code", 12), Error);
  std::ofstream(path) << R"({"entries": [{"model": "0000000000000007", "task": "code", "skip_attn": [11], "skip_mlp": []}]})";
  EXPECT_THROW(layer_cache_lookup(path, 7, "code", 12), Error);  // last layer may not be skipped
  std::filesystem::remove(path);
}

}  // namespace swift

namespace swift {
namespace {

TEST(PlanStore, SharesPlansPerTaskAndDropsOnesThatStopWorking) {
  const std::string path = "/tmp/swiftllm_plan_store_test.json";
  std::remove(path.c_str());
  const int64_t L = 8;
  SkipPlan plan = plan_from_layers({2, 3}, {4}, L, "test");
  {
    PlanStore store(path, 0xabc, L);
    EXPECT_FALSE(store.lookup("code").has_value());
    store.store("code", CachedPlan{plan, 0.8, "matchness"}, 0.9);
    ASSERT_TRUE(store.lookup("code").has_value());
    EXPECT_EQ(store.lookup("code")->plan.skip_attn, plan.skip_attn);
    EXPECT_FALSE(store.lookup("docs").has_value());
    // Too few drafted tokens to judge; then fine; then far below the finder's acceptance.
    EXPECT_FALSE(store.report_use("code", 0.1, PlanStore::kMinDrafted - 1));
    EXPECT_FALSE(store.report_use("code", 0.6, 100));  // 0.6 >= 0.6 * 0.9
    EXPECT_TRUE(store.report_use("code", 0.5, 100));   // 0.5 <  0.54: dropped
    EXPECT_FALSE(store.lookup("code").has_value());    // the next request searches again
    EXPECT_EQ(store.reoptimizations(), 1);
    store.store("code", CachedPlan{plan, 0.7, "matchness"}, 0.5);
    EXPECT_TRUE(store.lookup("code").has_value());
  }
  // Persisted: a new process (store) finds it in the file; its first use sets the reference.
  PlanStore again(path, 0xabc, L);
  ASSERT_TRUE(again.lookup("code").has_value());
  EXPECT_EQ(again.lookup("code")->plan.skip_mlp, plan.skip_mlp);
  EXPECT_FALSE(again.report_use("code", 0.5, 100));
  EXPECT_TRUE(again.report_use("code", 0.2, 100));
  PlanStore memory_only("", 0xabc, L);
  EXPECT_FALSE(memory_only.lookup("code").has_value());
  std::remove(path.c_str());
}

}  // namespace
}  // namespace swift
