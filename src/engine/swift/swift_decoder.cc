#include "engine/swift/swift_decoder.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <numeric>

#include "engine/swift/layer_cache.h"
#include "engine/swift/tree_acceptance.h"
#include "ops/elementwise.h"
#include "util/check.h"
#include "util/timer.h"

namespace swift {

SwiftDecoder::SwiftDecoder(const Model& model, const SamplingParams& sampling, const SwiftOptions& opt, ThreadPool& pool)
    : model_(model),
      sampling_(sampling),
      opt_(opt),
      pool_(pool),
      sampler_(sampling),
      rng_(sampling.seed ^ 0x5eedf00dull),
      search_(model.config.n_layer, opt.search),
      full_(SkipPlan::none(model.config.n_layer)) {
  if (opt_.max_draft < 0) fail("--max-draft must be >= 0, got {}", opt_.max_draft);
  if (!(opt_.stop_threshold >= 0.0f && opt_.stop_threshold <= 1.0f))
    fail("--stop-threshold must be in [0, 1], got {}", opt_.stop_threshold);
  if (opt_.context_window < 1) fail("--context-window must be >= 1, got {}", opt_.context_window);
  if (opt_.objective != "matchness" && opt_.objective != "speed")
    fail("--opt-objective must be matchness or speed, got '{}'", opt_.objective);
  for (const auto* ws : {&opt_.greedy_width, &opt_.sampling_width})
    for (int w : *ws)
      if (w < 1 || w > 32) fail("tree widths must be in [1, 32], got {}", w);
  plan_ = opt_.plan ? *opt_.plan : LayerSearch::every_other_layer(model.config.n_layer);
  SWIFT_CHECK(static_cast<int64_t>(plan_.skip_attn.size()) == model.config.n_layer);
}

void SwiftDecoder::start(Sequence& seq, const std::vector<float>& last_logits) {
  seq.tokens.push_back(sampler_.pick(last_logits.data(), model_.config.vocab_size, seq.tokens));
}

int SwiftDecoder::width_for(float conf) const {
  if (!opt_.tree) return 1;
  const auto& w = sampling_.greedy() ? opt_.greedy_width : opt_.sampling_width;
  if (conf > opt_.conf[0]) return w[0];
  if (conf > opt_.conf[1]) return w[1];
  if (conf > opt_.conf[2]) return w[2];
  return w[3];
}

double SwiftDecoder::matchness(Sequence& seq, const SkipPlan& plan) {
  const int64_t W = opt_.context_window, s = seq.n_prompt;
  SWIFT_CHECK(static_cast<int64_t>(seq.tokens.size()) >= s + W && s >= 1);
  SWIFT_CHECK(seq.n_cached + W <= seq.cache.n_slots(), "no scratch room for the matchness window");
  // Inputs: the last prompt token and the first W-1 generated ones, at their real positions,
  // seeing the committed prompt K/V; K/V go to scratch slots past the committed sequence.
  ForwardBatch b;
  b.n_prefix = s - 1;
  for (int64_t i = 0; i < W; ++i) {
    b.tokens.push_back(seq.tokens[s - 1 + i]);
    b.positions.push_back(static_cast<int32_t>(s - 1 + i));
    b.slots.push_back(static_cast<int32_t>(seq.n_cached + i));
    b.logit_rows.push_back(static_cast<int32_t>(i));
  }
  model_.transformer->forward(b, seq.cache, plan, pool_, logits_);
  const int64_t V = model_.config.vocab_size;
  int64_t hit = 0;
  for (int64_t i = 0; i < W; ++i) hit += argmax(logits_.data() + i * V, V) == seq.tokens[s + i];
  return static_cast<double>(hit) / static_cast<double>(W);
}

double SwiftDecoder::estimated_speedup(double alpha, const SkipPlan& plan) const {
  const double cost = kept_weight_fraction(model_.config, plan);
  alpha = std::clamp(alpha, 0.0, 0.999);
  double best = 1.0;
  for (int g = 1; g <= std::max(1, opt_.max_draft); ++g) {
    const double tokens = (1.0 - std::pow(alpha, g + 1)) / (1.0 - alpha);
    best = std::max(best, tokens / (1.0 + g * cost));
  }
  return best;
}

double SwiftDecoder::score(Sequence& seq, const SkipPlan& plan, double* match_out) {
  const double m = matchness(seq, plan);
  *match_out = m;
  return opt_.objective == "speed" ? estimated_speedup(m, plan) : m;
}

void SwiftDecoder::maybe_optimize(Sequence& seq) {
  if (!opt_.optimize || search_.dim() == 0) return;
  if (static_cast<int64_t>(seq.tokens.size()) - seq.n_prompt < opt_.context_window) return;
  if (seeded_ && search_.done()) return;
  const double t0 = now_ms();
  if (!seeded_) {  // the starting plan competes like any proposal
    double m;
    best_score_ = score(seq, plan_, &m);
    best_match_ = m;
    search_.seed(plan_, best_score_);
    seeded_ = true;
    if (opt_.verbose)
      std::fprintf(stderr, "[swift] starting plan: %lld sublayers skipped, matchness %.3f\n",
                   static_cast<long long>(plan_.n_skipped()), m);
  }
  for (int i = 0; i < opt_.opt_per_step && !search_.done(); ++i) {
    const SkipPlan cand = search_.propose();
    double m;
    const double sc = score(seq, cand, &m);
    if (search_.observe(cand, sc)) {
      plan_ = cand;
      best_score_ = sc;
      best_match_ = m;
      if (opt_.verbose)
        std::fprintf(stderr, "[swift] proposal %d: %lld sublayers skipped, matchness %.3f, score %.3f (new best)\n",
                     search_.proposals(), static_cast<long long>(cand.n_skipped()), m, sc);
    }
  }
  opt_ms_ += now_ms() - t0;
}

void SwiftDecoder::draft(Sequence& seq, int64_t max_depth) {
  const int64_t n0 = seq.n_cached, V = model_.config.vocab_size;
  const int64_t room = seq.cache.n_slots() - n0;  // tree nodes must fit the scratch slots
  int32_t parent = 0;
  order_.resize(V);
  for (int64_t d = 0; d < max_depth; ++d) {
    const int32_t token = tree_.nodes()[parent].token;
    model_.transformer->forward(ForwardBatch::causal({token}, n0 + d, false), seq.cache, plan_, pool_, logits_);
    ++draft_steps_;
    probs_.assign(logits_.begin(), logits_.begin() + V);
    softmax(probs_.data(), V);
    const int width = width_for(*std::max_element(probs_.begin(), probs_.end()));
    if (tree_.size() + width > room) break;
    std::iota(order_.begin(), order_.end(), 0);
    std::partial_sort(order_.begin(), order_.begin() + width, order_.end(),
                      [&](int32_t a, int32_t b) { return probs_[a] > probs_[b] || (probs_[a] == probs_[b] && a < b); });
    const float conf = probs_[order_[0]];
    const int32_t spine = tree_.add(parent, order_[0], true);
    for (int k = 1; k < width; ++k) tree_.add(parent, order_[k], false);
    ++drafted_;
    parent = spine;
    if (opt_.early_stop && conf < opt_.stop_threshold) break;
  }
}

void SwiftDecoder::step(Sequence& seq, int64_t budget) {
  maybe_optimize(seq);
  const int64_t n0 = seq.n_cached, V = model_.config.vocab_size;
  SWIFT_CHECK(static_cast<int64_t>(seq.tokens.size()) == n0 + 1);
  tree_.reset(seq.tokens.back());
  const double t0 = now_ms();
  const int64_t max_depth = std::min<int64_t>(opt_.max_draft, budget - 1);
  if (max_depth > 0 && !plan_.empty()) draft(seq, max_depth);
  const double t1 = now_ms();
  model_.transformer->forward(tree_.verify_batch(n0), seq.cache, full_, pool_, logits_);
  ++verify_steps_;
  tree_nodes_ += tree_.size();

  const Acceptance acc = accept_verified(tree_, logits_.data(), V, sampling_, seq.tokens, rng_);
  TokenTree::compact(seq.cache, n0, acc.path, tree_.nodes());
  seq.n_cached = n0 + 1 + static_cast<int64_t>(acc.path.size());
  for (int32_t node : acc.path) seq.tokens.push_back(tree_.nodes()[node].token);
  seq.tokens.push_back(acc.bonus);
  accepted_ += static_cast<int64_t>(acc.path.size());
  committed_ += static_cast<int64_t>(acc.path.size()) + 1;
  draft_ms_ += t1 - t0;
  verify_ms_ += now_ms() - t1;
}

void SwiftDecoder::report(GenerateStats& s) const {
  s.extra["acceptance_rate"] = drafted_ ? static_cast<double>(accepted_) / drafted_ : 0.0;
  s.extra["mean_accepted_per_step"] = verify_steps_ ? static_cast<double>(committed_) / verify_steps_ : 0.0;
  s.extra["draft_steps"] = static_cast<double>(draft_steps_);
  s.extra["drafted_tokens"] = static_cast<double>(drafted_);
  s.extra["accepted_tokens"] = static_cast<double>(accepted_);
  s.extra["verify_steps"] = static_cast<double>(verify_steps_);
  s.extra["mean_tree_size"] = verify_steps_ ? static_cast<double>(tree_nodes_) / verify_steps_ : 0.0;
  s.extra["opt_proposals"] = search_.proposals();
  s.extra["best_matchness"] = best_match_;
  s.extra["optimization_ms"] = opt_ms_;
  s.extra["draft_ms"] = draft_ms_;
  s.extra["verify_ms"] = verify_ms_;
  s.extra["skipped_sublayers"] = static_cast<double>(plan_.n_skipped());
}

}  // namespace swift
