// What a forward pass costs on this machine, as a function of the number of tokens in it.
//
// Speculative decoding trades extra tokens per verification pass for fewer passes, so whether
// a bigger tree pays depends on how cost grows with the batch: on a GPU 10 tokens cost about
// one, on a 2-core CPU a 16-token pass costs several (issue 8). The hybrid controller therefore
// measures rather than assumes: `calibrate` times passes of n = 1, 2, 4, ... tokens against the
// live KV cache (scratch slots only, the committed sequence is untouched), `observe` refreshes
// the estimate from every real pass (exponential moving average per size bucket), and `ms(n)`
// interpolates between measured sizes. Cost of calibration: about sum(sizes) * reps tokens of
// batched forward (~0.1-0.3 s for swift-mini-24L on 2 cores), paid once per process.
#pragma once

#include <cstdint>
#include <vector>

#include "engine/sequence.h"
#include "model/model.h"
#include "util/thread_pool.h"

namespace swift {

class ForwardCost {
 public:
  // Sizes measured by default; verification trees larger than the last are not considered.
  static std::vector<int> default_sizes() { return {1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64}; }

  // Times full-model passes of each size (best of `reps`) over seq's scratch slots, seeing the
  // committed prefix. Needs seq.n_cached + max(sizes) <= seq.cache.n_slots().
  void calibrate(const Model& model, Sequence& seq, ThreadPool& pool, const std::vector<int>& sizes = default_sizes(),
                 int reps = 2);
  bool calibrated() const { return !sizes_.empty(); }

  // Estimated milliseconds of one pass over n tokens (1 <= n <= max_tokens()).
  double ms(int n) const;
  int max_tokens() const { return sizes_.empty() ? 0 : sizes_.back(); }
  // Refreshes the estimate of the nearest measured size with a real pass of n tokens.
  void observe(int n, double ms);

  const std::vector<int>& sizes() const { return sizes_; }
  const std::vector<double>& measured_ms() const { return ms_; }
  double calibration_ms() const { return calibration_ms_; }

 private:
  std::vector<int> sizes_;   // increasing
  std::vector<double> ms_;   // [sizes_.size()] current estimates
  double calibration_ms_ = 0;
};

}  // namespace swift
