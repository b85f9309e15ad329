#include "engine/forward_cost.h"

#include <algorithm>

#include "util/check.h"
#include "util/timer.h"

namespace swift {

void ForwardCost::calibrate(const Model& model, Sequence& seq, ThreadPool& pool, const std::vector<int>& sizes,
                            int reps) {
  SWIFT_CHECK(!sizes.empty() && std::is_sorted(sizes.begin(), sizes.end()) && sizes.front() >= 1);
  SWIFT_CHECK(seq.n_cached + sizes.back() <= seq.cache.n_slots(), "no scratch room to calibrate");
  SWIFT_CHECK(!seq.tokens.empty());
  const double t_start = now_ms();
  const SkipPlan full = SkipPlan::none(model.config.n_layer);
  std::vector<float> logits;
  sizes_ = sizes;
  ms_.assign(sizes.size(), 0.0);
  // A chain of the newest token repeated: the token ids do not change the cost, the shape does.
  // Every row's logits are produced, as in verification.
  auto pass = [&](int n) {
    ForwardBatch b = ForwardBatch::causal(std::vector<int32_t>(n, seq.tokens.back()), seq.n_cached, true);
    const double t0 = now_ms();
    model.transformer->forward(b, seq.cache, full, pool, logits);
    return now_ms() - t0;
  };
  pass(1);  // warm caches and the thread pool
  for (size_t i = 0; i < sizes.size(); ++i) {
    double best = 1e300;
    for (int r = 0; r < std::max(1, reps); ++r) best = std::min(best, pass(sizes[i]));
    ms_[i] = best;
  }
  // Cost never decreases with more tokens; measurement noise must not make a bigger pass look
  // cheaper than a smaller one.
  for (size_t i = 1; i < ms_.size(); ++i) ms_[i] = std::max(ms_[i], ms_[i - 1]);
  calibration_ms_ = now_ms() - t_start;
}

double ForwardCost::ms(int n) const {
  SWIFT_CHECK(calibrated() && n >= 1 && n <= max_tokens(), "forward cost for {} tokens", n);
  const auto it = std::lower_bound(sizes_.begin(), sizes_.end(), n);
  const size_t i = static_cast<size_t>(it - sizes_.begin());
  if (*it == n || i == 0) return ms_[i];
  const double f = static_cast<double>(n - sizes_[i - 1]) / (sizes_[i] - sizes_[i - 1]);
  return ms_[i - 1] + f * (ms_[i] - ms_[i - 1]);
}

void ForwardCost::observe(int n, double ms) {
  if (!calibrated() || n < 1 || n > max_tokens() || !(ms > 0)) return;
  const auto it = std::lower_bound(sizes_.begin(), sizes_.end(), n);
  const size_t i = static_cast<size_t>(it - sizes_.begin());
  if (*it != n) return;  // only exact sizes: interpolation points stay measured ones
  // Slow drift (context growth, other load) is tracked; single outliers (preemption) are damped.
  constexpr double kAlpha = 0.05;
  ms_[i] = (1 - kAlpha) * ms_[i] + kAlpha * std::min(ms, 3.0 * ms_[i]);
}

}  // namespace swift
