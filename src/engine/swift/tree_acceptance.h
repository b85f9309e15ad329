// Which drafted tokens a verification pass accepts.
//
// Greedy: walk from the root; at each node the target's argmax must be one of the node's
// children, else it becomes the bonus token. Output equals plain greedy decoding.
//
// Sampling (lossless tree speculative sampling): SWIFT's candidates at a node are the draft's
// top-ranked tokens, i.e. deterministic proposals q = point mass at x. The standard rule
// (Leviathan et al. 2023; SpecInfer's multi-candidate form) then reads: accept x with
// probability min(1, p(x)/q(x)) = p(x) under the current residual p; on rejection p becomes
// norm(max(p - q, 0)), which removes x (rejected siblings are excluded from later draws). If no
// candidate is accepted the bonus token is drawn from the final residual. The token emitted at
// the node is then distributed exactly as p, whatever the candidates were.
#pragma once

#include <cstdint>
#include <functional>
#include <random>
#include <span>
#include <vector>

#include "engine/sampler.h"
#include "engine/swift/token_tree.h"

namespace swift {

struct Acceptance {
  std::vector<int32_t> path;  // accepted node indices, depth 1, 2, ... (root excluded)
  int32_t bonus = -1;         // the target's own token after the last accepted node
};

// target_token(node): the target model's greedy choice after `node`.
Acceptance accept_greedy(const TokenTree& tree, const std::function<int32_t(int32_t node)>& target_token);

// One node of speculative sampling. p: the target distribution (normalised; turned into the
// residual in place). Returns the index into `candidates` of the accepted token, or -1 with
// *bonus drawn from the residual.
int32_t speculative_pick(std::vector<float>& p, std::span<const int32_t> candidates, std::mt19937_64& rng,
                         int32_t* bonus);

using PickFn = std::function<int32_t(std::vector<float>&, std::span<const int32_t>, std::mt19937_64&, int32_t*)>;

// target_dist(node, p): the target distribution after `node` (temperature, top-k/p, ...).
// Candidates at a node are its children in insertion order (spine child first). `pick` exists
// so tests can substitute a deliberately broken rule and see the statistics catch it.
Acceptance accept_sampling(const TokenTree& tree,
                           const std::function<void(int32_t node, std::vector<float>& p)>& target_dist,
                           std::mt19937_64& rng, const PickFn& pick = speculative_pick);

// Acceptance after a verification pass: logits [tree.size(), V] (row i = after node i), the
// sampling parameters (greedy or exact tree speculative sampling) and the committed history
// (for the repetition penalty, which sees the history plus the node's ancestors). Shared by
// every tree-verifying decoder.
Acceptance accept_verified(const TokenTree& tree, const float* logits, int64_t V, const SamplingParams& sampling,
                           const std::vector<int32_t>& history, std::mt19937_64& rng);

}  // namespace swift
