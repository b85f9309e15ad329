#include "engine/hybrid/candidate_tree.h"

#include <algorithm>
#include <numeric>

#include "engine/hybrid/acceptance_stats.h"
#include "util/check.h"

namespace swift {

void CandidateTree::reset(int32_t root_token) {
  nodes_.clear();
  for (auto& c : children_) c.clear();
  Candidate root;
  root.token = root_token;
  nodes_.push_back(root);
  if (children_.empty()) children_.emplace_back();
}

int32_t CandidateTree::child_with_token(int32_t parent, int32_t token) const {
  for (int32_t c : children_[parent])
    if (nodes_[c].token == token) return c;
  return -1;
}

int32_t CandidateTree::add(int32_t parent, int32_t token, double p_cond, uint8_t source, int key) {
  SWIFT_CHECK(parent >= 0 && parent < size());
  int32_t idx = child_with_token(parent, token);
  if (idx < 0) {
    idx = size();
    Candidate c;
    c.token = token;
    c.parent = parent;
    c.depth = nodes_[parent].depth + 1;
    c.p_cond = 0.0;
    nodes_.push_back(c);
    if (static_cast<int32_t>(children_.size()) <= idx) children_.resize(idx + 1);
    children_[idx].clear();
    children_[parent].push_back(idx);
  }
  Candidate& c = nodes_[idx];
  c.sources |= source;
  if (source == static_cast<uint8_t>(DraftSource::kLookup)) c.lookup_key = key;
  else c.draft_key = key;
  c.p_cond = std::clamp(std::max(c.p_cond, p_cond), 0.0, 1.0);
  c.p_abs = nodes_[parent].p_abs * c.p_cond;
  // A merge can raise p_cond of a node that already has descendants; refresh them (children
  // always have larger indices).
  for (int32_t i = idx + 1; i < size(); ++i) nodes_[i].p_abs = nodes_[nodes_[i].parent].p_abs * nodes_[i].p_cond;
  return idx;
}

TreeChoice CandidateTree::choose(double spent_ms, int max_nodes, const std::function<double(int)>& cost_ms,
                                 double min_gain) const {
  std::vector<int32_t> order(nodes_.size() - 1);
  std::iota(order.begin(), order.end(), 1);
  std::stable_sort(order.begin(), order.end(), [&](int32_t a, int32_t b) { return nodes_[a].p_abs > nodes_[b].p_abs; });
  // stable_sort keeps index order among equal p_abs, so a parent precedes its equal-p_abs child.
  TreeChoice best;
  best.ms = spent_ms + cost_ms(1);
  best.nodes = {0};
  size_t best_m = 0;
  double sum = 0.0;
  const size_t limit = std::min(order.size(), static_cast<size_t>(std::max(0, max_nodes - 1)));
  for (size_t m = 1; m <= limit; ++m) {
    sum += nodes_[order[m - 1]].p_abs;
    const double ms = spent_ms + cost_ms(static_cast<int>(m) + 1);
    if ((1.0 + sum) / ms > best.rate()) {
      best.expected_tokens = 1.0 + sum;
      best.ms = ms;
      best_m = m;
    }
  }
  if (best_m > 0 && best.rate() < (1.0 + min_gain) / (spent_ms + cost_ms(1))) {
    best.expected_tokens = 1.0;
    best.ms = spent_ms + cost_ms(1);
    best_m = 0;
  }
  best.nodes.assign(order.begin(), order.begin() + static_cast<std::ptrdiff_t>(best_m));
  best.nodes.push_back(0);
  std::sort(best.nodes.begin(), best.nodes.end());
  return best;
}

void CandidateTree::to_token_tree(const TreeChoice& choice, TokenTree& out) const {
  SWIFT_CHECK(!choice.nodes.empty() && choice.nodes[0] == 0);
  std::vector<int32_t> where(nodes_.size(), -1);
  out.reset(nodes_[0].token);
  where[0] = 0;
  for (size_t i = 1; i < choice.nodes.size(); ++i) {
    const Candidate& c = nodes_[choice.nodes[i]];
    SWIFT_CHECK(where[c.parent] >= 0, "chosen candidates are not parent-closed");
    where[choice.nodes[i]] = out.add(where[c.parent], c.token, false);
  }
}

}  // namespace swift
