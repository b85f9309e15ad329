// Lossless tree speculative sampling, tested statistically: whatever the draft proposes, the
// emitted tokens must follow the target distribution. Chi-square goodness of fit over >= 10^6
// samples per configuration, Bonferroni-corrected; a deliberately broken residual must fail.
#include <gtest/gtest.h>

#include <fmt/format.h>

#include <cmath>

#include "engine/hybrid/candidate_tree.h"
#include "engine/sampler.h"
#include "engine/swift/tree_acceptance.h"
#include "test_util.h"

namespace swift {

namespace {

// Regularised upper incomplete gamma Q(a, x) (Numerical Recipes gammq), for chi-square p-values.
double gammq(double a, double x) {
  const double gln = std::lgamma(a);
  if (x < a + 1.0) {  // series for P, return 1 - P
    double ap = a, sum = 1.0 / a, del = sum;
    for (int n = 0; n < 100000; ++n) {
      ap += 1.0;
      del *= x / ap;
      sum += del;
      if (std::fabs(del) < std::fabs(sum) * 1e-15) break;
    }
    return 1.0 - sum * std::exp(-x + a * std::log(x) - gln);
  }
  double b = x + 1.0 - a, c = 1.0 / 1e-300, d = 1.0 / b, h = d;  // continued fraction for Q
  for (int i = 1; i < 100000; ++i) {
    const double an = -i * (i - a);
    b += 2.0;
    d = an * d + b;
    if (std::fabs(d) < 1e-300) d = 1e-300;
    c = b + an / c;
    if (std::fabs(c) < 1e-300) c = 1e-300;
    d = 1.0 / d;
    const double del = d * c;
    h *= del;
    if (std::fabs(del - 1.0) < 1e-15) break;
  }
  return std::exp(-x + a * std::log(x) - gln) * h;
}

// Chi-square p-value of observed counts against expected probabilities; cells with expected
// count < 5 are pooled.
double chi_square_p(const std::vector<int64_t>& obs, const std::vector<double>& prob, int64_t n) {
  double chi = 0, pooled_o = 0, pooled_e = 0;
  int cells = 0;
  for (size_t i = 0; i < obs.size(); ++i) {
    const double e = prob[i] * n;
    if (e < 5.0) {
      pooled_o += obs[i];
      pooled_e += e;
      continue;
    }
    chi += (obs[i] - e) * (obs[i] - e) / e;
    ++cells;
  }
  if (pooled_e > 0) {
    chi += (pooled_o - pooled_e) * (pooled_o - pooled_e) / std::max(pooled_e, 1e-9);
    ++cells;
  }
  // A target with one token of non-zero probability (top-p can do that) leaves no degree of
  // freedom: the fit is exact when nothing else was emitted, and fails otherwise.
  if (cells < 2) return chi == 0.0 ? 1.0 : 0.0;
  return gammq((cells - 1) / 2.0, chi / 2.0);
}

struct Config {
  int vocab;
  std::vector<int> widths;  // candidates per depth along the spine
  SamplingParams sp;
  std::string name;
  // Hybrid trees (issue 8): a deterministic prompt-lookup chain merged into the draft tree at
  // the root (-1 = the draft's own top-1, so that the two sources share a prefix).
  std::vector<int32_t> lookup = {};
};

// Target: random logits per (context) processed by the sampler; draft: other random logits
// whose ranking picks the candidates. Returns p-value for the first token (and for the joint of
// the first two tokens when the vocabulary is small).
struct World {
  int V;
  SamplingParams sp;
  std::vector<std::vector<float>> target_logits;  // [V + 1][V]: index 0 = after root, 1 + x = after x
  std::vector<std::vector<float>> draft_logits;
  std::vector<std::vector<float>> target_probs;  // processed once per context

  World(int vocab, SamplingParams p, uint64_t seed) : V(vocab), sp(p) {
    for (int i = 0; i <= V; ++i) {
      target_logits.push_back(test::random_floats(V, seed * 1000 + i, 1.5f));
      auto d = target_logits.back();
      auto noise = test::random_floats(V, seed * 7777 + i, 1.5f);
      for (int v = 0; v < V; ++v) d[v] = 0.5f * d[v] + noise[v];  // correlated but different
      draft_logits.push_back(d);
      target_probs.emplace_back();
      sampling_distribution(target_logits.back().data(), V, sp, target_probs.back());
    }
  }
  void target(int context, std::vector<float>& p) const { p = target_probs[context]; }
  std::vector<int32_t> ranked_draft(int context, int k) const {
    std::vector<int32_t> idx(V);
    std::iota(idx.begin(), idx.end(), 0);
    const auto& l = draft_logits[context];
    std::partial_sort(idx.begin(), idx.begin() + k, idx.end(), [&](int a, int b) { return l[a] > l[b]; });
    idx.resize(k);
    return idx;
  }
};

// Builds the SWIFT-shaped tree: spine = draft top-1 chain, siblings = next-ranked tokens.
// Target context after a node = 1 + its token at depth 1, else the root's (contexts beyond depth
// 1 reuse the depth-1 context so the world stays small; exactness does not depend on it).
TokenTree build_swift_tree(const World& w, const std::vector<int>& widths, std::vector<int>* node_ctx) {
  TokenTree t;
  t.reset(0);
  node_ctx->assign(1, 0);
  int32_t parent = 0;
  for (size_t d = 0; d < widths.size(); ++d) {
    const auto cand = w.ranked_draft((*node_ctx)[parent], widths[d]);
    int32_t spine = -1;
    for (int k = 0; k < widths[d]; ++k) {
      const int32_t n = t.add(parent, cand[k], k == 0);
      node_ctx->push_back(d == 0 ? 1 + cand[k] : (*node_ctx)[parent]);
      if (k == 0) spine = n;
    }
    parent = spine;
  }
  return t;
}

// The hybrid decoder's tree: draft candidates and a lookup chain merged by CandidateTree (shared
// prefixes deduplicated), every candidate kept, materialised as the verified TokenTree.
TokenTree build_tree(const World& w, const std::vector<int>& widths, const std::vector<int32_t>& lookup,
                     std::vector<int>* node_ctx) {
  if (lookup.empty()) return build_swift_tree(w, widths, node_ctx);
  std::vector<int> swift_ctx;
  const TokenTree swift_tree = build_swift_tree(w, widths, &swift_ctx);
  CandidateTree cands;
  cands.reset(0);
  for (int32_t i = 1; i < swift_tree.size(); ++i)  // parents precede children: same indices
    cands.add(swift_tree.nodes()[i].parent, swift_tree.nodes()[i].token, 0.5, 2, -1);
  int32_t parent = 0;
  for (int32_t tok : lookup) parent = cands.add(parent, tok < 0 ? w.ranked_draft(0, 1)[0] : tok, 0.5, 1, -1);
  TreeChoice all;
  for (int32_t i = 0; i < cands.size(); ++i) all.nodes.push_back(i);
  TokenTree t;
  cands.to_token_tree(all, t);
  node_ctx->assign(1, 0);
  for (int32_t i = 1; i < t.size(); ++i) {
    const TreeNode& n = t.nodes()[i];
    node_ctx->push_back(n.depth == 1 ? 1 + n.token : (*node_ctx)[n.parent]);
  }
  return t;
}

struct Counts {
  std::vector<int64_t> first, pair;
};

Counts run(const World& w, const std::vector<int>& widths, int64_t n, uint64_t seed, const PickFn& pick,
           const std::vector<int32_t>& lookup = {}) {
  std::vector<int> ctx;
  const TokenTree tree = build_tree(w, widths, lookup, &ctx);
  std::mt19937_64 rng(seed);
  Counts c{std::vector<int64_t>(w.V, 0), std::vector<int64_t>(w.V <= 20 ? w.V * w.V : 0, 0)};
  std::vector<float> p;
  for (int64_t i = 0; i < n; ++i) {
    const Acceptance a = accept_sampling(tree, [&](int32_t node, std::vector<float>& out) { w.target(ctx[node], out); },
                                         rng, pick);
    std::vector<int32_t> emitted;
    for (int32_t node : a.path) emitted.push_back(tree.nodes()[node].token);
    emitted.push_back(a.bonus);
    ++c.first[emitted[0]];
    if (!c.pair.empty()) {
      int32_t second;
      if (emitted.size() >= 2) {
        second = emitted[1];
      } else {  // the next step would sample plainly from the target after the first token
        w.target(1 + emitted[0], p);
        second = sample_from(p, rng);
      }
      ++c.pair[emitted[0] * w.V + second];
    }
  }
  return c;
}

std::vector<double> first_probs(const World& w) {
  std::vector<float> p;
  w.target(0, p);
  return std::vector<double>(p.begin(), p.end());
}

std::vector<double> pair_probs(const World& w) {
  std::vector<float> p0, p1;
  w.target(0, p0);
  std::vector<double> out(w.V * w.V);
  for (int a = 0; a < w.V; ++a) {
    w.target(1 + a, p1);
    for (int b = 0; b < w.V; ++b) out[a * w.V + b] = static_cast<double>(p0[a]) * p1[b];
  }
  return out;
}

std::vector<Config> configs() {
  SamplingParams plain;
  plain.temperature = 1.0f;
  SamplingParams warped;
  warped.temperature = 0.7f;
  warped.top_p = 0.8f;
  std::vector<Config> out;
  for (int V : {10, 1000})
    for (const auto& [widths, shape] : {std::pair{std::vector<int>{1, 1, 1}, "chain3"},
                                        std::pair{std::vector<int>{5}, "wide5"},
                                        std::pair{std::vector<int>{3, 2, 1}, "tree321"}})
      for (const auto& [sp, sname] : {std::pair{plain, "T1"}, std::pair{warped, "T0.7_topp0.8"}})
        out.push_back({V, widths, sp, fmt::format("V{}_{}_{}", V, shape, sname)});
  // Mixed trees: lookup chains sharing the draft's first token, or disjoint from it.
  for (int V : {10, 1000})
    for (const auto& [lookup, lname] : {std::pair{std::vector<int32_t>{-1, 4, 7}, "lookup_shared"},
                                        std::pair{std::vector<int32_t>{3, 1, 4, 1}, "lookup_disjoint"}})
      for (const auto& [sp, sname] : {std::pair{plain, "T1"}, std::pair{warped, "T0.7_topp0.8"}})
        out.push_back({V, {3, 2}, sp, fmt::format("V{}_tree32+{}_{}", V, lname, sname), lookup});
  return out;
}

constexpr int64_t kSamples = 1000000;

}  // namespace

TEST(TreeSampling, EmittedTokensFollowTheTargetDistribution) {
  const auto cfgs = configs();
  const double alpha = 1e-3 / (2.0 * cfgs.size());  // Bonferroni over configurations and tests
  uint64_t seed = 11;
  for (const auto& c : cfgs) {
    const World w(c.vocab, c.sp, seed++);
    const Counts k = run(w, c.widths, kSamples, seed++, speculative_pick, c.lookup);
    const double p1 = chi_square_p(k.first, first_probs(w), kSamples);
    std::printf("[ %s ] first-token p = %.4f", c.name.c_str(), p1);
    EXPECT_GT(p1, alpha) << c.name;
    if (!k.pair.empty()) {
      const double p2 = chi_square_p(k.pair, pair_probs(w), kSamples);
      std::printf(", two-token p = %.4f", p2);
      EXPECT_GT(p2, alpha) << c.name;
    }
    std::printf("\n");
  }
}

TEST(TreeSampling, BrokenResidualIsDetected) {
  // Forgets to remove rejected candidates: the bonus is drawn from the full target again, which
  // over-weights candidates. The same test must reject it.
  const PickFn broken = [](std::vector<float>& p, std::span<const int32_t> cand, std::mt19937_64& rng, int32_t* bonus) {
    std::uniform_real_distribution<double> uni(0.0, 1.0);
    for (size_t i = 0; i < cand.size(); ++i)
      if (uni(rng) < p[cand[i]]) return static_cast<int32_t>(i);
    *bonus = sample_from(p, rng);
    return -1;
  };
  SamplingParams sp;
  sp.temperature = 1.0f;
  for (int V : {10, 1000}) {
    const World w(V, sp, 5);
    const Counts k = run(w, {5}, kSamples, 6, broken);
    const double p = chi_square_p(k.first, first_probs(w), kSamples);
    std::printf("[ broken residual V=%d ] p = %.3g\n", V, p);
    EXPECT_LT(p, 1e-6);
    const Counts m = run(w, {3, 2}, kSamples, 6, broken, {3, 1, 4, 1});  // mixed tree
    const double pm = chi_square_p(m.first, first_probs(w), kSamples);
    std::printf("[ broken residual V=%d, mixed tree ] p = %.3g\n", V, pm);
    EXPECT_LT(pm, 1e-6);
  }
}

TEST(TreeSampling, SeededRunsAreReproducible) {
  SamplingParams sp;
  sp.temperature = 1.0f;
  const World w(1000, sp, 9);
  const Counts a = run(w, {3, 2, 1}, 2000, 42, speculative_pick);
  const Counts b = run(w, {3, 2, 1}, 2000, 42, speculative_pick);
  EXPECT_EQ(a.first, b.first);
}

}  // namespace swift
