// bf16 attention (ops/attention.h: attention_bf16, contract in ops/attention_bf16.cc), on AMX
// tiles and with vdpbf16ps:
// accuracy against the f32 kernel, batch invariance bit for bit (the lossless-decoding contract),
// the bf16 cache copy against packing from the f32 rows, and its rounded output copy; and the
// per-KV-head preparation hook of both kernels.
#include <gtest/gtest.h>

#include <atomic>
#include <cmath>
#include <cstring>
#include <random>
#include <utility>

#include "ops/attention.h"
#include "ops/bf16_amx.h"
#include "ops/bf16_dot.h"
#include "test_util.h"

namespace swift {

namespace {

// One layer's cache for tests: f32 rows [n_kv, n_slots, hd] (head-major, as KvCache) and the bf16
// copy kv_bf16_store keeps (n_slots rounded up to 32).
struct TestCache {
  int64_t n_kv, n_slots, n_slots16, hd;
  std::vector<float> k, v;
  std::vector<uint16_t> k16, v16;
  TestCache(int64_t n_kv_, int64_t n_slots_, int64_t hd_, uint64_t seed)
      : n_kv(n_kv_), n_slots(n_slots_), n_slots16((n_slots_ + 31) / 32 * 32), hd(hd_) {
    k = test::random_floats(n_kv * n_slots * hd, seed);
    v = test::random_floats(n_kv * n_slots * hd, seed + 1);
    k16.assign(n_kv * n_slots16 * hd, 0xffff);  // NaN where no slot was stored: must never be read
    v16.assign(n_kv * n_slots16 * hd, 0xffff);
    for (int64_t h = 0; h < n_kv; ++h)
      for (int64_t s = 0; s < n_slots; ++s) store(h, s);
  }
  void store(int64_t h, int64_t s) {
    // The copy is only read by attention_bf16, which a build without AVX-512 BF16 lacks (and
    // whose store refuses): there the f32 kernel's tests use the rows alone.
    if (!attention_bf16_native()) return;
    kv_bf16_store(&k[(h * n_slots + s) * hd], &v[(h * n_slots + s) * hd], hd, s, &k16[h * n_slots16 * hd],
                  &v16[h * n_slots16 * hd]);
  }
  // Where the kernel reads keys and values: the f32 rows only, the rows and the bf16 copy (for
  // the committed context), or the copy only (a cache that keeps no f32 rows).
  enum Source { kRows, kRowsAndCopy, kCopyOnly };
  AttentionArgs args(Source src) const {
    AttentionArgs a;
    a.k = k.data(), a.v = v.data(), a.kv_row_stride = hd, a.kv_head_stride = n_slots * hd, a.head_dim = hd;
    a.n_kv_head = n_kv, a.scale = 1.0f / std::sqrt(static_cast<float>(hd));
    if (src != kRows) a.k16 = k16.data(), a.v16 = v16.data(), a.kv16_head_stride = n_slots16 * hd;
    if (src == kCopyOnly) a.k = a.v = nullptr;
    return a;
  }
};

// Lists of n_tok tokens: slots 0..prefix-1, then a tree over the batch slots prefix.. (odd tokens
// skip every other earlier batch token), as verification builds them.
SlotLists tree_lists(int64_t prefix, int64_t n_tok) {
  SlotLists vis;
  vis.offsets.push_back(0);
  for (int64_t i = 0; i < n_tok; ++i) {
    for (int32_t s = 0; s < prefix; ++s) vis.slots.push_back(s);
    for (int64_t j = 0; j <= i; ++j)
      if (i % 2 == 0 || j % 2 == 1 || j == i) vis.slots.push_back(static_cast<int32_t>(prefix + j));
    vis.offsets.push_back(static_cast<int64_t>(vis.slots.size()));
  }
  return vis;
}

}  // namespace

// Each test runs once per product unit this machine has: AMX tiles (where available) and
// vdpbf16ps (every AVX-512 BF16 build; on an AMX machine through the test seam).
class AttentionBf16 : public ::testing::TestWithParam<bool> {  // true: vdpbf16ps
 protected:
  void SetUp() override {
    if (!attention_bf16_native()) GTEST_SKIP() << "no AVX-512 BF16 in this build";
    if (!GetParam() && !bf16_amx_available()) GTEST_SKIP() << "no AMX tiles on this CPU or build";
    attention_bf16_use_dot_for_test(GetParam());
  }
  void TearDown() override { attention_bf16_use_dot_for_test(false); }
};
INSTANTIATE_TEST_SUITE_P(Products, AttentionBf16, ::testing::Values(false, true),
                         [](const ::testing::TestParamInfo<bool>& i) { return i.param ? "Dot" : "Tiles"; });

TEST(AttentionBf16Shapes, TakesHeadShapesItsTilesFit) {
  if (!attention_bf16_native()) GTEST_SKIP() << "no AVX-512 BF16 in this build";
  EXPECT_TRUE(attention_bf16_usable(4, 2, 64));
  EXPECT_TRUE(attention_bf16_usable(32, 8, 128));
  EXPECT_TRUE(attention_bf16_usable(16, 1, 64));   // 16 query heads per KV head: one tile of rows
  EXPECT_FALSE(attention_bf16_usable(32, 1, 64));  // 32: more rows than a tile
  EXPECT_FALSE(attention_bf16_usable(4, 2, 80));   // not whole 64-dimension steps
  EXPECT_FALSE(attention_bf16_usable(4, 2, 96));
  EXPECT_FALSE(attention_bf16_usable(6, 4, 64));  // heads not a multiple of KV heads
}

TEST_P(AttentionBf16, MatchesF32AttentionWithinBf16Rounding) {
  // Error model (stated), per output of a query head over its visible keys j:
  //   q and k rounded to bf16 (relative 2^-9 each) move score j by at most 2^-8 A_j, with
  //   A_j = scale * sum_i |q_i k_ji|; scores moved by at most D = 2^-8 max_j A_j change the
  //   normalised weights by at most exp(2 D) - 1 in total (l1), hence the output by that times
  //   max_j |v_j|; rounding the weights and the values adds 2^-9 max_j |v_j| each.
  //   bound = max_j |v_j| (exp(2 D) - 1 + 2^-8) + 1e-6 (f32 sums, ~1e-7 here)
  // The bf16 output must stay within the bound of the f32 kernel's; and the worst difference
  // must exceed 1e-4 (f32 arithmetic alone stays below 1e-5: the bf16 kernel really ran).
  ThreadPool pool(2);
  double worst = 0, worst_of_bound = 0;
  for (int64_t hd : {64, 128})
    for (int64_t group : {1, 2, 3, 8})
      for (int64_t n_kv : {1, 2})
        for (int64_t prefix : {0, 7, 40, 100}) {
          const int64_t n_tok = 6, n_head = group * n_kv;
          TestCache c(n_kv, prefix + n_tok, hd, 7);
          auto q = test::random_floats(n_tok * n_head * hd, 9);
          const SlotLists vis = tree_lists(prefix, n_tok);
          AttentionArgs a = c.args(TestCache::kRowsAndCopy);
          a.q = q.data(), a.n_tok = n_tok, a.n_head = n_head, a.visible = &vis;
          std::vector<float> amx(n_tok * n_head * hd), f32(amx.size());
          a.out = amx.data();
          attention_bf16(a, pool);
          a.out = f32.data();
          attention(a, pool);
          for (int64_t t = 0; t < n_tok; ++t)
            for (int64_t h = 0; h < n_head; ++h) {
              const int64_t kvh = h / group;
              double a_max = 0, v_max = 0;
              for (int64_t j = vis.offsets[t]; j < vis.offsets[t + 1]; ++j) {
                const float* kr = &c.k[(kvh * c.n_slots + vis.slots[j]) * hd];
                const float* vr = &c.v[(kvh * c.n_slots + vis.slots[j]) * hd];
                double aj = 0;
                for (int64_t i = 0; i < hd; ++i) {
                  aj += std::fabs(q[(t * n_head + h) * hd + i] * kr[i]);
                  v_max = std::max(v_max, static_cast<double>(std::fabs(vr[i])));
                }
                a_max = std::max(a_max, aj * a.scale);
              }
              const double bound = v_max * (std::exp(2 * a_max / 256) - 1 + 1.0 / 256) + 1e-6;
              for (int64_t d = 0; d < hd; ++d) {
                const int64_t i = (t * n_head + h) * hd + d;
                const double diff = std::fabs(amx[i] - f32[i]);
                ASSERT_LE(diff, bound) << "hd " << hd << " group " << group << " kv " << n_kv << " prefix " << prefix
                                       << " token " << t << " head " << h << " dim " << d;
                worst = std::max(worst, diff);
                worst_of_bound = std::max(worst_of_bound, diff / bound);
              }
            }
        }
  std::printf("bf16 vs f32 attention: worst difference %.2e, at most %.0f%% of the bound\n", worst,
              100 * worst_of_bound);
  EXPECT_GT(worst, 1e-4);
}

TEST_P(AttentionBf16, TokensAloneAndInBatchesGiveTheSameBitsFromEitherSource) {
  // The lossless contract: a token's output alone (as plain decoding computes it) equals its
  // output in any batch (verification, prefill), whatever the shared context's length relative
  // to the 16-key score tiles and 32-key value blocks, the tree, the group size (query rows per
  // tile), head dim, threads, and whether the committed keys come from the bf16 copy or are
  // packed from the f32 rows on the call.
  struct Case {
    int64_t hd, group, n_kv, n_tok;
    int threads;
  };
  for (Case cs : {Case{64, 2, 2, 9, 2}, Case{128, 2, 2, 20, 2}, Case{64, 1, 2, 20, 3}, Case{64, 4, 1, 35, 1},
                  Case{64, 3, 2, 7, 2}, Case{128, 8, 1, 17, 2}}) {
    for (int64_t prefix : {0, 5, 31, 32, 33, 64, 150, 300}) {
      const int64_t hd = cs.hd, n_head = cs.group * cs.n_kv, n_tok = cs.n_tok;
      TestCache c(cs.n_kv, prefix + n_tok + 3, hd, 31);
      auto q = test::random_floats(n_tok * n_head * hd, 33);
      const SlotLists vis = tree_lists(prefix, n_tok);
      ThreadPool pool(cs.threads);
      std::vector<float> batch(n_tok * n_head * hd), batch_packed(batch.size());
      AttentionArgs a = c.args(TestCache::kRowsAndCopy);
      a.q = q.data(), a.n_tok = n_tok, a.n_head = n_head, a.visible = &vis, a.out = batch.data();
      attention_bf16(a, pool);
      AttentionArgs p = c.args(TestCache::kRows);
      p.q = q.data(), p.n_tok = n_tok, p.n_head = n_head, p.visible = &vis, p.out = batch_packed.data();
      attention_bf16(p, pool);
      ASSERT_EQ(0, std::memcmp(batch.data(), batch_packed.data(), batch.size() * sizeof(float)))
          << "copy vs packed: hd " << hd << " group " << cs.group << " prefix " << prefix;
      std::vector<float> batch_copy(batch.size());
      AttentionArgs o = c.args(TestCache::kCopyOnly);
      o.q = q.data(), o.n_tok = n_tok, o.n_head = n_head, o.visible = &vis, o.out = batch_copy.data();
      attention_bf16(o, pool);
      ASSERT_EQ(0, std::memcmp(batch.data(), batch_copy.data(), batch.size() * sizeof(float)))
          << "copy only vs packed: hd " << hd << " group " << cs.group << " prefix " << prefix;
      for (int64_t i = 0; i < n_tok; ++i) {
        SlotLists one;
        one.offsets = {0, vis.offsets[i + 1] - vis.offsets[i]};
        one.slots.assign(vis.slots.begin() + vis.offsets[i], vis.slots.begin() + vis.offsets[i + 1]);
        std::vector<float> alone(n_head * hd);
        // Rotate the source: rows, rows and copy, copy only.
        AttentionArgs b = c.args(static_cast<TestCache::Source>(i % 3));
        b.q = q.data() + i * n_head * hd, b.n_tok = 1, b.n_head = n_head, b.visible = &one, b.out = alone.data();
        attention_bf16(b, pool);
        ASSERT_EQ(0, std::memcmp(alone.data(), batch.data() + i * n_head * hd, alone.size() * sizeof(float)))
            << "hd " << hd << " group " << cs.group << " kv heads " << cs.n_kv << " tokens " << n_tok << " threads "
            << cs.threads << " prefix " << prefix << " token " << i;
      }
    }
  }
}

TEST_P(AttentionBf16, CopyOnlyGivesTheBitsOfTheRowsForListsOfAnyShape) {
  // Without f32 rows every key and value is gathered from the bf16 copy: the context that does
  // not start at slot 0 (a sliding window), the own keys of each token (a tree, a prefill
  // chunk's whole value blocks), slots in any order. Each must give the bits of packing the f32
  // rows the copy was stored from; slots past the cache's end hold NaN in the copy, so a wrong
  // index would show.
  auto lists = [](int kind, int64_t prefix, int64_t n_tok, uint64_t seed) {
    SlotLists vis;
    vis.offsets.push_back(0);
    std::mt19937_64 rng(seed);
    for (int64_t i = 0; i < n_tok; ++i) {
      if (kind == 0)  // window: the last 40 committed slots, then the batch's causal slots
        for (int64_t s = std::max<int64_t>(0, prefix - 40); s < prefix + i + 1; ++s)
          vis.slots.push_back(static_cast<int32_t>(s));
      else if (kind == 1)  // prefill: everything before and the token itself
        for (int64_t s = 0; s < prefix + i + 1; ++s) vis.slots.push_back(static_cast<int32_t>(s));
      else  // scattered: a random subset of the slots in a random order, then the token's own
        for (int64_t s = 0; s < prefix + n_tok; ++s)
          if (rng() % 3 == 0 || s == prefix + i)
            vis.slots.push_back(static_cast<int32_t>((s * 7 + i) % (prefix + n_tok)));
      vis.offsets.push_back(static_cast<int64_t>(vis.slots.size()));
    }
    return vis;
  };
  for (int64_t hd : {64, 128})
    for (int64_t group : {1, 2, 4})
      for (int kind : {0, 1, 2})
        for (int64_t prefix : {0, 17, 70, 200}) {
          const int64_t n_kv = 2, n_head = group * n_kv, n_tok = 37;
          TestCache c(n_kv, prefix + n_tok, hd, 71 + kind);
          auto q = test::random_floats(n_tok * n_head * hd, 73);
          const SlotLists vis = lists(kind, prefix, n_tok, 75 + prefix);
          ThreadPool pool(2);
          std::vector<float> rows(n_tok * n_head * hd), copy(rows.size());
          for (auto [src, out] : {std::pair{TestCache::kRows, &rows}, std::pair{TestCache::kCopyOnly, &copy}}) {
            AttentionArgs a = c.args(src);
            a.q = q.data(), a.n_tok = n_tok, a.n_head = n_head, a.visible = &vis, a.out = out->data();
            attention_bf16(a, pool);
          }
          for (float x : rows) ASSERT_TRUE(std::isfinite(x));
          ASSERT_EQ(0, std::memcmp(rows.data(), copy.data(), rows.size() * sizeof(float)))
              << "hd " << hd << " group " << group << " lists " << kind << " prefix " << prefix;
        }
}

TEST_P(AttentionBf16, WritesTheRoundedOutputTheMatrixKernelWouldMake) {
  ThreadPool pool(2);
  const int64_t hd = 64, n_head = 4, n_kv = 2, n_tok = 5, prefix = 45;
  TestCache c(n_kv, prefix + n_tok, hd, 51);
  auto q = test::random_floats(n_tok * n_head * hd, 52);
  const SlotLists vis = tree_lists(prefix, n_tok);
  std::vector<float> out(n_tok * n_head * hd);
  std::vector<uint16_t> out16(out.size(), 0xffff), want(out.size());
  AttentionArgs a = c.args(TestCache::kRowsAndCopy);
  a.q = q.data(), a.n_tok = n_tok, a.n_head = n_head, a.visible = &vis, a.out = out.data(), a.out16 = out16.data();
  attention_bf16(a, pool);
  bf16_round_rows_into(out.data(), n_tok, n_head * hd, want.data());
  EXPECT_EQ(want, out16);
}

TEST_P(AttentionBf16, Bf16CopyOfAMovedSlotEqualsStoringItThere) {
  // Accepted tree nodes are compacted with a move (model/kv_cache.h): the copy must then hold
  // what storing the row at its new slot would have written, in both value-pair lanes.
  for (int64_t hd : {64, 128})
    for (auto [from, to] : {std::pair<int64_t, int64_t>{70, 33}, {33, 70}, {5, 4}, {4, 5}, {64, 31}}) {
      TestCache moved(1, 96, hd, 61), stored(1, 96, hd, 61);
      kv_bf16_move(from, to, hd, moved.k16.data(), moved.v16.data());
      std::copy_n(&stored.k[from * hd], hd, &stored.k[to * hd]);
      std::copy_n(&stored.v[from * hd], hd, &stored.v[to * hd]);
      stored.store(0, to);
      EXPECT_EQ(stored.k16, moved.k16) << "hd " << hd << " " << from << " -> " << to;
      EXPECT_EQ(stored.v16, moved.v16) << "hd " << hd << " " << from << " -> " << to;
    }
}

TEST(Attention, PrepareRunsOncePerKvHeadBeforeItsInputsAreRead) {
  // AttentionArgs::prepare (the transformer's rotary and cache stores, per KV head): with the
  // batch's q rows and K/V slots poisoned (NaN) until the hook writes them, both kernels give the
  // bits of a call whose inputs were ready, and call it exactly once per KV head, whether it runs
  // inside the head's only unit (up to 16 tokens on 1-2 threads) or in a round of its own; the
  // AMX kernel also with a cache that keeps only the bf16 copy.
  const int64_t hd = 64, n_kv = 2, group = 2, n_head = n_kv * group, prefix = 37;
  for (auto src : {TestCache::kRows, TestCache::kRowsAndCopy, TestCache::kCopyOnly}) {
    const bool amx = src != TestCache::kRows;  // the f32 kernel reads the rows
    if (amx && !attention_bf16_native()) continue;
    for (int threads : {1, 2, 3})
      for (int64_t n_tok : {5, 16, 40}) {
        const TestCache ready(n_kv, prefix + n_tok, hd, 71);
        const auto q = test::random_floats(n_tok * n_head * hd, 72);
        const SlotLists vis = tree_lists(prefix, n_tok);
        ThreadPool pool(threads);
        auto run = [&](AttentionArgs a, std::vector<float>& out) {
          a.n_tok = n_tok, a.n_head = n_head, a.visible = &vis, a.out = out.data();
          if (amx)
            attention_bf16(a, pool);
          else
            attention(a, pool);
        };
        std::vector<float> want(n_tok * n_head * hd), got(want.size());
        AttentionArgs a = ready.args(src);
        a.q = q.data();
        run(a, want);

        TestCache late = ready;
        std::vector<float> q_late(q.size(), NAN);
        for (int64_t h = 0; h < n_kv; ++h)
          for (int64_t s = prefix; s < prefix + n_tok; ++s) {
            std::fill_n(&late.k[(h * late.n_slots + s) * hd], hd, NAN);
            std::fill_n(&late.v[(h * late.n_slots + s) * hd], hd, NAN);
            late.store(h, s);
          }
        std::vector<std::atomic<int>> calls(n_kv);
        auto prepare_head = [&](int64_t h) {
          ++calls[h];
          for (int64_t t = 0; t < n_tok; ++t)
            std::copy_n(&q[(t * n_head + h * group) * hd], group * hd, &q_late[(t * n_head + h * group) * hd]);
          for (int64_t s = prefix; s < prefix + n_tok; ++s) {
            const int64_t at = (h * late.n_slots + s) * hd;
            std::copy_n(&ready.k[at], hd, &late.k[at]);
            std::copy_n(&ready.v[at], hd, &late.v[at]);
            late.store(h, s);
          }
        };
        const FunctionRef<void(int64_t)> prepare = prepare_head;
        AttentionArgs b = late.args(src);
        b.q = q_late.data(), b.prepare = &prepare;
        run(b, got);
        for (int64_t h = 0; h < n_kv; ++h) EXPECT_EQ(calls[h].load(), 1) << "head " << h;
        ASSERT_EQ(0, std::memcmp(want.data(), got.data(), want.size() * sizeof(float)))
            << (amx ? "amx" : "f32") << " source " << src << " threads " << threads << " tokens " << n_tok;
      }
  }
}

}  // namespace swift
