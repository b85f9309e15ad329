#include "engine/swift/token_tree.h"

#include "util/check.h"

namespace swift {

void TokenTree::reset(int32_t root_token) {
  nodes_.clear();
  for (auto& c : children_) c.clear();
  nodes_.push_back({root_token, -1, 0, true});
  if (children_.empty()) children_.emplace_back();
}

int32_t TokenTree::add(int32_t parent, int32_t token, bool spine) {
  SWIFT_CHECK(parent >= 0 && parent < size());
  const int32_t idx = size();
  nodes_.push_back({token, parent, nodes_[parent].depth + 1, spine});
  if (static_cast<int32_t>(children_.size()) <= idx) children_.resize(idx + 1);
  children_[idx].clear();
  children_[parent].push_back(idx);
  return idx;
}

int32_t TokenTree::child_with_token(int32_t node, int32_t token) const {
  for (int32_t c : children_[node])
    if (nodes_[c].token == token) return c;
  return -1;
}

ForwardBatch TokenTree::verify_batch(int64_t n_cached) const {
  const int32_t n = size();
  ForwardBatch b;
  b.n_prefix = n_cached;
  b.mask.assign(static_cast<size_t>(n) * n, 0);
  for (int32_t i = 0; i < n; ++i) {
    b.tokens.push_back(nodes_[i].token);
    b.positions.push_back(static_cast<int32_t>(n_cached + nodes_[i].depth));
    b.slots.push_back(static_cast<int32_t>(n_cached + i));
    b.logit_rows.push_back(i);
    for (int32_t a = i; a >= 0; a = nodes_[a].parent) b.mask[static_cast<size_t>(i) * n + a] = 1;
  }
  return b;
}

void TokenTree::compact(KvCache& cache, int64_t n_cached, const std::vector<int32_t>& path,
                        const std::vector<TreeNode>& nodes) {
  // Targets n_cached + d are visited in increasing d, and every source n_cached + path[d'] with
  // d' > d satisfies path[d'] >= d' > d, so no pending source is overwritten.
  for (size_t d = 0; d < path.size(); ++d) {
    SWIFT_CHECK(nodes[path[d]].depth == static_cast<int32_t>(d + 1));
    cache.move_slot(n_cached + path[d], n_cached + static_cast<int64_t>(d) + 1);
  }
}

}  // namespace swift
