#include "engine/forward_cost.h"

#include <algorithm>
#include <cmath>

#include "util/check.h"
#include "util/timer.h"

namespace swift {

void ForwardCost::calibrate(const Model& model, Sequence& seq, ThreadPool& pool, const std::vector<int>& sizes,
                            int reps, bool paired) {
  SWIFT_CHECK(!sizes.empty() && std::is_sorted(sizes.begin(), sizes.end()) && sizes.front() == 1);
  SWIFT_CHECK(seq.n_cached + sizes.back() <= seq.cache.n_slots(), "no scratch room to calibrate");
  SWIFT_CHECK(!seq.tokens.empty());
  const double t_start = now_ms();
  const SkipPlan full = SkipPlan::none(model.config.n_layer);
  std::vector<float> logits;
  // A chain of the newest token repeated: the token ids do not change the cost, the shape does.
  // Every row's logits are produced, as in verification.
  auto pass = [&](int n) {
    ForwardBatch b = ForwardBatch::causal(std::vector<int32_t>(n, seq.tokens.back()), seq.n_cached, true);
    const double t0 = now_ms();
    model.transformer->forward(b, seq.cache, full, pool, logits);
    return now_ms() - t0;
  };
  pass(1);  // warm caches and the thread pool
  const size_t n_sizes = sizes.size();
  const int rounds = std::max(1, reps);
  std::vector<std::vector<double>> runs(n_sizes), pair_ratios(n_sizes);
  // Each timed pass follows a one-token pass, as a verification pass follows a decode step in
  // real use: a one-token pass right after a 64-token one ran ~50% slower (caches filled with the
  // big pass's activations), which made the ratios of earlier calibrations look better than they
  // were. With `paired`, that one-token pass is timed as the pair's reference (paired_ratio()),
  // after an untimed one for the same reason.
  for (int r = 0; r < rounds; ++r)
    for (size_t i = 0; i < n_sizes; ++i) {
      if (paired) pass(1);
      const double one = pass(1);  // unpaired: the one-token pass before, its time unused
      const double ms = pass(sizes[i]);
      runs[i].push_back(ms);
      if (paired) pair_ratios[i].push_back(ms / std::max(one, 1e-9));
    }
  std::vector<double> median(n_sizes), best(n_sizes);
  std::vector<Spread> spreads(paired ? n_sizes : 0);
  for (size_t i = 0; i < n_sizes; ++i) {
    median[i] = spread_of(runs[i]).median;
    best[i] = *std::min_element(runs[i].begin(), runs[i].end());
    if (paired) spreads[i] = spread_of(pair_ratios[i]);
  }
  set_measurements(sizes, median, best);
  paired_ = std::move(spreads);
  calibration_ms_ = now_ms() - t_start;
}

Spread spread_of(std::vector<double> v) {
  Spread s;
  if (v.empty()) return s;
  std::sort(v.begin(), v.end());
  const size_t m = v.size();
  s.median = m % 2 ? v[m / 2] : 0.5 * (v[m / 2 - 1] + v[m / 2]);
  // Nearest rank: the smallest value with at least p of the sample at or below it.
  auto rank = [&](double p) { return v[static_cast<size_t>(std::ceil(p * static_cast<double>(m))) - 1]; };
  s.low = rank(0.25);
  s.high = rank(0.75);
  return s;
}

void ForwardCost::set_measurements(const std::vector<int>& sizes, const std::vector<double>& median_ms,
                                   const std::vector<double>& best_ms) {
  SWIFT_CHECK(!sizes.empty() && sizes.front() == 1 && median_ms.size() == sizes.size() &&
              best_ms.size() == sizes.size());
  for (size_t i = 0; i < sizes.size(); ++i) {
    SWIFT_CHECK(median_ms[i] > 0 && best_ms[i] > 0);
    if (i > 0) SWIFT_CHECK(sizes[i] > sizes[i - 1], "sizes must increase");
  }
  sizes_ = sizes;
  paired_.clear();
  median_ms_ = median_ms;
  best_ms_ = best_ms;
  base_ = median_ms_[0];
  ratio_.assign(sizes.size(), 1.0);
  // Cost never decreases with more tokens; measurement noise must not make a bigger pass look
  // cheaper than a smaller one.
  for (size_t i = 1; i < sizes.size(); ++i) ratio_[i] = std::max(ratio_[i - 1], median_ms_[i] / base_);
}

void ForwardCost::bracket(int n, size_t& i, double& f) const {
  i = static_cast<size_t>(std::lower_bound(sizes_.begin(), sizes_.end(), n) - sizes_.begin());
  f = sizes_[i] == n ? 1.0 : static_cast<double>(n - sizes_[i - 1]) / (sizes_[i] - sizes_[i - 1]);
}

double ForwardCost::ratio_at(int n) const {
  size_t i;
  double f;
  bracket(n, i, f);
  return f == 1.0 ? ratio_[i] : ratio_[i - 1] + f * (ratio_[i] - ratio_[i - 1]);
}

double ForwardCost::ms(int n) const {
  SWIFT_CHECK(calibrated() && n >= 1 && n <= max_tokens(), "forward cost for {} tokens", n);
  return base_ * ratio_at(n);
}

double ForwardCost::observe(int n, double ms) {
  if (!calibrated() || n < 1 || n > max_tokens() || !(ms > 0)) return ms;
  // Slow drift (context growth, other load) is tracked; single outliers (preemption) are damped.
  const double predicted = this->ms(n);
  ms = std::clamp(ms, predicted / 3.0, 3.0 * predicted);
  if (n == 1) {
    base_ += kBaseRate * (ms - base_);
    return ms;
  }
  // Gradient step on the squared error of the interpolated ratio: the two measured sizes around
  // n move in proportion to their interpolation weights.
  const double err = ms / base_ - ratio_at(n);
  size_t i;
  double f;
  bracket(n, i, f);
  ratio_[i] += kRatioRate * f * err;
  if (f < 1.0) ratio_[i - 1] += kRatioRate * (1 - f) * err;  // ratio_[0] is reset below
  ratio_[0] = 1.0;
  for (size_t j = 1; j < ratio_.size(); ++j) ratio_[j] = std::max(ratio_[j], ratio_[j - 1]);
  return ms;
}

}  // namespace swift
