#include "engine/hybrid/hybrid_decoder.h"

#include <algorithm>
#include <cstdio>
#include <numeric>

#include "engine/swift/tree_acceptance.h"
#include "ops/elementwise.h"
#include "util/check.h"
#include "util/timer.h"

namespace swift {

namespace {
constexpr uint8_t kLookupBit = static_cast<uint8_t>(DraftSource::kLookup);
constexpr uint8_t kSkipBit = static_cast<uint8_t>(DraftSource::kLayerSkip);
constexpr int64_t kMaxProbeInterval = 1024;
constexpr int64_t kHotRun = 3;  // accepted lookup tokens in one step that mark a copy in progress

std::vector<int> sizes_up_to(int max_tree) {
  std::vector<int> s;
  for (int n : ForwardCost::default_sizes())
    if (n <= max_tree) s.push_back(n);
  if (s.empty() || s.back() != max_tree) s.push_back(max_tree);
  return s;
}
}  // namespace

void HybridOptions::validate() const {
  if (ngram_min < 1 || ngram_max < ngram_min || ngram_max > 16)
    fail("--ngram-min/--ngram-max must satisfy 1 <= min <= max <= 16, got {}..{}", ngram_min, ngram_max);
  if (lookup_tokens < 0 || lookup_tokens > 64) fail("--lookup-tokens must be in [0, 64], got {}", lookup_tokens);
  if (lookup_branches < 1 || lookup_branches > 16)
    fail("--lookup-branches must be in [1, 16], got {}", lookup_branches);
  if (max_draft < 0 || max_draft > 64) fail("--max-draft must be in [0, 64], got {}", max_draft);
  if (min_draft < 0 || min_draft > max_draft)
    fail("--min-draft must be in [0, max draft {}], got {}", max_draft, min_draft);
  if (draft_siblings < 1 || draft_siblings > 16)
    fail("--draft-siblings must be in [1, 16], got {}", draft_siblings);
  if (max_tree < 1 || max_tree > 64) fail("--max-tree must be in [1, 64], got {}", max_tree);
  if (!controller && 1 + lookup_tokens > max_tree)
    fail("--lookup-tokens {} does not fit --max-tree {} (root + continuation)", lookup_tokens, max_tree);
  if (!(min_gain >= 0.0 && min_gain <= 1.0)) fail("min gain must be in [0, 1], got {}", min_gain);
}

void HybridShared::calibrate(const Model& model, ThreadPool& pool, int max_tree) {
  const int64_t n_ctx = std::min<int64_t>(256, model.config.max_positions - 1);
  SWIFT_CHECK(n_ctx >= 1);
  Sequence seq(model, n_ctx, kScratchSlots);
  for (int64_t i = 0; i < n_ctx; ++i) seq.tokens.push_back(static_cast<int32_t>((i * 131 + 7) % model.config.vocab_size));
  std::vector<float> logits;
  model.transformer->forward(ForwardBatch::causal(seq.tokens, 0, false), seq.cache, SkipPlan::none(model.config.n_layer),
                             pool, logits);
  seq.n_cached = n_ctx;
  cost.calibrate(model, seq, pool, sizes_up_to(max_tree), 3);
}

HybridDecoder::HybridDecoder(const Model& model, const SamplingParams& sampling, const HybridOptions& opt,
                             ThreadPool& pool, HybridShared& shared)
    : model_(model),
      sampling_(sampling),
      opt_(opt),
      pool_(pool),
      shared_(shared),
      sampler_(sampling),
      rng_(sampling.seed ^ 0x6879627269646eull),
      index_(opt.ngram_min, opt.ngram_max),
      full_(SkipPlan::none(model.config.n_layer)) {
  opt_.validate();
  if (opt_.plan) SWIFT_CHECK(static_cast<int64_t>(opt_.plan->skip_attn.size()) == model.config.n_layer);
}

void HybridDecoder::start(Sequence& seq, const std::vector<float>& last_logits) {
  if (opt_.controller && (!shared_.cost.calibrated() || shared_.cost.max_tokens() < opt_.max_tree))
    shared_.cost.calibrate(model_, seq, pool_, sizes_up_to(opt_.max_tree), 3);
  seq.tokens.push_back(sampler_.pick(last_logits.data(), model_.config.vocab_size, seq.tokens));
}

void HybridDecoder::add_lookup(const Sequence& seq, int64_t max_depth) {
  const int len = static_cast<int>(std::min<int64_t>(opt_.lookup_tokens, max_depth));
  if (len <= 0) return;
  index_.sync(seq.tokens);
  const int branches = opt_.controller ? opt_.lookup_branches : 1;
  const auto matches = index_.lookup(seq.tokens, len, branches);
  auto add = [&](const NgramMatch& m, int kind) {
    int32_t parent = 0;
    for (size_t d = 0; d < m.tokens.size(); ++d) {
      const int key = AcceptanceStats::lookup_key(m.n, static_cast<int>(d) + 1, kind, hot_);
      parent = cands_.add(parent, m.tokens[d], shared_.stats.rate(key), kLookupBit, key);
    }
  };
  for (size_t b = 0; b < matches.size(); ++b) add(matches[b], b == 0 ? AcceptanceStats::kBest : AcceptanceStats::kAlternative);
  if (opt_.controller && opt_.shared_cache && static_cast<int>(matches.size()) < branches && shared_.cache.size() > 0)
    for (const auto& m : shared_.cache.lookup(seq.tokens, len, branches - static_cast<int>(matches.size())))
      add(m, AcceptanceStats::kCrossRequest);
}

double HybridDecoder::draft_step_ms() const {
  if (shared_.draft_ms > 0) return shared_.draft_ms;
  return shared_.cost.ms(1) * kept_weight_fraction(model_.config, *opt_.plan);
}

double HybridDecoder::draft(Sequence& seq, int64_t max_depth) {
  if (!opt_.controller || !opt_.plan || opt_.plan->empty()) return 0.0;
  const int64_t n0 = seq.n_cached, V = model_.config.vocab_size;
  const AcceptanceStats& st = shared_.stats;
  auto cost = [&](int n) { return shared_.cost.ms(n); };
  const bool probe = steps_since_draft_ >= probe_interval_;
  bool natural = false;
  double spent = 0.0;
  int32_t tip = 0;
  float last_conf = 0.0f;
  order_.resize(V);
  int64_t d = 0;
  for (; d < std::min<int64_t>(max_depth, opt_.max_draft); ++d) {
    // Stop now, or pay one more draft forward for a spine token accepted with probability est?
    const double est = d == 0 ? st.rate(AcceptanceStats::draft_first_key()) : st.rate(AcceptanceStats::draft_key(last_conf, 0));
    const TreeChoice now = cands_.choose(spent, opt_.max_tree, cost);
    const int n_more = std::min<int>(opt_.max_tree, static_cast<int>(now.nodes.size()) + 1);
    const double more = (now.expected_tokens + cands_.nodes()[tip].p_abs * est) / (spent + draft_step_ms() + cost(n_more));
    const bool worth = more > now.rate();
    if (d == 0) natural = worth;
    if (!worth && !(probe && d == 0) && d >= opt_.min_draft) break;
    const double t0 = now_ms();
    model_.transformer->forward(ForwardBatch::causal({cands_.nodes()[tip].token}, n0 + d, false), seq.cache, *opt_.plan,
                                pool_, logits_);
    probs_.assign(logits_.begin(), logits_.begin() + V);
    softmax(probs_.data(), V);
    const int width = opt_.draft_siblings;
    std::iota(order_.begin(), order_.end(), 0);
    std::partial_sort(order_.begin(), order_.begin() + width, order_.end(),
                      [&](int32_t a, int32_t b) { return probs_[a] > probs_[b] || (probs_[a] == probs_[b] && a < b); });
    const float conf = probs_[order_[0]];
    const int32_t parent = tip;
    for (int r = 0; r < width; ++r) {
      const int key = AcceptanceStats::draft_key(conf, r);
      const int32_t c = cands_.add(parent, order_[r], st.rate(key), kSkipBit, key);
      if (r == 0) tip = c;
    }
    if (d == 0) spine_first_ = tip;
    last_conf = conf;
    const double dt = now_ms() - t0;
    shared_.draft_ms = shared_.draft_ms > 0 ? 0.9 * shared_.draft_ms + 0.1 * dt : dt;
    spent += dt;
    ++draft_steps_;
  }
  if (d > 0) {
    steps_since_draft_ = 0;
    // A probe that the controller would not have chosen backs off exponentially, so a plan that
    // never pays costs one draft forward per ~kMaxProbeInterval steps.
    probe_interval_ = natural ? 16 : std::min(kMaxProbeInterval, probe_interval_ * 2);
  } else {
    ++steps_since_draft_;
  }
  return spent;
}

void HybridDecoder::learn(const std::vector<int32_t>& realised) {
  const auto& nodes = cands_.nodes();
  std::vector<uint8_t> on_path(nodes.size(), 0);
  on_path[0] = 1;
  for (size_t c = 1; c < nodes.size(); ++c) {
    const Candidate& n = nodes[c];
    if (!on_path[n.parent] || n.depth > static_cast<int32_t>(realised.size())) continue;
    const bool hit = n.token == realised[n.depth - 1];
    if (n.lookup_key >= 0) shared_.stats.observe(n.lookup_key, hit);
    if (n.draft_key >= 0) shared_.stats.observe(n.draft_key, hit);
    if (static_cast<int32_t>(c) == spine_first_) shared_.stats.observe(AcceptanceStats::draft_first_key(), hit);
    on_path[c] = hit;
  }
}

void HybridDecoder::step(Sequence& seq, int64_t budget) {
  const int64_t n0 = seq.n_cached, V = model_.config.vocab_size;
  SWIFT_CHECK(static_cast<int64_t>(seq.tokens.size()) == n0 + 1);
  const int64_t max_depth = std::min<int64_t>(budget - 1, opt_.max_tree - 1);
  const double t0 = now_ms();
  cands_.reset(seq.tokens.back());
  spine_first_ = -1;
  add_lookup(seq, max_depth);
  const double spent = max_depth > 0 ? draft(seq, max_depth) : 0.0;
  TreeChoice choice;
  if (opt_.controller) {
    choice = cands_.choose(spent, opt_.max_tree, [&](int n) { return shared_.cost.ms(n); },
                           ledger_.min_gain(opt_.min_gain));
  } else {
    choice.nodes.resize(cands_.size());
    std::iota(choice.nodes.begin(), choice.nodes.end(), 0);
  }
  cands_.to_token_tree(choice, tree_);
  if (tree_.size() > 1) predicted_ += choice.expected_tokens - 1.0;
  const double t1 = now_ms();

  model_.transformer->forward(tree_.verify_batch(n0), seq.cache, full_, pool_, logits_);
  const double t2 = now_ms();
  const double pass_ms = shared_.cost.observe(tree_.size(), t2 - t1);  // stalls clamped
  const Acceptance acc = accept_verified(tree_, logits_.data(), V, sampling_, seq.tokens, rng_);
  TokenTree::compact(seq.cache, n0, acc.path, tree_.nodes());
  // The ledger judges the pass by what it took, not by the cost model's estimate (gain_ledger.h).
  if (opt_.controller)
    ledger_.record(tree_.size(), static_cast<int64_t>(acc.path.size()), pass_ms, shared_.cost.ms(1), spent);
  seq.n_cached = n0 + 1 + static_cast<int64_t>(acc.path.size());
  std::vector<int32_t> realised;
  for (int32_t node : acc.path) {
    realised.push_back(tree_.nodes()[node].token);
    const uint8_t src = cands_.nodes()[choice.nodes[node]].sources;
    accepted_lookup_ += src == kLookupBit;
    accepted_skip_ += src == kSkipBit;
    accepted_both_ += src == (kLookupBit | kSkipBit);
  }
  realised.push_back(acc.bonus);
  int64_t run = 0;  // accepted tokens proposed by lookup, from the root on
  while (run < static_cast<int64_t>(acc.path.size()) && (cands_.nodes()[choice.nodes[acc.path[run]]].sources & kLookupBit))
    ++run;
  hot_ = run >= kHotRun;
  seq.tokens.insert(seq.tokens.end(), realised.begin(), realised.end());
  if (opt_.controller) learn(realised);

  ++verify_steps_;
  plain_steps_ += tree_.size() == 1;
  tree_nodes_ += tree_.size();
  drafted_ += tree_.size() - 1;
  accepted_ += static_cast<int64_t>(acc.path.size());
  committed_ += static_cast<int64_t>(realised.size());
  draft_ms_ += spent;
  control_ms_ += (t1 - t0) - spent + (now_ms() - t2);
  verify_ms_ += t2 - t1;
}

void HybridDecoder::report(GenerateStats& s) const {
  // The generation is over: its text joins the cross-request cache.
  if (opt_.controller && opt_.shared_cache && index_.size() > 0) {
    if (shared_.cache.size() + index_.size() > HybridShared::kCacheTokens) shared_.cache.clear();
    shared_.cache.append(index_.history());
  }
  s.extra["acceptance_rate"] = drafted_ ? static_cast<double>(accepted_) / drafted_ : 0.0;
  s.extra["mean_accepted_per_step"] = verify_steps_ ? static_cast<double>(committed_) / verify_steps_ : 0.0;
  s.extra["verify_steps"] = static_cast<double>(verify_steps_);
  s.extra["plain_steps"] = static_cast<double>(plain_steps_);
  s.extra["mean_tree_size"] = verify_steps_ ? static_cast<double>(tree_nodes_) / verify_steps_ : 0.0;
  s.extra["drafted_tokens"] = static_cast<double>(drafted_);
  s.extra["accepted_tokens"] = static_cast<double>(accepted_);
  s.extra["predicted_accepted_tokens"] = predicted_;
  s.extra["accepted_lookup"] = static_cast<double>(accepted_lookup_);
  s.extra["accepted_layer_skip"] = static_cast<double>(accepted_skip_);
  s.extra["accepted_both"] = static_cast<double>(accepted_both_);
  s.extra["draft_steps"] = static_cast<double>(draft_steps_);
  s.extra["draft_ms"] = draft_ms_;
  s.extra["verify_ms"] = verify_ms_;
  s.extra["control_ms"] = control_ms_;
  s.extra["draft_balance_passes"] = ledger_.balance();
  s.extra["cost_calibration_ms"] = shared_.cost.calibration_ms();
}

}  // namespace swift
