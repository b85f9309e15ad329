// Prompt-lookup index, candidate-tree merging and the controller's tree choice (issue 8).
#include <gtest/gtest.h>

#include <random>

#include "engine/forward_cost.h"
#include "engine/hybrid/acceptance_stats.h"
#include "engine/hybrid/candidate_tree.h"
#include "engine/hybrid/gain_ledger.h"
#include "engine/lookup/ngram_index.h"
#include "util/check.h"

namespace swift {

namespace {
constexpr uint8_t kLookup = static_cast<uint8_t>(DraftSource::kLookup);
constexpr uint8_t kSkip = static_cast<uint8_t>(DraftSource::kLayerSkip);
}  // namespace

TEST(NgramIndex, LongestMatchFirstThenMostRecent) {
  const std::vector<int32_t> h = {1, 2, 3, 4, 9, 1, 2, 3, 5, 7, 8, 2, 3};
  NgramIndex idx(1, 4);
  idx.sync(h);
  const auto m = idx.lookup(h, 3, 4);
  ASSERT_EQ(m.size(), 2u);
  // Suffix [2, 3]: no 3-gram [8, 2, 3] occurred before, so n = 2; latest occurrence first.
  EXPECT_EQ(m[0].n, 2);
  EXPECT_EQ(m[0].tokens, (std::vector<int32_t>{5, 7, 8}));
  EXPECT_EQ(m[1].n, 2);
  EXPECT_EQ(m[1].tokens, (std::vector<int32_t>{4, 9, 1}));
  // The unigram [3] occurs at the same two places: nothing new, so nothing more is listed.
  // A history whose only match is a unigram falls back to n = 1.
  const std::vector<int32_t> h2 = {4, 1, 6, 3, 4};
  NgramIndex idx2(1, 4);
  idx2.sync(h2);
  const auto m2 = idx2.lookup(h2, 2, 4);
  ASSERT_EQ(m2.size(), 1u);
  EXPECT_EQ(m2[0].n, 1);
  EXPECT_EQ(m2[0].tokens, (std::vector<int32_t>{1, 6}));
}

TEST(NgramIndex, ContinuationsStopAtTheEndOfHistoryAndSkipDuplicates) {
  const std::vector<int32_t> h = {5, 6, 5, 6, 5, 6};
  NgramIndex idx(1, 2);
  idx.sync(h);
  const auto m = idx.lookup(h, 10, 8);
  ASSERT_FALSE(m.empty());
  EXPECT_EQ(m[0].n, 2);
  EXPECT_EQ(m[0].tokens, (std::vector<int32_t>{5, 6}));  // from position 4: only 2 tokens left
  for (size_t later = 1; later < m.size(); ++later)
    for (size_t earlier = 0; earlier < later; ++earlier) {
      const auto& x = m[later].tokens;
      const auto& y = m[earlier].tokens;
      const bool prefix = x.size() <= y.size() && std::equal(x.begin(), x.end(), y.begin());
      EXPECT_FALSE(prefix) << "a continuation that is a prefix of an earlier one was listed";
    }
}

// What lookup must return, by brute force: for n from the longest down, occurrences of the
// query's n-token suffix in the history newest first (at most kMaxProbe per n), continuations
// that are not a prefix of one already taken.
std::vector<NgramMatch> lookup_reference(const std::vector<int32_t>& hist, const std::vector<int32_t>& q, int n_min,
                                         int n_max, int max_len, int max_matches) {
  std::vector<NgramMatch> out;
  const int64_t Q = static_cast<int64_t>(q.size()), H = static_cast<int64_t>(hist.size());
  for (int n = static_cast<int>(std::min<int64_t>(n_max, Q)); n >= n_min && static_cast<int>(out.size()) < max_matches; --n) {
    int probed = 0;
    for (int64_t p = H - 1; p >= n && probed < NgramIndex::kMaxProbe; --p) {
      if (!std::equal(q.end() - n, q.end(), hist.begin() + (p - n))) continue;
      ++probed;
      std::vector<int32_t> cont(hist.begin() + p, hist.begin() + std::min<int64_t>(H, p + max_len));
      bool redundant = false;
      for (const auto& o : out)
        redundant = redundant || (o.tokens.size() >= cont.size() && std::equal(cont.begin(), cont.end(), o.tokens.begin()));
      if (redundant) continue;
      out.push_back({n, p, cont});
      if (static_cast<int>(out.size()) >= max_matches) break;
    }
  }
  return out;
}

TEST(NgramIndex, HashChainsFindWhatABruteForceScanFindsThroughGrowth) {
  std::mt19937 rng(11);
  for (int vocab : {3, 12, 400}) {
    NgramIndex idx(1, 4), cache(2, 4);
    std::vector<int32_t> h, other;
    for (int i = 0; i < 3000; ++i) {  // past several bucket doublings (1024 -> 8192)
      // Mostly fresh tokens, sometimes a copied stretch (what prompt lookup lives on).
      if (i > 50 && rng() % 10 == 0) {
        const size_t from = rng() % (h.size() - 20);
        for (int k = 0; k < 8; ++k) h.push_back(h[from + k]);
      } else {
        h.push_back(static_cast<int32_t>(rng() % vocab));
      }
      idx.sync(h);
      if (i % 97 == 0 || i > 2980) {
        const auto got = idx.lookup(h, 6, 3), want = lookup_reference(h, h, 1, 4, 6, 3);
        ASSERT_EQ(got.size(), want.size()) << "vocab " << vocab << " step " << i;
        for (size_t k = 0; k < got.size(); ++k) {
          EXPECT_EQ(got[k].n, want[k].n);
          EXPECT_EQ(got[k].pos, want[k].pos);
          EXPECT_EQ(got[k].tokens, want[k].tokens);
        }
      }
    }
    // A cache indexes other texts and is queried with this one's suffix.
    cache.append(std::vector<int32_t>(h.begin(), h.begin() + 1500));
    cache.append(std::vector<int32_t>(h.begin() + 700, h.end()));
    std::vector<int32_t> joined(h.begin(), h.begin() + 1500);
    joined.insert(joined.end(), h.begin() + 700, h.end());
    const std::vector<int32_t> q(h.end() - 5, h.end());
    const auto got = cache.lookup(q, 6, 3), want = lookup_reference(joined, q, 2, 4, 6, 3);
    ASSERT_EQ(got.size(), want.size()) << "vocab " << vocab;
    for (size_t k = 0; k < got.size(); ++k) EXPECT_EQ(got[k].pos, want[k].pos);
  }
}

TEST(NgramIndex, IncrementalSyncEqualsFreshIndexAndRebuildsOnRewrite) {
  std::mt19937 rng(3);
  std::vector<int32_t> h;
  NgramIndex inc(1, 3);
  for (int i = 0; i < 400; ++i) {
    h.push_back(static_cast<int32_t>(rng() % 7));
    inc.sync(h);
    if (i % 37 == 0) {
      NgramIndex fresh(1, 3);
      fresh.sync(h);
      const auto a = inc.lookup(h, 5, 3), b = fresh.lookup(h, 5, 3);
      ASSERT_EQ(a.size(), b.size());
      for (size_t k = 0; k < a.size(); ++k) EXPECT_EQ(a[k].tokens, b[k].tokens);
    }
  }
  h = {1, 2, 1};  // a different history (new request): the index is rebuilt, no stale positions
  inc.sync(h);
  const auto m = inc.lookup(h, 4, 4);
  ASSERT_EQ(m.size(), 1u);
  EXPECT_EQ(m[0].tokens, (std::vector<int32_t>{2, 1}));
  EXPECT_THROW(NgramIndex(0, 3), Error);
  EXPECT_THROW(NgramIndex(3, 2), Error);
}

TEST(NgramIndex, CacheOfOtherTextsAnswersForAQuery) {
  NgramIndex cache(2, 4);
  cache.append({7, 8, 9, 10, 11});
  cache.append({3, 8, 9, 4});
  const std::vector<int32_t> query = {1, 2, 8, 9};  // suffix [8, 9] occurs in both cached texts
  const auto m = cache.lookup(query, 2, 4);
  ASSERT_EQ(m.size(), 2u);
  EXPECT_EQ(m[0].tokens, (std::vector<int32_t>{4}));       // most recent: the second text (ends after 4)
  EXPECT_EQ(m[1].tokens, (std::vector<int32_t>{10, 11}));
  EXPECT_TRUE(cache.lookup({5, 6}, 2, 4).empty());
  cache.clear();
  EXPECT_EQ(cache.size(), 0);
  EXPECT_TRUE(cache.lookup(query, 2, 4).empty());
}

TEST(CandidateTree, MergesSharedPrefixesAndKeepsBothSources) {
  CandidateTree t;
  t.reset(100);
  const int32_t a = t.add(0, 7, 0.5, kLookup, AcceptanceStats::lookup_key(2, 1, AcceptanceStats::kBest, false));
  const int32_t b = t.add(a, 8, 0.5, kLookup, AcceptanceStats::lookup_key(2, 2, AcceptanceStats::kBest, false));
  const int32_t a2 = t.add(0, 7, 0.9, kSkip, AcceptanceStats::draft_key(0.97f, 0));
  EXPECT_EQ(a, a2);
  EXPECT_EQ(t.size(), 3);
  EXPECT_EQ(t.nodes()[a].sources, kLookup | kSkip);
  EXPECT_DOUBLE_EQ(t.nodes()[a].p_cond, 0.9);
  EXPECT_DOUBLE_EQ(t.nodes()[b].p_abs, 0.45);  // refreshed after the parent's merge
  EXPECT_GE(t.nodes()[a].lookup_key, 0);
  EXPECT_GE(t.nodes()[a].draft_key, 0);
}

TEST(CandidateTree, ChoiceIsParentClosedAndMaximisesTheRate) {
  std::mt19937 rng(5);
  std::uniform_real_distribution<double> u(0.0, 1.0);
  for (int trial = 0; trial < 50; ++trial) {
    CandidateTree t;
    t.reset(0);
    for (int i = 0; i < 30; ++i) t.add(static_cast<int32_t>(rng() % t.size()), static_cast<int32_t>(rng() % 50), u(rng), kLookup, -1);
    auto cost = [](int n) { return 1.0 + 0.3 * (n - 1); };
    const TreeChoice c = t.choose(0.0, 16, cost);
    ASSERT_EQ(c.nodes[0], 0);
    ASSERT_LE(c.nodes.size(), 16u);
    for (size_t i = 1; i < c.nodes.size(); ++i)
      EXPECT_TRUE(std::binary_search(c.nodes.begin(), c.nodes.end(), t.nodes()[c.nodes[i]].parent));
    // No size does better than the chosen one (the top-m subsets are the best of each size).
    std::vector<double> p;
    for (int32_t i = 1; i < t.size(); ++i) p.push_back(t.nodes()[i].p_abs);
    std::sort(p.rbegin(), p.rend());
    double sum = 0;
    for (size_t m = 0; m + 1 < 16 && m < p.size(); ++m) {
      sum += p[m];
      EXPECT_LE((1 + sum) / cost(static_cast<int>(m) + 2), c.rate() + 1e-12);
    }
  }
}

// Stats after `n` verifications of a lookup continuation whose every token is accepted with
// probability `rate`, then the controller's choice for a fresh 8-token continuation.
TreeChoice controller_choice(double rate, double cost_per_extra_token) {
  AcceptanceStats st;
  std::mt19937 rng(11);
  std::bernoulli_distribution acc(rate);
  for (int i = 0; i < 400; ++i)
    for (int d = 1; d <= 8; ++d) {
      const bool ok = acc(rng);
      st.observe(AcceptanceStats::lookup_key(3, d, AcceptanceStats::kBest, false), ok);
      if (!ok) break;
    }
  CandidateTree t;
  t.reset(0);
  int32_t parent = 0;
  for (int d = 1; d <= 8; ++d) {
    const int key = AcceptanceStats::lookup_key(3, d, AcceptanceStats::kBest, false);
    parent = t.add(parent, 10 + d, st.rate(key), kLookup, key);
  }
  return t.choose(0.0, 32, [&](int n) { return 1.0 + cost_per_extra_token * (n - 1); });
}

TEST(HybridController, PicksPlainDecodingWhenDraftsAreNeverAccepted) {
  const TreeChoice c = controller_choice(0.0, 0.3);
  EXPECT_EQ(c.nodes.size(), 1u);  // the root alone: one plain decoding step
  EXPECT_DOUBLE_EQ(c.expected_tokens, 1.0);
}

TEST(HybridController, GrowsTheTreeWhenVerificationIsCheap) {
  const size_t expensive = controller_choice(0.8, 0.6).nodes.size();
  const size_t moderate = controller_choice(0.8, 0.2).nodes.size();
  const size_t cheap = controller_choice(0.8, 0.01).nodes.size();
  EXPECT_LT(expensive, moderate);
  EXPECT_LE(moderate, cheap);
  EXPECT_EQ(cheap, 9u);  // all 8 drafted tokens + root
  EXPECT_GT(controller_choice(0.95, 0.2).nodes.size(), moderate);  // and when drafts are good
}

TEST(GainLedger, RaisesTheBarWhileDraftsLoseAndLowersItWhenTheyPay) {
  GainLedger g;
  EXPECT_DOUBLE_EQ(g.min_gain(0.03), 0.03);
  g.record(1, 0, 1.0, 1.0, 0.0);  // plain steps neither win nor lose
  EXPECT_DOUBLE_EQ(g.balance(), 0.0);
  for (int i = 0; i < 10; ++i) g.record(3, 0, 1.4, 1.0, 0.0);  // 10 rejected 3-node trees: -0.4 each
  EXPECT_NEAR(g.balance(), -4.0, 1e-9);
  EXPECT_NEAR(g.min_gain(0.03), 0.03 + 4.0 * GainLedger::kPenaltyPerPass, 1e-9);
  // A controller asked for that gain now declines a tree it would have taken at 0.03.
  CandidateTree t;
  t.reset(0);
  t.add(0, 5, 0.35, kLookup, -1);  // +0.35 tokens for +10% cost: 23% more tokens per ms
  const auto cost = [](int n) { return 1.0 + 0.1 * (n - 1); };
  EXPECT_EQ(t.choose(0.0, 8, cost, 0.03).nodes.size(), 2u);
  EXPECT_EQ(t.choose(0.0, 8, cost, g.min_gain(0.03)).nodes.size(), 1u);
  g.record(5, 4, 1.8, 1.0, 0.0);  // 4 accepted for 0.8 extra: +3.2
  g.record(2, 1, 1.1, 1.0, 0.1);  // +1 - 0.1 - 0.1
  EXPECT_NEAR(g.balance(), 0.0, 1e-9);
  EXPECT_DOUBLE_EQ(g.min_gain(0.03), 0.03);
}

TEST(ForwardCost, LearnsTheOneTokenCostAndTheRatioCurveFromRealPasses) {
  ForwardCost c;
  c.set_measurements({1, 2, 4, 8}, {1.0, 1.2, 1.6, 2.4}, {0.9, 1.1, 1.5, 2.2});
  EXPECT_DOUBLE_EQ(c.ms(1), 1.0);
  EXPECT_DOUBLE_EQ(c.ms(6), 2.0);  // interpolated between 4 (1.6) and 8 (2.4)
  // One-token passes slow down by 20% (longer context): every size scales with them.
  for (int i = 0; i < 400; ++i) c.observe(1, 1.2);
  EXPECT_NEAR(c.ms(1), 1.2, 1e-6);
  EXPECT_NEAR(c.ms(8), 2.88, 1e-6);
  // 6-token passes really cost 3.6 ms (ratio 3.0 instead of the interpolated 2.0): the sizes
  // around 6 learn it, the others stay, and the curve stays non-decreasing.
  for (int i = 0; i < 400; ++i) c.observe(6, 3.6);
  EXPECT_NEAR(c.ms(6), 3.6, 0.05);
  EXPECT_NEAR(c.ms(2), 1.2 * 1.2, 1e-9);
  for (size_t i = 1; i < c.ratios().size(); ++i) EXPECT_GE(c.ratios()[i], c.ratios()[i - 1]);
  // A single preempted pass (100x) moves the estimate by at most the clamp (3x) times the rate.
  const double before = c.ms(1);
  EXPECT_DOUBLE_EQ(c.observe(1, 100 * before), 3 * before);  // what it learned from (the ledger's figure)
  EXPECT_LE(c.ms(1), before * (1 + 2 * ForwardCost::kBaseRate) + 1e-9);
  EXPECT_DOUBLE_EQ(c.observe(1000, 5.0), 5.0);  // beyond the calibrated sizes: unchanged
  // Calibration results are kept for reporting.
  EXPECT_DOUBLE_EQ(c.median_ms()[3], 2.4);
  EXPECT_DOUBLE_EQ(c.best_ms()[3], 2.2);
}

TEST(ForwardCost, SpreadIsTheMedianAndNearestRankQuartiles) {
  const Spread odd = spread_of({5, 1, 4, 2, 3});  // sorted 1..5
  EXPECT_DOUBLE_EQ(odd.median, 3);
  EXPECT_DOUBLE_EQ(odd.low, 2);   // ceil(0.25 * 5) = 2nd value
  EXPECT_DOUBLE_EQ(odd.high, 4);  // ceil(0.75 * 5) = 4th value
  const Spread even = spread_of({8, 6, 2, 4});
  EXPECT_DOUBLE_EQ(even.median, 5);  // mean of the middle two
  EXPECT_DOUBLE_EQ(even.low, 2);
  EXPECT_DOUBLE_EQ(even.high, 6);
  const Spread one = spread_of({1.5});
  EXPECT_DOUBLE_EQ(one.low, 1.5);
  EXPECT_DOUBLE_EQ(one.median, 1.5);
  EXPECT_DOUBLE_EQ(one.high, 1.5);
  const Spread none = spread_of({});
  EXPECT_DOUBLE_EQ(none.median, 0);
  // Measurements set from outside carry no pairs.
  ForwardCost c;
  c.set_measurements({1, 2}, {1.0, 1.2}, {0.9, 1.1});
  EXPECT_TRUE(c.paired_ratio().empty());
}

TEST(AcceptanceStats, LearnsAndForgets) {
  AcceptanceStats st;
  const int k = AcceptanceStats::draft_key(0.9f, 0);
  for (int i = 0; i < 300; ++i) st.observe(k, true);
  EXPECT_GT(st.rate(k), 0.95);
  for (int i = 0; i < 300; ++i) st.observe(k, false);
  EXPECT_LT(st.rate(k), 0.05);  // the text changed: old evidence fades
  EXPECT_NE(AcceptanceStats::lookup_key(1, 1, 0, false), AcceptanceStats::lookup_key(1, 1, 0, true));
  EXPECT_NE(AcceptanceStats::lookup_key(1, 1, 1, false), AcceptanceStats::lookup_key(1, 1, 2, false));
  EXPECT_LT(AcceptanceStats::draft_key(0.1f, 3), AcceptanceStats::kKeys);
  EXPECT_LT(AcceptanceStats::lookup_key(9, 99, 2, true), AcceptanceStats::kLookupKeys);
}

}  // namespace swift
