// The candidate tree SWIFT verifies in one forward pass (Xia et al., ICLR 2025, sec. 3.3
// "dynamic tree verification").
//
// Node 0 is the root: the newest committed token, not yet in the KV cache. Every other node is
// a drafted candidate whose parent has a smaller index, so ancestors always precede
// descendants. In the verification batch node i sits at KV slot n_cached + i and position
// n_cached + depth(i), and sees the committed slots [0, n_cached) plus its ancestors and itself,
// in depth order: exactly the keys, in exactly the order, plain decoding would use for the same
// token path. With the batch-invariant kernels this makes verified logits bit-identical to
// plain decoding, which is why greedy SWIFT output equals greedy plain output.
#pragma once

#include <cstdint>
#include <vector>

#include "model/kv_cache.h"
#include "model/transformer.h"

namespace swift {

struct TreeNode {
  int32_t token = 0;
  int32_t parent = -1;   // -1 for the root
  int32_t depth = 0;     // root = 0
  bool spine = false;    // on the draft's top-1 chain (root counts)
};

class TokenTree {
 public:
  void reset(int32_t root_token);
  // Adds a child of `parent` (which must exist); returns its index.
  int32_t add(int32_t parent, int32_t token, bool spine);

  const std::vector<TreeNode>& nodes() const { return nodes_; }
  int32_t size() const { return static_cast<int32_t>(nodes_.size()); }
  const std::vector<int32_t>& children(int32_t node) const { return children_[node]; }
  // Child of `node` carrying `token`, or -1.
  int32_t child_with_token(int32_t node, int32_t token) const;

  // The verification batch described above; logits for every node.
  ForwardBatch verify_batch(int64_t n_cached) const;

  // After acceptance of `path` (node indices, depth 1, 2, ... in order; root excluded), moves the
  // accepted nodes' K/V from slot n_cached + index to slot n_cached + depth so that the committed
  // sequence is contiguous again. Only accepted tokens are copied, never the whole cache.
  static void compact(KvCache& cache, int64_t n_cached, const std::vector<int32_t>& path,
                      const std::vector<TreeNode>& nodes);

 private:
  std::vector<TreeNode> nodes_;
  std::vector<std::vector<int32_t>> children_;
};

}  // namespace swift
