#include "engine/sampler.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "ops/elementwise.h"
#include "util/check.h"

namespace swift {

void SamplingParams::validate() const {
  if (!(temperature >= 0.0f) || !std::isfinite(temperature)) fail("temperature must be >= 0, got {}", temperature);
  if (top_k < 0) fail("top_k must be >= 0, got {}", top_k);
  if (!(top_p > 0.0f && top_p <= 1.0f)) fail("top_p must be in (0, 1], got {}", top_p);
  if (!(min_p >= 0.0f && min_p < 1.0f)) fail("min_p must be in [0, 1), got {}", min_p);
  if (!(repetition_penalty > 0.0f) || !std::isfinite(repetition_penalty))
    fail("repetition_penalty must be > 0, got {}", repetition_penalty);
}

void apply_repetition_penalty(float* logits, int64_t n_vocab, std::span<const int32_t> history, float penalty) {
  if (penalty == 1.0f) return;
  // transformers RepetitionPenaltyLogitsProcessor: each distinct id once.
  std::vector<uint8_t> seen(n_vocab, 0);
  for (int32_t id : history) {
    if (id < 0 || id >= n_vocab || seen[id]) continue;
    seen[id] = 1;
    logits[id] = logits[id] < 0 ? logits[id] * penalty : logits[id] / penalty;
  }
}

int32_t argmax(const float* x, int64_t n) { return static_cast<int32_t>(argmax_first(x, n)); }

void sampling_distribution(const float* logits, int64_t n, const SamplingParams& p, std::vector<float>& probs) {
  SWIFT_CHECK(!p.greedy());
  probs.resize(n);
  // Work on scaled logits; filters set excluded entries to -inf like transformers' warpers.
  std::vector<float> s(n);
  for (int64_t i = 0; i < n; ++i) s[i] = logits[i] / p.temperature;
  if (p.top_k > 0 && p.top_k < n) {
    std::vector<float> tmp(s);
    std::nth_element(tmp.begin(), tmp.begin() + (p.top_k - 1), tmp.end(), std::greater<float>());
    const float kth = tmp[p.top_k - 1];
    for (auto& v : s)
      if (v < kth) v = -INFINITY;
  }
  auto softmax_into = [&](std::vector<float>& out) {
    float m = -INFINITY;
    for (float v : s) m = std::max(m, v);
    double sum = 0.0;
    for (int64_t i = 0; i < n; ++i) {
      out[i] = std::isinf(s[i]) ? 0.0f : std::exp(s[i] - m);
      sum += out[i];
    }
    for (auto& v : out) v = static_cast<float>(v / sum);
  };
  if (p.top_p < 1.0f) {
    // transformers TopPLogitsWarper: sort ascending, drop the low tail whose cumulative mass
    // is <= 1 - top_p, always keep the most likely token.
    softmax_into(probs);
    std::vector<int32_t> order(n);
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](int32_t a, int32_t b) { return s[a] < s[b]; });
    double cum = 0.0;
    for (int64_t r = 0; r < n - 1; ++r) {
      cum += probs[order[r]];
      if (cum <= 1.0 - p.top_p) s[order[r]] = -INFINITY;
    }
  }
  if (p.min_p > 0.0f) {
    softmax_into(probs);
    float top = 0.0f;
    for (float v : probs) top = std::max(top, v);
    const float thr = p.min_p * top;
    for (int64_t i = 0; i < n; ++i)
      if (probs[i] < thr) s[i] = -INFINITY;
  }
  softmax_into(probs);
}

int32_t sample_from(const std::vector<float>& probs, std::mt19937_64& rng) {
  const double u = std::uniform_real_distribution<double>(0.0, 1.0)(rng);
  double cum = 0.0;
  int32_t last_nonzero = 0;
  for (size_t i = 0; i < probs.size(); ++i) {
    if (probs[i] <= 0.0f) continue;
    cum += probs[i];
    last_nonzero = static_cast<int32_t>(i);
    if (u < cum) return last_nonzero;
  }
  return last_nonzero;  // rounding left u >= cum
}

int32_t Sampler::pick(const float* logits, int64_t n_vocab, std::span<const int32_t> history) {
  const float* l = logits;
  if (p_.repetition_penalty != 1.0f) {
    work_.assign(logits, logits + n_vocab);
    apply_repetition_penalty(work_.data(), n_vocab, history, p_.repetition_penalty);
    l = work_.data();
  }
  if (p_.greedy()) return argmax(l, n_vocab);
  sampling_distribution(l, n_vocab, p_, probs_);
  return sample_from(probs_, rng_);
}

}  // namespace swift
