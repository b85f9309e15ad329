#include "engine/swift/tree_acceptance.h"

#include "util/check.h"

namespace swift {

Acceptance accept_greedy(const TokenTree& tree, const std::function<int32_t(int32_t)>& target_token) {
  Acceptance a;
  int32_t cur = 0;
  for (;;) {
    const int32_t t = target_token(cur);
    const int32_t child = tree.child_with_token(cur, t);
    if (child < 0) {
      a.bonus = t;
      return a;
    }
    a.path.push_back(child);
    cur = child;
  }
}

int32_t speculative_pick(std::vector<float>& p, std::span<const int32_t> candidates, std::mt19937_64& rng,
                         int32_t* bonus) {
  // The residual is kept unnormalised with its total `mass`: removing a rejected x costs O(1),
  // and only the final bonus draw touches the whole vocabulary.
  std::uniform_real_distribution<double> uni(0.0, 1.0);
  double mass = 1.0;
  for (size_t i = 0; i < candidates.size(); ++i) {
    const int32_t x = candidates[i];
    const double px = p[x];
    if (px <= 0.0) continue;
    // min(1, p(x)/q(x)) with q = point mass at x, p normalised by the current mass.
    if (uni(rng) * mass < px) return static_cast<int32_t>(i);
    // Residual norm(max(p - q, 0)): x leaves the distribution.
    mass -= px;
    p[x] = 0.0f;
    if (mass <= 0.0) return static_cast<int32_t>(i);  // p was a point mass at x (rounding)
  }
  const double u = uni(rng) * mass;
  double cum = 0.0;
  int32_t last = -1;
  for (size_t v = 0; v < p.size(); ++v) {
    if (p[v] <= 0.0f) continue;
    cum += p[v];
    last = static_cast<int32_t>(v);
    if (u < cum) break;
  }
  SWIFT_CHECK(last >= 0, "empty residual distribution");
  *bonus = last;
  return -1;
}

Acceptance accept_sampling(const TokenTree& tree, const std::function<void(int32_t, std::vector<float>&)>& target_dist,
                           std::mt19937_64& rng, const PickFn& pick) {
  Acceptance a;
  std::vector<float> p;
  std::vector<int32_t> cand;
  int32_t cur = 0;
  for (;;) {
    target_dist(cur, p);
    cand.clear();
    for (int32_t c : tree.children(cur)) cand.push_back(tree.nodes()[c].token);
    int32_t bonus = -1;
    const int32_t k = pick(p, cand, rng, &bonus);
    if (k < 0) {
      SWIFT_CHECK(bonus >= 0);
      a.bonus = bonus;
      return a;
    }
    cur = tree.children(cur)[k];
    a.path.push_back(cur);
  }
}

Acceptance accept_verified(const TokenTree& tree, const float* logits, int64_t V, const SamplingParams& sampling,
                           const std::vector<int32_t>& history, std::mt19937_64& rng) {
  const bool penalty = sampling.repetition_penalty != 1.0f;
  std::vector<float> work;
  auto node_logits = [&](int32_t node) -> const float* {
    const float* l = logits + static_cast<int64_t>(node) * V;
    if (!penalty) return l;
    std::vector<int32_t> path;
    for (int32_t a = node; a > 0; a = tree.nodes()[a].parent) path.push_back(tree.nodes()[a].token);
    std::vector<int32_t> h(history);
    h.insert(h.end(), path.rbegin(), path.rend());
    work.assign(l, l + V);
    apply_repetition_penalty(work.data(), V, h, sampling.repetition_penalty);
    return work.data();
  };
  if (sampling.greedy()) return accept_greedy(tree, [&](int32_t node) { return argmax(node_logits(node), V); });
  return accept_sampling(
      tree, [&](int32_t node, std::vector<float>& p) { sampling_distribution(node_logits(node), V, sampling, p); }, rng);
}

}  // namespace swift
