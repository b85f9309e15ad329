// Candidate tokens from several draft sources merged into one tree, and the choice of which of
// them a verification pass should carry (issue 8: "speed-aware hybrid draft tree").
//
// Every candidate has p_cond, the estimated probability that verification accepts it given
// that its parent is accepted (acceptance_stats.h), and p_abs, the product along its path: the
// probability that it ends up on the accepted path. In greedy verification at most one child
// of a node is accepted, so the expected number of accepted drafted tokens of any parent-closed
// subset S of candidates is sum_{c in S} p_abs(c), and every pass also yields one bonus token.
//
// Choosing the tree: p_abs never increases from parent to child, so the best subset of m
// candidates is the m largest p_abs (parent-closed automatically; ties broken by index, parents
// come first). `choose` evaluates every m and keeps the one maximising expected tokens per
// millisecond, (1 + sum p_abs) / (spent_ms + cost(1 + m)), where spent_ms is drafting time
// already paid this step. m = 0 is plain decoding: with drafts that are never accepted the
// controller decodes one token per pass and loses nothing but the bookkeeping.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "engine/swift/token_tree.h"

namespace swift {

struct Candidate {
  int32_t token = 0;
  int32_t parent = -1;   // candidate index; -1 for the root
  int32_t depth = 0;
  double p_cond = 1.0;
  double p_abs = 1.0;
  uint8_t sources = 0;   // DraftSource bits
  int lookup_key = -1;   // AcceptanceStats keys of the sources that proposed it
  int draft_key = -1;
};

struct TreeChoice {
  std::vector<int32_t> nodes;  // chosen candidate indices, increasing (0 = root always first)
  double expected_tokens = 1;  // 1 + sum p_abs of the chosen drafted candidates
  double ms = 0;               // spent_ms + cost of the pass
  double rate() const { return ms > 0 ? expected_tokens / ms : 0.0; }
};

class CandidateTree {
 public:
  void reset(int32_t root_token);
  // Adds `token` under `parent`, or merges into the existing child with that token (keeping the
  // larger p_cond and both sources). Returns the candidate index.
  int32_t add(int32_t parent, int32_t token, double p_cond, uint8_t source, int key);

  const std::vector<Candidate>& nodes() const { return nodes_; }
  int32_t size() const { return static_cast<int32_t>(nodes_.size()); }
  int32_t child_with_token(int32_t parent, int32_t token) const;

  // The best tree of at most max_nodes nodes (root included) under cost_ms(n) = cost of a pass
  // over n tokens. A drafted tree must beat plain decoding's rate by the factor 1 + min_gain:
  // estimates are noisy, and a coin-flip gain is a likely loss (issue 8: never below 0.97x).
  TreeChoice choose(double spent_ms, int max_nodes, const std::function<double(int)>& cost_ms,
                    double min_gain = 0.0) const;

  // Materialises a choice as the TokenTree that verification runs; tree node i is candidate
  // choice.nodes[i].
  void to_token_tree(const TreeChoice& choice, TokenTree& out) const;

 private:
  std::vector<Candidate> nodes_;
  std::vector<std::vector<int32_t>> children_;
};

}  // namespace swift
