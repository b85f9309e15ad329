// SWIFT: on-the-fly self-speculative decoding (Xia et al., ICLR 2025) as a Decoder.
//
// Each step:
//  1. (optimisation phase) score `opt_per_step` proposed skip plans on the context window and
//     keep the best (layer_search.h);
//  2. draft chain-wise with the current plan from the newest token, at most `max_draft` tokens,
//     stopping once the draft's top-1 probability drops below `stop_threshold`; each depth adds
//     its top-ranked tokens as siblings, how many set by that depth's confidence;
//  3. verify the whole tree in one forward of the full model (token_tree.h), accept the longest
//     matching path plus one bonus token (tree_acceptance.h), compact the accepted K/V.
//
// Where the reference implementation loses its speedup, and what this one does instead:
//  * no KV-cache copies: drafts and the matchness window write scratch slots past the committed
//    sequence, verification overwrites them, rejection is a length change, and only accepted
//    nodes' K/V are moved (compaction);
//  * optimisation runs only while the search is live: it stops at the paper's criteria
//    (score > opt_max_score, opt_max_tolerance proposals without gain, opt_max_iter), a cached
//    plan skips it entirely, and its time is inside the reported decode time.
#pragma once

#include <array>
#include <optional>
#include <string>

#include "engine/generation.h"
#include "engine/swift/layer_search.h"
#include "engine/swift/token_tree.h"

namespace swift {

struct SwiftOptions {
  int max_draft = 25;
  float stop_threshold = 0.8f;
  bool early_stop = true;
  bool tree = true;
  // Candidates per depth by the depth's top-1 confidence: > conf[0], > conf[1], > conf[2], else.
  std::array<float, 3> conf = {0.95f, 0.8f, 0.5f};
  std::array<int, 4> greedy_width = {3, 5, 8, 10};
  std::array<int, 4> sampling_width = {1, 3, 5, 10};

  bool optimize = true;
  int context_window = 50;
  std::string objective = "matchness";  // matchness (paper) | speed (expected tokens per unit time)
  LayerSearchParams search;
  int opt_per_step = 1;  // proposals scored per decoding step while optimising (paper: 1)
  std::optional<SkipPlan> plan;  // starting plan (cached or given); default: every other layer
  bool verbose = false;          // log each optimisation improvement to stderr
};

class SwiftDecoder : public Decoder {
 public:
  SwiftDecoder(const Model& model, const SamplingParams& sampling, const SwiftOptions& opt, ThreadPool& pool);

  void start(Sequence& seq, const std::vector<float>& last_logits) override;
  void step(Sequence& seq, int64_t budget) override;
  void report(GenerateStats& stats) const override;

  const SkipPlan& plan() const { return plan_; }
  double best_score() const { return best_score_; }
  bool optimized() const { return search_.proposals() > 0; }

  // Fraction of matching positions when `plan` drafts the context window (public for tests).
  double matchness(Sequence& seq, const SkipPlan& plan);
  // Expected speed-up of chain drafting at acceptance `alpha` for `plan` (memory-bound model:
  // a draft step costs the kept fraction of weight bytes, verification about one full step).
  double estimated_speedup(double alpha, const SkipPlan& plan) const;

 private:
  void maybe_optimize(Sequence& seq);
  double score(Sequence& seq, const SkipPlan& plan, double* match_out);
  void draft(Sequence& seq, int64_t max_depth);
  int width_for(float conf) const;

  const Model& model_;
  SamplingParams sampling_;
  SwiftOptions opt_;
  ThreadPool& pool_;
  Sampler sampler_;
  std::mt19937_64 rng_;
  LayerSearch search_;
  SkipPlan plan_;
  SkipPlan full_;
  double best_score_ = -1.0, best_match_ = -1.0;
  bool seeded_ = false;
  TokenTree tree_;
  std::vector<float> logits_, probs_;
  std::vector<int32_t> order_;

  // statistics
  int64_t draft_steps_ = 0, drafted_ = 0, accepted_ = 0, verify_steps_ = 0, tree_nodes_ = 0, committed_ = 0;
  double opt_ms_ = 0, draft_ms_ = 0, verify_ms_ = 0;
};

}  // namespace swift
