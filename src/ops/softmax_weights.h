// Softmax weights of one query's scores, shared by the attention kernels (ops/attention.h).
//
// w = exp(s - max(s)) in place (lanes::exp, 16 at a time) and 1 / sum(w), the sum in double over
// 16 fixed partial sums (key j into sum j % 16) and a fixed tree: every step depends only on the
// scores and their order, never on the batch or the thread split.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "ops/lanes.h"

namespace swift {

inline float softmax_weights(float* s, int64_t n) {
  using namespace lanes;
  Vec mv = broadcast(-INFINITY);
  for (int64_t j = 0; j < n; j += kLanes) mv = lanes::max(mv, load_or(s + j, mask_for(n - j), -INFINITY));
  float lane_max[kLanes];
  store(lane_max, mv, mask_for(kLanes));
  float mx = lane_max[0];
  for (float x : lane_max) mx = std::max(mx, x);
  const Vec mxv = broadcast(mx);
  for (int64_t j = 0; j < n; j += kLanes) {
    const Mask m = mask_for(n - j);
    store(s + j, lanes::exp(sub(load(s + j, m), mxv)), m);
  }
  double part[kLanes] = {};
  int64_t j = 0;
  for (; j + kLanes <= n; j += kLanes)
    for (int l = 0; l < kLanes; ++l) part[l] += s[j + l];
  for (int l = 0; j < n; ++j, ++l) part[l] += s[j];
  double s8[8], s4[4];
  for (int i = 0; i < 8; ++i) s8[i] = part[i] + part[i + 8];
  for (int i = 0; i < 4; ++i) s4[i] = s8[i] + s8[i + 4];
  return static_cast<float>(1.0 / ((s4[0] + s4[2]) + (s4[1] + s4[3])));
}

}  // namespace swift
