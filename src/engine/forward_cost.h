// What a forward pass costs on this machine, as a function of the number of tokens in it.
//
// Speculative decoding trades extra tokens per verification pass for fewer passes, so whether
// a bigger tree pays depends on how cost grows with the batch: on a GPU 10 tokens cost about
// one, on a 2-core CPU a 16-token pass costs several (issue 8). The hybrid controller therefore
// measures rather than assumes.
//
// Model: ms(n) = base * ratio(n). `base` is the cost of a one-token pass, `ratio` the cost of n
// tokens relative to one, interpolated between measured sizes.
//  - `calibrate` times passes of n = 1, 2, 4, ... tokens against the live KV cache (scratch
//    slots only, the committed sequence is untouched), in rounds over all sizes so that a slow
//    moment of the machine hits every size alike, and keeps each size's median: the controller
//    needs what a pass costs on average, and on a noisy shared machine the best of a few runs
//    was 10-50% below the real passes' median (issue 8 trace, docs prompts).
//  - `observe` learns from every real pass: one-token passes move `base` (context growth, other
//    load), an n-token pass moves the ratio at the two measured sizes around n toward what it
//    saw. Real verification passes see longer contexts than the calibration (attention grows
//    with context, more so for many tokens) and trees rather than chains, so the learnt ratios
//    grow past the calibrated ones; without this the controller chose trees that lost (0.85x on
//    a docs prompt whose 8-12-token passes cost 1.3-1.5x their calibrated estimate).
// Cost of calibration: about sum(sizes) * reps tokens of batched forward (~0.1-0.3 s for
// swift-mini-24L on 2 cores), paid once per process.
#pragma once

#include <cstdint>
#include <vector>

#include "engine/sequence.h"
#include "model/model.h"
#include "util/thread_pool.h"

namespace swift {

// Quartiles of a sample (nearest rank on the sorted values; the median averages the middle two
// of an even count). Empty sample: all zero.
struct Spread {
  double low = 0, median = 0, high = 0;  // 25th percentile, median, 75th percentile
};
Spread spread_of(std::vector<double> v);

class ForwardCost {
 public:
  // Sizes measured by default; verification trees larger than the last are not considered.
  static std::vector<int> default_sizes() { return {1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64}; }

  // Times `reps` rounds of full-model passes of every size over seq's scratch slots, seeing the
  // committed prefix. Needs seq.n_cached + max(sizes) <= seq.cache.n_slots().
  // paired: also time a one-token pass right before each measured pass (paired_ratio(); one more
  // one-token pass per size and round, which the decoders' calibration does not pay for).
  void calibrate(const Model& model, Sequence& seq, ThreadPool& pool, const std::vector<int>& sizes = default_sizes(),
                 int reps = 2, bool paired = false);
  bool calibrated() const { return !sizes_.empty(); }
  // Sets the model from measured passes (what calibrate does after timing; also for tests):
  // sizes increasing from 1, median and best milliseconds per size.
  void set_measurements(const std::vector<int>& sizes, const std::vector<double>& median_ms,
                        const std::vector<double>& best_ms);

  // Estimated milliseconds of one pass over n tokens (1 <= n <= max_tokens()).
  double ms(int n) const;
  int max_tokens() const { return sizes_.empty() ? 0 : sizes_.back(); }
  // Learns from a real pass of n tokens that took `ms`; returns the time it learned from (ms
  // clamped to [1/3, 3] x the estimate, so a stall counts as a slow pass, not as ten), or ms
  // itself when n is outside the calibrated sizes.
  double observe(int n, double ms);

  const std::vector<int>& sizes() const { return sizes_; }
  // Calibration results per size: median and fastest of the rounds (what the passes cost on
  // average, and what this machine can do at best).
  const std::vector<double>& median_ms() const { return median_ms_; }
  const std::vector<double>& best_ms() const { return best_ms_; }
  // Per size: quartiles over the rounds of (its pass's ms / the one-token pass timed right before
  // it): adjacent passes share the machine's current speed (this VM's moves by up to 1.7x between
  // phases lasting seconds), and the quartiles show how far single passes scatter. Row 0 (two
  // one-token passes) is the noise floor.
  // Empty unless calibrate() was asked for pairs.
  const std::vector<Spread>& paired_ratio() const { return paired_; }
  // Current estimate of ms(n) / ms(1) at each measured size.
  const std::vector<double>& ratios() const { return ratio_; }
  double calibration_ms() const { return calibration_ms_; }

  // Learning rates: one-token cost (frequent observations) and the ratio curve (rarer ones).
  static constexpr double kBaseRate = 0.05, kRatioRate = 0.1;

 private:
  // The measured sizes around n: index i with sizes_[i] >= n, and n's interpolation weight f
  // toward sizes_[i] from sizes_[i - 1] (f = 1 when n is a measured size).
  void bracket(int n, size_t& i, double& f) const;
  double ratio_at(int n) const;

  std::vector<int> sizes_;         // increasing, sizes_[0] == 1
  std::vector<double> median_ms_;  // [sizes_.size()]
  std::vector<double> best_ms_;    // [sizes_.size()]
  std::vector<double> ratio_;      // [sizes_.size()] ratio_[0] == 1, non-decreasing
  std::vector<Spread> paired_;     // [sizes_.size()] after a paired calibrate(), else empty
  double base_ = 0;                // ms of a one-token pass
  double calibration_ms_ = 0;
};

}  // namespace swift
