#include "engine/swift/tree_acceptance.h"

#include "engine/sampler.h"
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
  std::uniform_real_distribution<double> uni(0.0, 1.0);
  for (size_t i = 0; i < candidates.size(); ++i) {
    const int32_t x = candidates[i];
    const double px = p[x];
    if (px > 0.0 && uni(rng) < px) return static_cast<int32_t>(i);  // min(1, p(x)/q(x)) with q = point mass
    // Residual norm(max(p - q, 0)): x leaves, the rest is renormalised.
    const double rest = 1.0 - px;
    if (rest <= 0.0) return static_cast<int32_t>(i);  // p was a point mass at x
    p[x] = 0.0f;
    const float inv = static_cast<float>(1.0 / rest);
    for (auto& v : p) v *= inv;
  }
  *bonus = sample_from(p, rng);
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

}  // namespace swift
