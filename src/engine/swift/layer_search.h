// SWIFT's layer-set search (Xia et al., ICLR 2025, sec. 3.2 "context-based layer set
// optimization"), independent of any model: it proposes skip plans and learns from the scores
// the caller measures.
//
// Search space: the attention and MLP sublayers of layers 1..L-2 (the first and last layer always
// run), encoded as a 0/1 vector of length D = 2(L-2) (1 = skipped; attention first). A proposal
// skips k = int(D * ratio) sublayers: a uniformly random k-subset, except every
// `bayes_interval`-th proposal, which is the top-k coordinates of the GP-UCB suggestion fitted
// to all scores so far. The best plan is kept; the search ends when the best score exceeds
// `max_score`, after `max_tolerance` proposals without gain, or after `max_iter` proposals.
// With `ratio_min < ratio_max` the proposal size is drawn per proposal from that range (used when
// the score is an estimated speed rather than matchness at a fixed ratio).
#pragma once

#include <cstdint>
#include <random>
#include <set>
#include <vector>

#include "engine/swift/gaussian_process.h"
#include "model/skip_plan.h"

namespace swift {

struct LayerSearchParams {
  double skip_ratio = 0.45;
  double ratio_min = 0.0, ratio_max = 0.0;  // equal: fixed ratio skip_ratio
  int bayes_interval = 25;
  double max_score = 0.93;
  int max_tolerance = 300;
  int max_iter = 1000;
  double kappa = 2.5;
  double noise = 1e-2;
  uint64_t seed = 0;
};

class LayerSearch {
 public:
  LayerSearch(int64_t n_layer, LayerSearchParams p);

  bool done() const;
  // The next plan to score. Plans already scored are not proposed twice (a repeated random draw
  // is redrawn; a repeated Bayesian suggestion falls back to a random draw).
  SkipPlan propose();
  // Records the score of a proposed plan; returns true when it is a new best.
  bool observe(const SkipPlan& plan, double score);
  // Seeds the search with a known plan and score (the starting plan), without counting a proposal.
  void seed(const SkipPlan& plan, double score);

  const SkipPlan& best() const { return best_; }
  double best_score() const { return best_score_; }
  int proposals() const { return proposals_; }
  int since_gain() const { return since_gain_; }
  int64_t dim() const { return dim_; }

  // Skips attention and MLP of layers 1, 3, 5, ... < L-1: the reference code's starting plan.
  static SkipPlan every_other_layer(int64_t n_layer);
  std::vector<uint8_t> encode(const SkipPlan& plan) const;
  SkipPlan decode(const std::vector<uint8_t>& bits) const;

 private:
  int64_t draw_k();
  std::vector<uint8_t> random_bits(int64_t k);
  std::vector<uint8_t> bayes_bits(int64_t k);

  int64_t n_layer_, dim_;
  LayerSearchParams p_;
  std::mt19937_64 rng_;
  std::vector<std::vector<uint8_t>> xs_;  // observed plans
  std::vector<double> ys_;                // their scores
  std::set<std::vector<uint8_t>> seen_;
  SkipPlan best_;
  double best_score_ = -1.0;
  int proposals_ = 0;
  int since_gain_ = 0;
};

}  // namespace swift
