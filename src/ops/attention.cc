#include "ops/attention.h"

#include <algorithm>
#include <cmath>

#include "ops/lanes.h"
#include "util/check.h"

namespace swift {


int64_t SlotLists::max_len() const {
  int64_t m = 0;
  for (size_t i = 0; i + 1 < offsets.size(); ++i) m = std::max(m, offsets[i + 1] - offsets[i]);
  return m;
}

void attention(const AttentionArgs& a, ThreadPool& pool) {
  SWIFT_CHECK(a.n_head % a.n_kv_head == 0);
  SWIFT_CHECK(static_cast<int64_t>(a.visible->offsets.size()) == a.n_tok + 1);
  const int64_t group = a.n_head / a.n_kv_head;
  const int64_t hd = a.head_dim;
  const int64_t q_stride = a.n_head * hd;
  const int64_t kv_stride = a.n_kv_head * hd;
  const int64_t max_len = a.visible->max_len();
  pool.parallel_for(a.n_tok * a.n_head, [&](int64_t i0, int64_t i1, int) {
    thread_local std::vector<float> scores;
    if (static_cast<int64_t>(scores.size()) < max_len) scores.resize(max_len);
    for (int64_t i = i0; i < i1; ++i) {
      const int64_t t = i / a.n_head, h = i % a.n_head, kvh = h / group;
      const float* q = a.q + t * q_stride + h * hd;
      const int64_t b = a.visible->offsets[t], n = a.visible->offsets[t + 1] - b;
      float* out = a.out + t * q_stride + h * hd;
      if (n == 0) {  // cannot happen for a well-formed mask (a token sees itself); stay defined
        for (int64_t d = 0; d < hd; ++d) out[d] = 0.0f;
        continue;
      }
      const int32_t* sl = a.visible->slots.data() + b;
      float mx = -INFINITY;
      for (int64_t j = 0; j < n; ++j) {
        const float s = lanes::dot(q, a.k + static_cast<int64_t>(sl[j]) * kv_stride + kvh * hd, hd) * a.scale;
        scores[j] = s;
        mx = s > mx ? s : mx;
      }
      double sum = 0.0;
      for (int64_t j = 0; j < n; ++j) {
        scores[j] = std::exp(scores[j] - mx);
        sum += scores[j];
      }
      // Unnormalised weighted sum of V rows, 16 dimensions at a time with the keys innermost
      // (accumulators stay in registers; each element still sums keys in list order).
      const float inv = static_cast<float>(1.0 / sum);
      const float* vbase = a.v + kvh * hd;
      for (int64_t d = 0; d < hd; d += lanes::kLanes) {
        const lanes::Mask m = lanes::mask_for(hd - d);
        lanes::Vec acc = lanes::zero();
        for (int64_t j = 0; j < n; ++j)
          acc = lanes::fma(lanes::broadcast(scores[j]), lanes::load(vbase + static_cast<int64_t>(sl[j]) * kv_stride + d, m), acc);
        lanes::store(out + d, lanes::fma(acc, lanes::broadcast(inv), lanes::zero()), m);
      }
    }
  });
}

}  // namespace swift
