// Hybrid speculative decoding (issue 8): prompt-lookup continuations and SWIFT's layer-skip
// draft merged into one token tree, verified in one pass, with a controller that sizes the tree
// by measured cost and learned acceptance.
//
// Each step:
//  1. lookup: continuations of the newest n-gram's earlier occurrences (ngram_index.h), free;
//  2. layer-skip drafting (only with a skip plan): one draft forward per depth from the newest
//     token, its top-1 as the spine and lower ranks as siblings. Before every draft forward the
//     controller compares the expected tokens per millisecond of stopping now with drafting one
//     more (the draft step's measured cost against its learned acceptance); on this 2-core CPU
//     and a 24-layer model it usually declines, which is the right answer;
//  3. tree choice (candidate_tree.h): the subset maximising expected tokens per ms under the
//     measured cost of a pass over n tokens (forward_cost.h) -- possibly just the root, which is
//     plain decoding; a request whose drafts have lost more than they won raises the bar
//     (gain_ledger.h);
//  4. one verification pass with the tree mask, greedy or exact speculative sampling
//     (tree_acceptance.h; a lookup token is a deterministic proposal like a draft sibling), K/V
//     compaction of the accepted path (no cache copies);
//  5. learning: every candidate whose parent ended on the realised path is scored against the
//     token the target produced there, whether or not it was verified (counterfactual updates
//     are free and keep the estimates alive while the controller decodes plainly).
//
// Mode `lookup` is the same machinery without controller and layer-skip: the best continuation,
// up to `lookup_tokens`, is always verified (the HF / vLLM / llama.cpp prompt-lookup baseline).
//
// HybridShared carries what outlives one generation: the cost model (calibrated once per
// process) and the acceptance statistics, so later requests start from what earlier ones learnt.
#pragma once

#include <optional>
#include <random>

#include "engine/forward_cost.h"
#include "engine/generation.h"
#include "engine/hybrid/acceptance_stats.h"
#include "engine/hybrid/candidate_tree.h"
#include "engine/hybrid/gain_ledger.h"
#include "engine/lookup/ngram_index.h"
#include "engine/swift/token_tree.h"

namespace swift {

struct HybridOptions {
  bool controller = true;      // false: fixed trees (the `lookup` baseline)
  int ngram_min = 1, ngram_max = 4;
  int lookup_tokens = 16;      // longest continuation copied per match
  int lookup_branches = 3;     // alternative continuations offered to the controller
  bool shared_cache = true;    // also look up earlier requests' text (HybridShared::cache)
  std::optional<SkipPlan> plan;  // layer-skip drafting needs a plan (hand-given or cached)
  int min_draft = 0;           // layer-skip tokens drafted every step whatever the controller says
  int max_draft = 16;          // layer-skip draft depth limit per step (the controller stops earlier)
  int draft_siblings = 3;      // candidates per draft depth (top-1 + siblings)
  int max_tree = 32;           // nodes per verification pass, root included
  double min_gain = 0.03;      // a drafted tree must promise this much over plain decoding
  bool verbose = false;
  // Throws swift::Error naming the option when a value is out of range.
  void validate() const;
};

struct HybridShared {
  ForwardCost cost;
  AcceptanceStats stats;
  // Token history of finished generations (prompt + output), looked up when the request's own
  // history has fewer matches than lookup_branches (issue 8: "an n-gram cache shared across
  // requests"); n >= 2 only, cleared past kCacheTokens.
  NgramIndex cache{2, 4};
  static constexpr int64_t kCacheTokens = 1 << 20;
  double draft_ms = -1;  // moving average of one layer-skip draft forward (-1: none yet)
  // Calibrates `cost` on a synthetic 256-token context (used at model load by the CLI).
  void calibrate(const Model& model, ThreadPool& pool, int max_tree);
};

class HybridDecoder : public Decoder {
 public:
  HybridDecoder(const Model& model, const SamplingParams& sampling, const HybridOptions& opt, ThreadPool& pool,
                HybridShared& shared);

  void start(Sequence& seq, const std::vector<float>& last_logits) override;
  void step(Sequence& seq, int64_t budget) override;
  void report(GenerateStats& stats) const override;

 private:
  void add_lookup(const Sequence& seq, int64_t max_depth);
  double draft_step_ms() const;
  // Layer-skip drafting under the controller; returns the milliseconds spent.
  double draft(Sequence& seq, int64_t max_depth);
  void learn(const std::vector<int32_t>& realised);

  const Model& model_;
  SamplingParams sampling_;
  HybridOptions opt_;
  ThreadPool& pool_;
  HybridShared& shared_;
  Sampler sampler_;
  std::mt19937_64 rng_;
  NgramIndex index_;
  SkipPlan full_;
  CandidateTree cands_;
  GainLedger ledger_;  // what this request's drafted trees really won or lost (gain_ledger.h)
  TokenTree tree_;
  std::vector<int32_t> chosen_;          // tree node -> candidate index
  std::vector<float> logits_, probs_;
  std::vector<int32_t> order_;
  int32_t spine_first_ = -1;             // candidate index of this step's depth-1 draft token
  int64_t steps_since_draft_ = 0, probe_interval_ = 16;
  bool hot_ = false;                     // the previous step accepted a long lookup run

  // statistics
  int64_t verify_steps_ = 0, plain_steps_ = 0, tree_nodes_ = 0, drafted_ = 0, accepted_ = 0, committed_ = 0;
  int64_t draft_steps_ = 0, accepted_lookup_ = 0, accepted_skip_ = 0, accepted_both_ = 0;
  double draft_ms_ = 0, verify_ms_ = 0, control_ms_ = 0;
  // Accepted drafted tokens the controller expected of the trees it sent (sum of their p_abs):
  // against accepted_, how well the shared statistics fit this request.
  double predicted_ = 0;
};

}  // namespace swift
